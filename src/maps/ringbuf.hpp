// BPF_MAP_TYPE_RINGBUF: the kernel's multi-producer single-consumer ring
// buffer, in a shared file, with a host consumer.
//
// Layout (offsets in the file; the data area is page-aligned):
//   MapHeader | RingCtl (consumer_pos, producer_pos, producer lock, wakeup
//   futex word) | data: max_entries bytes (a power of two, a multiple of the
//   page size).
// Each process maps the data area twice, back to back (as the kernel does),
// so a record that wraps around the end is contiguous in memory for the
// program that writes it and for the consumer that reads it.
//
// Records, as the kernel's: an 8-byte header { u32 len | BUSY | DISCARD;
// u32 offset } followed by the sample, padded to 8 bytes. reserve() takes
// the producer lock (SharedSpinLock: threads and processes), checks space
// (producer may run at most size-1 bytes ahead of the consumer; checked
// against a cached consumer position, the consumer's line is read only when
// the ring looks full), writes the header with BUSY set and advances
// producer_pos; submit/discard clear BUSY (release store), so the consumer
// sees records in reservation order and stops at the first one still BUSY:
// nothing is lost or seen twice, and records of one producer keep their
// order. The control block has one writer per cache line (consumer_pos;
// producer_pos; the lock and the producers' cached consumer position; the
// wakeup words).
//
// Wakeups (BPF_RB_NO_WAKEUP / BPF_RB_FORCE_WAKEUP / default: wake when the
// consumer has caught up with this record, as the kernel) bump a futex word
// in the shared control page; RingBufConsumer::poll() sleeps on it (works
// across processes). RingBufConsumer::fd() is an eventfd fed by a bridge
// thread waiting on the same word, for event loops. A commit looks at the
// waiter count only (sleeping consumers + a constant per bridge): zero
// means nobody could be woken and the commit ends there. The handshake
// (producer: publish, then read waiters; consumer: register, then look for
// records) needs store-load order on both sides: the consumer gets it from
// a locked RMW, producers from membarrier(GLOBAL_EXPEDITED) issued by the
// consumer before it looks (so a commit is a plain store, no locked
// instruction); a process that cannot register for membarrier commits with
// seq_cst, and a consumer whose membarrier fails sleeps 1 ms at a time.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "maps/map.hpp"

namespace userbpf::maps {

inline constexpr std::uint32_t kRingBusyBit = 1u << 31;     // BPF_RINGBUF_BUSY_BIT
inline constexpr std::uint32_t kRingDiscardBit = 1u << 30;  // BPF_RINGBUF_DISCARD_BIT
inline constexpr std::uint32_t kRingHdrSize = 8;            // BPF_RINGBUF_HDR_SZ

class RingBuf : public Map {
 public:
  ~RingBuf() override;
  // `m` as a ring buffer, or null: a check of the type's descriptor (no
  // dynamic_cast on the helpers' hot path).
  static RingBuf* from(Map* m);
  // Whether `sample` lies in this ring's data area (after a record header):
  // what bpf_ringbuf_submit/discard check before committing.
  [[nodiscard]] bool holds_sample(const void* sample) const {
    const auto* p = static_cast<const std::uint8_t*>(sample);
    return data_ != nullptr && p >= data_ + kRingHdrSize && p < data_ + 2 * size();
  }
  // ---- program side (the bpf_ringbuf_* helpers; flags checked by the helper
  // where the kernel's helper checks them, except as noted)
  // A sample of `size` bytes, or null (no space, or too large).
  void* reserve(std::uint64_t size);
  // Commits / drops a sample reserve() returned. flags: BPF_RB_NO_WAKEUP,
  // BPF_RB_FORCE_WAKEUP (other bits ignored, as the kernel).
  void submit(void* sample, std::uint64_t flags);
  void discard(void* sample, std::uint64_t flags);
  // reserve + copy + submit: 0, EINVAL (flags), EAGAIN (no space).
  int output(const void* data, std::uint64_t size, std::uint64_t flags);
  // BPF_RB_AVAIL_DATA, BPF_RB_RING_SIZE, BPF_RB_CONS_POS, BPF_RB_PROD_POS; 0 otherwise.
  [[nodiscard]] std::uint64_t query(std::uint64_t flags) const;
  // The double-mapped data area (2 * size bytes): samples live here.
  [[nodiscard]] std::span<std::uint8_t> program_area() const override;

  void* prog_lookup(const void*, std::uint32_t) override { return nullptr; }
  int prog_update(const void*, const void*, std::uint64_t, std::uint32_t) override { return EINVAL; }
  int prog_delete(const void*) override { return EINVAL; }

  // ---- consumer side (used by RingBufConsumer)
  struct Ctl;
  [[nodiscard]] Ctl& ctl() const { return *ctl_; }
  [[nodiscard]] const std::uint8_t* data() const { return data_; }
  [[nodiscard]] std::uint64_t size() const { return mask_ + 1; }

  RingBuf(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc, std::uint8_t* data);

 protected:
  int do_lookup(const void*, void*) const override;
  int do_update(const void*, const void*, std::uint64_t) override;
  int do_delete(const void*) override;
  int do_get_next_key(const void*, void*) const override;

 private:
  void commit(void* sample, std::uint64_t flags, bool discard);
  // Publishes the record at `hdr` with header length word `len` (BUSY
  // clear) and wakes consumers per `flags`.
  void commit_record(std::uint8_t* hdr, std::uint32_t len, std::uint64_t flags);
  Ctl* ctl_ = nullptr;
  std::uint8_t* data_ = nullptr;  // double mapping, 2 * size bytes
  std::uint64_t mask_ = 0;
};

// A host consumer of one or more ring buffers (libbpf's ring_buffer).
// Not thread-safe itself: one thread consumes (the kernel's single consumer).
class RingBufConsumer {
 public:
  // Called once per record in order; a nonzero return stops consuming
  // (the record counts as consumed) and is returned by consume()/poll().
  using Callback = std::function<int(const void* data, std::size_t size)>;

  RingBufConsumer();
  ~RingBufConsumer();
  RingBufConsumer(const RingBufConsumer&) = delete;
  RingBufConsumer& operator=(const RingBufConsumer&) = delete;

  // Adds a ring buffer map (EINVAL if `map` is not one). The map must
  // outlive the consumer.
  int add(Map& map, Callback cb);
  // Consumes everything available now: number of records, or a negative
  // value (the callback's nonzero result).
  long consume();
  // Waits up to timeout_ms (-1: forever) for records, then consumes: the
  // number of records (0 on timeout), or negative as consume().
  long poll(int timeout_ms);
  // A pollable fd (eventfd) that becomes readable when a producer wakes
  // the consumer; poll() or consume() resets it.
  int fd();

 private:
  struct Ring {
    RingBuf* rb;
    Callback cb;
  };
  long consume_one(Ring& r);
  [[nodiscard]] std::uint32_t wake_sum() const;
  [[nodiscard]] bool has_record() const;
  void sleep(int ms, bool look) const;
  std::vector<Ring> rings_;
  int efd_ = -1;
  std::thread bridge_;
  std::atomic<bool> stop_{false};
};

}  // namespace userbpf::maps
