#pragma once
// Batch normalization over the channel dimension, PyTorch semantics (BatchNorm1d / BatchNorm2d).
//   x: [N, C] or [N, C, H, W] -> y: same shape
//   y = (x - mean_c) / sqrt(var_c + eps) * weight_c + bias_c
// Training: mean_c and the BIASED var_c are taken over N (and H, W); the running statistics, when given,
// are updated in place with the UNBIASED variance: r = (1 - momentum) r + momentum * stat.
// Eval: mean_c and var_c are the running statistics (which are then required), treated as constants.
// weight and bias may be empty tensors (affine off: weight 1, bias 0); running_mean and running_var are
// both given or both empty. Backward adds into dx, dweight, dbias.
//
// Kernels. x is viewed as [N, C, S] with S = H*W (S = 1 for [N, C]). Every per-channel reduction and
// update is vectorized with xsimd and threaded over channels with fixed partitions:
//   S > 1:  a channel is N contiguous runs of S values; SIMD along each run.
//   S == 1: a channel is a column of the [N, C] matrix; SIMD across channels, row after row.
// Statistics are two-pass (mean, then centered squares), so var never suffers from E[x^2] - E[x]^2
// cancellation. Accumulation: partial sums in T, at most partial_len (64) values per SIMD lane (a block of
// runs when S > 1, a block of rows when S == 1), joined in double, so the float error is bounded by the
// partial length instead of N*S. Summing every float in double was measured (float [128, C, S], one thread,
// S = 1024/64/16): with AVX-512 intrinsics (vcvtps2pd) it is within +-20% of this, faster on some shapes and
// slower on others; through xsimd 8.1, whose float -> double converting load goes through memory, it is
// 2-4x slower. So we keep the portable T partials. Channel coefficients are computed in double and applied
// in T. Partitions are fixed, so results are reproducible for a given thread count.
#include <sslgate/autograd/tape.hpp>
#include <sslgate/core/parallel.hpp>
#include <sslgate/ops/elementwise.hpp>

#include <xsimd/xsimd.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

