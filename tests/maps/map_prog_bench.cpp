// Program-side map throughput next to the kernel's: the same socket-filter
// program (16 bpf_map_lookup_elem or bpf_map_update_elem calls per run over
// a map of 1024 entries) loaded with the same bpf_attr into the kernel and
// into userbpf's runtime (JIT, verified), run with BPF_PROG_TEST_RUN repeat
// on 1 and 2 threads at once: ns per operation from the kernel's reported
// duration per run and from the thread CPU time of userbpf's runs (the
// kernel's timer leaves out the time it yields the CPU; ours would not). Maps: hash, LRU hash, array, LPM trie (IPv4 /32
// keys). Prints one line per case and the ratio userbpf / kernel (below 1:
// userbpf is faster).
//
//   userbpf-map-prog-bench [--repeat N]
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

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
#include "runtime/runtime.hpp"

using namespace userbpf;

namespace {

constexpr std::uint32_t kEntries = 1024;
constexpr int kOpsPerRun = 16;

struct Side : maps::test::Side {
  // Time the runs by the calling thread's CPU time (userbpf: the run loop is
  // ordinary code a loaded machine preempts) instead of the reported duration
  // (the kernel's test-run timer leaves out the time it yields the CPU).
  bool cpu_time = false;
};

double thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

struct MapCase {
  const char* name;
  std::uint32_t type;
  std::uint32_t key_size;
  std::uint32_t flags;
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
  m.map_type = mc.type;
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
      const std::uint8_t pkt[64] = {};
      bpf_attr a{};
      a.test.prog_fd = static_cast<std::uint32_t>(prog);
      a.test.data_in = reinterpret_cast<std::uint64_t>(pkt);
      a.test.data_size_in = sizeof pkt;
      a.test.repeat = repeat;
      const double t0 = thread_cpu_ns();
      if (side.bpf(BPF_PROG_TEST_RUN, a) == 0)
        per_thread[static_cast<std::size_t>(t)] =
            (side.cpu_time ? (thread_cpu_ns() - t0) / repeat : static_cast<double>(a.test.duration)) / kOpsPerRun;
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

}  // namespace

int main(int argc, char** argv) {
  std::uint32_t repeat = 20000;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--repeat") == 0) repeat = static_cast<std::uint32_t>(std::stoul(argv[i + 1]));
  const Side kernel{maps::test::kernel_side(), false};
  char tmpl[] = "/tmp/userbpf-prog-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 1;
  int rc = 0;
  {
    runtime::Options o;
    o.pin_dir = tmpl;
    runtime::Runtime rt(o);
    const Side user{maps::test::user_side(rt), true};
    const MapCase cases[] = {{"hash", BPF_MAP_TYPE_HASH, 4, 0},
                             {"lru_hash", BPF_MAP_TYPE_LRU_HASH, 4, 0},
                             {"array", BPF_MAP_TYPE_ARRAY, 4, 0},
                             {"lpm_trie", BPF_MAP_TYPE_LPM_TRIE, 8, BPF_F_NO_PREALLOC}};
    std::printf("%-10s %-7s %7s %12s %12s %8s\n", "map", "op", "threads", "userbpf ns", "kernel ns", "ratio");
    for (const MapCase& mc : cases)
      for (const bool update : {false, true})
        for (const int threads : {1, 2}) {
          const double u = measure(user, mc, update, threads, repeat);
          const double k = measure(kernel, mc, update, threads, repeat);
          if (u < 0) rc = 1;
          std::printf("%-10s %-7s %7d %12.1f %12.1f %8s\n", mc.name, update ? "update" : "lookup", threads, u, k,
                      u > 0 && k > 0 ? std::to_string(u / k).substr(0, 5).c_str() : "-");
        }
  }
  std::filesystem::remove_all(tmpl);
  return rc;
}
