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

namespace {
// emit_array_update copies whole words, at most four (its code fits the
// helper call's max_code_size).
constexpr u32 kMaxInlineUpdate = 32;
bool array_update_inlinable(const Options::MapLookup& m) {
  return m.update_size != 0 && m.update_size % 8 == 0 && m.update_size <= kMaxInlineUpdate &&
         (m.stride >= m.update_size || m.max_entries == 1);  // (one entry: stride unused)
}
}  // namespace

std::vector<u32> map_lookup_pcs(std::span<const Insn> insns, const Options& opts, const std::vector<bool>& is_target,
                                const std::vector<bool>& is_entry) {
  std::vector<u32> out;
  if (opts.map_lookups.empty() || opts.helpers == nullptr || !opts.kernel_structure) return out;
  for (std::size_t pc = 0; pc < insns.size(); ++pc) {
    const Insn& in = insns[pc];
    if (in.op != Op::Call || (in.imm != BPF_FUNC_map_lookup_elem && in.imm != BPF_FUNC_map_update_elem)) continue;
    const bool update = in.imm == BPF_FUNC_map_update_elem;
    if (update && !opts.inline_map_updates) continue;
    const std::optional<u64> map = lddw_constant(insns, is_target, is_entry, pc, 1);
    if (!map) continue;
    for (std::size_t i = 0; i < opts.map_lookups.size(); ++i) {
      const Options::MapLookup& m = opts.map_lookups[i];
      if (m.map != *map) continue;
      const bool inline_array = m.values != 0 && m.stride < (u64{1} << 31);
      if (update) {
        if (!inline_array || !array_update_inlinable(m)) break;
        if (out.empty()) out.assign(insns.size(), 0);
        out[pc] = static_cast<u32>(i + 1);
        break;
      }
      const bool direct = !inline_array && m.lookup != 0 && opts.direct_map_lookups;
      if (!inline_array && !direct) continue;
      if (out.empty()) out.assign(insns.size(), 0);
      out[pc] = static_cast<u32>(i + 1);
      break;
    }
  }
  return out;
}

// One map call of map_lookup_pcs: the inline array lookup or update, or the
// direct lookup call.
void Emitter::emit_map_lookup(std::size_t pc, const Options::MapLookup& m) {
  if (insns_[pc].imm == BPF_FUNC_map_update_elem) {
    emit_array_update(pc, m);
    return;
  }
  if (m.values != 0) {
    emit_array_lookup(pc, m);
    return;
  }
  //   mov rdi, rsi ; mov rsi, rdx ; xor edx, edx ; mov rax, lookup ; call rax
  mov(rdi, kReg[1]);
  mov(rsi, kReg[2]);
  xor_(edx, edx);
  mov(rax, m.lookup);
  call(rax);
}

// The key register or immediate of the map call at pc (forward_map_keys):
// r2 = r10 + off set in pc's basic block (`r2 = r10; r2 += off`, nothing
// else writing r2 or r10 after), and the last store in the block that may
// touch [r10 + off, +4) is `*(u32 / u64 *)(r10 + off) = rK / imm` with rK
// not written since. Any call, any store or atomic through a register
// other than r10 (it may point into the stack), or a program that writes
// r10 ends the search: nothing known.
std::optional<Emitter::MapKey> Emitter::map_key(std::size_t pc) const {
  if (!opts_.forward_map_keys || writes_r10_ || pc == 0) return std::nullopt;
  const auto block_start = [&](std::size_t k) { return is_target_[k] || is_entry_[k]; };
  // Calls and LD_ABS/LD_IND write registers written_reg does not count; an
  // atomic may write a register and the stack.
  const auto barrier = [](Form f) {
    return f == Form::Call || f == Form::CallKfunc || f == Form::CallLocal || f == Form::Callx || f == Form::LdAbs ||
           f == Form::LdInd || f == Form::Atomic;
  };
  // r2 = r10 + off
  std::size_t k = pc;
  std::optional<s64> off;
  while (k > 0 && !block_start(k)) {
    const Insn& in = insns_[--k];
    if (barrier(in.info().form)) return std::nullopt;
    if (written_reg(in) != 2) continue;
    if (!off) {
      if (in.op != Op::AddImm) return std::nullopt;
      off = in.imm;
      continue;
    }
    if (in.op != Op::MovReg || in.src != isa::kFrameReg) return std::nullopt;
    break;
  }
  if (!off || insns_[k].op != Op::MovReg || insns_[k].dst != 2 || insns_[k].src != isa::kFrameReg)
    return std::nullopt;
  // the last store that may touch [r10 + off, +4)
  k = pc;
  while (k > 0 && !block_start(k)) {
    const Insn& in = insns_[--k];
    const Form f = in.info().form;
    if (barrier(f)) return std::nullopt;
    if (f != Form::St && f != Form::Stx && f != Form::StoreRel) continue;
    if (in.dst != isa::kFrameReg) return std::nullopt;
    const s64 lo = in.off;
    const s64 hi = lo + static_cast<s64>(isa::access_size(in.op));
    if (hi <= *off || lo >= *off + 4) continue;  // another slot
    if (lo != *off || (in.op != Op::StW && in.op != Op::StDW && in.op != Op::StxW && in.op != Op::StxDW))
      return std::nullopt;
    if (f == Form::St) return MapKey{-1, static_cast<u32>(in.imm)};
    for (std::size_t j = k + 1; j < pc; ++j)
      if (written_reg(insns_[j]) == in.src) return std::nullopt;
    return MapKey{in.src, 0};
  }
  return std::nullopt;
}

