#!/usr/bin/env python3
"""Writes the generated instruction-semantics cases of tests/data/insn/.

The expected values come from the small model of RFC 9669 / Linux semantics
in this file (Python integers, written from the spec, independent of the C++
code under test); the kernel oracle then checks each expectation again when
the data tests run. Files whose names start with "g-" are this script's
output and are rewritten on every run; every other file in insn/ is written by
hand and never touched here.

    python3 tests/data/make_insn_cases.py       # rewrites tests/data/insn/g-*.data
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "insn")

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1


def sx(v, bits):
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def tdiv(a, b):  # C-style truncating division
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def tmod(a, b):
    return a - b * tdiv(a, b)


def bswap(v, width):
    return int.from_bytes((v & ((1 << width) - 1)).to_bytes(width // 8, "little"), "big")


# ---------------------------------------------------------------- the model
def alu(op, a, b, bits):
    """Result of `a op b` for a `bits`-wide ALU operation, zero-extended to 64."""
    m = (1 << bits) - 1
    a &= m
    b &= m
    sh = b & (bits - 1)
    if op == "add": r = a + b
    elif op == "sub": r = a - b
    elif op == "mul": r = a * b
    elif op == "div": r = 0 if b == 0 else a // b
    elif op == "mod": r = a if b == 0 else a % b
    elif op == "sdiv": r = 0 if b == 0 else tdiv(sx(a, bits), sx(b, bits))
    elif op == "smod": r = a if b == 0 else tmod(sx(a, bits), sx(b, bits))
    elif op == "or": r = a | b
    elif op == "and": r = a & b
    elif op == "xor": r = a ^ b
    elif op == "lsh": r = a << sh
    elif op == "rsh": r = a >> sh
    elif op == "arsh": r = sx(a, bits) >> sh
    elif op == "mov": r = b
    elif op == "neg": r = -a
    else: raise ValueError(op)
    return r & m


KOP = {"add": "+=", "sub": "-=", "mul": "*=", "div": "/=", "mod": "%=", "sdiv": "s/=", "smod": "s%=",
       "or": "|=", "and": "&=", "xor": "^=", "lsh": "<<=", "rsh": ">>=", "arsh": "s>>=", "mov": "="}

COND = {  # name: (operator, predicate on (a, b, bits))
    "jeq": ("==", lambda a, b, n: a == b),
    "jne": ("!=", lambda a, b, n: a != b),
    "jgt": (">", lambda a, b, n: a > b),
    "jge": (">=", lambda a, b, n: a >= b),
    "jlt": ("<", lambda a, b, n: a < b),
    "jle": ("<=", lambda a, b, n: a <= b),
    "jset": ("&", lambda a, b, n: (a & b) != 0),
    "jsgt": ("s>", lambda a, b, n: sx(a, n) > sx(b, n)),
    "jsge": ("s>=", lambda a, b, n: sx(a, n) >= sx(b, n)),
    "jslt": ("s<", lambda a, b, n: sx(a, n) < sx(b, n)),
    "jsle": ("s<=", lambda a, b, n: sx(a, n) <= sx(b, n)),
}

# ---------------------------------------------------------------- output
CASES = {}


def case(name, comment, asm, result=None, error=None, mem=None, mem_after=None, kernel=None, options=None):
    name = "g-" + name
    assert name not in CASES, name
    assert (result is None) != (error is None), name
    lines = ["# " + l for l in comment.strip().split("\n")]
    lines.append("-- asm")
    lines += [l.strip() if not l.strip().endswith(":") else l.strip() for l in asm.strip().split("\n")]
    if mem is not None:
        lines += ["-- mem", hexbytes(mem)]
    if result is not None:
        lines += ["-- result", "0x%x" % (result & M64)]
    else:
        lines += ["-- error", error]
    if mem_after is not None:
        lines += ["-- mem-after", hexbytes(mem_after)]
    if kernel:
        lines += ["-- kernel"] + kernel.strip().split("\n")
    if options:
        lines += ["-- options", options]
    CASES[name] = "\n".join(lines) + "\n"


def hexbytes(b):
    return " ".join("%02x" % x for x in b)


def le(v, n):
    return list((v & ((1 << (8 * n)) - 1)).to_bytes(n, "little"))


def h(v):
    return "0x%x" % (v & M64)


def reg(n, bits):
    return ("w%d" if bits == 32 else "r%d") % n


# ---------------------------------------------------------------- ALU
DIVS = ("div", "mod", "sdiv", "smod")
SHIFTS = ("lsh", "rsh", "arsh")


def alu_reg(name, op, bits, a, b, comment):
    r = alu(op, a, b, bits)
    asm = f"""
r0 = {h(a)} ll
r1 = {h(b)} ll
{reg(0, bits)} {KOP[op]} {reg(1, bits)}
exit"""
    case(name, comment, asm, result=r)


def alu_imm(name, op, bits, a, imm, comment):
    assert -(1 << 31) <= imm < (1 << 31)
    b = imm & M64 if bits == 64 else imm & M32  # imm is sign-extended to 64 bits for ALU64
    kernel = None
    if op in DIVS and imm == 0:
        kernel = "rejects: the verifier refuses division by the constant 0\nlog: div by zero"
    if op in SHIFTS and not (0 <= imm < bits):
        kernel = f"rejects: the verifier refuses a constant shift outside [0, {bits})\nlog: invalid shift"
    r = alu(op, a, b, bits)
    asm = f"""
