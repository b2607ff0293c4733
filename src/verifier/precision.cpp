// Precision tracking (the kernel's mark_chain_precision, simplified).
//
// Scalars start imprecise: pruning treats an imprecise scalar of an
// explored state as equal to any scalar. When a scalar's exact value
// matters (pointer arithmetic offset, helper size argument, a branch whose
// outcome it decides, the return value of a program type with a return
// range), the instructions of the current path are walked backwards from
// the newest (each state keeps the segment since its last checkpoint, each
// checkpoint the segment that led to it) with a set of registers and stack
// slots whose values flowed into it; every checkpoint on the way gets those
// registers/slots marked precise. The walk stays inside the current
// activation (any frame depth: segments and checkpoints of the same call
// chain, slots of the current frame); crossing a call or a return, or an
// atomic on the stack, falls back to marking every scalar of the chain
// precise. A value set by an immediate in the current segment needs nothing.
// When a path is pruned by an explored state, that state's precise
// registers are marked precise on the current path too.
#include "verifier/engine.hpp"

namespace userbpf::verifier::detail {

using isa::Form;
using isa::Op;

namespace {

void mark_all_in(State& st) {
  for (auto& f : st.frames) {
    for (auto& r : f.regs)
      if (r.type == RegType::Scalar) r.precise = true;
    for (auto& s : f.stack)
      if (s.type[0] == Slot::Spill && s.spilled.type == RegType::Scalar) s.spilled.precise = true;
  }
}

}  // namespace

void Engine::mark_all_precise(State& st) {
  mark_all_in(st);
  for (std::uint32_t p = st.parent; p != ~0u; p = nodes_[p].parent) mark_all_in(nodes_[p].st);
}

bool Engine::backtrack_insn(const HistEntry& h, std::uint32_t& regs, std::uint64_t& stack, std::uint8_t frame) {
  const isa::Insn& in = insns_[h.idx];
  const Form f = in.info().form;
  const std::uint32_t dst = 1u << in.dst, src = 1u << in.src;
  switch (f) {
    case Form::AluK: case Form::AluX: case Form::Neg: case Form::End: case Form::MovSx: {
      if ((regs & dst) == 0) return true;
      const bool mov = isa::op_code(in.op) == 0xb;
      if (mov) {
        regs &= ~dst;
        if (f == Form::AluX || f == Form::MovSx) regs |= src;
      } else if (f == Form::AluX) {
        regs |= src;
      }
      return true;
    }
    case Form::Ldx:
      if ((regs & dst) == 0) return true;
      regs &= ~dst;
      if (h.spi >= 0) {
        if (h.frame != frame) return false;  // only the current frame's slots are tracked
        stack |= 1ULL << h.spi;
      }
      return true;
    case Form::St: case Form::Stx:
      if (h.spi < 0 || h.frame != frame) return true;
      if ((stack & (1ULL << h.spi)) == 0) return true;
      stack &= ~(1ULL << h.spi);
      if (f == Form::Stx) regs |= src;
      return true;
    case Form::JmpK: case Form::JmpX:
      if (f == Form::JmpX && ((regs & dst) != 0 || (regs & src) != 0)) regs |= dst | src;
      return true;
    case Form::Call: case Form::CallKfunc:
      regs &= ~0x3fu;  // r0 is the result, r1-r5 were clobbered
      return true;
    case Form::LdAbs: case Form::LdInd:
      regs &= ~0x3fu;
      return true;
    case Form::Lddw:
      regs &= ~dst;
      return true;
    case Form::Ja: case Form::Gotol: case Form::MayGoto:
      return true;
    case Form::Atomic: case Form::LoadAcq: case Form::StoreRel:
      if (h.spi >= 0 || (regs & (dst | src | 1u)) != 0) return false;
      return true;
    case Form::CallLocal: case Form::Callx: case Form::Exit:
      return false;
  }
  return false;
}

void Engine::mark_precise_masks(State& st, std::uint32_t regs, std::uint64_t stack) {
  // Backtracking stays inside the current activation: path segments and
  // checkpoints of the same call chain; crossing a call or a return falls
  // back to marking every scalar precise (sound, coarser than the kernel).
  const std::size_t depth = st.frames.size();
  const auto frame = static_cast<std::uint8_t>(depth - 1);
  auto same_chain = [&](const State& s) {
    if (s.frames.size() != depth) return false;
    for (std::size_t f = 1; f < depth; ++f)
      if (s.frames[f].callsite != st.frames[f].callsite) return false;
    return true;
  };
  // In a checkpoint, a register already precise was already backtracked
  // from there: stop following it (keeps the walk amortised O(1)).
  auto apply = [&](State& s, bool checkpoint) {
    Frame& fr = s.frames.back();
    for (unsigned r = 0; r < 11; ++r) {
      if ((regs & (1u << r)) == 0) continue;
      Reg& x = fr.regs[r];
      if (x.type != RegType::Scalar || (checkpoint && x.precise)) { regs &= ~(1u << r); continue; }
      x.precise = true;
    }
    for (unsigned i = 0; i < 64; ++i) {
      if ((stack & (1ULL << i)) == 0) continue;
      StackSlot& sl = fr.stack[i];
      if (sl.type[0] != Slot::Spill || sl.spilled.type != RegType::Scalar || (checkpoint && sl.spilled.precise)) {
        stack &= ~(1ULL << i);
        continue;
      }
      sl.spilled.precise = true;
    }
  };
  apply(st, false);
  const std::vector<HistEntry>* hist = &st.hist;
  std::uint32_t node = st.parent;
  for (;;) {
    for (auto it = hist->rbegin(); it != hist->rend(); ++it) {
      if (regs == 0 && stack == 0) return;
      if (!backtrack_insn(*it, regs, stack, frame)) {
        mark_all_precise(st);
        return;
      }
    }
    if (regs == 0 && stack == 0) return;
    if (node == ~0u) return;
    Node& n = nodes_[node];
    if (!same_chain(n.st)) {
      mark_all_precise(st);
      return;
    }
    apply(n.st, true);
    hist = &n.hist;
    node = n.parent;
  }
}

// True when the register's value on this path segment comes from an
// immediate (mov imm / lddw imm) of its own frame: backtracking stops there,
// nothing else becomes precise.
bool Engine::set_by_constant(const State& st, unsigned regno) const {
  auto it = st.hist.rbegin();
  if (it != st.hist.rend() && it->idx == cur_idx_) ++it;  // the instruction being checked
  for (; it != st.hist.rend(); ++it) {
    const isa::Insn& in = insns_[it->idx];
    const Form f = in.info().form;
    if (f == Form::Call || f == Form::CallLocal || f == Form::CallKfunc || f == Form::Callx || f == Form::Exit ||
        f == Form::LdAbs || f == Form::LdInd)
      return false;
    const bool writes = (f == Form::AluK || f == Form::AluX || f == Form::Neg || f == Form::End ||
                         f == Form::MovSx || f == Form::Ldx || f == Form::Lddw || f == Form::LoadAcq) &&
                        in.dst == regno;
    if (!writes) {
      if (f == Form::Atomic) return false;
      continue;
    }
    return (f == Form::AluK && isa::op_code(in.op) == 0xb) || in.op == Op::Lddw;
  }
  return false;
}

void Engine::mark_precise(State& st, unsigned regno) {
  const Reg& r = st.cur().regs[regno];
  if (r.type != RegType::Scalar) return;
  if (st.frames.size() != 1 && set_by_constant(st, regno)) return;
  mark_precise_masks(st, 1u << regno, 0);
}

void Engine::propagate_precision(State& cur, const State& old) {
  bool any_other_frame = false;
  std::uint32_t regs = 0;
  std::uint64_t stack = 0;
  for (std::size_t f = 0; f < old.frames.size(); ++f) {
    const Frame& fr = old.frames[f];
    const bool last = f + 1 == old.frames.size();
    for (unsigned r = 0; r < 11; ++r)
      if (fr.regs[r].type == RegType::Scalar && fr.regs[r].precise) {
        if (last) regs |= 1u << r;
        else any_other_frame = true;
      }
    for (unsigned i = 0; i < 64; ++i)
      if (fr.stack[i].type[0] == Slot::Spill && fr.stack[i].spilled.type == RegType::Scalar &&
          fr.stack[i].spilled.precise) {
        if (last) stack |= 1ULL << i;
        else any_other_frame = true;
      }
  }
  if (any_other_frame) {
    mark_all_precise(cur);
    return;
  }
  if (regs != 0 || stack != 0) mark_precise_masks(cur, regs, stack);
}

}  // namespace userbpf::verifier::detail
