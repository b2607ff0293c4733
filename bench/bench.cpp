// userbpf-bench: the benchmark suite of the engines. Our interpreter, our
// x86-64 JIT and the kernel's JIT on the same programs and inputs.
//
// Programs: the BPF C programs of bench/progs/*.bpf.c (clang -target bpf -O2
// -mcpu=v3, loaded with loader::Object; names "c/<file>"; bench/progs/v4/
// with clang-19 -mcpu=v4 when it was found at build time) and the C++-built
// programs of bench/programs.cpp (names "isa/<name>"). Each runs with r1 =
// memory, r2 = its length; the result is the 64-bit r0, the memory and the
// contents of the program's maps. Programs with maps or helper calls run in
// our engines on code relocated by userbpf's runtime against its maps, with
// its helper table, and in the kernel with the kernel's maps (sides.hpp).
//
// Method, per program:
//   1. correctness: one run in each engine (interpreter, JIT, kernel: the
//      oracle's wrapper, repeat 1) on fresh copies of the input and, for
//      programs with maps, emptied maps; r0, the fault state, the memory and
//      the maps' contents afterwards must agree (else exit 1).
//   2. calibration: K back-to-back runs per sample for our engines and a
//      repeat count for the kernel, each aiming at ~1 ms per sample.
//   3. samples, alternating engines sample by sample (interpreter, JIT,
//      kernel, interpreter, ...), so that a change in machine load hits all
//      three alike. Our engines: thread CPU time of K runs / K (one Env, one
//      memory buffer, unchecked mode). Kernel: the average duration per
//      repetition that BPF_PROG_TEST_RUN reports (its timer also stops while
//      the task is preempted). Medians are reported.
//   4. overhead: the kernel figure includes the test-run loop, the oracle's
//      wrapper (a bpf-to-bpf call) and its store of r0 into a map; ours
//      include the call of Program::run. Both are measured on an empty
//      program (r0 = 0; exit) and printed; "corrected" figures subtract each
//      engine's own empty-program time. Raw and corrected ratios are both
//      printed, labelled.
//   5. compile time: jit::Program::compile, median over repeated compiles,
//      per program and per instruction; plus a generated straight-line
//      10,000-instruction program (target: < 1 ms).
//
//   userbpf-bench [--json] [--samples N] [--quick] [--filter S] [--no-kernel] [--progs DIR]
//                 [--overhead] [--dump]
//   --quick     CI sanity: correctness in every engine, 3 short samples.
//   --overhead  only the per-run overhead (ns per run of `r0 = 0; exit`).
//   --dump      print the JIT's listing of each selected program, run nothing.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "inputs.hpp"
#include "interp/interp.hpp"
#include "isa/isa.hpp"
#include "jit/jit.hpp"
#include "loader/loader.hpp"
#include "oracle/oracle.hpp"
#include "programs.hpp"
#include "runtime/runtime.hpp"
#include "sides.hpp"

