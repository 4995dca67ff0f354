#pragma once
// FLOPs budget (sparsity) loss, METHOD.md §4:  L_spar = lambda * (rho - target)^2
//   rho: [] the batch density of the gated path (gating::resnet_flops::rho: a ratio of batch means whose
//   gradient reaches every mask entry, a plain sum) -> total [] and the terms rho, gap_sq = (rho - target)^2.
// Defaults: lambda 5 (released scripts); target t_d 0.5 (argparse default; scripts use 0.1 .. 0.5).
#include <sslgate/losses/loss_terms.hpp>
#include <sslgate/ops/elementwise.hpp>

#include <string_view>

namespace sslgate::losses {

struct flops_budget {
  static constexpr std::string_view name = "flops_budget";
  double lambda = 5.0;
  double target = 0.5;

  template <real T>
  named_loss<T> evaluate(tape<T>& tp, const tensor<T>& rho) const {
    SSLGATE_CHECK(rho.numel() == 1, shape_error, "flops_budget", "rho must be a single value, got shape {}", rho.dims());
    const tensor<T> gap = ops::add_scalar(tp, rho, static_cast<T>(-target));
    const tensor<T> gap_sq = ops::mul(tp, gap, gap);
    return {ops::scale(tp, gap_sq, lambda), {{"rho", rho}, {"gap_sq", gap_sq}}};
  }
  template <real T>
  tensor<T> operator()(tape<T>& tp, const tensor<T>& rho) const {
    return evaluate(tp, rho).total;
  }
};

}  // namespace sslgate::losses
