// The core helpers (maps, time, trace_printk, tail_call) and the registry
// of every helper of this library (design in helpers.hpp). Each helper is a
// plain function with the abi::HelperFn signature; errors are negative errno
// values in r0 as the kernel's helpers return them. The other families live
// in process.cpp, memory.cpp, format.cpp and callbacks.cpp; each file lists
// its helpers (detail::Entry, ids from <linux/bpf.h>) and register_helpers()
// concatenates the lists.
#include "helpers/helpers.hpp"

#include <fmt/format.h>
#include <linux/bpf.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "helpers/internal.hpp"
#include "helpers/packet_ctx.hpp"
#include "maps/registry.hpp"
#include "spec/spec.hpp"

namespace userbpf::helpers {

namespace detail {

bool mem_ok(const abi::Env& env, u64 addr, u64 len, bool write) {
  if (!env.options.checked) return addr != 0;
  return env.find_region(addr, len, write) != nullptr;
}

bool arg_mem(abi::Env& env, std::string_view helper, std::string_view what, u64 addr, u64 len, bool write) {
  if (!env.options.checked || len == 0 || env.find_region(addr, len, write) != nullptr) return true;
  env.fail(EFAULT, fmt::format("bpf_{}: {} [{:#x}, +{}) is not {} memory of the program", helper, what, addr, len,
                               write ? "writable" : "readable"));
  return false;
}

maps::Map* arg_map(abi::Env& env, u64 r1) {
  RunState* s = state(env);
  return s != nullptr ? s->find_map(r1) : nullptr;
}

u64 clock_ns(int clock_id) {
  timespec ts{};
  clock_gettime(static_cast<clockid_t>(clock_id), &ts);
  return static_cast<u64>(ts.tv_sec) * 1000000000ULL + static_cast<u64>(ts.tv_nsec);
}

std::uint32_t cpu_for(abi::Env& env, const maps::Map& m) {
  if (!m.percpu()) return 0;
  RunState* s = state(env);
  return s != nullptr ? s->cpu_slot() : 0;
}

bool safe_read(void* dst, u64 src, std::size_t len) {
  if (len == 0) return true;
  if (src == 0) return false;
  const iovec local{dst, len};
  const iovec remote{reinterpret_cast<void*>(src), len};  // NOLINT(performance-no-int-to-ptr)
  return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == static_cast<ssize_t>(len);
}

bool safe_write(u64 dst, const void* src, std::size_t len) {
  if (len == 0) return true;
  if (dst == 0) return false;
  const iovec local{const_cast<void*>(src), len};
  const iovec remote{reinterpret_cast<void*>(dst), len};  // NOLINT(performance-no-int-to-ptr)
  return process_vm_writev(getpid(), &local, 1, &remote, 1, 0) == static_cast<ssize_t>(len);
}

long safe_read_str(char* out, u64 src, std::size_t max) {
  constexpr u64 kPage = 4096;
  std::size_t done = 0;
  while (done < max) {
    const u64 at = src + done;
    const std::size_t chunk = std::min<std::size_t>(max - done, kPage - (at % kPage));
    if (!safe_read(out + done, at, chunk)) return -1;
    if (const void* z = std::memchr(out + done, 0, chunk)) return static_cast<long>(static_cast<const char*>(z) - out);
    done += chunk;
  }
  return static_cast<long>(max);
}

bool read_cstr(const abi::Env& env, u64 addr, std::string& out) {
  constexpr std::size_t kMax = 1024;  // the kernel's MAX_BPRINTF_BUF
  out.clear();
  if (addr == 0) return false;
  if (env.options.checked) {
    const auto* p = reinterpret_cast<const char*>(addr);  // NOLINT(performance-no-int-to-ptr)
    for (std::size_t i = 0; i < kMax; ++i) {
      if (env.find_region(addr + i, 1, false) == nullptr) return false;
      if (p[i] == '\0') return true;
      out.push_back(p[i]);
    }
    return true;  // truncated, as the kernel's bounded copy
  }
  char buf[kMax];
  const long n = safe_read_str(buf, addr, sizeof buf);
  if (n < 0) return false;
  out.assign(buf, static_cast<std::size_t>(n < static_cast<long>(kMax) ? n : static_cast<long>(kMax) - 1));
  return true;
}

}  // namespace detail

namespace {

using namespace detail;  // NOLINT(google-build-using-namespace)

// The general case of map_lookup_elem: checked runs, per-CPU maps, inner
// maps of maps, bad arguments.
[[gnu::noinline]] u64 map_lookup_elem_slow(abi::Env& env, u64 r1, u64 r2) {
  maps::Map* m = arg_map(env, r1);
  if (m == nullptr || !mem_ok(env, r2, m->key_size(), false)) return 0;
  return reinterpret_cast<u64>(m->lookup_from_prog(reinterpret_cast<const void*>(r2), cpu_for(env, *m)));
}

u64 map_lookup_elem(abi::Env& env, u64 r1, u64 r2, u64, u64, u64) {
  // the common case first, in a frame that saves no register: an unchecked
  // run, one of the program's own maps, not per-CPU; then the type's direct
  // lookup as a tail call (no virtual dispatch; hash, LRU and LPM: lock-free)
  const RunState* s = state(env);
  if (s != nullptr && !env.options.checked && r2 != 0) [[likely]]
    if (maps::Map* m = s->own_map(r1); m != nullptr && !m->percpu())
      return reinterpret_cast<u64>(m->lookup_from_prog(reinterpret_cast<const void*>(r2), 0));
  return map_lookup_elem_slow(env, r1, r2);
}

u64 map_update_elem(abi::Env& env, u64 r1, u64 r2, u64 r3, u64 r4, u64) {
  maps::Map* m = arg_map(env, r1);
  if (m == nullptr || !mem_ok(env, r2, m->key_size(), false) || !mem_ok(env, r3, m->value_size(), false))
    return neg(EINVAL);
  const int e = m->prog_update(reinterpret_cast<const void*>(r2), reinterpret_cast<const void*>(r3), r4,
                               cpu_for(env, *m));
  return e == 0 ? 0 : neg(e);
}

u64 map_delete_elem(abi::Env& env, u64 r1, u64 r2, u64, u64, u64) {
  maps::Map* m = arg_map(env, r1);
  if (m == nullptr || !mem_ok(env, r2, m->key_size(), false)) return neg(EINVAL);
  const int e = m->prog_delete(reinterpret_cast<const void*>(r2));
  return e == 0 ? 0 : neg(e);
}

u64 ktime_get_ns(abi::Env&, u64, u64, u64, u64, u64) { return clock_ns(CLOCK_MONOTONIC); }
u64 ktime_get_boot_ns(abi::Env&, u64, u64, u64, u64, u64) { return clock_ns(CLOCK_BOOTTIME); }
u64 ktime_get_coarse_ns(abi::Env&, u64, u64, u64, u64, u64) { return clock_ns(CLOCK_MONOTONIC_COARSE); }

u64 get_prandom_u32(abi::Env&, u64, u64, u64, u64, u64) {
  // xorshift64* per thread, seeded once from the OS
  thread_local u64 x = [] {
    std::random_device rd;
    const u64 v = (u64{rd()} << 32) ^ rd();
    return v != 0 ? v : 0x9e3779b97f4a7c15ULL;
  }();
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  return (x * 0x2545f4914f6cdd1dULL) >> 32;
}

u64 get_smp_processor_id(abi::Env& env, u64, u64, u64, u64, u64) {
  RunState* s = state(env);
  return s != nullptr ? s->cpu_slot() : 0;
}

u64 tail_call(abi::Env& env, u64 /*ctx*/, u64 r2, u64 r3, u64, u64) {
  RunState* s = state(env);
  maps::Map* m = arg_map(env, r2);
  if (s == nullptr || m == nullptr || m->desc().kind != maps::MapKind::ProgArray) return neg(EINVAL);
  const auto index = static_cast<std::uint32_t>(r3);
  if (index >= m->max_entries()) return neg(E2BIG);
  if (s->tail_calls >= kMaxTailCalls) return neg(E2BIG);
  ++s->tail_calls;  // counted before the slot is read, as the kernel's interpreter and JIT do
  const std::uint32_t id = maps::prog_array_get(*m, index);
  const void* target = id != 0 && s->resolve_prog != nullptr ? s->resolve_prog(s->owner, id) : nullptr;
  if (target == nullptr) return neg(ENOENT);
  s->tail_target = target;
  env.request_exit(0);
  return 0;
}

u64 trace_printk(abi::Env& env, u64 r1, u64 r2, u64 r3, u64 r4, u64 r5) {
  if (r2 == 0 || !mem_ok(env, r1, r2, false)) return neg(EINVAL);
  const auto* fmt = reinterpret_cast<const char*>(r1);  // NOLINT(performance-no-int-to-ptr)
  const void* nul = std::memchr(fmt, 0, r2);
  if (nul == nullptr) return neg(EINVAL);
  const std::array<u64, 3> args = {r3, r4, r5};
  std::string out;
  const int n = format_trace(std::string_view(fmt, static_cast<std::size_t>(static_cast<const char*>(nul) - fmt)),
                             args, out, &read_cstr, &env);
  if (n < 0) return sret(n);
  emit_trace(env, out);
  return static_cast<u64>(n);
}

class StderrSink final : public TraceSink {
 public:
  void write(std::string_view message) override {
    std::fwrite(message.data(), 1, message.size(), stderr);
    if (message.empty() || message.back() != '\n') std::fputc('\n', stderr);
  }
};

// get_smp_processor_id is constant within a run: the run's CPU slot, taken
// on first use and held until the run loop ends (RunState::cpu).
constexpr std::array kCore = {
    UBPF_HELPER_ENTRY_F(map_lookup_elem, kLeaf),
    UBPF_HELPER_ENTRY_F(map_update_elem, kLeaf),
    UBPF_HELPER_ENTRY_F(map_delete_elem, kLeaf),
    UBPF_HELPER_ENTRY_F(ktime_get_ns, kLeaf),
    UBPF_HELPER_ENTRY(trace_printk),
    UBPF_HELPER_ENTRY_F(get_prandom_u32, kLeaf),
    UBPF_HELPER_ENTRY_F(get_smp_processor_id, kLeaf | abi::kHelperRunConstant),
    UBPF_HELPER_ENTRY(tail_call),
    UBPF_HELPER_ENTRY_F(ktime_get_boot_ns, kLeaf),
    UBPF_HELPER_ENTRY_F(ktime_get_coarse_ns, kLeaf),
};

// Every helper of the library, ordered by id (built once).
const std::vector<Entry>& all_entries() {
  static const std::vector<Entry> all = [] {
    std::vector<Entry> v;
    for (auto list : {core_entries(), process_entries(), memory_entries(), format_entries(), callback_entries(),
                      skb_entries(), resize_entries(), stack_entries(), timer_entries(),
                      socket_entries(), dynptr_entries()})
      v.insert(v.end(), list.begin(), list.end());
    std::sort(v.begin(), v.end(), [](const Entry& a, const Entry& b) { return a.id < b.id; });
    return v;
  }();
  return all;
}

}  // namespace

TraceSink& stderr_sink() {
  static StderrSink sink;
  return sink;
}

namespace detail {
std::span<const Entry> core_entries() { return kCore; }
}  // namespace detail

void emit_trace(abi::Env& env, std::string_view message) {
  RunState* s = state(env);
  TraceSink& sink = s != nullptr && s->trace != nullptr ? *s->trace : stderr_sink();
  sink.write(message.substr(0, kTraceMax - 1));
}

void register_helpers(abi::HelperTable& table) {
  for (const Entry& e : all_entries()) table.set(e.id, e.name, e.fn, e.flags);
  register_packet_helpers(table);
}

std::span<const std::uint32_t> helper_ids() {
  static const std::vector<std::uint32_t> ids = [] {
    std::vector<std::uint32_t> v;
    for (const Entry& e : all_entries()) v.push_back(e.id);
    for (std::uint32_t id = 0; id < spec::helper_id_limit(); ++id)
      if (is_packet_helper(id)) v.push_back(id);
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
  }();
  return ids;
}

bool supported(std::uint32_t id) {
  const auto ids = helper_ids();
  return std::binary_search(ids.begin(), ids.end(), id);
}

std::string unsupported_helper_message(std::uint32_t id) {
  const std::string_view name = spec::helper_name(id);
  if (name.empty()) return fmt::format("invalid func unknown#{}: no kernel helper has id {}", id, id);
  if (id == BPF_FUNC_fib_lookup)
    return fmt::format("helper bpf_fib_lookup (id {}) is not supported by userbpf: user space has no kernel FIB "
                       "and no user-supplied routing table can be configured yet",
                       id);
  return fmt::format("helper bpf_{} (id {}) is not supported by userbpf (userbpf feature lists the supported ones)",
                     name, id);
}

}  // namespace userbpf::helpers
