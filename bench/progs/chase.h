/* The pointer chase of c/loop_bounded and c/may_goto (the same work under
 * two loop forms): mem holds 1024 u16 "next" links forming one chain from
 * node 0 through every node back to 0 (bench/inputs.cpp); each step hashes
 * the next node's number and counts. */
#ifndef USERBPF_BENCH_CHASE_H
#define USERBPF_BENCH_CHASE_H

#include "common.h"

struct chase {
  const u16 *next;
  u64 acc;
  u32 cur;
  u32 n;
};

INLINE struct chase chase_start(const u8 *mem) {
  struct chase c = {(const u16 *)mem, 0xcbf29ce484222325ull, 0, 0};
  return c;
}

/* One step; 0 when the chain is back at node 0. */
INLINE int chase_step(struct chase *c) {
  u32 nx = c->next[c->cur] & 1023;
  c->acc = (c->acc ^ nx) * 0x100000001b3ull;
  c->n++;
  c->cur = nx;
  return nx != 0;
}

INLINE long chase_result(const struct chase *c) { return (long)(c->acc ^ c->n); }

#endif
