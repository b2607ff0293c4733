// bpf_timer in the runtime: the timer thread's lifetime and how a timer
// callback runs (helpers::AsyncRunner). The helpers and the thread are in
// src/helpers/timer.cpp; docs/timers.md describes the whole feature.
//
// The Runtime makes its helpers::TimerService on the first run of a program
// that calls a timer helper (ProgObject::uses_timers, found at load) and
// destroys it first in ~Runtime, so no callback runs while objects go away.
//
// Running a callback. The engines run a program from its first instruction,
// and a callback is a function inside it. A callback's entry code is the
// program's executable instructions preceded by one instruction,
//     goto <callback>      (ja, or gotol when the offset needs 32 bits)
// so every relative jump and call of the program is unchanged and the
// callback's body runs as the run's frame 0 with r1-r3 = (map, key, value),
// as the kernel's async callbacks do (a new verifier state whose only frame
// is the callback): it may nest 7 more bpf-to-bpf frames, and its `exit`
// ends the run with its r0. The jump leaves the function of pc 0, so both
// engines take the entry code without the kernel's structural rules
// (kernel_structure = false: only in-range targets); the JIT then compiles
// it without its per-function facts (run-time depth checks, every r6-r9
// saved, no inlined calls or array lookups), which costs a few ns per call
// in the callback only.
// The code is made (and JIT-compiled when the runtime uses the JIT) once
// per program and callback, on first use, and cached in the ProgObject.
// func_addr values computed inside the entry code are 1 higher than the
// program's own; the run's RunState::func_base = 1 lets
// bpf_timer_set_callback store callbacks in the program's own numbering.
//
// The callback's run: a fresh Env and RunState (the program's maps, a CPU
// slot, the trace sink, the timer service), checked when the program was
// loaded unverified (regions: the maps' elements and the key copy). Its r0
// is ignored; a fault ends the callback and is written to the trace sink.
#include <fmt/format.h>
#include <linux/bpf.h>

#include <algorithm>
#include <limits>

#include "runtime/internal.hpp"
#include "runtime/runtime.hpp"

namespace userbpf::runtime {

bool is_timer_helper(std::int32_t id) {
  return id == BPF_FUNC_timer_init || id == BPF_FUNC_timer_set_callback || id == BPF_FUNC_timer_start ||
         id == BPF_FUNC_timer_cancel;
}

struct ProgObject::CallbackEntry {
  std::unique_ptr<interp::Program> interp;
  std::unique_ptr<jit::Program> jitted;
};

namespace {
constexpr std::uint64_t kEntryInsns = 1;  // goto <callback>
}

struct Runtime::TimerRunner final : helpers::AsyncRunner {
  explicit TimerRunner(Runtime& r) : rt(r) {}
  Runtime& rt;

  std::shared_ptr<const void> hold(const void* prog) override {
    const auto* p = static_cast<const ProgObject*>(prog);
    if (p == nullptr) return nullptr;
    return rt.by_id(ObjKind::Prog, p->id);
  }

  Result<std::shared_ptr<ProgObject::CallbackEntry>> entry(const ProgObject& p, std::uint64_t fn) {
    std::lock_guard lk(p.entry_mu);
    for (const auto& [f, e] : p.callback_entries)
      if (f == fn) return e;
    const std::span<const isa::Insn> code = p.exec->insns();
    const std::size_t pc = abi::func_pc(fn);
    if (pc >= code.size()) return make_error(EINVAL, fmt::format("timer callback at insn {} is outside the program", pc));
    std::vector<isa::Insn> v;
    v.reserve(code.size() + kEntryInsns);
    // the jump at 0 reaches program pc `pc` at pc + kEntryInsns: offset pc
    if (pc <= static_cast<std::size_t>(std::numeric_limits<std::int16_t>::max()))
      v.push_back(isa::make(isa::Op::Ja, 0, 0, static_cast<std::int16_t>(pc)));
    else
      v.push_back(isa::make(isa::Op::Gotol, 0, 0, 0, static_cast<std::int32_t>(pc)));
    v.insert(v.end(), code.begin(), code.end());
    auto e = std::make_shared<ProgObject::CallbackEntry>();
    // the jump leaves pc 0's function: both engines take the code without
    // the kernel's structural rules (only in-range targets)
    interp::LoadOptions lo;
    lo.kernel_structure = false;
    auto ip = interp::Program::create(v, lo);
    if (!ip) return ip.error();
    e->interp = std::make_unique<interp::Program>(std::move(*ip));
    if (p.jitted) {
      jit::Options jo = p.jitted->options();
      jo.proven_safe.clear();
      jo.kernel_structure = false;
      jo.map_lookups.clear();  // rewritten lookups need the structural rules
      auto jp = jit::Program::compile(v, jo);
      if (!jp) return jp.error();
      e->jitted = std::make_unique<jit::Program>(std::move(*jp));
    }
    p.callback_entries.emplace_back(fn, e);
    return e;
  }

  std::uint64_t run_function(const void* prog, std::uint64_t fn, std::uint64_t r1, std::uint64_t r2,
                             std::uint64_t r3, std::span<const abi::Region> extra) override {
    const auto* p = static_cast<const ProgObject*>(prog);
    auto e = entry(*p, fn);
    helpers::TraceSink& sink = rt.options().trace != nullptr ? *rt.options().trace : helpers::stderr_sink();
    if (!e) {
      sink.write(fmt::format("userbpf: prog '{}': timer callback: {}\n", p->name, e.error().to_string()));
      return 0;
    }
    maps::CpuSlots::Guard guard(&rt.cpu_slots());
    helpers::RunState st;
    st.cpu = &guard;
    st.trace = rt.options().trace;
    st.prog_type = p->type;
    st.maps = p->map_ptrs;
    st.prog = p;
    st.timers = rt.timers_.get();
    st.func_base = kEntryInsns;
    abi::Env env;
    env.helpers = &rt.helper_table();
    env.options.checked = rt.options().checked && !p->verified;
    env.options.budget = rt.options().budget;
    env.user = &st;
    if (env.options.checked) {
      for (maps::Map* m : p->map_ptrs) {
        const auto s = m->program_area();
        if (s.empty()) continue;
        env.regions.push_back(abi::Region{reinterpret_cast<std::uint64_t>(s.data()), s.size(),
                                          (m->map_flags() & BPF_F_RDONLY_PROG) == 0, abi::RegionKind::MapValue});
      }
      env.regions.insert(env.regions.end(), extra.begin(), extra.end());
    }
    const std::uint64_t args[3] = {r1, r2, r3};
    const abi::RunResult res = (*e)->jitted ? (*e)->jitted->run(env, args) : (*e)->interp->run(env, args);
    if (!res.ok() && res.error)
      sink.write(fmt::format("userbpf: prog '{}': timer callback: {}\n", p->name, res.error->to_string()));
    return res.r0;
  }
};

helpers::TimerService* Runtime::timer_service() {
  std::lock_guard lk(timer_mu_);
  if (!timers_) {
    timer_runner_ = std::make_unique<TimerRunner>(*this);
    timers_ = std::make_unique<helpers::TimerService>(*timer_runner_);
  }
  return timers_.get();
}

void Runtime::stop_timers() {
  std::unique_ptr<helpers::TimerService> t;
  {
    std::lock_guard lk(timer_mu_);
    t = std::move(timers_);
  }
  t.reset();  // joins the thread; releases the programs the timers held
}

}  // namespace userbpf::runtime