namespace {

namespace fs = std::filesystem;
namespace oracle = userbpf::oracle;
namespace isa = userbpf::isa;
namespace bench = userbpf::bench;
using userbpf::abi::Env;
using userbpf::abi::RunResult;
using isa::Op;

constexpr double kTargetJitRatio = 0.85;       // JIT time <= 0.85x the kernel JIT's (geomean)
constexpr double kTargetCompile10kNs = 1e6;    // < 1 ms for 10,000 instructions
constexpr std::size_t kGeneratedInsns = 10000;

#ifndef USERBPF_BENCH_PROGS_DIR
#define USERBPF_BENCH_PROGS_DIR "bench/progs"
#endif
#ifndef USERBPF_BENCH_HAVE_CLANG19
#define USERBPF_BENCH_HAVE_CLANG19 0
#endif
constexpr bool kHaveClang19 = USERBPF_BENCH_HAVE_CLANG19 != 0;  // c/may_goto was built

struct Options {
  bool json = false;
  bool quick = false;
  bool kernel = true;
  bool overhead_only = false;  // --overhead: only the empty-program overhead
  bool dump = false;           // --dump: print the JIT listing of the selected programs
  int samples = 11;
  std::string filter;
  std::string progs_dir = USERBPF_BENCH_PROGS_DIR;
};

struct Bench {
  std::string name;
  std::string what;
  std::vector<isa::Insn> insns;
  std::vector<std::uint8_t> memory;
  std::vector<bench::MapDef> maps;  // `lddw map_idx(i)` names maps[i]
};

// True when the program needs userbpf's runtime (maps, helper calls).
bool needs_runtime(const Bench& b) {
  if (!b.maps.empty()) return true;
  return std::any_of(b.insns.begin(), b.insns.end(),
                     [](const isa::Insn& in) { return in.op == Op::Call || in.op == Op::LddwFunc; });
}

struct Row {
  std::string name;
  std::string what;
  std::size_t insns = 0;     // program size (slots)
  std::uint64_t executed = 0;  // instructions executed per run
  std::uint64_t r0 = 0;
  double interp_ns = 0, jit_ns = 0;
  std::optional<double> kernel_ns;
  // fastest sample of each engine: less sensitive to a loaded machine
  double interp_best = 0, jit_best = 0;
  std::optional<double> kernel_best;
  std::string kernel_note;
  double compile_ns = 0;
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double geomean(const std::vector<double>& v) {
  if (v.empty()) return 0;
  double s = 0;
  for (double x : v) s += std::log(x);
  return std::exp(s / static_cast<double>(v.size()));
}

double thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// ns per run over k back-to-back runs of an engine (thread CPU time). `us`:
// the program's runtime side (helpers, maps), null for plain programs.
template <class P>
double time_runs(const P& p, bench::UserSide* us, std::vector<std::uint8_t>& mem, std::uint64_t k,
                 std::uint64_t& sink) {
  Env env;
  if (us != nullptr) us->prepare(env);
  const std::uint64_t args[2] = {reinterpret_cast<std::uint64_t>(mem.data()), mem.size()};
  const double t0 = thread_cpu_ns();
  for (std::uint64_t i = 0; i < k; ++i) sink += p.run(env, args).r0;
  const double t1 = thread_cpu_ns();
  return (t1 - t0) / static_cast<double>(k);
}

template <class P>
RunResult run_once(const P& p, bench::UserSide* us, std::vector<std::uint8_t>& mem, bool count = false) {
  Env env;
  if (us != nullptr) us->prepare(env);
  env.options.count_insns = count;
  const std::uint64_t args[2] = {reinterpret_cast<std::uint64_t>(mem.data()), mem.size()};
  return p.run(env, args);
}

// K runs for about `target_ns` of CPU time per sample.
template <class P>
std::uint64_t calibrate(const P& p, bench::UserSide* us, std::vector<std::uint8_t>& mem, double target_ns,
                        std::uint64_t& sink) {
  double per = time_runs(p, us, mem, 1, sink);
  per = std::min(per, time_runs(p, us, mem, 3, sink));
  return static_cast<std::uint64_t>(std::clamp(target_ns / std::max(per, 1.0), 1.0, 1e7));
}

std::string describe(const RunResult& r) {
  return r.ok() ? fmt::format("r0={:#x}", r.r0) : fmt::format("error: {}", r.error ? r.error->to_string() : "?");
}

// The clang-built objects of bench/progs.
bool load_bpf_programs(const std::string& dir, std::vector<Bench>& out, std::string& err) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().filename().string().ends_with(".bpf.o")) files.push_back(e.path());
  if (ec) {
    err = fmt::format("{}: {}", dir, ec.message());
    return false;
  }
  if (files.empty()) {
    err = fmt::format("{}: no *.bpf.o benchmark objects", dir);
    return false;
  }
  std::sort(files.begin(), files.end());
  userbpf::loader::OpenOptions oo;
  oo.use_vmlinux_btf = false;
  for (const fs::path& f : files) {
    auto obj = userbpf::loader::Object::open(f.string(), oo);
    if (!obj) {
      err = fmt::format("{}: {}", f.string(), obj.error().to_string());
      return false;
    }
    const userbpf::loader::Program* p = obj->find_program("prog");
    if (p == nullptr) {
      err = fmt::format("{}: no program 'prog' (section \"bench\")", f.string());
      return false;
    }
    std::string base = f.filename().string();
    base = base.substr(0, base.size() - std::string(".bpf.o").size());
    std::vector<bench::MapDef> maps;
    for (const userbpf::loader::Map& m : obj->maps()) {
      if (m.origin != userbpf::loader::MapOrigin::BtfDefined) {
        err = fmt::format("{}: map '{}': only BTF-defined maps (.maps) are supported by the bench", f.string(),
                          m.name);
        return false;
      }
      maps.push_back({m.name, {m.type, m.key_size, m.value_size, m.max_entries, m.map_flags}});
    }
    out.push_back({"c/" + base, bench::prog_description(base), p->insns, bench::prog_input(base), std::move(maps)});
  }
  return true;
}

