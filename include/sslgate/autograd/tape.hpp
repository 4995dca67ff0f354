#pragma once
// tape: an explicit Wengert list. Each op records a closure that keeps only what its backward needs,
// plus its inputs; backward(loss) walks the list once in reverse.
//  - backward closures ADD into their input gradients (slots start at zero), so a tensor used twice,
//    such as a conv weight shared by the dense and the gated path, receives the sum of its uses;
//  - at the end, each leaf that requires a gradient has it ASSIGNED (tensor::grad), replacing the last step's.
// A tape constructed with grad_mode::off records nothing: evaluation and feature extraction keep no activations.
#include <sslgate/core/tensor.hpp>

#include <functional>
#include <initializer_list>
#include <unordered_map>
#include <vector>

namespace sslgate {

enum class grad_mode { on, off };

template <real T>
class tape;

// The gradient accumulators of one recorded op's inputs.
template <real T>
class grad_slots {
 public:
  // True when input i leads to something that requires a gradient.
  bool needed(int i) const { return inputs_[i].requires_grad(); }
  // The accumulator of input i, zero-filled on first use; backward closures add into it.
  tensor<T>& operator[](int i) {
    auto [it, fresh] = grads_.try_emplace(inputs_[i].id());
    if (fresh) it->second = tensor<T>::zeros_like(inputs_[i]);
    return it->second;
  }
  // The accumulator of input i for a closure that can assign as well as add: when fresh, nothing has been
  // written yet and the contents are undefined, so the closure must assign every element (saves a zero
  // fill and a read of it on the large activation gradients).
  struct target {
    tensor<T>& grad;
    bool fresh;
  };
  target slot(int i) {
    auto [it, fresh] = grads_.try_emplace(inputs_[i].id());
    if (fresh) it->second = tensor<T>::empty_like(inputs_[i]);
    return {it->second, fresh};
  }

 private:
  friend class tape<T>;
  grad_slots(const std::vector<tensor<T>>& inputs, std::unordered_map<const tensor_node<T>*, tensor<T>>& grads)
      : inputs_(inputs), grads_(grads) {}
  const std::vector<tensor<T>>& inputs_;
  std::unordered_map<const tensor_node<T>*, tensor<T>>& grads_;
};

template <real T>
class tape {
 public:
  using backward_fn = std::function<void(grad_slots<T>&, const tensor<T>& dy)>;

  explicit tape(grad_mode mode = grad_mode::on) : recording_(mode == grad_mode::on) {}
  tape(const tape&) = delete;
  tape& operator=(const tape&) = delete;

  bool recording() const { return recording_; }
  std::size_t size() const { return nodes_.size(); }
  void clear() {
    nodes_.clear();
    leaves_.clear();
  }

  // Would an op on these inputs be recorded? Ops skip saving activations when it is false.
  bool tracks(std::initializer_list<const tensor<T>*> inputs) const {
    if (!recording_) return false;
    for (const tensor<T>* x : inputs)
      if (x != nullptr && x->requires_grad()) return true;
    return false;
  }

  // Records y = op(inputs). Nothing is kept when no input requires a gradient.
  void record(std::initializer_list<tensor<T>> inputs, const tensor<T>& y, backward_fn fn) {
    record(std::vector<tensor<T>>(inputs), y, std::move(fn));
  }
  void record(std::vector<tensor<T>> inputs, const tensor<T>& y, backward_fn fn) {
    if (!recording_) return;
    bool any = false;
    for (const tensor<T>& x : inputs) any = any || x.requires_grad();
    if (!any) return;
    for (const tensor<T>& x : inputs)
      if (x.requires_grad() && x.node()->leaf) leaves_.emplace(x.id(), x.node());
    y.node()->requires_grad = true;
    y.node()->leaf = false;
    nodes_.push_back({std::move(inputs), y.node(), std::move(fn)});
  }

  // Back-propagates d(loss)/d(loss) = 1 from a single-value loss.
  void backward(const tensor<T>& loss) {
    SSLGATE_CHECK(loss.numel() == 1, shape_error, "tape::backward", "loss must be a single value, got shape {}", loss.dims());
    backward(loss, tensor<T>::full(loss.dims(), T(1), loss.dev()));
  }

  // Back-propagates dy from y; consumes the tape.
  void backward(const tensor<T>& y, const tensor<T>& dy) {
    check_same_shape("tape::backward", y, dy);
    std::unordered_map<const tensor_node<T>*, tensor<T>> grads;
    grads.emplace(y.id(), dy.clone());
    for (auto it = nodes_.rbegin(); it != nodes_.rend(); ++it) {
      auto g = grads.find(it->output.get());
      if (g == grads.end()) continue;  // this output does not reach y
      const tensor<T> dout = std::move(g->second);
      grads.erase(g);
      if (it->output->retain_grad) it->output->grad = dout.node();
      grad_slots<T> slots(it->inputs, grads);
      it->backward(slots, dout);
    }
    // What remains are leaf gradients: assign, do not add, so no caller sees the last step's gradient.
    for (auto& [id, g] : grads)
      if (auto leaf = leaves_.find(id); leaf != leaves_.end()) leaf->second->grad = g.node();
    clear();
  }

 private:
  struct node {
    std::vector<tensor<T>> inputs;
    std::shared_ptr<tensor_node<T>> output;
    backward_fn backward;
  };
  bool recording_;
  std::vector<node> nodes_;
  std::unordered_map<const tensor_node<T>*, std::shared_ptr<tensor_node<T>>> leaves_;
};

}  // namespace sslgate
