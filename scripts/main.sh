#!/bin/sh
# The README's first command: set up, build, and run the main job on the bundled example:
# assemble examples/checksum.s, run it (without verification) over examples/ipv4-header.hex,
# disassemble it, and print the result; then run the bundled XDP program
# examples/xdp/xdp_count.bpf.c (built by clang) over the bundled examples/xdp/x.pcap.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
sh scripts/build.sh build >/dev/null
B=build/bin
echo "== assemble examples/checksum.s"
$B/userbpf asm examples/checksum.s -o build/checksum.bin
echo "== disassemble build/checksum.bin"
$B/userbpf disasm build/checksum.bin
echo "== run over examples/ipv4-header.hex (no verification)"
$B/userbpf run build/checksum.bin --mem-file examples/ipv4-header.hex --no-verify
echo "== run the bundled XDP program over examples/xdp/x.pcap (verdicts, trace, maps)"
$B/userbpf prog run build/examples/xdp/xdp_count.bpf.o --pcap examples/xdp/x.pcap --out build/out.pcap
