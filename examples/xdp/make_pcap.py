#!/usr/bin/env python3
"""Writes examples/xdp/x.pcap, the bundled input of the main job, deterministically.

Usage: make_pcap.py OUT.pcap

A classic little-endian pcap (magic a1b2c3d4, link type 1 = Ethernet) with
frames that exercise every branch of xdp_count.bpf.c: TCP, UDP to ports 53,
9 (dropped) and 7 (bounced with XDP_TX), ICMP (dropped), ARP, IPv6 and a
truncated IPv4 frame (XDP_ABORTED). Timestamps are fixed, so the output is
byte-for-byte the same on every run.
"""
import struct
import sys

MAC_A = bytes([0x02, 0x00, 0x00, 0x00, 0x00, 0x0A])
MAC_B = bytes([0x02, 0x00, 0x00, 0x00, 0x00, 0x0B])


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def eth(ethertype, payload):
    return MAC_B + MAC_A + struct.pack("!H", ethertype) + payload


def ipv4(proto, src, dst, payload, ident):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0, 64, proto, 0,
                      bytes(src), bytes(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + payload


def udp(sport, dport, data):
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def tcp_syn(sport, dport, seq):
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 65535, 0, 0)


def icmp_echo(ident, seq):
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"userbpf!"
    return body[:2] + struct.pack("!H", csum(body)) + body[4:]


def frames():
    c, s = [10, 0, 0, 1], [10, 0, 0, 2]
    out = []
    out.append(eth(0x0800, ipv4(6, c, s, tcp_syn(40000, 80, 1000), 1)))
    out.append(eth(0x0800, ipv4(17, c, s, udp(40001, 53, b"\x12\x34query"), 2)))
    out.append(eth(0x0800, ipv4(1, c, s, icmp_echo(7, 1), 3)))
    out.append(eth(0x0800, ipv4(17, c, s, udp(40002, 9, b"discard me"), 4)))
    out.append(eth(0x0800, ipv4(17, c, s, udp(40003, 7, b"echo me"), 5)))
    out.append(eth(0x0806, bytes(28)))  # ARP (body zeroed)
    out.append(eth(0x0800, ipv4(6, c, s, tcp_syn(40004, 443, 2000), 6)))
    out.append(eth(0x86DD, bytes(40) + udp(1, 2, b"v6")))  # IPv6 (header zeroed)
    out.append(eth(0x0800, ipv4(1, s, c, icmp_echo(7, 2), 7)))
    out.append(eth(0x0800, ipv4(17, s, c, udp(53, 40001, b"answer"), 8)))
    out.append(eth(0x0800, bytes([0x45, 0, 0, 20, 0, 9])))  # truncated IPv4: XDP_ABORTED
    out.append(eth(0x0800, ipv4(17, c, s, udp(40005, 9, b"more discard"), 10)))
    out.append(eth(0x0800, ipv4(6, s, c, tcp_syn(80, 40000, 3000), 11)))
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_pcap.py OUT.pcap")
    data = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for i, f in enumerate(frames()):
        data += struct.pack("<IIII", 1700000000 + i, 1000 * i, len(f), len(f)) + f
    with open(sys.argv[1], "wb") as fh:
        fh.write(data)


if __name__ == "__main__":
    main()
