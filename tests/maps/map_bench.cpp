// userbpf-map-bench: host-side throughput of the map engines (hash, LRU
// hash, array, LPM trie; ring buffer), at 1 and 2 threads, next to the
// kernel's maps driven through bpf() from user space (same key sets).
//
//   userbpf-map-bench [--ms N] [--kernel] [--only NAME]
//
// Operations per map: "prog lookup" (Map::prog_lookup, what
// bpf_map_lookup_elem does from a program), "lookup" (host copy-out, the
// BPF_MAP_LOOKUP_ELEM path), "update" (existing keys), "delete+insert"
// (delete a key and put it back: two operations counted). Each thread runs
// its own random key stream for --ms milliseconds (default 200); figures
// are millions of operations per second of each thread's own CPU time
// (CLOCK_THREAD_CPUTIME_ID), summed over the threads: on a loaded machine
// wall-clock rates would measure the other processes. Kernel
// figures (--kernel) are bpf() syscalls: they include the syscall cost and
// are the comparison for the host API, not for programs.
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "maps/map.hpp"
#include "maps/ringbuf.hpp"
#include "kernel_maps.hpp"
#include "map_spec.hpp"

using namespace userbpf;
using namespace userbpf::maps;

namespace {

int g_ms = 200;

struct LpmKey {
  std::uint32_t plen;
  std::uint8_t d[4];
};

struct Setup {
  std::string name;
  MapSpec spec;
  std::uint32_t nkeys;
  // key i (the table's own key format) into buf
  std::function<void(std::uint32_t i, void* key, bool probe)> key;
};

using test::spec;
using test::kcreate;
using test::kop;

double thread_cpu() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Runs `op(thread, i)` on `threads` threads for g_ms; returns Mops/s.
double run(int threads, int ops_per_call, const std::function<void(int, std::uint32_t)>& op) {
  std::atomic<bool> go{false}, stop{false};
  std::vector<double> rates(static_cast<std::size_t>(threads) * 8, 0);
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t) * 7919u + 1);
      while (!go.load()) std::this_thread::yield();
      std::uint64_t n = 0;
      const double c0 = thread_cpu();
      while (!stop.load(std::memory_order_relaxed)) {
        for (int k = 0; k < 256; ++k) op(t, static_cast<std::uint32_t>(rng()));
        n += 256;
      }
      rates[static_cast<std::size_t>(t) * 8] = static_cast<double>(n) / (thread_cpu() - c0);
    });
  go = true;
  std::this_thread::sleep_for(std::chrono::milliseconds(g_ms));
  stop = true;
  for (auto& t : ts) t.join();
  double total = 0;
  for (int t = 0; t < threads; ++t) total += rates[static_cast<std::size_t>(t) * 8];
  return total * ops_per_call / 1e6;
}

void bench_map(const Setup& s, const std::string& dir, bool kernel) {
  auto created = create_map(s.spec, dir);
  if (!created.ok()) {
    std::printf("%-10s create failed: %s\n", s.name.c_str(), created.error().to_string().c_str());
    return;
  }
  Map& m = **created;
  const int kfd = kernel ? kcreate(s.spec) : -1;
  std::vector<std::uint8_t> key(s.spec.key_size), val(m.host_value_size(), 1);
  for (std::uint32_t i = 0; i < s.nkeys; ++i) {
    s.key(i, key.data(), false);
    if (m.update(key.data(), val.data(), BPF_ANY) != 0) std::printf("%s: populate failed at %u\n", s.name.c_str(), i);
    if (kfd >= 0) kop(BPF_MAP_UPDATE_ELEM, kfd, key.data(), val.data(), BPF_ANY);
  }
  const bool deletable = s.spec.type != BPF_MAP_TYPE_ARRAY;
  struct Op {
    const char* name;
    int per;
    std::function<void(int, std::uint32_t)> u, k;
  };
  auto tkey = [&](std::uint32_t r, bool probe) {
    thread_local std::vector<std::uint8_t> kb;
    kb.resize(s.spec.key_size);
    s.key(r % s.nkeys, kb.data(), probe);
    return kb.data();
  };
  auto tval = [&]() {
    thread_local std::vector<std::uint8_t> vb;
    vb.resize(m.host_value_size());
    return vb.data();
  };
  std::vector<Op> ops = {
      {"prog lookup", 1, [&](int, std::uint32_t r) { (void)m.prog_lookup(tkey(r, true), 0); }, nullptr},
      {"lookup", 1, [&](int, std::uint32_t r) { (void)m.lookup(tkey(r, true), tval(), 0); },
       [&](int, std::uint32_t r) { kop(BPF_MAP_LOOKUP_ELEM, kfd, tkey(r, true), tval(), 0); }},
      {"update", 1, [&](int, std::uint32_t r) { (void)m.update(tkey(r, false), val.data(), BPF_ANY); },
       [&](int, std::uint32_t r) { kop(BPF_MAP_UPDATE_ELEM, kfd, tkey(r, false), val.data(), BPF_ANY); }},
  };
  if (deletable)
    ops.push_back({"delete+insert", 2,
                   [&](int, std::uint32_t r) {
                     auto* k = tkey(r, false);
                     (void)m.remove(k);
                     (void)m.update(k, val.data(), BPF_ANY);
                   },
                   [&](int, std::uint32_t r) {
                     auto* k = tkey(r, false);
                     kop(BPF_MAP_DELETE_ELEM, kfd, k, nullptr, 0);
                     kop(BPF_MAP_UPDATE_ELEM, kfd, k, val.data(), BPF_ANY);
                   }});
  for (const Op& op : ops) {
    std::printf("%-10s %-14s", s.name.c_str(), op.name);
    for (int threads : {1, 2}) std::printf("  userbpf %2dT %8.2f", threads, run(threads, op.per, op.u));
    if (kfd >= 0 && op.k)
      for (int threads : {1, 2}) std::printf("  kernel %2dT %7.2f", threads, run(threads, op.per, op.k));
    std::printf("   Mops/s\n");
  }
  if (kfd >= 0) ::close(kfd);
}

