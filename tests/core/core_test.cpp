#include <sslgate/core/parallel.hpp>
#include <sslgate/core/tensor.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <numbers>
#include <set>

using namespace sslgate;

TEST_CASE("shape: extents, strides, negative axes and errors", "[core]") {
  const shape s{2, 3, 4, 5};
  CHECK(s.rank() == 4);
  CHECK(s.numel() == 120);
  CHECK(s.stride(1) == 20);
  CHECK(s.dim(-1) == 5);
  CHECK(s.str() == "[2, 3, 4, 5]");
  CHECK(shape{}.numel() == 1);
  CHECK_THROWS_AS((shape{1, 2, 3, 4, 5, 6}), shape_error);
  CHECK_THROWS_WITH((shape{2, -1}), Catch::Contains("negative extent -1"));
  CHECK_THROWS_WITH(s.dim(4), Catch::Contains("[2, 3, 4, 5]"));
}

TEST_CASE("storage is 64-byte aligned and the allocator reuses freed blocks", "[core]") {
  auto& a = caching_allocator::cpu();
  const auto before = a.stats().system_allocs;
  for (int i = 0; i < 10; ++i) {
    tensor<float> t(shape{3, 37});  // an odd size: alignment must not depend on it
    CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
  }
  CHECK(a.stats().system_allocs - before <= 1);
  CHECK(a.stats().peak_in_use >= 3 * 37 * sizeof(float));
}

TEST_CASE("tensor: copies share a node, clone does not, views share storage", "[core]") {
  auto t = tensor<double>::from({2, 2}, {1, 2, 3, 4});
  tensor<double> u = t;
  CHECK(u.id() == t.id());
  auto c = t.clone();
  c[0] = 9;
  CHECK(t[0] == 1);
  auto v = t.view_as(shape{4});
  v[3] = 7;
  CHECK(t[3] == 7);
  CHECK(v.id() != t.id());
  CHECK_THROWS_WITH(t.view_as(shape{3}), Catch::Contains("cannot view [2, 2] as [3]"));
  CHECK_THROWS_AS(tensor<double>::from({3}, {1.0, 2.0}), shape_error);
  CHECK(t.cast<float>()[1] == 2.0f);
}

TEST_CASE("philox matches the Random123 known-answer vectors", "[core][rng]") {
  // Random123 kat_vectors: philox4x32_10, counter = key = 0 and counter = key = all ones.
  auto z = philox4x32::generate(0, 0, 0);
  CHECK(z == philox4x32::block{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  auto f = philox4x32::generate(~0ull, ~0ull, ~0ull);
  CHECK(f == philox4x32::block{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  auto pi = philox4x32::generate(0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull);
  CHECK(pi == philox4x32::block{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
}

TEST_CASE("rng: open interval, moments, and the same stream whatever the threading", "[core][rng]") {
  rng r(42);
  const int n = 1 << 20;
  const std::uint64_t first = r.advance(n);
  double mean = 0, m2 = 0, lo = 1, hi = 0;
  for (int i = 0; i < n; ++i) {
    const double u = r.uniform_at(first + i);
    lo = std::min(lo, u);
    hi = std::max(hi, u);
    mean += u;
    m2 += u * u;
  }
  mean /= n;
  CHECK(lo > 0);
  CHECK(hi < 1);
  CHECK(std::abs(mean - 0.5) < 2e-3);
  CHECK(std::abs(m2 / n - mean * mean - 1.0 / 12) < 1e-3);
  // Filling in parallel chunks gives the sequential stream exactly.
  std::vector<double> seq(4096), par(4096);
  for (int i = 0; i < 4096; ++i) seq[i] = r.uniform_at(i);
  set_num_threads(2);
  parallel_for(4096, 1, [&](std::int64_t b, std::int64_t e) {
    for (auto i = b; i < e; ++i) par[i] = r.uniform_at(i);
  });
  CHECK(seq == par);
  CHECK(rng(1).uniform_at(0) != rng(2).uniform_at(0));
  CHECK(rng(1, 0).uniform_at(0) != rng(1, 1).uniform_at(0));
}

TEST_CASE("parallel_for covers the range once with a fixed partition", "[core]") {
  set_num_threads(2);
  CHECK(num_threads() == 2);
  std::vector<int> hits(1000, 0);
  parallel_for(1000, 1, [&](std::int64_t b, std::int64_t e) {
    for (auto i = b; i < e; ++i) ++hits[i];
  });
  CHECK(std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; }));
  CHECK_THROWS_AS(set_num_threads(0), value_error);
}
