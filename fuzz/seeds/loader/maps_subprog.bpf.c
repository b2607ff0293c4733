// Loader seed: BTF-defined maps, global data, a .text subprogram, two programs.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, __u64);
} counts SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 2);
  __type(key, __u32);
  __type(value, __u32);
} cfg SEC(".maps");

volatile __u32 seen = 0;
const volatile __u32 limit = 7;

static __attribute__((noinline)) __u64 bump(__u32 k) {
  __u64 *v = bpf_map_lookup_elem(&counts, &k);
  if (v) return ++*v;
  __u64 one = 1;
  bpf_map_update_elem(&counts, &k, &one, BPF_ANY);
  return 1;
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx) {
  __u32 k = 0;
  __u32 *c = bpf_map_lookup_elem(&cfg, &k);
  seen++;
  return bump(c ? *c : 1) > limit ? XDP_DROP : XDP_PASS;
}

SEC("socket")
int sock_count(struct __sk_buff *skb) { return (int)bump(skb->len & 3); }

char LICENSE[] SEC("license") = "GPL";
