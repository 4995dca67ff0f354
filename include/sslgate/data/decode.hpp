#pragma once
// JPEG (libjpeg-turbo, TurboJPEG API) and PNG (libspng) decoding of untrusted bytes into 8-bit HWC images.
//
// Every input is treated as hostile: the declared size is checked against a pixel cap before any pixel
// buffer is allocated, progressive JPEGs are limited in scans (TJFLAG_LIMITSCANS), PNG chunk sizes are
// capped, and every failure is an io_error naming the source. Never a crash (fuzzed: fuzz/image_decode.cpp).
// What comes out, compared with PIL's Image.open(...).convert("RGB") in torchvision's ImageFolder:
//   JPEG  grey -> 1 channel (the pipeline replicates it, as convert("RGB") does); YCbCr/RGB -> RGB with
//         libjpeg-turbo's default (accurate integer DCT, fancy upsampling), the same decoder PIL uses;
//         CMYK/YCCK -> RGB by PIL's formula (Adobe files store inverted CMYK, detected by the APP14 marker).
//         A truncated stream is an error (PIL raises "image file is truncated"); other libjpeg warnings
//         (extraneous bytes) are tolerated, as in PIL.
//   PNG   every colour type and bit depth -> RGB (spng's RGB8: palette expanded, alpha dropped, 16-bit
//         samples reduced to their high byte), interlaced or not.
#include <sslgate/core/error.hpp>
#include <sslgate/data/image.hpp>

#include <spng.h>
#include <turbojpeg.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace sslgate::data {

struct decode_limits {
  std::uint64_t max_pixels = std::uint64_t{1} << 26;  // 67 M pixels (8192 x 8192): 192 MiB of RGB
  std::uint64_t max_bytes = std::uint64_t{1} << 28;   // files larger than 256 MiB are refused
};

enum class image_format { unknown, jpeg, png };

