#pragma once
// Barlow Twins (Zbontar et al. 2021; solo-learn's barlow_loss_func, METHOD.md §5.2).
//   z1, z2: [N, D] (N >= 2) -> total [] and the unweighted terms on_diag, off_diag
//   each branch is standardized over the batch by a NON-affine BatchNorm1d in train mode: mean and the
//   BIASED variance (divide by N, as PyTorch's BN normalizes), eps 1e-5 inside the sqrt;
//   C = z1n^T z2n / N                                            [D, D] cross-correlation
//   on_diag  = sum_i (1 - C_ii)^2,   off_diag = sum_{i != j} C_ij^2
//   total    = scale * (on_diag + lambda_offdiag * off_diag)     (scale 0.024, lambda_offdiag 0.0051)
// Because of the standardization the loss is invariant to a per-feature affine map a*z + b (a > 0) of
// either branch, up to the eps (tested at 1e-5).
#include <sslgate/losses/loss_terms.hpp>
#include <sslgate/ops/batchnorm.hpp>
#include <sslgate/ops/linalg.hpp>
#include <sslgate/ops/shape_ops.hpp>

#include <string_view>

namespace sslgate::losses {

namespace detail {
// C: [D, D] -> [2] = {sum_i (1 - C_ii)^2, sum_{i != j} C_ij^2}; backward dC_ii = -2 (1 - C_ii) dy0,
// dC_ij = 2 C_ij dy1 (i != j). Naive loop: for i, j: (i == j ? on : off) += (i == j ? (1 - c)^2 : c^2).
template <real T>
tensor<T> barlow_diag_offdiag(tape<T>& tp, const tensor<T>& c) {
  check_rank("barlow_twins", c, 2, "cross-correlation");
  const std::int64_t d = c.dim(0);
  SSLGATE_CHECK(c.dim(1) == d, shape_error, "barlow_twins", "cross-correlation must be square, got {}", c.dims());
  if (ops::on_device("barlow_twins", c)) {
    // The same two sums from tape ops on the device, with the identity as a mask.
    tensor<T> eye = tensor<T>::zeros(shape{d, d});
    for (std::int64_t i = 0; i < d; ++i) eye[i * d + i] = T(1);
    tensor<T> offdiag = tensor<T>::full(shape{d, d}, T(1));
    for (std::int64_t i = 0; i < d; ++i) offdiag[i * d + i] = T(0);
    eye = eye.to(c.dev());
    offdiag = offdiag.to(c.dev());
    const tensor<T> miss = ops::sub(tp, eye, ops::mul(tp, c, eye)), rest = ops::mul(tp, c, offdiag);
    return ops::concat(tp, {ops::reshape(tp, ops::sum(tp, ops::mul(tp, miss, miss)), shape{1}), ops::reshape(tp, ops::sum(tp, ops::mul(tp, rest, rest)), shape{1})}, 0);
  }
  double on = 0, off = 0;
  const T* p = c.data();
  for (std::int64_t i = 0; i < d; ++i)
    for (std::int64_t j = 0; j < d; ++j) {
      const double v = p[i * d + j];
      if (i == j) on += (1 - v) * (1 - v);
      else off += v * v;
    }
  tensor<T> y = tensor<T>::from(shape{2}, {static_cast<T>(on), static_cast<T>(off)});
  tp.record({c}, y, [c, d](grad_slots<T>& g, const tensor<T>& dy) {
    if (!g.needed(0)) return;
    const T* p = c.data();
    T* dc = g[0].data();
    const T d_on = dy[0], d_off = dy[1];
    for (std::int64_t i = 0; i < d; ++i)
      for (std::int64_t j = 0; j < d; ++j) {
        const T v = p[i * d + j];
        dc[i * d + j] += i == j ? T(-2) * (T(1) - v) * d_on : T(2) * v * d_off;
      }
  });
  return y;
}
}  // namespace detail

struct barlow_twins {
  static constexpr std::string_view name = "barlow_twins";
  double lambda_offdiag = 0.0051;
  double scale = 0.024;
  double bn_eps = 1e-5;

  // Per-branch batch standardization: non-affine BN in train mode, biased variance, no running stats.
  template <real T>
  tensor<T> standardize(tape<T>& tp, const tensor<T>& z) const {
    tensor<T> none_mean, none_var;
    return ops::batchnorm(tp, z, tensor<T>{}, tensor<T>{}, none_mean, none_var, true, 0.1, bn_eps);
  }
  // C = standardize(z1)^T standardize(z2) / N.
  template <real T>
  tensor<T> cross_correlation(tape<T>& tp, const tensor<T>& z1, const tensor<T>& z2) const {
    return ops::scale(tp, ops::matmul(tp, standardize(tp, z1), standardize(tp, z2), true, false), 1.0 / static_cast<double>(z1.dim(0)));
  }

  template <real T>
  named_loss<T> evaluate(tape<T>& tp, const tensor<T>& z1, const tensor<T>& z2) const {
    check_rank("barlow_twins", z1, 2, "z1");
    check_rank("barlow_twins", z2, 2, "z2");
    check_same_shape("barlow_twins", z1, z2);
    SSLGATE_CHECK(z1.dim(0) >= 2, shape_error, "barlow_twins", "needs at least 2 samples for the batch standardization, got z1 {}",
                  z1.dims());
    const tensor<T> both = detail::barlow_diag_offdiag(tp, cross_correlation(tp, z1, z2));
    const tensor<T> on = ops::reshape(tp, ops::slice(tp, both, 0, 0, 1), shape{});
    const tensor<T> off = ops::reshape(tp, ops::slice(tp, both, 0, 1, 2), shape{});
    tensor<T> total = ops::scale(tp, ops::add(tp, on, ops::scale(tp, off, lambda_offdiag)), scale);
    return {total, {{"on_diag", on}, {"off_diag", off}}};
  }
  template <real T>
  tensor<T> operator()(tape<T>& tp, const tensor<T>& z1, const tensor<T>& z2) const {
    return evaluate(tp, z1, z2).total;
  }
};

}  // namespace sslgate::losses
