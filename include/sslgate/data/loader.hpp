#pragma once
// Two-view batch source: for each image of a batch, two augmented views (view 1 -> gated path, view 2 ->
// dense path, METHOD.md §5.1), its label and its index in the data set.
//
// Determinism: every random decision is a pure function of the key (seed, epoch, index, view):
//   the epoch's order      Fisher-Yates with Philox stream shuffle_stream(epoch) under `seed`;
//   a view of image i      Philox stream view_stream(epoch, i, view) under `seed` (augment.hpp slots).
// Workers only decide *when* a batch is built, never what it holds, so the batches are byte-identical
// whatever the number of worker threads (0 = build on the calling thread).
//
// Threads: `workers` threads build whole batches, claiming batch numbers in order, at most `prefetch`
// batches ahead of the consumer (a bounded queue); next() returns batches in order. An exception in a
// worker (a corrupt image, say) is rethrown by next().
#include <sslgate/core/error.hpp>
#include <sslgate/core/rng.hpp>
#include <sslgate/core/tensor.hpp>
#include <sslgate/data/augment.hpp>
#include <sslgate/data/dataset.hpp>

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

namespace sslgate::data {

struct loader_options {
  std::int64_t batch_size = 256;
  bool shuffle = true;
  bool drop_last = true;   // the paper's loader drops the last incomplete batch
  int workers = 2;         // 0: build batches on the calling thread
  int prefetch = 4;        // batches built ahead of the consumer, at most
  std::uint64_t seed = 5;  // METHOD.md §6: seed_everything(5)
};

struct two_view_batch {
  tensor<float> view1, view2;          // [B, 3, H, W] each
  std::vector<std::int32_t> labels;    // [B], -1 for unlabelled images
  std::vector<std::int64_t> indices;   // [B], positions in the data set
  std::int64_t epoch = 0, step = 0;    // step: batch number within the epoch
};

// Philox streams (counter_hi) of the loader's keys; bit 63 separates shuffling from views.
inline std::uint64_t shuffle_stream(std::int64_t epoch) { return (std::uint64_t{1} << 63) | static_cast<std::uint64_t>(epoch); }
inline std::uint64_t view_stream(std::int64_t epoch, std::int64_t index, int view) {
  // epoch < 2^23, index < 2^39, view in {0, 1}.
  return (static_cast<std::uint64_t>(epoch) << 40) | (static_cast<std::uint64_t>(index) << 1) | static_cast<std::uint64_t>(view);
}

// The order of [0, n) in an epoch: a Fisher-Yates shuffle driven by the counter-based RNG.
inline std::vector<std::int64_t> epoch_order(std::int64_t n, std::uint64_t seed, std::int64_t epoch, bool shuffle) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  if (!shuffle) return order;
  const rng r(seed, shuffle_stream(epoch));
  for (std::int64_t i = n - 1; i > 0; --i) {
    const auto j = std::min(i, static_cast<std::int64_t>(r.uniform_at(static_cast<std::uint64_t>(n - 1 - i)) * static_cast<double>(i + 1)));
    std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
  }
  return order;
}

// Per-thread buffers for building views.
struct view_workspace {
  image_u8 decoded, img;
  transform_scratch s;
};

// Both views of image `index` in `epoch`, written to out1 / out2 ([3, H, W] floats each).
inline void make_two_views(const dataset& ds, const two_view_recipe& rc, std::uint64_t seed, std::int64_t epoch, std::int64_t index,
                           float* out1, float* out2, view_workspace& ws) {
  const image_view src = ds.image(index, ws.decoded);
  const view_recipe* rs[2] = {&rc.view1, &rc.view2};
  float* outs[2] = {out1, out2};
  for (int v = 0; v < 2; ++v) {
    const rng r(seed, view_stream(epoch, index, v));
    const view_params p = sample_view_params(*rs[v], src.h, src.w, r);
    apply_view(*rs[v], p, src, outs[v], ws.img, ws.s);
  }
}

