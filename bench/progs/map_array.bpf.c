/* Array-map lookups and in-place updates driven by input bytes: 256 slots
 * of 32 bytes. Each run first resets every slot (256 lookups + stores),
 * then 1024 input bytes each select a slot that is looked up and updated in
 * place (count, weighted sum, last position), then 64 slots chosen by input
 * are folded into the result and the digest is stored with
 * bpf_map_update_elem into a one-entry summary map. 1345 lookups and one
 * update per run; the maps end every run in the same state. */
#include "common.h"

struct slot {
  u64 count;
  u64 sum;
  u64 last;
  u64 mix;
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 256);
  __type(key, u32);
  __type(value, struct slot);
} slots SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, u32);
  __type(value, u64);
} summary SEC(".maps");

BENCH_ENTRY long prog(u8 *mem, long len) {
  (void)len;
  for (u32 i = 0; i < 256; i++) {
    u32 k = i; /* a copy: see progs/helpers.bpf.c */
    struct slot *s = bpf_map_lookup_elem(&slots, &k);
    if (!s) return -1;
    s->count = 0;
    s->sum = i;
    s->last = 0;
    s->mix = 0x9e3779b97f4a7c15ull * (i + 1);
  }
  for (u32 i = 0; i < 1024; i++) {
    u32 k = mem[i];
    struct slot *s = bpf_map_lookup_elem(&slots, &k);
    if (!s) return -2;
    s->count++;
    s->sum += (u64)mem[(i + 1) & (MEM_SIZE - 1)] * (i + 1);
    s->last = i;
    s->mix = (s->mix ^ i) * 0x100000001b3ull;
  }
  u64 acc = 0;
  for (u32 i = 0; i < 64; i++) {
    u32 k = mem[1024 + i];
    struct slot *s = bpf_map_lookup_elem(&slots, &k);
    if (!s) return -3;
    acc = (acc << 5 | acc >> 59) ^ (s->count * 0xff51afd7ed558ccdull + s->sum + (s->last << 32) + s->mix);
  }
  u32 zero = 0;
  bpf_map_update_elem(&summary, &zero, &acc, BPF_ANY);
  return (long)acc;
}