namespace sslgate::ops {

namespace cpu::bn {

struct dims {
  std::int64_t n, c, s;  // x: [n, c, s]
  std::int64_t count() const { return n * s; }  // values per channel
};

// Partial sums in T run over at most this many values per SIMD lane before joining a double total.
inline constexpr std::int64_t partial_len = 64;

// out[k][c] = sum over channel c's elements of f(a, b, m_c)[k], for k < K. b may alias a; m is a per-channel
// shift (the mean). f works on T and on xsimd::batch<T>, returning std::array<V, K>.
// Naive loop:  for c, n, s: out[k][c] += f(a[n][c][s], b[n][c][s], m[c])[k]
template <int K, class T, class F>
void channel_sums(const T* a, const T* b, const T* m, dims d, std::array<double*, K> out, F f) {
  using B = xsimd::batch<T>;
  constexpr std::int64_t w = B::size;
  if (d.s > 1) {
    // Runs are summed in blocks of nb runs, so each lane adds at most ~partial_len values in T before the
    // block total joins the double sum (one hadd per block, not per run: small maps stay cheap).
    const std::int64_t nb = std::max<std::int64_t>(1, partial_len * w / d.s);
    parallel_for(d.c, std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(d.count(), 1)), [&](std::int64_t c0, std::int64_t c1) {
      for (std::int64_t c = c0; c < c1; ++c) {
        std::array<double, K> total{};
        const T mc = m[c];
        for (std::int64_t n0 = 0; n0 < d.n; n0 += nb) {
          std::array<B, K> acc, acc2;  // two chains hide the add latency
          acc.fill(B(T(0)));
          acc2.fill(B(T(0)));
          std::array<T, K> tail{};
          for (std::int64_t n = n0; n < std::min(d.n, n0 + nb); ++n) {
            const T* pa = a + (n * d.c + c) * d.s;
            const T* pb = b + (n * d.c + c) * d.s;
            std::int64_t i = 0;
            for (; i + 2 * w <= d.s; i += 2 * w) {
              const auto t = f(B::load_unaligned(pa + i), B::load_unaligned(pb + i), B(mc));
              const auto t2 = f(B::load_unaligned(pa + i + w), B::load_unaligned(pb + i + w), B(mc));
              for (int k = 0; k < K; ++k) {
                acc[k] += t[k];
                acc2[k] += t2[k];
              }
            }
            for (; i + w <= d.s; i += w) {
              const auto t = f(B::load_unaligned(pa + i), B::load_unaligned(pb + i), B(mc));
              for (int k = 0; k < K; ++k) acc[k] += t[k];
            }
            for (; i < d.s; ++i) {
              const auto t = f(pa[i], pb[i], mc);
              for (int k = 0; k < K; ++k) tail[k] += t[k];
            }
          }
          for (int k = 0; k < K; ++k) total[k] += static_cast<double>(xsimd::hadd(acc[k] + acc2[k])) + static_cast<double>(tail[k]);
        }
        for (int k = 0; k < K; ++k) out[k][c] = total[k];
      }
    });
    return;
  }
  // S == 1: columns of an [N, C] matrix; each thread owns a range of channels.
  parallel_for(d.c, std::max<std::int64_t>(w, 16384 / std::max<std::int64_t>(d.n, 1)), [&](std::int64_t c0, std::int64_t c1) {
    const std::int64_t len = c1 - c0;
    std::vector<double> total(static_cast<std::size_t>(K * len), 0.0);
    std::vector<T> part(static_cast<std::size_t>(K * len));
    for (std::int64_t r0 = 0; r0 < d.n; r0 += partial_len) {
      std::fill(part.begin(), part.end(), T(0));
      for (std::int64_t r = r0; r < std::min(d.n, r0 + partial_len); ++r) {
        const T* pa = a + r * d.c;
        const T* pb = b + r * d.c;
        std::int64_t j = c0;
        for (; j + w <= c1; j += w) {
          const auto t = f(B::load_unaligned(pa + j), B::load_unaligned(pb + j), B::load_unaligned(m + j));
          for (int k = 0; k < K; ++k) {
            T* q = part.data() + k * len + (j - c0);
            (B::load_unaligned(q) + t[k]).store_unaligned(q);
          }
        }
        for (; j < c1; ++j) {
          const auto t = f(pa[j], pb[j], m[j]);
          for (int k = 0; k < K; ++k) part[k * len + (j - c0)] += t[k];
        }
      }
      for (std::int64_t i = 0; i < K * len; ++i) total[i] += part[i];
    }
    for (int k = 0; k < K; ++k)
      for (std::int64_t j = 0; j < len; ++j) out[k][c0 + j] = total[k * len + j];
  });
}

// y[n][c][s] = f(y[n][c][s], a[n][c][s], b[n][c][s], p0[c], p1[c], p2[c], p3[c]) for per-channel
// coefficients p (p is a [4][C] array). y may alias neither a nor b.
template <class T, class F>
void channel_apply(T* y, const T* a, const T* b, const T* p, dims d, F f) {
  using B = xsimd::batch<T>;
  constexpr std::int64_t w = B::size;
  const T *p0 = p, *p1 = p + d.c, *p2 = p + 2 * d.c, *p3 = p + 3 * d.c;
  if (d.s > 1) {
    parallel_for(d.n * d.c, std::max<std::int64_t>(1, 16384 / d.s), [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) {
        const std::int64_t c = r % d.c, off = r * d.s;
        const T* pa = a + off;
        const T* pb = b + off;
        T* py = y + off;
        std::int64_t i = 0;
        for (; i + w <= d.s; i += w)
          f(B::load_unaligned(py + i), B::load_unaligned(pa + i), B::load_unaligned(pb + i), B(p0[c]), B(p1[c]), B(p2[c]), B(p3[c]))
              .store_unaligned(py + i);
        for (; i < d.s; ++i) py[i] = f(py[i], pa[i], pb[i], p0[c], p1[c], p2[c], p3[c]);
      }
    });
    return;
  }
  parallel_for(d.n, std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(d.c, 1)), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const T* pa = a + r * d.c;
      const T* pb = b + r * d.c;
      T* py = y + r * d.c;
      std::int64_t j = 0;
      for (; j + w <= d.c; j += w)
        f(B::load_unaligned(py + j), B::load_unaligned(pa + j), B::load_unaligned(pb + j), B::load_unaligned(p0 + j),
          B::load_unaligned(p1 + j), B::load_unaligned(p2 + j), B::load_unaligned(p3 + j))
            .store_unaligned(py + j);
      for (; j < d.c; ++j) py[j] = f(py[j], pa[j], pb[j], p0[j], p1[j], p2[j], p3[j]);
    }
  });
}

}  // namespace cpu::bn

