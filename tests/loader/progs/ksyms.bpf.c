// .ksyms externs: kfuncs (strong and weak, called and tested with
// bpf_ksym_exists) and variables (typed, weak). externs_test.cpp resolves
// them against host symbols.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern unsigned long long host_add(unsigned long long a, unsigned long long b) __ksym;
extern unsigned long long host_maybe(unsigned long long a) __ksym __weak;
extern const int host_counter __ksym __weak;

SEC("socket")
int ksyms_prog(struct __sk_buff *skb) {
  unsigned long long r = host_add(skb->len, 1);
  if (host_maybe) r += host_maybe(r);
  if (&host_counter) r += 2;
  return (int)r;
}

char LICENSE[] SEC("license") = "GPL";
