/* Checksums: bitwise CRC-32 (reflected, polynomial 0xedb88320) of 128
 * bytes: nested bounded loops, eight data-dependent branches per byte. */
#include "common.h"

BENCH_ENTRY long prog(u8 *mem, long len) {
  u32 crc = 0xffffffffu;
  (void)len;
  for (u32 i = 0; i < 128; i++) {
    crc ^= mem[i];
    for (u32 b = 0; b < 8; b++) {
      if (crc & 1)
        crc = (crc >> 1) ^ 0xedb88320u;
      else
        crc >>= 1;
    }
  }
  return (long)~crc;
}
