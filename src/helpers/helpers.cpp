// The helpers of this milestone (design in helpers.hpp). Each helper is a
// plain function with the abi::HelperFn signature; errors are negative errno
// values in r0 as the kernel's helpers return them.
#include "helpers/helpers.hpp"

#include "maps/registry.hpp"

#include <linux/bpf.h>
#include <time.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

namespace userbpf::helpers {

namespace {

using u64 = std::uint64_t;

u64 neg(int e) { return static_cast<u64>(-static_cast<std::int64_t>(e)); }

RunState* state(abi::Env& env) { return static_cast<RunState*>(env.user); }

// In checked mode, memory a helper reads or writes must lie in a region.
bool mem_ok(const abi::Env& env, u64 addr, u64 len, bool write) {
  if (!env.options.checked) return addr != 0;
  return env.find_region(addr, len, write) != nullptr;
}

maps::Map* arg_map(abi::Env& env, u64 r1) {
  RunState* s = state(env);
  return s != nullptr ? s->find_map(r1) : nullptr;
}

std::uint32_t cpu_for(abi::Env& env, const maps::Map& m) {
  if (!m.percpu()) return 0;
  RunState* s = state(env);
  return s != nullptr ? s->cpu_slot() : 0;
}

u64 map_lookup_elem(abi::Env& env, u64 r1, u64 r2, u64, u64, u64) {
  maps::Map* m = arg_map(env, r1);
  if (m == nullptr || !mem_ok(env, r2, m->key_size(), false)) return 0;
  return reinterpret_cast<u64>(m->prog_lookup(reinterpret_cast<const void*>(r2), cpu_for(env, *m)));
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

u64 clock_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<u64>(ts.tv_sec) * 1000000000ULL + static_cast<u64>(ts.tv_nsec);
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

bool read_cstr(const abi::Env& env, u64 addr, std::string& out) {
  out.clear();
  if (addr == 0) return false;
  const auto* p = reinterpret_cast<const char*>(addr);
  for (std::size_t i = 0; i < 4096; ++i) {
    if (env.options.checked && env.find_region(addr + i, 1, false) == nullptr) return false;
    if (p[i] == '\0') return true;
    out.push_back(p[i]);
  }
  return true;  // truncated, as the kernel's bounded copy
}

u64 trace_printk(abi::Env& env, u64 r1, u64 r2, u64 r3, u64 r4, u64 r5) {
  if (r2 == 0 || !mem_ok(env, r1, r2, false)) return neg(EINVAL);
  const auto* fmt = reinterpret_cast<const char*>(r1);
  if (fmt[r2 - 1] != '\0') return neg(EINVAL);
  const std::array<u64, 3> args = {r3, r4, r5};
  std::string out;
  const int n = format_trace(std::string_view(fmt, std::strlen(fmt)), args, out, &read_cstr, &env);
  if (n < 0) return static_cast<u64>(static_cast<std::int64_t>(n));
  RunState* s = state(env);
  TraceSink& sink = s != nullptr && s->trace != nullptr ? *s->trace : stderr_sink();
  sink.write(out);
  return out.size();
}

class StderrSink final : public TraceSink {
 public:
  void write(std::string_view message) override {
    std::fwrite(message.data(), 1, message.size(), stderr);
    if (message.empty() || message.back() != '\n') std::fputc('\n', stderr);
  }
};

struct Row {
  std::uint32_t id;
  const char* name;
  abi::HelperFn fn;
};
constexpr std::array<Row, 10> kHelpers = {{
    {BPF_FUNC_map_lookup_elem, "map_lookup_elem", &map_lookup_elem},
    {BPF_FUNC_map_update_elem, "map_update_elem", &map_update_elem},
    {BPF_FUNC_map_delete_elem, "map_delete_elem", &map_delete_elem},
    {BPF_FUNC_ktime_get_ns, "ktime_get_ns", &ktime_get_ns},
    {BPF_FUNC_trace_printk, "trace_printk", &trace_printk},
    {BPF_FUNC_get_prandom_u32, "get_prandom_u32", &get_prandom_u32},
    {BPF_FUNC_get_smp_processor_id, "get_smp_processor_id", &get_smp_processor_id},
    {BPF_FUNC_tail_call, "tail_call", &tail_call},
    {BPF_FUNC_ktime_get_boot_ns, "ktime_get_boot_ns", &ktime_get_boot_ns},
    {BPF_FUNC_ktime_get_coarse_ns, "ktime_get_coarse_ns", &ktime_get_coarse_ns},
}};
constexpr std::array<std::uint32_t, 10> kIds = {
    BPF_FUNC_map_lookup_elem,      BPF_FUNC_map_update_elem, BPF_FUNC_map_delete_elem,  BPF_FUNC_ktime_get_ns,
    BPF_FUNC_trace_printk,         BPF_FUNC_get_prandom_u32, BPF_FUNC_get_smp_processor_id, BPF_FUNC_tail_call,
    BPF_FUNC_ktime_get_boot_ns,    BPF_FUNC_ktime_get_coarse_ns,
};

}  // namespace

TraceSink& stderr_sink() {
  static StderrSink sink;
  return sink;
}

void register_helpers(abi::HelperTable& table) {
  for (const Row& r : kHelpers) table.set(r.id, r.name, r.fn);
}

std::span<const std::uint32_t> helper_ids() { return kIds; }

int format_trace(std::string_view fmt, std::span<const std::uint64_t> args, std::string& out,
                 bool (*read_str)(const abi::Env& env, std::uint64_t addr, std::string& s), const abi::Env* env) {
  out.clear();
  std::size_t next_arg = 0;
  char buf[64];
  for (std::size_t i = 0; i < fmt.size(); ++i) {
    const char c = fmt[i];
    if (c != '%') {
      out.push_back(c);
      continue;
    }
    if (++i >= fmt.size()) return -EINVAL;
    if (fmt[i] == '%') {
      out.push_back('%');
      continue;
    }
    if (next_arg >= args.size() || next_arg >= 3) return -EINVAL;
    const u64 a = args[next_arg++];
    int longs = 0;
    while (i < fmt.size() && fmt[i] == 'l' && longs < 2) {
      ++longs;
      ++i;
    }
    if (i >= fmt.size()) return -EINVAL;
    const char conv = fmt[i];
    // %d/%i/%u/%x take an int unless l/ll is given (the kernel's bpf_trace_printk casts the same way)
    const bool wide = longs > 0;
    switch (conv) {
      case 'd':
      case 'i':
        if (wide) std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(a));
        else std::snprintf(buf, sizeof buf, "%d", static_cast<int>(static_cast<std::uint32_t>(a)));
        out += buf;
        break;
      case 'u':
        if (wide) std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(a));
        else std::snprintf(buf, sizeof buf, "%u", static_cast<unsigned>(a));
        out += buf;
        break;
      case 'x':
        if (wide) std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(a));
        else std::snprintf(buf, sizeof buf, "%x", static_cast<unsigned>(a));
        out += buf;
        break;
      case 'p':
        if (longs != 0) return -EINVAL;
        std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(a));
        out += buf;
        break;
      case 'c':
        if (longs != 0) return -EINVAL;
        out.push_back(static_cast<char>(a));
        break;
      case 's': {
        if (longs != 0) return -EINVAL;
        std::string s;
        if (read_str == nullptr || env == nullptr || !read_str(*env, a, s)) s = "(invalid)";
        out += s;
        break;
      }
      default: return -EINVAL;
    }
  }
  return static_cast<int>(out.size());
}

}  // namespace userbpf::helpers