r0 = {h(a)} ll
{reg(0, bits)} {KOP[op]} {imm}
exit"""
    case(name, comment, asm, result=r, kernel=kernel)


G = 0xdeadbeef00000000  # garbage for high halves


def gen_alu():
    # add
    alu_imm("add32-imm", "add", 32, 5, 7, "add32 immediate")
    alu_imm("add32-imm-neg", "add", 32, G | 5, -7, "add32 with a negative immediate: 32-bit wrap, high bits of dst cleared")
    alu_reg("add32-reg-garbage", "add", 32, 0xffffffff00000003, 0x1234567800000004,
            "add32 ignores the high halves of both operands and zero-extends")
    alu_reg("add32-reg-wrap", "add", 32, 0xffffffff, 2, "add32 wraps at 2^32")
    alu_imm("add64-imm-neg", "add", 64, 10, -3, "add (64) sign-extends the immediate")
    alu_imm("add64-imm-signext", "add", 64, 0, -1, "0 + (-1) gives all ones: the immediate is sign-extended")
    alu_reg("add64-reg", "add", 64, 0x1111111111111111, 0x2222222222222222, "add (64) register")
    alu_reg("add64-reg-wrap", "add", 64, 0xffffffffffffffff, 2, "add (64) wraps at 2^64")
    # sub
    alu_imm("sub32-imm", "sub", 32, 3, 5, "sub32 below zero wraps to 0xfffffffe, zero-extended")
    alu_reg("sub32-reg-garbage", "sub", 32, G | 10, 0xabcdef0100000003, "sub32 with garbage high halves")
    alu_imm("sub64-imm-neg", "sub", 64, 1, -1, "sub (64) of a negative immediate")
    alu_reg("sub64-reg", "sub", 64, 0, 1, "0 - 1 = all ones")
    alu_reg("sub64-reg-intmin", "sub", 64, 0x8000000000000000, 1, "INT64_MIN - 1 wraps to INT64_MAX")
    # mul
    alu_imm("mul32-imm", "mul", 32, 7, 6, "mul32 immediate")
    alu_imm("mul32-imm-neg", "mul", 32, G | 3, -2, "mul32 by -2: low 32 bits of the product, zero-extended")
    alu_reg("mul32-reg-overflow", "mul", 32, 0x10000, 0x10001, "mul32 keeps the low 32 bits of the product")
    alu_reg("mul32-reg-garbage", "mul", 32, 0xffffffff00000002, 0xffffffff00000003, "mul32 ignores high halves")
    alu_imm("mul64-imm-neg", "mul", 64, 5, -3, "mul (64) with a sign-extended immediate")
    alu_reg("mul64-reg-overflow", "mul", 64, 0x100000001, 0x100000001, "mul (64) keeps the low 64 bits")
    alu_reg("mul64-reg", "mul", 64, 0x123456789, 0x10, "mul (64) register")
    # div (unsigned)
    alu_imm("div32-imm", "div", 32, 100, 7, "div32 immediate")
    alu_imm("div32-imm-neg", "div", 32, 0xffffffff, -2, "div32: the immediate -2 is the unsigned 0xfffffffe")
    alu_imm("div32-imm-zero", "div", 32, 9, 0, "div32 by the constant 0 gives 0")
    alu_reg("div32-reg", "div", 32, 0xffffffff, 3, "div32 register")
    alu_reg("div32-reg-zero", "div", 32, G | 9, 0, "div32 by a zero register gives 0")
    alu_reg("div32-reg-zero-low", "div", 32, 9, 0x100000000, "div32: a divisor with only high bits is 0 -> 0")
    alu_reg("div32-reg-high-divisor", "div", 32, 12, 0x0000000300000004, "div32 uses only the divisor's low half")
    alu_imm("div64-imm", "div", 64, 0x123456789abcdef0, 16, "div (64) immediate")
    alu_imm("div64-imm-neg", "div", 64, 0xfffffffffffffffe, -1,
            "div (64): -1 sign-extends to 2^64-1, unsigned quotient of 2^64-2 by it is 0")
    alu_imm("div64-imm-zero", "div", 64, 9, 0, "div (64) by the constant 0 gives 0")
    alu_reg("div64-reg", "div", 64, 0x8000000000000000, 3, "div (64) is unsigned")
    alu_reg("div64-reg-zero", "div", 64, 0x1234, 0, "div (64) by a zero register gives 0")
    alu_reg("div64-reg-high-divisor", "div", 64, 0xffffffffffffffff, 0x100000000, "div (64) uses the whole divisor")
    # mod (unsigned)
    alu_imm("mod32-imm", "mod", 32, 100, 7, "mod32 immediate")
    alu_imm("mod32-imm-zero", "mod", 32, 9, 0, "mod32 by the constant 0 leaves dst")
    alu_reg("mod32-reg", "mod", 32, 0xfffffffe, 0x7fffffff, "mod32 register")
    alu_reg("mod32-reg-zero", "mod", 32, G | 9, 0, "mod32 by a zero register leaves dst's low half, zero-extended")
    alu_reg("mod32-reg-high-divisor", "mod", 32, 13, 0x0000000300000005, "mod32 uses only the divisor's low half")
    alu_imm("mod64-imm", "mod", 64, 0x123456789, 0x1000, "mod (64) immediate")
    alu_imm("mod64-imm-neg", "mod", 64, 5, -1, "mod (64) by -1 (= 2^64-1 unsigned) leaves a small dst")
    alu_imm("mod64-imm-zero", "mod", 64, 9, 0, "mod (64) by the constant 0 leaves dst")
    alu_reg("mod64-reg", "mod", 64, 0xffffffffffffffff, 10, "mod (64) is unsigned")
    alu_reg("mod64-reg-zero", "mod", 64, 0xfedcba9876543210, 0, "mod (64) by a zero register leaves dst")
    # sdiv
    alu_imm("sdiv32-imm", "sdiv", 32, (-7) & M32, 2, "sdiv32 truncates toward zero: -7 / 2 = -3")
    alu_imm("sdiv32-imm-neg", "sdiv", 32, G | 7, -2, "sdiv32 7 / -2 = -3, zero-extended")
    alu_imm("sdiv32-imm-intmin", "sdiv", 32, 0x80000000, -1, "sdiv32 INT32_MIN / -1 = INT32_MIN")
    alu_imm("sdiv32-imm-zero", "sdiv", 32, 9, 0, "sdiv32 by the constant 0 gives 0")
    alu_reg("sdiv32-reg", "sdiv", 32, (-100) & M32, 7, "sdiv32 register")
    alu_reg("sdiv32-reg-intmin", "sdiv", 32, 0xffffffff80000000, 0xffffffff, "sdiv32 INT32_MIN / -1 in registers")
    alu_reg("sdiv32-reg-zero", "sdiv", 32, (-9) & M64, 0xffffffff00000000, "sdiv32 by a zero low half gives 0")
    alu_reg("sdiv32-reg-garbage", "sdiv", 32, 0x12345678fffffff6, 0x00000001fffffffe,
            "sdiv32 sign is bit 31 of the low half: -10 / -2 = 5")
    alu_imm("sdiv64-imm", "sdiv", 64, (-1000) & M64, 10, "sdiv (64) immediate")
    alu_imm("sdiv64-imm-intmin", "sdiv", 64, 0x8000000000000000, -1, "sdiv (64) INT64_MIN / -1 = INT64_MIN")
    alu_imm("sdiv64-imm-zero", "sdiv", 64, 9, 0, "sdiv (64) by the constant 0 gives 0")
    alu_reg("sdiv64-reg", "sdiv", 64, (-7) & M64, (-2) & M64, "sdiv (64) -7 / -2 = 3")
    alu_reg("sdiv64-reg-intmin", "sdiv", 64, 0x8000000000000000, M64, "sdiv (64) INT64_MIN / -1 in registers")
    alu_reg("sdiv64-reg-zero", "sdiv", 64, (-5) & M64, 0, "sdiv (64) by a zero register gives 0")
    alu_reg("sdiv64-reg-unsigned-big", "sdiv", 64, 0xfffffffffffffff0, 0x10,
            "sdiv (64) treats 0xfff...f0 as -16: -16 / 16 = -1")
    # smod
    alu_imm("smod32-imm", "smod", 32, (-7) & M32, 2, "smod32 takes the sign of the dividend: -7 % 2 = -1")
    alu_imm("smod32-imm-neg", "smod", 32, 7, -2, "smod32 7 % -2 = 1")
    alu_imm("smod32-imm-intmin", "smod", 32, 0x80000000, -1, "smod32 INT32_MIN % -1 = 0")
    alu_imm("smod32-imm-zero", "smod", 32, 9, 0, "smod32 by the constant 0 leaves dst")
    alu_reg("smod32-reg", "smod", 32, (-100) & M32, 7, "smod32 register")
    alu_reg("smod32-reg-zero", "smod", 32, G | ((-9) & M32), 0, "smod32 by zero leaves dst's low half, zero-extended")
    alu_reg("smod32-reg-intmin", "smod", 32, 0x80000000, 0xffffffff, "smod32 INT32_MIN % -1 in registers")
    alu_imm("smod64-imm", "smod", 64, (-1001) & M64, 10, "smod (64) immediate: -1001 % 10 = -1")
    alu_imm("smod64-imm-intmin", "smod", 64, 0x8000000000000000, -1, "smod (64) INT64_MIN % -1 = 0")
    alu_imm("smod64-imm-zero", "smod", 64, 9, 0, "smod (64) by the constant 0 leaves dst")
    alu_reg("smod64-reg", "smod", 64, 7, (-3) & M64, "smod (64) 7 % -3 = 1")
    alu_reg("smod64-reg-neg", "smod", 64, (-7) & M64, (-3) & M64, "smod (64) -7 % -3 = -1")
    alu_reg("smod64-reg-zero", "smod", 64, (-5) & M64, 0, "smod (64) by a zero register leaves dst")
    alu_reg("smod64-reg-intmin", "smod", 64, 0x8000000000000000, M64, "smod (64) INT64_MIN % -1 in registers")
    # bitwise
    alu_imm("or32-imm", "or", 32, G | 0xf0, 0x0f, "or32 immediate, zero-extended")
    alu_imm("or32-imm-neg", "or", 32, 0, -1, "or32 with -1: 0xffffffff, zero-extended (no sign extension)")
    alu_reg("or32-reg", "or", 32, 0x1111111100000001, 0x2222222200000002, "or32 register")
    alu_imm("or64-imm-neg", "or", 64, 0, -16, "or (64) sign-extends the immediate")
    alu_reg("or64-reg", "or", 64, 0xf0f0f0f000000000, 0x0f0f0f0f00000001, "or (64) register")
    alu_imm("and32-imm", "and", 32, 0xffffffffffffffff, 0x0ff0, "and32 immediate")
    alu_imm("and32-imm-neg", "and", 32, 0xffffffff12345678, -1, "and32 with -1 keeps the low half only")
    alu_reg("and32-reg", "and", 32, 0xffffffffffff00ff, 0x123456780f0f0f0f, "and32 register")
    alu_imm("and64-imm-neg", "and", 64, 0xffffffffffffffff, -256, "and (64) with a sign-extended immediate")
    alu_imm("and64-imm-pos", "and", 64, 0xffffffffffffffff, 0x7fffffff, "and (64) with a positive immediate")
    alu_reg("and64-reg", "and", 64, 0xff00ff00ff00ff00, 0x0ff00ff00ff00ff0, "and (64) register")
    alu_imm("xor32-imm", "xor", 32, G | 0xff, 0x0f, "xor32 immediate")
    alu_imm("xor32-imm-neg", "xor", 32, 0x5, -1, "xor32 with -1 is a 32-bit not")
    alu_reg("xor32-reg", "xor", 32, 0xffffffffaaaaaaaa, 0x0000000055555555, "xor32 register")
    alu_imm("xor64-imm-neg", "xor", 64, 0x5, -1, "xor (64) with -1 is a 64-bit not")
    alu_reg("xor64-reg", "xor", 64, 0x123456789abcdef0, 0x123456789abcdef0, "xor of equal values is 0")
    # shifts
    for bits in (32, 64):
        w = bits
        alu_imm(f"lsh{w}-imm", "lsh", bits, G | 1 if bits == 32 else 1, 5, f"lsh{w} immediate")
        alu_imm(f"lsh{w}-imm-max", "lsh", bits, 0xffffffffffffffff, bits - 1, f"lsh{w} by {bits - 1}")
        alu_imm(f"lsh{w}-imm-width", "lsh", bits, 1, bits, f"lsh{w} by the constant {bits}")
        alu_reg(f"lsh{w}-reg", "lsh", bits, 0x123, 8, f"lsh{w} register")
        alu_reg(f"lsh{w}-reg-mask", "lsh", bits, 0x3, bits + 1, f"lsh{w} masks the shift count to {bits - 1}: by {bits + 1} = by 1")
        alu_reg(f"lsh{w}-reg-width", "lsh", bits, 0x3, bits, f"lsh{w} by a register holding {bits} shifts by 0")
        alu_imm(f"rsh{w}-imm", "rsh", bits, 0xf000000080000000, 4, f"rsh{w} is logical")
        alu_imm(f"rsh{w}-imm-max", "rsh", bits, 0xffffffffffffffff, bits - 1, f"rsh{w} by {bits - 1}")
        alu_imm(f"rsh{w}-imm-neg", "rsh", bits, 0x10, -1, f"rsh{w} by the constant -1")
        alu_reg(f"rsh{w}-reg", "rsh", bits, 0x8000000080000000, 31, f"rsh{w} register")
        alu_reg(f"rsh{w}-reg-mask", "rsh", bits, 0x8000000080000000, 0xffffffff00000000 | (bits + 3),
                f"rsh{w} masks the count (high bits of the count register ignored)")
        alu_imm(f"arsh{w}-imm", "arsh", bits, 0x8000000080000000, 4, f"arsh{w} of a negative value fills with ones")
        alu_imm(f"arsh{w}-imm-pos", "arsh", bits, 0x4000000040000000, 4, f"arsh{w} of a positive value")
        alu_imm(f"arsh{w}-imm-max", "arsh", bits, 0x8000000080000000, bits - 1, f"arsh{w} by {bits - 1}")
        alu_imm(f"arsh{w}-imm-width", "arsh", bits, 0x80, bits + 10, f"arsh{w} by an out-of-range constant")
        alu_reg(f"arsh{w}-reg", "arsh", bits, 0xfffffffffffffff0 if bits == 64 else 0x00000000fffffff0, 2,
                f"arsh{w} register: -16 >> 2 = -4")
        alu_reg(f"arsh{w}-reg-mask", "arsh", bits, 0x8000000080000000, bits + 1, f"arsh{w} masks the count")
    alu_reg("lsh32-reg-garbage", "lsh", 32, 0xffffffff00000001, 0x100000004,
            "lsh32 with garbage in both high halves")
    # neg
    for bits, name in ((32, "neg32"), (64, "neg64")):
        for tag, a in (("basic", 5), ("zero", 0), ("intmin", 0x8000000080000000), ("garbage", 0x1234567800000001)):
            r = alu("neg", a, 0, bits)
            case(f"{name}-{tag}", f"{name} of {h(a)}", f"""
