// The test run's repeat loop (runtime/test_run.cpp, RunLoop): what it sets
// once per test run or once per program must still hold at every
// repetition. Runs in both engines (runtime_test: JIT, runtime_interp_test:
// interpreter).
//   - the count of runs, with tail calls taken on some repetitions: after a
//     repetition that tail-called, the next one runs the main program again
//     with its own maps (bpf_tail_call resolves its program array through
//     them) and with the Env's signals reset (the tail call's exit request
//     must not end the next repetition at its first helper call; the
//     target's run resets them too, so jit_runner_test checks the engine);
//   - the result is the last repetition's (the target's when it tail-called);
//   - a fault stops the loop at that repetition (checked runs: the regions
//     and the zeroed stack are set up again at every repetition), and the
//     next test run starts afresh;
//   - the duration is per repetition (an upper bound from the wall clock, no
//     timing assumption).
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <time.h>

#include <cstring>

#include "runtime/runtime.hpp"
#include "test_util.hpp"

using namespace userbpf;
using isa::Op;
using userbpf::testing::Asm;
using userbpf::testing::ptr;
using userbpf::testing::TestRuntime;

namespace {

struct Loop {
  TestRuntime t;
  explicit Loop(bool verify = true) : t([verify](runtime::Options& o) { o.verify = verify; }) {}

  int map(std::uint32_t type, std::uint32_t vs) {
    bpf_attr a{};
    a.map_type = type;
    a.key_size = 4;
    a.value_size = vs;
    a.max_entries = 1;
    return t.call(BPF_MAP_CREATE, a);
  }
  // key 0 = v (a u64 counter, or a program handle in a program array)
  template <class T>
  int set(int fd, T v) {
    const std::uint32_t k = 0;
    bpf_attr a{};
    a.map_fd = static_cast<std::uint32_t>(fd);
    a.key = ptr(&k);
    a.value = ptr(&v);
    return t.call(BPF_MAP_UPDATE_ELEM, a);
  }
  std::uint64_t get(int fd) {
    const std::uint32_t k = 0;
    std::uint64_t v = ~0ULL;
    bpf_attr a{};
    a.map_fd = static_cast<std::uint32_t>(fd);
    a.key = ptr(&k);
    a.value = ptr(&v);
    EXPECT_EQ(t.call(BPF_MAP_LOOKUP_ELEM, a), 0);
    return v;
  }
  int load(const Asm& p) {
    const auto raw = p.raw();
    bpf_attr a{};
    a.prog_type = BPF_PROG_TYPE_XDP;
    a.insn_cnt = static_cast<std::uint32_t>(raw.size());
    a.insns = ptr(raw.data());
    a.license = ptr("GPL");
    return t.call(BPF_PROG_LOAD, a);
  }
  Result<runtime::TestRunOutcome> run(int prog, std::uint32_t repeat) {
    static const std::vector<std::uint8_t> pkt(64, 0);
    runtime::TestRunArgs a;
    a.data_in = pkt;
    a.repeat = repeat;
    return t.rt->test_run(prog, a);
  }
};

// *counter += 1 in the array `map` (key 0); r0 = the counter's new value
// (the lookup result is kept in r7). Uses r1-r3, r7.
Asm& count(Asm& a, int map, const std::string& tag) {
  a.lookup_key0(map).jmp(Op::JeqImm, 0, 0, "miss" + tag);
  a.op(Op::MovReg, 7, 0).op(Op::MovImm, 1, 0, 0, 1).op(Op::AtomicAddDW, 7, 1, 0);
  a.op(Op::LdxDW, 0, 7, 0);
  return a;
}

std::uint64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace

TEST(RunLoop, TailCallsOnSomeRepetitions) {
  Loop l;
  const int main_runs = l.map(BPF_MAP_TYPE_ARRAY, 8), target_runs = l.map(BPF_MAP_TYPE_ARRAY, 8);
  const int jt = l.map(BPF_MAP_TYPE_PROG_ARRAY, 4);
  ASSERT_GE(main_runs, 0);
  ASSERT_GE(target_runs, 0);
  ASSERT_GE(jt, 0);
  // the target: counts its runs, returns 42
  Asm t;
  count(t, target_runs, "").op(Op::MovImm, 0, 0, 0, 42).op(Op::Exit).label("miss").op(Op::MovImm, 0, 0, 0, 2).op(Op::Exit);
  const int target = l.load(t);
  ASSERT_GE(target, 0);
  ASSERT_EQ(l.set(jt, std::int32_t{target}), 0);
  // the main program: a helper call first (a signal left over from the
  // previous repetition's tail call would end the run there, returning 0),
  // then counts its runs and tail-calls the target when the count is odd;
  // returns 1 when it does not tail-call
  Asm m;
  m.op(Op::MovReg, 6, 1).call(BPF_FUNC_get_prandom_u32);
  count(m, main_runs, "").op(Op::AndImm, 0, 0, 0, 1).jmp(Op::JeqImm, 0, 0, "out");
  m.op(Op::MovReg, 1, 6).lddw(Op::LddwMapFd, 2, jt).op(Op::MovImm, 3, 0, 0, 0).call(BPF_FUNC_tail_call);
  m.label("out").op(Op::MovImm, 0, 0, 0, 1).op(Op::Exit).label("miss").op(Op::MovImm, 0, 0, 0, 3).op(Op::Exit);
  const int prog = l.load(m);
  ASSERT_GE(prog, 0);
  for (const std::uint32_t repeat : {1u, 2u, 9u, 10u, 1000u}) {
    SCOPED_TRACE(repeat);
    ASSERT_EQ(l.set(main_runs, std::uint64_t{0}), 0);
    ASSERT_EQ(l.set(target_runs, std::uint64_t{0}), 0);
    auto r = l.run(prog, repeat);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(l.get(main_runs), repeat);
    EXPECT_EQ(l.get(target_runs), (repeat + 1) / 2);  // counts 1, 3, 5, ...
    // the last repetition's result: the target's (odd count) or the main program's
    EXPECT_EQ(r->retval, repeat % 2 == 1 ? 42u : 1u);
  }
  // the target alone, then the main program again: nothing is left over
  ASSERT_EQ(l.set(target_runs, std::uint64_t{0}), 0);
  auto r = l.run(target, 5);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->retval, 42u);
  EXPECT_EQ(l.get(target_runs), 5u);
}

