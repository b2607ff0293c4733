// jit::Program::Runner: several runs on one Runner (a test run's repeat
// loop) must each be the complete run Program::run makes: the Env's signals
// reset (an exit request or a failure of one run does not end the next),
// the budget restarted, the fault cleared, callbacks served, in checked mode
// the stack zeroed and the Stack region added and removed. Every run's
// result() is compared with a fresh Program::run and with the interpreter.
#include "jit_test_util.hpp"

namespace userbpf::jit::test {
namespace {

constexpr std::int32_t kExitIfOne = 1;  // r1 == 1: request_exit(77); returns 9
constexpr std::int32_t kFail = 2;       // env.fail(EPERM)
constexpr std::int32_t kLoop = 181;     // BPF_FUNC_loop (bpf_loop_helper)

u64 exit_if_one(abi::Env& env, u64 r1, u64, u64, u64, u64) {
  if (r1 == 1) env.request_exit(77);
  clobber_caller_saved();
  return 9;
}
u64 fail_helper(abi::Env& env, u64, u64, u64, u64, u64) {
  env.fail(EPERM, "refused");
  return 0;
}

const abi::HelperTable& table() {
  static const abi::HelperTable t = [] {
    abi::HelperTable h;
    h.set(kExitIfOne, "exit_if_one", &exit_if_one);
    h.set(kFail, "fail", &fail_helper);
    h.set(kLoop, "loop", &bpf_loop_helper);
    return h;
  }();
  return t;
}

// r1 = 1: exit request (r0 77); 2: a 1000-iteration loop (budget); 4: a
// failing helper; 5: bpf_loop(3, cb) with cb counting into the stack;
// otherwise r0 = 2 * r1 after a helper call (that a stale exit request
// would end).
std::vector<Insn> program() {
  Prog p;
  p(Op::JeqImm, 1, 0, 6, 2)    // -> loop (7)
      (Op::JeqImm, 1, 0, 10, 4)  // -> fail (12)
      (Op::JeqImm, 1, 0, 11, 5)  // -> bpf_loop (14)
      (Op::Call, 0, 0, 0, kExitIfOne)(Op::MovReg, 0, 1)(Op::LshImm, 0, 0, 0, 1)
      .exit();
  // loop: r2 = 0; do r2 += 1 while r2 < 1000; r0 = r2
  p.mov(2, 0)(Op::AddImm, 2, 0, 0, 1)(Op::JltImm, 2, 0, -2, 1000)(Op::MovReg, 0, 2).exit();
  // fail
  p(Op::Call, 0, 0, 0, kFail).exit();
  // bpf_loop(3, cb, fp - 8, 0); r0 = *(fp - 8) + r0 * 100
  p(Op::StDW, 10, 0, -8, 0).mov(1, 3)(Op::MovReg, 3, 10)(Op::AddImm, 3, 0, 0, -8);
  const std::size_t at = p.size();
  p.lddw(2, 0, Op::LddwFunc).mov(4, 0)(Op::Call, 0, 0, 0, kLoop)(Op::MulImm, 0, 0, 0, 100)(Op::LdxDW, 1, 10, -8)(
      Op::AddReg, 0, 1)
      .exit();
  // cb(i, ctx): *ctx += 1; return 0
  const std::size_t cb = p.size();
  EXPECT_EQ(at, 18u);  // (the jump offsets above assume this layout)
  p(Op::LdxDW, 0, 2, 0)(Op::AddImm, 0, 0, 0, 1)(Op::StxDW, 2, 0, 0).mov(0, 0).exit();
  p.v[at].imm = static_cast<std::int32_t>(static_cast<std::int64_t>(cb) - static_cast<std::int64_t>(at) - 1);
  return p.v;
}

struct Case {
  const char* name;
  Options opts;
  u64 budget;
  bool checked;
};

TEST(JitRunner, RunsAreIndependent) {
  const auto insns = program();
  auto ip = interp::Program::create(insns);
  ASSERT_TRUE(ip.ok()) << ip.error().to_string();
  std::vector<Case> cases;
  Options direct;
  direct.helpers = &table();
  Options counted;
  counted.count_insns = true;
  Options no_loops = direct;
  no_loops.inline_loops = false;
  for (const u64 budget : {u64{0}, u64{500}}) {
    cases.push_back({"plain", Options{}, budget, false});
    cases.push_back({"direct", direct, budget, false});
    cases.push_back({"direct-no-inline-loops", no_loops, budget, false});
    cases.push_back({"counted", counted, budget, false});
    cases.push_back({"checked", Options{}, budget, true});
  }
  // 3 after each kind of end: exit request, budget fault, helper failure, bpf_loop
  const u64 sequence[] = {3, 1, 3, 2, 3, 4, 3, 5, 5, 3, 1, 1, 6};
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.name) + " budget " + std::to_string(c.budget));
    const Program jp = compile(insns, c.opts);
    abi::Env env;
    env.helpers = &table();
    env.options.budget = c.budget;
    env.options.checked = c.checked;
    abi::Env fresh = env;
    abi::Env ienv = env;
    ienv.options.count_insns = c.opts.count_insns;  // the interpreter counts when the JIT variant does
    bool saw_budget = false;
    {
      Program::Runner r(jp, env);
      for (const u64 a : sequence) {
        SCOPED_TRACE(a);
        const u64 args[1] = {a};
        const bool ok = r.run(args);
        const abi::RunResult got = r.result();
        EXPECT_EQ(ok, got.ok());
        EXPECT_EQ(r.r0(), got.r0);
        const abi::RunResult want = jp.run(fresh, args);
        EXPECT_TRUE(same(got, want)) << describe(got) << " vs Program::run " << describe(want);
        const abi::RunResult in = ip->run(ienv, args);
        EXPECT_TRUE(same(got, in)) << describe(got) << " vs interp " << describe(in);
        EXPECT_EQ(got.insns, in.insns);
        if (got.fault == abi::Fault::Budget) saw_budget = true;
        if (a == 3) {
          EXPECT_EQ(got.r0, 6u);
        } else if (a == 5) {
          EXPECT_EQ(got.r0, 303u);
        }
        EXPECT_TRUE(env.regions.empty());  // the checked runs' Stack region is gone after each run
      }
      EXPECT_NE(env.callback, nullptr);
      EXPECT_NE(env.engine, nullptr);
    }
    EXPECT_EQ(saw_budget, c.budget != 0);
    // the Runner published its callback while it lived and restored the Env's after
    EXPECT_EQ(env.callback, nullptr);
    EXPECT_EQ(env.engine, nullptr);
  }
}

