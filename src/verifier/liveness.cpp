// Liveness: which registers and stack slots of an explored state can still
// be read on some path from its instruction, as Linux 6.18 computes it.
//
// Registers (static): a backward data-flow over the instructions gives,
// per instruction, the registers read before being written on some path
// (live_regs_before). Uses/defs per instruction follow the kernel's
// compute_insn_live_regs: helper calls use r1..rN (N arguments of the
// prototype) and define r0-r5; bpf-to-bpf calls use r1-r5 and fall
// through (the callee is not followed); exit uses r0; LD_ABS/LD_IND use
// every register.
//
// Stack slots (dynamic, call-chain sensitive, as the kernel's liveness.c):
// while paths are explored, every stack read records the slot in
// may_read[(call chain, insn)] of the frame that owns the slot, and every
// full 8-byte aligned write records it in must_write (intersected over all
// visits of that instruction). After a path ends and after a subprogram
// returns, the instances that changed are brought to their fixed point:
//   live_before(i) = (U live_before(succ(i)) \ must_write(i)) U may_read(i)
//   must_write_acc(i) = (n must_write_acc(succ(i))) U must_write(i)
// and a callee instance hands its entry's live_before / must_write_acc for
// the caller frames to the call instruction of its caller's instance.
//
// Cleaning: when an explored checkpoint is fully explored (no pending
// branch) and is about to be compared, its dead registers become NOT_INIT
// and its dead stack slots INVALID, so that pruning ignores them (the
// kernel's clean_live_states). Invariant: a slot or register is only
// declared dead when no explored continuation of that checkpoint read it.
#include <algorithm>

#include "verifier/engine.hpp"

