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
//
// * Inline bpf_loop (Options::inline_loops), as the kernel's verifier's
//   inline_bpf_loop: `call bpf_loop` whose r2 is a `lddw func` of the same
//   basic block is a native loop calling the callback as a bpf-to-bpf call
//   (emit_inline_loop has the code and its invariants).
#include <linux/bpf.h>

#include <bit>
#include <cerrno>

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

namespace userbpf::jit::detail {

std::vector<u32> loop_inline_pcs(std::span<const Insn> insns, const Options& opts, const std::vector<bool>& is_target,
                                 const std::vector<bool>& is_entry) {
  std::vector<u32> out;
  if (!opts.inline_loops || opts.helpers == nullptr) return out;
  const abi::Helper* h = opts.helpers->find(BPF_FUNC_loop);
  if (h == nullptr || h->name != "loop") return out;  // the contract of Options::inline_loops
  for (std::size_t pc = 0; pc < insns.size(); ++pc) {
    const Insn& in = insns[pc];
    if (in.op != Op::Call || in.imm != BPF_FUNC_loop) continue;
    const std::optional<std::size_t> t = lddw_func_target(insns, is_target, is_entry, pc, 2);
    if (!t || *t >= insns.size() || !is_entry[*t]) continue;
    if (out.empty()) out.assign(insns.size(), 0);
    out[pc] = static_cast<u32>(*t + 1);
  }
  return out;
}

// `call bpf_loop` with r2 = the function at `entry` (as the kernel's
// inline_bpf_loop, without its stack slots):
//   rax = -EINVAL; test r8, r8; jnz done            ; flags (u64) != 0
//   rax = -E2BIG;  cmp esi, 1 << 23; ja done        ; nr_loops is a u32
//   xor eax, eax;  test esi, esi; jz done           ; nothing to call: 0
//   cmp rbp, [min_call_rbp]; jb depth fault (r0 = 0) ; the callback's frame
//   push r1-r5, r6-r9; sub rsp, slots: [rsp] = i, [rsp+8] = nr, [rsp+16] = ctx
// loop:
//   r1 = i; r2 = ctx; r0 = r3 = r4 = r5 = r6..r9 = 0; [may_goto counter]
//   sub rbp, 512; call entry; add rbp, 512
//   ++i; if r0 != 0 goto stop; if i < nr goto loop
// stop: rax = i; add rsp, slots; pop r6-r9, r1-r5
// done:
// Invariants (= the helper through abi::Env::call_function / rt_callback):
// the callee starts exactly as a callback does (r0, r3-r9 zero, r1 = i,
// r2 = ctx, r10 = the frame below the caller's, a fresh may_goto counter);
// the depth check is the same and only made when a call happens; r1-r9 of
// the caller are kept (a helper call keeps them); a fault or an exit inside
// the callee ends the run through `abort` with the same State as the
// nested trampoline leaves. rsp is 8 mod 16 at the `call` (9 pushes, the
// slots and the counter), as at every bpf-to-bpf call.
void Emitter::emit_inline_loop(std::size_t pc, std::size_t entry) {
  constexpr u32 kMaxLoops = 1u << 23;  // BPF_MAX_LOOPS, as helpers' bpf_loop
  const auto neg = [](int e) { return static_cast<u64>(-static_cast<s64>(e)); };
  const Reg64& nr = kReg[1];
  const Reg64& ctx = kReg[3];
  const Reg64& flags = kReg[4];
  Label loop, stop, done;
  mov(rax, neg(EINVAL));
  test(flags, flags);
  jnz(done, T_NEAR);
  mov(rax, neg(E2BIG));
  cmp(r32(nr), kMaxLoops);
  ja(done, T_NEAR);
  xor_(eax, eax);
  test(r32(nr), r32(nr));
  jz(done, T_NEAR);
  cmp(rbp, qword[st(&State::min_call_rbp)]);
  jb(fault_thunk(abi::Fault::CallDepth, pc));  // r0 = 0, as rt_callback's fault
  for (std::size_t r = 1; r <= 5; ++r) push(kReg[r]);
  push_saved(kAllCalleeSaved);
  const u32 slots = may_goto_ ? 24 : 32;  // 72 + slots (+ 8) is 8 mod 16
  sub(rsp, slots);
  mov(dword[rsp], 0);
  mov(dword[rsp + 8], r32(nr));
  mov(qword[rsp + 16], ctx);
  L(loop);
  mov(r32(kReg[1]), dword[rsp]);
  mov(kReg[2], qword[rsp + 16]);
  for (std::size_t r : {0u, 3u, 4u, 5u}) xor_(r32(kReg[r]), r32(kReg[r]));
  for (const Reg64& r : kCalleeSaved) xor_(r32(r), r32(r));
  if (may_goto_) push(static_cast<u32>(abi::kMayGotoBudget));
  sub(rbp, static_cast<u32>(kFrameSize));
  call(target_label(entry));
  add(rbp, static_cast<u32>(kFrameSize));
  if (may_goto_) add(rsp, 8);
  mov(r10d, dword[rsp]);
  add(r10d, 1);
  mov(dword[rsp], r10d);
  test(rax, rax);
  jnz(stop, T_SHORT);
  cmp(r10d, dword[rsp + 8]);
  jb(loop, T_NEAR);
  L(stop);
  mov(eax, r10d);
  add(rsp, slots);
  pop_saved(kAllCalleeSaved);
  for (std::size_t r = 5; r >= 1; --r) pop(kReg[r]);
  L(done);
}

}  // namespace userbpf::jit::detail
