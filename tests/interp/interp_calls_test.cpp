// Interpreter: bpf-to-bpf calls, callx, helpers, kfuncs, unwinding, may_goto,
// frames in checked mode.
#include <gtest/gtest.h>

#include "interp_test_util.hpp"

namespace userbpf::interp::test {
namespace {

using u64 = std::uint64_t;

abi::RunResult run(const std::vector<isa::Insn>& insns, abi::Env& env, std::vector<u64> args = {},
                   bool kernel_structure = true) {
  Program p = load(insns, kernel_structure);
  return p.run(env, args);
}

u64 add_helper(abi::Env&, u64 a, u64 b, u64 c, u64 d, u64 e) { return a + b * 10 + c * 100 + d * 1000 + e * 10000; }
u64 exit_helper(abi::Env& env, u64 a, u64, u64, u64, u64) {
  env.request_exit(a);
  return 0;
}
u64 fail_helper(abi::Env& env, u64, u64, u64, u64, u64) {
  env.fail(EPERM, "not allowed here");
  return 0;
}

abi::HelperTable make_helpers() {
  abi::HelperTable t;
  t.set(1, "add", add_helper);
  t.set(2, "exit", exit_helper);
  t.set(3, "fail", fail_helper);
  t.set_kfunc(70000, "kadd", add_helper);
  return t;
}

TEST(InterpCalls, LocalCallPassesArgsAndPreservesCalleeSaved) {
  Prog p;
  p.mov(1, 3).mov(2, 4).mov(6, 60).mov(7, 70).mov(8, 80).mov(9, 90);          // 0..5
  p(Op::CallLocal, 0, 0, 0, 6);                                               // 6 -> 13
  p(Op::AddReg, 0, 6)(Op::AddReg, 0, 7)(Op::AddReg, 0, 8)(Op::AddReg, 0, 9);  // 7..10
  p(Op::AddReg, 0, 1).exit();                                                 // 11, 12: r1 as left by the callee
  // callee: r0 = r1 * r2; clobber r6-r9 and r1
  p(Op::MovReg, 0, 1)(Op::MulReg, 0, 2).mov(6, 0).mov(7, 0).mov(8, 0).mov(9, 0).mov(1, 1000).exit();
  for (bool checked : {false, true}) {
    abi::Env env;
    env.options.checked = checked;
    const auto r = run(p.v, env);
    ASSERT_TRUE(r.ok()) << r.error->to_string();
    EXPECT_EQ(r.r0, 12u + 60 + 70 + 80 + 90 + 1000);
  }
}

TEST(InterpCalls, CalleeFrameIsBelowCaller) {
  // callee returns its r10; caller returns caller_r10 - callee_r10 (= 512)
  Prog p;
  p(Op::CallLocal, 0, 0, 0, 4)(Op::MovReg, 1, 10)(Op::SubReg, 1, 0)(Op::MovReg, 0, 1).exit();
  p(Op::MovReg, 0, 10).exit();
  // insn 0 call -> 0+1+4 = 5
  abi::Env env;
  const auto r = run(p.v, env);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.r0, 512u);
}

// A chain of `frames` nested calls: each function calls the next; the last returns 1.
std::vector<isa::Insn> chain(int frames) {
  Prog p;
  for (int f = 0; f + 1 < frames; ++f) {
    // call next (2 insns further), r0 += 1, exit
    p(Op::CallLocal, 0, 0, 0, 2)(Op::AddImm, 0, 0, 0, 1).exit();
  }
  p.mov(0, 1).exit();
  return p.v;
}

TEST(InterpCalls, DepthLimitIsEightFrames) {
  abi::Env env;
  auto ok = run(chain(8), env);
  ASSERT_TRUE(ok.ok()) << ok.error->to_string();
  EXPECT_EQ(ok.r0, 8u);
  for (bool checked : {false, true}) {
    env.options.checked = checked;
    const auto bad = run(chain(9), env);
    EXPECT_EQ(bad.fault, abi::Fault::CallDepth);
    ASSERT_TRUE(bad.error.has_value());
    EXPECT_TRUE(same_error(*bad.error, abi::call_depth_exceeded(7 * 3)));  // the call in the 8th frame
    EXPECT_EQ(bad.error->code, E2BIG);
  }
}

TEST(InterpCalls, Recursion) {
  // f(n) = n == 0 ? 0 : n + f(n - 1), with n = 6 (7 frames)
  Prog p;
  p.mov(1, 6)(Op::CallLocal, 0, 0, 0, 1).exit();                            // 0..2 ; call -> 3
  p.mov(0, 0)(Op::JeqImm, 1, 0, 5, 0);                                      // 3, 4 -> 10
  p(Op::MovReg, 6, 1)(Op::SubImm, 1, 0, 0, 1)(Op::CallLocal, 0, 0, 0, -5);  // 5,6,7 -> 3
  p(Op::AddReg, 0, 6)(Op::Ja, 0, 0, 0);                                     // 8, 9
  p.exit();                                                                 // 10
  abi::Env env;
  const auto r = run(p.v, env);
  ASSERT_TRUE(r.ok()) << r.error->to_string();
  EXPECT_EQ(r.r0, 21u);
}

TEST(InterpCalls, Helpers) {
  const auto helpers = make_helpers();
  Prog p;
  p.mov(1, 1).mov(2, 2).mov(3, 3).mov(4, 4).mov(5, 5)(Op::Call, 0, 0, 0, 1);
  // r1-r5 are left unchanged by a call
  p(Op::AddReg, 0, 1)(Op::AddReg, 0, 5).exit();
  for (bool checked : {false, true}) {
    abi::Env env;
    env.helpers = &helpers;
    env.options.checked = checked;
    const auto r = run(p.v, env);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.r0, 54321u + 1 + 5);
  }
}

