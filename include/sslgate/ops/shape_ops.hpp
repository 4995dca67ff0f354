#pragma once
// Ops that move elements without arithmetic: reshape, slice, concat, split, index_select.
// Along dimension d a tensor is seen as [outer, size(d), inner]; each op copies rows of `inner` elements.
#include <sslgate/ops/elementwise.hpp>

#include <cstring>
#include <vector>

namespace sslgate::ops {

namespace detail {
struct axis_view {
  std::int64_t outer = 1, size = 1, inner = 1;
};
inline axis_view view_along(const shape& s, int axis) {
  axis_view v;
  for (int i = 0; i < axis; ++i) v.outer *= s[i];
  v.size = s[axis];
  v.inner = s.stride(axis);
  return v;
}
// dst rows [dst_at, dst_at + count) of a [outer, dst_size, inner] tensor (+)= src rows [src_at, ...).
template <class T, bool Add>
void copy_rows(T* dst, std::int64_t dst_size, std::int64_t dst_at, const T* src, std::int64_t src_size, std::int64_t src_at,
               std::int64_t count, const axis_view& v) {
  for (std::int64_t o = 0; o < v.outer; ++o) {
    T* d = dst + (o * dst_size + dst_at) * v.inner;
    const T* s = src + (o * src_size + src_at) * v.inner;
    if constexpr (Add) {
      for (std::int64_t i = 0; i < count * v.inner; ++i) d[i] += s[i];
    } else {
      std::memcpy(d, s, static_cast<std::size_t>(count * v.inner) * sizeof(T));
    }
  }
}
// copy_rows on the device the tensors live on (dev: a CUDA device).
template <class T, bool Add>
void copy_rows_on(bool dev, T* dst, std::int64_t dst_size, std::int64_t dst_at, const T* src, std::int64_t src_size, std::int64_t src_at,
                  std::int64_t count, const axis_view& v) {
  if (dev) {
    if constexpr (cuda_kernels<T>) cuda::copy_rows(dst, dst_size, dst_at, src, src_size, src_at, count, v.outer, v.inner, Add);
    return;
  }
  copy_rows<T, Add>(dst, dst_size, dst_at, src, src_size, src_at, count, v);
}
}  // namespace detail

// The same elements in another shape of equal size; shares storage with x.
template <real T>
tensor<T> reshape(tape<T>& tp, const tensor<T>& x, const shape& s) {
  tensor<T> y = x.view_as(s);
  tp.record({x}, y, [](grad_slots<T>& g, const tensor<T>& dy) { detail::add_into(g[0], dy); });
  return y;
}

// Elements [start, end) along dim.
template <real T>
tensor<T> slice(tape<T>& tp, const tensor<T>& x, int dim, std::int64_t start, std::int64_t end) {
  const bool dev = on_device("slice", x);
  const int a = x.dims().axis(dim);
  SSLGATE_CHECK(0 <= start && start <= end && end <= x.dim(a), shape_error, "slice", "range [{}, {}) out of bounds for dimension {} of {}",
                start, end, dim, x.dims());
  shape out = x.dims();
  out[a] = end - start;
  tensor<T> y(out, x.dev());
  const auto v = detail::view_along(x.dims(), a);
  detail::copy_rows_on<T, false>(dev, y.data(), out[a], 0, x.data(), v.size, start, end - start, v);
  tp.record({x}, y, [v, start, n = end - start, dev](grad_slots<T>& g, const tensor<T>& dy) {
    detail::copy_rows_on<T, true>(dev, g[0].data(), v.size, start, dy.data(), n, 0, n, v);
  });
  return y;
}

// Concatenation along dim; every other dimension must agree.
template <real T>
tensor<T> concat(tape<T>& tp, const std::vector<tensor<T>>& xs, int dim) {
  SSLGATE_CHECK(!xs.empty(), shape_error, "concat", "no tensors given");
  const bool dev = on_device("concat", xs[0]);
  for (const auto& x : xs) check_same_device("concat", xs[0], {&x});
  const int a = xs[0].dims().axis(dim);
  shape out = xs[0].dims(), ref = xs[0].dims();
  out[a] = ref[a] = 0;
  for (const auto& x : xs) {
    SSLGATE_CHECK(x.rank() == ref.rank(), shape_error, "concat", "ranks differ: {} and {}", xs[0].dims(), x.dims());
    shape probe = x.dims();
    probe[a] = 0;
    SSLGATE_CHECK(probe == ref, shape_error, "concat", "shapes {} and {} differ outside dimension {}", xs[0].dims(), x.dims(), dim);
    out[a] += x.dim(a);
  }
  tensor<T> y(out, xs[0].dev());
  std::vector<std::int64_t> offsets;
  std::int64_t at = 0;
  for (const auto& x : xs) {
    const auto v = detail::view_along(x.dims(), a);
    detail::copy_rows_on<T, false>(dev, y.data(), out[a], at, x.data(), v.size, 0, v.size, v);
    offsets.push_back(at);
    at += v.size;
  }
  tp.record(xs, y, [xs, offsets, a, total = out[a], dev](grad_slots<T>& g, const tensor<T>& dy) {
    for (std::size_t i = 0; i < xs.size(); ++i) {
      if (!g.needed(static_cast<int>(i))) continue;
      const auto v = detail::view_along(xs[i].dims(), a);
      detail::copy_rows_on<T, true>(dev, g[static_cast<int>(i)].data(), v.size, 0, dy.data(), total, offsets[i], v.size, v);
    }
  });
  return y;
}

// Pieces of the given sizes along dim (they must add up to the dimension).
template <real T>
std::vector<tensor<T>> split(tape<T>& tp, const tensor<T>& x, const std::vector<std::int64_t>& sizes, int dim) {
  std::int64_t total = 0;
  for (auto s : sizes) total += s;
  SSLGATE_CHECK(total == x.dim(dim), shape_error, "split", "sizes add up to {} but dimension {} of {} is {}", total, dim, x.dims(),
                x.dim(dim));
  std::vector<tensor<T>> parts;
  std::int64_t at = 0;
  for (auto s : sizes) {
    parts.push_back(slice(tp, x, dim, at, at + s));
    at += s;
  }
  return parts;
}

// y = x[..., index[j], ...] along dim: gathers, e.g., a subset of channels. Indices may repeat;
// backward scatters (adds) each row back to where it came from.
template <real T>
tensor<T> index_select(tape<T>& tp, const tensor<T>& x, int dim, const std::vector<std::int64_t>& index) {
  const bool dev = on_device("index_select", x);
  const int a = x.dims().axis(dim);
  for (auto i : index)
    SSLGATE_CHECK(0 <= i && i < x.dim(a), shape_error, "index_select", "index {} out of range for dimension {} of {}", i, dim, x.dims());
  shape out = x.dims();
  out[a] = static_cast<std::int64_t>(index.size());
  tensor<T> y(out, x.dev());
  const auto v = detail::view_along(x.dims(), a);
  // One copy per index; on a device they run in order on its stream, so the backward's repeated indices
  // accumulate without races.
  for (std::size_t j = 0; j < index.size(); ++j)
    detail::copy_rows_on<T, false>(dev, y.data(), out[a], static_cast<std::int64_t>(j), x.data(), v.size, index[j], 1, v);
  tp.record({x}, y, [v, index, dev](grad_slots<T>& g, const tensor<T>& dy) {
    const auto n = static_cast<std::int64_t>(index.size());
    for (std::int64_t j = 0; j < n; ++j) detail::copy_rows_on<T, true>(dev, g[0].data(), v.size, index[j], dy.data(), n, j, 1, v);
  });
  return y;
}

}  // namespace sslgate::ops
