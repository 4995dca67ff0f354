#pragma once
// Row-wise softmax family over the last dimension of x: [N, C] (C >= 1). Stable: each row is shifted by
// its max before exp; a row whose max is +-inf is not shifted (so an all -inf row has logsumexp -inf, as
// torch.logsumexp).
//   log_softmax(tp, x)               [N, C] -> [N, C]    y = x - logsumexp(x)
//   logsumexp(tp, x)                 [N, C] -> [N]       log sum_j exp(x_j)
//   cross_entropy(tp, logits, t)     [N, C], N labels in [0, C) -> scalar (shape []), mean over rows of
//                                    logsumexp(x_n) - x_n[t_n]   (F.cross_entropy, reduction 'mean';
//                                    no ignore_index, no label smoothing)
// Backward adds into dx. Rows are split over threads; each row is SIMD along C.
#include <sslgate/autograd/tape.hpp>
#include <sslgate/core/parallel.hpp>
#include <sslgate/ops/elementwise.hpp>

#include <xsimd/xsimd.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

namespace sslgate::ops {

namespace cpu::sm {

template <class T>
T row_max(const T* p, std::int64_t n) {
  using B = xsimd::batch<T>;
  constexpr std::int64_t w = B::size;
  T m = -std::numeric_limits<T>::infinity();
  std::int64_t i = 0;
  if (n >= w) {
    B acc = B::load_unaligned(p);
    for (i = w; i + w <= n; i += w) acc = xsimd::max(acc, B::load_unaligned(p + i));
    alignas(64) T lanes[B::size];
    acc.store_aligned(lanes);
    for (std::int64_t j = 0; j < w; ++j) m = std::max(m, lanes[j]);
  }
  for (; i < n; ++i) m = std::max(m, p[i]);
  return m;
}

// A row of n >= 1 values as its shift m and log sum exp(p[i] - m): logsumexp = m + that. Keeping the two
// apart lets log_softmax form (x - m) - log s, exact in x - m, as PyTorch does.
template <class T>
std::pair<T, T> row_shift_logsum(const T* p, std::int64_t n) {
  using B = xsimd::batch<T>;
  constexpr std::int64_t w = B::size;
  T m = row_max(p, n);
  if (!std::isfinite(m)) m = T(0);  // +-inf or NaN max: no shift (inf - inf would make NaN)
  B acc(T(0));
  std::int64_t i = 0;
  for (; i + w <= n; i += w) acc += xsimd::exp(B::load_unaligned(p + i) - B(m));
  T s = xsimd::hadd(acc);
  for (; i < n; ++i) s += std::exp(p[i] - m);
  return {m, std::log(s)};
}

template <class T>
T row_logsumexp(const T* p, std::int64_t n) {
  const auto [m, ls] = row_shift_logsum(p, n);
  return m + ls;
}

// y[i] = f(i) in SIMD with a scalar tail; f takes an index and a tag value giving the lane type.
template <class T, class F>
void row_map(T* y, std::int64_t n, F f) {
  using B = xsimd::batch<T>;
  constexpr std::int64_t w = B::size;
  std::int64_t i = 0;
  for (; i + w <= n; i += w) f(i, B(T(0))).store_unaligned(y + i);
  for (; i < n; ++i) y[i] = f(i, T(0));
}

template <class V, class T>
V load(const T* p, std::int64_t i) {
  if constexpr (std::is_same_v<V, T>) return p[i];
  else return V::load_unaligned(p + i);
}

inline std::int64_t row_grain(std::int64_t c) { return std::max<std::int64_t>(1, 8192 / std::max<std::int64_t>(c, 1)); }

}  // namespace cpu::sm

// Buffer-level kernels over [n, c] rows.

// lse[r] = logsumexp of row r.
template <real T>
void logsumexp_forward(T* lse, const T* x, std::int64_t n, std::int64_t c) {
  parallel_for(n, cpu::sm::row_grain(c), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) lse[r] = cpu::sm::row_logsumexp(x + r * c, c);
  });
}

