// libFuzzer target for the safetensors reader. Any input must either parse or throw an
// sslgate::error; anything else (crash, sanitizer report, other exception) is a bug. Files that
// parse must also survive a write/read round trip unchanged.
#include <sslgate/core/io/safetensors.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

void check(bool ok) {
  if (!ok) std::abort();  // reported by libFuzzer as a crash with the offending input
}

void exercise(const sslgate::io::safetensors_file& f) {
  using namespace sslgate::io;
  for (const tensor_entry& e : f.entries()) {
    check(f.find(e.name) == &f.at(e.name));
    const auto raw = f.data(e);
    check(raw.size() == e.size);
    check(f.values<double>(e.name).size() * dtype_size(e.type) == e.size);
    try {
      (void)f.values<std::int32_t>(e.name);  // may not fit: value_error
    } catch (const sslgate::value_error&) {
    }
  }

  // Round trip: rewriting the parsed tensors (in data order) must give the same entries and bytes.
  safetensors_writer w;
  for (const tensor_entry& e : f.entries()) w.add(e.name, e.type, e.shape, f.data(e));
  for (const auto& [k, v] : f.metadata()) w.set_metadata(k, v);
  const auto g = safetensors_file::parse(w.bytes(), "<round trip>");
  check(g.entries().size() == f.entries().size());
  check(g.metadata() == f.metadata());
  for (std::size_t i = 0; i < f.entries().size(); ++i) {
    const tensor_entry& a = f.entries()[i];
    const tensor_entry& b = g.entries()[i];
    check(a.name == b.name && a.type == b.type && a.shape == b.shape && a.offset == b.offset && a.size == b.size);
    const auto da = f.data(a);
    const auto db = g.data(b);
    check(da.size() == db.size() && (da.empty() || std::memcmp(da.data(), db.data(), da.size()) == 0));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::byte> bytes(size);
  if (size != 0) std::memcpy(bytes.data(), data, size);
  try {
    const auto f = sslgate::io::safetensors_file::parse(std::move(bytes), "<fuzz>");
    exercise(f);
  } catch (const sslgate::error&) {
  }
  return 0;
}
