#pragma once
// Buffer-level CUDA kernels of every op the trainer uses, float32, callable from plain C++ (the definitions
// are in src/cuda/*.cu and src/cudnn/*.cpp; the kernels themselves are the .cuh files of ops/cuda/).
// Each function mirrors the CPU kernel of the same name in ops/ (same arguments, same assign/add policy:
// forward assigns, backward ADDS into dx / dw), with every pointer on the current device and every launch on
// cuda::current_stream(). The CPU kernels are the oracle (tests/cuda/cuda_ops_test.cpp).
// Declarations only: the tape ops (ops/device.hpp) see them in every build and call them only in programs
// built with SSLGATE_WITH_CUDA (set by linking sslgate::cuda).
#include <sslgate/core/shape.hpp>
#include <sslgate/core/storage.hpp>

#include <cstdint>
#include <memory>

namespace sslgate::cuda {

// ---- element-wise (ops/elementwise.hpp, ops/kernels/elementwise.hpp) --------------------------------------
enum class unary_op { neg, scale, exp, log, sqrt, pow, abs, relu, sigmoid };
enum class binary_op { add, sub, mul, div };

// y = f(x), n elements; param is the factor of scale and the exponent of pow.
void unary_forward(unary_op op, float* y, const float* x, std::int64_t n, double param = 0);
// dx += f.grad(x, y, dy)
void unary_backward(unary_op op, float* dx, const float* x, const float* y, const float* dy, std::int64_t n, double param = 0);
// y[out] = f(a, b), numpy broadcasting (a and b broadcast to out).
void binary_forward(binary_op op, float* y, const shape& out, const float* a, const shape& as, const float* b, const shape& bs);
// d += sum-to-shape(grad of operand `which` (0: a, 1: b)); d has that operand's shape.
void binary_backward(binary_op op, int which, float* d, const float* a, const shape& as, const float* b, const shape& bs,
                     const float* dy, const shape& out);
// dst += src summed over the dimensions where dst (shape ds) broadcasts to src's shape ss (sum, mean, ...).
void sum_to_add(float* dst, const shape& ds, const float* src, const shape& ss);
// dst = src broadcast to shape out, added: dst += broadcast(src) (the backward of sum).
void broadcast_add(float* dst, const shape& out, const float* src, const shape& ss);

// ---- shape ops (ops/shape_ops.hpp, ops/linalg.hpp transpose) -------------------------------------------------
// dst rows [dst_at, dst_at + count) of a [outer, dst_size, inner] tensor (+)= src rows [src_at, ...) of
// [outer, src_size, inner] (add: accumulate, else assign).
void copy_rows(float* dst, std::int64_t dst_size, std::int64_t dst_at, const float* src, std::int64_t src_size, std::int64_t src_at,
               std::int64_t count, std::int64_t outer, std::int64_t inner, bool add);
// y (+)= x (shape s) with axes a0 and a1 swapped.
void swap_axes(float* y, const float* x, const shape& s, int a0, int a1, bool add);

// ---- GEMM through cuBLAS (ops/cpu/gemm.hpp): C[M, N] = beta C + A' B', row-major -----------------------
void gemm(float* c, const float* a, const float* b, long m, long n, long k, bool trans_a, bool trans_b, float beta);

// ---- batch normalization (ops/batchnorm.hpp), x viewed as [n, c, s] ------------------------------------
struct bn_dims {
  std::int64_t n, c, s;
  std::int64_t count() const { return n * s; }
};
// Training: batch mean and biased var, running stats (when not null) updated with the unbiased var;
// eval: running stats. weight/bias may be null (affine off). saved_mean / saved_invstd: device doubles [c],
// written for backward.
void batchnorm_forward(float* y, double* saved_mean, double* saved_invstd, const float* x, const float* weight, const float* bias,
                       float* running_mean, float* running_var, bool training, double momentum, double eps, bn_dims d);
// dx, dweight, dbias (each may be null) += the gradients; x is read in training and for dweight.
void batchnorm_backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x, const float* weight,
                        const double* saved_mean, const double* saved_invstd, bool training, bn_dims d);

// ---- pools (ops/pool.hpp) --------------------------------------------------------------------------------
struct pool_geom {
  std::int64_t planes, h, w, oh, ow;
  int k, s, p;
};
void avg_pool2d_forward(float* y, const float* x, const pool_geom& g);
void avg_pool2d_backward(float* dx, const float* dy, const pool_geom& g);
void max_pool2d_forward(float* y, std::int32_t* idx, const float* x, const pool_geom& g);
void max_pool2d_backward(float* dx, const float* dy, const std::int32_t* idx, const pool_geom& g);
void global_avg_pool_forward(float* y, const float* x, std::int64_t planes, std::int64_t s);
void global_avg_pool_backward(float* dx, const float* dy, std::int64_t planes, std::int64_t s);

