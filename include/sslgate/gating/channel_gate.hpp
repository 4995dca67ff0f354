#pragma once
// The channel gate of a BasicBlock (METHOD.md §2), computed from the block input x: [N, C_in, H, W]:
//   l = fc2(relu(bn(fc1(GAP(x)))))                      fc1: 1x1 C_in -> C_in/4, fc2: 1x1 -> C_out, no bias
//   training: g = log(u + 1e-8) - log(1 - u + 1e-8), u ~ U(0,1) per sample and channel (logistic noise)
//             s = sigmoid((l + g) / tau), forward b = 1[s >= 0.5], backward db/dl = s (1 - s) / tau
//   eval:     b = 1[l >= 0], no noise drawn, gate BN on running statistics
// The 1x1 convs act on 1x1 maps, so they run as linear layers on [N, C] with the conv weights viewed 2-D.
#include <sslgate/layers/batchnorm.hpp>
#include <sslgate/layers/module.hpp>
#include <sslgate/ops/linalg.hpp>
#include <sslgate/ops/pool.hpp>
#include <sslgate/ops/shape_ops.hpp>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

namespace sslgate {

inline constexpr double default_gate_tau = 2.0 / 3.0;

// What a gate hands to its block and to the budget losses.
template <real T>
struct gate_result {
  tensor<T> mask;           // [N, C_out] in {0, 1}; in training it carries the straight-through gradient
  tensor<T> logits;         // [N, C_out]
  std::vector<int> active;  // open channels per sample, ||b(n)||_1
};

// ||b(n)||_1 per sample of a 0/1 mask [N, C] (read on the host: one small copy for a device mask).
template <real T>
std::vector<int> open_counts(const tensor<T>& mask) {
  const std::int64_t n = mask.dim(0), c = mask.dim(1);
  std::vector<T> keep;
  const T* m = ops::host_view(mask, keep);
  std::vector<int> counts(static_cast<std::size_t>(n), 0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < c; ++k) counts[static_cast<std::size_t>(i)] += m[i * c + k] != T(0);
  return counts;
}

namespace ops {

// Uniform [0, 1) values drawn from r on device d: the same numbers on every device (Philox by position).
template <real T>
tensor<T> uniform_on(device d, const shape& s, rng& r) {
  if (d.kind == device_kind::cpu) return tensor<T>::uniform(s, r);
  tensor<T> u(s, d);
  on_device("uniform", u);
  if constexpr (cuda_kernels<T>) cuda::philox_uniform(u.data(), s.numel(), r.seed(), r.stream(), r.advance(static_cast<std::uint64_t>(s.numel())));
  return u;
}

// Logistic noise from uniform u, as the reference computes it (the 1e-8 keeps the logs finite).
template <real T>
T logistic_noise(T u) {
  return static_cast<T>(std::log(static_cast<double>(u) + 1e-8) - std::log(1.0 - static_cast<double>(u) + 1e-8));
}

// Training-mode hard gate with the straight-through gradient. logits, u: [N, C] -> b: [N, C].
template <real T>
tensor<T> gate_sample(tape<T>& tp, const tensor<T>& logits, const tensor<T>& u, double tau) {
  check_same_shape("gate_sample", logits, u);
  check_same_device("gate_sample", logits, {&u});
  SSLGATE_CHECK(tau > 0, value_error, "gate_sample", "temperature must be positive, got {}", tau);
  tensor<T> b = tensor<T>::empty_like(logits), soft = tensor<T>::empty_like(logits);
  if (on_device("gate_sample", logits)) {
    if constexpr (cuda_kernels<T>) {
      cuda::gate_sample_forward(b.data(), soft.data(), logits.data(), u.data(), logits.numel(), tau);
      tp.record({logits}, b, [soft, tau](grad_slots<T>& g, const tensor<T>& dy) {
        cuda::gate_sample_backward(g[0].data(), dy.data(), soft.data(), soft.numel(), tau);
      });
    }
    return b;
  }
  for (std::int64_t i = 0; i < logits.numel(); ++i) {
    const double z = (static_cast<double>(logits[i]) + static_cast<double>(logistic_noise(u[i]))) / tau;
    soft[i] = static_cast<T>(1.0 / (1.0 + std::exp(-z)));
    b[i] = soft[i] >= T(0.5) ? T(1) : T(0);
  }
  tp.record({logits}, b, [soft, tau](grad_slots<T>& g, const tensor<T>& dy) {
    tensor<T>& dl = g[0];
    for (std::int64_t i = 0; i < dl.numel(); ++i) dl[i] += dy[i] * soft[i] * (T(1) - soft[i]) / static_cast<T>(tau);
  });
  return b;
}

// Eval-mode gate: b = 1[l >= 0]; a threshold has no gradient, so nothing is recorded.
template <real T>
tensor<T> gate_threshold(const tensor<T>& logits) {
  tensor<T> b = tensor<T>::empty_like(logits);
  if (on_device("gate_threshold", logits)) {
    if constexpr (cuda_kernels<T>) cuda::gate_threshold(b.data(), logits.data(), logits.numel());
    return b;
  }
  for (std::int64_t i = 0; i < logits.numel(); ++i) b[i] = logits[i] >= T(0) ? T(1) : T(0);
  return b;
}

}  // namespace ops

template <real T>
class channel_gate {
 public:
  using value_type = T;
  channel_gate() = default;
  channel_gate(int c_in, int c_out, rng& r)
      : fc1(kaiming_normal_fan_out<T>(shape{c_in / 4, c_in, 1, 1}, r)),
        bn(c_in / 4),
        fc2(kaiming_normal_fan_out<T>(shape{c_out, c_in / 4, 1, 1}, r)) {
    SSLGATE_CHECK(c_in >= 4, value_error, "channel_gate", "needs at least 4 input channels (reduction 4), got {}", c_in);
  }

