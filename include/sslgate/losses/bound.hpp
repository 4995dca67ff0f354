#pragma once
// Per-layer bound ("balance") loss, METHOD.md §4.
//   densities(tp, masks): masks[l] [N, C_l] hard gates -> d: [L],  d_l = mean_n ||b_l(n)||_1 / C_l
//     L1-norm gradient convention (official code: torch.norm(mask, p=1)): d ||b||_1 / d b = sign(b), so
//     closed channels (b = 0) receive exactly 0 from this loss; open ones receive 1 / (N C_l) * dL/dd_l.
//   evaluate(tp, d, p): with s = sqrt(target),
//     lower = mean_l relu(p s - d_l)^2,  upper = mean_l relu(d_l - (1 - p + p s))^2
//     total = gamma * (lower + upper)          exactly 0 while every d_l lies inside [p s, 1 - p + p s]
//   p = anneal(epoch) = exp(-alpha * epoch), epoch 0-based (p = 1 pins every layer to sqrt(t_d)).
// Defaults: gamma 1, alpha 0.02 (released scripts; the argparse default is 0.05), target t_d 0.5.
#include <sslgate/losses/loss_terms.hpp>
#include <sslgate/ops/reduce.hpp>
#include <sslgate/ops/shape_ops.hpp>

#include <cmath>
#include <string_view>
#include <vector>

namespace sslgate::losses {

struct bound {
  static constexpr std::string_view name = "bound";
  double gamma = 1.0;
  double target = 0.5;
  double alpha = 0.02;

  double anneal(double epoch) const { return std::exp(-alpha * epoch); }
  double lower_bound(double p) const { return p * std::sqrt(target); }
  double upper_bound(double p) const { return 1.0 - p + p * std::sqrt(target); }

  // d_l = sum |b_l| / (N C_l) for each layer, as one [L] tensor.
  template <real T>
  static tensor<T> densities(tape<T>& tp, const std::vector<tensor<T>>& masks) {
    SSLGATE_CHECK(!masks.empty(), shape_error, "bound", "no masks given");
    std::vector<tensor<T>> d;
    for (const auto& m : masks) {
      check_rank("bound", m, 2, "mask");
      d.push_back(ops::reshape(tp, ops::mean(tp, ops::abs(tp, m)), shape{1}));
    }
    return ops::concat(tp, d, 0);
  }

  // d: [L] per-layer densities, p the annealing factor.
  template <real T>
  named_loss<T> evaluate(tape<T>& tp, const tensor<T>& d, double p) const {
    check_rank("bound", d, 1, "densities");
    SSLGATE_CHECK(p >= 0 && p <= 1, value_error, "bound", "annealing factor p must be in [0, 1], got {}", p);
    const tensor<T> below = ops::relu(tp, ops::add_scalar(tp, ops::neg(tp, d), static_cast<T>(lower_bound(p))));
    const tensor<T> above = ops::relu(tp, ops::add_scalar(tp, d, static_cast<T>(-upper_bound(p))));
    const tensor<T> lower = ops::mean(tp, ops::mul(tp, below, below));
    const tensor<T> upper = ops::mean(tp, ops::mul(tp, above, above));
    return {ops::scale(tp, ops::add(tp, lower, upper), gamma), {{"lower", lower}, {"upper", upper}}};
  }
  template <real T>
  named_loss<T> evaluate(tape<T>& tp, const std::vector<tensor<T>>& masks, double p) const {
    return evaluate(tp, densities(tp, masks), p);
  }
  template <real T>
  tensor<T> operator()(tape<T>& tp, const tensor<T>& d, double p) const {
    return evaluate(tp, d, p).total;
  }
  template <real T>
  tensor<T> operator()(tape<T>& tp, const std::vector<tensor<T>>& masks, double p) const {
    return evaluate(tp, masks, p).total;
  }
};

}  // namespace sslgate::losses
