// Tests of the kernel oracle (bpf() wrappers and the run_r0 wrapper program).
// Every test that needs the kernel skips, with the probe's reason, when the
// kernel's BPF is unavailable.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "oracle/oracle.hpp"

using namespace userbpf;
using isa::make;
using isa::Op;

namespace {

#define REQUIRE_KERNEL()                                                          \
  do {                                                                            \
    if (!oracle::available().ok) GTEST_SKIP() << oracle::available().reason;      \
  } while (0)

constexpr std::uint32_t kSocketFilter = 1;  // BPF_PROG_TYPE_SOCKET_FILTER

std::vector<isa::Insn> lddw(std::uint8_t dst, std::uint64_t v) {
  return {make(Op::Lddw, dst, 0, 0, static_cast<std::int32_t>(static_cast<std::uint32_t>(v)),
               static_cast<std::int32_t>(static_cast<std::uint32_t>(v >> 32))),
          make(Op::LddwTail)};
}

oracle::R0Run run_ok(const std::vector<isa::Insn>& prog, std::vector<std::uint8_t> mem = {}) {
  auto r = oracle::run_r0(prog, mem);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  if (!r.ok()) return {};
  EXPECT_TRUE(r->loaded) << "errno " << r->load_errno << "\n" << r->verifier_log;
  return *r;
}

}  // namespace

TEST(Oracle, ProbeIsCachedAndExplainsItself) {
  const auto& a = oracle::available();
  const auto& b = oracle::available();
  EXPECT_EQ(&a, &b);
  if (!a.ok) {
    EXPECT_FALSE(a.reason.empty());
  }
}

TEST(Oracle, LoadAndTestRunReturnsR0) {
  REQUIRE_KERNEL();
  std::vector<isa::Insn> p = {make(Op::MovImm, 0, 0, 0, 42), make(Op::Exit)};
  auto lr = oracle::load(isa::encode(p), kSocketFilter);
  ASSERT_TRUE(lr.prog) << lr.err << "\n" << lr.log;
  EXPECT_EQ(lr.err, 0);
  std::vector<std::uint8_t> pkt(64, 0);
  auto tr = oracle::test_run(lr.prog, pkt, 10);
  ASSERT_TRUE(tr.ok()) << tr.error().message;
  EXPECT_EQ(tr->retval, 42u);
}

TEST(Oracle, RefusedLoadGivesErrnoAndLog) {
  REQUIRE_KERNEL();
  // reads r3, which is uninitialized at entry
  std::vector<isa::Insn> p = {make(Op::MovReg, 0, 3), make(Op::Exit)};
  auto lr = oracle::load(isa::encode(p), kSocketFilter);
  EXPECT_FALSE(lr.prog);
  EXPECT_EQ(lr.err, EACCES);
  EXPECT_NE(lr.log.find("R3 !read_ok"), std::string::npos) << lr.log;
}

TEST(Oracle, LogBufferGrowsOnEnospc) {
  REQUIRE_KERNEL();
  // log_level 2 prints every instruction's state: 4000 instructions exceed the initial 64 KiB.
  std::vector<isa::Insn> p;
  p.push_back(make(Op::MovImm, 0, 0, 0, 0));
  for (int i = 0; i < 4000; ++i) p.push_back(make(Op::AddImm, 0, 0, 0, 1));
  p.push_back(make(Op::Exit));
  auto lr = oracle::load(isa::encode(p), kSocketFilter, 2);
  ASSERT_TRUE(lr.prog) << lr.err;
  EXPECT_GT(lr.log.size(), 64u * 1024);
}

TEST(Oracle, ArrayMapUpdateAndLookup) {
  REQUIRE_KERNEL();
  auto m = oracle::create_array_map(12, 3);
  ASSERT_TRUE(m.ok()) << m.error().message;
  std::vector<std::uint8_t> v = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  ASSERT_TRUE(oracle::map_update(*m, 2, v).ok());
  auto got = oracle::map_lookup(*m, 2, 12);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, v);
  auto zero = oracle::map_lookup(*m, 0, 12);
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(*zero, std::vector<std::uint8_t>(12, 0));
  auto bad = oracle::map_lookup(*m, 3, 12);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ENOENT);
}

TEST(Oracle, RunR0ReturnsFull64BitR0) {
  REQUIRE_KERNEL();
  auto p = lddw(0, 0x8123456789abcdefULL);
  p.push_back(make(Op::Exit));
  EXPECT_EQ(run_ok(p).r0, 0x8123456789abcdefULL);
}

