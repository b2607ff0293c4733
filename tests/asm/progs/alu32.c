/* 32-bit arithmetic and JMP32 compares (-mcpu=v3 implies alu32). */
#include "common.h"

static NOINLINE u32 mix(u32 a, u32 b) {
  a += b; a ^= a << 13; a -= b >> 3; a *= 2654435761u; a |= b & 0xf0f0; a = (a >> 7) | (a << 25);
  b = a / (b | 1); b %= 1000003u; b = ~b;
  return a ^ b;
}

static NOINLINE s32 smix(s32 a, s32 b) {
  if (a < b) a = b - a; else if (a > 1000) a >>= 3;
  if (b <= -5) return a >> (b & 7);
  if ((u32)a >= 77u) return -a;
  return a - b;
}

SEC("socket")
int alu32(struct __sk_buff *skb) {
  u32 x = skb->len, y = skb->mark, z = skb->priority;
  u32 r = mix(x, y) + mix(y, z);
  s32 s = smix((s32)x, (s32)z);
  if (r == y) return 1;
  if (r < 17) return 2;
  if ((r & 0x80) != 0) r += 5;
  if ((s32)r > s) return s;
  return (int)(r ^ (u32)s);
}

char _license[] SEC("license") = "GPL";
