// Assembler/disassembler unit tests: known encodings (taken from llvm-objdump
// output of clang-built objects), every opcode row through both dialects, and
// the error messages.
#include "asm/asm.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/hex.hpp"
#include "isa/isa.hpp"

using namespace userbpf;
using namespace userbpf::assembly;
using isa::Insn;
using isa::Op;

namespace {

std::string hex_of(const std::vector<Insn>& insns) { return to_hex(isa::encode_bytes(insns)); }

std::vector<Insn> must_assemble(const std::string& text, Dialect d = Dialect::Auto) {
  auto r = assemble(text, d);
  EXPECT_TRUE(r.ok()) << text << ": " << (r.ok() ? "" : r.error().to_string());
  return r.ok() ? *r : std::vector<Insn>{};
}

std::string error_of(const std::string& text, Dialect d = Dialect::Auto) {
  auto r = assemble(text, d);
  EXPECT_FALSE(r.ok()) << text << " assembled";
  return r.ok() ? std::string() : r.error().to_string();
}

struct Known {
  const char* text;   // canonical LLVM 14 (decimal) spelling with alu32 register names
  const char* bytes;  // encoding as llvm-objdump shows it
};

// Bytes copied from llvm-objdump (LLVM 19, --mattr=+alu32) of objects built by clang-19.
const Known kKernel[] = {
    {"r0 = 1", "b7 00 00 00 01 00 00 00"},
    {"w1 += w2", "0c 21 00 00 00 00 00 00"},
    {"w1 += 5", "04 01 00 00 05 00 00 00"},
    {"r1 -= -3", "17 01 00 00 fd ff ff ff"},
    {"r1 = -r1", "87 01 00 00 00 00 00 00"},
    {"w0 = -w0", "84 00 00 00 00 00 00 00"},
    {"r1 = be16 r1", "dc 01 00 00 10 00 00 00"},
    {"r1 = le32 r1", "d4 01 00 00 20 00 00 00"},
    {"r1 = le64 r1", "d4 01 00 00 40 00 00 00"},
    {"r1 = bswap64 r1", "d7 01 00 00 40 00 00 00"},
    {"r1 = bswap16 r1", "d7 01 00 00 10 00 00 00"},
    {"r1 = (s8)r2", "bf 21 08 00 00 00 00 00"},
    {"r1 = (s32)r2", "bf 21 20 00 00 00 00 00"},
    {"w1 = (s16)w2", "bc 21 10 00 00 00 00 00"},
    {"r1 s/= r2", "3f 21 01 00 00 00 00 00"},
    {"w1 s%= 7", "94 01 01 00 07 00 00 00"},
    {"r1 s>>= 3", "c7 01 00 00 03 00 00 00"},
    {"w1 s>>= w3", "cc 31 00 00 00 00 00 00"},
    {"w1 <<= 31", "64 01 00 00 1f 00 00 00"},
    {"w1 = -1", "b4 01 00 00 ff ff ff ff"},
    {"r1 = -2147483648", "b7 01 00 00 00 00 00 80"},
    {"r2 = r10", "bf a2 00 00 00 00 00 00"},
    {"if r1 > r2 goto +3", "2d 21 03 00 00 00 00 00"},
    {"if w1 s< 5 goto -2", "c6 01 fe ff 05 00 00 00"},
    {"if r1 & 16 goto +1", "45 01 01 00 10 00 00 00"},
    {"if w1 & w2 goto +1", "4e 21 01 00 00 00 00 00"},
    {"if r1 == -1 goto +0", "15 01 00 00 ff ff ff ff"},
    {"goto +3", "05 00 03 00 00 00 00 00"},
    {"goto -32768", "05 00 00 80 00 00 00 00"},
    {"gotol +70000", "06 00 00 00 70 11 01 00"},
    {"*(u32 *)(r10 - 4) = w1", "63 1a fc ff 00 00 00 00"},
    {"*(u64 *)(r10 - 8) = r1", "7b 1a f8 ff 00 00 00 00"},
    {"*(u64 *)(r10 - 8) = 7", "7a 0a f8 ff 07 00 00 00"},
    {"*(u8 *)(r10 - 8) = -7", "72 0a f8 ff f9 ff ff ff"},
    {"*(u16 *)(r1 + 2) = w2", "6b 21 02 00 00 00 00 00"},
    {"w0 = *(u32 *)(r1 + 4)", "61 10 04 00 00 00 00 00"},
    {"w0 = *(u32 *)(r1 - 32768)", "61 10 00 80 00 00 00 00"},
    {"w0 = *(u8 *)(r1 + 1)", "71 10 01 00 00 00 00 00"},
    {"r0 = *(s8 *)(r1 + 4)", "91 10 04 00 00 00 00 00"},
    {"r0 = *(s16 *)(r1 + 4)", "89 10 04 00 00 00 00 00"},
    {"r0 = *(s32 *)(r1 + 4)", "81 10 04 00 00 00 00 00"},
    {"r0 = *(u64 *)(r1 - 4)", "79 10 fc ff 00 00 00 00"},
    {"lock *(u64 *)(r1 + 0) += r2", "db 21 00 00 00 00 00 00"},
    {"lock *(u32 *)(r1 + 0) += w2", "c3 21 00 00 00 00 00 00"},
    {"lock *(u32 *)(r1 + 0) |= w2", "c3 21 00 00 40 00 00 00"},
    {"lock *(u64 *)(r1 + 0) &= r2", "db 21 00 00 50 00 00 00"},
    {"lock *(u64 *)(r1 + 0) ^= r2", "db 21 00 00 a0 00 00 00"},
    {"r0 = atomic_fetch_add((u64 *)(r1 + 0), r0)", "db 01 00 00 01 00 00 00"},
    {"w0 = atomic_fetch_and((u32 *)(r1 + 0), w0)", "c3 01 00 00 51 00 00 00"},
    {"w0 = atomic_fetch_or((u32 *)(r1 + 0), w0)", "c3 01 00 00 41 00 00 00"},
    {"r0 = atomic_fetch_xor((u64 *)(r1 + 0), r0)", "db 01 00 00 a1 00 00 00"},
    {"r0 = xchg_64(r1 + 0, r0)", "db 01 00 00 e1 00 00 00"},
    {"w0 = xchg32_32(r1 + 0, w0)", "c3 01 00 00 e1 00 00 00"},
    {"r0 = cmpxchg_64(r1 + 0, r0, r2)", "db 21 00 00 f1 00 00 00"},
    {"w0 = cmpxchg32_32(r1 + 0, w0, w2)", "c3 21 00 00 f1 00 00 00"},
    {"r1 = 4660 ll", "18 01 00 00 34 12 00 00 00 00 00 00 00 00 00 00"},
    {"r1 = -1 ll", "18 01 00 00 ff ff ff ff 00 00 00 00 ff ff ff ff"},
    {"r1 = 4294967295 ll", "18 01 00 00 ff ff ff ff 00 00 00 00 00 00 00 00"},
    {"r1 = -9223372036854775808 ll", "18 01 00 00 00 00 00 00 00 00 00 00 00 00 00 80"},
    {"call 1", "85 00 00 00 01 00 00 00"},
    {"call -1", "85 00 00 00 ff ff ff ff"},
    {"exit", "95 00 00 00 00 00 00 00"},
    {"r0 = *(u8 *)skb[12]", "30 00 00 00 0c 00 00 00"},
    {"r0 = *(u32 *)skb[-1]", "20 00 00 00 ff ff ff ff"},
    {"r0 = *(u16 *)skb[r2]", "48 20 00 00 00 00 00 00"},
    {"r0 = *(u8 *)skb[r1 + 2]", "50 10 00 00 02 00 00 00"},
    {"may_goto +3", "e5 00 03 00 00 00 00 00"},
    {"may_goto -2", "e5 00 fe ff 00 00 00 00"},
    {"callx r1", "8d 01 00 00 00 00 00 00"},
    // load-acquire / store-release: kernel commit messages and LLVM tests
    {"r0 = load_acquire((u64 *)(r1 + 0))", "db 10 00 00 00 01 00 00"},
    {"w0 = load_acquire((u8 *)(r1 + 0))", "d3 10 00 00 00 01 00 00"},
    {"store_release((u16 *)(r1 + 0), w2)", "cb 21 00 00 10 01 00 00"},
    // our spellings for what llvm-objdump prints ambiguously
    {"call pc+2", "85 10 00 00 02 00 00 00"},
    {"call kfunc(9)", "85 20 00 00 09 00 00 00"},
    {"call kfunc(9, 1)", "85 20 01 00 09 00 00 00"},
    {"r1 = map_fd(3) ll", "18 11 00 00 03 00 00 00 00 00 00 00 00 00 00 00"},
    {"r1 = map_value(3) + 16 ll", "18 21 00 00 03 00 00 00 00 00 00 00 10 00 00 00"},
    {"r1 = btf_id(55) ll", "18 31 00 00 37 00 00 00 00 00 00 00 00 00 00 00"},
    {"r1 = func(+5) ll", "18 41 00 00 05 00 00 00 00 00 00 00 00 00 00 00"},
    {"r1 = map_idx(0) ll", "18 51 00 00 00 00 00 00 00 00 00 00 00 00 00 00"},
    {"r1 = map_idx_value(0) + 8 ll", "18 61 00 00 00 00 00 00 00 00 00 00 08 00 00 00"},
};

// uBPF / bpf_conformance spellings (decimal, as DisasmOptions{hex_imm=false} prints them).
const Known kUbpf[] = {
    {"mov32 %r0, 1", "b4 00 00 00 01 00 00 00"},
    {"add %r1, %r2", "0f 21 00 00 00 00 00 00"},
    {"mov %r1, -1", "b7 01 00 00 ff ff ff ff"},
    {"ldxw %r0, [%r1+4]", "61 10 04 00 00 00 00 00"},
    {"ldxdw %r0, [%r1]", "79 10 00 00 00 00 00 00"},
    {"stxdw [%r10-8], %r1", "7b 1a f8 ff 00 00 00 00"},
    {"stw [%r1+2], 5", "62 01 02 00 05 00 00 00"},
    {"lddw %r0, 4886718345", "18 00 00 00 89 67 45 23 00 00 00 00 01 00 00 00"},
    {"ja +2", "05 00 02 00 00 00 00 00"},
    {"jal +70000", "06 00 00 00 70 11 01 00"},
    {"jeq %r1, 5, +3", "15 01 03 00 05 00 00 00"},
    {"jslt32 %r1, %r2, -1", "ce 21 ff ff 00 00 00 00"},
    {"be16 %r0", "dc 00 00 00 10 00 00 00"},
    {"le32 %r0", "d4 00 00 00 20 00 00 00"},
    {"swap16 %r0", "d7 00 00 00 10 00 00 00"},
    {"neg %r0", "87 00 00 00 00 00 00 00"},
    {"neg32 %r0", "84 00 00 00 00 00 00 00"},
    {"sdiv32 %r1, %r2", "3c 21 01 00 00 00 00 00"},
    {"smod %r1, 3", "97 01 01 00 03 00 00 00"},
    {"movsx832 %r0, %r1", "bc 10 08 00 00 00 00 00"},
    {"movsx3264 %r0, %r1", "bf 10 20 00 00 00 00 00"},
    {"ldxsb %r2, [%r1+4]", "91 12 04 00 00 00 00 00"},
    {"call 1", "85 00 00 00 01 00 00 00"},
    {"call local +2", "85 10 00 00 02 00 00 00"},
    {"call runtime 7", "85 20 00 00 07 00 00 00"},
    {"callx %r2", "8d 02 00 00 00 00 00 00"},
    {"exit", "95 00 00 00 00 00 00 00"},
    {"lock add [%r1], %r2", "db 21 00 00 00 00 00 00"},
    {"lock fetch add [%r10-8], %r1", "db 1a f8 ff 01 00 00 00"},
    {"lock xchg32 [%r10-8], %r1", "c3 1a f8 ff e1 00 00 00"},
    {"lock cmpxchg [%r10-8], %r1", "db 1a f8 ff f1 00 00 00"},
    {"ldabsh 12", "28 00 00 00 0c 00 00 00"},
    {"ldindb %r1, 4", "50 10 00 00 04 00 00 00"},
    {"load_acq64 %r0, [%r1]", "db 10 00 00 00 01 00 00"},
    {"store_rel32 [%r1+8], %r2", "c3 21 08 00 10 01 00 00"},
    {"lddw %r1, map_by_fd(3)", "18 11 00 00 03 00 00 00 00 00 00 00 00 00 00 00"},
    {"lddw %r1, map_val(map_by_idx(2)) + 8", "18 61 00 00 02 00 00 00 00 00 00 00 08 00 00 00"},
    {"lddw %r1, code_addr(-3)", "18 41 00 00 fd ff ff ff 00 00 00 00 00 00 00 00"},
};

}  // namespace

