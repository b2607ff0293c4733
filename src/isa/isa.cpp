// Decoder, encoder and structural checks, all driven by the opcode table.
#include "isa/isa.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <set>

namespace userbpf::isa {

namespace {

std::int32_t selector_of(const RawInsn& raw, Sel sel) {
  switch (sel) {
    case Sel::None: return 0;
    case Sel::Off: return raw.off;
    case Sel::Imm: return raw.imm;
    case Sel::Src: return raw.src();
  }
  return 0;
}

// The kernel's message for an instruction whose reserved fields (or selector) are wrong.
std::string reserved_message(const OpInfo& row, const RawInsn& raw) {
  switch (row.form) {
    case Form::AluK: case Form::AluX: case Form::MovSx:
      return (row.opcode >> 4) == 0xb ? "BPF_MOV uses reserved fields" : "BPF_ALU uses reserved fields";
    case Form::Neg: return "BPF_NEG uses reserved fields";
    case Form::End: return "BPF_END uses reserved fields";
    case Form::Ja: case Form::Gotol: return "BPF_JA uses reserved fields";
    case Form::JmpK: case Form::JmpX: return "BPF_JMP/JMP32 uses reserved fields";
    case Form::Call: case Form::CallLocal: case Form::CallKfunc: case Form::Callx:
      return "BPF_CALL uses reserved fields";
    case Form::Exit: return "BPF_EXIT uses reserved fields";
    case Form::MayGoto: return fmt::format("invalid may_goto imm {}", raw.imm);
    case Form::Lddw:
      return raw.src() > kPseudoMapIdxValue ? "unrecognized bpf_ld_imm64 insn" : "BPF_LD_IMM64 uses reserved fields";
    case Form::LdAbs: case Form::LdInd: return "BPF_LD_[ABS|IND] uses reserved fields";
    case Form::Ldx: return "BPF_LDX uses reserved fields";
    case Form::St: return "BPF_ST uses reserved fields";
    case Form::Stx: return "BPF_STX uses reserved fields";
    case Form::Atomic: case Form::LoadAcq: case Form::StoreRel:
      if ((raw.opcode & 0x18) == 0x08 || (raw.opcode & 0x18) == 0x10) {
        // B/H sizes only exist for load-acquire / store-release
        if (raw.imm != sem::kLoadAcq && raw.imm != sem::kStoreRel) return "invalid atomic operand size";
      }
      return fmt::format("BPF_ATOMIC uses invalid atomic opcode {:02x}", static_cast<std::uint32_t>(raw.imm));
  }
  return "uses reserved fields";
}

}  // namespace

const OpInfo* lookup(const RawInsn& raw) {
  const OpcodeSlot slot = kOpcodeIndex[raw.opcode];
  for (std::size_t k = slot.first; k < static_cast<std::size_t>(slot.first + slot.count); ++k) {
    const OpInfo& row = kOps[kRowsByOpcode[k]];
    if (selector_of(raw, row.sel) == row.sel_value) return &row;
  }
  return nullptr;
}

Result<Insn> decode_one(const RawInsn& raw, std::size_t index, const DecodeOptions& opts) {
  const OpcodeSlot slot = kOpcodeIndex[raw.opcode];
  if (slot.count == 0) return insn_error(EINVAL, index, fmt::format("unknown opcode {:02x}", raw.opcode));
  const OpInfo* row = lookup(raw);
  if (row == nullptr) return insn_error(EINVAL, index, reserved_message(kOps[kRowsByOpcode[slot.first]], raw));
  if (opts.kernel_only && !row->in_kernel)
    return insn_error(EINVAL, index, fmt::format("unknown opcode {:02x}", raw.opcode));
  if (row->version > opts.max_version)
    return insn_error(EINVAL, index,
                      fmt::format("'{}' (opcode {:02x}) needs ISA v{}; decoding for v{}", row->mnemonic, raw.opcode,
                                  row->version, opts.max_version));
  const std::uint8_t ops = operand_fields(row->form);
  const bool dst_ok = (ops & kFieldDst) != 0 || raw.dst() == 0;
  const bool src_ok = (ops & kFieldSrc) != 0 || row->sel == Sel::Src || raw.src() == 0;
  const bool off_ok = (ops & kFieldOff) != 0 || row->sel == Sel::Off || raw.off == 0;
  const bool imm_ok = (ops & kFieldImm) != 0 || row->sel == Sel::Imm || raw.imm == 0;
  if (!(dst_ok && src_ok && off_ok && imm_ok)) return insn_error(EINVAL, index, reserved_message(*row, raw));
  if ((ops & kFieldDst) != 0 && raw.dst() >= kNumRegs)
    return insn_error(EINVAL, index, fmt::format("R{} is invalid", raw.dst()));
  if ((ops & kFieldSrc) != 0 && raw.src() >= kNumRegs)
    return insn_error(EINVAL, index, fmt::format("R{} is invalid", raw.src()));
  Insn out;
  out.op = row->op;
  out.dst = raw.dst();
  out.src = raw.src();
  out.off = raw.off;
  out.imm = raw.imm;
  return out;
}

Result<std::vector<Insn>> decode(std::span<const RawInsn> raw, const DecodeOptions& opts) {
  std::vector<Insn> out;
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    auto one = decode_one(raw[i], i, opts);
    if (!one) return one.error();
    Insn insn = *one;
    if (insn.info().form == Form::Lddw) {
      if (i + 1 >= raw.size() || raw[i + 1].opcode != 0 || raw[i + 1].regs != 0 || raw[i + 1].off != 0)
        return insn_error(EINVAL, i, "invalid bpf_ld_imm64 insn");
      insn.imm_hi = raw[i + 1].imm;
      out.push_back(insn);
      Insn tail;
      tail.op = Op::LddwTail;
      tail.imm = raw[i + 1].imm;
      out.push_back(tail);
      ++i;
      continue;
    }
    out.push_back(insn);
  }
  return out;
}

