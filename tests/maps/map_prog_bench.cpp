// Program-side map throughput next to the kernel's: the same socket-filter
// program (16 bpf_map_lookup_elem or bpf_map_update_elem calls per run over
// a map of 1024 entries) loaded with the same bpf_attr into the kernel and
// into userbpf's runtime (JIT, verified), run with BPF_PROG_TEST_RUN repeat
// on 1 and 2 threads at once: ns per operation. Both sides measure the same
// thing, the run loop: the kernel's reported duration (bpf_test_run: the
// time from before the first run to after the last, per run, including its
// per-run loop overhead but not the command's setup, and leaving out the
// time it yields the CPU) and, for userbpf, the thread CPU time of the
// command with `repeat` runs less that of the same command with one run,
// per run (CPU time: a loaded machine's preemption is not counted; the
// difference: the setup — context, packet copy — is not counted either).
// Maps: hash, LRU hash, array, LPM trie (IPv4 /32 keys), and two baselines:
// "empty" (`r0 = 0; exit`: the run loop's cost per run, shown divided by 16
// as the share of it in each operation of the other rows) and "call" (16
// calls of bpf_get_prandom_u32: what a helper call costs by itself on each
// side). Prints one line per case and the ratio userbpf / kernel (below 1:
// userbpf is faster).
//
// Ring buffers: the same kind of program makes 16 bpf_ringbuf_output calls
// (or bpf_ringbuf_reserve + a store + bpf_ringbuf_submit) of 8, 64 or 512
// bytes per run into a 16 MiB ring (flags 0: the default wakeup rule) while
// a consumer thread drains it (the kernel's ring through its mmap, userbpf's
// through RingBufConsumer::consume); ns per record on the producer side as
// above, and the share of records the consumer received (an output that
// finds the ring full fails with -EAGAIN and is not retried). The method,
// and why (earlier versions measured something else):
//   - warm ring: each measurement first writes the whole ring once (drained)
//     and waits until the consumer has caught up. The first write to each
//     page of a new ring costs ~5 us on both sides in this VM (page tables,
//     TLB), which at 520-byte records was ~90% of the figure;
//   - no full ring: the measured runs fit in the ring (repeat is capped at
//     its capacity), so a consumer starved of CPU on a loaded machine cannot
//     turn the figure into the cost of failing (-EAGAIN / NULL): `rcvd` must
//     be 100%;
//   - both sides kRingRounds times, alternating which goes first, median
//     per side: load on the shared 2-core machine changes over seconds;
//   - the consumer's own CPU time is not counted on either side (a thread
//     spinning on the ring in both cases); the producer's is: the kernel's
//     reported run-loop duration vs our thread CPU time of the same runs
//     (test_run above).
//
//   userbpf-map-prog-bench [--repeat N] [--only maps|ringbuf|hash|lru_hash|array|lpm_trie]
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "isa/builder.hpp"
#include "isa/isa.hpp"
#include "bpf_sides.hpp"
#include "maps/ringbuf.hpp"
#include "runtime/runtime.hpp"

using namespace userbpf;

