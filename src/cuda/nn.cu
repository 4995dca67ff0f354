// Host side of the element-wise, reduction, batch-norm, pool, softmax, l2-normalize and gate kernels.
#include <sslgate/core/cuda/check.hpp>
#include <sslgate/core/cuda/ops.hpp>
#include <sslgate/core/cuda/runtime.hpp>
#include <sslgate/core/cuda/stream.hpp>
#include <sslgate/ops/cuda/elementwise.cuh>
#include <sslgate/ops/cuda/nn.cuh>

#include <algorithm>

namespace sslgate::cuda {

namespace {

using kern::blocks_for;
using kern::threads;

// A device scratch buffer from the caching allocator.
struct scratch {
  explicit scratch(std::size_t bytes) : buf(bytes, device{device_kind::cuda, current_device()}) {}
  static int current_device() {
    int d = 0;
    SSLGATE_CUDA_CHECK("cuda", cudaGetDevice(&d));
    return d;
  }
  template <class T>
  T* as() {
    return static_cast<T*>(buf.data());
  }
  storage buf;
};

kern::strided5 plan(const shape& out, std::initializer_list<shape> operands) {
  kern::strided5 p{};
  p.rank = std::max(out.rank(), 1);
  for (int i = 0; i < 5; ++i) p.extent[i] = 1;
  for (int i = 0; i < out.rank(); ++i) p.extent[i] = out[i];
  int k = 0;
  for (const shape& s : operands) {
    const int off = out.rank() - s.rank();
    std::int64_t acc = 1;
    for (int i = s.rank() - 1; i >= 0; --i) {
      p.stride[k][i + off] = s[i] == 1 && out[i + off] != 1 ? 0 : acc;
      acc *= s[i];
    }
    ++k;
  }
  return p;
}

template <class Fn>
void with_unary(unary_op op, double param, Fn&& fn) {
  const float p = static_cast<float>(param);
  switch (op) {
    case unary_op::neg: return fn(kern::neg_fn{p});
    case unary_op::scale: return fn(kern::scale_fn{p});
    case unary_op::exp: return fn(kern::exp_fn{p});
    case unary_op::log: return fn(kern::log_fn{p});
    case unary_op::sqrt: return fn(kern::sqrt_fn{p});
    case unary_op::pow: return fn(kern::pow_fn{p});
    case unary_op::abs: return fn(kern::abs_fn{p});
    case unary_op::relu: return fn(kern::relu_fn{p});
    case unary_op::sigmoid: return fn(kern::sigmoid_fn{p});
  }
}
template <class Fn>
void with_binary(binary_op op, Fn&& fn) {
  switch (op) {
    case binary_op::add: return fn(kern::add_fn{});
    case binary_op::sub: return fn(kern::sub_fn{});
    case binary_op::mul: return fn(kern::mul_fn{});
    case binary_op::div: return fn(kern::div_fn{});
  }
}

void check_broadcast(const char* op, const shape& s, const shape& out) {
  SSLGATE_CHECK(s.rank() <= out.rank(), shape_error, op, "shape {} does not broadcast to {}", s, out);
  const int off = out.rank() - s.rank();
  for (int i = 0; i < s.rank(); ++i)
    SSLGATE_CHECK(s[i] == out[i + off] || s[i] == 1, shape_error, op, "shape {} does not broadcast to {}", s, out);
}

}  // namespace

void unary_forward(unary_op op, float* y, const float* x, std::int64_t n, double param) {
  if (n == 0) return;
  with_unary(op, param, [&](auto f) { kern::unary_forward_kernel<<<blocks_for(n), threads, 0, stream()>>>(f, y, x, n); });
  SSLGATE_CUDA_LAUNCHED("unary_forward");
}
void unary_backward(unary_op op, float* dx, const float* x, const float* y, const float* dy, std::int64_t n, double param) {
  if (n == 0) return;
  with_unary(op, param, [&](auto f) { kern::unary_backward_kernel<<<blocks_for(n), threads, 0, stream()>>>(f, dx, x, y, dy, n); });
  SSLGATE_CUDA_LAUNCHED("unary_backward");
}

void binary_forward(binary_op op, float* y, const shape& out, const float* a, const shape& as, const float* b, const shape& bs) {
  check_broadcast("binary_forward", as, out);
  check_broadcast("binary_forward", bs, out);
  const std::int64_t n = out.numel();
  if (n == 0) return;
  const auto p = plan(out, {out, as, bs});
  with_binary(op, [&](auto f) { kern::binary_forward_kernel<<<blocks_for(n), threads, 0, stream()>>>(f, y, a, b, p, n); });
  SSLGATE_CUDA_LAUNCHED("binary_forward");
}

void binary_backward(binary_op op, int which, float* d, const float* a, const shape& as, const float* b, const shape& bs, const float* dy,
                     const shape& out) {
  SSLGATE_CHECK(which == 0 || which == 1, value_error, "binary_backward", "operand {} is not 0 or 1", which);
  const std::int64_t n = out.numel();
  if (n == 0) return;
  const auto p = plan(out, {out, as, bs});
  const shape& ds = which == 0 ? as : bs;
  auto launch = [&]<bool Add>(float* t) {
    with_binary(op, [&](auto f) {
      if (which == 0) kern::binary_grad_kernel<0, Add><<<blocks_for(n), threads, 0, stream()>>>(f, t, a, b, dy, p, n);
      else kern::binary_grad_kernel<1, Add><<<blocks_for(n), threads, 0, stream()>>>(f, t, a, b, dy, p, n);
    });
    SSLGATE_CUDA_LAUNCHED("binary_backward");
  };
  if (ds.numel() == n) {  // same number of elements: no reduction, add in place
    launch.template operator()<true>(d);
    return;
  }
  scratch full(static_cast<std::size_t>(n) * sizeof(float));
  launch.template operator()<false>(full.as<float>());
  sum_to_add(d, ds, full.as<float>(), out);
}

void sum_to_add(float* dst, const shape& ds, const float* src, const shape& ss) {
  check_broadcast("sum_to_add", ds, ss);
  const std::int64_t n_src = ss.numel(), n_dst = ds.numel();
  if (n_src == 0 || n_dst == 0) return;
  kern::reduce_plan p{};
  const int off = ss.rank() - ds.rank();
  for (int i = 0; i < ss.rank(); ++i) {
    const std::int64_t e = i >= off ? ds[i - off] : 1;
    if (e == ss[i]) {
      p.kept_extent[p.kept_rank] = ss[i];
      p.kept_stride[p.kept_rank++] = ss.stride(i);
    } else {
      p.red_extent[p.red_rank] = ss[i];
      p.red_stride[p.red_rank++] = ss.stride(i);
    }
  }
  p.red_count = n_src / n_dst;
  if (p.red_count < 64) kern::sum_to_thread_kernel<<<blocks_for(n_dst), threads, 0, stream()>>>(dst, src, p, n_dst);
  else kern::sum_to_block_kernel<<<static_cast<unsigned>(std::min<std::int64_t>(n_dst, 65535 * 8)), threads, 0, stream()>>>(dst, src, p, n_dst);
  SSLGATE_CUDA_LAUNCHED("sum_to_add");
}

void broadcast_add(float* dst, const shape& out, const float* src, const shape& ss) {
  check_broadcast("broadcast_add", ss, out);
  const std::int64_t n = out.numel();
  if (n == 0) return;
  const auto p = plan(out, {out, ss});
  kern::broadcast_add_kernel<<<blocks_for(n), threads, 0, stream()>>>(dst, src, p, n);
  SSLGATE_CUDA_LAUNCHED("broadcast_add");
}

// ---- batch norm ---------------------------------------------------------------------------------------------
void batchnorm_forward(float* y, double* saved_mean, double* saved_invstd, const float* x, const float* weight, const float* bias,
                       float* running_mean, float* running_var, bool training, double momentum, double eps, bn_dims d) {
  SSLGATE_CHECK(training || running_mean != nullptr, value_error, "batchnorm", "eval mode needs running statistics");
  SSLGATE_CHECK(!training || d.count() > 1, value_error, "batchnorm", "training needs more than 1 value per channel, got {}", d.count());
  const auto c = static_cast<std::size_t>(d.c);
  scratch var(c * sizeof(double)), coef(3 * c * sizeof(float));
  if (training) kern::bn_stats_kernel<<<static_cast<unsigned>(d.c), threads, 0, stream()>>>(saved_mean, var.as<double>(), x, d.n, d.c, d.s);
  kern::bn_finish_kernel<<<blocks_for(d.c), threads, 0, stream()>>>(saved_mean, saved_invstd, coef.as<float>(), var.as<double>(), weight, bias,
                                                                    running_mean, running_var, training, momentum, eps, d.c, d.count());
  kern::bn_apply_kernel<<<blocks_for(d.n * d.c * d.s), threads, 0, stream()>>>(y, x, coef.as<float>(), d.c, d.s, d.n * d.c * d.s);
  SSLGATE_CUDA_LAUNCHED("batchnorm");
}

void batchnorm_backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x, const float* weight,
                        const double* saved_mean, const double* saved_invstd, bool training, bn_dims d) {
  SSLGATE_CHECK(!(training || dweight != nullptr) || x != nullptr, value_error, "batchnorm backward", "x is needed in training and for dweight");
  const auto c = static_cast<std::size_t>(d.c);
  scratch sums(2 * c * sizeof(double)), coef(4 * c * sizeof(float));
  double* sdy = sums.as<double>();
  kern::bn_backward_sums_kernel<<<static_cast<unsigned>(d.c), threads, 0, stream()>>>(sdy, sdy + c, dy, x, saved_mean, d.n, d.c, d.s);
  kern::bn_backward_coef_kernel<<<blocks_for(d.c), threads, 0, stream()>>>(coef.as<float>(), dweight, dbias, sdy, sdy + c, weight, saved_mean,
                                                                           saved_invstd, training, d.c, d.count());
  if (dx != nullptr)
    kern::bn_backward_data_kernel<<<blocks_for(d.n * d.c * d.s), threads, 0, stream()>>>(dx, dy, training ? x : nullptr, coef.as<float>(), d.c,
                                                                                         d.s, d.n * d.c * d.s);
  SSLGATE_CUDA_LAUNCHED("batchnorm backward");
}