// Unverified programs run checked: a memory violation at the 5th
// repetition ends the test run there with the fault; the next test run
// starts afresh.
TEST(RunLoop, FaultStopsTheLoop) {
  Loop l(/*verify=*/false);
  const int runs = l.map(BPF_MAP_TYPE_ARRAY, 8);
  ASSERT_GE(runs, 0);
  // a stack slot the program reads before writing reads 0 (the stack is
  // zeroed at every checked run), then it writes it
  Asm p;
  p.op(Op::LdxDW, 8, 10, -16).op(Op::StDW, 10, 0, -16, 0x55);
  count(p, runs, "").jmp(Op::JeqImm, 0, 5, "bad");
  p.op(Op::MovReg, 0, 8).op(Op::AddImm, 0, 0, 0, 7).op(Op::Exit);
  p.label("bad").op(Op::MovImm, 1, 0, 0, 0).op(Op::LdxDW, 0, 1, 0).op(Op::Exit);  // load from address 0
  p.label("miss").op(Op::MovImm, 0, 0, 0, 3).op(Op::Exit);
  const int prog = l.load(p);
  ASSERT_GE(prog, 0);
  ASSERT_EQ(l.set(runs, std::uint64_t{0}), 0);
  auto r = l.run(prog, 4);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->retval, 7u);  // the slot read 0 at the 4th repetition too
  EXPECT_EQ(l.get(runs), 4u);
  r = l.run(prog, 100);  // counts 5..: faults at 5
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EFAULT) << r.error().to_string();
  EXPECT_NE(r.error().message.find("invalid read of 8 bytes at 0x0"), std::string::npos) << r.error().to_string();
  EXPECT_EQ(l.get(runs), 5u);
  r = l.run(prog, 3);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->retval, 7u);
  EXPECT_EQ(l.get(runs), 8u);
}

// duration = the loop's time / repeat: at most the command's wall time / repeat.
TEST(RunLoop, DurationIsPerRepetition) {
  Loop l;
  const int runs = l.map(BPF_MAP_TYPE_ARRAY, 8);
  ASSERT_GE(runs, 0);
  Asm p;
  count(p, runs, "").op(Op::MovImm, 0, 0, 0, 0).op(Op::Exit).label("miss").op(Op::MovImm, 0, 0, 0, 3).op(Op::Exit);
  const int prog = l.load(p);
  ASSERT_GE(prog, 0);
  ASSERT_EQ(l.set(runs, std::uint64_t{0}), 0);
  constexpr std::uint32_t kRepeat = 20000;
  const std::uint64_t t0 = mono_ns();
  auto r = l.run(prog, kRepeat);
  const std::uint64_t wall = mono_ns() - t0;
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(l.get(runs), kRepeat);
  EXPECT_LE(std::uint64_t{r->duration_ns} * kRepeat, wall);
}