TEST(Asm, KernelSyntaxMatchesLlvmEncodings) {
  for (const Known& k : kKernel) {
    const auto insns = must_assemble(k.text, Dialect::Kernel);
    EXPECT_EQ(hex_of(insns), k.bytes) << k.text;
    DisasmOptions o;
    o.show_index = false;
    o.hex_imm = false;
    EXPECT_EQ(disassemble(insns, o), std::string(k.text) + "\n");
  }
}

TEST(Asm, UbpfSyntaxMatchesEncodings) {
  for (const Known& k : kUbpf) {
    const auto insns = must_assemble(k.text, Dialect::Ubpf);
    EXPECT_EQ(hex_of(insns), k.bytes) << k.text;
    DisasmOptions o;
    o.dialect = Dialect::Ubpf;
    o.show_index = false;
    o.hex_imm = false;
    EXPECT_EQ(disassemble(insns, o), std::string(k.text) + "\n");
    // Auto must pick the same instruction.
    EXPECT_EQ(hex_of(must_assemble(k.text, Dialect::Auto)), k.bytes) << k.text;
  }
}

TEST(Asm, HexImmediatesLikeLlvm19) {
  const auto insns = must_assemble(
      "r0 = 1\nw1 += 5\nr1 -= -3\nif r1 > r2 goto +3\nif w1 s< 5 goto -2\n*(u32 *)(r10 - 4) = w1\n"
      "r1 = 4660 ll\nr1 = -1 ll\ncall 1\nr0 = *(u8 *)skb[12]\ngotol +70000\nlock *(u64 *)(r1 + 0) += r2\n");
  DisasmOptions o;
  o.show_index = false;
  EXPECT_EQ(disassemble(insns, o),
            "r0 = 0x1\nw1 += 0x5\nr1 -= -0x3\nif r1 > r2 goto +0x3\nif w1 s< 0x5 goto -0x2\n"
            "*(u32 *)(r10 - 0x4) = w1\nr1 = 0x1234 ll\nr1 = -0x1 ll\ncall 0x1\nr0 = *(u8 *)skb[0xc]\n"
            "gotol +0x11170\nlock *(u64 *)(r1 + 0x0) += r2\n");
  // and the hex form assembles back to the same
  EXPECT_EQ(hex_of(must_assemble(disassemble(insns, o))), hex_of(insns));
}

