// Packet sources and sinks; see packet_io.hpp.
//
// Files: libpcap's pcap_open_offline (pcap and pcapng, every link type it
// knows) and pcap_next_ex; the view points into libpcap's buffer.
// Live: AF_PACKET as described in the header; one recvmsg per packet with
// MSG_TRUNC (wire length), SO_TIMESTAMP (time) and PACKET_AUXDATA (VLAN,
// snapped length) control messages, poll() for the timeout.
// Writer: pcap_open_dead + pcap_dump_open / pcap_dump.
#include "hooks/packet_io.hpp"

// glibc's <net/if.h> before any <linux/...> header (they define the same IFF_*).
#include <net/if.h>
#include <net/if_arp.h>
#include <arpa/inet.h>
#include <fmt/format.h>
#include <linux/if_packet.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace userbpf::hooks {

static_assert(kLinkEthernet == DLT_EN10MB);
static_assert(kLinkRaw == DLT_RAW);

namespace {

constexpr std::uint16_t kEthPAll = 0x0003;      // ETH_P_ALL
constexpr std::uint16_t kEthP8021Q = 0x8100;    // ETH_P_8021Q
constexpr std::size_t kEthAddrs = 12;           // destination + source MAC
constexpr std::size_t kVlanTagLen = 4;

// ---------------------------------------------------------------- files

class FileSource final : public PacketSource {
 public:
  FileSource(pcap_t* p, std::string name) : p_(p), name_(std::move(name)) {}
  ~FileSource() override { pcap_close(p_); }
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  Result<Next> next(Packet& out, int /*timeout_ms*/) override {
    pcap_pkthdr* h = nullptr;
    const u_char* d = nullptr;
    const int rc = pcap_next_ex(p_, &h, &d);
    if (rc == PCAP_ERROR_BREAK) return Next::End;
    if (rc != 1)
      return make_error(EINVAL, fmt::format("{}: bad capture file at packet {}: {}", name_, index_, pcap_geterr(p_)));
    ++index_;
    out.data = std::span<const std::uint8_t>(d, h->caplen);
    out.wirelen = std::max(h->len, h->caplen);
    out.sec = h->ts.tv_sec;
    out.usec = h->ts.tv_usec;
    out.meta = PacketMeta{};
    return Next::Packet;
  }
  [[nodiscard]] int linktype() const override { return pcap_datalink(p_); }
  [[nodiscard]] std::uint32_t snaplen() const override { return static_cast<std::uint32_t>(pcap_snapshot(p_)); }
  [[nodiscard]] const std::string& name() const override { return name_; }

 private:
  pcap_t* p_;
  std::string name_;
  std::size_t index_ = 0;
};

// ---------------------------------------------------------------- live

class LiveSource final : public PacketSource {
 public:
  LiveSource(int fd, std::string name, int linktype, const LiveOptions& o)
      : fd_(fd), name_(std::move(name)), linktype_(linktype), opts_(o), buf_(o.snaplen + kVlanTagLen) {}
  ~LiveSource() override { ::close(fd_); }
  LiveSource(const LiveSource&) = delete;
  LiveSource& operator=(const LiveSource&) = delete;

