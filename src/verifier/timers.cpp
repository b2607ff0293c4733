// bpf_timer in the verifier, as Linux 6.18 checks it.
//
// A timer is the 16-byte `struct bpf_timer` of a map value (MapDesc::timer_off,
// found in the value's BTF). The helpers bpf_timer_init / set_callback /
// start / cancel take it as ARG_PTR_TO_TIMER (spec::ArgKind::Timer):
//   - a non-null map value pointer (else "R1 type=... expected=map_value"),
//     at a constant offset that is exactly the struct bpf_timer of a map with
//     BTF (the kernel's process_timer_func / check_map_field_pointer texts);
//   - bpf_timer_init's map argument must be the timer's own map ("timer
//     pointer in R1 map_uid=0 doesn't match map pointer in R2 map_uid=0";
//     userbpf has no inner-map uids, so both are 0 as for outer maps);
//   - loads and stores must not touch the timer's bytes ("bpf_timer cannot
//     be accessed directly by load/store");
//   - tracing program types cannot use a map with a timer (the kernel's
//     check_map_prog_compatibility).
//
// bpf_timer_set_callback's callback is asynchronous: as the kernel's
// push_async_cb, a new state whose only frame (frame 0) is the callback,
// with r1 = the map (CONST_PTR_TO_MAP), r2 = its key (PTR_TO_MAP_KEY), r3 =
// the value (PTR_TO_MAP_VALUE, offset 0), is pushed as a pending branch; the
// caller goes on after the call (r0 an unknown scalar). The callback's exit
// must return 0 ("At async callback return the register R0 has ... should
// have been in [0, 0]"). The call is a prune point (not a loop head, unlike
// bpf_loop: nothing returns to it).
#include <fmt/format.h>
#include <linux/bpf.h>

#include "verifier/engine.hpp"

namespace userbpf::verifier::detail {

namespace {
constexpr std::int64_t kTimerSize = 16;  // sizeof(struct bpf_timer)
}

bool Engine::is_async_callback_call(const isa::Insn& in) {
  return in.op == isa::Op::Call && in.imm == static_cast<std::int32_t>(spec::HelperId::timer_set_callback);
}

// The kernel's check_map_field_pointer: `r` (a map value) points exactly
// at the value's special field `name` (bpf_timer, bpf_spin_lock), which
// MapDesc has at `field_off` (-1: none).
void Engine::check_map_field_pointer(const Reg& r, unsigned regno, std::string_view name) {
  const MapDesc& md = cfg_.maps[static_cast<std::size_t>(r.map)];
  const std::int32_t field_off = name == "bpf_timer" ? md.timer_off : md.spin_lock_off;
  if (!r.var_off.is_const())
    reject(EINVAL, fmt::format("R{} doesn't have constant offset. {} has to be at the constant offset", regno, name));
  if (!md.btf) reject(EINVAL, fmt::format("map '{}' has to have BTF in order to use {}", md.name, name));
  if (field_off < 0) reject(EINVAL, fmt::format("map '{}' has no valid {}", md.name, name));
  const std::int64_t o = static_cast<std::int64_t>(r.var_off.value) + r.off;
  if (o != field_off) reject(EINVAL, fmt::format("off {} doesn't point to 'struct {}' that is at {}", o, name, field_off));
}

// The callback arguments of a map element: r1 = the map, r2 = the key, r3 =
// the value (for_each_map_elem and timer callbacks).
void Engine::set_map_elem_args(Frame& callee, int map) {
  Reg m;
  m.type = RegType::ConstMapPtr;
  m.map = map;
  callee.regs[1] = m;
  m.type = RegType::MapKey;
  callee.regs[2] = m;
  m.type = RegType::MapValue;
  callee.regs[3] = m;
}

void Engine::check_timer_arg(State& st, unsigned regno, CallMeta& meta) {
  const Reg r = reg(st, regno);
  if (r.type != RegType::MapValue || r.maybe_null)
    reject(EACCES, fmt::format("R{} type={} expected=map_value", regno, reg_type_str(r)));
  check_map_field_pointer(r, regno, "bpf_timer");
  meta.timer_map = r.map;
}

void Engine::check_timer_map(const Reg& map_reg, unsigned regno, const CallMeta& meta) {
  if (meta.timer_map >= 0 && meta.timer_map != map_reg.map)
    reject(EINVAL, fmt::format("timer pointer in R1 map_uid=0 doesn't match map pointer in R{} map_uid=0", regno));
}

void Engine::check_timer_field(const Reg& r, std::int64_t off, std::int64_t size) {
  if (r.type != RegType::MapValue || r.map < 0) return;
  const std::int32_t t = cfg_.maps[static_cast<std::size_t>(r.map)].timer_off;
  if (t < 0) return;
  const std::int64_t lo = r.smin + off, hi = static_cast<std::int64_t>(r.umax) + off + size;
  if (lo < t + kTimerSize && t < hi) reject(EACCES, "bpf_timer cannot be accessed directly by load/store");
}

void Engine::check_timer_prog_type(const MapDesc& md) {
  if (md.timer_off < 0) return;
  const std::uint32_t t = cfg_.prog_type;
  if (t == BPF_PROG_TYPE_KPROBE || t == BPF_PROG_TYPE_TRACEPOINT || t == BPF_PROG_TYPE_PERF_EVENT ||
      t == BPF_PROG_TYPE_RAW_TRACEPOINT || t == BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE)
    reject(EINVAL, "tracing progs cannot use bpf_timer yet");
}

void Engine::push_async_callback(State& st, std::size_t idx, const CallMeta& meta) {
  const auto sub = static_cast<std::size_t>(meta.callback);
  (void)st;
  State cb;  // a new state with no parent (the kernel's push_async_cb)
  cb.frames.resize(1);
  Frame& f = cb.frames[0];
  f.subprog = static_cast<int>(sub);
  f.callsite = -1;
  f.in_async_callback = true;
  mark_known(f.regs[10], 0);
  f.regs[10].type = RegType::Stack;
  set_map_elem_args(f, meta.timer_map);  // void callback(struct bpf_map *map, void *key, void *value)
  for (auto& r : f.regs) r.written = true;
  push_branch(cb, subprog_start_[sub], idx);
}

long Engine::async_callback_exit(State& st) {
  const Reg& r0 = reg(st, 0);
  if (r0.type != RegType::Scalar)
    reject(EINVAL,
           fmt::format("At async callback return the register R0 is not a known value ({})", reg_type_str(r0)));
  mark_precise(st, 0);
  if (r0.smin < 0 || r0.smax > 0) bad_return("At async callback return", r0, 0, 0);
  return -1;
}

}  // namespace userbpf::verifier::detail
