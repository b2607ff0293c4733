/* TCP option parser (XDP): Ethernet/IPv4/TCP with bounds checks, then a
 * bounded loop over up to 40 bytes of TCP options (NOP, EOL, MSS, window
 * scale, SACK-permitted, timestamps), each option length checked against the
 * packet end. Per-source SYN statistics in an LRU hash map. */
#include "common.h"

#define MAX_OPT_BYTES 40

struct syn_info {
  __u64 syns;
  __u16 mss;
  __u8 wscale;
  __u8 sack_ok;
  __u32 tsval;
};

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 8192);
  __type(key, __u32);
  __type(value, struct syn_info);
} syn_sources SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, __u64);
} stats SEC(".maps");

static __always_inline void count(__u32 idx) {
  __u64 *v = bpf_map_lookup_elem(&stats, &idx);
  if (v) __sync_fetch_and_add(v, 1);
}

SEC("xdp")
int xdp_tcp_opts(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > data_end) return XDP_PASS;
  if (eth->h_proto != bpf_htons(ETH_P_IP)) return XDP_PASS;
  struct iphdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > data_end) return XDP_PASS;
  if (ip->protocol != IPPROTO_TCP || ip->ihl != 5) return XDP_PASS;
  struct tcphdr *tcp = (void *)(ip + 1);
  if ((void *)(tcp + 1) > data_end) return XDP_PASS;
  if (!tcp->syn || tcp->ack) {
    count(0);
    return XDP_PASS;
  }
  count(1);

  struct syn_info info = {};
  info.syns = 1;
  __u8 *opt = (__u8 *)(tcp + 1);
  __u32 opt_len = tcp->doff * 4;
  if (opt_len < sizeof(*tcp)) return XDP_DROP;
  opt_len -= sizeof(*tcp);
  __u32 i = 0;
  for (int n = 0; n < MAX_OPT_BYTES; n++) {
    if (i >= opt_len || i >= MAX_OPT_BYTES) break;
    __u8 *p = opt + i;
    if ((void *)(p + 1) > data_end) break;
    __u8 kind = p[0];
    if (kind == 0) break;        /* EOL */
    if (kind == 1) {             /* NOP */
      i++;
      continue;
    }
    if ((void *)(p + 2) > data_end) break;
    __u8 len = p[1];
    if (len < 2) break;
    if (kind == 2 && len == 4) {
      if ((void *)(p + 4) > data_end) break;
      info.mss = (__u16)(p[2] << 8 | p[3]);
    } else if (kind == 3 && len == 3) {
      if ((void *)(p + 3) > data_end) break;
      info.wscale = p[2];
    } else if (kind == 4 && len == 2) {
      info.sack_ok = 1;
    } else if (kind == 8 && len == 10) {
      if ((void *)(p + 6) > data_end) break;
      info.tsval = (__u32)p[2] << 24 | (__u32)p[3] << 16 | (__u32)p[4] << 8 | p[5];
    }
    i += len;
  }
  if (info.mss == 0) count(2);

  __u32 src = ip->saddr;
  struct syn_info *old = bpf_map_lookup_elem(&syn_sources, &src);
  if (old) {
    info.syns = old->syns + 1;
    if (info.syns > 1000) {
      count(3);
      return XDP_DROP;
    }
  }
  bpf_map_update_elem(&syn_sources, &src, &info, BPF_ANY);
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
