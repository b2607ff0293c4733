/* XDP packet parser: Ethernet, up to two VLAN tags (bounded loop), IPv4 with
 * options, IPv6 with up to four extension headers (bounded loop), TCP/UDP.
 * Per-protocol counters in an array map, per-flow statistics in a hash map
 * (lookup, null check, update), a blocklist of destination ports. Static
 * (noinline) subprograms do the parsing. */
#include "common.h"

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 256);
  __type(key, __u32);
  __type(value, __u64);
} proto_count SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, struct flow_key);
  __type(value, struct flow_stats);
} flows SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, __u16);
  __type(value, __u8);
} blocked_ports SEC(".maps");

static __noinline int parse_eth(void *data, void *data_end, struct parsed *p) {
  struct ethhdr *eth = data;
  __u32 off = sizeof(*eth);
  if ((void *)(eth + 1) > data_end) return -1;
  __u16 proto = bpf_ntohs(eth->h_proto);
  p->vlan_depth = 0;
#pragma unroll
  for (int i = 0; i < MAX_VLAN_DEPTH; i++) {
    if (proto != ETH_P_8021Q && proto != ETH_P_8021AD) break;
    struct vlan_hdr *vh = data + off;
    if ((void *)(vh + 1) > data_end) return -1;
    proto = bpf_ntohs(vh->encap_proto);
    off += sizeof(*vh);
    p->vlan_depth++;
  }
  p->eth_proto = proto;
  p->l3_off = off;
  return 0;
}

static __always_inline int is_ext_hdr(__u8 nh) {
  return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS || nh == IPPROTO_FRAGMENT;
}

static __noinline int parse_l3(struct xdp_md *ctx, struct parsed *p, struct flow_key *k) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  __u32 off = p->l3_off & 0xff;
  if (p->eth_proto == ETH_P_IP) {
    struct iphdr *ip = data + off;
    if ((void *)(ip + 1) > data_end) return -1;
    __u32 ihl = ip->ihl * 4;
    if (ihl < sizeof(*ip)) return -1;
    if (data + off + ihl > data_end) return -1;
    k->family = 4;
    k->saddr[0] = ip->saddr;
    k->daddr[0] = ip->daddr;
    p->l4_proto = ip->protocol;
    p->l4_off = off + ihl;
    return 0;
  }
  if (p->eth_proto == ETH_P_IPV6) {
    struct ipv6hdr *ip6 = data + off;
    if ((void *)(ip6 + 1) > data_end) return -1;
    k->family = 6;
    __builtin_memcpy(k->saddr, &ip6->saddr, 16);
    __builtin_memcpy(k->daddr, &ip6->daddr, 16);
    __u8 nh = ip6->nexthdr;
    off += sizeof(*ip6);
    for (int i = 0; i < MAX_EXT_HDRS; i++) {
      if (!is_ext_hdr(nh)) break;
      __u8 *ext = data + off;
      if ((void *)(ext + 2) > data_end) return -1;
      nh = ext[0];
      off += nh == IPPROTO_FRAGMENT ? 8 : (ext[1] + 1) * 8;
      off &= 0x3ff;
    }
    p->l4_proto = nh;
    p->l4_off = off;
    return 0;
  }
  return -1;
}

static __noinline int parse_l4(struct xdp_md *ctx, struct parsed *p, __u32 *tcp_flags) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  __u32 off = p->l4_off & 0x3ff;
  p->sport = p->dport = 0;
  *tcp_flags = 0;
  if (p->l4_proto == IPPROTO_TCP) {
    struct tcphdr *tcp = data + off;
    if ((void *)(tcp + 1) > data_end) return -1;
    p->sport = bpf_ntohs(tcp->source);
    p->dport = bpf_ntohs(tcp->dest);
    *tcp_flags = ((__u8 *)tcp)[13];
  } else if (p->l4_proto == IPPROTO_UDP) {
    struct udphdr *udp = data + off;
    if ((void *)(udp + 1) > data_end) return -1;
    p->sport = bpf_ntohs(udp->source);
    p->dport = bpf_ntohs(udp->dest);
  }
  return 0;
}

static __noinline void account(struct flow_key *k, __u64 len, __u32 tcp_flags) {
  __u64 now = bpf_ktime_get_ns();
  struct flow_stats *st = bpf_map_lookup_elem(&flows, k);
  if (st) {
    __sync_fetch_and_add(&st->packets, 1);
    __sync_fetch_and_add(&st->bytes, len);
    st->last_seen_ns = now;
    st->tcp_flags |= tcp_flags;
    return;
  }
  struct flow_stats fresh = {};
  fresh.packets = 1;
  fresh.bytes = len;
  fresh.first_seen_ns = now;
  fresh.last_seen_ns = now;
  fresh.tcp_flags = tcp_flags;
  bpf_map_update_elem(&flows, k, &fresh, BPF_NOEXIST);
}

SEC("xdp")
int xdp_parse(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct parsed p = {};
  struct flow_key k = {};
  __u32 tcp_flags = 0;

  if (parse_eth(data, data_end, &p) < 0) return XDP_DROP;
  if (parse_l3(ctx, &p, &k) < 0) return XDP_PASS;
  if (parse_l4(ctx, &p, &tcp_flags) < 0) return XDP_DROP;

  __u32 proto = p.l4_proto;
  __u64 *cnt = bpf_map_lookup_elem(&proto_count, &proto);
  if (cnt) __sync_fetch_and_add(cnt, 1);

  __u16 dport = p.dport;
  if (dport && bpf_map_lookup_elem(&blocked_ports, &dport)) return XDP_DROP;

  k.sport = p.sport;
  k.dport = p.dport;
  k.proto = p.l4_proto;
  account(&k, (__u64)(data_end - data), tcp_flags);
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
