#pragma once
// GEMM on row-major buffers through Eigen: the only file of the library that includes Eigen.
//   C[M, N] = beta * C + A' B'   with A' = A [M, K] or A^T (A stored [K, M]), B' = B [K, N] or B^T (B stored [N, K]).
// Eigen parallelizes large products with OpenMP itself.
#include <Eigen/Core>

namespace sslgate::ops::cpu {

template <class T>
void gemm(T* c, const T* a, const T* b, long m, long n, long k, bool trans_a, bool trans_b, T beta) {
  using mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using cmap = Eigen::Map<const mat>;
  Eigen::Map<mat> C(c, m, n);
  auto run = [&](const auto& A, const auto& B) {
    if (beta == T(0)) {
      C.noalias() = A * B;
    } else {
      if (beta != T(1)) C *= beta;
      C.noalias() += A * B;
    }
  };
  auto with_a = [&](const auto& A) {
    if (trans_b) run(A, cmap(b, n, k).transpose());
    else run(A, cmap(b, k, n));
  };
  if (trans_a) with_a(cmap(a, k, m).transpose());
  else with_a(cmap(a, m, k));
}

}  // namespace sslgate::ops::cpu
