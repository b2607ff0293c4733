// Tests of src/hooks (packet files, pcap writing, live AF_PACKET capture,
// verdicts) and of `userbpf capture`.
//
// Live tests move the test process into a network namespace of its own
// (unshare(CLONE_NEWNET); it disappears with the process), make a veth pair
// ubA/ubB there, and send known Ethernet frames into ubB from an AF_PACKET
// socket (broadcast, IPv4/UDP between documentation addresses 192.0.2.1 and
// 192.0.2.2; nothing is routed anywhere). They skip, with the reason, when
// not root or when namespaces or veth are unavailable.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "hooks/classic.hpp"
#include "hooks/packet_io.hpp"
#include "hooks/verdict.hpp"

namespace {

using namespace userbpf;
using Bytes = std::vector<std::uint8_t>;
namespace fs = std::filesystem;

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("userbpf-hooks-" + std::to_string(getpid()) + "-" + name)).string();
}

// Broadcast Ethernet, IPv4/UDP 192.0.2.1:4000 -> 192.0.2.2:dport, payload of
// `extra` bytes; with a VLAN tag (TPID 0x8100, TCI vlan_tci) if vlan_tci != 0.
Bytes udp_frame(std::uint16_t dport, std::size_t extra, std::uint16_t vlan_tci = 0) {
  Bytes f = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
  if (vlan_tci != 0) {
    f.insert(f.end(), {0x81, 0x00, static_cast<std::uint8_t>(vlan_tci >> 8), static_cast<std::uint8_t>(vlan_tci)});
  }
  const auto ip_len = static_cast<std::uint16_t>(20 + 8 + extra);
  const auto udp_len = static_cast<std::uint16_t>(8 + extra);
  f.insert(f.end(), {0x08, 0x00});
  Bytes ip = {0x45, 0, static_cast<std::uint8_t>(ip_len >> 8), static_cast<std::uint8_t>(ip_len), 0, 1, 0, 0, 64, 17,
              0,    0, 192, 0, 2, 1, 192, 0, 2, 2};
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i < ip.size(); i += 2) sum += static_cast<std::uint32_t>(ip[i] << 8 | ip[i + 1]);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  ip[10] = static_cast<std::uint8_t>(~sum >> 8);
  ip[11] = static_cast<std::uint8_t>(~sum);
  f.insert(f.end(), ip.begin(), ip.end());
  f.insert(f.end(), {0x0f, 0xa0, static_cast<std::uint8_t>(dport >> 8), static_cast<std::uint8_t>(dport),
                     static_cast<std::uint8_t>(udp_len >> 8), static_cast<std::uint8_t>(udp_len), 0, 0});
  for (std::size_t i = 0; i < extra; ++i) f.push_back(static_cast<std::uint8_t>(i * 7 + 1));
  return f;
}

// ---------------------------------------------------------------- files

TEST(PcapFile, WriteThenReadBack) {
  const std::string path = temp_path("rt.pcap");
  const std::vector<Bytes> frames = {udp_frame(53, 10), udp_frame(7777, 100), udp_frame(80, 0, 5)};
  {
    auto w = hooks::PcapWriter::open(path, hooks::kLinkEthernet);
    ASSERT_TRUE(w.ok()) << w.error().message;
    for (std::size_t i = 0; i < frames.size(); ++i) {
      hooks::Packet like;
      like.sec = 1000 + static_cast<std::int64_t>(i);
      like.usec = 17;
      like.wirelen = static_cast<std::uint32_t>(frames[i].size() + (i == 1 ? 500 : 0));  // i == 1: cut by a snaplen
      w->write(frames[i], like);
    }
    EXPECT_EQ(w->written(), 3U);
  }
  auto src = hooks::open_file(path);
  ASSERT_TRUE(src.ok()) << src.error().message;
  EXPECT_EQ((*src)->linktype(), hooks::kLinkEthernet);
  EXPECT_EQ(hooks::linktype_name((*src)->linktype()), "EN10MB");
  hooks::Packet p;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    auto n = (*src)->next(p, -1);
    ASSERT_TRUE(n.ok()) << n.error().message;
    ASSERT_EQ(*n, hooks::Next::Packet);
    EXPECT_EQ(Bytes(p.data.begin(), p.data.end()), frames[i]) << "packet " << i;
    EXPECT_EQ(p.wirelen, frames[i].size() + (i == 1 ? 500 : 0));
    EXPECT_EQ(p.sec, 1000 + static_cast<std::int64_t>(i));
    EXPECT_EQ(p.usec, 17);
    EXPECT_FALSE(p.meta.live);
  }
  auto end = (*src)->next(p, -1);
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(*end, hooks::Next::End);
  auto all = hooks::read_file(path);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->packets.size(), 3U);
  EXPECT_EQ(all->packets[2].bytes, frames[2]);
  fs::remove(path);
}

