// The tcpdump expression corpus of the classic BPF tests (cbpf_pcap_test,
// cbpf_batch_test): hand-written expressions and generated combinations,
// all of which libpcap compiles for Ethernet with kNetmask.
#pragma once

#include <pcap/pcap.h>

#include <iterator>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace userbpf::testing {

// Hand-written expressions: protocols, hosts, nets, ports, vlan, ip6, tcp
// flags, byte offsets, arithmetic, lengths, and/or/not.
inline const char* const kHandWritten[] = {
    "", "ip", "ip6", "arp", "rarp", "tcp", "udp", "icmp", "icmp6", "igmp", "sctp", "ip proto 47",
    "ip6 proto 17", "ether proto 0x88cc", "ether broadcast", "ether multicast", "ip multicast", "ip broadcast",
    "ether host 00:01:02:03:04:05", "ether src aa:bb:cc:dd:ee:ff", "ether dst ff:ff:ff:ff:ff:ff",
    "host 10.0.0.1", "src host 10.0.0.2", "dst host 192.168.1.1", "host 10.0.0.1 or host 8.8.8.8",
    "net 192.168.0.0/16", "src net 10.0.0.0/8", "dst net 172.16.0.0 mask 255.255.0.0", "not net 10.0.0.0/8",
    "net 192.168.1.0/24 and not host 192.168.1.100", "ip6 host 2001:db8::1", "ip6 net 2001:db8::/32",
    "ip6 src net fe80::/10", "ip6 dst host ff02::1", "ip6 multicast", "port 80", "port 53", "tcp port 443",
    "udp port 53", "src port 22", "dst port 8080", "portrange 1-1024", "tcp portrange 8000-9000",
    "udp dst portrange 60-70", "not port 22", "tcp port 80 or tcp port 443", "port 80 and host 10.0.0.1",
    "tcp and not port 22 and not port 80", "(tcp or udp) and port 53", "ip and udp and port 123",
    "ip6 and tcp and port 80", "ip6 and udp", "ip6 and icmp6", "vlan", "vlan 100", "vlan and ip", "vlan and ip6",
    "vlan 100 and tcp", "vlan and vlan", "not vlan", "vlan and port 53", "tcp[tcpflags] & tcp-syn != 0",
    "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", "tcp[tcpflags] & tcp-rst != 0",
    "tcp[tcpflags] & (tcp-fin|tcp-push) != 0", "tcp[13] = 18", "tcp[13] & 2 = 2", "tcp[12] & 0xf0 > 0x50",
    "icmp[icmptype] = icmp-echo", "icmp[icmptype] != icmp-echo and icmp[icmptype] != icmp-echoreply",
    "icmp[0] = 3", "ip[0] & 0xf != 5", "ip[6:2] & 0x1fff != 0", "ip[6] & 0x20 != 0", "ip[8] < 32", "ip[1] & 0xfc = 0",
    "ip[2:2] > 100", "ip[12:4] = 0x0a000001", "udp[0:2] = 53 or udp[2:2] = 53", "udp[4:2] > 40", "ether[12:2] = 0x0806",
    "ether[0] & 1 != 0", "ether[0:4] = 0xffffffff", "ip6[6] = 6", "ip6[40] = 0", "arp[6:2] = 1", "arp[6:2] = 2",
    "len > 100", "len <= 60", "greater 200", "less 64", "len - 14 > 40", "ip[2:2] - ((ip[0] & 0xf) * 4) > 20",
    "(ip[0] & 0xf) * 4 = 20", "ip[2:2] / 4 > 20", "ip[0] % 16 = 5", "ip[1] ^ 0xff != 0xff", "ip[0] << 2 > 60",
    "ip[2:2] >> 4 < 3", "ip[8] + ip[9] > 100", "ip[9] * 3 = 18", "100 / ip[1] > 0", "ip[2:2] - len < 0",
    "tcp[0:2] + tcp[2:2] = 8102", "-ip[8] < 0", "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420",
    "ip and ip[9] != 6 and ip[9] != 17", "ip6 or arp", "not ip and not ip6", "ether proto \\ip6 and not tcp",
    "ip proto \\udp or ip proto \\icmp", "ip6 protochain 6", "ip protochain 17", "tcp dst port 80 and src net 10.0.0.0/8",
    "host 192.168.1.1 and (port 80 or port 443)", "not (tcp or udp or icmp)", "ip and not ip[6:2] & 0x3fff != 0",
    "ip[6:2] & 0x3fff = 0 and udp", "udp and udp[8] = 0", "tcp[20:4] != 0", "icmp6 and ip6[40] = 128",
    "ether src 00:01:02:03:04:05 and ip", "ip and ip[10:2] = 0", "mpls", "ip6[0:4] & 0x0fffffff = 0",
};

inline constexpr bpf_u_int32 kNetmask = 0xffffff00;  // for "ip broadcast"

inline bool compiles(const std::string& expr) {
  pcap_t* dead = pcap_open_dead(DLT_EN10MB, 262144);
  bpf_program bp{};
  const bool ok = pcap_compile(dead, &bp, expr.c_str(), 1, kNetmask) == 0;
  if (ok) pcap_freecode(&bp);
  pcap_close(dead);
  return ok;
}

// Generated: random boolean combinations of primitives (those libpcap
// compiles: it refuses expressions it proves reject every packet).
inline std::vector<std::string> generated(std::size_t n, std::uint32_t seed) {
  const std::vector<std::string> prims = {
      "tcp", "udp", "icmp", "ip", "ip6", "arp", "vlan", "port 80", "port 53", "port 22", "src port 443",
      "dst port 8080", "host 10.0.0.1", "host 192.168.1.100", "net 10.0.0.0/8", "src net 192.168.0.0/16",
      "dst host 8.8.8.8", "tcp[tcpflags] & tcp-syn != 0", "tcp[tcpflags] & tcp-ack != 0", "ip[8] > 64",
      "len > 128", "len < 80", "ip[6:2] & 0x1fff != 0", "ether multicast", "ip6 host 2001:db8::2",
      "portrange 1000-2000", "udp[4:2] > 30", "ip[1] & 0xfc != 0", "icmp[icmptype] = icmp-echo",
      "ether[12:2] > 0x0800", "ip6 net fe80::/10", "ip proto 47", "tcp[13] & 0x11 = 0x11", "ip[2:2] * 2 > 300"};
  std::mt19937 rng(seed);
  auto pick = [&](std::size_t k) { return static_cast<std::size_t>(rng() % k); };
  std::set<std::string> seen;
  std::vector<std::string> out;
  while (out.size() < n) {
    const std::size_t terms = 2 + pick(3);
    std::string e;
    for (std::size_t i = 0; i < terms; ++i) {
      std::string t = prims[pick(prims.size())];
      if (pick(4) == 0) t = "not " + t;
      if (pick(3) == 0) t = "(" + t + ")";
      if (i > 0) e += pick(2) == 0 ? " and " : " or ";
      e += t;
    }
    if (pick(5) == 0) e = "not (" + e + ")";
    if (seen.insert(e).second && compiles(e)) out.push_back(e);
  }
  return out;
}

// The corpus of the differential tests: 125 hand-written, 200 generated.
inline std::vector<std::string> corpus() {
  std::vector<std::string> all(std::begin(kHandWritten), std::end(kHandWritten));
  for (auto& e : generated(200, 7)) all.push_back(e);
  return all;
}

}  // namespace userbpf::testing
