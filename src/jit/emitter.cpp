// The x86-64 JIT's code generator: the Emitter's lowering of each BPF
// instruction, the out-of-line thunks, stubs and trampoline (see the design
// comment in jit.cpp for how it works and its invariants).
#include "jit/emitter.hpp"

#include <bit>
#include <cstring>

#include "isa/semantics.hpp"

namespace userbpf::jit::detail {

void Emitter::load_const(const Reg64& r, u64 v) {
  if (blinding()) {
    mov(r, v ^ isa::sem::imm64(static_cast<s32>(blind_key_)));
    xor_(r, blind_key_);
  } else {
    mov(r, v);
  }
}

namespace {
// max_code_size of an unchecked, uncounted, unblinded variant.
constexpr u32 base_code_size(Op op) {
  if (op == Op::LddwTail) return 0;
  switch (isa::info(op).form) {
    case Form::AluK:
    case Form::AluX: {
      const unsigned code = isa::op_code(op);
      return code == 3 || code == 9 ? 72 : code == 6 || code == 7 || code == 0xc ? 24 : 12;  // mov r64, imm64: 10
    }
    case Form::Neg: case Form::End: case Form::MovSx: case Form::Lddw:
      return 12;  // rol r16 + movzx: 9; lddw: 10
    case Form::Exit: case Form::Ja: case Form::Gotol:
      return 6;  // add rsp, 8; ret: 5. jmp rel32: 5
    case Form::JmpK: case Form::JmpX:
      return 14;  // cmp r64, imm32 + jcc rel32: 13
    case Form::MayGoto:
      return 20;  // cmp [rsp], 0; jcc; dec [rsp]: 15-17
    case Form::Ldx: case Form::St: case Form::Stx: case Form::LoadAcq: case Form::StoreRel:
      return 14;  // mov qword [r12 + disp32], imm32: 12 (checked: see max_code_size)
    case Form::Atomic:
      return 64;
    case Form::Call: case Form::CallKfunc: case Form::CallLocal: case Form::Callx: case Form::LdAbs: case Form::LdInd:
      return 192;
  }
  return 192;
}
// base_code_size by Op, computed once from the opcode table.
struct CodeSizes {
  std::array<std::uint8_t, isa::kOpCount> size{};
  constexpr CodeSizes() {
    for (std::size_t i = 0; i < isa::kOpCount; ++i) size[i] = static_cast<std::uint8_t>(base_code_size(static_cast<Op>(i)));
  }
  constexpr u32 operator[](Op op) const {
    const auto i = static_cast<std::size_t>(op);
    return i < isa::kOpCount ? size[i] : 0;  // LddwTail: no code of its own
  }
};
constexpr CodeSizes kCodeSizes;
}  // namespace

// Upper bound of the bytes emitted for one instruction (its counting prefix
// included), generous on purpose: it only decides whether a forward branch
// can be short; a wrong bound makes xbyak throw (label too far) and the
// variant is regenerated with near branches only (Program::Impl::generate).
u32 max_code_size(const Insn& in, Variant v, bool blinding) {
  u32 b = kCodeSizes[in.op];
  if (v.checked) {
    const Form f = in.info().form;
    if (f == Form::Ldx || f == Form::St || f == Form::Stx || f == Form::LoadAcq || f == Form::StoreRel) b = 80;
    if (f == Form::Atomic) b = 128;
  }
  if (b == 0) return 0;
  if (v.counting) b += 16;
  if (blinding) b += 32;
  return b;
}

// Bytes of out-of-line code (thunks) an instruction may add after the body
// (<= 48 bytes per thunk): one per counted instruction and per checked
// access, the division by 0 / -1 cases, calls (and their signal thunks).
namespace {
u32 max_cold_size(const Insn& in, Variant v) {
  u32 cold = (v.counting ? 48u : 0u) + (v.checked ? 48u : 0u);
  const Form f = in.info().form;
  if ((f == Form::AluX || f == Form::AluK) && (isa::op_code(in.op) == 3 || isa::op_code(in.op) == 9)) cold += 48;
  if (f == Form::Call || f == Form::CallKfunc || f == Form::CallLocal || f == Form::Callx || f == Form::LdAbs ||
      f == Form::LdInd || in.op == Op::LddwFunc)
    cold += 64;
  return cold;
}
}  // namespace

// Prefix sums of max_code_size over the body: bound[pc] >= the code offset
// of pc; bound[n] bounds the body. An inlined call counts its callee's
// expanded body (inline_code). Also returns a bound of the whole code
// (body, out-of-line thunks, stubs, trampoline).
// One pass over the program with two small tables by opcode (max_code_size
// and max_cold_size of this variant), built first from one representative
// instruction per Op (both depend only on the opcode and the variant).
std::vector<u32> code_bounds(std::span<const Insn> insns, const std::vector<bool>& heads, Variant v, bool blinding,
                             const std::vector<std::uint32_t>& inline_end, const std::vector<u32>& loops,
                             std::size_t& total) {
  const std::size_t n = insns.size();
  std::array<std::uint16_t, isa::kOpCount + 1> size{}, cold_size{};  // [kOpCount]: LddwTail and others: 0
  for (std::size_t i = 0; i < isa::kOpCount; ++i) {
    Insn in;
    in.op = static_cast<Op>(i);
    size[i] = static_cast<std::uint16_t>(max_code_size(in, v, blinding));
    cold_size[i] = static_cast<std::uint16_t>(max_cold_size(in, v));
  }
  const auto op_index = [](Op op) {
    const auto i = static_cast<std::size_t>(op);
    return i < isa::kOpCount ? i : isa::kOpCount;
  };
  std::vector<u32> bound(n + 1);
  bound[0] = 0;
  // inline_code[entry]: bound of an inlined copy of the function at entry
  // (saves, frame move, its body with its own inlined calls); 0: not known yet.
  std::vector<u32> inline_code(inline_end.empty() ? 0 : n, 0);
  constexpr u32 kInlineFrame = 2 * 4 * 2 + 2 * 7;  // push/pop of r6-r9, sub/add rbp
  const auto plain = [&](std::size_t pc) {  // a loop head's padding counts before its label
    return u32{size[op_index(insns[pc].op)]} + (pc + 1 < n && heads[pc + 1] ? kLoopAlign - 1 : 0);
  };
  const auto size_of = [&](const auto& self, std::size_t pc) -> u32 {
    const Insn& in = insns[pc];
    u32 b = plain(pc);
    if (in.op == Op::CallLocal && !inline_end.empty()) {
      const auto t = static_cast<std::size_t>(static_cast<std::int64_t>(pc) + 1 + in.imm);
      if (inline_end[t] != 0) {
        if (inline_code[t] == 0) {  // the call graph is acyclic (CallFacts::static_depth)
          u32 c = kInlineFrame + (heads[t] ? kLoopAlign - 1 : 0);
          for (std::size_t k = t; k < inline_end[t]; ++k) c += self(self, k);
          inline_code[t] = c;
        }
        b += inline_code[t];
      }
    }
    return b;
  };
  std::size_t cold = 0;
  for (std::size_t pc = 0; pc < n; ++pc) {
    const u32 b = (inline_end.empty() ? plain(pc) : size_of(size_of, pc)) +
                  (!loops.empty() && loops[pc] != 0 ? kInlineLoopCode : 0);
    bound[pc + 1] = bound[pc] + b;
    cold += cold_size[op_index(insns[pc].op)];
    if (insns[pc].op == Op::CallLocal) cold += b;  // an inlined body's thunks (generous)
  }
  total = bound[n] + cold + 1024;  // stubs and trampoline: ~400 bytes
  return bound;
}

// Address arithmetic folded into x86 addressing (non-counting variants; the
// instructions after the first are no jump targets):
//   rT = rA; [rT += K]; [rT += rB]  (either order, at least two)  ->  lea rT, [rA + rB + K]
//   rT = rA; rT += K / rB ...; load/store through rT + off, rT dead after
//   (or the load's destination)  ->  one load/store at [rA + rB + K + off]
//   rT += rB; load/store through rT + off, rT dead after  ->  [rT + rB + off]
// Returns how many instructions after pc it consumed (0: none, nothing emitted).
std::size_t Emitter::emit_address_fold(std::size_t pc) {
  const std::size_t n = insns_.size();
  const Insn& first = insns_[pc];
  const bool mov = first.op == Op::MovReg && first.dst != first.src;
  if (!mov && !(first.op == Op::AddReg && first.dst != first.src)) return 0;
  const int t = first.dst;
  if (t == isa::kFrameReg) return 0;
  int base = mov ? first.src : t;
  int index = mov ? -1 : first.src;
  s64 disp = 0;
  bool has_imm = false;
  std::size_t end = pc + 1;  // one past the address instructions
  while (end < n && !is_target_[end] && end - pc < 3) {
    const Insn& in = insns_[end];
    if (in.dst != t) break;
    if (in.op == Op::AddReg && index < 0 && in.src != t) {
      index = in.src;
    } else if (in.op == Op::AddImm && !has_imm && !blinding()) {
      disp = in.imm;
      has_imm = true;
    } else {
      break;
    }
    ++end;
  }
  // A memory access through rT next?
  if (end < n && !is_target_[end]) {
    const Insn& m = insns_[end];
    const Form f = m.info().form;
    const bool load = f == Form::Ldx && m.src == t;
    const bool store = (f == Form::Stx && m.dst == t && m.src != t) || (f == Form::St && m.dst == t);
    const s64 total = disp + m.off;
    if ((load || store) && total >= std::numeric_limits<s32>::min() && total <= std::numeric_limits<s32>::max() &&
        ((load && m.dst == t) || dead_after(end, t))) {
      Xbyak::RegExp e = kReg[static_cast<std::size_t>(base)] + static_cast<std::size_t>(total);
      if (index >= 0) e = e + kReg[static_cast<std::size_t>(index)];
      addr_override_ = e;
      emit_mem(end, m);
      addr_override_.reset();
      return end - pc;
    }
  }
  if (!mov || end - pc < 3) return 0;  // two-instruction forms: emit_fused
  Xbyak::RegExp e = kReg[static_cast<std::size_t>(base)] + static_cast<std::size_t>(disp);
  if (index >= 0) e = e + kReg[static_cast<std::size_t>(index)];
  lea(kReg[static_cast<std::size_t>(t)], ptr[e]);
  return end - pc - 1;
}

// Two BPF instructions as one x86 instruction (only where the second is not
// a jump target, and not in counting variants, which count each):
//   r = r << 32; r = r >> 32     ->  mov r32, r32   (zero-extension)
//   rD = rA; rD += rB / imm      ->  lea rD, [rA + rB / imm]
//   rD = *(u16/u32/u64 *)(rS + off); rD = be/bswap(rD)  ->  movbe (load + byte swap)
bool Emitter::emit_fused(std::size_t pc, const Insn& a, const Insn& b) {
  if (a.op == Op::LshImm && b.op == Op::RshImm && a.dst == b.dst && a.imm == 32 && b.imm == 32) {
    const Reg32 d = r32(kReg[a.dst]);
    if (!known32(a.dst)) mov(d, d);
    return true;
  }
  if ((a.op == Op::LdxW || a.op == Op::LdxDW || a.op == Op::LdxH) && b.dst == a.dst &&
      b.info().form == Form::End && b.op != Op::Le16 && b.op != Op::Le32 && b.op != Op::Le64 &&
      static_cast<unsigned>(b.info().sel_value) == isa::access_size(a.op) * 8) {
    const unsigned size = isa::access_size(a.op);
    const Xbyak::RegExp m = mem_addr(pc, a.src, a.off, size, false);
    const Reg64& d = kReg[a.dst];
    if (size == 2) {
      movzx(r32(d), word[m]);
      rol(d.cvt16(), 8);
    } else if (!movbe_) {
      return false;
    } else if (size == 4) {
      movbe(r32(d), dword[m]);
    } else {
      movbe(d, qword[m]);
    }
    return true;
  }
  if (a.op == Op::MovReg && a.dst != a.src && b.dst == a.dst) {
    const Reg64& d = kReg[a.dst];
    const Reg64& x = kReg[a.src];
    if (b.op == Op::AddReg && b.src != b.dst) {
      lea(d, ptr[x + kReg[b.src]]);
      return true;
    }
    if (b.op == Op::AddImm && !blinding()) {
      lea(d, ptr[x + static_cast<std::size_t>(static_cast<s64>(b.imm))]);
      return true;
    }
  }
  return false;
}

// Lowers instructions [begin, end) in program order. record: the program's
// own code (pc_offset is set); else an inlined copy of a function (see
// emit_inline), whose pcs keep their offsets of the original.
void Emitter::emit_body(std::size_t begin, std::size_t end, bool record) {
  const std::size_t n = insns_.size();
  const auto mark = [&](std::size_t pc) {
    if (record) pc_offset[pc] = static_cast<u32>(getSize());
  };
  const std::size_t outer_begin = body_begin_, outer_end = body_end_;
  body_begin_ = begin;
  body_end_ = end;
  for (std::size_t pc = begin; pc < end; ++pc) {
    if (is_target_[pc]) {
      if (heads_[pc] && pc > 0) align(kLoopAlign, true);
      L(target_label(pc));
      detail::forget_widths(width_);
    }
    mark(pc);
    const Insn& in = insns_[pc];
    if (in.op == Op::LddwTail) continue;
    if (counting_) {
      sub(qword[st(&State::budget_left)], 1);
      jb(fault_thunk(abi::Fault::Budget, pc));
    } else if (emit_idiom(pc)) {  // idioms.cpp: a planned instruction (skipped, or the idiom's site)
      detail::track_widths(width_, in);
      continue;
    } else if (const std::size_t extra = idiom_blocks_fold(pc) ? 0 : fold_group(pc); extra != 0) {
      for (std::size_t k = 0; k <= extra; ++k) detail::track_widths(width_, insns_[pc + k]);
      for (std::size_t k = 1; k <= extra; ++k) mark(pc + k);
      pc += extra;
      continue;
    } else if (pc + 1 < n && !is_target_[pc + 1] && !idiom_blocks_fold(pc) && emit_fused(pc, in, insns_[pc + 1])) {
      detail::track_widths(width_, in);
      ++pc;
      detail::track_widths(width_, insns_[pc]);
      mark(pc);  // pc's code is in its predecessor's block
      continue;
    }
    emit_insn(pc, in);
    if (divmod_keep_ >= 0) cancel_divmod_plan();  // (a division emitted without emit_divmod's keep)
    detail::track_widths(width_, in);
    if (skip_next_) {  // pc + 1 (a goto) is part of pc's code (emit_jump)
      skip_next_ = false;
      ++pc;
      mark(pc);
    }
  }
  body_begin_ = outer_begin;
  body_end_ = outer_end;
}

// A call of a function that calls_.inline_end marks: its body is emitted
// here (fresh labels for its jump targets, `exit` jumps to the end of the
// copy, the last one falls through). As a real call: the r6-r9 it may
// write are saved around it and r10 moves down a frame if it reads r10; no
// depth check is needed (static_depth). Not in counting or checked variants.
void Emitter::emit_inline(std::size_t entry) {
  const std::size_t end = calls_.inline_end[entry];
  const u8 mask = save_mask_[entry];
  const bool move_fp = callee_moves_fp(entry);
  push_saved(mask);
  if (move_fp) sub(rbp, static_cast<u32>(kFrameSize));
  // Fresh labels for the copy's jump targets: a new block of indices.
  const u32 outer_base = label_base_;
  label_base_ = labels_.add_block(end - entry) - static_cast<u32>(entry);  // (u32 arithmetic wraps)
  Label done;
  Label* const outer_exit = inline_exit_;
  const std::size_t outer_last = inline_last_;
  inline_exit_ = &done;
  inline_last_ = end - 1;
  emit_body(entry, end, false);
  inline_exit_ = outer_exit;
  inline_last_ = outer_last;
  L(done);
  label_base_ = outer_base;
  if (move_fp) add(rbp, static_cast<u32>(kFrameSize));
  pop_saved(mask);
  detail::forget_widths(width_);
}

void Emitter::generate() {
  const std::size_t n = insns_.size();
  pc_offset.assign(n, 0);
  emit_body(0, n, true);
  // Falling off the end of the program (impossible after exit / ja / gotol).
  const Op last = insns_[n - 1].op;
  if (last != Op::Exit && last != Op::Ja && last != Op::Gotol) jmp(fault_thunk(abi::Fault::FellOffEnd, n));
  stubs_offset = static_cast<u32>(getSize());
  emit_cold();
  emit_stubs();
  trampoline_offset = static_cast<u32>(getSize());
  emit_trampoline();
  labels_.resolve();  // every jump's displacement, in one pass
}

// Out-of-line stubs shared by all instructions. Functions are entered at
// their first instruction: entry_offset = pc_offset of each entry.
void Emitter::emit_stubs() {
  entry_offset.assign(insns_.size(), kNoEntry);
  for (std::size_t pc = 0; pc < insns_.size(); ++pc)
    if (is_entry_[pc]) entry_offset[pc] = pc_offset[pc];
  // Common abort path: unwind to the trampoline's frame and return.
  L(abort_);
  mov(rsp, qword[st(&State::saved_rsp)]);
  pop(r15);
  pop(r14);
  pop(r13);
  pop(r12);
  pop(rbp);
  pop(rbx);
  ret();

  // Checked-mode slow path: rdi = address, r10 = size | write << 8, r11 = pc.
  // Entered by `call` from BPF code (rsp 16-aligned before the call).
  L(check_stub_);
  mov(qword[st(&State::r0)], rax);  // r0 at the fault, if it is one
  for (const Reg64& r : {rax, rsi, rdx, rcx, r8, r9, rdi}) push(r);  // 7 pushes: aligned again
  mov(rsi, rdi);
  mov(rdi, r12);
  mov(rdx, r10);
  mov(rcx, r11);
  mov(r8, rbp);
  mov(rax, fn_u64(&rt_check_access));
  call(rax);
  test(rax, rax);
  jz(abort_);
  for (const Reg64& r : {rdi, r9, r8, rcx, rdx, rsi, rax}) pop(r);
  ret();

  // LD_ABS/LD_IND: r10 = src value, r11d = imm, edi = size | pc << 8; result in rax.
  L(ldpkt_stub_);
  for (const Reg64& r : {rsi, rdx, rcx, r8, r9}) push(r);  // 5 pushes: aligned
  mov(rcx, rdi);
  mov(rsi, r10);
  mov(rdx, r11);
  mov(rdi, r12);
  mov(rax, fn_u64(&rt_ld_packet));
  call(rax);
  for (const Reg64& r : {r9, r8, rcx, rdx, rsi}) pop(r);
  ret();

  // callx resolution: r10 = value, r11 = pc; returns the target in r11.
  L(callx_stub_);
  mov(qword[st(&State::r0)], rax);
  for (const Reg64& r : {rax, rsi, rdx, rcx, r8, r9}) push(r);
  sub(rsp, 8);
  mov(rdi, r12);
  mov(rsi, r10);
  mov(rdx, r11);
  mov(rax, fn_u64(&rt_resolve_callx));
  call(rax);
  mov(r11, rax);
  add(rsp, 8);
  for (const Reg64& r : {r9, r8, rcx, rdx, rsi, rax}) pop(r);
  ret();

  // Signal after a helper: esi = pc.
  L(signal_common_);
  mov(rdi, r12);
  mov(rax, fn_u64(&rt_finish_signal));
  call(rax);
  jmp(abort_);
}

void Emitter::emit_cold() {
  // Thunks may append nothing while we iterate (all created during the body).
  for (ColdThunk& t : cold_) {
    L(*t.label);
    switch (t.kind) {
      case ColdThunk::Fault:
        mov(qword[st(&State::r0)], rax);
        mov(dword[st(&State::fault_pc)], t.pc);
        mov(byte[st(&State::fault)], static_cast<u8>(t.fault));
        if (t.fault == abi::Fault::UnknownHelper) {
          mov(dword[st(&State::fault_id)], t.aux);
          mov(byte[st(&State::fault_kfunc)], t.kfunc ? 1 : 0);
        }
        jmp(abort_);
        break;
      case ColdThunk::Signal:
        mov(qword[st(&State::r0)], rax);
        mov(esi, t.pc);
        jmp(signal_common_);
        break;
      case ColdThunk::Check:
        mov(r10d, t.aux);
        mov(r11d, t.pc);
        call(check_stub_);
        jmp(*t.back);
        break;
      case ColdThunk::DivZero:
      case ColdThunk::DivMinusOne:
        emit_div_special(t);
        jmp(*t.back);
        break;
    }
  }
}

// entry(State* st [rdi], const u64 args[5] [rsi], u64 r10 [rdx], const u8* target [rcx]):
// runs the function whose first instruction is at `target` (the main program, or a
// callback's function) with r1-r5 = args, r10 = the given frame pointer and
// r0, r6-r9 = 0; its r0 ends up in State::r0.
void Emitter::emit_trampoline() {
  L(trampoline_);
  push(rbx);
  push(rbp);
  push(r12);
  push(r13);
  push(r14);
  push(r15);
  mov(r12, rdi);
  mov(qword[st(&State::saved_rsp)], rsp);  // rsp is 8 mod 16 here
  for (u32 i = 0; i < run_const_count_; ++i)  // emit_lean_call: not called yet in this run
    mov(qword[r12 + static_cast<std::size_t>(off_of(&State::run_const) + 8 * static_cast<int>(i))], ~u64{0});

  mov(rbp, rdx);
  mov(r11, rcx);
  mov(r10, rsi);
  mov(rsi, qword[r10]);
  mov(rdx, qword[r10 + 8]);
  mov(rcx, qword[r10 + 16]);
  mov(r8, qword[r10 + 24]);
  mov(r9, qword[r10 + 32]);
  xor_(eax, eax);
  xor_(ebx, ebx);
  xor_(r13d, r13d);
  xor_(r14d, r14d);
  xor_(r15d, r15d);
  if (may_goto_) {
    sub(rsp, 8);
    push(static_cast<u32>(abi::kMayGotoBudget));  // [rsp + 8] in the callee
  }
  call(r11);
  mov(qword[st(&State::r0)], rax);
  jmp(abort_);
}

void Emitter::emit_insn(std::size_t pc, const Insn& in) {
  const Form f = in.info().form;
  switch (f) {
    case Form::AluK:
    case Form::AluX:
    case Form::Neg:
    case Form::End:
    case Form::MovSx:
      emit_alu(pc, in);
      return;
    case Form::Ja:
    case Form::Gotol:
    case Form::JmpK:
    case Form::JmpX:
    case Form::MayGoto:
      emit_jump(pc, in);
      return;
    case Form::Call:
    case Form::CallKfunc:
      emit_helper_call(pc, in);
      return;
    case Form::CallLocal: {
      const auto t = static_cast<std::size_t>(static_cast<std::int64_t>(pc) + 1 + in.imm);
      if (inlining_ && calls_.inline_end[t] != 0) {
        emit_inline(t);
        return;
      }
      const bool move_fp = callee_moves_fp(t);
      emit_bpf_call_prologue(pc, save_mask_[t], move_fp);
      call(target_label(t));
      emit_bpf_call_epilogue(save_mask_[t], move_fp);
      return;
    }
    case Form::Callx:
      emit_callx(pc, in);
      return;
    case Form::Exit:
      if (inline_exit_ == nullptr) ret();
      else if (pc != inline_last_) jmp(*inline_exit_, T_NEAR);  // (the last one falls through)
      return;
    case Form::Lddw: {
      u64 v = in.imm64();
      if (in.op == Op::LddwFunc) v = abi::func_addr(static_cast<std::size_t>(static_cast<std::int64_t>(pc) + 1 + in.imm));
      const Reg64& d = kReg[in.dst];
      if (v == 0 && !blinding())
        xor_(r32(d), r32(d));
      else
        load_const(d, v);
      return;
    }
    case Form::LdAbs:
    case Form::LdInd:
      emit_ld_packet(pc, in);
      return;
    case Form::Ldx:
    case Form::St:
    case Form::Stx:
    case Form::LoadAcq:
    case Form::StoreRel:
      emit_mem(pc, in);
      return;
    case Form::Atomic:
      emit_atomic(pc, in);
      return;
  }
}

// ---------------------------------------------------------------- ALU
void Emitter::emit_alu(std::size_t pc, const Insn& in) {
  (void)pc;
  const bool is64 = isa::is_64(in.op);
  const Form f = in.info().form;
  const Reg64& d64 = kReg[in.dst];
  const Reg32 d32 = r32(d64);
  const Xbyak::Reg d = is64 ? Xbyak::Reg(d64) : Xbyak::Reg(d32);

  if (f == Form::Neg) {
    neg(d);
    return;
  }
  if (f == Form::End) {
    const auto w = static_cast<unsigned>(in.info().sel_value);
    const bool swap = in.op == Op::Be16 || in.op == Op::Be32 || in.op == Op::Be64 || in.op == Op::Bswap16 ||
                      in.op == Op::Bswap32 || in.op == Op::Bswap64;
    // Zero-extensions the known width of dst makes no-ops are left out.
    if (w == 16) {
      if (swap) rol(d64.cvt16(), 8);
      if (width_[in.dst] > 16) movzx(d32, d64.cvt16());
    } else if (w == 32) {
      if (swap)
        bswap(d32);
      else if (!known32(in.dst))
        mov(d32, d32);
    } else if (swap) {
      bswap(d64);
    }
    return;
  }
  if (f == Form::MovSx) {
    const Reg64& s64r = kReg[in.src];
    const int bits = in.info().sel_value;
    if (bits == 8)
      movsx(d, s64r.cvt8());
    else if (bits == 16)
      movsx(d, s64r.cvt16());
    else
      movsxd(d64, r32(s64r));
    return;
  }

  const bool imm_form = f == Form::AluK;
  const unsigned code = isa::op_code(in.op);
  // 0 add, 1 sub, 2 mul, 3 div, 4 or, 5 and, 6 lsh, 7 rsh, 9 mod, 0xa xor, 0xb mov, 0xc arsh
  const bool is_signed = in.info().sel == isa::Sel::Off && in.info().sel_value == 1;
  if (code == 3 || code == 9) {
    emit_divmod(in, is64, code == 9, is_signed, imm_form);
    return;
  }
  if (code == 6 || code == 7 || code == 0xc) {
    emit_shift(in, is64, static_cast<int>(code), imm_form);
    return;
  }
  // Operand: a register, or an immediate (sign-extended for 64-bit ops).
  const u64 immv = is64 ? isa::sem::imm64(in.imm) : static_cast<u32>(in.imm);
  const Reg64& s64r = kReg[in.src];
  bool use_reg = !imm_form;
  Reg64 src = s64r;
  if (imm_form && blinding()) {
    load_const(r11, immv);
    src = r11;
    use_reg = true;
  }
  const Xbyak::Reg s = is64 ? Xbyak::Reg(src) : Xbyak::Reg(r32(src));
  const u32 imm32 = static_cast<u32>(in.imm);
  switch (code) {
    case 0x0:
      if (use_reg) add(d, s); else add(d, imm32);
      return;
    case 0x1:
      if (use_reg) sub(d, s); else sub(d, imm32);
      return;
    case 0x2:
      if (use_reg) imul(d, s); else imul(d, d, static_cast<int>(in.imm));
      return;
    case 0x4:
      if (use_reg) or_(d, s); else or_(d, imm32);
      return;
    case 0x5: {
      // A mask keeping every bit dst can have set is a no-op.
      const unsigned w = width_[in.dst];
      const u64 known = w >= 64 ? ~u64{0} : (u64{1} << w) - 1;
      if (!use_reg && (is64 || w <= 32) && (known & ~immv) == 0) return;
      if (use_reg) and_(d, s); else and_(d, imm32);
      return;
    }
    case 0xa:
      if (use_reg) xor_(d, s); else xor_(d, imm32);
      return;
    case 0xb:
      if (use_reg) {
        if (is64) {
          if (src.getIdx() != d64.getIdx()) mov(d64, src);
        } else if (src.getIdx() != d64.getIdx() || !known32(in.dst)) {
          mov(d32, r32(src));
        }
      } else if (immv == 0) {
        xor_(d32, d32);
      } else if (is64) {
        mov(d64, immv);
      } else {
        mov(d32, imm32);
      }
      return;
    default:
      break;
  }
  throw Xbyak::Error(Xbyak::ERR_INTERNAL);
}

void Emitter::emit_shift(const Insn& in, bool is64, int kind, bool imm_form) {
  const Reg64& d64 = kReg[in.dst];
  const Reg32 d32 = r32(d64);
  const Xbyak::Reg d = is64 ? Xbyak::Reg(d64) : Xbyak::Reg(d32);
  auto op_imm = [&](u8 n) {
    if (kind == 6) shl(d, n);
    else if (kind == 7) shr(d, n);
    else sar(d, n);
  };
  if (imm_form && !blinding()) {
    const u8 n = static_cast<u8>(static_cast<u32>(in.imm) & (is64 ? 63u : 31u));
    if (n == 0) {
      if (!is64 && !known32(in.dst)) mov(d32, d32);
      return;
    }
    op_imm(n);
    return;
  }
  Reg64 s = kReg[in.src];
  if (imm_form) {  // blinded immediate
    load_const(r11, static_cast<u32>(in.imm));
    s = r11;
  }
  if (bmi2_) {
    const int bits = is64 ? 64 : 32;
    const Xbyak::Reg32e sr(s.getIdx(), bits);
    const Xbyak::Reg32e dr(d64.getIdx(), bits);
    if (kind == 6) shlx(dr, dr, sr);
    else if (kind == 7) shrx(dr, dr, sr);
    else sarx(dr, dr, sr);
    return;
  }
  // cl form: rcx is BPF r3; park it in r10 around the shift.
  mov(r10, rcx);
  if (s.getIdx() != rcx.getIdx()) mov(rcx, s);
  const Reg64 t = d64.getIdx() == rcx.getIdx() ? r10 : d64;
  const Xbyak::Reg tr = is64 ? Xbyak::Reg(t) : Xbyak::Reg(r32(t));
  if (kind == 6) shl(tr, cl);
  else if (kind == 7) shr(tr, cl);
  else sar(tr, cl);
  if (!is64) mov(r32(t), r32(t));
  mov(rcx, r10);
}

// x / 0 = 0, x % 0 = x, x s/ -1 = -x, x s% -1 = 0 (sem::), for register
// divisors out of line: the common path falls through without a taken jump.
void Emitter::emit_div_special(const ColdThunk& t) {
  const Reg64& d64 = kReg[t.aux];
  const Reg32 d32 = r32(d64);
  emit_keep_special(t);  // (a fused division's other result, from the dividend in dst)
  if (t.kind == ColdThunk::DivZero) {
    if (t.is_mod) {
      if (!t.is64) mov(d32, d32);
    } else {
      xor_(d32, d32);
    }
  } else if (t.is_mod) {
    xor_(d32, d32);
  } else if (t.is64) {
    neg(d64);
  } else {
    neg(d32);
  }
}

void Emitter::emit_divmod(const Insn& in, bool is64, bool is_mod, bool is_signed, bool imm_form) {
  const Reg64& d64 = kReg[in.dst];
  ColdThunk special;
  special.aux = in.dst;
  special.is64 = is64;
  special.is_mod = is_mod;
  Reg64 divisor = r11;
  if (imm_form) {
    const u64 v = is64 ? isa::sem::imm64(in.imm) : static_cast<u32>(in.imm);
    const bool m1 = is_signed && (is64 ? v == ~u64{0} : v == 0xffffffffu);
    if (v == 0 || m1) {  // constant special cases: inline, no division
      special.kind = v == 0 ? ColdThunk::DivZero : ColdThunk::DivMinusOne;
      if (v == 0 && is_mod && !is64 && known32(in.dst)) return;
      emit_div_special(special);
      return;
    }
    load_const(r11, v);
  } else {
    // The divisor register itself, unless div's own rax/rdx are it.
    const Reg64& s = kReg[in.src];
    if (s.getIdx() != rax.getIdx() && s.getIdx() != rdx.getIdx()) divisor = s;
    else if (is64) mov(r11, s);
    else mov(r11d, r32(s));
    const Xbyak::Reg dv = is64 ? Xbyak::Reg(divisor) : Xbyak::Reg(r32(divisor));
    auto out_of_line = [&](ColdThunk::Kind k) -> Label& {
      ColdThunk t;
      t.kind = k;
      t.aux = special.aux;
      t.is64 = is64;
      t.is_mod = is_mod;
      t.keep = divmod_keep_;
      t.label = std::make_unique<Label>();
      t.back = std::make_unique<Label>();
      t.pc = 0;
      cold_.push_back(std::move(t));
      return *cold_.back().label;
    };
    test(dv, dv);
    jz(out_of_line(ColdThunk::DivZero));
    if (is_signed) {
      cmp(dv, 0xffffffffu);  // sign-extended imm32 for the 64-bit form
      je(out_of_line(ColdThunk::DivMinusOne));
    }
  }
  const std::size_t first_special = cold_.size() - (imm_form ? 0 : (is_signed ? 2 : 1));
  const bool d_rax = d64.getIdx() == rax.getIdx(), d_rdx = d64.getIdx() == rdx.getIdx();
  if (!d_rax) mov(r10, rax);  // BPF r0 and r2 live in div's rax and rdx
  if (!d_rdx) mov(rdi, rdx);
  if (!d_rax) mov(rax, d64);
  if (is64) {
    if (is_signed) { cqo(); idiv(divisor); } else { xor_(edx, edx); div(divisor); }
  } else {
    if (is_signed) { cdq(); idiv(r32(divisor)); } else { xor_(edx, edx); div(r32(divisor)); }
  }
  const Reg64& result = is_mod ? rdx : rax;
  if (divmod_keep_ == kKeepSlot) mov(qword[st(&State::alu_keep)], is_mod ? rax : rdx);  // (idioms.cpp)
  else if (divmod_keep_ >= 0) mov(Reg64(divmod_keep_), is_mod ? rax : rdx);
  divmod_keep_ = -1;
  if (d_rax || d_rdx) {
    if (d64.getIdx() != result.getIdx()) {
      if (is64) mov(d64, result); else mov(r32(d64), r32(result));
    }
    if (!d_rax) mov(rax, r10);
    if (!d_rdx) mov(rdx, rdi);
  } else {
    if (is64) mov(d64, result); else mov(r32(d64), r32(result));  // (d is neither rax, rdx, r10 nor rdi)
    mov(rax, r10);
    mov(rdx, rdi);
  }
  for (std::size_t i = first_special; i < cold_.size(); ++i) L(*cold_[i].back);
}

// The flags of a conditional jump's comparison (cmp, or test for jset).
void Emitter::emit_compare(const Insn& in) {
  const Form f = in.info().form;
  const bool is64 = isa::is_64(in.op);
  const auto cond = static_cast<isa::sem::Cond>(isa::op_code(in.op));
  const Reg64& d64 = kReg[in.dst];
  const Xbyak::Reg d = is64 ? Xbyak::Reg(d64) : Xbyak::Reg(r32(d64));
  const bool is_set = cond == isa::sem::Cond::Set;
  if (f == Form::JmpK) {
    if (blinding()) {
      load_const(r11, is64 ? isa::sem::imm64(in.imm) : static_cast<u32>(in.imm));
      const Xbyak::Reg s = is64 ? Xbyak::Reg(r11) : Xbyak::Reg(r11d);
      if (is_set) test(d, s); else cmp(d, s);
    } else if (in.imm == 0 && !is_set) {
      test(d, d);
    } else if (is_set) {
      test(d, static_cast<u32>(in.imm));
    } else {
      cmp(d, static_cast<u32>(in.imm));
    }
  } else {
    const Reg64& s64r = kReg[in.src];
    const Xbyak::Reg s = is64 ? Xbyak::Reg(s64r) : Xbyak::Reg(r32(s64r));
    if (is_set) test(d, s); else cmp(d, s);
  }
}

// ---------------------------------------------------------------- jumps
void Emitter::emit_jump(std::size_t pc, const Insn& in) {
  const Form f = in.info().form;
  const std::size_t t = thread_jump(static_cast<std::size_t>(isa::jump_target(in, pc)));
  const bool fallthrough = t == pc + 1;
  const Xbyak::CodeGenerator::LabelType jt = jump_type(pc, t);
  if (f == Form::Ja || f == Form::Gotol) {
    if (fallthrough) return;
    if (insns_[t].op == Op::Exit && !counting_) {  // a jump to `exit` is one
      if (inline_exit_ == nullptr) ret();
      else jmp(*inline_exit_, T_NEAR);
    }
    else jmp(target_label(t), jt);
    return;
  }
  if (f == Form::MayGoto) {  // the frame's counter is at [rsp + 8] (see Stack and frames)
    cmp(qword[rsp + 8], 0);
    if (!fallthrough) je(target_label(t), jt);
    else {
      Label skip;
      je(skip);
      dec(qword[rsp + 8]);
      L(skip);
      return;
    }
    dec(qword[rsp + 8]);
    return;
  }
  const auto cond = static_cast<isa::sem::Cond>(isa::op_code(in.op));
  emit_compare(in);
  if (fallthrough) return;
  // `if c goto pc + 2; goto T` (the goto no jump target) -> `if !c goto T`:
  // one compare-and-branch per loop iteration instead of two branches.
  std::size_t to = t;
  bool invert = false;
  const std::size_t n = insns_.size();
  if (!counting_ && t == pc + 2 && pc + 1 < n && !is_target_[pc + 1] &&
      (insns_[pc + 1].op == Op::Ja || insns_[pc + 1].op == Op::Gotol)) {
    to = thread_jump(static_cast<std::size_t>(isa::jump_target(insns_[pc + 1], pc + 1)));
    invert = true;
    skip_next_ = true;
    if (to == pc + 2) return;
  }
  const Label l = target_label(to);
  const Xbyak::CodeGenerator::LabelType jtt = jump_type(pc, to);
  switch (cond) {
    case isa::sem::Cond::Eq: if (invert) jne(l, jtt); else je(l, jtt); break;
    case isa::sem::Cond::Ne: if (invert) je(l, jtt); else jne(l, jtt); break;
    case isa::sem::Cond::Set: if (invert) jz(l, jtt); else jnz(l, jtt); break;
    case isa::sem::Cond::Gt: if (invert) jbe(l, jtt); else ja(l, jtt); break;
    case isa::sem::Cond::Ge: if (invert) jb(l, jtt); else jae(l, jtt); break;
    case isa::sem::Cond::Lt: if (invert) jae(l, jtt); else jb(l, jtt); break;
    case isa::sem::Cond::Le: if (invert) ja(l, jtt); else jbe(l, jtt); break;
    case isa::sem::Cond::Sgt: if (invert) jle(l, jtt); else jg(l, jtt); break;
    case isa::sem::Cond::Sge: if (invert) jl(l, jtt); else jge(l, jtt); break;
    case isa::sem::Cond::Slt: if (invert) jge(l, jtt); else jl(l, jtt); break;
    case isa::sem::Cond::Sle: if (invert) jg(l, jtt); else jle(l, jtt); break;
  }
}

// ---------------------------------------------------------------- memory
Xbyak::RegExp Emitter::mem_addr(std::size_t pc, int base, s32 off, unsigned size, bool write, bool force_rdi) {
  if (addr_override_) return *addr_override_;  // unchecked only (emit_address_fold)
  const Reg64& b = kReg[static_cast<std::size_t>(base)];
  // xbyak keeps displacements as size_t and encodes the low 32 bits.
  const Xbyak::RegExp ea = b + static_cast<std::size_t>(static_cast<s64>(off));
  const bool proven = pc < opts_.proven_safe.size() && opts_.proven_safe[pc];
  if (!v_.checked || proven) {
    if (!force_rdi) return ea;
    lea(rdi, ptr[ea]);
    return Xbyak::RegExp(rdi);
  }
  // Live stack [fp - 512, top): (a - lo) <= (top - lo - size), unsigned.
  lea(rdi, ptr[ea]);
  lea(r10, ptr[rdi + kFrameSize]);
  mov(r11, qword[st(&State::stack_top)]);
  if (writes_r10_) {
    sub(r10, qword[st(&State::fp)]);
    sub(r11, qword[st(&State::fp)]);
  } else {
    sub(r10, rbp);
    sub(r11, rbp);
  }
  add(r11, static_cast<u32>(kFrameSize - size));
  cmp(r10, r11);
  ColdThunk t;
  t.kind = ColdThunk::Check;
  t.label = std::make_unique<Label>();
  t.back = std::make_unique<Label>();
  t.pc = static_cast<u32>(pc);
  t.aux = size | (write ? 0x100u : 0u);
  ja(*t.label);
  L(*t.back);
  cold_.push_back(std::move(t));
  return Xbyak::RegExp(rdi);
}

namespace {
const Xbyak::AddressFrame& frame_of(unsigned size) {
  switch (size) {
    case 1: return byte;
    case 2: return word;
    case 4: return dword;
    default: return qword;
  }
}
Xbyak::Reg sized(const Reg64& r, unsigned size) {
  switch (size) {
    case 1: return r.cvt8();
    case 2: return r.cvt16();
    case 4: return r32(r);
    default: return r;
  }
}
}  // namespace

void Emitter::emit_mem(std::size_t pc, const Insn& in) {
  const Form f = in.info().form;
  const unsigned size = isa::access_size(in.op);
  if (f == Form::Ldx || f == Form::LoadAcq) {
    const Xbyak::RegExp a = mem_addr(pc, in.src, in.off, size, false);
    const Reg64& d = kReg[in.dst];
    const bool sx = in.op == Op::LdxSB || in.op == Op::LdxSH || in.op == Op::LdxSW;
    if (size == 8) mov(d, qword[a]);
    else if (size == 4) { if (sx) movsxd(d, dword[a]); else mov(r32(d), dword[a]); }
    else if (sx) movsx(d, frame_of(size)[a]);
    else movzx(r32(d), frame_of(size)[a]);
    return;
  }
  const Xbyak::RegExp a = mem_addr(pc, in.dst, in.off, size, true);
  if (f == Form::St) {
    if (blinding()) {
      load_const(r11, isa::sem::imm64(in.imm));
      mov(frame_of(size)[a], sized(r11, size));
    } else if (size == 1) {
      mov(byte[a], static_cast<u8>(in.imm));
    } else if (size == 2) {
      mov(word[a], static_cast<std::uint16_t>(in.imm));
    } else if (size == 4) {
      mov(dword[a], static_cast<u32>(in.imm));
    } else {
      mov(qword[a], isa::sem::imm64(in.imm));  // encoded as imm32, sign-extended
    }
    return;
  }
  // Stx, StoreRel (plain stores are release stores on x86-64)
  mov(frame_of(size)[a], sized(kReg[in.src], size));
}

void Emitter::emit_atomic(std::size_t pc, const Insn& in) {
  const unsigned size = isa::access_size(in.op);
  const bool is64 = size == 8;
  const s32 sel = in.info().sel_value;
  const auto aop = static_cast<isa::sem::AtomicOp>(sel & ~isa::sem::kAtomicFetch);
  const bool fetch = (sel & isa::sem::kAtomicFetch) != 0;
  const Reg64& s64r = kReg[in.src];
  const Xbyak::Reg s = is64 ? static_cast<Xbyak::Reg>(s64r) : static_cast<Xbyak::Reg>(r32(s64r));
  const bool loop = fetch && (aop == isa::sem::AtomicOp::Or || aop == isa::sem::AtomicOp::And ||
                              aop == isa::sem::AtomicOp::Xor);
  const Xbyak::RegExp a = mem_addr(pc, in.dst, in.off, size, true, loop);
  const Xbyak::AddressFrame& fr = frame_of(size);
  switch (aop) {
    case isa::sem::AtomicOp::Add:
      if (fetch) { lock(); xadd(fr[a], s); }
      else { lock(); add(fr[a], s); }
      return;
    case isa::sem::AtomicOp::Xchg:
      xchg(fr[a], s);
      return;
    case isa::sem::AtomicOp::Cmpxchg:
      lock();
      cmpxchg(fr[a], s);
      if (!is64) mov(eax, eax);
      return;
    case isa::sem::AtomicOp::Or:
    case isa::sem::AtomicOp::And:
    case isa::sem::AtomicOp::Xor:
      break;
  }
  if (!fetch) {
    lock();
    if (aop == isa::sem::AtomicOp::Or) or_(fr[a], s);
    else if (aop == isa::sem::AtomicOp::And) and_(fr[a], s);
    else xor_(fr[a], s);
    return;
  }
  // fetch_or/and/xor: cmpxchg loop through rax (BPF r0 is parked in r10).
  mov(r10, rax);
  const Reg64 operand = s64r.getIdx() == rax.getIdx() ? r10 : s64r;
  const Xbyak::Reg opr = is64 ? static_cast<Xbyak::Reg>(operand) : static_cast<Xbyak::Reg>(r32(operand));
  const Xbyak::Reg acc = is64 ? static_cast<Xbyak::Reg>(rax) : static_cast<Xbyak::Reg>(eax);
  const Xbyak::Reg tmp = is64 ? static_cast<Xbyak::Reg>(r11) : static_cast<Xbyak::Reg>(r11d);
  mov(acc, fr[a]);
  Label again;
  L(again);
  mov(tmp, acc);
  if (aop == isa::sem::AtomicOp::Or) or_(tmp, opr);
  else if (aop == isa::sem::AtomicOp::And) and_(tmp, opr);
  else xor_(tmp, opr);
  lock();
  cmpxchg(fr[a], tmp);
  jne(again);
  if (s64r.getIdx() == rax.getIdx()) {
    if (!is64) mov(eax, eax);
  } else {
    mov(s, acc);
    mov(rax, r10);
  }
}

void Emitter::emit_ld_packet(std::size_t pc, const Insn& in) {
  if (in.info().form == Form::LdInd) mov(r10, kReg[in.src]);
  else xor_(r10d, r10d);
  if (blinding()) load_const(r11, static_cast<u32>(in.imm));
  else mov(r11d, static_cast<u32>(in.imm));
  mov(edi, static_cast<u32>(isa::access_size(in.op) | (pc << 8)));
  call(ldpkt_stub_);
  cmp(byte[st(&State::stop)], 0);
  jne(abort_);
}

// ---------------------------------------------------------------- calls
void Emitter::emit_helper_frame_push() {
  for (const Reg64& r : {rsi, rdx, rcx, r8, r9}) push(r);
  sub(rsp, 8);
}
void Emitter::emit_helper_frame_pop() {
  add(rsp, 8);
  for (const Reg64& r : {r9, r8, rcx, rdx, rsi}) pop(r);
}

// The Env's three signal flags (exit requested, failed, callback aborted)
// are bytes at fixed offsets in abi::Env: one load of the Env pointer, then
// one test of all three.
struct EnvFlagOffsets {
  std::size_t exit = 0, fail = 0, aborted = 0;
  EnvFlagOffsets() {
    static const abi::Env e;
    const auto at = [](const bool* f) {
      return static_cast<std::size_t>(reinterpret_cast<const char*>(f) - reinterpret_cast<const char*>(&e));
    };
    exit = at(e.exit_requested_flag());
    fail = at(e.failed_flag());
    aborted = at(e.callback_aborted_flag());
  }
};

void Emitter::emit_signal_check_direct(std::size_t pc) {
  static const EnvFlagOffsets kOff;
  mov(r11, qword[st(&State::env)]);
  movzx(r10d, byte[r11 + kOff.exit]);
  or_(r10b, byte[r11 + kOff.fail]);
  or_(r10b, byte[r11 + kOff.aborted]);
  jnz(signal_thunk(pc));
}

// Before any helper call: what a callback (rt_callback) and the checked-mode
// stack region need to know about the caller.
void Emitter::emit_before_helper(std::size_t pc) {
  if (!writes_r10_) mov(qword[st(&State::fp)], rbp);
  mov(dword[st(&State::call_pc)], static_cast<u32>(pc));
}

void Emitter::emit_helper_call(std::size_t pc, const Insn& in) {
  const bool kfunc = in.op == Op::CallKfunc;
  const u32 id = static_cast<u32>(in.imm);
  if (v_.direct && !v_.checked && !blinding() && !map_lookup_.empty() && map_lookup_[pc] != 0) {
    emit_map_lookup(pc, opts_.map_lookups[map_lookup_[pc] - 1]);
    return;
  }
  if (!loop_inline_.empty() && loop_inline_[pc] != 0 && loop_inline_enabled()) {
    emit_inline_loop(pc, loop_inline_[pc] - 1);
    return;
  }
  if (v_.direct) {
    const abi::Helper* h = kfunc ? opts_.helpers->find_kfunc(id) : opts_.helpers->find(id);
    if (h == nullptr) {
      jmp(fault_thunk(abi::Fault::UnknownHelper, pc, id, kfunc));
      return;
    }
    if (!kfunc && opts_.lean_helper_calls && (h->flags & abi::kHelperLeaf) != 0) {
      emit_lean_call(pc, *h, id);  // fold.cpp
      return;
    }
    emit_before_helper(pc);
    emit_helper_frame_push();
    mov(rdi, qword[st(&State::env)]);
    mov(rax, fn_u64(h->fn));
    call(rax);
    emit_helper_frame_pop();
    emit_signal_check_direct(pc);
    return;
  }
  mov(qword[st(&State::r0)], rax);
  emit_before_helper(pc);
  emit_helper_frame_push();
  mov(dword[st(&State::call_id)], id);
  mov(byte[st(&State::call_kfunc)], kfunc ? 1 : 0);
  mov(rdi, r12);
  mov(rax, fn_u64(&rt_dispatch));
  call(rax);
  emit_helper_frame_pop();
  cmp(byte[st(&State::stop)], 0);
  jne(signal_thunk(pc));
}

// BPF r6-r9 survive a bpf-to-bpf call: the caller pushes those the callee
// (or anything it calls) may write (mask from callee_saved_masks), padded
// to an even count so that rsp stays 16-byte aligned in the callee.
namespace {
int saved_count(u8 mask) { return std::popcount(static_cast<unsigned>(mask)); }
}  // namespace

// Whether a call needs an 8-byte pad: the pushes before it (saved registers
// and, with may_goto, the counter) must be odd in number.
// Without calls into C (unchecked variants), alignment does not matter.
void Emitter::push_saved(u8 mask) {
  for (std::size_t i = 0; i < kCalleeSaved.size(); ++i)
    if ((mask >> i) & 1) push(kCalleeSaved[i]);
}
void Emitter::pop_saved(u8 mask) {
  for (std::size_t i = kCalleeSaved.size(); i-- > 0;)
    if ((mask >> i) & 1) pop(kCalleeSaved[i]);
}
bool Emitter::call_pad(u8 mask) const {
  if (calls_.no_c_calls && !v_.checked) return false;
  return (saved_count(mask) + (may_goto_ ? 1 : 0)) % 2 == 0;
}

void Emitter::emit_bpf_call_prologue(std::size_t pc, u8 mask, bool move_fp) {
  if (writes_r10_) {
    // r10 may hold anything: the callee's r10 derives from the canonical fp.
    mov(r10, qword[st(&State::fp)]);
    cmp(r10, qword[st(&State::min_call_rbp)]);
    jb(fault_thunk(abi::Fault::CallDepth, pc));
  } else if (!calls_.static_depth) {  // else no call can exceed the frame limit
    cmp(rbp, qword[st(&State::min_call_rbp)]);
    jb(fault_thunk(abi::Fault::CallDepth, pc));
  }
  push_saved(mask);
  // rsp must be 8 mod 16 at the call: k saved registers, the counter, a pad.
  if (call_pad(mask)) push(r11);
  if (may_goto_) push(static_cast<u32>(abi::kMayGotoBudget));
  if (writes_r10_) {
    sub(r10, static_cast<u32>(kFrameSize));
    mov(qword[st(&State::fp)], r10);
    mov(rbp, r10);
  } else if (move_fp) {
    sub(rbp, static_cast<u32>(kFrameSize));
  }
}
void Emitter::emit_bpf_call_epilogue(u8 mask, bool move_fp) {
  if (writes_r10_) {
    // back in the caller, r10 is its canonical frame pointer again
    mov(rbp, qword[st(&State::fp)]);
    add(rbp, static_cast<u32>(kFrameSize));
    mov(qword[st(&State::fp)], rbp);
  } else if (move_fp) {
    add(rbp, static_cast<u32>(kFrameSize));
  }
  if (may_goto_ || call_pad(mask)) add(rsp, may_goto_ && call_pad(mask) ? 16 : 8);
  pop_saved(mask);
}

void Emitter::emit_callx(std::size_t pc, const Insn& in) {
  emit_before_helper(pc);
  mov(r10, kReg[in.dst]);
  mov(r11d, static_cast<u32>(pc));
  call(callx_stub_);
  test(r11, r11);
  jz(abort_);
  Label helper, done;
  cmp(byte[st(&State::callx_kind)], 0);
  jne(helper);
  emit_bpf_call_prologue(pc, kAllCalleeSaved);
  call(r11);
  emit_bpf_call_epilogue(kAllCalleeSaved);
  jmp(done);
  L(helper);
  emit_helper_frame_push();
  mov(rdi, qword[st(&State::env)]);
  call(r11);
  emit_helper_frame_pop();
  emit_signal_check_direct(pc);
  L(done);
}

}  // namespace userbpf::jit::detail
