// The optimizer kernels (core/cuda/optim.hpp). The updates spell each CPU expression with __f*_rn intrinsics:
// nvcc would otherwise contract a * b + c into an FMA, which rounds once where the CPU loop's source rounds twice.
#include <sslgate/core/cuda/check.hpp>
#include <sslgate/core/cuda/optim.hpp>
#include <sslgate/core/cuda/runtime.hpp>
#include <sslgate/core/cuda/stream.hpp>
#include <sslgate/ops/cuda/common.cuh>

#include <algorithm>

namespace sslgate::cuda {

namespace {

using kern::blocks_for;
using kern::threads;

// At most this many partial sums: enough blocks to fill the device, few enough for one block to finish.
constexpr std::int64_t max_partials = 1024;

__global__ void sum_squares_partial_kernel(double* part, const float* x, std::int64_t n) {
  double acc = 0;
  SSLGATE_GRID_LOOP(i, n) acc += static_cast<double>(x[i]) * x[i];  // exact product: FMA or not, the same sum
  acc = kern::block_sum(acc);
  if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

__global__ void sum_squares_final_kernel(double* out, const double* part, int parts) {
  double acc = 0;
  for (int i = threadIdx.x; i < parts; i += blockDim.x) acc += part[i];
  acc = kern::block_sum(acc);
  if (threadIdx.x == 0) *out = acc;
}

__global__ void lars_adjust_kernel(float* g, const float* w, std::int64_t n, float wd, float q) {
  SSLGATE_GRID_LOOP(i, n) g[i] = __fmul_rn(__fadd_rn(g[i], __fmul_rn(wd, w[i])), q);
}

__global__ void momentum_kernel(float* w, float* buf, const float* g, std::int64_t n, float m, float lr, bool first) {
  SSLGATE_GRID_LOOP(i, n) {
    const float b = first ? g[i] : __fadd_rn(__fmul_rn(m, buf[i]), g[i]);
    buf[i] = b;
    w[i] = __fsub_rn(w[i], __fmul_rn(lr, b));
  }
}

__global__ void sgd_kernel(float* w, float* buf, const float* g, std::int64_t n, float m, float lr, float wd, bool first) {
  SSLGATE_GRID_LOOP(i, n) {
    const float d = __fadd_rn(g[i], __fmul_rn(wd, w[i]));
    const float b = first ? d : __fadd_rn(__fmul_rn(m, buf[i]), d);
    buf[i] = b;
    w[i] = __fsub_rn(w[i], __fmul_rn(lr, b));
  }
}

__global__ void adamw_kernel(float* w, float* m, float* v, const float* g, std::int64_t n, float b1, float b2, float decay, float step_size,
                             float sq, float eps) {
  const float c1 = __fsub_rn(1.f, b1), c2 = __fsub_rn(1.f, b2);
  SSLGATE_GRID_LOOP(i, n) {
    const float d = g[i];
    const float p = __fmul_rn(w[i], decay);
    const float mi = __fadd_rn(__fmul_rn(b1, m[i]), __fmul_rn(c1, d));
    const float vi = __fadd_rn(__fmul_rn(b2, v[i]), __fmul_rn(__fmul_rn(c2, d), d));
    m[i] = mi;
    v[i] = vi;
    w[i] = __fsub_rn(p, __fdiv_rn(__fmul_rn(step_size, mi), __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), sq), eps)));
  }
}

}  // namespace

double sum_squares(const float* x, std::int64_t n) {
  if (n <= 0) return 0;
  const int parts = static_cast<int>(std::min<std::int64_t>((n + threads - 1) / threads, max_partials));
  int dev = 0;
  SSLGATE_CUDA_CHECK("sum_squares", cudaGetDevice(&dev));
  storage scratch(static_cast<std::size_t>(parts + 1) * sizeof(double), device{device_kind::cuda, dev});
  double* part = static_cast<double*>(scratch.data());
  sum_squares_partial_kernel<<<static_cast<unsigned>(parts), threads, 0, stream()>>>(part, x, n);
  SSLGATE_CUDA_LAUNCHED("sum_squares");
  sum_squares_final_kernel<<<1, threads, 0, stream()>>>(part + parts, part, parts);
  SSLGATE_CUDA_LAUNCHED("sum_squares");
  double out = 0;
  SSLGATE_CUDA_CHECK("sum_squares", cudaMemcpyAsync(&out, part + parts, sizeof(double), cudaMemcpyDeviceToHost, stream()));
  SSLGATE_CUDA_CHECK("sum_squares", cudaStreamSynchronize(stream()));  // before scratch returns to the cache and out is read
  return out;
}

void lars_adjust(float* g, const float* w, std::int64_t n, float wd, float q) {
  if (n <= 0) return;
  lars_adjust_kernel<<<blocks_for(n), threads, 0, stream()>>>(g, w, n, wd, q);
  SSLGATE_CUDA_LAUNCHED("lars_adjust");
}

void momentum_update(float* w, float* buf, const float* g, std::int64_t n, float momentum, float lr, bool first) {
  if (n <= 0) return;
  momentum_kernel<<<blocks_for(n), threads, 0, stream()>>>(w, buf, g, n, momentum, lr, first);
  SSLGATE_CUDA_LAUNCHED("momentum_update");
}

void sgd_update(float* w, float* buf, const float* g, std::int64_t n, float momentum, float lr, float wd, bool first) {
  if (n <= 0) return;
  sgd_kernel<<<blocks_for(n), threads, 0, stream()>>>(w, buf, g, n, momentum, lr, wd, first);
  SSLGATE_CUDA_LAUNCHED("sgd_update");
}

void adamw_update(float* w, float* m, float* v, const float* g, std::int64_t n, float b1, float b2, float decay, float step_size, float sq,
                  float eps) {
  if (n <= 0) return;
  adamw_kernel<<<blocks_for(n), threads, 0, stream()>>>(w, m, v, g, n, b1, b2, decay, step_size, sq, eps);
  SSLGATE_CUDA_LAUNCHED("adamw_update");
}

}  // namespace sslgate::cuda
