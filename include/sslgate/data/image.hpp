#pragma once
// 8-bit images as the data pipeline holds them: rows of interleaved channels (HWC), 1 (grey) or 3
// (RGB) channels, the layout PIL uses. Float NCHW appears only at the end of a pipeline (normalize).
#include <sslgate/core/error.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sslgate::data {

// A read-only window on 8-bit pixels: h rows of w pixels of c channels, rows `stride` bytes apart.
// A crop is a view with an offset origin; no copy.
struct image_view {
  const std::uint8_t* data = nullptr;
  int h = 0, w = 0, c = 0;
  std::ptrdiff_t stride = 0;  // bytes from one row to the next (>= w * c)

  const std::uint8_t* row(int y) const { return data + static_cast<std::ptrdiff_t>(y) * stride; }
  // The rectangle of rows [top, top + height) and columns [left, left + width); must lie inside.
  image_view crop(int top, int left, int height, int width) const {
    SSLGATE_CHECK(top >= 0 && left >= 0 && height > 0 && width > 0 && top + height <= h && left + width <= w, value_error, "crop",
                  "box (top {}, left {}, {}x{}) does not lie inside a {}x{} image", top, left, height, width, h, w);
    return {data + static_cast<std::ptrdiff_t>(top) * stride + static_cast<std::ptrdiff_t>(left) * c, height, width, c, stride};
  }
};

// An owning, contiguous 8-bit image (stride = w * c).
struct image_u8 {
  int h = 0, w = 0, c = 0;
  std::vector<std::uint8_t> px;  // [h, w, c]

  image_u8() = default;
  image_u8(int height, int width, int channels) { resize(height, width, channels); }
  // Reshapes, keeping the allocation when it is large enough (buffers are reused across samples).
  void resize(int height, int width, int channels) {
    h = height;
    w = width;
    c = channels;
    px.resize(static_cast<std::size_t>(h) * w * c);
  }
  std::uint8_t* row(int y) { return px.data() + static_cast<std::size_t>(y) * w * c; }
  const std::uint8_t* row(int y) const { return px.data() + static_cast<std::size_t>(y) * w * c; }
  std::uint8_t& at(int y, int x, int ch) { return px[(static_cast<std::size_t>(y) * w + x) * c + ch]; }
  std::uint8_t at(int y, int x, int ch) const { return px[(static_cast<std::size_t>(y) * w + x) * c + ch]; }
  image_view view() const { return {px.data(), h, w, c, static_cast<std::ptrdiff_t>(w) * c}; }
  // A contiguous copy of a view.
  static image_u8 copy_of(const image_view& v) {
    image_u8 im(v.h, v.w, v.c);
    for (int y = 0; y < v.h; ++y)
      for (int x = 0; x < v.w * v.c; ++x) im.row(y)[x] = v.row(y)[x];
    return im;
  }
};

}  // namespace sslgate::data