  // u: [N, C_out] uniform noise for training; when empty in training, it is drawn from noise.
  gate_result<T> forward(tape<T>& tp, const tensor<T>& x, bool training, double tau, rng* noise, const tensor<T>& u = {}) {
    const std::int64_t n = x.dim(0), c_in = fc1.dim(1), c4 = fc1.dim(0), c_out = fc2.dim(0);
    tensor<T> z = ops::global_avg_pool(tp, x);
    z = ops::linear(tp, z, ops::reshape(tp, fc1, shape{c4, c_in}));
    z = ops::relu(tp, bn.forward(tp, z, training));
    gate_result<T> out;
    out.logits = ops::linear(tp, z, ops::reshape(tp, fc2, shape{c_out, c4}));
    if (training) {
      tensor<T> noise_u = u;
      if (noise_u.empty()) {
        SSLGATE_CHECK(noise != nullptr, value_error, "channel_gate", "training mode needs a noise source");
        noise_u = ops::uniform_on<T>(x.dev(), shape{n, c_out}, *noise);
      }
      out.mask = ops::gate_sample(tp, out.logits, noise_u, tau);
    } else {
      out.mask = ops::gate_threshold(out.logits);
    }
    out.active = open_counts(out.mask);
    return out;
  }

  // The eval gate as host arrays, BN folded: the logits of one sample from its channel means z (C_in values),
  // for kernels that take the means in their own pass over x. Equal to forward's eval logits up to rounding.
  // The weights are kept transposed, so that each product runs down contiguous rows (vectorized).
  struct host_form {
    std::int64_t c_in, c4, c_out;
    std::vector<T> fc1t, scale, shift, fc2t;  // fc1t[k][j] = fc1[j][k], fc2t[j][c] = fc2[c][j]
    void logits(const T* z, T* l) const {
      thread_local std::vector<T> h;
      h.assign(static_cast<std::size_t>(c4), T(0));
      for (std::int64_t k = 0; k < c_in; ++k)
        for (std::int64_t j = 0; j < c4; ++j) h[static_cast<std::size_t>(j)] += fc1t[static_cast<std::size_t>(k * c4 + j)] * z[k];
      for (std::size_t j = 0; j < h.size(); ++j) h[j] = std::max(T(0), h[j] * scale[j] + shift[j]);
      std::fill(l, l + c_out, T(0));
      for (std::int64_t j = 0; j < c4; ++j)
        for (std::int64_t c = 0; c < c_out; ++c) l[c] += fc2t[static_cast<std::size_t>(j * c_out + c)] * h[static_cast<std::size_t>(j)];
    }
  };
  host_form eval_form() const {
    const std::int64_t c_in = fc1.dim(1), c4 = fc1.dim(0), c_out = fc2.dim(0);
    const std::vector<T> w1 = fc1.to_vector(), w2 = fc2.to_vector();
    host_form f{c_in, c4, c_out, std::vector<T>(w1.size()), {}, {}, std::vector<T>(w2.size())};
    for (std::int64_t j = 0; j < c4; ++j)
      for (std::int64_t k = 0; k < c_in; ++k) f.fc1t[static_cast<std::size_t>(k * c4 + j)] = w1[static_cast<std::size_t>(j * c_in + k)];
    for (std::int64_t c = 0; c < c_out; ++c)
      for (std::int64_t j = 0; j < c4; ++j) f.fc2t[static_cast<std::size_t>(j * c_out + c)] = w2[static_cast<std::size_t>(c * c4 + j)];
    std::tie(f.scale, f.shift) = bn.eval_affine();
    return f;
  }

  template <class V>
  void visit(V& v, const std::string& prefix) const {
    v.param(join_name(prefix, "fc1.weight"), fc1);
    bn.visit(v, join_name(prefix, "bn"));
    v.param(join_name(prefix, "fc2.weight"), fc2);
  }

  tensor<T> fc1;  // [C_in/4, C_in, 1, 1]
  layers::batchnorm<T> bn;
  tensor<T> fc2;  // [C_out, C_in/4, 1, 1]
};

}  // namespace sslgate
