#pragma once
// Singular values of a row-major [n, d] matrix, through Eigen (with gemm.hpp, the only Eigen includes).
//   singular_values(x, n, d)       BDCSVD of the data in double, values only, descending
//   gram_singular_values(x, n, d)  sqrt of the eigenvalues of the smaller Gram matrix (X^T X or X X^T),
//                                  in double, descending, negatives from rounding clamped to 0. Cheaper for
//                                  tall data (O(n d min(n, d)) instead of a full SVD) but it squares the
//                                  condition number: singular values below ~1e-8 * max are not resolved.
#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <Eigen/SVD>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

namespace sslgate::ops::cpu {

template <class T>
Eigen::MatrixXd to_double_matrix(const T* x, std::int64_t n, std::int64_t d) {
  using mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  return Eigen::Map<const mat>(x, n, d).template cast<double>();
}

template <class T>
std::vector<double> singular_values(const T* x, std::int64_t n, std::int64_t d) {
  if (n == 0 || d == 0) return {};
  const Eigen::MatrixXd a = to_double_matrix(x, n, d);
  Eigen::BDCSVD<Eigen::MatrixXd> svd(a);  // no U, V
  const Eigen::VectorXd s = svd.singularValues();
  return {s.data(), s.data() + s.size()};
}

template <class T>
std::vector<double> gram_singular_values(const T* x, std::int64_t n, std::int64_t d) {
  if (n == 0 || d == 0) return {};
  const Eigen::MatrixXd a = to_double_matrix(x, n, d);
  Eigen::MatrixXd g = n >= d ? Eigen::MatrixXd(a.transpose() * a) : Eigen::MatrixXd(a * a.transpose());
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(g, Eigen::EigenvaluesOnly);
  const Eigen::VectorXd ev = es.eigenvalues();  // ascending
  std::vector<double> s(static_cast<std::size_t>(ev.size()));
  for (Eigen::Index i = 0; i < ev.size(); ++i) s[static_cast<std::size_t>(ev.size() - 1 - i)] = std::sqrt(std::max(ev[i], 0.0));
  return s;
}

}  // namespace sslgate::ops::cpu
