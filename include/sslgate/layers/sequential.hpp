#pragma once
// Composition at compile time, flat: sequential<L0, L1, ...> runs its layers in order and names them by
// position ("0", "1", ...), as torch.nn.Sequential does; repeat<Block> holds N run-time copies of one type.
#include <sslgate/layers/module.hpp>
#include <sslgate/ops/elementwise.hpp>

#include <tuple>
#include <vector>

namespace sslgate::layers {

template <real T>
class relu {
 public:
  using value_type = T;
  tensor<T> forward(tape<T>& tp, const tensor<T>& x) const { return ops::relu(tp, x); }
  template <class V>
  void visit(V&, const std::string&) const {}
};

// Calls layer.forward with the training flag when the layer takes one (BN), without it otherwise.
template <class L, real T>
tensor<T> forward_layer(L& layer, tape<T>& tp, const tensor<T>& x, bool training) {
  if constexpr (requires { layer.forward(tp, x, training); }) return layer.forward(tp, x, training);
  else return layer.forward(tp, x);
}

template <class... Layers>
class sequential {
 public:
  using value_type = typename std::tuple_element_t<0, std::tuple<Layers...>>::value_type;
  using T = value_type;
  sequential() = default;
  explicit sequential(Layers... layers) : layers_(std::move(layers)...) {}

  tensor<T> forward(tape<T>& tp, const tensor<T>& x, bool training) {
    tensor<T> h = x;
    std::apply([&](auto&... l) { ((h = forward_layer(l, tp, h, training)), ...); }, layers_);
    return h;
  }
  template <class V>
  void visit(V& v, const std::string& prefix) const {
    std::size_t i = 0;
    std::apply([&](const auto&... l) { (l.visit(v, join_name(prefix, std::to_string(i++))), ...); }, layers_);
  }
  template <std::size_t I>
  auto& get() { return std::get<I>(layers_); }

 private:
  std::tuple<Layers...> layers_;
};

template <class Block>
class repeat {
 public:
  using value_type = typename Block::value_type;
  repeat() = default;
  explicit repeat(std::vector<Block> blocks) : blocks_(std::move(blocks)) {}

  template <class V>
  void visit(V& v, const std::string& prefix) const {
    for (std::size_t i = 0; i < blocks_.size(); ++i) blocks_[i].visit(v, join_name(prefix, std::to_string(i)));
  }
  std::size_t size() const { return blocks_.size(); }
  Block& operator[](std::size_t i) { return blocks_[i]; }
  const Block& operator[](std::size_t i) const { return blocks_[i]; }
  auto begin() { return blocks_.begin(); }
  auto end() { return blocks_.end(); }

 private:
  std::vector<Block> blocks_;
};

}  // namespace sslgate::layers