Result<std::vector<Insn>> decode_bytes(std::span<const std::uint8_t> bytes, const DecodeOptions& opts) {
  if (bytes.size() % sizeof(RawInsn) != 0) {
    Error e = make_error(EINVAL, fmt::format("program size {} is not a multiple of 8 bytes", bytes.size()));
    e.offset = bytes.size() - bytes.size() % sizeof(RawInsn);
    return e;
  }
  std::vector<RawInsn> raw(bytes.size() / sizeof(RawInsn));
  if (!raw.empty()) std::memcpy(raw.data(), bytes.data(), bytes.size());
  return decode(raw, opts);
}

RawInsn encode_one(const Insn& insn) {
  RawInsn raw;
  if (insn.op == Op::LddwTail) {
    raw.imm = insn.imm;
    return raw;
  }
  const OpInfo& row = insn.info();
  raw.opcode = row.opcode;
  std::uint8_t src = insn.src;
  std::int16_t off = insn.off;
  std::int32_t imm = insn.imm;
  switch (row.sel) {
    case Sel::None: break;
    case Sel::Off: off = static_cast<std::int16_t>(row.sel_value); break;
    case Sel::Imm: imm = row.sel_value; break;
    case Sel::Src: src = static_cast<std::uint8_t>(row.sel_value); break;
  }
  raw.regs = RawInsn::make_regs(insn.dst, src);
  raw.off = off;
  raw.imm = imm;
  return raw;
}

std::vector<RawInsn> encode(std::span<const Insn> insns) {
  std::vector<RawInsn> out;
  out.reserve(insns.size() + 1);
  for (std::size_t i = 0; i < insns.size(); ++i) {
    out.push_back(encode_one(insns[i]));
    if (insns[i].op != Op::LddwTail && insns[i].info().form == Form::Lddw) {
      // Emit the tail from imm_hi unless the caller already provided the tail slot.
      if (i + 1 < insns.size() && insns[i + 1].op == Op::LddwTail) {
        RawInsn tail;
        tail.imm = insns[i].imm_hi;
        out.push_back(tail);
        ++i;
      } else {
        RawInsn tail;
        tail.imm = insns[i].imm_hi;
        out.push_back(tail);
      }
    }
  }
  return out;
}

std::vector<std::uint8_t> encode_bytes(std::span<const Insn> insns) {
  const auto raw = encode(insns);
  std::vector<std::uint8_t> out(raw.size() * sizeof(RawInsn));
  if (!raw.empty()) std::memcpy(out.data(), raw.data(), out.size());
  return out;
}

Result<std::vector<std::size_t>> subprogram_starts(std::span<const Insn> insns) {
  const std::size_t n = insns.size();
  std::set<std::size_t> starts{0};
  for (std::size_t pc = 0; pc < n; ++pc) {
    const Insn& in = insns[pc];
    if (in.op != Op::CallLocal && in.op != Op::LddwFunc) continue;
    const std::int64_t t = static_cast<std::int64_t>(pc) + 1 + in.imm;
    if (t < 0 || t >= static_cast<std::int64_t>(n) || insns[static_cast<std::size_t>(t)].op == Op::LddwTail)
      return insn_error(EINVAL, pc, in.op == Op::CallLocal ? "call to invalid destination"
                                                            : "invalid pseudo func destination");
    starts.insert(static_cast<std::size_t>(t));
  }
  return std::vector<std::size_t>(starts.begin(), starts.end());
}

