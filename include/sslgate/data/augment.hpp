#pragma once
// View recipes (METHOD.md §7) and their application to one image.
//
// A recipe lists the steps of torchvision's Compose in order:
//   RandomResizedCrop(size, scale, ratio, interpolation)   (or Resize(shorter) + CenterCrop for evaluation)
//   RandomApply([ColorJitter(b, c, s, h)], p = jitter_p)   factors uniform in [max(0, 1 - b), 1 + b] ...,
//                                                          hue in [-h, h], the four in a random order
//   RandomGrayscale(gray_p) -> GaussianBlur(PIL radius ~ U[blur_min, blur_max]) with blur_p
//   -> Solarize(threshold 128) with solarize_p -> RandomHorizontalFlip(flip_p) -> ToTensor -> Normalize.
// Randomness: sample_view_params draws every decision of one view from a counter-based stream
// (core/rng.hpp); each decision owns fixed positions of the stream, so a decision never shifts another.
#include <sslgate/core/error.hpp>
#include <sslgate/core/rng.hpp>
#include <sslgate/data/image.hpp>
#include <sslgate/data/transforms.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace sslgate::data {

struct view_recipe {
  int size = 32;  // output side (square)
  // Geometry: RandomResizedCrop when random_crop, else Resize(resize_shorter) (0: none) + CenterCrop(size).
  bool random_crop = true;
  double scale_min = 0.2, scale_max = 1.0;
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
  interpolation interp = interpolation::bicubic;
  int resize_shorter = 0;
  // Colour.
  double jitter_p = 0.8, brightness = 0.4, contrast = 0.4, saturation = 0.2, hue = 0.1;
  double gray_p = 0.2;
  double blur_p = 0.0, blur_min = 0.1, blur_max = 2.0;
  double solarize_p = 0.1;
  int solarize_threshold = 128;
  double flip_p = 0.5;
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f}, std{0.229f, 0.224f, 0.225f};
};

struct two_view_recipe {
  view_recipe view1, view2;  // view 1 feeds the gated path, view 2 the dense path (METHOD.md §5.1)
};

// The decisions for one view of one image.
struct view_params {
  int top = 0, left = 0, height = 0, width = 0;  // crop box in the source image
  bool jitter = false;
  std::array<int, 4> order{0, 1, 2, 3};  // 0 brightness, 1 contrast, 2 saturation, 3 hue
  double brightness = 1, contrast = 1, saturation = 1, hue = 0;
  bool gray = false, blur = false, solarize = false, flip = false;
  double blur_radius = 0;
};

// Stream positions of each decision.
namespace rng_slot {
inline constexpr std::uint64_t crop = 0;       // 10 attempts x 4 values
inline constexpr std::uint64_t jitter = 40;    // apply?, 3 for the order, 4 factors
inline constexpr std::uint64_t gray = 48, blur = 49, blur_radius = 50, solarize = 51, flip = 52;
}  // namespace rng_slot

// torchvision 0.14 RandomResizedCrop.get_params with u(k) as the k-th uniform draw of the stream:
// 10 attempts of (area fraction, log aspect ratio), then (top, left) uniform over the valid positions;
// the fallback is the central crop clamped to the ratio range. Returns {top, left, height, width}.
inline std::array<int, 4> random_resized_crop_box(int height, int width, double scale_min, double scale_max, double ratio_min,
                                                  double ratio_max, const rng& r, std::uint64_t first = rng_slot::crop) {
  const double area = static_cast<double>(height) * width;
  const double lr0 = std::log(ratio_min), lr1 = std::log(ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const std::uint64_t k = first + 4 * static_cast<std::uint64_t>(attempt);
    const double target_area = area * (scale_min + (scale_max - scale_min) * r.uniform_at(k));
    const double aspect = std::exp(lr0 + (lr1 - lr0) * r.uniform_at(k + 1));
    const int w = static_cast<int>(std::nearbyint(std::sqrt(target_area * aspect)));
    const int h = static_cast<int>(std::nearbyint(std::sqrt(target_area / aspect)));
    if (0 < w && w <= width && 0 < h && h <= height) {
      const int top = std::min(height - h, static_cast<int>(r.uniform_at(k + 2) * (height - h + 1)));
      const int left = std::min(width - w, static_cast<int>(r.uniform_at(k + 3) * (width - w + 1)));
      return {top, left, h, w};
    }
  }
  const double in_ratio = static_cast<double>(width) / height;
  int w = width, h = height;
  if (in_ratio < ratio_min) {
    h = static_cast<int>(std::nearbyint(w / ratio_min));
  } else if (in_ratio > ratio_max) {
    w = static_cast<int>(std::nearbyint(h * ratio_max));
  }
  return {(height - h) / 2, (width - w) / 2, h, w};
}