r0 = {h(a)} ll
{reg(0, bits)} = -{reg(0, bits)}
exit""", result=r)
    # mov
    alu_imm("mov32-imm-neg", "mov", 32, G, -1, "mov32 -1 zero-extends: 0xffffffff")
    alu_imm("mov32-imm", "mov", 32, G, 0x12345678, "mov32 immediate clears the high half")
    alu_reg("mov32-reg", "mov", 32, 0, 0xffffffff87654321, "mov32 register zero-extends")
    alu_imm("mov64-imm-neg", "mov", 64, 0, -1, "mov (64) -1 sign-extends: all ones")
    alu_imm("mov64-imm-intmin", "mov", 64, 0, -0x80000000, "mov (64) INT32_MIN sign-extends")
    alu_reg("mov64-reg", "mov", 64, 0, 0xfedcba9876543210, "mov (64) register copies all 64 bits")
    # movsx
    for bits, width in ((32, 8), (32, 16), (64, 8), (64, 16), (64, 32)):
        for tag, a in (("neg", 0x1234567880808080), ("pos", 0x1234567870707070), ("garbage", 0xffffffffffff7f7f)):
            r = sx(a, width) & ((1 << bits) - 1)
            d, s = reg(0, bits), reg(1, bits)
            case(f"movsx{width}-{bits}-{tag}",
                 f"movsx{width}{bits}: sign-extend the low {width} bits of {h(a)} to {bits} bits" +
                 (", then zero-extend" if bits == 32 else ""), f"""