  Result<Next> next(Packet& out, int timeout_ms) override {
    for (;;) {
      pollfd pfd{fd_, POLLIN, 0};
      const int pr = ::poll(&pfd, 1, timeout_ms);
      if (pr < 0 && errno != EINTR) return make_error(errno, fmt::format("{}: poll: {}", name_, std::strerror(errno)));
      if (pr <= 0) return Next::Timeout;
      sockaddr_ll from{};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(tpacket_auxdata)) + CMSG_SPACE(sizeof(timeval))] = {};
      // Leave room in front of the data to put an offloaded VLAN tag back.
      iovec iov{buf_.data() + kVlanTagLen, opts_.snaplen};
      msghdr msg{};
      msg.msg_name = &from;
      msg.msg_namelen = sizeof(from);
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      const ssize_t n = ::recvmsg(fd_, &msg, MSG_TRUNC | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        return make_error(errno, fmt::format("{}: recvmsg: {}", name_, std::strerror(errno)));
      }
      if (opts_.inbound_only && from.sll_pkttype == PACKET_OUTGOING) continue;
      auto wire = static_cast<std::uint32_t>(n);
      std::uint32_t cap = std::min(wire, opts_.snaplen);
      PacketMeta m;
      m.live = true;
      m.ifindex = static_cast<std::uint32_t>(from.sll_ifindex);
      m.protocol = ntohs(from.sll_protocol);
      m.pkt_type = from.sll_pkttype;
      m.hatype = from.sll_hatype;
      timeval tv{};
      bool have_time = false;
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA) {
          tpacket_auxdata aux{};
          std::memcpy(&aux, CMSG_DATA(c), sizeof(aux));
          wire = std::max(wire, aux.tp_len);
          if ((aux.tp_status & TP_STATUS_VLAN_VALID) != 0 || aux.tp_vlan_tci != 0) {
            m.vlan_present = true;
            m.vlan_tci = aux.tp_vlan_tci;
            m.vlan_tpid = (aux.tp_status & TP_STATUS_VLAN_TPID_VALID) != 0 ? aux.tp_vlan_tpid : kEthP8021Q;
          }
        } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMP) {
          std::memcpy(&tv, CMSG_DATA(c), sizeof(tv));
          have_time = true;
        }
      }
      if (!have_time) ::gettimeofday(&tv, nullptr);
      std::uint8_t* data = buf_.data() + kVlanTagLen;
      if (m.vlan_present && linktype_ == kLinkEthernet && cap >= kEthAddrs) {
        // as libpcap: MACs, then the tag (TPID, TCI), then the rest
        std::memmove(buf_.data(), data, kEthAddrs);
        data = buf_.data();
        const std::uint8_t tag[kVlanTagLen] = {static_cast<std::uint8_t>(m.vlan_tpid >> 8),
                                               static_cast<std::uint8_t>(m.vlan_tpid),
                                               static_cast<std::uint8_t>(m.vlan_tci >> 8),
                                               static_cast<std::uint8_t>(m.vlan_tci)};
        std::memcpy(data + kEthAddrs, tag, kVlanTagLen);
        cap = std::min<std::uint32_t>(cap + static_cast<std::uint32_t>(kVlanTagLen), opts_.snaplen);
        wire += static_cast<std::uint32_t>(kVlanTagLen);
      }
      out.data = std::span<const std::uint8_t>(data, cap);
      out.wirelen = wire;
      out.sec = tv.tv_sec;
      out.usec = tv.tv_usec;
      out.meta = m;
      return Next::Packet;
    }
  }
  [[nodiscard]] int linktype() const override { return linktype_; }
  [[nodiscard]] std::uint32_t snaplen() const override { return opts_.snaplen; }
  [[nodiscard]] const std::string& name() const override { return name_; }

 private:
  int fd_;
  std::string name_;
  int linktype_;
  LiveOptions opts_;
  std::vector<std::uint8_t> buf_;
};

Result<int> live_linktype(int fd, const std::string& iface) {
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", iface.c_str());
  if (::ioctl(fd, SIOCGIFHWADDR, &ifr) != 0)
    return make_error(errno, fmt::format("{}: cannot read the hardware type: {}", iface, std::strerror(errno)));
  switch (ifr.ifr_hwaddr.sa_family) {
    case ARPHRD_ETHER:
    case ARPHRD_LOOPBACK: return kLinkEthernet;  // loopback frames carry a (zero) Ethernet header
    case ARPHRD_NONE:                              // tun
    case ARPHRD_IPGRE:
    case ARPHRD_TUNNEL:
    case ARPHRD_SIT: return kLinkRaw;
    default:
      return make_error(EOPNOTSUPP, fmt::format("{}: hardware type {} is not supported (Ethernet, loopback and raw IP "
                                                "interfaces are)",
                                                iface, ifr.ifr_hwaddr.sa_family));
  }
}

}  // namespace

