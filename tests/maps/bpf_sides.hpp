// The same bpf() commands on the kernel and on userbpf's runtime: a Side is
// one of them (fd / 0 or -errno, and how to close what it returned). Used
// by the differential map tests and the program-side benchmark.
#pragma once

#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <ctime>
#include <functional>
#include <span>
#include <string>

#include "isa/isa.hpp"
#include "runtime/runtime.hpp"

namespace userbpf::maps::test {

struct Side {
  std::function<int(int, bpf_attr&)> bpf;  // fd / 0, or -errno
  std::function<void(int)> close;
};

inline Side kernel_side() {
  return {[](int cmd, bpf_attr& a) {
            const long r = ::syscall(__NR_bpf, cmd, &a, sizeof a);
            return r < 0 ? -errno : static_cast<int>(r);
          },
          [](int fd) { ::close(fd); }};
}

inline Side user_side(runtime::Runtime& rt) {
  return {[&rt](int cmd, bpf_attr& a) {
            const int r = rt.bpf(cmd, &a, sizeof a);
            return r < 0 ? -errno : r;
          },
          [&rt](int fd) { (void)rt.close(fd); }};
}

// Map commands through a Side: results are fd / 0 or -errno.
struct MapOps {
  const Side& s;
  int create(std::uint32_t type, std::uint32_t ks, std::uint32_t vs, std::uint32_t max, std::uint32_t flags = 0,
             int inner = -1) const {
    bpf_attr a{};
    a.map_type = type;
    a.key_size = ks;
    a.value_size = vs;
    a.max_entries = max;
    a.map_flags = flags;
    a.inner_map_fd = static_cast<std::uint32_t>(inner);
    return s.bpf(BPF_MAP_CREATE, a);
  }
  int op(int cmd, int fd, const void* key, void* value, std::uint64_t flags = 0) const {
    bpf_attr a{};
    a.map_fd = static_cast<std::uint32_t>(fd);
    a.key = reinterpret_cast<std::uint64_t>(key);
    a.value = reinterpret_cast<std::uint64_t>(value);
    a.flags = flags;
    const int r = s.bpf(cmd, a);
    return r < 0 ? r : 0;
  }
  int next(int fd, const std::uint32_t* key, std::uint32_t& out) const {
    bpf_attr a{};
    a.map_fd = static_cast<std::uint32_t>(fd);
    a.key = reinterpret_cast<std::uint64_t>(key);
    a.next_key = reinterpret_cast<std::uint64_t>(&out);
    const int r = s.bpf(BPF_MAP_GET_NEXT_KEY, a);
    return r < 0 ? r : 0;
  }
  // The key order of a u32-keyed map from the start (at most 10 keys), " k1 k2 ...".
  [[nodiscard]] std::string order(int fd) const {
    std::string out;
    std::uint32_t cur = 0;
    const std::uint32_t* at = nullptr;
    for (int i = 0; i < 10; ++i) {
      std::uint32_t n = 0;
      if (next(fd, at, n) != 0) break;
      out += " " + std::to_string(n);
      cur = n;
      at = &cur;
    }
    return out;
  }
};

// PROG_LOAD of raw instructions as a GPL program of `type`: the fd, or
// -errno (`log`, when given, receives the verifier's log).
inline int load_prog(const Side& side, std::uint32_t type, std::span<const isa::RawInsn> insns,
                     std::string* log = nullptr) {
  static thread_local char buf[65536];
  buf[0] = 0;
  const char license[] = "GPL";
  bpf_attr l{};
  l.prog_type = type;
  l.insns = reinterpret_cast<std::uint64_t>(insns.data());
  l.insn_cnt = static_cast<std::uint32_t>(insns.size());
  l.license = reinterpret_cast<std::uint64_t>(license);
  if (log != nullptr) {
    l.log_buf = reinterpret_cast<std::uint64_t>(buf);
    l.log_size = sizeof buf;
    l.log_level = 1;
  }
  const int fd = side.bpf(BPF_PROG_LOAD, l);
  if (log != nullptr) *log = buf;
  return fd;
}

inline double thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// BPF_PROG_TEST_RUN of `prog` `repeat` times on a zeroed 64-byte packet on
// `side`: the time per run in ns, or -1 when the command fails. cpu_time:
// by the calling thread's CPU time (userbpf: the run loop is ordinary code a
// loaded machine preempts), else the reported duration (the kernel's
// test-run timer leaves out the time it yields the CPU).
inline double test_run_ns(const Side& side, bool cpu_time, int prog, std::uint32_t repeat) {
  const std::uint8_t pkt[64] = {};
  const auto run = [&](std::uint32_t n, double& cpu) {
    bpf_attr a{};
    a.test.prog_fd = static_cast<std::uint32_t>(prog);
    a.test.data_in = reinterpret_cast<std::uint64_t>(pkt);
    a.test.data_size_in = sizeof pkt;
    a.test.repeat = n;
    const double t0 = thread_cpu_ns();
    const int r = side.bpf(BPF_PROG_TEST_RUN, a);
    cpu = thread_cpu_ns() - t0;
    return r != 0 ? -1.0 : static_cast<double>(a.test.duration);
  };
  double cpu_n = 0, cpu_1 = 0;
  const double duration = run(repeat, cpu_n);
  if (duration < 0 || !cpu_time) return duration;
  // the kernel's duration times its run loop only (not the command's setup: context, packet copy):
  // the same share of our CPU time is that of `repeat` runs less that of one run
  if (repeat < 2 || run(1, cpu_1) < 0) return cpu_n / std::max<std::uint32_t>(repeat, 1);
  return std::max(cpu_n - cpu_1, 0.0) / (repeat - 1);
}

}  // namespace userbpf::maps::test
