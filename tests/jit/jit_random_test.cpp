// Random-program differential test: thousands of straight-line programs of
// ALU, JMP/JMP32 (forward), stack loads/stores and atomics, generated from a
// fixed seed, run in the interpreter and the JIT; the RunResults (r0 folds
// every register) must be identical.
#include <gtest/gtest.h>

#include <iterator>
#include <map>
#include <random>

#include "jit_test_util.hpp"

namespace userbpf::jit::test {
namespace {

class Gen {
 public:
  explicit Gen(u64 seed) : rng_(seed) {}

  // calls: also helper calls (helper 1), bpf-to-bpf calls to a second
  // function of the same kind, and LD_ABS/LD_IND loads.
  std::vector<Insn> program(std::size_t body, bool calls = false) {
    Prog p;
    std::vector<std::size_t> local_calls;
    function(p, body, calls ? &local_calls : nullptr);
    if (calls) {
      const std::size_t sub = p.size();
      function(p, body / 2 + 5, nullptr, true);
      for (std::size_t c : local_calls) p.v[c].imm = static_cast<s32>(static_cast<std::int64_t>(sub) - static_cast<std::int64_t>(c) - 1);
    }
    return p.v;
  }

  // One function: registers and 16 stack slots initialised, a random body, r0 = fold of r0..r9.
  void function(Prog& p, std::size_t body, std::vector<std::size_t>* local_calls, bool callee = false) {
    for (std::uint8_t r = callee ? 6 : 0; r < 10; ++r) p.lddw(r, value());
    for (std::int16_t k = 1; k <= 16; ++k) p(Op::StDW, 10, 0, static_cast<std::int16_t>(-8 * k), 0);
    const std::size_t start = p.size();
    // body: instructions, then forward jumps are patched to land inside the body or on the fold
    std::vector<std::size_t> jumps;
    while (p.size() - start < body) {
      const unsigned kind = pick(100);
      if (kind < 55) alu(p);
      else if (kind < 75) jumps.push_back(jump(p));
      else if (kind < 88) stack_access(p);
      else if (kind < 92) atomic(p);
      else if (kind < 95 && local_calls != nullptr) {
        p(Op::CallLocal, 0, 0, 0, 0);
        local_calls->push_back(p.size() - 1);
      } else if (kind < 98 && local_calls != nullptr) {
        p(Op::Call, 0, 0, 0, 1);
      } else if (local_calls != nullptr) {
        const auto& v = ops({isa::Form::LdAbs, isa::Form::LdInd});
        const Op op = v[pick(static_cast<unsigned>(v.size()))];
        p(op, 0, reg(), 0, static_cast<s32>(pick(80)) - 8);
      } else {
        alu(p);
      }
    }
    const std::size_t fold = p.size();
    for (std::uint8_t i = 1; i < 10; ++i) p(Op::MulImm, 0, 0, 0, 31)(Op::XorReg, 0, i);
    p.exit();
    for (std::size_t j : jumps) {
      // a target after the jump, up to the fold (never into an lddw tail)
      std::size_t t = j + 1 + pick(static_cast<unsigned>(fold - j));
      while (t < fold && p.v[t].op == Op::LddwTail) ++t;
      const auto delta = static_cast<std::int64_t>(t) - static_cast<std::int64_t>(j) - 1;
      if (p.v[j].op == Op::Gotol) p.v[j].imm = static_cast<s32>(delta);
      else p.v[j].off = static_cast<std::int16_t>(delta);
    }
  }

 private:
  unsigned pick(unsigned n) { return static_cast<unsigned>(rng_() % n); }
  std::uint8_t reg() { return static_cast<std::uint8_t>(pick(10)); }
  u64 value() {
    static const u64 kSpecial[] = {0, 1, 0xffffffffffffffff, 0x8000000000000000, 0x80000000, 0xffffffff, 0x7fffffff, 63, 64, 32};
    switch (pick(4)) {
      case 0: return kSpecial[pick(std::size(kSpecial))];
      case 1: return pick(256);
      case 2: return static_cast<u64>(-static_cast<s64>(pick(1000)));
      default: return rng_();
    }
  }
  s32 imm() { return static_cast<s32>(static_cast<u32>(value())); }

  static const std::vector<Op>& ops(std::initializer_list<isa::Form> forms) {
    static std::map<std::vector<int>, std::vector<Op>> cache;
    std::vector<int> key;
    for (auto f : forms) key.push_back(static_cast<int>(f));
    auto& v = cache[key];
    if (v.empty())
      for (const auto& row : isa::kOps)
        for (auto f : forms)
          if (row.form == f) v.push_back(row.op);
    return v;
  }

