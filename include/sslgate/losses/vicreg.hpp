#pragma once
// VICReg, solo-learn's summed form (METHOD.md §5.1; Bardes et al. 2022 average the two branches instead).
//   z1, z2: [N, D], two views of N images (N >= 2) -> total [] and the unweighted terms
//   invariance = mean_{n,j} (z1 - z2)^2                                              (MSE)
//   variance   = sum_{k=1,2} mean_j relu(gamma - sqrt(var_unbiased(z_k[:, j]) + eps))
//   covariance = sum_{k=1,2} (1/D) sum_{i != j} C_k[i, j]^2,  C_k = (z_k - mean)^T (z_k - mean) / (N - 1)
//   total      = sim_weight * invariance + var_weight * variance + cov_weight * covariance   (25 / 25 / 1)
// Gradients come from the tape; the covariance term is one fused op (offdiag_cov_sq) that forms the D x D
// covariance once with a GEMM and keeps it (diagonal zeroed) for the backward pass.
#include <sslgate/losses/loss_terms.hpp>
#include <sslgate/ops/cpu/gemm.hpp>
#include <sslgate/ops/elementwise.hpp>
#include <sslgate/ops/linalg.hpp>
#include <sslgate/ops/reduce.hpp>

#include <memory>
#include <string_view>
#include <vector>

namespace sslgate::losses {

namespace detail {
// y = (1/D) sum_{i != j} C[i, j]^2 with C = Zc^T Zc / (N - 1), Zc = z - colmean(z).   z: [N, D] -> y: []
// Naive loop:  for i, j != i: c = sum_n zc[n][i] zc[n][j] / (N-1); y += c * c / D
// Backward: with G = C with its diagonal zeroed, dL/dZc = (4 / (D (N - 1))) Zc G (G is symmetric); the
// centering passes dZc minus its column mean (zero up to rounding, kept for fidelity to autograd).
template <real T>
tensor<T> offdiag_cov_sq(tape<T>& tp, const tensor<T>& z) {
  constexpr std::string_view op = "vicreg covariance";
  check_rank(op, z, 2, "z");
  const std::int64_t n = z.dim(0), d = z.dim(1);
  SSLGATE_CHECK(n >= 2, shape_error, op, "needs N >= 2 samples (unbiased covariance), got z {}", z.dims());
  if (ops::on_device(op, z)) {
    // The same value from tape ops on the device: the sum of every C[i, j]^2 less the diagonal's, with
    // C[j, j] = sum_n zc[n, j]^2 / (N - 1). The subtraction loses relative precision only in the ratio of the
    // diagonal's sum to the off-diagonal one (about N / D for uncorrelated features).
    const double inv = 1.0 / static_cast<double>(n - 1);
    const tensor<T> zc = ops::sub(tp, z, ops::mean(tp, z, {0}, true));
    const tensor<T> c = ops::scale(tp, ops::matmul(tp, zc, zc, true, false), inv);
    const tensor<T> diag = ops::scale(tp, ops::sum(tp, ops::mul(tp, zc, zc), {0}), inv);
    const tensor<T> all = ops::sum(tp, ops::mul(tp, c, c)), on = ops::sum(tp, ops::mul(tp, diag, diag));
    return ops::scale(tp, ops::sub(tp, all, on), 1.0 / static_cast<double>(d));
  }
  auto zc = std::make_shared<std::vector<T>>(static_cast<std::size_t>(n * d));
  {
    std::vector<double> mean(static_cast<std::size_t>(d), 0.0);
    const T* x = z.data();
    for (std::int64_t r = 0; r < n; ++r)
      for (std::int64_t j = 0; j < d; ++j) mean[j] += x[r * d + j];
    for (auto& m : mean) m /= static_cast<double>(n);
    for (std::int64_t r = 0; r < n; ++r)
      for (std::int64_t j = 0; j < d; ++j) (*zc)[r * d + j] = static_cast<T>(x[r * d + j] - mean[j]);
  }
  auto c = std::make_shared<std::vector<T>>(static_cast<std::size_t>(d * d));
  // C = Zc^T Zc / (N - 1): Zc stored [N, D], so A' = Zc^T (trans_a) and B' = Zc.
  ops::cpu::gemm<T>(c->data(), zc->data(), zc->data(), d, d, n, true, false, T(0));
  const T inv = T(1) / static_cast<T>(n - 1);
  double acc = 0;
  for (std::int64_t i = 0; i < d; ++i) {
    T* row = c->data() + i * d;
    for (std::int64_t j = 0; j < d; ++j) {
      row[j] *= inv;
      if (j != i) acc += static_cast<double>(row[j]) * row[j];
    }
    row[i] = T(0);  // G: the diagonal does not enter the loss
  }
  tensor<T> y = tensor<T>::full(shape{}, static_cast<T>(acc / static_cast<double>(d)));
  tp.record({z}, y, [zc, c, n, d](grad_slots<T>& g, const tensor<T>& dy) {
    if (!g.needed(0)) return;
    const T k = dy[0] * T(4) / static_cast<T>(static_cast<double>(d) * static_cast<double>(n - 1));
    std::vector<T> dzc(static_cast<std::size_t>(n * d));
    ops::cpu::gemm<T>(dzc.data(), zc->data(), c->data(), n, d, d, false, false, T(0));  // Zc G
    std::vector<double> colmean(static_cast<std::size_t>(d), 0.0);
    for (std::int64_t r = 0; r < n; ++r)
      for (std::int64_t j = 0; j < d; ++j) colmean[j] += dzc[r * d + j];
    T* dz = g[0].data();
    for (std::int64_t r = 0; r < n; ++r)
      for (std::int64_t j = 0; j < d; ++j)
        dz[r * d + j] += k * static_cast<T>(dzc[r * d + j] - colmean[j] / static_cast<double>(n));
  });
  return y;
}
}  // namespace detail

struct vicreg {
  static constexpr std::string_view name = "vicreg";
  double sim_weight = 25.0;  // invariance
  double var_weight = 25.0;  // variance hinge
  double cov_weight = 1.0;   // off-diagonal covariance
  double gamma = 1.0;        // target per-dimension standard deviation
  double eps = 1e-4;         // inside the sqrt of the variance term