TEST(InterpCalls, UnknownHelperAndKfunc) {
  const auto helpers = make_helpers();
  abi::Env env;
  env.helpers = &helpers;
  auto r = run(Prog{}.mov(0, 0)(Op::Call, 0, 0, 0, 99).exit().v, env);
  EXPECT_EQ(r.fault, abi::Fault::UnknownHelper);
  EXPECT_TRUE(same_error(*r.error, abi::unknown_helper(1, 99)));
  EXPECT_EQ(r.error->code, ENOENT);
  abi::Env none;  // no helper table at all
  r = run(Prog{}(Op::Call, 0, 0, 0, 1).exit().v, none);
  EXPECT_EQ(r.fault, abi::Fault::UnknownHelper);
  // kfunc
  r = run(Prog{}.mov(1, 7)(Op::CallKfunc, 0, 0, 0, 70000).exit().v, env);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.r0, 7u);
  r = run(Prog{}(Op::CallKfunc, 0, 0, 0, 70001).exit().v, env);
  EXPECT_EQ(r.fault, abi::Fault::UnknownHelper);
  EXPECT_TRUE(same_error(*r.error, abi::unknown_kfunc(0, 70001)));
}

TEST(InterpCalls, HelperFailureAndUnwind) {
  const auto helpers = make_helpers();
  abi::Env env;
  env.helpers = &helpers;
  auto r = run(Prog{}.mov(0, 5)(Op::Call, 0, 0, 0, 3).mov(0, 6).exit().v, env);
  EXPECT_EQ(r.fault, abi::Fault::HelperFailed);
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->code, EPERM);
  EXPECT_EQ(r.error->insn, 1u);
  EXPECT_EQ(r.error->message, "not allowed here");
  // request_exit from a nested frame ends the whole run with the value
  Prog p;
  p.mov(6, 1)(Op::CallLocal, 0, 0, 0, 2).mov(0, 100).exit();  // 0..3, call -> 4
  p(Op::CallLocal, 0, 0, 0, 1).exit();                        // 4, 5; call -> 6
  p.mov(1, 42)(Op::Call, 0, 0, 0, 2).mov(0, 7).exit();        // 6..9
  for (bool checked : {false, true}) {
    env.options.checked = checked;
    r = run(p.v, env);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.r0, 42u);
    EXPECT_FALSE(env.failed());
  }
  // signals are reset at the start of each run
  r = run(Prog{}.mov(0, 3).exit().v, env);
  EXPECT_EQ(r.r0, 3u);
}

TEST(InterpCalls, Callx) {
  const auto helpers = make_helpers();
  abi::Env env;
  env.helpers = &helpers;
  // callx to a helper id
  auto r = run(Prog{}.mov(1, 2).mov(6, 1)(Op::Callx, 6).exit().v, env);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.r0, 2u);
  // callx to a function from lddw func
  Prog p;
  p.lddw(4, 0, Op::LddwFunc).mov(1, 20)(Op::Callx, 4)(Op::AddImm, 0, 0, 0, 1).exit();  // 0-1,2,3,4,5
  p(Op::MovReg, 0, 1)(Op::MulImm, 0, 0, 0, 2).exit();                                  // 6..8
  p.v[0].imm = 5;                                                                      // 0 + 1 + 5 = 6
  p.v[1].imm = 0;
  p.v[0].imm_hi = 0;
  r = run(p.v, env);
  ASSERT_TRUE(r.ok()) << r.error->to_string();
  EXPECT_EQ(r.r0, 41u);
  // a function address that is not a function entry
  r = run(Prog{}.lddw(4, abi::func_addr(2)).mov(0, 0)(Op::Callx, 4).exit().v, env);
  EXPECT_EQ(r.fault, abi::Fault::BadCallTarget);
  EXPECT_TRUE(same_error(*r.error, abi::bad_call_target(3, abi::func_addr(2))));
  // neither helper id nor function address
  r = run(Prog{}.lddw(4, 0x100000000ULL)(Op::Callx, 4).exit().v, env);
  EXPECT_EQ(r.fault, abi::Fault::BadCallTarget);
  EXPECT_EQ(r.error->code, EINVAL);
  // unknown helper id through callx
  r = run(Prog{}.mov(4, 55)(Op::Callx, 4).exit().v, env);
  EXPECT_EQ(r.fault, abi::Fault::UnknownHelper);
}

