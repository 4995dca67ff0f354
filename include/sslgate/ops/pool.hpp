#pragma once
// Pooling over NCHW maps, PyTorch semantics (floor output size, ceil_mode = false; square windows).
//   avg_pool2d(tp, x, k, s, p)   x: [N, C, H, W] -> y: [N, C, H', W'], H' = (H + 2p - k) / s + 1
//                                count_include_pad = true: every window divides by k*k
//   max_pool2d(tp, x, k, s, p)   same shapes; padding is -inf (never wins). Backward routes dy to the first
//                                maximum in window scan order (row-major), as PyTorch's CPU kernel; a NaN wins
//                                over any number (NaN propagates). Only the argmax indices are saved.
//   global_avg_pool(tp, x)       x: [N, C, H, W] -> y: [N, C], the mean over H, W (the ResNet head)
// Requires k >= 1, s >= 1, 0 <= p <= k / 2 (PyTorch's limit, so every window holds a real value) and
// H + 2p >= k, W + 2p >= k. Threads split the N*C planes; backward adds into dx.
#include <sslgate/autograd/tape.hpp>
#include <sslgate/core/parallel.hpp>
#include <sslgate/ops/elementwise.hpp>

#include <xsimd/xsimd.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

namespace sslgate::ops {

struct pool2d_geometry {
  std::int64_t planes, h, w, oh, ow;
  int k, s, p;
  std::int64_t in_plane() const { return h * w; }
  std::int64_t out_plane() const { return oh * ow; }
};

namespace detail {
template <real T>
pool2d_geometry pool2d_check(std::string_view op, const tensor<T>& x, int kernel, int stride, int padding) {
  SSLGATE_CHECK(!x.empty(), shape_error, op, "input is empty");
  SSLGATE_CHECK(x.rank() == 4, shape_error, op, "input must be [N, C, H, W], got shape {}", x.dims());
  SSLGATE_CHECK(kernel >= 1 && stride >= 1, value_error, op, "kernel {} and stride {} must be >= 1", kernel, stride);
  SSLGATE_CHECK(padding >= 0 && 2 * padding <= kernel, value_error, op, "padding {} must be in [0, kernel / 2] for kernel {}", padding,
                kernel);
  const std::int64_t h = x.dim(2), w = x.dim(3);
  SSLGATE_CHECK(h + 2 * padding >= kernel && w + 2 * padding >= kernel, shape_error, op,
                "kernel {} does not fit input {} with padding {}", kernel, x.dims(), padding);
  return {x.dim(0) * x.dim(1), h, w, (h + 2 * padding - kernel) / stride + 1, (w + 2 * padding - kernel) / stride + 1, kernel, stride,
          padding};
}
inline cuda::pool_geom device_geometry(const pool2d_geometry& g) { return {g.planes, g.h, g.w, g.oh, g.ow, g.k, g.s, g.p}; }
}  // namespace detail

// Buffer-level kernels. One window: rows [oy*s - p, oy*s - p + k) clipped to [0, H), columns likewise.

template <real T>
void avg_pool2d_forward(T* y, const T* x, const pool2d_geometry& g) {
  const T inv = T(1) / static_cast<T>(g.k * g.k);
  parallel_for(g.planes, std::max<std::int64_t>(1, 8192 / std::max<std::int64_t>(g.in_plane(), 1)), [&](std::int64_t b0, std::int64_t b1) {
    for (std::int64_t b = b0; b < b1; ++b) {
      const T* xp = x + b * g.in_plane();
      T* yp = y + b * g.out_plane();
      for (std::int64_t oy = 0; oy < g.oh; ++oy) {
        const std::int64_t y0 = std::max<std::int64_t>(oy * g.s - g.p, 0), y1 = std::min<std::int64_t>(oy * g.s - g.p + g.k, g.h);
        for (std::int64_t ox = 0; ox < g.ow; ++ox) {
          const std::int64_t x0 = std::max<std::int64_t>(ox * g.s - g.p, 0), x1 = std::min<std::int64_t>(ox * g.s - g.p + g.k, g.w);
          T acc = 0;
          for (std::int64_t iy = y0; iy < y1; ++iy)
            for (std::int64_t ix = x0; ix < x1; ++ix) acc += xp[iy * g.w + ix];
          yp[oy * g.ow + ox] = acc * inv;
        }
      }
    }
  });
}

// dx += the adjoint of avg_pool2d_forward applied to dy.
template <real T>
void avg_pool2d_backward(T* dx, const T* dy, const pool2d_geometry& g) {
  const T inv = T(1) / static_cast<T>(g.k * g.k);
  parallel_for(g.planes, std::max<std::int64_t>(1, 8192 / std::max<std::int64_t>(g.in_plane(), 1)), [&](std::int64_t b0, std::int64_t b1) {
    for (std::int64_t b = b0; b < b1; ++b) {
      T* xp = dx + b * g.in_plane();
      const T* yp = dy + b * g.out_plane();
      for (std::int64_t oy = 0; oy < g.oh; ++oy) {
        const std::int64_t y0 = std::max<std::int64_t>(oy * g.s - g.p, 0), y1 = std::min<std::int64_t>(oy * g.s - g.p + g.k, g.h);
        for (std::int64_t ox = 0; ox < g.ow; ++ox) {
          const std::int64_t x0 = std::max<std::int64_t>(ox * g.s - g.p, 0), x1 = std::min<std::int64_t>(ox * g.s - g.p + g.k, g.w);
          const T v = yp[oy * g.ow + ox] * inv;
          for (std::int64_t iy = y0; iy < y1; ++iy)
            for (std::int64_t ix = x0; ix < x1; ++ix) xp[iy * g.w + ix] += v;
        }
      }
    }
  });
}

// y = window max; idx (when not null) = the argmax's offset within its input plane.
// PyTorch's scan: start at -inf with the first in-bounds position; take v when v > best or v is NaN.
template <real T>
void max_pool2d_forward(T* y, std::int32_t* idx, const T* x, const pool2d_geometry& g) {
  parallel_for(g.planes, std::max<std::int64_t>(1, 8192 / std::max<std::int64_t>(g.in_plane(), 1)), [&](std::int64_t b0, std::int64_t b1) {
    for (std::int64_t b = b0; b < b1; ++b) {
      const T* xp = x + b * g.in_plane();
      T* yp = y + b * g.out_plane();
      std::int32_t* ip = idx ? idx + b * g.out_plane() : nullptr;
      for (std::int64_t oy = 0; oy < g.oh; ++oy) {
        const std::int64_t y0 = std::max<std::int64_t>(oy * g.s - g.p, 0), y1 = std::min<std::int64_t>(oy * g.s - g.p + g.k, g.h);
        for (std::int64_t ox = 0; ox < g.ow; ++ox) {
          const std::int64_t x0 = std::max<std::int64_t>(ox * g.s - g.p, 0), x1 = std::min<std::int64_t>(ox * g.s - g.p + g.k, g.w);
          T best = -std::numeric_limits<T>::infinity();
          std::int64_t at = y0 * g.w + x0;
          for (std::int64_t iy = y0; iy < y1; ++iy)
            for (std::int64_t ix = x0; ix < x1; ++ix) {
              const T v = xp[iy * g.w + ix];
              if (v > best || std::isnan(v)) {
                best = v;
                at = iy * g.w + ix;
              }
            }
          yp[oy * g.ow + ox] = best;
          if (ip) ip[oy * g.ow + ox] = static_cast<std::int32_t>(at);
        }
      }
    }
  });
}

// dx[argmax] += dy.
template <real T>
void max_pool2d_backward(T* dx, const T* dy, const std::int32_t* idx, const pool2d_geometry& g) {
  parallel_for(g.planes, std::max<std::int64_t>(1, 8192 / std::max<std::int64_t>(g.out_plane(), 1)), [&](std::int64_t b0, std::int64_t b1) {
    for (std::int64_t b = b0; b < b1; ++b) {
      T* xp = dx + b * g.in_plane();
      const T* yp = dy + b * g.out_plane();
      const std::int32_t* ip = idx + b * g.out_plane();
      for (std::int64_t o = 0; o < g.out_plane(); ++o) xp[ip[o]] += yp[o];
    }
  });
}

// y[b] = mean of plane b (S values), SIMD over the plane; b < planes.
template <real T>
void global_avg_pool_forward(T* y, const T* x, std::int64_t planes, std::int64_t s) {
  using B = xsimd::batch<T>;
  constexpr std::int64_t w = B::size;
  const double inv = 1.0 / static_cast<double>(s);
  parallel_for(planes, std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(s, 1)), [&](std::int64_t b0, std::int64_t b1) {
    for (std::int64_t b = b0; b < b1; ++b) {
      const T* p = x + b * s;
      B acc(T(0));
      std::int64_t i = 0;
      for (; i + w <= s; i += w) acc += B::load_unaligned(p + i);
      T t = xsimd::hadd(acc);
      for (; i < s; ++i) t += p[i];
      y[b] = static_cast<T>(t * inv);
    }
  });
}

