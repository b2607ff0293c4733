# sum.ubpf.s: r0 = the sum of the input memory's bytes.
# uBPF / bpf_conformance dialect (mov %r0, 0 / ldxb %r5, [%r4+0]).
#
#   userbpf run examples/sum.ubpf.s --mem '01 02 03 04'      # r0 = 0xa (10)
#   userbpf disasm --dialect kernel <(userbpf asm examples/sum.ubpf.s)

        mov %r0, 0              # sum
        mov %r3, 0              # i
loop:
        jge %r3, %r2, done      # while i < length
        mov %r4, %r1
        add %r4, %r3
        ldxb %r5, [%r4+0]       # byte at memory + i
        add %r0, %r5
        add %r3, 1
        ja loop
done:
        exit
