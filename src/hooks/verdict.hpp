// What a packet program's return value means for the packet, per program
// type: the name (XDP_PASS, TC_ACT_SHOT, KEEP n bytes, ...) and whether the
// packet goes on (is kept). Program types are the kernel's BPF_PROG_TYPE_*.
#pragma once

#include <cstdint>
#include <string>

namespace userbpf::hooks {

std::string verdict_name(std::uint32_t prog_type, std::uint32_t rc);
// XDP: PASS/TX/REDIRECT; tc: not SHOT/STOLEN/QUEUED/TRAP; socket filter:
// rc > 0; cgroup skb: rc == 1; other types: rc != 0.
bool verdict_keeps(std::uint32_t prog_type, std::uint32_t rc);
// Whether the type runs on packets (XDP, tc, socket filter, cgroup skb, ...).
bool is_packet_program(std::uint32_t prog_type);

}  // namespace userbpf::hooks
