/* Open-coded iterators: bpf_for over the numeric iterator kfuncs
 * (bpf_iter_num_new / _next / _destroy), declared here as the kernel's
 * bpf_experimental.h does, run by the kernel and by userbpf. */
#include "iter.h"

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, __u64);
} iter_out SEC(".maps");

static __always_inline void put(__u32 k, __u64 v) {
  __u64 *p = bpf_map_lookup_elem(&iter_out, &k);
  if (p) *p = v;
}

/* Sums the first 64 bytes of the packet (fewer when it is shorter). */
SEC("xdp")
int xdp_iter_sum(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  __u64 sum = 0;
  int i;
  bpf_for(i, 0, 64) {
    __u8 *p = (__u8 *)data + i;
    if ((void *)(p + 1) > end) break;
    sum += *p;
  }
  put(0, sum);
  return sum & 1 ? XDP_PASS : XDP_DROP;
}

/* Nested iterators: sum over i < 8 of sum over j < i of i * j + packet[i]. */
SEC("xdp")
int xdp_iter_nested(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  __u64 acc = 0;
  int i, j;
  bpf_for(i, 0, 8) {
    __u8 *p = (__u8 *)data + i;
    if ((void *)(p + 1) <= end) acc += *p;
    bpf_for(j, 0, i) acc += (__u64)(i * j);
  }
  put(1, acc);
  return XDP_PASS;
}

/* An empty range and a refused one (start > end): next() returns NULL. */
SEC("xdp")
int xdp_iter_empty(struct xdp_md *ctx) {
  __u64 n = 0;
  int i;
  bpf_for(i, 5, 5) n += 1;
  bpf_for(i, 7, 3) n += 100;
  bpf_for(i, -3, 2) n += 10;
  put(2, n);
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