TEST(PcapFile, ErrorsNameTheFileAndPacket) {
  auto missing = hooks::open_file("/nonexistent/x.pcap");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("/nonexistent/x.pcap"), std::string::npos) << missing.error().message;

  const std::string junk = temp_path("junk.pcap");
  std::ofstream(junk) << "this is not a capture file at all";
  auto bad = hooks::open_file(junk);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find(junk), std::string::npos) << bad.error().message;

  // A pcap whose second record is cut short.
  const std::string cut = temp_path("cut.pcap");
  {
    auto w = hooks::PcapWriter::open(cut, hooks::kLinkEthernet);
    ASSERT_TRUE(w.ok());
    hooks::Packet like;
    w->write(udp_frame(1, 20), like);
    w->write(udp_frame(2, 20), like);
  }
  fs::resize_file(cut, fs::file_size(cut) - 10);
  auto r = hooks::read_file(cut);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("packet 1"), std::string::npos) << r.error().message;
  fs::remove(junk);
  fs::remove(cut);
}

TEST(LinkTypes, NamesAndNumbers) {
  EXPECT_EQ(*hooks::linktype_from_name("EN10MB"), 1);
  EXPECT_EQ(*hooks::linktype_from_name("en10mb"), 1);
  EXPECT_EQ(*hooks::linktype_from_name("RAW"), hooks::kLinkRaw);
  EXPECT_EQ(*hooks::linktype_from_name("0x71"), 113);
  auto bad = hooks::linktype_from_name("NOPE");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("'NOPE'"), std::string::npos);
  EXPECT_EQ(hooks::link_layer(hooks::kLinkEthernet), cbpf::LinkLayer::Ethernet);
  EXPECT_EQ(hooks::link_layer(hooks::kLinkRaw), cbpf::LinkLayer::RawIp);
}

TEST(Verdicts, NamesAndKeep) {
  EXPECT_EQ(hooks::verdict_name(BPF_PROG_TYPE_XDP, 1), "XDP_DROP");
  EXPECT_EQ(hooks::verdict_name(BPF_PROG_TYPE_XDP, 9), "XDP_UNKNOWN(9)");
  EXPECT_TRUE(hooks::verdict_keeps(BPF_PROG_TYPE_XDP, 2));
  EXPECT_FALSE(hooks::verdict_keeps(BPF_PROG_TYPE_XDP, 0));
  EXPECT_EQ(hooks::verdict_name(BPF_PROG_TYPE_SCHED_CLS, 2), "TC_ACT_SHOT");
  EXPECT_EQ(hooks::verdict_name(BPF_PROG_TYPE_SCHED_CLS, 0xffffffffU), "TC_ACT_UNSPEC");
  EXPECT_FALSE(hooks::verdict_keeps(BPF_PROG_TYPE_SCHED_CLS, 2));
  EXPECT_TRUE(hooks::verdict_keeps(BPF_PROG_TYPE_SCHED_CLS, 0));
  EXPECT_EQ(hooks::verdict_name(BPF_PROG_TYPE_SOCKET_FILTER, 42), "KEEP 42 bytes");
  EXPECT_FALSE(hooks::verdict_keeps(BPF_PROG_TYPE_SOCKET_FILTER, 0));
  EXPECT_TRUE(hooks::is_packet_program(BPF_PROG_TYPE_XDP));
  EXPECT_FALSE(hooks::is_packet_program(BPF_PROG_TYPE_KPROBE));
}

