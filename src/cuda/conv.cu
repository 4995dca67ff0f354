// Host side of our convolution kernels (dense and gated) and of the per-sample channel lists.
#include <sslgate/core/cuda/check.hpp>
#include <sslgate/core/cuda/ops.hpp>
#include <sslgate/core/cuda/runtime.hpp>
#include <sslgate/core/cuda/stream.hpp>
#include <sslgate/ops/cuda/conv.cuh>

namespace sslgate::cuda {

namespace {

kern::conv_g cg(const char* op, const conv_geom& g) {
  SSLGATE_CHECK(g.n > 0 && g.c_in > 0 && g.h > 0 && g.w > 0 && g.c_out > 0 && g.kh > 0 && g.kw > 0 && g.stride > 0 && g.pad >= 0, value_error, op,
                "bad geometry n={} c_in={} h={} w={} c_out={} k={}x{} stride={} pad={}", g.n, g.c_in, g.h, g.w, g.c_out, g.kh, g.kw, g.stride,
                g.pad);
  SSLGATE_CHECK(g.out_h() > 0 && g.out_w() > 0, shape_error, op, "input {}x{} is smaller than kernel {}x{} with padding {}", g.h, g.w, g.kh,
                g.kw, g.pad);
  SSLGATE_CHECK(g.n <= 65535, value_error, op, "batch {} exceeds 65535", g.n);
  return {g.n, g.c_in, g.h, g.w, g.c_out, g.kh, g.kw, g.stride, g.pad, g.out_h(), g.out_w()};
}

dim3 igemm_grid(const kern::conv_g& g) {
  return dim3(static_cast<unsigned>((g.oh * g.ow + kern::conv_bn - 1) / kern::conv_bn), static_cast<unsigned>((g.c_out + kern::conv_bm - 1) / kern::conv_bm),
              static_cast<unsigned>(g.n));
}

void check_lists(const char* op, const active_lists& a, int n, int c) {
  SSLGATE_CHECK(a.n() == n && a.c() == c, shape_error, op, "channel lists for [{}, {}] given to a layer of [{}, {}]", a.n(), a.c(), n, c);
}

}  // namespace

active_lists::active_lists(const float* mask, int n, int c) : n_(n), c_(c) {
  int dev = 0;
  SSLGATE_CUDA_CHECK("active_channels", cudaGetDevice(&dev));
  const std::size_t ints = static_cast<std::size_t>(n) * (2 * static_cast<std::size_t>(c) + 1);
  buf_ = std::make_shared<storage>(ints * sizeof(int), device{device_kind::cuda, dev});
  int* p = static_cast<int*>(buf_->data());
  count_ = p;
  index_ = p + n;
  open_ = p + n + static_cast<std::size_t>(n) * c;
  kern::active_lists_kernel<<<kern::blocks_for(n), kern::threads, 0, stream()>>>(p, p + n, p + n + static_cast<std::size_t>(n) * c, mask, n, c);
  SSLGATE_CUDA_LAUNCHED("active_channels");
}

void conv2d_forward(float* y, const float* x, const float* w, const conv_geom& geom) {
  const auto g = cg("conv2d", geom);
  kern::conv_igemm_kernel<false, false><<<igemm_grid(g), 256, 0, stream()>>>(y, x, w, g, nullptr, nullptr, nullptr, nullptr);
  SSLGATE_CUDA_LAUNCHED("conv2d");
}

void conv2d_backward_data(float* dx, const float* dy, const float* w, const conv_geom& geom) {
  const auto g = cg("conv2d backward data", geom);
  const std::int64_t total = static_cast<std::int64_t>(g.n) * g.c_in * g.h * g.w;
  kern::conv_backward_data_kernel<<<kern::blocks_for(total), kern::threads, 0, stream()>>>(dx, dy, w, g);
  SSLGATE_CUDA_LAUNCHED("conv2d backward data");
}

void conv2d_backward_weight(float* dw, const float* dy, const float* x, const conv_geom& geom) {
  const auto g = cg("conv2d backward weight", geom);
  const std::int64_t elems = static_cast<std::int64_t>(g.c_out) * g.c_in * g.kh * g.kw;
  kern::conv_backward_weight_kernel<<<static_cast<unsigned>(elems), 128, 0, stream()>>>(dw, dy, x, g, nullptr);
  SSLGATE_CUDA_LAUNCHED("conv2d backward weight");
}

void conv2d_gated_input_forward(float* y, const float* x, const float* w, const conv_geom& geom, const active_lists& a) {
  const auto g = cg("conv2d_gated_input", geom);
  check_lists("conv2d_gated_input", a, g.n, g.c_in);
  kern::conv_igemm_kernel<true, false><<<igemm_grid(g), 256, 0, stream()>>>(y, x, w, g, a.count(), a.index(), nullptr, nullptr);
  SSLGATE_CUDA_LAUNCHED("conv2d_gated_input");
}

void conv2d_gated_input_backward_weight(float* dw, const float* dy, const float* x, const conv_geom& geom, const active_lists& a) {
  const auto g = cg("conv2d_gated_input backward weight", geom);
  check_lists("conv2d_gated_input backward weight", a, g.n, g.c_in);
  const std::int64_t elems = static_cast<std::int64_t>(g.c_out) * g.c_in * g.kh * g.kw;
  kern::conv_backward_weight_kernel<<<static_cast<unsigned>(elems), 128, 0, stream()>>>(dw, dy, x, g, a.open());
  SSLGATE_CUDA_LAUNCHED("conv2d_gated_input backward weight");
}

void conv2d_gated_output_forward(float* y, const float* x, const float* w, const float* scale, const float* shift, const conv_geom& geom,
                                 const active_lists& a) {
  const auto g = cg("conv2d_gated_output", geom);
  check_lists("conv2d_gated_output", a, g.n, g.c_out);
  kern::conv_igemm_kernel<false, true><<<igemm_grid(g), 256, 0, stream()>>>(y, x, w, g, a.count(), a.index(), scale, shift);
  const std::int64_t plane = static_cast<std::int64_t>(g.oh) * g.ow, planes = static_cast<std::int64_t>(g.n) * g.c_out;
  kern::zero_closed_kernel<<<kern::blocks_for(planes * plane), kern::threads, 0, stream()>>>(y, a.open(), planes, plane);
  SSLGATE_CUDA_LAUNCHED("conv2d_gated_output");
}

}  // namespace sslgate::cuda
