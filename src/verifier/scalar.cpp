// The scalar domain: bounds synchronisation, ALU transfer functions and
// branch refinement (see state.hpp for the representation).
//
// Every ALU operation is computed twice with one generic interval routine:
// on the 64-bit bounds (ALU64 only) and on the 32-bit bounds of the low
// half (both widths; the low half of add/sub/mul/and/or/xor/lsh depends only
// on the operands' low halves). Operations the interval domain does not
// model (div, mod, byte swaps, shifts by unknown or out-of-range amounts)
// give an unknown scalar, as in the kernel. sync_bounds then propagates
// between tnum, 64-bit and 32-bit intervals.
#include <algorithm>
#include <limits>
#include <type_traits>

#include "verifier/state.hpp"

namespace userbpf::verifier::detail {

namespace {

constexpr s64 kS64Min = std::numeric_limits<s64>::min();
constexpr s64 kS64Max = std::numeric_limits<s64>::max();
constexpr s32 kS32Min = std::numeric_limits<s32>::min();
constexpr s32 kS32Max = std::numeric_limits<s32>::max();
constexpr u64 kU64Max = std::numeric_limits<u64>::max();
constexpr u32 kU32Max = std::numeric_limits<u32>::max();

template <class U>
struct Iv {
  using S = std::make_signed_t<U>;
  U umin, umax;
  S smin, smax;
  static constexpr Iv full() {
    return {0, std::numeric_limits<U>::max(), std::numeric_limits<S>::min(), std::numeric_limits<S>::max()};
  }
};

Iv<u64> iv64(const Reg& r) { return {r.umin, r.umax, r.smin, r.smax}; }
Iv<u32> iv32(const Reg& r) { return {r.u32min, r.u32max, r.s32min, r.s32max}; }

enum AluCode : unsigned { kAdd = 0, kSub = 1, kMul = 2, kDiv = 3, kOr = 4, kAnd = 5, kLsh = 6, kRsh = 7, kNeg = 8,
                          kMod = 9, kXor = 0xa, kMov = 0xb, kArsh = 0xc, kEnd = 0xd };

// Interval transfer for one width. `t` is the result tnum truncated to the
// width; `k` the shift amount (constant) for shifts.
template <class U>
Iv<U> iv_alu(unsigned op, Iv<U> a, Iv<U> b, Tnum t, unsigned k) {
  using S = typename Iv<U>::S;
  constexpr U kMax = std::numeric_limits<U>::max();
  constexpr S kSMin = std::numeric_limits<S>::min();
  constexpr S kSMax = std::numeric_limits<S>::max();
  Iv<U> r = Iv<U>::full();
  const U tmin = static_cast<U>(t.value), tmax = static_cast<U>(t.value | t.mask);
  switch (op) {
    case kAdd: {
      U lo, hi;
      if (!__builtin_add_overflow(a.umin, b.umin, &lo) && !__builtin_add_overflow(a.umax, b.umax, &hi)) {
        r.umin = lo; r.umax = hi;
      }
      S slo, shi;
      if (!__builtin_add_overflow(a.smin, b.smin, &slo) && !__builtin_add_overflow(a.smax, b.smax, &shi)) {
        r.smin = slo; r.smax = shi;
      }
      break;
    }
    case kSub: {
      if (a.umin >= b.umax) { r.umin = static_cast<U>(a.umin - b.umax); r.umax = static_cast<U>(a.umax - b.umin); }
      S slo, shi;
      if (!__builtin_sub_overflow(a.smin, b.smax, &slo) && !__builtin_sub_overflow(a.smax, b.smin, &shi)) {
        r.smin = slo; r.smax = shi;
      }
      break;
    }
    case kMul: {
      U lo, hi;
      if (!__builtin_mul_overflow(a.umin, b.umin, &lo) && !__builtin_mul_overflow(a.umax, b.umax, &hi)) {
        r.umin = lo; r.umax = hi;
      }
      S p[4];
      if (!__builtin_mul_overflow(a.smin, b.smin, &p[0]) && !__builtin_mul_overflow(a.smin, b.smax, &p[1]) &&
          !__builtin_mul_overflow(a.smax, b.smin, &p[2]) && !__builtin_mul_overflow(a.smax, b.smax, &p[3])) {
        r.smin = *std::min_element(p, p + 4);
        r.smax = *std::max_element(p, p + 4);
      }
      break;
    }
    case kAnd:
      r.umin = tmin;
      r.umax = std::min(a.umax, b.umax);
      if (a.smin >= 0 && b.smin >= 0 && r.umax <= static_cast<U>(kSMax)) {
        r.smin = static_cast<S>(r.umin); r.smax = static_cast<S>(r.umax);
      } else {
        r.smin = kSMin; r.smax = kSMax;
      }
      break;
    case kOr:
      r.umin = std::max(a.umin, b.umin);
      r.umax = tmax;
      if (a.smin >= 0 && b.smin >= 0 && r.umax <= static_cast<U>(kSMax)) {
        r.smin = static_cast<S>(r.umin); r.smax = static_cast<S>(r.umax);
      }
      break;
    case kXor:
      r.umin = tmin;
      r.umax = tmax;
      if (a.smin >= 0 && b.smin >= 0 && r.umax <= static_cast<U>(kSMax)) {
        r.smin = static_cast<S>(r.umin); r.smax = static_cast<S>(r.umax);
      }
      break;
    case kLsh:
      if (k >= sizeof(U) * 8) {  // the low half of a 64-bit shift by >= 32 is zero
        r.umin = r.umax = 0;
        r.smin = r.smax = 0;
        break;
      }
      if (a.umax <= (kMax >> k)) { r.umin = static_cast<U>(a.umin << k); r.umax = static_cast<U>(a.umax << k); }
      if (a.smin >= 0 && a.smax <= (kSMax >> k)) {
        r.smin = static_cast<S>(a.smin << k); r.smax = static_cast<S>(a.smax << k);
      }
      break;
    case kRsh:
      r.umin = static_cast<U>(a.umin >> k);
      r.umax = static_cast<U>(a.umax >> k);
      break;
    case kArsh:
      r.smin = static_cast<S>(a.smin >> k);
      r.smax = static_cast<S>(a.smax >> k);
      break;
    default: break;
  }
  return r;
}

Tnum tnum_op(unsigned op, Tnum a, Tnum b, unsigned k, unsigned bits) {
  switch (op) {
    case kAdd: return tnum_add(a, b);
    case kSub: return tnum_sub(a, b);
    case kMul: return tnum_mul(a, b);
    case kAnd: return tnum_and(a, b);
    case kOr: return tnum_or(a, b);
    case kXor: return tnum_xor(a, b);
    case kLsh: return tnum_lshift(a, k);
    case kRsh: return tnum_rshift(a, k);
    case kArsh: return tnum_arshift(a, k, bits);
    default: return Tnum::unknown();
  }
}

void set_unbounded32(Reg& r) {
  r.s32min = kS32Min; r.s32max = kS32Max; r.u32min = 0; r.u32max = kU32Max;
}
void set_unbounded64(Reg& r) {
  r.smin = kS64Min; r.smax = kS64Max; r.umin = 0; r.umax = kU64Max;
}

void update_bounds(Reg& r) {
  const Tnum t = r.var_off;
  r.smin = std::max(r.smin, static_cast<s64>(t.value | (t.mask & (1ULL << 63))));
  r.smax = std::min(r.smax, static_cast<s64>(t.value | (t.mask & ~(1ULL << 63))));
  r.umin = std::max(r.umin, t.value);
  r.umax = std::min(r.umax, t.value | t.mask);
  const Tnum s = tnum_subreg(t);
  r.s32min = std::max(r.s32min, static_cast<s32>(static_cast<u32>(s.value | (s.mask & 0x80000000ULL))));
  r.s32max = std::min(r.s32max, static_cast<s32>(static_cast<u32>(s.value | (s.mask & 0x7fffffffULL))));
  r.u32min = std::max(r.u32min, static_cast<u32>(s.value));
  r.u32max = std::min(r.u32max, static_cast<u32>(s.value | s.mask));
}

void deduce_bounds(Reg& r) {
  // 64 -> 32 when the upper halves agree
  if ((r.umin >> 32) == (r.umax >> 32)) {
    r.u32min = std::max(r.u32min, static_cast<u32>(r.umin));
    r.u32max = std::min(r.u32max, static_cast<u32>(r.umax));
    if (static_cast<s32>(r.umin) <= static_cast<s32>(r.umax)) {
      r.s32min = std::max(r.s32min, static_cast<s32>(r.umin));
      r.s32max = std::min(r.s32max, static_cast<s32>(r.umax));
    }
  }
  if ((static_cast<u64>(r.smin) >> 32) == (static_cast<u64>(r.smax) >> 32)) {
    if (static_cast<u32>(r.smin) <= static_cast<u32>(r.smax)) {
      r.u32min = std::max(r.u32min, static_cast<u32>(r.smin));
      r.u32max = std::min(r.u32max, static_cast<u32>(r.smax));
    }
    if (static_cast<s32>(r.smin) <= static_cast<s32>(r.smax)) {
      r.s32min = std::max(r.s32min, static_cast<s32>(r.smin));
      r.s32max = std::min(r.s32max, static_cast<s32>(r.smax));
    }
  }
  // 32-bit signed <-> unsigned
  if (static_cast<s32>(r.u32min) <= static_cast<s32>(r.u32max)) {
    r.s32min = std::max(r.s32min, static_cast<s32>(r.u32min));
    r.s32max = std::min(r.s32max, static_cast<s32>(r.u32max));
  }
  if (static_cast<u32>(r.s32min) <= static_cast<u32>(r.s32max)) {
    r.u32min = std::max(r.u32min, static_cast<u32>(r.s32min));
    r.u32max = std::min(r.u32max, static_cast<u32>(r.s32max));
  }
  // 64-bit signed <-> unsigned
  if (static_cast<s64>(r.umin) <= static_cast<s64>(r.umax)) {
    r.smin = std::max(r.smin, static_cast<s64>(r.umin));
    r.smax = std::min(r.smax, static_cast<s64>(r.umax));
  }
  if (static_cast<u64>(r.smin) <= static_cast<u64>(r.smax)) {
    r.umin = std::max(r.umin, static_cast<u64>(r.smin));
    r.umax = std::min(r.umax, static_cast<u64>(r.smax));
  }
  // 32 -> 64: the low half's range tightens the 64-bit endpoints
  const u64 hi_mask = ~0xffffffffULL;
  const u64 nu_min = (r.umin & hi_mask) | r.u32min;
  const u64 nu_max = (r.umax & hi_mask) | r.u32max;
  if (nu_min <= r.umax) r.umin = std::max(r.umin, nu_min);
  if (nu_max >= r.umin) r.umax = std::min(r.umax, nu_max);
  const s64 ns_min = static_cast<s64>((static_cast<u64>(r.smin) & hi_mask) | r.u32min);
  const s64 ns_max = static_cast<s64>((static_cast<u64>(r.smax) & hi_mask) | r.u32max);
  if (ns_min <= r.smax) r.smin = std::max(r.smin, ns_min);
  if (ns_max >= r.smin) r.smax = std::min(r.smax, ns_max);
  // a 32-bit range that does not cross the sign boundary, with s64 in [s32 range]
  if (r.smin >= kS32Min && r.smax <= kS32Max) {
    r.smin = std::max(r.smin, static_cast<s64>(r.s32min));
    r.smax = std::min(r.smax, static_cast<s64>(r.s32max));
  }
}

void bound_offset(Reg& r) {
  const Tnum t64 = tnum_intersect(r.var_off, Tnum::range(r.umin, r.umax));
  const Tnum t32 = tnum_intersect(tnum_subreg(t64), Tnum::range(r.u32min, r.u32max));
  r.var_off = tnum_or(tnum_clear_subreg(t64), t32);
}

}  // namespace

void mark_not_init(Reg& r) { r = Reg{}; }

void mark_unknown(Reg& r) {
  const bool w = r.written;
  r = Reg{};
  r.type = RegType::Scalar;
  r.written = w;
  r.var_off = Tnum::unknown();
  set_unbounded64(r);
  set_unbounded32(r);
}

void mark_known(Reg& r, u64 v) {
  const bool w = r.written;
  r = Reg{};
  r.type = RegType::Scalar;
  r.written = w;
  r.var_off = Tnum::constant(v);
  r.smin = r.smax = static_cast<s64>(v);
  r.umin = r.umax = v;
  r.s32min = r.s32max = static_cast<s32>(static_cast<u32>(v));
  r.u32min = r.u32max = static_cast<u32>(v);
}

void mark_unbounded(Reg& r) {
  r.var_off = Tnum::unknown();
  set_unbounded64(r);
  set_unbounded32(r);
}

void reset_bounds_from_tnum(Reg& r) {
  set_unbounded64(r);
  set_unbounded32(r);
  sync_bounds(r);
}

void sync_bounds(Reg& r) {
  update_bounds(r);
  deduce_bounds(r);
  deduce_bounds(r);
  bound_offset(r);
  update_bounds(r);
}

bool bounds_empty(const Reg& r) {
  if (r.type != RegType::Scalar) return false;
  return r.umin > r.umax || r.smin > r.smax || r.u32min > r.u32max || r.s32min > r.s32max ||
         (r.var_off.value & r.var_off.mask) != 0 || r.var_off.min() > r.umax || r.var_off.max() < r.umin;
}

void assign_32_into_64(Reg& r) {
  r.umin = r.u32min;
  r.umax = r.u32max;
  r.smin = r.u32min;
  r.smax = r.u32max;
}

void zext_32_to_64(Reg& r) {
  r.var_off = tnum_subreg(r.var_off);
  assign_32_into_64(r);
  sync_bounds(r);
}

void coerce_to_size(Reg& r, unsigned size) {
  if (size >= 8) return;
  r.var_off = tnum_cast(r.var_off, size);
  const u64 mask = (1ULL << (size * 8)) - 1;
  if ((r.umin & ~mask) == (r.umax & ~mask)) {
    r.umin &= mask;
    r.umax &= mask;
  } else {
    r.umin = 0;
    r.umax = mask;
  }
  r.smin = static_cast<s64>(r.umin);
  r.smax = static_cast<s64>(r.umax);
  if (size < 4) {
    r.u32min = static_cast<u32>(r.umin);
    r.u32max = static_cast<u32>(r.umax);
  } else {
    set_unbounded32(r);
  }
  r.s32min = kS32Min;
  r.s32max = kS32Max;
  if (size == 4) {
    r.u32min = static_cast<u32>(r.umin);
    r.u32max = static_cast<u32>(r.umax);
  }
  sync_bounds(r);
}

void coerce_to_size_sx(Reg& r, unsigned size) {
  const unsigned bits = size * 8;
  if (r.var_off.is_const()) {
    mark_known(r, isa::sem::sext(r.var_off.value, bits));
    return;
  }
  const s64 lo = -(s64{1} << (bits - 1)), hi = (s64{1} << (bits - 1)) - 1;
  // keep the range when it stays inside the sign-extended domain unchanged
  const u64 m = (bits >= 64) ? ~0ULL : (1ULL << bits) - 1;
  const bool same_upper = ((r.umin & ~m) == (r.umax & ~m));
  s64 nmin = lo, nmax = hi;
  if (same_upper) {
    const s64 a = static_cast<s64>(isa::sem::sext(r.umin, bits));
    const s64 b = static_cast<s64>(isa::sem::sext(r.umax, bits));
    if (a <= b) { nmin = a; nmax = b; }
  }
  r.var_off = Tnum::unknown();
  r.smin = nmin;
  r.smax = nmax;
  r.umin = 0;
  r.umax = kU64Max;
  set_unbounded32(r);
  if (nmin >= 0 || nmax < 0) {
    r.umin = static_cast<u64>(nmin);
    r.umax = static_cast<u64>(nmax);
  }
  r.var_off = Tnum::range(static_cast<u64>(nmin), static_cast<u64>(nmax));
  if (nmin < 0 && nmax >= 0) r.var_off = Tnum::unknown();
  sync_bounds(r);
}

void scalar_alu(Reg& dst, const Reg& src, unsigned op, bool is64) {
  const bool w = dst.written;
  const unsigned bits = is64 ? 64 : 32;
  const bool shift = op == kLsh || op == kRsh || op == kArsh;
  bool modelled = op == kAdd || op == kSub || op == kMul || op == kAnd || op == kOr || op == kXor || op == kNeg ||
                  shift;
  unsigned k = 0;
  if (shift) {
    if (!src.var_off.is_const() || src.var_off.value >= bits) modelled = false;
    else k = static_cast<unsigned>(src.var_off.value);
  }
  if (!modelled) {
    // The kernel leaves all 64 bits unknown here, 32-bit operations too
    // (no zero extension): being more precise would prove branches dead that
    // the kernel explores.
    mark_unknown(dst);
    dst.written = w;
    return;
  }
  Reg a = dst, b = src;
  if (op == kNeg) {
    b = dst;
    mark_known(a, 0);
    op = kSub;
  }
  if (is64) {
    const Tnum t = tnum_op(op, a.var_off, b.var_off, k, 64);
    const Iv<u64> r64 = iv_alu<u64>(op, iv64(a), iv64(b), t, k);
    Iv<u32> r32 = Iv<u32>::full();
    if (op != kRsh && op != kArsh) r32 = iv_alu<u32>(op, iv32(a), iv32(b), tnum_subreg(t), k);
    dst.var_off = t;
    dst.umin = r64.umin; dst.umax = r64.umax; dst.smin = r64.smin; dst.smax = r64.smax;
    dst.u32min = r32.umin; dst.u32max = r32.umax; dst.s32min = r32.smin; dst.s32max = r32.smax;
    sync_bounds(dst);
  } else {
    const Tnum t = tnum_subreg(tnum_op(op, tnum_subreg(a.var_off), tnum_subreg(b.var_off), k, 32));
    Tnum ta = tnum_subreg(a.var_off);
    if (op == kArsh) {
      // arithmetic shift of the 32-bit value: sign-extend the tnum's bit 31 first
      const Tnum sx{isa::sem::sext(ta.value, 32), isa::sem::sext(ta.mask, 32)};
      ta = tnum_subreg(tnum_arshift(sx, k, 64));
    }
    const Iv<u32> r32 = iv_alu<u32>(op, iv32(a), iv32(b), op == kArsh ? ta : t, k);
    dst.var_off = op == kArsh ? ta : t;
    dst.u32min = r32.umin; dst.u32max = r32.umax; dst.s32min = r32.smin; dst.s32max = r32.smax;
    set_unbounded64(dst);
    update_bounds(dst);
    deduce_bounds(dst);
    zext_32_to_64(dst);
  }
  dst.written = w;
}

// ---------------------------------------------------------------- branches
namespace {

using isa::sem::Cond;

struct View {  // one width of a scalar register
  u64 umin, umax;
  s64 smin, smax;
  Tnum t;
};
View view(const Reg& r, bool is32) {
  if (is32) return {r.u32min, r.u32max, r.s32min, r.s32max, tnum_subreg(r.var_off)};
  return {r.umin, r.umax, r.smin, r.smax, r.var_off};
}

int taken_view(const View& a, const View& b, Cond c) {
  switch (c) {
    case Cond::Eq:
      if (a.t.is_const() && b.t.is_const()) return a.t.value == b.t.value ? 1 : 0;
      if (a.umin > b.umax || a.umax < b.umin || a.smin > b.smax || a.smax < b.smin) return 0;
      if (((a.t.value ^ b.t.value) & ~(a.t.mask | b.t.mask)) != 0) return 0;
      return -1;
    case Cond::Ne: {
      const int e = taken_view(a, b, Cond::Eq);
      return e < 0 ? -1 : 1 - e;
    }
    case Cond::Set:
      if (!b.t.is_const()) return -1;
      if ((a.t.value & b.t.value) != 0) return 1;
      if (((a.t.value | a.t.mask) & b.t.value) == 0) return 0;
      return -1;
    case Cond::Gt:
      if (a.umin > b.umax) return 1;
      if (a.umax <= b.umin) return 0;
      return -1;
    case Cond::Ge:
      if (a.umin >= b.umax) return 1;
      if (a.umax < b.umin) return 0;
      return -1;
    case Cond::Lt:
      if (a.umax < b.umin) return 1;
      if (a.umin >= b.umax) return 0;
      return -1;
    case Cond::Le:
      if (a.umax <= b.umin) return 1;
      if (a.umin > b.umax) return 0;
      return -1;
    case Cond::Sgt:
      if (a.smin > b.smax) return 1;
      if (a.smax <= b.smin) return 0;
      return -1;
    case Cond::Sge:
      if (a.smin >= b.smax) return 1;
      if (a.smax < b.smin) return 0;
      return -1;
    case Cond::Slt:
      if (a.smax < b.smin) return 1;
      if (a.smin >= b.smax) return 0;
      return -1;
    case Cond::Sle:
      if (a.smax <= b.smin) return 1;
      if (a.smin > b.smax) return 0;
      return -1;
  }
  return -1;
}

Cond negate(Cond c) {
  switch (c) {
    case Cond::Eq: return Cond::Ne;
    case Cond::Ne: return Cond::Eq;
    case Cond::Gt: return Cond::Le;
    case Cond::Le: return Cond::Gt;
    case Cond::Ge: return Cond::Lt;
    case Cond::Lt: return Cond::Ge;
    case Cond::Sgt: return Cond::Sle;
    case Cond::Sle: return Cond::Sgt;
    case Cond::Sge: return Cond::Slt;
    case Cond::Slt: return Cond::Sge;
    case Cond::Set: return Cond::Set;  // handled by the caller
  }
  return c;
}

// Applies "a c b" (true) to the 32-bit or 64-bit bounds of a and b.
template <class U>
void apply(U& aumin, U& aumax, std::make_signed_t<U>& asmin, std::make_signed_t<U>& asmax, U& bumin, U& bumax,
           std::make_signed_t<U>& bsmin, std::make_signed_t<U>& bsmax, Cond c) {
  switch (c) {
    case Cond::Eq:
      aumin = bumin = std::max(aumin, bumin);
      aumax = bumax = std::min(aumax, bumax);
      asmin = bsmin = std::max(asmin, bsmin);
      asmax = bsmax = std::min(asmax, bsmax);
      break;
    case Cond::Ne:
      if (bumin == bumax) {  // b constant: shave a's endpoints
        if (aumin == bumin) ++aumin;
        else if (aumax == bumin) --aumax;
        if (asmin == static_cast<std::make_signed_t<U>>(bumin)) ++asmin;
        else if (asmax == static_cast<std::make_signed_t<U>>(bumin)) --asmax;
      } else if (aumin == aumax) {
        if (bumin == aumin) ++bumin;
        else if (bumax == aumin) --bumax;
        if (bsmin == static_cast<std::make_signed_t<U>>(aumin)) ++bsmin;
        else if (bsmax == static_cast<std::make_signed_t<U>>(aumin)) --bsmax;
      }
      break;
    case Cond::Le:
      aumax = std::min(aumax, bumax);
      bumin = std::max(bumin, aumin);
      break;
    case Cond::Lt:
      if (bumax == 0) { aumin = 1; aumax = 0; break; }
      aumax = std::min(aumax, static_cast<U>(bumax - 1));
      if (aumin == std::numeric_limits<U>::max()) { bumin = 1; bumax = 0; break; }
      bumin = std::max(bumin, static_cast<U>(aumin + 1));
      break;
    case Cond::Ge:
      apply<U>(bumin, bumax, bsmin, bsmax, aumin, aumax, asmin, asmax, Cond::Le);
      break;
    case Cond::Gt:
      apply<U>(bumin, bumax, bsmin, bsmax, aumin, aumax, asmin, asmax, Cond::Lt);
      break;
    case Cond::Sle:
      asmax = std::min(asmax, bsmax);
      bsmin = std::max(bsmin, asmin);
      break;
    case Cond::Slt:
      if (bsmax == std::numeric_limits<std::make_signed_t<U>>::min()) { asmin = 1; asmax = 0; break; }
      asmax = std::min(asmax, static_cast<std::make_signed_t<U>>(bsmax - 1));
      if (asmin == std::numeric_limits<std::make_signed_t<U>>::max()) { bsmin = 1; bsmax = 0; break; }
      bsmin = std::max(bsmin, static_cast<std::make_signed_t<U>>(asmin + 1));
      break;
    case Cond::Sge:
      apply<U>(bumin, bumax, bsmin, bsmax, aumin, aumax, asmin, asmax, Cond::Sle);
      break;
    case Cond::Sgt:
      apply<U>(bumin, bumax, bsmin, bsmax, aumin, aumax, asmin, asmax, Cond::Slt);
      break;
    case Cond::Set: break;
  }
}

}  // namespace

int branch_taken(const Reg& a, const Reg& b, Cond c, bool is32) {
  if (a.type != RegType::Scalar || b.type != RegType::Scalar) {
    // a non-null pointer compared with 0
    const Reg& p = a.type == RegType::Scalar ? b : a;
    const Reg& s = a.type == RegType::Scalar ? a : b;
    // (the kernel's reg_not_null: map values and keys, memory and map
    // pointers; stack, context and packet pointers are not known non-null)
    const bool not_null = !p.maybe_null && (p.type == RegType::MapValue || p.type == RegType::MapKey ||
                                            p.type == RegType::Mem || p.type == RegType::ConstMapPtr);
    if (not_null && s.type == RegType::Scalar && s.var_off.equals_const(0) && !is32) {
      if (c == Cond::Eq) return 0;
      if (c == Cond::Ne) return 1;
    }
    return -1;
  }
  return taken_view(view(a, is32), view(b, is32), c);
}

void refine(Reg& a, Reg& b, Cond c, bool is32, bool taken) {
  if (a.type != RegType::Scalar || b.type != RegType::Scalar) return;
  if (c == Cond::Set) {
    // The constant side (in the jump's width) masks the other one, whichever
    // operand it is (the kernel swaps the registers).
    auto is_const = [is32](const Reg& r) { return is32 ? tnum_subreg(r.var_off).is_const() : r.var_off.is_const(); };
    const bool swapped = !is_const(b);
    Reg& x = swapped ? b : a;
    const Reg& k = swapped ? a : b;
    if (!is_const(k)) return;
    const u64 m = is32 ? static_cast<u32>(k.var_off.value) : k.var_off.value;
    if (taken) {
      if (m != 0 && (m & (m - 1)) == 0) x.var_off = tnum_or(x.var_off, Tnum::constant(m));
    } else {
      x.var_off = tnum_and(x.var_off, Tnum::constant(~m));
    }
    sync_bounds(x);
    return;
  }
  if (!taken) c = negate(c);
  if (is32) {
    apply<u32>(a.u32min, a.u32max, a.s32min, a.s32max, b.u32min, b.u32max, b.s32min, b.s32max, c);
    if (c == Cond::Eq) {
      const Tnum t = tnum_intersect(tnum_subreg(a.var_off), tnum_subreg(b.var_off));
      a.var_off = tnum_with_subreg(a.var_off, t);
      b.var_off = tnum_with_subreg(b.var_off, t);
    }
  } else {
    apply<u64>(a.umin, a.umax, a.smin, a.smax, b.umin, b.umax, b.smin, b.smax, c);
    if (c == Cond::Eq) {
      const Tnum t = tnum_intersect(a.var_off, b.var_off);
      a.var_off = b.var_off = t;
    }
  }
  if (!bounds_empty(a)) sync_bounds(a);
  if (!bounds_empty(b)) sync_bounds(b);
}

}  // namespace userbpf::verifier::detail
