// Instruction semantics that several components share: the interpreter, the
// JIT's constant folding, the verifier's constant evaluation and the tests.
// Every function is constexpr and defined for every input (no UB): division
// and modulo by zero, INT_MIN / -1, shift masking, sign extension, byte swaps
// and 32-bit zero extension all follow RFC 9669 and the Linux kernel.
#pragma once

#include <bit>
#include <cstdint>
#include <limits>

namespace userbpf::isa::sem {

using u8 = std::uint8_t;
using u16 = std::uint16_t;
using u32 = std::uint32_t;
using u64 = std::uint64_t;
using s32 = std::int32_t;
using s64 = std::int64_t;

static_assert(std::endian::native == std::endian::little, "userbpf runs on little-endian hosts");

// ---- extension
constexpr u64 zext32(u64 v) { return v & 0xffffffffULL; }
// Sign-extends the low `bits` bits of v to 64 bits.
constexpr u64 sext(u64 v, unsigned bits) {
  if (bits >= 64) return v;
  const u64 m = u64{1} << (bits - 1);
  const u64 x = v & ((u64{1} << bits) - 1);
  return (x ^ m) - m;
}
// The 32-bit immediate as a 64-bit operand (ALU64, JMP): sign-extended.
constexpr u64 imm64(s32 imm) { return static_cast<u64>(static_cast<s64>(imm)); }

// ---- shifts (masked: 63 for 64-bit, 31 for 32-bit)
constexpr u64 lsh64(u64 a, u64 s) { return a << (s & 63); }
constexpr u64 rsh64(u64 a, u64 s) { return a >> (s & 63); }
constexpr u64 arsh64(u64 a, u64 s) { return static_cast<u64>(static_cast<s64>(a) >> (s & 63)); }
constexpr u32 lsh32(u32 a, u64 s) { return a << (s & 31); }
constexpr u32 rsh32(u32 a, u64 s) { return a >> (s & 31); }
constexpr u32 arsh32(u32 a, u64 s) { return static_cast<u32>(static_cast<s32>(a) >> (s & 31)); }

// ---- division and modulo: x / 0 = 0, x % 0 = x; INT_MIN / -1 = INT_MIN, INT_MIN % -1 = 0
constexpr u64 div64(u64 a, u64 b) { return b == 0 ? 0 : a / b; }
constexpr u64 mod64(u64 a, u64 b) { return b == 0 ? a : a % b; }
constexpr u32 div32(u32 a, u32 b) { return b == 0 ? 0 : a / b; }
constexpr u32 mod32(u32 a, u32 b) { return b == 0 ? a : a % b; }
constexpr u64 sdiv64(u64 a, u64 b) {
  const s64 x = static_cast<s64>(a), y = static_cast<s64>(b);
  if (y == 0) return 0;
  if (y == -1) return 0 - a;  // wraps for INT64_MIN like the kernel
  return static_cast<u64>(x / y);
}
constexpr u64 smod64(u64 a, u64 b) {
  const s64 x = static_cast<s64>(a), y = static_cast<s64>(b);
  if (y == 0) return a;
  if (y == -1) return 0;
  return static_cast<u64>(x % y);
}
constexpr u32 sdiv32(u32 a, u32 b) {
  const s32 x = static_cast<s32>(a), y = static_cast<s32>(b);
  if (y == 0) return 0;
  if (y == -1) return 0u - a;
  return static_cast<u32>(x / y);
}
constexpr u32 smod32(u32 a, u32 b) {
  const s32 x = static_cast<s32>(a), y = static_cast<s32>(b);
  if (y == 0) return a;
  if (y == -1) return 0;
  return static_cast<u32>(x % y);
}

// ---- byte swaps
constexpr u16 bswap16(u16 v) { return static_cast<u16>((v >> 8) | (v << 8)); }
constexpr u32 bswap32(u32 v) {
  return ((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >> 8) & 0xff00) | (v >> 24);
}
constexpr u64 bswap64(u64 v) {
  return (static_cast<u64>(bswap32(static_cast<u32>(v))) << 32) | bswap32(static_cast<u32>(v >> 32));
}
// ALU END TO_BE (be16/32/64) on a little-endian host: swap, zero-extend.
constexpr u64 to_be(u64 v, unsigned width) {
  switch (width) {
    case 16: return bswap16(static_cast<u16>(v));
    case 32: return bswap32(static_cast<u32>(v));
    default: return bswap64(v);
  }
}
// ALU END TO_LE (le16/32/64) on a little-endian host: truncate, zero-extend.
constexpr u64 to_le(u64 v, unsigned width) {
  switch (width) {
    case 16: return static_cast<u16>(v);
    case 32: return static_cast<u32>(v);
    default: return v;
  }
}
// ALU64 END (bswap16/32/64): unconditional swap, zero-extend.
constexpr u64 bswap(u64 v, unsigned width) { return to_be(v, width); }

// ---- conditions of JMP/JMP32 (the 4-bit code of the opcode)
enum class Cond : std::uint8_t { Eq = 0x1, Gt = 0x2, Ge = 0x3, Set = 0x4, Ne = 0x5, Sgt = 0x6, Sge = 0x7,
                                 Lt = 0xa, Le = 0xb, Slt = 0xc, Sle = 0xd };
constexpr bool cond64(Cond c, u64 a, u64 b) {
  const s64 x = static_cast<s64>(a), y = static_cast<s64>(b);
  switch (c) {
    case Cond::Eq: return a == b;
    case Cond::Gt: return a > b;
    case Cond::Ge: return a >= b;
    case Cond::Set: return (a & b) != 0;
    case Cond::Ne: return a != b;
    case Cond::Sgt: return x > y;
    case Cond::Sge: return x >= y;
    case Cond::Lt: return a < b;
    case Cond::Le: return a <= b;
    case Cond::Slt: return x < y;
    case Cond::Sle: return x <= y;
  }
  return false;
}
constexpr bool cond32(Cond c, u64 a, u64 b) {
  const u64 x = static_cast<u32>(a), y = static_cast<u32>(b);
  switch (c) {
    case Cond::Sgt: case Cond::Sge: case Cond::Slt: case Cond::Sle:
      return cond64(c, sext(x, 32), sext(y, 32));
    case Cond::Eq: case Cond::Gt: case Cond::Ge: case Cond::Set: case Cond::Ne: case Cond::Lt: case Cond::Le:
      return cond64(c, x, y);
  }
  return false;
}

// ---- atomic operations (imm of STX|ATOMIC without the FETCH bit)
enum class AtomicOp : std::uint16_t { Add = 0x00, Or = 0x40, And = 0x50, Xor = 0xa0, Xchg = 0xe0, Cmpxchg = 0xf0 };
inline constexpr std::int32_t kAtomicFetch = 0x01;
inline constexpr std::int32_t kLoadAcq = 0x100;
inline constexpr std::int32_t kStoreRel = 0x110;

// New memory value for a read-modify-write atomic (not cmpxchg).
constexpr u64 atomic_apply(AtomicOp op, u64 old, u64 src) {
  switch (op) {
    case AtomicOp::Add: return old + src;
    case AtomicOp::Or: return old | src;
    case AtomicOp::And: return old & src;
    case AtomicOp::Xor: return old ^ src;
    case AtomicOp::Xchg: return src;
    case AtomicOp::Cmpxchg: return src;  // caller compares first
  }
  return old;
}

}  // namespace userbpf::isa::sem
