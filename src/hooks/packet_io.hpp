// Packet sources and sinks: pcap/pcapng files (libpcap), pcap writing, and
// live AF_PACKET sockets. What `userbpf filter`, `userbpf capture` and
// `prog run --pcap` read packets from and write them to.
//
// A PacketSource hands out one packet at a time as a view into its own
// buffer (valid until the next call), with the capture's link type (DLT /
// LINKTYPE value, e.g. kLinkEthernet) and, for live sockets, the metadata
// the kernel gives a packet socket (interface, direction, protocol, VLAN tag
// from PACKET_AUXDATA). <pcap/pcap.h> stays inside packet_io.cpp: its
// struct bpf_insn clashes with <linux/bpf.h>.
//
// Live capture (open_live): an AF_PACKET SOCK_RAW socket created with
// protocol 0 (so that it queues nothing), bound to the interface with
// ETH_P_ALL: only that interface's packets, both directions, none from
// before the bind. VLAN tags the kernel took off (offload) are put back into
// the data as libpcap does, so filters see the frame as on the wire.
// Needs CAP_NET_RAW (root); errors say so, and name an unknown interface.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"

namespace userbpf::hooks {

inline constexpr int kLinkEthernet = 1;  // DLT_EN10MB / LINKTYPE_ETHERNET
inline constexpr int kLinkRaw = 12;      // DLT_RAW (Linux value; files say LINKTYPE_RAW 101, libpcap maps it)

// What a packet socket says about a packet (sockaddr_ll + tpacket_auxdata).
struct PacketMeta {
  bool live = false;            // the fields below are set (from a socket)
  std::uint32_t ifindex = 0;
  std::uint16_t protocol = 0;   // ethertype, host order
  std::uint8_t pkt_type = 0;    // PACKET_HOST 0, BROADCAST 1, MULTICAST 2, OTHERHOST 3, OUTGOING 4
  std::uint16_t hatype = 0;     // ARPHRD_*
  bool vlan_present = false;    // the kernel had an offloaded tag (it is back in the data)
  std::uint16_t vlan_tci = 0;
  std::uint16_t vlan_tpid = 0;  // host order
};

struct Packet {
  std::span<const std::uint8_t> data;  // captured bytes
  std::uint32_t wirelen = 0;           // length on the wire (>= data.size())
  std::int64_t sec = 0;
  std::int64_t usec = 0;
  PacketMeta meta;
};

enum class Next : std::uint8_t { Packet, End, Timeout };

class PacketSource {
 public:
  virtual ~PacketSource() = default;
  // The next packet into `out` (a view valid until the next call). Files
  // never time out; live sources wait at most timeout_ms (< 0: forever) and
  // return Timeout when nothing came (also when a signal interrupted the wait).
  // Errors name the source and, for files, the packet index.
  virtual Result<Next> next(Packet& out, int timeout_ms) = 0;
  [[nodiscard]] virtual int linktype() const = 0;
  [[nodiscard]] virtual std::uint32_t snaplen() const = 0;
  [[nodiscard]] virtual const std::string& name() const = 0;
};

// A pcap or pcapng file ("-" is standard input).
Result<std::unique_ptr<PacketSource>> open_file(const std::string& path);

struct LiveOptions {
  std::string iface;
  std::uint32_t snaplen = 262144;
  bool promisc = false;
  bool inbound_only = false;  // skip PACKET_OUTGOING
};
Result<std::unique_ptr<PacketSource>> open_live(const LiveOptions& opts);

// Writes a pcap file (microsecond timestamps), as libpcap's pcap_dump.
class PcapWriter {
 public:
  static Result<PcapWriter> open(const std::string& path, int linktype, std::uint32_t snaplen = 262144);
  PcapWriter(PcapWriter&&) noexcept;
  PcapWriter& operator=(PcapWriter&&) noexcept;
  ~PcapWriter();
  // `data` as the packet's bytes (a program may have changed them); time
  // and wire length from `like` (wire length at least data.size()).
  void write(std::span<const std::uint8_t> data, const Packet& like);
  void write(const Packet& p) { write(p.data, p); }
  void flush();
  [[nodiscard]] std::uint64_t written() const;

 private:
  struct Impl;
  explicit PcapWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Every packet of a file, copied (for tools that need them all at once).
struct OwnedPacket {
  std::vector<std::uint8_t> bytes;
  std::uint32_t wirelen = 0;
  std::int64_t sec = 0, usec = 0;
  [[nodiscard]] Packet view() const { return Packet{bytes, wirelen, sec, usec, {}}; }
};
struct Capture {
  std::vector<OwnedPacket> packets;
  int linktype = kLinkEthernet;
};
Result<Capture> read_file(const std::string& path);

// Link type names as libpcap spells them ("EN10MB", "RAW", "LINUX_SLL").
std::string linktype_name(int linktype);
// A name ("EN10MB", case-insensitive) or a number ("1", "0x71").
Result<int> linktype_from_name(std::string_view name);

}  // namespace userbpf::hooks
