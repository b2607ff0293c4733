// skb_change_head, skb_change_tail, skb_adjust_room, skb_vlan_push and
// skb_vlan_pop against the kernel: the same tc program loaded with the same
// bpf_attr into the kernel and into userbpf's runtime (every engine,
// verified and unverified), the same BPF_PROG_TEST_RUN on both; retval,
// errno, data_out and ctx_out (the program copies the first helper's
// result, len, protocol and the VLAN fields into cb[]) must be equal.
// Skipped, with the reason, where the kernel's BPF is unavailable.
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>
#include <functional>

#include "oracle/oracle.hpp"
#include "runtime/runtime.hpp"
#include "skb_resize_util.hpp"

namespace userbpf::helpers::test {
namespace {

// ---- against the kernel

int sys_bpf(int cmd, bpf_attr& a) { return static_cast<int>(syscall(__NR_bpf, cmd, &a, sizeof a)); }

struct KCase {
  std::string name;
  std::vector<Call> calls;
  Bytes data;
  std::uint32_t gso_size = 0;  // ctx_in's gso_size (a GSO skb)
};

// Loads the case's program through `bpf` and test-runs it once: one line with
// the load errno, or the run's errno / retval, data_out and ctx_out.
std::string run_case(const std::function<int(int, bpf_attr&)>& bpf, const std::function<void(int)>& close_fd,
                     const KCase& c) {
  const auto raw = isa::encode(calls_prog(c.calls));
  const char license[] = "GPL";
  char log[4096] = {};
  bpf_attr l{};
  l.prog_type = BPF_PROG_TYPE_SCHED_CLS;
  l.insns = reinterpret_cast<u64>(raw.data());
  l.insn_cnt = static_cast<std::uint32_t>(raw.size());
  l.license = reinterpret_cast<u64>(license);
  l.log_buf = reinterpret_cast<u64>(log);
  l.log_size = sizeof log;
  l.log_level = 1;
  const int fd = bpf(BPF_PROG_LOAD, l);
  if (fd < 0) return fmt::format("load errno {}: {}", errno, log);
  __sk_buff in{}, out{};
  in.gso_size = c.gso_size;
  in.gso_segs = c.gso_size != 0 ? 2 : 0;
  Bytes data_out(20000);
  bpf_attr a{};
  a.test.prog_fd = static_cast<std::uint32_t>(fd);
  a.test.data_in = reinterpret_cast<u64>(c.data.data());
  a.test.data_size_in = static_cast<std::uint32_t>(c.data.size());
  a.test.data_out = reinterpret_cast<u64>(data_out.data());
  a.test.data_size_out = static_cast<std::uint32_t>(data_out.size());
  a.test.ctx_in = reinterpret_cast<u64>(&in);
  a.test.ctx_size_in = sizeof in;
  a.test.ctx_out = reinterpret_cast<u64>(&out);
  a.test.ctx_size_out = sizeof out;
  a.test.repeat = 1;
  const int r = bpf(BPF_PROG_TEST_RUN, a);
  const int e = errno;
  close_fd(fd);
  if (r != 0) return fmt::format("run errno {}", e);
  data_out.resize(a.test.data_size_out);
  return fmt::format("retval {} data {} | cb {} len {} proto {:#x} vlan {} tci/proto {:#x} gso {}/{} out len {}",
                     static_cast<std::int32_t>(a.test.retval), hex(data_out), static_cast<std::int32_t>(out.cb[0]),
                     out.cb[1], out.cb[2], out.cb[3], out.cb[4], out.gso_size, out.gso_segs, out.len);
}

std::vector<KCase> kernel_cases() {
  const Bytes ip = frame(74, ETH_P_IP);
  const Bytes ip6 = frame(94, ETH_P_IPV6);
  const Bytes arp = frame(60, ETH_P_ARP);
  const Bytes tagged = frame(70, ETH_P_IP, {0x1005});
  const Bytes qinq = frame(74, ETH_P_IP, {0x2001, 0x0fff});
  const Bytes tagged_llc = frame(70, 0x0050, {3});  // encapsulated "protocol" < 0x600: 802.2
  Bytes tagged_raw = tagged_llc;
  tagged_raw[18] = 0xff;
  tagged_raw[19] = 0xff;  // ... followed by 0xffff: raw 802.3
  const std::int32_t head = BPF_FUNC_skb_change_head, tail = BPF_FUNC_skb_change_tail;
  const std::int32_t room = BPF_FUNC_skb_adjust_room, push = BPF_FUNC_skb_vlan_push, pop = BPF_FUNC_skb_vlan_pop;
  const u64 mac = BPF_ADJ_ROOM_MAC, net = BPF_ADJ_ROOM_NET;
  const u64 e4 = BPF_F_ADJ_ROOM_ENCAP_L3_IPV4, e6 = BPF_F_ADJ_ROOM_ENCAP_L3_IPV6;
  const u64 gre = BPF_F_ADJ_ROOM_ENCAP_L4_GRE, udp = BPF_F_ADJ_ROOM_ENCAP_L4_UDP;
  const u64 l2eth = BPF_F_ADJ_ROOM_ENCAP_L2_ETH;
  auto l2 = [](u64 len) { return (len & BPF_ADJ_ROOM_ENCAP_L2_MASK) << BPF_ADJ_ROOM_ENCAP_L2_SHIFT; };
  auto neg = [](std::int64_t v) { return static_cast<u64>(v); };
  std::vector<KCase> v = {
      {"head 0", {{head, 0}}, ip},
      {"head 14", {{head, 14}}, ip},
      {"head 100", {{head, 100}}, ip},
      {"head 3000", {{head, 3000}}, ip},
      {"head to the max", {{head, 16064 - 74}}, ip},
      {"head past the max", {{head, 16064 - 73}}, ip},
      {"head flags", {{head, 4, 1}}, ip},
      {"head negative", {{head, 0x80000000u}}, ip},
      {"head twice", {{head, 30}, {head, 60}}, ip},
      {"head gso past the max", {{head, 16064}}, ip, 1400},
      {"tail trim", {{tail, 40}}, ip},
      {"tail 14", {{tail, 14}}, ip},
      {"tail 13", {{tail, 13}}, ip},
      {"tail grow", {{tail, 200}}, ip},
      {"tail grow big", {{tail, 5000}}, ip},
      {"tail max", {{tail, 16064}}, ip},
      {"tail past max", {{tail, 16065}}, ip},
      {"tail flags", {{tail, 74, 2}}, ip},
      {"tail same", {{tail, 74}}, ip},
      {"tail gso reset", {{tail, 74}}, ip, 1400},
      {"tail grow gso", {{tail, 100}}, ip, 1400},
      {"tail trim gso", {{tail, 50}}, ip, 1400},
      {"head gso", {{head, 8}}, ip, 1400},
      {"push gso", {{push, 0x0081, 5}, {push, 0x0081, 6}}, ip, 1400},
      {"tail then head", {{tail, 3000}, {head, 500}}, ip},
      {"push", {{push, 0x0081, 5}}, ip},
      {"push 88a8", {{push, 0xa888, 0xffff}}, ip},
      {"push bad proto", {{push, 0x1234, 5}}, ip},
      {"push high bits", {{push, 0xffff0081ULL, 0x12345}}, ip},
      {"push twice", {{push, 0x0081, 5}, {push, 0xa888, 6}}, ip},
      {"push three", {{push, 0x0081, 1}, {push, 0x0081, 2}, {push, 0x0081, 3}}, ip},
      {"pop untagged", {{pop}}, ip},
      {"pop tagged", {{pop}}, tagged},
      {"pop qinq", {{pop}}, qinq},
      {"pop qinq twice", {{pop}, {pop}}, qinq},
      {"pop 802.2", {{pop}}, tagged_llc},
      {"pop 802.3", {{pop}}, tagged_raw},
      {"pop short", {{pop}}, frame(17, 0, {3})},
      {"push pop", {{push, 0x0081, 5}, {pop}}, ip},
      {"push push pop", {{push, 0x0081, 5}, {push, 0x0081, 6}, {pop}}, ip},
      {"pop pop push push", {{pop}, {pop}, {push, 0x0081, 9}, {push, 0x0081, 10}}, qinq},
      {"room mac +8", {{room, 8, mac}}, ip},
      {"room mac -8", {{room, neg(-8), mac}}, ip},
      {"room net +8", {{room, 8, net}}, ip},
      {"room net -8", {{room, neg(-8), net}}, ip},
      {"room net6 +16", {{room, 16, net}}, ip6},
      {"room net6 -16", {{room, neg(-16), net}}, ip6},
      {"room 0", {{room, 0, mac}}, ip},
      {"room bad mode", {{room, 4, 2}}, ip},
      {"room 0xfff", {{room, 0xfff, mac}}, ip},
      {"room 0x1000", {{room, 0x1000, mac}}, ip},
      {"room -0x1000", {{room, neg(-0x1000), mac}}, ip},
      {"room bad flag", {{room, 4, mac, 1u << 9}}, ip},
      {"room not ip", {{room, 4, mac}}, arp},
      {"room shrink all", {{room, neg(-60), mac}}, ip},
      {"room shrink below ip", {{room, neg(-45), mac}}, ip},
      {"room shrink to ip", {{room, neg(-40), mac}}, ip},
      {"room net shrink too much", {{room, neg(-40), net}}, ip},
      {"room fixed gso", {{room, 4, mac, BPF_F_ADJ_ROOM_FIXED_GSO}}, ip},
      {"room no csum reset", {{room, 4, mac, BPF_F_ADJ_ROOM_NO_CSUM_RESET}}, ip},
      {"room gso", {{room, 4, mac}}, ip, 1400},
      {"encap ipip", {{room, 20, mac, e4}}, ip},
      {"encap 4in6", {{room, 40, mac, e6}}, ip},
      {"encap 6in4", {{room, 20, mac, e4}}, ip6},
      {"encap gre", {{room, 24, mac, e4 | gre}}, ip},
      {"encap udp", {{room, 28, mac, e4 | udp}}, ip},
      {"encap gre+udp", {{room, 28, mac, e4 | gre | udp}}, ip},
      {"encap both l3", {{room, 28, mac, e4 | e6}}, ip},
      {"encap l2 eth", {{room, 42, mac, e4 | gre | l2eth | l2(14)}}, ip},
      {"encap l2 eth short", {{room, 42, mac, e4 | gre | l2eth | l2(10)}}, ip},
      {"encap l2 too long", {{room, 24, mac, e4 | gre | l2(30)}}, ip},
      {"encap net", {{room, 20, net, e4}}, ip},
      {"encap twice", {{room, 20, mac, e4}, {room, 20, mac, e4}}, ip},
      {"encap then tail", {{room, 20, mac, e4}, {tail, 120}}, ip},
      {"encap then plain grow", {{room, 20, mac, e4}, {room, 4, mac}}, ip},
      {"shrink with encap flag", {{room, neg(-4), mac, e4}}, ip},
      {"decap 4", {{room, neg(-20), mac, kDecapIpv4}}, ip},
      {"decap 6 from 4", {{room, neg(-20), mac, kDecapIpv6}}, ip},
      {"decap 4 from 6", {{room, neg(-40), mac, kDecapIpv4}}, ip6},
      {"decap both", {{room, neg(-20), mac, kDecapIpv4 | kDecapIpv6}}, ip},
      {"decap grow", {{room, 20, mac, kDecapIpv4}}, ip},
      {"encap decap", {{room, 40, mac, e6}, {room, neg(-40), mac, kDecapIpv4}}, ip},
      {"head then room", {{head, 14}, {room, 4, mac}}, ip},
      {"push then room", {{push, 0x0081, 3}, {room, 8, net}}, ip},
  };
  return v;
}

TEST(SkbResizeKernelDiff, SameAsBpfProgTestRun) {
  const auto& av = oracle::available();
  if (!av.ok) GTEST_SKIP() << "kernel BPF unavailable: " << av.reason;
  const auto cases = kernel_cases();
  std::vector<std::string> kernel;
  for (const KCase& c : cases) kernel.push_back(run_case(&sys_bpf, [](int fd) { ::close(fd); }, c));
  char tmpl[] = "/tmp/userbpf-skb-resize-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  int compared = 0;
  for (const auto engine : {runtime::Engine::Jit, runtime::Engine::Interpreter})
    for (const bool verify : {true, false}) {
      const std::string mode = std::string(engine == runtime::Engine::Jit ? "jit" : "interpreter") +
                               (verify ? ", verified" : ", unverified");
      runtime::Options o;
      o.pin_dir = tmpl;
      o.engine = engine;
      o.verify = verify;
      runtime::Runtime rt(o);
      for (std::size_t i = 0; i < cases.size(); ++i) {
        const std::string u =
            run_case([&](int cmd, bpf_attr& a) { return rt.bpf(cmd, &a, sizeof a); },
                     [&](int fd) { (void)rt.close(fd); }, cases[i]);
        EXPECT_EQ(u, kernel[i]) << cases[i].name << " [" << mode << "] (left: userbpf, right: kernel)";
        ++compared;
      }
    }
  std::filesystem::remove_all(tmpl);
  EXPECT_EQ(compared, static_cast<int>(4 * cases.size()));
}

}  // namespace
}  // namespace userbpf::helpers::test
