// A writer's side of the maps' sequence counters (the lock-free program-side
// lookups of hash, LRU and LPM maps). Held under the map's or bucket's lock
// around a change that readers may observe: the counter is odd while the
// change lasts; readers retry when it is odd or moved.
#pragma once

#include <atomic>
#include <cstdint>

namespace userbpf::maps {

class SeqEdit {
 public:
  explicit SeqEdit(std::atomic<std::uint32_t>& seq) : seq_(seq) {
    s_ = seq_.load(std::memory_order_relaxed);
    s_ += s_ & 1;  // odd: the previous holder died mid-change (its lock was taken over)
    seq_.store(s_ + 1, std::memory_order_relaxed);  // ordered before the release stores that follow
  }
  ~SeqEdit() { seq_.store(s_ + 2, std::memory_order_release); }
  SeqEdit(const SeqEdit&) = delete;
  SeqEdit& operator=(const SeqEdit&) = delete;

 private:
  std::atomic<std::uint32_t>& seq_;
  std::uint32_t s_;
};

}  // namespace userbpf::maps
