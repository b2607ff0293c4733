// Legacy "maps" section with struct bpf_map_def (no BTF-defined maps).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_map_def {
  unsigned int type;
  unsigned int key_size;
  unsigned int value_size;
  unsigned int max_entries;
  unsigned int map_flags;
};

struct bpf_map_def SEC("maps") legacy_hash = {
    .type = BPF_MAP_TYPE_HASH,
    .key_size = sizeof(__u32),
    .value_size = sizeof(__u64),
    .max_entries = 64,
};
struct bpf_map_def SEC("maps") legacy_array = {
    .type = BPF_MAP_TYPE_ARRAY,
    .key_size = sizeof(__u32),
    .value_size = 16,
    .max_entries = 8,
    .map_flags = 0,
};

SEC("socket")
int legacy_prog(struct __sk_buff *skb) {
  __u32 k = 0;
  __u64 *v = bpf_map_lookup_elem(&legacy_hash, &k);
  void *w = bpf_map_lookup_elem(&legacy_array, &k);
  return (v ? 1 : 0) + (w ? 2 : 0);
}

char LICENSE[] SEC("license") = "GPL";
__u32 _version SEC("version") = 0x050a00;