  // mean (z1 - z2)^2 over all N*D entries.
  template <real T>
  static tensor<T> invariance(tape<T>& tp, const tensor<T>& z1, const tensor<T>& z2) {
    const tensor<T> diff = ops::sub(tp, z1, z2);
    return ops::mean(tp, ops::mul(tp, diff, diff));
  }
  // One branch: mean_j relu(gamma - sqrt(var_unbiased(z[:, j]) + eps)).
  template <real T>
  tensor<T> variance(tape<T>& tp, const tensor<T>& z) const {
    const tensor<T> sd = ops::sqrt(tp, ops::add_scalar(tp, ops::var(tp, z, {0}, true), static_cast<T>(eps)));
    return ops::mean(tp, ops::relu(tp, ops::add_scalar(tp, ops::neg(tp, sd), static_cast<T>(gamma))));
  }
  // One branch: (1/D) sum_{i != j} Cov(z)[i, j]^2.
  template <real T>
  static tensor<T> covariance(tape<T>& tp, const tensor<T>& z) {
    return detail::offdiag_cov_sq(tp, z);
  }

  template <real T>
  named_loss<T> evaluate(tape<T>& tp, const tensor<T>& z1, const tensor<T>& z2) const {
    check_rank("vicreg", z1, 2, "z1");
    check_rank("vicreg", z2, 2, "z2");
    check_same_shape("vicreg", z1, z2);
    SSLGATE_CHECK(z1.dim(0) >= 2, shape_error, "vicreg",
                  "needs at least 2 samples per branch (unbiased variance and covariance), got z1 {} and z2 {}", z1.dims(), z2.dims());
    const tensor<T> inv = invariance(tp, z1, z2);
    const tensor<T> var = ops::add(tp, variance(tp, z1), variance(tp, z2));
    const tensor<T> cov = ops::add(tp, covariance(tp, z1), covariance(tp, z2));
    tensor<T> total = ops::add(tp, ops::add(tp, ops::scale(tp, inv, sim_weight), ops::scale(tp, var, var_weight)),
                               ops::scale(tp, cov, cov_weight));
    return {total, {{"invariance", inv}, {"variance", var}, {"covariance", cov}}};
  }
  template <real T>
  tensor<T> operator()(tape<T>& tp, const tensor<T>& z1, const tensor<T>& z2) const {
    return evaluate(tp, z1, z2).total;
  }
};

}  // namespace sslgate::losses
