// Runtime test object: counts packets per EtherType in a hash map, keeps a
// total in .data, drops the EtherType named in .rodata, uses a per-CPU array,
// and tail-calls a second program through a program array filled by an
// __array initialiser.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 64);
  __type(key, __u32);
  __type(value, __u64);
} counts SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} pcpu SEC(".maps");

int tail_target(struct xdp_md *ctx);

struct {
  __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
  __uint(max_entries, 2);
  __uint(key_size, sizeof(__u32));
  __array(values, int(void *));
} jumps SEC(".maps") = {
    .values = {[1] = (void *)&tail_target},
};

__u64 total = 0;
const volatile __u32 drop_proto = 0x86dd;  // IPv6

SEC("xdp")
int tail_target(struct xdp_md *ctx) { return XDP_TX; }

SEC("xdp")
int xdp_count(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  if (data + 14 > end) return XDP_ABORTED;
  unsigned char *p = data;
  __u32 proto = ((__u32)p[12] << 8) | p[13];
  __u64 one = 1, *v = bpf_map_lookup_elem(&counts, &proto);
  if (v)
    __sync_fetch_and_add(v, 1);
  else
    bpf_map_update_elem(&counts, &proto, &one, BPF_NOEXIST);
  __u32 zero = 0;
  __u64 *c = bpf_map_lookup_elem(&pcpu, &zero);
  if (c) *c += 1;
  __sync_fetch_and_add(&total, 1);
  if (proto == drop_proto) return XDP_DROP;
  if (proto == 0x0806) bpf_tail_call(ctx, &jumps, 1);  // ARP: XDP_TX via the tail call
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
