/* Deliberately broken programs: each one has one classic mistake that the
 * kernel's verifier rejects. */
#include "common.h"

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, __u32);
  __type(value, __u64);
} counts SEC(".maps");

struct slots {
  __u64 slot[16];
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct slots);
} table SEC(".maps");

/* Checks the Ethernet header but reads the IPv4 header without a check. */
SEC("xdp")
int xdp_no_bounds(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > data_end) return XDP_DROP;
  if (eth->h_proto != bpf_htons(ETH_P_IP)) return XDP_PASS;
  struct iphdr *ip = (void *)(eth + 1);
  if (ip->protocol == IPPROTO_ICMP) return XDP_DROP; /* no bounds check */
  return XDP_PASS;
}

/* Dereferences the result of bpf_map_lookup_elem without a null check. */
SEC("xdp")
int xdp_no_null(struct xdp_md *ctx) {
  __u32 key = ctx->ingress_ifindex;
  __u64 *v = bpf_map_lookup_elem(&counts, &key);
  *v += 1; /* v may be NULL */
  return XDP_PASS;
}

/* Off-by-one index check: idx may be 16, one past the array. */
SEC("tc")
int tc_map_oob(struct __sk_buff *skb) {
  __u32 zero = 0;
  struct slots *s = bpf_map_lookup_elem(&table, &zero);
  if (!s) return 0;
  __u32 idx = skb->mark;
  if (idx > 16) return 0; /* should be idx >= 16 */
  s->slot[idx] += 1;
  return 0;
}

/* A correct twin of the above, so the object also has an accepted program. */
SEC("tc")
int tc_map_ok(struct __sk_buff *skb) {
  __u32 zero = 0;
  struct slots *s = bpf_map_lookup_elem(&table, &zero);
  if (!s) return 0;
  __u32 idx = skb->mark;
  if (idx >= 16) return 0;
  s->slot[idx] += 1;
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