void bench_ringbuf(const std::string& dir) {
  for (std::uint32_t size : {16u, 128u, 1024u}) {
    auto m = create_map(spec(BPF_MAP_TYPE_RINGBUF, 0, 0, 1u << 22), dir);
    if (!m.ok()) return;
    auto& rb = dynamic_cast<RingBuf&>(**m);
    std::atomic<bool> stop{false};
    std::uint64_t consumed = 0;
    RingBufConsumer c;
    c.add(**m, [&](const void*, std::size_t) {
      ++consumed;
      return 0;
    });
    std::thread consumer([&] {
      while (!stop) c.poll(10);
      c.consume();
    });
    std::vector<std::uint8_t> rec(size, 7);
    std::atomic<std::uint64_t> dropped{0};
    const double mops = run(1, 1, [&](int, std::uint32_t) {
      if (rb.output(rec.data(), size, 0) != 0) dropped.fetch_add(1, std::memory_order_relaxed);
    });
    stop = true;
    consumer.join();
    std::printf("ringbuf    output %4u B    userbpf  1T %8.2f Mops/s (producer), consumed %llu, full %llu\n", size,
                mops, static_cast<unsigned long long>(consumed), static_cast<unsigned long long>(dropped.load()));
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool kernel = false;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--ms" && i + 1 < argc) g_ms = std::atoi(argv[++i]);
    else if (a == "--kernel") kernel = true;
    else if (a == "--only" && i + 1 < argc) only = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--ms N] [--kernel] [--only hash|lru|array|lpm|ringbuf]\n", argv[0]);
      return 2;
    }
  }
  char tmpl[] = "/tmp/userbpf-map-bench-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  auto u32key = [](std::uint32_t i, void* k, bool) { std::memcpy(k, &i, 4); };
  const std::vector<Setup> setups = {
      {"hash", spec(BPF_MAP_TYPE_HASH, 4, 8, 65536), 10000, u32key},
      {"lru", spec(BPF_MAP_TYPE_LRU_HASH, 4, 8, 65536), 10000, u32key},
      {"array", spec(BPF_MAP_TYPE_ARRAY, 4, 8, 65536), 10000, u32key},
      {"lpm", spec(BPF_MAP_TYPE_LPM_TRIE, 8, 8, 65536, BPF_F_NO_PREALLOC), 10000,
       [](std::uint32_t i, void* k, bool probe) {
         // 10000 /24 prefixes 10.x.y.0/24; probes are /32 addresses inside them
         LpmKey key{probe ? 32u : 24u, {10, static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i),
                                        static_cast<std::uint8_t>(probe ? i * 7 : 0)}};
         std::memcpy(k, &key, sizeof key);
       }},
  };
  std::printf("userbpf-map-bench: %d ms per figure, Mops/s summed over threads\n", g_ms);
  for (const Setup& s : setups)
    if (only.empty() || only == s.name) bench_map(s, dir, kernel);
  if (only.empty() || only == "ringbuf") bench_ringbuf(dir);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
