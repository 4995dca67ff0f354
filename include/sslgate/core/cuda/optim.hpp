#pragma once
// Buffer-level CUDA kernels of the optimizers of optim/ (lars, sgd, adamw), float32, callable from plain C++
// (definitions in src/cuda/optim.cu). Every pointer is on the current device, every launch on
// cuda::current_stream(). Each update evaluates the CPU loop's float expression in the same order with
// IEEE round-to-nearest operations and no contraction into FMAs (the CPU loops are the oracle,
// tests/cuda/cuda_optim_test.cpp). Declarations only: optim/*.hpp call them only in programs built with
// SSLGATE_WITH_CUDA (set by linking sslgate::cuda).
#include <cstdint>

namespace sslgate::cuda {

// sum x[i]^2 in double, returned to the host (synchronizes the stream). Deterministic: a fixed number of
// blocks (a function of n only) reduce strided slices, then one block reduces their partial sums.
double sum_squares(const float* x, std::int64_t n);

// LARS (optim/lars.hpp, lars::adjust): g = (g + wd w) q.
void lars_adjust(float* g, const float* w, std::int64_t n, float wd, float q);
// SGD momentum without weight decay (lars): buf = g on the first step, else momentum buf + g; w -= lr buf.
void momentum_update(float* w, float* buf, const float* g, std::int64_t n, float momentum, float lr, bool first);
// SGD with weight decay (optim/sgd.hpp): d = g + wd w; buf = d on the first step, else momentum buf + d; w -= lr buf.
void sgd_update(float* w, float* buf, const float* g, std::int64_t n, float momentum, float lr, float wd, bool first);
// AdamW (optim/adamw.hpp), with the per-step scalars computed there on the host:
//   w *= decay;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g g;  w -= step_size m / (sqrt(v) / sq + eps)
void adamw_update(float* w, float* m, float* v, const float* g, std::int64_t n, float b1, float b2, float decay, float step_size, float sq,
                  float eps);

}  // namespace sslgate::cuda
