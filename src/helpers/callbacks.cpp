// Helpers that call back into the program (bpf_loop, for_each_map_elem) and
// the map helpers beyond lookup/update/delete: queue/stack/bloom push, pop
// and peek, map_lookup_percpu_elem, the ring buffer (output, reserve,
// submit, discard, query) and perf_event_output.
//
// Callbacks go through abi::Env::call_function (the engine runs the
// program's function on a new frame). After every call the helper checks
// env.callback_aborted(): the callee ended the run (fault, budget, unwind)
// and the helper returns at once; its value is ignored.
//
// for_each_map_elem in checked mode: the key and value pointers handed to
// the callback must be readable (value: writable unless the map is
// read-only for programs) by the callee, so the helper appends regions for
// them while the callback runs and removes exactly those afterwards (LIFO:
// nested callbacks do the same inside).
#include <fmt/format.h>
#include <linux/bpf.h>

#include <cerrno>
#include <cstring>

#include "helpers/helpers.hpp"
#include "helpers/internal.hpp"
#include "maps/perf_event_array.hpp"
#include "maps/ringbuf.hpp"

namespace userbpf::helpers {

namespace {

using namespace detail;  // NOLINT(google-build-using-namespace)

constexpr u64 kMaxLoops = 1ULL << 23;  // BPF_MAX_LOOPS

// long bpf_loop(u32 nr_loops, void *callback_fn, void *callback_ctx, u64 flags)
u64 loop(abi::Env& env, u64 nr_loops, u64 fn, u64 ctx, u64 flags, u64) {
  const auto n = static_cast<std::uint32_t>(nr_loops);
  if (flags != 0) return neg(EINVAL);
  if (n > kMaxLoops) return neg(E2BIG);
  for (std::uint32_t i = 0; i < n; ++i) {
    const u64 r = env.call_function(fn, i, ctx, 0, 0, 0);
    if (env.callback_aborted()) return 0;
    if (r != 0) return u64{i} + 1;
  }
  return n;
}

struct ForEach {
  abi::Env* env;
  u64 map;
  u64 fn;
  u64 ctx;
  std::uint32_t key_size;
  std::uint32_t value_size;
  bool value_writable;
};

u64 visit_elem(void* p, const void* key, void* value) {
  auto& f = *static_cast<ForEach*>(p);
  abi::Env& env = *f.env;
  const std::size_t mark = env.regions.size();
  if (env.options.checked) {
    env.regions.push_back(abi::Region{reinterpret_cast<u64>(key), f.key_size, false, abi::RegionKind::ReadOnly});
    env.regions.push_back(
        abi::Region{reinterpret_cast<u64>(value), f.value_size, f.value_writable, abi::RegionKind::MapValue});
  }
  const u64 r = env.call_function(f.fn, f.map, reinterpret_cast<u64>(key), reinterpret_cast<u64>(value), f.ctx, 0);
  if (env.options.checked && env.regions.size() >= mark) env.regions.resize(mark);
  return env.callback_aborted() ? 1 : r;
}

// long bpf_for_each_map_elem(struct bpf_map *map, void *callback_fn, void *callback_ctx, u64 flags)
u64 for_each_map_elem(abi::Env& env, u64 map, u64 fn, u64 ctx, u64 flags, u64) {
  maps::Map* m = arg_map(env, map);
  if (m == nullptr || flags != 0) return neg(EINVAL);
  ForEach f{&env, map, fn, ctx, m->key_size(), m->value_size(), m->prog_can_write()};
  const long n = m->for_each_elem(cpu_for(env, *m), &visit_elem, &f);
  if (env.callback_aborted()) return 0;
  return sret(n);
}

u64 errno_result(int e) { return e == 0 ? 0 : neg(e); }

// long bpf_map_push_elem(struct bpf_map *map, const void *value, u64 flags)
u64 map_push_elem(abi::Env& env, u64 map, u64 value, u64 flags, u64, u64) {
  maps::Map* m = arg_map(env, map);
  if (m == nullptr) return neg(EINVAL);
  if (!arg_mem(env, "map_push_elem", "value", value, m->value_size(), false)) return 0;
  return errno_result(m->push(reinterpret_cast<const void*>(value), flags));  // NOLINT
}

u64 map_pop_elem(abi::Env& env, u64 map, u64 value, u64, u64, u64) {
  maps::Map* m = arg_map(env, map);
  if (m == nullptr) return neg(EINVAL);
  if (!arg_mem(env, "map_pop_elem", "value", value, m->value_size(), true)) return 0;
  return errno_result(m->pop(reinterpret_cast<void*>(value)));  // NOLINT
}

u64 map_peek_elem(abi::Env& env, u64 map, u64 value, u64, u64, u64) {
  maps::Map* m = arg_map(env, map);
  if (m == nullptr) return neg(EINVAL);
  // bloom filters read `value` (the element to test); queues and stacks write it
  const bool bloom = m->type() == BPF_MAP_TYPE_BLOOM_FILTER;
  if (!arg_mem(env, "map_peek_elem", "value", value, m->value_size(), !bloom)) return 0;
  return errno_result(m->peek(reinterpret_cast<void*>(value)));  // NOLINT
}

// void *bpf_map_lookup_percpu_elem(struct bpf_map *map, const void *key, u32 cpu)
u64 map_lookup_percpu_elem(abi::Env& env, u64 map, u64 key, u64 cpu, u64, u64) {
  maps::Map* m = arg_map(env, map);
  if (m == nullptr || !mem_ok(env, key, m->key_size(), false)) return 0;
  return reinterpret_cast<u64>(m->lookup_percpu(reinterpret_cast<const void*>(key),  // NOLINT
                                                static_cast<std::uint32_t>(cpu)));
}

maps::RingBuf* arg_ringbuf(abi::Env& env, u64 map) { return maps::RingBuf::from(arg_map(env, map)); }

// The ring buffer a sample pointer (from ringbuf_reserve) belongs to.
maps::RingBuf* ringbuf_of(abi::Env& env, u64 sample) {
  const RunState* s = state(env);
  if (s == nullptr) return nullptr;
  for (maps::Map* m : s->maps) {
    maps::RingBuf* rb = maps::RingBuf::from(m);
    if (rb != nullptr && rb->holds_sample(reinterpret_cast<const void*>(sample))) return rb;  // NOLINT
  }
  return nullptr;
}

// long bpf_ringbuf_output(void *ringbuf, void *data, u64 size, u64 flags)
u64 ringbuf_output(abi::Env& env, u64 map, u64 data, u64 size, u64 flags, u64) {
  maps::RingBuf* rb = arg_ringbuf(env, map);
  if (rb == nullptr) return neg(EINVAL);
  if (!arg_mem(env, "ringbuf_output", "data", data, size, false)) return 0;
  return errno_result(rb->output(reinterpret_cast<const void*>(data), size, flags));  // NOLINT
}

// void *bpf_ringbuf_reserve(void *ringbuf, u64 size, u64 flags)
u64 ringbuf_reserve(abi::Env& env, u64 map, u64 size, u64 flags, u64, u64) {
  maps::RingBuf* rb = arg_ringbuf(env, map);
  if (rb == nullptr || flags != 0) return 0;
  return reinterpret_cast<u64>(rb->reserve(size));
}

u64 ringbuf_commit(abi::Env& env, std::string_view helper, u64 sample, u64 flags, bool discard) {
  maps::RingBuf* rb = ringbuf_of(env, sample);
  if (rb == nullptr) {
    env.fail(EINVAL, fmt::format("bpf_{}: {:#x} is not a sample from bpf_ringbuf_reserve", helper, sample));
    return 0;
  }
  void* p = reinterpret_cast<void*>(sample);  // NOLINT(performance-no-int-to-ptr)
  if (discard)
    rb->discard(p, flags);
  else
    rb->submit(p, flags);
  return 0;
}

u64 ringbuf_submit(abi::Env& env, u64 sample, u64 flags, u64, u64, u64) {
  return ringbuf_commit(env, "ringbuf_submit", sample, flags, false);
}
u64 ringbuf_discard(abi::Env& env, u64 sample, u64 flags, u64, u64, u64) {
  return ringbuf_commit(env, "ringbuf_discard", sample, flags, true);
}

// u64 bpf_ringbuf_query(void *ringbuf, u64 flags)
u64 ringbuf_query(abi::Env& env, u64 map, u64 flags, u64, u64, u64) {
  maps::RingBuf* rb = arg_ringbuf(env, map);
  return rb != nullptr ? rb->query(flags) : 0;
}

// long bpf_perf_event_output(void *ctx, struct bpf_map *map, u64 flags, void *data, u64 size)
u64 perf_event_output(abi::Env& env, u64 /*ctx*/, u64 map, u64 flags, u64 data, u64 size) {
  auto* pa = dynamic_cast<maps::PerfEventArray*>(arg_map(env, map));
  if (pa == nullptr) return neg(EINVAL);
  // BPF_F_CTXLEN_MASK (packet bytes appended by skb programs) is not supported: only ctxlen 0.
  if ((flags & ~u64{BPF_F_INDEX_MASK}) != 0) return neg(EINVAL);
  u64 index = flags & u64{BPF_F_INDEX_MASK};
  if (index == u64{BPF_F_CURRENT_CPU}) {
    RunState* s = state(env);
    index = s != nullptr ? s->cpu_slot() : 0;
  }
  if (index >= pa->max_entries()) return neg(E2BIG);
  if (!arg_mem(env, "perf_event_output", "data", data, size, false)) return 0;
  return errno_result(pa->output(static_cast<std::uint32_t>(index), reinterpret_cast<const void*>(data), size));  // NOLINT
}

constexpr Entry kCallbacks[] = {
    UBPF_HELPER_ENTRY(loop),           UBPF_HELPER_ENTRY(for_each_map_elem), UBPF_HELPER_ENTRY(map_push_elem),
    UBPF_HELPER_ENTRY(map_pop_elem),   UBPF_HELPER_ENTRY(map_peek_elem),     UBPF_HELPER_ENTRY(map_lookup_percpu_elem),
    UBPF_HELPER_ENTRY(ringbuf_output), UBPF_HELPER_ENTRY(ringbuf_reserve),   UBPF_HELPER_ENTRY(ringbuf_submit),
    UBPF_HELPER_ENTRY(ringbuf_discard), UBPF_HELPER_ENTRY(ringbuf_query),    UBPF_HELPER_ENTRY(perf_event_output),
};

}  // namespace

std::span<const detail::Entry> detail::callback_entries() { return kCallbacks; }

}  // namespace userbpf::helpers
