#pragma once
// Data sets of labelled 8-bit images, and the readers of the official binary formats:
//   CIFAR-10   3073-byte records <label 0..9><1024 R><1024 G><1024 B>, planes row-major, no header.
//   CIFAR-100  3074-byte records <coarse 0..19><fine 0..99><3072 bytes as CIFAR-10>.
//   STL-10     *_X.bin: 27,648-byte images 3x96x96, each channel stored column-major (the byte at
//              x * 96 + y is pixel (y, x)); *_y.bin: one label 1..10 per image (stored here as 0..9).
//   IDX        (MNIST, Fashion-MNIST) through idx.hpp, as one-channel images.
// Record counts always come from the file size (or the IDX header); a size that is not a whole number of
// records, an empty file, or a label out of range is an io_error naming the file.
#include <sslgate/core/error.hpp>
#include <sslgate/data/idx.hpp>
#include <sslgate/data/image.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace sslgate::data {

// A data set: size() images, each with a label (-1 when unlabelled). Implementations are safe to read
// from several threads at once.
class dataset {
 public:
  virtual ~dataset() = default;
  virtual std::int64_t size() const = 0;
  virtual int label(std::int64_t i) const = 0;
  // Image i (HWC uint8): a view of the data set's memory, or of `scratch` after decoding into it.
  virtual image_view image(std::int64_t i, image_u8& scratch) const = 0;
};

// n images of another data set spread evenly over it (image i is base's i * size / n), so a subset of a
// class-sorted set (an image folder) still holds every class. A view: it keeps base alive.
class spread_subset final : public dataset {
 public:
  spread_subset(std::shared_ptr<const dataset> base, std::int64_t n) : base_(std::move(base)), n_(std::min(n, base_->size())) {
    SSLGATE_CHECK(n >= 1, value_error, "spread_subset", "a subset needs at least 1 image, got {}", n);
  }
  std::int64_t size() const override { return n_; }
  int label(std::int64_t i) const override { return base_->label(at(i)); }
  image_view image(std::int64_t i, image_u8& scratch) const override { return base_->image(at(i), scratch); }

 private:
  std::int64_t at(std::int64_t i) const { return i * base_->size() / n_; }
  std::shared_ptr<const dataset> base_;
  std::int64_t n_;
};

// Images of one size held in memory, HWC, image i at pixels[i * h * w * c].
class image_array final : public dataset {
 public:
  std::int64_t count = 0;
  int h = 0, w = 0, c = 0;
  std::vector<std::uint8_t> pixels;
  std::vector<std::int32_t> labels;  // empty for an unlabelled set
  int num_classes = 0;

  std::int64_t size() const override { return count; }
  int label(std::int64_t i) const override { return labels.empty() ? -1 : labels[static_cast<std::size_t>(i)]; }
  image_view image(std::int64_t i, image_u8&) const override { return image(i); }
  image_view image(std::int64_t i) const {
    const std::size_t n = static_cast<std::size_t>(h) * w * c;
    return {pixels.data() + static_cast<std::size_t>(i) * n, h, w, c, static_cast<std::ptrdiff_t>(w) * c};
  }
  // Appends the records of another array of the same image size (e.g. CIFAR-10's five training batches).
  void append(const image_array& o) {
    if (count == 0 && pixels.empty()) {
      *this = o;
      return;
    }
    SSLGATE_CHECK(o.h == h && o.w == w && o.c == c && o.labels.empty() == labels.empty(), value_error, "image_array",
                  "cannot append {}x{}x{} images to {}x{}x{} images", o.h, o.w, o.c, h, w, c);
    pixels.insert(pixels.end(), o.pixels.begin(), o.pixels.end());
    labels.insert(labels.end(), o.labels.begin(), o.labels.end());
    count += o.count;
    num_classes = std::max(num_classes, o.num_classes);
  }
};

