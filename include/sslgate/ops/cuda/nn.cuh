#pragma once
// Kernels of the network ops: batch norm, pools, the softmax family, l2-normalize and the channel gate.
// Each mirrors the CPU kernel of the same name (ops/batchnorm.hpp, pool.hpp, softmax.hpp, normalize.hpp,
// gating/channel_gate.hpp): same formulas, same float rounding points; sums are taken in double.
#include <sslgate/core/rng.hpp>
#include <sslgate/ops/cuda/common.cuh>

#include <cmath>

namespace sslgate::cuda::kern {

// ---- batch norm, x: [n, c, s] ----------------------------------------------------------------------------
// One block per channel: mean, then the biased variance around it (two passes, as the CPU).
static __global__ void bn_stats_kernel(double* mean, double* var, const float* x, std::int64_t n, std::int64_t c, std::int64_t s) {
  const std::int64_t ch = blockIdx.x, count = n * s;
  double acc = 0;
  for (std::int64_t i = threadIdx.x; i < count; i += blockDim.x) acc += x[((i / s) * c + ch) * s + i % s];
  const double m = block_sum(acc) / static_cast<double>(count);
  double sq = 0;
  for (std::int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    const double e = x[((i / s) * c + ch) * s + i % s] - m;
    sq += e * e;
  }
  const double v = block_sum(sq) / static_cast<double>(count);
  if (threadIdx.x == 0) {
    mean[ch] = m;
    var[ch] = v;
  }
}
// Per channel: running statistics (training), invstd, and the float coefficients of y = (x - m) * scale + shift.
// coef: [3][c] floats (mean, scale, shift) rounded as the CPU rounds them.
static __global__ void bn_finish_kernel(double* mean, double* invstd, float* coef, const double* var_in, const float* weight, const float* bias,
                                        float* running_mean, float* running_var, bool training, double momentum, double eps, std::int64_t c,
                                        std::int64_t count) {
  SSLGATE_GRID_LOOP(ch, c) {
    double m, v;
    if (training) {
      m = mean[ch];
      v = var_in[ch];
      if (running_mean != nullptr) {
        const double unbias = static_cast<double>(count) / static_cast<double>(count - 1);
        running_mean[ch] = static_cast<float>((1 - momentum) * running_mean[ch] + momentum * m);
        running_var[ch] = static_cast<float>((1 - momentum) * running_var[ch] + momentum * v * unbias);
      }
    } else {
      m = running_mean[ch];
      v = running_var[ch];
      mean[ch] = m;
    }
    const double is = 1.0 / sqrt(v + eps);
    invstd[ch] = is;
    const double w = weight != nullptr ? static_cast<double>(weight[ch]) : 1.0;
    coef[ch] = static_cast<float>(m);
    coef[c + ch] = static_cast<float>(w * is);
    coef[2 * c + ch] = bias != nullptr ? bias[ch] : 0.f;
  }
}
static __global__ void bn_apply_kernel(float* y, const float* x, const float* coef, std::int64_t c, std::int64_t s, std::int64_t total) {
  SSLGATE_GRID_LOOP(i, total) {
    const std::int64_t ch = (i / s) % c;
    y[i] = (x[i] - coef[ch]) * coef[c + ch] + coef[2 * c + ch];
  }
}
// One block per channel: sdy = sum dy, sdyx = sum dy (x - m) with m the mean rounded to float (x may be null).
static __global__ void bn_backward_sums_kernel(double* sdy, double* sdyx, const float* dy, const float* x, const double* mean, std::int64_t n,
                                               std::int64_t c, std::int64_t s) {
  const std::int64_t ch = blockIdx.x, count = n * s;
  const float m = static_cast<float>(mean[ch]);
  double a = 0, b = 0;
  for (std::int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    const std::int64_t off = ((i / s) * c + ch) * s + i % s;
    const float g = dy[off];
    a += g;
    if (x != nullptr) b += g * (x[off] - m);
  }
  a = block_sum(a);
  b = block_sum(b);
  if (threadIdx.x == 0) {
    sdy[ch] = a;
    sdyx[ch] = b;
  }
}
// Per channel: dweight, dbias, and the float coefficients k, p, q of dx += k dy + p (x - m) + q (coef: [4][c]).
static __global__ void bn_backward_coef_kernel(float* coef, float* dweight, float* dbias, const double* sdy, const double* sdyx,
                                               const float* weight, const double* mean, const double* invstd, bool training, std::int64_t c,
                                               std::int64_t count) {
  SSLGATE_GRID_LOOP(ch, c) {
    const double is = invstd[ch], w = weight != nullptr ? static_cast<double>(weight[ch]) : 1.0;
    if (dweight != nullptr) dweight[ch] += static_cast<float>(sdyx[ch] * is);
    if (dbias != nullptr) dbias[ch] += static_cast<float>(sdy[ch]);
    const double k = w * is, inv_m = 1.0 / static_cast<double>(count);
    coef[ch] = static_cast<float>(mean[ch]);
    coef[c + ch] = static_cast<float>(k);
    coef[2 * c + ch] = training ? static_cast<float>(-k * is * is * sdyx[ch] * inv_m) : 0.f;
    coef[3 * c + ch] = training ? static_cast<float>(-k * sdy[ch] * inv_m) : 0.f;
  }
}
static __global__ void bn_backward_data_kernel(float* dx, const float* dy, const float* x, const float* coef, std::int64_t c, std::int64_t s,
                                               std::int64_t total) {
  SSLGATE_GRID_LOOP(i, total) {
    const std::int64_t ch = (i / s) % c;
    const float xv = x != nullptr ? x[i] : coef[ch];
    dx[i] = dx[i] + coef[c + ch] * dy[i] + coef[2 * c + ch] * (xv - coef[ch]) + coef[3 * c + ch];
  }
}

// ---- pools -------------------------------------------------------------------------------------------------
struct pool_g {
  std::int64_t planes, h, w, oh, ow;
  int k, s, p;
};
static __global__ void avg_pool_forward_kernel(float* y, const float* x, pool_g g) {
  SSLGATE_GRID_LOOP(i, g.planes * g.oh * g.ow) {
    const std::int64_t ox = i % g.ow, oy = (i / g.ow) % g.oh, pl = i / (g.ow * g.oh);
    const float* xp = x + pl * g.h * g.w;
    float acc = 0;
    for (std::int64_t ky = 0; ky < g.k; ++ky) {
      const std::int64_t iy = oy * g.s - g.p + ky;
      if (iy < 0 || iy >= g.h) continue;
      for (std::int64_t kx = 0; kx < g.k; ++kx) {
        const std::int64_t ix = ox * g.s - g.p + kx;
        if (ix >= 0 && ix < g.w) acc += xp[iy * g.w + ix];
      }
    }
    y[i] = acc / static_cast<float>(g.k * g.k);
  }
}
// dx gathers every window that covers it (no atomics: deterministic).
static __global__ void avg_pool_backward_kernel(float* dx, const float* dy, pool_g g) {
  SSLGATE_GRID_LOOP(i, g.planes * g.h * g.w) {
    const std::int64_t ix = i % g.w, iy = (i / g.w) % g.h, pl = i / (g.w * g.h);
    const float* dp = dy + pl * g.oh * g.ow;
    float acc = 0;
    for (std::int64_t oy = 0; oy < g.oh; ++oy) {
      const std::int64_t ky = iy + g.p - oy * g.s;
      if (ky < 0 || ky >= g.k) continue;
      for (std::int64_t ox = 0; ox < g.ow; ++ox) {
        const std::int64_t kx = ix + g.p - ox * g.s;
        if (kx >= 0 && kx < g.k) acc += dp[oy * g.ow + ox] / static_cast<float>(g.k * g.k);
      }
    }
    dx[i] += acc;
  }
}
// PyTorch's scan: first in-bounds position, then v wins when v > best or v is NaN.
static __global__ void max_pool_forward_kernel(float* y, std::int32_t* idx, const float* x, pool_g g) {
  SSLGATE_GRID_LOOP(i, g.planes * g.oh * g.ow) {
    const std::int64_t ox = i % g.ow, oy = (i / g.ow) % g.oh, pl = i / (g.ow * g.oh);
    const float* xp = x + pl * g.h * g.w;
    float best = -INFINITY;
    std::int32_t arg = -1;
    for (std::int64_t ky = 0; ky < g.k; ++ky) {
      const std::int64_t iy = oy * g.s - g.p + ky;
      if (iy < 0 || iy >= g.h) continue;
      for (std::int64_t kx = 0; kx < g.k; ++kx) {
        const std::int64_t ix = ox * g.s - g.p + kx;
        if (ix < 0 || ix >= g.w) continue;
        const float v = xp[iy * g.w + ix];
        if (arg < 0 || v > best || isnan(v)) {
          best = v;
          arg = static_cast<std::int32_t>(iy * g.w + ix);
          if (isnan(v)) goto done;
        }
      }
    }
  done:
    y[i] = best;
    if (idx != nullptr) idx[i] = arg;
  }
}
static __global__ void max_pool_backward_kernel(float* dx, const float* dy, const std::int32_t* idx, pool_g g) {
  SSLGATE_GRID_LOOP(i, g.planes * g.h * g.w) {
    const std::int64_t ix = i % g.w, iy = (i / g.w) % g.h, pl = i / (g.w * g.h);
    const std::int64_t self = iy * g.w + ix, base = pl * g.oh * g.ow;
    float acc = 0;
    for (std::int64_t oy = 0; oy < g.oh; ++oy) {
      const std::int64_t ky = iy + g.p - oy * g.s;
      if (ky < 0 || ky >= g.k) continue;
      for (std::int64_t ox = 0; ox < g.ow; ++ox) {
        const std::int64_t kx = ix + g.p - ox * g.s;
        if (kx >= 0 && kx < g.k && idx[base + oy * g.ow + ox] == self) acc += dy[base + oy * g.ow + ox];
      }
    }
    dx[i] += acc;
  }
}
// One warp per plane.
static __global__ void global_avg_forward_kernel(float* y, const float* x, std::int64_t planes, std::int64_t s) {
  const std::int64_t warp = (blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x) / 32, lane = threadIdx.x % 32;
  if (warp >= planes) return;
  double acc = 0;
  for (std::int64_t i = lane; i < s; i += 32) acc += x[warp * s + i];
  for (int o = 16; o > 0; o /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (lane == 0) y[warp] = static_cast<float>(acc / static_cast<double>(s));
}
static __global__ void global_avg_backward_kernel(float* dx, const float* dy, std::int64_t planes, std::int64_t s) {
  SSLGATE_GRID_LOOP(i, planes * s) dx[i] += dy[i / s] / static_cast<float>(s);
}

// ---- softmax family and l2-normalize: one block per row --------------------------------------------------
// shift m (the row max, or 0 when it is +-inf) and ls = log sum exp(x - m).
__device__ inline void row_shift_logsum(const float* xr, std::int64_t c, float& m, float& ls) {
  float mx = -INFINITY;
  for (std::int64_t i = threadIdx.x; i < c; i += blockDim.x) mx = fmaxf(mx, xr[i]);
  mx = block_max(mx);
  m = isinf(mx) ? 0.f : mx;
  double acc = 0;
  for (std::int64_t i = threadIdx.x; i < c; i += blockDim.x) acc += exp(static_cast<double>(xr[i] - m));
  ls = static_cast<float>(log(block_sum(acc)));
}
static __global__ void logsumexp_kernel(float* lse, const float* x, std::int64_t c) {
  float m, ls;
  row_shift_logsum(x + blockIdx.x * c, c, m, ls);
  if (threadIdx.x == 0) lse[blockIdx.x] = m + ls;
}
static __global__ void log_softmax_forward_kernel(float* y, const float* x, std::int64_t c) {
  const float* xr = x + blockIdx.x * c;
  float m, ls;
  row_shift_logsum(xr, c, m, ls);
  for (std::int64_t i = threadIdx.x; i < c; i += blockDim.x) y[blockIdx.x * c + i] = (xr[i] - m) - ls;
}
static __global__ void log_softmax_backward_kernel(float* dx, const float* dy, const float* y, std::int64_t c) {
  const std::int64_t r = blockIdx.x * c;
  double acc = 0;
  for (std::int64_t i = threadIdx.x; i < c; i += blockDim.x) acc += dy[r + i];
  const float s = static_cast<float>(block_sum(acc));
  for (std::int64_t i = threadIdx.x; i < c; i += blockDim.x) dx[r + i] = dx[r + i] + dy[r + i] - expf(y[r + i]) * s;
}
static __global__ void softmax_rows_backward_kernel(float* dx, const float* x, const float* lse, const float* coef, const int* label, std::int64_t c) {
  const std::int64_t row = blockIdx.x, r = row * c;
  const float l = lse[row], k = coef[row];
  const int t = label != nullptr ? label[row] : -1;
  for (std::int64_t i = threadIdx.x; i < c; i += blockDim.x) {
    float v = dx[r + i] + k * expf(x[r + i] - l);
    if (i == t) v -= k;
    dx[r + i] = v;
  }
}
static __global__ void l2n_forward_kernel(float* y, float* norm, const float* x, std::int64_t d, float eps) {
  const std::int64_t r = blockIdx.x * d;
  double acc = 0;
  for (std::int64_t i = threadIdx.x; i < d; i += blockDim.x) acc += static_cast<double>(x[r + i]) * x[r + i];
  const float nr = static_cast<float>(sqrt(block_sum(acc)));
  if (norm != nullptr && threadIdx.x == 0) norm[blockIdx.x] = nr;
  const float a = 1.f / fmaxf(nr, eps);
  for (std::int64_t i = threadIdx.x; i < d; i += blockDim.x) y[r + i] = a * x[r + i];
}
static __global__ void l2n_backward_kernel(float* dx, const float* dy, const float* y, const float* norm, std::int64_t d, float eps) {
  const std::int64_t r = blockIdx.x * d;
  const float nr = norm[blockIdx.x], inv = 1.f / fmaxf(nr, eps);
  double acc = 0;
  for (std::int64_t i = threadIdx.x; i < d; i += blockDim.x) acc += static_cast<double>(y[r + i]) * dy[r + i];
  const float proj = nr >= eps ? static_cast<float>(block_sum(acc)) : 0.f;
  for (std::int64_t i = threadIdx.x; i < d; i += blockDim.x) dx[r + i] = dx[r + i] + inv * dy[r + i] + (-proj * inv) * y[r + i];
}

// ---- channel gate ------------------------------------------------------------------------------------------
static __global__ void philox_uniform_kernel(float* u, std::int64_t n, std::uint64_t seed, std::uint64_t stream, std::uint64_t first) {
  SSLGATE_GRID_LOOP(i, n) u[i] = static_cast<float>(0.0f + 1.0f * rng::uniform_at(seed, stream, first + static_cast<std::uint64_t>(i)));
}
static __global__ void gate_sample_forward_kernel(float* b, float* soft, const float* logits, const float* u, std::int64_t n, double tau) {
  SSLGATE_GRID_LOOP(i, n) {
    const double uv = u[i];
    const float noise = static_cast<float>(log(uv + 1e-8) - log(1.0 - uv + 1e-8));
    const double z = (static_cast<double>(logits[i]) + static_cast<double>(noise)) / tau;
    const float sv = static_cast<float>(1.0 / (1.0 + exp(-z)));
    soft[i] = sv;
    b[i] = sv >= 0.5f ? 1.f : 0.f;
  }
}
static __global__ void gate_sample_backward_kernel(float* dl, const float* dy, const float* soft, std::int64_t n, float tau) {
  SSLGATE_GRID_LOOP(i, n) dl[i] += dy[i] * soft[i] * (1.f - soft[i]) / tau;
}
static __global__ void gate_threshold_kernel(float* b, const float* logits, std::int64_t n) {
  SSLGATE_GRID_LOOP(i, n) b[i] = logits[i] >= 0.f ? 1.f : 0.f;
}

// ---- shape ops -------------------------------------------------------------------------------------------------
// dst rows [dst_at, dst_at + count) of [outer, dst_size, inner] (+)= src rows [src_at, ...) of [outer, src_size, inner].
template <bool Add>
__global__ void copy_rows_kernel(float* dst, std::int64_t dst_size, std::int64_t dst_at, const float* src, std::int64_t src_size,
                                 std::int64_t src_at, std::int64_t count, std::int64_t inner, std::int64_t n) {
  SSLGATE_GRID_LOOP(i, n) {
    const std::int64_t e = i % inner, r = (i / inner) % count, o = i / (inner * count);
    const float v = src[(o * src_size + src_at + r) * inner + e];
    float& d = dst[(o * dst_size + dst_at + r) * inner + e];
    d = Add ? d + v : v;
  }
}
// y (+)= x with two axes swapped: y[i] = x[offset of i's permuted index]; out_extent and in_stride are in y's order.
struct swap_plan {
  int rank;
  std::int64_t out_extent[5], in_stride[5];
};
template <bool Add>
__global__ void swap_axes_kernel(float* y, const float* x, swap_plan p, std::int64_t n) {
  SSLGATE_GRID_LOOP(i, n) {
    std::int64_t rem = i, off = 0;
    for (int d = p.rank - 1; d >= 0; --d) {
      off += (rem % p.out_extent[d]) * p.in_stride[d];
      rem /= p.out_extent[d];
    }
    y[i] = Add ? y[i] + x[off] : x[off];
  }
}

}  // namespace sslgate::cuda::kern
