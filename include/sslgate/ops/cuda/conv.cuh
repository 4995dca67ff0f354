#pragma once
// Convolution kernels: a gathered implicit GEMM for the forward pass (dense, gated input, gated output) and
// direct kernels for the two backward passes.
//
// Forward, per sample n, as a GEMM over K = (input channel, tap):
//   naive loop: for n, m < M_n, p < P:  y[n, out(m), p] = sum_{j < C_n, tap} w[out(m), in(j), tap] * x[n, in(j), p*s - pad + tap]
//   dense:        M_n = c_out, out(m) = m;  C_n = c_in, in(j) = j
//   gated input:  in(j) = index[n][j], C_n = count[n]      (conv2: reduce only over open channels)
//   gated output: out(m) = index[n][m], M_n = count[n]     (conv1 in eval: compute only open channels;
//                 epilogue relu(acc * scale[o] + shift[o]), BN folded)
// Tiles: 64 output channels x 64 pixels of one sample per block, K in steps of 16 through shared memory,
// 256 threads with 4x4 accumulators each. The gather happens while the tiles are loaded (CUTLASS's
// gather/scatter fusion, example 36), so closed channels cost neither loads nor FMAs; blocks whose
// channel tile lies past M_n exit at once.
#include <sslgate/ops/cuda/common.cuh>

namespace sslgate::cuda::kern {

struct conv_g {
  int n, c_in, h, w, c_out, kh, kw, stride, pad, oh, ow;
};

inline constexpr int conv_bm = 64, conv_bn = 64, conv_bk = 16;

template <bool GatherIn, bool GatherOut>
__global__ __launch_bounds__(256) void conv_igemm_kernel(float* y, const float* x, const float* w, conv_g g, const int* count,
                                                          const int* index, const float* scale, const float* shift) {
  const int n = blockIdx.z, P = g.oh * g.ow, kk = g.kh * g.kw;
  const int m_count = GatherOut ? count[n] : g.c_out;
  const int m0 = blockIdx.y * conv_bm, p0 = blockIdx.x * conv_bn;
  if (m0 >= m_count) return;
  const int K = (GatherIn ? count[n] : g.c_in) * kk;
  const int* list = (GatherIn || GatherOut) ? index + static_cast<std::int64_t>(n) * (GatherIn ? g.c_in : g.c_out) : nullptr;

  __shared__ float as[conv_bk][conv_bm];
  __shared__ float bs[conv_bk][conv_bn];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  // A (weights): consecutive threads read consecutive k of one weight row.
  const int a_k = tid % 16, a_m = tid / 16;
  int a_o[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int m = m0 + a_m + 16 * j;
    a_o[j] = m < m_count ? (GatherOut ? list[m] : m) : -1;
  }
  // B (im2col of x): consecutive threads read consecutive output pixels.
  const int b_p = tid % 64, b_k = tid / 64;
  const int pp = p0 + b_p;
  const bool p_ok = pp < P;
  const int iy0 = (pp / g.ow) * g.stride - g.pad, ix0 = (pp % g.ow) * g.stride - g.pad;
  const float* xn = x + static_cast<std::int64_t>(n) * g.c_in * g.h * g.w;

  float acc[4][4] = {};
  for (int k0 = 0; k0 < K; k0 += conv_bk) {
    {
      const int k = k0 + a_k;
      int c = -1, tap = 0;
      if (k < K) {
        const int j = k / kk;
        tap = k - j * kk;
        c = GatherIn ? list[j] : j;
      }
#pragma unroll
      for (int j = 0; j < 4; ++j)
        as[a_k][a_m + 16 * j] = (c >= 0 && a_o[j] >= 0) ? w[(static_cast<std::int64_t>(a_o[j]) * g.c_in + c) * kk + tap] : 0.f;
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int k = k0 + b_k + 4 * j;
      float v = 0.f;
      if (k < K && p_ok) {
        const int jc = k / kk, tap = k - jc * kk;
        const int c = GatherIn ? list[jc] : jc;
        const int iy = iy0 + tap / g.kw, ix = ix0 + tap % g.kw;
        if (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w) v = xn[(static_cast<std::int64_t>(c) * g.h + iy) * g.w + ix];
      }
      bs[b_k + 4 * j][b_p] = v;
    }
    __syncthreads();
#pragma unroll
    for (int q = 0; q < conv_bk; ++q) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        a[i] = as[q][ty * 4 + i];
        b[i] = bs[q][tx * 4 + i];
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + ty * 4 + i;
    if (m >= m_count) continue;
    const int o = GatherOut ? list[m] : m;
    float* yo = y + (static_cast<std::int64_t>(n) * g.c_out + o) * P;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int p = p0 + tx * 4 + j;
      if (p >= P) continue;
      float v = acc[i][j];
      if (GatherOut) v = fmaxf(v * scale[o] + shift[o], 0.f);
      yo[p] = v;
    }
  }
}