namespace detail {
// The whole file, refusing more than cap bytes (checked before reading).
inline std::vector<std::uint8_t> read_file(const std::filesystem::path& path, std::uint64_t cap, std::string_view op) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  SSLGATE_CHECK(!ec && std::filesystem::exists(st), io_error, op, "cannot open {}: {}", path.string(), ec ? ec.message() : "no such file");
  SSLGATE_CHECK(std::filesystem::is_regular_file(st), io_error, op, "{} is not a regular file", path.string());
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  SSLGATE_CHECK(f != nullptr, io_error, op, "cannot open {}: {}", path.string(), std::strerror(errno));
  const auto size = std::filesystem::file_size(path, ec);
  SSLGATE_CHECK(!ec, io_error, op, "cannot read the size of {}: {}", path.string(), ec.message());
  SSLGATE_CHECK(size <= cap, io_error, op, "{}: {} bytes is more than the {} this reader accepts", path.string(), size, cap);
  std::vector<std::uint8_t> out(static_cast<std::size_t>(size));
  const std::size_t got = out.empty() ? 0 : std::fread(out.data(), 1, out.size(), f.get());
  SSLGATE_CHECK(got == out.size(), io_error, op, "{}: read {} of {} bytes ({})", path.string(), got, out.size(),
                std::ferror(f.get()) ? std::strerror(errno) : "file shrank while reading");
  return out;
}
inline constexpr std::uint64_t binary_cap = std::uint64_t{1} << 34;  // 16 GiB
}  // namespace detail

enum class cifar100_label { fine, coarse };

// CIFAR-10 (label_bytes 1) or CIFAR-100 (label_bytes 2) records held in memory; `name` names the
// source in messages.
inline image_array parse_cifar(std::span<const std::uint8_t> bytes, int label_bytes, cifar100_label which, std::string_view name) {
  const char* op = label_bytes == 1 ? "cifar10" : "cifar100";
  const std::size_t rec = 3072 + static_cast<std::size_t>(label_bytes);
  SSLGATE_CHECK(!bytes.empty(), io_error, op, "{} is empty", name);
  SSLGATE_CHECK(bytes.size() % rec == 0, io_error, op, "{}: {} bytes is not a whole number of {}-byte records", name, bytes.size(), rec);
  image_array a;
  a.count = static_cast<std::int64_t>(bytes.size() / rec);
  a.h = a.w = 32;
  a.c = 3;
  a.num_classes = label_bytes == 1 ? 10 : (which == cifar100_label::fine ? 100 : 20);
  a.pixels.resize(static_cast<std::size_t>(a.count) * 3072);
  a.labels.resize(static_cast<std::size_t>(a.count));
  for (std::int64_t i = 0; i < a.count; ++i) {
    const std::uint8_t* r = bytes.data() + static_cast<std::size_t>(i) * rec;
    const int lab = label_bytes == 1 ? r[0] : (which == cifar100_label::fine ? r[1] : r[0]);
    if (label_bytes == 2) {
      SSLGATE_CHECK(r[0] < 20, io_error, op, "{}: coarse label {} of record {} is out of range [0, 20)", name, r[0], i);
      SSLGATE_CHECK(r[1] < 100, io_error, op, "{}: fine label {} of record {} is out of range [0, 100)", name, r[1], i);
    } else {
      SSLGATE_CHECK(lab < 10, io_error, op, "{}: label {} of record {} is out of range [0, 10)", name, lab, i);
    }
    a.labels[static_cast<std::size_t>(i)] = lab;
    const std::uint8_t* planes = r + label_bytes;
    std::uint8_t* out = a.pixels.data() + static_cast<std::size_t>(i) * 3072;
    for (int p = 0; p < 1024; ++p)
      for (int ch = 0; ch < 3; ++ch) out[3 * p + ch] = planes[ch * 1024 + p];
  }
  return a;
}

inline image_array read_cifar10(const std::filesystem::path& path) {
  const auto bytes = detail::read_file(path, detail::binary_cap, "cifar10");
  return parse_cifar(bytes, 1, cifar100_label::fine, path.string());
}
inline image_array read_cifar10(const std::vector<std::filesystem::path>& paths) {
  image_array a;
  for (const auto& p : paths) a.append(read_cifar10(p));
  return a;
}
inline image_array read_cifar100(const std::filesystem::path& path, cifar100_label which = cifar100_label::fine) {
  const auto bytes = detail::read_file(path, detail::binary_cap, "cifar100");
  return parse_cifar(bytes, 2, which, path.string());
}