TEST(InterpMayGoto, PerFrameBudget) {
  // count iterations until may_goto branches
  Prog p;
  p.mov(0, 0)(Op::MayGoto, 0, 0, 2)(Op::AddImm, 0, 0, 0, 1)(Op::Ja, 0, 0, -3).exit();
  abi::Env env;
  auto r = run(p.v, env);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.r0, abi::kMayGotoBudget);
  // a callee has its own counter; the caller's is restored afterwards
  Prog c;
  c(Op::MayGoto, 0, 0, 0)(Op::CallLocal, 0, 0, 0, 5)(Op::MovReg, 6, 0);                // 0,1,2 ; call 1 -> 7
  c(Op::MayGoto, 0, 0, 1)(Op::AddImm, 6, 0, 0, 1000000)(Op::MovReg, 0, 6).exit();      // 3,4,5,6
  c.mov(0, 0)(Op::MayGoto, 0, 0, 2)(Op::AddImm, 0, 0, 0, 1)(Op::Ja, 0, 0, -3).exit();  // 7..11
  r = run(c.v, env);
  ASSERT_TRUE(r.ok()) << r.error->to_string();
  // callee ran the full budget; caller's counter (one used) still allowed one more
  EXPECT_EQ(r.r0, abi::kMayGotoBudget + 1000000);
}

TEST(InterpCheckedFrames, CallerFrameValidStaleFrameNot) {
  // callee writes through a pointer into the caller's frame: allowed
  Prog ok;
  ok(Op::MovReg, 1, 10)(Op::AddImm, 1, 0, 0, -8)(Op::CallLocal, 0, 0, 0, 2)(Op::LdxDW, 0, 10, -8).exit();  // 0..4
  ok(Op::StDW, 1, 0, 0, 77).exit();  // 5, 6 ; call at 2 -> 5
  abi::Env env;
  env.options.checked = true;
  auto r = run(ok.v, env);
  ASSERT_TRUE(r.ok()) << r.error->to_string();
  EXPECT_EQ(r.r0, 77u);
  // callee returns a pointer into its own frame; the caller dereferences it (stale)
  Prog stale;
  stale(Op::CallLocal, 0, 0, 0, 2)(Op::LdxDW, 0, 0, 0).exit();                       // 0,1,2 ; call -> 3
  stale(Op::StDW, 10, 0, -8, 5)(Op::MovReg, 0, 10)(Op::AddImm, 0, 0, 0, -8).exit();  // 3..6
  r = run(stale.v, env);
  EXPECT_EQ(r.fault, abi::Fault::MemoryViolation);
  EXPECT_EQ(r.error->insn, 1u);
  // in the callee, below its own r10 - 512 is a violation too
  Prog deep;
  deep(Op::CallLocal, 0, 0, 0, 1).exit()(Op::StDW, 10, 0, -520, 1).mov(0, 0).exit();
  r = run(deep.v, env);
  EXPECT_EQ(r.fault, abi::Fault::MemoryViolation);
  EXPECT_EQ(r.error->insn, 2u);
}

TEST(InterpCheckedFrames, WritingR10DoesNotWidenTheStack) {
  // uBPF-style programs may write r10; the live stack range is tracked apart
  Prog p;
  p(Op::SubImm, 10, 0, 0, 1024)(Op::StDW, 10, 0, 0, 1).mov(0, 0).exit();
  abi::Env env;
  env.options.checked = true;
  const auto r = run(p.v, env);
  EXPECT_EQ(r.fault, abi::Fault::MemoryViolation);
  EXPECT_EQ(r.error->insn, 1u);
}

TEST(InterpCalls, CountsAcrossCallsAndBudgetInCallee) {
  Prog p;
  p.mov(1, 1)(Op::CallLocal, 0, 0, 0, 1).exit();  // 0,1,2 ; call -> 3
  p.mov(0, 5)(Op::AddImm, 0, 0, 0, 1).exit();     // 3,4,5
  abi::Env env;
  env.options.count_insns = true;
  auto r = run(p.v, env);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.insns, 6u);
  EXPECT_EQ(r.r0, 6u);
  env.options.budget = 4;  // mov, call, mov, add; the callee's exit (insn 5) is the 5th
  r = run(p.v, env);
  EXPECT_EQ(r.fault, abi::Fault::Budget);
  EXPECT_TRUE(same_error(*r.error, abi::budget_exhausted(5, 4)));
  EXPECT_EQ(r.insns, 4u);
}

}  // namespace
}  // namespace userbpf::interp::test
