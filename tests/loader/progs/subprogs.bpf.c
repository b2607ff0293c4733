// Static and global subprograms, a bpf_loop callback (function pointer
// lddw), shared by two programs in different sections.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static __noinline int add_static(int a, int b) {
  return a * 3 + b;
}

__noinline int global_helper(int x) {
  if (x > 10) return add_static(x, 1);
  return x - 1;
}

static int loop_cb(__u32 index, void *ctx) {
  int *acc = ctx;
  *acc += (int)index;
  return 0;
}

SEC("xdp")
int prog_a(struct xdp_md *ctx) {
  int acc = 0;
  bpf_loop(4, loop_cb, &acc, 0);
  return global_helper(acc + (int)ctx->rx_queue_index) & 3;
}

SEC("tc")
int prog_b(struct __sk_buff *skb) {
  return add_static((int)skb->len, 2) > 100 ? 0 : 2;
}

SEC("socket")
int prog_c(struct __sk_buff *skb) {
  return (int)skb->len;  // no subprogram
}

char LICENSE[] SEC("license") = "GPL";