// STL-10 images (and optionally labels, 1..10 in the file, 0..9 here).
inline image_array parse_stl10(std::span<const std::uint8_t> images, const std::uint8_t* labels, std::size_t label_count,
                               std::string_view name, std::string_view label_name = {}) {
  constexpr std::size_t rec = 3 * 96 * 96;
  SSLGATE_CHECK(!images.empty(), io_error, "stl10", "{} is empty", name);
  SSLGATE_CHECK(images.size() % rec == 0, io_error, "stl10", "{}: {} bytes is not a whole number of {}-byte images", name, images.size(), rec);
  image_array a;
  a.count = static_cast<std::int64_t>(images.size() / rec);
  a.h = a.w = 96;
  a.c = 3;
  if (labels) {
    SSLGATE_CHECK(label_count == static_cast<std::size_t>(a.count), io_error, "stl10", "{} holds {} labels but {} holds {} images", label_name,
                  label_count, name, a.count);
    a.num_classes = 10;
    a.labels.resize(label_count);
    for (std::size_t i = 0; i < label_count; ++i) {
      SSLGATE_CHECK(labels[i] >= 1 && labels[i] <= 10, io_error, "stl10", "{}: label {} of record {} is out of range [1, 10]", label_name,
                    labels[i], i);
      a.labels[i] = labels[i] - 1;
    }
  }
  a.pixels.resize(images.size());
  for (std::int64_t i = 0; i < a.count; ++i) {
    const std::uint8_t* in = images.data() + static_cast<std::size_t>(i) * rec;
    std::uint8_t* out = a.pixels.data() + static_cast<std::size_t>(i) * rec;
    for (int ch = 0; ch < 3; ++ch)
      for (int x = 0; x < 96; ++x)
        for (int y = 0; y < 96; ++y) out[(y * 96 + x) * 3 + ch] = in[ch * 9216 + x * 96 + y];
  }
  return a;
}
// labels_path empty: unlabelled (the "unlabeled" split).
inline image_array read_stl10(const std::filesystem::path& images_path, const std::filesystem::path& labels_path = {}) {
  const auto images = detail::read_file(images_path, detail::binary_cap, "stl10");
  if (labels_path.empty()) return parse_stl10(images, nullptr, 0, images_path.string());
  const auto labels = detail::read_file(labels_path, detail::binary_cap, "stl10");
  SSLGATE_CHECK(!labels.empty(), io_error, "stl10", "{} is empty", labels_path.string());
  return parse_stl10(images, labels.data(), labels.size(), images_path.string(), labels_path.string());
}

// An IDX image file and its label file (MNIST: 10 classes) as one-channel images.
inline image_array read_idx(const std::filesystem::path& images_path, const std::filesystem::path& labels_path, int num_classes = 10) {
  auto im = read_idx_images(images_path);
  auto lab = read_idx_labels(labels_path, num_classes);
  SSLGATE_CHECK(lab.size() == static_cast<std::size_t>(im.count), io_error, "idx", "{} holds {} labels but {} holds {} images",
                labels_path.string(), lab.size(), images_path.string(), im.count);
  SSLGATE_CHECK(im.rows > 0 && im.cols > 0 && im.rows <= 65535 && im.cols <= 65535, io_error, "idx", "{}: image size {}x{} is not usable",
                images_path.string(), im.rows, im.cols);
  image_array a;
  a.count = im.count;
  a.h = static_cast<int>(im.rows);
  a.w = static_cast<int>(im.cols);
  a.c = 1;
  a.num_classes = num_classes;
  a.pixels = std::move(im.pixels);
  a.labels.assign(lab.begin(), lab.end());
  return a;
}

}  // namespace sslgate::data
