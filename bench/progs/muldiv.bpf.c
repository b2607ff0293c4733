/* Multiplication and division: 64- and 32-bit unsigned divide, modulo and
 * multiply over 255 pairs of 64-bit words (divisors forced non-zero). */
#include "common.h"

BENCH_ENTRY long prog(u8 *mem, long len) {
  const u64 *w = (const u64 *)mem;
  u64 acc = 1;
  (void)len;
  for (u32 i = 0; i < 255; i++) {
    u64 a = w[i];
    u64 b = (w[i + 1] >> (i & 31)) | 1;
    u32 a32 = (u32)a, b32 = (u32)(b >> 3) | 1;
    acc += a / b;
    acc ^= a % b;
    acc += a32 / b32 + a32 % b32;
    acc += (u64)(a32 * b32);
    acc = acc * 0x9e3779b97f4a7c15ull + ((a * b) >> 7);
  }
  return (long)acc;
}
