// The assembler on programs written the way the bpf_conformance corpus
// (tests/*.data "-- asm" sections) writes them: our own programs, covering
// the syntax features found by reading ~20 of that corpus' files: registers
// with and without '%', "[r1]" / "[%r10-8]" operands, u32 immediates, labels
// (including the implicit "exit" label), "call local <label>", "call helper",
// "call runtime", "call %r2", "lock [fetch] op[32]", "bswap16", movsx,
// lddw with map_by_fd(name) and helper names (through a resolver), comments.
#include <gtest/gtest.h>

#include "asm/asm.hpp"
#include "base/hex.hpp"
#include "isa/isa.hpp"

using namespace userbpf;
using namespace userbpf::assembly;
using isa::Op;

namespace {

std::vector<isa::Insn> must(const std::string& text, const AsmOptions& o = {}) {
  auto r = assemble(text, o);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().to_string());
  return r.ok() ? *r : std::vector<isa::Insn>{};
}

std::vector<Op> ops_of(const std::vector<isa::Insn>& p) {
  std::vector<Op> out;
  for (const auto& i : p) out.push_back(i.op);
  return out;
}

}  // namespace

TEST(AsmConformanceSyntax, SubprogramAndStack) {
  const auto p = must(R"(# A subprogram sums r1..r5; the caller checks callee-saved registers.
# (the "-- asm" header of a .data file is the caller's business)
mov %r6, 6
mov r7, 7
stdw [%r10-8], 0xAABBCCDD
call local sum
jne %r0, 15, fail
jne r6, 6, fail
ldxdw %r1, [%r10-8]
lddw %r2, 0xAABBCCDD
jne %r1, %r2, fail
mov32 %r0, 1
exit
fail:
mov %r0, -1
exit

sum:
mov %r0, %r1
add %r0, %r2   # comment after an instruction
add %r0, %r3
exit
)");
  ASSERT_FALSE(p.empty());
  EXPECT_EQ(p[3].op, Op::CallLocal);
  EXPECT_EQ(static_cast<std::size_t>(3 + 1 + p[3].imm), 14u);  // "sum" (lddw counts two slots)
  EXPECT_EQ(p[2].op, Op::StDW);
  EXPECT_EQ(p[2].imm, static_cast<std::int32_t>(0xAABBCCDDu));
  EXPECT_EQ(p[4].off, 7);  // 4 + 1 + 7 = 12 = fail
}

TEST(AsmConformanceSyntax, AtomicsAndExitLabel) {
  const auto p = must(R"(lddw r0, 0x123456789abcdef0
stxdw [r10-8], r0
mov r1, 1
lock add [r10-8], r1
lock add32 [r10-8], r1
lock fetch add [r10-8], r1
lock fetch and32 [%r10-8], %r1
lock fetch or [r10-8], r1
lock fetch xor32 [r10-8], r1
lock and [r10-8], r1
lock or32 [r10-8], r1
lock xor [r10-8], r1
lock xchg [r10-8], r1
lock xchg32 [r10-8], r1
lock cmpxchg [r10-8], r1
lock cmpxchg32 [r10-8], r1 # compare r0 and set
jne32 %r1, %r0, exit
ldxdw r1, [r10]
mov r0, 0
exit
)");
  EXPECT_EQ(ops_of(p), (std::vector<Op>{Op::Lddw,
                                        Op::LddwTail,
                                        Op::StxDW,
                                        Op::MovImm,
                                        Op::AtomicAddDW,
                                        Op::AtomicAddW,
                                        Op::AtomicFetchAddDW,
                                        Op::AtomicFetchAndW,
                                        Op::AtomicFetchOrDW,
                                        Op::AtomicFetchXorW,
                                        Op::AtomicAndDW,
                                        Op::AtomicOrW,
                                        Op::AtomicXorDW,
                                        Op::AtomicXchgDW,
                                        Op::AtomicXchgW,
                                        Op::AtomicCmpxchgDW,
                                        Op::AtomicCmpxchgW,
                                        Op::Jne32Reg,
                                        Op::LdxDW,
                                        Op::MovImm,
                                        Op::Exit}));
  EXPECT_EQ(p[17].off, 2);  // "exit": the first exit instruction
}

TEST(AsmConformanceSyntax, V4AndCalls) {
  const auto p = must(R"(lddw %r0, 0x8877665544332211
bswap16 %r0
swap64 %r0
movsx1632 %r1, %r0
movsx864 %r2, %r1
sdiv32 %r0, 3
smod %r0, %r1
ldxsb %r3, [%r1+1]
ja L2
L1:
call helper 5
call runtime 0x2a
call %r2
exit
L2:
ja32 L1
)");
  EXPECT_EQ(ops_of(p), (std::vector<Op>{Op::Lddw, Op::LddwTail, Op::Bswap16, Op::Bswap64, Op::MovSx16_32, Op::MovSx8,
                                        Op::SDiv32Imm, Op::SModReg, Op::LdxSB, Op::Ja, Op::Call, Op::CallKfunc,
                                        Op::Callx, Op::Exit, Op::Gotol}));
  EXPECT_EQ(p[9].off, 4);
  EXPECT_EQ(p[14].imm, -5);
  EXPECT_EQ(p[12].dst, 2);
}

TEST(AsmConformanceSyntax, MapsAndHelpersByName) {
  AsmOptions o;
  o.resolve_symbol = [](std::string_view n) -> std::optional<std::int64_t> {
    if (n == "array_map") return 3;
    if (n == "bpf_map_lookup_elem") return 1;
    return std::nullopt;
  };
  const auto p = must(R"(mov r2, 1
lddw r1, map_by_fd(array_map)
stxw [r10-4], r2
mov r2, r10
add r2, -4
call bpf_map_lookup_elem
jeq r0, 0, fail
mov r0, 1
exit
fail:
mov r0, 0
exit
)",
                      o);
  ASSERT_EQ(p.size(), 12u);
  EXPECT_EQ(p[1].op, Op::LddwMapFd);
  EXPECT_EQ(p[1].imm, 3);
  EXPECT_EQ(p[6].op, Op::Call);
  EXPECT_EQ(p[6].imm, 1);
}

TEST(AsmConformanceSyntax, WideImmediatesOnRequest) {
  EXPECT_FALSE(assemble("mov32 r1, 0x876543210\nexit").ok());
  AsmOptions o;
  o.truncate_imm32 = true;
  const auto p = must("mov32 r1, 0x876543210\nexit", o);
  EXPECT_EQ(p[0].imm, 0x76543210);
}

TEST(AsmConformanceSyntax, UnsignedRelativeTargets) {
  const auto p = must("call local 3\njne %r0, 15, 2\nexit\nexit\nexit\n");
  EXPECT_EQ(p[0].op, Op::CallLocal);
  EXPECT_EQ(p[0].imm, 3);
  EXPECT_EQ(p[1].off, 2);
}
