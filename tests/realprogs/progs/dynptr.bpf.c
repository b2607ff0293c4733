/* Dynptrs and socket references: a ring-buffer dynptr record per packet
 * (reserve, write, slice, read back, submit or discard), a local dynptr
 * over a map value, and a socket lookup that is released when found. Run by
 * the kernel and by userbpf (interpreter, JIT): the ring buffer records, the
 * map and the return values must be equal. */
#include "common.h"

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 4096);
} dyn_ring SEC(".maps");

struct scratch {
  __u8 bytes[64];
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct scratch);
} dyn_scratch SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, __u64);
} dyn_out SEC(".maps");

struct record {
  __u32 len;
  __u32 seq;
  __u8 head[16];
  __u64 sum;
};

static __always_inline void put(__u32 k, __u64 v) {
  __u64 *p = bpf_map_lookup_elem(&dyn_out, &k);
  if (p) *p = v;
}

/* One ring buffer record per packet through a dynptr: the packet's first
 * 16 bytes written with bpf_dynptr_write, the other fields through a slice,
 * read back with bpf_dynptr_read; odd-length packets are discarded. */
SEC("xdp")
int xdp_dynptr_ring(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  __u32 len = (__u32)(end - data);
  struct bpf_dynptr ptr;
  struct record check;
  __u64 sum = 0;

  if (bpf_ringbuf_reserve_dynptr(&dyn_ring, sizeof(struct record), 0, &ptr) != 0) {
    bpf_ringbuf_discard_dynptr(&ptr, 0);
    return XDP_ABORTED;
  }
  /* helpers without pkt_access (the dynptr ones) take no packet pointers */
  __u8 head[16] = {};
  if (data + 16 <= end) __builtin_memcpy(head, data, 16);
  bpf_dynptr_write(&ptr, 8, head, 16, 0);
  struct record *r = bpf_dynptr_data(&ptr, 0, sizeof(struct record));
  if (!r) {
    bpf_ringbuf_discard_dynptr(&ptr, 0);
    return XDP_ABORTED;
  }
  r->len = len;
  r->seq = 7;
  if (bpf_dynptr_read(&check, sizeof(check), &ptr, 0, 0) == 0)
    for (int i = 0; i < 16; i++) sum += check.head[i] * (i + 1);
  r->sum = sum + check.len;
  /* out of range: -E2BIG, and a NULL slice */
  put(1, (__u64)bpf_dynptr_read(&check, sizeof(check), &ptr, 8, 0));
  put(2, bpf_dynptr_data(&ptr, 24, 16) == 0);
  if (len & 1) {
    bpf_ringbuf_discard_dynptr(&ptr, 0);
    return XDP_DROP;
  }
  bpf_ringbuf_submit_dynptr(&ptr, 0);
  return XDP_PASS;
}

/* A local dynptr over a map value: copy the packet's first bytes in, read
 * a window back out. */
SEC("xdp")
int xdp_dynptr_local(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  __u32 zero = 0;
  struct bpf_dynptr ptr;
  __u8 window[8] = {};
  __u64 acc = 0;

  struct scratch *s = bpf_map_lookup_elem(&dyn_scratch, &zero);
  if (!s) return XDP_ABORTED;
  if (bpf_dynptr_from_mem(s, sizeof(*s), 0, &ptr) != 0) return XDP_ABORTED;
  __u8 buf[32] = {};
  if (data + 32 <= end) __builtin_memcpy(buf, data, 32);
  bpf_dynptr_write(&ptr, 4, buf, 32, 0);
  if (bpf_dynptr_read(window, sizeof(window), &ptr, 10, 0) == 0)
    for (int i = 0; i < 8; i++) acc = acc * 31 + window[i];
  put(0, acc);
  put(3, (__u64)bpf_dynptr_write(&ptr, 60, window, 8, 0)); /* -E2BIG */
  return acc & 1 ? XDP_PASS : XDP_DROP;
}

/* A TCP socket lookup for a tuple nobody listens on (192.0.2.1:9 from the
 * packet's bytes as the source): NULL in the kernel's test run and in
 * userbpf; a found socket would be released. */
SEC("tc")
int tc_sk_lookup(struct __sk_buff *skb) {
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  struct bpf_sock_tuple t = {};
  __u64 found = 0;

  if (data + 6 <= end) {
    __builtin_memcpy(&t.ipv4.saddr, data, 4);
    __builtin_memcpy(&t.ipv4.sport, data + 4, 2);
  }
  t.ipv4.daddr = bpf_htonl(0xc0000201);
  t.ipv4.dport = bpf_htons(9);
  struct bpf_sock *sk = bpf_sk_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
  if (sk) {
    found = sk->family + 1;
    struct bpf_tcp_sock *tp = bpf_tcp_sock(sk);
    if (tp) found += tp->snd_cwnd;
    bpf_sk_release(sk);
  }
  put(0, found + 100);
  return 0;
}
