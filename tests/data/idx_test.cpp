#include <sslgate/data/idx.hpp>

#include <catch2/catch.hpp>
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>

using namespace sslgate;
namespace fs = std::filesystem;

namespace {
std::vector<std::uint8_t> header(std::uint32_t magic, std::vector<std::uint32_t> dims) {
  std::vector<std::uint8_t> b;
  auto put = [&](std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(v >> s));
  };
  put(magic);
  for (auto d : dims) put(d);
  return b;
}
fs::path write(const std::string& name, const std::vector<std::uint8_t>& bytes, bool gz) {
  const fs::path p = fs::temp_directory_path() / fmt::format("sslgate_idx_{}_{}", ::getpid(), name);
  if (gz) {
    gzFile f = gzopen(p.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  return p;
}
}  // namespace

TEST_CASE("IDX: images and labels, gzipped or plain, counts from the header", "[data]") {
  for (bool gz : {false, true}) {
    auto im = header(0x803, {3, 2, 2});
    for (int i = 0; i < 12; ++i) im.push_back(static_cast<std::uint8_t>(i));
    const auto images = data::read_idx_images(write("im", im, gz));
    CHECK(images.count == 3);
    CHECK(images.rows == 2);
    CHECK(images.pixels[11] == 11);
    auto lb = header(0x801, {3});
    lb.insert(lb.end(), {2, 0, 9});
    CHECK(data::read_idx_labels(write("lb", lb, gz), 10) == std::vector<std::uint8_t>{2, 0, 9});
  }
}

TEST_CASE("IDX: bad files are clear errors naming the file", "[data]") {
  auto im = header(0x803, {3, 2, 2});
  im.resize(im.size() + 11);  // one pixel short
  CHECK_THROWS_WITH(data::read_idx_images(write("short", im, true)), Catch::Contains("promises 3 images of 2x2 (12 bytes) but 11"));
  CHECK_THROWS_WITH(data::read_idx_images(write("magic", header(0x801, {1, 1, 1}), false)), Catch::Contains("not an unsigned-byte image file"));
  CHECK_THROWS_WITH(data::read_idx_images(write("tiny", {1, 2}, false)), Catch::Contains("too short"));
  CHECK_THROWS_WITH(data::read_idx_images("/nonexistent/file.gz"), Catch::Contains("cannot open /nonexistent/file.gz"));
  auto lb = header(0x801, {2});
  lb.insert(lb.end(), {1, 10});
  CHECK_THROWS_WITH(data::read_idx_labels(write("label", lb, false), 10), Catch::Contains("label 10 of record 1 is out of range"));
  // A gzip stream cut in the middle.
  std::vector<std::uint8_t> big = header(0x803, {100, 28, 28});
  big.resize(big.size() + 78400, 7);
  const fs::path p = write("cut", big, true);
  fs::resize_file(p, fs::file_size(p) / 2);
  CHECK_THROWS_AS(data::read_idx_images(p), io_error);
}

TEST_CASE("IDX: Debian's Fashion-MNIST", "[data]") {
  const fs::path dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(dir / "t10k-images-idx3-ubyte.gz")) {
    WARN("dataset-fashion-mnist is not installed: skipped");
    return;
  }
  const auto images = data::read_idx_images(dir / "t10k-images-idx3-ubyte.gz");
  const auto labels = data::read_idx_labels(dir / "t10k-labels-idx1-ubyte.gz", 10);
  CHECK(images.count == 10000);
  CHECK(images.rows == 28);
  CHECK(labels.size() == 10000);
  std::vector<int> counts(10, 0);
  for (auto l : labels) ++counts[l];
  CHECK(counts == std::vector<int>(10, 1000));  // the test split is balanced
  CHECK(labels[0] == 9);                        // the first test image is an ankle boot
}
