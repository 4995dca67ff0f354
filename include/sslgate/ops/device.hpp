#pragma once
// Device dispatch of the tape ops. Each op asks on_device(op, x) once: false for a CPU tensor; true for a
// float32 tensor on a CUDA device in a program built with the CUDA backend (linking sslgate::cuda defines
// SSLGATE_WITH_CUDA=1); a clear error otherwise (no backend in this build, or a float64 tensor: the CUDA kernels
// are float32). The device branch of an op sits under `if constexpr (cuda_kernels<T>)`, so CPU-only programs
// and float64 code never reference the kernels of core/cuda/ops.hpp, and never need the library.
#include <sslgate/core/cuda/ops.hpp>
#include <sslgate/core/tensor.hpp>

#include <memory>
#include <string_view>
#include <type_traits>
#include <vector>

#ifndef SSLGATE_WITH_CUDA
#define SSLGATE_WITH_CUDA 0
#endif
#ifndef SSLGATE_WITH_CUDNN
#define SSLGATE_WITH_CUDNN 0
#endif

namespace sslgate::ops {

// The CUDA kernels exist for this element type in this build.
template <real T>
inline constexpr bool cuda_kernels = SSLGATE_WITH_CUDA != 0 && std::is_same_v<T, float>;

template <real T>
bool on_device(std::string_view op, const tensor<T>& x) {
  SSLGATE_CHECK(!x.empty(), shape_error, op, "input is empty");
  if (x.dev().kind == device_kind::cpu) return false;
  SSLGATE_CHECK(SSLGATE_WITH_CUDA != 0, value_error, op, "tensor on {}, but this program is built without the CUDA backend (link sslgate::cuda)",
                x.dev().str());
  SSLGATE_CHECK((std::is_same_v<T, float>), value_error, op, "tensor on {} is float64; the CUDA kernels are float32", x.dev().str());
  return true;
}

// Every further operand (empty ones are skipped) must live where the first does.
template <real T>
void check_same_device(std::string_view op, const tensor<T>& first, std::initializer_list<const tensor<T>*> others) {
  for (const tensor<T>* t : others)
    if (t != nullptr && !t->empty())
      SSLGATE_CHECK(t->dev() == first.dev(), value_error, op, "operands on {} and {} (move them to one device)", first.dev().str(), t->dev().str());
}

// Scratch memory on x's device for kernels that keep per-call state (indices, saved statistics), typed.
template <class U>
struct device_buffer {
  std::shared_ptr<storage> buf;
  device_buffer() = default;
  device_buffer(std::size_t count, device d) : buf(std::make_shared<storage>(std::max<std::size_t>(count, 1) * sizeof(U), d)) {}
  U* data() const { return static_cast<U*>(buf->data()); }
};

// Host values copied into a new buffer on device d.
template <class U>
device_buffer<U> to_device_buffer(const std::vector<U>& host, device d) {
  device_buffer<U> b(host.size(), d);
  if (!host.empty()) backend_for("to_device_buffer", d).copy(b.data(), d, host.data(), sslgate::cpu, host.size() * sizeof(U));
  return b;
}

// A tensor's values readable on the host: its own storage on the CPU, else a host copy held in `keep`.
template <real T>
const T* host_view(const tensor<T>& t, std::vector<T>& keep) {
  if (t.on_cpu()) return t.data();
  keep = t.to_vector();
  return keep.data();
}

}  // namespace sslgate::ops
