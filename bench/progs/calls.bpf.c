/* bpf-to-bpf calls: per 8-byte record, a call chain of three non-inlined
 * functions (a record parser that calls a 64-bit mixer and a clamp), 256
 * records: 768 calls per run. */
#include "common.h"

NOINLINE u64 mix64(u64 x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

NOINLINE u64 clamp(u64 v, u64 lo, u64 hi) { return v < lo ? lo : v > hi ? hi : v; }

NOINLINE u64 record(const u8 *mem, u32 i) {
  u64 v = *(const u64 *)(mem + (i & 255) * 8);
  return mix64(v) + clamp(v & 0xffff, 1000, 50000);
}

BENCH_ENTRY long prog(u8 *mem, long len) {
  u64 acc = 0;
  (void)len;
  for (u32 i = 0; i < 256; i++) acc = (acc << 1 | acc >> 63) ^ record(mem, i);
  return (long)acc;
}
