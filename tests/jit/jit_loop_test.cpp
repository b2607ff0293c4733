// JIT: inlined bpf_loop (jit::Options::inline_loops, Emitter::emit_inline_loop).
// A `call bpf_loop` whose r2 is a `lddw func` of the same block is a native
// loop in direct-helper variants; every program here runs in the interpreter
// (which calls the helper) and in every JIT variant, with inlining on and
// off: results, memory and faults must be equal.
#include <gtest/gtest.h>

#include "jit_test_util.hpp"

namespace userbpf::jit::test {
namespace {

constexpr s32 kLoop = 181;   // BPF_FUNC_loop
constexpr s32 kExit = 2;     // exit(v): ends the run with r0 = v
constexpr s32 kAlign = 7;    // rsp misalignment seen by a C helper (0 when the ABI holds)
constexpr s32 kUnknown = 99;

u64 exit_helper(abi::Env& env, u64 v, u64, u64, u64, u64) {
  env.request_exit(v);
  return 0;
}
__attribute__((noinline)) u64 align_helper(abi::Env&, u64, u64, u64, u64, u64) {
  // The frame address is 16-aligned iff rsp was 8 mod 16 at the call.
  return reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0)) & 15u;
}

abi::HelperTable make_table(const char* loop_name) {
  abi::HelperTable h;
  h.set(kExit, "exit", exit_helper);
  h.set(kAlign, "align", align_helper);
  h.set(kLoop, loop_name, bpf_loop_helper);
  return h;
}
const abi::HelperTable& helpers() {
  static const abi::HelperTable t = make_table("loop");
  return t;
}

// main: [r10-8] = 0; r6..r9 = 6..9; r1 = nr; r2 = cb; r3 = r10 - 8; r4 = flags;
//       r5 = 55; r0 = bpf_loop(...);
//       r0 = r0 * 1000 + r1 + r2 + (r3 - r10) + r4 + r5 + r6 + r7 + r8 + r9 + [r10-8] * 1000003
// (r1-r5 and r6-r9 must survive the call). The callback follows at the end.
struct LoopProg {
  Prog p;
  std::size_t func_at = 0;
  std::size_t call_at = 0;
  std::size_t entry = 0;  // the callback's first instruction (appended by the test)
  // r1 + r2 + (r3 - r10) + r4 + r5 + r6..r9 after the call
  [[nodiscard]] u64 regs(u64 nr, u64 flags = 0) const {
    return nr + abi::func_addr(entry) + static_cast<u64>(-8) + flags + 55 + 6 + 7 + 8 + 9;
  }
  explicit LoopProg(u64 nr, u64 flags = 0, bool may_goto = false) {
    p(Op::StDW, 10, 0, -8, 0).mov(6, 6).mov(7, 7).mov(8, 8).mov(9, 9);
    if (may_goto) p(Op::MayGoto, 0, 0, 0, 0);  // frames then carry a may_goto counter
    p.lddw(1, nr);
    func_at = p.size();
    p.lddw(2, 0, Op::LddwFunc);
    p(Op::MovReg, 3, 10)(Op::AddImm, 3, 0, 0, -8);
    p.lddw(4, flags);
    p.mov(5, 55);
    call_at = p.size();
    p(Op::Call, 0, 0, 0, kLoop)(Op::MulImm, 0, 0, 0, 1000);
    p(Op::AddReg, 0, 1)(Op::AddReg, 0, 2)(Op::SubReg, 3, 10)(Op::AddReg, 0, 3)(Op::AddReg, 0, 4)(Op::AddReg, 0, 5);
    p(Op::AddReg, 0, 6)(Op::AddReg, 0, 7)(Op::AddReg, 0, 8)(Op::AddReg, 0, 9);
    p(Op::LdxDW, 1, 10, -8)(Op::MulImm, 1, 0, 0, 1000003)(Op::AddReg, 0, 1).exit();
    entry = p.size();
    p.v[func_at].imm = static_cast<s32>(static_cast<std::int64_t>(entry) - static_cast<std::int64_t>(func_at) - 1);
  }
};

// Runs in every engine with inlining on and off; returns the plain JIT's outcome.
Outcome run_both(const std::vector<Insn>& insns, RunSetup s = {}) {
  s.helpers = &helpers();
  s.inline_loops = false;
  const Outcome off = run_all(insns, s);
  s.inline_loops = true;
  const Outcome on = run_all(insns, s);
  EXPECT_TRUE(same(on.result, off.result)) << describe(on.result) << " vs " << describe(off.result);
  return on;
}