r1 = {h(a)} ll
r0 = 0x5555555555555555 ll
{d} = (s{width}){s}
exit""", result=r)
    # byte swaps
    v = 0x8899aabbccddeeff
    for width in (16, 32, 64):
        case(f"le{width}", f"le{width} on a little-endian host: truncate to {width} bits, zero-extend", f"""
r0 = {h(v)} ll
r0 = le{width} r0
exit""", result=v & ((1 << width) - 1))
        case(f"be{width}", f"be{width}: swap the low {width} bits, zero-extend (high garbage dropped)", f"""
r0 = {h(v)} ll
r0 = be{width} r0
exit""", result=bswap(v, width))
        case(f"bswap{width}", f"bswap{width} (ALU64, v4): unconditional swap of the low {width} bits, zero-extend", f"""
r0 = {h(v)} ll
r0 = bswap{width} r0
exit""", result=bswap(v, width))
    case("be16-small", "be16 of 0x0102", """
r0 = 0x102
r0 = be16 r0
exit""", result=0x0201)
    case("bswap32-garbage", "bswap32 drops the high half", """
r0 = 0xffffffff01020304 ll
r0 = bswap32 r0
exit""", result=0x04030201)
    case("le32-keep-low", "le32 keeps the low half of a value with high bits set", """
r0 = 0x1111111180000000 ll
r0 = le32 r0
exit""", result=0x80000000)


# ---------------------------------------------------------------- JMP / JMP32
def jmp_case(name, cond, bits, a, b, imm=None, comment=""):
    op, pred = COND[cond]
    n = bits
    m = (1 << n) - 1
    if imm is not None:
        bv = (imm & M64) if bits == 64 else (imm & M32)
        rhs = str(imm)
    else:
        bv = b
        rhs = reg(2, bits)
    taken = pred(a & m, bv & m, n)
    asm = f"""
r0 = 0
r1 = {h(a)} ll
r2 = {h(b if b is not None else 0)} ll
if {reg(1, bits)} {op} {rhs} goto taken
exit
taken:
r0 = 1
exit"""
    what = f"if {reg(1, bits)} {op} {rhs}" + (f" with r1 = {h(a)}" + (f", r2 = {h(b)}" if imm is None else ""))
    case(name, (comment + "\n" if comment else "") + what + (" is taken" if taken else " is not taken"), asm,
         result=1 if taken else 0)


def gen_jmp():
    BIG = 0x8000000000000000
    for cond in COND:
        for bits in (64, 32):
            sfx = "" if bits == 64 else "32"
            nm = cond + sfx
            top = 1 << (bits - 1)  # sign bit
            # register forms: one taken, one not, one at the signed/unsigned boundary
            pairs = {
                "jeq": [(5, 5), (5, 6), (G | 7, 7)],
                "jne": [(5, 6), (5, 5), (G | 7, 7)],
                "jgt": [(6, 5), (5, 5), (top, top - 1)],
                "jge": [(5, 5), (4, 5), (top - 1, top)],
                "jlt": [(4, 5), (5, 5), (top - 1, top)],
                "jle": [(5, 5), (6, 5), (top, top - 1)],
                "jset": [(0b1010, 0b0010), (0b1010, 0b0101), (G, 0xffffffff)],
                "jsgt": [(6, 5), (5, 5), (top, top - 1)],
                "jsge": [(5, 5), (top, 0), (top - 1, top)],
                "jslt": [((-1) & M64, 0), (5, 5), (top - 1, top)],
                "jsle": [(5, 5), (6, 5), (top, top - 1)],
            }[cond]
            for i, (a, b) in enumerate(pairs):
                tag = ("a", "b", "edge")[i]
                jmp_case(f"{nm}-reg-{tag}", cond, bits, a, b)
            # immediate forms: taken / not taken, and a negative immediate
            imms = {
                "jeq": [(5, 5), (4, 5), (M64, -1)],
                "jne": [(4, 5), (5, 5), (0xffffffff, -1)],
                "jgt": [(6, 5), (5, 5), (M64, -2)],
                "jge": [(5, 5), (4, 5), (5, -1)],
                "jlt": [(4, 5), (5, 5), (5, -1)],
                "jle": [(5, 5), (6, 5), (M64 - 1, -1)],
                "jset": [(0b1010, 2), (0b1010, 5), (0x80000000, -0x80000000)],
                "jsgt": [(6, 5), (5, 5), (0, -1)],
                "jsge": [(5, 5), (4, 5), ((-1) & M64, -1)],
                "jslt": [(4, 5), (5, 5), ((-2) & M64, -1)],
                "jsle": [(5, 5), (6, 5), (0, -1)],
            }[cond]
            for i, (a, imm) in enumerate(imms):
                tag = ("a", "b", "neg")[i]
                jmp_case(f"{nm}-imm-{tag}", cond, bits, a, None, imm=imm)
    # JMP32 ignores the high halves: the same values compared as 64-bit give the other answer
    jmp_case("jeq32-garbage", "jeq", 32, 0xffffffff00000001, 0x0000000100000001, comment="high halves differ")
    jmp_case("jgt32-garbage", "jgt", 32, 0x0000000100000001, 0xffffffff00000002, comment="64-bit r1 < r2, 32-bit w1 < w2")
    jmp_case("jgt32-garbage-2", "jgt", 32, 0x0000000000000003, 0xffffffff00000002, comment="64-bit r1 < r2, but w1 > w2")
    jmp_case("jslt32-garbage", "jslt", 32, 0x00000000ffffffff, 0x0000000000000000, comment="w1 = -1 is signed-less than 0 though r1 is positive")
    jmp_case("jsgt32-imm-garbage", "jsgt", 32, 0x7fffffff80000000, None, imm=0, comment="bit 31 is the sign, not bit 63")
    jmp_case("jset32-garbage", "jset", 32, 0xffffffff00000000, 0xffffffff00000000, comment="no common bit in the low halves")
    jmp_case("jeq-imm-signext", "jeq", 64, 0x00000000ffffffff, None, imm=-1, comment="the immediate -1 is 2^64-1 in a 64-bit compare")
    jmp_case("jgt-unsigned-vs-signed", "jgt", 64, BIG, 1, comment="unsigned: 2^63 > 1")
    jmp_case("jsgt-unsigned-vs-signed", "jsgt", 64, BIG, 1, comment="signed: INT64_MIN < 1")
    jmp_case("jslt-intmin-intmax", "jslt", 64, BIG, BIG - 1, comment="INT64_MIN < INT64_MAX")
    jmp_case("jle-zero-max", "jle", 64, 0, M64, comment="0 <= 2^64-1 unsigned")
    jmp_case("jsle-max-zero", "jsle", 64, M64, 0, comment="-1 <= 0 signed")
    jmp_case("jge32-imm-high", "jge", 32, 0x00000000fffffffe, None, imm=-1, comment="w1 0xfffffffe >= 0xffffffff? no")

    # unconditional jumps and loops
    case("ja-forward", "goto skips an instruction (the skipped one stays reachable through the branch)", """
r0 = 1
r1 = 0
if r1 != 0 goto skipped
goto +1
skipped:
r0 = 2
exit""", result=1)
    case("ja-backward-loop", "a bounded loop with a backward goto: sum 1..100", """
r0 = 0
r1 = 0
loop:
r1 += 1
r0 += r1
if r1 >= 100 goto out
goto loop
out:
exit""", result=5050)
    case("jlt-loop-backward", "a loop closed by a backward conditional jump: 2^10", """
