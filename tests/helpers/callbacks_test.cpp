// Interpreter callbacks (abi::Env::call_function) through bpf_loop and test
// helpers: results, instruction counts, frames, nesting, and every way a
// callback can end the run (fault, budget, unwind, call depth, bad target).
#include <gtest/gtest.h>

#include <cerrno>

#include "helpers_test_util.hpp"

namespace userbpf::helpers::test {
namespace {

constexpr std::int32_t kLoop = BPF_FUNC_loop;
constexpr std::int32_t kUnwind = 1000;       // test helper: env.request_exit(r1)
constexpr std::int32_t kCallTwice = 1001;    // test helper: call_function(r1, r2) twice, returns the sum
constexpr std::int32_t kCallR1 = 1002;       // test helper: call_function(r1) once

u64 unwind_helper(abi::Env& env, u64 a, u64, u64, u64, u64) {
  env.request_exit(a);
  return 0;
}
u64 call_twice(abi::Env& env, u64 fn, u64 arg, u64, u64, u64) {
  const u64 a = env.call_function(fn, arg, 0, 0, 0, 0);
  if (env.callback_aborted()) return 0;
  const u64 b = env.call_function(fn, arg + 1, 0, 0, 0, 0);
  if (env.callback_aborted()) return 0;
  return a + b;
}
u64 call_r1(abi::Env& env, u64 fn, u64, u64, u64, u64) {
  const u64 r = env.call_function(fn, 7, 8, 9, 10, 11);
  return env.callback_aborted() ? 0 : r;
}

struct CbRunner : Runner {
  CbRunner() {
    helpers.set(kUnwind, "unwind", &unwind_helper);
    helpers.set(kCallTwice, "call_twice", &call_twice);
    helpers.set(kCallR1, "call_r1", &call_r1);
  }
};

// lddw rX, <function at instruction `target`> placed at the builder's end.
void ld_func(Prog& p, std::uint8_t dst, std::size_t target) {
  const auto at = static_cast<std::int64_t>(p.size());
  p.lddw(dst, static_cast<u64>(static_cast<std::int64_t>(target) - at - 1), Op::LddwFunc);
}

// main: ctx (u64 at fp-8) = 0; r0 = bpf_loop(n, cb, fp-8, flags) * 1000000 + ctx
// cb(i, ctx): *ctx += i; return i == stop
std::vector<isa::Insn> loop_prog(std::int32_t n, std::int32_t stop, std::int32_t flags = 0) {
  Prog p;
  p(Op::StDW, 10, 0, -8, 0);     // 0
  p.mov(1, n);                   // 1
  const std::size_t ld = p.size();
  p.lddw(2, 0, Op::LddwFunc);    // 2,3 (patched)
  fp(p, 3, -8);                  // 4,5
  p.mov(4, flags);               // 6
  call(p, kLoop);                // 7
  p(Op::MulImm, 0, 0, 0, 1000000)(Op::LdxDW, 1, 10, -8)(Op::AddReg, 0, 1).exit();  // 8..11
  const std::size_t cb = p.size();                                                  // 12
  p(Op::LdxDW, 3, 2, 0)(Op::AddReg, 3, 1)(Op::StxDW, 2, 3, 0);                      // 12..14
  p.mov(0, 0)(Op::JneImm, 1, 0, 1, stop).mov(0, 1).exit();                          // 15..18
  p.v[ld].imm = static_cast<std::int32_t>(cb - ld - 1);
  return p.v;
}

TEST(Callbacks, LoopRunsTheCallbackInEveryMode) {
  for (Mode m : kModes) {
    CbRunner r;
    const auto res = r.run(loop_prog(10, -1), m);
    ASSERT_TRUE(res.ok()) << mode_name(m) << ": " << res.error->to_string();
    EXPECT_EQ(res.r0, 10u * 1000000 + 45) << mode_name(m);
    if (m != Mode::Fast) {
      // main: 11 instructions (lddw counts once); callback: 6 when it goes on
      EXPECT_EQ(res.insns, 11u + 10 * 6) << mode_name(m);
    }
  }
}

TEST(Callbacks, LoopStopsWhenTheCallbackReturnsOne) {
  for (Mode m : kModes) {
    CbRunner r;
    const auto res = r.run(loop_prog(10, 3), m);
    ASSERT_TRUE(res.ok()) << res.error->to_string();
    EXPECT_EQ(res.r0, 4u * 1000000 + 6) << mode_name(m);  // i = 0..3, returns i + 1
    if (m == Mode::Counted) {
      EXPECT_EQ(res.insns, 11u + 3 * 6 + 7);
    }
  }
}

TEST(Callbacks, LoopArgumentErrors) {
  CbRunner r;
  EXPECT_EQ(r.run(loop_prog(10, -1, 1), Mode::Checked).r0, static_cast<u64>(-EINVAL) * 1000000);
  const auto big = r.run(loop_prog((1 << 23) + 1, -1), Mode::Fast);
  EXPECT_EQ(big.r0, static_cast<u64>(-E2BIG) * 1000000);
  const auto zero = r.run(loop_prog(0, -1), Mode::Counted);
  EXPECT_EQ(zero.r0, 0u);
  EXPECT_EQ(zero.insns, 11u);
}

TEST(Callbacks, CalleeGetsArgumentsAndItsOwnFrame) {
  // main: r0 = call_r1(cb) (r1..r5 = 7..11); cb: stack write and read in its own frame, r0 = 5 + r1+..+r5
  Prog p;
  ld_func(p, 1, 4);          // 0,1
  call(p, kCallR1).exit();   // 2,3
  p(Op::StDW, 10, 0, -8, 5)(Op::LdxDW, 0, 10, -8);  // 4,5
  p(Op::AddReg, 0, 1)(Op::AddReg, 0, 2)(Op::AddReg, 0, 3)(Op::AddReg, 0, 4)(Op::AddReg, 0, 5).exit();
  // main: r6 = fp; r0 = call_r1(cb2); r0 = r6 - r0 (cb2 returns its r10: 512 below main's)
  Prog q;
  q(Op::MovReg, 6, 10);      // 0
  ld_func(q, 1, 6);          // 1,2
  call(q, kCallR1);          // 3
  q(Op::SubReg, 6, 0)(Op::MovReg, 0, 6).exit();  // 4,5,6... cb2 at 7? (see below)
  q(Op::MovReg, 0, 10).exit();
  q.v[1].imm = 7 - 1 - 1;    // cb2 at index 7
  for (Mode m : kModes) {
    CbRunner r;
    const auto res = r.run(p.v, m);
    ASSERT_TRUE(res.ok()) << mode_name(m) << ": " << res.error->to_string();
    EXPECT_EQ(res.r0, 5u + 7 + 8 + 9 + 10 + 11) << mode_name(m);
    const auto fr = r.run(q.v, m);
    ASSERT_TRUE(fr.ok()) << mode_name(m) << ": " << fr.error->to_string();
    EXPECT_EQ(fr.r0, 512u) << mode_name(m);
  }
}

TEST(Callbacks, CalleeMayUseTheCallersStackInCheckedMode) {
  // loop_prog's callback writes through ctx = the caller's fp-8: checked mode allows it
  CbRunner r;
  const auto res = r.run(loop_prog(3, -1), Mode::Checked);
  ASSERT_TRUE(res.ok()) << res.error->to_string();
  EXPECT_EQ(res.r0, 3u * 1000000 + 3);
}

TEST(Callbacks, NestedLoops) {
  // outer: bpf_loop(3, cb1, fp-8); cb1: bpf_loop(4, cb2, ctx); cb2: *ctx += 1
  Prog p;
  p(Op::StDW, 10, 0, -8, 0);   // 0
  p.mov(1, 3);                 // 1
  p.lddw(2, 0, Op::LddwFunc);  // 2,3 (patched)
  fp(p, 3, -8).mov(4, 0);      // 4,5,6
  call(p, kLoop);              // 7
  p(Op::LdxDW, 0, 10, -8).exit();  // 8,9
  const std::size_t cb1 = p.size();  // 10
  p(Op::MovReg, 3, 2).mov(1, 4);     // 10,11
  p.lddw(2, 0, Op::LddwFunc);        // 12,13 (patched)
  p.mov(4, 0);                       // 14
  call(p, kLoop).mov(0, 0).exit();   // 15,16,17
  const std::size_t cb2 = p.size();  // 18
  p(Op::LdxDW, 3, 2, 0)(Op::AddImm, 3, 0, 0, 1)(Op::StxDW, 2, 3, 0).mov(0, 0).exit();
  p.v[2].imm = static_cast<std::int32_t>(cb1 - 3);
  p.v[12].imm = static_cast<std::int32_t>(cb2 - 13);
  for (Mode m : kModes) {
    CbRunner r;
    const auto res = r.run(p.v, m);
    ASSERT_TRUE(res.ok()) << mode_name(m) << ": " << res.error->to_string();
    EXPECT_EQ(res.r0, 12u) << mode_name(m);
    if (m != Mode::Fast) {
      EXPECT_EQ(res.insns, 9u + 3 * (7 + 4 * 5)) << mode_name(m);
    }
  }
}

TEST(Callbacks, FaultInsideTheCallbackEndsTheRun) {
  // cb reads address 16: a memory violation at the callee's instruction
  Prog p;
  ld_func(p, 1, 4);                     // 0,1
  call(p, kCallR1).exit();              // 2,3
  p.mov(2, 16)(Op::LdxDW, 0, 2, 0).exit();  // 4,5,6
  CbRunner r;
  const auto res = r.run(p.v, Mode::Checked);
  ASSERT_EQ(res.fault, abi::Fault::MemoryViolation);
  EXPECT_EQ(res.error->insn, 5u);
  EXPECT_EQ(res.error->message, abi::memory_violation(5, 16, 8, false).message);
}

TEST(Callbacks, BudgetCountsCalleeInstructions) {
  // 11 main + 6 per iteration; budget 40 runs out in the 5th iteration
  CbRunner r;
  const auto res = r.run(loop_prog(10, -1), Mode::Counted, {}, 40);
  ASSERT_EQ(res.fault, abi::Fault::Budget);
  EXPECT_EQ(res.insns, 40u);
  // 7 main instructions up to the call, 5 full iterations (30): 37; iteration 6 runs 12, 13, 14;
  // dispatching the 41st instruction (15) ends the run
  EXPECT_EQ(res.error->insn, 15u);
}

TEST(Callbacks, UnwindInsideTheCallbackEndsTheRunCleanly) {
  Prog p;
  ld_func(p, 1, 5);                 // 0,1
  call(p, kCallR1).mov(0, 99).exit();  // 2,3,4: never reached after the unwind
  p.mov(1, 42);                     // 5
  call(p, kUnwind).mov(0, 1).exit();  // 6,7,8
  for (Mode m : kModes) {
    CbRunner r;
    const auto res = r.run(p.v, m);
    ASSERT_TRUE(res.ok()) << res.error->to_string();
    EXPECT_EQ(res.r0, 42u) << mode_name(m);
    if (m == Mode::Counted) {
      EXPECT_EQ(res.insns, 4u);  // lddw, call, mov, call; nothing after the unwind
    }
  }
}

TEST(Callbacks, HelperCallsTheCallbackTwice) {
  Prog p;
  ld_func(p, 1, 5);                    // 0,1
  p.mov(2, 20);                        // 2
  call(p, kCallTwice).exit();          // 3,4: r0 = cb(20) + cb(21)
  p(Op::MovReg, 0, 1)(Op::MulImm, 0, 0, 0, 2).exit();  // cb at 5: 2 * r1
  for (Mode m : kModes) {
    CbRunner r;
    const auto res = r.run(p.v, m);
    ASSERT_TRUE(res.ok()) << res.error->to_string();
    EXPECT_EQ(res.r0, 82u) << mode_name(m);
  }
}

TEST(Callbacks, CallDepthIncludesTheCallbackFrame) {
  // frames: main + 6 local calls = 7; the callback would be the 8th (allowed);
  // with 7 local calls the callback would be the 9th: call_depth_exceeded at the helper call.
  for (int locals : {6, 7}) {
    Prog p;
    for (int i = 0; i < locals; ++i) p(Op::CallLocal, 0, 0, 0, 1).exit();  // each calls the next pair
    // innermost: call_r1(cb)
    const std::size_t at = p.size();
    ld_func(p, 1, at + 4);
    call(p, kCallR1).exit();     // at+2, at+3
    p.mov(0, 5).exit();          // cb at at+4
    // the pairs: insn 2k is `call +1` -> 2k+2, insn 2k+1 is exit
    p.v[at].imm = 3;
    for (Mode m : kModes) {
      CbRunner r;
      const auto res = r.run(p.v, m);
      if (locals == 6) {
        ASSERT_TRUE(res.ok()) << res.error->to_string();
        EXPECT_EQ(res.r0, 5u);
      } else {
        ASSERT_EQ(res.fault, abi::Fault::CallDepth) << mode_name(m);
        EXPECT_EQ(res.error->message, abi::call_depth_exceeded(at + 2).message);
      }
    }
  }
}

TEST(Callbacks, BadCallbackTargetEndsTheRun) {
  Prog p;
  p.mov(1, 3);                      // not a function value
  call(p, kCallR1).exit();
  for (Mode m : kModes) {
    CbRunner r;
    const auto res = r.run(p.v, m);
    ASSERT_EQ(res.fault, abi::Fault::BadCallTarget) << mode_name(m);
    EXPECT_EQ(res.error->message, abi::bad_call_target(1, 3).message);
  }
  // a func_addr that is not a function entry (the middle of main)
  Prog q;
  q.lddw(1, abi::func_addr(3));
  call(q, kCallR1).exit();
  CbRunner r;
  const auto res = r.run(q.v, Mode::Fast);
  ASSERT_EQ(res.fault, abi::Fault::BadCallTarget);
}

TEST(Callbacks, EnvHasNoCallbackOutsideARun) {
  abi::Env env;
  EXPECT_EQ(env.callback, nullptr);
  CbRunner r;
  (void)r.run(loop_prog(2, -1), Mode::Fast);
  EXPECT_EQ(r.env.callback, nullptr);  // restored when the run returns
  EXPECT_EQ(r.env.engine, nullptr);
  env.call_function(abi::func_addr(0), 0, 0, 0, 0, 0);
  EXPECT_TRUE(env.failed());
  EXPECT_TRUE(env.callback_aborted());
}

}  // namespace
}  // namespace userbpf::helpers::test
