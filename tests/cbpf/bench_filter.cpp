// userbpf-bench-filter: packets per second of userbpf's classic filters
// (pcap_compile -> cbpf translate -> eBPF engine) next to libpcap's own
// interpreter (pcap_offline_filter) over the same generated capture of
// 1,000,000 packets (written with pcap_dump and read back), for a set of
// typical expressions. Prints one row per expression: packets per second of
// libpcap, of userbpf's interpreter and of userbpf's JIT, and the JIT's
// ratio to libpcap (the target is >= 10x). Each timed loop does what a
// filtering tool must do per packet: userbpf's includes building the
// SkbContext from the packet (make_context; the payload-offset dissector
// only for filters that read [poff]). Best of 3 runs per engine.
//
// Usage: userbpf-bench-filter [PACKETS] [--keep FILE]   (default 1000000)
#include <pcap/pcap.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "cbpf/cbpf.hpp"
#include "cbpf/exec.hpp"
#include "packets.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Capture {
  std::vector<pcap_pkthdr> hdrs;
  std::vector<std::uint32_t> offsets;
  std::vector<std::uint8_t> bytes;
};

// Seconds for one pass of the filter over the capture; *matched = kept packets.
double time_ours(userbpf::cbpf::Filter& f, const Capture& cap, std::size_t* matched) {
  const bool poff = f.reads_payload_offset();
  const auto t0 = Clock::now();
  std::size_t m = 0;
  for (std::size_t i = 0; i < cap.hdrs.size(); ++i) {
    const std::span<const std::uint8_t> pkt(cap.bytes.data() + cap.offsets[i], cap.hdrs[i].caplen);
    const auto ctx = userbpf::cbpf::make_context(pkt, cap.hdrs[i].len, userbpf::cbpf::LinkLayer::Ethernet, poff);
    m += f.run(pkt, ctx) != 0;
  }
  *matched = m;
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t n = 1000000;
  std::string path = (std::filesystem::temp_directory_path() / "userbpf-bench-filter.pcap").string();
  bool keep = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--keep") == 0 && i + 1 < argc) {
      path = argv[++i];
      keep = true;
    } else {
      n = std::strtoull(argv[i], nullptr, 10);
    }
  }
  {
    userbpf::testing::PacketGen gen(99);
    std::vector<userbpf::testing::Packet> pkts;
    pkts.reserve(n);
    for (std::size_t i = 0; i < n; ++i) pkts.push_back(gen.next());
    if (!userbpf::testing::write_pcap(path, pkts)) {
      std::fprintf(stderr, "cannot write %s\n", path.c_str());
      return 1;
    }
  }
  Capture cap;
  {
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* p = pcap_open_offline(path.c_str(), err);
    if (p == nullptr) {
      std::fprintf(stderr, "%s\n", err);
      return 1;
    }
    pcap_pkthdr* h = nullptr;
    const u_char* d = nullptr;
    while (pcap_next_ex(p, &h, &d) == 1) {
      cap.hdrs.push_back(*h);
      cap.offsets.push_back(static_cast<std::uint32_t>(cap.bytes.size()));
      cap.bytes.insert(cap.bytes.end(), d, d + h->caplen);
    }
    pcap_close(p);
  }
  if (!keep) std::filesystem::remove(path);
  const std::size_t count = cap.hdrs.size();

  const char* const exprs[] = {"tcp port 80",
                               "host 10.0.0.1",
                               "udp and port 53",
                               "tcp[tcpflags] & tcp-syn != 0",
                               "net 192.168.0.0/16 and not port 22",
                               "ip6 and tcp",
                               "vlan and ip",
                               "icmp or arp",
                               "tcp and (port 80 or port 443 or port 8080) and not host 10.0.0.5"};
  std::printf("%zu packets (generated, pcap_dump + pcap_open_offline); pps = packets per second, best of 3\n", count);
  std::printf("%-66s %8s %12s %12s %12s %7s %7s\n", "expression", "matched", "libpcap", "interp", "jit",
              "interp/", "jit/");
  double log_sum = 0, log_interp = 0;
  int rows = 0;
  for (const char* expr : exprs) {
    pcap_t* dead = pcap_open_dead(DLT_EN10MB, 262144);
    bpf_program bp{};
    if (pcap_compile(dead, &bp, expr, 1, PCAP_NETMASK_UNKNOWN) != 0) {
      std::fprintf(stderr, "%s: %s\n", expr, pcap_geterr(dead));
      return 1;
    }
    std::vector<userbpf::cbpf::Insn> prog;
    for (u_int i = 0; i < bp.bf_len; ++i)
      prog.push_back({bp.bf_insns[i].code, bp.bf_insns[i].jt, bp.bf_insns[i].jf, bp.bf_insns[i].k});
    auto jit = userbpf::cbpf::Filter::create(prog, userbpf::cbpf::Target::Socket, {}, userbpf::cbpf::Engine::Jit);
    auto interp =
        userbpf::cbpf::Filter::create(prog, userbpf::cbpf::Target::Socket, {}, userbpf::cbpf::Engine::Interpreter);
    if (!jit.ok() || !interp.ok()) {
      std::fprintf(stderr, "%s: %s\n", expr, (jit.ok() ? interp.error() : jit.error()).to_string().c_str());
      return 1;
    }
    // best of 3 for each, alternating
    double best_pcap = 1e30, best_interp = 1e30, best_jit = 1e30;
    std::size_t m_pcap = 0, m_interp = 0, m_jit = 0;
    for (int rep = 0; rep < 3; ++rep) {
      const auto t0 = Clock::now();
      std::size_t m = 0;
      for (std::size_t i = 0; i < count; ++i)
        m += pcap_offline_filter(&bp, &cap.hdrs[i], cap.bytes.data() + cap.offsets[i]) != 0;
      best_pcap = std::min(best_pcap, std::chrono::duration<double>(Clock::now() - t0).count());
      m_pcap = m;
      best_interp = std::min(best_interp, time_ours(*interp, cap, &m_interp));
      best_jit = std::min(best_jit, time_ours(*jit, cap, &m_jit));
    }
    pcap_freecode(&bp);
    pcap_close(dead);
    if (m_pcap != m_interp || m_pcap != m_jit) {
      std::fprintf(stderr, "%s: userbpf kept %zu (interpreter) / %zu (jit) packets, libpcap %zu\n", expr, m_interp,
                   m_jit, m_pcap);
      return 1;
    }
    const double n_pkts = static_cast<double>(count);
    const double pps_pcap = n_pkts / best_pcap, pps_interp = n_pkts / best_interp, pps_jit = n_pkts / best_jit;
    std::printf("%-66s %8zu %12.0f %12.0f %12.0f %6.2fx %6.2fx\n", expr, m_jit, pps_pcap, pps_interp, pps_jit,
                pps_interp / pps_pcap, pps_jit / pps_pcap);
    log_interp += std::log(pps_interp / pps_pcap);
    log_sum += std::log(pps_jit / pps_pcap);
    ++rows;
  }
  std::printf("geometric mean ratio to libpcap: interpreter %.2fx, jit %.2fx (target: 10x)\n",
              std::exp(log_interp / rows), std::exp(log_sum / rows));
  return 0;
}
