// Runtime test object for PROG_LOAD with BTF func and line info: a global
// function (verified on its own against its BTF signature), a bpf_loop
// callback (needs func_info), and a program the verifier rejects (not
// autoloaded) whose rejection names its source line.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct loop_ctx {
  __u32 sum;
  __u32 limit;
};

static int add_step(__u32 i, void *data) {
  struct loop_ctx *c = data;
  c->sum += i;
  return c->sum > c->limit;
}

__attribute__((noinline)) int scale(__u32 x) {
  return x * 3 + 1;
}

SEC("xdp")
int xdp_funcs(struct xdp_md *ctx) {
  struct loop_ctx c = {.sum = 0, .limit = 1000};
  __u32 len = ctx->data_end - ctx->data;
  bpf_loop(10, add_step, &c, 0);
  return scale(c.sum + len) & 3;
}

SEC("?xdp")
int xdp_bad(struct xdp_md *ctx) {
  __u32 *p = (__u32 *)(long)ctx->data;
  return *p; /* no bounds check */
}

char _license[] SEC("license") = "GPL";
