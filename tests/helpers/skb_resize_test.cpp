// skb_change_head, skb_change_tail, skb_adjust_room, skb_vlan_push and
// skb_vlan_pop (src/helpers/skb_resize.cpp): unit tests on an SkBuff over a
// buffer, in the three execution modes (the kernel comparison is
// skb_resize_kernel_test.cpp).
#include <array>
#include <new>

#include "skb_resize_util.hpp"

namespace userbpf::helpers::test {
namespace {

// ---- unit tests (an SkBuff over a 512-byte buffer, packet at 64)
struct Buf {
  Bytes mem = Bytes(512, 0xee);
  SkBuff s;
  explicit Buf(const Bytes& pkt, std::size_t at = 64) {
    std::memcpy(mem.data() + at, pkt.data(), pkt.size());
    s.head = reinterpret_cast<u64>(mem.data());
    s.end = s.head + mem.size();
    s.data = s.head + at;
    s.pkt_len = pkt.size();
    s.data_end = s.data + s.pkt_len;
    s.data_meta = s.data;
    s.skb.len = static_cast<std::uint32_t>(pkt.size());
    std::uint16_t proto;
    std::memcpy(&proto, pkt.data() + 12, 2);
    s.skb.protocol = proto;
  }
  [[nodiscard]] Bytes packet() const {
    const auto* p = reinterpret_cast<const std::uint8_t*>(s.data);
    return {p, p + s.pkt_len};
  }
  // runs helper(ctx, a2, a3, a4) in mode m; returns r0 as a signed value
  std::int64_t call(Mode m, Call c) {
    Prog p;
    p.lddw(2, c.a2).lddw(3, c.a3).lddw(4, c.a4);
    test::call(p, c.helper).exit();
    Runner r;
    r.allow(&s, sizeof s);
    r.regions.back().kind = abi::RegionKind::Context;
    r.allow(mem.data(), mem.size());
    const auto res = r.run(p.v, m, {reinterpret_cast<u64>(&s)});
    EXPECT_TRUE(res.ok()) << (res.error ? res.error->to_string() : "");
    return static_cast<std::int64_t>(res.r0);
  }
};

TEST(SkbResize, ChangeHeadAndTail) {
  for (Mode m : kModes) {
    const Bytes pkt = frame(60, ETH_P_IP);
    Buf b(pkt);
    EXPECT_EQ(b.call(m, {BPF_FUNC_skb_change_head, 14}), 0) << mode_name(m);
    Bytes want(14, 0);
    want.insert(want.end(), pkt.begin(), pkt.end());
    EXPECT_EQ(b.packet(), want);
    EXPECT_EQ(b.s.skb.len, 74u);
    EXPECT_EQ(b.s.net_off, 28u);  // the network header did not move
    // more than the headroom left (50): the packet moves inside the buffer
    EXPECT_EQ(b.call(m, {BPF_FUNC_skb_change_head, 100}), 0);
    EXPECT_EQ(b.packet().size(), 174u);
    EXPECT_TRUE(std::equal(want.begin(), want.end(), b.packet().begin() + 100));
    EXPECT_EQ(b.call(m, {BPF_FUNC_skb_change_head, 1, 1}), -EINVAL);         // flags
    EXPECT_EQ(b.call(m, {BPF_FUNC_skb_change_head, 0x80000000u}), -EINVAL);  // (int)head_room < 0
    EXPECT_EQ(b.call(m, {BPF_FUNC_skb_change_head, 400}), -ENOMEM);          // the buffer is exhausted
    // tail: trim, grow zero-filled, limits
    Buf t(pkt);
    EXPECT_EQ(t.call(m, {BPF_FUNC_skb_change_tail, 40}), 0);
    EXPECT_EQ(t.packet(), Bytes(pkt.begin(), pkt.begin() + 40));
    EXPECT_EQ(t.call(m, {BPF_FUNC_skb_change_tail, 100}), 0);
    Bytes grown(pkt.begin(), pkt.begin() + 40);
    grown.resize(100, 0);
    EXPECT_EQ(t.packet(), grown);
    EXPECT_EQ(t.s.skb.len, 100u);
    EXPECT_EQ(t.call(m, {BPF_FUNC_skb_change_tail, 13}), -EINVAL);  // below the network offset
    EXPECT_EQ(t.call(m, {BPF_FUNC_skb_change_tail, 14}), 0);
    EXPECT_EQ(t.call(m, {BPF_FUNC_skb_change_tail, 16065}), -EINVAL);  // BPF_SKB_MAX_LEN
    EXPECT_EQ(t.call(m, {BPF_FUNC_skb_change_tail, 60, 1}), -EINVAL);
    EXPECT_EQ(t.call(m, {BPF_FUNC_skb_change_tail, 600}), -ENOMEM);  // bigger than the buffer
  }
}

TEST(SkbResize, VlanPushPop) {
  for (Mode m : kModes) {
    const Bytes pkt = frame(60, ETH_P_IP);
    Buf b(pkt);
    // the first tag is the accelerated one: the packet does not change
    EXPECT_EQ(b.call(m, {BPF_FUNC_skb_vlan_push, 0x0081 /* htons(0x8100) */, 7}), 0) << mode_name(m);
    EXPECT_EQ(b.packet(), pkt);
    EXPECT_EQ(b.s.skb.vlan_present, 1u);
    EXPECT_EQ(b.s.skb.vlan_tci, 7u);
    EXPECT_EQ(b.s.skb.vlan_proto, 0x0081u);
    // the second one moves the first into the packet
    EXPECT_EQ(b.call(m, {BPF_FUNC_skb_vlan_push, 0x1234 /* not a VLAN proto: 802.1Q */, 9}), 0);
    Bytes tagged = pkt;
    const std::uint8_t tag[] = {0x81, 0x00, 0x00, 0x07};
    tagged.insert(tagged.begin() + 12, std::begin(tag), std::end(tag));
    EXPECT_EQ(b.packet(), tagged);
    EXPECT_EQ(b.s.skb.protocol, 0x0081u);
    EXPECT_EQ(b.s.skb.vlan_tci, 9u);
    EXPECT_EQ(b.s.skb.vlan_proto, 0x0081u);
    // pop: clears the accelerated tag, then the packet's tag becomes the accelerated one
    EXPECT_EQ(b.call(m, {BPF_FUNC_skb_vlan_pop}), 0);
    EXPECT_EQ(b.packet(), pkt);
    EXPECT_EQ(b.s.skb.vlan_present, 1u);
    EXPECT_EQ(b.s.skb.vlan_tci, 7u);
    EXPECT_EQ(b.s.skb.protocol, 0x0008u);
    EXPECT_EQ(b.call(m, {BPF_FUNC_skb_vlan_pop}), 0);
    EXPECT_EQ(b.s.skb.vlan_present, 0u);
    EXPECT_EQ(b.call(m, {BPF_FUNC_skb_vlan_pop}), 0);  // nothing left: no-op
    EXPECT_EQ(b.packet(), pkt);
    // a tagged packet too short for the tag
    Buf s(frame(16, 0, {3}));
    EXPECT_EQ(s.call(m, {BPF_FUNC_skb_vlan_pop}), -ENOMEM);
  }
}

TEST(SkbResize, AdjustRoom) {
  for (Mode m : kModes) {
    const Bytes pkt = frame(80, ETH_P_IP);
    Buf b(pkt);
    EXPECT_EQ(b.call(m, {BPF_FUNC_skb_adjust_room, 8, BPF_ADJ_ROOM_MAC}), 0) << mode_name(m);
    Bytes want(pkt.begin(), pkt.begin() + 14);
    want.resize(22, 0);
    want.insert(want.end(), pkt.begin() + 14, pkt.end());
    EXPECT_EQ(b.packet(), want);
    EXPECT_EQ(b.call(m, {BPF_FUNC_skb_adjust_room, static_cast<u64>(-8), BPF_ADJ_ROOM_MAC}), 0);
    EXPECT_EQ(b.packet(), pkt);
    EXPECT_EQ(b.call(m, {BPF_FUNC_skb_adjust_room, 4, BPF_ADJ_ROOM_NET}), 0);  // after the 20-byte IPv4 header
    want.assign(pkt.begin(), pkt.begin() + 34);
    want.resize(38, 0);
    want.insert(want.end(), pkt.begin() + 34, pkt.end());
    EXPECT_EQ(b.packet(), want);
    EXPECT_EQ(b.call(m, {BPF_FUNC_skb_adjust_room, 4, 2}), -524);                            // mode
    EXPECT_EQ(b.call(m, {BPF_FUNC_skb_adjust_room, 0x1000, BPF_ADJ_ROOM_MAC}), -EFAULT);     // > 0xfff
    EXPECT_EQ(b.call(m, {BPF_FUNC_skb_adjust_room, 4, BPF_ADJ_ROOM_MAC, 1u << 9}), -EINVAL);  // unknown flag
    EXPECT_EQ(b.call(m, {BPF_FUNC_skb_adjust_room, 4, BPF_ADJ_ROOM_MAC, kDecapIpv4}), -EINVAL);  // decap grows
    // encapsulation: IPv4 in IPv6 switches the protocol; a second encap is EALREADY
    const u64 encap6 = BPF_F_ADJ_ROOM_ENCAP_L3_IPV6;
    EXPECT_EQ(b.call(m, {BPF_FUNC_skb_adjust_room, 40, BPF_ADJ_ROOM_MAC, encap6}), 0);
    EXPECT_EQ(b.s.skb.protocol, 0xdd86u);
    EXPECT_TRUE(b.s.encapsulation);
    EXPECT_EQ(b.call(m, {BPF_FUNC_skb_adjust_room, 40, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_ENCAP_L3_IPV4}), -EALREADY);
    EXPECT_EQ(b.call(m, {BPF_FUNC_skb_change_tail, 100}), -524);
    // decap back to IPv4
    EXPECT_EQ(b.call(m, {BPF_FUNC_skb_adjust_room, static_cast<u64>(-40), BPF_ADJ_ROOM_MAC, kDecapIpv4}), 0);
    EXPECT_EQ(b.s.skb.protocol, 0x0008u);
    // not IP
    Buf arp(frame(60, ETH_P_ARP));
    EXPECT_EQ(arp.call(m, {BPF_FUNC_skb_adjust_room, 4, BPF_ADJ_ROOM_MAC}), -524);
  }
}

TEST(SkbResize, WrongContextFails) {
  // An XDP context where an skb one is expected. Contexts live in the
  // runtime's arena (a page), so the helper may read the SkBuff-sized tag
  // position past the smaller XdpBuff: give it the same room here.
  alignas(16) std::array<std::uint8_t, 4096> arena{};
  auto* x = new (arena.data()) XdpBuff{};
  Runner r;
  Prog p;
  call(p, BPF_FUNC_skb_change_tail).exit();
  const auto res = r.run(p.v, Mode::Fast, {reinterpret_cast<u64>(x)});
  ASSERT_FALSE(res.ok());
  EXPECT_NE(res.error->message.find("bpf_skb_change_tail"), std::string::npos) << res.error->message;
}

}  // namespace
}  // namespace userbpf::helpers::test
