#pragma once
// BYOL (Grill et al. 2020; solo-learn's byol_loss_func and MomentumUpdater).
// Loss: p1, p2 = predictor(online projections) and z1t, z2t = target projections of views 1 and 2, all [N, D]:
//   regression(p, z) = mean_n (2 - 2 cos(p_n, stopgrad(z_n)))                   in [0, 4]
//   total = regression(p1, z2t) + regression(p2, z1t)                           (symmetric, summed)
// The target branch receives exactly zero gradient.
// Target network: an exponential moving average of the online parameters,
//   target <- tau * target + (1 - tau) * online,
//   tau_k = final_tau - (final_tau - base_tau) * (cos(pi k / K) + 1) / 2     (k = step, K = total steps)
// i.e. tau = 1 - (1 - tau_base)(cos(pi k / K) + 1)/2 for final_tau = 1, rising from base_tau to final_tau.
#include <sslgate/losses/simsiam.hpp>

#include <cmath>
#include <numbers>
#include <string_view>
#include <vector>

namespace sslgate::losses {

struct byol {
  static constexpr std::string_view name = "byol";

  template <real T>
  static tensor<T> regression(tape<T>& tp, const tensor<T>& p, const tensor<T>& z) {
    return ops::add_scalar(tp, ops::scale(tp, mean_cosine(tp, p, detach(z)), -2.0), T(2));
  }
  template <real T>
  named_loss<T> evaluate(tape<T>& tp, const tensor<T>& p1, const tensor<T>& p2, const tensor<T>& z1_target,
                         const tensor<T>& z2_target) const {
    const tensor<T> a = regression(tp, p1, z2_target), b = regression(tp, p2, z1_target);
    return {ops::add(tp, a, b), {{"p1_z2", a}, {"p2_z1", b}}};
  }
  template <real T>
  tensor<T> operator()(tape<T>& tp, const tensor<T>& p1, const tensor<T>& p2, const tensor<T>& z1_target, const tensor<T>& z2_target) const {
    return evaluate(tp, p1, p2, z1_target, z2_target).total;
  }
};

// The EMA target updater. Parameters are matched by position; shapes must agree.
struct ema_updater {
  double base_tau = 0.99;
  double final_tau = 1.0;

  // Momentum at step k of K (k in [0, K]); K <= 0 gives base_tau.
  double tau(std::int64_t k, std::int64_t total) const {
    if (total <= 0) return base_tau;
    return final_tau - (final_tau - base_tau) * (std::cos(std::numbers::pi * static_cast<double>(k) / static_cast<double>(total)) + 1) / 2;
  }
  // target = copy of online (start of training).
  template <real T>
  static void initialize(std::vector<tensor<T>>& target, const std::vector<tensor<T>>& online) {
    check_sizes(target, online);
    for (std::size_t i = 0; i < target.size(); ++i) target[i].copy_from(online[i]);
  }
  // target <- tau * target + (1 - tau) * online, in place, outside the tape.
  template <real T>
  static void update(std::vector<tensor<T>>& target, const std::vector<tensor<T>>& online, double tau) {
    check_sizes(target, online);
    SSLGATE_CHECK(tau >= 0 && tau <= 1, value_error, "ema_updater", "tau must be in [0, 1], got {}", tau);
    for (std::size_t i = 0; i < target.size(); ++i) {
      check_same_shape("ema_updater", target[i], online[i]);
      if (ops::on_device("ema_updater", target[i])) {
        tape<T> none(grad_mode::off);
        target[i].copy_from(ops::add(none, ops::scale(none, target[i], tau), ops::scale(none, online[i], 1 - tau)));
        continue;
      }
      T* t = target[i].data();
      const T* o = online[i].data();
      const T a = static_cast<T>(tau), b = static_cast<T>(1 - tau);
      for (std::int64_t k = 0; k < target[i].numel(); ++k) t[k] = a * t[k] + b * o[k];
    }
  }
  template <real T>
  void step(std::vector<tensor<T>>& target, const std::vector<tensor<T>>& online, std::int64_t k, std::int64_t total) const {
    update(target, online, tau(k, total));
  }

 private:
  template <real T>
  static void check_sizes(const std::vector<tensor<T>>& target, const std::vector<tensor<T>>& online) {
    SSLGATE_CHECK(target.size() == online.size(), value_error, "ema_updater", "{} target tensors but {} online tensors", target.size(),
                  online.size());
  }
};

}  // namespace sslgate::losses