// Address of element `index` (in rax, zero-extended) into rax; r11 scratch.
//   mov r11, values ; lea rax, [r11 + rax * stride]   (or shl / imul, add)
//
//   mov eax, [rdx]           ; i = *(u32 *)r2  (or the key's register / imm)
//   cmp eax, max_entries
//   jae null
//   <address>
//   jmp done
// null: xor eax, eax
// done:
void Emitter::emit_array_lookup(std::size_t pc, const Options::MapLookup& m) {
  const std::optional<MapKey> key = map_key(pc);
  const u64 s = m.stride;
  if (key && key->reg < 0) {  // a constant key: r0 = its value's address or NULL
    if (key->imm < m.max_entries) mov(rax, m.values + u64{key->imm} * s);
    else xor_(eax, eax);
    return;
  }
  Label null, done;
  if (key) mov(eax, r32(kReg[static_cast<std::size_t>(key->reg)]));
  else mov(eax, dword[kReg[2]]);
  cmp(eax, m.max_entries);
  jae(null, T_SHORT);
  mov(r11, m.values);
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

// `call map_update_elem` of an array (inline_map_updates; the kernel's
// array_map_update_elem, = maps::ArrayBase::prog_update for values without
// special fields). r1-r5 are kept; scratch: r10, r11, rdi.
//   mov r10, r8 ; and r10, ~BPF_F_LOCK      ; f
//   rax = -EINVAL ; cmp r10, BPF_EXIST ; ja done
//   mov r11d, [rdx]                         ; i (or the key's register / imm)
//   rax = -E2BIG  ; cmp r11d, max_entries ; jae done
//   rax = -EEXIST ; cmp r10, BPF_NOEXIST ; je done
//   rax = -EINVAL ; test r8, BPF_F_LOCK ; jnz done
//   r11 = values + i * stride ; copy update_size / 8 words from [rcx]
//   xor eax, eax
// done:
void Emitter::emit_array_update(std::size_t pc, const Options::MapLookup& m) {
  const auto neg = [](int e) { return static_cast<u64>(-static_cast<s64>(e)); };
  const Reg64& key_ptr = kReg[2];
  const Reg64& value = kReg[3];
  const Reg64& flags = kReg[4];
  const std::optional<MapKey> key = map_key(pc);
  Label done;
  mov(r10, flags);
  and_(r10, static_cast<u32>(~u32{BPF_F_LOCK}));  // sign-extended: ~BPF_F_LOCK
  mov(rax, neg(EINVAL));
  cmp(r10, BPF_EXIST);
  ja(done, T_SHORT);
  const u64 s = m.stride;
  if (key && key->reg < 0) {  // a constant key
    if (key->imm >= m.max_entries) {
      mov(rax, neg(E2BIG));
      L(done);
      return;
    }
  } else {
    if (key) mov(r11d, r32(kReg[static_cast<std::size_t>(key->reg)]));
    else mov(r11d, dword[key_ptr]);
    mov(rax, neg(E2BIG));
    cmp(r11d, m.max_entries);
    jae(done, T_SHORT);
  }
  mov(rax, neg(EEXIST));
  cmp(r10, BPF_NOEXIST);
  je(done, T_SHORT);
  mov(rax, neg(EINVAL));
  test(flags, BPF_F_LOCK);
  jnz(done, T_SHORT);
  if (key && key->reg < 0) {
    mov(r11, m.values + u64{key->imm} * s);
  } else {
    if (std::has_single_bit(s)) shl(r11, static_cast<u8>(std::countr_zero(s)));
    else imul(r11, r11, static_cast<int>(s));
    mov(rdi, m.values);
    add(r11, rdi);
  }
  for (u32 w = 0; w < m.update_size / 8; ++w) {
    mov(rdi, qword[value + 8 * w]);
    mov(qword[r11 + 8 * w], rdi);
  }
  xor_(eax, eax);
  L(done);
}

// A direct call of a helper flagged abi::kHelperLeaf (lean_helper_calls):
// no State::fp / call_pc stores, no signal test; only the r1-r5 live after
// the call are saved (none in a verified program: Options::verified) (padded so that rsp stays 16-byte aligned at the
// call). A kHelperRunConstant helper first tests its State::run_const slot
// (~0: not called yet in this run) and stores what the call returned.
void Emitter::emit_lean_call(std::size_t pc, const abi::Helper& h, u32 id) {
  int slot = -1;
  if ((h.flags & abi::kHelperRunConstant) != 0) {
    for (u32 i = 0; i < run_const_count_; ++i)
      if (run_const_ids_[i] == id) slot = static_cast<int>(i);
    if (slot < 0 && run_const_count_ < run_const_ids_.size()) {
      slot = static_cast<int>(run_const_count_);
      run_const_ids_[run_const_count_++] = id;
    }
  }
  const Xbyak::RegExp cached = r12 + static_cast<std::size_t>(off_of(&State::run_const) + 8 * std::max(slot, 0));
  Label done;
  if (slot >= 0) {
    mov(rax, qword[cached]);
    cmp(rax, 0xffffffffu);  // imm32, sign-extended: ~0
    jne(done, T_SHORT);
  }
  std::array<std::size_t, 5> saved{};
  std::size_t n = 0;
  for (std::size_t r = 1; r <= 5 && !opts_.verified; ++r)
    if (!dead_after(pc, static_cast<int>(r))) saved[n++] = r;
  for (std::size_t i = 0; i < n; ++i) push(kReg[saved[i]]);
  const bool pad = n % 2 == 1;  // rsp is 16-byte aligned before the pushes
  if (pad) sub(rsp, 8);
  mov(rdi, qword[st(&State::env)]);
  mov(rax, fn_u64(h.fn));
  call(rax);
  if (pad) add(rsp, 8);
  for (std::size_t i = n; i-- > 0;) pop(kReg[saved[i]]);
  if (slot >= 0) {
    mov(qword[cached], rax);
    L(done);
  }
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
