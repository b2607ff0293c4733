// BPF_MAP_TYPE_PERF_EVENT_ARRAY: one perf ring per index (per CPU), in the
// map's shared file, with a host perf-buffer consumer.
//
// In the kernel each index holds a perf event fd whose mmap'ed ring receives
// PERF_RECORD_SAMPLE records (bpf_perf_event_output) and PERF_RECORD_LOST
// records when the ring was full. Here each index owns a ring of
// kPerfRingBytes in the map file. An index is "open" once the host has
// stored a value in it (the perf buffer consumer does, as libbpf stores the
// perf event fds); output to an index that is not open fails with ENOENT,
// as in the kernel. Records use the kernel's layout
// (struct perf_event_header; u32 size; data; padding to 8), and a sample that
// does not fit is counted as lost; the count is delivered to the consumer in
// a PERF_RECORD_LOST record as soon as there is room, as the kernel does.
// Producers of one index serialise on a SharedSpinLock; the consumer
// advances data_tail (release) after copying a record.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "maps/map.hpp"

namespace userbpf::maps {

inline constexpr std::size_t kPerfRingBytes = 64 * 1024;  // per index, a power of two

class PerfEventArray : public Map {
 public:
  // bpf_perf_event_output for index `cpu` (the helper resolves
  // BPF_F_CURRENT_CPU and checks flags): 0, E2BIG (index >= max_entries),
  // ENOENT (index not open), ENOSPC (sample lost: ring full; counted),
  // EINVAL (size too large for a perf record).
  int output(std::uint32_t cpu, const void* data, std::uint64_t size);

  void* prog_lookup(const void*, std::uint32_t) override { return nullptr; }
  int prog_update(const void*, const void*, std::uint64_t, std::uint32_t) override { return EINVAL; }
  int prog_delete(const void*) override { return EINVAL; }

  struct Ring;
  [[nodiscard]] Ring& ring(std::uint32_t index) const;
  [[nodiscard]] std::uint8_t* ring_data(std::uint32_t index) const;
  // Opens / closes index `i` for output (what storing / deleting a perf event fd does).
  void set_open(std::uint32_t i, bool open);

  PerfEventArray(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc);

 protected:
  int do_lookup(const void*, void*) const override;
  int do_update(const void* key, const void* value, std::uint64_t flags) override;
  int do_delete(const void* key) override;
  int do_get_next_key(const void* key, void* next_key) const override;
};

// A host consumer of a perf event array (libbpf's perf_buffer): opens every
// index, delivers samples per CPU and lost-sample counts.
class PerfBuffer {
 public:
  using SampleFn = std::function<void(std::uint32_t cpu, const void* data, std::uint32_t size)>;
  using LostFn = std::function<void(std::uint32_t cpu, std::uint64_t lost)>;

  // EINVAL if `map` is not a perf event array. Opens all indexes.
  static Result<std::unique_ptr<PerfBuffer>> open(Map& map, SampleFn on_sample, LostFn on_lost);
  ~PerfBuffer();
  PerfBuffer(const PerfBuffer&) = delete;
  PerfBuffer& operator=(const PerfBuffer&) = delete;

  // Reads every ring once: number of records (samples + lost records).
  long consume();
  // Waits up to timeout_ms (-1: forever) for data, then consumes.
  long poll(int timeout_ms);
  [[nodiscard]] std::uint64_t lost_total() const { return lost_total_; }

 private:
  PerfBuffer(PerfEventArray& m, SampleFn s, LostFn l) : map_(m), on_sample_(std::move(s)), on_lost_(std::move(l)) {}
  long consume_ring(std::uint32_t i);
  PerfEventArray& map_;
  SampleFn on_sample_;
  LostFn on_lost_;
  std::vector<std::uint8_t> scratch_;
  std::uint64_t lost_total_ = 0;
};

}  // namespace userbpf::maps
