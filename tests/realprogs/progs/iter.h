/* Open-coded numeric iterators for the realprogs: the kfuncs and bpf_for,
 * declared as the kernel's bpf_experimental.h does. */
#pragma once
#include "common.h"

#ifndef __ksym
#define __ksym __attribute__((section(".ksyms")))
#endif

struct bpf_iter_num {
  __u64 __opaque[1];
} __attribute__((aligned(8)));

extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __ksym;

/* for (i = start; i < end; i++), the iterator destroyed at scope exit */
#define bpf_for(i, start, end)                                                                   \
  for (struct bpf_iter_num ___it __attribute__((aligned(8), cleanup(bpf_iter_num_destroy))),     \
       *___p __attribute__((unused)) =                                                           \
           (bpf_iter_num_new(&___it, (start), (end)), (void)bpf_iter_num_destroy, (void *)0);    \
       ({                                                                                        \
         int *___t = bpf_iter_num_next(&___it);                                                  \
         (___t && ((i) = *___t, (i) >= (start) && (i) < (end)));                                 \
       });)