// ---- pools --------------------------------------------------------------------------------------------------
namespace {
kern::pool_g pg(const pool_geom& g) { return {g.planes, g.h, g.w, g.oh, g.ow, g.k, g.s, g.p}; }
}  // namespace
void avg_pool2d_forward(float* y, const float* x, const pool_geom& g) {
  kern::avg_pool_forward_kernel<<<blocks_for(g.planes * g.oh * g.ow), threads, 0, stream()>>>(y, x, pg(g));
  SSLGATE_CUDA_LAUNCHED("avg_pool2d");
}
void avg_pool2d_backward(float* dx, const float* dy, const pool_geom& g) {
  kern::avg_pool_backward_kernel<<<blocks_for(g.planes * g.h * g.w), threads, 0, stream()>>>(dx, dy, pg(g));
  SSLGATE_CUDA_LAUNCHED("avg_pool2d backward");
}
void max_pool2d_forward(float* y, std::int32_t* idx, const float* x, const pool_geom& g) {
  kern::max_pool_forward_kernel<<<blocks_for(g.planes * g.oh * g.ow), threads, 0, stream()>>>(y, idx, x, pg(g));
  SSLGATE_CUDA_LAUNCHED("max_pool2d");
}
void max_pool2d_backward(float* dx, const float* dy, const std::int32_t* idx, const pool_geom& g) {
  kern::max_pool_backward_kernel<<<blocks_for(g.planes * g.h * g.w), threads, 0, stream()>>>(dx, dy, idx, pg(g));
  SSLGATE_CUDA_LAUNCHED("max_pool2d backward");
}
void global_avg_pool_forward(float* y, const float* x, std::int64_t planes, std::int64_t s) {
  kern::global_avg_forward_kernel<<<blocks_for(planes * 32), threads, 0, stream()>>>(y, x, planes, s);
  SSLGATE_CUDA_LAUNCHED("global_avg_pool");
}
void global_avg_pool_backward(float* dx, const float* dy, std::int64_t planes, std::int64_t s) {
  kern::global_avg_backward_kernel<<<blocks_for(planes * s), threads, 0, stream()>>>(dx, dy, planes, s);
  SSLGATE_CUDA_LAUNCHED("global_avg_pool backward");
}