TEST(Asm, ObjdumpLayout) {
  const auto insns = must_assemble("r0 = 1\nr1 = 0x1234 ll\nexit");
  DisasmOptions o;
  o.show_bytes = true;
  o.hex_imm = false;
  EXPECT_EQ(disassemble(insns, o),
            "       0:\tb7 00 00 00 01 00 00 00\tr0 = 1\n"
            "       1:\t18 01 00 00 34 12 00 00 00 00 00 00 00 00 00 00\tr1 = 4660 ll\n"
            "       3:\t95 00 00 00 00 00 00 00\texit\n");
  EXPECT_EQ(disassemble_one(insns[2], 2), "");  // lddw tail
}

TEST(Asm, ObjdumpExactSpellings) {
  const auto insns = must_assemble("call pc+2\ncall kfunc(9)\nr1 = map_fd(3) ll\nr1 = 0x10 ll\nw0 = *(u32 *)(r1 + 0)");
  DisasmOptions o;
  o.show_index = false;
  o.objdump_exact = true;
  EXPECT_EQ(disassemble(insns, o),
            "call 0x2\ncall 0x9\nld_pseudo r1, 0x1, 0x3\nr1 = 0x10 ll\nw0 = *(u32 *)(r1 + 0x0)\n");
  o.alu32_names = false;
  o.hex_imm = false;
  EXPECT_EQ(disassemble(insns, o), "call 2\ncall 9\nld_pseudo r1, 1, 3\nr1 = 16 ll\nr0 = *(u32 *)(r1 + 0)\n");
}

