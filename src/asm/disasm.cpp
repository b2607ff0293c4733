// Disassembler: expands the row's print template (syntax.cpp) with the
// instruction's fields. No per-opcode code: the template, the row's operator
// text and the register-width rule decide everything.
//
// Layout of disassemble() mimics llvm-objdump -d: "%8zu:\t" index, then the
// raw bytes (16 for lddw) and a tab when show_bytes, then the text. The lddw
// tail slot gets no line (objdump skips from n to n+2).
#include <fmt/format.h>

#include <cstring>

#include "asm/asm.hpp"
#include "asm/syntax.hpp"

namespace userbpf::assembly {

using namespace detail;

namespace {

std::string number(std::int64_t v, bool hex) {
  if (!hex) return fmt::format("{}", v);
  const std::uint64_t mag = v < 0 ? (~static_cast<std::uint64_t>(v) + 1) : static_cast<std::uint64_t>(v);
  return fmt::format("{}0x{:x}", v < 0 ? "-" : "", mag);
}

// "+0x3" / "-0x2": jump targets always carry a sign.
std::string signed_target(std::int64_t v, bool hex) { return (v >= 0 ? "+" : "") + number(v, hex); }

// Kernel memory offsets: " + 0x4" / " - 0x4"; uBPF: "+4" / "-4" / "" for 0.
std::string mem_offset(std::int64_t v, Dialect d, bool hex, bool omit_zero) {
  if (v == 0 && omit_zero) return "";
  const std::uint64_t mag = v < 0 ? (~static_cast<std::uint64_t>(v) + 1) : static_cast<std::uint64_t>(v);
  const char sign = v < 0 ? '-' : '+';
  if (d == Dialect::Ubpf) return fmt::format("{}{}", sign, mag);
  return fmt::format(" {} {}", sign, number(static_cast<std::int64_t>(mag), hex));
}

std::string reg(unsigned n, Width w, const DisasmOptions& o) {
  if (o.dialect == Dialect::Ubpf) return fmt::format("%r{}", n);
  const bool narrow = w == Width::W || (w == Width::Either && o.alu32_names);
  return fmt::format("{}{}", narrow ? 'w' : 'r', n);
}

bool cond_holds(Cond c, const isa::Insn& in) {
  switch (c) {
    case Cond::Always: return true;
    case Cond::OffZero: return in.off == 0;
    case Cond::OffNonZero: return in.off != 0;
    case Cond::HiZero: return in.imm_hi == 0;
    case Cond::HiNonZero: return in.imm_hi != 0;
  }
  return true;
}

std::string expand(std::string_view t, const isa::OpInfo& row, const isa::Insn& in, const DisasmOptions& o) {
  const Dialect d = o.dialect;
  const bool hex = o.hex_imm;
  std::string out;
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (t[i] != '$' || i + 1 >= t.size()) {
      out += t[i];
      continue;
    }
    switch (t[++i]) {
      case 'd': out += reg(in.dst, reg_width(row, Slot::Dst), o); break;
      case 's': out += reg(in.src, reg_width(row, Slot::Src), o); break;
      case '0': out += reg(0, reg_width(row, Slot::Src), o); break;
      case 'k': out += op_text(row, d); break;
      case 'z': out += size_name(row); break;
      case 'i': out += number(in.imm, hex); break;
      case 'L':
        if (d == Dialect::Ubpf && hex) {
          out += fmt::format("0x{:x}", in.imm64());
        } else {
          out += number(static_cast<std::int64_t>(in.imm64()), hex);
        }
        break;
      case 'h': out += number(in.imm_hi, hex); break;
      case 'P': out += number(in.src, hex); break;
      case 'o': out += signed_target(in.off, hex && d != Dialect::Ubpf); break;
      case 'I':
      case 'J': out += signed_target(in.imm, hex && d != Dialect::Ubpf); break;
      case 'm': out += mem_offset(in.off, d, hex, d == Dialect::Ubpf); break;
      case 'n': out += mem_offset(in.imm, d, hex, true); break;
      case 'O': out += number(in.off, hex); break;
      default:
        out += t[i - 1];
        out += t[i];
        break;
    }
  }
  return out;
}

}  // namespace

std::string disassemble_one(const isa::Insn& insn, std::size_t pc, const DisasmOptions& opts) {
  (void)pc;  // targets are printed relative, as llvm-objdump does
  if (insn.op == isa::Op::LddwTail) return {};
  const isa::OpInfo& row = insn.info();
  DisasmOptions o = opts;
  if (o.dialect == Dialect::Auto) o.dialect = Dialect::Kernel;
  const auto vs = variants(row, o.dialect);
  const Variant* pick = nullptr;
  if (o.objdump_exact) {
    for (const Variant& v : vs)
      if ((v.flags & kObjdump) != 0 && cond_holds(v.cond, insn)) {
        pick = &v;
        break;
      }
  }
  if (pick == nullptr) {
    for (const Variant& v : vs)
      if ((v.flags & kPrint) != 0 && cond_holds(v.cond, insn)) {
        pick = &v;
        break;
      }
  }
  if (pick == nullptr) return fmt::format("<{}>", row.name);  // unreachable: every row has a print variant
  return expand(pick->tmpl, row, insn, o);
}

std::string disassemble_one(const isa::Insn& insn, std::size_t pc, Dialect dialect) {
  DisasmOptions o;
  o.dialect = dialect;
  return disassemble_one(insn, pc, o);
}

std::string disassemble(std::span<const isa::Insn> insns, const DisasmOptions& opts) {
  std::string out;
  for (std::size_t pc = 0; pc < insns.size(); ++pc) {
    const isa::Insn& in = insns[pc];
    if (in.op == isa::Op::LddwTail) continue;
    if (opts.show_index) out += fmt::format("{:>8}:\t", pc);
    if (opts.show_bytes) {
      std::vector<isa::RawInsn> raw{isa::encode_one(in)};
      if (in.info().form == isa::Form::Lddw) {
        isa::RawInsn tail;
        tail.imm = in.imm_hi;
        raw.push_back(tail);
      }
      std::string bytes;
      for (const isa::RawInsn& r : raw) {
        std::uint8_t b[sizeof(isa::RawInsn)];
        std::memcpy(b, &r, sizeof b);
        for (std::uint8_t x : b) bytes += fmt::format("{}{:02x}", bytes.empty() ? "" : " ", x);
      }
      out += bytes;
      out += '\t';
    }
    out += disassemble_one(in, pc, opts);
    out += '\n';
  }
  return out;
}

}  // namespace userbpf::assembly
