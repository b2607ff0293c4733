# fib.s: r0 = fib(n), the n-th Fibonacci number (fib(0) = 0, fib(1) = 1),
# with n = the first byte of the input memory, or 10 without memory.
# Kernel dialect. Shows a bounded loop and a conditional load.
#
#   userbpf run examples/fib.s             # r0 = 0x37 (55)
#   userbpf run examples/fib.s --mem 5a    # n = 90: r0 = 0x27f80ddaa1ba7878 (2880067194370816120)

        r3 = 10                 # n when there is no memory
        if r2 == 0 goto start
        r3 = *(u8 *)(r1 + 0)    # n = first byte of memory
start:
        r4 = 0                  # a = fib(0)
        r5 = 1                  # b = fib(1)
loop:
        if r3 == 0 goto done
        r6 = r4
        r6 += r5                # (a, b) = (b, a + b)
        r4 = r5
        r5 = r6
        r3 -= 1
        goto loop
done:
        r0 = r4
        exit
