/* Memory copies and compares: a fixed 256-byte __builtin_memcpy (unrolled
 * by clang), a 512-byte copy loop of 64-bit words, and a byte compare with
 * an early exit against a second region that differs only near its end. */
#include "common.h"

BENCH_ENTRY long prog(u8 *mem, long len) {
  (void)len;
  /* scratch: [1024, 1280) <- [0, 256) */
  __builtin_memcpy(mem + 1024, mem, 256);
  /* scratch: [1280, 1792) <- [256, 768) as words */
  u64 *dst = (u64 *)(mem + 1280);
  const u64 *src = (const u64 *)(mem + 256);
  for (u32 i = 0; i < 64; i++) dst[i] = src[i];
  /* compare the copy [1024, 1792) with its source [0, 768) (equal), then
   * [1792, 2048) with [768, 1024) (the input makes them differ near the end) */
  u32 diff = 768;
  for (u32 i = 0; i < 768; i++) {
    if (mem[1024 + i] != mem[i]) {
      diff = i;
      break;
    }
  }
  u32 diff2 = 256;
  for (u32 i = 0; i < 256; i++) {
    if (mem[1792 + i] != mem[768 + i]) {
      diff2 = i;
      break;
    }
  }
  u64 sum = 0;
  for (u32 i = 0; i < 96; i++) sum += ((const u64 *)(mem + 1024))[i];
  return (long)(sum ^ ((u64)diff << 40) ^ ((u64)diff2 << 52));
}
