// The runtime's real contexts for packet programs (XDP and __sk_buff types),
// and the helpers that work on them (packet.cpp).
//
// A program reads its context through the uapi layout (struct xdp_md,
// struct __sk_buff). The real structures below start with that layout, so
// every scalar field is read and written where the program expects it; the
// packet pointers (data, data_end, data_meta) are 64-bit fields after it.
// For verified programs the runtime rewrites the context loads of the
// pointer fields (the kernel's convert_ctx_access): a 4-byte load of
// xdp_md.data becomes an 8-byte load of XdpBuff::data, and so on, so packets
// may live anywhere in the address space. Unverified programs are not
// rewritten: their context and packet live below 2 GiB and the uapi 32-bit
// fields hold the addresses (mirror32 = 1), which helpers keep current.
//
// Invariants:
//  - the program-visible part is exactly the uapi struct (offset 0, its size);
//    checked runs register only that part as the context region, so a
//    program never writes kind, mirror32 or the 64-bit pointers;
//  - XdpBuff: hard_start <= data_meta <= data <= data_end <= hard_end
//    (frame: hard_start + frame_sz; hard_end leaves the skb_shared_info
//    tailroom free, as xdp_data_hard_end());
//  - SkBuff: data + pkt_len == data_end, pkt_len == skb.len (the packet is
//    linear in test runs); when head != 0: head <= data <= data_end <= end.
#pragma once

#include <linux/bpf.h>
#include <linux/if_ether.h>

#include <cstddef>
#include <cstdint>

#include "abi/abi.hpp"

namespace userbpf::helpers {

// Tags helpers check before they trust a context pointer (a program of
// another type, or a forged pointer in a checked run, must not pass).
enum class CtxKind : std::uint32_t { None = 0, Xdp = 0x58445042u /* "BPDX" */, Skb = 0x42554b53u /* "SKUB" */ };

inline constexpr std::uint32_t kXdpFrameSize = 40;    // sizeof(struct xdp_frame), x86-64
inline constexpr std::uint32_t kSkbSharedInfo = 320;  // SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
inline constexpr std::uint32_t kXdpMaxFrags = 17;     // MAX_SKB_FRAGS
inline constexpr std::uint32_t kPageSize = 4096;
// The kernel's xdp_metalen_invalid(): metadata is a multiple of 4 bytes and
// fits skb_shared_info::meta_len (u8), so at most 252 bytes (kernel 6.x; older
// kernels allowed 32).
constexpr bool xdp_metalen_invalid(std::uint64_t metalen) { return (metalen & 3) != 0 || metalen > 255; }

struct XdpBuff {
  xdp_md md{};                 // what the program sees
  CtxKind kind = CtxKind::Xdp;
  std::uint32_t mirror32 = 0;  // 1: md.data/data_end/data_meta hold the low 32 bits of the pointers
  std::uint64_t data = 0;
  std::uint64_t data_end = 0;
  std::uint64_t data_meta = 0;
  std::uint64_t hard_start = 0;  // xdp->data_hard_start
  std::uint64_t hard_end = 0;    // hard_start + frame_sz - kSkbSharedInfo
  // Multi-buffer frames: the bytes after the linear part, in pages of
  // kPageSize (frag i at frags + i * kPageSize, frag_len[i] bytes used).
  std::uint8_t* frags = nullptr;
  std::uint32_t nr_frags = 0;
  std::uint32_t frag_len[kXdpMaxFrags] = {};

  [[nodiscard]] std::uint64_t frags_len() const {
    std::uint64_t n = 0;
    for (std::uint32_t i = 0; i < nr_frags; ++i) n += frag_len[i];
    return n;
  }
  void sync32() {
    if (mirror32 == 0) return;
    md.data = static_cast<std::uint32_t>(data);
    md.data_end = static_cast<std::uint32_t>(data_end);
    md.data_meta = static_cast<std::uint32_t>(data_meta);
  }
};

struct SkBuff {
  __sk_buff skb{};             // what the program sees
  CtxKind kind = CtxKind::Skb;
  std::uint32_t mirror32 = 0;  // 1: skb.data/data_end/data_meta hold the low 32 bits of the pointers
  std::uint64_t data = 0;      // skb->data (network header for socket filters / cgroup_skb, MAC header for tc)
  std::uint64_t data_end = 0;
  std::uint64_t data_meta = 0;  // = data: test runs carry no metadata
  std::uint64_t pkt_len = 0;    // bytes from data (skb->len, linear)
  // The buffer the packet lives in (skb->head .. skb->end). Helpers that
  // grow the packet (skb_change_head/tail, skb_adjust_room, skb_vlan_push,
  // skb_resize.cpp) move data / data_end inside it and memmove the packet
  // when one side runs out of room (the kernel reallocates instead; the
  // program reloads its packet pointers after these helpers either way).
  // 0: no buffer known, the packet cannot grow beyond [data, data_end).
  std::uint64_t head = 0;
  std::uint64_t end = 0;
  std::int32_t mac_off = 0;           // skb_mac_header - data (0 for tc, -ETH_HLEN for L3 types)
  std::uint32_t net_off = ETH_HLEN;   // skb_network_offset (network header - data)
  bool encapsulation = false;         // skb->encapsulation (set by skb_adjust_room's ENCAP flags)

  void sync32() {
    if (mirror32 == 0) return;
    skb.data = static_cast<std::uint32_t>(data);
    skb.data_end = static_cast<std::uint32_t>(data_end);
    skb.data_meta = static_cast<std::uint32_t>(data_meta);
  }
};

static_assert(offsetof(XdpBuff, md) == 0 && offsetof(SkBuff, skb) == 0, "the uapi part comes first");
static_assert(offsetof(XdpBuff, data) % 8 == 0 && offsetof(SkBuff, data) % 8 == 0, "8-byte pointer fields");

// Registers xdp_adjust_head (44), xdp_adjust_meta (54), xdp_adjust_tail (65),
// skb_load_bytes (26) and skb_store_bytes (9) in `table`.
void register_packet_helpers(abi::HelperTable& table);
// Their ids.
bool is_packet_helper(std::uint32_t id);

}  // namespace userbpf::helpers