namespace {

constexpr std::uint32_t kEntries = 1024;
constexpr int kOpsPerRun = 16;

struct Side : maps::test::Side {
  // Drains the ring buffer `fd` until `stop`, counting the records received
  // in `received` as it goes.
  std::function<void(int fd, const std::atomic<bool>& stop, std::atomic<std::uint64_t>& received)> drain;
  // Time the runs by the calling thread's CPU time (userbpf: the run loop is
  // ordinary code a loaded machine preempts) instead of the reported duration
  // (the kernel's test-run timer leaves out the time it yields the CPU).
  bool cpu_time = false;
};

double test_run(const Side& side, int prog, std::uint32_t repeat) {
  return maps::test::test_run_ns(side, side.cpu_time, prog, repeat);
}

struct MapCase {
  const char* name;
  std::uint32_t type;  // BPF_MAP_TYPE_UNSPEC: a baseline without map operations
  std::uint32_t key_size;
  std::uint32_t flags;
  bool empty = false;  // baseline: `r0 = 0; exit` (the run loop's cost per run, shown per 16th of a run)
};

// The key of entry i in the map's format.
void key_of(const MapCase& mc, std::uint32_t i, std::uint8_t* key) {
  if (mc.type == BPF_MAP_TYPE_LPM_TRIE) {
    const std::uint32_t prefixlen = 32, addr = 0x0a000000u + i;
    std::memcpy(key, &prefixlen, 4);
    std::memcpy(key + 4, &addr, 4);
  } else {
    std::memcpy(key, &i, 4);
  }
}

std::vector<isa::RawInsn> program(const MapCase& mc, int map_fd, bool update) {
  using isa::Op;
  isa::Builder p;
  if (mc.type == BPF_MAP_TYPE_UNSPEC) {  // the baselines: 16 calls of a helper that does almost nothing, or none
    for (int i = 0; i < kOpsPerRun && !mc.empty; ++i) p(Op::Call, 0, 0, 0, BPF_FUNC_get_prandom_u32);
    p.mov(0, 0).exit();
    return isa::encode(p.v);
  }
  p(Op::StDW, 10, 0, -24, 7);  // the value for updates
  for (int i = 0; i < kOpsPerRun; ++i) {
    const std::uint32_t k = static_cast<std::uint32_t>(i * 61) % kEntries;
    std::uint8_t key[8] = {};
    key_of(mc, k, key);
    std::int32_t w0, w1;
    std::memcpy(&w0, key, 4);
    std::memcpy(&w1, key + 4, 4);
    p(Op::StW, 10, 0, -8, w0);
    if (mc.key_size == 8) p(Op::StW, 10, 0, -4, w1);
    p.lddw(1, static_cast<std::uint32_t>(map_fd), Op::LddwMapFd)(Op::MovReg, 2, 10)(Op::AddImm, 2, 0, 0, -8);
    if (update) p(Op::MovReg, 3, 10)(Op::AddImm, 3, 0, 0, -24).mov(4, 0);
    p(Op::Call, 0, 0, 0, update ? BPF_FUNC_map_update_elem : BPF_FUNC_map_lookup_elem);
  }
  p.mov(0, 0).exit();
  return isa::encode(p.v);
}

// ns per operation with `threads` threads running the program at once; -1 on error.
double measure(const Side& side, const MapCase& mc, bool update, int threads, std::uint32_t repeat) {
  bpf_attr m{};
  m.map_type = mc.type == BPF_MAP_TYPE_UNSPEC ? std::uint32_t{BPF_MAP_TYPE_ARRAY} : mc.type;
  m.key_size = mc.key_size;
  m.value_size = 8;
  m.max_entries = kEntries;
  m.map_flags = mc.flags;
  const int map = side.bpf(BPF_MAP_CREATE, m);
  if (map < 0) {
    std::fprintf(stderr, "%s: MAP_CREATE %d\n", mc.name, map);
    return -1;
  }
  for (std::uint32_t i = 0; i < kEntries; ++i) {
    std::uint8_t key[8] = {};
    key_of(mc, i, key);
    const std::uint64_t v = i;
    bpf_attr u{};
    u.map_fd = static_cast<std::uint32_t>(map);
    u.key = reinterpret_cast<std::uint64_t>(key);
    u.value = reinterpret_cast<std::uint64_t>(&v);
    side.bpf(BPF_MAP_UPDATE_ELEM, u);
  }
  const auto raw = program(mc, map, update);
  const int prog = maps::test::load_prog(side, BPF_PROG_TYPE_SOCKET_FILTER, raw);
  if (prog < 0) {
    std::fprintf(stderr, "%s: PROG_LOAD %d\n", mc.name, prog);
    side.close(map);
    return -1;
  }
  std::vector<double> per_thread(static_cast<std::size_t>(threads), -1);
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      const double ns = test_run(side, prog, repeat);
      if (ns >= 0) per_thread[static_cast<std::size_t>(t)] = ns / kOpsPerRun;
    });
  for (auto& t : ts) t.join();
  side.close(prog);
  side.close(map);
  double sum = 0;
  for (double d : per_thread) {
    if (d < 0) return -1;
    sum += d;
  }
  return sum / threads;
}

