/* Not a benchmark: the self-test of userbpf-bench's map comparison (ctest
 * bench_detects_map_mismatch). The program stores bpf_ktime_get_ns() into a
 * map, so the maps differ between any two runs: the bench must report a
 * MISMATCH naming the map and exit 1. */
#include "../common.h"

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, u32);
  __type(value, u64);
} stamp SEC(".maps");

BENCH_ENTRY long prog(u8 *mem, long len) {
  (void)mem;
  (void)len;
  u32 k = 0;
  u64 t = bpf_ktime_get_ns();
  bpf_map_update_elem(&stamp, &k, &t, BPF_ANY);
  return 0;
}
