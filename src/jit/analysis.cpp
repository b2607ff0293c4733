// Whole-program facts for the x86-64 JIT's code generator.
//
// All analyses here are linear (or linear per call-graph round) in the
// program size and run once per Program, before any variant is generated.
// With kernel_structure (isa::check_structure) functions are the ranges
// between function entries (pc 0, call targets, lddw-func targets): no jump
// leaves its function, so per-function facts are exact. Without it every
// fact is the conservative one (save everything, check everything).
//
// * callee_saved_masks: which of r6-r9 a call must save (the callee or its
//   callees may write them).
// * call_facts: whether the call depth can be proved statically (then the
//   run-time depth check is dropped), whether the code ever calls into C
//   (else rsp alignment padding is dropped in unchecked variants), and which
//   functions use their frame pointer (else a call does not move r10),
//   and which functions are small leaves (once their callees are expanded)
//   whose calls the code generator inlines (inline_end).
// * track_widths: known value widths along straight-line code (upper bounds
//   of significant bits), for dropping no-op zero-extensions and masks.
//   Invariant: a fact is only claimed when it holds for every execution the
//   interpreter could perform on the same instructions.
#include "jit/analysis.hpp"

#include <algorithm>
#include <bit>

#include "isa/semantics.hpp"

namespace userbpf::jit::detail {

using isa::Form;
using isa::Insn;
using isa::Op;
using u8 = std::uint8_t;
using s32 = std::int32_t;

namespace {
// Function index of every pc, and the start of each function.
struct Functions {
  std::vector<std::size_t> of;      // by pc
  std::vector<std::size_t> starts;  // entry pc of each function
  Functions(std::size_t n, const std::vector<bool>& is_entry) : of(n, 0) {
    for (std::size_t pc = 0; pc < n; ++pc) {
      if (is_entry[pc]) starts.push_back(pc);
      of[pc] = starts.size() - 1;
    }
  }
};
std::size_t call_target(const Insn& in, std::size_t pc) {
  return static_cast<std::size_t>(static_cast<std::int64_t>(pc) + 1 + in.imm);
}
}  // namespace

bool writes_r10(const Insn& in) {
  switch (in.info().form) {
    case Form::AluK: case Form::AluX: case Form::Neg: case Form::End: case Form::MovSx:
    case Form::Lddw: case Form::Ldx: case Form::LoadAcq:
      return in.dst == isa::kFrameReg;
    case Form::Atomic: {
      const s32 sel = in.info().sel_value;
      const bool writes_src = (sel & isa::sem::kAtomicFetch) != 0;  // fetch ops, xchg, cmpxchg (r0)
      return writes_src && in.src == isa::kFrameReg && sel != static_cast<s32>(isa::sem::AtomicOp::Cmpxchg) + 1;
    }
    case Form::Ja: case Form::Gotol: case Form::JmpK: case Form::JmpX: case Form::Call: case Form::CallLocal:
    case Form::CallKfunc: case Form::Callx: case Form::Exit: case Form::MayGoto: case Form::LdAbs:
    case Form::LdInd: case Form::St: case Form::Stx: case Form::StoreRel:
      return false;
  }
  return false;
}

int written_reg(const Insn& in) {
  switch (in.info().form) {
    case Form::AluK: case Form::AluX: case Form::Neg: case Form::End: case Form::MovSx:
    case Form::Lddw: case Form::Ldx: case Form::LoadAcq:
      return in.dst;
    case Form::Atomic: {
      const s32 sel = in.info().sel_value;
      if ((sel & isa::sem::kAtomicFetch) != 0 && sel != static_cast<s32>(isa::sem::AtomicOp::Cmpxchg) + 1) return in.src;
      return -1;
    }
    case Form::Ja: case Form::Gotol: case Form::JmpK: case Form::JmpX: case Form::Call: case Form::CallLocal:
    case Form::CallKfunc: case Form::Callx: case Form::Exit: case Form::MayGoto: case Form::LdAbs:
    case Form::LdInd: case Form::St: case Form::Stx: case Form::StoreRel:
      break;
  }
  return -1;
}

// Which of r6-r9 (bits 0-3) an instruction writes.
u8 callee_saved_written(const Insn& in) {
  const int r = written_reg(in);
  return r >= 6 && r <= 9 ? static_cast<u8>(1u << (r - 6)) : 0;
}

namespace {
// The lddw that last wrote `reg` before pc inside pc's basic block (through
// register moves): its index, or the register it was moved from when the
// trace reaches the block's start (-1 - reg), or nullopt when something else
// wrote it (or a call may have).
std::optional<std::int64_t> block_source(std::span<const Insn> insns, const std::vector<bool>& is_target,
                                         const std::vector<bool>& is_entry, std::size_t pc, int reg, Op kind) {
  // Back through pc's basic block (no instruction in (k, pc] is entered
  // from elsewhere), following register moves.
  for (std::size_t k = pc; !is_target[k] && !is_entry[k] && k > 0;) {
    const Insn& in = insns[--k];
    if (in.op == Op::LddwTail) continue;
    const Form f = in.info().form;
    if (f == Form::CallLocal || f == Form::Callx) return std::nullopt;  // the callee may write r0-r5
    const bool c_call = f == Form::Call || f == Form::CallKfunc || f == Form::LdAbs || f == Form::LdInd;
    if (c_call && reg <= 5) return std::nullopt;  // r0 written, r1-r5 unreadable after it (verified)
    if (written_reg(in) != reg) continue;
    if (in.op == kind) return static_cast<std::int64_t>(k);
    if (in.op != Op::MovReg) return std::nullopt;
    reg = in.src;  // `r = r` keeps reg
  }
  return -1 - static_cast<std::int64_t>(reg);
}
}  // namespace

std::optional<std::size_t> lddw_func_target(std::span<const Insn> insns, const std::vector<bool>& is_target,
                                            const std::vector<bool>& is_entry, std::size_t pc, int reg) {
  const std::optional<std::int64_t> k = block_source(insns, is_target, is_entry, pc, reg, Op::LddwFunc);
  if (!k || *k < 0) return std::nullopt;
  return static_cast<std::size_t>(*k + 1 + insns[static_cast<std::size_t>(*k)].imm);
}

std::optional<std::uint64_t> lddw_constant(std::span<const Insn> insns, const std::vector<bool>& is_target,
                                           const std::vector<bool>& is_entry, std::size_t pc, int reg) {
  const std::optional<std::int64_t> src = block_source(insns, is_target, is_entry, pc, reg, Op::Lddw);
  if (!src) return std::nullopt;
  if (*src >= 0) return insns[static_cast<std::size_t>(*src)].imm64();
  reg = static_cast<int>(-1 - *src);
  if (reg < 6 || reg > 9) return std::nullopt;
  // r6-r9 are not arguments: in a verified function every read follows a
  // write of the function itself (callees save and restore them). If every
  // write is the same lddw, the register holds that value wherever it is read.
  std::size_t lo = pc;
  while (!is_entry[lo]) --lo;  // is_entry[0] holds
  std::optional<std::uint64_t> value;
  for (std::size_t k = lo; k < insns.size() && (k == lo || !is_entry[k]); ++k) {
    const Insn& in = insns[k];
    if (in.op == Op::LddwTail || written_reg(in) != reg) continue;
    if (in.op != Op::Lddw || (value && *value != in.imm64())) return std::nullopt;
    value = in.imm64();
  }
  return value;
}

// Per function entry: the r6-r9 that the function or anything it calls may
// write, so that a call saves only those (the kernel's JIT saves the
// callee-saved registers a function uses, in its prologue). Functions are the
// ranges between entries; with kernel_structure no jump leaves its function
// and the last instruction is an exit or jmp, so the ranges are exact.
// Without it (or with a callx, whose target is unknown) everything is saved.
std::vector<u8> callee_saved_masks(std::span<const Insn> insns, const std::vector<bool>& is_entry, bool structured) {
  const std::size_t n = insns.size();
  std::vector<u8> mask(n, kAllCalleeSaved);
  if (!structured) return mask;
  const Functions fns(n, is_entry);
  const std::vector<std::size_t>& func_of = fns.of;
  const std::vector<std::size_t>& starts = fns.starts;
  const std::size_t nf = starts.size();
  std::vector<u8> own(nf, 0);
  std::vector<std::vector<std::size_t>> callees(nf);
  for (std::size_t pc = 0; pc < n; ++pc) {
    const Insn& in = insns[pc];
    if (in.op == Op::LddwTail) continue;
    const std::size_t f = func_of[pc];
    own[f] = static_cast<u8>(own[f] | callee_saved_written(in));
    if (in.op == Op::Callx) own[f] = kAllCalleeSaved;
    if (in.op == Op::CallLocal) {
      callees[f].push_back(func_of[call_target(in, pc)]);
    }
  }
  for (bool changed = true; changed;) {  // transitive closure (at most nf rounds)
    changed = false;
    for (std::size_t f = 0; f < nf; ++f)
      for (std::size_t g : callees[f]) {
        const auto m = static_cast<u8>(own[f] | own[g]);
        if (m != own[f]) {
          own[f] = m;
          changed = true;
        }
      }
  }
  for (std::size_t f = 0; f < nf; ++f) mask[starts[f]] = own[f];
  return mask;
}


namespace {
std::uint8_t bits_of(std::uint64_t v) { return static_cast<std::uint8_t>(64 - std::countl_zero(v)); }
std::uint8_t min8(unsigned a, unsigned b) { return static_cast<std::uint8_t>(std::min(a, b)); }
// Width of an ALU result (AluK/AluX), from the operands' widths.
std::uint8_t alu_width(const Insn& in, unsigned dw, unsigned sw) {
  const bool is64 = isa::is_64(in.op);
  const unsigned cap = is64 ? 64 : 32;
  const bool imm = in.info().form == Form::AluK;
  const bool is_signed = in.info().sel == isa::Sel::Off && in.info().sel_value == 1;
  const unsigned n = static_cast<unsigned>(in.imm) & (cap - 1);  // shift count of the imm forms
  switch (isa::op_code(in.op)) {
    case 0x0: return min8(cap, std::max(dw, sw) + 1);    // add
    case 0x2: return min8(cap, dw + sw);                  // mul
    case 0x3: return is_signed ? min8(cap, 64) : min8(cap, dw);  // div: quotient <= dividend, x/0 = 0
    case 0x4: case 0xa: return min8(cap, std::max(dw, sw));      // or, xor
    case 0x5: return min8(cap, std::min(dw, sw));         // and
    case 0x6: return imm ? min8(cap, dw + n) : min8(cap, 64);  // lsh
    case 0x7: {                                           // rsh
      const unsigned d = std::min(dw, cap);
      return imm ? static_cast<std::uint8_t>(d > n ? d - n : 0) : static_cast<std::uint8_t>(d);
    }
    case 0x9: return is_signed ? min8(cap, 64) : min8(cap, dw);  // mod: x % y <= x, x % 0 = x
    case 0xb: return min8(cap, sw);                       // mov
    default: return static_cast<std::uint8_t>(cap);       // sub, arsh, ...
  }
}
}  // namespace

void track_widths(Widths& w, const Insn& in) {
  const Form f = in.info().form;
  const unsigned cap = isa::is_64(in.op) ? 64 : 32;
  switch (f) {
    case Form::AluK: case Form::AluX: {
      unsigned sw = 64;
      if (f == Form::AluX) sw = w[in.src];
      else sw = cap == 64 ? bits_of(isa::sem::imm64(in.imm)) : bits_of(static_cast<std::uint32_t>(in.imm));
      w[in.dst] = alu_width(in, w[in.dst], sw);
      break;
    }
    case Form::Neg: case Form::MovSx:
      w[in.dst] = static_cast<std::uint8_t>(cap);
      break;
    case Form::End: {
      const auto bits = static_cast<unsigned>(in.info().sel_value);
      const bool le = in.op == Op::Le16 || in.op == Op::Le32 || in.op == Op::Le64;
      w[in.dst] = le ? min8(w[in.dst], bits) : static_cast<std::uint8_t>(bits);
      break;
    }
    case Form::Lddw:
      w[in.dst] = in.op == Op::LddwFunc ? 64 : bits_of(in.imm64());
      break;
    case Form::Ldx: case Form::LoadAcq: {
      const bool sx = in.op == Op::LdxSB || in.op == Op::LdxSH || in.op == Op::LdxSW;
      w[in.dst] = sx ? 64 : static_cast<std::uint8_t>(isa::access_size(in.op) * 8);
      break;
    }
    case Form::Atomic:
      w[in.src] = 64;
      w[0] = 64;
      break;
    case Form::Call: case Form::CallKfunc: case Form::CallLocal: case Form::Callx: case Form::LdAbs: case Form::LdInd:
      forget_widths(w);
      break;
    case Form::Ja: case Form::Gotol: case Form::JmpK: case Form::JmpX: case Form::Exit: case Form::MayGoto:
    case Form::St: case Form::Stx: case Form::StoreRel:
      break;
  }
  w[isa::kFrameReg] = 64;
}

namespace {
constexpr std::uint16_t kAllRegs = 0x7ff;  // r0-r10
constexpr std::uint16_t bit(unsigned r) { return static_cast<std::uint16_t>(1u << r); }
}  // namespace

void use_def(const Insn& in, bool exit_reads_all, std::uint16_t& use, std::uint16_t& def) {
  use = 0;
  def = 0;
  const Form f = in.info().form;
  switch (f) {
    case Form::AluK:
    case Form::AluX: {
      const bool mov = isa::op_code(in.op) == 0xb;
      if (!mov) use |= bit(in.dst);
      if (f == Form::AluX) use |= bit(in.src);
      def = bit(in.dst);
      break;
    }
    case Form::Neg: case Form::End:
      use = bit(in.dst);
      def = bit(in.dst);
      break;
    case Form::MovSx: case Form::Ldx: case Form::LoadAcq:
      use = bit(in.src);
      def = bit(in.dst);
      break;
    case Form::Lddw:
      def = bit(in.dst);
      break;
    case Form::St:
      use = bit(in.dst);
      break;
    case Form::Stx: case Form::StoreRel:
      use = static_cast<std::uint16_t>(bit(in.dst) | bit(in.src));
      break;
    case Form::Atomic:
      use = static_cast<std::uint16_t>(bit(in.dst) | bit(in.src) | bit(0));
      break;
    case Form::JmpK:
      use = bit(in.dst);
      break;
    case Form::JmpX:
      use = static_cast<std::uint16_t>(bit(in.dst) | bit(in.src));
      break;
    case Form::Ja: case Form::Gotol: case Form::MayGoto:
      break;
    case Form::Exit:
      use = exit_reads_all ? kAllRegs : bit(0);
      break;
    case Form::Call: case Form::CallKfunc: case Form::LdAbs: case Form::LdInd:
      use = kAllRegs;  // faults report r0; r1-r5 are arguments
      def = bit(0);
      break;
    case Form::CallLocal: case Form::Callx:
      use = kAllRegs;  // the callee may read anything the caller left
      break;
  }
}

std::vector<std::uint16_t> live_out(std::span<const Insn> insns, const std::vector<bool>& is_entry, bool structured) {
  const std::size_t n = insns.size();
  std::vector<std::uint16_t> out(n, kAllRegs);
  if (!structured || n == 0) return out;
  // The main program's exits return to run() (only r0 matters) unless
  // something may call pc 0 as a function.
  bool main_is_callee = false;
  for (std::size_t pc = 0; pc < n; ++pc) {
    const Insn& in = insns[pc];
    if (in.op == Op::Callx) main_is_callee = true;
    if ((in.op == Op::CallLocal || in.op == Op::LddwFunc) && call_target(in, pc) == 0) main_is_callee = true;
  }
  const Functions fns(n, is_entry);
  std::vector<std::uint16_t> use(n, 0), def(n, 0), in_set(n, 0);
  for (std::size_t pc = 0; pc < n; ++pc) {
    if (insns[pc].op == Op::LddwTail) continue;
    use_def(insns[pc], main_is_callee || fns.of[pc] != 0, use[pc], def[pc]);
  }
  std::fill(out.begin(), out.end(), std::uint16_t{0});
  // Backward iteration to a fixed point (a few rounds: one per loop nesting
  // level; one round when every jump goes forward).
  bool back_edges = false;
  for (bool changed = true; changed;) {
    changed = false;
    for (std::size_t i = n; i-- > 0;) {
      const Insn& in = insns[i];
      if (in.op == Op::LddwTail) continue;
      const Form f = in.info().form;
      std::uint16_t o = 0;
      const std::size_t next = i + (f == Form::Lddw ? 2 : 1);
      const bool falls = f != Form::Ja && f != Form::Gotol && f != Form::Exit;
      if (falls) o |= next < n ? in_set[next] : bit(0);  // falling off the end reports r0
      if (isa::is_jump(f)) {
        const auto t = static_cast<std::size_t>(isa::jump_target(in, i));
        o |= in_set[t];
        if (t <= i) back_edges = true;
      }
      o |= bit(isa::kFrameReg);
      const auto li = static_cast<std::uint16_t>(use[i] | (o & ~def[i]));
      if (o != out[i] || li != in_set[i]) {
        out[i] = o;
        in_set[i] = li;
        changed = true;
      }
    }
    if (!back_edges) break;
  }
  return out;
}

CallFacts call_facts(std::span<const Insn> insns, const std::vector<bool>& is_entry, bool structured) {
  CallFacts cf;
  const std::size_t n = insns.size();
  bool helpers = false, other_c = false, has_callx = false;
  for (const Insn& in : insns) {
    const Form f = in.info().form;
    if (f == Form::Call || f == Form::CallKfunc) helpers = true;
    if (f == Form::Callx) has_callx = true;
    if (f == Form::LdAbs || f == Form::LdInd) other_c = true;
  }
  cf.no_c_calls = !helpers && !has_callx && !other_c;
  if (!structured || helpers || has_callx) return cf;
  if (std::none_of(is_entry.begin() + 1, is_entry.end(), [](bool e) { return e; })) {
    cf.static_depth = true;  // one function, no calls
    return cf;
  }
  const Functions fns(n, is_entry);
  const std::size_t nf = fns.starts.size();
  std::vector<bool> own_frame(nf, false);
  std::vector<std::vector<std::size_t>> callees(nf);
  for (std::size_t pc = 0; pc < n; ++pc) {
    const Insn& in = insns[pc];
    if (in.op == Op::LddwTail) continue;
    const std::size_t f = fns.of[pc];
    // Conservative: any register field naming r10 (pseudo src values of
    // calls and lddw are below 10).
    if (in.dst == isa::kFrameReg || in.src == isa::kFrameReg || in.info().form == Form::LdAbs ||
        in.info().form == Form::LdInd)
      own_frame[f] = true;
    if (in.op == Op::CallLocal) callees[f].push_back(fns.of[call_target(in, pc)]);
  }
  // Longest chain of frames from the main program (depth 1), by relaxation;
  // a cycle (recursion) shows as a depth above the frame limit.
  const auto limit = static_cast<std::size_t>(isa::kMaxCallFrames);
  std::vector<std::size_t> depth(nf, 0);
  depth[0] = 1;
  for (bool changed = true; changed;) {
    changed = false;
    for (std::size_t f = 0; f < nf; ++f) {
      if (depth[f] == 0) continue;
      for (std::size_t g : callees[f]) {
        if (depth[f] + 1 > depth[g]) {
          depth[g] = depth[f] + 1;
          if (depth[g] > limit) return cf;
          changed = true;
        }
      }
    }
  }
  cf.static_depth = true;
  // Frame use, closed over callees (at most nf rounds: the graph is acyclic).
  for (bool changed = true; changed;) {
    changed = false;
    for (std::size_t f = 0; f < nf; ++f)
      for (std::size_t g : callees[f])
        if (own_frame[g] && !own_frame[f]) {
          own_frame[f] = true;
          changed = true;
        }
  }
  cf.uses_frame.assign(n, true);
  for (std::size_t f = 0; f < nf; ++f) cf.uses_frame[fns.starts[f]] = own_frame[f];
  // Inlining candidates, callees before callers (deepest first): expanded
  // size = own instructions + the expanded size of every call's callee.
  std::vector<std::size_t> size(nf, 0);  // 0: not inlinable
  std::vector<std::size_t> order(nf);
  for (std::size_t f = 0; f < nf; ++f) order[f] = f;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return depth[a] > depth[b]; });
  cf.inline_end.assign(n, 0);
  for (std::size_t f : order) {
    if (f == 0 || depth[f] == 0) continue;  // the main program; unreachable functions
    const std::size_t begin = fns.starts[f], end = f + 1 < nf ? fns.starts[f + 1] : n;
    std::size_t total = 0;
    for (std::size_t pc = begin; pc < end && total <= kInlineMaxInsns; ++pc) {
      const Insn& in = insns[pc];
      const Form form = in.info().form;
      if (form == Form::MayGoto || form == Form::LdAbs || form == Form::LdInd) total = kInlineMaxInsns + 1;
      else if (in.op == Op::CallLocal) {
        const std::size_t g = size[fns.of[call_target(in, pc)]];
        total += g == 0 ? kInlineMaxInsns + 1 : g;
      } else if (in.op != Op::LddwTail) {
        ++total;
      }
    }
    if (total > kInlineMaxInsns) continue;
    size[f] = total;
    cf.inline_end[begin] = static_cast<std::uint32_t>(end);
  }
  return cf;
}

}  // namespace userbpf::jit::detail