// Checked runs: the stack is zeroed at every run (a slot written by one run
// reads 0 in the next) and regions the embedder registered stay.
TEST(JitRunner, CheckedStackZeroedEveryRun) {
  Prog p;
  p(Op::LdxDW, 0, 10, -8)(Op::StDW, 10, 0, -8, 0x55).exit();
  const Program jp = compile(p.v);
  std::vector<u8> mem(16);
  abi::Env env;
  env.options.checked = true;
  env.regions.push_back(abi::Region{reinterpret_cast<u64>(mem.data()), mem.size(), true, abi::RegionKind::Memory});
  Program::Runner r(jp, env);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(r.run({}));
    EXPECT_EQ(r.r0(), 0u);
    ASSERT_EQ(env.regions.size(), 1u);
    EXPECT_EQ(env.regions[0].kind, abi::RegionKind::Memory);
  }
}

// A helper that runs another program on the same Env between and inside
// the Runner's runs: the Runner's state survives the nested run.
const Program* g_inner = nullptr;
u64 run_inner(abi::Env& env, u64 r1, u64, u64, u64, u64) {
  const u64 args[1] = {r1};
  return g_inner->run(env, args).r0;
}

TEST(JitRunner, NestedRunsOnTheSameEnv) {
  Prog in;
  in(Op::MovReg, 0, 1)(Op::AddImm, 0, 0, 0, 1000).exit();
  const Program inner = compile(in.v);
  g_inner = &inner;
  abi::HelperTable h;
  h.set(3, "run_inner", &run_inner);
  // r6 = r1; r0 = run_inner(r1) + r6 * 10 + (value kept on the stack across the call)
  Prog p;
  p(Op::MovReg, 6, 1)(Op::StxDW, 10, 1, -8)(Op::Call, 0, 0, 0, 3)(Op::MulImm, 6, 0, 0, 10)(Op::AddReg, 0, 6)(
      Op::LdxDW, 1, 10, -8)(Op::AddReg, 0, 1)
      .exit();
  const Program outer = compile(p.v);
  abi::Env env;
  env.helpers = &h;
  Program::Runner r(outer, env);
  for (u64 a = 1; a <= 4; ++a) {
    const u64 args[1] = {a};
    ASSERT_TRUE(r.run(args));
    EXPECT_EQ(r.r0(), a + 1000 + a * 10 + a);
    const abi::RunResult between = inner.run(env, args);  // another run between two of the Runner's
    EXPECT_EQ(between.r0, a + 1000);
  }
  g_inner = nullptr;
}

}  // namespace
}  // namespace userbpf::jit::test
