// Interpreter: instruction semantics per family, edge cases, memory, modes.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <limits>
#include <thread>

#include "interp_test_util.hpp"

namespace userbpf::interp::test {
namespace {

using u64 = std::uint64_t;

constexpr RunMode kModes[] = {RunMode::Fast, RunMode::Counted, RunMode::Checked};

// Runs `insns` in every mode with r1 = mem, r2 = mem size (registered as a
// writable region for checked mode); expects a clean exit and the same r0.
u64 run_r0(const std::vector<isa::Insn>& insns, std::vector<std::uint8_t>* mem = nullptr) {
  Program p = load(insns);
  std::optional<u64> r0;
  const std::vector<std::uint8_t> initial = mem != nullptr ? *mem : std::vector<std::uint8_t>{};
  std::vector<std::uint8_t> after;
  for (RunMode m : kModes) {
    std::vector<std::uint8_t> buf = initial;
    abi::Env env;
    std::vector<u64> args;
    if (mem != nullptr) {
      env.regions.push_back(abi::Region{reinterpret_cast<u64>(buf.data()), buf.size(), true, abi::RegionKind::Memory});
      args = {reinterpret_cast<u64>(buf.data()), buf.size()};
    }
    const abi::RunResult res = run_mode(p, env, m, args);
    EXPECT_TRUE(res.ok()) << mode_name(m) << ": " << (res.error ? res.error->to_string() : "");
    if (r0)
      EXPECT_EQ(*r0, res.r0) << "modes disagree: " << mode_name(m);
    else
      r0 = res.r0;
    if (m == RunMode::Fast)
      after = buf;
    else
      EXPECT_EQ(after, buf) << "memory differs in mode " << mode_name(m);
  }
  if (mem != nullptr) *mem = after;
  return *r0;
}

// ---------------------------------------------------------------- ALU
struct AluCase {
  Op op;
  u64 dst;
  u64 operand;  // src register value, or the imm (as s32) for K forms
  u64 expect;
};

constexpr u64 kMin64 = 0x8000000000000000ULL;
constexpr u64 kAll = ~0ULL;

const AluCase kAluCases[] = {
    {Op::AddImm, 1, static_cast<u64>(-1), 0},
    {Op::AddReg, kAll, 2, 1},
    {Op::Add32Imm, 0xffffffffULL, 1, 0},
    {Op::Add32Imm, 0x123400000001ULL, 1, 2},  // upper half cleared
    {Op::Add32Reg, 0xffffffff00000001ULL, 0xffffffff00000002ULL, 3},
    {Op::SubImm, 0, 1, kAll},
    {Op::SubReg, 5, 7, static_cast<u64>(-2)},
    {Op::Sub32Reg, 0, 1, 0xffffffffULL},
    {Op::Sub32Imm, 0x500000000ULL, 1, 0xffffffffULL},
    {Op::MulImm, 3, static_cast<u64>(-2), static_cast<u64>(-6)},
    {Op::MulReg, 0x100000000ULL, 0x100000000ULL, 0},
    {Op::Mul32Imm, 0x100000003ULL, 2, 6},
    {Op::Mul32Reg, 0xffffffffULL, 0xffffffffULL, 1},
    {Op::DivImm, 100, 7, 14},
    {Op::DivImm, 5, static_cast<u64>(-1), 0},  // imm sign-extended to 2^64-1
    {Op::DivReg, 100, 0, 0},                   // division by zero gives 0
    {Op::DivReg, kAll, 2, 0x7fffffffffffffffULL},
    {Op::Div32Reg, 0x100000064ULL, 10, 10},
    {Op::Div32Reg, 0x1ffffffffULL, 0, 0},
    {Op::Div32Imm, 0xfffffffeULL, static_cast<u64>(-1), 0},  // imm as u32 0xffffffff
    {Op::SDivImm, kMin64, static_cast<u64>(-1), kMin64},     // INT_MIN / -1
    {Op::SDivImm, static_cast<u64>(-7), 2, static_cast<u64>(-3)},
    {Op::SDivReg, static_cast<u64>(-7), 0, 0},
    {Op::SDivReg, 7, static_cast<u64>(-2), static_cast<u64>(-3)},
    {Op::SDiv32Reg, 0x80000000ULL, 0xffffffffULL, 0x80000000ULL},
    {Op::SDiv32Imm, 0xfffffff9ULL, 2, 0xfffffffdULL},
    {Op::SDiv32Imm, 0x1fffffff9ULL, 0, 0},
    {Op::ModImm, 100, 7, 2},
    {Op::ModReg, 7, 0, 7},                 // x % 0 = x
    {Op::Mod32Reg, 0x100000007ULL, 0, 7},  // ... truncated to 32 bits
    {Op::Mod32Imm, 0x100000010ULL, 3, 1},
    {Op::SModImm, static_cast<u64>(-7), 2, kAll},
    {Op::SModReg, kMin64, kAll, 0},  // INT_MIN % -1 = 0
    {Op::SModReg, static_cast<u64>(-7), 0, static_cast<u64>(-7)},
    {Op::SMod32Imm, 0xfffffff9ULL, 3, 0xffffffffULL},
    {Op::SMod32Reg, 0x80000000ULL, 0xffffffffULL, 0},
    {Op::SMod32Reg, 0xfffffffffffffff9ULL, 0, 0xfffffff9ULL},
    {Op::OrImm, 1, static_cast<u64>(-2), kAll},
    {Op::OrReg, 0xf0, 0x0f, 0xff},
    {Op::Or32Imm, 0x100000000ULL, 1, 1},
    {Op::Or32Reg, 0x100000000ULL, 0x200000002ULL, 2},
    {Op::AndImm, kAll, static_cast<u64>(-1), kAll},
    {Op::AndImm, kAll, 0x7fffffff, 0x7fffffff},
    {Op::AndReg, 0xff00, 0x0ff0, 0x0f00},
    {Op::And32Imm, kAll, static_cast<u64>(-1), 0xffffffffULL},
    {Op::And32Reg, kAll, kAll, 0xffffffffULL},
    {Op::XorImm, 0, static_cast<u64>(-1), kAll},
    {Op::XorReg, 0xff, 0x0f, 0xf0},
    {Op::Xor32Imm, 0xffffffff00000000ULL, 1, 1},
    {Op::Xor32Reg, 0x1, 0x100000001ULL, 0},
    {Op::LshImm, 1, 63, kMin64},
    {Op::LshReg, 1, 65, 2},  // masked to 1
    {Op::Lsh32Imm, 0x80000001ULL, 1, 2},
    {Op::Lsh32Reg, 1, 33, 2},
    {Op::RshImm, kMin64, 63, 1},
    {Op::RshReg, kMin64, 64 + 4, 0x0800000000000000ULL},
    {Op::Rsh32Imm, 0x8000000080000000ULL, 4, 0x08000000ULL},
    {Op::Rsh32Reg, 0xffffffff00000010ULL, 36, 1},
    {Op::ArshImm, kMin64, 63, kAll},
    {Op::ArshReg, static_cast<u64>(-16), 66, static_cast<u64>(-4)},
    {Op::Arsh32Imm, 0x80000000ULL, 31, 0xffffffffULL},
    {Op::Arsh32Reg, 0xffffffff00000010ULL, 4, 1},
    {Op::Arsh32Reg, 0x80000000ULL, 32 + 4, 0xf8000000ULL},
    {Op::MovImm, 0, static_cast<u64>(-1), kAll},
    {Op::MovReg, 0, 0x123456789ULL, 0x123456789ULL},
    {Op::Mov32Imm, kAll, static_cast<u64>(-1), 0xffffffffULL},
    {Op::Mov32Reg, kAll, 0x123456789ULL, 0x23456789ULL},
    {Op::MovSx8, 0, 0x80, 0xffffffffffffff80ULL},
    {Op::MovSx8, 0, 0x17f, 0x7f},
    {Op::MovSx16, 0, 0x18000, 0xffffffffffff8000ULL},
    {Op::MovSx32, 0, 0x80000000ULL, 0xffffffff80000000ULL},
    {Op::MovSx8_32, kAll, 0x180, 0xffffff80ULL},
    {Op::MovSx16_32, kAll, 0x7fff, 0x7fff},
    {Op::MovSx16_32, 0, 0xffff, 0xffffffffULL},
};

TEST(InterpAlu, TableCases) {
  for (const AluCase& c : kAluCases) {
    const isa::Form form = isa::info(c.op).form;
    Prog p;
    p.lddw(0, c.dst);
    if (form == isa::Form::AluK) {
      p(c.op, 0, 0, 0, static_cast<std::int32_t>(c.operand));
    } else {
      p.lddw(3, c.operand);
      p(c.op, 0, 3);
    }
    p.exit();
    EXPECT_EQ(run_r0(p.v), c.expect) << isa::info(c.op).name << " dst=0x" << std::hex << c.dst << " operand=0x"
                                     << c.operand;
  }
}

TEST(InterpAlu, Neg) {
  EXPECT_EQ(run_r0(Prog{}.mov(0, 1)(Op::Neg64, 0).exit().v), kAll);
  EXPECT_EQ(run_r0(Prog{}.lddw(0, kMin64)(Op::Neg64, 0).exit().v), kMin64);
  EXPECT_EQ(run_r0(Prog{}.mov(0, 1)(Op::Neg32, 0).exit().v), 0xffffffffULL);
  EXPECT_EQ(run_r0(Prog{}.lddw(0, 0x100000000ULL)(Op::Neg32, 0).exit().v), 0u);
}

TEST(InterpAlu, ByteSwaps) {
  const u64 v = 0x1122334455667788ULL;
  const std::pair<Op, u64> cases[] = {
      {Op::Le16, 0x7788},    {Op::Le32, 0x55667788},    {Op::Le64, v},
      {Op::Be16, 0x8877},    {Op::Be32, 0x88776655},    {Op::Be64, 0x8877665544332211ULL},
      {Op::Bswap16, 0x8877}, {Op::Bswap32, 0x88776655}, {Op::Bswap64, 0x8877665544332211ULL},
  };
  for (const auto& [op, expect] : cases)
    EXPECT_EQ(run_r0(Prog{}.lddw(0, v)(op, 0).exit().v), expect) << isa::info(op).name;
}

TEST(InterpAlu, RegisterOperandsAreIndependent) {
  // dst == src
  EXPECT_EQ(run_r0(Prog{}.mov(0, 21)(Op::AddReg, 0, 0).exit().v), 42u);
  // r10 readable as a source
  Program p = load(Prog{}(Op::MovReg, 0, 10).exit().v);
  abi::Env env;
  const auto res = p.run(env);
  ASSERT_TRUE(res.ok());
  EXPECT_NE(res.r0, 0u);
  EXPECT_EQ(res.r0 % 16, 0u);
}

// ---------------------------------------------------------------- jumps
struct JmpCase {
  Op op;
  u64 a;
  u64 b;  // src value or imm (s32)
  bool taken;
};
const JmpCase kJmpCases[] = {
    {Op::JeqImm, kAll, static_cast<u64>(-1), true},  // imm sign-extended
    {Op::JeqImm, 0xffffffffULL, static_cast<u64>(-1), false},
    {Op::JeqReg, 5, 5, true},
    {Op::JneImm, 5, 5, false},
    {Op::JneReg, 5, 6, true},
    {Op::JgtImm, 1, static_cast<u64>(-1), false},  // unsigned
    {Op::JgtReg, kAll, 1, true},
    {Op::JgeImm, 7, 7, true},
    {Op::JgeReg, 6, 7, false},
    {Op::JltImm, 1, static_cast<u64>(-1), true},
    {Op::JltReg, 7, 7, false},
    {Op::JleImm, 7, 7, true},
    {Op::JleReg, 8, 7, false},
    {Op::JsgtImm, 1, static_cast<u64>(-1), true},  // signed
    {Op::JsgtReg, kMin64, 0, false},
    {Op::JsgeImm, static_cast<u64>(-1), static_cast<u64>(-1), true},
    {Op::JsgeReg, static_cast<u64>(-2), static_cast<u64>(-1), false},
    {Op::JsltImm, static_cast<u64>(-2), static_cast<u64>(-1), true},
    {Op::JsltReg, 0, kMin64, false},
    {Op::JsleImm, 0, 0, true},
    {Op::JsleReg, 1, 0, false},
    {Op::JsetImm, 0x10, 0x30, true},
    {Op::JsetReg, 0x10, 0x01, false},
    {Op::JsetImm, 0x8000000000000000ULL, static_cast<u64>(-1), true},
    {Op::Jeq32Imm, 0x100000005ULL, 5, true},  // low 32 bits only
    {Op::Jeq32Reg, 0x100000005ULL, 0x200000005ULL, true},
    {Op::Jne32Imm, 0x100000005ULL, 5, false},
    {Op::Jne32Reg, 1, 0x100000001ULL, false},
    {Op::Jgt32Imm, 0x100000000ULL, 0, false},
    {Op::Jgt32Reg, 0xffffffffULL, 1, true},
    {Op::Jge32Imm, 0xffffffffULL, static_cast<u64>(-1), true},
    {Op::Jge32Reg, 0, 1, false},
    {Op::Jlt32Imm, 0xffffffff00000001ULL, 2, true},
    {Op::Jlt32Reg, 2, 0x100000002ULL, false},
    {Op::Jle32Imm, 0x1ffffffffULL, static_cast<u64>(-1), true},
    {Op::Jle32Reg, 3, 2, false},
    {Op::Jsgt32Imm, 0x17fffffffULL, static_cast<u64>(-1), true},
    {Op::Jsgt32Reg, 0x17fffffffULL, 0x80000000ULL, true},
    {Op::Jsge32Imm, 0x80000000ULL, 0, false},
    {Op::Jsge32Reg, 0xffffffffULL, 0xffffffffULL, true},
    {Op::Jslt32Imm, 0x80000000ULL, 0, true},
    {Op::Jslt32Reg, 0x100000000ULL, 0xffffffffULL, false},
    {Op::Jsle32Imm, 0xffffffffULL, static_cast<u64>(-1), true},
    {Op::Jsle32Reg, 1, 0x100000000ULL, false},
    {Op::Jset32Imm, 0x100000000ULL, static_cast<u64>(-1), false},
    {Op::Jset32Reg, 0x100000001ULL, 1, true},
};

TEST(InterpJmp, Conditions) {
  for (const JmpCase& c : kJmpCases) {
    Prog p;
    p.mov(0, 0).lddw(1, c.a);
    if (isa::info(c.op).form == isa::Form::JmpK) {
      p(c.op, 1, 0, 1, static_cast<std::int32_t>(c.b));
    } else {
      p.lddw(2, c.b);
      p(c.op, 1, 2, 1);
    }
    p.exit().mov(0, 1).exit();
    EXPECT_EQ(run_r0(p.v), c.taken ? 1u : 0u) << isa::info(c.op).name << " a=0x" << std::hex << c.a << " b=0x" << c.b;
  }
}

TEST(InterpJmp, JaGotolAndBackwardLoop) {
  // r0 = sum 1..10 with a backward conditional jump
  Prog p;
  p.mov(0, 0).mov(1, 10);
  p(Op::AddReg, 0, 1)(Op::SubImm, 1, 0, 0, 1)(Op::JneImm, 1, 0, -3, 0).exit();
  EXPECT_EQ(run_r0(p.v), 55u);
  EXPECT_EQ(run_r0(Prog{}.mov(0, 1)(Op::Ja, 0, 0, 1).mov(0, 2).exit().v), 1u);
  EXPECT_EQ(run_r0(Prog{}.mov(0, 1)(Op::Gotol, 0, 0, 0, 1).mov(0, 2).exit().v), 1u);
}

// ---------------------------------------------------------------- lddw
TEST(InterpLddw, ValuesAndPseudoSources) {
  EXPECT_EQ(run_r0(Prog{}.lddw(0, 0x1122334455667788ULL).exit().v), 0x1122334455667788ULL);
  EXPECT_EQ(run_r0(Prog{}.lddw(0, 0xffffffff80000000ULL).exit().v), 0xffffffff80000000ULL);
  // relocated pseudo sources: the value as given
  EXPECT_EQ(run_r0(Prog{}.lddw(0, 0xdead0000beefULL, Op::LddwMapValue).exit().v), 0xdead0000beefULL);
  EXPECT_EQ(run_r0(Prog{}.lddw(0, 7, Op::LddwMapFd).exit().v), 7u);
  // func: abi::func_addr(target); target = pc + 1 + imm = 0 + 1 + 2 = 3
  Prog f;
  f.lddw(0, 2, Op::LddwFunc).exit().mov(0, 9).exit();  // 0-1 lddw, 2 exit, 3 mov, 4 exit
  EXPECT_EQ(run_r0(f.v), abi::func_addr(3));
}

// ---------------------------------------------------------------- memory
TEST(InterpMem, LoadsZeroAndSignExtend) {
  std::vector<std::uint8_t> mem(16);
  const u64 v = 0x8182838485868788ULL;
  std::memcpy(mem.data(), &v, 8);
  const std::pair<Op, u64> cases[] = {
      {Op::LdxB, 0x88},
      {Op::LdxH, 0x8788},
      {Op::LdxW, 0x85868788},
      {Op::LdxDW, v},
      {Op::LdxSB, 0xffffffffffffff88ULL},
      {Op::LdxSH, 0xffffffffffff8788ULL},
      {Op::LdxSW, 0xffffffff85868788ULL},
  };
  for (const auto& [op, expect] : cases) {
    auto m = mem;
    EXPECT_EQ(run_r0(Prog{}(op, 0, 1, 0).exit().v, &m), expect) << isa::info(op).name;
  }
  // offset, unaligned
  auto m = mem;
  EXPECT_EQ(run_r0(Prog{}(Op::LdxH, 0, 1, 3).exit().v, &m), 0x8485u);
  // negative offset from an advanced pointer
  m = mem;
  EXPECT_EQ(run_r0(Prog{}(Op::AddImm, 1, 0, 0, 8)(Op::LdxB, 0, 1, -1).exit().v, &m), 0x81u);
}

TEST(InterpMem, Stores) {
  std::vector<std::uint8_t> mem(32, 0xaa);
  Prog p;
  p.lddw(2, 0x1122334455667788ULL);
  p(Op::StxB, 1, 2, 0)(Op::StxH, 1, 2, 2)(Op::StxW, 1, 2, 4)(Op::StxDW, 1, 2, 8);
  p(Op::StB, 1, 0, 16, -1)(Op::StH, 1, 0, 18, 0x1234)(Op::StW, 1, 0, 20, -2)(Op::StDW, 1, 0, 24, -3);
  p.mov(0, 0).exit();
  run_r0(p.v, &mem);
  const std::vector<std::uint8_t> expect = {
      0x88, 0xaa, 0x88, 0x77, 0x88, 0x77, 0x66, 0x55,  //
      0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,  //
      0xff, 0xaa, 0x34, 0x12, 0xfe, 0xff, 0xff, 0xff,  //
      0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
  };
  EXPECT_EQ(mem, expect);
}

TEST(InterpMem, StackReadWrite) {
  Prog p;
  p.lddw(1, 0x0102030405060708ULL)(Op::StxDW, 10, 1, -8)(Op::StW, 10, 0, -512, 77);
  p(Op::LdxB, 0, 10, -8)(Op::LdxW, 2, 10, -512)(Op::AddReg, 0, 2).exit();
  EXPECT_EQ(run_r0(p.v), 8u + 77u);
}

struct AtomicCase {
  Op op;
  u64 mem;
  u64 src;
  u64 r0;
  u64 expect_mem;
  u64 expect_src;
  u64 expect_r0;
};

TEST(InterpMem, Atomics) {
  const u64 m = 0x1111111100000003ULL;
  const AtomicCase cases[] = {
      {Op::AtomicAddDW, m, 2, 0, m + 2, 2, 0},
      {Op::AtomicFetchAddDW, m, 2, 0, m + 2, m, 0},
      {Op::AtomicOrDW, m, 0x10, 0, m | 0x10, 0x10, 0},
      {Op::AtomicFetchOrDW, m, 0x10, 0, m | 0x10, m, 0},
      {Op::AtomicAndDW, m, 1, 0, 1, 1, 0},
      {Op::AtomicFetchAndDW, m, 1, 0, 1, m, 0},
      {Op::AtomicXorDW, m, 3, 0, m ^ 3, 3, 0},
      {Op::AtomicFetchXorDW, m, 3, 0, m ^ 3, m, 0},
      {Op::AtomicXchgDW, m, 9, 0, 9, m, 0},
      {Op::AtomicCmpxchgDW, m, 9, m, 9, 9, m},  // equal: swapped, r0 = old
      {Op::AtomicCmpxchgDW, m, 9, 5, m, 9, m},  // different: unchanged, r0 = old
      // 32-bit: the low word only; fetched values zero-extended
      {Op::AtomicAddW, m, 0xffffffffULL, 0, 0x1111111100000002ULL, 0xffffffffULL, 0},
      {Op::AtomicFetchAddW, m, 0x100000001ULL, 0, 0x1111111100000004ULL, 3, 0},
      {Op::AtomicOrW, m, 0x100000004ULL, 0, 0x1111111100000007ULL, 0x100000004ULL, 0},
      {Op::AtomicFetchOrW, m, 4, 0, 0x1111111100000007ULL, 3, 0},
      {Op::AtomicAndW, m, 2, 0, 0x1111111100000002ULL, 2, 0},
      {Op::AtomicFetchAndW, m, 2, 0, 0x1111111100000002ULL, 3, 0},
      {Op::AtomicXorW, m, 1, 0, 0x1111111100000002ULL, 1, 0},
      {Op::AtomicFetchXorW, m, 1, 0, 0x1111111100000002ULL, 3, 0},
      {Op::AtomicXchgW, m, 0xabcdef0012345678ULL, 0, 0x1111111112345678ULL, 3, 0},
      {Op::AtomicCmpxchgW, m, 7, 0xff00000003ULL, 0x1111111100000007ULL, 7, 3},
      {Op::AtomicCmpxchgW, m, 7, 4, m, 7, 3},
  };
  for (const AtomicCase& c : cases) {
    std::vector<std::uint8_t> mem(8);
    std::memcpy(mem.data(), &c.mem, 8);
    Prog p;
    p.lddw(2, c.src).lddw(0, c.r0)(c.op, 1, 2, 0);
    // return r0 ^ (src << 1) ... keep both observable: store src at mem+8? use r0 and check src via a second run
    p.exit();
    std::vector<std::uint8_t> m1 = mem;
    m1.resize(16);
    const u64 r0 = run_r0(p.v, &m1);
    u64 after = 0;
    std::memcpy(&after, m1.data(), 8);
    EXPECT_EQ(after, c.expect_mem) << isa::info(c.op).name;
    EXPECT_EQ(r0, c.expect_r0) << isa::info(c.op).name;
    Prog q;
    q.lddw(2, c.src).lddw(0, c.r0)(c.op, 1, 2, 0)(Op::MovReg, 0, 2).exit();
    std::vector<std::uint8_t> m2 = mem;
    m2.resize(16);
    EXPECT_EQ(run_r0(q.v, &m2), c.expect_src) << isa::info(c.op).name << " (src after)";
  }
}

TEST(InterpMem, LoadAcquireStoreRelease) {
  std::vector<std::uint8_t> mem(16, 0);
  const u64 v = 0x8877665544332211ULL;
  std::memcpy(mem.data(), &v, 8);
  const std::pair<Op, u64> loads[] = {
      {Op::LoadAcqB, 0x11}, {Op::LoadAcqH, 0x2211}, {Op::LoadAcqW, 0x44332211}, {Op::LoadAcqDW, v}};
  for (const auto& [op, expect] : loads) {
    auto m = mem;
    EXPECT_EQ(run_r0(Prog{}(op, 0, 1, 0).exit().v, &m), expect) << isa::info(op).name;
  }
  const std::pair<Op, u64> stores[] = {{Op::StoreRelB, 0x00000000000000ffULL},
                                       {Op::StoreRelH, 0x000000000000ffffULL},
                                       {Op::StoreRelW, 0x00000000ffffffffULL},
                                       {Op::StoreRelDW, kAll}};
  for (const auto& [op, expect] : stores) {
    std::vector<std::uint8_t> m(16, 0);
    run_r0(Prog{}.mov(2, -1)(op, 1, 2, 8).mov(0, 0).exit().v, &m);
    u64 got = 0;
    std::memcpy(&got, m.data() + 8, 8);
    EXPECT_EQ(got, expect) << isa::info(op).name;
  }
}

// ---------------------------------------------------------------- LD_ABS / LD_IND
TEST(InterpPacket, AbsAndIndBigEndian) {
  const std::array<std::uint8_t, 8> pkt = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
  auto run_pkt = [&](const std::vector<isa::Insn>& insns, RunMode m) {
    Program p = load(insns);
    abi::Env env;
    env.packet = pkt.data();
    env.packet_len = pkt.size();
    return run_mode(p, env, m);
  };
  for (RunMode m : kModes) {
    EXPECT_EQ(run_pkt(Prog{}(Op::LdAbsB, 0, 0, 0, 1).exit().v, m).r0, 0x02u);
    EXPECT_EQ(run_pkt(Prog{}(Op::LdAbsH, 0, 0, 0, 2).exit().v, m).r0, 0x0304u);
    EXPECT_EQ(run_pkt(Prog{}(Op::LdAbsW, 0, 0, 0, 4).exit().v, m).r0, 0x05060708u);
    EXPECT_EQ(run_pkt(Prog{}.mov(3, 3)(Op::LdIndB, 0, 3, 0, 1).exit().v, m).r0, 0x05u);
    EXPECT_EQ(run_pkt(Prog{}.mov(3, 6)(Op::LdIndH, 0, 3, 0, -2).exit().v, m).r0, 0x0506u);
    // IND offset is (u32)src + imm: the upper half of src is ignored
    EXPECT_EQ(run_pkt(Prog{}.lddw(3, 0x100000000ULL)(Op::LdIndW, 0, 3, 0, 0).exit().v, m).r0, 0x01020304u);
    // out of range: the run ends with r0 = 0 and no fault, later insns do not run
    const auto oob = run_pkt(Prog{}.mov(0, 5)(Op::LdAbsW, 0, 0, 0, 5).mov(0, 9).exit().v, m);
    EXPECT_TRUE(oob.ok());
    EXPECT_EQ(oob.r0, 0u);
    const auto neg = run_pkt(Prog{}.mov(3, 0)(Op::LdIndB, 0, 3, 0, -1).mov(0, 9).exit().v, m);
    EXPECT_TRUE(neg.ok());
    EXPECT_EQ(neg.r0, 0u);
    EXPECT_EQ(run_pkt(Prog{}(Op::LdAbsB, 0, 0, 0, 7).exit().v, m).r0, 0x08u);
    EXPECT_EQ(run_pkt(Prog{}.mov(0, 1)(Op::LdAbsB, 0, 0, 0, 8).exit().v, m).r0, 0u);
  }
}

// ---------------------------------------------------------------- checked mode
abi::RunResult run_checked(const std::vector<isa::Insn>& insns, std::vector<abi::Region> regions,
                           std::vector<u64> args = {}) {
  Program p = load(insns);
  abi::Env env;
  env.regions = std::move(regions);
  env.options.checked = true;
  return p.run(env, args);
}

TEST(InterpChecked, ReadOutsideRegions) {
  std::array<std::uint8_t, 16> buf{};
  const u64 base = reinterpret_cast<u64>(buf.data());
  const std::vector<abi::Region> regions = {{base, buf.size(), true, abi::RegionKind::Memory}};
  EXPECT_TRUE(run_checked(Prog{}(Op::LdxDW, 0, 1, 8).exit().v, regions, {base}).ok());
  const auto r = run_checked(Prog{}.mov(0, 0)(Op::LdxDW, 0, 1, 9).exit().v, regions, {base});
  ASSERT_EQ(r.fault, abi::Fault::MemoryViolation);
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->code, EFAULT);
  EXPECT_EQ(r.error->insn, 1u);
  EXPECT_TRUE(same_error(*r.error, abi::memory_violation(1, base + 9, 8, false)));
  // null pointer
  const auto z = run_checked(Prog{}.mov(1, 0)(Op::LdxB, 0, 1, 0).exit().v, regions);
  EXPECT_EQ(z.fault, abi::Fault::MemoryViolation);
  // the same program in fast mode is trusted (and works, in range)
  Program p = load(Prog{}(Op::LdxDW, 0, 1, 8).exit().v);
  abi::Env env;
  const std::vector<u64> args = {base};
  EXPECT_TRUE(p.run(env, args).ok());
}

TEST(InterpChecked, WriteOutsideAndReadOnly) {
  std::array<std::uint8_t, 16> buf{};
  const u64 base = reinterpret_cast<u64>(buf.data());
  const std::vector<abi::Region> ro = {{base, buf.size(), false, abi::RegionKind::ReadOnly}};
  EXPECT_TRUE(run_checked(Prog{}(Op::LdxW, 0, 1, 0).exit().v, ro, {base}).ok());
  const auto w = run_checked(Prog{}(Op::StW, 1, 0, 0, 1).exit().v, ro, {base});
  EXPECT_EQ(w.fault, abi::Fault::MemoryViolation);
  EXPECT_TRUE(same_error(*w.error, abi::memory_violation(0, base, 4, true)));
  EXPECT_EQ(buf[0], 0);
  const auto x = run_checked(Prog{}(Op::StxB, 1, 1, 0).exit().v, ro, {base});
  EXPECT_EQ(x.fault, abi::Fault::MemoryViolation);
  const auto a = run_checked(Prog{}(Op::AtomicAddW, 1, 1, 0).exit().v, ro, {base});
  EXPECT_EQ(a.fault, abi::Fault::MemoryViolation);
  const auto s = run_checked(Prog{}(Op::StoreRelB, 1, 1, 0).exit().v, ro, {base});
  EXPECT_EQ(s.fault, abi::Fault::MemoryViolation);
  const auto l = run_checked(Prog{}(Op::LoadAcqDW, 0, 1, 12).exit().v, ro, {base});
  EXPECT_EQ(l.fault, abi::Fault::MemoryViolation);
}

TEST(InterpChecked, StackBounds) {
  EXPECT_TRUE(run_checked(Prog{}(Op::StDW, 10, 0, -512, 1)(Op::LdxDW, 0, 10, -512).exit().v, {}).ok());
  const auto below = run_checked(Prog{}(Op::StDW, 10, 0, -520, 1).mov(0, 0).exit().v, {});
  EXPECT_EQ(below.fault, abi::Fault::MemoryViolation);
  const auto straddle = run_checked(Prog{}(Op::LdxDW, 0, 10, -516).exit().v, {});
  EXPECT_EQ(straddle.fault, abi::Fault::MemoryViolation);
  const auto above = run_checked(Prog{}(Op::LdxB, 0, 10, 0).exit().v, {});
  EXPECT_EQ(above.fault, abi::Fault::MemoryViolation);
  // the stack starts zeroed in checked mode
  EXPECT_EQ(run_checked(Prog{}(Op::LdxDW, 0, 10, -256).exit().v, {}).r0, 0u);
}

TEST(InterpChecked, StackRegionVisibleToHelpersOnlyDuringRun) {
  abi::HelperTable helpers;
  helpers.set(1, "probe", [](abi::Env& env, u64 r1, u64, u64, u64, u64) -> u64 {
    return env.find_region(r1, 8, true) != nullptr ? 1 : 0;
  });
  Program p = load(Prog{}(Op::MovReg, 1, 10)(Op::AddImm, 1, 0, 0, -8)(Op::Call, 0, 0, 0, 1).exit().v);
  abi::Env env;
  env.helpers = &helpers;
  env.options.checked = true;
  const auto r = p.run(env);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.r0, 1u);
  EXPECT_TRUE(env.regions.empty());
}