// From the first bytes: JPEG starts FF D8 FF, PNG with its 8-byte signature.
inline image_format sniff_format(std::span<const std::uint8_t> b) {
  if (b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return image_format::jpeg;
  static constexpr std::uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (b.size() >= 8 && std::memcmp(b.data(), png_sig, 8) == 0) return image_format::png;
  return image_format::unknown;
}

struct image_header {
  image_format format = image_format::unknown;
  int h = 0, w = 0, c = 0;  // c: channels decode() produces (1 or 3)
};

namespace detail {

struct tj_deleter {
  void operator()(void* h) const {
    if (h) tjDestroy(h);
  }
};
// A fresh TurboJPEG decompressor per image: libjpeg keeps tables between images, and a handle that has
// seen a corrupt stream must not decode the next one.
using tj_ptr = std::unique_ptr<void, tj_deleter>;
inline tj_ptr tj_handle() {
  tj_ptr h(tjInitDecompress());
  SSLGATE_CHECK(h != nullptr, io_error, "jpeg", "cannot create a TurboJPEG decompressor: {}", tjGetErrorStr2(nullptr));
  return h;
}

// True when an APP14 "Adobe" marker precedes the first SOS (such files store CMYK inverted).
inline bool jpeg_has_adobe_marker(std::span<const std::uint8_t> b) {
  std::size_t i = 2;
  while (i + 4 <= b.size()) {
    if (b[i] != 0xFF) return false;
    const std::uint8_t m = b[i + 1];
    if (m == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (m == 0xDA || m == 0xD9) return false;  // start of scan / end of image
    const std::size_t len = static_cast<std::size_t>(b[i + 2]) << 8 | b[i + 3];
    if (len < 2) return false;
    if (m == 0xEE && len >= 7 && i + 9 <= b.size() && std::memcmp(b.data() + i + 4, "Adobe", 5) == 0) return true;
    i += 2 + len;
  }
  return false;
}

inline image_header jpeg_header(std::span<const std::uint8_t> b, std::string_view name, const decode_limits& lim, int* colorspace) {
  int w = 0, h = 0, subsamp = 0, cs = 0;
  const tj_ptr tj = tj_handle();
  if (tjDecompressHeader3(tj.get(), b.data(), static_cast<unsigned long>(b.size()), &w, &h, &subsamp, &cs) != 0)
    fail<io_error>("jpeg", "{}: not a readable JPEG ({})", name, tjGetErrorStr2(tj.get()));
  SSLGATE_CHECK(w > 0 && h > 0, io_error, "jpeg", "{}: declared size {}x{} is empty", name, w, h);
  SSLGATE_CHECK(static_cast<std::uint64_t>(w) * static_cast<std::uint64_t>(h) <= lim.max_pixels, io_error, "jpeg",
                "{}: declared size {}x{} exceeds the cap of {} pixels", name, w, h, lim.max_pixels);
  if (colorspace) *colorspace = cs;
  return {image_format::jpeg, h, w, cs == TJCS_GRAY ? 1 : 3};
}

inline void decode_jpeg(std::span<const std::uint8_t> b, std::string_view name, const decode_limits& lim, image_u8& out) {
  int cs = 0;
  const image_header hd = jpeg_header(b, name, lim, &cs);
  const bool cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
  const int pf = cs == TJCS_GRAY ? TJPF_GRAY : (cmyk ? TJPF_CMYK : TJPF_RGB);
  const int ch = cmyk ? 4 : hd.c;
  out.resize(hd.h, hd.w, ch);
  const int flags = TJFLAG_LIMITSCANS;
  const tj_ptr tj = tj_handle();
  if (tjDecompress2(tj.get(), b.data(), static_cast<unsigned long>(b.size()), out.px.data(), hd.w, 0, hd.h, pf, flags) != 0) {
    const std::string msg = tjGetErrorStr2(tj.get());
    const bool warning = tjGetErrorCode(tj.get()) == TJERR_WARNING;
    // A warning means the image was decoded; only a premature end (a truncated file) is refused, as PIL does.
    if (!warning || msg.find("Premature end") != std::string::npos) fail<io_error>("jpeg", "{}: corrupt or truncated JPEG ({})", name, msg);
  }
  if (cmyk) {  // PIL: CMYK;I for Adobe files, then cmyk2rgb
    const bool inverted = jpeg_has_adobe_marker(b);
    const std::size_t n = static_cast<std::size_t>(hd.h) * hd.w;
    std::uint8_t* p = out.px.data();
    for (std::size_t i = 0; i < n; ++i) {
      int v[4];
      for (int k = 0; k < 4; ++k) v[k] = inverted ? 255 - p[4 * i + k] : p[4 * i + k];
      const int nk = 255 - v[3];
      for (int k = 0; k < 3; ++k) {
        const int tmp = v[k] * nk + 128;
        const int r = nk - (((tmp >> 8) + tmp) >> 8);
        p[3 * i + k] = static_cast<std::uint8_t>(r < 0 ? 0 : r);
      }
    }
    out.resize(hd.h, hd.w, 3);
  }
}

struct spng_deleter {
  void operator()(spng_ctx* c) const { spng_ctx_free(c); }
};

inline std::unique_ptr<spng_ctx, spng_deleter> png_open(std::span<const std::uint8_t> b, std::string_view name, const decode_limits& lim,
                                                        image_header& hd) {
  std::unique_ptr<spng_ctx, spng_deleter> ctx(spng_ctx_new(0));
  SSLGATE_CHECK(ctx != nullptr, io_error, "png", "{}: cannot create a decoder", name);
  spng_set_chunk_limits(ctx.get(), std::size_t{1} << 24, std::size_t{1} << 26);
  spng_set_image_limits(ctx.get(), 1u << 20, 1u << 20);
  int r = spng_set_png_buffer(ctx.get(), b.data(), b.size());
  spng_ihdr ihdr{};
  if (r == 0) r = spng_get_ihdr(ctx.get(), &ihdr);
  if (r != 0) fail<io_error>("png", "{}: not a readable PNG ({})", name, spng_strerror(r));
  SSLGATE_CHECK(static_cast<std::uint64_t>(ihdr.width) * ihdr.height <= lim.max_pixels, io_error, "png",
                "{}: declared size {}x{} exceeds the cap of {} pixels", name, ihdr.width, ihdr.height, lim.max_pixels);
  hd = {image_format::png, static_cast<int>(ihdr.height), static_cast<int>(ihdr.width), 3};
  return ctx;
}

inline void decode_png(std::span<const std::uint8_t> b, std::string_view name, const decode_limits& lim, image_u8& out) {
  image_header hd;
  auto ctx = png_open(b, name, lim, hd);
  std::size_t len = 0;
  int r = spng_decoded_image_size(ctx.get(), SPNG_FMT_RGB8, &len);
  if (r != 0) fail<io_error>("png", "{}: cannot decode ({})", name, spng_strerror(r));
  SSLGATE_CHECK(len == static_cast<std::size_t>(hd.h) * hd.w * 3, io_error, "png", "{}: unexpected decoded size {}", name, len);
  out.resize(hd.h, hd.w, 3);
  r = spng_decode_image(ctx.get(), out.px.data(), len, SPNG_FMT_RGB8, 0);
  if (r != 0) fail<io_error>("png", "{}: corrupt or truncated PNG ({})", name, spng_strerror(r));
}

}  // namespace detail

// The format and size a decode would produce, from the header only (cheap; applies the pixel cap).
inline image_header probe_image(std::span<const std::uint8_t> bytes, std::string_view name, const decode_limits& lim = {}) {
  SSLGATE_CHECK(!bytes.empty(), io_error, "image", "{} is empty", name);
  switch (sniff_format(bytes)) {
    case image_format::jpeg: return detail::jpeg_header(bytes, name, lim, nullptr);
    case image_format::png: {
      image_header hd;
      detail::png_open(bytes, name, lim, hd);
      return hd;
    }
    default: fail<io_error>("image", "{} is neither a JPEG nor a PNG file", name);
  }
}

// Decodes a whole JPEG or PNG (by content, not by name) into out (reusing its allocation).
inline void decode_image(std::span<const std::uint8_t> bytes, std::string_view name, image_u8& out, const decode_limits& lim = {}) {
  SSLGATE_CHECK(!bytes.empty(), io_error, "image", "{} is empty", name);
  SSLGATE_CHECK(bytes.size() <= lim.max_bytes, io_error, "image", "{}: {} bytes exceeds the cap of {}", name, bytes.size(), lim.max_bytes);
  switch (sniff_format(bytes)) {
    case image_format::jpeg: return detail::decode_jpeg(bytes, name, lim, out);
    case image_format::png: return detail::decode_png(bytes, name, lim, out);
    default: fail<io_error>("image", "{} is neither a JPEG nor a PNG file", name);
  }
}
inline image_u8 decode_image(std::span<const std::uint8_t> bytes, std::string_view name, const decode_limits& lim = {}) {
  image_u8 out;
  decode_image(bytes, name, out, lim);
  return out;
}

}  // namespace sslgate::data
