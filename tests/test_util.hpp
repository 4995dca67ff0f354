#pragma once
// Shared helpers for the test suite: random inputs, float-vs-double comparison, gradcheck assertions.
#include <sslgate/autograd/gradcheck.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <vector>

namespace sslgate::testing {

inline tensor<double> random(const shape& s, std::uint64_t seed, double lo = -1, double hi = 1) {
  rng r(seed);
  return tensor<double>::uniform(s, r, lo, hi);
}

// Normalized mean squared error of n float results against their reference.
template <class R>
double nmse(const float* got, const R* want, std::int64_t n) {
  long double num = 0, den = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const long double d = static_cast<long double>(got[i]) - want[i];
    num += d * d;
    den += static_cast<long double>(want[i]) * want[i];
  }
  return den == 0 ? static_cast<double>(num) : static_cast<double>(num / den);
}
// ... of a float result against its double reference.
inline double nmse(const tensor<float>& got, const tensor<double>& want) { return nmse(got.data(), want.data(), want.numel()); }

// The same op in float and double agrees: NMSE <= 1e-7 and every element within a tolerance that grows
// with the reduction length k (rtol * sqrt(k)).
inline void require_float_matches(const tensor<float>& got, const tensor<double>& want, double k = 1) {
  REQUIRE(got.dims() == want.dims());
  CHECK(nmse(got, want) <= 1e-7);
  const double tol = 2e-6 * std::sqrt(std::max(k, 1.0));
  std::int64_t bad = 0;
  for (std::int64_t i = 0; i < want.numel(); ++i)
    if (!(std::abs(got[i] - want[i]) <= tol * (1 + std::abs(want[i])))) ++bad;
  CHECK(bad == 0);
}

// gradcheck with the library defaults; prints the failing elements.
template <class F>
void require_gradcheck(F&& f, std::vector<tensor<double>> inputs, gradcheck_options opt = {}) {
  for (auto& x : inputs) x.set_requires_grad();
  const auto res = gradcheck(std::forward<F>(f), std::move(inputs), opt);
  INFO(res.report);
  REQUIRE(res.ok);
}

// Runs f on float copies of double inputs and compares with the double run.
template <class F>
void require_float_vs_double(F&& f, const std::vector<tensor<double>>& inputs, double k = 1) {
  std::vector<tensor<float>> fin;
  for (const auto& x : inputs) fin.push_back(x.cast<float>());
  tape<double> td(grad_mode::off);
  tape<float> tf(grad_mode::off);
  const tensor<double> want = f(td, std::span<const tensor<double>>(inputs));
  const tensor<float> got = f(tf, std::span<const tensor<float>>(fin));
  require_float_matches(got, want, k);
}

}  // namespace sslgate::testing
