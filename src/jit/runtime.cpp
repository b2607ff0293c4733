// Run-time stubs of the x86-64 JIT: the C side of slow paths (checked
// accesses, LD_ABS/LD_IND, helper dispatch by id, callx resolution, helper
// signals, callbacks). Generated code calls them with the State in the
// first argument; the contracts are in the design comment of jit.cpp.
#include "jit/state.hpp"

namespace userbpf::jit::detail {

namespace {
// Checked mode: the live stack is [fp - 512, top) (the current frame and its
// callers'), as in the interpreter; the Stack region in env.regions follows it.
u64 live_stack_lo(const State* st, u64 rbp) { return (st->writes_r10 ? st->fp : rbp) - kFrameSize; }
void update_stack_region(State* st, u64 lo) {
  if (st->region_index < st->env->regions.size()) {
    abi::Region& r = st->env->regions[st->region_index];
    r.start = lo;
    r.size = st->stack_top - lo;
  }
}

}  // namespace

void set_fault(State* st, abi::Fault f, u64 pc) {
  st->fault = static_cast<u8>(f);
  st->fault_pc = static_cast<u32>(pc);
  st->stop = 1;
}

// ---------------------------------------------------------------- run-time stubs (called from JIT code)
// info = size | write << 8; rbp = the BPF r10 register. Returns 0 (and
// records the fault) on a violation.
u64 rt_check_access(State* st, u64 addr, u64 info, u64 pc, u64 rbp) {
  const u64 size = info & 0xff;
  const bool write = (info >> 8) != 0;
  const u64 lo = live_stack_lo(st, rbp);
  if (addr - lo <= st->stack_top - lo - size) return 1;
  update_stack_region(st, lo);
  if (st->env->find_region(addr, size, write) != nullptr) return 1;
  set_fault(st, abi::Fault::MemoryViolation, pc);
  st->fault_addr = addr;
  st->fault_size = size;
  st->fault_write = write ? 1 : 0;
  return 0;
}

// LD_ABS / LD_IND: big-endian load from env.packet; out of range ends the run
// with r0 = 0. The offset is 32-bit ((u32)src + (u32)imm) and negative as an
// s32 means out of range (the kernel's SKF_* areas have no meaning here).
u64 rt_ld_packet(State* st, u64 src, u64 imm, u64 size_pc) {
  const u64 size = size_pc & 0xff;
  const u32 off = static_cast<u32>(src) + static_cast<u32>(imm);
  const abi::Env& env = *st->env;
  if (static_cast<s32>(off) < 0 || env.packet == nullptr || off + size > env.packet_len) {
    st->r0 = 0;
    st->stop = 1;
    return 0;
  }
  u64 v = 0;
  for (u64 i = 0; i < size; ++i) v = (v << 8) | env.packet[off + i];
  return v;
}

// Helper/kfunc call resolved at run time: id in st->call_id. st->r0 holds r0
// before the call (kept as the result if the id is unknown).
u64 rt_dispatch(State* st, u64 r1, u64 r2, u64 r3, u64 r4, u64 r5) {
  abi::Env& env = *st->env;
  const abi::Helper* h = nullptr;
  if (env.helpers != nullptr) h = st->call_kfunc ? env.helpers->find_kfunc(st->call_id) : env.helpers->find(st->call_id);
  if (h == nullptr) {
    st->fault = static_cast<u8>(abi::Fault::UnknownHelper);
    st->fault_id = st->call_id;
    st->fault_kfunc = st->call_kfunc;
    st->stop = 1;
    return st->r0;
  }
  if (st->region_index != kNoRegion) update_stack_region(st, st->fp - kFrameSize);
  const u64 r = h->fn(env, r1, r2, r3, r4, r5);
  if (env.failed() || env.exit_requested() || env.callback_aborted()) st->stop = 1;
  return r;
}

// callx: returns the code address to call and sets st->callx_kind, or 0 after
// recording the fault. Values that fit 32 bits are helper ids; otherwise an
// abi::func_addr of a function start.
u64 rt_resolve_callx(State* st, u64 value, u64 pc) {
  const CodeInfo& ci = *st->code;
  if (value <= std::numeric_limits<u32>::max()) {
    const abi::Helper* h = st->env->helpers != nullptr ? st->env->helpers->find(static_cast<u32>(value)) : nullptr;
    if (h == nullptr) {
      set_fault(st, abi::Fault::UnknownHelper, pc);
      st->fault_id = static_cast<u32>(value);
      st->fault_kfunc = 0;
      return 0;
    }
    if (st->region_index != kNoRegion) update_stack_region(st, st->fp - kFrameSize);
    st->callx_kind = 1;
    return reinterpret_cast<u64>(h->fn);
  }
  if (abi::is_func_addr(value)) {
    const std::size_t t = abi::func_pc(value);
    if (t < ci.entry_offset.size() && ci.entry_offset[t] != kNoEntry) {
      st->callx_kind = 0;
      return reinterpret_cast<u64>(ci.base + ci.entry_offset[t]);
    }
  }
  set_fault(st, abi::Fault::BadCallTarget, pc);
  st->fault_addr = value;
  return 0;
}

// After a helper signalled (or a dispatch fault): decide how the run ends.
// st->r0 already holds r0 (the helper's return value).
void rt_finish_signal(State* st, u64 pc) {
  if (st->cb_aborted != 0) {  // a callback run ended the run: its result stands
    st->r0 = st->cb_r0;
    return;
  }
  if (st->fault != 0) {  // already recorded (unknown helper at run time)
    st->fault_pc = static_cast<u32>(pc);
    return;
  }
  const abi::Env& env = *st->env;
  if (env.failed()) {
    set_fault(st, abi::Fault::HelperFailed, pc);
  } else if (env.exit_requested()) {
    st->r0 = env.exit_value();
    st->stop = 1;
  }
}

// abi::Env::call_function from a helper: runs the function at `fn` on the
// frame below the helper's caller (st->fp, stored before every helper call),
// through the trampoline, with a fresh may_goto counter and r0, r6-r9 = 0 as
// in the interpreter. The nested run shares the State (budget, faults); its
// own saved_rsp makes `abort` return here. If it ends the run (fault, unwind
// helper, LD_ABS out of range), its result is kept (cb_aborted, cb_r0) and
// the helper's caller ends the run after the helper returns.
u64 rt_callback(abi::Env& env, u64 fn, u64 r1, u64 r2, u64 r3, u64 r4, u64 r5) {
  auto* st = static_cast<State*>(env.engine);
  if (st->cb_aborted != 0) {  // the helper called again after an abort
    env.set_callback_aborted();
    return 0;
  }
  const CodeInfo& ci = *st->code;
  const u64 fp = st->fp;
  auto abort_run = [&](abi::Fault f) {
    set_fault(st, f, st->call_pc);
    st->fault_addr = fn;
    st->r0 = 0;
    st->cb_r0 = 0;
    st->cb_aborted = 1;
    env.set_callback_aborted();
    return u64{0};
  };
  const std::size_t t = abi::func_pc(fn);
  if (!abi::is_func_addr(fn) || t >= ci.entry_offset.size() || ci.entry_offset[t] == kNoEntry)
    return abort_run(abi::Fault::BadCallTarget);
  if (fp < st->min_call_rbp) return abort_run(abi::Fault::CallDepth);
  const u64 saved_rsp = st->saved_rsp;
  const u32 call_pc = st->call_pc;
  const u64 callee_fp = fp - kFrameSize;
  st->fp = callee_fp;
  if (st->region_index != kNoRegion) update_stack_region(st, callee_fp - kFrameSize);
  const u64 args[5] = {r1, r2, r3, r4, r5};
  using EntryFn = void (*)(State*, const u64*, u64, const u8*);
  const auto entry = reinterpret_cast<EntryFn>(reinterpret_cast<std::uintptr_t>(ci.base + ci.trampoline_offset));
  entry(st, args, callee_fp, ci.base + ci.entry_offset[t]);
  st->saved_rsp = saved_rsp;
  st->call_pc = call_pc;
  st->fp = fp;
  if (st->region_index != kNoRegion) update_stack_region(st, fp - kFrameSize);
  if (st->stop != 0 || st->fault != 0) {
    st->cb_r0 = st->r0;
    st->cb_aborted = 1;
    env.set_callback_aborted();
    return 0;
  }
  return st->r0;
}

}  // namespace userbpf::jit::detail