constexpr std::uint32_t kRingSize = 16u << 20;

// Drains the kernel's ring through its mmap (consumer page rw at 0, producer
// page and data twice at one page).
void drain_kernel(int fd, const std::atomic<bool>& stop, std::atomic<std::uint64_t>& received) {
  const std::size_t page = 4096;
  void* cons = ::mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  void* prod = ::mmap(nullptr, page + 2 * std::size_t{kRingSize}, PROT_READ, MAP_SHARED, fd, page);
  if (cons == MAP_FAILED || prod == MAP_FAILED) return;
  std::atomic_ref<std::uint64_t> cpos(*static_cast<std::uint64_t*>(cons));
  std::atomic_ref<std::uint64_t> ppos(*static_cast<std::uint64_t*>(prod));
  const auto* data = static_cast<const std::uint8_t*>(prod) + page;
  std::uint64_t n = 0;
  std::uint64_t c = cpos.load(std::memory_order_relaxed);
  for (;;) {
    const bool last = stop.load(std::memory_order_acquire);
    const std::uint64_t p = ppos.load(std::memory_order_acquire);
    while (c < p) {
      const std::uint32_t hdr = std::atomic_ref<const std::uint32_t>(
                                    *reinterpret_cast<const std::uint32_t*>(data + (c & (kRingSize - 1))))
                                    .load(std::memory_order_acquire);
      if ((hdr & BPF_RINGBUF_BUSY_BIT) != 0) break;
      const std::uint32_t len = hdr & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
      if ((hdr & BPF_RINGBUF_DISCARD_BIT) == 0) received.store(++n, std::memory_order_relaxed);
      c += (len + BPF_RINGBUF_HDR_SZ + 7) & ~7ULL;
      cpos.store(c, std::memory_order_release);
    }
    if (last && c >= p) break;
  }
  ::munmap(cons, page);
  ::munmap(prod, page + 2 * std::size_t{kRingSize});
}

// The program: 16 outputs (or reserve + submit) of `size` bytes from an
// array value (the record source), returns 0.
std::vector<isa::RawInsn> ring_program(int rb_fd, int src_fd, std::int32_t size, bool reserve) {
  using isa::Op;
  isa::Builder p;
  p(Op::StW, 10, 0, -4, 0);
  p.lddw(1, static_cast<std::uint32_t>(src_fd), Op::LddwMapFd)(Op::MovReg, 2, 10)(Op::AddImm, 2, 0, 0, -4);
  p(Op::Call, 0, 0, 0, BPF_FUNC_map_lookup_elem);
  p(Op::JneImm, 0, 0, 2, 0);
  p.mov(0, 0).exit();
  p(Op::MovReg, 6, 0);
  for (int i = 0; i < kOpsPerRun; ++i) {
    p.lddw(1, static_cast<std::uint32_t>(rb_fd), Op::LddwMapFd);
    if (reserve) {
      p.mov(2, size).mov(3, 0)(Op::Call, 0, 0, 0, BPF_FUNC_ringbuf_reserve);
      p(Op::JeqImm, 0, 0, 4, 0);  // no space: skip the store and the submit
      p(Op::StDW, 0, 0, 0, 1);
      p(Op::MovReg, 1, 0).mov(2, 0)(Op::Call, 0, 0, 0, BPF_FUNC_ringbuf_submit);
    } else {
      p(Op::MovReg, 2, 6).mov(3, size).mov(4, 0)(Op::Call, 0, 0, 0, BPF_FUNC_ringbuf_output);
    }
  }
  p.mov(0, 0).exit();
  return isa::encode(p.v);
}

struct RingResult {
  double ns = -1;         // per record (per output / reserve + submit call)
  double received = 0;    // share of the records the consumer got
};

