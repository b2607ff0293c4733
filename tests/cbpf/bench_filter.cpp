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
// Columns, per expression (ns/packet of thread CPU time, best of 3
// alternating passes):
//   libpcap   pcap_offline_filter
//   interp    userbpf's interpreter (Filter::run_frame, Env path)
//   jit-env   the JIT through Program::run with an Env and make_context per
//             packet (the path before the direct entry)
//   jit       Filter::run_frame: the direct native entry where the program
//             is eligible (jit::Program::leaf), the context built only as
//             far as the program reads it
//   batch     Filter::run_batch over arrays of 256 cbpf::Frame built from the
//             headers (the building is timed): branch-free batched native
//             code (src/cbpf/batch.cpp) where the Filter prefers it (at most
//             Filter::kBatchPreferred classic instructions), else run_frame;
//             what `userbpf filter` does
//   forced    the same with set_batched(true): batched code for every
//             batchable program (shows where the preference comes from)
// then libpcap's time divided by jit's and by batch's (speed-up over
// libpcap; the target is >= 10x) and the geometric means. Every engine must
// keep the same packets as libpcap, or the benchmark fails.
//
// Floors, measured first in the same run (ns/packet, best of 3):
//   headers   the loop alone: read each pcap_pkthdr, count caplen > 60
//   touch     read each packet's first byte too (the packets' memory)
//   batch-0   run_batch with the filter `ret #1` (Frame building and the
//             native loop, no filter body)
// 10x libpcap needs a time per packet of a tenth of libpcap's; the floors
// show how much of that the loop and memory already take.
//
// Usage: userbpf-bench-filter [PACKETS]
#include <pcap/pcap.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cbpf/cbpf.hpp"
#include "cbpf/exec.hpp"
#include "packets.hpp"

