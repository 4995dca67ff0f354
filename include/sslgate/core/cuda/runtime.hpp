#pragma once
// The CUDA runtime side of sslgate, as seen from plain C++ (no CUDA header here; the definitions live in
// src/cuda/runtime.cu, linked through the sslgate::cuda target).
//   - device count and names; a per-device caching allocator behind storage (installed as the cuda backend
//     of core/storage.hpp the moment a program that includes this header starts);
//   - the current stream every kernel of sslgate::cuda is launched on (default: a non-blocking stream created
//     per device on first use); synchronize() waits for it;
// Layers move with move_to(layer, gpu()) of layers/module.hpp.
// Every CUDA, cuBLAS and cuDNN call is checked; a failure throws sslgate::error("<op>: <call> failed: <reason>").
#include <sslgate/core/storage.hpp>
#include <sslgate/core/tensor.hpp>
#include <sslgate/layers/module.hpp>

#include <cstddef>
#include <string>

namespace sslgate::cuda {

int device_count();                    // 0 when there is no device or no driver (never throws)
std::string device_name(int index = 0);
void set_device(int index);
void synchronize();                    // waits for the current stream of the current device
using stream_handle = void*;           // a cudaStream_t
stream_handle current_stream();
void set_current_stream(stream_handle s);  // nullptr restores the library's own stream

allocator_stats allocator_statistics(int index = 0);
void empty_cache(int index = 0);

// Installs the cuda backend of core/storage.hpp (idempotent, also done at static initialization below).
void install_backend();
namespace detail {
inline const bool backend_installed = (install_backend(), true);
}

inline constexpr device gpu(int index = 0) { return device{device_kind::cuda, index}; }

}  // namespace sslgate::cuda
