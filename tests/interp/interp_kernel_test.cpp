// Interpreter against the kernel: every ALU and JMP row of the opcode table
// on edge-case operands, as one program per row that stores each result into
// memory (so a mismatch names the exact operands). Skipped, with the reason,
// where the kernel's bpf() cannot be used.
#include <gtest/gtest.h>

#include <cstring>

#include "interp_test_util.hpp"
#include "oracle/oracle.hpp"

namespace userbpf::interp::test {
namespace {

using u64 = std::uint64_t;

const u64 kValues[] = {0,
                       1,
                       2,
                       7,
                       static_cast<u64>(-1),
                       static_cast<u64>(-2),
                       static_cast<u64>(-7),
                       31,
                       32,
                       33,
                       63,
                       64,
                       65,
                       0x7fffffffULL,
                       0x80000000ULL,
                       0xffffffffULL,
                       0x100000000ULL,
                       0x8000000000000000ULL,
                       0x7fffffffffffffffULL,
                       0x8000000080000000ULL,
                       0x123456789abcdef0ULL};
const std::int32_t kImms[] = {0, 1, 2, 7, -1, -2, -7, 31, 32, 63, 0x7fffffff, INT32_MIN, 0x12345678};

bool kernel_usable(std::string& why) {
  const auto& av = oracle::available();
  why = av.reason;
  return av.ok;
}

// The kernel's verifier refuses constant shifts out of range and division by
// a zero immediate; those combinations are not asked.
bool imm_allowed(const isa::OpInfo& row, std::int32_t imm) {
  const std::string_view k = row.kop;
  const unsigned bits = isa::is_64(row.op) ? 64 : 32;
  if (k == "<<=" || k == ">>=" || k == "s>>=") return imm >= 0 && static_cast<unsigned>(imm) < bits;
  if (k == "/=" || k == "%=" || k == "s/=" || k == "s%=") return imm != 0;
  return true;
}

struct Case {
  u64 a;
  u64 b;  // register value or imm
};

// Builds the program for one row; r6 = memory; result i stored at r6 + 8 * i.
std::vector<isa::Insn> build(const isa::OpInfo& row, std::vector<Case>& cases) {
  Prog p;
  p(isa::Op::MovReg, 6, 1);
  const isa::Form form = row.form;
  auto add_case = [&](u64 a, u64 b) {
    const auto i = static_cast<std::int16_t>(cases.size() * 8);
    cases.push_back({a, b});
    p.lddw(1, a);
    switch (form) {
      case isa::Form::AluK: p(row.op, 1, 0, 0, static_cast<std::int32_t>(b)); break;
      case isa::Form::AluX: p.lddw(2, b)(row.op, 1, 2); break;
      case isa::Form::Neg:
      case isa::Form::End: p(row.op, 1); break;
      case isa::Form::MovSx: p(row.op, 1, 1); break;
      case isa::Form::JmpK:
        p.mov(3, 0)(row.op, 1, 0, 1, static_cast<std::int32_t>(b))(isa::Op::Ja, 0, 0, 1)
            .mov(3, 1)(isa::Op::MovReg, 1, 3);
        break;
      case isa::Form::JmpX:
        p.lddw(2, b).mov(3, 0)(row.op, 1, 2, 1)(isa::Op::Ja, 0, 0, 1).mov(3, 1)(isa::Op::MovReg, 1, 3);
        break;
      default: ADD_FAILURE() << "unexpected form"; break;
    }
    p(isa::Op::StxDW, 6, 1, i);
  };
  for (u64 a : kValues) {
    switch (form) {
      case isa::Form::AluK:
      case isa::Form::JmpK:
        for (std::int32_t imm : kImms)
          if (form == isa::Form::JmpK || imm_allowed(row, imm))
            add_case(a, static_cast<u64>(static_cast<std::int64_t>(imm)));
        break;
      case isa::Form::AluX:
      case isa::Form::JmpX:
        for (u64 b : kValues) add_case(a, b);
        break;
      default: add_case(a, 0); break;
    }
  }
  p.mov(0, 0).exit();
  return p.v;
}

TEST(InterpKernel, AluAndJmpRowsMatchTheKernel) {
  std::string why;
  if (!kernel_usable(why)) GTEST_SKIP() << "kernel BPF unavailable: " << why;
  int rows = 0;
  for (const isa::OpInfo& row : isa::kOps) {
    const isa::Form f = row.form;
    const bool alu = f == isa::Form::AluK || f == isa::Form::AluX || f == isa::Form::Neg || f == isa::Form::End ||
                     f == isa::Form::MovSx;
    const bool jmp = f == isa::Form::JmpK || f == isa::Form::JmpX;
    if (!alu && !jmp) continue;
    std::vector<Case> cases;
    const auto prog = build(row, cases);
    const std::size_t mem_size = cases.size() * 8;
    // interpreter (checked mode, memory registered)
    std::vector<std::uint8_t> mine(mem_size, 0);
    Program p = load(prog);
    abi::Env env;
    env.options.checked = true;
    env.regions.push_back(abi::Region{reinterpret_cast<u64>(mine.data()), mine.size(), true, abi::RegionKind::Memory});
    const std::vector<u64> args = {reinterpret_cast<u64>(mine.data()), mine.size()};
    const auto res = p.run(env, args);
    ASSERT_TRUE(res.ok()) << row.name << ": " << res.error->to_string();
    // kernel
    const std::vector<std::uint8_t> zero(mem_size, 0);
    auto kr = oracle::run_r0(prog, zero, 1);
    ASSERT_TRUE(kr.ok()) << row.name << ": " << kr.error().to_string();
    if (!kr->loaded) {
      ADD_FAILURE() << row.name << ": kernel refused the program (errno " << kr->load_errno << ")\n"
                    << kr->verifier_log.substr(0, 2000);
      continue;
    }
    ASSERT_EQ(kr->memory_after.size(), mem_size) << row.name;
    ++rows;
    for (std::size_t i = 0; i < cases.size(); ++i) {
      u64 got = 0, want = 0;
      std::memcpy(&got, mine.data() + i * 8, 8);
      std::memcpy(&want, kr->memory_after.data() + i * 8, 8);
      EXPECT_EQ(got, want) << row.name << " a=0x" << std::hex << cases[i].a << " b=0x" << cases[i].b;
    }
  }
  EXPECT_GT(rows, 100);
}

// Runs `prog` on `mem` in the interpreter (checked) and in the kernel; compares
// r0 and the memory afterwards.
void compare_with_kernel(const std::string& what, const std::vector<isa::Insn>& prog,
                         const std::vector<std::uint8_t>& mem) {
  std::vector<std::uint8_t> mine = mem;
  Program p = load(prog);
  abi::Env env;
  env.options.checked = true;
  env.regions.push_back(abi::Region{reinterpret_cast<u64>(mine.data()), mine.size(), true, abi::RegionKind::Memory});
  const std::vector<u64> args = {reinterpret_cast<u64>(mine.data()), mine.size()};
  const auto res = p.run(env, args);
  ASSERT_TRUE(res.ok()) << what << ": " << res.error->to_string();
  auto kr = oracle::run_r0(prog, mem, 1);
  ASSERT_TRUE(kr.ok()) << what << ": " << kr.error().to_string();
  ASSERT_TRUE(kr->loaded) << what << ": kernel refused the program (errno " << kr->load_errno << ")\n"
                          << kr->verifier_log.substr(0, 3000);
  EXPECT_EQ(res.r0, kr->r0) << what;
  ASSERT_EQ(kr->memory_after.size(), mine.size());
  for (std::size_t i = 0; i < mine.size(); i += 8) {
    u64 got = 0, want = 0;
    std::memcpy(&got, mine.data() + i, 8);
    std::memcpy(&want, kr->memory_after.data() + i, 8);
    EXPECT_EQ(got, want) << what << ": memory at offset " << i;
  }
}

TEST(InterpKernel, LoadsStoresAtomicsMatchTheKernel) {
  std::string why;
  if (!kernel_usable(why)) GTEST_SKIP() << "kernel BPF unavailable: " << why;
  std::vector<std::uint8_t> mem(1024);
  for (std::size_t i = 0; i < mem.size(); ++i) mem[i] = static_cast<std::uint8_t>(0x80 + i * 37);
  for (const isa::OpInfo& row : isa::kOps) {
    Prog p;
    p(isa::Op::MovReg, 6, 1).mov(0, 0);
    std::int16_t out = 512;
    const auto size = static_cast<std::int16_t>(isa::access_size(row.op));
    switch (row.form) {
      case isa::Form::Ldx:
      case isa::Form::LoadAcq:
        for (std::int16_t off = 0; off < 64; off = static_cast<std::int16_t>(off + size)) {
          p(row.op, 2, 6, off)(isa::Op::StxDW, 6, 2, out);
          out = static_cast<std::int16_t>(out + 8);
        }
        break;
      case isa::Form::St: p(row.op, 6, 0, 0, -3)(row.op, 6, 0, 16, 0x12345678)(row.op, 6, 0, 32, INT32_MIN); break;
      case isa::Form::Stx:
      case isa::Form::StoreRel:
        p.lddw(2, 0xfedcba9876543210ULL)(row.op, 6, 2, 0)(row.op, 6, 2, static_cast<std::int16_t>(8 + size));
        break;
      case isa::Form::Atomic:
        for (const u64 src : {u64{1}, u64{0xffffffffULL}, u64{0x8000000180000001ULL}}) {
          // r0 = current value (so cmpxchg succeeds once), then a second time with a stale r0
          p.lddw(2, src)(isa::Op::LdxDW, 0, 6, 0)(row.op, 6, 2, 0)(isa::Op::StxDW, 6, 2, out)(
              isa::Op::StxDW, 6, 0, static_cast<std::int16_t>(out + 8));
          p.lddw(2, src + 5)
              .mov(0, 3)(row.op, 6, 2, 0)(isa::Op::StxDW, 6, 2, static_cast<std::int16_t>(out + 16))(
                  isa::Op::StxDW, 6, 0, static_cast<std::int16_t>(out + 24));
          out = static_cast<std::int16_t>(out + 32);
        }
        break;
      default: continue;
    }
    p.exit();
    compare_with_kernel(std::string(row.name), p.v, mem);
  }
}

}  // namespace
}  // namespace userbpf::interp::test