  void alu(Prog& p) {
    const auto& v = ops({isa::Form::AluK, isa::Form::AluX, isa::Form::Neg, isa::Form::End, isa::Form::MovSx});
    const Op op = v[pick(static_cast<unsigned>(v.size()))];
    if (op == Op::MovImm && pick(4) == 0) {
      p.lddw(reg(), value());
      return;
    }
    const isa::Form f = isa::info(op).form;
    p(op, reg(), f == isa::Form::AluX || f == isa::Form::MovSx ? reg() : 0, 0, f == isa::Form::AluK ? imm() : 0);
  }
  std::size_t jump(Prog& p) {
    const auto& v = ops({isa::Form::JmpK, isa::Form::JmpX, isa::Form::Ja, isa::Form::Gotol});
    const Op op = v[pick(static_cast<unsigned>(v.size()))];
    const isa::Form f = isa::info(op).form;
    const std::uint8_t d = f == isa::Form::JmpK || f == isa::Form::JmpX ? reg() : 0;
    p(op, d, f == isa::Form::JmpX ? reg() : 0, 0, f == isa::Form::JmpK ? imm() : 0);
    return p.size() - 1;
  }
  std::int16_t slot(unsigned size) {
    // inside the 128 zeroed bytes below r10, aligned to the access size
    return static_cast<std::int16_t>(-128 + static_cast<int>(pick(128 / size) * size));
  }
  void stack_access(Prog& p) {
    const auto& v = ops({isa::Form::Ldx, isa::Form::St, isa::Form::Stx, isa::Form::LoadAcq, isa::Form::StoreRel});
    const Op op = v[pick(static_cast<unsigned>(v.size()))];
    const isa::Form f = isa::info(op).form;
    const unsigned size = isa::access_size(op);
    if (f == isa::Form::Ldx || f == isa::Form::LoadAcq) p(op, reg(), 10, slot(size));
    else if (f == isa::Form::St) p(op, 10, 0, slot(size), imm());
    else p(op, 10, reg(), slot(size));
  }
  void atomic(Prog& p) {
    const auto& v = ops({isa::Form::Atomic});
    const Op op = v[pick(static_cast<unsigned>(v.size()))];
    p(op, 10, reg(), slot(isa::access_size(op)));
  }

  std::mt19937_64 rng_;
};

TEST(JitRandom, StraightLineProgramsMatchTheInterpreter) {
  Gen g(20261122);
  constexpr int kPrograms = 2000;
  int failures = 0;
  for (int i = 0; i < kPrograms && failures < 5; ++i) {
    const auto prog = g.program(20 + static_cast<std::size_t>(i % 7) * 30);
    const Outcome ref = run_engine(Engine::Interp, prog, RunSetup{});
    // every 16th program also in the counted, checked and blinded variants
    const std::vector<Engine> engines = i % 16 == 0 ? std::vector<Engine>{Engine::Jit, Engine::JitCounted,
                                                                         Engine::JitChecked, Engine::JitBlinded, Engine::JitNoBmi2}
                                                   : std::vector<Engine>{Engine::Jit};
    for (Engine e : engines) {
      const Outcome o = run_engine(e, prog, RunSetup{});
      if (!same(o.result, ref.result)) {
        ++failures;
        ADD_FAILURE() << "program " << i << " (" << engine_name(e) << "): " << describe(o.result)
                      << "\ninterp: " << describe(ref.result);
      }
    }
    EXPECT_TRUE(ref.result.ok()) << "program " << i << ": " << describe(ref.result);
  }
}

u64 mix_helper(abi::Env&, u64 a, u64 b, u64 c, u64 d, u64 e) {
  const u64 r = (a * 3) ^ (b >> 1) ^ (c * 7) ^ d ^ (e << 2);
  clobber_caller_saved();
  return r;
}

TEST(JitRandom, ProgramsWithCallsHelpersAndPacketLoadsMatchTheInterpreter) {
  Gen g(42);
  abi::HelperTable helpers;
  helpers.set(1, "mix", mix_helper);
  RunSetup s;
  s.helpers = &helpers;
  s.packet.resize(64);
  for (std::size_t i = 0; i < s.packet.size(); ++i) s.packet[i] = static_cast<u8>(i * 13 + 1);
  int failures = 0, ran_to_exit = 0;
  for (int i = 0; i < 1000 && failures < 5; ++i) {
    const auto prog = g.program(30 + static_cast<std::size_t>(i % 5) * 20, true);
    const Outcome ref = run_engine(Engine::Interp, prog, s);
    if (ref.result.ok()) ++ran_to_exit;
    const std::vector<Engine> engines =
        i % 10 == 0 ? std::vector<Engine>{Engine::Jit, Engine::JitCounted, Engine::JitChecked, Engine::JitDirect}
                    : std::vector<Engine>{Engine::Jit};
    for (Engine e : engines) {
      const Outcome o = run_engine(e, prog, s);
      if (!same(o.result, ref.result)) {
        ++failures;
        ADD_FAILURE() << "program " << i << " (" << engine_name(e) << "): " << describe(o.result)
                      << "\ninterp: " << describe(ref.result);
      }
    }
  }
  EXPECT_GT(ran_to_exit, 500);  // most programs are not cut short (call depth, packet range)
}

}  // namespace
}  // namespace userbpf::jit::test