Status check_structure(std::span<const Insn> insns) {
  const std::size_t n = insns.size();
  if (n == 0) return make_error(E2BIG, "program has no instructions");
  if (n > kMaxInsns) return make_error(E2BIG, fmt::format("program has {} instructions (limit {})", n, kMaxInsns));
  auto starts = subprogram_starts(insns);
  if (!starts) return starts.error();
  std::vector<std::size_t> bounds = std::move(*starts);
  bounds.push_back(n);
  for (std::size_t s = 0; s + 1 < bounds.size(); ++s) {
    const std::size_t begin = bounds[s], end = bounds[s + 1];
    for (std::size_t pc = begin; pc < end; ++pc) {
      const Insn& in = insns[pc];
      if (in.op == Op::LddwTail) continue;
      if (!is_jump(in.info().form)) continue;
      const std::int64_t t = jump_target(in, pc);
      if (t < static_cast<std::int64_t>(begin) || t >= static_cast<std::int64_t>(end))
        return insn_error(EINVAL, pc, fmt::format("jump out of range from insn {} to {}", pc, t));
      if (insns[static_cast<std::size_t>(t)].op == Op::LddwTail)
        return insn_error(EINVAL, pc, fmt::format("jump into the middle of ldimm64 insn {}", t - 1));
    }
    const Insn& last = insns[end - 1];
    if (last.op != Op::Exit && last.op != Op::Ja && last.op != Op::Gotol)
      return insn_error(EINVAL, end - 1, "last insn is not an exit or jmp");
  }
  return Ok{};
}

namespace {

// Operands of an already-decoded program: lddw paired with its tail, registers
// in range, size within the limit. (Decoded programs pass by construction;
// programs built in memory, e.g. by the loader or tests, are checked here.)
Status check_operands(std::span<const Insn> insns) {
  const std::size_t n = insns.size();
  if (n == 0) return make_error(EINVAL, "program has no instructions");
  if (n > kMaxInsns)
    return make_error(E2BIG, fmt::format("program has {} instructions (limit {})", n, kMaxInsns));
  for (std::size_t pc = 0; pc < n; ++pc) {
    const Insn& in = insns[pc];
    if (in.op == Op::LddwTail) {
      if (pc == 0 || insns[pc - 1].op == Op::LddwTail || insns[pc - 1].info().form != Form::Lddw)
        return insn_error(EINVAL, pc, "second slot of lddw without its first slot");
      continue;
    }
    if (static_cast<std::size_t>(in.op) >= kOpCount) return insn_error(EINVAL, pc, "invalid instruction");
    const OpInfo& row = in.info();
    const std::uint8_t fields = operand_fields(row.form);
    if ((fields & kFieldDst) != 0 && in.dst >= kNumRegs)
      return insn_error(EINVAL, pc, fmt::format("R{} is invalid", in.dst));
    if ((fields & kFieldSrc) != 0 && in.src >= kNumRegs)
      return insn_error(EINVAL, pc, fmt::format("R{} is invalid", in.src));
    if (row.form == Form::Lddw && (pc + 1 >= n || insns[pc + 1].op != Op::LddwTail))
      return insn_error(EINVAL, pc, "lddw is not followed by its second slot (Op::LddwTail)");
  }
  return Ok{};
}

// Targets in range and not into an lddw tail (the uBPF-style minimum).
Status check_targets_only(std::span<const Insn> insns) {
  const auto n = static_cast<std::int64_t>(insns.size());
  for (std::size_t pc = 0; pc < insns.size(); ++pc) {
    const Insn& in = insns[pc];
    if (in.op == Op::LddwTail) continue;
    const Form form = in.info().form;
    std::int64_t t = 0;
    if (is_jump(form))
      t = jump_target(in, pc);
    else if (in.op == Op::CallLocal || in.op == Op::LddwFunc)
      t = static_cast<std::int64_t>(pc) + 1 + in.imm;
    else
      continue;
    const char* what = in.op == Op::CallLocal ? "call" : in.op == Op::LddwFunc ? "pseudo func" : "jump";
    if (t < 0 || t >= n) return insn_error(EINVAL, pc, fmt::format("{} out of range from insn {} to {}", what, pc, t));
    if (insns[static_cast<std::size_t>(t)].op == Op::LddwTail)
      return insn_error(EINVAL, pc, fmt::format("{} into the middle of ldimm64 insn {}", what, t - 1));
  }
  return Ok{};
}


}  // namespace

Status check_program(std::span<const Insn> insns, bool kernel_structure) {
  if (auto st = check_operands(insns); !st) return st.error();
  if (kernel_structure) return check_structure(insns);
  return check_targets_only(insns);
}

std::string_view group_name(Group g) {
  switch (g) {
    case Group::Base32: return "base32";
    case Group::Base64: return "base64";
    case Group::Atomic32: return "atomic32";
    case Group::Atomic64: return "atomic64";
    case Group::DivMul32: return "divmul32";
    case Group::DivMul64: return "divmul64";
    case Group::Packet: return "packet";
    case Group::Callx: return "callx";
    case Group::Kernel: return "kernel";
  }
  return "?";
}

std::string_view class_name(Class c) {
  switch (c) {
    case Class::Ld: return "ld";
    case Class::Ldx: return "ldx";
    case Class::St: return "st";
    case Class::Stx: return "stx";
    case Class::Alu: return "alu";
    case Class::Jmp: return "jmp";
    case Class::Jmp32: return "jmp32";
    case Class::Alu64: return "alu64";
  }
  return "?";
}

}  // namespace userbpf::isa
