#pragma once
// tensor<T>: a contiguous row-major array (rank <= 5) on a device, sharing reference-counted storage.
// Copies of a tensor share one node: the node is the tensor's identity on the autograd tape.
// T is float (training, inference) or double (gradient checks, references).
#include <sslgate/core/device.hpp>
#include <sslgate/core/error.hpp>
#include <sslgate/core/parallel.hpp>
#include <sslgate/core/rng.hpp>
#include <sslgate/core/shape.hpp>
#include <sslgate/core/storage.hpp>

#include <algorithm>
#include <concepts>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

namespace sslgate {

template <class T>
concept real = std::same_as<T, float> || std::same_as<T, double>;

template <real T>
class tensor;

template <real T>
struct tensor_node {
  std::shared_ptr<storage> buf;
  shape dims;
  bool requires_grad = false;  // a leaf that wants a gradient, or an op output that depends on one
  bool leaf = true;            // not produced by a recorded op: its gradient is stored in grad
  bool retain_grad = false;    // an op output whose gradient backward should keep too
  std::shared_ptr<tensor_node> grad;
};

template <real T>
class tensor {
 public:
  using value_type = T;

  tensor() = default;  // the empty tensor: no node; empty() is true
  explicit tensor(const shape& s, device dev = cpu) : node_(std::make_shared<tensor_node<T>>()) {
    node_->buf = std::make_shared<storage>(static_cast<std::size_t>(s.numel()) * sizeof(T), dev);
    node_->dims = s;
  }

  static tensor empty_like(const tensor& t) { return tensor(t.dims(), t.dev()); }
  static tensor zeros(const shape& s, device dev = cpu) { return full(s, T(0), dev); }
  static tensor zeros_like(const tensor& t) { return zeros(t.dims(), t.dev()); }
  static tensor full(const shape& s, T v, device dev = cpu) {
    tensor t(s, dev);
    t.fill(v);
    return t;
  }
  static tensor from(const shape& s, std::span<const T> values) {
    SSLGATE_CHECK(static_cast<std::int64_t>(values.size()) == s.numel(), shape_error, "tensor::from",
                  "{} values do not fill shape {}", values.size(), s);
    tensor t(s);
    std::copy(values.begin(), values.end(), t.data());
    return t;
  }
  static tensor from(const shape& s, std::initializer_list<T> values) { return from(s, std::span<const T>(values.begin(), values.size())); }
  // Uniform in [lo, hi) and normal(mean, std), drawn from r (advancing it by what they use).
  static tensor uniform(const shape& s, rng& r, T lo = T(0), T hi = T(1)) {
    tensor t(s);
    const std::uint64_t first = r.advance(static_cast<std::uint64_t>(s.numel()));
    T* p = t.data();
    for (std::int64_t i = 0; i < s.numel(); ++i) p[i] = static_cast<T>(lo + (hi - lo) * r.uniform_at(first + i));
    return t;
  }
  static tensor normal(const shape& s, rng& r, T mean = T(0), T stddev = T(1)) {
    tensor t(s);
    const std::uint64_t first = r.advance(2 * static_cast<std::uint64_t>(s.numel()));
    T* p = t.data();
    for (std::int64_t i = 0; i < s.numel(); ++i) p[i] = static_cast<T>(mean + stddev * r.normal_at(first + 2 * i));
    return t;
  }

  bool empty() const { return node_ == nullptr; }
  const shape& dims() const { return node_->dims; }
  int rank() const { return node_->dims.rank(); }
  std::int64_t dim(int i) const { return node_->dims.dim(i); }
  std::int64_t numel() const { return empty() ? 0 : node_->dims.numel(); }
  device dev() const { return node_->buf->dev(); }

  T* data() { return static_cast<T*>(node_->buf->data()); }
  const T* data() const { return static_cast<const T*>(node_->buf->data()); }
  std::span<T> values() { return {data(), static_cast<std::size_t>(numel())}; }
  std::span<const T> values() const { return {data(), static_cast<std::size_t>(numel())}; }
  // Host copies of the values; a device tensor is copied down first.
  std::vector<T> to_vector() const {
    if (on_cpu()) return {data(), data() + numel()};
    std::vector<T> v(static_cast<std::size_t>(numel()));
    backend_for("tensor::to_vector", dev()).copy(v.data(), cpu, data(), dev(), v.size() * sizeof(T));
    return v;
  }
  T item() const {
    SSLGATE_CHECK(numel() == 1, shape_error, "tensor::item", "tensor of shape {} is not a single value", dims());
    if (!on_cpu()) return to_vector()[0];
    return data()[0];
  }
  T& operator[](std::int64_t i) { return data()[i]; }
  const T& operator[](std::int64_t i) const { return data()[i]; }

