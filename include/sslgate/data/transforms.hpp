#pragma once
// Image transforms with the semantics torchvision 0.14 has on PIL images (PIL 9.4), which is the path
// the paper's pipeline takes (its datasets hand PIL images to the transforms). Each function reproduces
// PIL's arithmetic, so that outputs match bit for bit or within one grey level:
//   resize / resized_crop   PIL ImagingResample: separable, antialiased (support scaled by the
//                           downscale factor), bicubic a = -0.5 or bilinear, horizontal pass first,
//                           coefficients in 22-bit fixed point, uint8 intermediate.
//   brightness/contrast/    ImageEnhance = Image.blend(degenerate, img, factor) in float32, truncated,
//   saturation              with the degenerate image black / grey mean / convert("L").
//   hue                     convert("HSV"), add uint8(hue * 255) to H with wrap-around, convert back.
//   grayscale               convert("L"): (19595 R + 38470 G + 7471 B + 2^15) >> 16, three copies.
//   solarize                ImageOps.solarize: v < threshold ? v : 255 - v.
//   gaussian_blur           ImageFilter.GaussianBlur(radius): three extended box blurs (PIL BoxBlur.c).
//   to_normalized           ToTensor (v / 255 in float32) then Normalize ((x - mean) / std in float32).
// Images are uint8 HWC (image_u8 / image_view); all functions work on 1- or 3-channel images except
// the colour ones (3 channels).
#include <sslgate/core/error.hpp>
#include <sslgate/data/image.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