// A straight-line-ish program of exactly n slots for compile-time
// measurement: ALU on r0, r3..r9 (imm and reg forms, mul, shifts), stack
// stores, forward conditional jumps over one instruction.
std::vector<isa::Insn> generated_program(std::size_t n) {
  std::vector<isa::Insn> v;
  for (std::uint8_t r : {0, 3, 4, 5, 6, 7, 8, 9}) v.push_back(isa::make(Op::MovImm, r, 0, 0, 0x1234 + r));
  std::uint32_t s = 12345;
  while (v.size() + 1 < n) {
    s = s * 1103515245u + 12345u;
    const auto dst = static_cast<std::uint8_t>(std::array<int, 8>{0, 3, 4, 5, 6, 7, 8, 9}[(s >> 8) % 8]);
    const auto src = static_cast<std::uint8_t>(std::array<int, 8>{0, 3, 4, 5, 6, 7, 8, 9}[(s >> 12) % 8]);
    const auto imm = static_cast<std::int32_t>((s >> 16) & 0xfff) + 1;
    const auto slot = static_cast<std::int16_t>(-8 * static_cast<int>(1 + (s >> 20) % 8));
    switch ((s >> 24) % 12) {
      case 0: v.push_back(isa::make(Op::AddImm, dst, 0, 0, imm)); break;
      case 1: v.push_back(isa::make(Op::XorReg, dst, src)); break;
      case 2: v.push_back(isa::make(Op::MulImm, dst, 0, 0, imm)); break;
      case 3: v.push_back(isa::make(Op::LshImm, dst, 0, 0, imm & 31)); break;
      case 4: v.push_back(isa::make(Op::RshImm, dst, 0, 0, imm & 31)); break;
      case 5: v.push_back(isa::make(Op::Add32Reg, dst, src)); break;
      case 6: v.push_back(isa::make(Op::StxDW, 10, dst, slot)); break;
      case 7: v.push_back(isa::make(Op::SubReg, dst, src)); break;
      case 8: v.push_back(isa::make(Op::OrImm, dst, 0, 0, imm)); break;
      case 9: v.push_back(isa::make(Op::AndImm, dst, 0, 0, imm | 0x100)); break;
      case 10:
        if (v.size() + 3 < n) {
          v.push_back(isa::make(Op::JgtImm, dst, 0, 1, imm));
          v.push_back(isa::make(Op::AddImm, src, 0, 0, 1));
        }
        break;
      default: v.push_back(isa::make(Op::Mov32Reg, dst, src)); break;
    }
  }
  while (v.size() + 1 < n) v.push_back(isa::make(Op::AddImm, 0, 0, 0, 1));
  v.push_back(isa::make(Op::Exit));
  return v;
}