// ---------------------------------------------------------------- budget, end, counting
TEST(InterpBudget, ExhaustedAndCounted) {
  const auto prog = Prog{}.mov(0, 0)(Op::AddImm, 0, 0, 0, 1)(Op::Ja, 0, 0, -2).v;  // infinite loop
  Program p = load(prog);
  for (bool checked : {false, true}) {
    abi::Env env;
    env.options.budget = 1000;
    env.options.checked = checked;
    const auto r = p.run(env);
    EXPECT_EQ(r.fault, abi::Fault::Budget);
    EXPECT_EQ(r.insns, 1000u);
    ASSERT_TRUE(r.error.has_value());
    EXPECT_EQ(r.error->code, E2BIG);
    // insns 0, then (1,2) pairs: 1000 = 1 + 2*499 + 1 -> the 1001st is insn 2
    EXPECT_TRUE(same_error(*r.error, abi::budget_exhausted(2, 1000)));
    EXPECT_EQ(r.r0, 500u);
  }
  // exactly enough budget
  Program q = load(Prog{}.mov(0, 1).mov(0, 2).exit().v);
  abi::Env env;
  env.options.budget = 3;
  auto r = q.run(env);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.insns, 3u);
  env.options.budget = 2;
  r = q.run(env);
  EXPECT_EQ(r.fault, abi::Fault::Budget);
  EXPECT_EQ(r.insns, 2u);
}

