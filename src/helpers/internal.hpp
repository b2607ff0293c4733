// Internal to src/helpers: the pieces every helper file shares (errno
// return values, argument checks, safe access to the process's memory) and
// the per-file helper lists that register_helpers() concatenates.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "abi/abi.hpp"
#include "helpers/helpers.hpp"

namespace userbpf::helpers::detail {

using u64 = std::uint64_t;

// A helper's errno result (the kernel's helpers return -errno in r0).
constexpr u64 neg(int e) { return static_cast<u64>(-static_cast<std::int64_t>(e)); }
// A signed helper result.
constexpr u64 sret(std::int64_t v) { return static_cast<u64>(v); }

inline RunState* state(abi::Env& env) { return static_cast<RunState*>(env.user); }

// In checked mode, memory a helper reads or writes must lie in a region.
// Unchecked runs trust a verified program (null is still refused).
bool mem_ok(const abi::Env& env, u64 addr, u64 len, bool write);
// Like mem_ok, but a checked-mode miss ends the run (env.fail(EFAULT, ...))
// with a message naming the helper, the argument and the address.
bool arg_mem(abi::Env& env, std::string_view helper, std::string_view what, u64 addr, u64 len, bool write);

// The run's map for a map argument (null: not one of the program's maps).
maps::Map* arg_map(abi::Env& env, u64 r1);
// The CPU slot a per-CPU map's program operations use in this run.
std::uint32_t cpu_for(abi::Env& env, const maps::Map& m);

// Fault-safe access to the process's own memory (process_vm_readv/writev on
// ourselves): a bad address gives false instead of a crash.
bool safe_read(void* dst, u64 src, std::size_t len);
bool safe_write(u64 dst, const void* src, std::size_t len);
// Copies a NUL-terminated string of at most `max` bytes (terminator
// included) from `src`, reading page by page. Returns the length copied
// without the terminator (< max) or max when no NUL was found within max
// bytes (out then holds max bytes, no terminator); -1 on a fault.
long safe_read_str(char* out, u64 src, std::size_t max);
// A C string of program memory for %s and friends: checked mode asks the
// regions, unchecked mode reads fault-safely. False when unreadable.
bool read_cstr(const abi::Env& env, u64 addr, std::string& out);

// One registered helper: kernel id, kernel name, function, and what the
// engines may assume about it (abi::HelperFlags; the one place they are
// stated: engines read them from the HelperTable).
struct Entry {
  std::uint32_t id;
  const char* name;
  abi::HelperFn fn;
  std::uint8_t flags = 0;
};
// Entries of a file; the ids come from <linux/bpf.h> (BPF_FUNC_<name>), so
// they are the kernel's by construction. _F: with abi::HelperFlags.
#define UBPF_HELPER_ENTRY(name) \
  ::userbpf::helpers::detail::Entry { BPF_FUNC_##name, #name, &name }
#define UBPF_HELPER_ENTRY_F(name, flags) \
  ::userbpf::helpers::detail::Entry { BPF_FUNC_##name, #name, &name, flags }
// The flags of helpers that neither fail nor call back (abi::kHelperLeaf).
inline constexpr std::uint8_t kLeaf = abi::kHelperLeaf;

// A clock's time in ns (clock_gettime).
std::uint64_t clock_ns(int clock_id);

std::span<const Entry> core_entries();     // helpers.cpp: maps, time, trace_printk, tail_call
std::span<const Entry> process_entries();  // process.cpp: current task, time, numa
std::span<const Entry> memory_entries();   // memory.cpp: probe_read*, strings, checksums
std::span<const Entry> format_entries();   // format.cpp: snprintf, trace_vprintk
std::span<const Entry> callback_entries(); // callbacks.cpp: loop, for_each_map_elem, push/pop/peek
std::span<const Entry> skb_entries();      // skb.cpp: checksum replacement, redirect
std::span<const Entry> resize_entries();   // skb_resize.cpp: change_head/tail, adjust_room, vlan push/pop
std::span<const Entry> stack_entries();    // stack.cpp: get_stackid, get_stack (user stacks)
std::span<const Entry> socket_entries();   // sockets.cpp: sk_lookup_*, sk_release, casts (no kernel sockets: NULL)
std::span<const Entry> dynptr_entries();   // dynptr.cpp: dynptr_from_mem, ringbuf dynptrs, read/write/data
std::span<const Entry> timer_entries();    // timer.cpp: timer_init, set_callback, start, cancel
// (packet.cpp, the runtime's, registers its own through register_packet_helpers)

// The run's context of kind `kind` passed as r1, or null after env.fail(EINVAL,
// ...) naming the helper: in checked runs r1 must be the start of the
// Context region; in every run the structure's kind tag must match.
template <class T, class Kind>
T* ctx_arg(abi::Env& env, std::string_view helper, u64 r1, Kind kind, std::string_view what) {
  bool ok = r1 != 0;
  if (ok && env.options.checked) {
    const abi::Region* r = env.find_region(r1, 1, false);
    ok = r != nullptr && r->kind == abi::RegionKind::Context && r->start == r1;
  }
  auto* c = ok ? reinterpret_cast<T*>(r1) : nullptr;  // NOLINT(performance-no-int-to-ptr)
  if (c == nullptr || c->kind != kind) {
    env.fail(EINVAL, "bpf_" + std::string(helper) + ": r1 is not the run's " + std::string(what) + " context");
    return nullptr;
  }
  return c;
}

}  // namespace userbpf::helpers::detail