class two_view_loader {
 public:
  two_view_loader(std::shared_ptr<const dataset> ds, two_view_recipe recipe, loader_options opt = {})
      : ds_(std::move(ds)), rc_(std::move(recipe)), opt_(opt) {
    SSLGATE_CHECK(ds_ != nullptr, value_error, "two_view_loader", "no data set");
    SSLGATE_CHECK(opt_.batch_size > 0, value_error, "two_view_loader", "batch_size {} must be positive", opt_.batch_size);
    SSLGATE_CHECK(opt_.workers >= 0 && opt_.workers <= 256, value_error, "two_view_loader", "workers {} must be in [0, 256]", opt_.workers);
    SSLGATE_CHECK(opt_.prefetch >= 1, value_error, "two_view_loader", "prefetch {} must be at least 1", opt_.prefetch);
    SSLGATE_CHECK(rc_.view1.size == rc_.view2.size, value_error, "two_view_loader", "views of different sizes ({} and {})", rc_.view1.size,
                  rc_.view2.size);
    SSLGATE_CHECK(ds_->size() < (std::int64_t{1} << 39), value_error, "two_view_loader", "{} images is more than 2^39", ds_->size());
    for (int w = 0; w < opt_.workers; ++w) threads_.emplace_back([this] { work(); });
  }
  two_view_loader(const two_view_loader&) = delete;
  two_view_loader& operator=(const two_view_loader&) = delete;
  ~two_view_loader() {
    {
      std::lock_guard lk(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

  std::int64_t batches_per_epoch() const {
    const std::int64_t n = ds_->size(), b = opt_.batch_size;
    return opt_.drop_last ? n / b : (n + b - 1) / b;
  }
  const loader_options& options() const { return opt_; }

  // Starts (or restarts) producing the batches of `epoch`; batches of an earlier epoch still being built are dropped.
  void set_epoch(std::int64_t epoch) {
    SSLGATE_CHECK(epoch >= 0 && epoch < (std::int64_t{1} << 23), value_error, "two_view_loader", "epoch {} out of range [0, 2^23)", epoch);
    auto order = std::make_shared<const std::vector<std::int64_t>>(epoch_order(ds_->size(), opt_.seed, epoch, opt_.shuffle));
    {
      std::lock_guard lk(m_);
      ++generation_;
      epoch_ = epoch;
      order_ = std::move(order);
      claimed_ = consumed_ = 0;
      ready_.clear();
      error_ = nullptr;
      started_ = true;
    }
    cv_.notify_all();
  }

  // The next batch of the epoch, in order; false when the epoch is done.
  bool next(two_view_batch& out) {
    std::unique_lock lk(m_);
    SSLGATE_CHECK(started_, value_error, "two_view_loader", "call set_epoch before next");
    if (consumed_ >= batches_per_epoch()) return false;
    if (threads_.empty()) {
      const auto order = order_;
      const std::int64_t step = consumed_++, epoch = epoch_;
      lk.unlock();
      out = build(*order, epoch, step, inline_ws_);
      return true;
    }
    cv_.wait(lk, [&] { return error_ != nullptr || ready_.count(consumed_) != 0; });
    if (error_) std::rethrow_exception(error_);
    auto it = ready_.find(consumed_);
    out = std::move(it->second);
    ready_.erase(it);
    ++consumed_;
    lk.unlock();
    cv_.notify_all();
    return true;
  }

  // Batch `step` of `epoch` built on the calling thread, independent of the queue (tests, debugging).
  two_view_batch batch_at(std::int64_t epoch, std::int64_t step) const {
    const auto order = epoch_order(ds_->size(), opt_.seed, epoch, opt_.shuffle);
    view_workspace ws;
    return build(order, epoch, step, ws);
  }

 private:
  two_view_batch build(const std::vector<std::int64_t>& order, std::int64_t epoch, std::int64_t step, view_workspace& ws) const {
    const std::int64_t n = ds_->size(), first = step * opt_.batch_size;
    const std::int64_t b = std::min(opt_.batch_size, n - first);
    const std::int64_t s = rc_.view1.size;
    two_view_batch out;
    out.epoch = epoch;
    out.step = step;
    out.view1 = tensor<float>(shape{b, 3, s, s});
    out.view2 = tensor<float>(shape{b, 3, s, s});
    out.labels.resize(static_cast<std::size_t>(b));
    out.indices.resize(static_cast<std::size_t>(b));
    const std::int64_t per = 3 * s * s;
    for (std::int64_t k = 0; k < b; ++k) {
      const std::int64_t idx = order[static_cast<std::size_t>(first + k)];
      out.indices[static_cast<std::size_t>(k)] = idx;
      out.labels[static_cast<std::size_t>(k)] = ds_->label(idx);
      make_two_views(*ds_, rc_, opt_.seed, epoch, idx, out.view1.data() + k * per, out.view2.data() + k * per, ws);
    }
    return out;
  }

  void work() {
    view_workspace ws;
    std::unique_lock lk(m_);
    for (;;) {
      cv_.wait(lk, [&] {
        return stop_ || (started_ && error_ == nullptr && claimed_ < batches_per_epoch() && claimed_ < consumed_ + opt_.prefetch);
      });
      if (stop_) return;
      const std::int64_t step = claimed_++, epoch = epoch_, gen = generation_;
      const auto order = order_;
      lk.unlock();
      two_view_batch b;
      std::exception_ptr err;
      try {
        b = build(*order, epoch, step, ws);
      } catch (...) {
        err = std::current_exception();
      }
      lk.lock();
      if (gen == generation_) {
        if (err)
          error_ = err;
        else
          ready_.emplace(step, std::move(b));
        cv_.notify_all();
      }
    }
  }

  std::shared_ptr<const dataset> ds_;
  two_view_recipe rc_;
  loader_options opt_;
  std::vector<std::thread> threads_;
  view_workspace inline_ws_;

  std::mutex m_;
  std::condition_variable cv_;
  bool stop_ = false, started_ = false;
  std::int64_t generation_ = 0, epoch_ = 0, claimed_ = 0, consumed_ = 0;
  std::shared_ptr<const std::vector<std::int64_t>> order_;
  std::map<std::int64_t, two_view_batch> ready_;
  std::exception_ptr error_;
};

}  // namespace sslgate::data
