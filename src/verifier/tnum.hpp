// Tristate numbers: a 64-bit value where each bit is known 0, known 1 or
// unknown. `value` holds the known-1 bits, `mask` the unknown bits; a bit is
// never set in both (invariant: (value & mask) == 0). The arithmetic is the
// usual abstract-domain construction (sound over-approximation of the
// concrete operation applied to every member).
#pragma once

#include <cstdint>
#include <string>

namespace userbpf::verifier {

struct Tnum {
  std::uint64_t value = 0;
  std::uint64_t mask = 0;

  static constexpr Tnum constant(std::uint64_t v) { return {v, 0}; }
  static constexpr Tnum unknown() { return {0, ~0ULL}; }
  // The smallest tnum containing every value of [min, max].
  static Tnum range(std::uint64_t min, std::uint64_t max);

  [[nodiscard]] constexpr bool is_const() const { return mask == 0; }
  [[nodiscard]] constexpr bool is_unknown() const { return mask == ~0ULL; }
  [[nodiscard]] constexpr bool equals_const(std::uint64_t v) const { return mask == 0 && value == v; }
  [[nodiscard]] constexpr std::uint64_t min() const { return value; }
  [[nodiscard]] constexpr std::uint64_t max() const { return value | mask; }
  // True when every member of b is a member of *this.
  [[nodiscard]] constexpr bool contains(Tnum b) const {
    if ((b.mask & ~mask) != 0) return false;
    return (b.value & ~mask) == value;
  }
  [[nodiscard]] constexpr bool is_aligned(std::uint64_t size) const {
    return size == 0 || ((value | mask) & (size - 1)) == 0;
  }
  friend constexpr bool operator==(Tnum, Tnum) = default;
  [[nodiscard]] std::string str() const;  // "(0x0; 0xff)"
};

Tnum tnum_add(Tnum a, Tnum b);
Tnum tnum_sub(Tnum a, Tnum b);
Tnum tnum_neg(Tnum a);
Tnum tnum_and(Tnum a, Tnum b);
Tnum tnum_or(Tnum a, Tnum b);
Tnum tnum_xor(Tnum a, Tnum b);
Tnum tnum_mul(Tnum a, Tnum b);
Tnum tnum_lshift(Tnum a, unsigned shift);
Tnum tnum_rshift(Tnum a, unsigned shift);
Tnum tnum_arshift(Tnum a, unsigned shift, unsigned insn_bitness);
Tnum tnum_intersect(Tnum a, Tnum b);
Tnum tnum_union(Tnum a, Tnum b);  // smallest tnum containing both
Tnum tnum_cast(Tnum a, unsigned size_bytes);  // keep the low size_bytes bytes
Tnum tnum_subreg(Tnum a);                     // low 32 bits
Tnum tnum_clear_subreg(Tnum a);               // high 32 bits only
Tnum tnum_with_subreg(Tnum reg, Tnum subreg);
Tnum tnum_const_subreg(Tnum a, std::uint32_t v);

}  // namespace userbpf::verifier
