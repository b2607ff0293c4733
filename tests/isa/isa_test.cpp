// Sweeps all 256 opcode bytes with field variations through the decoder and
// encoder derived from opcodes.def.
#include <gtest/gtest.h>

#include <set>

#include "isa/isa.hpp"

using namespace userbpf;
using namespace userbpf::isa;

namespace {

// Independent model of which opcode bytes exist (from RFC 9669 + kernel
// extensions), written from the spec's field tables, not from opcodes.def.
bool byte_exists(unsigned b) {
  const unsigned cls = b & 7, code = b >> 4, srcbit = b & 8, mode = b & 0xe0, size = b & 0x18;
  switch (cls) {
    case 4: case 7:  // ALU, ALU64
      if (code == 0x8) return srcbit == 0;                 // neg: K only
      if (code == 0xd) return cls == 4 || srcbit == 0;     // le/be; bswap (ALU64, K only)
      return code <= 0xc;
    case 5:  // JMP
      if (code == 0x0) return srcbit == 0;                 // ja
      if (code == 0x8) return true;                        // call, callx
      if (code == 0x9) return srcbit == 0;                 // exit
      if (code == 0xe) return srcbit == 0;                 // may_goto (JCOND)
      return code <= 0xd;
    case 6:  // JMP32
      if (code == 0x0) return srcbit == 0;                 // gotol
      if (code == 0x8 || code == 0x9) return false;
      return code <= 0xd;
    case 0:  // LD
      if (mode == 0x00) return size == 0x18;               // lddw
      if (mode == 0x20 || mode == 0x40) return size != 0x18;  // abs/ind W/H/B
      return false;
    case 1:  // LDX
      if (mode == 0x60) return true;
      if (mode == 0x80) return size != 0x18;
      return false;
    case 2: return mode == 0x60;
    case 3: return mode == 0x60 || mode == 0xc0;           // mem, atomic (B/H only acq/rel)
    default: return false;
  }
}

}  // namespace

TEST(Isa, TableCoversExactlyTheSpecOpcodes) {
  for (unsigned b = 0; b < 256; ++b) {
    EXPECT_EQ(kOpcodeIndex[b].count > 0, byte_exists(b)) << "opcode byte 0x" << std::hex << b;
  }
}

TEST(Isa, EveryRowRoundTrips) {
  for (const OpInfo& row : kOps) {
    Insn in = make(row.op, 1, 2, 3, 4);
    // keep only operand fields
    const auto ops = operand_fields(row.form);
    if (!(ops & kFieldDst)) in.dst = 0;
    if (!(ops & kFieldSrc)) in.src = 0;
    if (!(ops & kFieldOff)) in.off = 0;
    if (!(ops & kFieldImm)) in.imm = 0;
    in = make(in.op, in.dst, in.src, in.off, in.imm);  // re-apply the selector
    std::vector<Insn> prog{in};
    if (row.form == Form::Lddw) {
      prog[0].imm_hi = 0x12345678;
      Insn tail;
      tail.op = Op::LddwTail;
      tail.imm = 0x12345678;
      prog.push_back(tail);
    }
    const auto bytes = encode_bytes(prog);
    ASSERT_EQ(bytes[0], row.opcode) << row.name;
    auto back = decode_bytes(bytes);
    ASSERT_TRUE(back.ok()) << row.name << ": " << back.error().to_string();
    ASSERT_EQ(back->size(), prog.size());
    EXPECT_EQ((*back)[0], prog[0]) << row.name;
  }
}

TEST(Isa, SweepAllBytesWithFieldVariations) {
  // For every opcode byte and a grid of field values, decoding either fails
  // with an error naming the instruction, or yields a row whose re-encoding
  // reproduces the input bytes exactly.
  const std::uint8_t regs[] = {0x00, 0x01, 0x10, 0x21, 0xa0, 0x0a, 0xb0, 0x0b, 0xff};
  const std::int16_t offs[] = {0, 1, 8, 16, 32, -1, 0x7fff};
  const std::int32_t imms[] = {0, 1, 16, 32, 64, 0x40, 0x41, 0xe1, 0xf1, 0x100, 0x110, -1};
  std::size_t accepted = 0, rejected = 0;
  for (unsigned b = 0; b < 256; ++b) {
    for (auto r : regs)
      for (auto o : offs)
        for (auto i : imms) {
          RawInsn raw{static_cast<std::uint8_t>(b), r, o, i};
          auto d = decode_one(raw, 7);
          if (!d.ok()) {
            ++rejected;
            ASSERT_TRUE(d.error().insn.has_value());
            EXPECT_EQ(*d.error().insn, 7u);
            EXPECT_EQ(d.error().code, EINVAL);
            EXPECT_FALSE(d.error().message.empty());
            continue;
          }
          ++accepted;
          EXPECT_TRUE(byte_exists(b));
          const RawInsn again = encode_one(*d);
          EXPECT_EQ(again.opcode, raw.opcode);
          EXPECT_EQ(again.regs, raw.regs) << d->info().name;
          EXPECT_EQ(again.off, raw.off) << d->info().name;
          EXPECT_EQ(again.imm, raw.imm) << d->info().name;
          EXPECT_LE(d->dst, 10);
        }
  }
  EXPECT_GT(accepted, 1000u);
  EXPECT_GT(rejected, 1000u);
}

