// JIT ALU idioms (src/jit/idioms.cpp: Options::divmod_fusion, rotates)
// against the interpreter, with the idioms on and off, BMI2 on and off, and
// in the counted / checked / blinded variants: fixed cases at edge values
// (0, 1, -1, INT_MIN, divisors 0 and -1, rotate counts 1 / 31 / 32 / 63),
// the cases where an idiom must not fire (an operand written in between, a
// different divisor, temporaries read afterwards, counts that do not add up
// to the width), each checked in the listing; and random programs dense in
// both idioms.
#include <gtest/gtest.h>

#include <random>
#include <regex>

#include "jit_test_util.hpp"

namespace userbpf::jit::test {
namespace {

struct Variant {
  const char* name;
  bool idioms;
  bool bmi2;
  bool checked;
  bool count;
  bool blinding;
};
constexpr Variant kVariants[] = {
    {"on", true, true, false, false, false},        {"off", false, true, false, false, false},
    {"on-no-bmi2", true, false, false, false, false}, {"on-checked", true, true, true, false, false},
    {"on-counted", true, true, false, true, false}, {"on-blinded", true, true, false, false, true},
};

Options options(const Variant& v) {
  Options o;
  o.divmod_fusion = v.idioms;
  o.rotates = v.idioms;
  o.bmi2 = v.bmi2;
  o.checked = v.checked;
  o.count_insns = v.count;
  o.blinding = v.blinding;
  return o;
}

abi::RunResult run_interp(const std::vector<Insn>& insns, const std::vector<u64>& args) {
  auto p = interp::Program::create(insns, {});
  if (!p) {
    ADD_FAILURE() << "interp: " << p.error().to_string();
    return {};
  }
  abi::Env env;
  return p->run(env, args);
}

// Every variant against the interpreter for every argument set.
void check_all(const std::vector<Insn>& insns, const std::vector<std::vector<u64>>& arg_sets) {
  for (const Variant& v : kVariants) {
    const Program jp = compile(insns, options(v));
    for (const auto& args : arg_sets) {
      const abi::RunResult ref = run_interp(insns, args);
      abi::Env env;
      env.options.checked = v.checked;
      const abi::RunResult got = jp.run(env, args);
      EXPECT_TRUE(same(got, ref)) << v.name << " args " << args[0] << ", " << (args.size() > 1 ? args[1] : 0)
                                  << ": jit " << describe(got) << "\ninterp: " << describe(ref);
    }
  }
}

// The body of a listing (without the out-of-line thunks and stubs).
std::string body(const std::vector<Insn>& insns, const Options& o = {}) {
  const std::string full = compile(insns, o).disassemble();
  return full.substr(0, full.find("; out-of-line"));
}
std::size_t count(const std::string& text, const std::string& re) {
  const std::regex r(re);
  return static_cast<std::size_t>(std::distance(std::sregex_iterator(text.begin(), text.end(), r), std::sregex_iterator()));
}
std::size_t divisions(const std::string& listing) { return count(listing, R"(\bi?div\b)"); }

const std::vector<u64> kEdge = {0,
                                1,
                                2,
                                7,
                                ~u64{0},
                                ~u64{0} - 6,  // -7
                                u64{1} << 63,  // INT64_MIN
                                0x80000000u,   // INT32_MIN in the low half
                                0xffffffffu,   // -1 in the low half
                                0x123456789abcdefull,
                                0xfedcba9876543210ull};

std::vector<std::vector<u64>> pairs() {
  std::vector<std::vector<u64>> out;
  for (u64 a : kEdge)
    for (u64 b : kEdge) out.push_back({a, b});
  return out;
}

// r0 = f(quotient, remainder) so that both results reach r0.
void mix(Prog& p, std::uint8_t q, std::uint8_t r) {
  p(Op::MovReg, 0, q)(Op::MulImm, 0, 0, 0, 0x3779b97)(Op::XorReg, 0, r);
}

struct DivOps {
  Op div, mod;
};
constexpr DivOps kRegOps[] = {{Op::DivReg, Op::ModReg}, {Op::SDivReg, Op::SModReg}, {Op::Div32Reg, Op::Mod32Reg},
                              {Op::SDiv32Reg, Op::SMod32Reg}};
constexpr DivOps kImmOps[] = {{Op::DivImm, Op::ModImm}, {Op::SDivImm, Op::SModImm}, {Op::Div32Imm, Op::Mod32Imm},
                              {Op::SDiv32Imm, Op::SMod32Imm}};

TEST(JitIdioms, DivThenModOfTheSameOperandsIsOneDivision) {
  for (const DivOps& ops : kRegOps) {
    for (bool mod_first : {false, true}) {
      SCOPED_TRACE(std::string(isa::info(ops.div).mnemonic) + (mod_first ? " mod first" : " div first"));
      // r3 = r1; r3 /= r2; r0 += 1 (unrelated); r4 = r1; r4 %= r2
      Prog p;
      p(Op::MovReg, 3, 1)(mod_first ? ops.mod : ops.div, 3, 2)(Op::AddImm, 0, 0, 0, 1);
      p(Op::MovReg, 4, 1)(mod_first ? ops.div : ops.mod, 4, 2);
      mix(p, 3, 4);
      p.exit();
      EXPECT_EQ(divisions(body(p.v)), 1u) << body(p.v);
      EXPECT_EQ(divisions(body(p.v, options(kVariants[1]))), 2u);
      check_all(p.v, pairs());
    }
  }
}

TEST(JitIdioms, DividendAndDivisorInRaxAndRdx) {
  // clang's register choice of the bench: r0 / r2 (div's own rax / rdx).
  for (const DivOps& ops : kRegOps) {
    Prog p;
    p(Op::MovReg, 0, 1)(Op::MovReg, 3, 1)(ops.div, 0, 2)(Op::MovReg, 5, 3)(ops.mod, 5, 2);
    p(Op::MulImm, 0, 0, 0, 1000003)(Op::XorReg, 0, 5).exit();
    EXPECT_EQ(divisions(body(p.v)), 1u) << body(p.v);
    check_all(p.v, pairs());
    Prog q;  // the divisor in r0
    q(Op::MovReg, 0, 2)(Op::MovReg, 3, 1)(ops.div, 3, 0)(Op::MovReg, 2, 1)(ops.mod, 2, 0);
    mix(q, 3, 2);
    q.exit();
    EXPECT_EQ(divisions(body(q.v)), 1u) << body(q.v);
    check_all(q.v, pairs());
  }
}

TEST(JitIdioms, ImmediateDivisors) {
  for (const DivOps& ops : kImmOps) {
    for (s32 k : {1, 3, 10, -3, 0x7fffffff, -0x7fffffff - 1, 0, -1}) {
      SCOPED_TRACE(std::string(isa::info(ops.div).mnemonic) + " " + std::to_string(k));
      Prog p;
      p(Op::MovReg, 3, 1)(ops.div, 3, 0, 0, k)(Op::MovReg, 4, 1)(ops.mod, 4, 0, 0, k);
      mix(p, 3, 4);
      p.exit();
      const bool special = k == 0 || (k == -1 && (ops.div == Op::SDivImm || ops.div == Op::SDiv32Imm));
      if (!special) {
        EXPECT_EQ(divisions(body(p.v)), 1u) << body(p.v);
      }
      std::vector<std::vector<u64>> args;
      for (u64 a : kEdge) args.push_back({a});
      check_all(p.v, args);
    }
  }
}

TEST(JitIdioms, ClangRemainderFromTheQuotient) {
  // clang -O2: q = a / b; rem = a - q * b (muldiv.bpf.c), 64- and 32-bit.
  for (const DivOps& ops : kRegOps) {
    const bool is64 = isa::is_64(ops.div);
    SCOPED_TRACE(isa::info(ops.div).mnemonic);
    const Op mov = is64 ? Op::MovReg : Op::Mov32Reg, mul = is64 ? Op::MulReg : Op::Mul32Reg,
             sub = is64 ? Op::SubReg : Op::Sub32Reg;
    Prog p;
    p(Op::MovReg, 0, 1)(ops.div, 0, 2)(mov, 9, 0)(mul, 9, 2)(mov, 4, 1)(sub, 4, 9);
    p(Op::MulImm, 0, 0, 0, 1000003)(Op::XorReg, 0, 4).exit();
    const std::string l = body(p.v);
    EXPECT_EQ(divisions(l), 1u) << l;
    EXPECT_EQ(count(l, R"(\bimul\b)"), 1u) << "q * b is dead code\n" << l;
    check_all(p.v, pairs());
    // The product read afterwards: kept, still exact.
    Prog q = p;
    q.v.pop_back();
    q(Op::AddReg, 0, 9).exit();
    EXPECT_EQ(divisions(body(q.v)), 1u);
    check_all(q.v, pairs());
    // 32-bit order of clang: the divisor overwritten after the product.
    Prog r;
    r(Op::MovReg, 5, 1)(Op::MovReg, 7, 2)(mov, 4, 5)(ops.div, 4, 7)(mov, 8, 4)(mul, 8, 7)(mul, 7, 5)(mov, 9, 5);
    r(sub, 9, 8)(Op::AddReg, 9, 4)(Op::MovReg, 0, 9)(Op::AddReg, 0, 7).exit();
    EXPECT_EQ(divisions(body(r.v)), 1u) << body(r.v);
    check_all(r.v, pairs());
  }
}

TEST(JitIdioms, KeepSlotWhenNoRegisterIsFree) {
  // Every register r1-r9 is read after the modulo, r6 (the modulo's) also
  // before it: the quotient's partner waits in the State slot.
  Prog p;
  for (std::uint8_t r = 3; r <= 9; ++r) p(Op::MovImm, r, 0, 0, r * 11);
  p(Op::MovReg, 0, 1)(Op::DivReg, 0, 2)(Op::AddReg, 0, 6)(Op::MovReg, 6, 1)(Op::ModReg, 6, 2);
  for (std::uint8_t r = 1; r <= 9; ++r) p(Op::MulImm, 0, 0, 0, 31)(Op::AddReg, 0, r);
  p.exit();
  const std::string l = body(p.v);
  EXPECT_EQ(divisions(l), 1u) << l;
  EXPECT_NE(l.find("[r12+"), std::string::npos) << "keep slot\n" << l;
  check_all(p.v, pairs());
}

TEST(JitIdioms, DivisionsThatMustNotFuse) {
  // the dividend written in between
  Prog a;
  a(Op::MovReg, 3, 1)(Op::DivReg, 3, 2)(Op::AddImm, 1, 0, 0, 1)(Op::MovReg, 4, 1)(Op::ModReg, 4, 2);
  mix(a, 3, 4);
  a.exit();
  // the divisor written in between
  Prog b;
  b(Op::MovReg, 3, 1)(Op::DivReg, 3, 2)(Op::XorImm, 2, 0, 0, 5)(Op::MovReg, 4, 1)(Op::ModReg, 4, 2);
  mix(b, 3, 4);
  b.exit();
  // signed vs unsigned, 32 vs 64 bits
  Prog c;
  c(Op::MovReg, 3, 1)(Op::DivReg, 3, 2)(Op::MovReg, 4, 1)(Op::SModReg, 4, 2)(Op::MovReg, 5, 1)(Op::Mod32Reg, 5, 2);
  mix(c, 3, 4);
  c(Op::AddReg, 0, 5).exit();
  // a jump target in between
  Prog d;
  d(Op::MovReg, 3, 1)(Op::DivReg, 3, 2)(Op::JeqImm, 1, 0, 0, 0)(Op::MovReg, 4, 1)(Op::ModReg, 4, 2);
  mix(d, 3, 4);
  d.exit();
  for (const Prog* p : {&a, &b, &d}) {
    EXPECT_EQ(divisions(body(p->v)), 2u) << body(p->v);
    check_all(p->v, pairs());
  }
  EXPECT_EQ(divisions(body(c.v)), 3u) << body(c.v);
  check_all(c.v, pairs());
}

// ---------------------------------------------------------------- rotates

std::vector<std::vector<u64>> rotate_args() {
  std::vector<std::vector<u64>> out;
  for (u64 x : kEdge) out.push_back({x, 0x5555});
  out.push_back({0x8000000000000001ull, 1});
  return out;
}

TEST(JitIdioms, SixtyFourBitRotateInPlace) {
  for (s32 k : {1, 5, 31, 32, 33, 63}) {
    SCOPED_TRACE(k);
    // bswap_parse: r7 = r1; r1 <<= k; r7 >>= 64 - k; r1 |= r7
    Prog p;
    p(Op::MovReg, 7, 1)(Op::LshImm, 1, 0, 0, k)(Op::RshImm, 7, 0, 0, 64 - k)(Op::OrReg, 1, 7)(Op::MovReg, 0, 1).exit();
    const std::string l = body(p.v);
    EXPECT_EQ(count(l, R"(\b(rorx|rol)\b)"), 1u) << l;
    EXPECT_EQ(count(l, R"(\b(shl|shr)\b)"), 0u) << l;
    const Variant& nobmi = kVariants[2];
    EXPECT_EQ(count(body(p.v, options(nobmi)), R"(\brol\b)"), 1u) << body(p.v, options(nobmi));
    check_all(p.v, rotate_args());
  }
}

TEST(JitIdioms, ThirtyTwoBitRotateIntoAnotherRegister) {
  for (s32 k : {1, 4, 16, 31}) {
    for (Op combine : {Op::Or32Reg, Op::OrReg, Op::Add32Reg, Op::XorReg}) {
      SCOPED_TRACE(std::to_string(k) + " " + std::string(isa::info(combine).mnemonic));
      // jhash: w5 = w6; w5 >>= 32 - k; w9 = w6; w9 <<= k; w9 |= w5 (r6 live)
      Prog p;
      p(Op::MovReg, 6, 1)(Op::Mov32Reg, 5, 6)(Op::Rsh32Imm, 5, 0, 0, 32 - k)(Op::Mov32Reg, 9, 6)(Op::Lsh32Imm, 9, 0, 0, k);
      p(combine, 9, 5)(Op::MovReg, 0, 9)(Op::MulImm, 0, 0, 0, 3)(Op::AddReg, 0, 6).exit();
      const std::string l = body(p.v);
      EXPECT_EQ(count(l, R"(\b(rorx|rol)\b)"), 1u) << l;
      EXPECT_EQ(count(l, R"(\b(shl|shr)\b)"), 0u) << l;
      check_all(p.v, rotate_args());
    }
  }
}

TEST(JitIdioms, RotateWithATemporaryReadAfterwards) {
  // r7 (x >> 59) is read after the or: its shift stays; the result is exact.
  Prog p;
  p(Op::MovReg, 7, 1)(Op::LshImm, 1, 0, 0, 5)(Op::RshImm, 7, 0, 0, 59)(Op::OrReg, 1, 7);
  p(Op::MovReg, 0, 1)(Op::MulImm, 0, 0, 0, 7)(Op::AddReg, 0, 7).exit();
  const std::string l = body(p.v);
  EXPECT_EQ(count(l, R"(\bshr\b)"), 1u) << l;
  check_all(p.v, rotate_args());
  // both pieces read afterwards: nothing to save, no rotate
  Prog q;
  q(Op::MovReg, 7, 1)(Op::LshImm, 1, 0, 0, 5)(Op::RshImm, 7, 0, 0, 59)(Op::MovReg, 8, 1)(Op::OrReg, 8, 7);
  q(Op::MovReg, 0, 8)(Op::MulImm, 0, 0, 0, 7)(Op::AddReg, 0, 7)(Op::AddReg, 0, 1).exit();
  check_all(q.v, rotate_args());
}

TEST(JitIdioms, ShiftsThatAreNoRotate) {
  const std::vector<std::vector<Insn>> progs = [] {
    std::vector<std::vector<Insn>> v;
    Prog a;  // counts do not add up to 64
    a(Op::MovReg, 7, 1)(Op::LshImm, 1, 0, 0, 5)(Op::RshImm, 7, 0, 0, 58)(Op::OrReg, 1, 7)(Op::MovReg, 0, 1).exit();
    v.push_back(a.v);
    Prog b;  // 32-bit counts on 64-bit shifts
    b(Op::MovReg, 7, 1)(Op::LshImm, 1, 0, 0, 4)(Op::RshImm, 7, 0, 0, 28)(Op::OrReg, 1, 7)(Op::MovReg, 0, 1).exit();
    v.push_back(b.v);
    Prog c;  // 32-bit pieces or-ed by a 64-bit or, but the left one is a 64-bit shift
    c(Op::Mov32Reg, 7, 1)(Op::Mov32Reg, 1, 1)(Op::LshImm, 1, 0, 0, 4)(Op::Rsh32Imm, 7, 0, 0, 28)(Op::OrReg, 1, 7);
    c(Op::MovReg, 0, 1).exit();
    v.push_back(c.v);
    Prog d;  // different values
    d(Op::MovReg, 7, 2)(Op::LshImm, 1, 0, 0, 5)(Op::RshImm, 7, 0, 0, 59)(Op::OrReg, 1, 7)(Op::MovReg, 0, 1).exit();
    v.push_back(d.v);
    Prog e;  // x changed between the two shifts' copies
    e(Op::MovReg, 7, 1)(Op::AddImm, 1, 0, 0, 1)(Op::LshImm, 1, 0, 0, 5)(Op::RshImm, 7, 0, 0, 59)(Op::OrReg, 1, 7);
    e(Op::MovReg, 0, 1).exit();
    v.push_back(e.v);
    Prog f;  // shift counts 0 and 64 (masked to 0)
    f(Op::MovReg, 7, 1)(Op::LshImm, 1, 0, 0, 0)(Op::RshImm, 7, 0, 0, 64)(Op::OrReg, 1, 7)(Op::MovReg, 0, 1).exit();
    v.push_back(f.v);
    return v;
  }();
  for (std::size_t i = 0; i < progs.size(); ++i) {
    SCOPED_TRACE(i);
    const std::string l = body(progs[i]);
    EXPECT_EQ(count(l, R"(\b(rorx|rol|ror)\b)"), 0u) << l;
    check_all(progs[i], rotate_args());
  }
}

// ---------------------------------------------------------------- random

class IdiomGen {
 public:
  explicit IdiomGen(u64 seed) : rng_(seed) {}
  std::vector<Insn> program() {
    Prog p;
    for (std::uint8_t r = 0; r <= 9; ++r)
      if (r != 1) p.lddw(r, value());
    const std::size_t steps = 4 + pick(12);
    for (std::size_t s = 0; s < steps; ++s) {
      switch (pick(5)) {
        case 0: case 1: divmod(p); break;
        case 2: case 3: rotate(p); break;
        default:
          p(pick(2) ? Op::AddReg : Op::XorReg, reg(), reg());
          if (pick(4) == 0) p(Op::JeqImm, reg(), 0, 1, 0)(Op::AddImm, reg(), 0, 0, 1);  // a jump target
          break;
      }
    }
    for (std::uint8_t r = 1; r <= 9; ++r) p(Op::MulImm, 0, 0, 0, 0x10001)(Op::XorReg, 0, r);
    p.exit();
    return p.v;
  }