// ---- softmax family and l2-normalize over [n, c] rows (ops/softmax.hpp, ops/normalize.hpp) -------------
void logsumexp_forward(float* lse, const float* x, std::int64_t n, std::int64_t c);
void log_softmax_forward(float* y, const float* x, std::int64_t n, std::int64_t c);
void log_softmax_backward(float* dx, const float* dy, const float* y, std::int64_t n, std::int64_t c);
// dx[r] += coef[r] (exp(x[r] - lse[r]) - onehot(label[r])); label (device ints) may be null.
void softmax_rows_backward(float* dx, const float* x, const float* lse, const float* coef, const int* label, std::int64_t n, std::int64_t c);
void l2_normalize_forward(float* y, float* norm, const float* x, std::int64_t n, std::int64_t d, double eps);
void l2_normalize_backward(float* dx, const float* dy, const float* y, const float* norm, std::int64_t n, std::int64_t d, double eps);

// ---- channel gate (gating/channel_gate.hpp) ----------------------------------------------------------------
// u[i] = uniform value first + i of Philox stream (seed, stream): the same floats as tensor::uniform on the CPU
// (the CPU rng's advance(count) gives `first`).
void philox_uniform(float* u, std::int64_t count, std::uint64_t seed, std::uint64_t stream, std::uint64_t first);
// Training gate: soft = sigmoid((l + logistic(u)) / tau), b = 1[soft >= 0.5]; backward dl += dy soft (1 - soft) / tau.
void gate_sample_forward(float* b, float* soft, const float* logits, const float* u, std::int64_t n, double tau);
void gate_sample_backward(float* dl, const float* dy, const float* soft, std::int64_t n, double tau);
void gate_threshold(float* b, const float* logits, std::int64_t n);

// ---- convolutions (ops/conv2d.hpp, ops/gated_conv.hpp) ---------------------------------------------------
struct conv_geom {  // x: [n, c_in, h, w], w: [c_out, c_in, kh, kw] -> y: [n, c_out, out_h(), out_w()]
  int n, c_in, h, w, c_out, kh, kw, stride = 1, pad = 0;
  int out_h() const { return (h + 2 * pad - kh) / stride + 1; }
  int out_w() const { return (w + 2 * pad - kw) / stride + 1; }
};

// Per-sample open channels of a 0/1 mask [n, c] on the device: count[i], index[i * c + j] (j < count[i],
// ascending) and open[i * c + k] in {0, 1}. Built on the device, no host round trip.
class active_lists {
 public:
  active_lists() = default;
  active_lists(const float* mask, int n, int c);
  int n() const { return n_; }
  int c() const { return c_; }
  const int* count() const { return count_; }
  const int* index() const { return index_; }
  const int* open() const { return open_; }

 private:
  std::shared_ptr<storage> buf_;
  int n_ = 0, c_ = 0;
  const int *count_ = nullptr, *index_ = nullptr, *open_ = nullptr;
};

// Our kernels: an implicit GEMM (ops/cuda/conv.cuh). Forward assigns, backward adds.
void conv2d_forward(float* y, const float* x, const float* w, const conv_geom& g);
void conv2d_backward_data(float* dx, const float* dy, const float* w, const conv_geom& g);
void conv2d_backward_weight(float* dw, const float* dy, const float* x, const conv_geom& g);
// conv2's gathered form: sample i reduces only over its open input channels (x is zero elsewhere).
void conv2d_gated_input_forward(float* y, const float* x, const float* w, const conv_geom& g, const active_lists& a);
// dw[:, A_i] += corr(dy[i], x[i, A_i]) for each sample i.
void conv2d_gated_input_backward_weight(float* dw, const float* dy, const float* x, const conv_geom& g, const active_lists& a);
// conv1's eval form: y[i, o] = max(conv(x[i], w[o]) * scale[o] + shift[o], 0) for o in A_i, 0 for closed o
// (BN folded into scale/shift, ReLU fused). scale/shift: device floats [c_out].
void conv2d_gated_output_forward(float* y, const float* x, const float* w, const float* scale, const float* shift, const conv_geom& g,
                                 const active_lists& a);

// cuDNN dense convolutions (src/cudnn/conv.cpp). allow_tf32 = false keeps full float32 (FMA math only).
namespace cudnn {
int version();
void conv2d_forward(float* y, const float* x, const float* w, const conv_geom& g, bool allow_tf32 = false);
void conv2d_backward_data(float* dx, const float* dy, const float* w, const conv_geom& g, bool allow_tf32 = false);    // adds
void conv2d_backward_weight(float* dw, const float* dy, const float* x, const conv_geom& g, bool allow_tf32 = false);  // adds
}  // namespace cudnn

}  // namespace sslgate::cuda