TEST(Oracle, RunR0PassesMemoryAndLength) {
  REQUIRE_KERNEL();
  // r0 = *(u64 *)(r1 + 0) + r2
  std::vector<isa::Insn> p = {make(Op::LdxDW, 0, 1, 0), make(Op::AddReg, 0, 2), make(Op::Exit)};
  std::vector<std::uint8_t> mem = {1, 0, 0, 0, 0, 0, 0, 0x10, 0xaa, 0xbb};
  EXPECT_EQ(run_ok(p, mem).r0, 0x1000000000000001ULL + 10);
}

TEST(Oracle, RunR0ReturnsMemoryAfter) {
  REQUIRE_KERNEL();
  std::vector<isa::Insn> p = {make(Op::StW, 1, 0, 2, 0x11223344), make(Op::MovImm, 0, 0, 0, 0), make(Op::Exit)};
  std::vector<std::uint8_t> mem(8, 0xff);
  auto r = run_ok(p, mem);
  std::vector<std::uint8_t> want = {0xff, 0xff, 0x44, 0x33, 0x22, 0x11, 0xff, 0xff};
  EXPECT_EQ(r.memory_after, want);
}

TEST(Oracle, RunR0KeepsRelativeOffsetsOfLocalCalls) {
  REQUIRE_KERNEL();
  // main: r6 = 7; call f; r0 += r6; exit      f: r0 = 100; r6 = 1; exit   (r6 callee-saved? no: we set it in f
  // only through a copy) -> f uses r0 only.
  std::vector<isa::Insn> p = {make(Op::MovImm, 6, 0, 0, 7), make(Op::CallLocal, 0, 0, 0, 2),
                              make(Op::AddReg, 0, 6), make(Op::Exit),
                              make(Op::MovImm, 0, 0, 0, 100), make(Op::Exit)};
  EXPECT_EQ(run_ok(p).r0, 107u);
}

TEST(Oracle, RunR0LeavesTheWholeStackToTheProgram) {
  REQUIRE_KERNEL();
  std::vector<isa::Insn> p = {make(Op::StDW, 10, 0, -512, 5), make(Op::LdxDW, 0, 10, -512), make(Op::Exit)};
  EXPECT_EQ(run_ok(p).r0, 5u);
}

TEST(Oracle, RunR0ReportsRefusalWithLog) {
  REQUIRE_KERNEL();
  // reads past the 4-byte memory: the verifier knows the value size
  std::vector<isa::Insn> p = {make(Op::LdxDW, 0, 1, 0), make(Op::Exit)};
  std::vector<std::uint8_t> mem(4, 0);
  auto r = oracle::run_r0(p, mem);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->loaded);
  EXPECT_EQ(r->load_errno, EACCES);
  EXPECT_NE(r->verifier_log.find("invalid access to map value"), std::string::npos) << r->verifier_log;
}

TEST(Oracle, NotComparablePrograms) {
  const std::vector<std::vector<isa::Insn>> cases = {
      {make(Op::MovImm, 1, 0, 0, 0), make(Op::Call, 0, 0, 0, oracle::kUnwindHelper), make(Op::Exit)},
      {make(Op::MovReg, 6, 1), make(Op::LdAbsB, 0, 0, 0, 0), make(Op::Exit)},
      {make(Op::MovImm, 1, 0, 0, 0), make(Op::Callx, 1), make(Op::Exit)},
  };
  for (const auto& p : cases) {
    auto why = oracle::not_comparable(p);
    ASSERT_TRUE(why.has_value());
    EXPECT_NE(why->find("insn 1"), std::string::npos) << *why;
    auto r = oracle::run_r0(p, {});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, EOPNOTSUPP);
  }
  std::vector<isa::Insn> plain = {make(Op::Call, 0, 0, 0, 7), make(Op::Exit)};
  EXPECT_FALSE(oracle::not_comparable(plain).has_value());
  auto wide = lddw(0, 0x2000000000000000ULL);  // the lddw tail is no row of the table
  wide.push_back(make(Op::Exit));
  EXPECT_FALSE(oracle::not_comparable(wide).has_value());
}

TEST(Oracle, WrapperCallsTheAppendedProgram) {
  std::vector<isa::Insn> p = {make(Op::MovImm, 0, 0, 0, 1), make(Op::Exit)};
  auto w = oracle::make_wrapper(3, 4, 16, p);
  ASSERT_GE(w.size(), p.size());
  const std::size_t start = w.size() - p.size();
  EXPECT_EQ(w[start], p[0]);
  std::size_t calls = 0;
  for (std::size_t pc = 0; pc < start; ++pc) {
    if (w[pc].op != Op::CallLocal) continue;
    ++calls;
    EXPECT_EQ(isa::jump_target(make(Op::Ja, 0, 0, static_cast<std::int16_t>(w[pc].imm)), pc),
              static_cast<std::int64_t>(start));
  }
  EXPECT_EQ(calls, 1u);
  EXPECT_TRUE(isa::check_structure(w).ok());
}