TEST(Isa, ReservedFieldsAreRejectedWithKernelMessages) {
  auto msg = [](RawInsn r) {
    auto d = decode_one(r, 0);
    return d.ok() ? std::string("accepted") : d.error().message;
  };
  EXPECT_EQ(msg({0xb7, 0x10, 0, 1}), "BPF_MOV uses reserved fields");   // mov r0, 1 with src set
  EXPECT_EQ(msg({0x07, 0x00, 5, 1}), "BPF_ALU uses reserved fields");   // add with off
  EXPECT_EQ(msg({0x84, 0x00, 0, 1}), "BPF_NEG uses reserved fields");
  EXPECT_EQ(msg({0xd4, 0x00, 0, 8}), "BPF_END uses reserved fields");
  EXPECT_EQ(msg({0x05, 0x01, 1, 0}), "BPF_JA uses reserved fields");
  EXPECT_EQ(msg({0x95, 0x00, 0, 1}), "BPF_EXIT uses reserved fields");
  EXPECT_EQ(msg({0x85, 0x30, 0, 1}), "BPF_CALL uses reserved fields");
  EXPECT_EQ(msg({0x15, 0x10, 1, 0}), "BPF_JMP/JMP32 uses reserved fields");
  EXPECT_EQ(msg({0x61, 0x10, 0, 1}), "BPF_LDX uses reserved fields");
  EXPECT_EQ(msg({0x62, 0x10, 0, 1}), "BPF_ST uses reserved fields");
  EXPECT_EQ(msg({0x63, 0x10, 0, 1}), "BPF_STX uses reserved fields");
  EXPECT_EQ(msg({0xdb, 0x10, 0, 0x02}), "BPF_ATOMIC uses invalid atomic opcode 02");
  EXPECT_EQ(msg({0xd3, 0x10, 0, 0x00}), "invalid atomic operand size");
  EXPECT_EQ(msg({0x20, 0x01, 0, 0}), "BPF_LD_[ABS|IND] uses reserved fields");
  EXPECT_EQ(msg({0x18, 0x70, 0, 0}), "unrecognized bpf_ld_imm64 insn");
  EXPECT_EQ(msg({0x8c, 0x00, 0, 0}), "unknown opcode 8c");
  EXPECT_EQ(msg({0xbf, 0xb0, 0, 0}), "R11 is invalid");
  EXPECT_EQ(msg({0xbf, 0x10, 0, 0}), "accepted");
}

TEST(Isa, LddwNeedsAValidTail) {
  std::vector<RawInsn> p = {{0x18, 0x01, 0, 1}};
  EXPECT_EQ(decode(p).error().message, "invalid bpf_ld_imm64 insn");
  p.push_back({0x00, 0x01, 0, 2});
  EXPECT_EQ(decode(p).error().message, "invalid bpf_ld_imm64 insn");
  p[1].regs = 0;
  auto d = decode(p);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)[0].imm64(), 0x0000000200000001ULL);
  EXPECT_EQ((*d)[1].op, Op::LddwTail);
}

TEST(Isa, VersionAndKernelGating) {
  RawInsn sdiv{0x3f, 0x10, 1, 0};
  EXPECT_TRUE(decode_one(sdiv, 0).ok());
  DecodeOptions v3;
  v3.max_version = 3;
  EXPECT_FALSE(decode_one(sdiv, 0, v3).ok());
  RawInsn callx{0x8d, 0x02, 0, 0};
  EXPECT_TRUE(decode_one(callx, 0).ok());
  DecodeOptions k;
  k.kernel_only = true;
  EXPECT_EQ(decode_one(callx, 0, k).error().message, "unknown opcode 8d");
}

TEST(Isa, StructureChecks) {
  auto st = [](std::vector<Insn> p) {
    auto s = check_structure(p);
    return s.ok() ? std::string("ok") : s.error().message;
  };
  EXPECT_EQ(st({make(Op::MovImm, 0, 0, 0, 1), make(Op::Exit)}), "ok");
  EXPECT_EQ(st({make(Op::Ja, 0, 0, 5), make(Op::Exit)}), "jump out of range from insn 0 to 6");
  EXPECT_EQ(st({make(Op::MovImm, 0, 0, 0, 1)}), "last insn is not an exit or jmp");
  EXPECT_EQ(st({}), "program has no instructions");
  EXPECT_EQ(st({make(Op::Ja, 0, 0, 1), make(Op::Lddw, 1, 0, 0, 1), Insn{Op::LddwTail}, make(Op::Exit)}),
            "jump into the middle of ldimm64 insn 1");
  EXPECT_EQ(st({make(Op::CallLocal, 0, 0, 0, 1), make(Op::Exit), make(Op::MovImm, 0, 0, 0, 1), make(Op::Exit)}), "ok");
  EXPECT_EQ(st({make(Op::CallLocal, 0, 0, 0, 9), make(Op::Exit)}), "call to invalid destination");
  // a jump from the main program into a subprogram
  EXPECT_EQ(st({make(Op::CallLocal, 0, 0, 0, 2), make(Op::Ja, 0, 0, 1), make(Op::Exit), make(Op::Exit)}),
            "jump out of range from insn 1 to 3");
}
