#pragma once
// Tensors to and from safetensors files.
#include <sslgate/core/io/safetensors.hpp>
#include <sslgate/core/tensor.hpp>

#include <type_traits>

namespace sslgate::io {

template <real T>
constexpr dtype dtype_of() {
  return std::is_same_v<T, float> ? dtype::F32 : dtype::F64;
}

// The tensor `name` of f converted to T (any numeric dtype is accepted).
template <real T>
tensor<T> read_tensor(const safetensors_file& f, std::string_view name) {
  const tensor_entry& e = f.at(name);
  const std::vector<T> v = f.values<T>(name);
  return tensor<T>::from(shape(std::span<const std::int64_t>(e.shape)), std::span<const T>(v));
}

template <real T>
void add_tensor(safetensors_writer& w, std::string name, const tensor<T>& t) {
  const auto d = t.dims().dims();
  w.add(std::move(name), std::vector<std::int64_t>(d.begin(), d.end()), t.values());
}

}  // namespace sslgate::io
