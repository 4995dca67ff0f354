#pragma once
// What every layer shares: named parameters and buffers, visited in a stable order.
// Names are hierarchical and match the reference PyTorch state dict ("backbone.blocks.2.bn1_g.running_mean"),
// so checkpoints are readable and comparable with PyTorch.
#include <sslgate/core/tensor.hpp>

#include <cmath>
#include <string>
#include <vector>

namespace sslgate {

// Which network a forward pass runs: the dense path, or the gated path of the same weights.
enum class path { dense, gated };

template <real T>
struct named_tensor {
  std::string name;
  tensor<T> value;  // shares the layer's node: updating it in place updates the layer
};

// Collects parameters (trained) and buffers (BN running statistics) under a prefix.
template <real T>
struct tensor_visitor {
  std::vector<named_tensor<T>> params, buffers;
  void param(const std::string& name, const tensor<T>& t) { params.push_back({name, t}); }
  void buffer(const std::string& name, const tensor<T>& t) { buffers.push_back({name, t}); }
};

inline std::string join_name(const std::string& prefix, const std::string& name) { return prefix.empty() ? name : prefix + "." + name; }

// params()/buffers() for any layer with visit(visitor&, prefix).
template <class Layer>
auto params_of(Layer& layer, const std::string& prefix = "") {
  tensor_visitor<typename Layer::value_type> v;
  layer.visit(v, prefix);
  return v.params;
}
template <class Layer>
auto buffers_of(Layer& layer, const std::string& prefix = "") {
  tensor_visitor<typename Layer::value_type> v;
  layer.visit(v, prefix);
  return v.buffers;
}

// Moves every parameter and buffer of a layer to device dev, in place (tensor::move_to: copies of the tensors,
// e.g. an optimizer's, see the move).
template <class Layer>
void move_to(Layer& layer, device dev) {
  tensor_visitor<typename Layer::value_type> v;
  layer.visit(v, "");
  for (auto& p : v.params) p.value.move_to(dev);
  for (auto& b : v.buffers) b.value.move_to(dev);
}

// Where a layer's parameters live (the first one's device; move_to keeps them together).
template <class Layer>
device device_of(const Layer& layer) {
  tensor_visitor<typename Layer::value_type> v;
  layer.visit(v, "");
  return v.params.empty() ? cpu : v.params.front().value.dev();
}

// Kaiming-normal, fan_out, ReLU gain (the reference init of every conv, gate convs included).
template <real T>
tensor<T> kaiming_normal_fan_out(const shape& s, rng& r) {
  const double fan_out = static_cast<double>(s[0]) * (s.rank() > 2 ? static_cast<double>(s.numel() / (s[0] * s[1])) : 1.0);
  return tensor<T>::normal(s, r, T(0), static_cast<T>(std::sqrt(2.0 / fan_out))).set_requires_grad();
}

}  // namespace sslgate
