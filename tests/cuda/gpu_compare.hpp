#pragma once
// Shared by the GPU test files: random inputs and the GPU-vs-CPU comparison (tests/cuda/cuda_ops_test.cpp
// states the tolerances).
#include <sslgate/core/tensor.hpp>

#include "../test_util.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

namespace sslgate::test {

using ftensor = tensor<float>;

inline ftensor rand_t(const shape& s, std::uint64_t seed, float lo = -1, float hi = 1) {
  rng r(seed);
  return ftensor::uniform(s, r, lo, hi);
}

inline double nmse(const std::vector<float>& got, const std::vector<float>& want) {
  return testing::nmse(got.data(), want.data(), static_cast<std::int64_t>(want.size()));
}

inline void require_close(const std::vector<float>& got, const std::vector<float>& want, double rel = 1e-5) {
  REQUIRE(got.size() == want.size());
  CHECK(nmse(got, want) <= 1e-7);
  double scale = 0;
  for (float v : want) scale = std::max(scale, static_cast<double>(std::abs(v)));
  std::size_t bad = 0, first = want.size();
  for (std::size_t i = 0; i < want.size(); ++i)
    if (!(std::abs(static_cast<double>(got[i]) - want[i]) <= rel * std::abs(want[i]) + 1e-6 * scale)) {
      ++bad;
      if (first == want.size()) first = i;
    }
  INFO("first mismatch at " << first << (first < want.size() ? ": got " + std::to_string(got[first]) + ", want " + std::to_string(want[first]) : ""));
  CHECK(bad == 0);
}

inline void require_close(const ftensor& got_gpu, const ftensor& want_cpu, double rel = 1e-5) {
  REQUIRE(got_gpu.dims() == want_cpu.dims());
  require_close(got_gpu.to_vector(), want_cpu.to_vector(), rel);
}

}  // namespace sslgate::test
