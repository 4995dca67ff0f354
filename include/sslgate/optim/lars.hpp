#pragma once
// LARS-wrapped SGD with momentum, exactly solo-learn's LARSWrapper (clip on, exclude_bias_n_norm) around
// torch.optim.SGD (METHOD.md §6; tests/fixtures/README.md "LARS"). For each parameter w with gradient g in a
// group with lr_g = lr * lr_scale and weight decay wd (the group's, else options.weight_decay):
//   LARS (skipped for 1-D parameters when exclude_1d, for groups with exclude_from_lars, and when ||w|| = 0
//   or ||g|| = 0; skipped parameters get NO weight decay either):
//     q = eta ||w|| / (||g|| + wd ||w|| + eps);  q = min(q / lr_g, 1) when clip;  g = (g + wd w) q
//   then SGD momentum with no further weight decay, dampening 0, no Nesterov:
//     buf = g (first step) or momentum * buf + g;   w -= lr_g * buf
// Defaults: lr 0.6, momentum 0.9, weight decay 1e-4, eta 0.02, eps 1e-8, clip on, 1-D excluded.
// step() consumes each parameter's gradient (zero_grad); parameters without a gradient are skipped.
// Parameters on a CUDA device (float32) step there (core/cuda/optim.hpp): the norms come back to the host,
// so q is the same double expression, and the updates round where the CPU loop does.
#include <sslgate/core/cuda/optim.hpp>
#include <sslgate/ops/device.hpp>
#include <sslgate/optim/param_group.hpp>

#include <algorithm>
#include <cmath>

namespace sslgate::optim {

template <real T>
class lars {
 public:
  struct options {
    double lr = 0.6, momentum = 0.9, weight_decay = 1e-4, eta = 0.02, eps = 1e-8;
    bool clip = true;
    bool exclude_1d = true;
  };

  lars(std::vector<param_group<T>> groups, options opt) : groups_(std::move(groups)), opt_(opt) {
    for (const auto& g : groups_) {
      bufs_.emplace_back(g.params.size());
      trust_.emplace_back(g.params.size(), -1.0);
    }
  }
  lars(std::vector<tensor<T>> params, options opt) : lars(std::vector<param_group<T>>{param_group<T>{.params = std::move(params)}}, opt) {}

  void set_lr(double lr) { opt_.lr = lr; }
  double lr() const { return opt_.lr; }
  const options& opts() const { return opt_; }
  const std::vector<param_group<T>>& groups() const { return groups_; }

  // The LARS adjustment of one gradient, in place: g <- (g + wd w) q. Returns the factor q (after clipping),
  // or -1 where LARS is skipped (then g is unchanged). Norms are accumulated in double.
  static double adjust(T* g, const T* w, std::int64_t n, double lr, double wd, double eta, double eps, bool clip) {
    double wn = 0, gn = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      wn += static_cast<double>(w[i]) * w[i];
      gn += static_cast<double>(g[i]) * g[i];
    }
    wn = std::sqrt(wn), gn = std::sqrt(gn);
    if (wn == 0 || gn == 0) return -1;
    const double q = trust(wn, gn, lr, wd, eta, eps, clip);
    const T tq = static_cast<T>(q), twd = static_cast<T>(wd);
    for (std::int64_t i = 0; i < n; ++i) g[i] = (g[i] + twd * w[i]) * tq;
    return q;
  }

  // The factor q (after clipping) from the norms ||w|| > 0 and ||g|| > 0; shared by the CPU and device steps.
  static double trust(double wn, double gn, double lr, double wd, double eta, double eps, bool clip) {
    double q = eta * wn / (gn + wd * wn + eps);
    if (clip) q = std::min(q / lr, 1.0);
    return q;
  }

  // Does LARS (and weight decay) apply to parameter i of group gi?
  bool uses_lars(std::size_t gi, std::size_t i) const {
    const auto& g = groups_[gi];
    return !g.exclude_from_lars && !(opt_.exclude_1d && g.params[i].rank() == 1);
  }
  double group_lr(std::size_t gi) const { return opt_.lr * groups_[gi].lr_scale; }
  double group_weight_decay(std::size_t gi) const { return groups_[gi].weight_decay.value_or(opt_.weight_decay); }

