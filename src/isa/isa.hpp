// The eBPF instruction set: one table (opcodes.def), everything else derived.
//
// Design: an instruction is identified by isa::Op, one enumerator per row of
// opcodes.def, i.e. per (opcode byte, selector) pair. Decoding maps the raw
// 8-byte slot to its row by looking up the candidates for the opcode byte
// (a constexpr index built from the table) and matching the selector field
// (off for sdiv/smod/movsx, imm for atomics and byte swaps, src for call and
// lddw pseudo sources). The row's Form says which fields are operands; every
// other field is reserved and must be zero, which gives the kernel's
// "uses reserved fields" checks without a per-opcode switch.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "isa/semantics.hpp"

namespace userbpf::isa {

// ---------------------------------------------------------------- field values
// These are the ISA's bit-field encodings (RFC 9669 section 3/4), not opcodes.
enum class Class : std::uint8_t { Ld = 0, Ldx = 1, St = 2, Stx = 3, Alu = 4, Jmp = 5, Jmp32 = 6, Alu64 = 7 };
enum class Sel : std::uint8_t { None, Off, Imm, Src };
enum class Form : std::uint8_t {
  AluK, AluX, Neg, End, MovSx,                          // arithmetic
  Ja, Gotol, JmpK, JmpX, Call, CallLocal, CallKfunc,    // control flow
  Callx, Exit, MayGoto,
  Lddw, LdAbs, LdInd, Ldx, St, Stx, Atomic, LoadAcq, StoreRel,  // memory
};
enum class Group : std::uint8_t { Base32, Base64, Atomic32, Atomic64, DivMul32, DivMul64, Packet, Callx, Kernel };

inline constexpr int kNumRegs = 11;        // r0..r10
inline constexpr int kFrameReg = 10;       // r10, read-only frame pointer
inline constexpr int kStackSize = 512;     // bytes per frame (MAX_BPF_STACK)
inline constexpr int kMaxCallFrames = 8;   // MAX_CALL_FRAMES
inline constexpr std::size_t kMaxInsns = 1000000;  // BPF_COMPLEXITY_LIMIT_INSNS

// lddw pseudo sources (src_reg of the first slot)
inline constexpr std::uint8_t kPseudoMapFd = 1;
inline constexpr std::uint8_t kPseudoMapValue = 2;
inline constexpr std::uint8_t kPseudoBtfId = 3;
inline constexpr std::uint8_t kPseudoFunc = 4;
inline constexpr std::uint8_t kPseudoMapIdx = 5;
inline constexpr std::uint8_t kPseudoMapIdxValue = 6;
// call sources
inline constexpr std::uint8_t kPseudoCall = 1;
inline constexpr std::uint8_t kPseudoKfuncCall = 2;

// ---------------------------------------------------------------- the table
enum class Op : std::uint16_t {
#define UBPF_OP(name, byte, sel, selval, form, kop, mnem, ver, group, kern) name,
#include "isa/opcodes.def"
#undef UBPF_OP
  LddwTail,  // second slot of a 16-byte lddw (not a row: never decoded on its own)
};

inline constexpr std::size_t kOpCount = static_cast<std::size_t>(Op::LddwTail);

struct OpInfo {
  Op op;
  std::string_view name;   // enumerator name, e.g. "Add32Imm"
  std::uint8_t opcode;
  Sel sel;
  std::int32_t sel_value;
  Form form;
  std::string_view kop;       // kernel/LLVM syntax operator
  std::string_view mnemonic;  // uBPF/bpf_conformance mnemonic
  std::uint8_t version;
  Group group;
  bool in_kernel;
};

inline constexpr std::array<OpInfo, kOpCount> kOps = {{
#define UBPF_OP(name, byte, sel, selval, form, kop, mnem, ver, group, kern) \
  {Op::name, #name, byte, Sel::sel, selval, Form::form, kop, mnem, ver, Group::group, (kern) != 0},
#include "isa/opcodes.def"
#undef UBPF_OP
}};

// The row of Op::LddwTail (not in the table: the second slot of an lddw). It
// carries Form::Lddw and opcode 0 so that table lookups on a tail stay defined.
inline constexpr OpInfo kLddwTailInfo = {Op::LddwTail, "LddwTail", 0, Sel::None, 0, Form::Lddw,
                                         "", "", 1, Group::Base64, true};
constexpr const OpInfo& info(Op op) {
  const auto i = static_cast<std::size_t>(op);
  return i < kOps.size() ? kOps[i] : kLddwTailInfo;
}
constexpr Class op_class(Op op) { return static_cast<Class>(info(op).opcode & 0x07); }

// Operand fields of a form (the others are reserved, except the selector).
enum Field : std::uint8_t { kFieldDst = 1, kFieldSrc = 2, kFieldOff = 4, kFieldImm = 8 };
constexpr std::uint8_t operand_fields(Form f) {
  switch (f) {
    case Form::AluK: return kFieldDst | kFieldImm;
    case Form::AluX: return kFieldDst | kFieldSrc;
    case Form::Neg: return kFieldDst;
    case Form::End: return kFieldDst;
    case Form::MovSx: return kFieldDst | kFieldSrc;
    case Form::Ja: return kFieldOff;
    case Form::Gotol: return kFieldImm;
    case Form::JmpK: return kFieldDst | kFieldImm | kFieldOff;
    case Form::JmpX: return kFieldDst | kFieldSrc | kFieldOff;
    case Form::Call: return kFieldImm;
    case Form::CallLocal: return kFieldImm;
    case Form::CallKfunc: return kFieldImm | kFieldOff;  // off: BTF fd index (module kfuncs)
    case Form::Callx: return kFieldDst;
    case Form::Exit: return 0;
    case Form::MayGoto: return kFieldOff;
    case Form::Lddw: return kFieldDst | kFieldImm;
    case Form::LdAbs: return kFieldImm;
    case Form::LdInd: return kFieldSrc | kFieldImm;
    case Form::Ldx: return kFieldDst | kFieldSrc | kFieldOff;
    case Form::St: return kFieldDst | kFieldOff | kFieldImm;
    case Form::Stx: return kFieldDst | kFieldSrc | kFieldOff;
    case Form::Atomic: return kFieldDst | kFieldSrc | kFieldOff;
    case Form::LoadAcq: return kFieldDst | kFieldSrc | kFieldOff;
    case Form::StoreRel: return kFieldDst | kFieldSrc | kFieldOff;
  }
  return 0;
}

constexpr bool is_jump(Form f) {
  return f == Form::Ja || f == Form::Gotol || f == Form::JmpK || f == Form::JmpX || f == Form::MayGoto;
}
constexpr bool is_cond_jump(Form f) { return f == Form::JmpK || f == Form::JmpX; }
constexpr bool is_memory(Form f) {
  return f == Form::Ldx || f == Form::St || f == Form::Stx || f == Form::Atomic || f == Form::LoadAcq ||
         f == Form::StoreRel || f == Form::LdAbs || f == Form::LdInd;
}
// Access width in bytes of a load/store/atomic (the size bits of the opcode).
constexpr unsigned access_size(Op op) {
  constexpr std::array<unsigned, 4> kSizes = {4, 2, 1, 8};  // W, H, B, DW
  return kSizes[(info(op).opcode >> 3) & 3];
}
// True for 64-bit arithmetic (ALU64) and 64-bit compares (JMP).
constexpr bool is_64(Op op) {
  const Class c = op_class(op);
  return c == Class::Alu64 || c == Class::Jmp;
}
// The 4-bit operation code of ALU/JMP classes (opcode >> 4).
constexpr unsigned op_code(Op op) { return info(op).opcode >> 4; }

// ---------------------------------------------------------------- the derived opcode index
// kRowsByOpcode lists row indexes grouped by opcode byte (stable: table order);
// kOpcodeIndex[byte] is the range of that byte's rows (they differ by selector).
struct OpcodeSlot {
  std::uint16_t first = 0;  // index into kRowsByOpcode
  std::uint8_t count = 0;   // rows with this byte
};
constexpr std::array<std::uint16_t, kOpCount> make_rows_by_opcode() {
  std::array<std::uint16_t, kOpCount> rows{};
  std::size_t n = 0;
  for (unsigned b = 0; b < 256; ++b)
    for (std::size_t i = 0; i < kOps.size(); ++i)
      if (kOps[i].opcode == b) rows[n++] = static_cast<std::uint16_t>(i);
  return rows;
}
inline constexpr std::array<std::uint16_t, kOpCount> kRowsByOpcode = make_rows_by_opcode();
constexpr std::array<OpcodeSlot, 256> make_opcode_index() {
  std::array<OpcodeSlot, 256> idx{};
  for (std::size_t k = 0; k < kRowsByOpcode.size(); ++k) {
    auto& slot = idx[kOps[kRowsByOpcode[k]].opcode];
    if (slot.count == 0) slot.first = static_cast<std::uint16_t>(k);
    ++slot.count;
  }
  return idx;
}
inline constexpr std::array<OpcodeSlot, 256> kOpcodeIndex = make_opcode_index();
// Iterates the rows of one opcode byte.
template <class F>
constexpr void for_each_row(std::uint8_t opcode, F&& f) {
  const OpcodeSlot s = kOpcodeIndex[opcode];
  for (std::size_t k = s.first; k < static_cast<std::size_t>(s.first + s.count); ++k) f(kOps[kRowsByOpcode[k]]);
}

constexpr bool table_is_consistent() {
  for (std::size_t i = 0; i < kOps.size(); ++i) {
    const auto& r = kOps[i];
    if (static_cast<std::size_t>(r.op) != i) return false;
    // rows sharing a byte share the selector kind and differ in selector value
    const auto& slot = kOpcodeIndex[r.opcode];
    for (std::size_t j = 0; j < i; ++j) {
      if (kOps[j].opcode != r.opcode) continue;
      if (kOps[j].sel != r.sel || kOps[j].sel_value == r.sel_value) return false;
    }
    if (slot.count > 1 && r.sel == Sel::None) return false;
    // the selector field must not also be an operand
    const std::uint8_t ops = operand_fields(r.form);
    if (r.sel == Sel::Off && (ops & kFieldOff) != 0) return false;
    if (r.sel == Sel::Imm && (ops & kFieldImm) != 0) return false;
    if (r.sel == Sel::Src && (ops & kFieldSrc) != 0) return false;
    // the class bits agree with the form
    const auto c = static_cast<Class>(r.opcode & 7);
    switch (r.form) {
      case Form::AluK: case Form::AluX: case Form::Neg: case Form::End: case Form::MovSx:
        if (c != Class::Alu && c != Class::Alu64) return false;
        if ((r.form == Form::AluX || r.form == Form::MovSx) != ((r.opcode & 0x08) != 0) && r.form != Form::End)
          return false;
        break;
      case Form::Ja: case Form::Call: case Form::CallLocal: case Form::CallKfunc: case Form::Callx:
      case Form::Exit: case Form::MayGoto:
        if (c != Class::Jmp) return false;
        break;
      case Form::Gotol:
        if (c != Class::Jmp32) return false;
        break;
      case Form::JmpK: case Form::JmpX:
        if (c != Class::Jmp && c != Class::Jmp32) return false;
        if ((r.form == Form::JmpX) != ((r.opcode & 0x08) != 0)) return false;
        break;
      case Form::Lddw: case Form::LdAbs: case Form::LdInd:
        if (c != Class::Ld) return false;
        break;
      case Form::Ldx: if (c != Class::Ldx) return false; break;
      case Form::St: if (c != Class::St) return false; break;
      case Form::Stx: case Form::Atomic: case Form::LoadAcq: case Form::StoreRel:
        if (c != Class::Stx) return false;
        break;
    }
    if (r.version < 1 || r.version > 4) return false;
  }
  return true;
}
static_assert(table_is_consistent(), "opcodes.def: rows inconsistent (see table_is_consistent)");
static_assert(kOps.size() < 256, "Op must fit the interpreter's dispatch index");

// ---------------------------------------------------------------- instructions
// One 8-byte slot exactly as in memory (little-endian host).
struct RawInsn {
  std::uint8_t opcode = 0;
  std::uint8_t regs = 0;  // dst in the low nibble, src in the high nibble
  std::int16_t off = 0;
  std::int32_t imm = 0;

  [[nodiscard]] constexpr std::uint8_t dst() const { return regs & 0x0f; }
  [[nodiscard]] constexpr std::uint8_t src() const { return static_cast<std::uint8_t>(regs >> 4); }
  static constexpr std::uint8_t make_regs(std::uint8_t dst, std::uint8_t src) {
    return static_cast<std::uint8_t>((dst & 0x0f) | ((src & 0x0f) << 4));
  }
};
static_assert(sizeof(RawInsn) == 8);

// A decoded instruction. For lddw, imm_hi holds the second slot's imm and the
// slot after it decodes to Op::LddwTail (indexes keep the kernel's numbering).
struct Insn {
  Op op = Op::Exit;
  std::uint8_t dst = 0;
  std::uint8_t src = 0;
  std::int16_t off = 0;
  std::int32_t imm = 0;
  std::int32_t imm_hi = 0;

  [[nodiscard]] constexpr const OpInfo& info() const { return isa::info(op); }
  [[nodiscard]] constexpr std::uint64_t imm64() const {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(imm_hi)) << 32) | static_cast<std::uint32_t>(imm);
  }
  friend constexpr bool operator==(const Insn&, const Insn&) = default;
};

