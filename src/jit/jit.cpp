// The x86-64 JIT.
//
// How it works
// ------------
// Program::compile validates the instructions (the interpreter's rules and
// messages: isa::check_structure, or only in-range targets), then lowers
// them in one pass, in program order, with xbyak (typed operands, labels and
// fix-ups by the encoder; no hand-assembled bytes). Each BPF instruction
// becomes a short sequence; jump targets get an xbyak label. Slow and rare
// paths (faults, checked-mode slow checks, helper signals) are out-of-line
// thunks emitted after the body, so the straight-line code stays compact.
// The code is assembled straight into a fresh private mapping sized by an
// upper bound (code_bounds), writable while it is filled and then
// mprotect'ed to read+exec: never writable and executable at once. One
// mapping and one mprotect per variant, no per-instruction allocation except
// a label per jump target: compile time is linear in the program size.
//
// Branches: a forward branch is short (rel8) when the upper bound of the
// code between it and its target (prefix sums of max_code_size) fits in
// 127 bytes; backward branches are short when they fit (the target is
// known). A bound that proved too small would make xbyak throw and the
// variant is generated again with near branches (never seen; a safety net).
//
// Loop heads (targets of backward jumps) start at a 16-byte boundary
// (multi-byte nops before them; their bound counts 15 bytes of padding):
// measured 10-15% on c/state_machine and c/memcpy_cmp, 32 bytes was slower.
//
// Cross-instruction optimisations, only in non-counting variants (counting
// ones count every BPF instruction, and checked ones are counting), using
// whole-program facts from analysis.cpp (computed once by compile(), only
// when the program has something they serve):
//   * known value widths along straight-line code (forgotten at labels):
//     `w = w`, le16/le32, the movzx of be16, `r <<= 32; r >>= 32` and masks
//     like `r &= 0xff` after a byte load emit nothing when the width proves
//     them no-ops;
//   * address arithmetic folded into x86 addressing: `rT = rA; rT += K;
//     rT += rB` is one lea, and a load/store through rT right after uses
//     [rA + rB + K + off] directly when rT is dead afterwards (liveness);
//   * `if c goto +1; goto T` is one inverted compare-and-branch `if !c goto
//     T`; jumps to a `goto` go to its target, a `goto` to `exit` is a `ret`;
//   * a load followed by be16/be32/be64 (or bswap) of its result is movbe
//     (movzx + rol for 16 bits);
//   * division by a register divides by that register (no copy); the
//     divisor-0 / -1 cases are out of line, the common path has no jump;
//   * bpf-to-bpf calls in programs without helper calls or callx, whose call
//     graph is acyclic and at most 8 frames deep, have no depth check; a
//     callee that (with its callees) never reads r10 is called without
//     moving r10; without any call into C the rsp alignment pad is dropped.
// Each fused group's code shows under its first instruction in listings.
//
// Variants: a Program holds up to 8 compiled variants (checked x counting x
// direct helper calls). The one the Options ask for is compiled by compile();
// a run whose Env asks for more (env.options.checked, a budget, count_insns,
// or a helper table other than Options::helpers) gets the matching variant,
// compiled once on first use (std::call_once). So the JIT follows
// env.options exactly like the interpreter does.
//
// Register map (BPF -> x86-64)
//   r0 -> rax   (helper return value)
//   r1 -> rsi, r2 -> rdx, r3 -> rcx, r4 -> r8, r5 -> r9
//        (= the SysV argument registers 2..6, so a helper call
//         u64 fn(Env&, r1..r5) only needs rdi = &env)
//   r6 -> rbx, r7 -> r13, r8 -> r14, r9 -> r15   (callee-saved in SysV)
//   r10 -> rbp  (frame pointer)
//   r12 -> State* of the current run (callee-saved, never changes)
//   rdi, r10, r11 -> scratch
//
// Stack and frames
//   The BPF stack is an array of 8 x 512 bytes on run()'s C++ stack; frame k
//   (k = 0 for the main program) has r10 = top - 512*k. Each BPF function
//   activation also has a native frame on rsp: [rsp] is its return address
//   and, in programs that use may_goto, [rsp + 8] its may_goto counter
//   (pushed by the caller right before the `call`, initialised to
//   abi::kMayGotoBudget: a fresh counter per frame, the caller's kept, as in
//   the interpreter and the kernel). Functions are entered at their first
//   instruction and `exit` is a plain `ret`. Invariant: in BPF code that
//   can reach C code (helpers, callx, LD_ABS, checked mode) rsp is 16-byte
//   aligned, so helpers are called directly; a caller pads its pushes so
//   that rsp is 8 mod 16 at the `call` (call_pad).
//   A bpf-to-bpf call (call/callx) checks the depth (r10 below min_call_rbp
//   means 8 frames are in use: abi::call_depth_exceeded) unless the depth is
//   proven statically (CallFacts), pushes those of r6-r9 (BPF callee-saved)
//   that the callee or its callees may write (callee_saved_masks; all four
//   for callx or without kernel_structure), moves r10 down 512 (unless the
//   callee provably never reads it), `call`s the callee and undoes all that
//   on return. The main program is itself called by the entry trampoline.
//   Programs may write r10 (the interpreter allows it). If one does, the
//   canonical frame pointer lives in State::fp and calls, depth checks and
//   the checked-mode stack test use it instead of rbp; otherwise rbp is
//   always canonical and nothing is kept in memory.
//
// Callbacks (abi::Env::call_function)
//   run() publishes rt_callback and the State in env.callback / env.engine.
//   Before every helper call the code stores r10 (State::fp) and the call's
//   pc. rt_callback checks the function value and the depth (the callee gets
//   the frame below the helper's caller: the 8-frame limit counts it), then
//   enters the function through the trampoline (fresh r0, r6-r9 = 0 and
//   may_goto counter, as the interpreter), sharing the State: budget and
//   counts continue, a fault or exit inside ends at the nested trampoline
//   (its own saved_rsp), is kept (cb_aborted, cb_r0) and the helper's caller
//   ends the run with it once the helper returns (the signal check tests
//   env.callback_aborted() with the exit and fail flags).
//
// Calls to helpers
//   With Options::helpers (and that same table in the Env), helper and kfunc
//   ids are resolved at compile time and called directly (an unknown id
//   becomes a fault thunk at that pc). Otherwise, and always in checked mode,
//   calls go through rt_dispatch, which looks the id up in env.helpers at run
//   time (and, in checked mode, first moves the Stack region in env.regions
//   to the live frames so that helpers can check stack pointers).
//   r1-r5 are preserved across helper calls (the interpreter does not clobber
//   them either; the kernel leaves them undefined). After the call the Env's
//   failed/exit flags (abi::Env::failed_flag / exit_requested_flag) are
//   tested; if one is set, a thunk records HelperFailed (abi::helper_failed)
//   or the requested exit value and aborts the run.
//   callx: rt_resolve_callx maps the register value to a helper (a value
//   that fits 32 bits: a helper id) or to the first instruction of a function
//   (abi::func_addr(pc) where pc is 0, a call target or an lddw-func target).
//
// Faults and the end of a run
//   Every early end (memory violation, budget, call depth, unknown helper,
//   bad callx, falling off the end, helper failure or exit request, LD_ABS
//   out of range) stores its cause and r0 (as the interpreter reports r0 at
//   the fault) in State and jumps to `abort`, which restores rsp from
//   State::saved_rsp (unwinding any depth of BPF calls) and returns from the
//   trampoline. run() then builds the RunResult with the abi:: constructors,
//   so messages equal the interpreter's.
//
// Budget and counting
//   Only in counting variants: every instruction starts with
//   `sub [budget_left], 1; jb thunk`, so the fault names the exact
//   instruction that would exceed the budget (abi::budget_exhausted) and
//   RunResult::insns is exact. Non-counting variants count nothing (insns 0).
//
// Per-run cost
//   run() sets only the State fields the code reads (no zero-fill of State
//   or stack; unchecked runs trust the verified program, as the
//   interpreter's fast mode) and uses the primary variant without
//   call_once: a few ns per run (bench: userbpf-bench --overhead).
//
// Checked mode
//   Instructions marked in Options::proven_safe get no check. Otherwise
//   a load/store/atomic computes its address into rdi, tests it inline
//   against the live stack [r10 - 512, top) and otherwise calls
//   rt_check_access (which searches env.regions) through a register-saving
//   stub on a cold path. The stack is zeroed and a RegionKind::Stack region
//   is added to env.regions for the run, as the interpreter does.
//
// Semantics invariants
//   32-bit ALU results are written through 32-bit registers (the CPU
//   zero-extends); div/mod test for 0 (and -1 for signed) before div/idiv so
//   they never trap (x86 traps on INT_MIN / -1); shifts are masked by the
//   CPU exactly as sem:: masks; imm operands are sign-extended for 64-bit
//   ops as in sem::imm64; cmpxchg32 zero-extends r0 also when it succeeds.
//   Constant blinding (Options::blinding) loads every immediate of ALU, JMP,
//   ST and lddw as (imm ^ key) and xors the key back at run time.
#include "jit/jit.hpp"

