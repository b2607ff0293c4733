// JIT: bpf-to-bpf calls, callx, helpers, kfuncs, helper signals, may_goto,
// budget, call depth, checked mode, falling off the end, compile errors,
// listings, W^X. Every run is also compared with the interpreter.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "jit_test_util.hpp"

namespace userbpf::jit::test {
namespace {

u64 add_helper(abi::Env&, u64 a, u64 b, u64 c, u64 d, u64 e) {
  const u64 r = a + b * 10 + c * 100 + d * 1000 + e * 10000;
  clobber_caller_saved();
  return r;
}
u64 exit_helper(abi::Env& env, u64 a, u64, u64, u64, u64) {
  env.request_exit(a);
  return 0;
}
u64 fail_helper(abi::Env& env, u64 a, u64, u64, u64, u64) {
  env.fail(EPERM, "not allowed here");
  return a + 1;
}
// Reads 8 bytes through a pointer argument after checking it like a kernel helper would.
u64 peek_helper(abi::Env& env, u64 ptr, u64, u64, u64, u64) {
  if (env.find_region(ptr, 8, false) == nullptr && env.options.checked) {
    env.fail(EFAULT, "peek: bad pointer");
    return 0;
  }
  u64 v = 0;
  std::memcpy(&v, reinterpret_cast<const void*>(ptr), 8);
  return v;
}

const abi::HelperTable& helpers() {
  static const abi::HelperTable t = [] {
    abi::HelperTable h;
    h.set(1, "add", add_helper);
    h.set(2, "exit", exit_helper);
    h.set(3, "fail", fail_helper);
    h.set(4, "peek", peek_helper);
    h.set_kfunc(70000, "kadd", add_helper);
    return h;
  }();
  return t;
}

RunSetup with_helpers() {
  RunSetup s;
  s.helpers = &helpers();
  return s;
}

TEST(JitCalls, LocalCallPassesArgsAndPreservesCalleeSaved) {
  Prog p;
  p.mov(1, 3).mov(2, 4).mov(6, 60).mov(7, 70).mov(8, 80).mov(9, 90);          // 0..5
  p(Op::CallLocal, 0, 0, 0, 6);                                                // 6 -> 13
  p(Op::AddReg, 0, 6)(Op::AddReg, 0, 7)(Op::AddReg, 0, 8)(Op::AddReg, 0, 9);  // 7..10
  p(Op::AddReg, 0, 1).exit();                                                  // 11, 12
  p(Op::MovReg, 0, 1)(Op::MulReg, 0, 2).mov(6, 0).mov(7, 0).mov(8, 0).mov(9, 0).mov(1, 1000).exit();
  const Outcome o = run_all(p.v, RunSetup{});
  ASSERT_TRUE(o.result.ok()) << describe(o.result);
  EXPECT_EQ(o.result.r0, 12u + 60 + 70 + 80 + 90 + 1000);
}

TEST(JitCalls, CalleeFrameIsBelowCaller) {
  Prog p;
  p(Op::CallLocal, 0, 0, 0, 4)(Op::MovReg, 1, 10)(Op::SubReg, 1, 0)(Op::MovReg, 0, 1).exit();
  p(Op::MovReg, 0, 10).exit();
  EXPECT_EQ(run_all(p.v, RunSetup{}).result.r0, 512u);
}

TEST(JitCalls, CallerStackSurvivesCallAndCalleeReadsCallerFrame) {
  Prog p;
  p(Op::StDW, 10, 0, -8, 1234);
  p(Op::MovReg, 1, 10)(Op::AddImm, 1, 0, 0, -8);  // r1 = &caller slot
  p(Op::CallLocal, 0, 0, 0, 3);                   // 3 -> 7
  p(Op::LdxDW, 1, 10, -8)(Op::AddReg, 0, 1).exit();
  p(Op::LdxDW, 0, 1, 0)(Op::StDW, 10, 0, -8, 99)(Op::StDW, 1, 0, 0, 1000).exit();  // callee
  RunSetup s;
  const Outcome o = run_all(p.v, s);
  EXPECT_TRUE(o.result.ok()) << describe(o.result);
  EXPECT_EQ(o.result.r0, 1234u + 1000);
}

// f(n): n == 0 ? 0 : f(n - 1) + 1 with r6 saved across the call
std::vector<Insn> recursion(s32 n) {
  Prog p;
  p.mov(1, n)(Op::CallLocal, 0, 0, 0, 1).exit();                   // 0..2, call -> 3
  p(Op::JneImm, 1, 0, 2, 0).mov(0, 0).exit();                      // 3..5
  p(Op::MovReg, 6, 1)(Op::SubImm, 1, 0, 0, 1)(Op::CallLocal, 0, 0, 0, -6);  // 6..8 -> 3
  p(Op::AddImm, 0, 0, 0, 1)(Op::AddReg, 0, 6)(Op::SubReg, 0, 6).exit();
  return p.v;
}

TEST(JitCalls, CallDepth) {
  // main + 7 nested frames is the limit (8 frames)
  const Outcome ok = run_all(recursion(6), RunSetup{});
  EXPECT_TRUE(ok.result.ok()) << describe(ok.result);
  EXPECT_EQ(ok.result.r0, 6u);
  const Outcome deep = run_all(recursion(7), RunSetup{});
  ASSERT_EQ(deep.result.fault, abi::Fault::CallDepth) << describe(deep.result);
  EXPECT_EQ(deep.result.error->insn, 8u);
  EXPECT_EQ(deep.result.error->message, abi::call_depth_exceeded(8).message);
}

TEST(JitCalls, HelpersGetArgumentsAndKeepR1ToR5) {
  Prog p;
  p.mov(1, 1).mov(2, 2).mov(3, 3).mov(4, 4).mov(5, 5)(Op::Call, 0, 0, 0, 1);
  // r0 = helper result + r1..r5 (unchanged) * 100000
  for (std::uint8_t r = 1; r <= 5; ++r) p(Op::MovReg, 6, r)(Op::MulImm, 6, 0, 0, 100000)(Op::AddReg, 0, 6);
  p.exit();
  const Outcome o = run_all(p.v, with_helpers());
  ASSERT_TRUE(o.result.ok()) << describe(o.result);
  EXPECT_EQ(o.result.r0, 54321u + 15u * 100000);
}

TEST(JitCalls, Kfunc) {
  Prog p;
  p.mov(1, 7).mov(2, 0).mov(3, 0).mov(4, 0).mov(5, 1)(Op::CallKfunc, 0, 0, 0, 70000).exit();
  EXPECT_EQ(run_all(p.v, with_helpers()).result.r0, 10007u);
  Prog q;
  q.mov(0, 5)(Op::CallKfunc, 0, 0, 0, 70001).exit();
  const Outcome o = run_all(q.v, with_helpers());
  ASSERT_EQ(o.result.fault, abi::Fault::UnknownHelper);
  EXPECT_EQ(o.result.error->message, abi::unknown_kfunc(1, 70001).message);
  EXPECT_EQ(o.result.r0, 5u);
}

TEST(JitCalls, UnknownHelper) {
  Prog p;
  p.mov(0, 3)(Op::Call, 0, 0, 0, 99).exit();
  for (const abi::HelperTable* h : {static_cast<const abi::HelperTable*>(nullptr), &helpers()}) {
    RunSetup s;
    s.helpers = h;
    const Outcome o = run_all(p.v, s);
    ASSERT_EQ(o.result.fault, abi::Fault::UnknownHelper) << describe(o.result);
    EXPECT_EQ(o.result.error->message, "call to unknown helper 99");
    EXPECT_EQ(o.result.error->insn, 1u);
    EXPECT_EQ(o.result.r0, 3u);
  }
}

TEST(JitCalls, HelperExitAndFailUnwindFromNestedFrames) {
  for (s32 id : {2, 3}) {
    Prog p;
    p.mov(6, 1)(Op::CallLocal, 0, 0, 0, 2).mov(0, 77).exit();  // 0..3, call -> 4
    p(Op::CallLocal, 0, 0, 0, 1).exit();                        // 4, 5 -> 6
    p.mov(1, 42)(Op::Call, 0, 0, 0, id).mov(0, 1).exit();       // 6..9
    const Outcome o = run_all(p.v, with_helpers());
    if (id == 2) {
      EXPECT_TRUE(o.result.ok()) << describe(o.result);
      EXPECT_EQ(o.result.r0, 42u);
    } else {
      ASSERT_EQ(o.result.fault, abi::Fault::HelperFailed) << describe(o.result);
      EXPECT_EQ(o.result.error->message, "not allowed here");
      EXPECT_EQ(o.result.error->code, EPERM);
      EXPECT_EQ(o.result.error->insn, 7u);
      EXPECT_EQ(o.result.r0, 43u);
    }
  }
}

TEST(JitCalls, CheckedHelperSeesTheLiveStackRegion) {
  Prog p;
  p(Op::StDW, 10, 0, -8, 4321)(Op::MovReg, 1, 10)(Op::AddImm, 1, 0, 0, -8)(Op::Call, 0, 0, 0, 4).exit();
  RunSetup s = with_helpers();
  s.checked = true;
  const Outcome o = run_all(p.v, s);
  EXPECT_TRUE(o.result.ok()) << describe(o.result);
  EXPECT_EQ(o.result.r0, 4321u);
}

TEST(JitCalls, Callx) {
  // callx to a helper id
  Prog h;
  h.mov(1, 5).mov(2, 0).mov(3, 0).mov(4, 0).mov(5, 0).mov(6, 1)(Op::Callx, 6).exit();
  EXPECT_EQ(run_all(h.v, with_helpers()).result.r0, 5u);
  // callx to a function address from lddw func
  Prog f;
  f.lddw(6, 0, Op::LddwFunc);
  f.v[0].imm = 4;  // 0 + 1 + 4 = 5
  f.mov(1, 20)(Op::Callx, 6).exit();  // 2, 3, 4
  f(Op::MovReg, 0, 1)(Op::AddImm, 0, 0, 0, 1).exit();  // 5..7
  EXPECT_EQ(run_all(f.v, with_helpers()).result.r0, 21u);
  // bad targets
  for (u64 bad : {abi::func_addr(3), u64{0x100000000}, abi::func_addr(1000)}) {
    Prog b;
    b.lddw(6, bad).mov(0, 9)(Op::Callx, 6).exit();
    const Outcome o = run_all(b.v, with_helpers());
    ASSERT_EQ(o.result.fault, abi::Fault::BadCallTarget) << describe(o.result);
    EXPECT_EQ(o.result.error->message, abi::bad_call_target(3, bad).message);
    EXPECT_EQ(o.result.r0, 9u);
  }
  Prog u;
  u.mov(6, 12345)(Op::Callx, 6).exit();
  const Outcome o = run_all(u.v, with_helpers());
  ASSERT_EQ(o.result.fault, abi::Fault::UnknownHelper) << describe(o.result);
  EXPECT_EQ(o.result.error->message, "call to unknown helper 12345");
}

TEST(JitCalls, MayGotoBudgetPerFrame) {
  // counts iterations until may_goto jumps out
  Prog p;
  p.mov(0, 0);
  p(Op::MayGoto, 0, 0, 2)(Op::AddImm, 0, 0, 0, 1)(Op::Ja, 0, 0, -3).exit();  // 1..4
  EXPECT_EQ(run_all(p.v, RunSetup{}, false).result.r0, abi::kMayGotoBudget);
  // a callee gets a fresh counter; the caller's is kept across the call
  Prog q;
  q.mov(6, 0);
  q(Op::MayGoto, 0, 0, 1)(Op::Ja, 0, 0, 1)(Op::Ja, 0, 0, 1)(Op::AddImm, 6, 0, 0, 1);  // 1..4: uses one
  q(Op::CallLocal, 0, 0, 0, 2)(Op::AddReg, 0, 6).exit();  // 5..7, call -> 8
  q.mov(0, 0)(Op::MayGoto, 0, 0, 2)(Op::AddImm, 0, 0, 0, 1)(Op::Ja, 0, 0, -3).exit();  // 8..12
  EXPECT_EQ(run_all(q.v, RunSetup{}, false).result.r0, abi::kMayGotoBudget + 1);
}

TEST(JitCalls, Budget) {
  Prog p;
  p.mov(0, 0).mov(1, 100);
  p(Op::AddImm, 0, 0, 0, 1)(Op::SubImm, 1, 0, 0, 1)(Op::JneImm, 1, 0, -3, 0).exit();  // 2..5
  // 2 + 100 * 3 + 1 = 303 instructions
  for (u64 budget : {u64{303}, u64{302}, u64{1}, u64{150}}) {
    RunSetup s;
    s.budget = budget;
    const Outcome o = run_all(p.v, s);
    if (budget == 303) {
      EXPECT_TRUE(o.result.ok()) << describe(o.result);
      EXPECT_EQ(o.result.insns, 303u);
    } else {
      ASSERT_EQ(o.result.fault, abi::Fault::Budget) << describe(o.result);
      const std::size_t pc = budget == 302 ? 5 : budget == 1 ? 1 : 2 + (budget - 2) % 3;
      EXPECT_EQ(o.result.error->insn, pc) << budget;
      EXPECT_EQ(o.result.error->message, abi::budget_exhausted(pc, budget).message);
    }
    const Outcome i = run_engine(Engine::Interp, p.v, s);
    EXPECT_EQ(o.result.insns, i.result.insns);
  }
  // Options::budget without an Env budget
  Options opts;
  opts.budget = 10;
  auto prog = Program::compile(p.v, opts);
  ASSERT_TRUE(prog.ok());
  abi::Env env;
  const auto r = prog->run(env);
  ASSERT_EQ(r.fault, abi::Fault::Budget);
  EXPECT_EQ(r.error->message, "instruction budget of 10 exhausted");
}

TEST(JitCalls, CountsInstructionsLikeTheInterpreter) {
  const auto prog = recursion(5);
  RunSetup s;
  const Outcome j = run_engine(Engine::JitCounted, prog, s);
  abi::Env env;
  env.options.count_insns = true;
  auto ip = interp::Program::create(prog);
  ASSERT_TRUE(ip.ok());
  const auto ir = ip->run(env);
  EXPECT_EQ(j.result.insns, ir.insns);
  EXPECT_GT(j.result.insns, 0u);
}

TEST(JitCalls, FellOffTheEnd) {
  Prog p;
  p.mov(0, 5)(Op::JeqImm, 0, 0, 1, 5).exit().mov(0, 6);
  const Outcome o = run_all(p.v, RunSetup{}, true, false);
  ASSERT_EQ(o.result.fault, abi::Fault::FellOffEnd) << describe(o.result);
  EXPECT_EQ(o.result.error->insn, 4u);
  EXPECT_EQ(o.result.r0, 6u);
}

TEST(JitCalls, WritesToR10AreAllowedAndCallsUseTheCanonicalFrame) {
  Prog p;
  p(Op::MovReg, 6, 10)(Op::AddImm, 10, 0, 0, -64)(Op::StDW, 10, 0, 0, 5);  // 0..2
  p(Op::CallLocal, 0, 0, 0, 4);                                              // 3 -> 8
  p(Op::MovReg, 1, 6)(Op::SubReg, 1, 10)(Op::AddReg, 0, 1).exit();           // 4..7: r10 is canonical again
  p(Op::MovReg, 0, 10)(Op::SubReg, 0, 6)(Op::AddImm, 0, 0, 0, 1000).exit();  // 8..11: callee r10 - caller
  const Outcome o = run_all(p.v, RunSetup{});
  EXPECT_TRUE(o.result.ok()) << describe(o.result);
  EXPECT_EQ(o.result.r0, static_cast<u64>(1000 - 512));
}

// ---------------------------------------------------------------- checked mode
TEST(JitChecked, Violations) {
  struct Case {
    const char* name;
    Prog p;
    bool fault;
  };
  std::vector<Case> cases;
  {
    Prog p;  // read past the end of the memory region
    p(Op::LdxDW, 0, 1, 60).exit();
    cases.push_back({"read past end", p, true});
  }
  {
    Prog p;  // last 8 bytes: fine
    p(Op::LdxDW, 0, 1, 56).exit();
    cases.push_back({"read at end", p, false});
  }
  {
    Prog p;
    p(Op::StB, 1, 0, -1, 1).mov(0, 0).exit();
    cases.push_back({"write before start", p, true});
  }
  {
    Prog p;
    p(Op::StxDW, 10, 1, -520).mov(0, 0).exit();  // below the live frame
    cases.push_back({"stack below frame", p, true});
  }
  {
    Prog p;
    p(Op::StxDW, 10, 1, 0).mov(0, 0).exit();  // at the top: outside
    cases.push_back({"stack top", p, true});
  }
  {
    Prog p;
    p(Op::StxDW, 10, 1, -512)(Op::LdxDW, 0, 10, -512).mov(0, 0).exit();
    cases.push_back({"stack bottom", p, false});
  }
  {
    Prog p;
    p.mov(2, 1)(Op::AtomicFetchAddDW, 1, 2, 64).exit();
    cases.push_back({"atomic past end", p, true});
  }
  {
    Prog p;  // a callee's frame is stale after it returns
    p(Op::CallLocal, 0, 0, 0, 2)(Op::LdxDW, 0, 0, 0).exit();
    p(Op::MovReg, 0, 10)(Op::AddImm, 0, 0, 0, -8).exit();
    cases.push_back({"stale frame", p, true});
  }
  {
    Prog p;
    p.mov(0, 0)(Op::LdxB, 0, 0, 0).exit();  // null
    cases.push_back({"null", p, true});
  }
  for (auto& c : cases) {
    RunSetup s;
    s.memory.assign(64, 0);
    s.mem_arg = true;
    s.checked = true;
    s.addresses_differ = true;  // stack addresses
    const Outcome o = run_all(c.p.v, s, false);
    if (c.fault) {
      ASSERT_EQ(o.result.fault, abi::Fault::MemoryViolation) << c.name << ": " << describe(o.result);
      EXPECT_NE(o.result.error->message.find("outside every memory region"), std::string::npos);
    } else {
      EXPECT_TRUE(o.result.ok()) << c.name << ": " << describe(o.result);
    }
  }
}

TEST(JitChecked, ReadOnlyRegion) {
  Prog p;
  p(Op::LdxW, 0, 1, 0)(Op::StW, 1, 0, 4, 7).exit();
  RunSetup s;
  s.memory.assign(16, 1);
  s.mem_arg = true;
  s.mem_writable = false;
  s.checked = true;
  const Outcome o = run_all(p.v, s, false);
  ASSERT_EQ(o.result.fault, abi::Fault::MemoryViolation);
  EXPECT_EQ(o.result.error->insn, 1u);
  EXPECT_NE(o.result.error->message.find("invalid write of 4 bytes"), std::string::npos);
  EXPECT_EQ(o.result.r0, 0x01010101u);  // r0 at the fault
}

// ---------------------------------------------------------------- compile errors
TEST(JitCompile, Errors) {
  struct Case {
    std::vector<Insn> v;
    std::size_t insn;
    const char* text;
  };
  std::vector<Case> cases;
  cases.push_back({{isa::make(Op::MovImm, 11, 0, 0, 1), isa::make(Op::Exit)}, 0, "R11 is invalid"});
  cases.push_back({{isa::make(Op::Lddw, 1), isa::make(Op::Exit)}, 0, "second slot"});
  cases.push_back({{isa::make(Op::Ja, 0, 0, 5), isa::make(Op::Exit)}, 0, "jump out of range"});
  cases.push_back({{isa::make(Op::MovImm, 0), isa::make(Op::MovImm, 0)}, 1, "last insn is not an exit or jmp"});
  for (const auto& c : cases) {
    auto p = Program::compile(c.v);
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error().insn, c.insn);
    EXPECT_NE(p.error().message.find(c.text), std::string::npos) << p.error().message;
  }
  EXPECT_FALSE(Program::compile(std::vector<Insn>{}).ok());
}

// ---------------------------------------------------------------- listing, W^X, blinding, threads
TEST(JitListing, InterleavesBpfIndexesWithMachineCode) {
  Prog p;
  p.mov(0, 0x1234567)(Op::AddImm, 0, 0, 0, 3)(Op::JgtImm, 0, 0, 1, 5).exit().exit();
  const Program prog = compile(p.v);
  const std::string l = prog.disassemble([&](std::size_t pc) { return "insn#" + std::to_string(pc); });
  EXPECT_NE(l.find("; 0: insn#0\n"), std::string::npos) << l;
  EXPECT_NE(l.find("; 2: insn#2\n"), std::string::npos) << l;
  EXPECT_EQ(l.find("; 1: insn#0"), std::string::npos) << l;
  // Without a printer: the instruction's raw bytes.
  const std::string raw = prog.disassemble();
  EXPECT_NE(raw.find("; 0: b7 00 00 00 67 45 23 01\n"), std::string::npos) << raw;
  EXPECT_NE(l.find("mov eax, 0x1234567"), std::string::npos) << l;
  EXPECT_NE(l.find("add rax, 0x03"), std::string::npos) << l;
  EXPECT_NE(l.find("cmp rax, 0x05"), std::string::npos) << l;
  EXPECT_NE(l.find("; out-of-line"), std::string::npos) << l;
  EXPECT_GT(prog.code_size(), 0u);
  EXPECT_EQ(prog.size(), 5u);
}

TEST(JitListing, BlindingHidesImmediates) {
  Prog p;
  p.mov(0, 0x5a5a1234)(Op::AddImm, 0, 0, 0, 0x3c3c0001).exit();
  Options o;
  const std::string plain = compile(p.v, o).disassemble();
  EXPECT_NE(plain.find("0x5A5A1234"), std::string::npos) << plain;
  o.blinding = true;
  const Program b = compile(p.v, o);
  const std::string blinded = b.disassemble();
  EXPECT_EQ(blinded.find("0x5A5A1234"), std::string::npos) << blinded;
  EXPECT_EQ(blinded.find("0x3C3C0001"), std::string::npos) << blinded;
  abi::Env env;
  EXPECT_EQ(b.run(env).r0, 0x5a5a1234u + 0x3c3c0001u);
}

TEST(JitMemory, NoMappingIsWritableAndExecutable) {
  Prog p;
  p.mov(0, 1).exit();
  std::vector<Program> progs;
  for (int i = 0; i < 4; ++i) progs.push_back(compile(p.v));
  std::ifstream maps("/proc/self/maps");
  std::string line;
  int checked = 0;
  while (std::getline(maps, line)) {
    std::istringstream ls(line);
    std::string range, perms;
    ls >> range >> perms;
    EXPECT_FALSE(perms.size() >= 3 && perms[1] == 'w' && perms[2] == 'x') << line;
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST(JitThreads, OneProgramManyRuns) {
  Prog p;
  p.mov(0, 0).mov(2, 100000);
  p(Op::AddReg, 0, 1)(Op::SubImm, 2, 0, 0, 1)(Op::JneImm, 2, 0, -3, 0).exit();
  const Program prog = compile(p.v);
  std::vector<std::thread> ts;
  std::vector<u64> out(4);
  for (std::size_t t = 0; t < out.size(); ++t)
    ts.emplace_back([&, t] {
      abi::Env env;
      const std::vector<u64> args = {t + 1};
      out[t] = prog.run(env, args).r0;
    });
  for (auto& t : ts) t.join();
  for (std::size_t t = 0; t < out.size(); ++t) EXPECT_EQ(out[t], (t + 1) * 100000);
}

}  // namespace
}  // namespace userbpf::jit::test
