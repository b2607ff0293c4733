// JIT: callbacks (abi::Env::call_function from a helper, as bpf_loop and
// for_each_map_elem use it). Every run is compared with the interpreter and
// across the JIT variants (plain, counted, checked, blinded, direct helpers).
#include <gtest/gtest.h>

#include "jit_test_util.hpp"

namespace userbpf::jit::test {
namespace {

constexpr s32 kLoop = 181;    // loop(nr, fn, ctx, flags): bpf_loop (the JIT inlines it in direct variants)
constexpr s32 kExit = 2;      // exit(v): ends the run with r0 = v
constexpr s32 kTwice = 182;   // twice(fn, ctx): calls fn(ctx) twice, returns the sum

u64 exit_helper(abi::Env& env, u64 a, u64, u64, u64, u64) {
  env.request_exit(a);
  return 0;
}
u64 twice_helper(abi::Env& env, u64 fn, u64 ctx, u64, u64, u64) {
  const u64 a = env.call_function(fn, ctx, 1, 0, 0, 0);
  if (env.callback_aborted()) return 0;
  const u64 b = env.call_function(fn, ctx, 2, 0, 0, 0);
  return a + b;
}

const abi::HelperTable& helpers() {
  static const abi::HelperTable t = [] {
    abi::HelperTable h;
    h.set(kExit, "exit", exit_helper);
    h.set(kLoop, "loop", bpf_loop_helper);
    h.set(kTwice, "twice", twice_helper);
    return h;
  }();
  return t;
}

RunSetup setup() {
  RunSetup s;
  s.helpers = &helpers();
  return s;
}

// Program layout: the main part first, then the callback; the lddw
// target is the callback's index, patched after the main part is emitted.
struct Layout {
  Prog p;
  std::vector<std::size_t> func_lddws;  // indexes of lddw func instructions to patch
  void func(u8 dst) {
    func_lddws.push_back(p.size());
    p.lddw(dst, 0, Op::LddwFunc);
  }
  // All recorded lddw funcs point at the current end (the callback's start).
  void callback_here() {
    for (std::size_t at : func_lddws)
      p.v[at].imm = static_cast<s32>(static_cast<std::int64_t>(p.size()) - static_cast<std::int64_t>(at) - 1);
    func_lddws.clear();
  }
};

// main: [r10-8] = 0; r6..r9 = 6..9; r0 = loop(nr, cb, r10-8, 0);
//       r0 = r0 * 1000 + [r10-8] + r6 + r7 + r8 + r9; exit
Layout loop_main(s32 nr) {
  Layout l;
  l.p(Op::StDW, 10, 0, -8, 0).mov(6, 6).mov(7, 7).mov(8, 8).mov(9, 9).mov(1, nr);
  l.func(2);
  l.p(Op::MovReg, 3, 10)(Op::AddImm, 3, 0, 0, -8).mov(4, 0)(Op::Call, 0, 0, 0, kLoop);
  l.p(Op::MulImm, 0, 0, 0, 1000)(Op::LdxDW, 1, 10, -8)(Op::AddReg, 0, 1);
  l.p(Op::AddReg, 0, 6)(Op::AddReg, 0, 7)(Op::AddReg, 0, 8)(Op::AddReg, 0, 9).exit();
  l.callback_here();
  return l;
}

TEST(JitCallback, LoopSumsThroughTheCallersStack) {
  // cb(i, ctx): *ctx += i; r6 = 100 (callee-saved of the caller survive); return 0
  Layout l = loop_main(10);
  l.p(Op::LdxDW, 0, 2, 0)(Op::AddReg, 0, 1)(Op::StxDW, 2, 0, 0).mov(6, 100).mov(0, 0).exit();
  for (bool checked : {false, true}) {
    RunSetup s = setup();
    s.checked = checked;
    const Outcome o = run_all(l.p.v, s);
    ASSERT_TRUE(o.result.ok()) << describe(o.result);
    EXPECT_EQ(o.result.r0, 10u * 1000 + 45 + 6 + 7 + 8 + 9);
  }
}

TEST(JitCallback, CalleeStartsWithZeroedCalleeSavedAndR0) {
  // cb: *ctx += r0 + r6 + r7 + r8 + r9 + 1 (all zero in a fresh callee); return 0
  Layout l = loop_main(3);
  l.p(Op::MovReg, 3, 0)(Op::AddReg, 3, 6)(Op::AddReg, 3, 7)(Op::AddReg, 3, 8)(Op::AddReg, 3, 9)(Op::AddImm, 3, 0, 0, 1);
  l.p(Op::LdxDW, 0, 2, 0)(Op::AddReg, 0, 3)(Op::StxDW, 2, 0, 0).mov(0, 0).exit();
  const Outcome o = run_all(l.p.v, setup());
  ASSERT_TRUE(o.result.ok()) << describe(o.result);
  EXPECT_EQ(o.result.r0, 3u * 1000 + 3 + 30);
}

TEST(JitCallback, EarlyBreak) {
  // cb: *ctx += 1; return i == 3 ? 1 : 0
  Layout l = loop_main(100);
  l.p(Op::LdxDW, 0, 2, 0)(Op::AddImm, 0, 0, 0, 1)(Op::StxDW, 2, 0, 0).mov(0, 0);
  l.p(Op::JneImm, 1, 0, 1, 3).mov(0, 1).exit();
  const Outcome o = run_all(l.p.v, setup());
  ASSERT_TRUE(o.result.ok()) << describe(o.result);
  EXPECT_EQ(o.result.r0, 4u * 1000 + 4 + 30);
}

TEST(JitCallback, FaultInCalleeEndsTheRunWithTheCalleesResult) {
  // cb: r0 = 55; call unknown helper 99 (fault at the callee's pc, r0 = 55)
  Layout l = loop_main(5);
  const std::size_t cb = l.p.size();
  l.p.mov(0, 55)(Op::Call, 0, 0, 0, 99).exit();
  const Outcome o = run_all(l.p.v, setup());
  ASSERT_EQ(o.result.fault, abi::Fault::UnknownHelper) << describe(o.result);
  EXPECT_EQ(o.result.error->insn, cb + 1);
  EXPECT_EQ(o.result.r0, 55u);
}

TEST(JitCallback, ExitHelperInCalleeEndsTheRun) {
  Layout l = loop_main(5);
  l.p.mov(1, 4242)(Op::Call, 0, 0, 0, kExit).mov(0, 0).exit();
  const Outcome o = run_all(l.p.v, setup());
  ASSERT_TRUE(o.result.ok()) << describe(o.result);
  EXPECT_EQ(o.result.r0, 4242u);
}

TEST(JitCallback, BudgetRunsOutInTheCallee) {
  Layout l = loop_main(1000);
  l.p(Op::LdxDW, 0, 2, 0)(Op::AddReg, 0, 1)(Op::StxDW, 2, 0, 0).mov(0, 0).exit();
  RunSetup s = setup();
  s.budget = 200;
  const Outcome o = run_all(l.p.v, s);
  ASSERT_EQ(o.result.fault, abi::Fault::Budget) << describe(o.result);
  // The count continues through callbacks: interpreter and JIT agree on it.
  for (u64 budget : {0, 57, 200}) {
    abi::Env e1, e2;
    e1.helpers = e2.helpers = &helpers();
    e1.options.count_insns = e2.options.count_insns = true;
    e1.options.budget = e2.options.budget = budget;
    auto ip = interp::Program::create(l.p.v);
    auto jp = Program::compile(l.p.v);
    ASSERT_TRUE(ip && jp);
    const abi::RunResult a = ip->run(e1), b = jp->run(e2);
    EXPECT_TRUE(same(a, b)) << describe(a) << " vs " << describe(b);
    EXPECT_EQ(a.insns, b.insns) << "budget " << budget;
    EXPECT_GT(b.insns, 0u);
  }
}

TEST(JitCallback, BadFunctionValue) {
  for (u64 bad : {u64{12345}, abi::func_addr(3), abi::func_addr(100000)}) {
    Layout l = loop_main(5);
    l.p.mov(0, 0).exit();
    Prog value;
    value.lddw(2, bad);  // r2 = bad instead of the callback's address
    l.p.v[6] = value.v[0];
    l.p.v[7] = value.v[1];
    const Outcome o = run_all(l.p.v, setup());
    ASSERT_EQ(o.result.fault, abi::Fault::BadCallTarget) << describe(o.result);
    EXPECT_EQ(o.result.error->message, abi::bad_call_target(11, bad).message);
    EXPECT_EQ(o.result.error->insn, 11u);
    EXPECT_EQ(o.result.r0, 0u);
  }
}

TEST(JitCallback, DepthLimitCountsCallbackFrames) {
  // cb(i, ctx): *ctx += 1; loop(1, cb, ctx, 0) -- recursion until 8 frames are in use
  Layout l = loop_main(1);
  const std::size_t at = append_recursive_loop_callback(l.p, 1);
  for (bool checked : {false, true}) {
    RunSetup s = setup();
    s.checked = checked;
    const Outcome o = run_all(l.p.v, s);
    ASSERT_EQ(o.result.fault, abi::Fault::CallDepth) << describe(o.result);
    EXPECT_EQ(o.result.error->insn, at + 3);  // the helper call in the deepest callee
  }
}

TEST(JitCallback, CallbackFromALocalFunctionAndTwoCallsPerHelper) {
  // main: r1 = 5; call f; exit.  f(r1): r2 = r1; r1 = cb; r6 = r2; twice(cb, ...) ; r0 += r6; exit
  // cb(ctx, k): r0 = ctx * 10 + k; exit
  Prog p;
  p.mov(1, 5)(Op::CallLocal, 0, 0, 0, 1).exit();  // 0..2, f at 3
  p(Op::MovReg, 6, 1)(Op::MovReg, 2, 1);          // 3, 4
  const std::size_t at = p.size();
  p.lddw(1, 0, Op::LddwFunc);                       // 5, 6
  p(Op::Call, 0, 0, 0, kTwice)(Op::AddReg, 0, 6).exit();  // 7..9
  const std::size_t cb = p.size();
  p.v[at].imm = static_cast<s32>(static_cast<std::int64_t>(cb) - static_cast<std::int64_t>(at) - 1);
  p(Op::MovReg, 0, 1)(Op::MulImm, 0, 0, 0, 10)(Op::AddReg, 0, 2).exit();
  const Outcome o = run_all(p.v, setup());
  ASSERT_TRUE(o.result.ok()) << describe(o.result);
  EXPECT_EQ(o.result.r0, 51u + 52u + 5u);
}

TEST(JitCallback, NestedRunOnTheSameEnvRestoresTheCallback) {
  Layout l = loop_main(2);
  l.p.mov(0, 0).exit();
  auto jp = Program::compile(l.p.v);
  ASSERT_TRUE(jp);
  abi::Env env;
  env.helpers = &helpers();
  const abi::RunResult r = jp->run(env);
  EXPECT_TRUE(r.ok()) << describe(r);
  EXPECT_EQ(env.callback, nullptr);
  EXPECT_EQ(env.engine, nullptr);
}

}  // namespace
}  // namespace userbpf::jit::test