#include "jit/analysis.hpp"
#include "jit/state.hpp"

#include "base/hex.hpp"

#include <Zydis/Zydis.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xbyak/xbyak.h>
#include <xbyak/xbyak_util.h>

#include <array>
#include <bit>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>

namespace userbpf::jit {

using isa::Form;
using isa::Insn;
using isa::Op;
using u8 = std::uint8_t;
using u32 = std::uint32_t;
using u64 = std::uint64_t;
using s32 = std::int32_t;
using s64 = std::int64_t;

namespace {

using namespace detail;  // State, CodeInfo, the run-time stubs (state.hpp), analyses (analysis.hpp)

// ---------------------------------------------------------------- the code generator
using namespace Xbyak::util;  // register names
using Xbyak::Label;
using Xbyak::Reg32;
using Xbyak::Reg64;

const std::array<Reg64, isa::kNumRegs> kReg = {rax, rsi, rdx, rcx, r8, r9, rbx, r13, r14, r15, rbp};

template <class F>
u64 fn_u64(F* f) {
  return reinterpret_cast<u64>(f);
}

struct ColdThunk {
  enum Kind : u8 { Fault, Signal, Check, DivZero, DivMinusOne } kind = Fault;
  std::unique_ptr<Label> label;
  std::unique_ptr<Label> back;  // Check: where to continue
  abi::Fault fault = abi::Fault::None;
  u32 pc = 0;
  u32 aux = 0;  // Fault: helper id; Check: size | write << 8; Div*: BPF dst register
  bool kfunc = false;
  bool is64 = false, is_mod = false;  // Div*: the operation
};

// Loop heads: targets of backward jumps. Their code starts at a multiple of
// kLoopAlign (multi-byte nops before), so that a loop's first fetch block is
// whole.
constexpr u32 kLoopAlign = 16;  // 32 measured slower (c/memcpy_cmp, c/state_machine)
// (Computed by Program::compile's scan: Impl::heads.)

// Which code a Program variant contains (see Program::Impl).
struct Variant {
  bool checked = false;   // bounds checks on memory accesses
  bool counting = false;  // instruction counting and budget
  bool direct = false;    // helpers resolved at compile time from Options::helpers
};

class Emitter : public Xbyak::CodeGenerator {
 public:
  // Assembles straight into `buf` (`cap` bytes: the final mapping, still
  // writable); `bound` = code_bounds() of this variant.
  Emitter(std::span<const Insn> insns, const Options& opts, Variant v, const std::vector<bool>& is_target,
          const std::vector<bool>& is_entry, bool writes_r10, const std::vector<u8>& save_mask,
          const detail::CallFacts& calls, const std::vector<std::uint16_t>& live, const std::vector<bool>& heads, u8* buf, std::size_t cap, const std::vector<u32>& bound)
      : Xbyak::CodeGenerator(cap, buf),
        insns_(insns),
        opts_(opts),
        v_(v),
        writes_r10_(writes_r10),
        labels_(insns.size()),
        is_target_(is_target),
        is_entry_(is_entry),
        save_mask_(save_mask),
        calls_(calls),
        live_(live),
        bound_(bound),
        heads_(heads) {
    setDefaultJmpNEAR(true);
    for (std::size_t i = 0; i < insns.size(); ++i) {
      if (is_target[i]) labels_[i] = std::make_unique<Label>();
      if (insns[i].op == Op::MayGoto) may_goto_ = true;
    }
    static const Xbyak::util::Cpu kCpu;  // cpuid once
    bmi2_ = kCpu.has(Xbyak::util::Cpu::tBMI2) && opts.bmi2;
    movbe_ = kCpu.has(Xbyak::util::Cpu::tMOVBE) && opts.bmi2;  // bmi2 = false: the plain forms (tests)
    detail::forget_widths(width_);
    counting_ = v.counting;
    if (opts.blinding) {
      std::random_device rd;
      blind_key_ = rd() | 1u;
    }
  }

