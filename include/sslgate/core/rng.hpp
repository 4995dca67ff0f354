#pragma once
// Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11, "Parallel random numbers: as easy
// as 1, 2, 3"). Value i of a stream is a pure function of (key, counter i), so any thread, and later the
// GPU, can produce any slice of the stream and get the same numbers.
#include <sslgate/config.hpp>

#include <array>
#include <cmath>
#include <cstdint>

namespace sslgate {

struct philox4x32 {
  using block = std::array<std::uint32_t, 4>;
  static constexpr std::uint32_t m0 = 0xD2511F53u, m1 = 0xCD9E8D57u;
  static constexpr std::uint32_t w0 = 0x9E3779B9u, w1 = 0xBB67AE85u;

  SSLGATE_HD static block generate(std::uint64_t key, std::uint64_t counter_hi, std::uint64_t counter_lo) {
    std::uint32_t c0 = static_cast<std::uint32_t>(counter_lo), c1 = static_cast<std::uint32_t>(counter_lo >> 32);
    std::uint32_t c2 = static_cast<std::uint32_t>(counter_hi), c3 = static_cast<std::uint32_t>(counter_hi >> 32);
    std::uint32_t k0 = static_cast<std::uint32_t>(key), k1 = static_cast<std::uint32_t>(key >> 32);
    for (int r = 0; r < 10; ++r) {
      const std::uint64_t p0 = std::uint64_t{m0} * c0, p1 = std::uint64_t{m1} * c2;
      const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1 ^ k0;
      const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3 ^ k1;
      c1 = static_cast<std::uint32_t>(p1);
      c3 = static_cast<std::uint32_t>(p0);
      c0 = n0;
      c2 = n2;
      k0 += w0;
      k1 += w1;
    }
    return {c0, c1, c2, c3};
  }
};

// A stream of random numbers: (seed, stream id) select the sequence, offset is the position in it.
// Drawing n values advances offset by n; draw(i) reads value i without touching the state.
class rng {
 public:
  explicit rng(std::uint64_t seed = 0, std::uint64_t stream = 0) : seed_(seed), stream_(stream) {}

  // Uniform in the open interval (0, 1): never 0 or 1, so log(u) and log(1-u) are finite.
  SSLGATE_HD static double uniform_at(std::uint64_t seed, std::uint64_t stream, std::uint64_t i) {
    const auto b = philox4x32::generate(seed, stream, i / 2);
    const std::uint64_t bits = (i % 2 == 0) ? (std::uint64_t{b[0]} << 32 | b[1]) : (std::uint64_t{b[2]} << 32 | b[3]);
    return (static_cast<double>(bits >> 11) + 0.5) * 0x1.0p-53;
  }
  double uniform_at(std::uint64_t i) const { return uniform_at(seed_, stream_, i); }
  // Standard normal by Box-Muller on values (i, i+1) of the stream.
  double normal_at(std::uint64_t i) const {
    return std::sqrt(-2.0 * std::log(uniform_at(i))) * std::cos(6.283185307179586476925 * uniform_at(i + 1));
  }

  // Reserves n positions and returns the first; the caller reads them with uniform_at(first + k).
  std::uint64_t advance(std::uint64_t n) {
    const std::uint64_t first = offset_;
    offset_ += n;
    return first;
  }
  double uniform() { return uniform_at(advance(1)); }
  double normal() { return normal_at(advance(2)); }

  std::uint64_t seed() const { return seed_; }
  std::uint64_t stream() const { return stream_; }
  std::uint64_t offset() const { return offset_; }
  void set_offset(std::uint64_t o) { offset_ = o; }

 private:
  std::uint64_t seed_, stream_, offset_ = 0;
};

}  // namespace sslgate
