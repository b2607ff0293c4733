// Kernel helper functions (BPF_FUNC_*) with the abi::HelperFn signature.
//
// A run that may call these helpers carries a helpers::RunState in
// abi::Env::user. The RunState names the maps the program may use (its
// used-maps list, as the kernel's prog->aux->used_maps), the run's CPU slot,
// the trace sink and the tail-call bookkeeping.
//
// Map arguments. The runtime relocates `lddw rX, map` (BPF_PSEUDO_MAP_FD /
// BPF_PSEUDO_MAP_IDX) to the address of the maps::Map object, and
// BPF_PSEUDO_MAP_VALUE / _IDX_VALUE to the address of the array value plus
// the offset. A helper turns r1 back into a Map only if it is one of the
// RunState's maps (a pointer comparison over a short list), so a forged
// value can never reach a map operation: it makes the helper return
// -EINVAL (or NULL for lookups).
//
// Pointers to keys, values and format strings are checked against the run's
// memory regions when the run is in checked mode (env.options.checked);
// unchecked runs trust a verified program, as the kernel does.
//
// Tail calls (bpf_tail_call, limit 33 as MAX_TAIL_CALL_CNT): the helper
// looks the program up in the program array, counts the call and, if there
// is a target, stores it in RunState::tail_target and asks the engine to end
// the run (env.request_exit). The runtime's run loop then runs the target
// with the same context (r1), as the kernel's tail call does (the caller's
// frame is gone; the target's r0 is the result). If there is no target the
// helper returns a negative errno and the program goes on with the next
// instruction, as in the kernel.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "abi/abi.hpp"
#include "maps/cpu_slots.hpp"
#include "maps/map.hpp"

namespace userbpf::helpers {

// Where bpf_trace_printk writes. Each call delivers one formatted message.
class TraceSink {
 public:
  virtual ~TraceSink() = default;
  virtual void write(std::string_view message) = 0;
};
// Writes to stderr (the default sink).
TraceSink& stderr_sink();

inline constexpr std::uint32_t kMaxTailCalls = 33;  // MAX_TAIL_CALL_CNT

// Resolves a program id found in a program array to an opaque program the
// run loop understands (nullptr: no such program here).
using ProgResolver = const void* (*)(void* owner, std::uint32_t prog_id);

struct RunState {
  std::span<maps::Map* const> maps;           // the program's used maps
  maps::CpuSlots::Guard* cpu = nullptr;       // the run's CPU slot (acquired lazily); null: slot 0
  TraceSink* trace = nullptr;                 // null: stderr_sink()
  ProgResolver resolve_prog = nullptr;
  void* owner = nullptr;                      // passed to resolve_prog
  std::uint32_t tail_calls = 0;               // tail calls taken so far in this run
  const void* tail_target = nullptr;          // set by bpf_tail_call, consumed by the run loop

  [[nodiscard]] maps::Map* find_map(std::uint64_t value) const {
    for (maps::Map* m : maps)
      if (reinterpret_cast<std::uint64_t>(m) == value) return m;
    return nullptr;
  }
  std::uint32_t cpu_slot() { return cpu != nullptr ? cpu->slot() : 0; }
};

// Fills `table` with every helper of this library under its kernel id.
void register_helpers(abi::HelperTable& table);

// The helper ids register_helpers() provides.
std::span<const std::uint32_t> helper_ids();

// bpf_trace_printk's formatter (exposed for tests): formats `fmt` (the
// kernel's subset: %d %i %u %x %ld %li %lu %lx %lld %lli %llu %llx %p %s %c
// %%, at most 3 conversions) with args; -EINVAL on anything else. `read_str`
// copies a C string from program memory for %s (returns false if invalid).
int format_trace(std::string_view fmt, std::span<const std::uint64_t> args, std::string& out,
                 bool (*read_str)(const abi::Env& env, std::uint64_t addr, std::string& s), const abi::Env* env);

}  // namespace userbpf::helpers
