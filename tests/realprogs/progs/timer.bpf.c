/* bpf_timer: an XDP program drives timers in map values (array and hash)
 * from the first bytes of the packet; the callback counts its runs, can
 * re-arm itself (periodic) and can try to cancel itself (-EDEADLK).
 * Packet: [0] op, [1] key (0..3), [2] re-arm count, [3] map (0 array,
 * 1 hash), [4] callback mode (1: cancel its own timer). Return codes of the
 * helpers go to `results` (0 init, 1 set_callback, 2 start, 3 cancel). */
#include "common.h"

#ifndef CLOCK_MONOTONIC
#define CLOCK_MONOTONIC 1
#endif
#define TIMER_ABS 1 /* BPF_F_TIMER_ABS */

struct elem {
  __u64 count;       /* callback runs */
  struct bpf_timer t; /* at offset 8 */
  __u64 rearm;       /* re-arms left */
  __s64 cb_ret;      /* mode 1: what bpf_timer_cancel returned in the callback */
  __u32 mode;
  __u32 which;       /* 0 array, 1 hash */
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, struct elem);
} atimers SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, struct elem);
} htimers SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 8);
  __type(key, __u32);
  __type(value, __s64);
} results SEC(".maps");

/* callback runs per (map, key): index which * 4 + key */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 8);
  __type(key, __u32);
  __type(value, __u64);
} fired SEC(".maps");

static void put(__u32 slot, __s64 v) {
  __s64 *r = bpf_map_lookup_elem(&results, &slot);
  if (r) *r = v;
}

static int on_timer(void *map, __u32 *key, struct elem *e) {
  __u32 idx = (e->which ? 4 : 0) + (*key & 3);
  __u64 *f = bpf_map_lookup_elem(&fired, &idx);
  if (f) __sync_fetch_and_add(f, 1);
  __sync_fetch_and_add(&e->count, 1);
  if (e->mode == 1) e->cb_ret = bpf_timer_cancel(&e->t);
  if (e->rearm > 0) {
    e->rearm--;
    bpf_timer_start(&e->t, 1000000, 0);
  }
  return 0;
}

static __always_inline int run_op(void *map, struct elem *e, __u8 op, __u8 rearm, __u8 mode) {
  switch (op) {
    case 1: /* init, set the callback, start in 1 ms */
      e->rearm = rearm;
      e->mode = mode;
      e->which = map == (void *)&htimers;
      put(0, bpf_timer_init(&e->t, map, CLOCK_MONOTONIC));
      put(1, bpf_timer_set_callback(&e->t, on_timer));
      put(2, bpf_timer_start(&e->t, 1000000, 0));
      break;
    case 2: put(3, bpf_timer_cancel(&e->t)); break;
    case 3: put(0, bpf_timer_init(&e->t, map, CLOCK_MONOTONIC)); break;
    case 4: put(2, bpf_timer_start(&e->t, 1000000, 0)); break;
    case 5: put(1, bpf_timer_set_callback(&e->t, on_timer)); break;
    case 6: put(2, bpf_timer_start(&e->t, 1000000, 4 /* no such flag */)); break;
    case 7: put(0, bpf_timer_init(&e->t, map, 2 /* CLOCK_PROCESS_CPUTIME_ID */)); break;
    case 8: /* an absolute deadline 1 ms from now */
      put(2, bpf_timer_start(&e->t, bpf_ktime_get_ns() + 1000000, TIMER_ABS));
      break;
    default: return XDP_DROP;
  }
  return XDP_PASS;
}

SEC("xdp")
int xdp_timer(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  __u8 *p = data;
  if (p + 5 > (__u8 *)end) return XDP_ABORTED;
  __u32 key = p[1] & 3;
  if (p[3] == 0) {
    struct elem *e = bpf_map_lookup_elem(&atimers, &key);
    if (!e) return XDP_ABORTED;
    return run_op(&atimers, e, p[0], p[2], p[4]);
  }
  struct elem *e = bpf_map_lookup_elem(&htimers, &key);
  if (!e) return XDP_ABORTED;
  return run_op(&htimers, e, p[0], p[2], p[4]);
}

char LICENSE[] SEC("license") = "GPL";