// y = (x - m) - log sum exp(x - m) per row.
template <real T>
void log_softmax_forward(T* y, const T* x, std::int64_t n, std::int64_t c) {
  parallel_for(n, cpu::sm::row_grain(c), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * c;
      const auto [m, ls] = cpu::sm::row_shift_logsum(xr, c);
      cpu::sm::row_map(y + r * c, c, [&](std::int64_t i, auto tag) {
        using V = decltype(tag);
        return (cpu::sm::load<V>(xr, i) - V(m)) - V(ls);
      });
    }
  });
}

// dx += dy - exp(y) sum(dy) per row (y = log_softmax(x)).
template <real T>
void log_softmax_backward(T* dx, const T* dy, const T* y, std::int64_t n, std::int64_t c) {
  parallel_for(n, cpu::sm::row_grain(c), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const T *gr = dy + r * c, *yr = y + r * c;
      T* dr = dx + r * c;
      T s = 0;
      for (std::int64_t i = 0; i < c; ++i) s += gr[i];
      cpu::sm::row_map(dr, c, [&](std::int64_t i, auto tag) {
        using V = decltype(tag);
        using std::exp;
        using xsimd::exp;
        return cpu::sm::load<V>(dr, i) + cpu::sm::load<V>(gr, i) - exp(cpu::sm::load<V>(yr, i)) * V(s);
      });
    }
  });
}

// dx[r] += coef[r] * (exp(x[r] - lse[r]) - onehot(label[r])) per row; label may be null (no one-hot term).
template <real T>
void softmax_rows_backward(T* dx, const T* x, const T* lse, const T* coef, const int* label, std::int64_t n, std::int64_t c) {
  parallel_for(n, cpu::sm::row_grain(c), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * c;
      T* dr = dx + r * c;
      const T l = lse[r], k = coef[r];
      cpu::sm::row_map(dr, c, [&](std::int64_t i, auto tag) {
        using V = decltype(tag);
        using std::exp;
        using xsimd::exp;
        return cpu::sm::load<V>(dr, i) + V(k) * exp(cpu::sm::load<V>(xr, i) - V(l));
      });
      if (label) dr[label[r]] -= k;
    }
  });
}

namespace detail {
template <real T>
void check_rows(std::string_view op, const tensor<T>& x) {
  SSLGATE_CHECK(!x.empty(), shape_error, op, "input is empty");
  SSLGATE_CHECK(x.rank() == 2, shape_error, op, "input must be [N, C], got shape {}", x.dims());
  SSLGATE_CHECK(x.dim(1) >= 1, shape_error, op, "input {} has no classes", x.dims());
}
}  // namespace detail

template <real T>
tensor<T> log_softmax(tape<T>& tp, const tensor<T>& x) {
  detail::check_rows("log_softmax", x);
  const std::int64_t n = x.dim(0), c = x.dim(1);
  tensor<T> y = tensor<T>::empty_like(x);
  if (on_device("log_softmax", x)) {
    if constexpr (cuda_kernels<T>) {
      cuda::log_softmax_forward(y.data(), x.data(), n, c);
      tp.record({x}, y, [y, n, c](grad_slots<T>& g, const tensor<T>& dy) { cuda::log_softmax_backward(g[0].data(), dy.data(), y.data(), n, c); });
    }
    return y;
  }
  log_softmax_forward(y.data(), x.data(), n, c);
  tp.record({x}, y, [y, n, c](grad_slots<T>& g, const tensor<T>& dy) {
    if (g.needed(0)) log_softmax_backward(g[0].data(), dy.data(), y.data(), n, c);
  });
  return y;
}