// dx[b][i] += dy[b] / S.
template <real T>
void global_avg_pool_backward(T* dx, const T* dy, std::int64_t planes, std::int64_t s) {
  using B = xsimd::batch<T>;
  constexpr std::int64_t w = B::size;
  parallel_for(planes, std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(s, 1)), [&](std::int64_t b0, std::int64_t b1) {
    for (std::int64_t b = b0; b < b1; ++b) {
      T* p = dx + b * s;
      const T v = static_cast<T>(dy[b] / static_cast<double>(s));
      std::int64_t i = 0;
      for (; i + w <= s; i += w) (B::load_unaligned(p + i) + B(v)).store_unaligned(p + i);
      for (; i < s; ++i) p[i] += v;
    }
  });
}

template <real T>
tensor<T> avg_pool2d(tape<T>& tp, const tensor<T>& x, int kernel, int stride, int padding = 0) {
  const pool2d_geometry g = detail::pool2d_check("avg_pool2d", x, kernel, stride, padding);
  tensor<T> y(shape{x.dim(0), x.dim(1), g.oh, g.ow}, x.dev());
  if (on_device("avg_pool2d", x)) {
    if constexpr (cuda_kernels<T>) {
      cuda::avg_pool2d_forward(y.data(), x.data(), detail::device_geometry(g));
      tp.record({x}, y, [g](grad_slots<T>& gs, const tensor<T>& dy) { cuda::avg_pool2d_backward(gs[0].data(), dy.data(), detail::device_geometry(g)); });
    }
    return y;
  }
  avg_pool2d_forward(y.data(), x.data(), g);
  tp.record({x}, y, [g](grad_slots<T>& gs, const tensor<T>& dy) {
    if (gs.needed(0)) avg_pool2d_backward(gs[0].data(), dy.data(), g);
  });
  return y;
}