// Closed output channels of the gated-output form are zero.
static __global__ void zero_closed_kernel(float* y, const int* open, std::int64_t planes, std::int64_t plane) {
  SSLGATE_GRID_LOOP(i, planes * plane) if (open[i / plane] == 0) y[i] = 0.f;
}

// dx[n, c, iy, ix] += sum_{o, ky, kx} w[o, c, ky, kx] dy[n, o, (iy + pad - ky) / s, (ix + pad - kx) / s]
static __global__ void conv_backward_data_kernel(float* dx, const float* dy, const float* w, conv_g g) {
  const std::int64_t total = static_cast<std::int64_t>(g.n) * g.c_in * g.h * g.w;
  const int kk = g.kh * g.kw;
  SSLGATE_GRID_LOOP(i, total) {
    const int ix = static_cast<int>(i % g.w), iy = static_cast<int>((i / g.w) % g.h);
    const int c = static_cast<int>((i / (static_cast<std::int64_t>(g.w) * g.h)) % g.c_in);
    const std::int64_t n = i / (static_cast<std::int64_t>(g.w) * g.h * g.c_in);
    float acc = 0.f;
    for (int ky = 0; ky < g.kh; ++ky) {
      const int ty = iy + g.pad - ky;
      if (ty < 0 || ty % g.stride != 0 || ty / g.stride >= g.oh) continue;
      for (int kx = 0; kx < g.kw; ++kx) {
        const int tx = ix + g.pad - kx;
        if (tx < 0 || tx % g.stride != 0 || tx / g.stride >= g.ow) continue;
        const float* dyp = dy + n * g.c_out * g.oh * g.ow + (ty / g.stride) * g.ow + tx / g.stride;
        const float* wp = w + static_cast<std::int64_t>(c) * kk + ky * g.kw + kx;
        for (int o = 0; o < g.c_out; ++o) acc = fmaf(wp[static_cast<std::int64_t>(o) * g.c_in * kk], dyp[static_cast<std::int64_t>(o) * g.oh * g.ow], acc);
      }
    }
    dx[i] += acc;
  }
}

// One block per weight element (o, c, tap): dw += sum_{n, p} dy[n, o, p] x[n, c, p*s - pad + tap], skipping the
// samples where channel c is closed (open == nullptr: dense).
static __global__ void conv_backward_weight_kernel(float* dw, const float* dy, const float* x, conv_g g, const int* open) {
  const int kk = g.kh * g.kw, P = g.oh * g.ow;
  const std::int64_t e = blockIdx.x;
  const int tap = static_cast<int>(e % kk), c = static_cast<int>((e / kk) % g.c_in);
  const int o = static_cast<int>(e / (static_cast<std::int64_t>(kk) * g.c_in));
  const int ky = tap / g.kw, kx = tap % g.kw;
  double acc = 0;
  for (int n = 0; n < g.n; ++n) {
    if (open != nullptr && open[static_cast<std::int64_t>(n) * g.c_in + c] == 0) continue;  // uniform over the block
    const float* dyp = dy + (static_cast<std::int64_t>(n) * g.c_out + o) * P;
    const float* xp = x + (static_cast<std::int64_t>(n) * g.c_in + c) * g.h * g.w;
    float part = 0.f;
    for (int p = threadIdx.x; p < P; p += blockDim.x) {
      const int iy = (p / g.ow) * g.stride - g.pad + ky, ix = (p % g.ow) * g.stride - g.pad + kx;
      if (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w) part = fmaf(dyp[p], xp[iy * g.w + ix], part);
    }
    acc += part;
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) dw[e] += static_cast<float>(acc);
}

// Per sample: open channels of a 0/1 mask row, in ascending order.
static __global__ void active_lists_kernel(int* count, int* index, int* open, const float* mask, int n, int c) {
  SSLGATE_GRID_LOOP(i, n) {
    int k = 0;
    for (int j = 0; j < c; ++j) {
      const bool on = mask[i * c + j] != 0.f;
      open[i * c + j] = on ? 1 : 0;
      if (on) index[i * c + k++] = j;
    }
    count[i] = k;
  }
}

}  // namespace sslgate::cuda::kern
