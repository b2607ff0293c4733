// Classic BPF on packets: tcpdump expressions compiled by libpcap
// (pcap_compile, the whole pcap-filter language, any link type libpcap
// knows) and the socket-filter context of a packet from a file or a live
// socket. Used by `userbpf filter` and `userbpf capture`.
#pragma once

#include <cstdint>
#include <span>
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

// Packets read from a source in batches, for cbpf::Filter::run_batch: each
// packet is copied (a source's view lasts only until its next call), with
// its time and metadata, and described by a cbpf::Frame.
class PacketBatch {
 public:
  // Reads up to `max` packets (fewer at the end of a file, or when a live
  // source times out); returns how many (0: nothing more). Errors are the
  // source's.
  Result<std::size_t> fill(PacketSource& src, std::size_t max = cbpf::Filter::kBatch, int timeout_ms = -1);
  [[nodiscard]] std::size_t size() const { return packets_.size(); }
  [[nodiscard]] const Packet& packet(std::size_t i) const { return packets_[i]; }
  [[nodiscard]] std::span<const cbpf::Frame> frames() const { return frames_; }

 private:
  std::vector<std::uint8_t> bytes_;
  std::vector<std::size_t> offsets_;
  std::vector<Packet> packets_;
  std::vector<cbpf::Frame> frames_;
};

// run_classic for every packet of a batch: out[i] = the verdict of packet i
// (out.size() >= b.size()); returns how many are kept (non-zero). Packets
// from files run through Filter::run_batch (batched native code where the
// filter allows it), live ones one by one (their context has live metadata).
std::size_t run_classic_batch(cbpf::Filter& f, const PacketBatch& b, std::span<std::uint32_t> out,
                              cbpf::LinkLayer link);

// Socket-filter verdict text: "DROP" for 0, else "KEEP n".
std::string classic_verdict(std::uint32_t ret);

}  // namespace userbpf::hooks