template <real T>
tensor<T> max_pool2d(tape<T>& tp, const tensor<T>& x, int kernel, int stride, int padding = 0) {
  const pool2d_geometry g = detail::pool2d_check("max_pool2d", x, kernel, stride, padding);
  SSLGATE_CHECK(g.in_plane() <= std::numeric_limits<std::int32_t>::max(), shape_error, "max_pool2d",
                "input {} has more than 2^31 values per plane", x.dims());
  tensor<T> y(shape{x.dim(0), x.dim(1), g.oh, g.ow}, x.dev());
  if (on_device("max_pool2d", x)) {
    if constexpr (cuda_kernels<T>) {
      const bool keep = tp.tracks({&x});
      device_buffer<std::int32_t> idx = keep ? device_buffer<std::int32_t>(static_cast<std::size_t>(y.numel()), x.dev()) : device_buffer<std::int32_t>{};
      cuda::max_pool2d_forward(y.data(), keep ? idx.data() : nullptr, x.data(), detail::device_geometry(g));
      if (keep)
        tp.record({x}, y, [g, idx](grad_slots<T>& gs, const tensor<T>& dy) {
          cuda::max_pool2d_backward(gs[0].data(), dy.data(), idx.data(), detail::device_geometry(g));
        });
    }
    return y;
  }
  if (!tp.tracks({&x})) {
    max_pool2d_forward(y.data(), static_cast<std::int32_t*>(nullptr), x.data(), g);
    return y;
  }
  auto idx = std::make_shared<std::vector<std::int32_t>>(static_cast<std::size_t>(y.numel()));
  max_pool2d_forward(y.data(), idx->data(), x.data(), g);
  tp.record({x}, y, [g, idx](grad_slots<T>& gs, const tensor<T>& dy) {
    if (gs.needed(0)) max_pool2d_backward(gs[0].data(), dy.data(), idx->data(), g);
  });
  return y;
}

template <real T>
tensor<T> global_avg_pool(tape<T>& tp, const tensor<T>& x) {
  const bool dev = on_device("global_avg_pool", x);
  SSLGATE_CHECK(x.rank() == 4, shape_error, "global_avg_pool", "input must be [N, C, H, W], got shape {}", x.dims());
  const std::int64_t planes = x.dim(0) * x.dim(1), s = x.dim(2) * x.dim(3);
  SSLGATE_CHECK(s > 0, shape_error, "global_avg_pool", "input {} has empty maps", x.dims());
  tensor<T> y(shape{x.dim(0), x.dim(1)}, x.dev());
  if (dev) {
    if constexpr (cuda_kernels<T>) {
      cuda::global_avg_pool_forward(y.data(), x.data(), planes, s);
      tp.record({x}, y, [planes, s](grad_slots<T>& gs, const tensor<T>& dy) { cuda::global_avg_pool_backward(gs[0].data(), dy.data(), planes, s); });
    }
    return y;
  }
  global_avg_pool_forward(y.data(), x.data(), planes, s);
  tp.record({x}, y, [planes, s](grad_slots<T>& gs, const tensor<T>& dy) {
    if (gs.needed(0)) global_avg_pool_backward(gs[0].data(), dy.data(), planes, s);
  });
  return y;
}

}  // namespace sslgate::ops