RingResult measure_ring(const Side& side, std::int32_t size, bool reserve, std::uint32_t repeat) {
  RingResult out;
  bpf_attr m{};
  m.map_type = BPF_MAP_TYPE_RINGBUF;
  m.max_entries = kRingSize;
  const int rb = side.bpf(BPF_MAP_CREATE, m);
  bpf_attr a{};
  a.map_type = BPF_MAP_TYPE_ARRAY;
  a.key_size = 4;
  a.value_size = 512;
  a.max_entries = 1;
  const int src = side.bpf(BPF_MAP_CREATE, a);
  if (rb < 0 || src < 0) {
    std::fprintf(stderr, "ringbuf: MAP_CREATE %d %d\n", rb, src);
    return out;
  }
  // The measured runs fit in the ring (test_run makes repeat + 1 runs): a
  // consumer starved of CPU on a loaded machine would otherwise let the ring
  // fill, and most calls would fail fast (-EAGAIN / NULL): the cost of
  // failing, not of a record.
  const std::uint64_t rec = (static_cast<std::uint64_t>(size) + BPF_RINGBUF_HDR_SZ + 7) & ~7ULL;
  const auto fit = static_cast<std::uint32_t>((kRingSize - 1) / (kOpsPerRun * rec) - 1);
  repeat = std::min(repeat, fit);
  const int prog = maps::test::load_prog(side, BPF_PROG_TYPE_SOCKET_FILTER, ring_program(rb, src, size, reserve));
  if (prog < 0) {
    std::fprintf(stderr, "ringbuf: PROG_LOAD %d\n", prog);
  } else {
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> got{0};
    std::thread consumer([&] { side.drain(rb, stop, got); });
    // Warm-up: one pass over the whole ring, drained. A long-running ring's
    // pages have all been written before; the first write to each page of a
    // new ring costs microseconds on both sides (page-table and TLB set-up;
    // ~5 us a page in this VM), which would otherwise be most of the figure.
    const double warm = test_run(side, prog, fit);
    const std::uint64_t warm_records = std::uint64_t{fit} * kOpsPerRun;
    for (int i = 0; i < 5000 && got.load(std::memory_order_relaxed) < warm_records; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // test_run's extra run, if any
    const std::uint64_t before = got.load(std::memory_order_relaxed);
    const double ns = warm >= 0 ? test_run(side, prog, repeat) : -1;
    stop.store(true, std::memory_order_release);
    consumer.join();
    if (ns >= 0) {
      out.ns = ns / kOpsPerRun;
      out.received = static_cast<double>(got.load(std::memory_order_relaxed) - before) /
                     (static_cast<double>(repeat) * kOpsPerRun);
    }
    side.close(prog);
  }
  side.close(src);
  side.close(rb);
  return out;
}

// Both sides, kRingRounds times, alternating which goes first (a loaded
// 2-core machine changes speed over seconds: both sides see the same
// moments); the median ns of each side and the smallest received share.
constexpr int kRingRounds = 7;
std::pair<RingResult, RingResult> measure_ring_pair(const Side& user, const Side& kernel, std::int32_t size,
                                                    bool reserve, std::uint32_t repeat) {
  std::vector<RingResult> u, k;
  for (int i = 0; i < kRingRounds; ++i) {
    if (i % 2 == 0) u.push_back(measure_ring(user, size, reserve, repeat));
    k.push_back(measure_ring(kernel, size, reserve, repeat));
    if (i % 2 != 0) u.push_back(measure_ring(user, size, reserve, repeat));
  }
  const auto median = [](std::vector<RingResult>& v) {
    RingResult r;
    for (const RingResult& x : v)
      if (x.ns < 0) return r;  // a failed run
    std::sort(v.begin(), v.end(), [](const RingResult& a, const RingResult& b) { return a.ns < b.ns; });
    r.ns = v[v.size() / 2].ns;
    r.received = std::min_element(v.begin(), v.end(), [](const RingResult& a, const RingResult& b) {
                   return a.received < b.received;
                 })->received;
    return r;
  };
  return {median(u), median(k)};
}

}  // namespace

