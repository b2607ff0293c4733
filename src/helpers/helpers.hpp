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
// Families (one file each): helpers.cpp (maps, time, trace_printk,
// tail_call, the registry), process.cpp (the current process and thread,
// clocks, NUMA), memory.cpp (probe_read*, probe_write_user, copy_from_user,
// strncmp, strtol/strtoul, csum_diff), format.cpp (the kernel's bprintf
// formatter: trace_printk, trace_vprintk, snprintf), callbacks.cpp (bpf_loop,
// for_each_map_elem, queue/stack/bloom push/pop/peek, lookup_percpu_elem).
// Helpers that call back into the program use abi::Env::call_function.
//
// Memory the program names by address (probe_read's source, %s strings) is
// read fault-safely (process_vm_readv on our own process): a bad address is
// -EFAULT, never a crash, in every mode.
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
#include <memory>
#include <span>
#include <string>
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

class TimerService;  // bpf_timer (timer.cpp), declared below

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
  std::uint64_t func_ip = 0;                  // bpf_get_func_ip: the hooked function's address (0: none)
  std::uint32_t prog_type = 0;                // enum bpf_prog_type (bpf_redirect: XDP or tc semantics)
  // bpf_timer_* (timer.cpp): the runtime's timer service (null: the helpers
  // return -EOPNOTSUPP), the program running now (what AsyncRunner::hold
  // takes; the run loop updates it on tail calls) and how many instructions
  // precede the program's own in the code this run executes (a timer
  // callback's entry code; func_addr values are shifted by it).
  TimerService* timers = nullptr;
  const void* prog = nullptr;
  std::uint64_t func_base = 0;
  // bpf_redirect / bpf_redirect_map's record (the kernel's
  // bpf_redirect_info): the target of the last successful call, for test
  // runs to report (describe_redirect). bpf_redirect sets ifindex (map =
  // null); bpf_redirect_map sets map and key (flags: BPF_F_BROADCAST /
  // BPF_F_EXCLUDE_INGRESS when broadcasting, else 0); a redirect_map miss
  // clears the record, as the kernel clears its map_id.
  struct Redirect {
    bool set = false;
    std::uint32_t ifindex = 0;
    std::uint64_t flags = 0;
    const maps::Map* map = nullptr;
    std::uint32_t key = 0;
  } redirect;

  // One of the program's own maps (not an inner map), or null.
  [[nodiscard]] maps::Map* own_map(std::uint64_t value) const {
    for (maps::Map* m : maps)
      if (reinterpret_cast<std::uint64_t>(m) == value) return m;
    return nullptr;
  }
  // A map the program may name: one of its used maps, or an inner map that
  // one of them (an array or hash of maps) holds (what a lookup in a map of
  // maps returned to the program).
  [[nodiscard]] maps::Map* find_map(std::uint64_t value) const {
    if (maps::Map* m = own_map(value)) return m;
    const auto* candidate = reinterpret_cast<const maps::Map*>(value);
    for (maps::Map* m : maps)
      if (m->holds_inner(candidate)) return const_cast<maps::Map*>(candidate);
    return nullptr;
  }
  std::uint32_t cpu_slot() { return cpu != nullptr ? cpu->slot() : 0; }
};

// The record as `prog run` prints it after the verdict: "devmap[3]",
// "devmap_hash[7]", "cpumap[1]", "xskmap[0]", "devmap (broadcast)",
// "devmap (broadcast, exclude ingress)", "ifindex 5" or "ifindex 5
// (ingress)"; empty when nothing was recorded.
std::string describe_redirect(const RunState::Redirect& r);

// ---- bpf_timer (timer.cpp; docs/timers.md)
// The embedder's side of timers: it keeps the program that set a timer's
// callback alive and runs that callback when the timer fires.
class AsyncRunner {
 public:
  virtual ~AsyncRunner() = default;
  // A strong reference to `prog` (a RunState::prog value) for as long as
  // the result lives; null when the program is gone.
  virtual std::shared_ptr<const void> hold(const void* prog) = 0;
  // Runs function `fn` (abi::func_addr of the function's first instruction
  // in the program's own numbering) of `prog` with r1..r3 in a fresh run on
  // the calling thread (the timer thread); `extra` are regions a checked
  // run must also allow (the key). Returns r0 (a fault ends the callback).
  virtual std::uint64_t run_function(const void* prog, std::uint64_t fn, std::uint64_t r1, std::uint64_t r2,
                                     std::uint64_t r3, std::span<const abi::Region> extra) = 0;
};