// Median compile time of `insns` in ns of thread CPU time (user + system, so
// the mmap/mprotect of the code counts; time preempted does not), at least 3
// compiles, ~target_ns in total.
std::optional<double> compile_time(std::span<const isa::Insn> insns, const userbpf::jit::Options& jo, double target_ns,
                                   std::string& err) {
  std::vector<double> t;
  double spent = 0;
  while (t.size() < 3 || (spent < target_ns && t.size() < 200)) {
    const double t0 = thread_cpu_ns();
    auto p = userbpf::jit::Program::compile(insns, jo);
    const double t1 = thread_cpu_ns();
    if (!p) {
      err = p.error().to_string();
      return std::nullopt;
    }
    t.push_back(t1 - t0);
    spent += t1 - t0;
  }
  return median(t);
}

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json")
      o.json = true;
    else if (a == "--quick")
      o.quick = true;
    else if (a == "--no-kernel")
      o.kernel = false;
    else if (a == "--overhead")
      o.overhead_only = true;
    else if (a == "--dump")
      o.dump = true;
    else if (a == "--samples" && i + 1 < argc)
      o.samples = std::max(1, std::atoi(argv[++i]));
    else if (a == "--filter" && i + 1 < argc)
      o.filter = argv[++i];
    else if (a == "--progs" && i + 1 < argc)
      o.progs_dir = argv[++i];
    else {
      std::fprintf(stderr,
                   "usage: userbpf-bench [--json] [--samples N] [--quick] [--filter S] [--no-kernel] [--progs DIR]\n"
                   "                     [--overhead] [--dump]\n"
                   "unknown or incomplete argument '%s'\n",
                   a.c_str());
      return false;
    }
  }
  if (o.quick) o.samples = std::min(o.samples, 3);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!parse(argc, argv, opt)) return 2;
  const double sample_ns = opt.quick ? 1e5 : 1e6;

  bool kernel = opt.kernel;
  std::string kernel_reason = "--no-kernel";
  if (kernel) {
    const auto& av = oracle::available();
    if (!av.ok) {
      kernel = false;
      kernel_reason = av.reason;
    }
  }

  std::vector<Bench> all;
  std::string err;
  if (!load_bpf_programs(opt.progs_dir, all, err)) {
    std::fprintf(stderr, "userbpf-bench: %s\n", err.c_str());
    return 1;
  }
  for (const bench::BenchProgram& bp : bench::programs())
    all.push_back({"isa/" + bp.name, bp.what, bp.insns, bp.memory, {}});
  if (!kHaveClang19 && (opt.filter.empty() || std::string("c/may_goto").find(opt.filter) != std::string::npos))
    std::fprintf(stderr, "c/may_goto: skipped: clang-19 was not found at build time (may_goto needs clang >= 19 "
                         "and -mcpu=v4; scripts/setup.sh installs it)\n");

  int failures = 0;
  std::uint64_t sink = 0;

  // Programs with maps or helper calls: their maps and relocated code in
  // userbpf's runtime (unverified loads, unchecked runs: see sides.hpp).
  userbpf::runtime::Options ro;
  ro.verify = false;
  ro.checked = false;
  ro.engine = userbpf::runtime::Engine::Interpreter;
  userbpf::runtime::Runtime rt(ro);
  const auto user_side = [&rt](const Bench& b) -> userbpf::Result<std::unique_ptr<bench::UserSide>> {
    if (!needs_runtime(b)) return std::unique_ptr<bench::UserSide>();
    return bench::UserSide::make(rt, b.insns, b.maps);
  };

  if (opt.dump) {
    for (const Bench& b : all) {
      if (!opt.filter.empty() && b.name.find(opt.filter) == std::string::npos) continue;
      auto us = user_side(b);
      if (!us) {
        std::fprintf(stderr, "%s: %s\n", b.name.c_str(), us.error().to_string().c_str());
        return 1;
      }
      auto jp = *us ? userbpf::jit::Program::compile((*us)->code(), (*us)->jit_options())
                    : userbpf::jit::Program::compile(b.insns);
      if (!jp) {
        std::fprintf(stderr, "%s: JIT refused it: %s\n", b.name.c_str(), jp.error().to_string().c_str());
        return 1;
      }
      std::printf("==== %s (%zu insns, %zu bytes of code)\n%s\n", b.name.c_str(), b.insns.size(), jp->code_size(),
                  jp->disassemble().c_str());
    }
    return 0;
  }

  // ---- overhead: the empty program in each engine
  const std::vector<isa::Insn> empty = {isa::make(Op::MovImm, 0, 0, 0, 0), isa::make(Op::Exit)};
  double ovh_interp = 0, ovh_jit = 0;
  std::optional<double> ovh_kernel;
  {
    auto ip = userbpf::interp::Program::create(empty);
    auto jp = userbpf::jit::Program::compile(empty);
    if (!ip || !jp) {
      std::fprintf(stderr, "userbpf-bench: cannot build the empty program\n");
      return 1;
    }
    std::vector<std::uint8_t> mem(bench::kProgMemSize);
    const std::uint64_t ki = calibrate(*ip, nullptr, mem, sample_ns, sink),
                        kj = calibrate(*jp, nullptr, mem, sample_ns, sink);
    std::optional<bench::KernelRunner> kx;
    if (kernel) {
      auto k = bench::KernelRunner::make(empty, mem, {}, nullptr);
      if (k)
        kx = std::move(*k);
      else
        std::fprintf(stderr, "empty program: kernel: %s\n", k.error().to_string().c_str());
    }
    std::vector<double> is, js, ks;
    for (int s = 0; s < std::max(opt.samples, 5); ++s) {
      is.push_back(time_runs(*ip, nullptr, mem, ki, sink));
      js.push_back(time_runs(*jp, nullptr, mem, kj, sink));
      if (kx)
        if (auto kr = kx->run(opt.quick ? 1000 : 50000)) ks.push_back(kr->first);
    }
    ovh_interp = median(is);
    ovh_jit = median(js);
    if (!ks.empty()) ovh_kernel = median(ks);
    if (opt.overhead_only) {
      std::printf("per-run overhead (empty program: r0 = 0; exit), median of %zu samples: interpreter %.1f ns, JIT %.1f "
                  "ns (fastest %.1f ns), kernel %s\n",
                  js.size(), ovh_interp, ovh_jit, *std::min_element(js.begin(), js.end()),
                  ovh_kernel ? fmt::format("{:.0f} ns", *ovh_kernel).c_str() : "not measured");
      return 0;
    }
  }

  // ---- the programs
  std::vector<Row> rows;
  for (const Bench& b : all) {
    if (!opt.filter.empty() && b.name.find(opt.filter) == std::string::npos) continue;
    Row row;
    row.name = b.name;
    row.what = b.what;
    row.insns = b.insns.size();
    auto usr = user_side(b);
    if (!usr) {
      std::fprintf(stderr, "%s: userbpf's runtime refused it: %s\n", b.name.c_str(), usr.error().to_string().c_str());
      ++failures;
      continue;
    }
    bench::UserSide* us = usr->get();
    const std::span<const isa::Insn> code = us != nullptr ? us->code() : std::span<const isa::Insn>(b.insns);
    const userbpf::jit::Options jo = us != nullptr ? us->jit_options() : userbpf::jit::Options{};
    auto ip = userbpf::interp::Program::create(code);
    if (!ip) {
      std::fprintf(stderr, "%s: interpreter refused it: %s\n", b.name.c_str(), ip.error().to_string().c_str());
      ++failures;
      continue;
    }
    auto jp = userbpf::jit::Program::compile(code, jo);
    if (!jp) {
      std::fprintf(stderr, "%s: JIT refused it: %s\n", b.name.c_str(), jp.error().to_string().c_str());
      ++failures;
      continue;
    }
    // correctness: each engine from emptied maps, then r0, memory and maps compared
    const auto maps_after = [&](const char* engine) -> std::optional<bench::MapsContents> {
      if (us == nullptr) return bench::MapsContents{};
      auto c = us->contents();
      if (!c) std::fprintf(stderr, "%s: %s: %s\n", b.name.c_str(), engine, c.error().to_string().c_str());
      return c ? std::optional(std::move(*c)) : std::nullopt;
    };
    const auto reset = [&]() {
      if (us == nullptr) return true;
      auto st = us->reset_maps();
      if (!st) std::fprintf(stderr, "%s: %s\n", b.name.c_str(), st.error().to_string().c_str());
      return static_cast<bool>(st);
    };
    std::vector<std::uint8_t> mi = b.memory, mj = b.memory;
    if (!reset()) {
      ++failures;
      continue;
    }
    const RunResult ri = run_once(*ip, us, mi, true);
    const auto maps_i = maps_after("interpreter");
    if (!reset()) {
      ++failures;
      continue;
    }
    const RunResult rj = run_once(*jp, us, mj);
    const auto maps_j = maps_after("JIT");
    if (!maps_i || !maps_j) {
      ++failures;
      continue;
    }
    const std::string map_diff = bench::describe_difference(*maps_i, *maps_j, b.maps);
    if (!ri.ok() || !(ri.r0 == rj.r0 && ri.fault == rj.fault) || mi != mj || !map_diff.empty()) {
      std::fprintf(stderr, "%s: MISMATCH interpreter %s vs JIT %s%s%s\n", b.name.c_str(), describe(ri).c_str(),
                   describe(rj).c_str(), mi != mj ? " (memory differs)" : "",
                   map_diff.empty() ? "" : (" (" + map_diff + ")").c_str());
      ++failures;
      continue;
    }
    row.r0 = ri.r0;
    row.executed = ri.insns;
    std::optional<bench::KernelRunner> kx;
    if (kernel) {
      std::string log;
      auto k = bench::KernelRunner::make(b.insns, b.memory, b.maps, &log);
      if (!k && !log.empty()) {
        std::fprintf(stderr, "%s: the kernel's verifier refused it (errno %d):\n%s\n", b.name.c_str(), k.error().code,
                     log.substr(log.size() > 3000 ? log.size() - 3000 : 0).c_str());
        row.kernel_note = "kernel verifier refused it";
        ++failures;
      } else if (!k) {
        std::fprintf(stderr, "%s: kernel: %s\n", b.name.c_str(), k.error().to_string().c_str());
        row.kernel_note = k.error().to_string();
        ++failures;
      } else {
        kx = std::move(*k);
        std::vector<std::uint8_t> mk;
        const auto kr = kx->run(1, &mk);
        auto maps_k = kx->contents();
        if (!kr || !maps_k) {
          std::fprintf(stderr, "%s: kernel: a test run or map dump failed%s\n", b.name.c_str(),
                       maps_k ? "" : (": " + maps_k.error().to_string()).c_str());
          ++failures;
          continue;
        }
        const std::string kdiff = bench::describe_difference(*maps_i, *maps_k, b.maps);
        if (kr->second != row.r0 || mk != mi || !kdiff.empty()) {
          std::fprintf(stderr, "%s: MISMATCH interpreter/JIT r0=%#llx, kernel r0=%#llx%s%s\n", b.name.c_str(),
                       static_cast<unsigned long long>(row.r0), static_cast<unsigned long long>(kr->second),
                       mk != mi ? " (memory differs)" : "", kdiff.empty() ? "" : (" (" + kdiff + ")").c_str());
          ++failures;
          continue;
        }
      }
    } else {
      row.kernel_note = kernel_reason;
    }

    // compile time
    if (auto ct = compile_time(code, jo, opt.quick ? 2e5 : 5e6, err)) row.compile_ns = *ct;

    // calibration
    std::vector<std::uint8_t> mem = b.memory;
    const std::uint64_t ki = calibrate(*ip, us, mem, sample_ns, sink);
    const std::uint64_t kj = calibrate(*jp, us, mem, sample_ns, sink);
    std::uint32_t krep = 0;
    if (kx)
      if (auto kr = kx->run(10))
        krep = static_cast<std::uint32_t>(
            std::clamp(sample_ns / std::max(1.0, kr->first), 1.0, opt.quick ? 2000.0 : 200000.0));
    // samples, alternating engines
    std::vector<double> is, js, ks;
    for (int s = 0; s < opt.samples; ++s) {
      is.push_back(time_runs(*ip, us, mem, ki, sink));
      js.push_back(time_runs(*jp, us, mem, kj, sink));
      if (krep > 0) {
        if (auto kr = kx->run(krep)) {
          if (kr->second != row.r0) {
            std::fprintf(stderr, "%s: MISMATCH kernel r0=%#llx in a timed run\n", b.name.c_str(),
                         static_cast<unsigned long long>(kr->second));
            ++failures;
          }
          ks.push_back(kr->first);
        }
      }
    }
    // our engines ran K times on `mem` and the maps: the result must still be the same
    if (run_once(*jp, us, mem).r0 != row.r0) {
      std::fprintf(stderr, "%s: MISMATCH: repeated runs change the result\n", b.name.c_str());
      ++failures;
    }
    if (us != nullptr) {
      const auto maps_end = maps_after("after the timed runs");
      if (!maps_end || !bench::describe_difference(*maps_i, *maps_end, b.maps).empty()) {
        std::fprintf(stderr, "%s: MISMATCH: repeated runs change the maps\n", b.name.c_str());
        ++failures;
      }
    }
    row.interp_ns = median(is);
    row.jit_ns = median(js);
    row.interp_best = *std::min_element(is.begin(), is.end());
    row.jit_best = *std::min_element(js.begin(), js.end());
    if (!ks.empty()) {
      row.kernel_ns = median(ks);
      row.kernel_best = *std::min_element(ks.begin(), ks.end());
    }
    rows.push_back(row);
  }

  if (rows.empty() && failures == 0) {
    std::fprintf(stderr, "userbpf-bench: no program matches --filter '%s'\n", opt.filter.c_str());
    return 1;
  }

  // ---- compile time of a generated 10,000-instruction program
  const std::vector<isa::Insn> gen = generated_program(kGeneratedInsns);
  double gen_ns = 0;
  {
    auto ip = userbpf::interp::Program::create(gen);
    auto jp = userbpf::jit::Program::compile(gen);
    if (!ip || !jp) {
      std::fprintf(stderr, "generated program: %s\n",
                   (!ip ? ip.error() : jp.error()).to_string().c_str());
      ++failures;
    } else {
      std::vector<std::uint8_t> m1(64), m2(64);
      const RunResult a = run_once(*ip, nullptr, m1), c = run_once(*jp, nullptr, m2);
      if (!(a == c)) {
        std::fprintf(stderr, "generated program: MISMATCH interpreter %s vs JIT %s\n", describe(a).c_str(),
                     describe(c).c_str());
        ++failures;
      }
      if (auto ct = compile_time(gen, {}, opt.quick ? 5e6 : 5e7, err)) gen_ns = *ct;
    }
  }

  // ---- summary
  const auto corr = [](double v, double o) { return std::max(v - o, 0.05 * v); };
  std::vector<double> g_i, g_j, g_k, g_jk, g_jkc, g_ij, g_cpi, g_best_jk, g_best_ij;
  for (const Row& r : rows) {
    g_i.push_back(r.interp_ns);
    g_j.push_back(r.jit_ns);
    g_ij.push_back(r.interp_ns / r.jit_ns);
    g_best_ij.push_back(r.interp_best / r.jit_best);
    if (r.kernel_best && *r.kernel_best > 0) g_best_jk.push_back(r.jit_best / *r.kernel_best);
    if (r.compile_ns > 0) g_cpi.push_back(r.compile_ns / static_cast<double>(r.insns));
    if (r.kernel_ns && *r.kernel_ns > 0 && ovh_kernel) {
      g_k.push_back(*r.kernel_ns);
      g_jk.push_back(r.jit_ns / *r.kernel_ns);
      g_jkc.push_back(corr(r.jit_ns, ovh_jit) / corr(*r.kernel_ns, *ovh_kernel));
    }
  }
  const bool have_kernel = !g_jk.empty();

  if (opt.json) {
    nlohmann::json j;
    j["mode"] = opt.quick ? "quick" : "full";
    j["samples"] = opt.samples;
    j["kernel_available"] = kernel;
    if (!kernel) j["kernel_unavailable_reason"] = kernel_reason;
    j["overhead_ns"] = {{"interp", ovh_interp}, {"jit", ovh_jit}};
    if (ovh_kernel) j["overhead_ns"]["kernel"] = *ovh_kernel;
    j["programs"] = nlohmann::json::array();
    for (const Row& r : rows) {
      nlohmann::json p;
      p["name"] = r.name;
      p["what"] = r.what;
      p["insns"] = r.insns;
      p["executed_insns"] = r.executed;
      p["r0"] = r.r0;
      p["interp_ns"] = r.interp_ns;
      p["jit_ns"] = r.jit_ns;
      p["interp_over_jit"] = r.interp_ns / r.jit_ns;
      p["interp_best_ns"] = r.interp_best;
      p["jit_best_ns"] = r.jit_best;
      if (r.kernel_best) p["kernel_best_ns"] = *r.kernel_best;
      p["compile_ns"] = r.compile_ns;
      p["compile_ns_per_insn"] = r.compile_ns / static_cast<double>(r.insns);
      if (r.kernel_ns && ovh_kernel) {
        p["kernel_ns"] = *r.kernel_ns;
        p["jit_over_kernel_raw"] = r.jit_ns / *r.kernel_ns;
        p["jit_over_kernel_corrected"] = corr(r.jit_ns, ovh_jit) / corr(*r.kernel_ns, *ovh_kernel);
      } else {
        p["kernel_note"] = r.kernel_note;
      }
      j["programs"].push_back(p);
    }
    j["geomean"] = {{"interp_ns", geomean(g_i)},
                    {"jit_ns", geomean(g_j)},
                    {"interp_over_jit", geomean(g_ij)},
                    {"compile_ns_per_insn", geomean(g_cpi)}};
    if (have_kernel) {
      j["geomean"]["kernel_ns"] = geomean(g_k);
      j["geomean"]["jit_over_kernel_raw"] = geomean(g_jk);
      j["geomean"]["jit_over_kernel_corrected"] = geomean(g_jkc);
      j["geomean"]["best_jit_over_best_kernel_raw"] = geomean(g_best_jk);
    }
    j["geomean"]["best_interp_over_best_jit"] = geomean(g_best_ij);
    j["generated_program"] = {{"insns", gen.size()}, {"compile_ns", gen_ns}, {"target_ns", kTargetCompile10kNs},
                              {"target_met", gen_ns > 0 && gen_ns < kTargetCompile10kNs}};
    j["target_jit_over_kernel"] = kTargetJitRatio;
    if (have_kernel) {
      j["target_met_raw"] = geomean(g_jk) <= kTargetJitRatio;
      j["target_met_corrected"] = geomean(g_jkc) <= kTargetJitRatio;
    }
    j["failures"] = failures;
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%-18s %6s %8s %10s %9s %10s %9s %9s %9s %10s %9s\n", "program", "insns", "executed", "interp ns",
                "JIT ns", "kernel ns", "JIT/kern", "JIT/kern", "interp/", "compile", "compile");
    std::printf("%-18s %6s %8s %10s %9s %10s %9s %9s %9s %10s %9s\n", "", "", "per run", "/run", "/run", "JIT /run",
                "raw", "corrected", "JIT", "us", "ns/insn");
    for (const Row& r : rows) {
      std::string k = "-", kr = "-", kc = "-";
      if (r.kernel_ns && ovh_kernel) {
        k = fmt::format("{:.0f}", *r.kernel_ns);
        kr = fmt::format("{:.2f}x", r.jit_ns / *r.kernel_ns);
        kc = fmt::format("{:.2f}x", corr(r.jit_ns, ovh_jit) / corr(*r.kernel_ns, *ovh_kernel));
      }
      std::printf("%-18s %6zu %8llu %10.0f %9.0f %10s %9s %9s %8.1fx %10.1f %9.0f\n", r.name.c_str(), r.insns,
                  static_cast<unsigned long long>(r.executed), r.interp_ns, r.jit_ns, k.c_str(), kr.c_str(),
                  kc.c_str(), r.interp_ns / r.jit_ns, r.compile_ns / 1e3,
                  r.compile_ns / static_cast<double>(r.insns));
    }
    std::printf("%-18s %6s %8s %10.0f %9.0f %10s %9s %9s %8.1fx %10s %9.0f\n", "geomean", "", "", geomean(g_i),
                geomean(g_j), have_kernel ? fmt::format("{:.0f}", geomean(g_k)).c_str() : "-",
                have_kernel ? fmt::format("{:.2f}x", geomean(g_jk)).c_str() : "-",
                have_kernel ? fmt::format("{:.2f}x", geomean(g_jkc)).c_str() : "-", geomean(g_ij), "",
                geomean(g_cpi));
    std::printf("\nper-run overhead (empty program: r0 = 0; exit): interpreter %.1f ns, JIT %.1f ns, kernel %s\n",
                ovh_interp, ovh_jit,
                ovh_kernel ? fmt::format("{:.0f} ns (test-run loop + oracle wrapper call + map store)", *ovh_kernel).c_str()
                           : fmt::format("not measured ({})", kernel_reason).c_str());
    std::printf("JIT/kern raw: as measured. JIT/kern corrected: (JIT - JIT empty) / (kernel - kernel empty).\n");
    std::printf("fastest samples instead of medians (geomean): interp/JIT %.1fx", geomean(g_best_ij));
    if (!g_best_jk.empty()) std::printf(", JIT/kern raw %.2fx", geomean(g_best_jk));
    std::printf("\n");
    if (have_kernel)
      std::printf("target JIT/kernel <= %.2fx (geomean): raw %.2fx %s, corrected %.2fx %s\n", kTargetJitRatio,
                  geomean(g_jk), geomean(g_jk) <= kTargetJitRatio ? "met" : "NOT met", geomean(g_jkc),
                  geomean(g_jkc) <= kTargetJitRatio ? "met" : "NOT met");
    else
      std::printf("kernel JIT: not measured (%s)\n",
                  kernel ? "no program ran in the kernel" : kernel_reason.c_str());
    std::printf("compile time, generated %zu-instruction program: %.3f ms (%.0f ns/insn); target < 1 ms: %s\n",
                gen.size(), gen_ns / 1e6, gen_ns / static_cast<double>(gen.size()),
                gen_ns > 0 && gen_ns < kTargetCompile10kNs ? "met" : "NOT met");
    std::printf("samples: %d per engine, alternating; our engines: median thread CPU time of K back-to-back runs;\n"
                "kernel: median of BPF_PROG_TEST_RUN's average duration per repetition.%s\n",
                opt.samples, opt.quick ? " (--quick: short samples, figures not meaningful)" : "");
  }
  if (sink == 42) std::fprintf(stderr, " ");
  if (failures > 0) std::fprintf(stderr, "userbpf-bench: %d failure(s)\n", failures);
  return failures > 0 ? 1 : 0;
}
