/* Pointer chasing, loop bounded only by may_goto (clang >= 19, -mcpu=v4):
 * the walk of c/loop_bounded (progs/chase.h) with no counter the verifier
 * could bound; the loop ends when the chain returns to node 0 (or, never
 * here, when the may_goto budget of 8M iterations is spent). */
#include "../chase.h"

BENCH_ENTRY long prog(u8 *mem, long len) {
  (void)len;
  struct chase c = chase_start(mem);
  while (can_loop)
    if (!chase_step(&c)) break;
  return chase_result(&c);
}