// Buffer-level kernels. Per-channel vectors (mean, var, invstd, ...) are double; x, y, dy, dx are T.

// mean[c] and the biased var[c] over N*S values; two passes.
template <real T>
void batchnorm_stats(double* mean, double* var, const T* x, cpu::bn::dims d) {
  const double inv = 1.0 / static_cast<double>(d.count());
  std::vector<T> zero(static_cast<std::size_t>(d.c), T(0)), m(static_cast<std::size_t>(d.c));
  cpu::bn::channel_sums<1>(x, x, zero.data(), d, {mean}, [](auto v, auto, auto) { return std::array{v}; });
  for (std::int64_t c = 0; c < d.c; ++c) {
    mean[c] *= inv;
    m[c] = static_cast<T>(mean[c]);
  }
  cpu::bn::channel_sums<1>(x, x, m.data(), d, {var}, [](auto v, auto, auto mc) {
    const auto e = v - mc;
    return std::array{e * e};
  });
  // The centered squares were taken around mean rounded to T: correct by the residual (sum(x - m) / M)^2.
  for (std::int64_t c = 0; c < d.c; ++c) {
    const double r = mean[c] - static_cast<double>(m[c]);
    var[c] = std::max(0.0, var[c] * inv - r * r);
  }
}

// y = (x - mean) * scale + shift per channel; with relu, y = relu(that + residual) (residual may be null).
template <real T>
void batchnorm_forward(T* y, const T* x, const double* mean, const double* scale, const double* shift, cpu::bn::dims d, bool relu = false,
                       const T* residual = nullptr) {
  std::vector<T> p(static_cast<std::size_t>(4 * d.c), T(0));
  for (std::int64_t c = 0; c < d.c; ++c) {
    p[c] = static_cast<T>(mean[c]);
    p[d.c + c] = static_cast<T>(scale[c]);
    p[2 * d.c + c] = static_cast<T>(shift[c]);
  }
  if (!relu)
    cpu::bn::channel_apply(y, x, x, p.data(), d, [](auto, auto xv, auto, auto m, auto s, auto b, auto) { return (xv - m) * s + b; });
  else if (residual == nullptr)
    cpu::bn::channel_apply(y, x, x, p.data(), d, [](auto, auto xv, auto, auto m, auto s, auto b, auto) { return kernels::relu_fn{}((xv - m) * s + b); });
  else
    cpu::bn::channel_apply(y, x, residual, p.data(), d,
                           [](auto, auto xv, auto rv, auto m, auto s, auto b, auto) { return kernels::relu_fn{}((xv - m) * s + b + rv); });
}

// sdy[c] = sum dy, sdyx[c] = sum dy * (x - mean).
template <real T>
void batchnorm_backward_sums(double* sdy, double* sdyx, const T* dy, const T* x, const double* mean, cpu::bn::dims d) {
  std::vector<T> m(static_cast<std::size_t>(d.c));
  for (std::int64_t c = 0; c < d.c; ++c) m[c] = static_cast<T>(mean[c]);
  cpu::bn::channel_sums<2>(dy, x, m.data(), d, {sdy, sdyx}, [](auto g, auto xv, auto mc) { return std::array{g, g * (xv - mc)}; });
}