namespace sslgate::data {

enum class interpolation { bilinear, bicubic };

// Reused buffers; one per worker thread keeps the hot path free of allocations.
struct transform_scratch {
  std::vector<int> bounds_h, bounds_v;
  std::vector<double> pre_h, pre_v;
  std::vector<std::int32_t> kk_h, kk_v;
  image_u8 tmp, tmp2;
};

namespace detail {

inline constexpr int resample_precision_bits = 32 - 8 - 2;  // PIL's PRECISION_BITS

inline double bicubic_filter(double x) {  // a = -0.5
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}
inline double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

// PIL precompute_coeffs + normalize_coeffs_8bpc: for each output position, the first input index and
// tap count (bounds[2 o], bounds[2 o + 1]) and ksize fixed-point weights. Returns ksize.
inline int precompute_coeffs(int in_size, float in0, float in1, int out_size, interpolation ip, std::vector<int>& bounds,
                             std::vector<double>& pre, std::vector<std::int32_t>& kk) {
  const double support0 = ip == interpolation::bicubic ? 2.0 : 1.0;
  double filterscale, scale;
  filterscale = scale = static_cast<double>(in1 - in0) / out_size;
  if (filterscale < 1.0) filterscale = 1.0;
  const double support = support0 * filterscale;
  const int ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  bounds.resize(static_cast<std::size_t>(out_size) * 2);
  pre.assign(static_cast<std::size_t>(out_size) * ksize, 0.0);
  kk.resize(pre.size());
  const double ss = 1.0 / filterscale;
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    double ww = 0.0;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double* k = pre.data() + static_cast<std::size_t>(xx) * ksize;
    for (int x = 0; x < xmax; ++x) {
      const double arg = (x + xmin - center + 0.5) * ss;
      const double w = ip == interpolation::bicubic ? bicubic_filter(arg) : bilinear_filter(arg);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x)
      if (ww != 0.0) k[x] /= ww;
    bounds[2 * xx] = xmin;
    bounds[2 * xx + 1] = xmax;
  }
  for (std::size_t i = 0; i < pre.size(); ++i)
    kk[i] = pre[i] < 0 ? static_cast<std::int32_t>(-0.5 + pre[i] * (1 << resample_precision_bits))
                       : static_cast<std::int32_t>(0.5 + pre[i] * (1 << resample_precision_bits));
  return ksize;
}

inline std::uint8_t clip8(std::int32_t ss) {
  const std::int32_t v = ss >> resample_precision_bits;
  return static_cast<std::uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Horizontal pass over rows [row0, row0 + out.h) of src.
template <int C>
void resample_horizontal(const image_view& src, int row0, image_u8& out, int ksize, const std::vector<int>& bounds,
                         const std::vector<std::int32_t>& kk) {
  constexpr std::int32_t half = 1 << (resample_precision_bits - 1);
  for (int yy = 0; yy < out.h; ++yy) {
    const std::uint8_t* in = src.row(yy + row0);
    std::uint8_t* o = out.row(yy);
    for (int xx = 0; xx < out.w; ++xx) {
      const int xmin = bounds[2 * xx], xmax = bounds[2 * xx + 1];
      const std::int32_t* k = kk.data() + static_cast<std::size_t>(xx) * ksize;
      std::int32_t ss[C];
      for (int ch = 0; ch < C; ++ch) ss[ch] = half;
      const std::uint8_t* p = in + static_cast<std::ptrdiff_t>(xmin) * C;
      for (int x = 0; x < xmax; ++x)
        for (int ch = 0; ch < C; ++ch) ss[ch] += static_cast<std::int32_t>(p[x * C + ch]) * k[x];
      for (int ch = 0; ch < C; ++ch) o[xx * C + ch] = clip8(ss[ch]);
    }
  }
}

// Vertical pass: out row yy = sum over bounds of src rows; vectorizes along the row.
inline void resample_vertical(const image_view& src, image_u8& out, int ksize, const std::vector<int>& bounds,
                              const std::vector<std::int32_t>& kk) {
  constexpr std::int32_t half = 1 << (resample_precision_bits - 1);
  const int n = out.w * out.c;
  std::vector<std::int32_t> acc(static_cast<std::size_t>(n));
  for (int yy = 0; yy < out.h; ++yy) {
    const int ymin = bounds[2 * yy], ymax = bounds[2 * yy + 1];
    const std::int32_t* k = kk.data() + static_cast<std::size_t>(yy) * ksize;
    std::int32_t* a = acc.data();
    for (int i = 0; i < n; ++i) a[i] = half;
    for (int y = 0; y < ymax; ++y) {
      const std::uint8_t* in = src.row(ymin + y);
      const std::int32_t w = k[y];
      for (int i = 0; i < n; ++i) a[i] += static_cast<std::int32_t>(in[i]) * w;
    }
    std::uint8_t* o = out.row(yy);
    for (int i = 0; i < n; ++i) o[i] = clip8(a[i]);
  }
}

}  // namespace detail

// PIL Image.resize((out_w, out_h), filter) of the whole view: out is [out_h, out_w, c].
inline void resize(const image_view& src, int out_h, int out_w, interpolation ip, image_u8& out, transform_scratch& s) {
  SSLGATE_CHECK(src.h > 0 && src.w > 0 && (src.c == 1 || src.c == 3), value_error, "resize", "cannot resize a {}x{}x{} image", src.h, src.w,
                src.c);
  SSLGATE_CHECK(out_h > 0 && out_w > 0, value_error, "resize", "output size {}x{} must be positive", out_h, out_w);
  out.resize(out_h, out_w, src.c);
  if (out_h == src.h && out_w == src.w) {  // PIL returns a copy
    for (int y = 0; y < src.h; ++y) std::copy_n(src.row(y), static_cast<std::size_t>(src.w) * src.c, out.row(y));
    return;
  }
  const bool need_h = out_w != src.w, need_v = out_h != src.h;
  const int ks_h = detail::precompute_coeffs(src.w, 0.f, static_cast<float>(src.w), out_w, ip, s.bounds_h, s.pre_h, s.kk_h);
  const int ks_v = detail::precompute_coeffs(src.h, 0.f, static_cast<float>(src.h), out_h, ip, s.bounds_v, s.pre_v, s.kk_v);
  image_view vin = src;
  if (need_h) {
    const int first = s.bounds_v[0];
    const int last = s.bounds_v[2 * out_h - 2] + s.bounds_v[2 * out_h - 1];
    for (int i = 0; i < out_h; ++i) s.bounds_v[2 * i] -= first;
    image_u8& t = need_v ? s.tmp : out;
    t.resize(need_v ? last - first : out_h, out_w, src.c);
    if (src.c == 3)
      detail::resample_horizontal<3>(src, need_v ? first : 0, t, ks_h, s.bounds_h, s.kk_h);
    else
      detail::resample_horizontal<1>(src, need_v ? first : 0, t, ks_h, s.bounds_h, s.kk_h);
    if (!need_v) return;
    vin = t.view();
  }
  detail::resample_vertical(vin, out, ks_v, s.bounds_v, s.kk_v);
}

// torchvision F.resized_crop on a PIL image: crop the box, then resize it to out_h x out_w.
inline void resized_crop(const image_view& src, int top, int left, int height, int width, int out_h, int out_w, interpolation ip,
                         image_u8& out, transform_scratch& s) {
  resize(src.crop(top, left, height, width), out_h, out_w, ip, out, s);
}

// torchvision Resize(size) with an int: the shorter side becomes `size`, the longer int(size * long / short).
inline void resize_shorter(const image_view& src, int size, interpolation ip, image_u8& out, transform_scratch& s) {
  SSLGATE_CHECK(size > 0, value_error, "resize", "size {} must be positive", size);
  const bool wide = src.w >= src.h;
  const int sh = wide ? src.h : src.w, lg = wide ? src.w : src.h;
  const int new_long = static_cast<int>(static_cast<double>(size) * lg / sh);
  resize(src, wide ? size : new_long, wide ? new_long : size, ip, out, s);
}

// torchvision CenterCrop: top = round((h - ch) / 2), left = round((w - cw) / 2), Python's round (half to
// even). An image smaller than the crop is padded with zeros first, as torchvision does.
inline void center_crop(const image_view& src, int ch, int cw, image_u8& out) {
  SSLGATE_CHECK(ch > 0 && cw > 0, value_error, "center_crop", "crop {}x{} must be positive", ch, cw);
  image_u8 padded;
  image_view v = src;
  if (ch > src.h || cw > src.w) {  // F.center_crop pads (left, top, right, bottom) = ((cw-w)//2, (ch-h)//2, (cw-w+1)//2, ...)
    const int pl = cw > src.w ? (cw - src.w) / 2 : 0, pr = cw > src.w ? (cw - src.w + 1) / 2 : 0;
    const int pt = ch > src.h ? (ch - src.h) / 2 : 0, pb = ch > src.h ? (ch - src.h + 1) / 2 : 0;
    padded.resize(src.h + pt + pb, src.w + pl + pr, src.c);
    std::fill(padded.px.begin(), padded.px.end(), std::uint8_t{0});
    for (int y = 0; y < src.h; ++y) std::copy_n(src.row(y), static_cast<std::size_t>(src.w) * src.c, padded.row(y + pt) + pl * src.c);
    v = padded.view();
  }
  const int top = static_cast<int>(std::nearbyint((v.h - ch) / 2.0)), left = static_cast<int>(std::nearbyint((v.w - cw) / 2.0));
  const image_view c = v.crop(top, left, ch, cw);
  out.resize(ch, cw, src.c);
  for (int y = 0; y < ch; ++y) std::copy_n(c.row(y), static_cast<std::size_t>(cw) * src.c, out.row(y));
}

inline void hflip(image_u8& im) {
  for (int y = 0; y < im.h; ++y) {
    std::uint8_t* r = im.row(y);
    for (int a = 0, b = im.w - 1; a < b; ++a, --b)
      for (int ch = 0; ch < im.c; ++ch) std::swap(r[a * im.c + ch], r[b * im.c + ch]);
  }
}

// PIL convert("L") of one RGB pixel.
inline std::uint8_t luma(std::uint8_t r, std::uint8_t g, std::uint8_t b) {
  return static_cast<std::uint8_t>((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
}

namespace detail {
inline void require_rgb(const image_u8& im, const char* op) {
  SSLGATE_CHECK(im.c == 3, value_error, op, "needs an RGB image, got {} channel(s)", im.c);
}
// Image.blend(degenerate, img, alpha) for uint8: out = trunc(float(d) + alpha * float(v - d)), clamped to
// [0, 255] (PIL clamps only when alpha is outside [0, 1]; inside, the value cannot leave the range).
// prod[k] = alpha * (k - 255) holds the float32 product for every difference k - 255 in [-255, 255], so
// the per-pixel work is one add and the result is exactly PIL's float arithmetic (no fused multiply-add).
struct blend_table {
  std::array<float, 511> prod;
  explicit blend_table(float alpha) {
    for (int k = 0; k < 511; ++k) prod[k] = alpha * static_cast<float>(k - 255);
  }
  std::uint8_t operator()(int degenerate, int v) const {
    const float t = static_cast<float>(degenerate) + prod[v - degenerate + 255];
    return t <= 0.f ? 0 : (t >= 255.f ? 255 : static_cast<std::uint8_t>(t));
  }
};
}  // namespace detail

// F.adjust_brightness: blend with black.
inline void adjust_brightness(image_u8& im, double factor) {
  const float a = static_cast<float>(factor);
  if (a == 1.f) return;
  std::array<std::uint8_t, 256> lut;
  const detail::blend_table t(a);
  for (int v = 0; v < 256; ++v) lut[v] = a == 0.f ? 0 : t(0, v);
  for (auto& p : im.px) p = lut[p];
}

// F.adjust_contrast: blend with the grey image of the rounded mean of convert("L").
inline void adjust_contrast(image_u8& im, double factor) {
  detail::require_rgb(im, "adjust_contrast");
  const float a = static_cast<float>(factor);
  std::int64_t sum = 0;
  const std::size_t n = static_cast<std::size_t>(im.h) * im.w;
  for (std::size_t i = 0; i < n; ++i) sum += luma(im.px[3 * i], im.px[3 * i + 1], im.px[3 * i + 2]);
  const int mean = static_cast<int>(static_cast<double>(sum) / static_cast<double>(n) + 0.5);
  if (a == 1.f) return;
  std::array<std::uint8_t, 256> lut;
  const detail::blend_table t(a);
  for (int v = 0; v < 256; ++v) lut[v] = a == 0.f ? static_cast<std::uint8_t>(mean) : t(mean, v);
  for (auto& p : im.px) p = lut[p];
}

// F.adjust_saturation: blend with the image's own grey version.
inline void adjust_saturation(image_u8& im, double factor) {
  detail::require_rgb(im, "adjust_saturation");
  const float a = static_cast<float>(factor);
  if (a == 1.f) return;
  const detail::blend_table t(a);
  const std::size_t n = static_cast<std::size_t>(im.h) * im.w;
  std::uint8_t* p = im.px.data();
  for (std::size_t i = 0; i < n; ++i, p += 3) {
    const int g = luma(p[0], p[1], p[2]);
    if (a == 0.f) {
      p[0] = p[1] = p[2] = static_cast<std::uint8_t>(g);
    } else {
      p[0] = t(g, p[0]);
      p[1] = t(g, p[1]);
      p[2] = t(g, p[2]);
    }
  }
}

namespace detail {
// PIL Convert.c rgb2hsv_row, following colorsys.py, with its mix of float and double arithmetic.
inline void rgb_to_hsv(const std::uint8_t* in, std::uint8_t* out) {
  const std::uint8_t r = in[0], g = in[1], b = in[2];
  const std::uint8_t maxc = std::max(r, std::max(g, b)), minc = std::min(r, std::min(g, b));
  if (minc == maxc) {
    out[0] = 0;
    out[1] = 0;
    out[2] = maxc;
    return;
  }
  const float cr = static_cast<float>(maxc - minc);
  const float s = cr / static_cast<float>(maxc);
  const float rc = static_cast<float>(maxc - r) / cr, gc = static_cast<float>(maxc - g) / cr, bc = static_cast<float>(maxc - b) / cr;
  float h;
  if (r == maxc)
    h = bc - gc;
  else if (g == maxc)
    h = static_cast<float>(2.0 + rc - bc);
  else
    h = static_cast<float>(4.0 + gc - rc);
  h = static_cast<float>(std::fmod(h / 6.0 + 1.0, 1.0));
  const int ih = static_cast<int>(h * 255.0), is = static_cast<int>(s * 255.0);
  out[0] = static_cast<std::uint8_t>(std::clamp(ih, 0, 255));
  out[1] = static_cast<std::uint8_t>(std::clamp(is, 0, 255));
  out[2] = maxc;
}
// PIL Convert.c hsv2rgb.
inline void hsv_to_rgb(const std::uint8_t* in, std::uint8_t* out) {
  const std::uint8_t h = in[0], s = in[1], v = in[2];
  if (s == 0) {
    out[0] = out[1] = out[2] = v;
    return;
  }
  const int i = static_cast<int>(std::floor(static_cast<float>(h) * 6.0 / 255.0));
  const float f = static_cast<float>(static_cast<float>(h) * 6.0 / 255.0 - static_cast<float>(i));
  const float fs = static_cast<float>(static_cast<float>(s) / 255.0);
  const auto c8 = [](double x) { return static_cast<std::uint8_t>(std::clamp(static_cast<int>(std::round(x)), 0, 255)); };
  const std::uint8_t p = c8(static_cast<float>(v) * (1.0 - fs));
  const std::uint8_t q = c8(static_cast<float>(v) * (1.0 - fs * f));
  const std::uint8_t t = c8(static_cast<float>(v) * (1.0 - fs * (1.0 - f)));
  switch (i % 6) {
    case 0: out[0] = v, out[1] = t, out[2] = p; break;
    case 1: out[0] = q, out[1] = v, out[2] = p; break;
    case 2: out[0] = p, out[1] = v, out[2] = t; break;
    case 3: out[0] = p, out[1] = q, out[2] = v; break;
    case 4: out[0] = t, out[1] = p, out[2] = v; break;
    default: out[0] = v, out[1] = p, out[2] = q; break;
  }
}
}  // namespace detail

namespace detail {
// adjust_hue's per-pixel work, rgb_to_hsv + shift + hsv_to_rgb, written without branches or libm calls
// so that it vectorizes; every step is exactly the scalar reference's arithmetic:
//   fmod(x, 1) for x in (0, 2)    x >= 1 ? x - 1 : x (exact)
//   round(x) for x >= 0           floor(x) + (x - floor(x) >= 0.5) (exact)
inline void hue_shift_rows(std::uint8_t* px, std::size_t n, std::uint8_t shift) {
  for (std::size_t i = 0; i < n; ++i) {
    std::uint8_t* q = px + 3 * i;
    const int r = q[0], g = q[1], b = q[2];
    const int maxc = std::max(r, std::max(g, b)), minc = std::min(r, std::min(g, b));
    const bool grey = maxc == minc;
    const float cr = grey ? 1.f : static_cast<float>(maxc - minc);
    const float s = static_cast<float>(maxc - minc) / static_cast<float>(grey ? 1 : maxc);
    const float rc = static_cast<float>(maxc - r) / cr, gc = static_cast<float>(maxc - g) / cr, bc = static_cast<float>(maxc - b) / cr;
    const float ha = bc - gc, hb = static_cast<float>(2.0 + rc - bc), hc = static_cast<float>(4.0 + gc - rc);  // all three, then select
    const float h0 = r == maxc ? ha : (g == maxc ? hb : hc);
    const double x = h0 / 6.0 + 1.0;
    const float hf = static_cast<float>(x >= 1.0 ? x - 1.0 : x);
    const int ih = grey ? 0 : std::min(std::max(static_cast<int>(hf * 255.0), 0), 255);
    const int is = grey ? 0 : std::min(std::max(static_cast<int>(s * 255.0), 0), 255);
    const int hh = (ih + shift) & 255;
    // hsv_to_rgb(hh, is, v = maxc)
    const double h6 = static_cast<float>(hh) * 6.0 / 255.0;
    const int k = static_cast<int>(std::floor(h6));
    const float f = static_cast<float>(h6 - static_cast<float>(k));
    const float fs = static_cast<float>(static_cast<float>(is) / 255.0);
    const double fv = static_cast<float>(maxc);
    const auto rnd = [](double y) {
      const double fl = std::floor(y);
      const int v = static_cast<int>(fl) + (y - fl >= 0.5 ? 1 : 0);
      return std::min(std::max(v, 0), 255);
    };
    const int p = rnd(fv * (1.0 - fs)), qq = rnd(fv * (1.0 - fs * f)), t = rnd(fv * (1.0 - fs * (1.0 - f)));
    const int sector = k == 6 ? 0 : k;
    const int v = maxc;
    int o0 = sector == 0 ? v : sector == 1 ? qq : sector == 2 ? p : sector == 3 ? p : sector == 4 ? t : v;
    int o1 = sector == 0 ? t : sector == 1 ? v : sector == 2 ? v : sector == 3 ? qq : sector == 4 ? p : p;
    int o2 = sector == 0 ? p : sector == 1 ? p : sector == 2 ? t : sector == 3 ? v : sector == 4 ? v : qq;
    if (is == 0) o0 = o1 = o2 = v;
    q[0] = static_cast<std::uint8_t>(o0);
    q[1] = static_cast<std::uint8_t>(o1);
    q[2] = static_cast<std::uint8_t>(o2);
  }
}
}  // namespace detail

// F.adjust_hue, hue_factor in [-0.5, 0.5]: H += uint8(hue_factor * 255) (C conversion: truncation, then
// wrap-around as numpy does on this platform). detail::rgb_to_hsv / hsv_to_rgb are the scalar reference.
inline void adjust_hue(image_u8& im, double hue_factor) {
  detail::require_rgb(im, "adjust_hue");
  SSLGATE_CHECK(hue_factor >= -0.5 && hue_factor <= 0.5, value_error, "adjust_hue", "hue_factor {} is not in [-0.5, 0.5]", hue_factor);
  const auto shift = static_cast<std::uint8_t>(static_cast<int>(hue_factor * 255));
  detail::hue_shift_rows(im.px.data(), static_cast<std::size_t>(im.h) * im.w, shift);
}

// The scalar reference of adjust_hue (PIL's functions one after the other); tests compare the two.
inline void adjust_hue_reference(image_u8& im, double hue_factor) {
  const auto shift = static_cast<std::uint8_t>(static_cast<int>(hue_factor * 255));
  const std::size_t n = static_cast<std::size_t>(im.h) * im.w;
  std::uint8_t* p = im.px.data();
  for (std::size_t i = 0; i < n; ++i, p += 3) {
    std::uint8_t hsv[3];
    detail::rgb_to_hsv(p, hsv);
    hsv[0] = static_cast<std::uint8_t>(hsv[0] + shift);
    detail::hsv_to_rgb(hsv, p);
  }
}

// F.rgb_to_grayscale(img, 3): convert("L"), copied into the three channels.
inline void to_grayscale(image_u8& im) {
  if (im.c == 1) return;
  detail::require_rgb(im, "to_grayscale");
  const std::size_t n = static_cast<std::size_t>(im.h) * im.w;
  std::uint8_t* p = im.px.data();
  for (std::size_t i = 0; i < n; ++i, p += 3) p[0] = p[1] = p[2] = luma(p[0], p[1], p[2]);
}

// ImageOps.solarize(img, threshold): every value >= threshold is inverted.
inline void solarize(image_u8& im, int threshold = 128) {
  for (auto& p : im.px)
    if (p >= threshold) p = static_cast<std::uint8_t>(255 - p);
}

namespace detail {
// PIL BoxBlur.c: _gaussian_blur_radius (the extended box of Gwosdek et al. for `passes` boxes).
inline float gaussian_blur_box_radius(float radius, int passes) {
  const float sigma2 = radius * radius / static_cast<float>(passes);
  const float L = static_cast<float>(std::sqrt(12.0 * sigma2 + 1.0));
  const float l = static_cast<float>(std::floor((L - 1.0) / 2.0));
  float a = (2 * l + 1) * (l * (l + 1) - 3 * sigma2);
  a /= 6 * (sigma2 - (l + 1) * (l + 1));
  return l + a;
}
// PIL ImagingLineBoxBlur32 for one channel: in and out are strided lines of n values.
inline void box_blur_line(const std::uint8_t* in, std::ptrdiff_t is, std::uint8_t* out, std::ptrdiff_t os, int n, int radius,
                          int edge_a, int edge_b, std::uint32_t ww, std::uint32_t fw) {
  const int lastx = n - 1;
  const auto L = [&](int x) -> std::uint32_t { return in[x * is]; };
  std::uint32_t acc = L(0) * static_cast<std::uint32_t>(radius + 1);
  for (int x = 0; x < edge_a - 1; ++x) acc += L(x);
  acc += L(lastx) * static_cast<std::uint32_t>(radius - edge_a + 1);
  const auto step = [&](int x, int sub, int add, int far_left, int far_right) {
    acc += L(add) - L(sub);
    const std::uint32_t bulk = acc * ww + (L(far_left) + L(far_right)) * fw;
    out[x * os] = static_cast<std::uint8_t>((bulk + (1u << 23)) >> 24);
  };
  if (edge_a <= edge_b) {
    for (int x = 0; x < edge_a; ++x) step(x, 0, x + radius, 0, x + radius + 1);
    for (int x = edge_a; x < edge_b; ++x) step(x, x - radius - 1, x + radius, x - radius - 1, x + radius + 1);
    for (int x = edge_b; x <= lastx; ++x) step(x, x - radius - 1, lastx, x - radius - 1, lastx);
  } else {
    for (int x = 0; x < edge_b; ++x) step(x, 0, x + radius, 0, x + radius + 1);
    for (int x = edge_b; x < edge_a; ++x) step(x, 0, lastx, 0, lastx);
    for (int x = edge_a; x <= lastx; ++x) step(x, x - radius - 1, lastx, x - radius - 1, lastx);
  }
}
// `passes` box blurs of every line of `count` lines (line k starts at base + k * ls, values is apart).
inline void box_blur_lines(std::uint8_t* base, std::ptrdiff_t ls, std::ptrdiff_t is, int count, int n, float fradius, int passes,
                           std::vector<std::uint8_t>& line) {
  const int radius = static_cast<int>(fradius);
  const auto ww = static_cast<std::uint32_t>(static_cast<float>(1 << 24) / (fradius * 2 + 1));
  const std::uint32_t fw = ((1u << 24) - static_cast<std::uint32_t>(radius * 2 + 1) * ww) / 2;
  const int edge_a = std::min(radius + 1, n), edge_b = std::max(n - radius - 1, 0);
  line.resize(static_cast<std::size_t>(n));
  for (int k = 0; k < count; ++k) {
    std::uint8_t* p = base + k * ls;
    for (int pass = 0; pass < passes; ++pass) {
      box_blur_line(p, is, line.data(), 1, n, radius, edge_a, edge_b, ww, fw);
      for (int x = 0; x < n; ++x) p[x * is] = line[static_cast<std::size_t>(x)];
    }
  }
}
}  // namespace detail

// img.filter(ImageFilter.GaussianBlur(radius)) (PIL 9.4): three extended box blurs along x, then three along y.
inline void gaussian_blur(image_u8& im, double radius) {
  SSLGATE_CHECK(radius >= 0, value_error, "gaussian_blur", "radius {} must be non-negative", radius);
  constexpr int passes = 3;
  const float r = detail::gaussian_blur_box_radius(static_cast<float>(radius), passes);
  if (r == 0.f) return;
  std::vector<std::uint8_t> line;
  for (int ch = 0; ch < im.c; ++ch) {
    detail::box_blur_lines(im.px.data() + ch, static_cast<std::ptrdiff_t>(im.w) * im.c, im.c, im.h, im.w, r, passes, line);  // rows
    detail::box_blur_lines(im.px.data() + ch, im.c, static_cast<std::ptrdiff_t>(im.w) * im.c, im.w, im.h, r, passes, line);  // columns
  }
}

// ToTensor + Normalize: writes c planes of h x w floats ((v / 255 - mean) / std in float32) to out (CHW).
// A grey image is written to all `out_channels` planes (PIL convert("RGB")).
inline void to_normalized(const image_u8& im, const std::array<float, 3>& mean, const std::array<float, 3>& stdev, float* out,
                          int out_channels = 3) {
  SSLGATE_CHECK(im.c == out_channels || im.c == 1, value_error, "normalize", "{}-channel image cannot fill {} planes", im.c, out_channels);
  const std::size_t hw = static_cast<std::size_t>(im.h) * im.w;
  for (int ch = 0; ch < out_channels; ++ch) {
    std::array<float, 256> lut;
    for (int v = 0; v < 256; ++v) lut[v] = (static_cast<float>(v) / 255.f - mean[ch]) / stdev[ch];
    const int src_ch = im.c == 1 ? 0 : ch;
    const std::uint8_t* p = im.px.data() + src_ch;
    float* o = out + ch * hw;
    for (std::size_t i = 0; i < hw; ++i) o[i] = lut[p[i * im.c]];
  }
}

}  // namespace sslgate::data
