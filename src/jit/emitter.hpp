// The x86-64 JIT's code generator (internal to src/jit): the Emitter that
// lowers BPF instructions to machine code through xbyak, and the code-size
// bounds that decide short branches. The design comment in jit.cpp describes
// how it works; emitter.cpp has the definitions, fold.cpp the
// cross-instruction rewrites (map lookups, load-op folding).
#pragma once

#include <xbyak/xbyak.h>
#include <xbyak/xbyak_util.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <vector>

#include "jit/analysis.hpp"
#include "jit/jit.hpp"
#include "jit/labels.hpp"
#include "jit/state.hpp"

namespace userbpf::jit::detail {

using isa::Form;
using isa::Insn;
using isa::Op;
using namespace Xbyak::util;  // register names (rax, ...)
// Label: ours (labels.hpp), not xbyak's.
using Xbyak::Reg32;
using Xbyak::Reg64;

inline const std::array<Reg64, isa::kNumRegs> kReg = {rax, rsi, rdx, rcx, r8, r9, rbx, r13, r14, r15, rbp};
inline const std::array<Reg64, 4> kCalleeSaved = {rbx, r13, r14, r15};  // BPF r6-r9

// The 32-bit view of a general-purpose register (Reg::cvt32 validates and
// cost ~5% of a compile).
inline Reg32 r32(const Reg64& r) { return Reg32(r.getIdx()); }

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
  int keep = -1;  // Div*: where the other result goes (Emitter::divmod_keep_), -1: nowhere
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

// Whether variant v inlines the calls of the functions calls.inline_end marks.
inline bool inline_enabled(Variant v, const Options& opts, bool writes_r10, const CallFacts& calls) {
  return !v.counting && !v.checked && !writes_r10 && opts.inline_calls && !calls.inline_end.empty();
}

// Whether variant v compiles the bpf_loop calls of loop_inline_pcs as native
// loops: it calls Options::helpers directly and neither counts nor checks,
// and the program never writes r10 (so rbp is the canonical frame pointer).
inline bool loops_enabled(Variant v, bool writes_r10) {
  return v.direct && !v.checked && !v.counting && !writes_r10;
}

class Emitter : public Xbyak::CodeGenerator {
 public:
  // Assembles straight into `buf` (`cap` bytes: the final mapping, still
  // writable); `bound` = code_bounds() of this variant.
  Emitter(std::span<const Insn> insns, const Options& opts, Variant v, const std::vector<bool>& is_target,
          const std::vector<bool>& is_entry, bool writes_r10, const std::vector<u8>& save_mask,
          const detail::CallFacts& calls, const std::vector<std::uint16_t>& live, const std::vector<bool>& heads,
          const std::vector<u32>& map_lookup, const std::vector<u32>& loop_inline, u8* buf, std::size_t cap,
          const std::vector<u32>& bound)
      : Xbyak::CodeGenerator(cap, buf),
        insns_(insns),
        opts_(opts),
        v_(v),
        writes_r10_(writes_r10),
        labels_(*this, buf, insns.size()),
        is_target_(is_target),
        is_entry_(is_entry),
        save_mask_(save_mask),
        calls_(calls),
        live_(live),
        bound_(bound),
        heads_(heads),
        map_lookup_(map_lookup),
        loop_inline_(loop_inline) {
    setDefaultJmpNEAR(true);
    for (const Insn& in : insns)
      if (in.op == Op::MayGoto) may_goto_ = true;
    static const Xbyak::util::Cpu kCpu;  // cpuid once
    bmi2_ = kCpu.has(Xbyak::util::Cpu::tBMI2) && opts.bmi2;
    movbe_ = kCpu.has(Xbyak::util::Cpu::tMOVBE) && opts.bmi2;  // bmi2 = false: the plain forms (tests)
    detail::forget_widths(width_);
    counting_ = v.counting;
    inlining_ = inline_enabled(v, opts, writes_r10, calls);
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

  // Branches to and definitions of our Labels (labels.hpp: all label and
  // fix-up code is there); xbyak's own overloads stay visible.
  void L(const Label& l) { labels_.bind(l); }
  using Xbyak::CodeGenerator::L;
  void call(const Label& l) { labels_.branch(Branch::Call, l, T_NEAR); }
  using Xbyak::CodeGenerator::call;
#define USERBPF_JIT_BRANCH(name, kind)                                                          \
  void name(const Label& l, LabelType t = T_AUTO) { labels_.branch(Branch::kind, l, t); } \
  using Xbyak::CodeGenerator::name;
  USERBPF_JIT_BRANCH(jmp, Jmp)
  USERBPF_JIT_BRANCH(jo, O)
  USERBPF_JIT_BRANCH(jno, No)
  USERBPF_JIT_BRANCH(jb, B)
  USERBPF_JIT_BRANCH(jc, B)
  USERBPF_JIT_BRANCH(jnae, B)
  USERBPF_JIT_BRANCH(jae, Ae)
  USERBPF_JIT_BRANCH(jnb, Ae)
  USERBPF_JIT_BRANCH(jnc, Ae)
  USERBPF_JIT_BRANCH(je, E)
  USERBPF_JIT_BRANCH(jz, E)
  USERBPF_JIT_BRANCH(jne, Ne)
  USERBPF_JIT_BRANCH(jnz, Ne)
  USERBPF_JIT_BRANCH(jbe, Be)
  USERBPF_JIT_BRANCH(jna, Be)
  USERBPF_JIT_BRANCH(ja, A)
  USERBPF_JIT_BRANCH(jnbe, A)
  USERBPF_JIT_BRANCH(js, S)
  USERBPF_JIT_BRANCH(jns, Ns)
  USERBPF_JIT_BRANCH(jp, P)
  USERBPF_JIT_BRANCH(jpe, P)
  USERBPF_JIT_BRANCH(jnp, Np)
  USERBPF_JIT_BRANCH(jpo, Np)
  USERBPF_JIT_BRANCH(jl, L)
  USERBPF_JIT_BRANCH(jnge, L)
  USERBPF_JIT_BRANCH(jge, Ge)
  USERBPF_JIT_BRANCH(jnl, Ge)
  USERBPF_JIT_BRANCH(jle, Le)
  USERBPF_JIT_BRANCH(jng, Le)
  USERBPF_JIT_BRANCH(jg, G)
  USERBPF_JIT_BRANCH(jnle, G)
#undef USERBPF_JIT_BRANCH

 private:
  // ---- state addressing
  template <class T>
  Xbyak::RegExp st(T State::*m) {
    return r12 + static_cast<std::size_t>(off_of(m));
  }

  // The label of BPF instruction pc (of the inlined copy being emitted, if any).
  Label target_label(std::size_t pc) const { return Labels::at(label_base_ + static_cast<u32>(pc)); }
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
  void emit_body(std::size_t begin, std::size_t end, bool record);
  void emit_inline(std::size_t entry);
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
  void emit_compare(const Insn& in);
  void emit_mem(std::size_t pc, const Insn& in);
  void emit_atomic(std::size_t pc, const Insn& in);
  void emit_ld_packet(std::size_t pc, const Insn& in);
  void emit_helper_call(std::size_t pc, const Insn& in);
  void emit_callx(std::size_t pc, const Insn& in);
  // mask: which of r6-r9 (bits 0-3) the callee may write, i.e. must be saved.
  // move_fp: r10 moves down a frame for the callee (callee_moves_fp).
  void emit_bpf_call_prologue(std::size_t pc, u8 mask, bool move_fp = true);
  bool call_pad(u8 mask) const;
  void push_saved(u8 mask);  // the r6-r9 of mask (bits 0-3), in order
  void pop_saved(u8 mask);   // and back
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
  Labels labels_;  // labels 0..n-1: the instructions (target_label)
  u32 label_base_ = 0;  // target_label(pc) = label_base_ + pc (emit_inline: a fresh block per copy)
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
  // Per pc: 1 + the index in Options::map_lookups of a map lookup to inline
  // or call directly (map_lookup_pcs); empty: none.
  const std::vector<u32>& map_lookup_;
  // fold.cpp: inline array lookups and updates, lean helper calls.
  void emit_map_lookup(std::size_t pc, const Options::MapLookup& m);
  void emit_array_lookup(std::size_t pc, const Options::MapLookup& m);
  void emit_array_update(std::size_t pc, const Options::MapLookup& m);
  // Where the u32 key at *r2 of the call at pc came from (forward_map_keys):
  // a register (reg >= 0) or an immediate.
  struct MapKey {
    int reg = -1;
    u32 imm = 0;
  };
  std::optional<MapKey> map_key(std::size_t pc) const;
  void emit_lean_call(std::size_t pc, const abi::Helper& h, u32 id);
  std::array<u32, 4> run_const_ids_{};  // helper id of each State::run_const slot in use
  u32 run_const_count_ = 0;
  // Per pc: 1 + the entry pc of the callback of a bpf_loop call to inline
  // (loop_inline_pcs); empty: none.
  const std::vector<u32>& loop_inline_;
  bool loop_inline_enabled() const { return loops_enabled(v_, writes_r10_); }
  void emit_inline_loop(std::size_t pc, std::size_t entry);
  std::size_t emit_load_op(std::size_t pc);
  // memops.cpp: memory idioms (combined byte loads, copy runs, address runs).
  struct MemBase {
    int reg;            // the BPF base register the accesses name
    Xbyak::RegExp exp;  // the address it holds (an address prefix folded in)
    // Inside an address run (which checked reg's liveness): the registers
    // (bit i = ri) a combined load may not write.
    u32 avoid = 0;
  };
  std::size_t emit_memops(std::size_t pc);
  std::size_t emit_combined_load(std::size_t pc, const MemBase* mb);
  std::size_t emit_copy_run(std::size_t pc);
  std::size_t emit_address_run(std::size_t from, std::size_t pc, int a, int b, const Xbyak::RegExp& base);
  std::size_t copy_rejected_end_ = 0;  // emit_copy_run: end of the last run it rejected
  // The multi-instruction folds: how many instructions after pc they consumed.
  std::size_t fold_group(std::size_t pc) {
    if (const std::size_t mem = emit_memops(pc); mem != 0) return mem;
    const std::size_t extra = emit_address_fold(pc);
    return extra != 0 ? extra : emit_load_op(pc);
  }
  Label abort_, check_stub_, ldpkt_stub_, callx_stub_, signal_common_, trampoline_;
  bool bmi2_ = false;
  bool movbe_ = false;
  bool skip_next_ = false;  // emit_jump folded the next instruction into this one
  bool counting_ = false;
  bool inlining_ = false;            // calls of calls_.inline_end functions are inlined
  Label* inline_exit_ = nullptr;     // inside an inlined copy: its end (exit jumps there)
  std::size_t inline_last_ = 0;      // inside an inlined copy: its last pc (its exit falls through)
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

  // ---- ALU idioms (idioms.cpp): one plan at a time over a straight-line window
  struct AluPlan {
    enum Kind : u8 { None, DivResult, Rotate } kind = None;
    std::size_t from = 0;  // first pc that may emit no code
    std::size_t site = 0;  // the instruction that gets the idiom's result
    u32 skip = 0;          // bit k: from + k emits no code (dead in the window)
    int dst = 0;           // site: the BPF register written
    int src = 0;           // Rotate: BPF register holding the value; DivResult: keep location
    u8 amount = 0;         // Rotate: left by
    bool is64 = false;
  };
  static constexpr int kKeepSlot = 16;  // divmod_keep_: State::alu_keep
  AluPlan plan_{};
  int divmod_keep_ = -1;  // emit_divmod: where to keep the other result (x86 register index, kKeepSlot), -1: none
  std::size_t body_begin_ = 0, body_end_ = 0;  // emit_body's current range (windows stay inside)
  // Skipped or site instruction: emitted (or nothing to emit); true = done.
  bool emit_idiom(std::size_t pc);
  // No multi-instruction fold may start at pc: it could swallow a planned instruction.
  bool idiom_blocks_fold(std::size_t pc) const {
    return plan_.kind != AluPlan::None && pc <= plan_.site && pc + 8 > plan_.from;
  }
  void plan_divmod(std::size_t pc);
  void cancel_divmod_plan() {  // nothing kept: the site must compute its own result
    divmod_keep_ = -1;
    plan_.kind = AluPlan::None;
  }
  void plan_rotate(std::size_t pc);
  u32 dead_in_window(std::size_t from, std::size_t site, int site_def) const;
  void emit_keep_special(const ColdThunk& t);
  u32 blind_key_ = 0;  // xor key (an imm32, sign-extended by the CPU)
};

u32 max_code_size(const Insn& in, Variant v, bool blinding);
// Whether the ALU idioms of idioms.cpp may apply anywhere (they need the
// liveness, detail::live_out): a division, or shifts that may form a rotate.
bool alu_idioms_possible(std::span<const Insn> insns, const Options& opts);
// Per pc: 1 + the index in opts.map_lookups of the map whose lookup the call
// at pc may inline or call directly (see Options::map_lookups); empty if
// there is none.
std::vector<u32> map_lookup_pcs(std::span<const Insn> insns, const Options& opts, const std::vector<bool>& is_target,
                                  const std::vector<bool>& is_entry);
// Per pc: 1 + the entry pc of the callback of a `call bpf_loop` that may be
// compiled as a native loop (see Options::inline_loops); empty if none.
std::vector<u32> loop_inline_pcs(std::span<const Insn> insns, const Options& opts, const std::vector<bool>& is_target,
                                 const std::vector<bool>& is_entry);
// Upper bound of the code of an inlined bpf_loop (emit_inline_loop).
inline constexpr u32 kInlineLoopCode = 256;
// inline_end: calls.inline_end if the variant inlines (inline_enabled), else
// empty; loops: loop_inline_pcs if the variant inlines them, else empty.
std::vector<u32> code_bounds(std::span<const Insn> insns, const std::vector<bool>& heads, Variant v, bool blinding,
                             const std::vector<std::uint32_t>& inline_end, const std::vector<u32>& loops,
                             std::size_t& total);

}  // namespace userbpf::jit::detail
