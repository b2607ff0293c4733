// Deterministic packet generator for the classic BPF tests and benchmark:
// Ethernet frames carrying IPv4/IPv6 with TCP/UDP/ICMP/ICMPv6/IGMP, ARP,
// 802.1Q and QinQ tags, IPv4 options and fragments, broadcast/multicast
// destinations, unknown ethertypes, truncated captures (caplen < len) and
// runt frames. Hosts, nets, ports and TCP flags come from small pools so
// that filter expressions match some packets and not others.
#pragma once

#include <pcap/pcap.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace userbpf::testing {

struct Packet {
  std::vector<std::uint8_t> data;  // captured bytes
  std::uint32_t wirelen = 0;
};

class PacketGen {
 public:
  explicit PacketGen(std::uint32_t seed) : rng_(seed) {}

  Packet next() {
    Packet p;
    auto& d = p.data;
    // Ethernet header
    static const std::uint8_t kMacs[][6] = {{0, 1, 2, 3, 4, 5},        {0x10, 0x20, 0x30, 0x40, 0x50, 0x60},
                                            {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {0x01, 0x00, 0x5e, 0, 0, 1},
                                            {0x33, 0x33, 0, 0, 0, 1},  {0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}};
    const auto& dst = kMacs[pick(6)];
    const auto& src = kMacs[pick(6)];
    d.insert(d.end(), dst, dst + 6);
    d.insert(d.end(), src, src + 6);
    const unsigned vlan = pick(10) == 0 ? 1 + pick(2) : 0;  // 10%: one or two tags
    for (unsigned i = 0; i < vlan; ++i) {
      put16(d, i == 0 && vlan == 2 && pick(2) == 0 ? 0x88a8 : 0x8100);
      put16(d, static_cast<std::uint16_t>((pick(8) << 13) | (pick(3) == 0 ? 100 : 1 + pick(4094))));
    }
    const unsigned kind = pick(100);
    if (kind < 45) {
      put16(d, 0x0800);
      ipv4(d);
    } else if (kind < 75) {
      put16(d, 0x86dd);
      ipv6(d);
    } else if (kind < 85) {
      put16(d, 0x0806);
      arp(d);
    } else if (kind < 90) {
      static const std::uint16_t kOther[] = {0x8847, 0x88cc, 0x9000, 0x0842, 0x8035};
      put16(d, kOther[pick(5)]);
      fill(d, 20 + pick(60));
    } else {
      put16(d, 0x0800);
      ipv4(d);
    }
    p.wirelen = static_cast<std::uint32_t>(d.size());
    const unsigned cut = pick(20);
    if (cut == 0) {
      d.resize(pick(static_cast<unsigned>(d.size())));  // truncated capture
    } else if (cut == 1) {
      d.resize(std::min<std::size_t>(d.size(), pick(16)));  // runt
      p.wirelen = static_cast<std::uint32_t>(d.size());
    }
    return p;
  }

 private:
  unsigned pick(unsigned n) { return n == 0 ? 0 : static_cast<unsigned>(rng_() % n); }
  static void put16(std::vector<std::uint8_t>& d, unsigned v) {
    d.push_back(static_cast<std::uint8_t>(v >> 8));
    d.push_back(static_cast<std::uint8_t>(v));
  }
  static void put32(std::vector<std::uint8_t>& d, std::uint32_t v) {
    put16(d, v >> 16);
    put16(d, v & 0xffff);
  }
  void fill(std::vector<std::uint8_t>& d, unsigned n) {
    for (unsigned i = 0; i < n; ++i) d.push_back(static_cast<std::uint8_t>(rng_()));
  }
  std::uint32_t host4() {
    static const std::uint32_t kHosts[] = {0x0a000001, 0x0a000002, 0x0a000005, 0xc0a80101, 0xc0a80164,
                                           0xc0a80201, 0xac100001, 0x08080808, 0x7f000001, 0xe0000001};
    return pick(5) == 0 ? static_cast<std::uint32_t>(rng_()) : kHosts[pick(10)];
  }
  std::uint16_t port() {
    static const std::uint16_t kPorts[] = {22, 53, 80, 443, 8080, 123, 25, 1024, 5353, 67, 68, 3306};
    return pick(4) == 0 ? static_cast<std::uint16_t>(rng_()) : kPorts[pick(12)];
  }
  void l4(std::vector<std::uint8_t>& d, unsigned proto, bool v6) {
    if (proto == 6) {
      put16(d, port());
      put16(d, port());
      put32(d, static_cast<std::uint32_t>(rng_()));
      put32(d, static_cast<std::uint32_t>(rng_()));
      const unsigned doff = pick(4) == 0 ? 5 + pick(4) : 5;
      d.push_back(static_cast<std::uint8_t>(doff << 4));
      static const std::uint8_t kFlags[] = {0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14, 0x01, 0x29, 0xc2};
      d.push_back(pick(6) == 0 ? static_cast<std::uint8_t>(rng_()) : kFlags[pick(10)]);
      put16(d, pick(65536));
      put16(d, 0);
      put16(d, 0);
      fill(d, (doff - 5) * 4 + pick(100));
    } else if (proto == 17) {
      put16(d, port());
      put16(d, port());
      const unsigned n = pick(80);
      put16(d, 8 + n);
      put16(d, 0);
      fill(d, n);
    } else if (proto == 1 || proto == 58) {
      static const std::uint8_t kTypes4[] = {0, 8, 3, 11, 5}, kTypes6[] = {128, 129, 135, 136, 1};
      d.push_back(v6 ? kTypes6[pick(5)] : kTypes4[pick(5)]);
      d.push_back(static_cast<std::uint8_t>(pick(4)));
      put16(d, 0);
      fill(d, 4 + pick(60));
    } else {
      fill(d, 8 + pick(40));
    }
  }
  void ipv4(std::vector<std::uint8_t>& d) {
    const std::size_t start = d.size();
    const unsigned ihl = pick(8) == 0 ? 6 + pick(3) : 5;
    d.push_back(static_cast<std::uint8_t>(0x40 | ihl));
    d.push_back(static_cast<std::uint8_t>(pick(4) << 2));
    put16(d, 0);  // total length, patched
    put16(d, pick(65536));
    const unsigned frag = pick(8);
    std::uint16_t fo = 0;
    if (frag == 0) fo = 0x2000;                                         // MF, first fragment
    else if (frag == 1) fo = static_cast<std::uint16_t>(1 + pick(100));  // later fragment
    else if (frag == 2) fo = 0x4000;                                    // DF
    put16(d, fo);
    d.push_back(static_cast<std::uint8_t>(1 + pick(128)));
    static const std::uint8_t kProtos[] = {6, 6, 6, 17, 17, 1, 2, 47, 132};
    const unsigned proto = kProtos[pick(9)];
    d.push_back(static_cast<std::uint8_t>(proto));
    put16(d, 0);
    put32(d, host4());
    put32(d, host4());
    for (unsigned i = 5; i < ihl; ++i) put32(d, 0x01010101);  // NOP options
    l4(d, proto, false);
    const std::size_t tot = d.size() - start;
    d[start + 2] = static_cast<std::uint8_t>(tot >> 8);
    d[start + 3] = static_cast<std::uint8_t>(tot);
  }
  void ipv6(std::vector<std::uint8_t>& d) {
    put32(d, 0x60000000 | pick(1 << 20));
    const std::size_t len_at = d.size();
    put16(d, 0);
    static const std::uint8_t kProtos[] = {6, 6, 17, 17, 58, 0, 44};
    const unsigned proto = kProtos[pick(7)];
    d.push_back(static_cast<std::uint8_t>(proto));
    d.push_back(64);
    for (int a = 0; a < 2; ++a) {
      static const std::uint8_t kPrefixes[][8] = {{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1},
                                                  {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 2},
                                                  {0xfe, 0x80, 0, 0, 0, 0, 0, 0},
                                                  {0xff, 0x02, 0, 0, 0, 0, 0, 0}};
      const auto& pre = kPrefixes[pick(4)];
      d.insert(d.end(), pre, pre + 8);
      put32(d, 0);
      put32(d, pick(3) == 0 ? static_cast<std::uint32_t>(rng_()) : 1 + pick(3));
    }
    const std::size_t start = d.size();
    if (proto == 0 || proto == 44) {  // hop-by-hop / fragment header, then TCP or UDP
      const unsigned next = pick(2) == 0 ? 6 : 17;
      d.push_back(static_cast<std::uint8_t>(next));
      d.push_back(0);
      fill(d, 6);
      l4(d, next, true);
    } else {
      l4(d, proto, true);
    }
    const std::size_t plen = d.size() - start;
    d[len_at] = static_cast<std::uint8_t>(plen >> 8);
    d[len_at + 1] = static_cast<std::uint8_t>(plen);
  }
  void arp(std::vector<std::uint8_t>& d) {
    put16(d, 1);
    put16(d, 0x0800);
    d.push_back(6);
    d.push_back(4);
    put16(d, 1 + pick(2));
    fill(d, 6);
    put32(d, host4());
    fill(d, 6);
    put32(d, host4());
  }

  std::mt19937 rng_;
};

// Writes packets to a pcap file with libpcap (pcap_dump); false on error.
inline bool write_pcap(const std::string& path, const std::vector<Packet>& pkts, int dlt = DLT_EN10MB) {
  pcap_t* dead = pcap_open_dead(dlt, 262144);
  if (dead == nullptr) return false;
  pcap_dumper_t* dumper = pcap_dump_open(dead, path.c_str());
  if (dumper == nullptr) {
    pcap_close(dead);
    return false;
  }
  long usec = 0;
  for (const auto& p : pkts) {
    pcap_pkthdr h{};
    h.ts.tv_sec = 1700000000 + usec / 1000000;
    h.ts.tv_usec = usec % 1000000;
    usec += 137;
    h.caplen = static_cast<bpf_u_int32>(p.data.size());
    h.len = p.wirelen;
    pcap_dump(reinterpret_cast<u_char*>(dumper), &h, p.data.data());
  }
  pcap_dump_close(dumper);
  pcap_close(dead);
  return true;
}

}  // namespace userbpf::testing
