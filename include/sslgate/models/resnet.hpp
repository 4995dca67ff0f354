#pragma once
// ResNet-18 / ResNet-34 of BasicBlocks with a channel gate in every block (METHOD.md §1).
//   stem cifar:    conv3x3 s1 p2 (32 -> 34), BN, ReLU, no maxpool
//   stem imagenet: conv7x7 s2 p3, BN, ReLU, maxpool 3x3 s2 p1 (STL-10, ImageNet-100)
//   stages: widths round(64 w · {1, 2, 4, 8}), strides 1, 2, 2, 2; blocks {2,2,2,2} or {3,4,6,3}
//   head: global average pool -> [N, C4] features (no classifier)
// x: [N, 3, H, W] -> [N, C4]. Parameter names: conv1, bn1, blocks.<i>.<block names>.
#include <sslgate/gating/flops.hpp>
#include <sslgate/gating/gated_basic_block.hpp>
#include <sslgate/layers/linear.hpp>
#include <sslgate/layers/sequential.hpp>

#include <array>
#include <cmath>

namespace sslgate {

using gating::stem_kind;

struct resnet_config {
  int depth = 18;                 // 18 or 34
  stem_kind stem = stem_kind::cifar;
  double width = 1.0;             // width multiplier
  int in_channels = 3;
  std::array<int, 4> widths() const {
    std::array<int, 4> w{};
    for (int s = 0; s < 4; ++s) w[s] = static_cast<int>(std::nearbyint(64 * width * (1 << s)));  // half to even, as the reference
    return w;
  }
  std::array<int, 4> blocks_per_stage() const {
    SSLGATE_CHECK(depth == 18 || depth == 34, value_error, "resnet", "depth must be 18 or 34, got {}", depth);
    return depth == 18 ? std::array<int, 4>{2, 2, 2, 2} : std::array<int, 4>{3, 4, 6, 3};
  }
};

template <real T>
class resnet {
 public:
  using value_type = T;
  resnet(const resnet_config& cfg, rng& r) : cfg_(cfg) {
    const auto widths = cfg.widths();
    SSLGATE_CHECK(widths[0] >= 4, value_error, "resnet", "width multiplier {} leaves {} stem channels; the gates need at least 4", cfg.width,
                  widths[0]);
    const bool cifar = cfg.stem == stem_kind::cifar;
    conv1 = layers::conv2d<T>(cfg.in_channels, widths[0], cifar ? 3 : 7, cifar ? 1 : 2, cifar ? 2 : 3, r);
    bn1 = layers::batchnorm<T>(widths[0]);
    int c_in = widths[0];
    const auto counts = cfg.blocks_per_stage();
    std::vector<gated_basic_block<T>> b;
    for (int s = 0; s < 4; ++s)
      for (int i = 0; i < counts[s]; ++i) {
        b.emplace_back(c_in, widths[s], i == 0 && s > 0 ? 2 : 1, r);
        c_in = widths[s];
      }
    blocks = layers::repeat<gated_basic_block<T>>(std::move(b));
  }

  tensor<T> forward(tape<T>& tp, const tensor<T>& x, forward_state<T>& st) {
    check_rank("resnet", x, 4, "input");
    SSLGATE_CHECK(x.dim(1) == cfg_.in_channels, shape_error, "resnet", "input {} has {} channels, the model expects {}", x.dims(), x.dim(1),
                  cfg_.in_channels);
    tensor<T> h = conv1.forward(tp, x);
    st.executed_macs += h.numel() * conv1.weight.dim(1) * conv1.weight.dim(2) * conv1.weight.dim(3);
    h = bn1.forward_relu(tp, h, st.training);
    if (cfg_.stem == stem_kind::imagenet) h = ops::max_pool2d(tp, h, 3, 2, 1);
    for (auto& block : blocks) h = block.forward(tp, h, st);
    return ops::global_avg_pool(tp, h);
  }

  template <class V>
  void visit(V& v, const std::string& prefix) const {
    conv1.visit(v, join_name(prefix, "conv1"));
    bn1.visit(v, join_name(prefix, "bn1"));
    blocks.visit(v, join_name(prefix, "blocks"));
  }

  const resnet_config& config() const { return cfg_; }
  // The FLOPs model of this network for an input of h x w (METHOD.md §3).
  gating::resnet_flops flops(std::int64_t h, std::int64_t w) const {
    return gating::resnet_flops::make(cfg_.width, h, w, cfg_.stem, cfg_.depth);
  }
  int feature_dim() const { return cfg_.widths()[3]; }

  layers::conv2d<T> conv1;
  layers::batchnorm<T> bn1;
  layers::repeat<gated_basic_block<T>> blocks;

 private:
  resnet_config cfg_;
};

// The shared projector: Linear-BN-ReLU-Linear-BN-ReLU-Linear (names 0, 1, 3, 4, 6 as torch.nn.Sequential).
template <real T>
using projector_mlp = layers::sequential<layers::linear<T>, layers::batchnorm<T>, layers::relu<T>, layers::linear<T>, layers::batchnorm<T>,
                                     layers::relu<T>, layers::linear<T>>;

template <real T>
projector_mlp<T> make_projector(int in, int hidden, int out, rng& r) {
  return projector_mlp<T>(layers::linear<T>(in, hidden, r), layers::batchnorm<T>(hidden), layers::relu<T>{}, layers::linear<T>(hidden, hidden, r),
                      layers::batchnorm<T>(hidden), layers::relu<T>{}, layers::linear<T>(hidden, out, r));
}

}  // namespace sslgate
