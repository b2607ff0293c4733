/* Hashing: Bob Jenkins' lookup3 hash (the kernel's jhash) of 16 keys of 60
 * bytes each (five 12-byte blocks: four mixes and a final round per key). */
#include "common.h"

#define KEY_LEN 60
#define NKEYS 16

#define MIX(a, b, c)                  \
  do {                                \
    a -= c; a ^= rol32(c, 4); c += b; \
    b -= a; b ^= rol32(a, 6); a += c; \
    c -= b; c ^= rol32(b, 8); b += a; \
    a -= c; a ^= rol32(c, 16); c += b; \
    b -= a; b ^= rol32(a, 19); a += c; \
    c -= b; c ^= rol32(b, 4); b += a; \
  } while (0)

#define FINAL(a, b, c)                \
  do {                                \
    c ^= b; c -= rol32(b, 14);        \
    a ^= c; a -= rol32(c, 11);        \
    b ^= a; b -= rol32(a, 25);        \
    c ^= b; c -= rol32(b, 16);        \
    a ^= c; a -= rol32(c, 4);         \
    b ^= a; b -= rol32(a, 14);        \
    c ^= b; c -= rol32(b, 24);        \
  } while (0)

BENCH_ENTRY long prog(u8 *mem, long len) {
  u64 acc = 0;
  (void)len;
  for (u32 k = 0; k < NKEYS; k++) {
    const u32 *w = (const u32 *)(mem + k * KEY_LEN);
    u32 a, b, c;
    a = b = c = 0xdeadbeef + KEY_LEN + k;
    for (u32 j = 0; j < 4; j++) {
      a += w[3 * j];
      b += w[3 * j + 1];
      c += w[3 * j + 2];
      MIX(a, b, c);
    }
    a += w[12];
    b += w[13];
    c += w[14];
    FINAL(a, b, c);
    acc = acc * 31 + c;
  }
  return (long)acc;
}
