#pragma once
// SimSiam (Chen & He 2021; solo-learn's simsiam_loss_func). The predictor is a model part: the loss takes
// its outputs p1, p2 and the projections z1, z2, all [N, D].
//   negative_cosine(p, z) = -mean_n cos(p_n, stopgrad(z_n))                     in [-1, 1]
//   total = 0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1)      (symmetric)
// Stop-gradient: z1 and z2 receive exactly zero gradient (they are detached; z.grad() stays empty).
// Cosines use l2_normalize with eps 1e-12 per row, so a zero row contributes 0.
#include <sslgate/losses/loss_terms.hpp>
#include <sslgate/ops/normalize.hpp>
#include <sslgate/ops/reduce.hpp>

#include <string_view>

namespace sslgate::losses {

// mean_n cos(a_n, b_n) for a, b: [N, D] (no stop-gradient here).
template <real T>
tensor<T> mean_cosine(tape<T>& tp, const tensor<T>& a, const tensor<T>& b, double eps = 1e-12) {
  check_rank("cosine", a, 2, "a");
  check_same_shape("cosine", a, b);
  return ops::mean(tp, ops::sum(tp, ops::mul(tp, ops::l2_normalize(tp, a, eps), ops::l2_normalize(tp, b, eps)), {1}));
}

struct simsiam {
  static constexpr std::string_view name = "simsiam";

  // -mean_n cos(p_n, z_n) with z detached.
  template <real T>
  static tensor<T> negative_cosine(tape<T>& tp, const tensor<T>& p, const tensor<T>& z) {
    return ops::neg(tp, mean_cosine(tp, p, detach(z)));
  }

  template <real T>
  named_loss<T> evaluate(tape<T>& tp, const tensor<T>& p1, const tensor<T>& p2, const tensor<T>& z1, const tensor<T>& z2) const {
    const tensor<T> d12 = negative_cosine(tp, p1, z2), d21 = negative_cosine(tp, p2, z1);
    tensor<T> total = ops::scale(tp, ops::add(tp, d12, d21), 0.5);
    return {total, {{"p1_z2", d12}, {"p2_z1", d21}}};
  }
  template <real T>
  tensor<T> operator()(tape<T>& tp, const tensor<T>& p1, const tensor<T>& p2, const tensor<T>& z1, const tensor<T>& z2) const {
    return evaluate(tp, p1, p2, z1, z2).total;
  }
};

}  // namespace sslgate::losses
