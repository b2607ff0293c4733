// Guard pages around BPF stacks (base::StackLease, issue 8): the areas, their
// reuse and nesting, and what an out-of-stack access does in each engine:
// an unchecked (fast) run faults on a guard page (a forked child's SIGSEGV
// handler sees the fault address inside a guard), a checked run reports the
// memory violation with the instruction index.
#include "base/guarded_stack.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "interp/interp.hpp"
#include "isa/builder.hpp"
#include "jit/jit.hpp"

namespace userbpf {
namespace {

using isa::Op;
using u64 = std::uint64_t;

constexpr std::size_t kStack = static_cast<std::size_t>(isa::kStackSize) * isa::kMaxCallFrames;
constexpr int kGuardHit = 42;     // the child's SIGSEGV was on a guard page
constexpr int kOtherFault = 43;   // ... somewhere else
constexpr int kNoFault = 44;      // the run returned

u64 addr(const void* p) { return reinterpret_cast<u64>(p); }

TEST(GuardedStack, AreaIsUsableAndFramedByGuards) {
  const std::size_t page = base::page_size();
  const base::StackLease lease(kStack);
  std::uint8_t* top = lease.top();
  ASSERT_NE(top, nullptr);
  EXPECT_EQ(addr(top) % page, 0u);
  std::memset(top - kStack, 0xab, kStack);  // every byte is writable
  EXPECT_EQ(top[-1], 0xab);
  EXPECT_EQ(top[-static_cast<std::ptrdiff_t>(kStack)], 0xab);
  EXPECT_FALSE(base::is_stack_guard(top - 1));
  EXPECT_FALSE(base::is_stack_guard(top - kStack));
  EXPECT_TRUE(base::is_stack_guard(top));                 // upper guard
  EXPECT_TRUE(base::is_stack_guard(top + page - 1));
  EXPECT_TRUE(base::is_stack_guard(top - kStack - 1));    // lower guard (4096 = one page: no slack)
  EXPECT_FALSE(base::is_stack_guard(top + page));
  int local = 0;
  EXPECT_FALSE(base::is_stack_guard(&local));
}

TEST(GuardedStack, ReusedAcrossRunsAndNestedLeasesGetTheirOwn) {
  std::uint8_t* first = nullptr;
  {
    const base::StackLease a(kStack);
    first = a.top();
    const base::StackLease b(kStack);  // nested: a different area
    EXPECT_NE(b.top(), a.top());
    const base::StackLease none(0);   // a callback's empty lease takes nothing
    EXPECT_EQ(none.top(), nullptr);
    const base::StackLease c(kStack);
    EXPECT_NE(c.top(), b.top());
    EXPECT_NE(c.top(), a.top());
  }
  const base::StackLease again(kStack);
  EXPECT_EQ(again.top(), first);  // the same area next time: no mmap per run
}

TEST(GuardedStack, DeeperThanThePoolStillGuarded) {
  // more nested leases than the pool's array: the deeper ones take the slow
  // path (areas kept in a per-thread vector), guarded all the same
  std::vector<std::unique_ptr<base::StackLease>> leases;
  std::set<std::uint8_t*> tops;
  for (unsigned i = 0; i < base::StackPool::kSlots + 4; ++i) {
    leases.push_back(std::make_unique<base::StackLease>(kStack));
    std::uint8_t* t = leases.back()->top();
    std::memset(t - kStack, static_cast<int>(i), kStack);
    tops.insert(t);
  }
  EXPECT_EQ(tops.size(), base::StackPool::kSlots + 4);
  std::uint8_t* const first = leases.front()->top();
  std::uint8_t* const deepest = leases.back()->top();
  while (!leases.empty()) leases.pop_back();  // released in reverse order
  const base::StackLease after(kStack);
  EXPECT_EQ(after.top(), first);
  // the deep areas are kept for reuse too
  for (unsigned i = 0; i + 1 < base::StackPool::kSlots + 4; ++i)
    leases.push_back(std::make_unique<base::StackLease>(kStack));
  EXPECT_EQ(leases.back()->top(), deepest);
}

TEST(GuardedStack, ThreadsHaveTheirOwnAreas) {
  std::uint8_t* mine = nullptr;
  std::uint8_t* theirs = nullptr;
  {
    const base::StackLease l(kStack);
    mine = l.top();
  }
  std::thread t([&] {
    const base::StackLease l(kStack);
    theirs = l.top();
    std::memset(theirs - kStack, 1, kStack);
  });
  t.join();
  EXPECT_NE(mine, theirs);
  EXPECT_FALSE(base::is_stack_guard(theirs));  // not one of this thread's guards
}

// ---------------------------------------------------------------- engines

enum class Engine { Interp, Jit };
const char* name(Engine e) { return e == Engine::Interp ? "interpreter" : "JIT"; }

abi::RunResult run(Engine e, const std::vector<isa::Insn>& insns, abi::Env& env) {
  if (e == Engine::Interp) {
    auto p = interp::Program::create(insns);
    if (!p) {
      ADD_FAILURE() << p.error().to_string();
      return {};
    }
    return p->run(env);
  }
  auto p = jit::Program::compile(insns);
  if (!p) {
    ADD_FAILURE() << p.error().to_string();
    return {};
  }
  return p->run(env);
}

// r0 = r10 (the top of the run's stack); exit
std::vector<isa::Insn> return_r10() {
  isa::Builder b;
  b(Op::MovReg, 0, 10).exit();
  return b.v;
}

TEST(GuardedStack, EngineRunsUseGuardedAreas) {
  for (Engine e : {Engine::Interp, Engine::Jit}) {
    SCOPED_TRACE(name(e));
    for (bool checked : {false, true}) {
      abi::Env env;
      env.options.checked = checked;
      const auto r1 = run(e, return_r10(), env);
      const auto r2 = run(e, return_r10(), env);
      ASSERT_TRUE(r1.ok());
      EXPECT_EQ(r1.r0 % base::page_size(), 0u);
      EXPECT_TRUE(base::is_stack_guard(reinterpret_cast<const void*>(r1.r0)));  // r10 ends at the upper guard
      EXPECT_EQ(r1.r0, r2.r0);                                                  // reused
    }
  }
}

// A helper that runs another program (the inner run gets its own area).
const std::vector<isa::Insn>* g_inner = nullptr;
Engine g_inner_engine = Engine::Interp;
u64 g_inner_r10 = 0;
u64 run_inner(abi::Env& /*env*/, u64, u64, u64, u64, u64) {
  abi::Env inner;
  const auto r = run(g_inner_engine, *g_inner, inner);
  g_inner_r10 = r.r0;
  return r.r0;
}

TEST(GuardedStack, RunStartedFromAHelperGetsItsOwnStack) {
  abi::HelperTable helpers;
  helpers.set(1, "run_inner", run_inner);
  const auto inner = return_r10();
  g_inner = &inner;
  // *(u64 *)(r10 - 8) = 7; call run_inner; r0 = *(u64 *)(r10 - 8) (still 7); r6 = r10; ... return r10
  isa::Builder b;
  b(Op::StDW, 10, 0, -8, 7)(Op::Call, 0, 0, 0, 1)(Op::LdxDW, 6, 10, -8)(Op::MovReg, 0, 10);
  b(Op::JeqImm, 6, 0, 1, 7).mov(0, 0).exit();
  for (Engine outer : {Engine::Interp, Engine::Jit}) {
    for (Engine in : {Engine::Interp, Engine::Jit}) {
      SCOPED_TRACE(std::string(name(outer)) + " running " + name(in));
      g_inner_engine = in;
      abi::Env env;
      env.helpers = &helpers;
      const auto r = run(outer, b.v, env);
      ASSERT_TRUE(r.ok()) << r.error->to_string();
      ASSERT_NE(r.r0, 0u) << "the outer run's stack was overwritten by the inner run";
      EXPECT_NE(r.r0, g_inner_r10);
      EXPECT_TRUE(base::is_stack_guard(reinterpret_cast<const void*>(g_inner_r10)));
    }
  }
}

// The store that leaves the stack: *(u64 *)(r10 + off) = 1 at instruction 1.
std::vector<isa::Insn> store_at(std::int16_t off) {
  isa::Builder b;
  b.mov(0, 0)(Op::StDW, 10, 0, off, 1).exit();
  return b.v;
}

void on_segv(int /*sig*/, siginfo_t* info, void* /*uctx*/) {
  ::_exit(base::is_stack_guard(info->si_addr) ? kGuardHit : kOtherFault);
}

// Runs unchecked in the current (forked) process and exits with kGuardHit /
// kOtherFault / kNoFault.
[[noreturn]] void fast_run_in_child(Engine e, std::int16_t off) {
  struct sigaction sa {};
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGSEGV, &sa, nullptr);
  abi::Env env;
  env.options.checked = false;
  (void)run(e, store_at(off), env);
  ::_exit(kNoFault);
}

TEST(GuardedStackDeathTest, UncheckedRunOffTheStackHitsTheGuard) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::int16_t above = 8;                                        // past frame 0's r10
  const auto below = static_cast<std::int16_t>(-static_cast<int>(kStack) - 8);  // under the 8th frame
  for (Engine e : {Engine::Interp, Engine::Jit}) {
    SCOPED_TRACE(name(e));
    EXPECT_EXIT(fast_run_in_child(e, above), ::testing::ExitedWithCode(kGuardHit), "");
    EXPECT_EXIT(fast_run_in_child(e, below), ::testing::ExitedWithCode(kGuardHit), "");
  }
}

TEST(GuardedStack, CheckedRunReportsTheViolationWithTheInstruction) {
  const std::int16_t offs[] = {8, static_cast<std::int16_t>(-static_cast<int>(kStack) - 8), -520};
  for (Engine e : {Engine::Interp, Engine::Jit}) {
    for (std::int16_t off : offs) {
      SCOPED_TRACE(std::string(name(e)) + " off " + std::to_string(off));
      abi::Env env;
      env.options.checked = true;
      const auto r = run(e, store_at(off), env);
      EXPECT_EQ(r.fault, abi::Fault::MemoryViolation);
      ASSERT_TRUE(r.error.has_value());
      EXPECT_EQ(r.error->insn, std::optional<std::size_t>(1)) << r.error->to_string();
    }
  }
}

}  // namespace
}  // namespace userbpf
