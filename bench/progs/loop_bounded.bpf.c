/* Pointer chasing, bounded loop: the walk of progs/chase.h from node 0 until
 * the chain returns to 0, at most 1024 steps (a constant bound the kernel's
 * verifier counts through). The same walk as c/may_goto, whose loop is
 * bounded only by may_goto. */
#include "chase.h"

BENCH_ENTRY long prog(u8 *mem, long len) {
  (void)len;
  struct chase c = chase_start(mem);
  for (u32 i = 0; i < 1024; i++)
    if (!chase_step(&c)) break;
  return chase_result(&c);
}
