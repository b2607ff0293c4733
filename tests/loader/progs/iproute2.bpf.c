// iproute2-style maps: struct bpf_elf_map in the "maps" section.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_elf_map {
  __u32 type;
  __u32 size_key;
  __u32 size_value;
  __u32 max_elem;
  __u32 flags;
  __u32 id;
  __u32 pinning;
  __u32 inner_id;
  __u32 inner_idx;
};
#define PIN_GLOBAL_NS 2

struct bpf_elf_map SEC("maps") tc_stats = {
    .type = BPF_MAP_TYPE_ARRAY,
    .size_key = sizeof(__u32),
    .size_value = sizeof(__u64),
    .max_elem = 2,
    .pinning = PIN_GLOBAL_NS,
    .id = 9,
};

SEC("classifier")
int tc_prog(struct __sk_buff *skb) {
  __u32 k = skb->protocol & 1;
  __u64 *v = bpf_map_lookup_elem(&tc_stats, &k);
  if (v) *v += 1;
  return 0;
}

char __license[] SEC("license") = "GPL";
