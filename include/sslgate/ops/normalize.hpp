#pragma once
// l2_normalize(tp, x, eps): x: [N, D] -> y: [N, D], each row divided by max(||x_n||_2, eps)
// (F.normalize(x, p=2, dim=1, eps) semantics). A zero row gives y = 0 and dx = dy / eps (finite).
// Backward adds into dx, per row with n = ||x||:
//   n >= eps:  dx = (dy - y <y, dy>) / n          (through the norm)
//   n <  eps:  dx = dy / eps                      (clamp_min blocks the norm's gradient, as in PyTorch)
// Rows are split over threads; each row is SIMD along D. Norms are accumulated in T with one SIMD
// accumulator (D / width terms per lane); rows are short (projector widths), so this is accurate enough.
#include <sslgate/autograd/tape.hpp>
#include <sslgate/core/parallel.hpp>
#include <sslgate/ops/elementwise.hpp>

#include <xsimd/xsimd.hpp>

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

namespace sslgate::ops {

namespace cpu::l2n {

// sum a[i] * b[i]
template <class T>
T dot(const T* a, const T* b, std::int64_t n) {
  using B = xsimd::batch<T>;
  constexpr std::int64_t w = B::size;
  B acc(T(0));
  std::int64_t i = 0;
  for (; i + w <= n; i += w) acc += B::load_unaligned(a + i) * B::load_unaligned(b + i);
  T s = xsimd::hadd(acc);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// y[i] = acc ? y[i] + alpha a[i] + beta b[i] : alpha a[i] + beta b[i]
template <class T>
void axpby(T* y, bool acc, T alpha, const T* a, T beta, const T* b, std::int64_t n) {
  using B = xsimd::batch<T>;
  constexpr std::int64_t w = B::size;
  std::int64_t i = 0;
  for (; i + w <= n; i += w) {
    B v = B(alpha) * B::load_unaligned(a + i) + B(beta) * B::load_unaligned(b + i);
    if (acc) v += B::load_unaligned(y + i);
    v.store_unaligned(y + i);
  }
  for (; i < n; ++i) y[i] = (acc ? y[i] : T(0)) + alpha * a[i] + beta * b[i];
}

inline std::int64_t row_grain(std::int64_t d) { return std::max<std::int64_t>(1, 8192 / std::max<std::int64_t>(d, 1)); }

}  // namespace cpu::l2n

// y = x / max(||x||, eps) per row; norm[r] = ||x_r|| (unclamped) stored when not null.
template <real T>
void l2_normalize_forward(T* y, T* norm, const T* x, std::int64_t n, std::int64_t d, double eps) {
  parallel_for(n, cpu::l2n::row_grain(d), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * d;
      const T nr = std::sqrt(cpu::l2n::dot(xr, xr, d));
      if (norm) norm[r] = nr;
      cpu::l2n::axpby(y + r * d, false, T(1) / std::max(nr, static_cast<T>(eps)), xr, T(0), xr, d);
    }
  });
}

// dx += (dy - y <y, dy>) / norm, or dy / eps for a row whose norm is below eps; norm[r] = ||x_r||.
template <real T>
void l2_normalize_backward(T* dx, const T* dy, const T* y, const T* norm, std::int64_t n, std::int64_t d, double eps) {
  parallel_for(n, cpu::l2n::row_grain(d), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const T *gr = dy + r * d, *yr = y + r * d;
      const T e = static_cast<T>(eps);
      const T inv = T(1) / std::max(norm[r], e);
      // clamp_min(n, eps) passes the gradient where n >= eps (PyTorch's mask), else blocks it.
      const T proj = norm[r] >= e ? cpu::l2n::dot(yr, gr, d) : T(0);
      cpu::l2n::axpby(dx + r * d, true, inv, gr, -proj * inv, yr, d);
    }
  });
}

template <real T>
tensor<T> l2_normalize(tape<T>& tp, const tensor<T>& x, double eps = 1e-12) {
  constexpr std::string_view op = "l2_normalize";
  const bool dev = on_device(op, x);
  SSLGATE_CHECK(x.rank() == 2, shape_error, op, "input must be [N, D], got shape {}", x.dims());
  SSLGATE_CHECK(eps > 0 && std::isfinite(eps), value_error, op, "eps must be finite and > 0, got {}", eps);
  const std::int64_t n = x.dim(0), d = x.dim(1);
  tensor<T> y = tensor<T>::empty_like(x);
  if (dev) {
    if constexpr (cuda_kernels<T>) {
      device_buffer<T> norm(static_cast<std::size_t>(n), x.dev());
      cuda::l2_normalize_forward(y.data(), norm.data(), x.data(), n, d, eps);
      tp.record({x}, y, [y, norm, n, d, eps](grad_slots<T>& g, const tensor<T>& dy) {
        cuda::l2_normalize_backward(g[0].data(), dy.data(), y.data(), norm.data(), n, d, eps);
      });
    }
    return y;
  }
  if (!tp.tracks({&x})) {
    l2_normalize_forward(y.data(), static_cast<T*>(nullptr), x.data(), n, d, eps);
    return y;
  }
  auto norm = std::make_shared<std::vector<T>>(static_cast<std::size_t>(n));
  l2_normalize_forward(y.data(), norm->data(), x.data(), n, d, eps);
  tp.record({x}, y, [y, norm, n, d, eps](grad_slots<T>& g, const tensor<T>& dy) {
    if (g.needed(0)) l2_normalize_backward(g[0].data(), dy.data(), y.data(), norm->data(), n, d, eps);
  });
  return y;
}

}  // namespace sslgate::ops
