/* A mix of cheap helper calls: 16 bpf_map_update_elem calls reset a
 * 16-entry histogram (array map), bpf_loop runs a callback 512 times (each
 * call hashes an input byte and counts it in the histogram through
 * bpf_map_lookup_elem), then 64 rounds of bpf_ktime_get_ns,
 * bpf_get_prandom_u32 and bpf_get_smp_processor_id whose results never
 * reach r0 or a map (they differ between engines), and a digest of the
 * histogram. 16 updates, 528 lookups, 512 callback calls, 192 other calls
 * per run. */
#include "common.h"

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 16);
  __type(key, u32);
  __type(value, u64);
} hist SEC(".maps");

struct loop_ctx {
  const u8 *mem;
  u64 acc;
};

static long step(u32 i, void *arg) {
  struct loop_ctx *c = arg;
  u8 b = c->mem[(i * 3) & (MEM_SIZE - 1)];
  u32 k = b & 15;
  u64 *v = bpf_map_lookup_elem(&hist, &k);
  if (v) *v += b;
  c->acc = (c->acc ^ b) * 0x100000001b3ull;
  return 0;
}

BENCH_ENTRY long prog(u8 *mem, long len) {
  (void)len;
  /* keys are copies: a loop counter whose address a helper takes would
   * live on the stack at fp-4, where the kernel's verifier does not track
   * its value (4-byte spills are tracked only 8-byte aligned) */
  for (u32 i = 0; i < 16; i++) {
    u32 k = i;
    u64 z = i;
    bpf_map_update_elem(&hist, &k, &z, BPF_ANY);
  }
  struct loop_ctx c = {mem, 0xcbf29ce484222325ull};
  long n = bpf_loop(512, step, &c, 0);
  u64 t = 0;
  for (u32 i = 0; i < 64; i++) {
    t += bpf_ktime_get_ns();
    t ^= bpf_get_prandom_u32();
    t += bpf_get_smp_processor_id();
  }
  u64 acc = c.acc ^ (u64)n << 48;
  for (u32 i = 0; i < 16; i++) {
    u32 k = i;
    u64 *v = bpf_map_lookup_elem(&hist, &k);
    if (v) acc = (acc << 7 | acc >> 57) + *v;
  }
  /* t is never zero (the clock is past boot), so this keeps the calls without reaching r0 */
  return (long)(t != 0 ? acc : ~acc);
}
