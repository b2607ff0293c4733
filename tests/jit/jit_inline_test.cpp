// JIT: inlined bpf-to-bpf calls (Options::inline_calls, CallFacts::inline_end).
// Random call-structured programs (functions with branches, early exits,
// loops, r6-r9 writes, their own stack frame, pointers into the caller's
// frame, nested calls) give the interpreter's result and memory with
// inlining on and off; listings show which calls were inlined.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "jit/analysis.hpp"
#include "jit_test_util.hpp"

namespace userbpf::jit::test {
namespace {

std::int16_t rel(std::size_t from, std::size_t to) {
  return static_cast<std::int16_t>(static_cast<std::int64_t>(to) - static_cast<std::int64_t>(from) - 1);
}

// Main (function 0) and `nf` - 1 functions; function i calls only functions
// after it (acyclic, at most nf frames). Every function starts by writing the
// stack slots it may read; r1 of a call is sometimes a pointer into the
// caller's frame, read by the callee. `body` instructions per function.
std::vector<Insn> random_calls(std::mt19937& rng, int nf, int body) {
  const auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  Prog p;
  struct Fixup {
    std::size_t at;
    int callee;
  };
  std::vector<Fixup> calls;
  std::vector<std::size_t> entry(static_cast<std::size_t>(nf));
  for (int f = 0; f < nf; ++f) {
    entry[static_cast<std::size_t>(f)] = p.size();
    if (f == 0)
      for (int r = 0; r <= 9; ++r) p.mov(r, static_cast<s32>(rng() & 0xffff));
    for (int s = 1; s <= 4; ++s) p(Op::StxDW, 10, pick(10), static_cast<std::int16_t>(-8 * s));
    for (int k = 0; k < body; ++k) {
      const int d = pick(10), s = pick(10);
      switch (pick(12)) {
        case 0: p(Op::AddReg, d, s); break;
        case 1: p(Op::MulImm, d, 0, 0, static_cast<s32>(rng() % 1000) + 1); break;
        case 2: p(Op::XorReg, d, s); break;
        case 3: p(Op::RshImm, d, 0, 0, pick(63)); break;
        case 4: p(Op::Add32Imm, d, 0, 0, static_cast<s32>(rng() & 0xfff)); break;
        case 5: p(Op::StxDW, 10, s, static_cast<std::int16_t>(-8 * (1 + pick(4)))); break;
        case 6: p(Op::LdxDW, d, 10, static_cast<std::int16_t>(-8 * (1 + pick(4)))); break;
        case 7: {  // forward branch over 1-2 instructions
          p(Op::JgtImm, d, 0, static_cast<std::int16_t>(1 + pick(2)), static_cast<s32>(rng() & 0xffff));
          p(Op::AddImm, s, 0, 0, 3);
          p(Op::XorImm, d, 0, 0, 5);
          break;
        }
        case 8:  // an early exit
          if (f != 0) p(Op::JeqImm, d, 0, 1, static_cast<s32>(rng() & 3))(Op::Exit);
          break;
        case 9: {  // a short loop: r5 counts down (the body does not write r5)
          p(Op::MovImm, 5, 0, 0, 1 + pick(4));
          const std::size_t head = p.size();
          p(Op::AddReg, pick(5), 6 + pick(4));
          p(Op::SubImm, 5, 0, 0, 1);
          p(Op::JneImm, 5, 0, rel(p.size(), head), 0);
          break;
        }
        case 10:  // a call of a later function, maybe with r1 = &slot
          if (f + 1 < nf) {
            if (pick(2) == 0) p(Op::MovReg, 1, 10)(Op::AddImm, 1, 0, 0, -8);
            p(Op::CallLocal);
            calls.push_back({p.size() - 1, f + 1 + pick(nf - f - 1)});
          }
          break;
        default:
          p(Op::MovReg, d, s);
          break;
      }
    }
    // r0 sums everything: r6-r9 that the calls must preserve, the frame.
    for (int r = 1; r <= 9; ++r) p(Op::AddReg, 0, r);
    p(Op::LdxDW, 2, 10, -16)(Op::AddReg, 0, 2);
    p.exit();
  }
  for (const Fixup& c : calls) p.v[c.at].imm = rel(c.at, entry[static_cast<std::size_t>(c.callee)]);
  return p.v;
}

// r1 = r10 - 8 before some calls: a stack address, which differs between
// engines (each has its stack elsewhere) and flows into r0: r0 is compared
// by RandomCallProgramsGiveTheSameR0 (no pointers), faults and memory here.
TEST(JitInline, RandomCallProgramsMatchTheInterpreterInlinedOrNot) {
  std::mt19937 rng(20261123);
  int inlined = 0;
  for (int i = 0; i < 400; ++i) {
    const int nf = 2 + i % 4;
    const std::vector<Insn> prog = random_calls(rng, nf, 4 + i % 9);
    SCOPED_TRACE("program " + std::to_string(i));
    RunSetup s;
    s.addresses_differ = std::any_of(prog.begin(), prog.end(),
                                     [](const Insn& in) { return in.op == Op::MovReg && in.src == isa::kFrameReg; });
    const Outcome ref = run_engine(Engine::Interp, prog, s);
    const Outcome jit = run_all(prog, s, i % 8 == 0);
    Options off;
    off.inline_calls = false;
    auto p = Program::compile(prog, off);
    ASSERT_TRUE(p) << p.error().to_string();
    abi::Env env;
    const abi::RunResult r = p->run(env, {});
    EXPECT_TRUE(same(r, ref.result, s.addresses_differ)) << "not inlined: " << describe(r) << "\ninterp: " << describe(ref.result);
    EXPECT_EQ(r.fault, jit.result.fault);
    if (compile(prog).code_size() != p->code_size()) ++inlined;
  }
  EXPECT_GT(inlined, 100);  // the generator does exercise inlining
}

// The same programs without pointers in r0: exact r0 equality.
TEST(JitInline, RandomCallProgramsGiveTheSameR0) {
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    std::vector<Insn> prog = random_calls(rng, 2 + i % 4, 6);
    // drop r1 = r10 - 8 (pointers): r1 = 8 instead
    for (Insn& in : prog)
      if (in.op == Op::MovReg && in.src == isa::kFrameReg) in = isa::make(Op::MovImm, in.dst, 0, 0, 8);
    SCOPED_TRACE("program " + std::to_string(i));
    const Outcome ref = run_engine(Engine::Interp, prog, RunSetup{});
    const Outcome jit = run_engine(Engine::Jit, prog, RunSetup{});
    ASSERT_TRUE(ref.result.ok()) << describe(ref.result);
    EXPECT_EQ(jit.result.r0, ref.result.r0);
  }
}

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

// f(x) = x * 3 + 1, g(x) = f(x) ^ f(x + 1): both inlined into main's loop.
std::vector<Insn> nested() {
  Prog p;
  p.mov(6, 0).mov(7, 0);                                                        // 0, 1
  p(Op::MovReg, 1, 6)(Op::CallLocal, 0, 0, 0, 5);                               // 2, 3 -> g (9)
  p(Op::AddReg, 7, 0)(Op::AddImm, 6, 0, 0, 1)(Op::JltImm, 6, 0, -5, 100);       // 4..6
  p(Op::MovReg, 0, 7).exit();                                                   // 7, 8
  p(Op::MovReg, 6, 1)(Op::CallLocal, 0, 0, 0, 6)(Op::MovReg, 8, 0);             // 9..11 -> f (17)
  p(Op::MovReg, 1, 6)(Op::AddImm, 1, 0, 0, 1)(Op::CallLocal, 0, 0, 0, 2);       // 12..14 -> f (17)
  p(Op::XorReg, 0, 8).exit();                                                   // 15, 16
  p(Op::MovReg, 0, 1)(Op::MulImm, 0, 0, 0, 3)(Op::AddImm, 0, 0, 0, 1).exit();  // 17..20
  return p.v;
}

TEST(JitInline, SmallLeafCallsAreInlined) {
  const std::vector<Insn> prog = nested();
  const Outcome o = run_all(prog, RunSetup{});
  u64 want = 0;
  for (u64 i = 0; i < 100; ++i) want += (i * 3 + 1) ^ ((i + 1) * 3 + 1);
  EXPECT_EQ(o.result.r0, want);
  const std::string text = compile(prog).disassemble();
  // main's block has no call: the `call`s left are those of g's own copy
  // (none: f is inlined there too) and the stubs'.
  const std::string main_part = text.substr(0, text.find("; 9:"));
  EXPECT_EQ(count(main_part, "call"), 0u) << main_part;
  EXPECT_GE(count(main_part, "imul"), 2u) << main_part;  // f's body, twice
  Options off;
  off.inline_calls = false;
  const std::string plain = compile(prog, off).disassemble();
  EXPECT_EQ(count(plain.substr(0, plain.find("; 9:")), "call"), 1u);
}

TEST(JitInline, BigRecursiveOrHelperCallingFunctionsAreCalled) {
  // A callee of kInlineMaxInsns + 1 instructions is called.
  Prog big;
  big.mov(1, 1)(Op::CallLocal, 0, 0, 0, 1).exit();
  for (std::size_t k = 0; k < detail::kInlineMaxInsns; ++k) big(Op::AddImm, 1, 0, 0, 1);
  big(Op::MovReg, 0, 1).exit();
  EXPECT_EQ(run_all(big.v, RunSetup{}).result.r0, 1 + detail::kInlineMaxInsns);
  const std::string text = compile(big.v).disassemble();
  EXPECT_EQ(count(text.substr(0, text.find("; 3:")), "call"), 1u) << text;
  // Exactly at the limit it is inlined.
  Prog fits;
  fits.mov(1, 1)(Op::CallLocal, 0, 0, 0, 1).exit();
  for (std::size_t k = 0; k + 2 < detail::kInlineMaxInsns; ++k) fits(Op::AddImm, 1, 0, 0, 1);
  fits(Op::MovReg, 0, 1).exit();
  EXPECT_EQ(run_all(fits.v, RunSetup{}).result.r0, detail::kInlineMaxInsns - 1);
  const std::string t2 = compile(fits.v).disassemble();
  EXPECT_EQ(count(t2.substr(0, t2.find("; 3:")), "call"), 0u) << t2;
}

TEST(JitInline, CalleeFrameAndCallerPointerWhenInlined) {
  // f stores into its own frame and through r1 into the caller's slot, and
  // returns r10 (its frame pointer) minus the caller's: 512 either way.
  Prog p;
  p(Op::StDW, 10, 0, -8, 5)(Op::MovReg, 1, 10)(Op::AddImm, 1, 0, 0, -8);  // 0..2
  p(Op::MovReg, 6, 10)(Op::CallLocal, 0, 0, 0, 4);                       // 3, 4 -> 9
  p(Op::SubReg, 6, 0)(Op::LdxDW, 0, 10, -8)(Op::AddReg, 0, 6).exit();    // 5..8
  p(Op::StDW, 10, 0, -8, 77)(Op::LdxDW, 2, 10, -8)(Op::StxDW, 1, 2, 0);  // 9..11
  p(Op::MovReg, 0, 10).exit();                                           // 12, 13
  const Outcome o = run_all(p.v, RunSetup{});
  ASSERT_TRUE(o.result.ok()) << describe(o.result);
  EXPECT_EQ(o.result.r0, 77u + 512u);
  const std::string text = compile(p.v).disassemble();
  EXPECT_EQ(count(text.substr(0, text.find("; 5:")), "call"), 0u) << text;
}

}  // namespace
}  // namespace userbpf::jit::test
