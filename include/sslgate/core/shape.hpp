#pragma once
// shape: up to 5 extents, row-major (NCHW for images).
#include <sslgate/core/error.hpp>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>

namespace sslgate {

class shape {
 public:
  static constexpr int max_rank = 5;

  shape() = default;
  shape(std::initializer_list<std::int64_t> dims) : shape(std::span<const std::int64_t>(dims.begin(), dims.size())) {}
  explicit shape(std::span<const std::int64_t> dims) {
    SSLGATE_CHECK(dims.size() <= max_rank, shape_error, "shape", "rank {} exceeds the maximum {}", dims.size(), max_rank);
    rank_ = static_cast<int>(dims.size());
    for (int i = 0; i < rank_; ++i) {
      SSLGATE_CHECK(dims[i] >= 0, shape_error, "shape", "negative extent {} in dimension {}", dims[i], i);
      d_[i] = dims[i];
    }
  }

  int rank() const { return rank_; }
  std::int64_t operator[](int i) const { return d_[i]; }
  std::int64_t& operator[](int i) { return d_[i]; }
  // Negative indices count from the back, as in Python.
  std::int64_t dim(int i) const { return d_[axis(i)]; }
  int axis(int i) const {
    int a = i < 0 ? i + rank_ : i;
    SSLGATE_CHECK(a >= 0 && a < rank_, shape_error, "shape", "dimension {} out of range for {}", i, str());
    return a;
  }
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= d_[i];
    return n;
  }
  // Elements spanned by dimensions [from, rank).
  std::int64_t stride(int i) const {
    std::int64_t s = 1;
    for (int j = i + 1; j < rank_; ++j) s *= d_[j];
    return s;
  }
  std::span<const std::int64_t> dims() const { return {d_.data(), static_cast<std::size_t>(rank_)}; }

  friend bool operator==(const shape& a, const shape& b) {
    if (a.rank_ != b.rank_) return false;
    for (int i = 0; i < a.rank_; ++i)
      if (a.d_[i] != b.d_[i]) return false;
    return true;
  }
  std::string str() const { return fmt::format("[{}]", fmt::join(dims(), ", ")); }

 private:
  std::array<std::int64_t, max_rank> d_{};
  int rank_ = 0;
};

}  // namespace sslgate

template <>
struct fmt::formatter<sslgate::shape> : fmt::formatter<std::string> {
  auto format(const sslgate::shape& s, format_context& ctx) const { return fmt::formatter<std::string>::format(s.str(), ctx); }
};
