#pragma once
// Element-wise loops over broadcast operands, vectorized with xsimd.
// An operand is a pointer plus, per output dimension, a stride of 0 (broadcast) or its own row-major
// stride. Dimensions that are contiguous for every operand are merged first, so "[N, C, H, W] op [1, C, 1, 1]"
// runs as N*C inner loops of H*W with the second operand splatted into a register.
#include <sslgate/core/parallel.hpp>
#include <sslgate/core/shape.hpp>

#include <xsimd/xsimd.hpp>

#include <array>
#include <cstdint>

namespace sslgate::ops::cpu {

template <int K>
struct strided_plan {
  int rank = 0;
  std::array<std::int64_t, shape::max_rank> extent{};
  std::array<std::array<std::int64_t, shape::max_rank>, K> stride{};
  std::int64_t inner() const { return rank == 0 ? 1 : extent[rank - 1]; }
  std::int64_t outer() const {
    std::int64_t n = 1;
    for (int i = 0; i + 1 < rank; ++i) n *= extent[i];
    return n;
  }
};

// Strides of operand s seen from output shape out (right-aligned, numpy broadcasting).
inline std::array<std::int64_t, shape::max_rank> broadcast_strides(const shape& s, const shape& out) {
  std::array<std::int64_t, shape::max_rank> st{};
  const int off = out.rank() - s.rank();
  std::int64_t acc = 1;
  for (int i = s.rank() - 1; i >= 0; --i) {
    st[i + off] = s[i] == 1 && out[i + off] != 1 ? 0 : acc;
    acc *= s[i];
  }
  return st;
}

template <int K>
strided_plan<K> make_plan(const shape& out, const std::array<shape, K>& operands) {
  strided_plan<K> p;
  for (int k = 0; k < K; ++k) p.stride[k] = broadcast_strides(operands[k], out);
  // Merge dimension i into the running inner dimension when every operand is contiguous across them.
  int r = 0;
  for (int i = 0; i < out.rank(); ++i) {
    if (out[i] == 1) continue;  // size-1 dims carry no work
    bool merge = r > 0;
    for (int k = 0; k < K && merge; ++k) merge = p.stride[k][r - 1] == p.stride[k][i] * out[i];
    if (merge) {
      p.extent[r - 1] *= out[i];
      for (int k = 0; k < K; ++k) p.stride[k][r - 1] = p.stride[k][i];
    } else {
      p.extent[r] = out[i];
      for (int k = 0; k < K; ++k) p.stride[k][r] = p.stride[k][i];
      ++r;
    }
  }
  if (r == 0) {  // a single element
    p.extent[0] = 1;
    for (int k = 0; k < K; ++k) p.stride[k][0] = 1;
    r = 1;
  }
  p.rank = r;
  return p;
}

// Offsets of row `row` (index over all but the innermost dimension) for each operand.
template <int K>
std::array<std::int64_t, K> row_offsets(const strided_plan<K>& p, std::int64_t row) {
  std::array<std::int64_t, K> off{};
  for (int i = p.rank - 2; i >= 0; --i) {
    const std::int64_t idx = row % p.extent[i];
    row /= p.extent[i];
    for (int k = 0; k < K; ++k) off[k] += idx * p.stride[k][i];
  }
  return off;
}

template <class T>
using batch = xsimd::batch<T>;

// One input of an element-wise loop: its data and its own shape (which broadcasts to the output's).
template <class T>
struct operand {
  const T* data;
  shape dims;
};

template <class T>
batch<T> load_or_splat(const T* p, std::int64_t stride, std::int64_t i) {
  return stride != 0 ? batch<T>::load_unaligned(p + i) : batch<T>(p[0]);
}

// y = f(x0, x1, ...) element-wise; y has the output shape, each xk broadcasts to it.
template <class T, class F, class... X>
  requires(std::same_as<X, operand<T>> && ...)
void map(F f, T* y, const shape& out, const X&... xs) {
  constexpr int K = 1 + sizeof...(X);
  const auto plan = make_plan<K>(out, std::array<shape, K>{out, xs.dims...});
  const std::int64_t inner = plan.inner(), rows = plan.outer();
  const std::array<const T*, K - 1> ptr{xs.data...};
  parallel_for(rows, std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(inner, 1)), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const auto off = row_offsets(plan, r);
      T* yr = y + off[0];
      auto at = [&]<std::size_t... I>(std::index_sequence<I...>, std::int64_t i, auto load) {
        return f(load(ptr[I] + off[I + 1], plan.stride[I + 1][plan.rank - 1], i)...);
      };
      const auto seq = std::make_index_sequence<K - 1>{};
      std::int64_t i = 0;
      constexpr std::int64_t w = batch<T>::size;
      for (; i + w <= inner; i += w)
        at(seq, i, [](const T* p, std::int64_t s, std::int64_t j) { return load_or_splat(p, s, j); }).store_unaligned(yr + i);
      for (; i < inner; ++i) yr[i] = at(seq, i, [](const T* p, std::int64_t s, std::int64_t j) { return p[s != 0 ? j : 0]; });
    }
  });
}

// dst += sum of src over the dimensions where dst (shape ds) broadcasts to src's shape (ss).
// Rows of the merged plan that reduce into the same output are visited in a fixed order.
template <class T>
void sum_to_add(T* dst, const shape& ds, const T* src, const shape& ss) {
  const auto plan = make_plan<2>(ss, std::array<shape, 2>{ss, ds});
  const std::int64_t inner = plan.inner(), rows = plan.outer();
  const bool inner_reduced = plan.rank > 0 && plan.stride[1][plan.rank - 1] == 0;
  // Threads split the output, never a reduction, so the summation order is fixed.
  auto body = [&](std::int64_t r) {
    const auto off = row_offsets(plan, r);
    const T* s = src + off[0];
    T* d = dst + off[1];
    std::int64_t i = 0;
    constexpr std::int64_t w = batch<T>::size;
    if (inner_reduced) {
      batch<T> acc(T(0));
      for (; i + w <= inner; i += w) acc += batch<T>::load_unaligned(s + i);
      T tail = xsimd::hadd(acc);
      for (; i < inner; ++i) tail += s[i];
      d[0] += tail;
    } else {
      for (; i + w <= inner; i += w) (batch<T>::load_unaligned(d + i) + batch<T>::load_unaligned(s + i)).store_unaligned(d + i);
      for (; i < inner; ++i) d[i] += s[i];
    }
  };
  if (ds.numel() == ss.numel()) {
    parallel_for(rows, 64, [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) body(r);
    });
  } else {
    for (std::int64_t r = 0; r < rows; ++r) body(r);
  }
}

}  // namespace sslgate::ops::cpu