int main(int argc, char** argv) {
  std::uint32_t repeat = 20000;
  std::string only;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--repeat") == 0) repeat = static_cast<std::uint32_t>(std::stoul(argv[i + 1]));
    if (std::strcmp(argv[i], "--only") == 0) only = argv[i + 1];
  }
  const Side kernel{maps::test::kernel_side(), &drain_kernel, false};
  // the maps live in tmpfs as under the default pin directory $XDG_RUNTIME_DIR/userbpf (pages of a
  // disk file system cost page faults and writeback)
  char tmpl[64] = "/dev/shm/userbpf-prog-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    std::snprintf(tmpl, sizeof tmpl, "/tmp/userbpf-prog-bench-XXXXXX");
    if (::mkdtemp(tmpl) == nullptr) return 1;
  }
  int rc = 0;
  {
    runtime::Options o;
    o.pin_dir = tmpl;
    runtime::Runtime rt(o);
    const Side user{maps::test::user_side(rt),
                    [&rt](int fd, const std::atomic<bool>& stop, std::atomic<std::uint64_t>& received) {
                      auto m = rt.get_map(fd);
                      if (!m) return;
                      std::uint64_t n = 0;
                      maps::RingBufConsumer c;
                      if (c.add(*m->map, [&n, &received](const void*, std::size_t) {
                            received.store(++n, std::memory_order_relaxed);
                            return 0;
                          }) != 0)
                        return;
                      for (;;) {
                        const bool last = stop.load(std::memory_order_acquire);
                        c.consume();
                        if (last) break;
                      }
                    },
                    true};
    // "call": bpf_get_prandom_u32 instead of a map operation (the map is unused): what a
    // helper call costs by itself on each side
    const MapCase cases[] = {{"empty", BPF_MAP_TYPE_UNSPEC, 4, 0, true},
                             {"call", BPF_MAP_TYPE_UNSPEC, 4, 0},
                             {"hash", BPF_MAP_TYPE_HASH, 4, 0},
                             {"lru_hash", BPF_MAP_TYPE_LRU_HASH, 4, 0},
                             {"array", BPF_MAP_TYPE_ARRAY, 4, 0},
                             {"lpm_trie", BPF_MAP_TYPE_LPM_TRIE, 8, BPF_F_NO_PREALLOC}};
    if (only.empty() || only == "maps")
      std::printf("%-10s %-7s %7s %12s %12s %8s\n", "map", "op", "threads", "userbpf ns", "kernel ns", "ratio");
    for (const MapCase& mc : cases)
      if (only.empty() || only == "maps" || only == mc.name)
      for (const bool update : {false, true})
        for (const int threads : {1, 2}) {
          if (update && mc.type == BPF_MAP_TYPE_UNSPEC) continue;
          const double u = measure(user, mc, update, threads, repeat);
          const double k = measure(kernel, mc, update, threads, repeat);
          if (u < 0) rc = 1;
          std::printf("%-10s %-7s %7d %12.1f %12.1f %8s\n", mc.name,
                      mc.empty ? "run/16" : mc.type == BPF_MAP_TYPE_UNSPEC ? "prandom" : update ? "update" : "lookup", threads, u, k,
                      u > 0 && k > 0 ? std::to_string(u / k).substr(0, 5).c_str() : "-");
        }
    if (only.empty() || only == "ringbuf") {
      std::printf("%-8s %-14s %12s %12s %8s %10s %10s\n", "ringbuf", "op", "userbpf ns", "kernel ns", "ratio",
                  "user rcvd", "kern rcvd");
      for (const bool reserve : {false, true})
        for (const std::int32_t size : {8, 64, 512}) {
          const auto [u, k] = measure_ring_pair(user, kernel, size, reserve, repeat);
          if (u.ns < 0) rc = 1;
          std::printf("%-8d %-14s %12.1f %12.1f %8s %9.1f%% %9.1f%%\n", size, reserve ? "reserve+submit" : "output",
                      u.ns, k.ns, u.ns > 0 && k.ns > 0 ? std::to_string(u.ns / k.ns).substr(0, 5).c_str() : "-",
                      100 * u.received, 100 * k.received);
        }
    }
  }
  std::filesystem::remove_all(tmpl);
  return rc;
}
