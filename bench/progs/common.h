/* Shared definitions of the benchmark programs (bench/progs/\*.bpf.c).
 *
 * Every program is one entry `long prog(u8 *mem, long len)` in section
 * "bench": r1 = memory (kMemSize bytes), r2 = its length, result = the full
 * 64-bit r0. oracle::run_r0 runs it in the kernel as a bpf-to-bpf subprogram
 * whose r1 is an array-map value of exactly MEM_SIZE bytes, so every access
 * is bounded by constants the verifier can see. Programs may write only
 * scratch areas they fully rewrite on each run (the kernel repeats runs on
 * the same memory, and the result must not depend on the previous run).
 * No maps, no helper calls: the programs run as-is in all three engines. */
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

INLINE u32 rol32(u32 x, u32 k) { return (x << k) | (x >> (32 - k)); }
INLINE u16 rd16be(const u8 *p) { return (u16)(((u32)p[0] << 8) | p[1]); }

#endif
