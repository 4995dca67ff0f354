#pragma once
// storage: a 64-byte aligned, reference-counted byte buffer from a caching allocator.
// A training step allocates the same buffer sizes every time; the cache makes the steady state
// allocation-free (freed blocks are kept per size and handed out again).
#include <sslgate/core/device.hpp>
#include <sslgate/core/error.hpp>

#include <cstddef>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace sslgate {

inline constexpr std::size_t storage_alignment = 64;

struct allocator_stats {
  std::size_t in_use = 0;        // bytes handed out and not yet released
  std::size_t peak_in_use = 0;   // high-water mark of in_use since the last reset
  std::size_t cached = 0;        // bytes held in the free lists
  std::size_t system_allocs = 0; // calls that reached the system allocator
};

// One allocator per device: raw_alloc returns nullptr on failure (the cache is then emptied and the
// allocation tried once more), raw_free returns a block to the system. Sizes are rounded up to granularity.
class caching_allocator {
 public:
  using raw_alloc_fn = std::function<void*(std::size_t)>;
  using raw_free_fn = std::function<void(void*)>;

  caching_allocator(std::string name, std::size_t granularity, raw_alloc_fn raw_alloc, raw_free_fn raw_free)
      : name_(std::move(name)), granularity_(granularity), raw_alloc_(std::move(raw_alloc)), raw_free_(std::move(raw_free)) {}
  static caching_allocator& cpu() {
    static caching_allocator a("cpu", storage_alignment, [](std::size_t n) { return std::aligned_alloc(storage_alignment, n); }, std::free);
    return a;
  }
  ~caching_allocator() { empty_cache(); }
  caching_allocator(const caching_allocator&) = delete;
  caching_allocator& operator=(const caching_allocator&) = delete;

  void* allocate(std::size_t bytes) {
    const std::size_t size = round_up(bytes);
    {
      std::lock_guard lock(mu_);
      if (auto it = free_.find(size); it != free_.end()) {
        void* p = it->second;
        free_.erase(it);
        stats_.cached -= size;
        note_use(size);
        return p;
      }
    }
    void* p = raw_alloc_(size);
    if (p == nullptr) {
      empty_cache();  // give cached blocks back and try once more before failing
      p = raw_alloc_(size);
    }
    SSLGATE_CHECK(p != nullptr, error, "storage", "out of memory allocating {} bytes on {}", size, name_);
    std::lock_guard lock(mu_);
    ++stats_.system_allocs;
    note_use(size);
    return p;
  }
  void release(void* p, std::size_t bytes) {
    const std::size_t size = round_up(bytes);
    std::lock_guard lock(mu_);
    stats_.in_use -= size;
    stats_.cached += size;
    free_.emplace(size, p);
  }
  void empty_cache() {
    std::lock_guard lock(mu_);
    for (auto& [size, p] : free_) raw_free_(p);
    free_.clear();
    stats_.cached = 0;
  }
  allocator_stats stats() const {
    std::lock_guard lock(mu_);
    return stats_;
  }
  void reset_peak() {
    std::lock_guard lock(mu_);
    stats_.peak_in_use = stats_.in_use;
  }

 private:
  std::size_t round_up(std::size_t bytes) const {
    const std::size_t b = bytes == 0 ? granularity_ : bytes;
    return (b + granularity_ - 1) / granularity_ * granularity_;
  }
  void note_use(std::size_t size) {
    stats_.in_use += size;
    if (stats_.in_use > stats_.peak_in_use) stats_.peak_in_use = stats_.in_use;
  }
  std::string name_;
  std::size_t granularity_;
  raw_alloc_fn raw_alloc_;
  raw_free_fn raw_free_;
  mutable std::mutex mu_;
  std::multimap<std::size_t, void*> free_;
  allocator_stats stats_;
};

// A device backend installed at run time by a compiled part (sslgate::cuda installs one when a program links
// it and includes sslgate/core/cuda/runtime.hpp), so CPU-only builds never see a device header.
// copy moves bytes between any two devices (cpu <-> cuda, cuda <-> cuda); fill writes count copies of an
// elem_size-byte value.
struct device_backend {
  void* (*allocate)(std::size_t bytes, int index);
  void (*release)(void* p, std::size_t bytes, int index);
  void (*copy)(void* dst, device dst_dev, const void* src, device src_dev, std::size_t bytes);
  void (*fill)(void* p, device dev, std::size_t count, const void* value, std::size_t elem_size);
};
inline const device_backend*& cuda_backend() {
  static const device_backend* b = nullptr;
  return b;
}
inline const device_backend& backend_for(std::string_view op, device dev) {
  const device_backend* b = cuda_backend();
  SSLGATE_CHECK(b != nullptr, value_error, op, "device {} is not available in this build", dev.str());
  return *b;
}

class storage {
 public:
  storage(std::size_t bytes, device dev) : bytes_(bytes), dev_(dev) {
    if (dev.kind == device_kind::cpu) data_ = caching_allocator::cpu().allocate(bytes);
    else data_ = backend_for("storage", dev).allocate(bytes, dev.index);
  }
  ~storage() {
    if (dev_.kind == device_kind::cpu) caching_allocator::cpu().release(data_, bytes_);
    else cuda_backend()->release(data_, bytes_, dev_.index);
  }
  storage(const storage&) = delete;
  storage& operator=(const storage&) = delete;

  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  device dev() const { return dev_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  device dev_;
};

}  // namespace sslgate