TEST(InterpBudget, CountsInstructionsLddwOnce) {
  Program p = load(Prog{}.lddw(0, 1).mov(1, 1)(Op::JeqImm, 1, 0, 1, 1).mov(0, 3).exit().v);
  abi::Env env;
  env.options.count_insns = true;
  const auto r = p.run(env);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.insns, 4u);  // lddw, mov, jeq, exit
  env.options.count_insns = false;
  EXPECT_EQ(p.run(env).insns, 0u);  // fast mode does not count
}

TEST(InterpEnd, FellOffEnd) {
  // uBPF-style: the last instruction is a conditional jump that falls through
  const auto prog = Prog{}.mov(0, 1)(Op::JeqImm, 0, 0, -2, 0).v;
  Program p = load(prog, /*kernel_structure=*/false);
  for (RunMode m : kModes) {
    abi::Env env;
    const auto r = run_mode(p, env, m);
    EXPECT_EQ(r.fault, abi::Fault::FellOffEnd) << mode_name(m);
    ASSERT_TRUE(r.error.has_value());
    EXPECT_TRUE(same_error(*r.error, abi::fell_off_end(2)));
    EXPECT_EQ(r.error->code, EINVAL);
    if (m != RunMode::Fast) {
      EXPECT_EQ(r.insns, 2u);
    }
  }
  // the budget running out exactly at the end is still reported as falling off
  abi::Env env;
  env.options.budget = 2;
  EXPECT_EQ(p.run(env).fault, abi::Fault::FellOffEnd);
  // kernel structure refuses it at creation
  auto k = Program::create(prog);
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.error().message.find("last insn"), std::string::npos) << k.error().message;
}

