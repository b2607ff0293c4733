// Runtime test object: the context helpers (xdp_adjust_head/meta/tail,
// skb_load_bytes/store_bytes) with parameters taken from the packet or the
// context, so that one load serves many cases. Each program returns the
// helper's result (an errno as a negative number) or a summary of the new
// packet geometry; the kernel and userbpf must agree on both and on the
// output packet (kernel_diff_test.cpp).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// The parameter: a signed 32-bit offset at bytes 14..17 of the frame.
static __always_inline int param(struct xdp_md *ctx, int *off) {
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  if (data + 18 > end) return -1;
  *off = *(int *)(data + 14);
  return 0;
}

SEC("xdp")
int adjust_head(struct xdp_md *ctx) {
  int off;
  if (param(ctx, &off)) return 1000;
  int r = bpf_xdp_adjust_head(ctx, off);
  if (r) return r;
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  if (data + 1 > end) return 1001;
  *(unsigned char *)data = 0xab;
  return (int)(end - data);
}

SEC("xdp")
int adjust_meta(struct xdp_md *ctx) {
  int off;
  if (param(ctx, &off)) return 1000;
  int r = bpf_xdp_adjust_meta(ctx, off);
  if (r) return r;
  void *meta = (void *)(long)ctx->data_meta;
  void *data = (void *)(long)ctx->data;
  if (meta + 4 <= data) *(__u32 *)meta = 0x11223344;
  return (int)(data - meta);
}

SEC("xdp")
int adjust_tail(struct xdp_md *ctx) {
  int off;
  if (param(ctx, &off)) return 1000;
  int r = bpf_xdp_adjust_tail(ctx, off);
  if (r) return r;
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  return (int)(end - data);
}

// Both: head moved by the first parameter, then the tail by the second
// (bytes 18..21), then metadata of 8 bytes.
SEC("xdp")
int adjust_all(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  if (data + 22 > end) return 1000;
  int head = *(int *)(data + 14);
  int tail = *(int *)(data + 18);
  int r = bpf_xdp_adjust_head(ctx, head);
  if (r) return 2000 + r;
  r = bpf_xdp_adjust_tail(ctx, tail);
  if (r) return 3000 + r;
  r = bpf_xdp_adjust_meta(ctx, -8);
  if (r) return 4000 + r;
  void *meta = (void *)(long)ctx->data_meta;
  data = (void *)(long)ctx->data;
  if (meta + 8 > data) return 1002;
  *(__u64 *)meta = 0x0102030405060708ULL;
  end = (void *)(long)ctx->data_end;
  return (int)(end - data);
}

// skb_load_bytes at offset skb->mark, 8 bytes, into cb[0..1].
static __always_inline int load8(struct __sk_buff *skb) {
  char buf[8];
  int r = bpf_skb_load_bytes(skb, skb->mark, buf, sizeof buf);
  skb->cb[0] = *(__u32 *)buf;
  skb->cb[1] = *(__u32 *)(buf + 4);
  return r;
}

SEC("tc")
int tc_load_bytes(struct __sk_buff *skb) { return load8(skb); }

SEC("socket")
int sock_load_bytes(struct __sk_buff *skb) { return load8(skb); }

// skb_store_bytes of 4 bytes at offset skb->mark with flags skb->priority.
SEC("tc")
int tc_store_bytes(struct __sk_buff *skb) {
  __u32 v = 0xdeadbeef;
  int r = bpf_skb_store_bytes(skb, skb->mark, &v, sizeof v, skb->priority);
  if (r) return r;
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  if (data + 14 > end) return 1001;
  return *(unsigned char *)(data + 13);
}

char LICENSE[] SEC("license") = "GPL";
