// kfunc calls (call with src = BPF_PSEUDO_KFUNC_CALL) against the host kfunc
// table (spec/kfuncs.def), and open-coded iterators, as Linux 6.18 checks
// them.
//
// How it works: ids are checked before exploration ("kernel btf_id %u is not
// a function", as the kernel's add_kfunc_call). At a call every argument is
// checked against the prototype (scalars; iterator pointers: a constant,
// slot-aligned offset into the stack), r1-r5 are clobbered and r0 is set
// from the return kind (an unknown scalar, or rdonly_mem of ret_size bytes,
// _or_null with a fresh id for KF_RET_NULL).
//
// Iterators (struct bpf_iter_num, one 8-byte stack slot, Slot::Iter):
//  - KF_ITER_NEW wants an uninitialised slot, acquires a reference
//    (State::refs: "Unreleased reference" at exit when not destroyed) and
//    marks the slot active, depth 0;
//  - KF_ITER_NEXT wants an initialised one. The call is a forced checkpoint.
//    The current path continues with the iterator drained and r0 = NULL
//    (the loop's exit); one more iteration is queued with the iterator
//    active, depth + 1 and r0 non-null, its imprecise scalars widened against
//    the loop's previous entry (as may_goto). Reaching the call again with a
//    state that is range-within a checkpoint there that is still being
//    explored, the iterator active, ends that path: the loop converged
//    (verifier.cpp, prune_or_checkpoint). Depths are not compared for
//    pruning, only for the infinite-loop check.
//  - KF_ITER_DESTROY wants an initialised one, releases the reference and
//    makes the slot invalid.
// bpf_rcu_read_lock/unlock count nested sections (State::active_rcu): an
// unlock without lock and an exit inside a section are errors.
#include <fmt/format.h>

#include "verifier/engine.hpp"

