// The SEC() table: section name -> program type, expected attach type, flags.
//
// One row per libbpf SEC_DEF (libbpf 1.5's table, the newest we know of, which
// is a superset of 1.1's), in libbpf's order, because matching takes the first
// row that matches:
//   "name"   the section must be exactly "name";
//   "name+"  exactly "name" or "name/<anything>" (kprobe/func, tp/cat/name);
//   "name/"  must be "name/<anything>".
// A leading "?" (autoload off) is removed by the caller before lookup.
#include <algorithm>
#include <array>

#include "loader/loader.hpp"
#include "loader/uapi_compat.hpp"

namespace userbpf::loader {
namespace {

constexpr std::uint32_t P(bpf_prog_type t) { return static_cast<std::uint32_t>(t); }
constexpr std::uint32_t A(bpf_attach_type t) { return static_cast<std::uint32_t>(t); }

constexpr unsigned kNone = kSecNone, kAtt = kSecAttachable, kAttOpt = kSecAttachableOpt, kBtf = kSecAttachBtf,
                   kSleep = kSecSleepable, kFrags = kSecXdpFrags, kUsdt = kSecUsdt;

constexpr auto kSched = P(BPF_PROG_TYPE_SCHED_CLS);
constexpr auto kSockAddr = P(BPF_PROG_TYPE_CGROUP_SOCK_ADDR);
constexpr auto kKprobe = P(BPF_PROG_TYPE_KPROBE);
constexpr auto kTracing = P(BPF_PROG_TYPE_TRACING);

constexpr std::array kTable = {
    SecDef{"socket", P(BPF_PROG_TYPE_SOCKET_FILTER), 0, kNone},
    SecDef{"sk_reuseport/migrate", P(BPF_PROG_TYPE_SK_REUSEPORT), A(BPF_SK_REUSEPORT_SELECT_OR_MIGRATE), kAtt},
    SecDef{"sk_reuseport", P(BPF_PROG_TYPE_SK_REUSEPORT), A(BPF_SK_REUSEPORT_SELECT), kAtt},
    SecDef{"kprobe+", kKprobe, 0, kNone},
    SecDef{"uprobe+", kKprobe, 0, kNone},
    SecDef{"uprobe.s+", kKprobe, 0, kSleep},
    SecDef{"kretprobe+", kKprobe, 0, kNone},
    SecDef{"uretprobe+", kKprobe, 0, kNone},
    SecDef{"uretprobe.s+", kKprobe, 0, kSleep},
    SecDef{"kprobe.multi+", kKprobe, A(BPF_TRACE_KPROBE_MULTI), kNone},
    SecDef{"kretprobe.multi+", kKprobe, A(BPF_TRACE_KPROBE_MULTI), kNone},
    SecDef{"kprobe.session+", kKprobe, uapi::kTraceKprobeSession, kNone},
    SecDef{"uprobe.multi+", kKprobe, uapi::kTraceUprobeMulti, kNone},
    SecDef{"uretprobe.multi+", kKprobe, uapi::kTraceUprobeMulti, kNone},
    SecDef{"uprobe.session+", kKprobe, uapi::kTraceUprobeSession, kNone},
    SecDef{"uprobe.multi.s+", kKprobe, uapi::kTraceUprobeMulti, kSleep},
    SecDef{"uretprobe.multi.s+", kKprobe, uapi::kTraceUprobeMulti, kSleep},
    SecDef{"uprobe.session.s+", kKprobe, uapi::kTraceUprobeSession, kSleep},
    SecDef{"ksyscall+", kKprobe, 0, kNone},
    SecDef{"kretsyscall+", kKprobe, 0, kNone},
    SecDef{"usdt+", kKprobe, 0, kUsdt},
    SecDef{"usdt.s+", kKprobe, 0, kUsdt | kSleep},
    SecDef{"tc/ingress", kSched, uapi::kTcxIngress, kNone},  // alias of tcx/ingress
    SecDef{"tc/egress", kSched, uapi::kTcxEgress, kNone},    // alias of tcx/egress
    SecDef{"tcx/ingress", kSched, uapi::kTcxIngress, kNone},
    SecDef{"tcx/egress", kSched, uapi::kTcxEgress, kNone},
    SecDef{"netkit/primary", kSched, uapi::kNetkitPrimary, kNone},
    SecDef{"netkit/peer", kSched, uapi::kNetkitPeer, kNone},
    SecDef{"tc", kSched, 0, kNone},
    SecDef{"classifier", kSched, 0, kNone},
    SecDef{"action", P(BPF_PROG_TYPE_SCHED_ACT), 0, kNone},
    SecDef{"tracepoint+", P(BPF_PROG_TYPE_TRACEPOINT), 0, kNone},
    SecDef{"tp+", P(BPF_PROG_TYPE_TRACEPOINT), 0, kNone},
    SecDef{"raw_tracepoint+", P(BPF_PROG_TYPE_RAW_TRACEPOINT), 0, kNone},
    SecDef{"raw_tp+", P(BPF_PROG_TYPE_RAW_TRACEPOINT), 0, kNone},
    SecDef{"raw_tracepoint.w+", P(BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE), 0, kNone},
    SecDef{"raw_tp.w+", P(BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE), 0, kNone},
    SecDef{"tp_btf+", kTracing, A(BPF_TRACE_RAW_TP), kBtf},
    SecDef{"fentry+", kTracing, A(BPF_TRACE_FENTRY), kBtf},
    SecDef{"fmod_ret+", kTracing, A(BPF_MODIFY_RETURN), kBtf},
    SecDef{"fexit+", kTracing, A(BPF_TRACE_FEXIT), kBtf},
    SecDef{"fentry.s+", kTracing, A(BPF_TRACE_FENTRY), kBtf | kSleep},
    SecDef{"fmod_ret.s+", kTracing, A(BPF_MODIFY_RETURN), kBtf | kSleep},
    SecDef{"fexit.s+", kTracing, A(BPF_TRACE_FEXIT), kBtf | kSleep},
    SecDef{"freplace+", P(BPF_PROG_TYPE_EXT), 0, kBtf},
    SecDef{"lsm+", P(BPF_PROG_TYPE_LSM), A(BPF_LSM_MAC), kBtf},
    SecDef{"lsm.s+", P(BPF_PROG_TYPE_LSM), A(BPF_LSM_MAC), kBtf | kSleep},
    SecDef{"lsm_cgroup+", P(BPF_PROG_TYPE_LSM), A(BPF_LSM_CGROUP), kBtf},
    SecDef{"iter+", kTracing, A(BPF_TRACE_ITER), kBtf},
    SecDef{"iter.s+", kTracing, A(BPF_TRACE_ITER), kBtf | kSleep},
    SecDef{"syscall", P(BPF_PROG_TYPE_SYSCALL), 0, kSleep},
    SecDef{"xdp.frags/devmap", P(BPF_PROG_TYPE_XDP), A(BPF_XDP_DEVMAP), kFrags},
    SecDef{"xdp/devmap", P(BPF_PROG_TYPE_XDP), A(BPF_XDP_DEVMAP), kAtt},
    SecDef{"xdp.frags/cpumap", P(BPF_PROG_TYPE_XDP), A(BPF_XDP_CPUMAP), kFrags},
    SecDef{"xdp/cpumap", P(BPF_PROG_TYPE_XDP), A(BPF_XDP_CPUMAP), kAtt},
    SecDef{"xdp.frags", P(BPF_PROG_TYPE_XDP), A(BPF_XDP), kFrags},
    SecDef{"xdp", P(BPF_PROG_TYPE_XDP), A(BPF_XDP), kAttOpt},
    SecDef{"perf_event", P(BPF_PROG_TYPE_PERF_EVENT), 0, kNone},
    SecDef{"lwt_in", P(BPF_PROG_TYPE_LWT_IN), 0, kNone},
    SecDef{"lwt_out", P(BPF_PROG_TYPE_LWT_OUT), 0, kNone},
    SecDef{"lwt_xmit", P(BPF_PROG_TYPE_LWT_XMIT), 0, kNone},
    SecDef{"lwt_seg6local", P(BPF_PROG_TYPE_LWT_SEG6LOCAL), 0, kNone},
    SecDef{"sockops", P(BPF_PROG_TYPE_SOCK_OPS), A(BPF_CGROUP_SOCK_OPS), kAttOpt},
    SecDef{"sk_skb/stream_parser", P(BPF_PROG_TYPE_SK_SKB), A(BPF_SK_SKB_STREAM_PARSER), kAttOpt},
    SecDef{"sk_skb/stream_verdict", P(BPF_PROG_TYPE_SK_SKB), A(BPF_SK_SKB_STREAM_VERDICT), kAttOpt},
    SecDef{"sk_skb/verdict", P(BPF_PROG_TYPE_SK_SKB), A(BPF_SK_SKB_VERDICT), kAttOpt},
    SecDef{"sk_skb", P(BPF_PROG_TYPE_SK_SKB), 0, kNone},
    SecDef{"sk_msg", P(BPF_PROG_TYPE_SK_MSG), A(BPF_SK_MSG_VERDICT), kAttOpt},
    SecDef{"lirc_mode2", P(BPF_PROG_TYPE_LIRC_MODE2), A(BPF_LIRC_MODE2), kAttOpt},
    SecDef{"flow_dissector", P(BPF_PROG_TYPE_FLOW_DISSECTOR), A(BPF_FLOW_DISSECTOR), kAttOpt},
    SecDef{"cgroup_skb/ingress", P(BPF_PROG_TYPE_CGROUP_SKB), A(BPF_CGROUP_INET_INGRESS), kAttOpt},
    SecDef{"cgroup_skb/egress", P(BPF_PROG_TYPE_CGROUP_SKB), A(BPF_CGROUP_INET_EGRESS), kAttOpt},
    SecDef{"cgroup/skb", P(BPF_PROG_TYPE_CGROUP_SKB), 0, kNone},
    SecDef{"cgroup/sock_create", P(BPF_PROG_TYPE_CGROUP_SOCK), A(BPF_CGROUP_INET_SOCK_CREATE), kAtt},
    SecDef{"cgroup/sock_release", P(BPF_PROG_TYPE_CGROUP_SOCK), A(BPF_CGROUP_INET_SOCK_RELEASE), kAtt},
    SecDef{"cgroup/sock", P(BPF_PROG_TYPE_CGROUP_SOCK), A(BPF_CGROUP_INET_SOCK_CREATE), kAttOpt},
    SecDef{"cgroup/post_bind4", P(BPF_PROG_TYPE_CGROUP_SOCK), A(BPF_CGROUP_INET4_POST_BIND), kAtt},
    SecDef{"cgroup/post_bind6", P(BPF_PROG_TYPE_CGROUP_SOCK), A(BPF_CGROUP_INET6_POST_BIND), kAtt},
    SecDef{"cgroup/bind4", kSockAddr, A(BPF_CGROUP_INET4_BIND), kAtt},
    SecDef{"cgroup/bind6", kSockAddr, A(BPF_CGROUP_INET6_BIND), kAtt},
    SecDef{"cgroup/connect4", kSockAddr, A(BPF_CGROUP_INET4_CONNECT), kAtt},
    SecDef{"cgroup/connect6", kSockAddr, A(BPF_CGROUP_INET6_CONNECT), kAtt},
    SecDef{"cgroup/connect_unix", kSockAddr, uapi::kCgroupUnixConnect, kAtt},
    SecDef{"cgroup/sendmsg4", kSockAddr, A(BPF_CGROUP_UDP4_SENDMSG), kAtt},
    SecDef{"cgroup/sendmsg6", kSockAddr, A(BPF_CGROUP_UDP6_SENDMSG), kAtt},
    SecDef{"cgroup/sendmsg_unix", kSockAddr, uapi::kCgroupUnixSendmsg, kAtt},
    SecDef{"cgroup/recvmsg4", kSockAddr, A(BPF_CGROUP_UDP4_RECVMSG), kAtt},
    SecDef{"cgroup/recvmsg6", kSockAddr, A(BPF_CGROUP_UDP6_RECVMSG), kAtt},
    SecDef{"cgroup/recvmsg_unix", kSockAddr, uapi::kCgroupUnixRecvmsg, kAtt},
    SecDef{"cgroup/getpeername4", kSockAddr, A(BPF_CGROUP_INET4_GETPEERNAME), kAtt},
    SecDef{"cgroup/getpeername6", kSockAddr, A(BPF_CGROUP_INET6_GETPEERNAME), kAtt},
    SecDef{"cgroup/getpeername_unix", kSockAddr, uapi::kCgroupUnixGetpeername, kAtt},
    SecDef{"cgroup/getsockname4", kSockAddr, A(BPF_CGROUP_INET4_GETSOCKNAME), kAtt},
    SecDef{"cgroup/getsockname6", kSockAddr, A(BPF_CGROUP_INET6_GETSOCKNAME), kAtt},
    SecDef{"cgroup/getsockname_unix", kSockAddr, uapi::kCgroupUnixGetsockname, kAtt},
    SecDef{"cgroup/sysctl", P(BPF_PROG_TYPE_CGROUP_SYSCTL), A(BPF_CGROUP_SYSCTL), kAtt},
    SecDef{"cgroup/getsockopt", P(BPF_PROG_TYPE_CGROUP_SOCKOPT), A(BPF_CGROUP_GETSOCKOPT), kAtt},
    SecDef{"cgroup/setsockopt", P(BPF_PROG_TYPE_CGROUP_SOCKOPT), A(BPF_CGROUP_SETSOCKOPT), kAtt},
    SecDef{"cgroup/dev", P(BPF_PROG_TYPE_CGROUP_DEVICE), A(BPF_CGROUP_DEVICE), kAttOpt},
    SecDef{"struct_ops+", P(BPF_PROG_TYPE_STRUCT_OPS), 0, kNone},
    SecDef{"struct_ops.s+", P(BPF_PROG_TYPE_STRUCT_OPS), 0, kSleep},
    SecDef{"sk_lookup", P(BPF_PROG_TYPE_SK_LOOKUP), A(BPF_SK_LOOKUP), kAtt},
    SecDef{"netfilter", uapi::kProgTypeNetfilter, uapi::kNetfilter, kNone},
};

bool matches(std::string_view pattern, std::string_view section) {
  if (pattern.empty()) return false;
  const char last = pattern.back();
  if (last == '/') return section.starts_with(pattern);
  if (last == '+') {
    pattern.remove_suffix(1);
    if (!section.starts_with(pattern)) return false;
    return section.size() == pattern.size() || section[pattern.size()] == '/';
  }
  return section == pattern;
}

}  // namespace

std::span<const SecDef> sec_defs() { return kTable; }

const SecDef* find_sec_def(std::string_view section) {
  for (const SecDef& d : kTable)
    if (matches(d.prefix, section)) return &d;
  return nullptr;
}

std::string_view sec_attach_target(const SecDef& def, std::string_view section) {
  std::string_view p = def.prefix;
  if (!p.empty() && (p.back() == '+' || p.back() == '/')) p.remove_suffix(1);
  if (section.size() <= p.size() + 1 || !section.starts_with(p) || section[p.size()] != '/') return {};
  return section.substr(p.size() + 1);
}

std::string_view prog_type_name(std::uint32_t t) {
  static constexpr std::array<std::string_view, 33> kNames = {
      "unspec", "socket_filter", "kprobe", "sched_cls", "sched_act", "tracepoint", "xdp", "perf_event",
      "cgroup_skb", "cgroup_sock", "lwt_in", "lwt_out", "lwt_xmit", "sock_ops", "sk_skb", "cgroup_device",
      "sk_msg", "raw_tracepoint", "cgroup_sock_addr", "lwt_seg6local", "lirc_mode2", "sk_reuseport",
      "flow_dissector", "cgroup_sysctl", "raw_tracepoint_writable", "cgroup_sockopt", "tracing", "struct_ops",
      "ext", "lsm", "sk_lookup", "syscall", "netfilter"};
  static_assert(BPF_PROG_TYPE_SK_LOOKUP == 30);
  return t < kNames.size() ? kNames[t] : std::string_view("unknown");
}

std::string_view attach_type_name(std::uint32_t t) {
  static constexpr std::array<std::string_view, uapi::kMaxAttachType> kNames = {
      "cgroup_inet_ingress", "cgroup_inet_egress", "cgroup_inet_sock_create", "cgroup_sock_ops",
      "sk_skb_stream_parser", "sk_skb_stream_verdict", "cgroup_device", "sk_msg_verdict", "cgroup_inet4_bind",
      "cgroup_inet6_bind", "cgroup_inet4_connect", "cgroup_inet6_connect", "cgroup_inet4_post_bind",
      "cgroup_inet6_post_bind", "cgroup_udp4_sendmsg", "cgroup_udp6_sendmsg", "lirc_mode2", "flow_dissector",
      "cgroup_sysctl", "cgroup_udp4_recvmsg", "cgroup_udp6_recvmsg", "cgroup_getsockopt", "cgroup_setsockopt",
      "trace_raw_tp", "trace_fentry", "trace_fexit", "modify_return", "lsm_mac", "trace_iter",
      "cgroup_inet4_getpeername", "cgroup_inet6_getpeername", "cgroup_inet4_getsockname",
      "cgroup_inet6_getsockname", "xdp_devmap", "cgroup_inet_sock_release", "xdp_cpumap", "sk_lookup", "xdp",
      "sk_skb_verdict", "sk_reuseport_select", "sk_reuseport_select_or_migrate", "perf_event",
      "trace_kprobe_multi", "lsm_cgroup", "struct_ops", "netfilter", "tcx_ingress", "tcx_egress",
      "trace_uprobe_multi", "cgroup_unix_connect", "cgroup_unix_sendmsg", "cgroup_unix_recvmsg",
      "cgroup_unix_getpeername", "cgroup_unix_getsockname", "netkit_primary", "netkit_peer",
      "trace_kprobe_session", "trace_uprobe_session"};
  return t < kNames.size() ? kNames[t] : std::string_view("unknown");
}

std::string_view map_type_name(std::uint32_t t) {
  static constexpr std::array<std::string_view, uapi::kMaxMapType> kNames = {
      "unspec", "hash", "array", "prog_array", "perf_event_array", "percpu_hash", "percpu_array",
      "stack_trace", "cgroup_array", "lru_hash", "lru_percpu_hash", "lpm_trie", "array_of_maps",
      "hash_of_maps", "devmap", "sockmap", "cpumap", "xskmap", "sockhash", "cgroup_storage",
      "reuseport_sockarray", "percpu_cgroup_storage", "queue", "stack", "sk_storage", "devmap_hash",
      "struct_ops", "ringbuf", "inode_storage", "task_storage", "bloom_filter", "user_ringbuf",
      "cgrp_storage", "arena"};
  return t < kNames.size() ? kNames[t] : std::string_view("unknown");
}

}  // namespace userbpf::loader
