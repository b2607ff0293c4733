// __sk_buff helpers that change the packet's size or move its headers, with
// the kernel's semantics and errno (net/core/filter.c, net/core/skbuff.c,
// include/linux/if_vlan.h):
//
//   skb_change_head(skb, head_room, flags)   pushes head_room zeroed bytes
//       before the MAC header (the new bytes become the MAC header).
//   skb_change_tail(skb, new_len, flags)     grows (zero-filled) or trims the
//       packet to new_len; min: the network offset; max BPF_SKB_MAX_LEN.
//   skb_adjust_room(skb, len_diff, mode, flags)   inserts / removes len_diff
//       bytes after the MAC header (BPF_ADJ_ROOM_MAC) or after the IPv4/IPv6
//       base header (BPF_ADJ_ROOM_NET); the ENCAP_* flags mark the skb as
//       encapsulated (a second encap is -EALREADY, change_tail -ENOTSUPP)
//       and switch skb->protocol for IPv4-in-IPv6 and back, DECAP_* the other
//       way. IPv4 / IPv6 packets only (else -ENOTSUPP).
//   skb_vlan_push(skb, proto, tci)   sets the "hardware accelerated" tag
//       (__sk_buff vlan_present/vlan_tci/vlan_proto); if one is set already
//       it goes into the packet first (802.1Q header after the MACs).
//   skb_vlan_pop(skb)                clears the accelerated tag or removes the
//       packet's outer tag; a next tag in the packet moves to the accelerated
//       one (the kernel's skb_vlan_pop).
//
// One mechanism for every size change (the skb counterpart of XdpBuff's
// pointer moves in packet.cpp): the packet lives in a buffer [head, end)
// (SkBuff::head/end, the test run's packet pages); pushing and growing move
// data / data_end inside it; when one side runs out of room the packet is
// memmoved inside the buffer (where the kernel would pskb_expand_head), and
// when the buffer is exhausted the helper fails with -ENOMEM as the kernel's
// allocation would. Every helper ends with commit(): data_end, pkt_len,
// skb.len, the 32-bit mirrors, LD_ABS's packet and, in checked runs, a
// Packet region for the new extent — the kernel's bpf_compute_data_pointers,
// which it also runs after a failure.
//
// Test-run skbs are CHECKSUM_NONE with no transport header and gso_type 0,
// so the checksum and GSO branches of the kernel reduce to: a GSO skb
// (gso_size != 0) cannot be resized by adjust_room (-ENOTSUPP, gso_type has
// no TCP bit) and change_tail resets its segment count (skb_gso_reset).
#include <linux/bpf.h>
#include <linux/if_ether.h>

#include <cerrno>
#include <cstring>

#include "helpers/internal.hpp"
#include "helpers/packet_ctx.hpp"