// cb(i, ctx): *ctx += i + 1 + r0 + r3 + ... + r9 (a fresh callee: all zero); return 0
void sum_callback(Prog& p) {
  p(Op::MovReg, 4, 1)(Op::AddImm, 4, 0, 0, 1)(Op::AddReg, 4, 0)(Op::AddReg, 4, 3)(Op::AddReg, 4, 5);
  p(Op::AddReg, 4, 6)(Op::AddReg, 4, 7)(Op::AddReg, 4, 8)(Op::AddReg, 4, 9);
  p(Op::LdxDW, 0, 2, 0)(Op::AddReg, 0, 4)(Op::StxDW, 2, 0, 0).mov(0, 0).exit();
}

TEST(JitLoop, IterationCountsMatchTheHelper) {
  // 0, 1, many; u32 truncation of nr; the 2^23 limit (E2BIG past it)
  const u64 kMax = u64{1} << 23;
  for (u64 nr : {u64{0}, u64{1}, u64{2}, u64{100}, u64{1000}, (u64{1} << 32) + 3, kMax + 1, u64{0xffffffff},
                 ~u64{0}}) {
    LoopProg l(nr);
    sum_callback(l.p);
    const Outcome o = run_both(l.p.v);
    ASSERT_TRUE(o.result.ok()) << nr << ": " << describe(o.result);
    const u64 n = static_cast<std::uint32_t>(nr);
    const u64 ret = n > kMax ? static_cast<u64>(-7) : n;
    const u64 sum = n > kMax ? 0 : n * (n + 1) / 2;
    EXPECT_EQ(o.result.r0, ret * 1000 + l.regs(nr) + sum * 1000003) << nr;
  }
}

TEST(JitLoop, ExactlyTheLimitRuns) {
  // 2^23 calls (the largest allowed): interpreter and the inlining JIT only
  LoopProg l(u64{1} << 23);
  l.p.mov(0, 0).exit();
  RunSetup s;
  s.helpers = &helpers();
  const Outcome a = run_engine(Engine::Interp, l.p.v, s);
  const Outcome b = run_engine(Engine::JitDirect, l.p.v, s);
  ASSERT_TRUE(b.result.ok()) << describe(b.result);
  EXPECT_TRUE(same(a.result, b.result)) << describe(a.result) << " vs " << describe(b.result);
}

TEST(JitLoop, NonzeroFlagsRunNothing) {
  for (u64 flags : {u64{1}, u64{1} << 40}) {
    LoopProg l(10, flags);
    sum_callback(l.p);
    const Outcome o = run_both(l.p.v);
    ASSERT_TRUE(o.result.ok()) << describe(o.result);
    EXPECT_EQ(o.result.r0, static_cast<u64>(-22) * 1000 + l.regs(10, flags));
  }
}

TEST(JitLoop, AnyNonzeroResultStops) {
  // cb: *ctx += 1; return i == 3 ? 7 : 0  -> 4 calls, bpf_loop returns 4
  for (s32 stop_value : {1, 7, -1}) {
    LoopProg l(100);
    l.p(Op::LdxDW, 0, 2, 0)(Op::AddImm, 0, 0, 0, 1)(Op::StxDW, 2, 0, 0).mov(0, 0);
    l.p(Op::JneImm, 1, 0, 1, 3).mov(0, stop_value).exit();
    const Outcome o = run_both(l.p.v);
    ASSERT_TRUE(o.result.ok()) << describe(o.result);
    EXPECT_EQ(o.result.r0, 4 * 1000 + l.regs(100) + 4 * 1000003) << stop_value;
  }
}

TEST(JitLoop, CallbackWithStackAndASubprogram) {
  // cb(i, ctx): [r10-8] = i; r6 = ctx; r1 = r10 - 8; r0 = sub(r1); *r6 += r0; r0 = 0
  // sub(p): [r10-16] = *p * 3; r0 = [r10-16] + 1
  for (bool may_goto : {false, true}) {
    LoopProg l(50, 0, may_goto);
    l.p(Op::StxDW, 10, 1, -8)(Op::MovReg, 6, 2)(Op::MovReg, 1, 10)(Op::AddImm, 1, 0, 0, -8);
    const std::size_t call = l.p.size();
    l.p(Op::CallLocal, 0, 0, 0, 0)(Op::LdxDW, 1, 6, 0)(Op::AddReg, 1, 0)(Op::StxDW, 6, 1, 0).mov(0, 0).exit();
    l.p.v[call].imm = static_cast<s32>(l.p.size() - call - 1);
    if (may_goto) l.p(Op::MayGoto, 0, 0, 1, 0).mov(3, 0);  // a counter of the callee's own
    l.p(Op::LdxDW, 0, 1, 0)(Op::MulImm, 0, 0, 0, 3)(Op::StxDW, 10, 0, -16)(Op::LdxDW, 0, 10, -16);
    l.p(Op::AddImm, 0, 0, 0, 1).exit();
    const Outcome o = run_both(l.p.v);
    ASSERT_TRUE(o.result.ok()) << describe(o.result);
    u64 sum = 0;
    for (u64 i = 0; i < 50; ++i) sum += 3 * i + 1;
    EXPECT_EQ(o.result.r0, 50 * 1000 + l.regs(50) + sum * 1000003);
  }
}

