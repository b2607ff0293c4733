// ALU idioms of the x86-64 JIT: instruction selection over a short
// straight-line window that a one-pass JIT (the kernel's) does not do.
//
// * Division fusion (Options::divmod_fusion). x86 `div` / `idiv` computes
//   the quotient and the remainder at once. When a basic block computes
//   `a / b` and later `a % b` (same width, same signedness, the same operand
//   values: value numbering over the window, so `rX = a; rX /= b; ...;
//   rY = a; rY %= b` matches, with no write of a or b in between) or clang's
//   remainder `a - (a / b) * b` (`rT = q; rT *= b; rR = a; rR -= rT`), the
//   first division also stores its other result in a keep location and the
//   later instruction becomes one `mov`. The keep location is a BPF register
//   that is dead after the division and not written before the later
//   instruction (so no one can observe it), else the State slot
//   `alu_keep`. The out-of-line special cases (divisor 0, signed -1) set the
//   keep location too, from sem:: rules: x / 0 = 0 and x % 0 = x, x s/ -1 =
//   -x and x s% -1 = 0 (32-bit forms zero-extended). `a - (a / b) * b` is the
//   remainder in every case, also b = 0 (a - 0) and INT_MIN / -1
//   (INT_MIN - INT_MIN * -1 = 0), in the operation's width.
// * Rotates (Options::rotates). `(x << k) | (x >> (w - k))` (also `+` or
//   `^`: the bits are disjoint), 64-bit, or alu32 with w = 32 (zero-extended
//   like rol r32), found by tracking each register's value as x, lo32(x),
//   x << k or x >> k of a value at the window's start: the `or` becomes
//   `rorx` (BMI2) or `mov; rol`.
//
// Dead code in the window: once the site is replaced, the instructions that
// only fed it (the shifts and moves of a rotate, `rT = q; rT *= b` of a
// remainder) are not emitted when their result is dead: a backward liveness
// pass from detail::live_out at the site (dead_in_window), over pure ALU
// instructions only (no memory, no calls: nothing observable). The rotate's
// operand is then taken from a register that holds x in the code actually
// emitted (a forward pass over the instructions that remain).
//
// Invariants: a plan covers one window [from, site] with no jump target in
// (from, site] and only ALU instructions (division windows also loads and
// stores, which are never skipped), inside emit_body's current range, so
// every instruction of it is emitted in order by emit_body; no fold of
// emitter.cpp / fold.cpp / memops.cpp starts near a planned instruction
// (idiom_blocks_fold), so nothing else emits the site. Registers whose
// writes are skipped are dead: their stale values are never read. Not in
// counting variants (each instruction is counted) nor with blinding (the
// rotate count would be a plain immediate).
#include <algorithm>
#include <bit>

#include "jit/emitter.hpp"

namespace userbpf::jit::detail {

namespace {

using u16 = std::uint16_t;

constexpr std::uint16_t bit(int r) { return static_cast<std::uint16_t>(1u << static_cast<unsigned>(r)); }

// A symbolic value of a BPF register inside a window.
struct Term {
  enum Kind : u8 { Val, Lo32, Shl, Shr, Quot, Prod } kind = Val;
  u8 w = 64;   // Shl/Shr: the operation's width (32: on lo32 of the value); Quot/Prod: the division's
  u8 n = 0;    // Shl/Shr: count (1..w-1)
  u16 id = 0;  // Val/Lo32/Shl/Shr: value number
};

bool same64(const Term& a, const Term& b) { return a.kind == b.kind && a.w == b.w && a.n == b.n && a.id == b.id; }
// Equal in the low 32 bits.
bool same32(const Term& a, const Term& b) {
  const bool plain_a = a.kind == Term::Val || a.kind == Term::Lo32;
  const bool plain_b = b.kind == Term::Val || b.kind == Term::Lo32;
  return (plain_a && plain_b && a.id == b.id) || same64(a, b);
}
bool same(const Term& a, const Term& b, bool is64) { return is64 ? same64(a, b) : same32(a, b); }

bool pure(const Insn& in) {
  const Form f = in.info().form;
  return (f == Form::AluK || f == Form::AluX || f == Form::Neg || f == Form::End || f == Form::MovSx) &&
         in.dst != isa::kFrameReg;
}

// A division at the window's heart (plan_divmod).
struct DivFacts {
  bool is64 = false, is_signed = false, is_mod = false, imm = false;
  s32 immv = 0;
  Term a, b;  // dividend, divisor (reg form)
};

// The registers' values along a window, from the values at its start.
struct Values {
  std::array<Term, isa::kNumRegs> t{};
  u16 next = isa::kNumRegs;
  const DivFacts* div = nullptr;  // the quotient's facts (Prod)

