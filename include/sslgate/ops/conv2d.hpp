#pragma once
// 2-D convolution (cross-correlation, as PyTorch), NCHW, no bias.
//   x: [N, C_in, H, W], w: [C_out, C_in, KH, KW] -> y: [N, C_out, H', W'], H' = floor((H + 2p - KH) / s) + 1
// The kernels (ops/cpu/conv2d.hpp) pick Winograd, a direct or an im2col algorithm per shape.
#include <sslgate/ops/cpu/conv2d.hpp>
#include <sslgate/ops/elementwise.hpp>

namespace sslgate::ops {

template <real T>
cpu::conv2d_params conv2d_geometry(const tensor<T>& x, const tensor<T>& w, int stride, int padding) {
  check_rank("conv2d", x, 4, "input");
  check_rank("conv2d", w, 4, "weight");
  SSLGATE_CHECK(x.dim(1) == w.dim(1), shape_error, "conv2d", "input {} has {} channels but weight {} expects {}", x.dims(), x.dim(1),
                w.dims(), w.dim(1));
  SSLGATE_CHECK(stride >= 1 && padding >= 0, value_error, "conv2d", "stride {} and padding {} must be >= 1 and >= 0", stride, padding);
  cpu::conv2d_params p{static_cast<int>(x.dim(0)), static_cast<int>(x.dim(1)), static_cast<int>(x.dim(2)), static_cast<int>(x.dim(3)),
                       static_cast<int>(w.dim(0)), static_cast<int>(w.dim(2)), static_cast<int>(w.dim(3)), stride, stride, padding, padding};
  SSLGATE_CHECK(p.out_h() > 0 && p.out_w() > 0, shape_error, "conv2d", "input {} is smaller than kernel {} with padding {}", x.dims(),
                w.dims(), padding);
  return p;
}

namespace detail {
inline cuda::conv_geom device_geometry(const cpu::conv2d_params& p) {
  return {p.n, p.c_in, p.h, p.w, p.c_out, p.kh, p.kw, p.stride_h, p.pad_h};
}

// Dense convolutions on the GPU: cuDNN where the build has it, else our implicit GEMM. Backward adds.
struct device_conv {
  static void forward(float* y, const float* x, const float* w, const cuda::conv_geom& g) {
    if constexpr (SSLGATE_WITH_CUDNN) cuda::cudnn::conv2d_forward(y, x, w, g);
    else cuda::conv2d_forward(y, x, w, g);
  }
  static void backward_data(float* dx, const float* dy, const float* w, const cuda::conv_geom& g) {
    if constexpr (SSLGATE_WITH_CUDNN) cuda::cudnn::conv2d_backward_data(dx, dy, w, g);
    else cuda::conv2d_backward_data(dx, dy, w, g);
  }
  static void backward_weight(float* dw, const float* dy, const float* x, const cuda::conv_geom& g) {
    if constexpr (SSLGATE_WITH_CUDNN) cuda::cudnn::conv2d_backward_weight(dw, dy, x, g);
    else cuda::conv2d_backward_weight(dw, dy, x, g);
  }
};
}  // namespace detail

template <real T>
tensor<T> conv2d(tape<T>& tp, const tensor<T>& x, const tensor<T>& w, int stride = 1, int padding = 0) {
  const bool dev = on_device("conv2d", x);
  check_same_device("conv2d", x, {&w});
  const cpu::conv2d_params p = conv2d_geometry(x, w, stride, padding);
  tensor<T> y(shape{p.n, p.c_out, p.out_h(), p.out_w()}, x.dev());
  if (dev) {
    if constexpr (cuda_kernels<T>) {
      const cuda::conv_geom g = detail::device_geometry(p);
      detail::device_conv::forward(y.data(), x.data(), w.data(), g);
      tp.record({x, w}, y, [x, w, g](grad_slots<T>& gs, const tensor<T>& dy) {
        if (gs.needed(0)) detail::device_conv::backward_data(gs[0].data(), dy.data(), w.data(), g);
        if (gs.needed(1)) detail::device_conv::backward_weight(gs[1].data(), dy.data(), x.data(), g);
      });
    }
    return y;
  }
  cpu::conv2d_forward(y.data(), x.data(), w.data(), p);
  tp.record({x, w}, y, [x, w, p](grad_slots<T>& g, const tensor<T>& dy) {
    if (g.needed(0)) {
      auto [dx, fresh] = g.slot(0);
      cpu::conv2d_backward_data(dx.data(), dy.data(), w.data(), p, !fresh);
    }
    if (g.needed(1)) cpu::conv2d_backward_weight(g[1].data(), dy.data(), x.data(), p);
  });
  return y;
}

}  // namespace sslgate::ops
