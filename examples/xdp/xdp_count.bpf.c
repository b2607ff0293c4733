// The bundled main job: an XDP program that counts packets per IP protocol
// (key: the IPv4 protocol number, or 256 + low byte of the EtherType for
// non-IPv4 frames) in a BTF-defined hash map, drops ICMP and UDP to port 9
// (the discard service), and passes everything else. Frames too short for
// their headers are XDP_ABORTED. UDP to port 7 (echo) is bounced back with
// XDP_TX after swapping the Ethernet addresses, so --out shows a rewritten
// packet. Every dropped packet writes one trace line.
//
// Built by clang at build time (examples/CMakeLists.txt) and run by
// scripts/main.sh: userbpf prog run xdp_count.bpf.o --pcap examples/xdp/x.pcap
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 64);
  __type(key, __u32);
  __type(value, __u64);
} proto_count SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 5);  // indexed by XDP verdict
  __type(key, __u32);
  __type(value, __u64);
} verdicts SEC(".maps");

static __always_inline int verdict(int v) {
  __u32 k = (__u32)v;
  __u64 *c = bpf_map_lookup_elem(&verdicts, &k);
  if (c) __sync_fetch_and_add(c, 1);
  return v;
}

static __always_inline void count(__u32 key) {
  __u64 one = 1, *c = bpf_map_lookup_elem(&proto_count, &key);
  if (c)
    __sync_fetch_and_add(c, 1);
  else
    bpf_map_update_elem(&proto_count, &key, &one, BPF_NOEXIST);
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end) return verdict(XDP_ABORTED);
  if (eth->h_proto != bpf_htons(ETH_P_IP)) {
    count(256 + (bpf_ntohs(eth->h_proto) & 0xff));
    return verdict(XDP_PASS);
  }
  struct iphdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > end) return verdict(XDP_ABORTED);
  count(ip->protocol);
  if (ip->protocol == IPPROTO_ICMP) {
    bpf_printk("drop icmp from %x", bpf_ntohl(ip->saddr));
    return verdict(XDP_DROP);
  }
  if (ip->protocol != IPPROTO_UDP || ip->ihl != 5) return verdict(XDP_PASS);
  struct udphdr *udp = (void *)(ip + 1);
  if ((void *)(udp + 1) > end) return verdict(XDP_ABORTED);
  if (udp->dest == bpf_htons(9)) {
    bpf_printk("drop udp to port 9 from %x", bpf_ntohl(ip->saddr));
    return verdict(XDP_DROP);
  }
  if (udp->dest == bpf_htons(7)) {  // echo: send it back where it came from
    unsigned char tmp[ETH_ALEN];
    __builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
    __builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
    __builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
    return verdict(XDP_TX);
  }
  return verdict(XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
