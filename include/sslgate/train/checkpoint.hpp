#pragma once
// Checkpoints: one safetensors file holding parameters, BN buffers and optimizer state (names as the
// reference state dict: "backbone.blocks.2.bn1_g.running_mean", "optim.regular.3.momentum"), with JSON
// metadata (config, epoch, step, RNG and loader position) and a CRC-32 of every tensor's bytes in the header.
// Writes go to a temporary file that is fsynced and renamed (safetensors_writer::write), so a crash leaves the
// previous checkpoint intact; keep_last removes older ones only after the new one is in place.
#include <sslgate/core/io/tensor_io.hpp>
#include <sslgate/layers/module.hpp>

#include <nlohmann/json.hpp>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

namespace sslgate::train {

namespace fs = std::filesystem;

struct checkpoint {
  std::vector<named_tensor<float>> tensors;  // what is saved or what to load into (shapes must match)
  nlohmann::json meta = nlohmann::json::object();
};

inline std::uint32_t crc32_of(std::span<const std::byte> bytes) {
  return static_cast<std::uint32_t>(::crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}

inline fs::path checkpoint_path(const fs::path& dir, std::int64_t epoch) { return dir / fmt::format("checkpoint-e{:04d}.safetensors", epoch); }

// Writes ck atomically to path (device tensors are copied to the host first).
inline void save_checkpoint(const fs::path& path, const checkpoint& ck) {
  io::safetensors_writer w;
  nlohmann::json crc = nlohmann::json::object();
  for (const auto& [name, t] : ck.tensors) {
    const tensor<float> host = t.to(cpu);
    io::add_tensor(w, name, host);
    crc[name] = crc32_of(std::as_bytes(host.values()));
  }
  nlohmann::json meta = ck.meta;
  meta["crc32"] = crc;
  w.set_metadata("sslgate", meta.dump());
  w.write(path);
}

// Reads path into ck.tensors (same names and shapes, else an error naming the first mismatching tensor; they
// may live on any device) and returns the metadata. Every tensor's CRC-32 is verified.
inline nlohmann::json load_checkpoint(const fs::path& path, std::vector<named_tensor<float>>& into) {
  const auto f = io::safetensors_file::read(path);
  auto it = f.metadata().find("sslgate");
  SSLGATE_CHECK(it != f.metadata().end(), io_error, "checkpoint", "{} is not an sslgate checkpoint (no metadata)", path.string());
  nlohmann::json meta = nlohmann::json::parse(it->second, nullptr, false);
  SSLGATE_CHECK(!meta.is_discarded() && meta.contains("crc32"), io_error, "checkpoint", "{}: corrupt metadata", path.string());
  for (auto& [name, t] : into) {
    const auto* e = f.find(name);
    SSLGATE_CHECK(e != nullptr, io_error, "checkpoint", "{}: no tensor '{}' (expected shape {}): the checkpoint is of another architecture",
                  path.string(), name, t.dims());
    const shape s(std::span<const std::int64_t>(e->shape));
    SSLGATE_CHECK(s == t.dims(), io_error, "checkpoint", "{}: tensor '{}' has shape {} but the model expects {}", path.string(), name, s, t.dims());
    const tensor<float> v = io::read_tensor<float>(f, name);
    SSLGATE_CHECK(meta["crc32"].contains(name) && meta["crc32"][name].get<std::uint32_t>() == crc32_of(std::as_bytes(v.values())), io_error,
                  "checkpoint", "{}: tensor '{}' fails its CRC-32 check (corrupted file)", path.string(), name);
    t.copy_from(v);
  }
  meta.erase("crc32");
  return meta;
}

// Checkpoints of dir, oldest first.
inline std::vector<fs::path> list_checkpoints(const fs::path& dir) {
  std::vector<fs::path> out;
  if (!fs::exists(dir)) return out;
  static const std::regex name(R"(checkpoint-e\d{4}\.safetensors)");
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && std::regex_match(e.path().filename().string(), name)) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// Removes all but the newest keep checkpoints, and temporary files left by interrupted writes.
inline void prune_checkpoints(const fs::path& dir, std::size_t keep) {
  auto all = list_checkpoints(dir);
  for (std::size_t i = 0; i + keep < all.size(); ++i) fs::remove(all[i]);
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".safetensors.tmp-") != std::string::npos) fs::remove(e.path());
}

}  // namespace sslgate::train