 private:
  std::mt19937_64 rng_;
  unsigned pick(unsigned n) { return static_cast<unsigned>(rng_() % n); }
  std::uint8_t reg() { return static_cast<std::uint8_t>(pick(10)); }
  u64 value() {
    static const u64 kV[] = {0, 1, 7, ~u64{0}, u64{1} << 63, 0x80000000u, 0xffffffffu, 3};
    return pick(3) == 0 ? rng_() : kV[pick(8)];
  }
  void divmod(Prog& p) {
    const bool imm = pick(4) == 0;
    const DivOps ops = (imm ? kImmOps : kRegOps)[pick(4)];
    const std::uint8_t a = reg(), b = reg(), x = reg(), y = reg();
    static const s32 kImm[] = {0, -1, 1, 7, -3, 1 << 20};
    const s32 k = kImm[pick(6)];
    const bool mod_first = pick(2) == 0;
    if (pick(4) == 0) p(Op::MovImm, b, 0, 0, pick(2) ? 0 : -1);
    const auto op = [&](Op o, std::uint8_t dst) {
      if (imm) p(o, dst, 0, 0, k);
      else p(o, dst, b);
    };
    p(Op::MovReg, x, a);
    op(mod_first ? ops.mod : ops.div, x);
    for (unsigned i = pick(3); i > 0; --i) {
      switch (pick(4)) {
        case 0: p(Op::AddReg, reg(), reg()); break;
        case 1: p(Op::MovReg, reg(), reg()); break;
        case 2: p(Op::StxDW, 10, reg(), -8)(Op::LdxDW, reg(), 10, -8); break;  // memory inside the window
        default: {  // address arithmetic a fold would take, next to the idiom
          const std::uint8_t t = reg();
          p(Op::MovReg, t, 10)(Op::AddImm, t, 0, 0, -16)(Op::StxDW, t, reg(), 0)(Op::LdxDW, reg(), 10, -16);
          break;
        }
      }
    }
    if (!mod_first && pick(2) == 0 && !imm) {  // clang's remainder
      const bool is64 = isa::is_64(ops.div);
      p(is64 ? Op::MovReg : Op::Mov32Reg, y, x)(is64 ? Op::MulReg : Op::Mul32Reg, y, b);
      const std::uint8_t r = reg();
      p(is64 ? Op::MovReg : Op::Mov32Reg, r, a)(is64 ? Op::SubReg : Op::Sub32Reg, r, y);
    } else {
      p(Op::MovReg, y, a);
      op(mod_first ? ops.div : ops.mod, y);
    }
  }
  void rotate(Prog& p) {
    const bool is64 = pick(2) == 0;
    const unsigned w = is64 ? 64 : 32;
    const s32 k = static_cast<s32>(pick(4) == 0 ? pick(w + 1) : 1 + pick(w - 1));
    const std::uint8_t x = reg(), t = reg(), d = reg();
    const Op mov = is64 ? Op::MovReg : Op::Mov32Reg, shl = is64 ? Op::LshImm : Op::Lsh32Imm,
             shr = is64 ? Op::RshImm : Op::Rsh32Imm;
    static const Op kCombine[] = {Op::OrReg, Op::Or32Reg, Op::AddReg, Op::XorReg, Op::Xor32Reg};
    const Op comb = kCombine[pick(5)];
    if (pick(2) == 0) {  // in place
      p(mov, t, x)(shl, x, 0, 0, k)(shr, t, 0, 0, static_cast<s32>(w) - k)(comb, x, t);
    } else {
      p(mov, t, x)(shr, t, 0, 0, static_cast<s32>(w) - k)(mov, d, x)(shl, d, 0, 0, k)(comb, d, t);
    }
  }
};

TEST(JitIdioms, RandomProgramsMatchTheInterpreterWithIdiomsOnAndOff) {
  IdiomGen g(0x1d10);
  int failures = 0;
  std::size_t fired = 0;
  for (int i = 0; i < 600 && failures < 5; ++i) {
    const std::vector<Insn> prog = g.program();
    const std::vector<u64> args = {i % 3 == 0 ? 0 : 0x9e3779b97f4a7c15ull * static_cast<u64>(i)};
    const abi::RunResult ref = run_interp(prog, args);
    for (const Variant& v : kVariants) {
      if (i % 4 != 0 && (v.checked || v.count || v.blinding)) continue;
      const Program jp = compile(prog, options(v));
      abi::Env env;
      env.options.checked = v.checked;
      const abi::RunResult got = jp.run(env, args);
      if (!same(got, ref)) {
        ++failures;
        ADD_FAILURE() << "program " << i << " (" << v.name << "): " << describe(got) << "\ninterp: " << describe(ref)
                      << "\n" << jp.disassemble();
      }
    }
    const std::string on = body(prog), off = body(prog, options(kVariants[1]));
    if (divisions(on) < divisions(off) || count(on, R"(\b(rorx|rol)\b)") > 0) ++fired;
  }
  EXPECT_GT(fired, 300u) << "the idioms fire in most programs";
}

}  // namespace
}  // namespace userbpf::jit::test
