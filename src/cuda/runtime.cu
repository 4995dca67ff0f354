// The CUDA runtime side: caching device allocator, streams, host<->device copies, cuBLAS GEMM.
// Installs itself as the cuda backend of core/storage.hpp (see core/cuda/runtime.hpp).
#include <sslgate/core/cuda/check.hpp>
#include <sslgate/core/cuda/ops.hpp>
#include <sslgate/core/cuda/runtime.hpp>
#include <sslgate/core/cuda/stream.hpp>

#include <array>
#include <cstring>
#include <memory>
#include <mutex>

namespace sslgate::cuda {

namespace {

constexpr int max_devices = 16;

// The library's caching allocator over cudaMalloc/cudaFree, one per device: a training step allocates the
// same sizes every time, so the steady state makes no cudaMalloc/cudaFree calls (which synchronize the device).
// Never destroyed: storage may be released during static destruction, after the driver shut down.
caching_allocator& cache(int index) {
  SSLGATE_CHECK(index >= 0 && index < max_devices, value_error, "storage", "device index {} out of range", index);
  static auto* caches = [] {
    auto* a = new std::array<std::unique_ptr<caching_allocator>, max_devices>();
    for (int d = 0; d < max_devices; ++d)
      (*a)[static_cast<std::size_t>(d)] = std::make_unique<caching_allocator>(
          "cuda:" + std::to_string(d), 512,
          [d](std::size_t n) -> void* {
            device_guard g(d);
            void* p = nullptr;
            if (cudaMalloc(&p, n) == cudaSuccess) return p;
            (void)cudaGetLastError();  // clear the error; the allocator empties its cache and retries
            return nullptr;
          },
          [d](void* p) {
            device_guard g(d);
            (void)cudaDeviceSynchronize();  // queued kernels of the library's stream may still read the block
            (void)cudaFree(p);
          });
    return a;
  }();
  return *(*caches)[static_cast<std::size_t>(index)];
}

struct per_device {
  cudaStream_t own = nullptr;
  cudaStream_t current = nullptr;
  cublasHandle_t blas = nullptr;
};
per_device& state() {
  static thread_local std::array<per_device, max_devices> s{};
  int d = 0;
  SSLGATE_CUDA_CHECK("cuda", cudaGetDevice(&d));
  return s[static_cast<std::size_t>(d)];
}

void* backend_allocate(std::size_t bytes, int index) { return cache(index).allocate(bytes); }
void backend_release(void* p, std::size_t bytes, int index) { cache(index).release(p, bytes); }

void backend_copy(void* dst, device dd, const void* src, device sd, std::size_t bytes) {
  if (bytes == 0) return;
  const bool dc = dd.kind == device_kind::cuda, sc = sd.kind == device_kind::cuda;
  const cudaMemcpyKind kind = dc && sc ? cudaMemcpyDeviceToDevice : dc ? cudaMemcpyHostToDevice : sc ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost;
  device_guard g(dc ? dd.index : sd.index);
  cudaStream_t s = stream();
  SSLGATE_CUDA_CHECK("tensor::copy", cudaMemcpyAsync(dst, src, bytes, kind, s));
  // Host memory is pageable and may be reused as soon as we return: copies that touch the host complete here.
  if (kind != cudaMemcpyDeviceToDevice) SSLGATE_CUDA_CHECK("tensor::copy", cudaStreamSynchronize(s));
}

__global__ void fill4_kernel(std::uint32_t* p, std::size_t n, std::uint32_t v) {
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < n; i += std::size_t{gridDim.x} * blockDim.x) p[i] = v;
}
__global__ void fill8_kernel(std::uint64_t* p, std::size_t n, std::uint64_t v) {
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < n; i += std::size_t{gridDim.x} * blockDim.x) p[i] = v;
}

void backend_fill(void* p, device dev, std::size_t count, const void* value, std::size_t elem_size) {
  if (count == 0) return;
  device_guard g(dev.index);
  const unsigned blocks = static_cast<unsigned>(std::min<std::size_t>((count + 255) / 256, 65535));
  if (elem_size == 4) {
    std::uint32_t v;
    std::memcpy(&v, value, 4);
    fill4_kernel<<<blocks, 256, 0, stream()>>>(static_cast<std::uint32_t*>(p), count, v);
  } else if (elem_size == 8) {
    std::uint64_t v;
    std::memcpy(&v, value, 8);
    fill8_kernel<<<blocks, 256, 0, stream()>>>(static_cast<std::uint64_t*>(p), count, v);
  } else {
    fail<value_error>("tensor::fill", "element size {} is not supported on the GPU", elem_size);
  }
  SSLGATE_CUDA_LAUNCHED("tensor::fill");
}

constexpr device_backend the_backend{backend_allocate, backend_release, backend_copy, backend_fill};

}  // namespace

device_guard::device_guard(int index) {
  SSLGATE_CUDA_CHECK("cuda", cudaGetDevice(&previous_));
  if (index != previous_) SSLGATE_CUDA_CHECK("cuda", cudaSetDevice(index));
}
device_guard::~device_guard() { (void)cudaSetDevice(previous_); }

cudaStream_t stream() {
  per_device& s = state();
  if (s.current != nullptr) return s.current;
  if (s.own == nullptr) SSLGATE_CUDA_CHECK("cuda::stream", cudaStreamCreateWithFlags(&s.own, cudaStreamNonBlocking));
  return s.own;
}

cublasHandle_t blas() {
  per_device& s = state();
  if (s.blas == nullptr) {
    SSLGATE_CUBLAS_CHECK("gemm", cublasCreate(&s.blas));
    // Full float32: no TF32 tensor cores (the CPU results are the reference).
    SSLGATE_CUBLAS_CHECK("gemm", cublasSetMathMode(s.blas, CUBLAS_PEDANTIC_MATH));
  }
  SSLGATE_CUBLAS_CHECK("gemm", cublasSetStream(s.blas, stream()));
  return s.blas;
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

std::string device_name(int index) {
  cudaDeviceProp p{};
  SSLGATE_CUDA_CHECK("cuda::device_name", cudaGetDeviceProperties(&p, index));
  return p.name;
}

void set_device(int index) { SSLGATE_CUDA_CHECK("cuda::set_device", cudaSetDevice(index)); }
void synchronize() { SSLGATE_CUDA_CHECK("cuda::synchronize", cudaStreamSynchronize(stream())); }
stream_handle current_stream() { return stream(); }
void set_current_stream(stream_handle s) { state().current = static_cast<cudaStream_t>(s); }

allocator_stats allocator_statistics(int index) { return cache(index).stats(); }
void empty_cache(int index) { cache(index).empty_cache(); }

void install_backend() { cuda_backend() = &the_backend; }

void gemm(float* c, const float* a, const float* b, long m, long n, long k, bool trans_a, bool trans_b, float beta) {
  if (m == 0 || n == 0) return;
  // Row-major C = A'B' is column-major C^T = B'^T A'^T: swap the operands, keep each one's transpose flag.
  const float one = 1.f;
  const int lda = static_cast<int>(trans_a ? m : k), ldb = static_cast<int>(trans_b ? k : n);
  SSLGATE_CUBLAS_CHECK("gemm", cublasSgemm(blas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                           static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &one, b, ldb, a, lda, &beta, c,
                                           static_cast<int>(n)));
}

}  // namespace sslgate::cuda
