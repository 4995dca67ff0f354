#pragma once
// FLOPs (multiply-accumulate) model of the gated ResNet-18 and -34, METHOD.md §3. Convolutions only: BN, ReLU,
// pooling, adds, biases, the projector and the (absent) fc are not counted.
//   resnet_flops::make(width, in_h, in_w, stem, depth)  per-block constants for the BasicBlocks, in order
//                                                      (ResNet-18: 2 per stage, layer1.0 .. layer4.1; ResNet-34: 3, 4, 6, 3)
//     widths      round(64 w * {1, 2, 4, 8})   (round half to even, as Python's round)
//     out_h/out_w block output size: floor((d + 2 - 3) / s) + 1 with the block stride
//     a[l]        9 H W (C_in + C_out)                 MACs per open gate channel (conv1 output + conv2 input)
//     f_ds[l]     H W C_out C_in with a downsample, else 0 (never gated)
//     f_mask[l]   C_in (C_in / 4) + (C_in / 4) C_out   (the gate's two 1x1 convs; numerator only)
//     f_full[l]   9 H W C_out C_in + 9 H W C_out^2 + f_ds
//     stem_macs   CIFAR: 3x3 s1 pad 2 (no maxpool): 9 H1 W1 C0 3;  ImageNet: 7x7 s2 pad 3 + maxpool 3x3 s2 p1
//     dense_macs  sum f_full + stem_macs     (width 1: 703,560,448 at 32x32 CIFAR, 333,103,104 at 96x96 and
//                                             1,813,561,344 at 224x224 ImageNet stem)
//   rho(tp, masks)  masks[l]: [N, C_out,l] hard gates -> [] density, a ratio of batch means:
//     rho = (sum_l [a_l mean_n c_l(n) + f_ds,l + f_mask,l] + stem) / dense,   c_l(n) = sum_c b_l[n, c]
//     Gradient (plain sum, on every entry, the straight-through path to the gate logits):
//     d rho / d b_l[n, c] = a_l / (N dense).
#include <sslgate/autograd/tape.hpp>
#include <sslgate/ops/elementwise.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <string_view>
#include <vector>

namespace sslgate::gating {

enum class stem_kind { cifar, imagenet };

struct resnet_flops {
  std::array<std::int64_t, 4> widths{};
  std::vector<std::int64_t> c_in, c_out, out_h, out_w, a, f_ds, f_mask, f_full;
  std::int64_t stem_macs = 0, dense_macs = 0;
  std::int64_t fixed_macs = 0;  // stem + every downsample + every mask: the numerator with all gates closed

  static std::int64_t conv_out(std::int64_t d, std::int64_t k, std::int64_t s, std::int64_t p) { return (d + 2 * p - k) / s + 1; }

  int num_blocks() const { return static_cast<int>(c_out.size()); }

  static resnet_flops make(double width, std::int64_t in_h, std::int64_t in_w, stem_kind stem, int depth = 18) {
    constexpr std::string_view op = "resnet_flops";
    SSLGATE_CHECK(depth == 18 || depth == 34, value_error, op, "depth must be 18 or 34, got {}", depth);
    const std::array<int, 4> per_stage = depth == 18 ? std::array{2, 2, 2, 2} : std::array{3, 4, 6, 3};
    SSLGATE_CHECK(width > 0 && std::isfinite(width), value_error, op, "width multiplier must be > 0, got {}", width);
    SSLGATE_CHECK(in_h > 0 && in_w > 0, value_error, op, "input size must be positive, got {}x{}", in_h, in_w);
    resnet_flops f;
    for (int i = 0; i < 4; ++i) {
      f.widths[i] = static_cast<std::int64_t>(std::nearbyint(64.0 * width * (1 << i)));
      SSLGATE_CHECK(f.widths[i] >= 1, value_error, op, "width multiplier {} gives an empty stage", width);
    }
    const std::int64_t c0 = f.widths[0];
    std::int64_t h = 0, w = 0;
    if (stem == stem_kind::cifar) {
      h = conv_out(in_h, 3, 1, 2), w = conv_out(in_w, 3, 1, 2);
      f.stem_macs = 9 * h * w * c0 * 3;
    } else {
      h = conv_out(in_h, 7, 2, 3), w = conv_out(in_w, 7, 2, 3);
      f.stem_macs = 49 * h * w * c0 * 3;
      h = conv_out(h, 3, 2, 1), w = conv_out(w, 3, 2, 1);  // maxpool: no MACs
    }
    SSLGATE_CHECK(h >= 1 && w >= 1, value_error, op, "input {}x{} is too small for the stem", in_h, in_w);
    std::int64_t cin = c0;
    f.dense_macs = f.stem_macs;
    f.fixed_macs = f.stem_macs;
    for (int stage = 0; stage < 4; ++stage)
      for (int b = 0; b < per_stage[static_cast<std::size_t>(stage)]; ++b) {
        const std::int64_t s = (stage > 0 && b == 0) ? 2 : 1, cout = f.widths[stage];
        h = conv_out(h, 3, s, 1), w = conv_out(w, 3, s, 1);
        SSLGATE_CHECK(h >= 1 && w >= 1, value_error, op, "input {}x{} is too small for layer{}", in_h, in_w, stage + 1);
        const bool ds = s != 1 || cin != cout;
        const std::int64_t hw = h * w, hidden = cin / 4;
        f.c_in.push_back(cin);
        f.c_out.push_back(cout);
        f.out_h.push_back(h);
        f.out_w.push_back(w);
        f.a.push_back(9 * hw * (cin + cout));
        f.f_ds.push_back(ds ? hw * cout * cin : 0);
        f.f_mask.push_back(cin * hidden + hidden * cout);
        f.f_full.push_back(9 * hw * cout * cin + 9 * hw * cout * cout + f.f_ds.back());
        f.dense_macs += f.f_full.back();
        f.fixed_macs += f.f_ds.back() + f.f_mask.back();
        cin = cout;
      }
    return f;
  }