Result<std::unique_ptr<PacketSource>> open_file(const std::string& path) {
  char err[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p = pcap_open_offline(path.c_str(), err);
  if (p == nullptr) return make_error(EINVAL, fmt::format("{}: cannot read capture: {}", path, err));
  return std::unique_ptr<PacketSource>(std::make_unique<FileSource>(p, path));
}

Result<std::unique_ptr<PacketSource>> open_live(const LiveOptions& o) {
  if (o.iface.empty() || o.iface.size() >= IFNAMSIZ)
    return make_error(EINVAL, fmt::format("bad interface name '{}'", o.iface));
  if (o.snaplen == 0) return make_error(EINVAL, "snapshot length 0");
  const unsigned ifindex = if_nametoindex(o.iface.c_str());
  if (ifindex == 0)
    return make_error(ENODEV, fmt::format("{}: no such interface (ip link shows the interfaces of this network "
                                          "namespace)",
                                          o.iface));
  const int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);  // protocol 0: nothing queued before bind
  if (fd < 0) {
    const int e = errno;
    if (e == EPERM || e == EACCES)
      return make_error(e, fmt::format("{}: live capture needs root (CAP_NET_RAW): socket(AF_PACKET): {}", o.iface,
                                       std::strerror(e)));
    return make_error(e, fmt::format("{}: socket(AF_PACKET): {}", o.iface, std::strerror(e)));
  }
  auto fail = [&](const std::string& what) -> Error {
    const int e = errno;
    ::close(fd);
    return make_error(e, fmt::format("{}: {}: {}", o.iface, what, std::strerror(e)));
  };
  auto lt = live_linktype(fd, o.iface);
  if (!lt.ok()) {
    ::close(fd);
    return lt.error();
  }
  const int one = 1;
  if (::setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one)) != 0) return fail("PACKET_AUXDATA");
  if (::setsockopt(fd, SOL_SOCKET, SO_TIMESTAMP, &one, sizeof(one)) != 0) return fail("SO_TIMESTAMP");
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(kEthPAll);
  sll.sll_ifindex = static_cast<int>(ifindex);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&sll), sizeof(sll)) != 0) return fail("bind");
  if (o.promisc) {
    packet_mreq mr{};
    mr.mr_ifindex = static_cast<int>(ifindex);
    mr.mr_type = PACKET_MR_PROMISC;
    if (::setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) != 0) return fail("promiscuous mode");
  }
  return std::unique_ptr<PacketSource>(std::make_unique<LiveSource>(fd, o.iface, *lt, o));
}

Result<Capture> read_file(const std::string& path) {
  auto src = open_file(path);
  if (!src.ok()) return src.error();
  Capture c;
  c.linktype = (*src)->linktype();
  Packet p;
  for (;;) {
    auto n = (*src)->next(p, -1);
    if (!n.ok()) return n.error();
    if (*n != Next::Packet) break;
    c.packets.push_back(OwnedPacket{{p.data.begin(), p.data.end()}, p.wirelen, p.sec, p.usec});
  }
  return c;
}

// ---------------------------------------------------------------- writer

struct PcapWriter::Impl {
  pcap_t* dead = nullptr;
  pcap_dumper_t* dumper = nullptr;
  std::uint64_t written = 0;
  ~Impl() {
    if (dumper != nullptr) pcap_dump_close(dumper);
    if (dead != nullptr) pcap_close(dead);
  }
};

PcapWriter::PcapWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PcapWriter::PcapWriter(PcapWriter&&) noexcept = default;
PcapWriter& PcapWriter::operator=(PcapWriter&&) noexcept = default;
PcapWriter::~PcapWriter() = default;

Result<PcapWriter> PcapWriter::open(const std::string& path, int linktype, std::uint32_t snaplen) {
  auto impl = std::make_unique<Impl>();
  impl->dead = pcap_open_dead(linktype, static_cast<int>(std::min<std::uint32_t>(snaplen, 0x7fffffff)));
  if (impl->dead == nullptr) return make_error(ENOMEM, "pcap_open_dead failed");
  impl->dumper = pcap_dump_open(impl->dead, path.c_str());
  if (impl->dumper == nullptr)
    return make_error(EIO, fmt::format("{}: cannot write pcap: {}", path, pcap_geterr(impl->dead)));
  return PcapWriter(std::move(impl));
}

void PcapWriter::write(std::span<const std::uint8_t> data, const Packet& like) {
  pcap_pkthdr h{};
  h.ts.tv_sec = static_cast<decltype(h.ts.tv_sec)>(like.sec);
  h.ts.tv_usec = static_cast<decltype(h.ts.tv_usec)>(like.usec);
  h.caplen = static_cast<bpf_u_int32>(data.size());
  h.len = std::max<bpf_u_int32>(like.wirelen, h.caplen);
  pcap_dump(reinterpret_cast<u_char*>(impl_->dumper), &h, data.data());
  ++impl_->written;
}

void PcapWriter::flush() { pcap_dump_flush(impl_->dumper); }
std::uint64_t PcapWriter::written() const { return impl_->written; }

// ---------------------------------------------------------------- link types

std::string linktype_name(int linktype) {
  const char* n = pcap_datalink_val_to_name(linktype);
  return n != nullptr ? n : fmt::format("{}", linktype);
}

Result<int> linktype_from_name(std::string_view name) {
  const std::string s(name);
  const int v = pcap_datalink_name_to_val(s.c_str());
  if (v >= 0) return v;
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(s.c_str(), &end, 0);
  if (s.empty() || end == nullptr || *end != '\0' || errno != 0 || n < 0 || n > 0xffff)
    return make_error(EINVAL, fmt::format("unknown link type '{}' (a libpcap name like EN10MB, RAW, LINUX_SLL, or a "
                                          "DLT number)",
                                          s));
  return static_cast<int>(n);
}

}  // namespace userbpf::hooks