namespace userbpf::jit::test {
namespace {

// ---------------------------------------------------------------- fused pairs, proven_safe
TEST(JitFusion, PairsMatchTheInterpreter) {
  const u64 big = 0xfedcba9876543210ULL;
  std::vector<std::vector<Insn>> progs;
  {  // r = r << 32 >> 32 (zero-extension), also with the second one a jump target
    Prog p;
    p.lddw(1, big)(Op::LshImm, 1, 0, 0, 32)(Op::RshImm, 1, 0, 0, 32)(Op::MovReg, 0, 1).exit();
    progs.push_back(p.v);
    Prog q;
    q.lddw(1, big)(Op::JeqImm, 1, 0, 1, 0)(Op::LshImm, 1, 0, 0, 32)(Op::RshImm, 1, 0, 0, 32)(Op::MovReg, 0, 1).exit();
    progs.push_back(q.v);
    Prog j;  // a jump lands on the rsh: it must run on its own
    j.lddw(1, big).mov(2, 1)(Op::JeqImm, 2, 0, 1, 1)(Op::LshImm, 1, 0, 0, 32)(Op::RshImm, 1, 0, 0, 32);
    j(Op::MovReg, 0, 1).exit();
    progs.push_back(j.v);
  }
  for (s32 imm : {0, 5, -7, 0x7fffffff, static_cast<s32>(0x80000000)}) {  // rD = rA; rD += imm
    Prog p;
    p.lddw(2, big)(Op::MovReg, 3, 2)(Op::AddImm, 3, 0, 0, imm)(Op::MovReg, 0, 3).exit();
    progs.push_back(p.v);
  }
  {  // rD = rA; rD += rB, and the rB == rD case (not fused)
    Prog p;
    p.lddw(2, big).mov(4, -3)(Op::MovReg, 3, 2)(Op::AddReg, 3, 4)(Op::MovReg, 0, 3).exit();
    progs.push_back(p.v);
    Prog q;
    q.lddw(2, big)(Op::MovReg, 3, 2)(Op::AddReg, 3, 3)(Op::MovReg, 0, 3).exit();
    progs.push_back(q.v);
    Prog r;  // r10 as the first operand
    r(Op::MovReg, 3, 10)(Op::AddImm, 3, 0, 0, -8)(Op::StDW, 3, 0, 0, 77)(Op::LdxDW, 0, 10, -8).exit();
    progs.push_back(r.v);
  }
  for (const auto& v : progs) {
    const Outcome o = run_all(v, RunSetup{});
    EXPECT_TRUE(o.result.ok()) << describe(o.result);
  }
}

TEST(JitChecked, ProvenSafeInstructionsAreNotChecked) {
  // A store to memory outside every region: checked mode catches it, unless
  // the instruction is marked proven safe (the verifier's word is taken).
  std::vector<u8> outside(64, 0);
  Prog p;
  p.lddw(1, reinterpret_cast<u64>(outside.data()))(Op::StDW, 1, 0, 8, 1234)(Op::LdxDW, 0, 1, 8).exit();
  Options o;
  o.checked = true;
  {
    const Program prog = compile(p.v, o);
    abi::Env env;
    const abi::RunResult r = prog.run(env);
    ASSERT_EQ(r.fault, abi::Fault::MemoryViolation) << describe(r);
    EXPECT_EQ(r.error->insn, 2u);
  }
  o.proven_safe = {false, false, true};  // the store only: the load is still checked
  {
    const Program prog = compile(p.v, o);
    abi::Env env;
    const abi::RunResult r = prog.run(env);
    ASSERT_EQ(r.fault, abi::Fault::MemoryViolation) << describe(r);
    EXPECT_EQ(r.error->insn, 3u);
    EXPECT_EQ(outside[8], 1234 & 0xff);
  }
  o.proven_safe = {false, false, true, true};
  {
    const Program prog = compile(p.v, o);
    abi::Env env;
    const abi::RunResult r = prog.run(env);
    EXPECT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(r.r0, 1234u);
  }
}

}  // namespace
}  // namespace userbpf::jit::test
