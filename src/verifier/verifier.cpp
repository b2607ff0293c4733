// The verifier's driver: structure and CFG checks, the path-exploration loop
// with state pruning, jumps, bpf-to-bpf calls, exits and lddw. See
// engine.hpp for the overall design. Invariants: every state on the work
// stack and every checkpoint is self-contained (no pointers into other
// states); a checkpoint's `branches` counts the paths through it still
// unexplored, and only checkpoints with branches == 0 prune other paths.
#include <fmt/format.h>
#include <linux/bpf.h>

#include <algorithm>
#include <functional>
#include <optional>

#include "verifier/engine.hpp"

namespace userbpf::verifier {

using namespace detail;
using isa::Form;
using isa::Op;

namespace detail {

Engine::Engine(std::span<const isa::Insn> insns, const Config& cfg, Verdict& out)
    : insns_(insns), cfg_(cfg), out_(out) {}

void Engine::reject(int err, std::string msg) { throw Reject{err, std::move(msg)}; }

void Engine::log(const std::string& s) {
  if (cfg_.log_level > 0) out_.log += s;
}

// ---------------------------------------------------------------- structure
void Engine::check_cfg() {
  const std::size_t n = insns_.size();
  // Subprograms: 0 and every local call / callback target (run() has
  // passed isa::check_structure, which refuses bad targets the same way).
  auto sp = isa::subprogram_starts(insns_);
  if (!sp) reject(sp.error().code, sp.error().message);
  const std::vector<std::size_t> starts = std::move(*sp);
  subprog_start_ = starts;
  subprog_of_.assign(n, 0);
  for (std::size_t s = 0; s < starts.size(); ++s) {
    const std::size_t end = s + 1 < starts.size() ? starts[s + 1] : n;
    for (std::size_t pc = starts[s]; pc < end; ++pc) subprog_of_[pc] = static_cast<int>(s);
  }
  callees_.assign(starts.size(), {});
  depth_.assign(starts.size(), 0);
  prune_point_.assign(n, false);
  jmp_point_.assign(n, false);
  calls_callback_.assign(n, false);
  // Depth-first walk from insn 0 following jumps, fall-through and calls.
  std::vector<std::uint8_t> seen(n, 0);
  std::vector<std::size_t> work{0};
  auto add = [&](std::size_t t) {
    if (!seen[t]) work.push_back(t);
  };
  while (!work.empty()) {
    const std::size_t pc = work.back();
    work.pop_back();
    if (seen[pc]) continue;
    seen[pc] = 1;
    const isa::Insn& in = insns_[pc];
    const Form f = in.info().form;
    if (f == Form::Lddw) {
      seen[pc + 1] = 1;
      if (in.op == Op::LddwFunc) {  // a callback: its body is reachable, its entry a prune point
        const auto t = static_cast<std::size_t>(static_cast<std::int64_t>(pc) + 1 + in.imm);
        prune_point_[t] = true;
        add(t);
      }
      add(pc + 2);
      continue;
    }
    if (in.op == Op::Exit) continue;
    if (in.op == Op::Ja || in.op == Op::Gotol) {
      const auto t = static_cast<std::size_t>(isa::jump_target(in, pc));
      prune_point_[t] = true;
      jmp_point_[t] = true;
      add(t);
      continue;
    }
    if (isa::is_cond_jump(f) || f == Form::MayGoto) {
      // the kernel's prune points for a conditional jump: the jump itself and
      // its target (a BRANCH edge of check_cfg)
      const auto t = static_cast<std::size_t>(isa::jump_target(in, pc));
      prune_point_[pc] = true;
      prune_point_[t] = true;
      jmp_point_[pc] = true;
      jmp_point_[t] = true;
      add(t);
      add(pc + 1);
      continue;
    }
    if (in.op == Op::CallLocal) {
      const auto t = static_cast<std::size_t>(static_cast<std::int64_t>(pc) + 1 + in.imm);
      prune_point_[pc] = true;
      prune_point_[pc + 1] = true;
      prune_point_[t] = true;  // the callee's entry (a BRANCH edge)
      callees_[static_cast<std::size_t>(subprog_of_[pc])].push_back(subprog_of_[t]);
      add(t);
      add(pc + 1);
      continue;
    }
    if (in.op == Op::Call || in.op == Op::CallKfunc) prune_point_[pc + 1] = true;
    if (iter_next_[pc]) prune_point_[pc] = true;  // an iterator loop's head (a forced checkpoint)
    if (in.op == Op::Call && in.imm >= 0) {
      // helpers calling a callback: the call is a loop head (forced checkpoint)
      if (const spec::HelperProto* hp = spec::helper(static_cast<std::uint32_t>(in.imm)))
        for (const auto k : hp->args)
          if (k == spec::ArgKind::Func) {
            prune_point_[pc] = true;
            calls_callback_[pc] = !is_async_callback_call(in);  // timer callbacks never return here
          }
    }
    add(pc + 1);
  }
  for (std::size_t pc = 0; pc < n; ++pc)
    if (!seen[pc]) reject(EINVAL, fmt::format("unreachable insn {}", pc));
  out_.subprogs = subprog_start_;
}

// ---------------------------------------------------------------- pruning
void Engine::end_path(State& cur) {
  std::uint32_t p = cur.parent;
  while (p != ~0u) {
    Node& node = nodes_[p];
    if (--node.branches != 0) break;
    p = node.parent;
  }
}

void Engine::push_branch(State st, std::size_t idx, std::size_t prev) {
  if (stack_.size() > 8192) reject(E2BIG, "The sequence of 8193 jumps is too complex.");
  charge_states(sizeof(Pending) - sizeof(State) + state_bytes(st));
  if (st.parent != ~0u) ++nodes_[st.parent].branches;
  ++st.dfs_depth;
  stack_.push_back(Pending{std::move(st), idx, prev, out_.log.size()});
}

Engine::Pending Engine::pop_branch() {
  Pending p = std::move(stack_.back());
  stack_.pop_back();
  state_bytes_ -= sizeof(Pending) - sizeof(State) + state_bytes(p.st);
  return p;
}

// Heap and inline bytes of one stored state (what a copy of it holds).
std::uint64_t Engine::state_bytes(const State& st) {
  return sizeof(State) + st.frames.capacity() * sizeof(Frame) + st.refs.capacity() * sizeof(State::Ref) +
         st.hist.capacity() * sizeof(HistEntry);
}

// Checkpoints stay for the whole run (the parent chain needs them), pending
// branches until they are explored: the kernel allocates both, and fails
// the load with ENOMEM when it cannot.
void Engine::charge_states(std::uint64_t bytes) {
  state_bytes_ += bytes;
  out_.stats.peak_state_bytes = std::max(out_.stats.peak_state_bytes, state_bytes_);
  if (cfg_.memory_limit != 0 && state_bytes_ > cfg_.memory_limit)
    reject(ENOMEM, fmt::format("verifier memory limit exceeded: stored states need {} bytes, the limit is {} bytes "
                               "({} checkpoints, {} pending branches)",
                               state_bytes_, cfg_.memory_limit, nodes_.size(), stack_.size()));
}

bool Engine::prune_or_checkpoint(State& cur, std::size_t idx) {
  // Checkpoints are only added after at least 2 jumps and 8 instructions
  // since the previous one (the kernel's heuristic); checkpoints that keep
  // missing are dropped from the list (they stay alive for the parent chain).
  // A long jump history (> 40 entries) forces a checkpoint. While a loop is
  // being explored (a checkpoint at this insn still has pending branches),
  // new checkpoints need 20 jumps or 100 insns. Misses only count when a
  // checkpoint is about to be added.
  const bool force = cur.jmp_hist > 40 || calls_callback_[idx] || iter_next_[idx] || insns_[idx].op == Op::MayGoto;
  bool add = force || (jmps_ - prev_jmps_ >= 2 && out_.stats.processed - prev_insns_ >= 8);
  auto& list = explored_[idx];
  // fully explored checkpoints forget what no continuation reads (liveness.cpp)
  for (const std::uint32_t id : list) {
    Node& node = nodes_[id];
    if (node.branches != 0 || node.cleaned || node.st.frames.size() != cur.frames.size()) continue;
    bool same = true;
    for (std::size_t f = 1; f < cur.frames.size() && same; ++f)
      same = node.st.frames[f].callsite == cur.frames[f].callsite;
    if (!same) continue;
    clean_state(node.st, idx);
    node.cleaned = true;
  }
  for (std::size_t k = 0; k < list.size();) {
    Node& node = nodes_[list[k]];
    if (node.branches == 0) {
      if (states_equal(node.st, cur, Cmp::NotExact, live_regs_, idx)) {
        ++node.hit;
        // node.st is read before anything is marked; it is not on cur's
        // parent chain (those checkpoints still have branches)
        propagate_precision(cur, node.st);
        return true;
      }
    } else {
      if (insns_[idx].op == Op::MayGoto) {
        // another iteration that changed nothing the loop relies on
        if (node.st.may_goto_depth != cur.may_goto_depth &&
            states_equal(node.st, cur, Cmp::RangeWithin, live_regs_, idx)) {
          ++node.hit;
          return true;
        }
      } else if (iter_next_[idx]) {
        // an iterator loop converged: the same state again at iter_next with
        // the iterator still active (no infinite-loop check at this insn)
        if (states_equal(node.st, cur, Cmp::RangeWithin, live_regs_, idx) && iter_active(cur)) {
          ++node.hit;
          return true;
        }
      } else if (calls_callback_[idx]) {
        // a callback loop converged: the same state again at the helper call
        if (states_equal(node.st, cur, Cmp::RangeWithin, live_regs_, idx)) {
          ++node.hit;
          return true;
        }
      } else if (states_equal(node.st, cur, Cmp::Exact, live_regs_, idx)) {
        reject(EINVAL, fmt::format("infinite loop detected at insn {}", idx));
      }
      if (!force && jmps_ - prev_jmps_ < 20 && out_.stats.processed - prev_insns_ < 100) add = false;
    }
    if (add) ++node.miss;
    if (node.miss > node.hit * 3 + 3) {
      list.erase(list.begin() + static_cast<std::ptrdiff_t>(k));
      --explored_size_;
      continue;
    }
    ++k;
  }
  if (!add) return false;
  prev_jmps_ = jmps_;
  prev_insns_ = out_.stats.processed;
  Node node;
  node.idx = idx;
  node.hist = std::move(cur.hist);
  cur.hist.clear();
  cur.jmp_hist = 0;
  node.st = cur;
  node.parent = cur.parent;
  charge_states(sizeof(Node) - sizeof(State) + state_bytes(node.st) + node.hist.capacity() * sizeof(HistEntry));
  nodes_.push_back(std::move(node));
  const auto id = static_cast<std::uint32_t>(nodes_.size() - 1);
  list.push_back(id);
  cur.parent = id;
  // forget inherited precision marks: later needs are backtracked into the new checkpoint
  for (auto& f : cur.frames) {
    for (auto& r : f.regs) {
      r.written = false;
      r.precise = false;
    }
    for (auto& sl : f.stack) sl.spilled.precise = false;
  }
  ++out_.stats.total_states;
  ++explored_size_;
  out_.stats.peak_states = std::max(out_.stats.peak_states, explored_size_);
  out_.stats.max_states_per_insn =
      std::max(out_.stats.max_states_per_insn, static_cast<std::uint32_t>(list.size() - 1));
  return false;
}

// ---------------------------------------------------------------- the loop
void Engine::run() {
  pt_ = spec::prog_type(cfg_.prog_type);
  if (pt_ == nullptr) reject(EINVAL, fmt::format("unsupported program type {}", cfg_.prog_type));
  if (auto s = isa::check_structure(insns_); !s) {
    const Error& e = s.error();
    out_.error_insn = e.insn.value_or(0);
    reject(e.code == E2BIG && insns_.empty() ? EINVAL : e.code, e.message);
  }
  for (std::size_t pc = 0; pc < insns_.size(); ++pc) {
    if (insns_[pc].op != Op::LddwTail && !insns_[pc].info().in_kernel) {
      out_.error_insn = pc;
      reject(EINVAL, fmt::format("unknown opcode {:02x}", insns_[pc].info().opcode));
    }
  }
  for (std::size_t pc = 0; pc < insns_.size(); ++pc) {
    const isa::Insn& in = insns_[pc];
    if (in.op != Op::LddwTail && in.info().form == Form::Lddw && in.op != Op::Lddw) {
      out_.error_insn = pc;
      (void)resolve_lddw(in);
    }
  }
  check_kfunc_ids();
  check_cfg();
  compute_live_regs();
  explored_.assign(insns_.size(), {});
  ctx_fact_.assign(insns_.size(), 0);
  ptr_kind_.assign(insns_.size(), 0);
  access_.assign(insns_.size(), 0);

  // BTF signatures of global functions, by subprogram
  global_.assign(subprog_start_.size(), nullptr);
  called_.assign(subprog_start_.size(), false);
  for (const FuncSig& f : cfg_.funcs)
    for (std::size_t s = 1; s < subprog_start_.size(); ++s)
      if (f.global && subprog_start_[s] == f.insn) global_[s] = &f;

  if (cfg_.log_level >= 2) {
    for (std::size_t i = 0; i < subprog_start_.size(); ++i) log(fmt::format("func#{} @{}\n", i, subprog_start_[i]));
    log("Live regs before insn:\n");
    for (std::size_t pc = 0; pc < insns_.size(); ++pc) {
      if (insns_[pc].op == Op::LddwTail) continue;
      std::string regs(10, '.');
      for (unsigned r = 0; r < 10; ++r)
        if ((live_regs_[pc] & (1u << r)) != 0) regs[r] = static_cast<char>('0' + r);
      log(fmt::format("{:7}: {} {}\n", pc, regs, insn_str(insns_, pc, cfg_)));
    }
  }
  State main;
  main.frames.resize(1);
  Frame& f0 = main.frames[0];
  f0.regs[1].type = RegType::Ctx;
  f0.regs[1].var_off = Tnum::constant(0);
  f0.regs[1].smin = f0.regs[1].smax = 0;
  mark_known(f0.regs[10], 0);
  f0.regs[10].type = RegType::Stack;
  explore(std::move(main), 0);
  // Global functions the verified code calls are verified on their own,
  // from their BTF signature (the kernel's do_check_subprogs).
  for (bool again = true; again;) {
    again = false;
    for (std::size_t s = 1; s < subprog_start_.size(); ++s) {
      if (global_[s] == nullptr || !called_[s] || verified_.count(s) != 0) continue;
      verified_.insert(s);
      again = true;
      if (cfg_.log_level >= 1) log(fmt::format("Validating {}() func#{}...\n", global_[s]->name, s));
      explore(global_entry_state(s), subprog_start_[s]);
    }
  }
  check_stack_depths();
  finish();
}

State Engine::global_entry_state(std::size_t s) {
  const FuncSig& sig = *global_[s];
  State st;
  st.frames.resize(1);
  Frame& f = st.frames[0];
  f.subprog = static_cast<int>(s);
  mark_known(f.regs[10], 0);
  f.regs[10].type = RegType::Stack;
  for (std::size_t i = 0; i < sig.args.size() && i < 5; ++i) {
    Reg& r = f.regs[i + 1];
    switch (sig.args[i].kind) {
      case FuncArg::Kind::Scalar:
        mark_unknown(r);
        break;
      case FuncArg::Kind::Ctx:
        r = Reg{};
        r.type = RegType::Ctx;
        break;
      case FuncArg::Kind::Mem:
        r = Reg{};
        r.type = RegType::Mem;
        r.maybe_null = true;
        r.range = sig.args[i].size;
        r.id = new_id();
        break;
      case FuncArg::Kind::Unsupported:
        reject(EINVAL, fmt::format("Function {} has an argument of unsupported type '{}' (arg#{})", sig.name,
                                   sig.args[i].type, i));
    }
  }
  return st;
}

// The path of `cur` ended (exit or pruned): the next pending branch, if any.
bool Engine::next_branch(State& cur, std::size_t& idx, std::size_t& prev) {
  end_path(cur);
  if (stack_.empty()) return false;
  Pending p = pop_branch();
  if (cfg_.log_level == 1) out_.log.resize(p.log_pos);
  cur = std::move(p.st);
  idx = p.idx;
  prev = p.prev;
  live_update(cur);
  if (cfg_.log_level >= 2)
    log(fmt::format("\nfrom {} to {}: {}\n", prev, idx, frame_str(cur.cur(), cfg_, false)));
  else if (cfg_.log_level == 1)
    log(fmt::format(" {}: {}\n", idx, frame_str(cur.cur(), cfg_, false)));
  return true;
}

void Engine::explore(State cur, std::size_t idx) {
  std::size_t prev = idx;
  cur_live_ = ~std::size_t{0};
  if (cfg_.log_level >= 1) log(fmt::format("{}: {}\n", idx, frame_str(cur.cur(), cfg_, false)));
  for (;;) {
    cur_idx_ = idx;
    out_.error_insn = idx;
    if (++out_.stats.processed > cfg_.insn_limit)
      reject(E2BIG, fmt::format("BPF program is too large. Processed {} insn", out_.stats.processed));
    bool pruned = false;
    if (prune_point_[idx]) pruned = prune_or_checkpoint(cur, idx);
    if (pruned) {
      if (cfg_.log_level >= 2) log(fmt::format("{}: safe\n", idx));
      if (!next_branch(cur, idx, prev)) break;
      continue;
    }
    const std::size_t line_start = out_.log.size();
    if (cfg_.log_level >= 1) log(fmt::format("{}: {}", idx, insn_str(insns_, idx, cfg_)));
    const std::size_t frames_before = cur.frames.size();
    std::optional<Frame> before;  // for the log only: a Frame is ~9.6 KB, not built per insn otherwise
    if (cfg_.log_level >= 1) before.emplace(cur.cur());
    {
      const auto cls = isa::op_class(insns_[idx].op);
      if (insns_[idx].op != Op::LddwTail && (cls == isa::Class::Jmp || cls == isa::Class::Jmp32)) ++jmps_;
    }
    last_spi_ = -1;
    cur.hist.push_back(HistEntry{static_cast<std::uint32_t>(idx), -1, 0});
    live_writes_.fill(0);
    const std::size_t live_inst = cur_live_instance(cur);
    const long next = step(cur, idx);
    if (cur.frames.size() == frames_before) {
      live_commit_writes(live_inst, idx);
    } else {
      cur_live_ = ~std::size_t{0};
    }
    if (jmp_point_[idx] || last_spi_ >= 0) ++cur.jmp_hist;
    if (last_spi_ >= 0 && !cur.hist.empty() && cur.hist.back().idx == idx) {
      cur.hist.back().spi = last_spi_;
      cur.hist.back().frame = last_spi_frame_;
    }
    if (cfg_.log_level >= 1) {
      const isa::Insn& ci = insns_[idx];
      const isa::Form cf = ci.op == Op::LddwTail ? Form::Lddw : ci.info().form;
      unsigned read_mask = 0;
      if (cf == Form::AluX || cf == Form::MovSx || cf == Form::Ldx) read_mask |= 1u << ci.src;
      std::string diff =
          cur.frames.size() == frames_before && !isa::is_jump(cf) ? frame_diff_str(*before, cur.cur(), cfg_, read_mask) : "";
      if (!diff.empty()) {
        // pad like the kernel's vlog_alignment: the ';' lands at column 40 (or the next multiple of 8)
        const std::size_t pos = out_.log.size() - line_start;
        const std::size_t col = ((std::max<std::size_t>(pos + 4, 40) + 7) / 8) * 8;
        log(std::string(col - pos - 2, ' ') + ";" + diff);
      }
      log("\n");
    }
    if (next < 0) {
      if (!next_branch(cur, idx, prev)) break;
      continue;
    }
    prev = idx;
    idx = static_cast<std::size_t>(next);
  }
}

void Engine::finish() {
  for (auto d : depth_) out_.stack_depth.push_back(static_cast<std::uint32_t>(d));
  for (const auto& cs : callees_) {
    std::vector<std::size_t> c(cs.begin(), cs.end());
    std::sort(c.begin(), c.end());
    c.erase(std::unique(c.begin(), c.end()), c.end());
    out_.callees.push_back(std::move(c));
  }
  for (std::size_t pc = 0; pc < insns_.size(); ++pc)
    if (access_[pc] > 0)
      out_.facts.push_back(Fact{pc, FactKind::SafeAccess, insns_[pc].off, isa::access_size(insns_[pc].op)});
}

// ---------------------------------------------------------------- one instruction
long Engine::step(State& st, std::size_t idx) {
  const isa::Insn& in = insns_[idx];
  const Form f = in.info().form;
  switch (f) {
    case Form::AluK: case Form::AluX: case Form::Neg: case Form::End: case Form::MovSx:
      do_alu(st, in);
      return static_cast<long>(idx + 1);
    case Form::Ldx: case Form::St: case Form::Stx:
      do_mem(st, idx, in);
      return static_cast<long>(idx + 1);
    case Form::Atomic: case Form::LoadAcq: case Form::StoreRel:
      do_atomic(st, idx, in);
      return static_cast<long>(idx + 1);
    case Form::LdAbs: case Form::LdInd:
      do_ld_abs(st, in);
      return static_cast<long>(idx + 1);
    case Form::Lddw:
      do_lddw(st, idx, in);
      return static_cast<long>(idx + 2);
    case Form::Ja: case Form::Gotol:
      return static_cast<long>(isa::jump_target(in, idx));
    case Form::JmpK: case Form::JmpX: case Form::MayGoto:
      return do_jump(st, idx, in);
    case Form::Call:
      do_helper_call(st, idx, in);
      return static_cast<long>(idx + 1);
    case Form::CallLocal:
      return do_call_local(st, idx, in);
    case Form::CallKfunc:
      do_kfunc_call(st, idx, in);
      return static_cast<long>(idx + 1);
    case Form::Callx:
      reject(EINVAL, fmt::format("unknown opcode {:02x}", in.info().opcode));
    case Form::Exit:
      return do_exit(st, idx);
  }
  reject(EINVAL, fmt::format("unknown insn class at {}", idx));
}

// The map a pseudo lddw names, checked before any path is explored (the
// kernel's resolve_pseudo_ldimm64).
int Engine::resolve_lddw(const isa::Insn& in) {
  if (in.op == Op::LddwBtfId) reject(EINVAL, "kernel BTF is not available for BPF_PSEUDO_BTF_ID");
  if (in.op == Op::LddwFunc) return -1;
  const bool by_idx = in.op == Op::LddwMapIdx || in.op == Op::LddwMapIdxVal;
  int m = -1;
  for (std::size_t i = 0; i < cfg_.maps.size(); ++i) {
    const bool match = by_idx || cfg_.maps[i].fd < 0 ? static_cast<std::int64_t>(i) == in.imm
                                                     : cfg_.maps[i].fd == in.imm;
    if (match) { m = static_cast<int>(i); break; }
  }
  if (m < 0) {
    if (by_idx) reject(EINVAL, fmt::format("fd_idx {} out of range", in.imm));
    reject(EBADF, fmt::format("fd {} is not pointing to valid bpf_map", in.imm));
  }
  if (cfg_.maps[static_cast<std::size_t>(m)].spin_lock_off >= 0) {
    // the kernel's check_map_prog_compatibility
    const std::uint32_t t = cfg_.prog_type;
    if (t == BPF_PROG_TYPE_SOCKET_FILTER) reject(EINVAL, "socket filter progs cannot use bpf_spin_lock yet");
    if (t == BPF_PROG_TYPE_KPROBE || t == BPF_PROG_TYPE_TRACEPOINT || t == BPF_PROG_TYPE_PERF_EVENT ||
        t == BPF_PROG_TYPE_RAW_TRACEPOINT || t == BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE)
      reject(EINVAL, "tracing progs cannot use bpf_spin_lock yet");
  }
  check_timer_prog_type(cfg_.maps[static_cast<std::size_t>(m)]);  // timers.cpp
  if (in.op == Op::LddwMapFd || in.op == Op::LddwMapIdx) return m;
  const MapDesc& md = cfg_.maps[static_cast<std::size_t>(m)];
  const spec::MapType* mt = spec::map_type(md.type);
  if (mt == nullptr || !mt->value_null_key_const)
    reject(EINVAL, "no direct value access support for this map type");
  if (in.imm_hi < 0 || static_cast<std::uint32_t>(in.imm_hi) >= md.value_size)
    reject(EACCES, fmt::format("invalid access to map value pointer, value_size={} off={}", md.value_size,
                               static_cast<std::uint32_t>(in.imm_hi)));
  return m;
}

void Engine::do_lddw(State& st, std::size_t idx, const isa::Insn& in) {
  check_write(in.dst);
  Reg& d = reg(st, in.dst);
  if (in.op == Op::Lddw) {
    mark_known(d, in.imm64());
    return;
  }
  const int m = resolve_lddw(in);
  d = Reg{};
  d.written = true;
  if (in.op == Op::LddwFunc) {
    // callbacks need the program's BTF (func_info), as in the kernel
    if (cfg_.funcs.empty()) reject(EINVAL, "missing btf func_info");
    d.type = RegType::Func;
    d.func = subprog_of_[static_cast<std::size_t>(static_cast<std::int64_t>(idx) + 1 + in.imm)];
    return;
  }
  d.map = m;
  if (in.op == Op::LddwMapFd || in.op == Op::LddwMapIdx) {
    d.type = RegType::ConstMapPtr;
    return;
  }
  d.type = RegType::MapValue;
  d.off = in.imm_hi;
}

long Engine::do_jump(State& st, std::size_t idx, const isa::Insn& in) {
  const auto target = static_cast<std::size_t>(isa::jump_target(in, idx));
  if (in.info().form == Form::MayGoto) {
    // As Linux 6.18: the path leaves the loop (jump taken); one more
    // iteration (fall-through) is queued with a deeper may_goto count, its
    // imprecise scalars widened against the loop's entry checkpoint.
    State body = st;
    ++body.may_goto_depth;
    // the loop's previous entry (the kernel's find_prev_entry)
    if (const State* prev = find_prev_entry(st, idx)) widen_imprecise(body, *prev);
    push_branch(std::move(body), idx + 1, idx);
    return static_cast<long>(target);
  }
  const bool is32 = isa::op_class(in.op) == isa::Class::Jmp32;
  const auto cond = static_cast<isa::sem::Cond>(isa::op_code(in.op));
  check_read(st, in.dst);
  Reg src;
  const bool src_is_reg = in.info().form == Form::JmpX;
  if (src_is_reg) {
    check_read(st, in.src);
    src = reg(st, in.src);
  } else {
    mark_known(src, is32 ? static_cast<std::uint32_t>(in.imm) : isa::sem::imm64(in.imm));
  }
  const Reg dst = reg(st, in.dst);
  if (!cfg_.privileged && (dst.is_pointer() || src.is_pointer()) &&
      !(dst.maybe_null && src.type == RegType::Scalar && src.var_off.equals_const(0)) &&
      !(dst.is_pkt() || dst.type == RegType::PacketEnd))
    reject(EACCES, fmt::format("R{} pointer comparison prohibited", src.is_pointer() && !dst.is_pointer() ? in.src : in.dst));

  int taken = branch_taken(dst, src, cond, is32);
  if (taken >= 0) {
    if (dst.type == RegType::Scalar) mark_precise(st, in.dst);
    if (src_is_reg && src.type == RegType::Scalar) mark_precise(st, in.src);
  }
  if (taken == 1) return static_cast<long>(target);
  if (taken == 0) return static_cast<long>(idx + 1);

  State other = st;  // the taken branch
  // null checks: ptr_or_null ==/!= 0
  if (!is32 && dst.maybe_null && src.type == RegType::Scalar && src.var_off.equals_const(0) &&
      (cond == isa::sem::Cond::Eq || cond == isa::sem::Cond::Ne) && dst.id != 0) {
    const bool taken_is_null = cond == isa::sem::Cond::Eq;
    mark_ptr_or_null(other, dst.id, taken_is_null);
    mark_ptr_or_null(st, dst.id, !taken_is_null);
  } else if (!is32 && (dst.is_pkt() || dst.type == RegType::PacketEnd) &&
             (src.is_pkt() || src.type == RegType::PacketEnd)) {
    using C = isa::sem::Cond;
    const bool d_pkt = dst.type == RegType::Packet && src.type == RegType::PacketEnd;
    const bool d_end = dst.type == RegType::PacketEnd && src.type == RegType::Packet;
    const bool d_meta = dst.type == RegType::PacketMeta && src.type == RegType::Packet && src.off == 0 &&
                        src.var_off.equals_const(0);
    const bool s_meta = dst.type == RegType::Packet && dst.off == 0 && dst.var_off.equals_const(0) &&
                        src.type == RegType::PacketMeta;
    const bool left = d_pkt || d_meta, right = d_end || s_meta;
    switch (cond) {
      case C::Gt:
        if (left) find_good_pkt_pointers(st, dst, false);
        else if (right) find_good_pkt_pointers(other, src, true);
        break;
      case C::Lt:
        if (left) find_good_pkt_pointers(other, dst, true);
        else if (right) find_good_pkt_pointers(st, src, false);
        break;
      case C::Ge:
        if (left) find_good_pkt_pointers(st, dst, true);
        else if (right) find_good_pkt_pointers(other, src, false);
        break;
      case C::Le:
        if (left) find_good_pkt_pointers(other, dst, false);
        else if (right) find_good_pkt_pointers(st, src, true);
        break;
      case C::Eq: case C::Ne: case C::Set: case C::Sgt: case C::Sge: case C::Slt: case C::Sle:
        break;
    }
  } else if (dst.type == RegType::Scalar && src.type == RegType::Scalar) {
    Reg td = dst, ts = src, fd = dst, fs = src;
    refine(td, ts, cond, is32, true);
    refine(fd, fs, cond, is32, false);
    const bool t_dead = bounds_empty(td) || bounds_empty(ts);
    const bool f_dead = bounds_empty(fd) || bounds_empty(fs);
    if (!t_dead) {
      reg(other, in.dst) = td;
      if (src_is_reg) reg(other, in.src) = ts;
      sync_linked(other, td);
      if (src_is_reg) sync_linked(other, ts);
    }
    if (!f_dead) {
      reg(st, in.dst) = fd;
      if (src_is_reg) reg(st, in.src) = fs;
      sync_linked(st, fd);
      if (src_is_reg) sync_linked(st, fs);
    }
    if (t_dead != f_dead) {
      mark_precise(st, in.dst);
      if (src_is_reg) mark_precise(st, in.src);
      if (t_dead) return static_cast<long>(idx + 1);
    }
    if (f_dead && !t_dead) {
      st = std::move(other);
      return static_cast<long>(target);
    }
  }
  push_branch(std::move(other), target, idx);
  return static_cast<long>(idx + 1);
}

long Engine::do_call_local(State& st, std::size_t idx, const isa::Insn& in) {
  if (st.frames.size() >= static_cast<std::size_t>(kMaxFrames))
    reject(E2BIG, fmt::format("the call stack of {} frames is too deep !", st.frames.size() + 1));
  const auto target = static_cast<std::size_t>(static_cast<std::int64_t>(idx) + 1 + in.imm);
  const auto sub = static_cast<std::size_t>(subprog_of_[target]);
  if (global_[sub] != nullptr) {
    if (st.lock_map >= 0)
      reject(EINVAL, "global function calls are not allowed while holding a lock,\nuse static function instead");
    return call_global(st, idx, sub);
  }
  Frame callee;
  callee.callsite = static_cast<int>(idx);
  callee.subprog = subprog_of_[target];
  callee.frameno = static_cast<int>(st.frames.size());
  for (unsigned r = 1; r <= 5; ++r) callee.regs[r] = st.cur().regs[r];
  mark_known(callee.regs[10], 0);
  callee.regs[10].type = RegType::Stack;
  callee.regs[10].frameno = callee.frameno;
  // caller-saved registers are clobbered in the caller on return; the
  // caller's r1-r5 stay visible to the callee through its own copy
  for (unsigned r = 0; r <= 5; ++r) mark_not_init(st.cur().regs[r]);
  st.frames.push_back(std::move(callee));
  if (cfg_.log_level >= 1)
    log(fmt::format("\ncaller:\n {}\ncallee:\n {}", frame_str(st.frames[st.frames.size() - 2], cfg_, false),
                    frame_str(st.cur(), cfg_, false)));
  return static_cast<long>(target);
}

// A call of a global function: the arguments are checked against its BTF
// signature (the kernel's btf_check_subprog_call), the body is verified on
// its own later, and the caller sees an unknown scalar.
long Engine::call_global(State& st, std::size_t idx, std::size_t sub) {
  const FuncSig& sig = *global_[sub];
  auto invalid = [&](const std::string& why) {
    reject(EINVAL, fmt::format("{}\nCaller passes invalid args into func#{} ('{}')", why, sub, sig.name));
  };
  for (std::size_t i = 0; i < sig.args.size() && i < 5; ++i) {
    const auto regno = static_cast<unsigned>(i + 1);
    const Reg r = reg(st, regno);
    switch (sig.args[i].kind) {
      case FuncArg::Kind::Scalar:
        if (r.type != RegType::Scalar) invalid(fmt::format("R{} is not a scalar", regno));
        break;
      case FuncArg::Kind::Ctx:
        if (r.type != RegType::Ctx) invalid(fmt::format("arg#{} expects pointer to ctx", i));
        if (r.off != 0 || !r.var_off.equals_const(0))
          invalid(fmt::format("dereference of modified ctx ptr R{} off={} disallowed", regno, r.off));
        break;
      case FuncArg::Kind::Mem:
        if (r.type == RegType::Scalar && r.var_off.equals_const(0)) break;  // NULL is allowed
        if (r.maybe_null && r.is_pointer()) break;  // the callee must check it anyway
        try {
          check_helper_mem(st, regno, sig.args[i].size, false, false, nullptr);
        } catch (const Reject& e) {
          invalid(e.message);
        }
        break;
      case FuncArg::Kind::Unsupported:
        invalid(fmt::format("arg#{} has an unsupported type '{}'", i, sig.args[i].type));
    }
  }
  if (cfg_.log_level >= 1) log(fmt::format("\nFunc#{} ('{}') is global and assumed valid.", sub, sig.name));
  called_[sub] = true;
  callees_[static_cast<std::size_t>(subprog_of_[idx])].push_back(static_cast<int>(sub));
  for (unsigned r = 1; r <= 5; ++r) mark_not_init(reg(st, r));
  Reg& r0 = reg(st, 0);
  mark_unknown(r0);
  r0.written = true;
  return static_cast<long>(idx + 1);
}

long Engine::do_exit(State& st, std::size_t idx) {
  (void)idx;
  const Reg& r0 = reg(st, 0);
  // Linux 6.18 hands an uninitialised r0 of a static subprogram back to the
  // caller; the caller's use of it is what fails
  if (st.frames.size() == 1 && st.lock_map >= 0)
    reject(EINVAL, "BPF_EXIT instruction in main prog cannot be used inside bpf_spin_lock-ed region");
  if (st.frames.size() == 1 && !st.refs.empty())
    reject(EINVAL, fmt::format("Unreleased reference id={} alloc_insn={}\nBPF_EXIT instruction in main prog would "
                               "lead to reference leak", st.refs[0].id, st.refs[0].insn));
  if (st.frames.size() == 1 && st.active_rcu != 0)
    reject(EINVAL, "BPF_EXIT instruction in main prog cannot be used inside bpf_rcu_read_lock-ed region");
  if (r0.type == RegType::NotInit && st.frames.size() == 1) reject(EACCES, "R0 !read_ok");
  if (st.frames.size() > 1) {
    if (r0.type == RegType::Stack && r0.frameno == static_cast<int>(st.frames.size()) - 1)
      reject(EINVAL, "cannot return stack pointer to the caller");
    if (st.cur().in_callback) return callback_exit(st);
    live_update(st);  // the callee's stack marks reach its callers (the kernel's prepare_func_exit)
    Reg ret = r0;
    const int callsite = st.cur().callsite;
    const std::string callee = cfg_.log_level >= 1 ? frame_str(st.cur(), cfg_, false) : std::string();
    st.frames.pop_back();
    st.cur().regs[0] = ret;
    st.cur().regs[0].written = true;
    if (cfg_.log_level >= 1)
      log(fmt::format("\nreturning from callee:\n {}\nto caller at {}:\n {}", callee, callsite + 1,
                      frame_str(st.cur(), cfg_, false)));
    return callsite + 1;
  }
  if (st.cur().in_async_callback) return async_callback_exit(st);  // timers.cpp
  if (st.cur().subprog != 0) {
    // a global function verified on its own returns a scalar to any caller
    if (r0.type != RegType::Scalar)
      reject(EINVAL, fmt::format("At subprogram exit the register R0 is not a scalar value ({})", reg_type_str(r0)));
    return -1;
  }
  if (!cfg_.privileged && r0.is_pointer()) reject(EACCES, "R0 leaks addr as return value");
  if (pt_->ret.checked) {
    if (r0.type == RegType::Scalar) mark_precise(st, 0);
    if (r0.type != RegType::Scalar)
      reject(EINVAL, fmt::format("At program exit the register R0 is not a known value ({})", reg_type_str(r0)));
    if (r0.smin < pt_->ret.min || r0.smax > pt_->ret.max) bad_return("At program exit", r0, pt_->ret.min, pt_->ret.max);
  }
  return -1;
}

void Engine::note_stack_depth(const State& st, const Reg& r, std::int64_t lowest) {
  const Frame& f = st.frames[static_cast<std::size_t>(r.frameno)];
  const auto sp = static_cast<std::size_t>(f.subprog);
  depth_[sp] = std::max(depth_[sp], -lowest);
}

void Engine::check_stack_depths() {
  // Longest chain of frames through the static call graph; each frame's
  // depth is rounded up to 16 as for a JIT-ed program.
  const std::size_t n = subprog_start_.size();
  std::vector<std::int64_t> memo(n, -1);
  std::int64_t worst = 0;
  std::size_t worst_frames = 1;
  std::function<void(std::size_t, std::int64_t, std::size_t)> walk = [&](std::size_t s, std::int64_t acc,
                                                                          std::size_t frames) {
    const std::int64_t d = acc + ((depth_[s] + 15) / 16) * 16;
    if (d > worst) { worst = d; worst_frames = frames; }
    if (d > kStackSize) reject(EACCES, fmt::format("combined stack size of {} calls is {}. Too large", frames, d));
    if (frames > static_cast<std::size_t>(kMaxFrames)) return;
    for (const int c : callees_[s]) walk(static_cast<std::size_t>(c), d, frames + 1);
  };
  walk(0, 0, 1);
  (void)worst_frames;
  (void)memo;
}

}  // namespace detail

namespace {

std::string stats_line(const Stats& s) {
  return fmt::format("processed {} insns (limit 1000000) max_states_per_insn {} total_states {} peak_states {} "
                     "mark_read {}\n",
                     s.processed, s.max_states_per_insn, s.total_states, s.peak_states, s.mark_read);
}

}  // namespace

Verdict verify(std::span<const isa::Insn> insns, const Config& cfg) {
  Verdict v;
  Engine e(insns, cfg, v);
  try {
    e.run();
    v.accepted = true;
    v.err = 0;
    if (cfg.log_level == 1) v.log.clear();  // the kernel keeps only the summary for accepted programs
  } catch (const Reject& r) {
    v.accepted = false;
    v.err = r.err;
    v.message = r.message;
    if (!v.log.empty() && v.log.back() != '\n') v.log += '\n';
    v.log += r.message + "\n";
    v.facts.clear();
  }
  if (cfg.log_level > 0 || !v.accepted) v.log += stats_line(v.stats);
  if (cfg.log_level == 0 && !v.accepted) v.log = v.message + "\n";
  return v;
}

Verdict verify_raw(std::span<const isa::RawInsn> raw, const Config& cfg) {
  isa::DecodeOptions opts;
  opts.kernel_only = true;
  auto dec = isa::decode(raw, opts);
  if (!dec) {
    Verdict v;
    v.err = dec.error().code;
    v.message = dec.error().message;
    v.error_insn = dec.error().insn.value_or(0);
    v.log = v.message + "\n";
    return v;
  }
  return verify(*dec, cfg);
}

}  // namespace userbpf::verifier