r0 = 1
r1 = 0
again:
r0 <<= 1
r1 += 1
if r1 < 10 goto again
exit""", result=1024)
    case("jne32-loop-countdown", "a countdown loop closed by a jne32 with garbage in the high half", """
r0 = 0
r1 = 0x7777777700000005 ll
again:
r0 += 3
w1 -= 1
if w1 != 0 goto again
exit""", result=15)
    case("gotol-forward", "gotol (JMP32 class, 32-bit offset in imm)", """
r0 = 1
r1 = 0
if r1 != 0 goto skipped
gotol +1
skipped:
r0 = 2
exit""", result=1)
    case("gotol-backward", "gotol closing a loop", """
r0 = 0
r1 = 7
again:
r0 += 2
r1 -= 1
if r1 == 0 goto out
gotol again
out:
exit""", result=14)
    case("nested-loops", "two nested bounded loops: 10 x 20", """
r0 = 0
r1 = 0
outer:
r2 = 0
inner:
r0 += 1
r2 += 1
if r2 < 20 goto inner
r1 += 1
if r1 < 10 goto outer
exit""", result=200)
    case("jmp-offset-zero", "a conditional jump with offset 0 falls through either way", """
r0 = 3
r1 = 3
if r1 == 3 goto +0
r0 += 1
exit""", result=4)
    case("exit-early", "exit in the middle of a program", """
r0 = 7
r1 = 1
if r1 == 1 goto done
r0 = 8
done:
exit
""", result=7)


# ---------------------------------------------------------------- memory
MEM = [0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8, 0x09, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 0x70]
SIZES = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "s8": 1, "s16": 2, "s32": 4}


def rd(mem, off, n):
    return int.from_bytes(bytes(mem[off:off + n]), "little")


def gen_mem():
    for t in ("u8", "u16", "u32", "u64"):
        n = SIZES[t]
        for off in (0, 3, 16 - n):
            case(f"ldx-{t}-off{off}", f"load {t} at offset {off} of the input memory (little-endian, zero-extended)", f"""
r0 = 0x5555555555555555 ll
r0 = *({t} *)(r1 + {off})
exit""", result=rd(MEM, off, n), mem=MEM)
        case(f"ldx-{t}-negoff", f"load {t} at a negative offset from a moved pointer", f"""
r1 += 12
r0 = *({t} *)(r1 - {n + 2})
exit""", result=rd(MEM, 10 - n, n), mem=MEM)
    for t in ("s8", "s16", "s32"):
        n = SIZES[t]
        for off in (0, 8):
            v = sx(rd(MEM, off, n), 8 * n) & M64
            case(f"ldsx-{t}-off{off}", f"sign-extending load {t} at offset {off}: {'negative' if v >> 63 else 'positive'} value", f"""
r0 = *({t} *)(r1 + {off})
exit""", result=v, mem=MEM)
        case(f"ldsx-{t}-negoff", f"sign-extending load {t} at a negative offset", f"""
r1 += 8
r0 = *({t} *)(r1 - {n})
exit""", result=sx(rd(MEM, 8 - n, n), 8 * n) & M64, mem=MEM)
    # stores of immediates
    for t, imm in (("u8", -2), ("u16", 0x1234), ("u32", -0x12345678), ("u64", -3)):
        n = SIZES[t]
        for off in (0, 5 if n < 8 else 8):
            after = list(MEM)
            after[off:off + n] = le(imm & M64, n)
            case(f"st-{t}-off{off}", f"store the immediate {imm} as {t} at offset {off}" +
                 (" (sign-extended to 64 bits)" if n == 8 else " (truncated)"), f"""
*({t} *)(r1 + {off}) = {imm}
r0 = *({t} *)(r1 + {off})
exit""", result=(imm & M64) & ((1 << (8 * n)) - 1), mem=MEM, mem_after=after)
    # stores of registers
    src = 0x1122334455667788
    for t in ("u8", "u16", "u32", "u64"):
        n = SIZES[t]
        for off in (1, 16 - n):
            after = list(MEM)
            after[off:off + n] = le(src, n)
            case(f"stx-{t}-off{off}", f"store the low {8 * n} bits of r2 as {t} at offset {off}", f"""
r2 = {h(src)} ll
*({t} *)(r1 + {off}) = r2
r0 = *(u64 *)(r1 + 8)
exit""", result=rd(after, 8, 8), mem=MEM, mem_after=after)
    case("stx-negoff", "store through a negative offset", """
r2 = 0xaabb
r1 += 16
*(u16 *)(r1 - 16) = r2
r0 = 0
exit""", result=0, mem=MEM, mem_after=[0xbb, 0xaa] + MEM[2:])
    case("ldx-same-reg", "a load whose destination is its base register", """
r1 = *(u64 *)(r1 + 0)
r0 = r1
exit""", result=rd(MEM, 0, 8), mem=MEM)
    case("ldx-byte-loop", "sum of all 16 bytes of the memory in a bounded loop", """
r0 = 0
r3 = 0
loop:
r4 = r1
r4 += r3
r5 = *(u8 *)(r4 + 0)
r0 += r5
r3 += 1
if r3 < 16 goto loop
exit""", result=sum(MEM), mem=MEM)
    case("mem-empty", "a program that ignores an empty memory", """
r0 = 42
exit""", result=42)
    case("mem-length-r2", "r2 holds the memory length", """
r0 = r2
exit""", result=len(MEM), mem=MEM)

    # the stack
    for t in ("u8", "u16", "u32", "u64"):
        n = SIZES[t]
        case(f"stack-stx-{t}", f"store a register to the stack as {t} and load it back", f"""
r2 = 0xf1f2f3f4f5f6f7f8 ll
*({t} *)(r10 - 16) = r2
r0 = *({t} *)(r10 - 16)
exit""", result=0xf1f2f3f4f5f6f7f8 & ((1 << (8 * n)) - 1))
        case(f"stack-st-{t}", f"store an immediate to the stack as {t} and load it back", f"""
*({t} *)(r10 - 8) = -5
r0 = *({t} *)(r10 - 8)
exit""", result=(-5) & ((1 << (8 * n)) - 1))
    case("stack-ldsx", "sign-extending loads from the stack", """
r2 = 0x80
*(u64 *)(r10 - 8) = r2
r0 = *(s8 *)(r10 - 8)
exit""", result=(-128) & M64)
    case("stack-bottom", "the whole 512-byte frame is usable: r10 - 512", """
*(u64 *)(r10 - 512) = 77
*(u64 *)(r10 - 8) = 11
r0 = *(u64 *)(r10 - 512)
r1 = *(u64 *)(r10 - 8)
r0 += r1
exit""", result=88)
    case("stack-pointer-arith", "a pointer into the stack moved by arithmetic", """
r2 = r10
r2 += -32
*(u64 *)(r2 + 8) = 5
r0 = *(u64 *)(r10 - 24)
exit""", result=5)
    case("stack-bytes-compose", "four byte stores compose a word on the stack (little-endian)", """
*(u8 *)(r10 - 4) = 1
*(u8 *)(r10 - 3) = 2
*(u8 *)(r10 - 2) = 3
*(u8 *)(r10 - 1) = 4
r0 = *(u32 *)(r10 - 4)
exit""", result=0x04030201)
    case("stack-partial-read", "reading the high half of a spilled 64-bit register", """
r2 = 0x1234567890abcdef ll
*(u64 *)(r10 - 8) = r2
r0 = *(u32 *)(r10 - 4)
exit""", result=0x12345678)
    case("stack-unaligned", "an unaligned stack access works in the interpreter", """
