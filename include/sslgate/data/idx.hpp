#pragma once
// IDX files (MNIST, Fashion-MNIST), gzipped or not: big-endian int32 magic 0x00000803 (images) or
// 0x00000801 (labels), the extents, then unsigned bytes. Counts come from the header, never assumed,
// and the payload must be exactly that long.
#include <sslgate/core/error.hpp>

#include <zlib.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace sslgate::data {

struct idx_images {
  std::int64_t count = 0, rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;  // [count, rows, cols]
};

namespace detail {
// The whole (decompressed) file; gzread reads plain files unchanged.
inline std::vector<std::uint8_t> read_maybe_gzipped(const std::filesystem::path& path, std::size_t cap) {
  std::unique_ptr<gzFile_s, int (*)(gzFile)> f(gzopen(path.c_str(), "rb"), gzclose);
  SSLGATE_CHECK(f != nullptr, io_error, "idx", "cannot open {}", path.string());
  std::vector<std::uint8_t> out;
  std::array<std::uint8_t, 1 << 16> buf;
  for (;;) {
    const int n = gzread(f.get(), buf.data(), static_cast<unsigned>(buf.size()));
    if (n < 0) {
      int code = 0;
      fail<io_error>("idx", "{}: corrupt or truncated compressed data ({})", path.string(), gzerror(f.get(), &code));
    }
    if (n == 0) break;
    SSLGATE_CHECK(out.size() + static_cast<std::size_t>(n) <= cap, io_error, "idx", "{}: larger than the {} bytes an IDX file of this kind may hold",
                  path.string(), cap);
    out.insert(out.end(), buf.begin(), buf.begin() + n);
  }
  return out;
}
inline std::uint32_t be32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}
inline constexpr std::size_t idx_cap = std::size_t{1} << 32;  // 4 GiB: bounds memory on hostile input
}  // namespace detail

// Parses the bytes of an (already decompressed) IDX image file; `name` names it in errors.
inline idx_images parse_idx_images(const std::vector<std::uint8_t>& bytes, const std::string& name) {
  SSLGATE_CHECK(bytes.size() >= 4, io_error, "idx", "{}: {} bytes is too short for an image header", name, bytes.size());
  SSLGATE_CHECK(detail::be32(bytes.data()) == 0x803, io_error, "idx", "{}: magic {:#010x} is not an unsigned-byte image file (0x00000803)",
                name, detail::be32(bytes.data()));
  SSLGATE_CHECK(bytes.size() >= 16, io_error, "idx", "{}: {} bytes is too short for an image header", name, bytes.size());
  idx_images im{detail::be32(bytes.data() + 4), detail::be32(bytes.data() + 8), detail::be32(bytes.data() + 12), {}};
  const std::uint64_t plane = static_cast<std::uint64_t>(im.rows) * static_cast<std::uint64_t>(im.cols);  // < 2^64
  SSLGATE_CHECK(plane == 0 || static_cast<std::uint64_t>(im.count) <= std::numeric_limits<std::uint64_t>::max() / plane, io_error, "idx",
                "{}: header promises {} images of {}x{}, more bytes than can exist", name, im.count, im.rows, im.cols);
  const auto payload = static_cast<std::uint64_t>(im.count) * plane;
  SSLGATE_CHECK(bytes.size() - 16 == payload, io_error, "idx", "{}: header promises {} images of {}x{} ({} bytes) but {} bytes follow",
                name, im.count, im.rows, im.cols, payload, bytes.size() - 16);
  im.pixels.assign(bytes.begin() + 16, bytes.end());
  return im;
}

inline idx_images read_idx_images(const std::filesystem::path& path) {
  return parse_idx_images(detail::read_maybe_gzipped(path, detail::idx_cap), path.string());
}

// Labels, each checked against num_classes.
inline std::vector<std::uint8_t> parse_idx_labels(const std::vector<std::uint8_t>& bytes, int num_classes, const std::string& name) {
  SSLGATE_CHECK(bytes.size() >= 4, io_error, "idx", "{}: {} bytes is too short for a label header", name, bytes.size());
  SSLGATE_CHECK(detail::be32(bytes.data()) == 0x801, io_error, "idx", "{}: magic {:#010x} is not an unsigned-byte label file (0x00000801)",
                name, detail::be32(bytes.data()));
  SSLGATE_CHECK(bytes.size() >= 8, io_error, "idx", "{}: {} bytes is too short for a label header", name, bytes.size());
  const std::uint64_t count = detail::be32(bytes.data() + 4);
  SSLGATE_CHECK(bytes.size() - 8 == count, io_error, "idx", "{}: header promises {} labels but {} bytes follow", name, count,
                bytes.size() - 8);
  std::vector<std::uint8_t> labels(bytes.begin() + 8, bytes.end());
  for (std::size_t i = 0; i < labels.size(); ++i)
    SSLGATE_CHECK(labels[i] < num_classes, io_error, "idx", "{}: label {} of record {} is out of range [0, {})", name, labels[i], i,
                  num_classes);
  return labels;
}
inline std::vector<std::uint8_t> read_idx_labels(const std::filesystem::path& path, int num_classes) {
  return parse_idx_labels(detail::read_maybe_gzipped(path, detail::idx_cap), num_classes, path.string());
}

}  // namespace sslgate::data
