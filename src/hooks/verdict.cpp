// Verdicts of packet programs; see verdict.hpp. Values from linux/bpf.h
// (XDP actions) and linux/pkt_cls.h (TC_ACT_*).
#include "hooks/verdict.hpp"

#include <fmt/format.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <array>

namespace userbpf::hooks {

namespace {
constexpr std::array<const char*, 5> kXdp = {"XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"};
static_assert(XDP_ABORTED == 0 && XDP_DROP == 1 && XDP_PASS == 2 && XDP_TX == 3 && XDP_REDIRECT == 4);

struct TcAct {
  int value;
  const char* name;
  bool keeps;
};
constexpr std::array<TcAct, 10> kTc = {{
    {TC_ACT_UNSPEC, "TC_ACT_UNSPEC", true},
    {TC_ACT_OK, "TC_ACT_OK", true},
    {TC_ACT_RECLASSIFY, "TC_ACT_RECLASSIFY", true},
    {TC_ACT_SHOT, "TC_ACT_SHOT", false},
    {TC_ACT_PIPE, "TC_ACT_PIPE", true},
    {TC_ACT_STOLEN, "TC_ACT_STOLEN", false},
    {TC_ACT_QUEUED, "TC_ACT_QUEUED", false},
    {TC_ACT_REPEAT, "TC_ACT_REPEAT", true},
    {TC_ACT_REDIRECT, "TC_ACT_REDIRECT", true},
    {TC_ACT_TRAP, "TC_ACT_TRAP", false},
}};

const TcAct* tc_act(std::uint32_t rc) {
  for (const TcAct& a : kTc)
    if (a.value == static_cast<std::int32_t>(rc)) return &a;
  return nullptr;
}

bool is_tc(std::uint32_t t) { return t == BPF_PROG_TYPE_SCHED_CLS || t == BPF_PROG_TYPE_SCHED_ACT; }
}  // namespace

std::string verdict_name(std::uint32_t prog_type, std::uint32_t rc) {
  if (prog_type == BPF_PROG_TYPE_XDP) return rc < kXdp.size() ? kXdp[rc] : fmt::format("XDP_UNKNOWN({})", rc);
  if (is_tc(prog_type)) {
    const TcAct* a = tc_act(rc);
    return a != nullptr ? a->name : fmt::format("TC_ACT({})", static_cast<std::int32_t>(rc));
  }
  if (prog_type == BPF_PROG_TYPE_SOCKET_FILTER) return rc == 0 ? "DROP (0)" : fmt::format("KEEP {} bytes", rc);
  if (prog_type == BPF_PROG_TYPE_CGROUP_SKB) return rc == 1 ? "ALLOW (1)" : rc == 0 ? "DENY (0)" : fmt::format("RET({})", rc);
  return fmt::format("{}", rc);
}

bool verdict_keeps(std::uint32_t prog_type, std::uint32_t rc) {
  if (prog_type == BPF_PROG_TYPE_XDP) return rc == XDP_PASS || rc == XDP_TX || rc == XDP_REDIRECT;
  if (is_tc(prog_type)) {
    const TcAct* a = tc_act(rc);
    return a == nullptr || a->keeps;
  }
  if (prog_type == BPF_PROG_TYPE_CGROUP_SKB) return rc == 1;
  return rc != 0;
}

bool is_packet_program(std::uint32_t t) {
  switch (t) {
    case BPF_PROG_TYPE_XDP:
    case BPF_PROG_TYPE_SCHED_CLS:
    case BPF_PROG_TYPE_SCHED_ACT:
    case BPF_PROG_TYPE_SOCKET_FILTER:
    case BPF_PROG_TYPE_CGROUP_SKB:
    case BPF_PROG_TYPE_LWT_IN:
    case BPF_PROG_TYPE_LWT_OUT:
    case BPF_PROG_TYPE_LWT_XMIT:
    case BPF_PROG_TYPE_FLOW_DISSECTOR: return true;
    default: return false;
  }
}

}  // namespace userbpf::hooks