TEST(Asm, AcceptedAliases) {
  struct Alias {
    const char* text;
    const char* same_as;
  };
  const Alias aliases[] = {
      {"r0 = *(u32 *)(r1 + 4)", "w0 = *(u32 *)(r1 + 4)"},  // LLVM without alu32
      {"r0 = *(u32 *)(r1 +4)", "w0 = *(u32 *)(r1 + 4)"},   // kernel verifier log
      {"*(u32 *)(r10 - 4) = r1", "*(u32 *)(r10 - 4) = w1"},
      {"lock *(u32 *)(r1 + 0) += r2", "lock *(u32 *)(r1 + 0) += w2"},
      {"r0 = *(u32 *)(r1)", "w0 = *(u32 *)(r1 + 0)"},
      {"if r1 > 0x5 goto pc+3", "if r1 > 5 goto +3"},  // kernel log
      {"r1 = map[id:5]", "r1 = map_fd(5) ll"},         // bpftool
      {"r1 = map[id:5][0]+16", "r1 = map_value(5) + 16 ll"},
      {"r1 = map[idx:2]+8", "r1 = map_idx_value(2) + 8 ll"},
      {"r1 = subprog[+4]", "r1 = func(+4) ll"},
      {"ld_pseudo r1, 2, 3", "r1 = map_value(3) + 0 ll"},  // llvm-objdump
      {"mov r0, 1", "mov %r0, 1"},                         // registers without %
      {"call helper 5", "call 5"},
      {"call %r2", "callx r2"},
      {"call helper %r2", "callx r2"},
      {"ja32 +5", "gotol +5"},
      {"stdw [%r10-4], 0x88776655", "*(u64 *)(r10 - 4) = -2005440939"},  // u32 immediates
      {"lddw %r1, 0xFFFFFFFF80000000", "r1 = -2147483648 ll"},
      {"  MOV_LIKE_LABEL: r0 = 0", "r0 = 0"},
      {"   7:\tr0 = 1", "r0 = 1"},  // objdump index prefix
      {"r0 = 1 # comment", "r0 = 1"},
      {"r0 = 1 // comment", "r0 = 1"},
      {"r0 = 1 ; comment", "r0 = 1"},
  };
  for (const Alias& a : aliases) EXPECT_EQ(hex_of(must_assemble(a.text)), hex_of(must_assemble(a.same_as))) << a.text;
}

