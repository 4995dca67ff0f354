#pragma once
// Reductions over chosen dimensions: sum, mean, var (biased or unbiased), l1/l2 norms.
//   x: any shape, dims: the axes to reduce (negative counts from the back), keepdim keeps them as size 1.
// The sum kernel is the broadcast-reduction of ops/cpu/loop.hpp, so reductions and broadcast backward
// share one vectorized, fixed-order loop; the others are compositions whose gradients come from their parts.
#include <sslgate/ops/elementwise.hpp>

#include <algorithm>
#include <vector>

namespace sslgate::ops {

namespace detail {
inline shape reduced_shape(std::string_view op, const shape& s, std::vector<int> dims, bool keepdim) {
  std::vector<bool> reduce(s.rank(), false);
  for (int d : dims) {
    const int a = d < 0 ? d + s.rank() : d;
    SSLGATE_CHECK(a >= 0 && a < s.rank(), shape_error, op, "dimension {} out of range for shape {}", d, s);
    SSLGATE_CHECK(!reduce[a], shape_error, op, "dimension {} given twice for shape {}", d, s);
    reduce[a] = true;
  }
  std::vector<std::int64_t> out;
  for (int i = 0; i < s.rank(); ++i) {
    if (!reduce[i]) out.push_back(s[i]);
    else if (keepdim) out.push_back(1);
  }
  return shape(std::span<const std::int64_t>(out));
}
inline std::int64_t reduced_count(const shape& s, const shape& kept) { return kept.numel() == 0 ? 0 : s.numel() / kept.numel(); }
}  // namespace detail

template <real T>
tensor<T> sum(tape<T>& tp, const tensor<T>& x, std::vector<int> dims, bool keepdim = false) {
  const bool dev = on_device("sum", x);
  const shape kept = detail::reduced_shape("sum", x.dims(), dims, true);
  tensor<T> y = tensor<T>::zeros(kept, x.dev());
  if (dev) {
    if constexpr (cuda_kernels<T>) cuda::sum_to_add(y.data(), kept, x.data(), x.dims());
  } else {
    cpu::sum_to_add(y.data(), kept, x.data(), x.dims());
  }
  if (!keepdim) y = y.view_as(detail::reduced_shape("sum", x.dims(), dims, false));
  tp.record({x}, y, [kept, dev](grad_slots<T>& g, const tensor<T>& dy) {
    tensor<T>& dx = g[0];  // dx += dy broadcast back over the reduced dims
    if (dev) {
      if constexpr (cuda_kernels<T>) cuda::broadcast_add(dx.data(), dx.dims(), dy.data(), kept);
      return;
    }
    cpu::map<T>([](auto d, auto v) { return d + v; }, dx.data(), dx.dims(), arg(dx), cpu::operand<T>{dy.data(), kept});
  });
  return y;
}

// Sum of every element, as a single value of shape [].
template <real T>
tensor<T> sum(tape<T>& tp, const tensor<T>& x) {
  std::vector<int> all(x.rank());
  for (int i = 0; i < x.rank(); ++i) all[i] = i;
  return sum(tp, x, all);
}

template <real T>
tensor<T> mean(tape<T>& tp, const tensor<T>& x, std::vector<int> dims, bool keepdim = false) {
  const std::int64_t n = detail::reduced_count(x.dims(), detail::reduced_shape("mean", x.dims(), dims, true));
  SSLGATE_CHECK(n > 0, shape_error, "mean", "no elements to average in shape {}", x.dims());
  return scale(tp, sum(tp, x, std::move(dims), keepdim), 1.0 / static_cast<double>(n));
}

template <real T>
tensor<T> mean(tape<T>& tp, const tensor<T>& x) {
  SSLGATE_CHECK(x.numel() > 0, shape_error, "mean", "no elements to average in shape {}", x.dims());
  return scale(tp, sum(tp, x), 1.0 / static_cast<double>(x.numel()));
}

// Variance over dims: sum((x - mean)^2) / (n - 1) when unbiased, / n otherwise.
template <real T>
tensor<T> var(tape<T>& tp, const tensor<T>& x, std::vector<int> dims, bool unbiased = true, bool keepdim = false) {
  const std::int64_t n = detail::reduced_count(x.dims(), detail::reduced_shape("var", x.dims(), dims, true));
  SSLGATE_CHECK(n > (unbiased ? 1 : 0), shape_error, "var", "{} variance of {} element(s) per output (shape {}) is undefined",
                unbiased ? "unbiased" : "biased", n, x.dims());
  const tensor<T> centered = sub(tp, x, mean(tp, x, dims, true));
  return scale(tp, sum(tp, mul(tp, centered, centered), std::move(dims), keepdim), 1.0 / static_cast<double>(unbiased ? n - 1 : n));
}

// p-norm over dims for p = 1 or 2.
template <real T>
tensor<T> norm(tape<T>& tp, const tensor<T>& x, int p, std::vector<int> dims, bool keepdim = false) {
  SSLGATE_CHECK(p == 1 || p == 2, value_error, "norm", "p must be 1 or 2, got {}", p);
  if (p == 1) return sum(tp, abs(tp, x), std::move(dims), keepdim);
  return sqrt(tp, sum(tp, mul(tp, x, x), std::move(dims), keepdim));
}

}  // namespace sslgate::ops