  Values() {
    for (std::size_t r = 0; r < t.size(); ++r) t[r].id = static_cast<u16>(r);
  }
  Term fresh() {
    Term v;
    v.id = next++;
    return v;
  }
  Term lo32(const Term& v) {
    switch (v.kind) {
      case Term::Val: { Term l = v; l.kind = Term::Lo32; return l; }
      case Term::Lo32: return v;
      case Term::Shl: case Term::Shr: case Term::Quot: case Term::Prod:
        return v.w == 32 ? v : fresh();
    }
    return fresh();
  }
  Term shift(const Term& v, bool is64, bool left, u32 count) {
    const unsigned w = is64 ? 64 : 32;
    const u32 k = count & (w - 1);
    if (k == 0) return is64 ? v : lo32(v);
    Term s;
    s.kind = left ? Term::Shl : Term::Shr;
    s.n = static_cast<u8>(k);
    s.id = v.id;
    if (v.kind == Term::Val) {
      s.w = static_cast<u8>(w);
      return s;
    }
    if (v.kind == Term::Lo32 && (!is64 || (!left && k < 32))) {  // a zero-extended value: >> is the 32-bit one
      s.w = 32;
      return s;
    }
    return fresh();
  }
  void step(const Insn& in) {
    const int x = written_reg(in);
    if (x < 0) return;
    const auto X = static_cast<std::size_t>(x);
    const Form f = in.info().form;
    if (f != Form::AluK && f != Form::AluX) {
      t[X] = fresh();
      return;
    }
    const bool is64 = isa::is_64(in.op);
    const unsigned code = isa::op_code(in.op);
    const Term& y = t[in.src];
    if (code == 0xb && f == Form::AluX) {
      t[X] = is64 ? y : lo32(y);
    } else if ((code == 0x6 || code == 0x7) && f == Form::AluK) {
      t[X] = shift(t[X], is64, code == 0x6, static_cast<u32>(in.imm));
    } else if (code == 0x2 && div != nullptr && !div->is_mod && is64 == div->is64) {
      const bool q_x = t[X].kind == Term::Quot;
      bool prod = false;
      if (f == Form::AluK) prod = div->imm && q_x && in.imm == div->immv;
      else prod = !div->imm && ((q_x && same(y, div->b, is64)) || (y.kind == Term::Quot && same(t[X], div->b, is64)));
      if (prod) {
        t[X].kind = Term::Prod;
        t[X].w = is64 ? 64 : 32;
      } else {
        t[X] = fresh();
      }
    } else {
      t[X] = fresh();
    }
  }
};

bool is_div_or_mod(const Insn& in) {
  const Form f = in.info().form;
  const unsigned code = isa::op_code(in.op);
  return (f == Form::AluK || f == Form::AluX) && (code == 0x3 || code == 0x9);
}

}  // namespace

// Instructions in [from, site) whose results nobody reads once the site
// writes site_def (reading nothing else): bit k = from + k.
u32 Emitter::dead_in_window(std::size_t from, std::size_t site, int site_def) const {
  auto live = static_cast<std::uint16_t>(live_[site] & ~bit(site_def));
  u32 skip = 0;
  for (std::size_t pc = site; pc-- > from;) {
    const Insn& in = insns_[pc];
    std::uint16_t use = 0, def = 0;
    use_def(in, true, use, def);
    if (pure(in) && def != 0 && (live & def) == 0) {
      skip |= 1u << (pc - from);
      continue;
    }
    live = static_cast<std::uint16_t>((live & ~def) | use);
  }
  return skip;
}

// At a division or modulo: look back for its operands' values (a few
// instructions of its block), then forward for the matching instruction.
void Emitter::plan_divmod(std::size_t pc) {
  const Insn& in = insns_[pc];
  const Form f = in.info().form;
  DivFacts d;
  d.is64 = isa::is_64(in.op);
  d.is_mod = isa::op_code(in.op) == 0x9;
  d.is_signed = in.info().sel == isa::Sel::Off && in.info().sel_value == 1;
  d.imm = f == Form::AluK;
  d.immv = in.imm;
  if (d.imm) {  // constant 0 and -1 divisors have no division (emit_divmod)
    const u64 v = d.is64 ? isa::sem::imm64(in.imm) : static_cast<u32>(in.imm);
    if (v == 0 || (d.is_signed && (d.is64 ? v == ~u64{0} : v == 0xffffffffu))) return;
  } else if (in.src == in.dst) {
    return;
  }
  if (in.dst == isa::kFrameReg) return;
  constexpr std::size_t kLookBack = 8, kWindow = 24;
  std::size_t b = pc;
  while (b > body_begin_ && !is_target_[b] && pc - b < kLookBack && pure(insns_[b - 1])) --b;
  Values v;
  for (std::size_t k = b; k < pc; ++k) v.step(insns_[k]);
  d.a = v.t[in.dst];
  if (!d.imm) d.b = v.t[in.src];
  v.div = &d;
  if (d.is_mod) {
    v.t[in.dst] = v.fresh();  // (a remainder matches no later pattern)
  } else {
    Term q;
    q.kind = Term::Quot;
    q.w = d.is64 ? 64 : 32;
    v.t[in.dst] = q;
  }
  for (std::size_t s = pc + 1; s < body_end_ && s - pc <= kWindow && !is_target_[s]; ++s) {
    const Insn& m = insns_[s];
    const Form mf = m.info().form;
    if (!pure(m) && mf != Form::Ldx && mf != Form::St && mf != Form::Stx) return;
    if (written_reg(m) == isa::kFrameReg) return;
    const bool m64 = isa::is_64(m.op);
    bool site = false;
    if (is_div_or_mod(m) && m64 == d.is64 && (isa::op_code(m.op) == 0x9) != d.is_mod &&
        (m.info().sel == isa::Sel::Off && m.info().sel_value == 1) == d.is_signed && (mf == Form::AluK) == d.imm &&
        same(v.t[m.dst], d.a, d.is64)) {
      site = d.imm ? m.imm == d.immv : same(v.t[m.src], d.b, d.is64);
    } else if (!d.is_mod && mf == Form::AluX && isa::op_code(m.op) == 0x1 && m64 == d.is64 &&
               v.t[m.src].kind == Term::Prod && same(v.t[m.dst], d.a, d.is64)) {
      site = true;  // a - (a / b) * b
    }
    if (site) {
      const u32 skip = dead_in_window(pc + 1, s, m.dst);
      // The keep location: a register dead after the division that no
      // emitted instruction writes before the site (the site's own
      // register first), else the State slot. (A register written only by
      // skipped instructions is dead through the site: dead_in_window
      // skipped them because nothing emitted reads it.)
      std::uint16_t written = 0;
      for (std::size_t k = pc + 1; k < s; ++k)
        if (((skip >> (k - pc - 1)) & 1u) == 0 && written_reg(insns_[k]) >= 0)
          written = static_cast<std::uint16_t>(written | bit(written_reg(insns_[k])));
      int keep = kKeepSlot;
      const auto usable = [&](int r) {
        return r != 0 && r != 2 && r != isa::kFrameReg && r != in.dst && ((live_[pc] | written) & bit(r)) == 0;
      };
      if (usable(m.dst)) {
        keep = m.dst;
      } else {
        for (int r = 1; r < isa::kFrameReg; ++r)
          if (usable(r)) {
            keep = r;
            break;
          }
      }
      plan_.kind = AluPlan::DivResult;
      plan_.from = pc + 1;
      plan_.site = s;
      plan_.dst = m.dst;
      plan_.src = keep == kKeepSlot ? kKeepSlot : kReg[static_cast<std::size_t>(keep)].getIdx();
      plan_.is64 = d.is64;
      plan_.skip = skip;
      divmod_keep_ = plan_.src;
      return;
    }
    v.step(m);
  }
}

namespace {
constexpr std::size_t kRotateWindow = 8;
// A left and a right shift by immediates whose counts add up to 32 or 64
// (of either width: a 64-bit >> of a zero-extended 32-bit value is the
// 32-bit one): the cheap test before the symbolic one.
// 0: not a shift by an immediate; 1: left; 2: right.
unsigned shift_kind(const Insn& in) {
  if (in.info().form != Form::AluK) return 0;
  const unsigned code = isa::op_code(in.op);
  return code == 0x6 ? 1 : code == 0x7 ? 2 : 0;
}
// a << and b >> that may be the halves of one rotate (Values::shift):
// 64-bit both with counts adding up to 64, or a 32-bit << with a >> of
// either width adding up to 32.
bool shift_pair(const Insn& left, const Insn& right) {
  const s64 sum = static_cast<s64>(left.imm) + right.imm;
  return isa::is_64(left.op) ? sum == 64 && isa::is_64(right.op) : sum == 32;
}
bool has_shift_pair(std::span<const Insn> insns, std::size_t from, std::size_t end) {
  std::array<const Insn*, kRotateWindow> lefts{}, rights{};
  std::size_t nl = 0, nr = 0;
  for (std::size_t i = from; i < end && nl < lefts.size() && nr < rights.size(); ++i) {
    const unsigned k = shift_kind(insns[i]);
    if (k == 1) lefts[nl++] = &insns[i];
    else if (k == 2) rights[nr++] = &insns[i];
  }
  for (std::size_t i = 0; i < nl; ++i)
    for (std::size_t j = 0; j < nr; ++j)
      if (shift_pair(*lefts[i], *rights[j])) return true;
  return false;
}
}  // namespace

bool alu_idioms_possible(std::span<const Insn> insns, const Options& opts) {
  const std::size_t n = insns.size();
  for (std::size_t pc = 0; pc < n; ++pc) {
    const Insn& in = insns[pc];
    const Form f = in.info().form;
    if (f != Form::AluK && f != Form::AluX) continue;
    const unsigned code = isa::op_code(in.op);
    if (opts.divmod_fusion && (code == 0x3 || code == 0x9)) return true;
    if (opts.rotates && f == Form::AluK && code == 0x6) {  // a right shift near this left one
      const std::size_t lo = pc >= kRotateWindow ? pc - kRotateWindow : 0;
      for (std::size_t j = lo; j < n && j <= pc + kRotateWindow; ++j)
        if (shift_kind(insns[j]) == 2 && shift_pair(in, insns[j])) return true;
    }
  }
  return false;
}

// At a move or shift: a rotate ending within a few ALU instructions.
void Emitter::plan_rotate(std::size_t pc) {
  constexpr std::size_t kWindow = kRotateWindow;
  if (!has_shift_pair(insns_, pc, std::min(body_end_, pc + kWindow))) return;
  Values v;
  for (std::size_t s = pc; s < body_end_ && s - pc < kWindow && (s == pc || !is_target_[s]); ++s) {
    const Insn& m = insns_[s];
    if (!pure(m)) return;
    const unsigned code = isa::op_code(m.op);
    if (m.info().form == Form::AluX && (code == 0x4 || code == 0x0 || code == 0xa) && m.src != m.dst) {
      const bool m64 = isa::is_64(m.op);
      const Term& a = v.t[m.dst];
      const Term& b = v.t[m.src];
      const Term& l = a.kind == Term::Shl ? a : b;
      const Term& r = a.kind == Term::Shl ? b : a;
      // (x: a value at the window's start, which both passes below number alike)
      if (l.kind == Term::Shl && r.kind == Term::Shr && l.id == r.id && l.id < isa::kNumRegs && l.w == r.w &&
          l.n + r.n == l.w && (l.w == 32 || m64)) {
        const u32 skip = dead_in_window(pc, s, m.dst);
        if (skip == 0) return;  // nothing saved
        // Which register holds x in the code that remains?
        Values phys;
        for (std::size_t k = pc; k < s; ++k)
          if (((skip >> (k - pc)) & 1u) == 0) phys.step(insns_[k]);
        Term x;
        x.id = l.id;
        int holder = -1;
        for (int r2 = 0; r2 < isa::kFrameReg; ++r2) {
          const Term& h = phys.t[static_cast<std::size_t>(r2)];
          if (l.w == 32 ? same32(h, x) : same64(h, x)) {
            if (holder < 0 || r2 == m.dst) holder = r2;
          }
        }
        if (holder < 0) return;
        plan_.kind = AluPlan::Rotate;
        plan_.from = pc;
        plan_.site = s;
        plan_.skip = skip;
        plan_.dst = m.dst;
        plan_.src = holder;
        plan_.amount = l.n;
        plan_.is64 = l.w == 64;
        return;
      }
    }
    v.step(m);
  }
}

bool Emitter::emit_idiom(std::size_t pc) {
  if (plan_.kind != AluPlan::None) {
    if (pc == plan_.site) {
      const Reg64& d = kReg[static_cast<std::size_t>(plan_.dst)];
      if (plan_.kind == AluPlan::DivResult) {
        if (plan_.src == kKeepSlot) mov(d, qword[st(&State::alu_keep)]);
        else if (plan_.src != d.getIdx()) mov(d, Reg64(plan_.src));
      } else {
        const int bits = plan_.is64 ? 64 : 32;
        const Xbyak::Reg32e dr(d.getIdx(), bits);
        const Xbyak::Reg32e sr(kReg[static_cast<std::size_t>(plan_.src)].getIdx(), bits);
        if (bmi2_) {
          rorx(dr, sr, static_cast<u8>(bits - plan_.amount));
        } else {
          if (dr.getIdx() != sr.getIdx()) mov(dr, sr);
          rol(dr, plan_.amount);
        }
      }
      plan_.kind = AluPlan::None;
      return true;
    }
    if (pc >= plan_.from && pc < plan_.site) return ((plan_.skip >> (pc - plan_.from)) & 1u) != 0;
    if (pc < plan_.site) return false;  // the division itself
    plan_.kind = AluPlan::None;         // (not reached: the site is always emitted)
  }
  if (counting_ || blinding() || live_.empty()) return false;
  const Insn& in = insns_[pc];
  if (opts_.divmod_fusion && is_div_or_mod(in)) {
    plan_divmod(pc);
    return false;
  }
  if (opts_.rotates && in.info().form != Form::MovSx) {
    const unsigned code = isa::op_code(in.op);
    const Form f = in.info().form;
    if ((f == Form::AluX && code == 0xb) || (f == Form::AluK && (code == 0x6 || code == 0x7))) {
      plan_rotate(pc);
      if (plan_.kind == AluPlan::Rotate && plan_.from == pc) return (plan_.skip & 1u) != 0;
    }
  }
  return false;
}

// A fused division's special case (divisor 0, or signed -1) out of line:
// the keep location gets the other operation's sem:: result, computed from
// the dividend still in dst (before emit_div_special overwrites it).
void Emitter::emit_keep_special(const ColdThunk& t) {
  if (t.keep < 0) return;
  const Reg64& d64 = kReg[t.aux];
  const Reg64 k = t.keep == kKeepSlot ? r11 : Reg64(t.keep);
  // other = the division's result if dst gets the modulo, else the modulo's.
  const bool other_is_div = t.is_mod;
  if (t.kind == ColdThunk::DivZero) {
    if (other_is_div) xor_(r32(k), r32(k));  // x / 0 = 0
    else if (t.is64) mov(k, d64);            // x % 0 = x
    else mov(r32(k), r32(d64));
  } else if (other_is_div) {  // x s/ -1 = -x
    if (t.is64) { mov(k, d64); neg(k); }
    else { mov(r32(k), r32(d64)); neg(r32(k)); }
  } else {
    xor_(r32(k), r32(k));  // x s% -1 = 0
  }
  if (t.keep == kKeepSlot) mov(qword[st(&State::alu_keep)], r11);
}

}  // namespace userbpf::jit::detail