r2 = 0x11223344
*(u32 *)(r10 - 6) = r2
r0 = *(u32 *)(r10 - 6)
exit""", result=0x11223344,
         kernel="rejects: the verifier requires naturally aligned stack accesses\nlog: misaligned stack access")


# ---------------------------------------------------------------- atomics
ATOMIC = {"add": ("+=", "atomic_fetch_add", lambda o, s: o + s),
          "or": ("|=", "atomic_fetch_or", lambda o, s: o | s),
          "and": ("&=", "atomic_fetch_and", lambda o, s: o & s),
          "xor": ("^=", "atomic_fetch_xor", lambda o, s: o ^ s)}


def gen_atomic():
    amem = le(0x00000000ff00ff0f, 8) + le(0x8000000000000001, 8)
    for op, (kop, fetch, f) in ATOMIC.items():
        for bits in (32, 64):
            t = "u32" if bits == 32 else "u64"
            n = bits // 8
            m = (1 << bits) - 1
            src = 0xdeadbeef000000f1 if bits == 32 else 0x00000000000000f1
            for off in (0, 8):
                old = rd(amem, off, n)
                new = f(old, src & m) & m
                after = list(amem)
                after[off:off + n] = le(new, n)
                case(f"atomic-{op}{bits}-off{off}", f"lock {kop} ({bits}-bit) at offset {off}: memory updated, src unchanged", f"""
r2 = {h(src)} ll
lock *({t} *)(r1 + {off}) {kop} {reg(2, bits)}
r0 = r2
exit""", result=src, mem=amem, mem_after=after)
                case(f"atomic-fetch-{op}{bits}-off{off}",
                     f"{fetch} ({bits}-bit) at offset {off}: src receives the old value" +
                     (" (zero-extended)" if bits == 32 else ""), f"""
r2 = {h(src)} ll
{reg(2, bits)} = {fetch}(({t} *)(r1 + {off}), {reg(2, bits)})
r0 = r2
exit""", result=old, mem=amem, mem_after=after)
    for bits in (32, 64):
        t = "u32" if bits == 32 else "u64"
        n = bits // 8
        m = (1 << bits) - 1
        old = rd(amem, 8, n)
        src = 0x123456789abcdef0
        after = list(amem)
        after[8:8 + n] = le(src, n)
        fn = "xchg32_32" if bits == 32 else "xchg_64"
        case(f"atomic-xchg{bits}", f"xchg ({bits}-bit): memory gets src, src gets the old value" +
             (" zero-extended" if bits == 32 else ""), f"""
r2 = {h(src)} ll
{reg(2, bits)} = {fn}(r1 + 8, {reg(2, bits)})
r0 = r2
exit""", result=old, mem=amem, mem_after=after)
        fn = "cmpxchg32_32" if bits == 32 else "cmpxchg_64"
        for tag, expect in (("success", old | (0xabcd000000000000 if bits == 32 else 0)), ("failure", old ^ 1)):
            ok = (expect & m) == old
            after = list(amem)
            if ok:
                after[8:8 + n] = le(src, n)
            case(f"atomic-cmpxchg{bits}-{tag}",
                 f"cmpxchg ({bits}-bit) {tag}: r0 {'matches' if ok else 'differs from'} memory" +
                 (" in its low half (the high half holds garbage)" if bits == 32 and ok else "") +
                 "; r0 receives the old value" + (" zero-extended" if bits == 32 else ""), f"""
r0 = {h(expect)} ll
r2 = {h(src)} ll
{reg(0, bits)} = {fn}(r1 + 8, {reg(0, bits)}, {reg(2, bits)})
exit""", result=old, mem=amem, mem_after=after)
    case("atomic-stack-add", "atomic add on a stack slot", """
*(u64 *)(r10 - 8) = 40
r2 = 2
lock *(u64 *)(r10 - 8) += r2
r0 = *(u64 *)(r10 - 8)
exit""", result=42)
    case("atomic-stack-fetch-or32", "32-bit fetch_or on a stack slot", """
*(u32 *)(r10 - 4) = 0x10
r2 = 0x1
w2 = atomic_fetch_or((u32 *)(r10 - 4), w2)
r0 = *(u32 *)(r10 - 4)
r0 <<= 8
r0 |= r2
exit""", result=0x1110)
    case("atomic-stack-cmpxchg-loop", "a compare-and-swap retry loop incrementing a stack counter 5 times", """
*(u64 *)(r10 - 8) = 0
r6 = 0
again:
r0 = *(u64 *)(r10 - 8)
r2 = r0
r2 += 1
r0 = cmpxchg_64(r10 - 8, r0, r2)
r6 += 1
if r6 < 5 goto again
r0 = *(u64 *)(r10 - 8)
exit""", result=5)
    # load-acquire / store-release
    for t, n in (("u8", 1), ("u16", 2), ("u32", 4), ("u64", 8)):
        bits = 64 if n == 8 else 32
        case(f"load-acquire-{t}", f"load_acquire of {t}: a zero-extending load", f"""
r0 = 0x5555555555555555 ll
{reg(0, bits)} = load_acquire(({t} *)(r1 + 8))
exit""", result=rd(amem, 8, n), mem=amem)
        after = list(amem)
        after[0:n] = le(0xa1a2a3a4a5a6a7a8, n)
        case(f"store-release-{t}", f"store_release of {t}: stores the low {8 * n} bits", f"""
r2 = 0xa1a2a3a4a5a6a7a8 ll
store_release(({t} *)(r1 + 0), {reg(2, bits)})
r0 = *(u64 *)(r1 + 0)
exit""", result=rd(after, 0, 8), mem=amem, mem_after=after)


# ---------------------------------------------------------------- calls, may_goto, legacy packet access, errors
def gen_calls():
    case("call-local-basic", "a bpf-to-bpf call returns its r0", """
r0 = 1
call fn
r0 += 10
exit
fn:
r0 = 32
exit""", result=42)
    case("call-local-args", "r1-r5 are passed to the callee", """
r1 = 1
r2 = 20
r3 = 300
r4 = 4000
r5 = 50000
call sum
exit
sum:
r0 = r1
r0 += r2
r0 += r3
r0 += r4
r0 += r5
exit""", result=54321)
    case("call-local-callee-saved", "r6-r9 survive a call although the callee overwrites them", """
r6 = 6
r7 = 7
r8 = 8
r9 = 9
call clobber
r0 = r6
r0 *= 10
r0 += r7
r0 *= 10
r0 += r8
r0 *= 10
r0 += r9
exit
clobber:
r6 = 0
r7 = 0
r8 = 0
r9 = 0
r0 = 0
exit""", result=6789)
    case("call-local-own-stack", "each frame has its own stack: the callee's r10 - 8 is not the caller's", """
*(u64 *)(r10 - 8) = 111
call fn
r1 = *(u64 *)(r10 - 8)
r0 += r1
exit
fn:
*(u64 *)(r10 - 8) = 222
r0 = *(u64 *)(r10 - 8)
exit""", result=333)
    case("call-local-stack-pointer-arg", "a callee writes through a pointer into its caller's frame", """
*(u64 *)(r10 - 8) = 0
r1 = r10
r1 += -8
call fn
r0 = *(u64 *)(r10 - 8)
exit
fn:
*(u64 *)(r1 + 0) = 99
r0 = 0
exit""", result=99)
    case("call-local-nested", "three nested calls, each adding to r0 on return", """
