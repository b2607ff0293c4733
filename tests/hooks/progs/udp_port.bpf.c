// hooks test object: an XDP program that drops UDP/IPv4 packets to port 7777
// (counting them in a map) and passes everything else, and a socket filter
// that keeps 42 bytes of UDP/IPv4 packets and drops the rest.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} dropped SEC(".maps");

SEC("xdp")
int xdp_drop_7777(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP)) return XDP_PASS;
  struct iphdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP || ip->ihl != 5) return XDP_PASS;
  struct udphdr *udp = (void *)(ip + 1);
  if ((void *)(udp + 1) > end) return XDP_PASS;
  if (udp->dest != bpf_htons(7777)) return XDP_PASS;
  __u32 k = 0;
  __u64 *n = bpf_map_lookup_elem(&dropped, &k);
  if (n) __sync_fetch_and_add(n, 1);
  return XDP_DROP;
}

// Legacy packet loads (LD_ABS), as socket filters written in C use them.
unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");

// Run through PROG_TEST_RUN, a socket filter's data starts at the network
// header (the kernel's test run pulls the Ethernet header): IPv4 version
// nibble at 0, protocol at 9.
SEC("socket")
int sock_udp_head(struct __sk_buff *skb) {
  if ((load_byte(skb, 0) >> 4) != 4 || load_byte(skb, 9) != IPPROTO_UDP) return 0;
  return 42;
}

char LICENSE[] SEC("license") = "GPL";