TEST(Classic, ExpressionAndContext) {
  auto prog = hooks::compile_expression("udp dst port 7777");
  ASSERT_TRUE(prog.ok()) << prog.error().message;
  auto f = cbpf::Filter::create(*prog);
  ASSERT_TRUE(f.ok());
  const Bytes hit = udp_frame(7777, 4), miss = udp_frame(53, 4);
  hooks::Packet p{hit, static_cast<std::uint32_t>(hit.size()), 0, 0, {}};
  EXPECT_NE(f->run(p.data, hooks::skb_context(p, cbpf::LinkLayer::Ethernet)), 0U);
  p.data = miss;
  EXPECT_EQ(f->run(p.data, hooks::skb_context(p, cbpf::LinkLayer::Ethernet)), 0U);
  auto bad = hooks::compile_expression("udp port banana");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("udp port banana"), std::string::npos) << bad.error().message;
  // live metadata goes into the context
  p.meta.live = true;
  p.meta.ifindex = 7;
  p.meta.pkt_type = 1;
  p.meta.vlan_present = true;
  p.meta.vlan_tci = 5;
  const cbpf::SkbContext c = hooks::skb_context(p, cbpf::LinkLayer::Ethernet);
  EXPECT_EQ(c.ifindex, 7U);
  EXPECT_EQ(c.pkt_type, 1U);
  EXPECT_EQ(c.vlan_present, 1U);
  EXPECT_EQ(c.vlan_tci, 5U);
  EXPECT_EQ(c.len, hit.size());
}

// Batches from a file: every packet copied with its time and length, frames
// pointing at the copies, and the batch's verdicts equal run_classic's.
TEST(Classic, BatchesFromAFile) {
  const std::string path = temp_path("batch.pcap");
  std::vector<Bytes> frames;
  for (std::uint16_t i = 0; i < 11; ++i) frames.push_back(udp_frame(i % 3 == 0 ? 7777 : 53, i * 5u, i % 4 == 1 ? 9 : 0));
  {
    auto w = hooks::PcapWriter::open(path, hooks::kLinkEthernet);
    ASSERT_TRUE(w.ok()) << w.error().message;
    for (std::size_t i = 0; i < frames.size(); ++i) {
      hooks::Packet like;
      like.sec = 50 + static_cast<std::int64_t>(i);
      like.wirelen = static_cast<std::uint32_t>(frames[i].size() + i);
      w->write(frames[i], like);
    }
  }
  auto prog = hooks::compile_expression("udp dst port 7777 and len > 50");
  ASSERT_TRUE(prog.ok()) << prog.error().message;
  auto f = cbpf::Filter::create(*prog);
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->batched()) << f->batch_note();
  auto src = hooks::open_file(path);
  ASSERT_TRUE(src.ok()) << src.error().message;
  hooks::PacketBatch b;
  std::vector<std::uint32_t> verdicts(4);
  std::size_t seen = 0, kept = 0;
  for (;;) {
    auto n = b.fill(**src, 4);
    ASSERT_TRUE(n.ok()) << n.error().message;
    if (*n == 0) break;
    ASSERT_EQ(b.size(), *n);
    ASSERT_LE(*n, 4U);
    kept += hooks::run_classic_batch(*f, b, verdicts, cbpf::LinkLayer::Ethernet);
    for (std::size_t i = 0; i < *n; ++i, ++seen) {
      const hooks::Packet& p = b.packet(i);
      EXPECT_EQ(Bytes(p.data.begin(), p.data.end()), frames[seen]) << "packet " << seen;
      EXPECT_EQ(p.sec, 50 + static_cast<std::int64_t>(seen));
      EXPECT_EQ(b.frames()[i].data, p.data.data());
      EXPECT_EQ(b.frames()[i].wirelen, frames[seen].size() + seen);
      EXPECT_EQ(verdicts[i], hooks::run_classic(*f, p, cbpf::LinkLayer::Ethernet)) << "packet " << seen;
    }
  }
  EXPECT_EQ(seen, frames.size());
  EXPECT_GT(kept, 0U);
  EXPECT_LT(kept, frames.size());
  fs::remove(path);
}

// ---------------------------------------------------------------- live

TEST(Live, UnknownInterface) {
  auto s = hooks::open_live({"nosuchif0", 262144, false, false});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ENODEV);
  EXPECT_NE(s.error().message.find("nosuchif0"), std::string::npos) << s.error().message;
}

