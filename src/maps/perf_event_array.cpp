// BPF_MAP_TYPE_PERF_EVENT_ARRAY and the perf-buffer consumer; design and
// invariants in perf_event_array.hpp.
//
// Body layout: PerfCtl (map-wide wakeup futex word) | max_entries Ring
// control blocks (one cache line each) | max_entries rings of
// kPerfRingBytes. data_head / data_tail are free-running byte counts as in
// the kernel's perf_event_mmap_page.
#include "maps/perf_event_array.hpp"

#include <fmt/format.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>

#include <cstring>

#include "maps/array.hpp"
#include "maps/registry.hpp"
#include "maps/shm.hpp"

namespace userbpf::maps {

namespace {
struct PerfCtl {
  alignas(64) std::atomic<std::uint32_t> wake_seq;
  std::atomic<std::uint32_t> waiters;
};
constexpr std::size_t kCtlSize = 64;
constexpr std::uint64_t kMask = kPerfRingBytes - 1;
static_assert((kPerfRingBytes & kMask) == 0, "ring size is a power of two");

PerfCtl& perf_ctl(std::uint8_t* body) { return *reinterpret_cast<PerfCtl*>(body); }

// Copies n bytes into the ring at position pos (wrapping).
void ring_write(std::uint8_t* ring, std::uint64_t pos, const void* src, std::size_t n) {
  const std::size_t off = pos & kMask;
  const std::size_t first = std::min(n, kPerfRingBytes - off);
  std::memcpy(ring + off, src, first);
  if (first < n) std::memcpy(ring, static_cast<const std::uint8_t*>(src) + first, n - first);
}
void ring_zero(std::uint8_t* ring, std::uint64_t pos, std::size_t n) {
  static const std::uint8_t zeros[8] = {};
  ring_write(ring, pos, zeros, n);
}
}  // namespace

struct PerfEventArray::Ring {
  alignas(64) std::atomic<std::uint64_t> data_head;
  std::atomic<std::uint64_t> data_tail;
  std::atomic<std::uint64_t> lost;  // samples dropped and not yet reported
  SharedSpinLock lock;
  std::atomic<std::uint32_t> open;
};
static_assert(sizeof(PerfEventArray::Ring) == 64);

PerfEventArray::PerfEventArray(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc)
    : Map(std::move(file), desc) {}

PerfEventArray::Ring& PerfEventArray::ring(std::uint32_t index) const {
  return *reinterpret_cast<Ring*>(body() + kCtlSize + std::size_t{index} * sizeof(Ring));
}
std::uint8_t* PerfEventArray::ring_data(std::uint32_t index) const {
  return body() + align_up(kCtlSize + std::size_t{max_entries()} * sizeof(Ring), 4096) +
         std::size_t{index} * kPerfRingBytes;
}

void PerfEventArray::set_open(std::uint32_t i, bool open) {
  if (i < max_entries()) ring(i).open.store(open ? 1 : 0, std::memory_order_release);
}

int PerfEventArray::output(std::uint32_t cpu, const void* data, std::uint64_t size) {
  if (cpu >= max_entries()) return E2BIG;
  Ring& r = ring(cpu);
  if (r.open.load(std::memory_order_acquire) == 0) return ENOENT;
  // PERF_RECORD_SAMPLE with PERF_SAMPLE_RAW: header, u32 size, data padded so the record is 8-aligned
  const std::uint64_t raw = round8(size + 4) - 4;
  const std::uint64_t rec = sizeof(perf_event_header) + 4 + raw;
  if (rec > 0xffff) return E2BIG;
  std::uint8_t* buf = ring_data(cpu);
  {
    Guard g(r.lock);
    std::uint64_t head = r.data_head.load(std::memory_order_relaxed);
    const std::uint64_t tail = r.data_tail.load(std::memory_order_acquire);
    const std::uint64_t lost = r.lost.load(std::memory_order_relaxed);
    constexpr std::uint64_t kLostRec = sizeof(perf_event_header) + 16;
    const std::uint64_t need = rec + (lost != 0 ? kLostRec : 0);
    if (head + need - tail > kPerfRingBytes) {
      r.lost.store(lost + 1, std::memory_order_relaxed);
      return ENOSPC;
    }
    if (lost != 0) {  // PERF_RECORD_LOST { header; u64 id; u64 lost }
      perf_event_header h{PERF_RECORD_LOST, 0, static_cast<std::uint16_t>(kLostRec)};
      const std::uint64_t body_words[2] = {0, lost};
      ring_write(buf, head, &h, sizeof h);
      ring_write(buf, head + sizeof h, body_words, sizeof body_words);
      head += kLostRec;
      r.lost.store(0, std::memory_order_relaxed);
    }
    perf_event_header h{PERF_RECORD_SAMPLE, 0, static_cast<std::uint16_t>(rec)};
    const auto raw32 = static_cast<std::uint32_t>(raw);
    ring_write(buf, head, &h, sizeof h);
    ring_write(buf, head + sizeof h, &raw32, 4);
    ring_write(buf, head + sizeof h + 4, data, size);
    ring_zero(buf, head + sizeof h + 4 + size, raw - size);
    r.data_head.store(head + rec, std::memory_order_release);
  }
  // every sample wakes the consumer (libbpf opens the events with wakeup_events = 1)
  PerfCtl& c = perf_ctl(body());
  c.wake_seq.fetch_add(1, std::memory_order_seq_cst);
  if (c.waiters.load(std::memory_order_seq_cst) != 0) futex_wake(c.wake_seq);
  return 0;
}

// Host commands, as the kernel's fd arrays: no lookup from user space,
// update stores an event (opens the index), delete closes it.
int PerfEventArray::do_lookup(const void*, void*) const { return kENOTSUPP; }
int PerfEventArray::do_update(const void* key, const void* /*value*/, std::uint64_t flags) {
  if (flags != BPF_ANY) return EINVAL;
  std::uint32_t i;
  std::memcpy(&i, key, 4);
  if (i >= max_entries()) return E2BIG;
  set_open(i, true);
  return 0;
}
int PerfEventArray::do_delete(const void* key) {
  std::uint32_t i;
  std::memcpy(&i, key, 4);
  if (i >= max_entries()) return E2BIG;  // fd_array_map_delete_elem
  return ring(i).open.exchange(0, std::memory_order_acq_rel) != 0 ? 0 : ENOENT;
}
int PerfEventArray::do_get_next_key(const void* key, void* next_key) const {
  return array_next_key(key, next_key, max_entries());
}

const MapTypeDesc kPerfEventArrayDesc = {
    BPF_MAP_TYPE_PERF_EVENT_ARRAY,
    "perf_event_array",
    MapKind::PerfEventArray,
    false,
    BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY | BPF_F_PRESERVE_ELEMS,
    0,
    [](const MapSpec& s) {
      if (s.value_size != 4) return EINVAL;
      return check_array(s, false);
    },
    [](const MapSpec& s, std::uint32_t) -> std::size_t {
      return align_up(kCtlSize + std::size_t{s.max_entries} * sizeof(PerfEventArray::Ring), 4096) +
             std::size_t{s.max_entries} * kPerfRingBytes;
    },
    [](std::uint8_t* body, const MapSpec& s, std::uint32_t) {
      new (body) PerfCtl{};
      for (std::uint32_t i = 0; i < s.max_entries; ++i)
        (new (body + kCtlSize + std::size_t{i} * sizeof(PerfEventArray::Ring)) PerfEventArray::Ring{})->lock.init();
    },
    [](std::unique_ptr<SharedFile> f, const MapTypeDesc& d) -> std::unique_ptr<Map> {
      return std::make_unique<PerfEventArray>(std::move(f), d);
    },
    false,
};

// ------------------------------------------------------------------ consumer

Result<std::unique_ptr<PerfBuffer>> PerfBuffer::open(Map& map, SampleFn on_sample, LostFn on_lost) {
  auto* pa = dynamic_cast<PerfEventArray*>(&map);
  if (pa == nullptr) return make_error(EINVAL, fmt::format("map '{}' ({}) is not a perf event array", map.name(), map.desc().name));
  for (std::uint32_t i = 0; i < pa->max_entries(); ++i) pa->set_open(i, true);
  return std::unique_ptr<PerfBuffer>(new PerfBuffer(*pa, std::move(on_sample), std::move(on_lost)));
}

PerfBuffer::~PerfBuffer() {
  for (std::uint32_t i = 0; i < map_.max_entries(); ++i) map_.set_open(i, false);
}

long PerfBuffer::consume_ring(std::uint32_t i) {
  PerfEventArray::Ring& r = map_.ring(i);
  const std::uint8_t* buf = map_.ring_data(i);
  std::uint64_t tail = r.data_tail.load(std::memory_order_relaxed);
  const std::uint64_t head = r.data_head.load(std::memory_order_acquire);
  long n = 0;
  while (tail < head) {
    perf_event_header h{};
    const std::size_t off = tail & kMask;
    const std::size_t first = std::min<std::size_t>(sizeof h, kPerfRingBytes - off);
    std::memcpy(&h, buf + off, first);
    if (first < sizeof h) std::memcpy(reinterpret_cast<std::uint8_t*>(&h) + first, buf, sizeof h - first);
    if (h.size < sizeof h || tail + h.size > head) break;  // cannot happen with our producers
    const std::uint8_t* rec = buf + off;
    if (off + h.size > kPerfRingBytes) {  // wraps: copy it out, as libbpf does
      scratch_.resize(h.size);
      const std::size_t a = kPerfRingBytes - off;
      std::memcpy(scratch_.data(), buf + off, a);
      std::memcpy(scratch_.data() + a, buf, h.size - a);
      rec = scratch_.data();
    }
    if (h.type == PERF_RECORD_SAMPLE) {
      std::uint32_t sz;
      std::memcpy(&sz, rec + sizeof h, 4);
      if (on_sample_) on_sample_(i, rec + sizeof h + 4, sz);
    } else if (h.type == PERF_RECORD_LOST) {
      std::uint64_t lost;
      std::memcpy(&lost, rec + sizeof h + 8, 8);
      lost_total_ += lost;
      if (on_lost_) on_lost_(i, lost);
    }
    ++n;
    tail += h.size;
    r.data_tail.store(tail, std::memory_order_release);
  }
  return n;
}

long PerfBuffer::consume() {
  long n = 0;
  for (std::uint32_t i = 0; i < map_.max_entries(); ++i) n += consume_ring(i);
  return n;
}

long PerfBuffer::poll(int timeout_ms) {
  const Deadline deadline(timeout_ms);
  PerfCtl& c = perf_ctl(map_.storage().data() + kHeaderSize);
  for (;;) {
    const std::uint32_t seq = c.wake_seq.load(std::memory_order_seq_cst);
    const long n = consume();
    if (n != 0 || deadline.expired()) return n;
    c.waiters.fetch_add(1, std::memory_order_seq_cst);
    futex_wait(c.wake_seq, seq, deadline.left_ms());  // returns at once if a sample came after `seq` was read
    c.waiters.fetch_sub(1, std::memory_order_seq_cst);
  }
}

}  // namespace userbpf::maps