// The timers of one runtime: a thread that fires them in deadline order and
// runs their callbacks through the AsyncRunner. The timer itself is the
// 16-byte struct bpf_timer in a map value; see timer.cpp for the design.
class TimerService {
 public:
  explicit TimerService(AsyncRunner& runner);
  // Cancels every timer of this service, waits for a running callback and
  // joins the thread; the programs held are released.
  ~TimerService();
  TimerService(const TimerService&) = delete;
  TimerService& operator=(const TimerService&) = delete;
  struct Counts {
    std::uint64_t timers = 0;  // initialised timers this service owns
    std::uint64_t armed = 0;   // of which armed
    std::uint64_t fired = 0;   // callbacks run so far
    std::uint64_t dropped = 0; // timers found deleted/overwritten (cancelled) when they expired
  };
  [[nodiscard]] Counts counts() const;
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  friend struct TimerAccess;
};

// Fills `table` with every helper of this library under its kernel id.
void register_helpers(abi::HelperTable& table);

// Fills `table` with the host kfuncs (spec/kfuncs.def; kfuncs.cpp) under
// userbpf's BTF ids, and the bpf_spin_lock/bpf_spin_unlock helpers (loaders resolve __ksym functions to them:
// verifier::kfunc_symbols() in verifier/object_config.hpp).
void register_kfuncs(abi::HelperTable& table);

// The helper ids register_helpers() provides, ascending.
std::span<const std::uint32_t> helper_ids();
// True when register_helpers() provides helper `id`.
bool supported(std::uint32_t id);
// The load-time message for a program calling helper `id` that userbpf does
// not implement: names the helper (the kernel's name) and its id, e.g.
// "helper bpf_skb_get_tunnel_key (id 20) is not supported by userbpf ...".
// PROG_LOAD rejects such a program with EINVAL and this message.
std::string unsupported_helper_message(std::uint32_t id);

// Sends one trace_printk / trace_vprintk message to the run's sink
// (RunState::trace or stderr), cut to kTraceMax - 1 bytes as the kernel's.
inline constexpr std::size_t kTraceMax = 1024;  // MAX_BPRINTF_BUF
void emit_trace(abi::Env& env, std::string_view message);

// The x86-64 kernel's csum_partial over `len` bytes, seeded: a 32-bit
// unfolded one's-complement sum; csum_add is its 32-bit end-around add.
std::uint32_t csum_partial(const void* data, std::size_t len, std::uint32_t seed);
std::uint32_t csum_add(std::uint32_t a, std::uint32_t b);
// Folds a 32-bit one's-complement sum to 16 bits with end-around carry (not
// complemented): the kernel's csum_from32to16, bpf_csum_diff's result.
std::uint32_t csum_fold16(std::uint32_t sum);

// The kernel's bprintf formatter (bpf_bprintf_prepare + bstr_printf), shared
// by trace_printk, trace_vprintk and snprintf. Accepts what the kernel
// accepts: printable ASCII and white space; %% ; conversions with optional
// flags [0+- ] and width, then d i u x X (int), ld li lu lx lX (long), lld
// lli llu llx llX, c, s (the next character must be NUL, white space or
// punctuation), p, pK px ps pS pB (the pointer as 16 hex digits / 0x..., no
// hashing or symbols in user space), pks pus (strings), pi4 pI4 pi6 pI6 (IP
// addresses read from the pointer). Each conversion takes one of `args`;
// more conversions than args: -EINVAL; anything else: -EINVAL. Strings
// and IP bytes are read with `read_str` / fault-safely (unreadable: empty /
// zeros, as the kernel). Returns the length of `out`.
using ReadStr = bool (*)(const abi::Env& env, std::uint64_t addr, std::string& s);
int format_bprintf(std::string_view fmt, std::span<const std::uint64_t> args, std::string& out, ReadStr read_str,
                   const abi::Env* env);
// bpf_trace_printk's formatter: format_bprintf with at most 3 args.
int format_trace(std::string_view fmt, std::span<const std::uint64_t> args, std::string& out, ReadStr read_str,
                 const abi::Env* env);

}  // namespace userbpf::helpers
