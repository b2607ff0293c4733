/* Hash-map lookups and updates of flow keys (16-byte 5-tuples): each run
 * inserts (BPF_ANY, counters zeroed) 64 flows read from the input, looks
 * up 512 packets' flows, 1 in 4 of them absent from the map (a flipped
 * address bit), and counts packets and bytes in the value in place on a
 * hit, deletes 8 of the flows and looks them up again (misses), and
 * returns a digest of hits, misses and the counters. The next run's
 * inserts restore the deleted flows: every run leaves the same map. */
#include "common.h"

struct flow {
  u32 saddr;
  u32 daddr;
  u16 sport;
  u16 dport;
  u32 proto;
};

struct stats {
  u64 packets;
  u64 bytes;
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 128);
  __type(key, struct flow);
  __type(value, struct stats);
} flows SEC(".maps");

INLINE void flow_of(const u8 *mem, u32 idx, struct flow *f) {
  const u8 *p = mem + (idx & 63) * 16;
  f->saddr = *(const u32 *)p;
  f->daddr = *(const u32 *)(p + 4);
  f->sport = *(const u16 *)(p + 8);
  f->dport = *(const u16 *)(p + 10);
  f->proto = p[12] & 1 ? 17 : 6;
}

BENCH_ENTRY long prog(u8 *mem, long len) {
  (void)len;
  struct stats zero = {0, 0};
  for (u32 i = 0; i < 64; i++) {
    struct flow f;
    flow_of(mem, i, &f);
    if (bpf_map_update_elem(&flows, &f, &zero, BPF_ANY) != 0) return -1;
  }
  u64 hits = 0, misses = 0;
  for (u32 j = 0; j < 512; j++) {
    const u8 *pkt = mem + 1024 + (j & 255) * 4;
    struct flow f;
    flow_of(mem, pkt[0], &f);
    if ((pkt[1] & 3) == 0) f.daddr ^= 0x80000000u; /* not in the map */
    struct stats *s = bpf_map_lookup_elem(&flows, &f);
    if (s) {
      s->packets++;
      s->bytes += 64 + pkt[2] + ((u32)pkt[3] << 2);
      hits++;
    } else {
      misses++;
    }
  }
  for (u32 i = 0; i < 8; i++) {
    struct flow f;
    flow_of(mem, i * 8, &f);
    bpf_map_delete_elem(&flows, &f);
    if (bpf_map_lookup_elem(&flows, &f)) return -2;
  }
  u64 acc = hits << 32 | misses;
  for (u32 i = 0; i < 64; i++) {
    struct flow f;
    flow_of(mem, i, &f);
    struct stats *s = bpf_map_lookup_elem(&flows, &f);
    if (s) acc = (acc ^ (s->packets << 20 ^ s->bytes)) * 0x100000001b3ull;
  }
  return (long)acc;
}
