#pragma once
// Parameter groups shared by the optimizers of optim/ (lars, adamw), PyTorch-style:
//   param_group<T>{.name = "gates", .params = {...}, .lr_scale = 1, .weight_decay = 0.0}
//   lr of a group = optimizer lr * lr_scale; weight_decay unset = the optimizer's default;
//   exclude_from_lars = no trust ratio and no weight decay (LARS only; solo-learn's exclude_bias_n_norm does
//   this for every 1-D parameter automatically, see lars::options::exclude_1d).
// Optimizer state (momentum buffers, Adam moments) is exposed as named tensors for checkpoints:
//   "<group name or index>.<param index>.<slot>", e.g. "backbone.3.momentum", "gates.0.exp_avg".
#include <sslgate/core/tensor.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sslgate::optim {

template <real T>
struct param_group {
  std::string name{};
  std::vector<tensor<T>> params{};
  double lr_scale = 1.0;
  std::optional<double> weight_decay{};  // nullopt: the optimizer's default
  bool exclude_from_lars = false;
};

template <real T>
using named_state = std::vector<std::pair<std::string, tensor<T>>>;

namespace detail {
template <real T>
std::string group_label(const param_group<T>& g, std::size_t index) {
  return g.name.empty() ? std::to_string(index) : g.name;
}
// Finds name in state; nullptr when absent.
template <real T>
const tensor<T>* find_state(const named_state<T>& state, const std::string& name) {
  for (const auto& [n, t] : state)
    if (n == name) return &t;
  return nullptr;
}
// A copy of saved state on its parameter's device (checkpoints are read on the CPU; the parameter may be on a GPU).
template <real T>
tensor<T> copy_to(const tensor<T>& t, device d) {
  return t.dev() == d ? t.clone() : t.to(d);
}
}  // namespace detail

// Splits parameters into the two groups of METHOD.md §6 plus the gates: rank-1 tensors (BN weights and biases,
// linear biases) with no weight decay and no LARS, gate parameters with weight decay 0, everything else with
// the default. gate_params are given separately (the model knows which they are).
template <real T>
std::vector<param_group<T>> split_groups(const std::vector<tensor<T>>& params, const std::vector<tensor<T>>& gate_params) {
  param_group<T> regular, one_d, gates;
  regular.name = "regular", one_d.name = "one_d", gates.name = "gates";
  one_d.weight_decay = 0.0;
  one_d.exclude_from_lars = true;
  gates.weight_decay = 0.0;
  for (const auto& p : params) (p.rank() == 1 ? one_d : regular).params.push_back(p);
  for (const auto& p : gate_params) (p.rank() == 1 ? one_d : gates).params.push_back(p);
  return {regular, one_d, gates};
}

}  // namespace sslgate::optim
