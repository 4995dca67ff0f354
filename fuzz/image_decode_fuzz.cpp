// libFuzzer target: the JPEG (TurboJPEG) and PNG (spng) decoders behind image folders, with a small
// pixel cap so that each input stays fast. Any io_error is a correct answer.
// fuzz-libs: -lz -lturbojpeg -lspng
#include <sslgate/data/decode.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sslgate;
  using namespace sslgate::data;
  decode_limits lim;
  lim.max_pixels = std::uint64_t{1} << 22;
  const std::span<const std::uint8_t> bytes(data, size);
  try {
    (void)probe_image(bytes, "fuzz.img", lim);
  } catch (const io_error&) {
  }
  try {
    image_u8 im = decode_image(bytes, "fuzz.img", lim);
    if (!im.px.empty()) (void)im.px.back();
  } catch (const io_error&) {
  }
  return 0;
}