r6 = 1
call f1
r0 += r6
exit
f1:
r6 = 10
call f2
r0 += r6
exit
f2:
r6 = 100
call f3
r0 += r6
exit
f3:
r0 = 1000
exit""", result=1111)
    case("call-local-memory", "a callee gets the memory pointer and length from its caller", """
call fn
exit
fn:
r0 = *(u32 *)(r1 + 0)
r0 += r2
exit""", result=rd(MEM, 0, 4) + 16, mem=MEM)
    # r0 is not passed to a callee (the kernel calls it unreadable there): count in r1
    chain = ["r1 = 0", "call f1", "exit"]
    for i in range(1, 7):
        chain += [f"f{i}:", "r1 += 1", f"call f{i + 1}", "exit"]
    chain += ["f7:", "r0 = r1", "r0 += 1", "exit"]
    case("call-depth-8-frames", "eight frames in all (main + 7 nested calls): the interpreter's limit.\n"
         "The kernel counts the oracle's wrapper as one more frame.", "\n".join(chain), result=7,
         kernel="rejects: with the oracle's wrapper frame this is 9 frames, the kernel allows 8\nlog: too deep")
    chain = ["r1 = 0", "call f1", "exit"]
    for i in range(1, 8):
        chain += [f"f{i}:", "r1 += 1", f"call f{i + 1}", "exit"]
    chain += ["f8:", "r0 = r1", "r0 += 1", "exit"]
    case("call-depth-9-frames", "nine frames exceed the limit of 8", "\n".join(chain), error="call depth exceeds 8 frames",
         kernel="rejects: more than 8 frames\nlog: too deep")
    case("call-recursion-budget", "unbounded recursion ends at the call-depth limit", """
r1 = 0
call self
exit
self:
r1 += 1
call self
exit""", error="call depth exceeds", kernel="rejects: the verifier follows the recursion until the frame limit\nlog: too deep")
    case("call-local-loop", "a call inside a bounded loop", """
r6 = 0
r7 = 0
loop:
r1 = r6
call square
r7 += r0
r6 += 1
if r6 < 5 goto loop
r0 = r7
exit
square:
r0 = r1
r0 *= r1
exit""", result=0 + 1 + 4 + 9 + 16)

    # helper 5: "unwind" (conformance helper of uBPF): returns r1, ends the run when r1 == 0
    case("unwind-continue", "helper 5 with r1 != 0 returns r1 and the program continues", """
r1 = 7
call 5
r0 += 1
exit""", result=8, kernel="skip: helper 5 is the conformance-test 'unwind' helper, unknown to the kernel")
    case("unwind-stop", "helper 5 with r1 == 0 ends the run with r0 = 0", """
r1 = 0
call 5
r0 = 1
exit""", result=0, kernel="skip: helper 5 is the conformance-test 'unwind' helper, unknown to the kernel")
    case("unwind-in-subprogram", "helper 5 ends the whole run from a nested frame", """
r6 = 3
call fn
r0 = 100
exit
fn:
r1 = 0
call 5
r0 = 200
exit""", result=0, kernel="skip: helper 5 is the conformance-test 'unwind' helper, unknown to the kernel")
    case("call-unknown-helper", "a call to a helper id that is not registered", """
r0 = 0
call 0
exit""", error="unknown helper 0", kernel="rejects: helper 0 does not exist in the kernel either\nlog: cannot use helper")

    # callx: the kernel does not know this encoding
    case("callx-helper-id", "callx with a helper id in the register calls the helper", """
r2 = 5
r1 = 9
callx r2
r0 += 1
exit""", result=10, kernel="skip: callx is not known to the kernel")
    case("callx-bad-target", "callx with a value that is neither a helper nor a function", """
r2 = 0x123456789 ll
callx r2
exit""", error="neither a helper id nor a function address", kernel="skip: callx is not known to the kernel")

    # may_goto
    case("may-goto-bounded", "a loop guarded by may_goto that ends by its own condition", """
r0 = 0
loop:
may_goto out
r0 += 1
if r0 < 10 goto loop
out:
exit""", result=10)
    case("may-goto-exhausted", "an endless loop that only may_goto ends: returns 1 once the budget is spent", """
r0 = 0
loop:
may_goto out
goto loop
out:
r0 = 1
exit""", result=1)
    case("may-goto-count", "may_goto falls through 8 Mi times, then takes its branch", """
r0 = 0
loop:
may_goto out
r0 += 1
goto loop
out:
exit""", result=8 * 1024 * 1024,
         kernel="skip: the x86-64 kernel bounds may_goto loops by time (timed may_goto), not by a fixed count")
    case("may-goto-offset-zero", "may_goto +0 falls through either way", """
r0 = 5
may_goto +0
r0 += 1
exit""", result=6)

    # legacy packet access
    pkt = [0x45, 0x00, 0x00, 0x54, 0xab, 0xcd, 0x40, 0x00, 0x40, 0x01, 0x12, 0x34, 0xc0, 0xa8, 0x01, 0x01]
    for t, n in (("u8", 1), ("u16", 2), ("u32", 4)):
        v = int.from_bytes(bytes(pkt[4:4 + n]), "big")
        case(f"ld-abs-{t}", f"LD_ABS {t}: a network-order load from the packet", f"""
r6 = r1
r0 = *({t} *)skb[4]
exit""", result=v, mem=pkt, kernel="skip: LD_ABS/LD_IND cannot be used in the oracle's bpf-to-bpf wrapper")
        v = int.from_bytes(bytes(pkt[10:10 + n]), "big")
        case(f"ld-ind-{t}", f"LD_IND {t}: src register + imm, network order", f"""
r6 = r1
r7 = 8
r0 = *({t} *)skb[r7 + 2]
exit""", result=v, mem=pkt, kernel="skip: LD_ABS/LD_IND cannot be used in the oracle's bpf-to-bpf wrapper")
    case("ld-abs-out-of-range", "LD_ABS past the end of the packet ends the run with r0 = 0", """
r6 = r1
r0 = 5
r0 = *(u32 *)skb[14]
r0 = 7
exit""", result=0, mem=pkt, kernel="skip: LD_ABS/LD_IND cannot be used in the oracle's bpf-to-bpf wrapper")

    # lddw
    for tag, v in (("basic", 0x123456789abcdef0), ("high-only", 0xffffffff00000000), ("low-neg", 0x00000000ffffffff),
                   ("zero", 0), ("all-ones", M64)):
        case(f"lddw-{tag}", f"lddw loads the 64-bit immediate {h(v)}", f"""
r0 = {h(v)} ll
exit""", result=v)
    case("lddw-twice", "two lddw in a row, second overwrites the first's high half", """
r0 = 0x1111111122222222 ll
r1 = 0x3333333344444444 ll
r0 ^= r1
exit""", result=0x1111111122222222 ^ 0x3333333344444444)

    # errors of our engines
    case("checked-read-oob", "checked mode: an 8-byte read from 4-byte memory is a memory violation", """
r0 = *(u64 *)(r1 + 0)
exit""", error="invalid read of 8 bytes", mem=[1, 2, 3, 4], options="checked",
         kernel="rejects: the verifier knows the map value is 4 bytes\nlog: invalid access to map value")
    case("checked-write-oob", "checked mode: a store past the end of memory", """
