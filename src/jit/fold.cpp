// Cross-instruction rewrites of the x86-64 JIT that need whole-program facts
// beyond one straight-line group (see the design comment in jit.cpp):
//
// * Map lookups (Options::map_lookups): `call map_lookup_elem` whose r1 is
//   provably a listed map (detail::lddw_constant; map_lookup_pcs) is
//   - for arrays, inline, as the kernel's array_map_gen_lookup: a bounds
//     test and an address computation. Invariant: the result equals the
//     helper's for every key (exact bound test against max_entries, no
//     index masking); r1-r5 are kept (the interpreter's helper call keeps
//     them too); only the scratch registers r10/r11 are used besides rax;
//   - for other maps with a direct lookup function (not per-CPU), a plain
//     System V call lookup(map = r1, key = r2, cpu = 0), as the kernel's
//     verifier patches the call to map->ops->map_lookup_elem: no fp /
//     call_pc stores, no register saves, no signal check (the function
//     neither fails nor calls back nor touches the Env). Invariant: only
//     caller-saved registers change: rax (r0), r1-r5 (unreadable after a
//     call in a verified program) and rdi, r10, r11 (scratch); rsp is
//     16-byte aligned at the call as at every helper call.
// * Loads folded into ALU operands: `rX = *(u64 *)(rB + off); rD op= rX`
//   (and the u32 / 32-bit ALU form) with rX dead afterwards (liveness) is
//   one `op rD, [rB + off]` (add, sub, and, or, xor, imul); also with a
//   load of rD in between (clang's `a = x[i]; b = y[j]; b *= a`), the two
//   loads then swap order (no store between them). rX keeps its old value,
//   which no one reads. Invariant: only where the load's width equals the
//   operation's (x86 has no zero-extending load-op).
#include <linux/bpf.h>

#include <bit>

#include "jit/emitter.hpp"

namespace userbpf::jit::detail {

std::vector<u32> map_lookup_pcs(std::span<const Insn> insns, const Options& opts, const std::vector<bool>& is_target,
                                const std::vector<bool>& is_entry) {
  std::vector<u32> out;
  if (opts.map_lookups.empty() || opts.helpers == nullptr || !opts.kernel_structure) return out;
  for (std::size_t pc = 0; pc < insns.size(); ++pc) {
    const Insn& in = insns[pc];
    if (in.op != Op::Call || in.imm != BPF_FUNC_map_lookup_elem) continue;
    const std::optional<u64> map = lddw_constant(insns, is_target, is_entry, pc, 1);
    if (!map) continue;
    for (std::size_t i = 0; i < opts.map_lookups.size(); ++i) {
      const Options::MapLookup& m = opts.map_lookups[i];
      if (m.map != *map) continue;
      const bool inline_array = m.values != 0 && m.stride < (u64{1} << 31);
      const bool direct = !inline_array && m.lookup != 0 && opts.direct_map_lookups;
      if (!inline_array && !direct) continue;
      if (out.empty()) out.assign(insns.size(), 0);
      out[pc] = static_cast<u32>(i + 1);
      break;
    }
  }
  return out;
}

// One map lookup of map_lookup_pcs: the inline array lookup or the direct call.
void Emitter::emit_map_lookup(const Options::MapLookup& m) {
  if (m.values != 0) {
    emit_array_lookup(m);
    return;
  }
  //   mov rdi, rsi ; mov rsi, rdx ; xor edx, edx ; mov rax, lookup ; call rax
  mov(rdi, kReg[1]);
  mov(rsi, kReg[2]);
  xor_(edx, edx);
  mov(rax, m.lookup);
  call(rax);
}

//   mov eax, [rdx]           ; i = *(u32 *)r2
//   cmp eax, max_entries
//   jae null
//   mov r11, values ; lea rax, [r11 + rax * stride]   (or shl / imul, add)
//   jmp done
// null: xor eax, eax
// done:
void Emitter::emit_array_lookup(const Options::MapLookup& m) {
  Label null, done;
  const Reg64& key = kReg[2];
  mov(eax, dword[key]);
  cmp(eax, m.max_entries);
  jae(null, T_SHORT);
  mov(r11, m.values);
  const u64 s = m.stride;
  if (s == 1 || s == 2 || s == 4 || s == 8) {
    lea(rax, ptr[r11 + rax * static_cast<int>(s)]);
  } else {
    if (std::has_single_bit(s)) {
      shl(rax, static_cast<u8>(std::countr_zero(s)));
    } else {
      imul(rax, rax, static_cast<int>(s));
    }
    add(rax, r11);
  }
  jmp(done, T_SHORT);
  L(null);
  xor_(eax, eax);
  L(done);
}

// rX = *(u64 *)(rB + off); [rY = load;] rD op= rX, rX dead afterwards:
//   op rD, [rB + off]           (two instructions, rD != rX)
//   rY = load; op rY, [rB + off] (three: the second load is rY = rD, whose
//   address does not use rX and which does not overwrite rB)
// Returns how many instructions after pc it consumed (0: none, nothing emitted).
std::size_t Emitter::emit_load_op(std::size_t pc) {
  const std::size_t n = insns_.size();
  const Insn& a = insns_[pc];
  if ((a.op != Op::LdxDW && a.op != Op::LdxW) || pc + 1 >= n || is_target_[pc + 1]) return 0;
  std::size_t at = pc + 1;
  const Insn* second = nullptr;  // the load in between
  if (insns_[at].info().form == Form::Ldx && pc + 2 < n && !is_target_[pc + 2]) {
    second = &insns_[at];
    if (second->dst == a.dst || second->src == a.dst || second->dst == a.src || second->dst == isa::kFrameReg) return 0;
    ++at;
  }
  const Insn& b = insns_[at];
  if (b.info().form != Form::AluX || b.src != a.dst || b.dst == a.dst || b.dst == isa::kFrameReg) return 0;
  if (second != nullptr && b.dst != second->dst) return 0;
  const bool is64 = isa::is_64(b.op);
  if (a.op != (is64 ? Op::LdxDW : Op::LdxW) || !dead_after(at, a.dst)) return 0;
  const unsigned code = isa::op_code(b.op);
  if (code != 0x0 && code != 0x1 && code != 0x2 && code != 0x4 && code != 0x5 && code != 0xa) return 0;
  if (second != nullptr) emit_mem(pc + 1, *second);
  const Xbyak::RegExp m = mem_addr(pc, a.src, a.off, is64 ? 8 : 4, false);
  const Reg64& d64 = kReg[b.dst];
  const Xbyak::Reg d = is64 ? Xbyak::Reg(d64) : Xbyak::Reg(r32(d64));
  const Xbyak::Address op = is64 ? qword[m] : dword[m];
  switch (code) {
    case 0x0: add(d, op); break;
    case 0x1: sub(d, op); break;
    case 0x2: imul(d, op); break;
    case 0x4: or_(d, op); break;
    case 0x5: and_(d, op); break;
    default: xor_(d, op); break;
  }
  return at - pc;
}

}  // namespace userbpf::jit::detail
