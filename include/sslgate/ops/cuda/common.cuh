#pragma once
// Launch helpers shared by the CUDA kernels (compiled by nvcc only).
#include <sslgate/config.hpp>

#include <cstdint>

namespace sslgate::cuda::kern {

inline constexpr int threads = 256;

// Blocks for a grid-stride loop over n items.
inline unsigned blocks_for(std::int64_t n, int per_block = threads) {
  const std::int64_t b = (n + per_block - 1) / per_block;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 * 8 ? 65535 * 8 : b));
}

#define SSLGATE_GRID_LOOP(i, n) \
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < (n); i += std::int64_t{gridDim.x} * blockDim.x)

// Sum of v over the block (blockDim.x a multiple of 32, <= 1024); every thread gets the total.
template <class V>
__device__ V block_sum(V v) {
  __shared__ V part[32];
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();  // part[] may still be read by a previous call
  if (lane == 0) part[warp] = v;
  __syncthreads();
  const int warps = blockDim.x / 32;
  V t = lane < warps ? part[lane] : V(0);
  for (int o = 16; o > 0; o /= 2) t += __shfl_xor_sync(0xffffffffu, t, o);
  return t;
}

template <class V>
__device__ V block_max(V v) {
  __shared__ V part[32];
  for (int o = 16; o > 0; o /= 2) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();
  if (lane == 0) part[warp] = v;
  __syncthreads();
  const int warps = blockDim.x / 32;
  V t = lane < warps ? part[lane] : V(-INFINITY);
  for (int o = 16; o > 0; o /= 2) t = fmax(t, __shfl_xor_sync(0xffffffffu, t, o));
  return t;
}

// Broadcast strides of up to 5 dimensions, passed to kernels by value.
struct strided5 {
  int rank;
  std::int64_t extent[5];
  std::int64_t stride[3][5];  // per operand (0: output or source, 1, 2: inputs)
};

// Offset of linear output index i in operand k.
__device__ inline std::int64_t offset_of(const strided5& p, int k, std::int64_t i) {
  std::int64_t off = 0;
  for (int d = p.rank - 1; d >= 0; --d) {
    const std::int64_t idx = i % p.extent[d];
    i /= p.extent[d];
    off += idx * p.stride[k][d];
  }
  return off;
}

}  // namespace sslgate::cuda::kern