// dx += k dy + p (x - mean) + q per channel.
template <real T>
void batchnorm_backward_data(T* dx, const T* dy, const T* x, const double* mean, const double* k, const double* p,
                             const double* q, cpu::bn::dims d, bool accumulate = true) {
  std::vector<T> co(static_cast<std::size_t>(4 * d.c));
  for (std::int64_t c = 0; c < d.c; ++c) {
    co[c] = static_cast<T>(mean[c]);
    co[d.c + c] = static_cast<T>(k[c]);
    co[2 * d.c + c] = static_cast<T>(p[c]);
    co[3 * d.c + c] = static_cast<T>(q[c]);
  }
  if (accumulate)
    cpu::bn::channel_apply(dx, dy, x, co.data(), d,
                           [](auto acc, auto g, auto xv, auto m, auto kc, auto pc, auto qc) { return acc + kc * g + pc * (xv - m) + qc; });
  else
    cpu::bn::channel_apply(dx, dy, x, co.data(), d, [](auto, auto g, auto xv, auto m, auto kc, auto pc, auto qc) { return kc * g + pc * (xv - m) + qc; });
}

namespace detail {
template <real T>
std::string shape_or_empty(const tensor<T>& t) {
  return t.empty() ? std::string("empty") : t.dims().str();
}
}  // namespace detail

