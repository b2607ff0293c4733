/* Bit manipulation over 128 64-bit words: SWAR popcount, count leading
 * zeros by a shift loop with an early exit, lowest set bit, parity, and a
 * bit reversal of the low byte. */
#include "common.h"

BENCH_ENTRY long prog(u8 *mem, long len) {
  const u64 *w = (const u64 *)mem;
  u64 acc = 0;
  (void)len;
  for (u32 i = 0; i < 128; i++) {
    u64 x = w[i];
    u64 p = x - ((x >> 1) & 0x5555555555555555ull);
    p = (p & 0x3333333333333333ull) + ((p >> 2) & 0x3333333333333333ull);
    p = (p + (p >> 4)) & 0x0f0f0f0f0f0f0f0full;
    p = (p * 0x0101010101010101ull) >> 56;
    u32 clz = 0;
    u64 y = x >> (i & 31); /* vary the loop length */
    for (u32 k = 0; k < 64; k++) {
      if (y & 0x8000000000000000ull) break;
      y <<= 1;
      clz++;
    }
    u64 low = x & (0 - x);
    u64 par = x ^ (x >> 32);
    par ^= par >> 16;
    par ^= par >> 8;
    par ^= par >> 4;
    par ^= par >> 2;
    par ^= par >> 1;
    u32 b = (u32)(x & 0xff);
    b = ((b & 0xf0) >> 4) | ((b & 0x0f) << 4);
    b = ((b & 0xcc) >> 2) | ((b & 0x33) << 2);
    b = ((b & 0xaa) >> 1) | ((b & 0x55) << 1);
    acc = acc * 0x9e3779b97f4a7c15ull + (p << 40) + ((u64)clz << 32) + (low >> 3) + ((par & 1) << 8) + b;
  }
  return (long)acc;
}