inline view_params sample_view_params(const view_recipe& rc, int src_h, int src_w, const rng& r) {
  view_params p;
  if (rc.random_crop) {
    const auto box = random_resized_crop_box(src_h, src_w, rc.scale_min, rc.scale_max, rc.ratio_min, rc.ratio_max, r);
    p.top = box[0], p.left = box[1], p.height = box[2], p.width = box[3];
  }
  const auto u = [&](std::uint64_t k) { return r.uniform_at(k); };
  const auto between = [](double lo, double hi, double t) { return lo + (hi - lo) * t; };
  p.jitter = rc.jitter_p > 0 && u(rng_slot::jitter) < rc.jitter_p;
  if (p.jitter) {
    for (int i = 3; i > 0; --i) {  // Fisher-Yates: torch.randperm(4)
      const int j = std::min(i, static_cast<int>(u(rng_slot::jitter + 4 - i) * (i + 1)));
      std::swap(p.order[i], p.order[j]);
    }
    p.brightness = between(std::max(0.0, 1 - rc.brightness), 1 + rc.brightness, u(rng_slot::jitter + 4));
    p.contrast = between(std::max(0.0, 1 - rc.contrast), 1 + rc.contrast, u(rng_slot::jitter + 5));
    p.saturation = between(std::max(0.0, 1 - rc.saturation), 1 + rc.saturation, u(rng_slot::jitter + 6));
    p.hue = between(-rc.hue, rc.hue, u(rng_slot::jitter + 7));
  }
  p.gray = rc.gray_p > 0 && u(rng_slot::gray) < rc.gray_p;
  p.blur = rc.blur_p > 0 && u(rng_slot::blur) < rc.blur_p;
  if (p.blur) p.blur_radius = between(rc.blur_min, rc.blur_max, u(rng_slot::blur_radius));
  p.solarize = rc.solarize_p > 0 && u(rng_slot::solarize) < rc.solarize_p;
  p.flip = rc.flip_p > 0 && u(rng_slot::flip) < rc.flip_p;
  return p;
}

// Runs the recipe with fixed decisions on src (grey or RGB) and writes the normalized [3, size, size]
// floats to out. img and s are scratch (reused between calls).
inline void apply_view(const view_recipe& rc, const view_params& p, const image_view& src, float* out, image_u8& img, transform_scratch& s) {
  if (rc.random_crop) {
    resized_crop(src, p.top, p.left, p.height, p.width, rc.size, rc.size, rc.interp, img, s);
  } else {
    image_view v = src;
    if (rc.resize_shorter > 0) {
      resize_shorter(src, rc.resize_shorter, rc.interp, s.tmp2, s);
      v = s.tmp2.view();
    }
    center_crop(v, rc.size, rc.size, img);
  }
  if (img.c == 1 && (p.jitter || p.gray)) {  // PIL convert("RGB") before colour operations
    s.tmp2.resize(img.h, img.w, 3);
    for (std::size_t i = 0; i < img.px.size(); ++i) s.tmp2.px[3 * i] = s.tmp2.px[3 * i + 1] = s.tmp2.px[3 * i + 2] = img.px[i];
    std::swap(img, s.tmp2);
  }
  if (p.jitter) {
    for (int f : p.order) {
      if (f == 0 && rc.brightness > 0) adjust_brightness(img, p.brightness);
      if (f == 1 && rc.contrast > 0) adjust_contrast(img, p.contrast);
      if (f == 2 && rc.saturation > 0) adjust_saturation(img, p.saturation);
      if (f == 3 && rc.hue > 0) adjust_hue(img, p.hue);
    }
  }
  if (p.gray) to_grayscale(img);
  if (p.blur) gaussian_blur(img, p.blur_radius);
  if (p.solarize) solarize(img, rc.solarize_threshold);
  if (p.flip) hflip(img);
  to_normalized(img, rc.mean, rc.std, out, 3);
}

