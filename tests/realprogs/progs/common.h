/* Shared definitions of the realprogs BPF programs (tests/realprogs). */
#pragma once
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define MAX_VLAN_DEPTH 2
#define MAX_EXT_HDRS 4

struct vlan_hdr {
  __be16 tci;
  __be16 encap_proto;
};

/* A parsed packet: where each layer starts, what it carries. */
struct parsed {
  __u16 eth_proto;   /* host order, after VLAN tags */
  __u8 l4_proto;
  __u8 vlan_depth;
  __u32 l3_off;
  __u32 l4_off;
  __u16 sport, dport; /* host order; 0 when not TCP/UDP */
};

struct flow_key {
  __u32 saddr[4];
  __u32 daddr[4];
  __u16 sport, dport;
  __u8 proto;
  __u8 family;
  __u16 pad;
};

struct flow_stats {
  __u64 packets;
  __u64 bytes;
  __u64 first_seen_ns;
  __u64 last_seen_ns;
  __u32 tcp_flags;
  __u32 pad;
};
