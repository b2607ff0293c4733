// userbpf-bench-filter: nanoseconds per packet of userbpf's classic filters
// (pcap_compile -> cbpf translate -> eBPF engine) next to libpcap's own
// interpreter (pcap_offline_filter), in one run, over the same packets.
//
// The packets (default 1,000,000) are generated deterministically in memory
// by tests/cbpf/packets.hpp (seed 99: Ethernet, VLAN, IPv4/IPv6 with
// TCP/UDP/ICMP, ARP, fragments, truncated and runt frames), laid out one
// after another in one buffer with their pcap_pkthdr, as a capture file is
// after reading it. Every timed loop reads the same headers and bytes.
//
// Columns, per expression (ns/packet, best of 3 alternating passes):
//   libpcap   pcap_offline_filter
//   interp    userbpf's interpreter (Filter::run_frame, Env path)
//   jit-env   the JIT through Program::run with an Env and make_context per
//             packet (the path before the direct entry)
//   jit       Filter::run_frame: the direct native entry where the program
//             is eligible (jit::Program::leaf), the context built only as
//             far as the program reads it
// then libpcap's time divided by jit-env's and by jit's (speed-up over
// libpcap; the target is >= 10x) and the geometric means. Every engine must
// keep the same packets as libpcap, or the benchmark fails.
//
// Usage: userbpf-bench-filter [PACKETS]
#include <pcap/pcap.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cbpf/cbpf.hpp"
#include "cbpf/exec.hpp"
#include "packets.hpp"

namespace {

using Clock = std::chrono::steady_clock;
namespace cbpf = userbpf::cbpf;

struct Capture {
  std::vector<pcap_pkthdr> hdrs;
  std::vector<std::uint32_t> offsets;
  std::vector<std::uint8_t> bytes;
  [[nodiscard]] std::span<const std::uint8_t> packet(std::size_t i) const {
    return {bytes.data() + offsets[i], hdrs[i].caplen};
  }
};

Capture generate(std::size_t n) {
  Capture cap;
  userbpf::testing::PacketGen gen(99);
  cap.hdrs.reserve(n);
  cap.offsets.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const userbpf::testing::Packet p = gen.next();
    pcap_pkthdr h{};
    h.ts.tv_sec = 1700000000 + static_cast<long>(i / 1000);
    h.caplen = static_cast<bpf_u_int32>(p.data.size());
    h.len = p.wirelen;
    cap.hdrs.push_back(h);
    cap.offsets.push_back(static_cast<std::uint32_t>(cap.bytes.size()));
    cap.bytes.insert(cap.bytes.end(), p.data.begin(), p.data.end());
  }
  return cap;
}

