#pragma once
// Where a tensor's bytes live. Ops dispatch once on this tag.
#include <string>

namespace sslgate {

enum class device_kind { cpu, cuda };

struct device {
  device_kind kind = device_kind::cpu;
  int index = 0;
  friend bool operator==(const device&, const device&) = default;
  std::string str() const { return kind == device_kind::cpu ? "cpu" : "cuda:" + std::to_string(index); }
};

inline constexpr device cpu{};

}  // namespace sslgate
