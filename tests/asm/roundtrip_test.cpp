// Every row of the opcode table, with several operand values, through both
// dialects and every printing style: assemble(disassemble(x)) == x.
#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "asm/asm.hpp"
#include "isa/isa.hpp"

using namespace userbpf;
using namespace userbpf::assembly;
using isa::Insn;

namespace {

struct Values {
  std::uint8_t dst, src;
  std::int16_t off;
  std::int32_t imm, imm_hi;
};

constexpr Values kValues[] = {
    {0, 0, 0, 0, 0},
    {1, 2, 3, 4, 5},
    {10, 9, -1, -1, -1},
    {5, 10, std::numeric_limits<std::int16_t>::max(), std::numeric_limits<std::int32_t>::max(), 0x12345678},
    {9, 1, std::numeric_limits<std::int16_t>::min(), std::numeric_limits<std::int32_t>::min(),
     std::numeric_limits<std::int32_t>::min()},
};

// A program of one instruction of `row` with operand fields from `v` (the
// other fields zero, the selector from the row), plus the lddw tail.
std::vector<Insn> program(const isa::OpInfo& row, const Values& v) {
  const auto ops = isa::operand_fields(row.form);
  Insn in = isa::make(row.op, (ops & isa::kFieldDst) ? v.dst : 0, (ops & isa::kFieldSrc) ? v.src : 0,
                      (ops & isa::kFieldOff) ? v.off : 0, (ops & isa::kFieldImm) ? v.imm : 0);
  std::vector<Insn> prog{in};
  if (row.form == isa::Form::Lddw) {
    prog[0].imm_hi = v.imm_hi;
    Insn tail;
    tail.op = isa::Op::LddwTail;
    tail.imm = v.imm_hi;
    prog.push_back(tail);
  }
  return prog;
}

}  // namespace

TEST(AsmRoundTrip, EveryRowBothDialects) {
  int checked = 0;
  for (const isa::OpInfo& row : isa::kOps) {
    for (const Values& v : kValues) {
      const auto prog = program(row, v);
      for (Dialect d : {Dialect::Kernel, Dialect::Ubpf}) {
        for (bool hex : {true, false}) {
          for (bool alu32 : {true, false}) {
            DisasmOptions o;
            o.dialect = d;
            o.hex_imm = hex;
            o.alu32_names = alu32;
            o.show_index = false;
            const std::string text = disassemble(prog, o);
            for (Dialect as : {d, Dialect::Auto}) {
              auto back = assemble(text, as);
              ASSERT_TRUE(back.ok()) << row.name << " '" << text << "': " << back.error().to_string();
              EXPECT_EQ(*back, prog) << row.name << " '" << text << "'";
              ++checked;
            }
            // The raw encoding survives too (through the decoder).
            auto decoded = isa::decode_bytes(isa::encode_bytes(*assemble(text, d)));
            ASSERT_TRUE(decoded.ok()) << row.name << ": " << decoded.error().to_string();
            EXPECT_EQ(*decoded, prog) << row.name;
          }
        }
      }
    }
  }
  EXPECT_GT(checked, static_cast<int>(isa::kOps.size()) * 5 * 8);
}

// The show_index/show_bytes listing, minus its prefixes, assembles too.
TEST(AsmRoundTrip, IndexedListingAssembles) {
  std::vector<Insn> prog;
  for (const isa::OpInfo& row : isa::kOps) {
    auto p = program(row, kValues[1]);
    prog.insert(prog.end(), p.begin(), p.end());
  }
  const std::string text = disassemble(prog);  // "       0:\t..." lines
  auto back = assemble(text);
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(*back, prog);
}
