/* Nested bounded loops: 12x12 32-bit matrix product C = A * B (A at 0, B at
 * 576 bytes), 1728 multiply-adds, result written to scratch at 1152 and
 * summed. */
#include "common.h"

#define N 12

BENCH_ENTRY long prog(u8 *mem, long len) {
  const u32 *a = (const u32 *)mem;
  const u32 *b = (const u32 *)(mem + N * N * 4);
  u32 *c = (u32 *)(mem + 2 * N * N * 4);
  u64 acc = 0;
  (void)len;
  for (u32 i = 0; i < N; i++) {
    for (u32 j = 0; j < N; j++) {
      u32 s = 0;
      for (u32 k = 0; k < N; k++) s += a[i * N + k] * b[k * N + j];
      c[i * N + j] = s;
      acc = acc * 131 + s;
    }
  }
  return (long)acc;
}
