/* Packet parsing with bounds checks: 16 slots of 128 bytes, each a 2-byte
 * little-endian length and an Ethernet frame (optional 802.1Q tag, IPv4 with
 * a variable header length, TCP/UDP ports). Every field read is checked
 * against the frame length first, as XDP programs check data_end. Returns a
 * flow-hash sum mixed with per-class counters. */
#include "common.h"

#define SLOT 128
#define NSLOT 16

BENCH_ENTRY long prog(u8 *mem, long len) {
  u64 acc = 0;
  u64 counts = 0;
  (void)len;
  for (u32 i = 0; i < NSLOT; i++) {
    const u8 *s = mem + i * SLOT;
    u32 plen = s[0] | ((u32)s[1] << 8);
    const u8 *d = s + 2;
    if (plen > SLOT - 2 || plen < 14) { counts += 1ull << 48; continue; }
    u32 proto = rd16be(d + 12);
    u32 off = 14;
    if (proto == 0x8100) {
      if (plen < 18) { counts += 1ull << 48; continue; }
      proto = rd16be(d + 16);
      off = 18;
    }
    if (proto != 0x0800) { counts += 1ull << 32; continue; }
    if (off + 20 > plen) { counts += 1ull << 48; continue; }
    u32 vihl = d[off];
    if ((vihl >> 4) != 4) { counts += 1ull << 48; continue; }
    u32 ihl = (vihl & 0xf) * 4;
    if (ihl < 20 || off + ihl > plen) { counts += 1ull << 48; continue; }
    u32 l4 = d[off + 9];
    u32 saddr = *(const u32 *)(d + off + 12);
    u32 daddr = *(const u32 *)(d + off + 16);
    u32 ports = 0;
    u32 l4off = off + ihl;
    if (l4 == 6 || l4 == 17) {
      if (l4off + 4 > plen) { counts += 1ull << 48; continue; }
      ports = *(const u32 *)(d + l4off);
      counts += l4 == 6 ? 1 : 1ull << 16;
    } else {
      counts += 1ull << 32;
    }
    u32 h = saddr ^ rol32(daddr, 7) ^ rol32(ports, 13) ^ l4;
    h *= 0x9e3779b1u;
    acc += h ^ (h >> 16);
  }
  return (long)(acc ^ counts);
}