  void step() {
    for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
      const double lr = group_lr(gi), wd = group_weight_decay(gi);
      for (std::size_t i = 0; i < groups_[gi].params.size(); ++i) {
        tensor<T>& w = groups_[gi].params[i];
        const tensor<T> grad = w.grad();
        trust_[gi][i] = -1;
        if (grad.empty()) continue;
        if (ops::on_device("lars", w)) {
          trust_[gi][i] = step_cuda(w, grad, bufs_[gi][i], uses_lars(gi, i), lr, wd);
          w.zero_grad();
          continue;
        }
        tensor<T> g = grad.clone();
        if (uses_lars(gi, i)) trust_[gi][i] = adjust(g.data(), w.data(), w.numel(), lr, wd, opt_.eta, opt_.eps, opt_.clip);
        tensor<T>& buf = bufs_[gi][i];
        const T m = static_cast<T>(opt_.momentum), tlr = static_cast<T>(lr);
        if (buf.empty()) buf = g;  // first step: buf = g
        else
          for (std::int64_t k = 0; k < w.numel(); ++k) buf[k] = m * buf[k] + g[k];
        for (std::int64_t k = 0; k < w.numel(); ++k) w[k] -= tlr * buf[k];
        w.zero_grad();
      }
    }
  }

  // The last step's clipped trust factor of parameter i of group gi (-1: skipped or no gradient).
  double last_trust(std::size_t gi, std::size_t i) const { return trust_[gi][i]; }

  // Momentum buffers (empty until the parameter's first step).
  tensor<T>& momentum_buffer(std::size_t gi, std::size_t i) { return bufs_[gi][i]; }
  const tensor<T>& momentum_buffer(std::size_t gi, std::size_t i) const { return bufs_[gi][i]; }

  // Checkpoint state: the existing buffers as "<group>.<index>.momentum".
  named_state<T> state() const {
    named_state<T> s;
    for (std::size_t gi = 0; gi < groups_.size(); ++gi)
      for (std::size_t i = 0; i < bufs_[gi].size(); ++i)
        if (!bufs_[gi][i].empty()) s.emplace_back(key(gi, i), bufs_[gi][i].clone());
    return s;
  }
  // Restores buffers saved by state(); a parameter absent from s starts without a buffer.
  void load_state(const named_state<T>& s) {
    for (std::size_t gi = 0; gi < groups_.size(); ++gi)
      for (std::size_t i = 0; i < bufs_[gi].size(); ++i) {
        const tensor<T>* t = detail::find_state(s, key(gi, i));
        if (t == nullptr) {
          bufs_[gi][i] = tensor<T>{};
          continue;
        }
        SSLGATE_CHECK(t->dims() == groups_[gi].params[i].dims(), shape_error, "lars::load_state", "{} has shape {} but the parameter is {}",
                      key(gi, i), t->dims(), groups_[gi].params[i].dims());
        bufs_[gi][i] = detail::copy_to(*t, groups_[gi].params[i].dev());
      }
  }

 private:
  // step() of one device parameter; returns q (-1: skipped). The gradient is copied only where LARS changes it.
  // The body is discarded for float64 and CPU-only builds, which never reference the kernels (step() never
  // gets here for them: on_device throws).
  double step_cuda(tensor<T>& w, const tensor<T>& grad, tensor<T>& buf, bool use_lars, double lr, double wd) const {
    double q = -1;
    if constexpr (ops::cuda_kernels<T>) {
      ops::check_same_device("lars", w, {&grad, &buf});
      const std::int64_t n = w.numel();
      tensor<T> g = grad;
      if (use_lars) {
        const double wn = std::sqrt(cuda::sum_squares(w.data(), n)), gn = std::sqrt(cuda::sum_squares(grad.data(), n));
        if (wn != 0 && gn != 0) {
          q = trust(wn, gn, lr, wd, opt_.eta, opt_.eps, opt_.clip);
          g = grad.clone();
          cuda::lars_adjust(g.data(), w.data(), n, static_cast<float>(wd), static_cast<float>(q));
        }
      }
      const bool first = buf.empty();
      if (first) buf = tensor<T>::empty_like(w);
      cuda::momentum_update(w.data(), buf.data(), g.data(), n, static_cast<float>(opt_.momentum), static_cast<float>(lr), first);
    }
    return q;
  }

  std::string key(std::size_t gi, std::size_t i) const { return detail::group_label(groups_[gi], gi) + "." + std::to_string(i) + ".momentum"; }
  std::vector<param_group<T>> groups_;
  options opt_;
  std::vector<std::vector<tensor<T>>> bufs_;
  std::vector<std::vector<double>> trust_;
};

}  // namespace sslgate::optim
