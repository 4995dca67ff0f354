#pragma once
// For the compiled CUDA part only (needs cuda_runtime.h): the stream and cuBLAS handle of the current device,
// and a scoped device switch.
#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace sslgate::cuda {

cudaStream_t stream();   // the current stream of the current device (cuda::current_stream())
cublasHandle_t blas();   // this thread's cuBLAS handle for the current device, bound to stream()

class device_guard {     // makes `index` current for its lifetime
 public:
  explicit device_guard(int index);
  ~device_guard();
  device_guard(const device_guard&) = delete;
  device_guard& operator=(const device_guard&) = delete;

 private:
  int previous_ = 0;
};

}  // namespace sslgate::cuda
