// Callbacks: helpers that call a subprogram of the program (bpf_loop,
// bpf_for_each_map_elem), verified as the kernel 6.18 does it.
//
// At the helper call the arguments are checked, then a state that enters
// the callback is pushed as a pending branch (a new frame whose registers
// are the helper's callback arguments, caller registers untouched) and the
// current path continues after the call as if the helper had returned
// (r0 an unknown scalar). When the callback exits, r0 must be a scalar in
// [0, 1]; the frame is popped and the path resumes AT the helper call,
// which runs again: another iteration is pushed and the path after the call
// continues. The helper call is a forced checkpoint; a state equal to a
// checkpoint still being explored there means the iterations converged
// (pruned, not an infinite loop). bpf_loop stops iterating once as many
// iterations as r1's maximum were started from the same state.
#include <fmt/format.h>

#include <limits>

#include "verifier/engine.hpp"

namespace userbpf::verifier::detail {

void Engine::bad_return(const char* where, const Reg& r0, std::int32_t min, std::int32_t max) {
  std::string m = fmt::format("{} the register R0 has", where);
  bool unknown = true;
  if (r0.smin > std::numeric_limits<s64>::min()) { m += fmt::format(" smin={}", r0.smin); unknown = false; }
  if (r0.smax < std::numeric_limits<s64>::max()) { m += fmt::format(" smax={}", r0.smax); unknown = false; }
  if (unknown) m += " unknown scalar value";
  m += fmt::format(" should have been in [{}, {}]", min, max);
  reject(EINVAL, m);
}

void Engine::push_callback(State& st, std::size_t idx, const spec::HelperProto& p, const CallMeta& meta) {
  const bool is_loop = p.id == static_cast<std::uint32_t>(spec::HelperId::loop);
  if (is_loop) {
    // the number of iterations decides when the loop ends: r1 is precise
    mark_precise(st, 1);
    if (st.cur().callback_depth >= reg(st, 1).umax) {
      st.cur().callback_depth = 0;
      if (cfg_.log_level >= 2) log(fmt::format("\nframe{} bpf_loop iteration limit reached", st.frames.size() - 1));
      return;
    }
  }
  if (st.frames.size() >= static_cast<std::size_t>(kMaxFrames))
    reject(E2BIG, fmt::format("the call stack of {} frames is too deep !", st.frames.size() + 1));
  const auto sub = static_cast<std::size_t>(meta.callback);
  callees_[static_cast<std::size_t>(subprog_of_[idx])].push_back(static_cast<int>(sub));
  State cb = st;
  ++cb.cur().callback_depth;
  st.cur().callback_depth = 0;
  const Frame& caller = cb.cur();
  Frame callee;
  callee.callsite = static_cast<int>(idx);
  callee.subprog = static_cast<int>(sub);
  callee.frameno = static_cast<int>(cb.frames.size());
  callee.in_callback = true;
  mark_known(callee.regs[10], 0);
  callee.regs[10].type = RegType::Stack;
  callee.regs[10].frameno = callee.frameno;
  if (is_loop) {
    // long (*callback)(u64 index, void *ctx)
    mark_unknown(callee.regs[1]);
    callee.regs[2] = caller.regs[3];
  } else {
    // long (*callback)(struct bpf_map *map, const void *key, void *value, void *ctx)
    set_map_elem_args(callee, meta.map);  // timers.cpp
    callee.regs[4] = caller.regs[3];
  }
  for (auto& r : callee.regs) r.written = true;
  cb.frames.push_back(std::move(callee));
  push_branch(cb, subprog_start_[sub], idx);
}

long Engine::callback_exit(State& st) {
  const Reg& r0 = reg(st, 0);
  if (r0.type != RegType::Scalar) reject(EACCES, "R0 not a scalar value");
  mark_precise(st, 0);
  if (r0.smin < 0 || r0.smax > 1) bad_return("At callback return", r0, 0, 1);
  live_update(st);
  const int callsite = st.cur().callsite;
  const std::string callee = cfg_.log_level >= 1 ? frame_str(st.cur(), cfg_, false) : std::string();
  st.frames.pop_back();
  if (cfg_.log_level >= 1)
    log(fmt::format("\nreturning from callee:\n {}\nto caller at {}:\n {}", callee, callsite,
                    frame_str(st.cur(), cfg_, false)));
  return callsite;  // the helper call runs again: the next iteration
}

}  // namespace userbpf::verifier::detail
