#pragma once
// gradcheck: compares the tape's gradients with central finite differences, in double.
// The output y is projected onto a fixed random tensor r (L = sum(r * y)), so one backward pass checks
// every output element at once. Inputs with requires_grad are checked; the others are constants.
// Pass criterion per element (PyTorch's defaults): |numeric - analytic| <= atol + rtol * |analytic|.
#include <sslgate/autograd/tape.hpp>

#include <cmath>
#include <span>
#include <string>
#include <vector>

namespace sslgate {

struct gradcheck_options {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
  std::uint64_t seed = 1234;
};

struct gradcheck_result {
  bool ok = true;
  double max_abs_error = 0;
  std::string report;  // the first failing element of each input, or empty
  explicit operator bool() const { return ok; }
};

// f(tape<double>&, std::span<const tensor<double>> inputs) -> tensor<double>.
template <class F>
gradcheck_result gradcheck(F&& f, std::vector<tensor<double>> inputs, const gradcheck_options& opt = {}) {
  gradcheck_result res;
  // Forward once to learn the output shape, then the analytic gradient of L = sum(r * y).
  tensor<double> r;
  {
    tape<double> tp;
    tensor<double> y = f(tp, std::span<const tensor<double>>(inputs));
    rng gen(opt.seed);
    r = tensor<double>::uniform(y.dims(), gen, -1.0, 1.0);
    for (auto& x : inputs) x.zero_grad();
    tp.backward(y, r);
  }
  auto projected = [&] {
    tape<double> none(grad_mode::off);
    tensor<double> y = f(none, std::span<const tensor<double>>(inputs));
    long double s = 0;
    for (std::int64_t i = 0; i < y.numel(); ++i) s += static_cast<long double>(r[i]) * y[i];
    return static_cast<double>(s);
  };
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    tensor<double>& x = inputs[k];
    if (!x.requires_grad()) continue;
    const tensor<double> analytic = x.grad();
    for (std::int64_t i = 0; i < x.numel(); ++i) {
      const double saved = x[i];
      x[i] = saved + opt.eps;
      const double plus = projected();
      x[i] = saved - opt.eps;
      const double minus = projected();
      x[i] = saved;
      const double numeric = (plus - minus) / (2 * opt.eps);
      const double a = analytic.empty() ? 0.0 : analytic[i];
      const double err = std::abs(numeric - a);
      res.max_abs_error = std::max(res.max_abs_error, err);
      if (!(err <= opt.atol + opt.rtol * std::abs(a))) {
        if (res.ok || res.report.find(fmt::format("input {} ", k)) == std::string::npos)
          res.report += fmt::format("input {} {} element {}: numeric {:.10g} analytic {:.10g}\n", k, x.dims(), i, numeric, a);
        res.ok = false;
      }
    }
  }
  return res;
}

}  // namespace sslgate