// ---- softmax family, l2-normalize -----------------------------------------------------------------------------
void logsumexp_forward(float* lse, const float* x, std::int64_t n, std::int64_t c) {
  if (n == 0) return;
  kern::logsumexp_kernel<<<static_cast<unsigned>(n), threads, 0, stream()>>>(lse, x, c);
  SSLGATE_CUDA_LAUNCHED("logsumexp");
}
void log_softmax_forward(float* y, const float* x, std::int64_t n, std::int64_t c) {
  if (n == 0) return;
  kern::log_softmax_forward_kernel<<<static_cast<unsigned>(n), threads, 0, stream()>>>(y, x, c);
  SSLGATE_CUDA_LAUNCHED("log_softmax");
}
void log_softmax_backward(float* dx, const float* dy, const float* y, std::int64_t n, std::int64_t c) {
  if (n == 0) return;
  kern::log_softmax_backward_kernel<<<static_cast<unsigned>(n), threads, 0, stream()>>>(dx, dy, y, c);
  SSLGATE_CUDA_LAUNCHED("log_softmax backward");
}
void softmax_rows_backward(float* dx, const float* x, const float* lse, const float* coef, const int* label, std::int64_t n, std::int64_t c) {
  if (n == 0) return;
  kern::softmax_rows_backward_kernel<<<static_cast<unsigned>(n), threads, 0, stream()>>>(dx, x, lse, coef, label, c);
  SSLGATE_CUDA_LAUNCHED("softmax backward");
}
void l2_normalize_forward(float* y, float* norm, const float* x, std::int64_t n, std::int64_t d, double eps) {
  if (n == 0) return;
  kern::l2n_forward_kernel<<<static_cast<unsigned>(n), threads, 0, stream()>>>(y, norm, x, d, static_cast<float>(eps));
  SSLGATE_CUDA_LAUNCHED("l2_normalize");
}
void l2_normalize_backward(float* dx, const float* dy, const float* y, const float* norm, std::int64_t n, std::int64_t d, double eps) {
  if (n == 0) return;
  kern::l2n_backward_kernel<<<static_cast<unsigned>(n), threads, 0, stream()>>>(dx, dy, y, norm, d, static_cast<float>(eps));
  SSLGATE_CUDA_LAUNCHED("l2_normalize backward");
}

