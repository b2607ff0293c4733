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
// registers/slots marked precise. Masks are kept per frame, as the
// kernel's backtrack_state: the walk follows bpf-to-bpf calls and returns
// (r0 into the callee at its exit, r1-r5 back to the caller at its first
// instruction) and fills/spills of any frame's stack slots; callbacks,
// atomics on the stack and callx fall back to marking every scalar of the
// chain precise. The instruction being checked is not walked (the
// kernel's skip_first).
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
  // A checkpoint's precise marks are never cleared and its scalars never
  // replaced by imprecise ones (clean_state only makes slots NotInit), so a
  // node marked once with all its ancestors stays so: stop at the first.
  for (std::uint32_t p = st.parent; p != ~0u && !nodes_[p].all_precise; p = nodes_[p].parent) {
    mark_all_in(nodes_[p].st);
    nodes_[p].all_precise = true;
  }
}

bool Engine::backtrack_insn(const HistEntry& h, Masks& m, std::size_t& frame, long subseq) {
  const isa::Insn& in = insns_[h.idx];
  const Form f = in.info().form;
  const std::uint32_t dst = 1u << in.dst, src = 1u << in.src;
  std::uint32_t& regs = m.regs[frame];
  constexpr std::uint32_t kArgs = 0x3e;  // r1-r5
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
      if (h.spi >= 0) m.stack[h.frame] |= 1ULL << h.spi;  // a fill: the slot (of any frame) carries it
      return true;
    case Form::St: case Form::Stx:
      if (h.spi < 0 || (m.stack[h.frame] & (1ULL << h.spi)) == 0) return true;
      m.stack[h.frame] &= ~(1ULL << h.spi);
      if (f == Form::Stx) regs |= src;
      return true;
    case Form::JmpK: case Form::JmpX:
      if (f == Form::JmpX && ((regs & dst) != 0 || (regs & src) != 0)) regs |= dst | src;
      return true;
    case Form::Call: case Form::CallKfunc:
      // a helper that called a callback: the walk came out of the callback
      if (calls_callback_[h.idx] && subseq >= 0 && static_cast<std::size_t>(subseq) != h.idx + 1) return false;
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
    case Form::CallLocal: {
      if (subseq < 0) return false;
      if (static_cast<std::size_t>(subseq) == h.idx + 1) {
        // a global function (verified on its own): r0 is its result
        if ((regs & kArgs) != 0) return false;
        regs &= ~1u;
        return true;
      }
      // back from the callee's first instruction to its call: only the
      // arguments r1-r5 can still be wanted; they are the caller's
      if ((regs & ~kArgs) != 0 || m.stack[frame] != 0 || frame == 0) return false;
      m.regs[frame - 1] |= regs;
      regs = 0;
      --frame;
      return true;
    }
    case Form::Exit: {
      // back from the instruction after a call into the callee's exit: r0
      // is the callee's, r6-r9 and the stack stay with the caller's frame
      if (subseq < 1 || insns_[static_cast<std::size_t>(subseq) - 1].op != Op::CallLocal) return false;
      if ((regs & kArgs) != 0 || frame + 1 >= static_cast<std::size_t>(kMaxFrames)) return false;
      const bool r0 = (regs & 1u) != 0;
      regs &= ~1u;
      ++frame;
      m.regs[frame] = r0 ? 1u : 0u;
      m.stack[frame] = 0;
      return true;
    }
    case Form::Callx:
      return false;
  }
  return false;
}

void Engine::mark_precise_masks(State& st, std::uint32_t regs, std::uint64_t stack) {
  Masks m;
  m.regs[st.frames.size() - 1] = regs;
  m.stack[st.frames.size() - 1] = stack;
  mark_precise_frames(st, m);
}

// The kernel's __mark_chain_precision: the path is walked backwards through
// its segments and checkpoints with one register and one stack-slot mask
// per frame; a call's exit enters the callee's frame (r0 goes with it), the
// callee's first instruction goes back to the caller (r1-r5 go with them).
// Whatever cannot be followed (callbacks, atomics on the stack, callx)
// falls back to marking every scalar of the chain precise.
void Engine::mark_precise_frames(State& st, Masks m) {
  std::size_t frame = st.frames.size() - 1;
  auto empty = [&]() {
    for (std::size_t f = 0; f <= frame; ++f)
      if (m.regs[f] != 0 || m.stack[f] != 0) return false;
    return true;
  };
  // In a checkpoint, a register already precise was already backtracked
  // from there: stop following it (keeps the walk amortised O(1)).
  auto apply = [&](State& s, bool checkpoint) {
    for (std::size_t f = 0; f <= frame; ++f) {
      Frame& fr = s.frames[f];
      for (unsigned r = 0; r < 11; ++r) {
        if ((m.regs[f] & (1u << r)) == 0) continue;
        Reg& x = fr.regs[r];
        if (x.type != RegType::Scalar || (checkpoint && x.precise)) { m.regs[f] &= ~(1u << r); continue; }
        x.precise = true;
      }
      for (unsigned i = 0; i < 64; ++i) {
        if ((m.stack[f] & (1ULL << i)) == 0) continue;
        StackSlot& sl = fr.stack[i];
        if (sl.type[0] != Slot::Spill || sl.spilled.type != RegType::Scalar || (checkpoint && sl.spilled.precise)) {
          m.stack[f] &= ~(1ULL << i);
          continue;
        }
        sl.spilled.precise = true;
      }
    }
  };
  apply(st, false);
  const std::vector<HistEntry>* hist = &st.hist;
  std::uint32_t node = st.parent;
  // the instruction after the newest history entry: the one being checked
  // (already in the history: skipped) or the one a pruned path reached
  long subseq = static_cast<long>(cur_idx_);
  bool skip_first = !st.hist.empty() && st.hist.back().idx == cur_idx_;  // the instruction being checked
  for (;;) {
    for (auto it = hist->rbegin(); it != hist->rend(); ++it) {
      if (empty()) return;
      if (skip_first) {
        skip_first = false;
      } else if (!backtrack_insn(*it, m, frame, subseq)) {
        mark_all_precise(st);
        return;
      }
      subseq = it->idx;
    }
    if (empty()) return;
    if (node == ~0u) return;
    Node& n = nodes_[node];
    if (n.st.frames.size() != frame + 1) {
      mark_all_precise(st);
      return;
    }
    apply(n.st, true);
    hist = &n.hist;
    node = n.parent;
  }
}

void Engine::mark_precise(State& st, unsigned regno) {
  const Reg& r = st.cur().regs[regno];
  if (r.type != RegType::Scalar) return;
  mark_precise_masks(st, 1u << regno, 0);
}

void Engine::propagate_precision(State& cur, const State& old) {
  Masks m;
  bool any = false;
  for (std::size_t f = 0; f < old.frames.size(); ++f) {
    const Frame& fr = old.frames[f];
    for (unsigned r = 0; r < 11; ++r)
      if (fr.regs[r].type == RegType::Scalar && fr.regs[r].precise) m.regs[f] |= 1u << r;
    for (unsigned i = 0; i < 64; ++i)
      if (fr.stack[i].type[0] == Slot::Spill && fr.stack[i].spilled.type == RegType::Scalar &&
          fr.stack[i].spilled.precise)
        m.stack[f] |= 1ULL << i;
    any = any || m.regs[f] != 0 || m.stack[f] != 0;
  }
  if (any) mark_precise_frames(cur, m);
}

}  // namespace userbpf::verifier::detail
