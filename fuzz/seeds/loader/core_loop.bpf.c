// Loader seed: CO-RE field relocations against the object's own BTF, a
// bounded loop, a legacy-style section name.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct pair {
  int a;
  long b;
} __attribute__((preserve_access_index));

SEC("raw_tracepoint/sys_enter")
int rtp(struct bpf_raw_tracepoint_args *ctx) {
  struct pair *p = (struct pair *)ctx->args[0];
  long sum = 0;
  for (int i = 0; i < 4; i++) sum += i * (long)bpf_core_field_exists(p->b);
  return (int)(sum + bpf_core_field_offset(p->b) + BPF_CORE_READ(p, a));
}

char LICENSE[] SEC("license") = "GPL";
