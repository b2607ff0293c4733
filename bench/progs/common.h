/* Shared definitions of the benchmark programs (bench/progs/\*.bpf.c).
 *
 * Every program is one entry `long prog(u8 *mem, long len)` in section
 * "bench": r1 = memory (kMemSize bytes), r2 = its length, result = the full
 * 64-bit r0. The bench runs it in the kernel as a bpf-to-bpf subprogram of
 * the oracle's wrapper, whose r1 is an array-map value of exactly MEM_SIZE
 * bytes, so every access is bounded by constants the verifier can see.
 * Programs may write only scratch areas they fully rewrite on each run (the
 * kernel repeats runs on the same memory, and the result must not depend on
 * the previous run).
 *
 * Maps and helpers (map_array, map_hash, helpers): BTF-defined maps in
 * ".maps" and the helper declarations below. The bench creates the maps in
 * each engine (userbpf's runtime; the kernel) empty before the correctness
 * run; a program must leave its maps in the same state after every run
 * (it resets what it uses first), so repeated runs give the same r0 and the
 * same map contents, which the bench compares across engines. Helper
 * results that differ between engines (time, random numbers, CPU number)
 * must never reach r0 or a map. */
#ifndef USERBPF_BENCH_COMMON_H
#define USERBPF_BENCH_COMMON_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#define MEM_SIZE 2048
#define BENCH_ENTRY __attribute__((section("bench"), used))
#define NOINLINE static __attribute__((noinline))
#define INLINE static inline __attribute__((always_inline))

/* ---- maps and helpers (kernel UAPI numbers: enum bpf_map_type, enum bpf_func_id) */
#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) __typeof__(val) *name
#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_ANY 0

static void *(*const bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*const bpf_map_update_elem)(void *map, const void *key, const void *value, u64 flags) = (void *)2;
static long (*const bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
static u64 (*const bpf_ktime_get_ns)(void) = (void *)5;
static u32 (*const bpf_get_prandom_u32)(void) = (void *)7;
static u32 (*const bpf_get_smp_processor_id)(void) = (void *)8;
static long (*const bpf_loop)(u32 nr_loops, void *callback_fn, void *callback_ctx, u64 flags) = (void *)181;

/* ---- may_goto (needs clang >= 19, -mcpu=v4): true until the kernel's
 * per-frame budget of may_goto iterations (8M) is spent, then false. The
 * same shape as the kernel selftests' can_loop. */
#define can_loop                                                \
  ({                                                            \
    __label__ l_break, l_continue;                              \
    _Bool ret = 1;                                              \
    asm volatile goto("may_goto %l[l_break]" :::: l_break);     \
    goto l_continue;                                            \
  l_break:                                                      \
    ret = 0;                                                    \
  l_continue:;                                                  \
    ret;                                                        \
  })

INLINE u32 rol32(u32 x, u32 k) { return (x << k) | (x >> (32 - k)); }
INLINE u16 rd16be(const u8 *p) { return (u16)(((u32)p[0] << 8) | p[1]); }

#endif