// ---------------------------------------------------------------- creation errors
TEST(InterpCreate, Rejects) {
  {
    std::vector<isa::Insn> v = {isa::make(Op::Lddw, 0, 0, 0, 1), isa::make(Op::Exit)};
    auto p = Program::create(v);
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error().insn, 0u);
    EXPECT_NE(p.error().message.find("lddw"), std::string::npos);
  }
  {
    auto p = Program::create(Prog{}.mov(0, 0)(Op::Ja, 0, 0, 5).exit().v, LoadOptions{false});
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error().insn, 1u);
    EXPECT_NE(p.error().message.find("out of range"), std::string::npos) << p.error().message;
  }
  {
    auto v = Prog{}.mov(0, 0)(Op::Ja, 0, 0, 1).lddw(1, 5).exit().v;  // jump into lddw tail
    auto p = Program::create(v, LoadOptions{false});
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error().insn, 1u);
  }
  {
    auto p = Program::create(Prog{}(Op::MovImm, 11, 0, 0, 1).exit().v);
    ASSERT_FALSE(p.ok());
    EXPECT_NE(p.error().message.find("R11"), std::string::npos);
  }
  {
    auto p = Program::create(std::vector<isa::Insn>{});
    EXPECT_FALSE(p.ok());
  }
  {
    isa::Insn tail;
    tail.op = Op::LddwTail;
    auto p = Program::create(std::vector<isa::Insn>{tail, isa::make(Op::Exit)});
    EXPECT_FALSE(p.ok());
  }
}

