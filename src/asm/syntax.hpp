// Internal: the syntax templates shared by the printer and the assembler.
//
// Every opcode-table row has, per dialect, a short list of Variants chosen by
// its Form (one switch on Form per dialect, never per opcode). A template is
// literal text with placeholders:
//   $d $s   dst / src register (width from reg_width: r, w, or either)
//   $0      register 0 with the src slot's width (cmpxchg's implicit r0/w0)
//   $k      the row's operator: kernel `kop` ("+=", "s>", "u32", "fetch_add")
//           or uBPF mnemonic ("add32", "ldxw", "fetch add32")
//   $z      access size name (u8..u64) of atomics
//   $i      imm (s32 or u32)                $L  64-bit lddw immediate
//   $h      imm of the lddw tail (offset)   $P  lddw pseudo source (src field)
//   $o      off as a jump target (+N, -N, pc+N, label)
//   $I      imm as a jump/call target (+N, -N, label)   $J same, numbers only
//   $m      off as a memory offset (" + 4" / "+4"; absent = 0)
//   $n      imm as a memory offset (LD_IND)
//   $O      off as a plain number (kfunc BTF fd index)
// A space is optional whitespace when parsing and one space when printing;
// whitespace is optional between any two elements, but a word must not run
// into an identifier ("ifr1" is rejected).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "asm/asm.hpp"
#include "isa/isa.hpp"

namespace userbpf::assembly::detail {

enum VariantFlags : std::uint8_t { kPrint = 1, kParse = 2, kObjdump = 4 };
enum class Cond : std::uint8_t { Always, OffZero, OffNonZero, HiZero, HiNonZero };

struct Variant {
  std::string_view tmpl;
  std::uint8_t flags = kPrint | kParse;
  Cond cond = Cond::Always;
};

enum class Width : std::uint8_t { R, W, Either };
enum class Slot : std::uint8_t { Dst, Src };

// Templates of one row in one dialect (Kernel or Ubpf), print variants first.
std::vector<Variant> variants(const isa::OpInfo& row, Dialect dialect);
// Text that $k stands for.
std::string op_text(const isa::OpInfo& row, Dialect dialect);
// "u8".."u64" from the opcode's size bits.
std::string_view size_name(const isa::OpInfo& row);
// Register width the row wants in a slot (kernel dialect).
Width reg_width(const isa::OpInfo& row, Slot slot);

}  // namespace userbpf::assembly::detail