TEST(JitLoop, HelpersInTheCallbackSeeAnAlignedStack) {
  // cb: r0 = align(); *ctx += r0 + 1; return 0  (with and without may_goto frames)
  for (bool may_goto : {false, true}) {
    LoopProg l(5, 0, may_goto);
    l.p(Op::MovReg, 6, 2)(Op::Call, 0, 0, 0, kAlign)(Op::AddImm, 0, 0, 0, 1)(Op::LdxDW, 1, 6, 0)(Op::AddReg, 1, 0);
    l.p(Op::StxDW, 6, 1, 0).mov(0, 0).exit();
    const Outcome o = run_both(l.p.v);
    ASSERT_TRUE(o.result.ok()) << describe(o.result);
    EXPECT_EQ(o.result.r0, 5 * 1000 + l.regs(5) + 5 * 1000003);  // align() returned 0 each time
  }
}

TEST(JitLoop, FaultAndExitInTheCallbackEndTheRun) {
  {  // cb: r0 = 33; call unknown helper -> UnknownHelper at the callee's pc, r0 = 33
    LoopProg l(5);
    const std::size_t cb = l.p.size();
    l.p.mov(0, 33)(Op::Call, 0, 0, 0, kUnknown).exit();
    const Outcome o = run_both(l.p.v);
    ASSERT_EQ(o.result.fault, abi::Fault::UnknownHelper) << describe(o.result);
    EXPECT_EQ(o.result.error->insn, cb + 1);
    EXPECT_EQ(o.result.r0, 33u);
  }
  {  // cb: exit(4242) on the third call
    LoopProg l(5);
    l.p(Op::JneImm, 1, 0, 2, 2).mov(1, 4242)(Op::Call, 0, 0, 0, kExit).mov(0, 0).exit();
    const Outcome o = run_both(l.p.v);
    ASSERT_TRUE(o.result.ok()) << describe(o.result);
    EXPECT_EQ(o.result.r0, 4242u);
  }
}

TEST(JitLoop, NestedLoopsUpToTheDepthLimit) {
  // cb(i, ctx): *ctx += 1; bpf_loop(2, cb, ctx, 0): 7 frames of callbacks fit, the 8th call faults
  LoopProg l(2);
  const std::size_t at = append_recursive_loop_callback(l.p, 2);
  const Outcome o = run_both(l.p.v);
  ASSERT_EQ(o.result.fault, abi::Fault::CallDepth) << describe(o.result);
  EXPECT_EQ(o.result.error->insn, at + 3);
  EXPECT_EQ(o.result.r0, 0u);
}

TEST(JitLoop, InlinedOnlyWhenProvenAndNamedLoop) {
  LoopProg l(3);
  sum_callback(l.p);
  Options o;
  o.helpers = &helpers();
  const std::size_t inlined = compile(l.p.v, o).code_size();
  o.inline_loops = false;
  const std::size_t called = compile(l.p.v, o).code_size();
  EXPECT_NE(inlined, called);
  // another helper under BPF_FUNC_loop's id: never inlined
  static const abi::HelperTable other = make_table("not_loop");
  o.inline_loops = true;
  o.helpers = &other;
  EXPECT_EQ(compile(l.p.v, o).code_size(), called);
  // r2 not provably a function (a block starts between its lddw and the
  // call: a `goto +0` targets it): called, with the same result
  Prog q = l.p;
  q.v.insert(q.v.begin() + static_cast<std::ptrdiff_t>(l.func_at + 2), isa::make(Op::Ja, 0, 0, 0, 0));
  q.v[l.func_at].imm += 1;  // the callback moved one down
  o.helpers = &helpers();
  const std::size_t q_on = compile(q.v, o).code_size();
  o.inline_loops = false;
  EXPECT_EQ(compile(q.v, o).code_size(), q_on);
  const Outcome r = run_both(q.v);
  ASSERT_TRUE(r.result.ok()) << describe(r.result);
  EXPECT_EQ(r.result.r0, 3 * 1000 + l.regs(3) + abi::func_addr(l.entry + 1) - abi::func_addr(l.entry) + 6 * 1000003);
}

}  // namespace
}  // namespace userbpf::jit::test
