#pragma once
// AdamW (Loshchilov & Hutter 2019), PyTorch's torch.optim.AdamW semantics (amsgrad off). Per parameter with
// group lr_g = lr * lr_scale and decoupled weight decay wd (the group's, else options.weight_decay):
//   t += 1;  w *= 1 - lr_g wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   w -= lr_g * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
// Defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 1e-2. exclude_from_lars is ignored.
// step() consumes each parameter's gradient; parameters without a gradient are skipped (their t stays).
// Parameters on a CUDA device (float32) step there (core/cuda/optim.hpp) with the same float scalars, rounded
// where the CPU loop rounds.
#include <sslgate/core/cuda/optim.hpp>
#include <sslgate/ops/device.hpp>
#include <sslgate/optim/param_group.hpp>

#include <cmath>

namespace sslgate::optim {

template <real T>
class adamw {
 public:
  struct options {
    double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2;
  };

  adamw(std::vector<param_group<T>> groups, options opt) : groups_(std::move(groups)), opt_(opt) {
    for (const auto& g : groups_) slots_.emplace_back(g.params.size());
  }
  adamw(std::vector<tensor<T>> params, options opt) : adamw(std::vector<param_group<T>>{param_group<T>{.params = std::move(params)}}, opt) {}

  void set_lr(double lr) { opt_.lr = lr; }
  double lr() const { return opt_.lr; }
  const std::vector<param_group<T>>& groups() const { return groups_; }

  void step() {
    for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
      const double lr = opt_.lr * groups_[gi].lr_scale, wd = groups_[gi].weight_decay.value_or(opt_.weight_decay);
      for (std::size_t i = 0; i < groups_[gi].params.size(); ++i) {
        tensor<T>& w = groups_[gi].params[i];
        const tensor<T> g = w.grad();
        if (g.empty()) continue;
        slot& s = slots_[gi][i];
        const bool on_gpu = ops::on_device("adamw", w);
        if (on_gpu) ops::check_same_device("adamw", w, {&g, &s.m, &s.v});
        if (s.m.empty()) {
          s.m = tensor<T>::zeros_like(w);
          s.v = tensor<T>::zeros_like(w);
        }
        s.t += 1;
        const double bc1 = 1 - std::pow(opt_.beta1, static_cast<double>(s.t));
        const double bc2 = 1 - std::pow(opt_.beta2, static_cast<double>(s.t));
        const T b1 = static_cast<T>(opt_.beta1), b2 = static_cast<T>(opt_.beta2), decay = static_cast<T>(1 - lr * wd);
        const T step_size = static_cast<T>(lr / bc1), sq = static_cast<T>(std::sqrt(bc2)), eps = static_cast<T>(opt_.eps);
        if (on_gpu) {
          if constexpr (ops::cuda_kernels<T>)
            cuda::adamw_update(w.data(), s.m.data(), s.v.data(), g.data(), w.numel(), b1, b2, decay, step_size, sq, eps);
          w.zero_grad();
          continue;
        }
        T* p = w.data();
        T* m = s.m.data();
        T* v = s.v.data();
        const T* d = g.data();
        for (std::int64_t k = 0; k < w.numel(); ++k) {
          p[k] *= decay;
          m[k] = b1 * m[k] + (T(1) - b1) * d[k];
          v[k] = b2 * v[k] + (T(1) - b2) * d[k] * d[k];
          p[k] -= step_size * m[k] / (std::sqrt(v[k]) / sq + eps);
        }
        w.zero_grad();
      }
    }
  }

  // Checkpoint state: "<group>.<index>.exp_avg", ".exp_avg_sq" and ".step" (a [] tensor) per stepped parameter.
  named_state<T> state() const {
    named_state<T> out;
    for (std::size_t gi = 0; gi < groups_.size(); ++gi)
      for (std::size_t i = 0; i < slots_[gi].size(); ++i) {
        const slot& s = slots_[gi][i];
        if (s.m.empty()) continue;
        out.emplace_back(key(gi, i, "exp_avg"), s.m.clone());
        out.emplace_back(key(gi, i, "exp_avg_sq"), s.v.clone());
        out.emplace_back(key(gi, i, "step"), tensor<T>::full(shape{}, static_cast<T>(s.t)));
      }
    return out;
  }
  void load_state(const named_state<T>& st) {
    for (std::size_t gi = 0; gi < groups_.size(); ++gi)
      for (std::size_t i = 0; i < slots_[gi].size(); ++i) {
        slot& s = slots_[gi][i];
        const tensor<T>* m = detail::find_state(st, key(gi, i, "exp_avg"));
        const tensor<T>* v = detail::find_state(st, key(gi, i, "exp_avg_sq"));
        const tensor<T>* t = detail::find_state(st, key(gi, i, "step"));
        if (m == nullptr || v == nullptr || t == nullptr) {
          s = slot{};
          continue;
        }
        const shape& want = groups_[gi].params[i].dims();
        SSLGATE_CHECK(m->dims() == want && v->dims() == want, shape_error, "adamw::load_state", "{} has shape {} but the parameter is {}",
                      key(gi, i, "exp_avg"), m->dims(), want);
        s.m = detail::copy_to(*m, groups_[gi].params[i].dev());
        s.v = detail::copy_to(*v, groups_[gi].params[i].dev());
        s.t = static_cast<std::int64_t>(t->item());
      }
  }

 private:
  struct slot {
    tensor<T> m, v;
    std::int64_t t = 0;
  };
  std::string key(std::size_t gi, std::size_t i, const char* what) const {
    return detail::group_label(groups_[gi], gi) + "." + std::to_string(i) + "." + what;
  }
  std::vector<param_group<T>> groups_;
  options opt_;
  std::vector<std::vector<slot>> slots_;
};

}  // namespace sslgate::optim
