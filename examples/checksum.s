# checksum.s: the Internet checksum (RFC 1071) of the input memory.
# Kernel dialect (the syntax of llvm-objdump -d and bpftool).
#
# Input: r1 = pointer to the bytes, r2 = their length.
# Output: r0 = the one's complement of the one's complement sum of the
# big-endian 16-bit words (an odd last byte is padded with a zero byte).
# Over an IPv4 header whose checksum field is zero, r0 is the value that
# belongs in that field; over a header with a correct checksum, r0 is 0.
#
#   userbpf asm examples/checksum.s -o /tmp/checksum.bin
#   userbpf run /tmp/checksum.bin --mem-file examples/ipv4-header.hex    # r0 = 0xb861

        r0 = 0                  # running sum
        r3 = r1                 # p = start
        r4 = r1
        r4 += r2                # end = start + length
loop:
        r5 = r3
        r5 += 2
        if r5 > r4 goto tail    # fewer than two bytes left
        r6 = *(u16 *)(r3 + 0)
        r6 = be16 r6            # network byte order -> host value
        r0 += r6
        r3 += 2
        goto loop
tail:
        if r3 >= r4 goto fold   # even length: nothing left
        r6 = *(u8 *)(r3 + 0)
        r6 <<= 8                # odd byte is the high half of a word
        r0 += r6
fold:
        r5 = r0                 # fold the carries back in, twice
        r5 >>= 16
        r0 &= 0xffff
        r0 += r5
        r5 = r0
        r5 >>= 16
        r0 &= 0xffff
        r0 += r5
        r0 ^= 0xffff            # one's complement
        exit