template <class Body>
double seconds(Body&& body) {
  const auto t0 = Clock::now();
  body();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// One pass of Filter::run_frame (what `userbpf filter` does per packet).
double time_frames(cbpf::Filter& f, const Capture& cap, std::size_t* matched) {
  return seconds([&] {
    std::size_t m = 0;
    for (std::size_t i = 0; i < cap.hdrs.size(); ++i)
      m += f.run_frame(cap.packet(i), cap.hdrs[i].len, cbpf::LinkLayer::Ethernet) != 0;
    *matched = m;
  });
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000000;
  if (n == 0) {
    std::fprintf(stderr, "usage: userbpf-bench-filter [PACKETS]\n");
    return 2;
  }
  const Capture cap = generate(n);

  const char* const exprs[] = {"tcp port 80",
                               "host 10.0.0.1",
                               "udp and port 53",
                               "tcp[tcpflags] & tcp-syn != 0",
                               "net 192.168.0.0/16 and not port 22",
                               "ip6 and tcp",
                               "vlan and ip",
                               "icmp or arp",
                               "tcp and (port 80 or port 443 or port 8080) and not host 10.0.0.5"};
  std::printf("%zu packets (generated in memory, packets.hpp seed 99, %zu bytes); ns/packet, best of 3\n", n,
              cap.bytes.size());
  std::printf("%-64s %7s %8s %8s %8s %8s %9s %9s %s\n", "expression", "matched", "libpcap", "interp", "jit-env",
              "jit", "x(env)", "x(jit)", "direct");
  double log_env = 0, log_jit = 0, log_interp = 0;
  int rows = 0;
  for (const char* expr : exprs) {
    pcap_t* dead = pcap_open_dead(DLT_EN10MB, 262144);
    bpf_program bp{};
    if (pcap_compile(dead, &bp, expr, 1, PCAP_NETMASK_UNKNOWN) != 0) {
      std::fprintf(stderr, "%s: %s\n", expr, pcap_geterr(dead));
      return 1;
    }
    std::vector<cbpf::Insn> prog;
    for (u_int i = 0; i < bp.bf_len; ++i)
      prog.push_back({bp.bf_insns[i].code, bp.bf_insns[i].jt, bp.bf_insns[i].jf, bp.bf_insns[i].k});
    auto jit = cbpf::Filter::create(prog, cbpf::Target::Socket, {}, cbpf::Engine::Jit);
    auto env = cbpf::Filter::create(prog, cbpf::Target::Socket, {}, cbpf::Engine::Jit);
    auto interp = cbpf::Filter::create(prog, cbpf::Target::Socket, {}, cbpf::Engine::Interpreter);
    if (!jit.ok() || !env.ok() || !interp.ok()) {
      std::fprintf(stderr, "%s: %s\n", expr, (!jit.ok() ? jit.error() : interp.error()).to_string().c_str());
      return 1;
    }
    env->set_direct(false);
    const bool poff = env->reads_payload_offset();

    double t_pcap = 1e30, t_interp = 1e30, t_env = 1e30, t_jit = 1e30;
    std::size_t m_pcap = 0, m_interp = 0, m_env = 0, m_jit = 0;
    for (int rep = 0; rep < 3; ++rep) {
      t_pcap = std::min(t_pcap, seconds([&] {
                          std::size_t m = 0;
                          for (std::size_t i = 0; i < n; ++i)
                            m += pcap_offline_filter(&bp, &cap.hdrs[i], cap.bytes.data() + cap.offsets[i]) != 0;
                          m_pcap = m;
                        }));
      t_interp = std::min(t_interp, time_frames(*interp, cap, &m_interp));
      t_env = std::min(t_env, seconds([&] {
                         std::size_t m = 0;
                         for (std::size_t i = 0; i < n; ++i) {
                           const auto pkt = cap.packet(i);
                           const auto ctx = cbpf::make_context(pkt, cap.hdrs[i].len, cbpf::LinkLayer::Ethernet, poff);
                           m += env->run(pkt, ctx) != 0;
                         }
                         m_env = m;
                       }));
      t_jit = std::min(t_jit, time_frames(*jit, cap, &m_jit));
    }
    pcap_freecode(&bp);
    pcap_close(dead);
    if (m_pcap != m_interp || m_pcap != m_env || m_pcap != m_jit) {
      std::fprintf(stderr, "%s: userbpf kept %zu (interpreter) / %zu (jit-env) / %zu (jit) packets, libpcap %zu\n",
                   expr, m_interp, m_env, m_jit, m_pcap);
      return 1;
    }
    const double per = 1e9 / static_cast<double>(n);
    std::printf("%-64s %7zu %8.2f %8.2f %8.2f %8.2f %8.2fx %8.2fx %s\n", expr, m_jit, t_pcap * per, t_interp * per,
                t_env * per, t_jit * per, t_pcap / t_env, t_pcap / t_jit, jit->direct() ? "yes" : "no");
    log_interp += std::log(t_pcap / t_interp);
    log_env += std::log(t_pcap / t_env);
    log_jit += std::log(t_pcap / t_jit);
    ++rows;
  }
  std::printf("geometric mean speed-up over libpcap: interpreter %.2fx, jit-env %.2fx, jit %.2fx (target: 10x)\n",
              std::exp(log_interp / rows), std::exp(log_env / rows), std::exp(log_jit / rows));
  return 0;
}
