// pcap input/output for `prog run`, on the shared packet I/O of src/hooks
// (libpcap behind it); see objpcap.hpp.
#include "cli/objpcap.hpp"

#include "hooks/packet_io.hpp"

namespace userbpf::cli::obj {

Result<PcapIn> read_pcap(const std::string& path) {
  auto cap = hooks::read_file(path);
  if (!cap.ok()) return cap.error();
  PcapIn in;
  in.linktype = cap->linktype;
  in.packets.reserve(cap->packets.size());
  for (hooks::OwnedPacket& p : cap->packets) in.packets.push_back(Packet{std::move(p.bytes), p.sec, p.usec});
  return in;
}

std::string linktype_name(int linktype) { return hooks::linktype_name(linktype); }

struct PcapOut::Impl {
  std::optional<hooks::PcapWriter> writer;
};

PcapOut::PcapOut() : impl_(std::make_unique<Impl>()) {}
PcapOut::~PcapOut() = default;

Status PcapOut::open(const std::string& path, int linktype) {
  auto w = hooks::PcapWriter::open(path, linktype);
  if (!w.ok()) return w.error();
  impl_->writer.emplace(std::move(*w));
  return Ok{};
}

void PcapOut::write(const std::vector<std::uint8_t>& bytes, const Packet& like) {
  if (!impl_->writer) return;
  hooks::Packet h;
  h.sec = like.sec;
  h.usec = like.usec;
  h.wirelen = static_cast<std::uint32_t>(bytes.size());
  impl_->writer->write(bytes, h);
}

}  // namespace userbpf::cli::obj