namespace userbpf::verifier::detail {

void Engine::check_kfunc_ids() {
  iter_next_.assign(insns_.size(), false);
  for (std::size_t pc = 0; pc < insns_.size(); ++pc) {
    const isa::Insn& in = insns_[pc];
    if (in.op != isa::Op::CallKfunc) continue;
    out_.error_insn = pc;
    if (!cfg_.privileged)
      reject(EPERM, "loading/calling other bpf or kernel functions are allowed for CAP_BPF and CAP_SYS_ADMIN");
    const auto id = static_cast<std::uint32_t>(in.imm);
    const spec::KfuncProto* p = in.off == 0 ? spec::kfunc(id) : nullptr;
    if (p == nullptr) reject(EINVAL, fmt::format("kernel btf_id {} is not a function", id));
    iter_next_[pc] = p->has(spec::KF_ITER_NEXT);
  }
}

// The kernel's process_iter_arg: returns the iterator's stack slot.
int Engine::iter_arg(State& st, std::size_t idx, const spec::KfuncProto& p, unsigned regno) {
  (void)idx;
  const Reg r = reg(st, regno);
  const unsigned argno = regno - 1;
  if (r.type != RegType::Stack) reject(EINVAL, fmt::format("arg#{} expected pointer to an iterator on stack", argno));
  const bool is_new = p.has(spec::KF_ITER_NEW);
  auto bad = [&](const std::string& why) {
    reject(EINVAL, (why.empty() ? why : why + "\n") + fmt::format("expected {} iter_num as arg #{}",
                                                                  is_new ? "uninitialized" : "an initialized", argno));
  };
  if (!r.var_off.is_const()) bad("iter has to be at a constant offset");
  const std::int64_t off = static_cast<std::int64_t>(r.var_off.value) + r.off;
  if (off % 8 != 0 || off >= 0) bad(fmt::format("cannot pass in iter at an offset={}", off));
  if (off < -kStackSize) reject(EACCES, fmt::format("invalid write to stack R{} off={} size=8", regno, off));
  const auto spi = static_cast<std::size_t>((-off - 1) / 8);
  Frame& fr = stack_frame(st, r);
  StackSlot& sl = fr.stack[spi];
  if (is_new) {
    for (const Slot t : sl.type)
      if (t == Slot::Iter) bad("");
    check_stack_bounds(st, regno, r.off, 8, Access::Write);
    note_stack_depth(st, r, off);
    live_mark_write(r.frameno, 1ULL << spi);
    const std::uint32_t id = new_id();
    st.refs.push_back(State::Ref{id, static_cast<std::uint32_t>(idx)});
    sl.type.fill(Slot::Iter);
    sl.spilled = Reg{};
    sl.spilled.ref_obj_id = id;
    sl.iter_state = kIterActive;
    sl.iter_depth = 0;
    return static_cast<int>(spi);
  }
  for (const Slot t : sl.type)
    if (t != Slot::Iter) bad("");
  if (sl.spilled.ref_obj_id == 0) bad("");
  live_mark_read(st, r.frameno, 1ULL << spi);
  if (p.has(spec::KF_ITER_DESTROY)) {
    release_reference(st, sl.spilled.ref_obj_id);
    sl.type.fill(Slot::Invalid);
    sl.spilled = Reg{};
    sl.iter_state = kIterNone;
    sl.iter_depth = 0;
  }
  return static_cast<int>(spi);
}

// The loop's previous entry: a checkpoint at idx still being explored from a
// shallower branch with the same call chain (the kernel's find_prev_entry).
const State* Engine::find_prev_entry(const State& st, std::size_t idx) const {
  const auto& list = explored_[idx];
  for (auto it = list.rbegin(); it != list.rend(); ++it) {
    const Node& entry = nodes_[*it];
    if (entry.branches == 0 || entry.st.frames.size() != st.frames.size() || entry.st.dfs_depth >= st.dfs_depth)
      continue;
    bool same = true;
    for (std::size_t f = 1; f < st.frames.size() && same; ++f)
      same = entry.st.frames[f].callsite == st.frames[f].callsite;
    if (same) return &entry.st;
  }
  return nullptr;
}

bool Engine::iter_active(const State& st) {
  const Reg& r = st.cur().regs[1];
  if (r.type != RegType::Stack || !r.var_off.is_const()) return false;
  const std::int64_t off = static_cast<std::int64_t>(r.var_off.value) + r.off;
  if (off >= 0 || off < -kStackSize) return false;
  const StackSlot& sl = st.frames[static_cast<std::size_t>(r.frameno)].stack[static_cast<std::size_t>((-off - 1) / 8)];
  return sl.type[0] == Slot::Iter && sl.iter_state == kIterActive;
}

// The kernel's process_iter_next_call: r0 is already rdonly_mem_or_null.
void Engine::iter_next(State& st, std::size_t idx, std::size_t frameno, std::size_t spi) {
  StackSlot& sl = st.frames[frameno].stack[spi];
  if (sl.iter_state == kIterActive) {
    State body = st;
    StackSlot& bs = body.frames[frameno].stack[spi];
    ++bs.iter_depth;
    if (const State* prev = find_prev_entry(st, idx)) widen_imprecise(body, *prev);
    Reg& r0 = reg(body, 0);
    r0.maybe_null = false;
    push_branch(std::move(body), idx + 1, idx);
  }
  sl.iter_state = kIterDrained;
  Reg& r0 = reg(st, 0);
  mark_known(r0, 0);
  r0.written = true;
}

void Engine::do_kfunc_call(State& st, std::size_t idx, const isa::Insn& in) {
  const spec::KfuncProto& p = *spec::kfunc(static_cast<std::uint32_t>(in.imm));
  // under bpf_spin_lock only the iterator kfuncs (kfunc_spin_allowed)
  if (st.lock_map >= 0 && !p.has(spec::KF_ITER_NEW) && !p.has(spec::KF_ITER_NEXT) && !p.has(spec::KF_ITER_DESTROY))
    reject(EINVAL, "function calls are not allowed while holding a lock");
  int iter_spi = -1;
  std::size_t iter_frame = 0;
  for (unsigned a = 0; a < p.nargs(); ++a) {
    const unsigned regno = a + 1;
    switch (p.args[a]) {
      case spec::KfuncArg::Unused:
        break;
      case spec::KfuncArg::Scalar:
        if (reg(st, regno).type != RegType::Scalar) reject(EINVAL, fmt::format("R{} is not a scalar", regno));
        break;
      case spec::KfuncArg::IterNum:
        iter_spi = iter_arg(st, idx, p, regno);
        iter_frame = static_cast<std::size_t>(reg(st, regno).frameno);
        break;
    }
  }
  if (p.name == "bpf_rcu_read_lock") {
    if (st.active_rcu != 0) reject(EINVAL, fmt::format("nested rcu read lock (kernel function {})", p.name));
    ++st.active_rcu;
  } else if (p.name == "bpf_rcu_read_unlock") {
    if (st.active_rcu == 0) reject(EINVAL, fmt::format("unmatched rcu read unlock (kernel function {})", p.name));
    --st.active_rcu;
  }
  for (unsigned r = 1; r <= 5; ++r) mark_not_init(reg(st, r));
  Reg& r0 = reg(st, 0);
  switch (p.ret) {
    case spec::KfuncRet::Void:
      mark_not_init(r0);
      break;
    case spec::KfuncRet::Integer:
      mark_unknown(r0);
      break;
    case spec::KfuncRet::RdonlyMem:
      r0 = Reg{};
      r0.type = RegType::Mem;
      r0.rdonly = true;
      r0.range = p.ret_size;
      if (p.has(spec::KF_RET_NULL)) {
        r0.maybe_null = true;
        r0.id = new_id();
      }
      // memory of an iterator lives as long as the iterator (its reference)
      if (iter_spi >= 0)
        r0.ref_obj_id = st.frames[iter_frame].stack[static_cast<std::size_t>(iter_spi)].spilled.ref_obj_id;
      break;
  }
  r0.written = true;
  if (p.has(spec::KF_ITER_NEXT) && iter_spi >= 0) iter_next(st, idx, iter_frame, static_cast<std::size_t>(iter_spi));
}

}  // namespace userbpf::verifier::detail
