// Classic BPF checks: the kernel's bpf_check_classic (socket filters and the
// first stage of seccomp) and seccomp_check_filter.
//
// How it works: one pass over the program looks every code up in the
// classic table (classic.def) and applies the per-kind rules; a second pass
// is the kernel's check_load_and_stores: a bit mask of the M[] words written
// so far flows forward along the program (jumps are forward only, so one
// pass in index order sees every predecessor first); each jump target's mask
// is the AND over its incoming edges, and after any jump the fall-through
// mask is "all valid", exactly as the kernel computes it (a RET does not
// reset the mask: the kernel's conservative rule is reproduced, not fixed).
// Invariant: every error names the instruction index (Error::insn) and the
// rule, e.g. "insn 4: jt target 12 out of range (program has 10 insns)".
#include <fmt/format.h>

#include <cstring>

#include "cbpf/cbpf.hpp"

namespace userbpf::cbpf {
namespace {

Error at(std::size_t pc, std::string msg) { return insn_error(EINVAL, pc, std::move(msg)); }

Status check_memory(std::span<const Insn> prog) {
  // (a backward ja, allowed in libpcap mode only, does not update masks:
  //  its target was already passed; M[] words read before written are 0)
  const std::size_t n = prog.size();
  std::vector<std::uint16_t> masks(n, 0xffff);
  std::uint16_t valid = 0;
  for (std::size_t pc = 0; pc < n; ++pc) {
    valid &= masks[pc];
    const Insn& in = prog[pc];
    const OpInfo& row = *lookup(in.code);
    switch (row.kind) {
      case Kind::St:
      case Kind::Stx: valid = static_cast<std::uint16_t>(valid | (1U << in.k)); break;
      case Kind::LdMem:
      case Kind::LdxMem:
        if ((valid & (1U << in.k)) == 0)
          return at(pc, fmt::format("'{}' reads M[{}] before it is written on every path to it", row.mnemonic, in.k));
        break;
      case Kind::Ja:
        if (static_cast<std::int32_t>(in.k) >= 0) masks[pc + 1 + in.k] &= valid;
        valid = 0xffff;
        break;
      case Kind::JmpK:
      case Kind::JmpX:
        masks[pc + 1 + in.jt] &= valid;
        masks[pc + 1 + in.jf] &= valid;
        valid = 0xffff;
        break;
      case Kind::LdAbs: case Kind::LdInd: case Kind::LdLen: case Kind::LdImm: case Kind::LdxImm:
      case Kind::LdxLen: case Kind::LdxMsh: case Kind::AluK: case Kind::AluX: case Kind::Neg:
      case Kind::RetK: case Kind::RetA: case Kind::Tax: case Kind::Txa:
        break;
    }
  }
  return Ok{};
}

}  // namespace

bool has_backward_ja(std::span<const Insn> prog) {
  for (const Insn& in : prog) {
    const OpInfo* row = lookup(in.code);
    if (row != nullptr && row->kind == Kind::Ja && static_cast<std::int32_t>(in.k) < 0) return true;
  }
  return false;
}

Status check(std::span<const Insn> prog, const CheckOptions& opts) {
  const std::size_t n = prog.size();
  if (n == 0 || n > kMaxInsns)
    return make_error(EINVAL, fmt::format("program length {} out of range (1..{} instructions)", n, kMaxInsns));
  for (std::size_t pc = 0; pc < n; ++pc) {
    const Insn& in = prog[pc];
    const OpInfo* row = lookup(in.code);
    if (row == nullptr) return at(pc, fmt::format("unknown classic opcode {:#06x}", in.code));
    switch (row->kind) {
      case Kind::AluK:
        if ((row->op == Op::DivK || row->op == Op::ModK) && in.k == 0)
          return at(pc, fmt::format("'{}' by constant zero", row->mnemonic));
        if ((row->op == Op::LshK || row->op == Op::RshK) && in.k >= 32)
          return at(pc, fmt::format("'{}' by constant {} (must be < 32)", row->mnemonic, in.k));
        break;
      case Kind::LdMem:
      case Kind::LdxMem:
      case Kind::St:
      case Kind::Stx:
        if (in.k >= kMemWords)
          return at(pc, fmt::format("'{}' M[{}] out of range (M[0..{}])", row->mnemonic, in.k, kMemWords - 1));
        break;
      case Kind::Ja:
        if (opts.allow_backward_ja && static_cast<std::int32_t>(in.k) < 0) {
          const std::int64_t target = static_cast<std::int64_t>(pc) + 1 + static_cast<std::int32_t>(in.k);
          if (target < 0) return at(pc, fmt::format("ja target {} before the program start", target));
          break;
        }
        if (in.k >= n - pc - 1)
          return at(pc, fmt::format("ja target {} out of range (program has {} insns)",
                                    static_cast<std::uint64_t>(pc) + 1 + in.k, n));
        break;
      case Kind::JmpK:
      case Kind::JmpX:
        if (pc + in.jt + 1 >= n)
          return at(pc, fmt::format("'{}' jt target {} out of range (program has {} insns)", row->mnemonic,
                                    pc + in.jt + 1, n));
        if (pc + in.jf + 1 >= n)
          return at(pc, fmt::format("'{}' jf target {} out of range (program has {} insns)", row->mnemonic,
                                    pc + in.jf + 1, n));
        break;
      case Kind::LdAbs:
        if (in.k >= static_cast<std::uint32_t>(kSkfAdOff) && ancillary(in.k) == nullptr)
          return at(pc, fmt::format("'{}' unknown ancillary offset SKF_AD_OFF{:+d}", row->mnemonic,
                                    static_cast<std::int32_t>(in.k) - kSkfAdOff));
        break;
      case Kind::LdInd: case Kind::LdLen: case Kind::LdImm: case Kind::LdxImm: case Kind::LdxLen:
      case Kind::LdxMsh: case Kind::AluX: case Kind::Neg: case Kind::RetK: case Kind::RetA: case Kind::Tax:
      case Kind::Txa:
        break;
    }
  }
  const OpInfo& last = *lookup(prog[n - 1].code);
  if (last.kind != Kind::RetK && last.kind != Kind::RetA)
    return at(n - 1, fmt::format("last instruction must be a return, not '{}'", last.mnemonic));
  return check_memory(prog);
}

Status check_seccomp(std::span<const Insn> prog) {
  if (auto st = check(prog); !st.ok()) return st;
  for (std::size_t pc = 0; pc < prog.size(); ++pc) {
    const Insn& in = prog[pc];
    const OpInfo& row = *lookup(in.code);
    if (!row.seccomp)
      return at(pc, fmt::format("'{}' ({}) is not allowed in seccomp filters (packet load or unknown to seccomp)",
                                row.mnemonic, row.name));
    if (row.op == Op::LdWAbs && (in.k >= sizeof(SeccompData) || (in.k & 3) != 0))
      return at(pc, fmt::format("seccomp load at offset {} outside struct seccomp_data or not 4-byte aligned", in.k));
  }
  return Ok{};
}

Result<std::vector<Insn>> from_bytes(std::span<const std::uint8_t> bytes) {
  if (bytes.size() % sizeof(Insn) != 0) {
    Error e = make_error(EINVAL, fmt::format("classic program size {} is not a multiple of 8 (struct sock_filter)",
                                             bytes.size()));
    e.offset = bytes.size() - bytes.size() % sizeof(Insn);
    return e;
  }
  std::vector<Insn> out(bytes.size() / sizeof(Insn));
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

std::vector<std::uint8_t> to_bytes(std::span<const Insn> prog) {
  std::vector<std::uint8_t> out(prog.size() * sizeof(Insn));
  if (!out.empty()) std::memcpy(out.data(), prog.data(), out.size());
  return out;
}

std::string seccomp_action_name(std::uint32_t ret) {
  const std::uint32_t action = ret & kSeccompRetActionFull;
  const std::uint32_t data = ret & kSeccompRetData;
  switch (action) {
    case 0x80000000U: return "KILL_PROCESS";
    case 0x00000000U: return "KILL_THREAD";
    case 0x00030000U: return "TRAP";
    case 0x00050000U: return fmt::format("ERRNO({})", data);
    case 0x7fc00000U: return "USER_NOTIF";
    case 0x7ff00000U: return fmt::format("TRACE({})", data);
    case 0x7ffc0000U: return "LOG";
    case 0x7fff0000U: return "ALLOW";
    default: return fmt::format("KILL_PROCESS (unknown action {:#010x})", ret);
  }
}

}  // namespace userbpf::cbpf
