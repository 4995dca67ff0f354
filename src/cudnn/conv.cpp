// Dense convolutions through cuDNN's convolution API (host-compiled: cuDNN stays out of .cu files).
// Algorithms come from cuDNN's heuristics (cudnnGet*Algorithm_v7), first one whose workspace fits, cached per
// geometry; workspaces come from the caching device allocator. Math: FMA only (full float32) unless
// allow_tf32, which lets cuDNN use TF32 tensor cores (benchmarks only; the tests compare against the CPU).
#include <sslgate/core/cuda/check.hpp>
#include <sslgate/core/cuda/ops.hpp>
#include <sslgate/core/cuda/runtime.hpp>
#include <sslgate/core/cuda/stream.hpp>

#if SSLGATE_WITH_CUDNN
#include <cudnn.h>

#include <map>
#include <mutex>
#include <tuple>
#endif

namespace sslgate::cuda::cudnn {

#if SSLGATE_WITH_CUDNN

namespace {

#define SSLGATE_CUDNN_CHECK(op, call)                                                                         \
  do {                                                                                                        \
    const cudnnStatus_t sslgate_s_ = (call);                                                                  \
    if (sslgate_s_ != CUDNN_STATUS_SUCCESS) [[unlikely]]                                                      \
      ::sslgate::cuda::detail::fail_call(op, #call, cudnnGetErrorString(sslgate_s_), __FILE__, __LINE__);      \
  } while (0)

cudnnHandle_t handle() {
  static thread_local std::map<int, cudnnHandle_t> handles;
  int dev = 0;
  SSLGATE_CUDA_CHECK("cudnn", cudaGetDevice(&dev));
  auto [it, fresh] = handles.try_emplace(dev, nullptr);
  if (fresh) SSLGATE_CUDNN_CHECK("cudnn", cudnnCreate(&it->second));
  SSLGATE_CUDNN_CHECK("cudnn", cudnnSetStream(it->second, stream()));
  return it->second;
}

// The four descriptors of one geometry.
struct descs {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  descs(const char* op, const conv_geom& g, bool tf32) {
    SSLGATE_CUDNN_CHECK(op, cudnnCreateTensorDescriptor(&x));
    SSLGATE_CUDNN_CHECK(op, cudnnCreateTensorDescriptor(&y));
    SSLGATE_CUDNN_CHECK(op, cudnnCreateFilterDescriptor(&w));
    SSLGATE_CUDNN_CHECK(op, cudnnCreateConvolutionDescriptor(&conv));
    SSLGATE_CUDNN_CHECK(op, cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, g.n, g.c_in, g.h, g.w));
    SSLGATE_CUDNN_CHECK(op, cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, g.n, g.c_out, g.out_h(), g.out_w()));
    SSLGATE_CUDNN_CHECK(op, cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, g.c_out, g.c_in, g.kh, g.kw));
    SSLGATE_CUDNN_CHECK(op, cudnnSetConvolution2dDescriptor(conv, g.pad, g.pad, g.stride, g.stride, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    SSLGATE_CUDNN_CHECK(op, cudnnSetConvolutionMathType(conv, tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
  }
  ~descs() {
    cudnnDestroyConvolutionDescriptor(conv);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyTensorDescriptor(x);
  }
  descs(const descs&) = delete;
  descs& operator=(const descs&) = delete;
};

using key = std::tuple<int, int, int, int, int, int, int, int, int, int, bool>;  // pass, geometry, tf32
key make_key(int pass, const conv_geom& g, bool tf32) { return {pass, g.n, g.c_in, g.h, g.w, g.c_out, g.kh, g.kw, g.stride, g.pad, tf32}; }

// Heuristic choice, cached: (algorithm, workspace bytes).
template <class Perf, class Get>
std::pair<int, std::size_t> choose(const char* op, const key& k, Get get) {
  static std::mutex mu;
  static std::map<key, std::pair<int, std::size_t>> cache;
  std::lock_guard lock(mu);
  if (auto it = cache.find(k); it != cache.end()) return it->second;
  Perf perf[16];
  int found = 0;
  get(perf, 16, &found);
  for (int i = 0; i < found; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS) return cache[k] = {static_cast<int>(perf[i].algo), perf[i].memory};
  fail(op, "cuDNN offers no algorithm for this geometry");
}

struct workspace {
  explicit workspace(std::size_t bytes) {
    if (bytes == 0) return;
    int dev = 0;
    SSLGATE_CUDA_CHECK("cudnn", cudaGetDevice(&dev));
    buf = std::make_unique<storage>(bytes, device{device_kind::cuda, dev});
  }
  void* data() const { return buf ? buf->data() : nullptr; }
  std::unique_ptr<storage> buf;
};

}  // namespace

int version() { return static_cast<int>(cudnnGetVersion()); }

void conv2d_forward(float* y, const float* x, const float* w, const conv_geom& g, bool allow_tf32) {
  constexpr const char* op = "cudnn conv2d";
  descs d(op, g, allow_tf32);
  cudnnHandle_t h = handle();
  const auto [algo, bytes] = choose<cudnnConvolutionFwdAlgoPerf_t>(op, make_key(0, g, allow_tf32), [&](auto* perf, int n, int* found) {
    SSLGATE_CUDNN_CHECK(op, cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y, n, found, perf));
  });
  workspace ws(bytes);
  const float one = 1.f, zero = 0.f;
  SSLGATE_CUDNN_CHECK(op, cudnnConvolutionForward(h, &one, d.x, x, d.w, w, d.conv, static_cast<cudnnConvolutionFwdAlgo_t>(algo), ws.data(), bytes,
                                                  &zero, d.y, y));
}

void conv2d_backward_data(float* dx, const float* dy, const float* w, const conv_geom& g, bool allow_tf32) {
  constexpr const char* op = "cudnn conv2d backward data";
  descs d(op, g, allow_tf32);
  cudnnHandle_t h = handle();
  const auto [algo, bytes] = choose<cudnnConvolutionBwdDataAlgoPerf_t>(op, make_key(1, g, allow_tf32), [&](auto* perf, int n, int* found) {
    SSLGATE_CUDNN_CHECK(op, cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w, d.y, d.conv, d.x, n, found, perf));
  });
  workspace ws(bytes);
  const float one = 1.f;
  SSLGATE_CUDNN_CHECK(op, cudnnConvolutionBackwardData(h, &one, d.w, w, d.y, dy, d.conv, static_cast<cudnnConvolutionBwdDataAlgo_t>(algo),
                                                       ws.data(), bytes, &one, d.x, dx));
}

void conv2d_backward_weight(float* dw, const float* dy, const float* x, const conv_geom& g, bool allow_tf32) {
  constexpr const char* op = "cudnn conv2d backward weight";
  descs d(op, g, allow_tf32);
  cudnnHandle_t h = handle();
  const auto [algo, bytes] = choose<cudnnConvolutionBwdFilterAlgoPerf_t>(op, make_key(2, g, allow_tf32), [&](auto* perf, int n, int* found) {
    SSLGATE_CUDNN_CHECK(op, cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x, d.y, d.conv, d.w, n, found, perf));
  });
  workspace ws(bytes);
  const float one = 1.f;
  SSLGATE_CUDNN_CHECK(op, cudnnConvolutionBackwardFilter(h, &one, d.x, x, d.y, dy, d.conv, static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo),
                                                         ws.data(), bytes, &one, d.w, dw));
}

#else  // built without cuDNN

int version() { fail("cudnn", "this build has no cuDNN (SSLGATE_WITH_CUDNN is 0)"); }
void conv2d_forward(float*, const float*, const float*, const conv_geom&, bool) { version(); }
void conv2d_backward_data(float*, const float*, const float*, const conv_geom&, bool) { version(); }
void conv2d_backward_weight(float*, const float*, const float*, const conv_geom&, bool) { version(); }

#endif

}  // namespace sslgate::cuda::cudnn