  // Numerator of rho from hard masks: sum_l a_l mean_n c_l(n) + fixed_macs (no tape).
  template <real T>
  double gated_macs(const std::vector<tensor<T>>& masks) const {
    check_masks(masks);
    double macs = static_cast<double>(fixed_macs);
    std::vector<T> keep;
    for (int l = 0; l < num_blocks(); ++l) {
      double open = 0;
      const T* b = ops::host_view(masks[l], keep);
      for (std::int64_t i = 0; i < masks[l].numel(); ++i) open += b[i];
      macs += static_cast<double>(a[l]) * open / static_cast<double>(masks[l].dim(0));
    }
    return macs;
  }
  template <real T>
  double rho_value(const std::vector<tensor<T>>& masks) const {
    return gated_macs(masks) / static_cast<double>(dense_macs);
  }

  // Differentiable numerator (shape []): sum_l a_l mean_n c_l(n) + fixed_macs; d/d b_l[n, c] = a_l / N.
  template <real T>
  tensor<T> gated_macs(tape<T>& tp, const std::vector<tensor<T>>& masks) const {
    return weighted_open(tp, masks, 1.0, static_cast<double>(fixed_macs));
  }
  // Differentiable density rho (shape []), d rho / d b_l[n, c] = a_l / (N dense_macs).
  template <real T>
  tensor<T> rho(tape<T>& tp, const std::vector<tensor<T>>& masks) const {
    const double inv = 1.0 / static_cast<double>(dense_macs);
    return weighted_open(tp, masks, inv, static_cast<double>(fixed_macs) * inv);
  }

  template <real T>
  void check_masks(const std::vector<tensor<T>>& masks) const {
    SSLGATE_CHECK(static_cast<int>(masks.size()) == num_blocks(), shape_error, "resnet_flops", "expected {} block masks, got {}", num_blocks(),
                  masks.size());
    for (int l = 0; l < num_blocks(); ++l) {
      SSLGATE_CHECK(masks[l].rank() == 2 && masks[l].dim(1) == c_out[l] && masks[l].dim(0) >= 1, shape_error, "resnet_flops",
                    "mask {} must be [N, {}], got {}", l, c_out[l], masks[l].dims());
      SSLGATE_CHECK(masks[l].dim(0) == masks[0].dim(0), shape_error, "resnet_flops", "mask {} has batch {} but mask 0 has {}", l,
                    masks[l].dim(0), masks[0].dim(0));
    }
  }

 private:
  // y = k * sum_l a_l mean_n c_l(n) + c0
  template <real T>
  tensor<T> weighted_open(tape<T>& tp, const std::vector<tensor<T>>& masks, double k, double c0) const {
    check_masks(masks);
    double y = 0;
    std::vector<double> coef(static_cast<std::size_t>(num_blocks()));
    std::vector<T> keep;
    for (int l = 0; l < num_blocks(); ++l) {
      ops::check_same_device("resnet_flops", masks[0], {&masks[l]});
      coef[l] = k * static_cast<double>(a[l]) / static_cast<double>(masks[l].dim(0));
      double open = 0;
      const T* b = ops::host_view(masks[l], keep);
      for (std::int64_t i = 0; i < masks[l].numel(); ++i) open += b[i];
      y += coef[l] * open;
    }
    tensor<T> out = tensor<T>::full(shape{}, static_cast<T>(y + c0), masks[0].dev());
    tp.record(masks, out, [coef](grad_slots<T>& g, const tensor<T>& dy) {
      const double dyv = static_cast<double>(dy.item());
      for (int l = 0; l < static_cast<int>(coef.size()); ++l) {
        if (!g.needed(l)) continue;
        const T d = static_cast<T>(coef[l] * dyv);
        tensor<T>& gl = g[l];
        if (gl.on_cpu())
          for (std::int64_t i = 0; i < gl.numel(); ++i) gl[i] += d;
        else
          ops::detail::add_into(gl, tensor<T>::full(gl.dims(), d, gl.dev()));
      }
    });
    return out;
  }
};

}  // namespace sslgate::gating
