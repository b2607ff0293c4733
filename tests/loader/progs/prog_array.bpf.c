// Prog array and map-of-maps with __array(values, ...) initial contents.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

int tail_a(struct __sk_buff *skb);
int tail_b(struct __sk_buff *skb);

struct {
  __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
  __uint(max_entries, 4);
  __uint(key_size, sizeof(__u32));
  __array(values, int(struct __sk_buff *));
} jmp_table SEC(".maps") = {
    .values = {[0] = (void *)&tail_a, [2] = (void *)&tail_b},
};

struct inner_map {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} inner1 SEC(".maps"), inner2 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
  __uint(max_entries, 3);
  __type(key, __u32);
  __array(values, struct inner_map);
} outer SEC(".maps") = {
    .values = {&inner2, 0, &inner1},
};

SEC("socket")
int tail_a(struct __sk_buff *skb) { return 1; }

SEC("socket")
int tail_b(struct __sk_buff *skb) { return 2; }

SEC("socket")
int entry(struct __sk_buff *skb) {
  __u32 k = 0;
  void *m = bpf_map_lookup_elem(&outer, &k);
  if (m) {
    __u32 *v = bpf_map_lookup_elem(m, &k);
    if (v) return (int)*v;
  }
  bpf_tail_call(skb, &jmp_table, 0);
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
