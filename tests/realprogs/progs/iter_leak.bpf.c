/* An open-coded iterator that is never destroyed: both verifiers refuse it. */
#include "iter.h"

/* Rejected: the iterator is never destroyed (a reference leak). */
SEC("xdp")
int xdp_iter_leak(struct xdp_md *ctx) {
  struct bpf_iter_num it;
  int *v;
  bpf_iter_num_new(&it, 0, 4);
  v = bpf_iter_num_next(&it);
  return v ? *v : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