// ---- gate -----------------------------------------------------------------------------------------------------
void philox_uniform(float* u, std::int64_t count, std::uint64_t seed, std::uint64_t stream_id, std::uint64_t first) {
  if (count == 0) return;
  kern::philox_uniform_kernel<<<blocks_for(count), threads, 0, stream()>>>(u, count, seed, stream_id, first);
  SSLGATE_CUDA_LAUNCHED("philox_uniform");
}
void gate_sample_forward(float* b, float* soft, const float* logits, const float* u, std::int64_t n, double tau) {
  SSLGATE_CHECK(tau > 0, value_error, "gate_sample", "temperature must be positive, got {}", tau);
  if (n == 0) return;
  kern::gate_sample_forward_kernel<<<blocks_for(n), threads, 0, stream()>>>(b, soft, logits, u, n, tau);
  SSLGATE_CUDA_LAUNCHED("gate_sample");
}
void gate_sample_backward(float* dl, const float* dy, const float* soft, std::int64_t n, double tau) {
  if (n == 0) return;
  kern::gate_sample_backward_kernel<<<blocks_for(n), threads, 0, stream()>>>(dl, dy, soft, n, static_cast<float>(tau));
  SSLGATE_CUDA_LAUNCHED("gate_sample backward");
}
void gate_threshold(float* b, const float* logits, std::int64_t n) {
  if (n == 0) return;
  kern::gate_threshold_kernel<<<blocks_for(n), threads, 0, stream()>>>(b, logits, n);
  SSLGATE_CUDA_LAUNCHED("gate_threshold");
}

// ---- shape ops -----------------------------------------------------------------------------------------------
void copy_rows(float* dst, std::int64_t dst_size, std::int64_t dst_at, const float* src, std::int64_t src_size, std::int64_t src_at,
               std::int64_t count, std::int64_t outer, std::int64_t inner, bool add) {
  const std::int64_t n = outer * count * inner;
  if (n == 0) return;
  if (add) kern::copy_rows_kernel<true><<<blocks_for(n), threads, 0, stream()>>>(dst, dst_size, dst_at, src, src_size, src_at, count, inner, n);
  else kern::copy_rows_kernel<false><<<blocks_for(n), threads, 0, stream()>>>(dst, dst_size, dst_at, src, src_size, src_at, count, inner, n);
  SSLGATE_CUDA_LAUNCHED("copy_rows");
}
void swap_axes(float* y, const float* x, const shape& s, int a0, int a1, bool add) {
  const std::int64_t n = s.numel();
  if (n == 0) return;
  kern::swap_plan p{};
  p.rank = s.rank();
  for (int i = 0; i < s.rank(); ++i) {
    p.out_extent[i] = s[i];
    p.in_stride[i] = s.stride(i);
  }
  std::swap(p.out_extent[a0], p.out_extent[a1]);
  std::swap(p.in_stride[a0], p.in_stride[a1]);
  if (add) kern::swap_axes_kernel<true><<<blocks_for(n), threads, 0, stream()>>>(y, x, p, n);
  else kern::swap_axes_kernel<false><<<blocks_for(n), threads, 0, stream()>>>(y, x, p, n);
  SSLGATE_CUDA_LAUNCHED("swap_axes");
}

}  // namespace sslgate::cuda