// Per-dataset recipes of METHOD.md §7.
namespace presets {

inline view_recipe ssl_view(int size, std::array<float, 3> mean, std::array<float, 3> stdev, double blur_p) {
  view_recipe v;
  v.size = size;
  v.mean = mean;
  v.std = stdev;
  v.blur_p = blur_p;
  return v;
}
inline constexpr std::array<float, 3> cifar10_mean{0.4914f, 0.4822f, 0.4465f}, cifar10_std{0.2470f, 0.2435f, 0.2616f};
inline constexpr std::array<float, 3> cifar100_mean{0.5071f, 0.4865f, 0.4409f}, cifar100_std{0.2673f, 0.2564f, 0.2762f};
inline constexpr std::array<float, 3> stl10_mean{0.4914f, 0.4823f, 0.4466f}, stl10_std{0.247f, 0.243f, 0.261f};
inline constexpr std::array<float, 3> in100_mean{0.485f, 0.456f, 0.406f}, in100_std{0.228f, 0.224f, 0.225f};
inline constexpr std::array<float, 3> cifar_eval_mean{0.4914f, 0.4822f, 0.4465f}, cifar_eval_std{0.247f, 0.243f, 0.261f};

// Pre-training (SSL) recipes.
inline two_view_recipe cifar10() { return {ssl_view(32, cifar10_mean, cifar10_std, 0), ssl_view(32, cifar10_mean, cifar10_std, 0)}; }
inline two_view_recipe cifar100() {  // view 2 (dense path) is blurred with p = 0.2
  return {ssl_view(32, cifar100_mean, cifar100_std, 0), ssl_view(32, cifar100_mean, cifar100_std, 0.2)};
}
inline two_view_recipe stl10() { return {ssl_view(96, stl10_mean, stl10_std, 0), ssl_view(96, stl10_mean, stl10_std, 0)}; }
inline two_view_recipe imagenet100() { return {ssl_view(224, in100_mean, in100_std, 0), ssl_view(224, in100_mean, in100_std, 0)}; }

// Linear-probe training: RandomResizedCrop(size, scale 0.08-1, bilinear) + flip, no colour.
inline view_recipe probe_train(int size, std::array<float, 3> mean, std::array<float, 3> stdev) {
  view_recipe v;
  v.size = size;
  v.scale_min = 0.08;
  v.interp = interpolation::bilinear;
  v.jitter_p = v.gray_p = v.blur_p = v.solarize_p = 0;
  v.mean = mean;
  v.std = stdev;
  return v;
}
// Evaluation: Resize(resize_shorter) (0: none) + CenterCrop(size), bilinear, no randomness.
inline view_recipe eval(int size, int resize_shorter, std::array<float, 3> mean, std::array<float, 3> stdev) {
  view_recipe v = probe_train(size, mean, stdev);
  v.random_crop = false;
  v.resize_shorter = resize_shorter;
  v.flip_p = 0;
  return v;
}

// By name: "cifar10", "cifar100", "stl10", "imagenet100".
inline two_view_recipe by_name(std::string_view name) {
  if (name == "cifar10") return cifar10();
  if (name == "cifar100") return cifar100();
  if (name == "stl10") return stl10();
  if (name == "imagenet100") return imagenet100();
  fail<value_error>("presets", "unknown recipe '{}' (cifar10, cifar100, stl10, imagenet100)", name);
}
// Evaluation transform of a data set: CIFAR none (CIFAR-10 statistics for both), STL Resize(96), IN-100 Resize(256) + CenterCrop(224).
inline view_recipe eval_by_name(std::string_view name) {
  if (name == "cifar10" || name == "cifar100") return eval(32, 0, cifar_eval_mean, cifar_eval_std);
  if (name == "stl10") return eval(96, 96, stl10_mean, stl10_std);
  if (name == "imagenet100") return eval(224, 256, in100_mean, in100_std);
  fail<value_error>("presets", "unknown data set '{}' (cifar10, cifar100, stl10, imagenet100)", name);
}

}  // namespace presets
}  // namespace sslgate::data
