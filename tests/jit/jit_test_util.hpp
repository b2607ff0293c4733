// Helpers shared by the JIT tests: a program builder on isa::make and a runner
// that executes one program in every JIT variant (plain, counted, checked,
// blinded, run-time helper lookup) and in the interpreter, and checks that
// all of them agree on the RunResult and on memory.
#pragma once

#include "isa/builder.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "interp/interp.hpp"
#include "jit/jit.hpp"

namespace userbpf::jit::test {

using isa::Insn;
using isa::Op;
using u8 = std::uint8_t;
using u32 = std::uint32_t;
using u64 = std::uint64_t;
using s32 = std::int32_t;
using s64 = std::int64_t;

// Builds a program instruction by instruction; lddw emits its tail slot.
using Prog = isa::Builder;

inline Program compile(const std::vector<Insn>& insns, const Options& o = {}) {
  auto p = Program::compile(insns, o);
  if (!p) {
    ADD_FAILURE() << "jit compile failed: " << p.error().to_string();
    Prog fallback;
    fallback.mov(0, 0).exit();
    return std::move(Program::compile(fallback.v).value());
  }
  return std::move(p).value();
}

inline std::string describe(const abi::RunResult& r) {
  std::string s = "r0=" + std::to_string(r.r0) + " fault=" + std::string(abi::fault_name(r.fault));
  if (r.error) s += " error='" + r.error->to_string() + "' errno=" + std::to_string(r.error->code);
  return s;
}

// RunResult equality plus the parts operator== leaves out: the error's
// instruction index and errno.
// With `addresses_differ` (runs whose r0 and fault address are stack
// addresses: each engine has its stack elsewhere) r0 and the hex address in
// the message are not compared.
inline std::string strip_hex(std::string m) {
  const auto at = m.find(" at 0x");
  if (at == std::string::npos) return m;
  auto end = m.find(':', at);
  return m.erase(at, end == std::string::npos ? std::string::npos : end - at);
}
inline bool same(const abi::RunResult& a, const abi::RunResult& b, bool addresses_differ = false) {
  if (addresses_differ) {
    if (a.fault != b.fault || a.error.has_value() != b.error.has_value()) return false;
    if (a.error && strip_hex(a.error->message) != strip_hex(b.error->message)) return false;
  } else if (!(a == b)) {
    return false;
  }
  if (a.error && b.error) return a.error->insn == b.error->insn && a.error->code == b.error->code;
  return true;
}

// Zeroes the SysV caller-saved registers, as a real (bigger) helper may
// leave them: test helpers call it so that a JIT that forgets to preserve
// BPF r1-r5 around a helper call is caught.
inline void clobber_caller_saved() {
  asm volatile(
      "xor %%esi, %%esi\n\txor %%edx, %%edx\n\txor %%ecx, %%ecx\n\t"
      "xor %%r8d, %%r8d\n\txor %%r9d, %%r9d\n\txor %%r10d, %%r10d\n\txor %%r11d, %%r11d\n\txor %%edi, %%edi" ::
          : "rsi", "rdx", "rcx", "r8", "r9", "r10", "r11", "rdi");
}

// bpf_loop's semantics exactly (helpers' callbacks.cpp), for tables that
// register it as "loop" under BPF_FUNC_loop (181): jit::Options::inline_loops
// relies on them, and the direct-helper variants inline it.
inline u64 bpf_loop_helper(abi::Env& env, u64 nr, u64 fn, u64 ctx, u64 flags, u64) {
  const auto n = static_cast<std::uint32_t>(nr);
  if (flags != 0) return static_cast<u64>(-22);     // -EINVAL
  if (n > (1u << 23)) return static_cast<u64>(-7);  // -E2BIG
  u64 i = 0;
  for (; i < n; ++i) {
    const u64 r = env.call_function(fn, i, ctx, 0, 0, 0);
    if (env.callback_aborted()) return 0;
    if (r != 0) {
      ++i;
      break;
    }
  }
  clobber_caller_saved();
  return i;
}

// Appends a callback cb(i, ctx): *ctx += 1; bpf_loop(nr, cb, ctx, 0) (BPF_FUNC_loop
// = 181), recursing until the 8-frame limit faults. Returns the index of its lddw
// func (the helper call is 3 instructions later).
inline std::size_t append_recursive_loop_callback(Prog& p, std::int32_t nr) {
  const std::size_t cb = p.size();
  p(Op::LdxDW, 0, 2, 0)(Op::AddImm, 0, 0, 0, 1)(Op::StxDW, 2, 0, 0)(Op::MovReg, 3, 2).mov(1, nr);
  const std::size_t at = p.size();
  p.lddw(2, 0, Op::LddwFunc);
  p.v[at].imm = static_cast<std::int32_t>(static_cast<std::int64_t>(cb) - static_cast<std::int64_t>(at) - 1);
  p.mov(4, 0)(Op::Call, 0, 0, 0, 181).mov(0, 0).exit();
  return at;
}

// One run's setup: arguments, memory the program may use, helpers, packet.
struct RunSetup {
  std::vector<u64> args;
  std::vector<u8> memory;                  // copied fresh for every engine; r1 = its address if mem_arg
  bool mem_arg = false;
  bool mem_writable = true;
  const abi::HelperTable* helpers = nullptr;
  std::vector<u8> packet;
  u64 budget = 0;
  bool checked = false;
  bool addresses_differ = false;  // see same()
  bool inline_loops = true;       // jit::Options::inline_loops
};

struct Outcome {
  abi::RunResult result;
  std::vector<u8> memory;
};

enum class Engine { Interp, Jit, JitCounted, JitChecked, JitBlinded, JitDirect, JitNoBmi2 };
inline const char* engine_name(Engine e) {
  switch (e) {
    case Engine::Interp: return "interp";
    case Engine::Jit: return "jit";
    case Engine::JitCounted: return "jit-counted";
    case Engine::JitChecked: return "jit-checked";
    case Engine::JitBlinded: return "jit-blinded";
    case Engine::JitDirect: return "jit-direct-helpers";
    case Engine::JitNoBmi2: return "jit-no-bmi2";
  }
  return "?";
}

inline Outcome run_engine(Engine e, const std::vector<Insn>& insns, const RunSetup& s, bool kernel_structure = true) {
  Outcome out;
  out.memory = s.memory;
  // The same buffer address for every engine (addresses show in r0 and in
  // fault messages), never empty.
  static thread_local std::vector<u8> mem = [] {
    std::vector<u8> m;
    m.reserve(std::size_t{1} << 20);
    return m;
  }();
  if (s.memory.size() + 8 > mem.capacity()) ADD_FAILURE() << "test memory too large";
  mem.assign(s.memory.begin(), s.memory.end());
  mem.resize(mem.size() + 8);
  abi::Env env;
  env.helpers = s.helpers;
  env.options.budget = s.budget;
  env.options.checked = s.checked || e == Engine::JitChecked;
  if (!s.packet.empty()) {
    env.packet = s.packet.data();
    env.packet_len = s.packet.size();
  }
  if (!s.memory.empty())
    env.regions.push_back(abi::Region{reinterpret_cast<u64>(mem.data()), s.memory.size(), s.mem_writable,
                                      abi::RegionKind::Memory});
  std::vector<u64> args = s.args;
  if (s.mem_arg) {
    if (args.empty()) args.push_back(0);
    args[0] = reinterpret_cast<u64>(mem.data());
  }
  if (e == Engine::Interp) {
    interp::LoadOptions lo;
    lo.kernel_structure = kernel_structure;
    auto p = interp::Program::create(insns, lo);
    if (!p) {
      ADD_FAILURE() << "interp create failed: " << p.error().to_string();
      return out;
    }
    out.result = p->run(env, args);
  } else {
    Options o;
    o.kernel_structure = kernel_structure;
    o.count_insns = e == Engine::JitCounted;
    o.checked = e == Engine::JitChecked;
    o.blinding = e == Engine::JitBlinded;
    if (e == Engine::JitDirect) o.helpers = s.helpers;
    o.bmi2 = e != Engine::JitNoBmi2;
    o.inline_loops = s.inline_loops;
    auto p = Program::compile(insns, o);
    if (!p) {
      ADD_FAILURE() << "jit compile failed: " << p.error().to_string();
      return out;
    }
    out.result = p->run(env, args);
  }
  out.memory.assign(mem.begin(), mem.begin() + static_cast<std::ptrdiff_t>(s.memory.size()));
  return out;
}

// Runs `insns` in the JIT and checks it against the interpreter; with
// all_variants also the counted, checked, blinded and direct-helper JITs.
// Returns the plain JIT's outcome.
inline Outcome run_all(const std::vector<Insn>& insns, const RunSetup& s, bool all_variants = true,
                       bool kernel_structure = true) {
  const Outcome ref = run_engine(Engine::Interp, insns, s, kernel_structure);
  const Outcome jit = run_engine(Engine::Jit, insns, s, kernel_structure);
  EXPECT_TRUE(same(jit.result, ref.result, s.addresses_differ)) << "jit: " << describe(jit.result) << "\ninterp: " << describe(ref.result);
  EXPECT_EQ(jit.memory, ref.memory) << "memory differs (jit vs interp)";
  if (all_variants) {
    for (Engine e : {Engine::JitCounted, Engine::JitChecked, Engine::JitBlinded, Engine::JitDirect, Engine::JitNoBmi2}) {
      const Outcome o = run_engine(e, insns, s, kernel_structure);
      EXPECT_TRUE(same(o.result, jit.result, s.addresses_differ)) << engine_name(e) << ": " << describe(o.result)
                                          << "\njit: " << describe(jit.result);
      EXPECT_EQ(o.memory, jit.memory) << "memory differs (" << engine_name(e) << " vs jit)";
    }
  }
  return jit;
}

}  // namespace userbpf::jit::test