*(u8 *)(r1 + 4) = 1
r0 = 0
exit""", error="invalid write of 1 byte", mem=[1, 2, 3, 4], options="checked",
         kernel="rejects: the verifier knows the map value is 4 bytes\nlog: invalid access to map value")
    case("checked-read-before", "checked mode: a read just before the memory", """
r0 = *(u8 *)(r1 - 1)
exit""", error="invalid read of 1 byte", mem=[1, 2, 3, 4], options="checked",
         kernel="rejects: negative offset into the map value\nlog: invalid access to map value")
    case("checked-stack-above-frame", "checked mode: reading above r10 is outside the frame", """
r0 = *(u64 *)(r10 + 8)
exit""", error="invalid read of 8 bytes", options="checked",
         kernel="rejects: the stack ends at r10\nlog: invalid")
    case("checked-stack-below-frame", "checked mode: r10 - 520 is below the 512-byte frame", """
r0 = *(u64 *)(r10 - 520)
exit""", error="invalid read of 8 bytes", options="checked",
         kernel="rejects: the stack is 512 bytes\nlog: invalid")
    case("checked-in-bounds", "checked mode: accesses inside the memory and the stack run normally", """
r0 = *(u32 *)(r1 + 0)
*(u64 *)(r10 - 8) = r0
r0 = *(u64 *)(r10 - 8)
exit""", result=0x04030201, mem=[1, 2, 3, 4], options="checked")
    case("checked-atomic-oob", "checked mode: an atomic add that straddles the end of memory", """
r2 = 1
lock *(u64 *)(r1 + 0) += r2
r0 = 0
exit""", error="invalid", mem=[1, 2, 3, 4], options="checked",
         kernel="rejects: the verifier knows the map value is 4 bytes\nlog: invalid access to map value")
    case("budget-infinite-loop", "a budget ends an endless loop", """
r0 = 0
loop:
goto loop""", error="instruction budget of 1000 exhausted", options="budget=1000",
         kernel="rejects: the verifier refuses an endless loop\nlog: infinite loop")
    case("budget-exact", "a budget equal to the instructions executed is enough (4 here)", """
r0 = 1
r0 += 1
r0 += 1
exit""", result=3, options="budget=4")
    case("budget-one-short", "a budget one below the instructions executed fails", """
r0 = 1
r0 += 1
r0 += 1
exit""", error="instruction budget of 3 exhausted", options="budget=3",
         kernel="skip: a run budget has no kernel equivalent (the kernel runs it to the end)")
    case("jump-out-of-range", "a jump past the end of the program", """
r0 = 0
goto +5
exit""", error="jump out of range", kernel="rejects: same structural rule\nlog: jump out of range")
    case("no-exit", "the last instruction must be exit or goto", """
r0 = 0
r0 += 1""", error="last insn is not an exit or jmp", kernel="rejects: same structural rule\nlog: last insn")
    case("fell-off-end", "without the kernel's structure rules, running past the last instruction is a run-time error", """
r0 = 0
r0 += 1""", error="execution ran past the last instruction", options="no-kernel-structure",
         kernel="rejects: the kernel requires exit or goto at the end\nlog: last insn")
    # lddw with pseudo sources: the loader resolves them; the engines, given them
    # unresolved, load the 64-bit immediate as it is (func: the function's address)
    for tag, text, v, log in (
            ("map-fd", "map_fd(999)", 999, "fd 999 is not pointing to valid bpf_map"),
            ("map-value", "map_value(999) + 16", (16 << 32) | 999, "fd 999 is not pointing to valid bpf_map"),
            ("btf-id", "btf_id(55)", 55, "pseudo btf_id 55"),
            ("map-idx", "map_idx(7)", 7, "fd_idx without fd_array is invalid"),
            ("map-idx-value", "map_idx_value(7) + 8", (8 << 32) | 7, "fd_idx without fd_array is invalid")):
        case(f"lddw-pseudo-{tag}", f"an unresolved lddw {text}: the raw immediate", f"""
r0 = {text} ll
exit""", result=v, kernel=f"rejects: the kernel resolves the pseudo source and finds no such object\nlog: {log}")
    case("lddw-pseudo-func-callx", "lddw func(+5) (the function at fn:) gives a function address that callx calls", """
r2 = func(+5) ll
r1 = 20
callx r2
r0 += 1
exit
fn:
r0 = r1
r0 *= 2
exit""", result=41, kernel="skip: callx is not known to the kernel")
    case("call-kfunc-unknown", "a kfunc call with a BTF id no kfunc is registered under", """
r0 = 0
call kfunc(9)
exit""", error="unknown kfunc with BTF id 9", kernel="skip: kfunc calls need the kernel's BTF ids")
    case("div-by-zero-reg-no-trap", "division by a zero register does not trap; the run continues", """
r1 = 0
r0 = 10
r0 /= r1
r0 += 5
exit""", result=5)


# ---------------------------------------------------------------- register allocation
def gen_regs():
    """Operations that x86 implements with fixed registers (div/mod: rax/rdx,
    shifts: rcx) on every interesting register pair. All of r0-r9 are
    initialised, the operation runs, then every register is spilled and folded
    into r0 (acc = acc * 3 + rK), so a wrong result or a clobbered bystander
    register changes r0."""
    init = {k: (0x0102030405060708 * (k + 1)) ^ (0x9e3779b97f4a7c15 >> k) for k in range(10)}
    pairs = ((3, 4), (4, 3), (0, 3), (3, 0), (4, 4), (0, 0), (2, 5))
    src_value = {"mul": 0x1000000010003, "div": 0xffffffff00000007, "mod": 0x1000000007,
                 "sdiv": 0xfffffffffffffffd, "smod": 0xfffffffffffffffd}
    for op in ("mul", "div", "mod", "sdiv", "smod", "lsh", "rsh", "arsh"):
        for bits in (32, 64):
            for d, sreg in pairs:
                start = dict(init)
                start[d] = 0xfedcba9876543210 if op in ("div", "mod") else 0x8765432187654321
                if sreg != d:
                    start[sreg] = src_value.get(op, 0xffffff25)  # shifts: count 0x25 plus high garbage
                after = dict(start)
                after[d] = alu(op, start[d], start[sreg], bits)
                acc = 0
                for k in range(10):
                    acc = (acc * 3 + after[k]) & M64
                lines = [f"r{k} = {h(start[k])} ll" for k in range(10)]
                lines.append(f"{reg(d, bits)} {KOP[op]} {reg(sreg, bits)}")
                lines += [f"*(u64 *)(r10 - {8 * (k + 1)}) = r{k}" for k in range(10)]
                lines.append("r0 = 0")
                for k in range(10):
                    lines += ["r0 *= 3", f"r1 = *(u64 *)(r10 - {8 * (k + 1)})", "r0 += r1"]
                lines.append("exit")
                case(f"regs-{op}{bits}-r{d}-r{sreg}",
                     f"{reg(d, bits)} {KOP[op]} {reg(sreg, bits)} with all of r0-r9 live: the result and every\n"
                     "other register are folded into r0 (acc = acc * 3 + rK)", "\n".join(lines), result=acc)


def main():
    gen_regs()
    gen_alu()
    gen_jmp()
    gen_mem()
    gen_atomic()
    gen_calls()
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.startswith("g-") and f.endswith(".data"):
            os.remove(os.path.join(OUT, f))
    for name, text in CASES.items():
        with open(os.path.join(OUT, name + ".data"), "w") as fh:
            fh.write(text)
    print(f"wrote {len(CASES)} cases to {OUT}")


if __name__ == "__main__":
    main()
