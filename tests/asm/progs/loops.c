/* Bounded loops, bpf-to-bpf calls, switch tables and global data. */
#include "common.h"

int counter;
const volatile u32 limit = 37;
static u32 table[16] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3};

static NOINLINE u64 fib(u32 n) {
  u64 a = 0, b = 1;
  for (u32 i = 0; i < n && i < 90; i++) {
    u64 t = a + b;
    a = b;
    b = t;
  }
  return a;
}

NOINLINE u32 checksum(const u8 *p, u32 len) {
  u32 sum = 0;
#pragma clang loop unroll(disable)
  for (u32 i = 0; i < len && i < 64; i++) sum = (sum << 3) ^ (sum >> 29) ^ p[i];
  return sum;
}

static NOINLINE int classify(int x) {
  switch (x & 7) {
    case 0: return 11;
    case 1: return x * 3;
    case 2: return (int)((unsigned)x / 5);
    case 3: return (int)((unsigned)x % 7);
    case 4: return -x;
    case 5: return x << 4;
    default: return x >> 2;
  }
}

SEC("socket")
int loops(struct __sk_buff *skb) {
  u8 buf[64];
  for (int i = 0; i < 64; i++) buf[i] = (u8)(i * 7 + skb->len);
  u64 f = fib(skb->len & 63);
  u32 c = checksum(buf, skb->mark & 63);
  int acc = 0;
  for (u32 i = 0; i < 16; i++) {
    if (table[i] > limit) break;
    acc += classify((int)(table[i] + c));
  }
  counter += acc;
  if (f > 1000000ULL) acc ^= (int)(f >> 7);
  bpf_trace_printk("acc %d\n", 8, acc);
  return acc + (int)bpf_ktime_get_ns();
}

char _license[] SEC("license") = "GPL";
