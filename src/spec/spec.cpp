// Tables of helper prototypes, program types and map types (see spec.hpp).
// Context layouts take their offsets from the uapi structures in
// <linux/bpf.h>; per-type access rules follow the kernel's *_is_valid_access
// functions (socket filter, tc, cgroup_skb, xdp, kprobe, tracepoint,
// raw_tracepoint, perf_event).
#include "spec/spec.hpp"

#include <linux/bpf.h>

#include <algorithm>
#include <array>
#include <cstddef>

namespace userbpf::spec {

namespace {

constexpr HelperProto kHelpers[] = {
#define UBPF_HELPER(nm, id_, r, a1, a2, a3, a4, a5) \
  HelperProto{id_, #nm, RetKind::r, {ArgKind::a1, ArgKind::a2, ArgKind::a3, ArgKind::a4, ArgKind::a5}},
#include "spec/helpers.def"
#undef UBPF_HELPER
};

#define UBPF_HELPER(nm, id_, ...) static_assert(BPF_FUNC_##nm == id_, "helpers.def: wrong id for " #nm);
#include "spec/helpers.def"
#undef UBPF_HELPER

constexpr bool helpers_sorted() {
  for (std::size_t i = 1; i < std::size(kHelpers); ++i)
    if (kHelpers[i - 1].id >= kHelpers[i].id) return false;
  return true;
}
static_assert(helpers_sorted(), "helpers.def: rows must be ordered by id");

// Names of every helper id of the uapi header (for messages about helpers
// without a prototype here).
#define UBPF_NAME_FN(x, ...) #x
constexpr std::string_view kAllNames[] = {__BPF_FUNC_MAPPER(UBPF_NAME_FN)};
#undef UBPF_NAME_FN

// ---- contexts
constexpr std::uint32_t kSkbCbOff = offsetof(__sk_buff, cb);
constexpr std::uint32_t kSkbCbSize = sizeof(__sk_buff::cb);

// One __sk_buff field, readable (narrow), not writable.
constexpr CtxField sf(std::string_view name, std::uint32_t off, std::uint32_t size) {
  return CtxField{name, off, size, size, true, false, CtxYield::Scalar, CtxSize::Narrow};
}
constexpr CtxField wr(CtxField f) { f.write = true; return f; }
constexpr CtxField ptr(CtxField f, CtxYield y) { f.yields = y; f.rule = CtxSize::Exact; return f; }
constexpr CtxField exact(CtxField f) { f.rule = CtxSize::Exact; return f; }
#define SKB(f) sf(#f, offsetof(__sk_buff, f), sizeof(__sk_buff::f))

constexpr CtxField kCb{"cb", kSkbCbOff, kSkbCbSize, 4, true, false, CtxYield::Scalar, CtxSize::Any};

// Fields common to every __sk_buff program type (reads).
constexpr CtxField kSocketFilterCtx[] = {
    SKB(len), SKB(pkt_type), SKB(mark), SKB(queue_mapping), SKB(protocol), SKB(vlan_present), SKB(vlan_tci),
    SKB(vlan_proto), SKB(priority), SKB(ingress_ifindex), SKB(ifindex), SKB(tc_index), wr(kCb), SKB(hash),
    SKB(napi_id), SKB(gso_segs), SKB(gso_size),
    ptr(SKB(sk), CtxYield::SockCommonOrNull),
};
constexpr CtxField kTcCtx[] = {
    SKB(len), SKB(pkt_type), wr(SKB(mark)), wr(SKB(queue_mapping)), SKB(protocol), SKB(vlan_present),
    SKB(vlan_tci), SKB(vlan_proto), wr(SKB(priority)), SKB(ingress_ifindex), SKB(ifindex), wr(SKB(tc_index)),
    wr(kCb), SKB(hash), wr(SKB(tc_classid)), ptr(SKB(data), CtxYield::Packet), ptr(SKB(data_end), CtxYield::PacketEnd),
    SKB(napi_id), ptr(SKB(data_meta), CtxYield::PacketMeta), wr(exact(SKB(tstamp))), SKB(wire_len), SKB(gso_segs),
    SKB(gso_size), exact(SKB(hwtstamp)), ptr(SKB(sk), CtxYield::SockCommonOrNull),
};
constexpr CtxField kCgroupSkbCtx[] = {
    SKB(len), SKB(pkt_type), wr(SKB(mark)), SKB(queue_mapping), SKB(protocol), SKB(vlan_present), SKB(vlan_tci),
    SKB(vlan_proto), wr(SKB(priority)), SKB(ingress_ifindex), SKB(ifindex), SKB(tc_index), wr(kCb), SKB(hash),
    ptr(SKB(data), CtxYield::Packet), ptr(SKB(data_end), CtxYield::PacketEnd), SKB(napi_id), SKB(family),
    SKB(remote_ip4), SKB(local_ip4), SKB(remote_ip6), SKB(local_ip6), SKB(remote_port), SKB(local_port),
    wr(exact(SKB(tstamp))), SKB(gso_segs), SKB(gso_size), exact(SKB(hwtstamp)), ptr(SKB(sk), CtxYield::SockCommonOrNull),
};
#undef SKB

#define XDP(f) CtxField{#f, offsetof(xdp_md, f), 4, 4, true, false, CtxYield::Scalar, CtxSize::Exact}
constexpr CtxField kXdpCtx[] = {
    ptr(XDP(data), CtxYield::Packet), ptr(XDP(data_end), CtxYield::PacketEnd), ptr(XDP(data_meta), CtxYield::PacketMeta),
    XDP(ingress_ifindex), XDP(rx_queue_index),
};
#undef XDP

// struct pt_regs of x86-64: 21 registers of 8 bytes.
constexpr std::uint32_t kPtRegsSize = 21 * 8;
constexpr CtxField kKprobeCtx[] = {{"regs", 0, kPtRegsSize, 8, true, false, CtxYield::Scalar, CtxSize::Any}};
// Tracepoint: the first 8 bytes (common fields) are not accessible; the
// record may be up to PERF_MAX_TRACE_SIZE (2048) bytes.
constexpr CtxField kTracepointCtx[] = {{"record", 8, 2048 - 8, 8, true, false, CtxYield::Scalar, CtxSize::Any}};
// raw_tracepoint: u64 args[MAX_BPF_FUNC_ARGS = 12].
constexpr CtxField kRawTpCtx[] = {{"args", 0, 12 * 8, 8, true, false, CtxYield::Scalar, CtxSize::Any}};
// bpf_perf_event_data: pt_regs regs; u64 sample_period; u64 addr.
constexpr CtxField kPerfEventCtx[] = {
    {"regs", 0, kPtRegsSize, 8, true, false, CtxYield::Scalar, CtxSize::Exact},
    {"sample_period", kPtRegsSize, 8, 8, true, false, CtxYield::Scalar, CtxSize::Narrow},
    {"addr", kPtRegsSize + 8, 8, 8, true, false, CtxYield::Scalar, CtxSize::Narrow},
};

// ---- helper sets per program type
#define H(x) BPF_FUNC_##x
#define BASE_HELPERS                                                                                          \
  H(map_lookup_elem), H(map_update_elem), H(map_delete_elem), H(ktime_get_ns), H(trace_printk),               \
      H(get_prandom_u32), H(get_smp_processor_id), H(tail_call), H(get_current_task), H(get_numa_node_id),   \
      H(map_push_elem), H(map_pop_elem), H(map_peek_elem), H(probe_read_user), H(probe_read_kernel),          \
      H(probe_read_user_str), H(probe_read_kernel_str), H(jiffies64), H(ktime_get_boot_ns), H(ringbuf_output),  \
      H(ringbuf_reserve), H(ringbuf_submit), H(ringbuf_discard), H(ringbuf_query), H(get_current_task_btf),     \
      H(ktime_get_coarse_ns), H(for_each_map_elem), H(snprintf), H(loop), H(strncmp), H(ktime_get_tai_ns), \
      H(spin_lock), H(spin_unlock), H(strtol), H(strtoul), H(timer_init), H(timer_set_callback), H(timer_start), H(timer_cancel),                                                                          \
      H(get_current_pid_tgid), H(get_ns_current_pid_tgid), H(trace_vprintk), H(map_lookup_percpu_elem),   \
      H(dynptr_from_mem), H(ringbuf_reserve_dynptr), H(ringbuf_submit_dynptr), H(ringbuf_discard_dynptr),   \
      H(dynptr_read), H(dynptr_write), H(dynptr_data)
#define SOCK_LOOKUP_HELPERS H(sk_lookup_tcp), H(sk_lookup_udp), H(sk_release), H(skc_lookup_tcp)
#define SOCK_CAST_HELPERS H(sk_fullsock), H(tcp_sock), H(get_listener_sock)
#define TRACING_HELPERS                                                                                     \
  BASE_HELPERS, H(probe_read), H(probe_read_str), H(get_current_uid_gid),          \
      H(get_current_comm), H(perf_event_output), H(get_stackid), H(get_stack), H(get_current_cgroup_id), \
      H(probe_write_user)

constexpr std::uint32_t kSocketFilterHelpers[] = {BASE_HELPERS, H(skb_load_bytes), H(skb_load_bytes_relative),
                                                  H(get_socket_cookie), H(get_socket_uid), H(perf_event_output)};
constexpr std::uint32_t kTcHelpers[] = {
    BASE_HELPERS, H(skb_store_bytes), H(skb_load_bytes), H(skb_load_bytes_relative), H(skb_pull_data),
    H(csum_diff), H(l3_csum_replace), H(l4_csum_replace), H(clone_redirect), H(get_cgroup_classid),
    H(skb_vlan_push), H(skb_vlan_pop), H(skb_change_proto), H(skb_change_type), H(skb_adjust_room),
    H(skb_change_tail), H(skb_change_head), H(csum_update), H(redirect), H(get_route_realm), H(get_hash_recalc), H(set_hash_invalid), H(set_hash),
    H(perf_event_output), H(get_socket_cookie), H(get_socket_uid), H(fib_lookup), SOCK_LOOKUP_HELPERS,
    SOCK_CAST_HELPERS};
constexpr std::uint32_t kXdpHelpers[] = {BASE_HELPERS,        H(perf_event_output), H(csum_diff),
                                         H(xdp_adjust_head),  H(xdp_adjust_meta),   H(redirect),
                                         H(redirect_map),     H(xdp_adjust_tail),   H(fib_lookup),
                                         SOCK_LOOKUP_HELPERS};
constexpr std::uint32_t kCgroupSkbHelpers[] = {BASE_HELPERS, H(skb_load_bytes), H(skb_load_bytes_relative),
                                               H(get_socket_cookie), H(get_socket_uid), H(perf_event_output),
                                               SOCK_LOOKUP_HELPERS, SOCK_CAST_HELPERS};
// copy_from_user is for sleepable programs in the kernel; userbpf cannot tell a
// sleepable uprobe (uprobe.s) from a kprobe, so kprobe programs may call it.
constexpr std::uint32_t kKprobeHelpers[] = {TRACING_HELPERS, H(override_return), H(get_func_ip), H(copy_from_user)};
constexpr std::uint32_t kTracepointHelpers[] = {TRACING_HELPERS};
constexpr std::uint32_t kPerfEventHelpers[] = {TRACING_HELPERS, H(perf_prog_read_value)};

#undef SOCK_LOOKUP_HELPERS
#undef SOCK_CAST_HELPERS

// ---- program types
constexpr ProgType kProgTypes[] = {
    {BPF_PROG_TYPE_SOCKET_FILTER, "socket_filter", {"__sk_buff", sizeof(__sk_buff), kSocketFilterCtx},
     kSocketFilterHelpers, {}, true},
    {BPF_PROG_TYPE_KPROBE, "kprobe", {"pt_regs", kPtRegsSize, kKprobeCtx}, kKprobeHelpers, {}, false},
    {BPF_PROG_TYPE_SCHED_CLS, "sched_cls", {"__sk_buff", sizeof(__sk_buff), kTcCtx}, kTcHelpers, {}, true},
    {BPF_PROG_TYPE_SCHED_ACT, "sched_act", {"__sk_buff", sizeof(__sk_buff), kTcCtx}, kTcHelpers, {}, true},
    {BPF_PROG_TYPE_TRACEPOINT, "tracepoint", {"trace_entry", 2048, kTracepointCtx}, kTracepointHelpers, {}, false},
    {BPF_PROG_TYPE_XDP, "xdp", {"xdp_md", sizeof(xdp_md), kXdpCtx}, kXdpHelpers, {}, false},
    {BPF_PROG_TYPE_PERF_EVENT, "perf_event", {"bpf_perf_event_data", kPtRegsSize + 16, kPerfEventCtx},
     kPerfEventHelpers, {}, false},
    {BPF_PROG_TYPE_CGROUP_SKB, "cgroup_skb", {"__sk_buff", sizeof(__sk_buff), kCgroupSkbCtx}, kCgroupSkbHelpers,
     {true, 0, 1}, true},
    {BPF_PROG_TYPE_RAW_TRACEPOINT, "raw_tracepoint", {"bpf_raw_tracepoint_args", 12 * 8, kRawTpCtx},
     kTracepointHelpers, {}, false},
};

// ---- map types
constexpr std::uint32_t kProgArrayHelpers[] = {H(tail_call)};
constexpr std::uint32_t kPerfArrayHelpers[] = {H(perf_event_output), H(perf_prog_read_value)};
constexpr std::uint32_t kStackTraceHelpers[] = {H(get_stackid)};
constexpr std::uint32_t kRingbufHelpers[] = {H(ringbuf_output), H(ringbuf_reserve), H(ringbuf_query),
                                             H(ringbuf_reserve_dynptr)};
constexpr std::uint32_t kRedirectHelpers[] = {H(redirect_map)};
constexpr std::uint32_t kQueueHelpers[] = {H(map_push_elem), H(map_pop_elem), H(map_peek_elem)};
constexpr std::uint32_t kNone[] = {0};

constexpr MapType kMapTypes[] = {
    {BPF_MAP_TYPE_HASH, "hash", 0, true, false, {}},
    {BPF_MAP_TYPE_ARRAY, "array", 4, true, true, {}},
    {BPF_MAP_TYPE_PROG_ARRAY, "prog_array", 4, false, false, kProgArrayHelpers},
    {BPF_MAP_TYPE_PERF_EVENT_ARRAY, "perf_event_array", 4, false, false, kPerfArrayHelpers},
    {BPF_MAP_TYPE_PERCPU_HASH, "percpu_hash", 0, true, false, {}},
    {BPF_MAP_TYPE_PERCPU_ARRAY, "percpu_array", 4, true, true, {}},
    {BPF_MAP_TYPE_STACK_TRACE, "stack_trace", 4, false, false, kStackTraceHelpers},
    {BPF_MAP_TYPE_LRU_HASH, "lru_hash", 0, true, false, {}},
    {BPF_MAP_TYPE_LRU_PERCPU_HASH, "lru_percpu_hash", 0, true, false, {}},
    {BPF_MAP_TYPE_DEVMAP, "devmap", 4, false, false, kRedirectHelpers},
    {BPF_MAP_TYPE_CPUMAP, "cpumap", 4, false, false, kRedirectHelpers},
    {BPF_MAP_TYPE_XSKMAP, "xskmap", 4, false, false, kRedirectHelpers},
    {BPF_MAP_TYPE_DEVMAP_HASH, "devmap_hash", 4, false, false, kRedirectHelpers},
    {BPF_MAP_TYPE_QUEUE, "queue", 0, false, false, kQueueHelpers},
    {BPF_MAP_TYPE_STACK, "stack", 0, false, false, kQueueHelpers},
    {BPF_MAP_TYPE_RINGBUF, "ringbuf", 0, false, false, kRingbufHelpers},
};
static_assert(std::size(kNone) == 1);

struct HelperMaps {
  std::uint32_t helper;
  std::span<const std::uint32_t> maps;
};
constexpr std::uint32_t kTailCallMaps[] = {BPF_MAP_TYPE_PROG_ARRAY};
constexpr std::uint32_t kPerfOutputMaps[] = {BPF_MAP_TYPE_PERF_EVENT_ARRAY};
constexpr std::uint32_t kStackIdMaps[] = {BPF_MAP_TYPE_STACK_TRACE};
constexpr std::uint32_t kRingbufMaps[] = {BPF_MAP_TYPE_RINGBUF};
constexpr std::uint32_t kRedirectMaps[] = {BPF_MAP_TYPE_DEVMAP, BPF_MAP_TYPE_CPUMAP, BPF_MAP_TYPE_XSKMAP,
                                           BPF_MAP_TYPE_DEVMAP_HASH};
constexpr std::uint32_t kQueueMaps[] = {BPF_MAP_TYPE_QUEUE, BPF_MAP_TYPE_STACK};
constexpr HelperMaps kHelperMaps[] = {
    {H(tail_call), kTailCallMaps},         {H(perf_event_output), kPerfOutputMaps},
    {H(perf_prog_read_value), kPerfOutputMaps}, {H(get_stackid), kStackIdMaps},
    {H(ringbuf_output), kRingbufMaps},     {H(ringbuf_reserve), kRingbufMaps},
    {H(ringbuf_query), kRingbufMaps},      {H(ringbuf_reserve_dynptr), kRingbufMaps},      {H(redirect_map), kRedirectMaps},
    {H(map_push_elem), kQueueMaps},        {H(map_pop_elem), kQueueMaps},
    {H(map_peek_elem), kQueueMaps},
};
#undef H

}  // namespace

std::string_view arg_kind_name(ArgKind k) {
  switch (k) {
    case ArgKind::Unused: return "ARG_DONTCARE";
    case ArgKind::Anything: return "ARG_ANYTHING";
    case ArgKind::ConstMapPtr: return "ARG_CONST_MAP_PTR";
    case ArgKind::MapKey: return "ARG_PTR_TO_MAP_KEY";
    case ArgKind::MapValue: return "ARG_PTR_TO_MAP_VALUE";
    case ArgKind::UninitMapValue: return "ARG_PTR_TO_MAP_VALUE|MEM_UNINIT";
    case ArgKind::Mem: return "ARG_PTR_TO_MEM";
    case ArgKind::ReadonlyMem: return "ARG_PTR_TO_MEM|MEM_RDONLY";
    case ArgKind::ReadonlyMemOrNull: return "ARG_PTR_TO_MEM|PTR_MAYBE_NULL|MEM_RDONLY";
    case ArgKind::MemOrNull: return "ARG_PTR_TO_MEM|PTR_MAYBE_NULL";
    case ArgKind::UninitMem: return "ARG_PTR_TO_UNINIT_MEM";
    case ArgKind::ConstSize: return "ARG_CONST_SIZE";
    case ArgKind::ConstSizeOrZero: return "ARG_CONST_SIZE_OR_ZERO";
    case ArgKind::ConstAllocSizeOrZero: return "ARG_CONST_ALLOC_SIZE_OR_ZERO";
    case ArgKind::Ctx: return "ARG_PTR_TO_CTX";
    case ArgKind::StackOrNull: return "ARG_PTR_TO_STACK_OR_NULL";
    case ArgKind::Func: return "ARG_PTR_TO_FUNC";
    case ArgKind::ConstStr: return "ARG_PTR_TO_CONST_STR";
    case ArgKind::RingbufMemRelease: return "ARG_PTR_TO_RINGBUF_MEM|OBJ_RELEASE";
    case ArgKind::SpinLock: return "ARG_PTR_TO_SPIN_LOCK";
    case ArgKind::PtrToLong: return "ARG_PTR_TO_FIXED_SIZE_MEM|MEM_UNINIT|MEM_WRITE|MEM_ALIGNED";
    case ArgKind::SockCommon: return "ARG_PTR_TO_SOCK_COMMON";
    case ArgKind::SockCommonRelease: return "ARG_PTR_TO_BTF_ID_SOCK_COMMON|OBJ_RELEASE";
    case ArgKind::DynptrLocalUninit: return "ARG_PTR_TO_DYNPTR|DYNPTR_TYPE_LOCAL|MEM_UNINIT";
    case ArgKind::DynptrRingbufUninit: return "ARG_PTR_TO_DYNPTR|DYNPTR_TYPE_RINGBUF|MEM_UNINIT";
    case ArgKind::DynptrRingbufRelease: return "ARG_PTR_TO_DYNPTR|DYNPTR_TYPE_RINGBUF|OBJ_RELEASE";
    case ArgKind::DynptrRdonly: return "ARG_PTR_TO_DYNPTR|MEM_RDONLY";
    case ArgKind::Timer: return "ARG_PTR_TO_TIMER";
  }
  return "?";
}

std::string_view ret_kind_name(RetKind k) {
  switch (k) {
    case RetKind::Integer: return "RET_INTEGER";
    case RetKind::Void: return "RET_VOID";
    case RetKind::MapValueOrNull: return "RET_PTR_TO_MAP_VALUE_OR_NULL";
    case RetKind::RingbufMemOrNull: return "RET_PTR_TO_RINGBUF_MEM_OR_NULL";
    case RetKind::BtfIdTask: return "RET_PTR_TO_BTF_ID";
    case RetKind::SocketOrNull: return "RET_PTR_TO_SOCKET_OR_NULL";
    case RetKind::SockCommonOrNull: return "RET_PTR_TO_SOCK_COMMON_OR_NULL";
    case RetKind::TcpSockOrNull: return "RET_PTR_TO_TCP_SOCK_OR_NULL";
    case RetKind::DynptrMemOrNull: return "RET_PTR_TO_DYNPTR_MEM_OR_NULL";
  }
  return "?";
}

std::span<const HelperProto> helpers() { return kHelpers; }

const HelperProto* helper(std::uint32_t id) {
  const auto* it = std::lower_bound(std::begin(kHelpers), std::end(kHelpers), id,
                                    [](const HelperProto& h, std::uint32_t v) { return h.id < v; });
  return it != std::end(kHelpers) && it->id == id ? it : nullptr;
}

std::string_view helper_name(std::uint32_t id) { return id < std::size(kAllNames) ? kAllNames[id] : ""; }
std::uint32_t helper_id_limit() { return static_cast<std::uint32_t>(std::size(kAllNames)); }

std::span<const ProgType> prog_types() { return kProgTypes; }
const ProgType* prog_type(std::uint32_t id) {
  for (const auto& p : kProgTypes)
    if (p.id == id) return &p;
  return nullptr;
}
const ProgType* prog_type_by_name(std::string_view name) {
  for (const auto& p : kProgTypes)
    if (p.name == name) return &p;
  return nullptr;
}
bool prog_type_allows_helper(const ProgType& pt, std::uint32_t helper_id) {
  return std::find(pt.helper_ids.begin(), pt.helper_ids.end(), helper_id) != pt.helper_ids.end();
}
const CtxField* ctx_field_at(const CtxLayout& ctx, std::int64_t off) {
  for (const auto& f : ctx.fields)
    if (off >= f.off && off < static_cast<std::int64_t>(f.off) + f.size) return &f;
  return nullptr;
}

std::span<const MapType> map_types() { return kMapTypes; }
const MapType* map_type(std::uint32_t id) {
  for (const auto& m : kMapTypes)
    if (m.id == id) return &m;
  return nullptr;
}
const MapType* map_type_by_name(std::string_view name) {
  for (const auto& m : kMapTypes)
    if (m.name == name) return &m;
  return nullptr;
}
std::span<const std::uint32_t> helper_map_types(std::uint32_t helper_id) {
  for (const auto& h : kHelperMaps)
    if (h.helper == helper_id) return h.maps;
  return {};
}

}  // namespace userbpf::spec

namespace userbpf::spec {
bool helper_changes_pkt_data(std::uint32_t id) {
  switch (id) {
    case BPF_FUNC_skb_store_bytes: case BPF_FUNC_l3_csum_replace: case BPF_FUNC_l4_csum_replace:
    case BPF_FUNC_clone_redirect: case BPF_FUNC_skb_vlan_push: case BPF_FUNC_skb_vlan_pop:
    case BPF_FUNC_skb_change_proto: case BPF_FUNC_skb_change_tail: case BPF_FUNC_skb_adjust_room:
    case BPF_FUNC_skb_pull_data: case BPF_FUNC_xdp_adjust_head: case BPF_FUNC_xdp_adjust_meta:
    case BPF_FUNC_xdp_adjust_tail: case BPF_FUNC_skb_change_head: case BPF_FUNC_msg_pull_data:
    case BPF_FUNC_msg_push_data: case BPF_FUNC_msg_pop_data: case BPF_FUNC_lwt_push_encap:
    case BPF_FUNC_lwt_seg6_store_bytes: case BPF_FUNC_lwt_seg6_adjust_srh: case BPF_FUNC_lwt_seg6_action:
    case BPF_FUNC_store_hdr_opt:
      return true;
    default: return false;
  }
}
// Helpers whose kernel prototype (struct bpf_func_proto) sets
// `.pkt_access = true`: the only ones that may take a packet pointer
// (PTR_TO_PACKET / PTR_TO_PACKET_META) as a memory, map-key or map-value
// argument. Every other helper refuses one with "helper access to the packet
// is not allowed" (kernel check_func_arg -> may_access_direct_pkt_data).
// Sources: kernel/bpf/helpers.c (map_*), net/core/filter.c (csum_diff, the
// tc and xdp socket lookups, the syncookie helpers), Linux 6.x. Ids not in
// helpers.def are listed too so the list stays the kernel's whole set.
constexpr std::uint32_t kPktAccessHelpers[] = {
    BPF_FUNC_map_lookup_elem,  BPF_FUNC_map_update_elem,        BPF_FUNC_map_delete_elem,
    BPF_FUNC_csum_diff,        BPF_FUNC_sk_lookup_tcp,          BPF_FUNC_sk_lookup_udp,
    BPF_FUNC_map_push_elem,    BPF_FUNC_skc_lookup_tcp,         BPF_FUNC_tcp_check_syncookie,
    BPF_FUNC_tcp_gen_syncookie, BPF_FUNC_map_lookup_percpu_elem, BPF_FUNC_tcp_raw_gen_syncookie_ipv4,
    BPF_FUNC_tcp_raw_gen_syncookie_ipv6, BPF_FUNC_tcp_raw_check_syncookie_ipv4,
    BPF_FUNC_tcp_raw_check_syncookie_ipv6,
};
bool helper_pkt_access(std::uint32_t id) {
  return std::find(std::begin(kPktAccessHelpers), std::end(kPktAccessHelpers), id) != std::end(kPktAccessHelpers);
}
}  // namespace userbpf::spec
