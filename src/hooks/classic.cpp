// Classic BPF on packets; see classic.hpp.
#include "hooks/classic.hpp"

#include <fmt/format.h>
#include <pcap/pcap.h>

#include <memory>

namespace userbpf::hooks {
namespace {
struct PcapCloser {
  void operator()(pcap_t* p) const { pcap_close(p); }
};
}  // namespace

Result<std::vector<cbpf::Insn>> compile_expression(std::string_view expr, const CompileOptions& o) {
  std::unique_ptr<pcap_t, PcapCloser> dead(
      pcap_open_dead(o.linktype, static_cast<int>(std::min<std::uint32_t>(o.snaplen, 0x7fffffff))));
  if (!dead) return make_error(ENOMEM, "pcap_open_dead failed");
  const std::string text(expr);
  bpf_program bp{};
  if (pcap_compile(dead.get(), &bp, text.c_str(), o.optimize ? 1 : 0, PCAP_NETMASK_UNKNOWN) != 0)
    return make_error(EINVAL, fmt::format("cannot compile '{}' for link type {}: {}", text, linktype_name(o.linktype),
                                          pcap_geterr(dead.get())));
  std::vector<cbpf::Insn> prog;
  prog.reserve(bp.bf_len);
  for (u_int i = 0; i < bp.bf_len; ++i)
    prog.push_back(cbpf::Insn{bp.bf_insns[i].code, bp.bf_insns[i].jt, bp.bf_insns[i].jf, bp.bf_insns[i].k});
  pcap_freecode(&bp);
  return prog;
}

cbpf::LinkLayer link_layer(int linktype) {
  if (linktype == DLT_EN10MB) return cbpf::LinkLayer::Ethernet;
  if (linktype == DLT_RAW) return cbpf::LinkLayer::RawIp;
#ifdef DLT_IPV4
  if (linktype == DLT_IPV4 || linktype == DLT_IPV6) return cbpf::LinkLayer::RawIp;
#endif
  return cbpf::LinkLayer::Other;
}

cbpf::SkbContext skb_context(const Packet& p, cbpf::LinkLayer link, bool payload_offset) {
  cbpf::SkbContext c = cbpf::make_context(p.data, p.wirelen, link, payload_offset);
  if (p.meta.live) {
    c.ifindex = p.meta.ifindex;
    c.pkt_type = p.meta.pkt_type;
    c.hatype = p.meta.hatype;
    c.protocol = p.meta.protocol;
    c.vlan_present = p.meta.vlan_present ? 1 : 0;
    c.vlan_tci = p.meta.vlan_tci;
    c.vlan_tpid = p.meta.vlan_tpid;
  }
  return c;
}

std::uint32_t run_classic(cbpf::Filter& f, const Packet& p, cbpf::LinkLayer link) {
  if (!p.meta.live || f.context_need() == cbpf::ContextNeed::None) return f.run_frame(p.data, p.wirelen, link);
  return f.run(p.data, skb_context(p, link, f.reads_payload_offset()));
}

Result<std::size_t> PacketBatch::fill(PacketSource& src, std::size_t max, int timeout_ms) {
  bytes_.clear();
  offsets_.clear();
  packets_.clear();
  frames_.clear();
  Packet p;
  while (packets_.size() < max) {
    auto n = src.next(p, timeout_ms);
    if (!n.ok()) return n.error();
    if (*n != Next::Packet) break;
    offsets_.push_back(bytes_.size());
    bytes_.insert(bytes_.end(), p.data.begin(), p.data.end());
    packets_.push_back(p);
  }
  // The bytes are in place now (the vector no longer grows): point at them.
  for (std::size_t i = 0; i < packets_.size(); ++i) {
    Packet& q = packets_[i];
    q.data = {bytes_.data() + offsets_[i], q.data.size()};
    frames_.push_back({q.data.data(), static_cast<std::uint32_t>(q.data.size()), q.wirelen});
  }
  return packets_.size();
}

std::size_t run_classic_batch(cbpf::Filter& f, const PacketBatch& b, std::span<std::uint32_t> out,
                              cbpf::LinkLayer link) {
  bool live = false;
  for (std::size_t i = 0; i < b.size(); ++i) live = live || b.packet(i).meta.live;
  if (!live) return f.run_batch(b.frames(), out, link);
  std::size_t kept = 0;
  for (std::size_t i = 0; i < b.size(); ++i) {
    out[i] = run_classic(f, b.packet(i), link);
    kept += static_cast<std::size_t>(out[i] != 0);
  }
  return kept;
}

std::string classic_verdict(std::uint32_t ret) { return ret == 0 ? "DROP" : fmt::format("KEEP {}", ret); }

}  // namespace userbpf::hooks