// ---------------------------------------------------------------- concurrency
TEST(InterpThreads, ConcurrentRunsShareOneProgram) {
  // sum of the bytes of a per-thread buffer, plus a stack round trip and a local call
  Prog p;
  p.mov(0, 0).mov(3, 0);
  p(Op::MovReg, 4, 1)(Op::AddReg, 4, 3)(Op::LdxB, 5, 4, 0)(Op::AddReg, 0, 5)(Op::AddImm, 3, 0, 0, 1);
  p(Op::JltReg, 3, 2, -6);
  p(Op::StxDW, 10, 0, -8)(Op::CallLocal, 0, 0, 0, 2)(Op::LdxDW, 0, 10, -8).exit();
  p.mov(0, 99)(Op::StxDW, 10, 0, -8).exit();  // callee writes its own frame
  Program prog = load(p.v);
  std::vector<std::thread> threads;
  std::array<int, 4> failures{};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::uint8_t> buf(64 + static_cast<std::size_t>(t));
      u64 expect = 0;
      for (std::size_t i = 0; i < buf.size(); ++i) {
        buf[i] = static_cast<std::uint8_t>(i * 7 + static_cast<std::size_t>(t));
        expect += buf[i];
      }
      for (int i = 0; i < 2000; ++i) {
        abi::Env env;
        env.options.checked = (i % 2) == 1;
        env.regions.push_back(
            abi::Region{reinterpret_cast<u64>(buf.data()), buf.size(), false, abi::RegionKind::Memory});
        const std::vector<u64> args = {reinterpret_cast<u64>(buf.data()), buf.size()};
        const auto r = prog.run(env, args);
        if (!r.ok() || r.r0 != expect) ++failures[static_cast<std::size_t>(t)];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int f : failures) EXPECT_EQ(f, 0);
}

