/* Checksums: the Internet checksum (RFC 1071: 16-bit one's-complement sum,
 * folded) over 1500 bytes read as big-endian 16-bit words, as an IP/TCP
 * checksum update would, plus the same over three sub-ranges. */
#include "common.h"

INLINE u32 fold(u64 sum) {
  sum = (sum & 0xffffffffull) + (sum >> 32);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (u32)(~sum & 0xffff);
}

BENCH_ENTRY long prog(u8 *mem, long len) {
  u64 total = 0;
  u64 p0 = 0, p1 = 0, p2 = 0;
  (void)len;
  for (u32 i = 0; i < 1500; i += 2) {
    u32 w = rd16be(mem + i);
    total += w;
    if (i < 500)
      p0 += w;
    else if (i < 1000)
      p1 += w;
    else
      p2 += w;
  }
  return (long)(((u64)fold(total) << 48) | ((u64)fold(p0) << 32) | ((u64)fold(p1) << 16) | fold(p2));
}
