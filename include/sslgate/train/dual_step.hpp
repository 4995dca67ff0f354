#pragma once
// One SSL step of a dense + gated network (METHOD.md §5.1, VICReg-Dual, for any SSL loss):
//   gated forward of view 1 (stochastic gates) -> features_g; dense forward of view 2 -> features_d
//   z_g = projector(features_g), z_d = projector(features_d)         (one projector, shared)
//   loss = ssl(z_g, z_d) + lambda (rho - t_d)^2 + bound(d_l, p)       (no stop-gradient anywhere)
// The shared weights receive the sum of both paths' gradients because the tape adds per use.
// Baselines: dense_only runs both views densely with the SSL loss alone (Baseline-1, plain VICReg);
// gated_only runs both views through the gated path and adds each view's budget terms (Baseline-2).
// Predictor losses (SimSiam) take (p1, p2, z1, z2) with p = predictor(z).
#include <sslgate/gating/flops.hpp>
#include <sslgate/losses/bound.hpp>
#include <sslgate/losses/flops_budget.hpp>
#include <sslgate/losses/weighted_sum.hpp>
#include <sslgate/models/ssl_network.hpp>

namespace sslgate::train {

enum class objective_mode { dual, dense_only, gated_only };

struct gating_objective {
  losses::flops_budget budget{};  // lambda 5, target t_d
  losses::bound bound{};          // gamma 1, alpha 0.02, target t_d
  double tau = default_gate_tau;
  void set_target(double td) { budget.target = bound.target = td; }
};

template <real T>
struct view_output {
  tensor<T> features, z;
  std::vector<tensor<T>> masks;  // gated path: per block [N, C_out]
  std::int64_t executed_macs = 0;
};

template <real T>
struct step_output {
  losses::weighted_result<T> objective;  // total (on the tape) and named terms for logging
  view_output<T> first, second;          // view 1 (gated in dual mode) and view 2
  double rho = 0;                        // batch density of the gated view (dual) or the mean of both (gated_only)
  std::vector<double> layer_density;     // d_l of the gated view
};

// Runs one view through the backbone on the given path and through the projector.
template <real T>
view_output<T> forward_view(tape<T>& tp, ssl_network<T>& net, const tensor<T>& x, path route, bool training, double tau, rng* noise,
                            std::vector<tensor<T>> given_noise = {}) {
  forward_state<T> st;
  st.training = training;
  st.route = route;
  st.tau = tau;
  st.noise = noise;
  st.given_noise = std::move(given_noise);
  view_output<T> out;
  out.features = net.backbone.forward(tp, x, st);
  out.z = net.projector.forward(tp, out.features, training);
  for (auto& g : st.gates) out.masks.push_back(g.mask);
  out.executed_macs = st.executed_macs;
  return out;
}

namespace detail {
template <real T, class Loss>
losses::named_loss<T> ssl_term(tape<T>& tp, ssl_network<T>& net, const Loss& loss, const tensor<T>& z1, const tensor<T>& z2, bool training) {
  if constexpr (requires { loss.evaluate(tp, z1, z2); }) {
    return loss.evaluate(tp, z1, z2);
  } else {
    SSLGATE_CHECK(net.predict.has_value(), value_error, "ssl_step", "a predictor loss needs a network built with predictor_hidden > 0");
    const tensor<T> p1 = net.predict->forward(tp, z1, training), p2 = net.predict->forward(tp, z2, training);
    return loss.evaluate(tp, p1, p2, z1, z2);
  }
}
}  // namespace detail

// given_noise: optional per-block gate noise for view 1 (reference cases); otherwise drawn from noise.
template <real T, class Loss>
step_output<T> ssl_step(tape<T>& tp, ssl_network<T>& net, const tensor<T>& x1, const tensor<T>& x2, const Loss& loss, const gating_objective& gating,
                        double p, objective_mode mode, rng* noise, std::vector<tensor<T>> given_noise = {}) {
  SSLGATE_CHECK(x1.dims() == x2.dims(), shape_error, "ssl_step", "views {} and {} differ", x1.dims(), x2.dims());
  step_output<T> out;
  const path first = mode == objective_mode::dense_only ? path::dense : path::gated;
  const path second = mode == objective_mode::gated_only ? path::gated : path::dense;
  // Forward order as the reference: both backbones, then the projector on each (BN1d statistics in that order).
  forward_state<T> s1, s2;
  for (auto* s : {&s1, &s2}) {
    s->training = true;
    s->tau = gating.tau;
    s->noise = noise;
  }
  s1.route = first;
  s1.given_noise = std::move(given_noise);
  s2.route = second;
  out.first.features = net.backbone.forward(tp, x1, s1);
  out.second.features = net.backbone.forward(tp, x2, s2);
  out.first.z = net.projector.forward(tp, out.first.features, true);
  out.second.z = net.projector.forward(tp, out.second.features, true);
  for (auto& g : s1.gates) out.first.masks.push_back(g.mask);
  for (auto& g : s2.gates) out.second.masks.push_back(g.mask);
  out.first.executed_macs = s1.executed_macs;
  out.second.executed_macs = s2.executed_macs;

  losses::term_sum<T> sum;
  sum.add(std::string(Loss::name), 1.0, detail::ssl_term(tp, net, loss, out.first.z, out.second.z, true));
  const auto flops = net.backbone.flops(x1.dim(2), x1.dim(3));
  int gated_views = 0;
  for (view_output<T>* v : {&out.first, &out.second}) {
    if (v->masks.empty()) continue;
    const std::string suffix = mode == objective_mode::gated_only ? (gated_views == 0 ? "" : "_2") : "";
    const tensor<T> rho = flops.rho(tp, v->masks);
    const tensor<T> d = losses::bound::densities(tp, v->masks);
    sum.add("flops_budget" + suffix, 1.0, gating.budget.evaluate(tp, rho));
    sum.add("bound" + suffix, 1.0, gating.bound.evaluate(tp, d, p));
    out.rho += static_cast<double>(rho.item());
    if (gated_views == 0)
      for (const T v : d.to_vector()) out.layer_density.push_back(static_cast<double>(v));
    ++gated_views;
  }
  if (gated_views > 0) out.rho /= gated_views;
  out.objective = sum.result(tp);
  return out;
}

}  // namespace sslgate::train
