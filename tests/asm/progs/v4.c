/* ISA v4 instructions (clang-19 -mcpu=v4): sdiv/smod, movsx, sign-extending loads, bswap, gotol, may_goto. */
#include "common.h"

struct rec { s8 a; s16 b; s32 c; s64 d; u8 e; u16 f; u32 g; };

static NOINLINE s64 signed_ops(s64 x, s64 y, s32 p, s32 q) {
  s64 r = x / (y | 1);
  r += x % (y | 3);
  s32 t = p / (q | 1);
  t += p % (q | 5);
  return r + t;
}

static NOINLINE s64 extend(const struct rec *r, u64 v) {
  s64 s = r->a + r->b + r->c + r->d;  /* ldsx */
  s += (s8)v;                         /* movsx */
  s += (s16)(v >> 8);
  s += (s32)(v >> 16);
  s32 w = (s8)(u32)v + (s16)(u32)(v >> 4);
  return s + w + r->e + r->f + r->g;
}

static NOINLINE u64 swaps(u64 v) {
  return __builtin_bswap64(v) ^ __builtin_bswap32((u32)v) ^ __builtin_bswap16((u16)v);
}

static NOINLINE int far_jumps(int x) {
  /* gotol and may_goto through inline assembly (clang emits gotol only past 32767 instructions). */
  asm volatile("if %0 == 0 goto 1f\n\t"
               "gotol 2f\n\t"
               "1:\n\t"
               "%0 += 1\n\t"
               "2:\n\t"
               "may_goto 3f\n\t"
               "%0 += 2\n\t"
               "3:\n\t"
               : "+r"(x));
  return x;
}

SEC("tc")
int v4(struct __sk_buff *skb) {
  struct rec r = {(s8)skb->len, (s16)skb->mark, (s32)skb->priority, (s64)skb->protocol, 1, 2, 3};
  s64 a = signed_ops((s64)skb->len - 100, (s64)skb->mark - 7, (s32)skb->priority, (s32)skb->vlan_tci);
  s64 b = extend(&r, ((u64)skb->len << 32) | skb->mark);
  u64 c = swaps(skb->len);
  return (int)(a + b + (s64)c + far_jumps((int)skb->len));
}

char _license[] SEC("license") = "GPL";
