// Classic BPF on packets: tcpdump expressions compiled by libpcap
// (pcap_compile, the whole pcap-filter language, any link type libpcap
// knows) and the socket-filter context of a packet from a file or a live
// socket. Used by `userbpf filter` and `userbpf capture`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "cbpf/cbpf.hpp"
#include "cbpf/exec.hpp"
#include "hooks/packet_io.hpp"

namespace userbpf::hooks {

struct CompileOptions {
  int linktype = kLinkEthernet;
  std::uint32_t snaplen = 262144;
  bool optimize = true;
};
// The classic program libpcap makes of `expr`; errors quote libpcap's message.
Result<std::vector<cbpf::Insn>> compile_expression(std::string_view expr, const CompileOptions& opts = {});

cbpf::LinkLayer link_layer(int linktype);

// cbpf::make_context from the bytes, then what a live socket told about the
// packet (interface, direction, hardware type, protocol, VLAN tag) on top.
cbpf::SkbContext skb_context(const Packet& p, cbpf::LinkLayer link, bool payload_offset = true);

// Runs a classic filter on a packet: packets from files (no live metadata)
// take Filter::run_frame (the context only as far as the filter reads it),
// live ones the full skb_context.
std::uint32_t run_classic(cbpf::Filter& f, const Packet& p, cbpf::LinkLayer link);

// Socket-filter verdict text: "DROP" for 0, else "KEEP n".
std::string classic_verdict(std::uint32_t ret);

}  // namespace userbpf::hooks
