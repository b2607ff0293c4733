/* bpf_spin_lock: per-flow counters updated under the value's lock. */
#include "common.h"

struct counter {
  struct bpf_spin_lock lock;
  __u32 packets;
  __u64 bytes;
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 64);
  __type(key, __u32);
  __type(value, struct counter);
} counters SEC(".maps");

SEC("tc")
int tc_locked_count(struct __sk_buff *skb) {
  __u32 key = skb->protocol;
  struct counter *c = bpf_map_lookup_elem(&counters, &key);
  if (!c) {
    struct counter init = {};
    bpf_map_update_elem(&counters, &key, &init, BPF_NOEXIST);
    c = bpf_map_lookup_elem(&counters, &key);
    if (!c) return 0;
  }
  bpf_spin_lock(&c->lock);
  c->packets++;
  c->bytes += skb->len;
  bpf_spin_unlock(&c->lock);
  return 0;
}

/* Rejected: a helper call while the lock is held (not autoloaded: "?tc"). */
SEC("?tc")
int tc_call_under_lock(struct __sk_buff *skb) {
  __u32 key = 0;
  struct counter *c = bpf_map_lookup_elem(&counters, &key);
  if (!c) return 0;
  bpf_spin_lock(&c->lock);
  c->bytes = bpf_ktime_get_ns();
  bpf_spin_unlock(&c->lock);
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