TEST(Asm, LabelsAndFixups) {
  const auto p = must_assemble(
      "  r0 = 0\n"
      "loop:\n"
      "  r0 += 1\n"
      "  if r0 < 10 goto loop\n"
      "  call sub\n"
      "  goto out\n"
      "  r1 = 0x1234 ll\n"
      "out: exit\n"
      "sub:\n"
      "  r0 = 7\n"
      "  gotol done\n"
      "done: exit\n");
  ASSERT_EQ(p.size(), 11u);
  EXPECT_EQ(p[2].op, Op::JltImm);
  EXPECT_EQ(p[2].off, -2);
  EXPECT_EQ(p[3].op, Op::CallLocal);
  EXPECT_EQ(p[3].imm, 4);  // 3 + 1 + 4 = 8 = sub
  EXPECT_EQ(p[4].off, 2);  // over the 2-slot lddw
  EXPECT_EQ(p[9].op, Op::Gotol);
  EXPECT_EQ(p[9].imm, 0);
  // bpf_conformance: "exit" names the first exit when no such label exists
  const auto q = must_assemble("jeq %r1, 0, exit\nmov %r0, 1\nexit\n");
  EXPECT_EQ(q[0].off, 1);
  // uBPF local call by label
  const auto c = must_assemble("call local f\nexit\nf:\nexit\n");
  EXPECT_EQ(c[0].op, Op::CallLocal);
  EXPECT_EQ(c[0].imm, 1);
}

