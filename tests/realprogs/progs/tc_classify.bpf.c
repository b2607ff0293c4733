/* Traffic classifier (sched_cls) and a socket filter.
 * tc_classify: inline Ethernet/IPv4/IPv6/TCP/UDP parsing with direct packet
 * access, a bounded loop hashing up to 32 payload bytes, per-class counters
 * in an array map whose value is an array indexed by a checked class number,
 * a per-port class table (hash map lookups with null checks).
 * sock_count: a socket filter reading headers with bpf_skb_load_bytes into
 * stack buffers, counting per-protocol bytes in a per-CPU array. */
#include "common.h"

#define NCLASSES 16
#define HASH_BYTES 32

struct class_counters {
  __u64 packets[NCLASSES];
  __u64 bytes[NCLASSES];
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct class_counters);
} counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 256);
  __type(key, __u16);
  __type(value, __u32);
} port_class SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 256);
  __type(key, __u32);
  __type(value, __u64);
} proto_bytes SEC(".maps");

SEC("tc")
int tc_classify(struct __sk_buff *skb) {
  void *data = (void *)(long)skb->data;
  void *data_end = (void *)(long)skb->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > data_end) return 0;
  __u8 l4 = 0;
  void *l4h;
  if (eth->h_proto == bpf_htons(ETH_P_IP)) {
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end) return 0;
    if (ip->ihl != 5) return 0; /* options: not classified */
    l4 = ip->protocol;
    l4h = ip + 1;
  } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr *ip6 = (void *)(eth + 1);
    if ((void *)(ip6 + 1) > data_end) return 0;
    l4 = ip6->nexthdr;
    l4h = ip6 + 1;
  } else {
    return 0;
  }

  __u16 dport = 0;
  void *payload;
  if (l4 == IPPROTO_TCP) {
    struct tcphdr *tcp = l4h;
    if ((void *)(tcp + 1) > data_end) return 0;
    dport = bpf_ntohs(tcp->dest);
    payload = tcp + 1;
  } else if (l4 == IPPROTO_UDP) {
    struct udphdr *udp = l4h;
    if ((void *)(udp + 1) > data_end) return 0;
    dport = bpf_ntohs(udp->dest);
    payload = udp + 1;
  } else {
    return 0;
  }

  /* FNV-1a over the first bytes of the payload: a bounded loop. */
  __u32 h = 2166136261u;
  for (int i = 0; i < HASH_BYTES; i++) {
    __u8 *b = payload + i;
    if ((void *)(b + 1) > data_end) break;
    h = (h ^ *b) * 16777619u;
  }

  __u32 cls = h % NCLASSES;
  __u32 *fixed = bpf_map_lookup_elem(&port_class, &dport);
  if (fixed) cls = *fixed;
  if (cls >= NCLASSES) return 0;

  __u32 zero = 0;
  struct class_counters *c = bpf_map_lookup_elem(&counters, &zero);
  if (!c) return 0;
  __sync_fetch_and_add(&c->packets[cls], 1);
  __sync_fetch_and_add(&c->bytes[cls], skb->len);
  skb->mark = cls;
  skb->tc_classid = cls + 1;
  return 0;
}

SEC("socket")
int sock_count(struct __sk_buff *skb) {
  __u8 vhl;
  __u32 proto = 0;
  if (skb->protocol == bpf_htons(ETH_P_IP)) {
    struct iphdr ip;
    if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0) return 0;
    vhl = ((__u8 *)&ip)[0];
    if ((vhl >> 4) != 4) return 0;
    proto = ip.protocol;
  } else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr ip6;
    if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) < 0) return 0;
    proto = ip6.nexthdr;
  }
  __u64 *b = bpf_map_lookup_elem(&proto_bytes, &proto);
  if (b) *b += skb->len;
  return skb->len;
}

char LICENSE[] SEC("license") = "GPL";
