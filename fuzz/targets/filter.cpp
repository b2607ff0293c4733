// Fuzz target: the filter compiler path. Input: a tcpdump filter expression
// (first byte: link type and optimizer switch), compiled with libpcap's
// pcap_compile as `userbpf filter` does, then checked, translated and run by
// userbpf's classic BPF on a packet built from the expression bytes. Checks:
// whatever libpcap produces, check() accepts (libpcap mode) and the
// translation runs without a memory violation and gives the result of
// libpcap's own interpreter (pcap_offline_filter / bpf_filter).
#include <pcap/pcap.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cbpf/cbpf.hpp"
#include "cbpf/exec.hpp"
#include "fuzz/common/fuzz.hpp"

using namespace userbpf;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1 || size > 512) return 0;
  const std::uint8_t sel = data[0];
  const std::string expr(reinterpret_cast<const char*>(data + 1), size - 1);
  if (expr.find('\0') != std::string::npos) return 0;
  const int dlt = (sel & 1) != 0 ? DLT_RAW : DLT_EN10MB;
  std::unique_ptr<pcap_t, void (*)(pcap_t*)> dead(pcap_open_dead(dlt, 65535), pcap_close);
  if (!dead) return 0;
  bpf_program bp{};
  if (pcap_compile(dead.get(), &bp, expr.c_str(), (sel & 2) != 0 ? 0 : 1, PCAP_NETMASK_UNKNOWN) != 0) return 0;
  std::vector<cbpf::Insn> prog(bp.bf_len);
  for (unsigned i = 0; i < bp.bf_len; ++i)
    prog[i] = {bp.bf_insns[i].code, bp.bf_insns[i].jt, bp.bf_insns[i].jf, bp.bf_insns[i].k};
  // A packet: an Ethernet/IPv4/TCP-looking frame, then the expression bytes.
  std::vector<std::uint8_t> pkt = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00, 0x45, 0, 0, 40, 0, 0, 0x40, 0,
                                   64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x1f, 0x90, 0x00, 0x50};
  pkt.insert(pkt.end(), data + 1, data + size);
  if (dlt == DLT_RAW) pkt.erase(pkt.begin(), pkt.begin() + 14);
  pcap_pkthdr hdr{};
  hdr.caplen = static_cast<bpf_u_int32>(pkt.size());
  hdr.len = hdr.caplen;
  const unsigned want = static_cast<unsigned>(pcap_offline_filter(&bp, &hdr, pkt.data()));
  pcap_freecode(&bp);

  cbpf::CheckOptions co;
  co.allow_backward_ja = true;
  if (auto st = cbpf::check(prog, co); !st)
    fuzz::fail("filter", "check() rejects libpcap output", st.error().to_string() + "\n" + cbpf::print_tcpdump(prog));
  auto f = cbpf::Filter::create(prog, cbpf::Target::Socket, co);
  if (!f) fuzz::fail("filter", "Filter::create rejects libpcap output", f.error().to_string());
  const auto ctx = cbpf::make_context(pkt, hdr.len, dlt == DLT_RAW ? cbpf::LinkLayer::RawIp : cbpf::LinkLayer::Ethernet);
  const std::uint32_t got = f->run(pkt, ctx);
  // libpcap's interpreter knows no ancillary data: compare only when none is
  // used. Nor negative LD IND offsets: the kernel (and userbpf) load at the
  // signed X + k (e.g. x=20, k=-13: byte 7), libpcap's bpf_filter takes k as
  // unsigned and returns 0 when k >= the packet length
  // (fuzz/regressions/filter/ldind_negative_k).
  bool anc = false;
  for (const auto& in : prog) {
    const auto* row = cbpf::lookup(in.code);
    if (row != nullptr && (row->kind == cbpf::Kind::LdAbs || row->kind == cbpf::Kind::LdInd) &&
        static_cast<std::int32_t>(in.k) < 0)
      anc = true;
  }
  if (!anc && got != want)
    fuzz::fail("filter", "userbpf and libpcap's bpf_filter disagree",
               "expression: " + expr + "\nlibpcap " + std::to_string(want) + ", userbpf " + std::to_string(got) +
                   "\n" + cbpf::print_tcpdump(prog));
  return 0;
}