// Every row of the table is executed by some test above or in the calls tests:
// the rows that are not in a case table are listed here explicitly.
TEST(InterpCoverage, EveryRowExecutes) {
  std::set<Op> seen;
  for (const auto& c : kAluCases) seen.insert(c.op);
  for (const auto& c : kJmpCases) seen.insert(c.op);
  const Op others[] = {Op::Neg32,
                       Op::Neg64,
                       Op::Le16,
                       Op::Le32,
                       Op::Le64,
                       Op::Be16,
                       Op::Be32,
                       Op::Be64,
                       Op::Bswap16,
                       Op::Bswap32,
                       Op::Bswap64,
                       Op::Ja,
                       Op::Gotol,
                       Op::Call,
                       Op::CallLocal,
                       Op::CallKfunc,
                       Op::Callx,
                       Op::Exit,
                       Op::MayGoto,
                       Op::Lddw,
                       Op::LddwMapFd,
                       Op::LddwMapValue,
                       Op::LddwBtfId,
                       Op::LddwFunc,
                       Op::LddwMapIdx,
                       Op::LddwMapIdxVal,
                       Op::LdAbsW,
                       Op::LdAbsH,
                       Op::LdAbsB,
                       Op::LdIndW,
                       Op::LdIndH,
                       Op::LdIndB,
                       Op::LdxW,
                       Op::LdxH,
                       Op::LdxB,
                       Op::LdxDW,
                       Op::LdxSW,
                       Op::LdxSH,
                       Op::LdxSB,
                       Op::StW,
                       Op::StH,
                       Op::StB,
                       Op::StDW,
                       Op::StxW,
                       Op::StxH,
                       Op::StxB,
                       Op::StxDW,
                       Op::AtomicAddW,
                       Op::AtomicFetchAddW,
                       Op::AtomicOrW,
                       Op::AtomicFetchOrW,
                       Op::AtomicAndW,
                       Op::AtomicFetchAndW,
                       Op::AtomicXorW,
                       Op::AtomicFetchXorW,
                       Op::AtomicXchgW,
                       Op::AtomicCmpxchgW,
                       Op::AtomicAddDW,
                       Op::AtomicFetchAddDW,
                       Op::AtomicOrDW,
                       Op::AtomicFetchOrDW,
                       Op::AtomicAndDW,
                       Op::AtomicFetchAndDW,
                       Op::AtomicXorDW,
                       Op::AtomicFetchXorDW,
                       Op::AtomicXchgDW,
                       Op::AtomicCmpxchgDW,
                       Op::LoadAcqB,
                       Op::LoadAcqH,
                       Op::LoadAcqW,
                       Op::LoadAcqDW,
                       Op::StoreRelB,
                       Op::StoreRelH,
                       Op::StoreRelW,
                       Op::StoreRelDW};
  for (Op op : others) seen.insert(op);
  for (const auto& row : isa::kOps) EXPECT_TRUE(seen.count(row.op)) << row.name << " has no test";
  // the pseudo lddw sources not exercised above run here
  for (Op op : {Op::LddwBtfId, Op::LddwMapIdx, Op::LddwMapIdxVal})
    EXPECT_EQ(run_r0(Prog{}.lddw(0, 0x123456789aULL, op).exit().v), 0x123456789aULL) << isa::info(op).name;
}

}  // namespace
}  // namespace userbpf::interp::test
