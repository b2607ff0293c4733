// Per-call cost of the cheap helpers, userbpf (runtime, verified, JIT) next
// to the kernel (BPF_PROG_TEST_RUN): a socket filter that makes 16 calls of
// one helper per run (for map_update_elem: 16 updates of an array with
// 8-byte values, the key and value on the stack), and the empty program
// (`r0 = 0; exit`) whose per-run cost is subtracted. Both sides are timed as
// in userbpf-map-prog-bench: the kernel's reported duration, our thread CPU
// time of `repeat` runs less that of one run. Rounds alternate sides; the
// medians are printed in ns per call and as the ratio userbpf / kernel.
//
//   userbpf-helper-call-bench [--repeat N] [--rounds N]
#include <linux/bpf.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "../maps/bpf_sides.hpp"
#include "isa/builder.hpp"
#include "isa/isa.hpp"
#include "runtime/runtime.hpp"

using namespace userbpf;

namespace {

constexpr int kCalls = 16;

// helper < 0: the empty program; BPF_FUNC_map_update_elem: array updates of map `fd`.
std::vector<isa::RawInsn> program(int helper, int fd) {
  using isa::Op;
  isa::Builder p;
  if (helper == BPF_FUNC_map_update_elem) p(Op::StDW, 10, 0, -16, 7);
  for (int i = 0; helper >= 0 && i < kCalls; ++i) {
    if (helper == BPF_FUNC_map_update_elem) {
      p(Op::StW, 10, 0, -4, i % 8);
      p.lddw(1, static_cast<std::uint32_t>(fd), Op::LddwMapFd)(Op::MovReg, 2, 10)(Op::AddImm, 2, 0, 0, -4);
      p(Op::MovReg, 3, 10)(Op::AddImm, 3, 0, 0, -16).mov(4, 0);
    }
    p(Op::Call, 0, 0, 0, helper);
  }
  p.mov(0, 0).exit();
  return isa::encode(p.v);
}

struct Row {
  const char* name;
  int helper;
};

}  // namespace

int main(int argc, char** argv) {
  std::uint32_t repeat = 100000;
  int rounds = 7;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--repeat" && i + 1 < argc) repeat = static_cast<std::uint32_t>(std::max(2, std::atoi(argv[++i])));
    else if (a == "--rounds" && i + 1 < argc) rounds = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: userbpf-helper-call-bench [--repeat N] [--rounds N]\n");
      return 2;
    }
  }
  const std::string dir = (std::filesystem::temp_directory_path() / ("userbpf-hcb-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(dir);
  runtime::Options ro;
  ro.engine = runtime::Engine::Jit;
  ro.pin_dir = dir;
  runtime::Runtime rt(ro);
  struct SideInfo {
    maps::test::Side side;
    bool cpu_time;
    const char* name;
  };
  const SideInfo sides[2] = {{maps::test::user_side(rt), true, "userbpf"}, {maps::test::kernel_side(), false, "kernel"}};
  const Row rows[] = {{"empty", -1},
                      {"ktime_get_ns", BPF_FUNC_ktime_get_ns},
                      {"get_prandom_u32", BPF_FUNC_get_prandom_u32},
                      {"get_smp_processor_id", BPF_FUNC_get_smp_processor_id},
                      {"map_update_elem", BPF_FUNC_map_update_elem}};
  // per side, per row: the program fd (and the array map)
  int progs[2][std::size(rows)];
  int maps_fd[2];
  bool kernel_ok = true;
  for (int s = 0; s < 2; ++s) {
    maps::test::MapOps ops{sides[s].side};
    maps_fd[s] = ops.create(BPF_MAP_TYPE_ARRAY, 4, 8, 8);
    for (std::size_t r = 0; r < std::size(rows); ++r) {
      progs[s][r] = maps::test::load_prog(sides[s].side, BPF_PROG_TYPE_SOCKET_FILTER, program(rows[r].helper, maps_fd[s]));
      if (progs[s][r] < 0) {
        if (s == 1) kernel_ok = false;
        else std::fprintf(stderr, "%s: PROG_LOAD failed (%d)\n", rows[r].name, progs[s][r]);
      }
    }
  }
  std::vector<double> ns[2][std::size(rows)];
  for (int round = 0; round < rounds; ++round)
    for (int k = 0; k < 2; ++k) {
      const int s = (round + k) % 2;
      if (s == 1 && !kernel_ok) continue;
      for (std::size_t r = 0; r < std::size(rows); ++r)
        if (progs[s][r] >= 0) ns[s][r].push_back(maps::test::test_run_ns(sides[s].side, sides[s].cpu_time, progs[s][r], repeat));
    }
  const auto median = [](std::vector<double> v) {
    if (v.empty()) return -1.0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf("%-22s %12s %12s %8s\n", "helper (ns per call)", "userbpf", "kernel", "ratio");
  double empty[2] = {median(ns[0][0]), median(ns[1][0])};
  for (std::size_t r = 0; r < std::size(rows); ++r) {
    double v[2];
    for (int s = 0; s < 2; ++s) {
      const double m = median(ns[s][r]);
      v[s] = m < 0 ? -1 : (r == 0 ? m : (m - empty[s]) / kCalls);
    }
    if (v[1] >= 0)
      std::printf("%-22s %12.2f %12.2f %8.3f\n", r == 0 ? "empty (ns per run)" : rows[r].name, v[0], v[1], v[0] / v[1]);
    else
      std::printf("%-22s %12.2f %12s %8s\n", r == 0 ? "empty (ns per run)" : rows[r].name, v[0], "-", "-");
  }
  if (!kernel_ok) std::printf("kernel: bpf() unavailable, not measured\n");
  for (int s = 0; s < 2; ++s) {
    for (std::size_t r = 0; r < std::size(rows); ++r)
      if (progs[s][r] >= 0) sides[s].side.close(progs[s][r]);
    if (maps_fd[s] >= 0) sides[s].side.close(maps_fd[s]);
  }
  std::filesystem::remove_all(dir);
  return 0;
}