  void generate();
  bool short_jumps = true;  // false: every forward branch near (the fallback, see jump_type)

  std::vector<u32> pc_offset;  // code offset of each pc's first byte
  u32 trampoline_offset = 0;
  u32 stubs_offset = 0;
  std::vector<u32> entry_offset;

 private:
  // ---- state addressing
  template <class T>
  Xbyak::RegExp st(T State::*m) {
    return r12 + static_cast<std::size_t>(off_of(m));
  }

  Label& target_label(std::size_t pc) { return *labels_[pc]; }
  // Short (rel8) or near branch to BPF instruction t from the branch of pc.
  // Backward: the target's offset is known, xbyak picks (T_AUTO). Forward:
  // short if the code in between cannot exceed 127 bytes by max_code_size()
  // bounds (the rest of pc's own code included, `kTail`).
  Xbyak::CodeGenerator::LabelType jump_type(std::size_t pc, std::size_t t) const {
    constexpr u32 kTail = 8;  // may_goto's dec after its branch
    if (t <= pc) return Xbyak::CodeGenerator::T_AUTO;
    if (short_jumps && bound_[t] - bound_[pc + 1] + kTail <= 127) return Xbyak::CodeGenerator::T_SHORT;
    return Xbyak::CodeGenerator::T_NEAR;
  }

  Label& fault_thunk(abi::Fault f, std::size_t pc, u32 aux = 0, bool kfunc = false) {
    ColdThunk t;
    t.kind = ColdThunk::Fault;
    t.label = std::make_unique<Label>();
    t.fault = f;
    t.pc = static_cast<u32>(pc);
    t.aux = aux;
    t.kfunc = kfunc;
    cold_.push_back(std::move(t));
    return *cold_.back().label;
  }
  Label& signal_thunk(std::size_t pc) {
    ColdThunk t;
    t.kind = ColdThunk::Signal;
    t.label = std::make_unique<Label>();
    t.pc = static_cast<u32>(pc);
    cold_.push_back(std::move(t));
    return *cold_.back().label;
  }

  void emit_trampoline();
  void emit_stubs();
  void emit_cold();
  void emit_insn(std::size_t pc, const Insn& in);
  bool emit_fused(std::size_t pc, const Insn& a, const Insn& b);
  std::size_t emit_address_fold(std::size_t pc);
  bool dead_after(std::size_t pc, int reg) const {
    return !live_.empty() && ((live_[pc] >> static_cast<unsigned>(reg)) & 1u) == 0;
  }
  void emit_alu(std::size_t pc, const Insn& in);
  void emit_divmod(const Insn& in, bool is64, bool is_mod, bool is_signed, bool imm_form);
  void emit_shift(const Insn& in, bool is64, int kind, bool imm_form);
  void emit_jump(std::size_t pc, const Insn& in);
  void emit_mem(std::size_t pc, const Insn& in);
  void emit_atomic(std::size_t pc, const Insn& in);
  void emit_ld_packet(std::size_t pc, const Insn& in);
  void emit_helper_call(std::size_t pc, const Insn& in);
  void emit_callx(std::size_t pc, const Insn& in);
  // mask: which of r6-r9 (bits 0-3) the callee may write, i.e. must be saved.
  // move_fp: r10 moves down a frame for the callee (callee_moves_fp).
  void emit_bpf_call_prologue(std::size_t pc, u8 mask, bool move_fp = true);
  bool call_pad(u8 mask) const;
  void emit_bpf_call_epilogue(u8 mask, bool move_fp = true);
  // A call needs r10 moved only if the callee (or one it calls) reads it, or
  // the depth check (which compares r10) is needed, or checked mode (whose
  // stack test reads it).
  bool callee_moves_fp(std::size_t entry) const {
    return writes_r10_ || v_.checked || !calls_.static_depth || calls_.uses_frame[entry];
  }
  void emit_signal_check_direct(std::size_t pc);
  void emit_before_helper(std::size_t pc);
  void emit_helper_frame_push();
  void emit_helper_frame_pop();
  // Address of a memory operand; in checked mode emits the check and returns rdi.
  Xbyak::RegExp mem_addr(std::size_t pc, int base, s32 off, unsigned size, bool write, bool force_rdi = false);
  // Loads a 64-bit constant into r (blinded if the option is on).
  void load_const(const Reg64& r, u64 v);
  bool blinding() const { return opts_.blinding; }

