#pragma once
// Checked CUDA / cuBLAS calls for the compiled CUDA part (src/cuda, src/cudnn). Each macro names the op:
//   SSLGATE_CUDA_CHECK("conv2d", cudaMemcpyAsync(...))  ->  sslgate::error("conv2d: cudaMemcpyAsync(...) failed: <reason>")
// Kernel launches are checked with SSLGATE_CUDA_LAUNCHED(op) (cudaGetLastError after the launch).
#include <sslgate/core/error.hpp>

#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace sslgate::cuda::detail {

[[noreturn]] inline void fail_call(const char* op, const char* call, const char* reason, const char* file, int line) {
  throw error(fmt::format("{}: {} failed: {} ({}:{})", op, call, reason, file, line));
}

inline const char* cublas_reason(cublasStatus_t s) { return cublasGetStatusString(s); }

}  // namespace sslgate::cuda::detail

#define SSLGATE_CUDA_CHECK(op, call)                                                                    \
  do {                                                                                                  \
    const cudaError_t sslgate_e_ = (call);                                                              \
    if (sslgate_e_ != cudaSuccess) [[unlikely]]                                                         \
      ::sslgate::cuda::detail::fail_call(op, #call, cudaGetErrorString(sslgate_e_), __FILE__, __LINE__); \
  } while (0)

#define SSLGATE_CUDA_LAUNCHED(op) SSLGATE_CUDA_CHECK(op, cudaGetLastError())

#define SSLGATE_CUBLAS_CHECK(op, call)                                                                          \
  do {                                                                                                          \
    const cublasStatus_t sslgate_s_ = (call);                                                                   \
    if (sslgate_s_ != CUBLAS_STATUS_SUCCESS) [[unlikely]]                                                       \
      ::sslgate::cuda::detail::fail_call(op, #call, ::sslgate::cuda::detail::cublas_reason(sslgate_s_), __FILE__, __LINE__); \
  } while (0)
