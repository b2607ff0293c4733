#include "engines.hpp"

#include <fmt/format.h>

#include <cstring>

#include "abi/abi.hpp"
#include "interp/interp.hpp"
#include "jit/jit.hpp"
#include "oracle/oracle.hpp"

namespace userbpf::datatest {

namespace {

// Helper 5, "unwind" (uBPF's conformance helper): returns r1; when r1 == 0 it
// ends the run with r0 = 0.
std::uint64_t unwind(abi::Env& env, std::uint64_t r1, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t) {
  if (r1 == 0) env.request_exit(0);
  return r1;
}

const abi::HelperTable& test_helpers() {
  static const abi::HelperTable table = [] {
    abi::HelperTable t;
    t.set(static_cast<std::uint32_t>(oracle::kUnwindHelper), "unwind", &unwind);
    return t;
  }();
  return table;
}

// Sets up an Env for a case: memory (also the LD_ABS/LD_IND packet), options,
// helpers. `mem` must outlive the run.
abi::Env make_env(const Case& c, std::vector<std::uint8_t>& mem) {
  abi::Env env;
  env.helpers = &test_helpers();
  env.options.checked = c.checked;
  env.options.budget = c.budget;
  const auto base = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(mem.data()));
  env.regions.push_back(abi::Region{base, mem.size(), true, abi::RegionKind::Memory});
  env.packet = mem.data();
  env.packet_len = mem.size();
  return env;
}

Outcome from_run(const abi::RunResult& r, std::vector<std::uint8_t> mem) {
  Outcome o;
  if (r.ok()) {
    o.kind = Outcome::Kind::Ran;
    o.r0 = r.r0;
  } else {
    o.kind = Outcome::Kind::Failed;
    o.text = r.error ? r.error->to_string() : std::string(abi::fault_name(r.fault));
  }
  o.memory = std::move(mem);
  return o;
}

// Loads `prog` with `load` (an engine's create/compile) and runs the case once.
template <class Load>
Outcome run_engine(const Case& c, std::span<const isa::Insn> prog, Load&& load) {
  auto p = load(prog);
  if (!p) return Outcome{Outcome::Kind::Failed, 0, {}, p.error().to_string()};
  std::vector<std::uint8_t> mem = c.mem;
  abi::Env env = make_env(c, mem);
  const std::uint64_t args[2] = {static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(mem.data())),
                                 mem.size()};
  const abi::RunResult r = p->run(env, args);
  return from_run(r, std::move(mem));
}

Outcome run_interp(const Case& c, std::span<const isa::Insn> prog) {
  interp::LoadOptions lo;
  lo.kernel_structure = c.kernel_structure;
  return run_engine(c, prog, [&](auto insns) { return interp::Program::create(insns, lo); });
}

Outcome run_jit(const Case& c, std::span<const isa::Insn> prog) {
  jit::Options jo;
  jo.checked = c.checked;
  jo.budget = c.budget;
  jo.kernel_structure = c.kernel_structure;
  return run_engine(c, prog, [&](auto insns) { return jit::Program::compile(insns, jo); });
}

Outcome run_kernel(const Case& c, std::span<const isa::Insn> prog) {
  if (c.kernel_skip) return Outcome{Outcome::Kind::NotRun, 0, {}, "the kernel cannot run this case: " + c.kernel_reason};
  if (!oracle::available().ok)
    return Outcome{Outcome::Kind::NotRun, 0, {}, "kernel BPF unavailable: " + oracle::available().reason};
  auto r = oracle::run_r0(prog, c.mem);
  if (!r) {
    std::string text = r.error().message;
    if (r.error().code == EOPNOTSUPP) text += " (the file must say '-- kernel' 'skip: why')";
    return Outcome{Outcome::Kind::Failed, 0, {}, text};
  }
  if (!r->loaded)
    return Outcome{Outcome::Kind::Refused, 0, {},
                   fmt::format("errno {} ({})\n{}", r->load_errno, std::strerror(r->load_errno), r->verifier_log)};
  return Outcome{Outcome::Kind::Ran, r->r0, std::move(r->memory_after), {}};
}

constexpr Engine kEngines[] = {
    {"Interp", &run_interp, false},
    {"Kernel", &run_kernel, true},
    {"Jit", &run_jit, false},
};

}  // namespace

std::span<const Engine> engines() { return kEngines; }

}  // namespace userbpf::datatest
