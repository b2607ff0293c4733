/* XDP packet parsing: Ethernet, VLAN, IPv4/IPv6, TCP/UDP, per-port counters in a hash map. */
#include "common.h"

struct ethhdr { u8 dst[6], src[6]; u16 proto; };
struct vlanhdr { u16 tci, proto; };
struct iphdr { u8 ihl_ver, tos; u16 tot_len, id, frag_off; u8 ttl, protocol; u16 check; u32 saddr, daddr; };
struct ipv6hdr { u32 flow; u16 payload_len; u8 nexthdr, hop_limit; u8 saddr[16], daddr[16]; };
struct udphdr { u16 source, dest, len, check; };
struct tcphdr { u16 source, dest; u32 seq, ack_seq; u16 flags, window, check, urg_ptr; };

struct key { u32 addr; u16 port; u8 proto, pad; };
struct stats { u64 packets, bytes; };

struct {
  __uint(type, 1); /* BPF_MAP_TYPE_HASH */
  __uint(max_entries, 1024);
  __type(key, struct key);
  __type(value, struct stats);
} flows SEC(".maps");

static __attribute__((always_inline)) u16 bswap16(u16 x) { return (u16)((x << 8) | (x >> 8)); }

SEC("xdp")
int xdp_parse(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end) return 1; /* XDP_DROP */
  u16 proto = eth->proto;
  void *cur = eth + 1;
  if (proto == bswap16(0x8100)) {
    struct vlanhdr *vh = cur;
    if ((void *)(vh + 1) > end) return 1;
    proto = vh->proto;
    cur = vh + 1;
  }
  struct key k = {};
  if (proto == bswap16(0x0800)) {
    struct iphdr *ip = cur;
    if ((void *)(ip + 1) > end) return 1;
    if ((ip->ihl_ver & 0x0f) < 5) return 1;
    k.addr = ip->saddr;
    k.proto = ip->protocol;
    cur = (u8 *)ip + (ip->ihl_ver & 0x0f) * 4;
  } else if (proto == bswap16(0x86dd)) {
    struct ipv6hdr *ip6 = cur;
    if ((void *)(ip6 + 1) > end) return 1;
    k.addr = *(u32 *)&ip6->saddr[12];
    k.proto = ip6->nexthdr;
    cur = ip6 + 1;
  } else {
    return 2; /* XDP_PASS */
  }
  if (k.proto == 17) {
    struct udphdr *uh = cur;
    if ((void *)(uh + 1) > end) return 1;
    k.port = uh->dest;
  } else if (k.proto == 6) {
    struct tcphdr *th = cur;
    if ((void *)(th + 1) > end) return 1;
    k.port = th->dest;
    if (th->flags & bswap16(0x0002)) return 3; /* SYN: XDP_TX */
  }
  struct stats *s = bpf_map_lookup_elem(&flows, &k);
  if (s) {
    s->packets += 1;
    s->bytes += (u64)(end - data);
  } else {
    struct stats init = {1, (u64)(end - data)};
    bpf_map_update_elem(&flows, &k, &init, 0);
  }
  return 2;
}

char _license[] SEC("license") = "GPL";