// Runs fn in a child process as user nobody; returns what it wrote.
template <class Fn>
std::string as_nobody(Fn fn) {
  int fds[2];
  if (pipe(fds) != 0) return "pipe failed";
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    std::string out = (setgid(65534) == 0 && setuid(65534) == 0) ? fn() : std::string("setuid failed");
    if (write(fds[1], out.data(), out.size()) < 0) _exit(2);
    _exit(0);
  }
  close(fds[1]);
  std::string got;
  char buf[512];
  ssize_t n = 0;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) got.append(buf, static_cast<std::size_t>(n));
  close(fds[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  return got;
}

TEST(Live, WithoutRootSaysSo) {
  if (geteuid() != 0) {
    auto s = hooks::open_live({"lo", 262144, false, false});
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("needs root"), std::string::npos) << s.error().message;
    return;
  }
  const std::string msg = as_nobody([] {
    auto s = hooks::open_live({"lo", 262144, false, false});
    return s.ok() ? std::string("opened") : s.error().message;
  });
  EXPECT_NE(msg.find("needs root"), std::string::npos) << msg;
  EXPECT_NE(msg.find("lo"), std::string::npos) << msg;
}

// The process's own network namespace with a veth pair ubA <-> ubB (up).
// Empty string: ready; otherwise why not.
std::string make_veth_namespace() {
  if (geteuid() != 0) return "not root (live capture and network namespaces need it)";
  static std::string state = [] {
    if (unshare(CLONE_NEWNET) != 0) return std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
    for (const char* f : {"/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/default/disable_ipv6"})
      std::ofstream(f) << "1";  // no router solicitations or MLD reports on the pair
    if (std::system("ip link add ubA type veth peer name ubB >/dev/null 2>&1 && ip link set ubA up && "
                    "ip link set ubB up") != 0)
      return std::string("cannot create a veth pair (ip link add ... type veth failed)");
    return std::string();
  }();
  return state;
}

class Sender {
 public:
  explicit Sender(const char* iface) {
    fd_ = socket(AF_PACKET, SOCK_RAW, 0);
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = static_cast<int>(if_nametoindex(iface));
    sll.sll_protocol = 0;
    if (fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&sll), sizeof(sll)) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~Sender() {
    if (fd_ >= 0) close(fd_);
  }
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;
  bool send(const Bytes& f) const { return fd_ >= 0 && ::send(fd_, f.data(), f.size(), 0) == static_cast<ssize_t>(f.size()); }

 private:
  int fd_ = -1;
};

TEST(Live, VethReceivesKnownFrames) {
  const std::string why = make_veth_namespace();
  if (!why.empty()) GTEST_SKIP() << why;
  auto src = hooks::open_live({"ubA", 262144, false, true});
  ASSERT_TRUE(src.ok()) << src.error().message;
  EXPECT_EQ((*src)->linktype(), hooks::kLinkEthernet);
  Sender tx("ubB");
  const std::vector<Bytes> frames = {udp_frame(7777, 10), udp_frame(53, 300), udp_frame(80, 20, 42)};
  for (const Bytes& f : frames) ASSERT_TRUE(tx.send(f));
  hooks::Packet p;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    auto n = (*src)->next(p, 5000);
    ASSERT_TRUE(n.ok()) << n.error().message;
    ASSERT_EQ(*n, hooks::Next::Packet) << "frame " << i << " did not arrive";
    EXPECT_EQ(Bytes(p.data.begin(), p.data.end()), frames[i]) << "frame " << i;
    EXPECT_EQ(p.wirelen, frames[i].size());
    EXPECT_TRUE(p.meta.live);
    EXPECT_EQ(p.meta.ifindex, if_nametoindex("ubA"));
    EXPECT_EQ(p.meta.pkt_type, PACKET_BROADCAST);
    EXPECT_GT(p.sec, 0);
  }
  EXPECT_FALSE(frames[0].size() == 0);
  // snapped capture: caplen cut, wire length kept
  auto small = hooks::open_live({"ubA", 40, false, true});
  ASSERT_TRUE(small.ok());
  ASSERT_TRUE(tx.send(frames[1]));
  auto n = (*small)->next(p, 5000);
  ASSERT_TRUE(n.ok() && *n == hooks::Next::Packet);
  EXPECT_EQ(p.data.size(), 40U);
  EXPECT_EQ(p.wirelen, frames[1].size());
  // nothing else: a timeout, not an error
  auto none = (*small)->next(p, 50);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, hooks::Next::Timeout);
}

