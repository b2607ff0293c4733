/* Subprograms: a static one (verified in the caller's context) and global
 * ones (the kernel verifies each separately against its BTF signature). */
#include "common.h"

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 64);
  __type(key, __u32);
  __type(value, __u64);
} hist SEC(".maps");

/* Global: scalar arguments only, checked on its own. */
__noinline int bucket_of(__u32 len) {
  int b = 0;
  for (int i = 0; i < 16; i++) {
    if (len <= 64u << i) break;
    b++;
  }
  return b;
}

static __noinline void bump(__u32 b) {
  __u64 *v = bpf_map_lookup_elem(&hist, &b);
  if (v) __sync_fetch_and_add(v, 1);
}

SEC("xdp")
int xdp_hist_global(struct xdp_md *ctx) {
  __u32 len = ctx->data_end - ctx->data;
  int b = bucket_of(len);
  if (b < 0 || b >= 64) return XDP_PASS;
  bump((__u32)b);
  return XDP_PASS;
}

static __noinline int bucket_static(__u32 len) {
  int b = 0;
  for (int i = 0; i < 16; i++) {
    if (len <= 64u << i) break;
    b++;
  }
  return b;
}

SEC("xdp")
int xdp_hist_static(struct xdp_md *ctx) {
  __u32 len = ctx->data_end - ctx->data;
  __u32 b = (__u32)bucket_static(len);
  if (b >= 64) return XDP_PASS;
  bump(b);
  return XDP_PASS;
}

struct slots8 {
  __u64 v[8];
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct slots8);
} arr8 SEC(".maps");

/* Global: the kernel verifies it on its own, so its caller sees an unknown
 * scalar return value, whatever the body does. */
__noinline int small_index(__u32 x) { return (int)(x & 7); }

/* Indexes with small_index()'s result without a check: fine if the callee's
 * body is known (0..7), rejected by the kernel (unbounded return value). */
SEC("xdp")
int xdp_global_range(struct xdp_md *ctx) {
  __u32 zero = 0;
  struct slots8 *s = bpf_map_lookup_elem(&arr8, &zero);
  if (!s) return XDP_PASS;
  int i = small_index(ctx->data_end - ctx->data);
  s->v[i] += 1;
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