TEST(Asm, SymbolResolver) {
  AsmOptions o;
  o.resolve_symbol = [](std::string_view n) -> std::optional<std::int64_t> {
    if (n == "bpf_map_lookup_elem") return 1;
    if (n == "array_map") return 0;
    return std::nullopt;
  };
  auto r = assemble("lddw r1, map_by_fd(array_map)\ncall bpf_map_lookup_elem\nexit", o);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ((*r)[0].op, Op::LddwMapFd);
  EXPECT_EQ((*r)[2].op, Op::Call);
  EXPECT_EQ((*r)[2].imm, 1);
  auto bad = assemble("call bpf_nope\nexit", o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().to_string(), "line 1:6: unknown label 'bpf_nope'");
}

TEST(Asm, Errors) {
  EXPECT_EQ(error_of("r0 = 1\nr11 = 1"), "line 2:1: unknown register 'r11'");
  EXPECT_EQ(error_of("exit\n\nmov %r0, %r11"), "line 3:10: unknown register '%r11'");
  EXPECT_EQ(error_of("r0 = *(u32 *)(r1 + 40000)"), "line 1:18: memory offset 40000 does not fit in s16");
  EXPECT_EQ(error_of("r0 = 0x100000000"), "line 1:6: immediate 4294967296 does not fit in 32 bits");
  EXPECT_EQ(error_of("r0 = -2147483649"), "line 1:6: immediate -2147483649 does not fit in 32 bits");
  EXPECT_EQ(error_of("if r1 > r2 goto +40000"), "line 1:17: jump offset 40000 does not fit in s16");
  EXPECT_EQ(error_of("goto -32769"), "line 1:6: jump offset -32769 does not fit in s16 (use gotol)");
  EXPECT_EQ(error_of("goto nowhere\nexit"), "line 1:6: unknown label 'nowhere'");
  EXPECT_EQ(error_of("frobnicate r1"), "line 1:1: unknown instruction 'frobnicate'");
  EXPECT_EQ(error_of("w1 += r2"), "line 1:7: register width mismatch: 'r2' cannot be used here (use w2)");
  EXPECT_EQ(error_of("w0 = *(u64 *)(r1 + 0)"), "line 1:1: register width mismatch: 'w0' cannot be used here (use r0)");
  EXPECT_EQ(error_of("a: exit\na: exit"), "line 2:1: duplicate label 'a' (first defined on line 1)");
  EXPECT_EQ(error_of("r0 = 0x12g"), "line 1:6: invalid number '0x12g'");
  EXPECT_EQ(error_of("r1 = 99999999999999999999 ll"),
            "line 1:6: number '99999999999999999999' does not fit in 64 bits");
  EXPECT_EQ(error_of("r1 = -r2"), "line 1:7: both operands must be the same register");
  EXPECT_EQ(error_of("r0 = 1 2"), "line 1:8: unexpected '2' after the instruction");
}

TEST(Asm, InvalidRegistersOnRequest) {
  AsmOptions o;
  o.allow_invalid_registers = true;
  auto r = assemble("mov %r11, 1", o);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ((*r)[0].dst, 11);
}

TEST(Asm, EmptyAndCommentOnly) {
  EXPECT_TRUE(must_assemble("").empty());
  EXPECT_TRUE(must_assemble("# nothing\n\n   // here\n.text\n").empty());
}

TEST(Asm, ErrorsNameWhatIsMissing) {
  EXPECT_EQ(error_of("mov %r0"), "line 1:8: expected ',' but found the end of the line");
  EXPECT_EQ(error_of("ldxw %r0, [%r1+4"), "line 1:17: expected ']' but found the end of the line");
  EXPECT_EQ(error_of("if r1 >> r2 goto +1"), "line 1:8: expected a number but found '>'");  // after "if r1 >"
  EXPECT_EQ(error_of("r0 = *(u33 *)(r1 + 0)"), "line 1:8: unknown operator 'u33'");
}