// ---------------------------------------------------------------- userbpf capture

struct Spawned {
  pid_t pid = -1;
  int out = -1, err = -1;
  std::string err_text;
};

Spawned spawn(const std::vector<std::string>& args) {
  int o[2], e[2];
  Spawned s;
  if (pipe(o) != 0 || pipe(e) != 0) return s;
  s.pid = fork();
  if (s.pid == 0) {
    dup2(o[1], 1);
    dup2(e[1], 2);
    close(o[0]);
    close(e[0]);
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(o[1]);
  close(e[1]);
  s.out = o[0];
  s.err = e[0];
  return s;
}

// Reads stderr until `what` appears (or 20 s / EOF); true if it did.
bool wait_for(Spawned& s, const std::string& what) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  char buf[512];
  while (s.err_text.find(what) == std::string::npos && std::chrono::steady_clock::now() < end) {
    pollfd p{s.err, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    const ssize_t n = read(s.err, buf, sizeof(buf));
    if (n <= 0) return false;
    s.err_text.append(buf, static_cast<std::size_t>(n));
  }
  return s.err_text.find(what) != std::string::npos;
}

// Waits for the exit; returns the exit code and the whole stdout.
int finish(Spawned& s, std::string* out) {
  char buf[4096];
  ssize_t n = 0;
  while ((n = read(s.out, buf, sizeof(buf))) > 0) out->append(buf, static_cast<std::size_t>(n));
  while ((n = read(s.err, buf, sizeof(buf))) > 0) s.err_text.append(buf, static_cast<std::size_t>(n));
  close(s.out);
  close(s.err);
  int st = 0;
  waitpid(s.pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

const std::string kUserbpf = std::string(USERBPF_BINARY_DIR) + "/bin/userbpf";

std::vector<nlohmann::json> json_lines(const std::string& text) {
  std::vector<nlohmann::json> v;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) v.push_back(nlohmann::json::parse(line));
  return v;
}

// The four frames every CLI test sends: UDP to 7777, 53, 7777, 80.
const std::vector<Bytes>& cli_frames() {
  static const std::vector<Bytes> f = {udp_frame(7777, 10), udp_frame(53, 30), udp_frame(7777, 50), udp_frame(80, 5)};
  return f;
}

// Runs `userbpf capture -i ubA ARGS -c 4 --json -w OUT`, sends the four frames.
void run_capture(std::vector<std::string> args, std::vector<nlohmann::json>* lines, hooks::Capture* written) {
  const std::string out = temp_path("cap.pcap");
  std::vector<std::string> argv = {kUserbpf, "capture", "-i", "ubA", "--inbound", "-c", "4", "--timeout", "30",
                                   "--json", "-w", out};
  argv.insert(argv.end(), args.begin(), args.end());
  Spawned s = spawn(argv);
  ASSERT_GT(s.pid, 0);
  ASSERT_TRUE(wait_for(s, "listening on ubA")) << s.err_text;
  Sender tx("ubB");
  for (const Bytes& f : cli_frames()) ASSERT_TRUE(tx.send(f));
  std::string text;
  const int rc = finish(s, &text);
  ASSERT_EQ(rc, 0) << s.err_text << text;
  *lines = json_lines(text);
  auto cap = hooks::read_file(out);
  ASSERT_TRUE(cap.ok()) << cap.error().message;
  *written = std::move(*cap);
  fs::remove(out);
}

TEST(CaptureCli, ExpressionOnVeth) {
  const std::string why = make_veth_namespace();
  if (!why.empty()) GTEST_SKIP() << why;
  std::vector<nlohmann::json> lines;
  hooks::Capture cap;
  run_capture({"udp dst port 7777"}, &lines, &cap);
  ASSERT_EQ(lines.size(), 5U);
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(lines[i]["len"], cli_frames()[i].size());
    EXPECT_EQ(lines[i]["kept"], i % 2 == 0) << lines[i].dump();
    EXPECT_EQ(lines[i]["direction"], "broadcast");
  }
  EXPECT_EQ(lines[0]["summary"], "IPv4 192.0.2.1 > 192.0.2.2 UDP 4000 > 7777");
  EXPECT_EQ(lines[4]["summary"]["packets"], 4);
  EXPECT_EQ(lines[4]["summary"]["kept"], 2);
  ASSERT_EQ(cap.packets.size(), 2U);
  EXPECT_EQ(cap.packets[0].bytes, cli_frames()[0]);
  EXPECT_EQ(cap.packets[1].bytes, cli_frames()[2]);
}

TEST(CaptureCli, XdpObjectOnVeth) {
  const std::string why = make_veth_namespace();
  if (!why.empty()) GTEST_SKIP() << why;
  std::vector<nlohmann::json> lines;
  hooks::Capture cap;
  run_capture({"--prog", std::string(USERBPF_HOOKS_PROGS) + "/udp_port.bpf.o", "--section", "xdp"}, &lines, &cap);
  ASSERT_EQ(lines.size(), 5U);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(lines[i]["verdict"], i % 2 == 0 ? "XDP_DROP" : "XDP_PASS") << lines[i].dump();
  EXPECT_EQ(lines[4]["summary"]["verdicts"]["XDP_DROP"], 2);
  ASSERT_EQ(cap.packets.size(), 2U);  // the passed ones
  EXPECT_EQ(cap.packets[0].bytes, cli_frames()[1]);
  EXPECT_EQ(cap.packets[1].bytes, cli_frames()[3]);
}

TEST(CaptureCli, SocketFilterObjectCutsPackets) {
  const std::string why = make_veth_namespace();
  if (!why.empty()) GTEST_SKIP() << why;
  std::vector<nlohmann::json> lines;
  hooks::Capture cap;
  run_capture({"--prog", std::string(USERBPF_HOOKS_PROGS) + "/udp_port.bpf.o", "--program", "sock_udp_head"}, &lines,
              &cap);
  ASSERT_EQ(lines.size(), 5U);
  EXPECT_EQ(lines[0]["verdict"], "KEEP 42 bytes");
  ASSERT_EQ(cap.packets.size(), 4U);
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(cap.packets[i].bytes, Bytes(cli_frames()[i].begin(), cli_frames()[i].begin() + 42));
    EXPECT_EQ(cap.packets[i].wirelen, cli_frames()[i].size());
  }
}