struct DecodeOptions {
  unsigned max_version = 4;   // reject instructions newer than -mcpu=vN
  bool kernel_only = false;   // reject encodings the Linux verifier does not know (callx)
};

// Decodes one slot (not the lddw tail). `index` is used for error messages.
Result<Insn> decode_one(const RawInsn& raw, std::size_t index, const DecodeOptions& opts = {});

// Decodes a whole program: checks every slot, pairs lddw with its tail.
Result<std::vector<Insn>> decode(std::span<const RawInsn> raw, const DecodeOptions& opts = {});
Result<std::vector<Insn>> decode_bytes(std::span<const std::uint8_t> bytes, const DecodeOptions& opts = {});

// Encoding: the inverse of decode. lddw produces two slots.
RawInsn encode_one(const Insn& insn);
std::vector<RawInsn> encode(std::span<const Insn> insns);
std::vector<std::uint8_t> encode_bytes(std::span<const Insn> insns);

// Builds an Insn for `op` (the selector value is implied by the row).
// Decoded instructions keep the selector field's value too (src of a call,
// imm of a byte swap or atomic, off of sdiv/movsx), exactly as encoded.
constexpr Insn make(Op op, std::uint8_t dst = 0, std::uint8_t src = 0, std::int16_t off = 0, std::int32_t imm = 0,
                    std::int32_t imm_hi = 0) {
  Insn in{op, dst, src, off, imm, imm_hi};
  if (op == Op::LddwTail) return in;
  const OpInfo& row = info(op);
  switch (row.sel) {
    case Sel::None: break;
    case Sel::Off: in.off = static_cast<std::int16_t>(row.sel_value); break;
    case Sel::Imm: in.imm = row.sel_value; break;
    case Sel::Src: in.src = static_cast<std::uint8_t>(row.sel_value); break;
  }
  return in;
}