  void fill(T v) {
    if (on_cpu()) {
      T* p = data();
      parallel_for(numel(), std::int64_t{1} << 16, [&](std::int64_t b, std::int64_t e) { std::fill(p + b, p + e, v); });
    }
    else backend_for("tensor::fill", dev()).fill(data(), dev(), static_cast<std::size_t>(numel()), &v, sizeof(T));
  }
  tensor clone() const {
    tensor t = empty_like(*this);
    t.copy_bytes_from(*this);
    return t;
  }
  // Copies values from src, which may live on another device.
  void copy_from(const tensor& src) {
    SSLGATE_CHECK(src.dims() == dims(), shape_error, "tensor::copy_from", "source {} does not match destination {}", src.dims(), dims());
    copy_bytes_from(src);
  }
  // This tensor's values on device d: *this when already there, else a new untracked tensor (like clone).
  tensor to(device d) const {
    if (empty() || dev() == d) return *this;
    tensor t(dims(), d);
    t.copy_bytes_from(*this);
    return t;
  }
  // Moves this tensor's storage to device d in place: every copy sharing the node (a layer's parameter,
  // the visitor's named_tensor) sees the move. A stored gradient moves too.
  void move_to(device d) {
    if (empty()) return;
    if (dev() != d) {
      auto buf = std::make_shared<storage>(node_->buf->bytes(), d);
      const device_backend* b = cuda_backend();
      if (b != nullptr) b->copy(buf->data(), d, node_->buf->data(), dev(), node_->buf->bytes());
      else backend_for("tensor::move_to", d);  // throws: no backend for a device tensor
      node_->buf = std::move(buf);
    }
    if (node_->grad) from_node(node_->grad).move_to(d);
  }
  bool on_cpu() const { return node_->buf->dev().kind == device_kind::cpu; }
  // The same values in another element type (a new tensor).
  template <real U>
  tensor<U> cast() const {
    SSLGATE_CHECK(on_cpu(), value_error, "tensor::cast", "tensor on {} (cast runs on the CPU; move it with to(cpu))", dev().str());
    tensor<U> t(dims(), dev());
    std::copy_n(data(), numel(), t.data());
    return t;
  }
  // A new node sharing this storage with another shape of the same size. Untracked: ops::reshape records it.
  tensor view_as(const shape& s) const {
    SSLGATE_CHECK(s.numel() == numel(), shape_error, "reshape", "cannot view {} as {}", dims(), s);
    tensor t;
    t.node_ = std::make_shared<tensor_node<T>>();
    t.node_->buf = node_->buf;
    t.node_->dims = s;
    return t;
  }

  // Autograd: a leaf with requires_grad receives its gradient in grad() after tape::backward.
  bool requires_grad() const { return !empty() && node_->requires_grad; }
  tensor& set_requires_grad(bool on = true) {
    SSLGATE_CHECK(node_->leaf, value_error, "set_requires_grad", "only leaf tensors take requires_grad (shape {})", dims());
    node_->requires_grad = on;
    return *this;
  }
  tensor grad() const { return from_node(node_->grad); }
  void set_grad(const tensor& g) { node_->grad = g.node_; }
  void zero_grad() { node_->grad.reset(); }
  // Keep this intermediate's gradient after backward (leaves always keep theirs).
  tensor& retain_grad() {
    node_->retain_grad = true;
    return *this;
  }

  // Identity on the tape; the same for every copy of this tensor.
  const tensor_node<T>* id() const { return node_.get(); }
  const std::shared_ptr<tensor_node<T>>& node() const { return node_; }
  static tensor from_node(std::shared_ptr<tensor_node<T>> n) {
    tensor t;
    t.node_ = std::move(n);
    return t;
  }

 private:
  void copy_bytes_from(const tensor& src) {
    const std::size_t bytes = static_cast<std::size_t>(numel()) * sizeof(T);
    if (on_cpu() && src.on_cpu()) std::memcpy(data(), src.data(), bytes);
    else backend_for("tensor::copy", on_cpu() ? src.dev() : dev()).copy(data(), dev(), src.data(), src.dev(), bytes);
  }
  std::shared_ptr<tensor_node<T>> node_;
};

// Checks used by every op: same shape, rank, CPU residence. The message names the op and the shapes.
template <real T>
void check_same_shape(std::string_view op, const tensor<T>& a, const tensor<T>& b) {
  SSLGATE_CHECK(a.dims() == b.dims(), shape_error, op, "shapes {} and {} differ", a.dims(), b.dims());
}
template <real T>
void check_rank(std::string_view op, const tensor<T>& a, int rank, std::string_view what = "input") {
  SSLGATE_CHECK(!a.empty(), shape_error, op, "{} is empty", what);
  SSLGATE_CHECK(a.rank() == rank, shape_error, op, "{} must have rank {}, got shape {}", what, rank, a.dims());
}

}  // namespace sslgate
