// Log text: register types and states in the kernel's notation
// ("R1=ctx() R10=fp0", "R0_w=map_value_or_null(id=1,map=m,ks=4,vs=8)"),
// and instructions in the kernel's print_bpf_insn style
// ("(61) r0 = *(u32 *)(r1 +0)").
#include <fmt/format.h>

#include <cstring>
#include <type_traits>

#include "spec/spec.hpp"
#include "verifier/engine.hpp"

namespace userbpf::verifier::detail {

using isa::Form;
using isa::Op;

std::string reg_type_str(const Reg& r) {
  std::string base;
  switch (r.type) {
    case RegType::NotInit: return "?";
    case RegType::Scalar: return "scalar";
    case RegType::Ctx: base = "ctx"; break;
    case RegType::ConstMapPtr: base = "map_ptr"; break;
    case RegType::MapValue: base = "map_value"; break;
    case RegType::MapKey: base = "map_key"; break;
    case RegType::Stack: base = "fp"; break;
    case RegType::PacketMeta: base = "pkt_meta"; break;
    case RegType::Packet: base = "pkt"; break;
    case RegType::PacketEnd: base = "pkt_end"; break;
    case RegType::Mem: base = "mem"; break;
    case RegType::Func: base = "func"; break;
    case RegType::Sock: base = "sock"; break;
    case RegType::SockCommon: base = "sock_common"; break;
    case RegType::TcpSock: base = "tcp_sock"; break;
  }
  std::string prefix;
  if (r.rdonly) prefix += "rdonly_";
  if (r.ringbuf) prefix += "ringbuf_";
  return prefix + base + (r.maybe_null ? "_or_null" : "");
}

namespace {

std::string snum(std::int64_t v) {
  if (v >= -512 && v <= 512) return fmt::format("{}", v);
  return fmt::format("{:#x}", static_cast<std::uint64_t>(v));
}
std::string unum(std::uint64_t v) { return v <= 512 ? fmt::format("{}", v) : fmt::format("{:#x}", v); }

// The kernel's print_scalar_ranges: equal values are merged ("smax=umax=7").
void scalar_ranges(const Reg& r, std::vector<std::string>& parts) {
  struct M {
    const char* name;
    std::uint64_t val;
    bool omit;
  };
  M m[] = {
      {"smin", static_cast<std::uint64_t>(r.smin), r.smin == std::numeric_limits<s64>::min()},
      {"smax", static_cast<std::uint64_t>(r.smax), r.smax == std::numeric_limits<s64>::max()},
      {"umin", r.umin, r.umin == 0},
      {"umax", r.umax, r.umax == std::numeric_limits<u64>::max()},
      {"smin32", static_cast<std::uint64_t>(static_cast<s64>(r.s32min)), r.s32min == std::numeric_limits<s32>::min()},
      {"smax32", static_cast<std::uint64_t>(static_cast<s64>(r.s32max)), r.s32max == std::numeric_limits<s32>::max()},
      {"umin32", r.u32min, r.u32min == 0},
      {"umax32", r.u32max, r.u32max == std::numeric_limits<u32>::max()},
  };
  constexpr std::size_t n = sizeof(m) / sizeof(m[0]);
  for (std::size_t i = 0; i < n; ++i) {
    if (m[i].omit) continue;
    const bool neg1 = m[i].name[0] == 's' && static_cast<s64>(m[i].val) < 0;
    std::string part = std::string(m[i].name) + "=";
    for (std::size_t j = i + 2; j < n; j += 2) {
      if (m[j].omit || m[j].val != m[i].val) continue;
      const bool neg2 = m[j].name[0] == 's' && static_cast<s64>(m[j].val) < 0;
      if (neg1 != neg2) continue;
      m[j].omit = true;
      part += std::string(m[j].name) + "=";
    }
    part += m[i].name[0] == 's' ? snum(static_cast<s64>(m[i].val)) : unum(m[i].val);
    parts.push_back(part);
  }
}

std::string join(const std::vector<std::string>& parts) {
  std::string s;
  for (std::size_t i = 0; i < parts.size(); ++i) s += (i ? "," : "") + parts[i];
  return s;
}

}  // namespace

std::string reg_str(const Reg& r, const Config& cfg) {
  if (r.type == RegType::Scalar && r.var_off.is_const()) return snum(static_cast<std::int64_t>(r.var_off.value));
  if (r.type == RegType::Stack && r.var_off.is_const())
    return fmt::format("fp{}", r.off + static_cast<std::int64_t>(r.var_off.value));
  std::vector<std::string> parts;
  if (r.id != 0) parts.push_back(fmt::format("id={}", r.id));
  if (r.ref_obj_id != 0) parts.push_back(fmt::format("ref_obj_id={}", r.ref_obj_id));
  if (r.type != RegType::Scalar && r.off != 0) parts.push_back(fmt::format("off={}", r.off));
  if (r.is_pkt()) parts.push_back(fmt::format("r={}", r.range));
  if ((r.type == RegType::MapValue || r.type == RegType::ConstMapPtr || r.type == RegType::MapKey) && r.map >= 0) {
    const MapDesc& md = cfg.maps[static_cast<std::size_t>(r.map)];
    parts.push_back(fmt::format("map={},ks={},vs={}", md.name.empty() ? "map" : md.name, md.key_size, md.value_size));
  }
  if (r.type == RegType::Mem) parts.push_back(fmt::format("sz={}", r.range));
  if (r.var_off.is_const()) {
    if (r.var_off.value != 0) parts.push_back(fmt::format("imm={:x}", r.var_off.value));
  } else {
    scalar_ranges(r, parts);
    if (!r.var_off.is_unknown()) parts.push_back(fmt::format("var_off={}", r.var_off.str()));
  }
  return reg_type_str(r) + "(" + join(parts) + ")";
}

// A stack slot as the kernel prints it after "fp-N=": a spilled register,
// an iterator ("iter_num(ref_id=1,state=active,depth=0)") or the byte types
// from the highest address ("mmmm????").
std::string slot_str(const StackSlot& sl, const Config& cfg) {
  if (sl.type[0] == Slot::Spill) return reg_str(sl.spilled, cfg);
  if (sl.type[0] == Slot::Iter)
    return fmt::format("iter_num(ref_id={},state={},depth={})", sl.spilled.ref_obj_id,
                       sl.iter_state == kIterActive ? "active" : "drained", sl.iter_depth);
  if (sl.type[0] == Slot::Dynptr) {
    // printed once, at the dynptr's first slot: "dynptr_ringbuf(id=1,ref_id=2)"
    if (!sl.dynptr_first) return {};
    std::vector<std::string> parts;
    if (sl.spilled.id != 0) parts.push_back(fmt::format("id={}", sl.spilled.id));
    if (sl.spilled.ref_obj_id != 0) parts.push_back(fmt::format("ref_id={}", sl.spilled.ref_obj_id));
    if (sl.spilled.id != 0) parts.push_back(fmt::format("dynptr_id={}", sl.spilled.id));
    return fmt::format("dynptr_{}({})", sl.dynptr_type == kDynptrRingbuf ? "ringbuf" : "local", join(parts));
  }
  std::string types;
  for (int b = 7; b >= 0; --b) {
    switch (sl.type[static_cast<std::size_t>(b)]) {
      case Slot::Invalid: types += '?'; break;
      case Slot::Misc: types += 'm'; break;
      case Slot::Zero: types += '0'; break;
      case Slot::Spill: types += 'r'; break;
      case Slot::Iter: types += 'i'; break;
      case Slot::Dynptr: types += 'd'; break;
    }
  }
  return types;
}

namespace {

// Byte-identical registers / slots print the same text: the diff skips them
// without formatting (the log of a long run formats every insn's diff).
template <class T>
bool same_bytes(const T& a, const T& b) {
  static_assert(std::is_trivially_copyable_v<T>);
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

}  // namespace

std::string frame_diff_str(const Frame& before, const Frame& after, const Config& cfg, unsigned read_mask) {
  std::string s;
  for (std::size_t i = 0; i < after.regs.size(); ++i) {
    const Reg& a = after.regs[i];
    const Reg& b = before.regs[i];
    if (a.type == RegType::NotInit) continue;
    if ((read_mask & (1u << i)) == 0 && same_bytes(a, b)) continue;
    if (reg_str(a, cfg) == reg_str(b, cfg) && a.type == b.type && (read_mask & (1u << i)) == 0) continue;
    s += fmt::format(" R{}={}", i, reg_str(a, cfg));
  }
  for (int spi = 0; spi < kSlots; ++spi) {
    const StackSlot& sa = after.stack[static_cast<std::size_t>(spi)];
    const StackSlot& sb = before.stack[static_cast<std::size_t>(spi)];
    if (same_bytes(sa, sb)) continue;
    const std::string text = slot_str(sa, cfg);
    if ((sa.type == sb.type && text == slot_str(sb, cfg)) || text.empty()) continue;
    s += fmt::format(" fp{}={}", -(spi + 1) * 8, text);
  }
  return s;
}

std::string frame_str(const Frame& f, const Config& cfg, bool only_written) {
  std::string s;
  if (f.frameno > 0) s += fmt::format("frame{}: ", f.frameno);
  for (std::size_t i = 0; i < f.regs.size(); ++i) {
    const Reg& r = f.regs[i];
    if (r.type == RegType::NotInit) continue;
    if (only_written && !r.written) continue;
    if (!s.empty() && s.back() != ' ') s += ' ';
    s += fmt::format("R{}={}", i, reg_str(r, cfg));
  }
  for (int spi = 0; spi < kSlots; ++spi) {
    const StackSlot& sl = f.stack[static_cast<std::size_t>(spi)];
    bool any = false;
    for (const Slot t : sl.type) any = any || t != Slot::Invalid;
    if (!any || only_written) continue;
    const std::string text = slot_str(sl, cfg);
    if (!text.empty()) s += fmt::format(" fp{}={}", -(spi + 1) * 8, text);
  }
  return s;
}

namespace {

const char* size_name(unsigned size) {
  switch (size) {
    case 1: return "u8";
    case 2: return "u16";
    case 4: return "u32";
    default: return "u64";
  }
}

}  // namespace

std::string insn_str(std::span<const isa::Insn> insns, std::size_t pc, const Config& cfg) {
  (void)cfg;
  const isa::Insn& in = insns[pc];
  const isa::OpInfo& row = in.info();
  const std::string code = fmt::format("({:02x})", row.opcode);
  const bool is64 = isa::op_class(in.op) == isa::Class::Alu64 || isa::op_class(in.op) == isa::Class::Jmp;
  const char rc = is64 ? 'r' : 'w';
  switch (row.form) {
    case Form::AluK:
      return fmt::format("{} {}{} {} {}", code, rc, in.dst, row.kop, in.imm);
    case Form::AluX:
      return fmt::format("{} {}{} {} {}{}", code, rc, in.dst, row.kop, rc, in.src);
    case Form::MovSx:
      return fmt::format("{} {}{} = ({}){}{}", code, rc, in.dst, row.kop, rc, in.src);
    case Form::Neg:
      return fmt::format("{} {}{} = -{}{}", code, rc, in.dst, rc, in.dst);
    case Form::End:
      return fmt::format("{} r{} = {} r{}", code, in.dst, row.kop, in.dst);
    case Form::Ja:
      return fmt::format("{} goto pc{:+}", code, in.off);
    case Form::Gotol:
      return fmt::format("{} gotol pc{:+}", code, in.imm);
    case Form::JmpK:
      return fmt::format("{} if {}{} {} {:#x} goto pc{:+}", code, rc, in.dst, row.kop,
                         static_cast<std::uint32_t>(in.imm), in.off);
    case Form::JmpX:
      return fmt::format("{} if {}{} {} {}{} goto pc{:+}", code, rc, in.dst, row.kop, rc, in.src, in.off);
    case Form::MayGoto:
      return fmt::format("{} may_goto pc{:+}", code, in.off);
    case Form::Call:
      return fmt::format("{} call bpf_{}#{}", code,
                         in.imm >= 0 ? spec::helper_name(static_cast<std::uint32_t>(in.imm)) : "unknown", in.imm);
    case Form::CallLocal:
      return fmt::format("{} call pc{:+}", code, in.imm);
    case Form::CallKfunc:
      if (const spec::KfuncProto* k = in.off == 0 ? spec::kfunc(static_cast<std::uint32_t>(in.imm)) : nullptr)
        return fmt::format("{} call {}#{}", code, k->name, in.imm);
      return fmt::format("{} call kernel-function#{}", code, in.imm);
    case Form::Callx:
      return fmt::format("{} callx r{}", code, in.dst);
    case Form::Exit:
      return fmt::format("{} exit", code);
    case Form::Lddw:
      if (in.op == Op::Lddw) return fmt::format("{} r{} = {:#x}", code, in.dst, in.imm64());
      if (in.op == Op::LddwMapValue || in.op == Op::LddwMapIdxVal)
        return fmt::format("{} r{} = map[id:{}][0]+{}", code, in.dst, in.imm, in.imm_hi);
      return fmt::format("{} r{} = map[id:{}]", code, in.dst, in.imm);
    case Form::LdAbs:
      return fmt::format("{} r0 = *({} *)skb[{}]", code, size_name(isa::access_size(in.op)), in.imm);
    case Form::LdInd:
      return fmt::format("{} r0 = *({} *)skb[r{} + {}]", code, size_name(isa::access_size(in.op)), in.src, in.imm);
    case Form::Ldx: case Form::LoadAcq:
      return fmt::format("{} r{} = *({} *)(r{} {:+})", code, in.dst,
                         in.op == Op::LdxSB ? "s8" : in.op == Op::LdxSH ? "s16" : in.op == Op::LdxSW ? "s32"
                                                                                  : size_name(isa::access_size(in.op)),
                         in.src, in.off);
    case Form::St:
      return fmt::format("{} *({} *)(r{} {:+}) = {}", code, size_name(isa::access_size(in.op)), in.dst, in.off, in.imm);
    case Form::Stx: case Form::StoreRel:
      return fmt::format("{} *({} *)(r{} {:+}) = r{}", code, size_name(isa::access_size(in.op)), in.dst, in.off, in.src);
    case Form::Atomic:
      return fmt::format("{} lock *({} *)(r{} {:+}) {} r{}", code, size_name(isa::access_size(in.op)), in.dst, in.off,
                         row.kop, in.src);
  }
  return code;
}

}  // namespace userbpf::verifier::detail
