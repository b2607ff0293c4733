// pcap input/output for `prog run`; see objpcap.hpp.
#include "cli/objpcap.hpp"

#include <fmt/format.h>
#include <pcap/pcap.h>

namespace userbpf::cli::obj {

Result<PcapIn> read_pcap(const std::string& path) {
  char err[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p = pcap_open_offline(path.c_str(), err);
  if (p == nullptr) return make_error(EINVAL, fmt::format("{}: cannot read pcap: {}", path, err));
  PcapIn in;
  in.linktype = pcap_datalink(p);
  pcap_pkthdr* hdr = nullptr;
  const u_char* data = nullptr;
  int rc = 0;
  while ((rc = pcap_next_ex(p, &hdr, &data)) == 1) {
    Packet pk;
    pk.bytes.assign(data, data + hdr->caplen);
    pk.sec = hdr->ts.tv_sec;
    pk.usec = hdr->ts.tv_usec;
    in.packets.push_back(std::move(pk));
  }
  if (rc == PCAP_ERROR) {
    Error e = make_error(EINVAL, fmt::format("{}: bad pcap at packet {}: {}", path, in.packets.size(), pcap_geterr(p)));
    pcap_close(p);
    return e;
  }
  pcap_close(p);
  return in;
}

std::string linktype_name(int linktype) {
  const char* n = pcap_datalink_val_to_name(linktype);
  return n != nullptr ? n : fmt::format("{}", linktype);
}

struct PcapOut::Impl {
  pcap_t* dead = nullptr;
  pcap_dumper_t* dumper = nullptr;
};

PcapOut::PcapOut() : impl_(std::make_unique<Impl>()) {}

PcapOut::~PcapOut() {
  if (impl_->dumper != nullptr) pcap_dump_close(impl_->dumper);
  if (impl_->dead != nullptr) pcap_close(impl_->dead);
}

Status PcapOut::open(const std::string& path, int linktype) {
  impl_->dead = pcap_open_dead(linktype, 262144);
  if (impl_->dead == nullptr) return make_error(ENOMEM, "pcap_open_dead failed");
  impl_->dumper = pcap_dump_open(impl_->dead, path.c_str());
  if (impl_->dumper == nullptr)
    return make_error(EIO, fmt::format("{}: cannot write pcap: {}", path, pcap_geterr(impl_->dead)));
  return Ok{};
}

void PcapOut::write(const std::vector<std::uint8_t>& bytes, const Packet& like) {
  pcap_pkthdr h{};
  h.ts.tv_sec = static_cast<decltype(h.ts.tv_sec)>(like.sec);
  h.ts.tv_usec = static_cast<decltype(h.ts.tv_usec)>(like.usec);
  h.caplen = static_cast<bpf_u_int32>(bytes.size());
  h.len = h.caplen;
  pcap_dump(reinterpret_cast<u_char*>(impl_->dumper), &h, bytes.data());
}

}  // namespace userbpf::cli::obj