  std::span<const Insn> insns_;
  const Options& opts_;
  Variant v_;
  bool writes_r10_ = false;
  // One Label per jump target (a vector of n Labels would be big enough for
  // malloc to mmap it: page faults on every compile).
  std::vector<std::unique_ptr<Label>> labels_;
  const std::vector<bool>& is_target_;
  const std::vector<bool>& is_entry_;
  bool may_goto_ = false;  // the program uses may_goto: frames carry a counter
  std::vector<ColdThunk> cold_;
  const std::vector<u8>& save_mask_;  // by callee entry pc: r6-r9 (bits 0-3) the callee may write
  const detail::CallFacts& calls_;
  const std::vector<std::uint16_t>& live_;  // detail::live_out (empty: nothing known)
  std::optional<Xbyak::RegExp> addr_override_;  // emit_address_fold: the address of the next memory operand
  const std::vector<u32>& bound_;  // bound_[pc]: upper bound of the code offset of pc (code_bounds)
  const std::vector<bool>& heads_;  // loop heads: aligned to kLoopAlign
  Label abort_, check_stub_, ldpkt_stub_, callx_stub_, signal_common_, trampoline_;
  bool bmi2_ = false;
  bool movbe_ = false;
  bool skip_next_ = false;  // emit_jump folded the next instruction into this one
  bool counting_ = false;
  // Known value widths along straight-line code (detail::track_widths),
  // forgotten at every jump target.
  detail::Widths width_{};
  bool known32(int reg) const { return width_[static_cast<std::size_t>(reg)] <= 32; }
  // The final target of a jump to t: through chains of `ja` (not in
  // counting variants, which count every instruction executed).
  std::size_t thread_jump(std::size_t t) const {
    for (int k = 0; k < 8 && !counting_; ++k) {
      const Insn& in = insns_[t];
      if (in.op != Op::Ja && in.op != Op::Gotol) break;
      const auto next = static_cast<std::size_t>(isa::jump_target(in, t));
      if (next == t) break;
      t = next;
    }
    return t;
  }
  void emit_div_special(const ColdThunk& t);
  u32 blind_key_ = 0;  // xor key (an imm32, sign-extended by the CPU)
};

void Emitter::load_const(const Reg64& r, u64 v) {
  if (blinding()) {
    mov(r, v ^ isa::sem::imm64(static_cast<s32>(blind_key_)));
    xor_(r, blind_key_);
  } else {
    mov(r, v);
  }
}

// Upper bound of the bytes emitted for one instruction (its counting prefix
// included), generous on purpose: it only decides whether a forward branch
// can be short; a wrong bound makes xbyak throw (label too far) and the
// variant is regenerated with near branches only (Program::Impl::generate).
u32 max_code_size(const Insn& in, Variant v, bool blinding) {
  if (in.op == Op::LddwTail) return 0;
  u32 b = 0;
  switch (in.info().form) {
    case Form::AluK:
    case Form::AluX: {
      const unsigned code = isa::op_code(in.op);
      b = code == 3 || code == 9 ? 72 : code == 6 || code == 7 || code == 0xc ? 24 : 12;  // mov r64, imm64: 10
      break;
    }
    case Form::Neg: case Form::End: case Form::MovSx: case Form::Lddw:
      b = 12;  // rol r16 + movzx: 9; lddw: 10
      break;
    case Form::Exit: case Form::Ja: case Form::Gotol:
      b = 6;  // add rsp, 8; ret: 5. jmp rel32: 5
      break;
    case Form::JmpK: case Form::JmpX:
      b = 14;  // cmp r64, imm32 + jcc rel32: 13
      break;
    case Form::MayGoto:
      b = 20;  // cmp [rsp], 0; jcc; dec [rsp]: 15-17
      break;
    case Form::Ldx: case Form::St: case Form::Stx: case Form::LoadAcq: case Form::StoreRel:
      b = v.checked ? 80 : 14;  // mov qword [r12 + disp32], imm32: 12
      break;
    case Form::Atomic:
      b = v.checked ? 128 : 64;
      break;
    case Form::Call: case Form::CallKfunc: case Form::CallLocal: case Form::Callx: case Form::LdAbs: case Form::LdInd:
      b = 192;
      break;
  }
  if (v.counting) b += 16;
  if (blinding) b += 32;
  return b;
}

// Prefix sums of max_code_size over the body: bound[pc] >= the code offset
// of pc; bound[n] bounds the body. Also returns a bound of the whole code
// (body, out-of-line thunks, stubs, trampoline).
std::vector<u32> code_bounds(std::span<const Insn> insns, const std::vector<bool>& heads, Variant v, bool blinding,
                             std::size_t& total) {
  const std::size_t n = insns.size();
  std::vector<u32> bound(n + 1, 0);
  std::size_t cold = 0;
  for (std::size_t pc = 0; pc < n; ++pc) {
    // a loop head's alignment padding is counted before its label
    bound[pc + 1] = bound[pc] + max_code_size(insns[pc], v, blinding) + (pc + 1 < n && heads[pc + 1] ? kLoopAlign - 1 : 0);
    // cold thunks: one per counted insn, checked access, call (<= 48 bytes each)
    cold += (v.counting ? 48u : 0u) + (v.checked ? 48u : 0u);
    const Form f = insns[pc].info().form;
    if ((f == Form::AluX || f == Form::AluK) && (isa::op_code(insns[pc].op) == 3 || isa::op_code(insns[pc].op) == 9))
      cold += 48;  // division by 0 / -1 cases
    if (f == Form::Call || f == Form::CallKfunc || f == Form::CallLocal || f == Form::Callx || f == Form::LdAbs ||
        f == Form::LdInd || insns[pc].op == Op::LddwFunc)
      cold += 64;
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
    const Reg32 d = kReg[a.dst].cvt32();
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
      movzx(d.cvt32(), word[m]);
      rol(d.cvt16(), 8);
    } else if (!movbe_) {
      return false;
    } else if (size == 4) {
      movbe(d.cvt32(), dword[m]);
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

void Emitter::generate() {
  const std::size_t n = insns_.size();
  pc_offset.assign(n, 0);
  for (std::size_t pc = 0; pc < n; ++pc) {
    if (is_target_[pc]) {
      if (heads_[pc] && pc > 0) align(kLoopAlign, true);
      L(*labels_[pc]);
      detail::forget_widths(width_);
    }
    pc_offset[pc] = static_cast<u32>(getSize());
    const Insn& in = insns_[pc];
    if (in.op == Op::LddwTail) continue;
    if (counting_) {
      sub(qword[st(&State::budget_left)], 1);
      jb(fault_thunk(abi::Fault::Budget, pc));
    } else if (const std::size_t extra = emit_address_fold(pc); extra != 0) {
      for (std::size_t k = 0; k <= extra; ++k) detail::track_widths(width_, insns_[pc + k]);
      for (std::size_t k = 1; k <= extra; ++k) pc_offset[pc + k] = static_cast<u32>(getSize());
      pc += extra;
      continue;
    } else if (pc + 1 < n && !is_target_[pc + 1] && emit_fused(pc, in, insns_[pc + 1])) {
      detail::track_widths(width_, in);
      ++pc;
      detail::track_widths(width_, insns_[pc]);
      pc_offset[pc] = static_cast<u32>(getSize());  // pc's code is in its predecessor's block
      continue;
    }
    emit_insn(pc, in);
    detail::track_widths(width_, in);
    if (skip_next_) {  // pc + 1 (a goto) is part of pc's code (emit_jump)
      skip_next_ = false;
      ++pc;
      pc_offset[pc] = static_cast<u32>(getSize());
    }
  }
  // Falling off the end of the program (impossible after exit / ja / gotol).
  const Op last = insns_[n - 1].op;
  if (last != Op::Exit && last != Op::Ja && last != Op::Gotol) jmp(fault_thunk(abi::Fault::FellOffEnd, n));
  stubs_offset = static_cast<u32>(getSize());
  emit_cold();
  emit_stubs();
  trampoline_offset = static_cast<u32>(getSize());
  emit_trampoline();
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
      ret();
      return;
    case Form::Lddw: {
      u64 v = in.imm64();
      if (in.op == Op::LddwFunc) v = abi::func_addr(static_cast<std::size_t>(static_cast<std::int64_t>(pc) + 1 + in.imm));
      const Reg64& d = kReg[in.dst];
      if (v == 0 && !blinding())
        xor_(d.cvt32(), d.cvt32());
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
  const Reg32 d32 = d64.cvt32();
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
      movsxd(d64, s64r.cvt32());
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
  const Xbyak::Reg s = is64 ? Xbyak::Reg(src) : Xbyak::Reg(src.cvt32());
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
          mov(d32, src.cvt32());
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
  const Reg32 d32 = d64.cvt32();
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
  const Xbyak::Reg tr = is64 ? Xbyak::Reg(t) : Xbyak::Reg(t.cvt32());
  if (kind == 6) shl(tr, cl);
  else if (kind == 7) shr(tr, cl);
  else sar(tr, cl);
  if (!is64) mov(t.cvt32(), t.cvt32());
  mov(rcx, r10);
}

// x / 0 = 0, x % 0 = x, x s/ -1 = -x, x s% -1 = 0 (sem::), for register
// divisors out of line: the common path falls through without a taken jump.
void Emitter::emit_div_special(const ColdThunk& t) {
  const Reg64& d64 = kReg[t.aux];
  const Reg32 d32 = d64.cvt32();
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
    else mov(r11d, s.cvt32());
    const Xbyak::Reg dv = is64 ? Xbyak::Reg(divisor) : Xbyak::Reg(divisor.cvt32());
    auto out_of_line = [&](ColdThunk::Kind k) -> Label& {
      ColdThunk t;
      t.kind = k;
      t.aux = special.aux;
      t.is64 = is64;
      t.is_mod = is_mod;
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
    if (is_signed) { cdq(); idiv(divisor.cvt32()); } else { xor_(edx, edx); div(divisor.cvt32()); }
  }
  const Reg64& result = is_mod ? rdx : rax;
  if (d_rax || d_rdx) {
    if (d64.getIdx() != result.getIdx()) {
      if (is64) mov(d64, result); else mov(d64.cvt32(), result.cvt32());
    }
    if (!d_rax) mov(rax, r10);
    if (!d_rdx) mov(rdx, rdi);
  } else {
    if (is64) mov(r11, result); else mov(r11d, result.cvt32());
    mov(rax, r10);
    mov(rdx, rdi);
    mov(d64, r11);
  }
  for (std::size_t i = first_special; i < cold_.size(); ++i) L(*cold_[i].back);
}

// ---------------------------------------------------------------- jumps
void Emitter::emit_jump(std::size_t pc, const Insn& in) {
  const Form f = in.info().form;
  const std::size_t t = thread_jump(static_cast<std::size_t>(isa::jump_target(in, pc)));
  const bool fallthrough = t == pc + 1;
  const Xbyak::CodeGenerator::LabelType jt = jump_type(pc, t);
  if (f == Form::Ja || f == Form::Gotol) {
    if (fallthrough) return;
    if (insns_[t].op == Op::Exit && !counting_) ret();  // a jump to `exit` is one
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
  const bool is64 = isa::is_64(in.op);
  const auto cond = static_cast<isa::sem::Cond>(isa::op_code(in.op));
  const Reg64& d64 = kReg[in.dst];
  const Xbyak::Reg d = is64 ? Xbyak::Reg(d64) : Xbyak::Reg(d64.cvt32());
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
    const Xbyak::Reg s = is64 ? Xbyak::Reg(s64r) : Xbyak::Reg(s64r.cvt32());
    if (is_set) test(d, s); else cmp(d, s);
  }
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
  Label& l = target_label(to);
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
    case 4: return r.cvt32();
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
    else if (size == 4) { if (sx) movsxd(d, dword[a]); else mov(d.cvt32(), dword[a]); }
    else if (sx) movsx(d, frame_of(size)[a]);
    else movzx(d.cvt32(), frame_of(size)[a]);
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
  const Xbyak::Reg s = is64 ? static_cast<Xbyak::Reg>(s64r) : static_cast<Xbyak::Reg>(s64r.cvt32());
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
  const Xbyak::Reg opr = is64 ? static_cast<Xbyak::Reg>(operand) : static_cast<Xbyak::Reg>(operand.cvt32());
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
  if (v_.direct) {
    const abi::Helper* h = kfunc ? opts_.helpers->find_kfunc(id) : opts_.helpers->find(id);
    if (h == nullptr) {
      jmp(fault_thunk(abi::Fault::UnknownHelper, pc, id, kfunc));
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
const std::array<Reg64, 4> kCalleeSaved = {rbx, r13, r14, r15};  // BPF r6-r9
int saved_count(u8 mask) { return std::popcount(static_cast<unsigned>(mask)); }
}  // namespace

// Whether a call needs an 8-byte pad: the pushes before it (saved registers
// and, with may_goto, the counter) must be odd in number.
// Without calls into C (unchecked variants), alignment does not matter.
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
  for (std::size_t i = 0; i < kCalleeSaved.size(); ++i)
    if ((mask >> i) & 1) push(kCalleeSaved[i]);
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
  for (std::size_t i = kCalleeSaved.size(); i-- > 0;)
    if ((mask >> i) & 1) pop(kCalleeSaved[i]);
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

Status validate(std::span<const Insn> insns, const Options& opts) {
  return isa::check_program(insns, opts.kernel_structure);
}

}  // namespace

// ---------------------------------------------------------------- Program
namespace {

// One compiled variant: code in read+exec memory.
struct Code {
  CodeInfo info;
  u8* map = nullptr;
  std::size_t map_len = 0;
  std::size_t len = 0;
  std::vector<u32> pc_offset;
  u32 stubs_offset = 0;

  Code() = default;
  Code(const Code&) = delete;
  Code& operator=(const Code&) = delete;
  ~Code() {
    if (map != nullptr) munmap(map, map_len);
  }
};

constexpr std::size_t variant_index(Variant v) {
  return (v.checked ? 4u : 0u) + (v.counting ? 2u : 0u) + (v.direct ? 1u : 0u);
}

}  // namespace

struct Program::Impl {
  std::vector<Insn> insns;
  Options opts;
  std::vector<bool> is_target, is_entry;
  std::vector<u8> save_mask;  // by function entry pc: see callee_saved_masks
  detail::CallFacts calls;
  std::vector<std::uint16_t> live;  // detail::live_out (empty: not needed)
  std::vector<bool> heads;          // loop heads (targets of backward jumps)
  bool writes_r10 = false;
  Variant primary;
  // Variants are compiled on demand (the primary one at compile time): the
  // Env of a run may ask for checks or counting the Options did not.
  mutable std::array<std::unique_ptr<Code>, 8> code;
  mutable std::array<std::once_flag, 8> once;

  Result<std::unique_ptr<Code>> generate(Variant v) const;
  const Code& variant(Variant v) const {
    const std::size_t i = variant_index(v);
    std::call_once(once[i], [&] {
      if (code[i]) return;
      auto c = generate(v);
      if (!c) throw std::runtime_error("jit: " + c.error().message);
      code[i] = std::move(c).value();
    });
    return *code[i];
  }
};

// Assembles directly into a fresh private mapping sized by code_bounds(),
// then makes it read+exec: no heap buffer, no copy, one mmap and one
// mprotect per variant.
Result<std::unique_ptr<Code>> Program::Impl::generate(Variant v) const {
  auto c = std::make_unique<Code>();
  std::size_t cap = 0;
  const std::vector<u32> bound = code_bounds(insns, heads, v, opts.blinding, cap);
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  bool short_jumps = true;
  try {
    for (;;) {
      const std::size_t map_len = (cap + page - 1) / page * page;
      if (c->map != nullptr) munmap(c->map, c->map_len);
      c->map = nullptr;
      // MAP_POPULATE: the pages are faulted in by one call (a page fault
      // per page cost more than the rest of a compile in a VM).
      void* m = mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
      if (m == MAP_FAILED) return make_error(ENOMEM, fmt::format("jit: cannot map {} bytes for code", map_len));
      c->map = static_cast<u8*>(m);
      c->map_len = map_len;
      Emitter e(insns, opts, v, is_target, is_entry, writes_r10, save_mask, calls, live, heads, c->map, map_len, bound);
      e.short_jumps = short_jumps;
      try {
        e.generate();
        e.ready();
      } catch (const Xbyak::Error& err) {
        // Safety nets, never expected: a max_code_size() bound too small made
        // a short branch out of reach (again with near branches only) or the
        // code bigger than the mapping (again with twice the room).
        if (static_cast<int>(err) == Xbyak::ERR_LABEL_IS_TOO_FAR && short_jumps) {
          short_jumps = false;
          continue;
        }
        if (static_cast<int>(err) == Xbyak::ERR_CODE_IS_TOO_BIG) {
          cap *= 2;
          continue;
        }
        throw;
      }
      c->len = e.getSize();
      c->pc_offset = std::move(e.pc_offset);
      c->stubs_offset = e.stubs_offset;
      c->info.trampoline_offset = e.trampoline_offset;
      c->info.entry_offset = std::move(e.entry_offset);
      break;
    }
    // W^X: the pages were writable while filled; from now on read+exec only.
    if (mprotect(c->map, c->map_len, PROT_READ | PROT_EXEC) != 0)
      return make_error(errno, "jit: cannot make the code executable (mprotect)");
    c->info.base = c->map;
  } catch (const Xbyak::Error& err) {
    return make_error(EINVAL, fmt::format("jit: code generation failed: {}", err.what()));
  } catch (const std::bad_alloc&) {
    return make_error(ENOMEM, "jit: out of memory while generating code");
  }
  return c;
}

Program::Program(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Program::Program(Program&&) noexcept = default;
Program& Program::operator=(Program&&) noexcept = default;
Program::~Program() = default;

Result<Program> Program::compile(std::span<const Insn> insns, const Options& opts) {
  if (auto s = validate(insns, opts); !s) return s.error();
  auto impl = std::make_unique<Impl>();
  impl->insns.assign(insns.begin(), insns.end());
  impl->opts = opts;
  const std::size_t n = insns.size();
  impl->is_target.assign(n, false);
  impl->is_entry.assign(n, false);
  impl->heads.assign(n, false);
  impl->is_entry[0] = true;
  impl->is_target[0] = true;
  // One scan for labels, function entries, loop heads and which analyses
  // are worth running (compile time: see the design comment).
  bool local_calls = false, pointer_access = false;
  for (std::size_t pc = 0; pc < n; ++pc) {
    const Insn& in = insns[pc];
    if (in.op == Op::LddwTail) continue;
    const Form f = in.info().form;
    if (detail::writes_r10(in)) impl->writes_r10 = true;
    if (isa::is_jump(f)) {
      const auto t = static_cast<std::size_t>(isa::jump_target(in, pc));
      impl->is_target[t] = true;
      if (t <= pc) impl->heads[t] = true;
    }
    if (f == Form::CallLocal || in.op == Op::LddwFunc) {
      const auto t = static_cast<std::size_t>(static_cast<std::int64_t>(pc) + 1 + in.imm);
      impl->is_target[t] = true;
      impl->is_entry[t] = true;
      local_calls = true;
    }
    if ((f == Form::Ldx && in.src != isa::kFrameReg) || ((f == Form::Stx || f == Form::St) && in.dst != isa::kFrameReg))
      pointer_access = true;
  }
  if (local_calls) {
    impl->save_mask = detail::callee_saved_masks(insns, impl->is_entry, opts.kernel_structure);
  } else {
    impl->save_mask.assign(n, kAllCalleeSaved);  // read only at call targets: none
  }
  impl->calls = detail::call_facts(insns, impl->is_entry, opts.kernel_structure);
  // Liveness serves only emit_address_fold: accesses through a pointer register.
  if (pointer_access) impl->live = detail::live_out(insns, impl->is_entry, opts.kernel_structure);
  impl->primary.checked = opts.checked;
  impl->primary.counting = opts.budget != 0 || opts.count_insns || opts.checked;
  impl->primary.direct = opts.helpers != nullptr && !opts.checked;
  auto c = impl->generate(impl->primary);
  if (!c) return c.error();
  impl->code[variant_index(impl->primary)] = std::move(c).value();
  return Program(std::move(impl));
}

namespace {
// Appends the checked-mode Stack region to env.regions for one run.
class StackRegion {
 public:
  StackRegion(abi::Env& env, State& st) : env_(env) {
    st.region_index = env.regions.size();
    env.regions.push_back(abi::Region{st.stack_top - kFrameSize, kFrameSize, true, abi::RegionKind::Stack});
    index_ = st.region_index;
  }
  StackRegion(const StackRegion&) = delete;
  StackRegion& operator=(const StackRegion&) = delete;
  ~StackRegion() {
    if (index_ < env_.regions.size()) env_.regions.erase(env_.regions.begin() + static_cast<std::ptrdiff_t>(index_));
  }

 private:
  abi::Env& env_;
  std::size_t index_ = 0;
};
}  // namespace

abi::RunResult Program::run(abi::Env& env, std::span<const u64> args) const {
  const Impl& p = *impl_;
  Variant v;
  v.checked = p.opts.checked || env.options.checked;
  v.counting = p.primary.counting || v.checked || env.options.budget != 0 || env.options.count_insns;
  v.direct = p.opts.helpers != nullptr && !v.checked && env.helpers == p.opts.helpers;
  // The primary variant exists from compile() on: no call_once on the hot path.
  const std::size_t vi = variant_index(v);
  const Code& code = vi == variant_index(p.primary) ? *p.code[vi] : p.variant(v);

  // Per-run setup is a handful of stores: the stack is not zeroed (unchecked
  // runs trust the verified program, as the interpreter's fast mode does) and
  // State has no initialisers (see State).
  alignas(16) std::array<u8, kStackTotal> stack;  // NOLINT: zeroed only in checked mode, like the interpreter
  State st;  // NOLINT(cppcoreguidelines-pro-type-member-init): set field by field below
  const u64 stack_lo = reinterpret_cast<u64>(stack.data());
  st.env = &env;
  st.code = &code.info;
  st.stack_top = stack_lo + kStackTotal;
  st.fp = st.stack_top;
  st.min_call_rbp = stack_lo + 2 * kFrameSize;
  st.region_index = kNoRegion;
  st.r0 = 0;
  st.cb_aborted = 0;
  st.fault = 0;
  st.stop = 0;
  st.writes_r10 = p.writes_r10 ? 1 : 0;
  const u64 budget = env.options.budget != 0 ? env.options.budget : p.opts.budget;
  st.budget_left = v.counting ? (budget != 0 ? budget : std::numeric_limits<u64>::max()) : 0;
  const u64 start_left = st.budget_left;
  u64 a[5];
  const u64* argp = args.data();
  if (args.size() < 5) {
    for (std::size_t i = 0; i < 5; ++i) a[i] = i < args.size() ? args[i] : 0;
    argp = a;
  }
  std::optional<StackRegion> region;
  if (v.checked) [[unlikely]] {
    std::memset(stack.data(), 0, stack.size());
    region.emplace(env, st);
  }
  env.reset_signals();
  const abi::CallbackScope callback_scope(env, &st, &rt_callback);

  using EntryFn = void (*)(State*, const u64*, u64, const u8*);
  const auto entry = reinterpret_cast<EntryFn>(code.map + code.info.trampoline_offset);
  entry(&st, argp, st.stack_top, code.map + code.info.entry_offset[0]);

  abi::RunResult r;
  const auto fault = static_cast<abi::Fault>(st.fault);
  if (v.counting) r.insns = fault == abi::Fault::Budget ? budget : start_left - st.budget_left;
  r.fault = fault;
  r.r0 = st.r0;
  const std::size_t pc = st.fault_pc;
  switch (fault) {
    case abi::Fault::None: break;
    case abi::Fault::MemoryViolation:
      r.error = abi::memory_violation(pc, st.fault_addr, st.fault_size, st.fault_write != 0);
      break;
    case abi::Fault::Budget: r.error = abi::budget_exhausted(pc, budget); break;
    case abi::Fault::CallDepth: r.error = abi::call_depth_exceeded(pc); break;
    case abi::Fault::UnknownHelper:
      r.error = st.fault_kfunc ? abi::unknown_kfunc(pc, st.fault_id) : abi::unknown_helper(pc, st.fault_id);
      break;
    case abi::Fault::BadCallTarget: r.error = abi::bad_call_target(pc, st.fault_addr); break;
    case abi::Fault::FellOffEnd: r.error = abi::fell_off_end(pc); break;
    case abi::Fault::HelperFailed: r.error = abi::helper_failed(pc, env); break;
  }
  return r;
}

std::size_t Program::size() const { return impl_->insns.size(); }
std::size_t Program::code_size() const { return impl_->variant(impl_->primary).len; }
const Options& Program::options() const { return impl_->opts; }

std::string Program::disassemble(const std::function<std::string(std::size_t pc)>& insn_text) const {
  const Impl& p = *impl_;
  const Code& c = p.variant(p.primary);
  std::string out;
  auto dis = [&](u32 from, u32 to) {
    u32 at = from;
    while (at < to) {
      ZydisDisassembledInstruction zi;
      // offsets as addresses: branch targets read as offsets in this listing
      if (!ZYAN_SUCCESS(ZydisDisassembleIntel(ZYDIS_MACHINE_MODE_LONG_64, at, c.map + at, to - at, &zi))) {
        out += fmt::format("  {:6x}:  (bad byte 0x{:02x})\n", at, c.map[at]);
        ++at;
        continue;
      }
      out += fmt::format("  {:6x}:  {}\n", at, zi.text);
      at += zi.info.length;
    }
  };
  const std::size_t n = p.insns.size();
  for (std::size_t pc = 0; pc < n; ++pc) {
    if (p.insns[pc].op == Op::LddwTail) continue;
    std::size_t next = pc + 1;
    while (next < n && p.insns[next].op == Op::LddwTail) ++next;
    const u32 end = next < n ? c.pc_offset[next] : c.stubs_offset;  // the last block keeps the fall-off jump
    if (insn_text) {
      out += fmt::format("; {}: {}\n", pc, insn_text(pc));
    } else {
      const std::vector<u8> raw = isa::encode_bytes(std::span<const Insn>(p.insns).subspan(pc, next - pc));
      out += fmt::format("; {}: {}\n", pc, to_hex(raw));
    }
    dis(c.pc_offset[pc], end);
  }
  out += "; out-of-line thunks, stubs and trampoline\n";
  dis(c.stubs_offset, static_cast<u32>(c.len));
  return out;
}

}  // namespace userbpf::jit

// ---- leaf entry (filter helper) ----
// Program::leaf (contract in jit.hpp). The body of an eligible program reads
// nothing through r12 (no State): without calls, LD_ABS/LD_IND, counting,
// checks or may_goto, and ending in exit or ja, none of the code that
// addresses the State (helper calls, fault and signal thunks, the fall-off
// thunk) is emitted. So the body can be entered like the trampoline enters
// it, by a stub that needs no per-program data: the body's address arrives
// as the first argument. One stub serves every Program of the process; it is
// generated once, into its own page (written, then read+exec).
// Stub invariants: rsp is 8 mod 16 at its `call` (as at the trampoline's),
// so the body sees the alignment it was compiled for; the frame is
// [rbp - 512, rbp) below the saved registers; r0 and r6-r9 start at 0 as in
// the trampoline; the callee-saved registers the body may write (rbx, rbp,
// r13-r15 = BPF r6-r10) are restored before the `ret`.
namespace userbpf::jit {
namespace {

class LeafStub : public Xbyak::CodeGenerator {
 public:
  LeafStub(u8* buf, std::size_t cap) : Xbyak::CodeGenerator(cap, buf) {
    constexpr u32 kReserve = static_cast<u32>(kFrameSize) + 8;  // the frame and an alignment pad
    push(rbx);  // 5 pushes after the return address: rsp = 0 mod 16
    push(rbp);
    push(r13);
    push(r14);
    push(r15);
    sub(rsp, kReserve);  // 8 mod 16
    lea(rbp, ptr[rsp + kReserve]);
    xor_(eax, eax);
    xor_(ebx, ebx);
    xor_(r13d, r13d);
    xor_(r14d, r14d);
    xor_(r15d, r15d);
    call(rdi);  // r1-r5 are already in rsi, rdx, rcx, r8, r9
    add(rsp, kReserve);
    pop(r15);
    pop(r14);
    pop(r13);
    pop(rbp);
    pop(rbx);
    ret();
  }
};

// The process-wide stub, or nullptr if it could not be mapped.
const u8* leaf_stub() {
  static const u8* const stub = []() -> const u8* {
    const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    void* m = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    auto* buf = static_cast<u8*>(m);
    try {
      LeafStub s(buf, page);
      s.ready();
    } catch (const Xbyak::Error&) {
      munmap(m, page);
      return nullptr;
    }
    if (mprotect(m, page, PROT_READ | PROT_EXEC) != 0) {
      munmap(m, page);
      return nullptr;
    }
    return buf;
  }();
  return stub;
}

bool leaf_eligible(std::span<const Insn> insns) {
  if (insns.empty()) return false;
  for (const Insn& in : insns) {
    switch (in.info().form) {
      case Form::Call: case Form::CallKfunc: case Form::CallLocal: case Form::Callx: case Form::LdAbs:
      case Form::LdInd: case Form::MayGoto:
        return false;
      case Form::AluK: case Form::AluX: case Form::Neg: case Form::End: case Form::MovSx: case Form::Lddw:
      case Form::Ja: case Form::Gotol: case Form::JmpK: case Form::JmpX: case Form::Exit: case Form::Ldx:
      case Form::St: case Form::Stx: case Form::LoadAcq: case Form::StoreRel: case Form::Atomic:
        break;
    }
  }
  const Op last = insns.back().op;
  return last == Op::Exit || last == Op::Ja || last == Op::Gotol;
}

// Registers (bit i = ri) an instruction of an eligible program may read and
// write; conservative for atomics.
struct RegUse {
  unsigned reads = 0, writes = 0;
};
RegUse reg_use(const Insn& in) {
  const unsigned d = 1u << in.dst, s = 1u << in.src;
  const bool mov = isa::op_code(in.op) == 0xb;  // mov32 / mov: writes dst without reading it
  switch (in.info().form) {
    case Form::AluK: return {mov ? 0u : d, d};
    case Form::AluX: return {mov ? s : d | s, d};
    case Form::Neg: case Form::End: return {d, d};
    case Form::MovSx: case Form::Ldx: case Form::LoadAcq: return {s, d};
    case Form::Lddw: return {0, d};
    case Form::JmpK: case Form::St: return {d, 0};
    case Form::JmpX: case Form::Stx: case Form::StoreRel: return {d | s, 0};
    case Form::Exit: return {1, 0};
    case Form::Atomic: return {d | s | 1u, s | 1u};
    case Form::Ja: case Form::Gotol: return {0, 0};
    case Form::Call: case Form::CallKfunc: case Form::CallLocal: case Form::Callx: case Form::LdAbs:
    case Form::LdInd: case Form::MayGoto:
      break;
  }
  return {~0u, ~0u};
}

// A bare leaf: the body can be called as a plain SysV function
// u64 body(ignored, r1, r2, r3, r4, r5): it uses only r0-r5 (rax, rsi, rdx,
// rcx, r8, r9 and the JIT's caller-saved scratch registers: no callee-saved
// register, no frame, no call), jumps only forward, and writes r0 before any
// read of it on every path (so r0's start value does not matter).
bool leaf_bare(std::span<const Insn> insns) {
  const std::size_t n = insns.size();
  std::vector<u8> undef(n + 1, 0);  // r0 may be unwritten at the start of pc
  undef[0] = 1;
  constexpr unsigned kHigh = ~0x3fu;  // r6 and up
  for (std::size_t pc = 0; pc < n; ++pc) {
    const Insn& in = insns[pc];
    if (in.op == Op::LddwTail) {
      undef[pc + 1] = static_cast<u8>(undef[pc + 1] | undef[pc]);
      continue;
    }
    const RegUse u = reg_use(in);
    if (((u.reads | u.writes) & kHigh) != 0) return false;
    if (undef[pc] != 0 && (u.reads & 1u) != 0) return false;
    const u8 out = undef[pc] != 0 && (u.writes & 1u) == 0 ? 1 : 0;
    const Form f = in.info().form;
    if (isa::is_jump(f)) {
      const std::int64_t t = isa::jump_target(in, pc);
      if (t <= static_cast<std::int64_t>(pc)) return false;
      undef[static_cast<std::size_t>(t)] = static_cast<u8>(undef[static_cast<std::size_t>(t)] | out);
    }
    if (f != Form::Exit && f != Form::Ja && f != Form::Gotol) undef[pc + 1] = static_cast<u8>(undef[pc + 1] | out);
  }
  return true;
}

}  // namespace

Program::Leaf Program::leaf() const {
  const Impl& p = *impl_;
  if (p.primary.checked || p.primary.counting || !leaf_eligible(p.insns)) return {};
  const std::unique_ptr<Code>& c = p.code[variant_index(p.primary)];
  if (!c) return {};
  const u8* body = c->map + c->info.entry_offset[0];
  Leaf l;
  if (leaf_bare(p.insns)) {  // called directly: `body` arrives in rdi and is ignored
    l.fn = reinterpret_cast<Leaf::Fn>(reinterpret_cast<std::uintptr_t>(body));
    return l;
  }
  const u8* stub = leaf_stub();
  if (stub == nullptr) return {};
  l.fn = reinterpret_cast<Leaf::Fn>(reinterpret_cast<std::uintptr_t>(stub));
  l.body = body;
  return l;
}

}  // namespace userbpf::jit
// ---- end of leaf entry (filter helper) ----
