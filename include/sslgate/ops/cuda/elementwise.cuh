#pragma once
// Element-wise kernels: the functors of ops/kernels/elementwise.hpp on the device (same formulas, float),
// broadcast binary maps and the broadcast reduction (sum-to-shape) that serves sum/mean and every broadcast
// backward.
//   naive loop: for i < numel(out): y[i] = f(a[offset_a(i)], b[offset_b(i)])
#include <sslgate/ops/cuda/common.cuh>

#include <cmath>

namespace sslgate::cuda::kern {

struct neg_fn {
  float p;
  __device__ float operator()(float x) const { return -x; }
  __device__ float grad(float, float, float dy) const { return -dy; }
};
struct scale_fn {
  float p;
  __device__ float operator()(float x) const { return x * p; }
  __device__ float grad(float, float, float dy) const { return dy * p; }
};
struct exp_fn {
  float p;
  __device__ float operator()(float x) const { return expf(x); }
  __device__ float grad(float, float y, float dy) const { return dy * y; }
};
struct log_fn {
  float p;
  __device__ float operator()(float x) const { return logf(x); }
  __device__ float grad(float x, float, float dy) const { return dy / x; }
};
struct sqrt_fn {
  float p;
  __device__ float operator()(float x) const { return sqrtf(x); }
  __device__ float grad(float, float y, float dy) const { return dy / (y + y); }
};
struct abs_fn {
  float p;
  __device__ float operator()(float x) const { return fabsf(x); }
  __device__ float grad(float x, float, float dy) const { return x > 0.f ? dy : (x < 0.f ? -dy : 0.f); }
};
struct relu_fn {
  float p;
  __device__ float operator()(float x) const { return fmaxf(x, 0.f); }
  __device__ float grad(float, float y, float dy) const { return y > 0.f ? dy : 0.f; }
};
struct sigmoid_fn {
  float p;
  __device__ float operator()(float x) const { return 1.f / (1.f + expf(-x)); }
  __device__ float grad(float, float y, float dy) const { return dy * y * (1.f - y); }
};
struct pow_fn {
  float p;
  __device__ float operator()(float x) const { return powf(x, p); }
  __device__ float grad(float x, float, float dy) const { return dy * p * powf(x, p - 1.f); }
};

struct add_fn {
  __device__ float operator()(float a, float b) const { return a + b; }
  __device__ float grad_a(float, float, float dy) const { return dy; }
  __device__ float grad_b(float, float, float dy) const { return dy; }
};
struct sub_fn {
  __device__ float operator()(float a, float b) const { return a - b; }
  __device__ float grad_a(float, float, float dy) const { return dy; }
  __device__ float grad_b(float, float, float dy) const { return -dy; }
};
struct mul_fn {
  __device__ float operator()(float a, float b) const { return a * b; }
  __device__ float grad_a(float, float b, float dy) const { return dy * b; }
  __device__ float grad_b(float a, float, float dy) const { return dy * a; }
};
struct div_fn {
  __device__ float operator()(float a, float b) const { return a / b; }
  __device__ float grad_a(float, float b, float dy) const { return dy / b; }
  __device__ float grad_b(float a, float b, float dy) const { return -dy * a / (b * b); }
};

template <class F>
__global__ void unary_forward_kernel(F f, float* y, const float* x, std::int64_t n) {
  SSLGATE_GRID_LOOP(i, n) y[i] = f(x[i]);
}
template <class F>
__global__ void unary_backward_kernel(F f, float* dx, const float* x, const float* y, const float* dy, std::int64_t n) {
  SSLGATE_GRID_LOOP(i, n) dx[i] += f.grad(x[i], y[i], dy[i]);
}

// y[i] = f(a, b) over the broadcast plan p (operand 0: y, 1: a, 2: b).
template <class F>
__global__ void binary_forward_kernel(F f, float* y, const float* a, const float* b, strided5 p, std::int64_t n) {
  SSLGATE_GRID_LOOP(i, n) y[i] = f(a[offset_of(p, 1, i)], b[offset_of(p, 2, i)]);
}
// t[i] = grad of operand `Which` (same shape as the output, or added into it when Add).
template <int Which, bool Add, class F>
__global__ void binary_grad_kernel(F f, float* t, const float* a, const float* b, const float* dy, strided5 p, std::int64_t n) {
  SSLGATE_GRID_LOOP(i, n) {
    const float av = a[offset_of(p, 1, i)], bv = b[offset_of(p, 2, i)];
    const float g = Which == 0 ? f.grad_a(av, bv, dy[i]) : f.grad_b(av, bv, dy[i]);
    t[i] = Add ? t[i] + g : g;
  }
}

// Reduction plan: dst element j gathers src over the reduced dimensions.
struct reduce_plan {
  int kept_rank, red_rank;
  std::int64_t kept_extent[5], kept_stride[5];  // dst index -> src offset
  std::int64_t red_extent[5], red_stride[5];    // reduced index -> src offset
  std::int64_t red_count;
};
__device__ inline std::int64_t reduce_offset(const std::int64_t* extent, const std::int64_t* stride, int rank, std::int64_t i) {
  std::int64_t off = 0;
  for (int d = rank - 1; d >= 0; --d) {
    off += (i % extent[d]) * stride[d];
    i /= extent[d];
  }
  return off;
}
// Few values per output: one thread per output, summed in double in index order.
static __global__ void sum_to_thread_kernel(float* dst, const float* src, reduce_plan p, std::int64_t n_dst) {
  SSLGATE_GRID_LOOP(j, n_dst) {
    const float* s = src + reduce_offset(p.kept_extent, p.kept_stride, p.kept_rank, j);
    double acc = 0;
    for (std::int64_t r = 0; r < p.red_count; ++r) acc += s[reduce_offset(p.red_extent, p.red_stride, p.red_rank, r)];
    dst[j] += static_cast<float>(acc);
  }
}
// Many values per output: one block per output, double partials joined by a block reduction.
static __global__ void sum_to_block_kernel(float* dst, const float* src, reduce_plan p, std::int64_t n_dst) {
  for (std::int64_t j = blockIdx.x; j < n_dst; j += gridDim.x) {
    const float* s = src + reduce_offset(p.kept_extent, p.kept_stride, p.kept_rank, j);
    double acc = 0;
    for (std::int64_t r = threadIdx.x; r < p.red_count; r += blockDim.x) acc += s[reduce_offset(p.red_extent, p.red_stride, p.red_rank, r)];
    acc = block_sum(acc);
    if (threadIdx.x == 0) dst[j] += static_cast<float>(acc);
  }
}
// dst[i] += src[broadcast offset of i] (operand 1 of p).
static __global__ void broadcast_add_kernel(float* dst, const float* src, strided5 p, std::int64_t n) {
  SSLGATE_GRID_LOOP(i, n) dst[i] += src[offset_of(p, 1, i)];
}

}  // namespace sslgate::cuda::kern