template <real T>
tensor<T> logsumexp(tape<T>& tp, const tensor<T>& x) {
  detail::check_rows("logsumexp", x);
  const std::int64_t n = x.dim(0), c = x.dim(1);
  tensor<T> y(shape{n}, x.dev());
  if (on_device("logsumexp", x)) {
    if constexpr (cuda_kernels<T>) {
      cuda::logsumexp_forward(y.data(), x.data(), n, c);
      tp.record({x}, y, [x, y, n, c](grad_slots<T>& g, const tensor<T>& dy) {
        cuda::softmax_rows_backward(g[0].data(), x.data(), y.data(), dy.data(), nullptr, n, c);
      });
    }
    return y;
  }
  logsumexp_forward(y.data(), x.data(), n, c);
  tp.record({x}, y, [x, y, n, c](grad_slots<T>& g, const tensor<T>& dy) {
    if (g.needed(0)) softmax_rows_backward(g[0].data(), x.data(), y.data(), dy.data(), static_cast<const int*>(nullptr), n, c);
  });
  return y;
}

template <real T>
tensor<T> cross_entropy(tape<T>& tp, const tensor<T>& logits, const std::vector<int>& labels) {
  constexpr std::string_view op = "cross_entropy";
  detail::check_rows(op, logits);
  const std::int64_t n = logits.dim(0), c = logits.dim(1);
  SSLGATE_CHECK(static_cast<std::int64_t>(labels.size()) == n, shape_error, op, "logits {} have {} rows but {} labels were given",
                logits.dims(), n, labels.size());
  SSLGATE_CHECK(n >= 1, shape_error, op, "logits {} have no rows (the mean is undefined)", logits.dims());
  for (std::int64_t r = 0; r < n; ++r)
    SSLGATE_CHECK(labels[r] >= 0 && labels[r] < c, value_error, op, "label {} at index {} is out of range [0, {}) for logits {}",
                  labels[r], r, c, logits.dims());
  if (on_device(op, logits)) {
    if constexpr (cuda_kernels<T>) {
      // The mean runs on the host from the row log-sum-exps and the logits (small: N x classes).
      tensor<T> lse(shape{n}, logits.dev());
      cuda::logsumexp_forward(lse.data(), logits.data(), n, c);
      const std::vector<T> lse_host = lse.to_vector(), x = logits.to_vector();
      double total = 0;
      for (std::int64_t r = 0; r < n; ++r) total += static_cast<double>(lse_host[r]) - static_cast<double>(x[r * c + labels[r]]);
      tensor<T> y = tensor<T>::full(shape{}, static_cast<T>(total / static_cast<double>(n)), logits.dev());
      const device_buffer<int> label = to_device_buffer(labels, logits.dev());
      tp.record({logits}, y, [logits, lse, label, n, c](grad_slots<T>& g, const tensor<T>& dy) {
        const auto coef = to_device_buffer(std::vector<T>(static_cast<std::size_t>(n), static_cast<T>(dy.item() / static_cast<double>(n))), logits.dev());
        cuda::softmax_rows_backward(g[0].data(), logits.data(), lse.data(), coef.data(), label.data(), n, c);
      });
      return y;
    }
  }
  auto lse = std::make_shared<std::vector<T>>(static_cast<std::size_t>(n));
  logsumexp_forward(lse->data(), logits.data(), n, c);
  double total = 0;
  for (std::int64_t r = 0; r < n; ++r) total += static_cast<double>((*lse)[r]) - static_cast<double>(logits[r * c + labels[r]]);
  tensor<T> y(shape{});
  y[0] = static_cast<T>(total / static_cast<double>(n));
  tp.record({logits}, y, [logits, lse, labels, n, c](grad_slots<T>& g, const tensor<T>& dy) {
    if (!g.needed(0)) return;
    // dlogits[r] = dy / N * (softmax(x_r) - onehot(t_r))
    std::vector<T> coef(static_cast<std::size_t>(n), static_cast<T>(dy[0] / static_cast<double>(n)));
    softmax_rows_backward(g[0].data(), logits.data(), lse->data(), coef.data(), labels.data(), n, c);
  });
  return y;
}

}  // namespace sslgate::ops