namespace userbpf::helpers {

namespace {

using namespace detail;  // NOLINT(google-build-using-namespace)

constexpr int kEnotsupp = 524;                        // the kernel's ENOTSUPP
constexpr u64 kSkbMaxLen = 4 * kPageSize - kSkbSharedInfo;  // BPF_SKB_MAX_LEN = SKB_MAX_ALLOC
constexpr std::uint32_t kVlanHlen = 4;                // VLAN_HLEN
constexpr std::uint32_t kMacAddrs = 2 * ETH_ALEN;     // the two MAC addresses

// Flags of kernels newer than the uapi header we build with.
constexpr u64 kDecapIpv4 = 1ULL << 7;  // BPF_F_ADJ_ROOM_DECAP_L3_IPV4
constexpr u64 kDecapIpv6 = 1ULL << 8;  // BPF_F_ADJ_ROOM_DECAP_L3_IPV6
constexpr u64 kDecapMask = kDecapIpv4 | kDecapIpv6;
constexpr u64 kEncapL3Mask = BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L3_IPV6;
constexpr u64 kAdjRoomMask = BPF_F_ADJ_ROOM_FIXED_GSO | kEncapL3Mask | BPF_F_ADJ_ROOM_ENCAP_L4_GRE |
                             BPF_F_ADJ_ROOM_ENCAP_L4_UDP | BPF_F_ADJ_ROOM_ENCAP_L2_ETH |
                             (u64{BPF_ADJ_ROOM_ENCAP_L2_MASK} << BPF_ADJ_ROOM_ENCAP_L2_SHIFT) | kDecapMask;

std::uint8_t* ptr(u64 a) { return reinterpret_cast<std::uint8_t*>(a); }  // NOLINT(performance-no-int-to-ptr)

// Network-order 16-bit values as the skb stores them (skb->protocol, vlan_proto).
constexpr std::uint16_t be16(std::uint16_t host) { return static_cast<std::uint16_t>((host >> 8) | (host << 8)); }
std::uint16_t load_raw16(u64 a) {
  std::uint16_t v;
  std::memcpy(&v, ptr(a), 2);
  return v;
}
void store_raw16(u64 a, std::uint16_t v) { std::memcpy(ptr(a), &v, 2); }

bool is_vlan(std::uint32_t proto) { return proto == be16(ETH_P_8021Q) || proto == be16(ETH_P_8021AD); }
bool gso(const SkBuff& s) { return s.skb.gso_size != 0; }

// ---- the buffer mechanism

// At least `n` bytes of headroom before data (skb_cow_head); memmoves the
// packet towards the end of the buffer when needed.
bool reserve_head(SkBuff& s, u64 n) {
  if (s.data - s.head >= n && s.head != 0) return true;
  if (s.head == 0) return n == 0;
  const u64 shift = n - (s.data - s.head);
  if (s.end - s.data_end < shift) return false;
  std::memmove(ptr(s.data + shift), ptr(s.data), s.data_end - s.data);
  s.data += shift;
  s.data_end += shift;
  return true;
}

// At least `n` bytes of tailroom after data_end; memmoves the packet towards
// the head of the buffer when needed.
bool reserve_tail(SkBuff& s, u64 n) {
  if (s.head == 0) return n == 0;
  if (s.end - s.data_end >= n) return true;
  const u64 shift = n - (s.end - s.data_end);
  if (s.data - s.head < shift) return false;
  std::memmove(ptr(s.data - shift), ptr(s.data), s.data_end - s.data);
  s.data -= shift;
  s.data_end -= shift;
  return true;
}

// bpf_compute_data_pointers and what the run keeps about the packet.
void commit(abi::Env& env, SkBuff& s) {
  s.pkt_len = s.data_end - s.data;
  s.data_meta = s.data;
  s.skb.len = static_cast<std::uint32_t>(s.pkt_len);
  s.sync32();
  if (env.packet != nullptr) {
    env.packet = ptr(s.data);
    env.packet_len = s.pkt_len;
  }
  if (env.options.checked && s.pkt_len != 0 && env.find_region(s.data, s.pkt_len, true) == nullptr)
    env.regions.push_back(abi::Region{s.data, s.pkt_len, true, abi::RegionKind::Packet});
}

// Runs `body` on the context and commits, whatever it returned.
template <class Body>
u64 resize(abi::Env& env, std::string_view helper, u64 r1, Body body) {
  auto* s = ctx_arg<SkBuff>(env, helper, r1, CtxKind::Skb, "__sk_buff");
  if (s == nullptr) return 0;
  const int e = body(*s);
  commit(env, *s);
  return e == 0 ? 0 : neg(e);
}

// ---- helpers

int change_head(SkBuff& s, std::uint32_t room, u64 flags) {
  const u64 new_len = s.pkt_len + room;
  if (flags != 0 || static_cast<std::int32_t>(room) < 0 || (!gso(s) && new_len > kSkbMaxLen)) return EINVAL;
  if (!reserve_head(s, room)) return ENOMEM;
  s.data -= room;
  std::memset(ptr(s.data), 0, room);
  // skb_reset_mac_header: the new bytes are the MAC header; the network
  // header stays where it was
  s.net_off = static_cast<std::uint32_t>(static_cast<std::int64_t>(s.net_off) - s.mac_off + room);
  s.mac_off = 0;
  return 0;
}

int change_tail(SkBuff& s, std::uint32_t new_len, u64 flags) {
  const u64 min_len = s.net_off;  // __bpf_skb_min_len: no transport header, CHECKSUM_NONE
  if (flags != 0 || new_len > kSkbMaxLen || new_len < min_len) return EINVAL;
  if (s.encapsulation) return kEnotsupp;
  if (new_len > s.pkt_len) {
    const u64 grow = new_len - s.pkt_len;
    if (!reserve_tail(s, grow)) return ENOMEM;
    std::memset(ptr(s.data_end), 0, grow);
  }
  s.data_end = s.data + new_len;
  // skb_gso_reset: the kernel (6.18) then reports gso_segs 0 and keeps
  // gso_size in ctx_out (compared)
  if (gso(s)) s.skb.gso_segs = 0;
  return 0;
}

// __skb_vlan_pop: removes the packet's outer 802.1Q header (after the MACs).
int vlan_pop_data(SkBuff& s, std::uint16_t& tci) {
  if (s.mac_off != 0) return EINVAL;
  if (s.pkt_len < ETH_HLEN + kVlanHlen) return ENOMEM;  // skb_ensure_writable(VLAN_ETH_HLEN)
  tci = be16(load_raw16(s.data + ETH_HLEN));
  const std::uint16_t enc = load_raw16(s.data + ETH_HLEN + 2);
  const u64 after = s.data + ETH_HLEN + kVlanHlen;  // what follows the tag (vlan_set_encap_proto)
  const std::uint16_t raw = after + 2 <= (s.end != 0 ? s.end : s.data_end) ? load_raw16(after) : 0;
  std::memmove(ptr(s.data + kVlanHlen), ptr(s.data), kMacAddrs);
  s.data += kVlanHlen;
  if (be16(enc) >= ETH_P_802_3_MIN)
    s.skb.protocol = enc;
  else
    s.skb.protocol = raw == 0xffff ? be16(ETH_P_802_3) : be16(ETH_P_802_2);
  const std::int64_t net = static_cast<std::int64_t>(s.net_off) - kVlanHlen;
  s.net_off = net < ETH_HLEN ? ETH_HLEN : static_cast<std::uint32_t>(net);
  return 0;
}

void put_tag(SkBuff& s, std::uint16_t proto, std::uint16_t tci) {
  s.skb.vlan_present = 1;
  s.skb.vlan_proto = proto;
  s.skb.vlan_tci = tci;
}

int vlan_push(SkBuff& s, std::uint16_t proto, std::uint16_t tci) {
  if (!is_vlan(proto)) proto = be16(ETH_P_8021Q);
  if (s.skb.vlan_present != 0) {
    // the accelerated tag goes into the packet (__vlan_insert_tag)
    if (s.mac_off != 0) return EINVAL;
    if (s.pkt_len < kMacAddrs) return EINVAL;  // (a test-run skb always has its MAC header)
    if (!reserve_head(s, kVlanHlen)) return ENOMEM;
    s.data -= kVlanHlen;
    std::memmove(ptr(s.data), ptr(s.data + kVlanHlen), kMacAddrs);
    store_raw16(s.data + kMacAddrs, static_cast<std::uint16_t>(s.skb.vlan_proto));
    store_raw16(s.data + kMacAddrs + 2, be16(static_cast<std::uint16_t>(s.skb.vlan_tci)));
    s.skb.protocol = s.skb.vlan_proto;
    // the network header keeps its offset from data (network_header -= VLAN_HLEN)
  }
  put_tag(s, proto, tci);
  return 0;
}

int vlan_pop(SkBuff& s) {
  std::uint16_t tci = 0;
  if (s.skb.vlan_present != 0) {
    s.skb.vlan_present = 0;  // __vlan_hwaccel_clear_tag (vlan_all = 0)
    s.skb.vlan_proto = 0;
    s.skb.vlan_tci = 0;
  } else {
    if (!is_vlan(s.skb.protocol)) return 0;
    if (const int e = vlan_pop_data(s, tci); e != 0) return e;
  }
  // the next tag in the packet becomes the accelerated one
  if (!is_vlan(s.skb.protocol)) return 0;
  const auto proto = static_cast<std::uint16_t>(s.skb.protocol);
  if (const int e = vlan_pop_data(s, tci); e != 0) return e;
  put_tag(s, proto, tci);
  return 0;
}

std::uint32_t net_base_len(const SkBuff& s) {
  if (s.skb.protocol == be16(ETH_P_IP)) return 20;     // sizeof(struct iphdr)
  if (s.skb.protocol == be16(ETH_P_IPV6)) return 40;   // sizeof(struct ipv6hdr)
  return 0;
}

// bpf_skb_net_grow: len zeroed bytes at data + off (after pushing the headers before off).
int net_grow(SkBuff& s, std::uint32_t off, std::uint32_t len, u64 flags) {
  const auto inner_mac_len = static_cast<std::uint32_t>(flags >> BPF_ADJ_ROOM_ENCAP_L2_SHIFT);
  const bool encap = (flags & kEncapL3Mask) != 0;
  if (gso(s)) return kEnotsupp;  // gso_type carries neither TCP nor UDP_L4 here
  if (!reserve_head(s, len)) return ENOMEM;
  if (encap) {
    if ((flags & kEncapL3Mask) == kEncapL3Mask) return EINVAL;
    if ((flags & BPF_F_ADJ_ROOM_ENCAP_L4_GRE) != 0 && (flags & BPF_F_ADJ_ROOM_ENCAP_L4_UDP) != 0) return EINVAL;
    if ((flags & BPF_F_ADJ_ROOM_ENCAP_L2_ETH) != 0 && inner_mac_len < ETH_HLEN) return EINVAL;
    if (s.encapsulation) return EALREADY;
    if (inner_mac_len > len) return EINVAL;
  }
  s.data -= len;  // bpf_skb_generic_push
  std::memmove(ptr(s.data), ptr(s.data + len), off);
  std::memset(ptr(s.data + off), 0, len);
  if (encap) {
    s.encapsulation = true;
    s.net_off = static_cast<std::uint32_t>(static_cast<std::int64_t>(s.net_off) - s.mac_off);  // mac_len
    if (s.skb.protocol == be16(ETH_P_IP) && (flags & BPF_F_ADJ_ROOM_ENCAP_L3_IPV6) != 0)
      s.skb.protocol = be16(ETH_P_IPV6);
    else if (s.skb.protocol == be16(ETH_P_IPV6) && (flags & BPF_F_ADJ_ROOM_ENCAP_L3_IPV4) != 0)
      s.skb.protocol = be16(ETH_P_IP);
  }
  return 0;
}

// bpf_skb_net_shrink: removes len bytes at data + off.
int net_shrink(SkBuff& s, std::uint32_t off, std::uint32_t len, u64 flags) {
  if ((flags & ~(BPF_F_ADJ_ROOM_FIXED_GSO | kDecapMask | BPF_F_ADJ_ROOM_NO_CSUM_RESET)) != 0) return EINVAL;
  if (gso(s)) return kEnotsupp;
  if (s.pkt_len < u64{off} + len) return ENOMEM;  // pskb_may_pull
  std::memmove(ptr(s.data + len), ptr(s.data), off);
  s.data += len;
  if (s.skb.protocol == be16(ETH_P_IP) && (flags & kDecapIpv6) != 0)
    s.skb.protocol = be16(ETH_P_IPV6);
  else if (s.skb.protocol == be16(ETH_P_IPV6) && (flags & kDecapIpv4) != 0)
    s.skb.protocol = be16(ETH_P_IP);
  return 0;
}

int adjust_room(SkBuff& s, std::int32_t len_diff, std::uint32_t mode, u64 flags) {
  const bool shrink = len_diff < 0;
  const std::uint32_t diff = shrink ? 0u - static_cast<std::uint32_t>(len_diff) : static_cast<std::uint32_t>(len_diff);
  std::uint32_t len_min = net_base_len(s);
  if ((flags & ~(kAdjRoomMask | BPF_F_ADJ_ROOM_NO_CSUM_RESET)) != 0) return EINVAL;
  if (diff > 0xfff) return EFAULT;
  if (s.skb.protocol != be16(ETH_P_IP) && s.skb.protocol != be16(ETH_P_IPV6)) return kEnotsupp;
  auto off = static_cast<std::uint32_t>(static_cast<std::int64_t>(s.net_off) - s.mac_off);  // skb_mac_header_len
  switch (mode) {
    case BPF_ADJ_ROOM_NET: off += net_base_len(s); break;
    case BPF_ADJ_ROOM_MAC: break;
    default: return kEnotsupp;
  }
  if ((flags & kDecapMask) != 0) {
    if (!shrink) return EINVAL;
    switch (flags & kDecapMask) {
      case kDecapIpv4: len_min = 20; break;
      case kDecapIpv6: len_min = 40; break;
      default: return EINVAL;
    }
  }
  const u64 len_cur = s.pkt_len - s.net_off;
  if ((shrink && (diff >= len_cur || len_cur - diff < len_min)) ||
      (!shrink && s.pkt_len + diff > kSkbMaxLen && !gso(s)))
    return kEnotsupp;
  return shrink ? net_shrink(s, off, diff, flags) : net_grow(s, off, diff, flags);
}

// long bpf_skb_change_head(struct sk_buff *skb, u32 head_room, u64 flags)
u64 skb_change_head(abi::Env& env, u64 r1, u64 r2, u64 r3, u64, u64) {
  return resize(env, "skb_change_head", r1,
                [&](SkBuff& s) { return change_head(s, static_cast<std::uint32_t>(r2), r3); });
}
// long bpf_skb_change_tail(struct sk_buff *skb, u32 len, u64 flags)
u64 skb_change_tail(abi::Env& env, u64 r1, u64 r2, u64 r3, u64, u64) {
  return resize(env, "skb_change_tail", r1,
                [&](SkBuff& s) { return change_tail(s, static_cast<std::uint32_t>(r2), r3); });
}
// long bpf_skb_adjust_room(struct sk_buff *skb, s32 len_diff, u32 mode, u64 flags)
u64 skb_adjust_room(abi::Env& env, u64 r1, u64 r2, u64 r3, u64 r4, u64) {
  return resize(env, "skb_adjust_room", r1, [&](SkBuff& s) {
    return adjust_room(s, static_cast<std::int32_t>(static_cast<std::uint32_t>(r2)), static_cast<std::uint32_t>(r3),
                       r4);
  });
}
// long bpf_skb_vlan_push(struct sk_buff *skb, __be16 vlan_proto, u16 vlan_tci)
u64 skb_vlan_push(abi::Env& env, u64 r1, u64 r2, u64 r3, u64, u64) {
  return resize(env, "skb_vlan_push", r1, [&](SkBuff& s) {
    return vlan_push(s, static_cast<std::uint16_t>(r2), static_cast<std::uint16_t>(r3));
  });
}
// long bpf_skb_vlan_pop(struct sk_buff *skb)
u64 skb_vlan_pop(abi::Env& env, u64 r1, u64, u64, u64, u64) {
  return resize(env, "skb_vlan_pop", r1, [](SkBuff& s) { return vlan_pop(s); });
}

constexpr Entry kResize[] = {
    UBPF_HELPER_ENTRY(skb_vlan_push),   UBPF_HELPER_ENTRY(skb_vlan_pop),    UBPF_HELPER_ENTRY(skb_change_tail),
    UBPF_HELPER_ENTRY(skb_change_head), UBPF_HELPER_ENTRY(skb_adjust_room),
};

}  // namespace

std::span<const detail::Entry> detail::resize_entries() { return kResize; }

}  // namespace userbpf::helpers
