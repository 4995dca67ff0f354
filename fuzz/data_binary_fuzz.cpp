// libFuzzer target: the binary data-set parsers (CIFAR-10, CIFAR-100, STL-10, IDX images and labels,
// and the gzip path of the IDX reader). The first byte picks the parser, the rest is the file.
// Any io_error is a correct answer; a crash, a leak or a sanitizer report is a bug.
// fuzz-libs: -lz -lturbojpeg -lspng
#include <sslgate/data/dataset.hpp>

#include <unistd.h>

#include <cstdio>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sslgate;
  using namespace sslgate::data;
  if (size < 1) return 0;
  const std::uint8_t which = data[0] % 6;
  const std::span<const std::uint8_t> body(data + 1, size - 1);
  try {
    switch (which) {
      case 0: {
        const auto a = parse_cifar(body, 1, cifar100_label::fine, "fuzz.bin");
        if (a.count > 0) (void)a.image(a.count - 1).row(31)[95];
        break;
      }
      case 1: (void)parse_cifar(body, 2, body.size() % 2 ? cifar100_label::coarse : cifar100_label::fine, "fuzz.bin"); break;
      case 2: {  // images, then labels: the last byte says how many trailing bytes are labels
        const std::size_t nl = body.empty() ? 0 : std::min<std::size_t>(body.back(), body.size() - 1);
        const auto imgs = body.first(body.size() - (body.empty() ? 0 : 1) - nl);
        (void)parse_stl10(imgs, nl ? body.data() + imgs.size() : nullptr, nl, "fuzz_X.bin", "fuzz_y.bin");
        break;
      }
      case 3: (void)parse_idx_images(std::vector<std::uint8_t>(body.begin(), body.end()), "fuzz-idx3"); break;
      case 4: (void)parse_idx_labels(std::vector<std::uint8_t>(body.begin(), body.end()), 10, "fuzz-idx1"); break;
      default: {  // through a file, so gzread's handling of (possibly gzipped) bytes is exercised
        const std::string path = "/dev/shm/sslgate_fuzz_idx_" + std::to_string(::getpid());
        if (std::FILE* f = std::fopen(path.c_str(), "wb")) {
          std::fwrite(body.data(), 1, body.size(), f);
          std::fclose(f);
          try {
            (void)read_idx_images(path);
          } catch (const io_error&) {
          }
          std::remove(path.c_str());
        }
        break;
      }
    }
  } catch (const io_error&) {
  }
  return 0;
}
