#pragma once
// SimCLR NT-Xent (Chen et al. 2020), both directions (METHOD.md §5.2; solo-learn's simclr_loss_func).
//   z1, z2: [N, D], two views of N images (N >= 1) -> total [] and the terms positive, logsumexp
//   z = l2_normalize(cat(z1, z2)) [2N, D] (eps 1e-12: a zero row stays 0, so its similarities are 0);
//   S = z z^T / temperature [2N, 2N]; anchor i's positive is its other view p(i) = (i + N) mod 2N, and its
//   denominator runs over every j != i (the positive and the 2N - 2 negatives; self excluded with -inf);
//   loss_i = logsumexp_{j != i} S_ij - S_{i p(i)};  total = mean_i loss_i over the 2N anchors.
// Log-sum-exp is shifted by the row max (ops::logsumexp), so the loss is finite for identical and for zero
// embeddings (there it equals log(2N - 1)).
#include <sslgate/losses/loss_terms.hpp>
#include <sslgate/ops/linalg.hpp>
#include <sslgate/ops/normalize.hpp>
#include <sslgate/ops/shape_ops.hpp>
#include <sslgate/ops/softmax.hpp>

#include <cmath>
#include <limits>
#include <string_view>

namespace sslgate::losses {

struct simclr {
  static constexpr std::string_view name = "simclr";
  double temperature = 0.1;
  double norm_eps = 1e-12;

  template <real T>
  named_loss<T> evaluate(tape<T>& tp, const tensor<T>& z1, const tensor<T>& z2) const {
    check_rank("simclr", z1, 2, "z1");
    check_rank("simclr", z2, 2, "z2");
    check_same_shape("simclr", z1, z2);
    SSLGATE_CHECK(temperature > 0 && std::isfinite(temperature), value_error, "simclr", "temperature must be > 0, got {}", temperature);
    const std::int64_t n = z1.dim(0), m = 2 * n;
    SSLGATE_CHECK(n >= 1, shape_error, "simclr", "needs at least one pair, got z1 {}", z1.dims());
    const tensor<T> z = ops::l2_normalize(tp, ops::concat(tp, {z1, z2}, 0), norm_eps);
    const tensor<T> s = ops::scale(tp, ops::matmul(tp, z, z, false, true), 1.0 / temperature);
    tensor<T> self = tensor<T>::zeros(shape{m, m});
    for (std::int64_t i = 0; i < m; ++i) self[i * m + i] = -std::numeric_limits<T>::infinity();
    const tensor<T> lse = ops::mean(tp, ops::logsumexp(tp, ops::add(tp, s, self.to(s.dev()))));
    std::vector<std::int64_t> other(static_cast<std::size_t>(m));
    for (std::int64_t i = 0; i < m; ++i) other[i] = (i + n) % m;
    const tensor<T> pos =
        ops::scale(tp, ops::mean(tp, ops::sum(tp, ops::mul(tp, z, ops::index_select(tp, z, 0, other)), {1})), 1.0 / temperature);
    tensor<T> total = ops::sub(tp, lse, pos);
    return {total, {{"positive", pos}, {"logsumexp", lse}}};
  }
  template <real T>
  tensor<T> operator()(tape<T>& tp, const tensor<T>& z1, const tensor<T>& z2) const {
    return evaluate(tp, z1, z2).total;
  }
};

}  // namespace sslgate::losses