namespace {

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

// The thread's CPU time (CLOCK_THREAD_CPUTIME_ID): the machine this runs on
// is shared, and wall-clock time counts the time other processes hold the
// core. Cache and memory contention still count.
double cpu_now() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

template <class Body>
double seconds(Body&& body) {
  const double t0 = cpu_now();
  body();
  return cpu_now() - t0;
}

// One pass of Filter::run_batch in batches of Filter::kBatch frames.
double time_batches(cbpf::Filter& f, const Capture& cap, std::size_t* matched) {
  return seconds([&] {
    std::size_t m = 0;
    std::array<cbpf::Frame, cbpf::Filter::kBatch> frames;
    std::array<std::uint32_t, cbpf::Filter::kBatch> out;
    const std::size_t n = cap.hdrs.size();
    for (std::size_t i = 0; i < n; i += frames.size()) {
      const std::size_t k = std::min(frames.size(), n - i);
      for (std::size_t j = 0; j < k; ++j)
        frames[j] = {cap.bytes.data() + cap.offsets[i + j], cap.hdrs[i + j].caplen, cap.hdrs[i + j].len};
      m += f.run_batch(std::span(frames).first(k), out, cbpf::LinkLayer::Ethernet);
    }
    *matched = m;
  });
}

template <class Body>
double best_of_3(Body&& body) {
  double t = 1e30;
  for (int rep = 0; rep < 3; ++rep) t = std::min(t, seconds(body));
  return t;
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
  std::printf("%zu packets (generated in memory, packets.hpp seed 99, %zu bytes); ns/packet (thread CPU time), best of 3\n", n,
              cap.bytes.size());
  // Floors.
  const double per = 1e9 / static_cast<double>(n);
  volatile std::size_t sink = 0;
  const double t_headers = best_of_3([&] {
    std::size_t m = 0;
    for (std::size_t i = 0; i < n; ++i) m += cap.hdrs[i].caplen > 60;
    sink = m;
  });
  const double t_touch = best_of_3([&] {
    std::size_t m = 0;
    for (std::size_t i = 0; i < n; ++i) m += cap.hdrs[i].caplen > 0 ? cap.bytes[cap.offsets[i]] : 0;
    sink = m;
  });
  double t_batch0 = 0;
  {
    const cbpf::Insn ret1[] = {{cbpf::field::kRet | cbpf::field::kK, 0, 0, 1}};
    auto f = cbpf::Filter::create(ret1);
    std::size_t m = 0;
    if (!f.ok() || !f->batched()) {
      std::fprintf(stderr, "ret #1: not batched\n");
      return 1;
    }
    t_batch0 = 1e30;
    for (int rep = 0; rep < 3; ++rep) t_batch0 = std::min(t_batch0, time_batches(*f, cap, &m));
  }
  (void)sink;
  std::printf("floors (ns/packet): headers %.2f, touch first byte %.2f, batch-0 (empty batched filter) %.2f\n",
              t_headers * per, t_touch * per, t_batch0 * per);
  std::printf("%-64s %7s %8s %8s %8s %8s %8s %8s %8s %8s %s\n", "expression", "matched", "libpcap", "interp",
              "jit-env", "jit", "batch", "forced", "x(jit)", "x(batch)", "direct/batched");
  double log_env = 0, log_jit = 0, log_interp = 0, log_batch = 0, sum_pcap = 0;
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
    auto forced = cbpf::Filter::create(prog, cbpf::Target::Socket, {}, cbpf::Engine::Jit);
    if (!forced.ok()) return 1;
    forced->set_batched(true);
    const bool poff = env->reads_payload_offset();

    double t_pcap = 1e30, t_interp = 1e30, t_env = 1e30, t_jit = 1e30, t_batch = 1e30, t_forced = 1e30;
    std::size_t m_pcap = 0, m_interp = 0, m_env = 0, m_jit = 0, m_batch = 0, m_forced = 0;
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
      t_batch = std::min(t_batch, time_batches(*jit, cap, &m_batch));
      t_forced = std::min(t_forced, time_batches(*forced, cap, &m_forced));
    }
    pcap_freecode(&bp);
    pcap_close(dead);
    if (m_pcap != m_interp || m_pcap != m_env || m_pcap != m_jit || m_pcap != m_batch || m_pcap != m_forced) {
      std::fprintf(stderr,
                   "%s: userbpf kept %zu (interpreter) / %zu (jit-env) / %zu (jit) / %zu (batch) / %zu (forced) "
                   "packets, libpcap %zu\n",
                   expr, m_interp, m_env, m_jit, m_batch, m_forced, m_pcap);
      return 1;
    }
    std::printf("%-64s %7zu %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %7.2fx %7.2fx %s/%s\n", expr, m_jit, t_pcap * per,
                t_interp * per, t_env * per, t_jit * per, t_batch * per, t_forced * per, t_pcap / t_jit,
                t_pcap / t_batch, jit->direct() ? "yes" : "no", jit->batched() ? "yes" : "no");
    log_interp += std::log(t_pcap / t_interp);
    log_env += std::log(t_pcap / t_env);
    log_jit += std::log(t_pcap / t_jit);
    log_batch += std::log(t_pcap / t_batch);
    sum_pcap += t_pcap;
    ++rows;
  }
  std::printf("geometric mean speed-up over libpcap: interpreter %.2fx, jit-env %.2fx, jit %.2fx, batch %.2fx "
              "(target: 10x)\n",
              std::exp(log_interp / rows), std::exp(log_env / rows), std::exp(log_jit / rows),
              std::exp(log_batch / rows));
  const double mean_pcap = sum_pcap / rows * per;
  std::printf("libpcap's mean %.2f ns/packet: 10x needs %.2f ns/packet; the floors take %.2f (headers), %.2f (touch), "
              "%.2f (batch-0) of it\n",
              mean_pcap, mean_pcap / 10, t_headers * per, t_touch * per, t_batch0 * per);
  return 0;
}