// Finds the row for an opcode byte and raw fields, or nullptr.
const OpInfo* lookup(const RawInsn& raw);

// Subprogram starts, ascending: 0, every local call target and every lddw
// func (BPF_PSEUDO_FUNC) target, as the kernel's add_subprog_and_kfunc finds
// them. A target outside the program or into an lddw tail is an error
// ("call to invalid destination" / "invalid pseudo func destination").
Result<std::vector<std::size_t>> subprogram_starts(std::span<const Insn> insns);

// Control-flow structure that any executor relies on: jump and local-call
// targets inside the program and not into an lddw tail, lddw complete, the
// last instruction an exit or unconditional jump, size within kMaxInsns.
// Messages follow the kernel's (e.g. "jump out of range from insn 3 to 9").
Status check_structure(std::span<const Insn> insns);

// What every executor checks before running a program built in memory:
// operands (lddw paired with its tail, registers r0..r10, size limits), then
// either the kernel's structure (check_structure) or, for raw uBPF-style
// programs, only that jump/call targets are in range and not into an lddw tail.
Status check_program(std::span<const Insn> insns, bool kernel_structure);

// Jump target of a jump at `pc` (JA/JMP/JMP32/may_goto: off; gotol: imm).
constexpr std::int64_t jump_target(const Insn& in, std::size_t pc) {
  const std::int64_t delta = in.op == Op::Gotol ? in.imm : in.off;
  return static_cast<std::int64_t>(pc) + 1 + delta;
}

std::string_view group_name(Group g);
std::string_view class_name(Class c);

}  // namespace userbpf::isa