namespace userbpf::verifier::detail {

using isa::Form;
using isa::Op;

namespace {

constexpr std::uint16_t kAllRegs = 0xffff;
constexpr std::uint16_t kCallerSaved = 0x3f;  // r0-r5

struct UseDef {
  std::uint16_t use = kAllRegs;
  std::uint16_t def = 0;
};

UseDef use_def(const isa::Insn& in) {
  const Form f = in.info().form;
  const auto dst = static_cast<std::uint16_t>(1u << in.dst);
  const auto src = static_cast<std::uint16_t>(1u << in.src);
  UseDef u;
  switch (f) {
    case Form::Lddw:
      u.def = dst;
      u.use = 0;
      break;
    case Form::LdAbs: case Form::LdInd:
      break;  // the kernel's defaults: every register used, none defined
    case Form::Ldx: case Form::LoadAcq:
      u.def = dst;
      u.use = src;
      break;
    case Form::St:
      u.use = dst;
      break;
    case Form::Stx: case Form::StoreRel:
      u.use = static_cast<std::uint16_t>(dst | src);
      break;
    case Form::Atomic:
      if (in.op == Op::AtomicCmpxchgW || in.op == Op::AtomicCmpxchgDW) {
        u.use = static_cast<std::uint16_t>(1u | dst | src);
        u.def = 1u;
      } else {
        u.use = static_cast<std::uint16_t>(dst | src);
        u.def = (in.imm & isa::sem::kAtomicFetch) != 0 ? src : 0;
      }
      break;
    case Form::End: case Form::Neg:
      u.use = dst;
      u.def = dst;
      break;
    case Form::AluK:
      u.def = dst;
      u.use = isa::op_code(in.op) == 0xb ? 0 : dst;  // mov: no use
      break;
    case Form::AluX: case Form::MovSx:
      u.def = dst;
      u.use = isa::op_code(in.op) == 0xb ? src : static_cast<std::uint16_t>(dst | src);
      break;
    case Form::Ja: case Form::Gotol: case Form::MayGoto:
      u.use = 0;
      break;
    case Form::Exit:
      u.use = 1u;
      break;
    case Form::Call: {
      u.def = kCallerSaved;
      u.use = kCallerSaved & ~1u;
      if (in.imm >= 0) {
        if (const spec::HelperProto* p = spec::helper(static_cast<std::uint32_t>(in.imm))) {
          unsigned n = 0;
          while (n < 5 && p->args[n] != spec::ArgKind::Unused) ++n;
          u.use = static_cast<std::uint16_t>(((1u << (n + 1)) - 1) & ~1u);
        }
      }
      break;
    }
    case Form::CallKfunc:
      u.def = kCallerSaved;
      u.use = kCallerSaved & ~1u;
      if (const spec::KfuncProto* p = in.off == 0 ? spec::kfunc(static_cast<std::uint32_t>(in.imm)) : nullptr)
        u.use = static_cast<std::uint16_t>(((1u << (p->nargs() + 1)) - 1) & ~1u);
      break;
    case Form::CallLocal: case Form::Callx:
      u.def = kCallerSaved;
      u.use = kCallerSaved & ~1u;
      break;
    case Form::JmpK:
      u.use = dst;
      break;
    case Form::JmpX:
      u.use = static_cast<std::uint16_t>(dst | src);
      break;
  }
  return u;
}

// Successors inside the subprogram (calls fall through, exit has none).
int successors(std::span<const isa::Insn> insns, std::size_t i, std::size_t out[2]) {
  const isa::Insn& in = insns[i];
  if (in.op == Op::LddwTail) return 0;
  const Form f = in.info().form;
  int n = 0;
  auto add = [&](std::int64_t t) {
    if (t >= 0 && static_cast<std::size_t>(t) < insns.size()) out[n++] = static_cast<std::size_t>(t);
  };
  switch (f) {
    case Form::Exit: return 0;
    case Form::Ja: case Form::Gotol:
      add(isa::jump_target(in, i));
      return n;
    case Form::JmpK: case Form::JmpX: case Form::MayGoto:
      add(static_cast<std::int64_t>(i) + 1);
      add(isa::jump_target(in, i));
      return n;
    case Form::Lddw:
      add(static_cast<std::int64_t>(i) + 2);
      return n;
    case Form::AluK: case Form::AluX: case Form::Neg: case Form::End: case Form::MovSx: case Form::Ldx:
    case Form::St: case Form::Stx: case Form::Atomic: case Form::LoadAcq: case Form::StoreRel: case Form::LdAbs:
    case Form::LdInd: case Form::Call: case Form::CallLocal: case Form::CallKfunc: case Form::Callx:
      add(static_cast<std::int64_t>(i) + 1);
      return n;
  }
  return n;
}

}  // namespace

// ---------------------------------------------------------------- registers
void Engine::compute_live_regs() {
  const std::size_t n = insns_.size();
  std::vector<UseDef> ud(n);
  for (std::size_t i = 0; i < n; ++i)
    if (insns_[i].op != Op::LddwTail) ud[i] = use_def(insns_[i]);
  live_regs_.assign(n, 0);
  bool changed = true;
  while (changed) {
    changed = false;
    for (std::size_t k = n; k-- > 0;) {
      if (insns_[k].op == Op::LddwTail) continue;
      std::size_t succ[2];
      const int ns = successors(insns_, k, succ);
      std::uint16_t after = 0;
      for (int s = 0; s < ns; ++s) after = static_cast<std::uint16_t>(after | live_regs_[succ[s]]);
      const auto before = static_cast<std::uint16_t>((after & ~ud[k].def) | ud[k].use);
      if (before != live_regs_[k]) {
        live_regs_[k] = before;
        changed = true;
      }
    }
  }
}

// ---------------------------------------------------------------- stack
std::vector<std::uint32_t> Engine::callchain(const State& st, std::size_t depth) const {
  std::vector<std::uint32_t> c;
  c.reserve(depth + 1);
  for (std::size_t i = 0; i < depth; ++i) c.push_back(static_cast<std::uint32_t>(st.frames[i + 1].callsite));
  c.push_back(static_cast<std::uint32_t>(subprog_start_[static_cast<std::size_t>(st.frames[depth].subprog)]));
  return c;
}

std::size_t Engine::live_instance(const std::vector<std::uint32_t>& chain) {
  auto it = live_index_.find(chain);
  if (it != live_index_.end()) return it->second;
  LiveInstance li;
  li.chain = chain;
  li.start = chain.back();
  const auto sp = static_cast<std::size_t>(subprog_of_[li.start]);
  const std::size_t end = sp + 1 < subprog_start_.size() ? subprog_start_[sp + 1] : insns_.size();
  li.n = end - li.start;
  li.masks.assign(chain.size() * li.n, LiveMasks{});
  li.must_write_set.assign(li.n, 0);
  live_.push_back(std::move(li));
  live_index_.emplace(chain, live_.size() - 1);
  return live_.size() - 1;
}

std::size_t Engine::cur_live_instance(const State& st) {
  if (cur_live_ == ~std::size_t{0}) cur_live_ = live_instance(callchain(st, st.frames.size() - 1));
  return cur_live_;
}

void Engine::live_mark_read(const State& st, int frameno, std::uint64_t mask) {
  LiveInstance& li = live_[cur_live_instance(st)];
  LiveMasks& m = li.at(static_cast<std::size_t>(frameno), cur_idx_);
  const std::uint64_t nr = m.may_read | mask;
  if (nr != m.may_read && (nr | m.live_before) != m.live_before) li.updated = true;
  m.may_read = nr;
}

void Engine::live_mark_write(int frameno, std::uint64_t mask) {
  if (frameno >= 0 && static_cast<std::size_t>(frameno) < live_writes_.size())
    live_writes_[static_cast<std::size_t>(frameno)] |= mask;
}

void Engine::live_commit_writes(std::size_t inst, std::size_t idx) {
  LiveInstance& li = live_[inst];
  const std::size_t rel = idx - li.start;
  for (std::size_t f = 0; f < li.chain.size(); ++f) {
    std::uint64_t mask = live_writes_[f];
    LiveMasks& m = li.at(f, idx);
    const std::uint64_t old = m.must_write;
    if (li.must_write_set[rel]) mask &= old;
    if (old != mask) {
      m.must_write = mask;
      li.updated = true;
    }
    if ((old & ~mask) != 0) li.must_write_dropped = true;
  }
  li.must_write_set[rel] = 1;
  live_writes_.fill(0);
}

void Engine::live_update_instance(std::size_t inst) {
  {
    LiveInstance& li = live_[inst];
    if (li.must_write_dropped)
      for (auto& m : li.masks) m.must_write_acc = 0;
    bool changed = true;
    while (changed) {
      changed = false;
      for (std::size_t f = 0; f < li.chain.size(); ++f) {
        for (std::size_t k = li.n; k-- > 0;) {
          const std::size_t i = li.start + k;
          std::size_t succ[2];
          const int ns = successors(insns_, i, succ);
          if (ns == 0) continue;
          std::uint64_t after = 0, acc = ~0ULL;
          for (int s = 0; s < ns; ++s) {
            if (succ[s] < li.start || succ[s] >= li.start + li.n) continue;
            const LiveMasks& sm = li.at(f, succ[s]);
            after |= sm.live_before;
            acc &= sm.must_write_acc;
          }
          LiveMasks& m = li.at(f, i);
          acc |= m.must_write;
          const std::uint64_t before = (after & ~m.must_write) | m.may_read;
          if (before != m.live_before || acc != m.must_write_acc) {
            m.live_before = before;
            m.must_write_acc = acc;
            changed = true;
          }
        }
      }
    }
    li.updated = false;
    li.must_write_dropped = false;
  }
  // hand the entry's marks for the caller frames to the call instruction
  const LiveInstance& li = live_[inst];
  if (li.chain.size() < 2) return;
  std::vector<std::uint32_t> outer(li.chain.begin(), li.chain.end() - 1);
  const std::uint32_t callsite = outer.back();
  outer.back() = static_cast<std::uint32_t>(subprog_start_[static_cast<std::size_t>(subprog_of_[callsite])]);
  const std::size_t oi = live_instance(outer);
  const LiveInstance& callee = live_[inst];
  live_writes_.fill(0);
  for (std::size_t f = 0; f + 1 < callee.chain.size(); ++f) {
    const LiveMasks& entry = callee.at(f, callee.start);
    live_writes_[f] = entry.must_write_acc;
    LiveInstance& o = live_[oi];
    LiveMasks& m = o.at(f, callsite);
    const std::uint64_t nr = m.may_read | entry.live_before;
    if (nr != m.may_read && (nr | m.live_before) != m.live_before) o.updated = true;
    m.may_read = nr;
  }
  live_commit_writes(oi, callsite);
}

void Engine::live_update(const State& st) {
  cur_live_ = ~std::size_t{0};
  for (std::size_t d = st.frames.size(); d-- > 0;) {
    const std::size_t inst = live_instance(callchain(st, d));
    if (live_[inst].updated) live_update_instance(inst);
  }
}

bool Engine::slot_alive(const State& st, std::size_t idx, std::size_t frameno, std::size_t spi) {
  const std::size_t cur = st.frames.size() - 1;
  const std::uint64_t bit = 1ULL << spi;
  const LiveInstance& ci = live_[live_instance(callchain(st, cur))];
  if ((ci.at(frameno, idx).live_before & bit) != 0) return true;
  for (std::size_t i = frameno; i < cur; ++i) {
    const auto callsite = static_cast<std::size_t>(st.frames[i + 1].callsite);
    const LiveInstance& oi = live_[live_instance(callchain(st, i))];
    // after a callback the helper call itself runs again: live before it
    const std::size_t resume = calls_callback_[callsite] ? callsite : callsite + 1;
    if (resume < oi.start + oi.n && (oi.at(frameno, resume).live_before & bit) != 0) return true;
  }
  return false;
}

void Engine::clean_state(State& st, std::size_t idx) {
  for (std::size_t f = 0; f < st.frames.size(); ++f) {
    Frame& fr = st.frames[f];
    const std::size_t ip = f + 1 == st.frames.size() ? idx : static_cast<std::size_t>(st.frames[f + 1].callsite);
    const std::uint16_t live = live_regs_[ip];
    for (unsigned r = 0; r < 10; ++r)
      if ((live & (1u << r)) == 0) mark_not_init(fr.regs[r]);
    for (std::size_t spi = 0; spi < static_cast<std::size_t>(kSlots); ++spi) {
      StackSlot& s = fr.stack[spi];
      if (s.type[0] == Slot::Invalid && s.type[7] == Slot::Invalid &&
          std::all_of(s.type.begin(), s.type.end(), [](Slot t) { return t == Slot::Invalid; }))
        continue;
      if (slot_alive(st, idx, f, spi)) continue;
      mark_not_init(s.spilled);
      s.type.fill(Slot::Invalid);
    }
  }
}

}  // namespace userbpf::verifier::detail