namespace detail {
// y = bn(x), or with relu: y = relu(bn(x) + residual) (residual may be empty).
template <real T>
tensor<T> batchnorm(tape<T>& tp, const tensor<T>& x, const tensor<T>& weight, const tensor<T>& bias, tensor<T>& running_mean,
                    tensor<T>& running_var, bool training, double momentum, double eps, bool relu, const tensor<T>& residual) {
  const std::string_view op = relu ? "batchnorm_relu" : "batchnorm";
  const bool dev = on_device(op, x);
  check_same_device(op, x, {&weight, &bias, &running_mean, &running_var, &residual});
  if (!residual.empty()) check_same_shape(op, x, residual);
  SSLGATE_CHECK(x.rank() == 2 || x.rank() == 4, shape_error, op, "input must be [N, C] or [N, C, H, W], got shape {}", x.dims());
  const cpu::bn::dims d{x.dim(0), x.dim(1), x.rank() == 4 ? x.dim(2) * x.dim(3) : 1};
  auto check_vec = [&](const tensor<T>& p, std::string_view name) {
    if (p.empty()) return;
    SSLGATE_CHECK(p.rank() == 1 && p.dim(0) == d.c, shape_error, op, "input {} has {} channels but {} has shape {}", x.dims(), d.c,
                  name, p.dims());
  };
  check_vec(weight, "weight");
  check_vec(bias, "bias");
  check_vec(running_mean, "running_mean");
  check_vec(running_var, "running_var");
  SSLGATE_CHECK(running_mean.empty() == running_var.empty(), value_error, op,
                "running_mean ({}) and running_var ({}) must both be given or both be empty", shape_or_empty(running_mean),
                shape_or_empty(running_var));
  SSLGATE_CHECK(eps >= 0 && std::isfinite(eps), value_error, op, "eps must be finite and >= 0, got {}", eps);
  SSLGATE_CHECK(training || !running_mean.empty(), value_error, op,
                "eval mode needs running statistics, but running_mean and running_var are empty (input {})", x.dims());
  SSLGATE_CHECK(!training || d.count() > 1, value_error, op,
                "training needs more than 1 value per channel, got input {} ({} per channel)", x.dims(), d.count());

  if (dev) {
    if constexpr (cuda_kernels<T>) {
      // The device kernels keep mean and invstd in double on the device; relu and the residual are the plain ops.
      const cuda::bn_dims dd{d.n, d.c, d.s};
      const auto ptr = [](const tensor<T>& t) { return t.empty() ? nullptr : t.data(); };
      device_buffer<double> mean(static_cast<std::size_t>(d.c), x.dev()), invstd(static_cast<std::size_t>(d.c), x.dev());
      tensor<T> y = tensor<T>::empty_like(x);
      cuda::batchnorm_forward(y.data(), mean.data(), invstd.data(), x.data(), ptr(weight), ptr(bias), running_mean.empty() ? nullptr : running_mean.data(),
                              running_var.empty() ? nullptr : running_var.data(), training, momentum, eps, dd);
      tp.record({x, weight, bias}, y, [x, weight, mean, invstd, training, dd, ptr](grad_slots<T>& g, const tensor<T>& dy) {
        cuda::batchnorm_backward(g.needed(0) ? g[0].data() : nullptr, g.needed(1) ? g[1].data() : nullptr, g.needed(2) ? g[2].data() : nullptr,
                                 dy.data(), x.data(), ptr(weight), mean.data(), invstd.data(), training, dd);
      });
      if (!relu) return y;
      return ops::relu(tp, residual.empty() ? y : ops::add(tp, y, residual));
    }
  }

  const std::size_t nc = static_cast<std::size_t>(d.c);
  // Per-channel values kept for backward: mean, invstd and weight (1 when affine is off).
  struct saved {
    std::vector<double> mean, invstd, w;
  };
  auto sv = std::make_shared<saved>();
  sv->mean.resize(nc);
  sv->invstd.resize(nc);
  sv->w.assign(nc, 1.0);
  if (!weight.empty())
    for (std::size_t c = 0; c < nc; ++c) sv->w[c] = weight[c];
  std::vector<double> var(nc), scale(nc), shift(nc, 0.0);

  if (training) {
    batchnorm_stats(sv->mean.data(), var.data(), x.data(), d);
    if (!running_mean.empty()) {
      const double unbias = static_cast<double>(d.count()) / static_cast<double>(d.count() - 1);
      for (std::size_t c = 0; c < nc; ++c) {
        running_mean[c] = static_cast<T>((1 - momentum) * running_mean[c] + momentum * sv->mean[c]);
        running_var[c] = static_cast<T>((1 - momentum) * running_var[c] + momentum * var[c] * unbias);
      }
    }
  } else {
    for (std::size_t c = 0; c < nc; ++c) {
      sv->mean[c] = running_mean[c];
      var[c] = running_var[c];
    }
  }
  for (std::size_t c = 0; c < nc; ++c) {
    sv->invstd[c] = 1.0 / std::sqrt(var[c] + eps);
    scale[c] = sv->w[c] * sv->invstd[c];
    if (!bias.empty()) shift[c] = bias[c];
  }
  tensor<T> y = tensor<T>::empty_like(x);
  batchnorm_forward(y.data(), x.data(), sv->mean.data(), scale.data(), shift.data(), d, relu, residual.empty() ? nullptr : residual.data());

  if (!tp.tracks({&x, &weight, &bias, &residual})) return y;
  // Eval backward reads x only for dweight; training backward always needs it (through the statistics).
  const tensor<T> xs = training || weight.requires_grad() ? x : tensor<T>{};
  const tensor<T> ys = relu ? y : tensor<T>{};
  std::vector<tensor<T>> inputs{x, weight, bias};
  if (!residual.empty()) inputs.push_back(residual);
  // The residual's gradient slot can double as dz unless it is also x's (bn(x) + x).
  const bool has_residual = !residual.empty(), residual_slot = has_residual && residual.id() != x.id();
  tp.record(std::move(inputs), y, [xs, ys, sv, d, training, has_residual, residual_slot](grad_slots<T>& g, const tensor<T>& dy_out) {
    const std::size_t nc = static_cast<std::size_t>(d.c);
    // With relu, dz = dy (y > 0) is the gradient of bn(x) + residual: the residual's, and BN's incoming one.
    tensor<T> dy = dy_out;
    if (!ys.empty()) {
      const auto relu_grad = [](auto gv, auto yv) { return kernels::relu_fn{}.grad(yv, yv, gv); };
      const auto dz_into = [&](tensor<T>& t) { cpu::map<T>(relu_grad, t.data(), t.dims(), arg(dy_out), arg(ys)); };
      if (residual_slot && g.needed(3) && g.slot(3).fresh) {
        dy = g[3];  // the fresh slot, assigned here
        dz_into(dy);
      } else {
        dy = tensor<T>::empty_like(dy_out);
        dz_into(dy);
        if (has_residual && g.needed(3)) {
          tensor<T>& dr = g[3];
          cpu::map<T>([](auto a, auto b) { return a + b; }, dr.data(), dr.dims(), arg(dr), arg(dy));
        }
      }
    }
    std::vector<double> sdy(nc), sdyx(nc, 0.0);
    if (xs.empty()) {
      std::vector<T> zero(nc, T(0));
      cpu::bn::channel_sums<1>(dy.data(), dy.data(), zero.data(), d, {sdy.data()}, [](auto v, auto, auto) { return std::array{v}; });
    } else {
      batchnorm_backward_sums(sdy.data(), sdyx.data(), dy.data(), xs.data(), sv->mean.data(), d);
    }
    if (g.needed(1)) {
      tensor<T>& dw = g[1];
      for (std::size_t c = 0; c < nc; ++c) dw[c] += static_cast<T>(sdyx[c] * sv->invstd[c]);
    }
    if (g.needed(2)) {
      tensor<T>& db = g[2];
      for (std::size_t c = 0; c < nc; ++c) db[c] += static_cast<T>(sdy[c]);
    }
    if (!g.needed(0)) return;
    // Training, with xhat = (x - mean) invstd and M values per channel:
    //   dx = w invstd (dy - sum(dy) / M - xhat sum(dy xhat) / M)
    //      = k dy + p (x - mean) + q,  k = w invstd, p = -k invstd^2 sum(dy (x - mean)) / M, q = -k sum(dy) / M.
    // Eval: dx = k dy.
    std::vector<double> k(nc), p(nc, 0.0), q(nc, 0.0);
    const double inv_m = 1.0 / static_cast<double>(d.count());
    for (std::size_t c = 0; c < nc; ++c) {
      k[c] = sv->w[c] * sv->invstd[c];
      if (training) {
        p[c] = -k[c] * sv->invstd[c] * sv->invstd[c] * sdyx[c] * inv_m;
        q[c] = -k[c] * sdy[c] * inv_m;
      }
    }
    auto [dx, fresh] = g.slot(0);
    // Eval without a saved x: p = 0, so x is never read; pass dy in its place.
    batchnorm_backward_data(dx.data(), dy.data(), xs.empty() ? dy.data() : xs.data(), sv->mean.data(), k.data(), p.data(), q.data(), d, !fresh);
  });
  return y;
}
}  // namespace detail

template <real T>
tensor<T> batchnorm(tape<T>& tp, const tensor<T>& x, const tensor<T>& weight, const tensor<T>& bias, tensor<T>& running_mean,
                    tensor<T>& running_var, bool training, double momentum = 0.1, double eps = 1e-5) {
  return detail::batchnorm(tp, x, weight, bias, running_mean, running_var, training, momentum, eps, false, tensor<T>{});
}

// relu(batchnorm(x) + residual) (residual optional: empty), the BasicBlock's epilogues, in fewer passes over
// memory than the three ops: forward writes y once; backward forms dz = dy (y > 0) once, which is assigned as
// the residual's gradient and fed to batchnorm's backward. Same values as the composition.
template <real T>
tensor<T> batchnorm_relu(tape<T>& tp, const tensor<T>& x, const tensor<T>& weight, const tensor<T>& bias, tensor<T>& running_mean,
                         tensor<T>& running_var, bool training, const tensor<T>& residual = {}, double momentum = 0.1, double eps = 1e-5) {
  return detail::batchnorm(tp, x, weight, bias, running_mean, running_var, training, momentum, eps, true, residual);
}

}  // namespace sslgate::ops