TEST(CaptureCli, Errors) {
  std::string out;
  Spawned s = spawn({kUserbpf, "capture", "-i", "nosuchif0", "udp"});
  ASSERT_GT(s.pid, 0);
  EXPECT_EQ(finish(s, &out), 1);
  EXPECT_NE(s.err_text.find("nosuchif0: no such interface"), std::string::npos) << s.err_text;

  if (geteuid() == 0) {
    const std::string msg = as_nobody([] {
      std::string o;
      Spawned c = spawn({kUserbpf, "capture", "-i", "lo", "-c", "1"});
      const int rc = finish(c, &o);
      return std::to_string(rc) + " " + c.err_text;
    });
    EXPECT_EQ(msg.rfind("1 ", 0), 0U) << msg;
    EXPECT_NE(msg.find("needs root"), std::string::npos) << msg;
  }
  const std::string why = make_veth_namespace();
  if (!why.empty()) GTEST_SKIP() << "the rest needs a veth pair: " << why;
  Spawned b = spawn({kUserbpf, "capture", "-i", "ubA", "udp port banana"});
  out.clear();
  EXPECT_EQ(finish(b, &out), 1);
  EXPECT_NE(b.err_text.find("cannot compile 'udp port banana'"), std::string::npos) << b.err_text;
  Spawned p = spawn({kUserbpf, "capture", "-i", "ubA", "--prog", std::string(USERBPF_HOOKS_PROGS) + "/udp_port.bpf.o"});
  out.clear();
  EXPECT_EQ(finish(p, &out), 1);
  EXPECT_NE(p.err_text.find("2 packet programs match"), std::string::npos) << p.err_text;
  // --timeout ends a capture that sees nothing, with the summary
  Spawned t = spawn({kUserbpf, "capture", "-i", "ubA", "--timeout", "0.3", "udp port 9"});
  out.clear();
  EXPECT_EQ(finish(t, &out), 0) << t.err_text;
  EXPECT_NE(out.find("0 packets captured"), std::string::npos) << out;
}

}  // namespace
