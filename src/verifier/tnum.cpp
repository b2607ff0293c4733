// Tristate number arithmetic (see tnum.hpp). Written from the definition:
// for each operation the result's unknown bits cover every bit that can
// differ between two concrete results.
#include "verifier/tnum.hpp"

#include <bit>

#include <fmt/format.h>

namespace userbpf::verifier {

std::string Tnum::str() const {
  if (mask == 0) return fmt::format("{}", static_cast<std::int64_t>(value));
  return fmt::format("({:#x}; {:#x})", value, mask);
}

Tnum Tnum::range(std::uint64_t min, std::uint64_t max) {
  const std::uint64_t chi = min ^ max;
  const unsigned bits = chi == 0 ? 0 : 64u - static_cast<unsigned>(std::countl_zero(chi));
  if (bits > 63) return unknown();
  const std::uint64_t delta = (1ULL << bits) - 1;
  return {min & ~delta, delta};
}

Tnum tnum_add(Tnum a, Tnum b) {
  const std::uint64_t sm = a.mask + b.mask;
  const std::uint64_t sv = a.value + b.value;
  const std::uint64_t sigma = sm + sv;
  const std::uint64_t chi = sigma ^ sv;
  const std::uint64_t mu = chi | a.mask | b.mask;
  return {sv & ~mu, mu};
}

Tnum tnum_sub(Tnum a, Tnum b) {
  const std::uint64_t dv = a.value - b.value;
  const std::uint64_t alpha = dv + a.mask;
  const std::uint64_t beta = dv - b.mask;
  const std::uint64_t chi = alpha ^ beta;
  const std::uint64_t mu = chi | a.mask | b.mask;
  return {dv & ~mu, mu};
}

Tnum tnum_neg(Tnum a) { return tnum_sub(Tnum::constant(0), a); }

Tnum tnum_and(Tnum a, Tnum b) {
  const std::uint64_t alpha = a.value | a.mask;
  const std::uint64_t beta = b.value | b.mask;
  const std::uint64_t v = a.value & b.value;
  return {v, alpha & beta & ~v};
}

Tnum tnum_or(Tnum a, Tnum b) {
  const std::uint64_t v = a.value | b.value;
  const std::uint64_t mu = a.mask | b.mask;
  return {v, mu & ~v};
}

Tnum tnum_xor(Tnum a, Tnum b) {
  const std::uint64_t v = a.value ^ b.value;
  const std::uint64_t mu = a.mask | b.mask;
  return {v & ~mu, mu};
}

// Shift-and-add multiplication: for every bit of a, add b shifted (known
// bits add the value, unknown bits add an unknown-valued term).
Tnum tnum_mul(Tnum a, Tnum b) {
  Tnum acc_v = Tnum::constant(a.value * b.value);
  Tnum acc_m = Tnum::constant(0);
  while (a.value != 0 || a.mask != 0) {
    if ((a.value & 1) != 0)
      acc_m = tnum_add(acc_m, Tnum{0, b.mask});
    else if ((a.mask & 1) != 0)
      acc_m = tnum_add(acc_m, Tnum{0, b.value | b.mask});
    a = tnum_rshift(a, 1);
    b = tnum_lshift(b, 1);
  }
  return tnum_add(acc_v, acc_m);
}

Tnum tnum_lshift(Tnum a, unsigned s) { return {a.value << s, a.mask << s}; }
Tnum tnum_rshift(Tnum a, unsigned s) { return {a.value >> s, a.mask >> s}; }

Tnum tnum_arshift(Tnum a, unsigned s, unsigned bitness) {
  if (bitness == 32) {
    const auto v = static_cast<std::uint32_t>(static_cast<std::int32_t>(static_cast<std::uint32_t>(a.value)) >> s);
    const auto m = static_cast<std::uint32_t>(static_cast<std::int32_t>(static_cast<std::uint32_t>(a.mask)) >> s);
    return {v, m};
  }
  return {static_cast<std::uint64_t>(static_cast<std::int64_t>(a.value) >> s),
          static_cast<std::uint64_t>(static_cast<std::int64_t>(a.mask) >> s)};
}

Tnum tnum_intersect(Tnum a, Tnum b) {
  const std::uint64_t v = a.value | b.value;
  const std::uint64_t mu = a.mask & b.mask;
  return {v & ~mu, mu};
}

Tnum tnum_union(Tnum a, Tnum b) {
  const std::uint64_t mu = a.mask | b.mask | (a.value ^ b.value);
  return {a.value & ~mu, mu};
}

Tnum tnum_cast(Tnum a, unsigned size) {
  if (size >= 8) return a;
  const std::uint64_t m = (1ULL << (size * 8)) - 1;
  return {a.value & m, a.mask & m};
}

Tnum tnum_subreg(Tnum a) { return tnum_cast(a, 4); }
Tnum tnum_clear_subreg(Tnum a) { return tnum_lshift(tnum_rshift(a, 32), 32); }
Tnum tnum_with_subreg(Tnum reg, Tnum subreg) { return tnum_or(tnum_clear_subreg(reg), tnum_subreg(subreg)); }
Tnum tnum_const_subreg(Tnum a, std::uint32_t v) { return tnum_with_subreg(a, Tnum::constant(v)); }

}  // namespace userbpf::verifier
