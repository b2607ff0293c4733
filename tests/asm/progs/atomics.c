/* Atomic operations (-mcpu=v3): add/or/and/xor with and without fetch, xchg, cmpxchg, 32 and 64 bits. */
#include "common.h"

u64 g64;
u32 g32;

SEC("tc")
int atomics(struct __sk_buff *skb) {
  u64 v = skb->len;
  u32 w = skb->mark;
  __sync_fetch_and_add(&g64, v);
  __sync_fetch_and_add(&g32, w);
  __sync_fetch_and_or(&g64, 0x10);
  __sync_fetch_and_and(&g32, 0xff);
  __sync_fetch_and_xor(&g64, v);
  u64 a = __sync_fetch_and_add(&g64, 2);
  u32 b = __sync_fetch_and_or(&g32, w);
  u64 c = __sync_fetch_and_and(&g64, ~v);
  u32 d = __sync_fetch_and_xor(&g32, 5);
  u64 e = __sync_lock_test_and_set(&g64, a + c);
  u32 f = __sync_lock_test_and_set(&g32, b ^ d);
  u64 g = __sync_val_compare_and_swap(&g64, e, v);
  u32 h = __sync_val_compare_and_swap(&g32, f, w);
  return (int)(a + b + c + d + e + f + g + h);
}

char _license[] SEC("license") = "GPL";
