// XDP program with a BTF-defined hash map, an array map with pinning and
// global data in .data, .rodata, .bss and a custom .data.* section.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, __u32);
  __type(value, __u64);
  __uint(map_flags, BPF_F_NO_PREALLOC);
} counts SEC(".maps");

struct pair {
  __u32 a;
  __u16 b;
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 4);
  __uint(key_size, sizeof(__u32));
  __type(value, struct pair);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
  __uint(numa_node, 0);
} pinned_arr SEC(".maps");

__u64 packets = 7;                   // .data
const volatile __u32 drop_port = 53; // .rodata
__u64 dropped;                       // .bss
__u32 custom_val SEC(".data.custom") = 0x1234;

SEC("xdp")
int xdp_count(struct xdp_md *ctx) {
  __u32 key = ctx->ingress_ifindex;
  __u64 one = 1, *v = bpf_map_lookup_elem(&counts, &key);
  if (v)
    __sync_fetch_and_add(v, 1);
  else
    bpf_map_update_elem(&counts, &key, &one, BPF_ANY);
  packets++;
  custom_val++;
  if (key == drop_port) {
    dropped++;
    return XDP_DROP;
  }
  struct pair *p = bpf_map_lookup_elem(&pinned_arr, &key);
  if (p) p->b = 1;
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
