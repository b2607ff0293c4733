// Batched, branch-free native evaluation of classic socket filters.
//
// How it works
// ------------
// A classic filter is a DAG: jumps go forward only, so program order is a
// topological order. The compiler emits the instructions in program order,
// each guarded by a predicate p (a 0/1 byte): p = 1 when the packet's path
// reaches the instruction. Exactly one path is active per packet, and it
// visits its instructions in increasing order; instructions off the path
// compute but change nothing that the path reads (below). So no branch
// depends on the packet: a mixed stream of packets has nothing to
// mispredict, and the loop over a batch of packets is the only branch.
//
//   * Predicates: the fall-through predicate lives in r11b. A conditional
//     jump computes c with setcc; the edge that leaves (p & c or p & !c) goes
//     to its target, the other stays in r11b. An edge to `ret #0` is
//     dropped (the result is 0 unless a return fires); an edge to `ret #k` /
//     `ret a` writes the result at once (cmov: one return fires per path,
//     and A cannot change between the jump and the return on that path); any
//     other edge is OR-ed into a byte slot of its target (the first
//     contributor stores, so slots need no clearing per packet), which the
//     target ORs into r11b. The compiler knows statically where p is 1 (the
//     entry, up to the first test), and skips code no edge reaches.
//   * Writes: A and X are written plainly, whatever p says. That is exact
//     because they are renamed across jumps: an edge u -> t whose target
//     reads A (or X) stores the value into t's register slot (the first
//     contributor stores, later ones cmov under their edge predicate), and
//     t restores it when its predicate slot is set; the fall-through into t
//     passes no instruction off the path. So an instruction off the path
//     cannot clobber a value the path reads later. M[k] is not renamed: a
//     store to M[k] is predicated (load, cmov, store) only if some jump
//     u -> t with u < i < t has M[k] live at t (liveness is exact on a DAG).
//   * Loads: every load reads memory, from the packet when it is in bounds
//     and from a zero buffer (cmov on the address) when not; an out-of-
//     bounds load clears p (the filter returns 0 there, as the kernel's
//     does), except where an earlier constant load on every path to it
//     already proved its bytes in bounds (a failed load ends its path).
//     `ld [x + k]` computes X + k as a 32-bit sum; a negative sum
//     (SKF_NET_OFF / SKF_LL_OFF areas) clears p and records a punt: the
//     caller reruns that packet on the per-packet path. Division by X = 0
//     clears p (returns 0) and divides by 1. So nothing faults.
//   * Semantics are the translation's (translate.cpp): A and X start at 0,
//     32-bit ALU, shifts by X take the count mod 32, compares unsigned.
//
// Code shape (SysV): size_t fn(const Frame* frames, size_t n, u32* out,
// u32* punts) returns the number of punts. rbx = the current Frame, rbp =
// the end, r12 = out, r15 = the zero buffer; per packet r8 = data, r9 =
// caplen, eax = A, ecx = X, esi = the result, r11b = p; r13d = the most
// common constant a jump edge returns; rdx, r10, r14 scratch. The stack
// frame holds M[0..15], the punt bookkeeping, one predicate byte and one
// A/X pair per instruction. (Software prefetching of the packets a few
// frames ahead measured no gain: the hardware prefetcher follows a
// capture's sequential layout.) The code is written into a private mapping
// that becomes read+exec (never writable and executable at once).
// Invariants: no instruction of the body branches; every packet read is
// inside [data, data + caplen) or the zero buffer; frames are read only
// inside [frames, frames + n); each packet's result is stored to out[i]
// before the next packet starts.
#include "cbpf/batch.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <xbyak/xbyak.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <limits>
#include <string>
#include <vector>

namespace userbpf::cbpf {
namespace {

using Xbyak::Reg32;
using Xbyak::Reg8;

// Registers of the analysis: A, X, M[0..15] (bit i of a u32 set).
constexpr unsigned kRegA = 0, kRegX = 1, kRegM0 = 2;
constexpr std::uint32_t bit(unsigned r) { return 1U << r; }

alignas(16) const std::uint8_t kZeros[16] = {};

// Frame layout (offsets from rsp).
constexpr std::uint32_t kMemOff = 0;                  // M[0..15]
constexpr std::uint32_t kBaseOff = 4 * kMemWords;    // frames base
constexpr std::uint32_t kPuntsOff = kBaseOff + 8;    // punts array
constexpr std::uint32_t kNpuntOff = kPuntsOff + 8;   // number of punts
constexpr std::uint32_t kPuntOff = kNpuntOff + 8;    // this packet punts (byte)
constexpr std::uint32_t kSlotOff = kPuntOff + 8;     // predicate slots, one byte per pc
// then A and X as they leave on jump edges: 8 bytes per pc (at kSlotOff + align16(n))

struct Facts {
  const OpInfo* row = nullptr;
  std::uint32_t uses = 0, defs = 0;
  std::uint32_t live_in = 0;
  bool predicated_write = false;  // the write needs cmov under p
  bool x_small = false;           // X <= kSmallX on every path here
  std::uint64_t proven_len = 0;   // caplen >= this on every path that reaches here alive
};
constexpr std::uint32_t kSmallX = 0xffff;

// Condition codes the compiler emits (x86 names).
enum class Cc : std::uint8_t { E, Ne, A, Be, Ae, B };
Cc negate(Cc c) {
  switch (c) {
    case Cc::E: return Cc::Ne;
    case Cc::Ne: return Cc::E;
    case Cc::A: return Cc::Be;
    case Cc::Be: return Cc::A;
    case Cc::Ae: return Cc::B;
    case Cc::B: return Cc::Ae;
  }
  return c;
}

bool is_ret(Kind k) { return k == Kind::RetK || k == Kind::RetA; }

// Uses and defs of one instruction (registers of the analysis).
void uses_defs(const Insn& in, Facts& f) {
  const std::uint32_t m = in.k < kMemWords ? bit(kRegM0 + in.k) : 0;
  switch (f.row->kind) {
    case Kind::LdAbs: case Kind::LdLen: case Kind::LdImm: f.defs = bit(kRegA); break;
    case Kind::LdInd: f.uses = bit(kRegX); f.defs = bit(kRegA); break;
    case Kind::LdMem: f.uses = m; f.defs = bit(kRegA); break;
    case Kind::LdxImm: case Kind::LdxLen: case Kind::LdxMsh: f.defs = bit(kRegX); break;
    case Kind::LdxMem: f.uses = m; f.defs = bit(kRegX); break;
    case Kind::St: f.uses = bit(kRegA); f.defs = m; break;
    case Kind::Stx: f.uses = bit(kRegX); f.defs = m; break;
    case Kind::AluK: case Kind::Neg: f.uses = bit(kRegA); f.defs = bit(kRegA); break;
    case Kind::AluX: f.uses = bit(kRegA) | bit(kRegX); f.defs = bit(kRegA); break;
    case Kind::Ja: case Kind::RetK: break;
    case Kind::JmpK: case Kind::RetA: f.uses = bit(kRegA); break;
    case Kind::JmpX: f.uses = bit(kRegA) | bit(kRegX); break;
    case Kind::Tax: f.uses = bit(kRegA); f.defs = bit(kRegX); break;
    case Kind::Txa: f.uses = bit(kRegX); f.defs = bit(kRegA); break;
  }
}

// Successors of pc (at most two; pc + 1 included when it falls through).
std::array<std::size_t, 2> successors(const Insn& in, const OpInfo& row, std::size_t pc, unsigned* count) {
  *count = 0;
  std::array<std::size_t, 2> s{};
  if (row.kind == Kind::Ja) {
    s[(*count)++] = pc + 1 + in.k;
  } else if (row.kind == Kind::JmpK || row.kind == Kind::JmpX) {
    s[(*count)++] = pc + 1 + in.jt;
    if (in.jf != in.jt) s[(*count)++] = pc + 1 + in.jf;
  } else if (!is_ret(row.kind)) {
    s[(*count)++] = pc + 1;
  }
  return s;
}

Result<std::vector<Facts>> analyse(std::span<const Insn> prog) {
  const std::size_t n = prog.size();
  std::vector<Facts> f(n);
  for (std::size_t pc = 0; pc < n; ++pc) {
    f[pc].row = lookup(prog[pc].code);
    const Kind kind = f[pc].row->kind;
    if (kind == Kind::LdAbs && static_cast<std::int32_t>(prog[pc].k) < 0)
      return insn_error(EINVAL, pc,
                        ancillary(prog[pc].k) != nullptr ? "ancillary load: not batched (reads the context)"
                                                         : "load at a negative offset: not batched (reads the context)");
    if (kind == Kind::LdxMsh && static_cast<std::int32_t>(prog[pc].k) < 0)
      return insn_error(EINVAL, pc, "ldxb at a negative offset: not batched (reads the context)");
    uses_defs(prog[pc], f[pc]);
  }
  // Liveness, backwards (forward jumps only: one pass is exact).
  for (std::size_t pc = n; pc-- > 0;) {
    unsigned c = 0;
    const auto s = successors(prog[pc], *f[pc].row, pc, &c);
    std::uint32_t out = 0;
    for (unsigned i = 0; i < c; ++i) out |= f[s[i]].live_in;
    f[pc].live_in = f[pc].uses | (out & ~f[pc].defs);
  }
  // Writes jumped over by an edge whose target reads the older value.
  std::vector<std::array<int, 2 + kMemWords>> diff(n + 1);
  for (auto& d : diff) d.fill(0);
  for (std::size_t pc = 0; pc < n; ++pc) {
    unsigned c = 0;
    const auto s = successors(prog[pc], *f[pc].row, pc, &c);
    for (unsigned i = 0; i < c; ++i) {
      if (s[i] <= pc + 1) continue;
      for (unsigned r = kRegM0; r < 2 + kMemWords; ++r) {
        if ((f[s[i]].live_in & bit(r)) == 0) continue;
        ++diff[pc + 1][r];
        --diff[s[i]][r];
      }
    }
  }
  std::array<int, 2 + kMemWords> cover{};
  for (std::size_t pc = 0; pc < n; ++pc) {
    for (unsigned r = kRegM0; r < 2 + kMemWords; ++r) {  // A and X are renamed instead (route)
      cover[r] += diff[pc][r];
      if ((f[pc].defs & bit(r)) != 0 && cover[r] > 0) f[pc].predicated_write = true;
    }
  }
  // X known small (<= kSmallX) on every path: after ldxb 4*(..) or ldx #k.
  std::vector<std::uint8_t> small(n + 1, 1), reached(n + 1, 0);
  small[0] = 0;  // X = 0 at entry, but keep the entry simple: unknown
  reached[0] = 1;
  for (std::size_t pc = 0; pc < n; ++pc) {
    if (reached[pc] == 0) small[pc] = 0;
    f[pc].x_small = small[pc] != 0;
    const Kind kind = f[pc].row->kind;
    bool out = f[pc].x_small;
    if (kind == Kind::LdxMsh) out = true;
    else if (kind == Kind::LdxImm) out = prog[pc].k <= kSmallX;
    else if ((f[pc].defs & bit(kRegX)) != 0) out = false;
    unsigned c = 0;
    const auto s = successors(prog[pc], *f[pc].row, pc, &c);
    for (unsigned i = 0; i < c; ++i) {
      small[s[i]] = static_cast<std::uint8_t>(reached[s[i]] != 0 ? (small[s[i]] != 0 && out) : out);
      reached[s[i]] = 1;
    }
  }
  // Bytes proven in bounds: a constant load that fails ends the path, so
  // after it caplen >= its end on every live path (min over merging paths).
  std::vector<std::uint64_t> proven(n + 1, 0);
  std::vector<std::uint8_t> seen(n + 1, 0);
  seen[0] = 1;
  for (std::size_t pc = 0; pc < n; ++pc) {
    f[pc].proven_len = seen[pc] != 0 ? proven[pc] : 0;
    std::uint64_t out = f[pc].proven_len;
    const Kind kind = f[pc].row->kind;
    if (kind == Kind::LdAbs || kind == Kind::LdxMsh)
      out = std::max<std::uint64_t>(out, std::uint64_t{prog[pc].k} + (kind == Kind::LdxMsh ? 1 : size_bytes(*f[pc].row)));
    unsigned c = 0;
    const auto s = successors(prog[pc], *f[pc].row, pc, &c);
    for (unsigned i = 0; i < c; ++i) {
      proven[s[i]] = seen[s[i]] != 0 ? std::min(proven[s[i]], out) : out;
      seen[s[i]] = 1;
    }
  }
  return f;
}

class Emitter : public Xbyak::CodeGenerator {
 public:
  Emitter(std::span<const Insn> prog, const std::vector<Facts>& facts, std::uint8_t* buf, std::size_t cap)
      : Xbyak::CodeGenerator(cap, buf), prog_(prog), f_(facts), written_(prog.size(), 0) {}

  void emit(bool* out_may_punt) {
    const std::size_t n = prog_.size();
    for (std::size_t pc = 0; pc < n; ++pc)
      if (may_punt(pc)) punts_ = true;
    *out_may_punt = punts_;
    regs_off_ = static_cast<std::uint32_t>((kSlotOff + n + 15) & ~std::size_t{15});
    frame_ = regs_off_ + static_cast<std::uint32_t>(8 * n);
    // The most common non-zero constant that jump edges return, kept in r13d.
    std::vector<std::pair<std::uint32_t, unsigned>> kcount;
    for (std::size_t pc = 0; pc < n; ++pc) {
      const Kind kind = f_[pc].row->kind;
      if (kind != Kind::JmpK && kind != Kind::JmpX && kind != Kind::Ja) continue;
      const std::size_t t1 = pc + 1 + (kind == Kind::Ja ? prog_[pc].k : prog_[pc].jt);
      const std::size_t t2 = pc + 1 + (kind == Kind::Ja ? prog_[pc].k : prog_[pc].jf);
      for (std::size_t t : {t1, t2}) {
        if (f_[t].row->kind != Kind::RetK || prog_[t].k == 0) continue;
        auto it = std::find_if(kcount.begin(), kcount.end(), [&](const auto& kc) { return kc.first == prog_[t].k; });
        if (it == kcount.end()) kcount.emplace_back(prog_[t].k, 1);
        else ++it->second;
      }
    }
    if (!kcount.empty()) {
      ret_k_ = std::max_element(kcount.begin(), kcount.end(), [](const auto& a, const auto& b) { return a.second < b.second; })->first;
      has_ret_k_ = true;
    }

    const std::array<Xbyak::Reg64, 6> saved = {rbx, rbp, r12, r13, r14, r15};  // SysV callee-saved
    for (const auto& r : saved) push(r);
    sub(rsp, frame_);
    mov(rbx, rdi);
    shl(rsi, 4);
    lea(rbp, ptr[rdi + rsi]);
    mov(r12, rdx);
    mov(qword[rsp + kBaseOff], rdi);
    mov(qword[rsp + kPuntsOff], rcx);
    mov(qword[rsp + kNpuntOff], 0);
    mov(r15, reinterpret_cast<std::uintptr_t>(kZeros));
    if (has_ret_k_) mov(r13d, ret_k_);
    Xbyak::Label loop, done;
    test(rsi, rsi);
    jz(done, T_NEAR);
    align(16);
    L(loop);
    mov(r8, qword[rbx]);
    mov(r9d, dword[rbx + 8]);
    if ((f_[0].live_in & bit(kRegA)) != 0) xor_(eax, eax);  // A and X start at 0 where read before written
    if ((f_[0].live_in & bit(kRegX)) != 0) xor_(ecx, ecx);
    xor_(esi, esi);
    if (punts_) mov(byte[rsp + kPuntOff], 0);
    state_ = P::One;
    for (std::size_t pc = 0; pc < n; ++pc) insn(pc);
    mov(dword[r12], esi);
    add(r12, 4);
    if (punts_) {
      mov(rdx, rbx);
      sub(rdx, qword[rsp + kBaseOff]);
      shr(rdx, 4);
      mov(r10, qword[rsp + kNpuntOff]);
      mov(r14, qword[rsp + kPuntsOff]);
      mov(dword[r14 + r10 * 4], edx);
      movzx(edx, byte[rsp + kPuntOff]);
      add(r10, rdx);
      mov(qword[rsp + kNpuntOff], r10);
    }
    add(rbx, 16);
    cmp(rbx, rbp);
    jb(loop, T_NEAR);
    L(done);
    mov(rax, qword[rsp + kNpuntOff]);
    add(rsp, frame_);
    for (auto r = saved.rbegin(); r != saved.rend(); ++r) pop(*r);
    ret();
  }

 private:
  // What is known about r11b (the fall-through predicate) at compile time.
  enum class P : std::uint8_t { Dead, One, Dyn };

  std::span<const Insn> prog_;
  const std::vector<Facts>& f_;
  std::vector<std::uint8_t> written_;  // slot of pc written by an emitted edge
  P state_ = P::One;
  bool punts_ = false;
  std::uint32_t frame_ = 0;
  std::uint32_t regs_off_ = 0;
  bool has_ret_k_ = false;
  std::uint32_t ret_k_ = 0;  // in r13d when has_ret_k_

  Xbyak::Address slot(std::size_t pc) { return byte[rsp + kSlotOff + static_cast<std::uint32_t>(pc)]; }
  // Where A (r = kRegA) or X leaves for pc on a jump edge.
  Xbyak::Address reg_slot(std::size_t pc, unsigned r) {
    return dword[rsp + regs_off_ + static_cast<std::uint32_t>(8 * pc + 4 * r)];
  }
  Reg32 reg_of(unsigned r) const { return r == kRegA ? eax : ecx; }
  // A and X when read at t (renamed across the jump edges into t).
  std::array<unsigned, 2> live_regs(std::size_t t, unsigned* count) const {
    *count = 0;
    std::array<unsigned, 2> r{};
    for (unsigned i : {kRegA, kRegX})
      if ((f_[t].live_in & bit(i)) != 0) r[(*count)++] = i;
    return r;
  }

  void setc(Cc c, const Reg8& r) {
    switch (c) {
      case Cc::E: sete(r); break;
      case Cc::Ne: setne(r); break;
      case Cc::A: seta(r); break;
      case Cc::Be: setbe(r); break;
      case Cc::Ae: setae(r); break;
      case Cc::B: setb(r); break;
    }
  }

  // An `ld [x + k]` whose X + k may be negative as a signed 32-bit offset.
  bool may_punt(std::size_t pc) const {
    constexpr std::uint32_t kMaxK = static_cast<std::uint32_t>(std::numeric_limits<std::int32_t>::max()) - kSmallX;
    return f_[pc].row->kind == Kind::LdInd && (!f_[pc].x_small || prog_[pc].k > kMaxK);
  }

  bool is_drop(std::size_t t) const { return f_[t].row->kind == Kind::RetK && prog_[t].k == 0; }

  // Sends the edge predicate in `e` (or the constant 1 when one) to t.
  void route(std::size_t t, const Reg8& e, bool one) {
    const Kind kind = f_[t].row->kind;
    if (is_drop(t)) return;
    if (kind == Kind::RetK || kind == Kind::RetA) {
      if (one) {
        if (kind == Kind::RetK) mov(esi, prog_[t].k);
        else mov(esi, eax);
        return;
      }
      const bool in_r13 = kind == Kind::RetK && has_ret_k_ && prog_[t].k == ret_k_;
      if (kind == Kind::RetK && !in_r13) mov(r10d, prog_[t].k);
      test(e, e);
      cmovnz(esi, kind == Kind::RetA ? eax : in_r13 ? r13d : r10d);
      return;
    }
    // A and X travel with the edge (so writes between here and t need no predicate).
    unsigned nr = 0;
    const auto regs = live_regs(t, &nr);
    for (unsigned i = 0; i < nr; ++i) {
      if (written_[t] == 0 || one) {
        mov(reg_slot(t, regs[i]), reg_of(regs[i]));
      } else {
        mov(r10d, reg_slot(t, regs[i]));
        test(e, e);
        cmovnz(r10d, reg_of(regs[i]));
        mov(reg_slot(t, regs[i]), r10d);
      }
    }
    if (written_[t] == 0) {
      if (one) mov(slot(t), 1);
      else mov(slot(t), e);
      written_[t] = 1;
    } else if (one) {
      or_(slot(t), 1);
    } else {
      or_(slot(t), e);
    }
  }

  // p &= (flag set by the last compare under `ok`).
  void and_p(Cc ok) {
    if (state_ == P::One) {
      setc(ok, r11b);
    } else {
      setc(ok, dl);
      and_(r11b, dl);
    }
    state_ = P::Dyn;
  }

  // dst = src under p (plain write when the analysis allows it).
  void write(std::size_t pc, const Reg32& dst, const Xbyak::Operand& src) {
    if (f_[pc].predicated_write && state_ == P::Dyn) {
      test(r11b, r11b);
      cmovnz(dst, src);
    } else {
      mov(dst, src);
    }
  }

  // Loads `size` bytes at r10 (an offset already compared with caplen by
  // the caller: CF set = out of bounds) into dst, from the zero buffer when
  // out of bounds; kill: an out-of-bounds load clears p (no earlier load on
  // every path to here proved the bytes in bounds).
  void load_checked(std::uint16_t size, const Reg32& dst, bool kill) {
    cmovb(r10, r15);
    if (kill) and_p(Cc::Ae);
    if (size == 4) {
      mov(dst, dword[r10]);
      bswap(dst);
    } else if (size == 2) {
      movzx(dst, word[r10]);
      rol(Xbyak::Reg16(dst.getIdx()), 8);
    } else {
      movzx(dst, byte[r10]);
    }
  }

  // dst = the packet's `size` bytes at constant offset k (0 when out of bounds, p cleared).
  void load_abs(std::size_t pc, std::uint32_t k, std::uint16_t size, const Reg32& dst) {
    const std::uint64_t end = std::uint64_t{k} + size;  // k < 2^31 (analyse)
    lea(r10, ptr[r8 + k]);
    if (end > static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max())) {
      mov(r14, end);
      cmp(r9, r14);
    } else {
      cmp(r9, static_cast<std::uint32_t>(end));
    }
    load_checked(size, dst, end > f_[pc].proven_len);
  }

  void alu(std::size_t pc, const OpInfo& row, const Insn& in) {
    const bool x = row.kind == Kind::AluX;
    const isa::Op op = row.ebpf;
    const bool pred = f_[pc].predicated_write && state_ == P::Dyn;
    using isa::Op;
    if (op == Op::Div32Imm || op == Op::Div32Reg || op == Op::Mod32Imm || op == Op::Mod32Reg) {
      const bool mod = op == Op::Mod32Imm || op == Op::Mod32Reg;
      if (x) {  // X = 0: the filter returns 0; divide by 1 meanwhile
        mov(r10d, 1);
        test(ecx, ecx);
        cmovnz(r10d, ecx);
        and_p(Cc::Ne);
      } else {
        mov(r10d, in.k);
      }
      const bool keep = pred || (x && f_[pc].predicated_write);
      if (keep) mov(r14d, eax);
      xor_(edx, edx);
      div(r10d);
      if (mod) mov(eax, edx);
      if (keep) {
        test(r11b, r11b);
        cmovz(eax, r14d);
      }
      return;
    }
    const Reg32 dst = pred ? edx : eax;
    if (pred) mov(edx, eax);
    if (op == Op::Neg32) {
      neg(dst);
    } else if (op == Op::Lsh32Imm || op == Op::Lsh32Reg) {
      if (x) shl(dst, cl);
      else shl(dst, static_cast<int>(in.k));
    } else if (op == Op::Rsh32Imm || op == Op::Rsh32Reg) {
      if (x) shr(dst, cl);
      else shr(dst, static_cast<int>(in.k));
    } else if (op == Op::Mul32Imm || op == Op::Mul32Reg) {
      if (x) imul(dst, ecx);
      else imul(dst, dst, static_cast<int>(in.k));
    } else {
      const auto k = static_cast<std::uint32_t>(in.k);
      if (op == Op::Add32Imm || op == Op::Add32Reg) x ? add(dst, ecx) : add(dst, k);
      else if (op == Op::Sub32Imm || op == Op::Sub32Reg) x ? sub(dst, ecx) : sub(dst, k);
      else if (op == Op::And32Imm || op == Op::And32Reg) x ? and_(dst, ecx) : and_(dst, k);
      else if (op == Op::Or32Imm || op == Op::Or32Reg) x ? or_(dst, ecx) : or_(dst, k);
      else x ? xor_(dst, ecx) : xor_(dst, k);  // Xor32Imm / Xor32Reg: the last ALU row
    }
    if (pred) {
      test(r11b, r11b);
      cmovnz(eax, edx);
    }
  }

  void cond_jump(std::size_t pc, const OpInfo& row, const Insn& in) {
    const std::size_t tt = pc + 1 + in.jt, tf = pc + 1 + in.jf;
    if (tt == tf) {  // both ways to one place: an unconditional jump
      if (tt != pc + 1) {
        route(tt, r11b, state_ == P::One);
        state_ = P::Dead;
      }
      return;
    }
    const bool x = row.kind == Kind::JmpX;
    using isa::Op;
    Cc c = Cc::E;
    if (row.ebpf == Op::Jset32Imm || row.ebpf == Op::Jset32Reg) {
      x ? test(eax, ecx) : test(eax, static_cast<std::uint32_t>(in.k));
      c = Cc::Ne;
    } else {
      x ? cmp(eax, ecx) : cmp(eax, static_cast<std::uint32_t>(in.k));
      c = row.ebpf == Op::Jgt32Imm || row.ebpf == Op::Jgt32Reg   ? Cc::A
          : row.ebpf == Op::Jge32Imm || row.ebpf == Op::Jge32Reg ? Cc::Ae
                                                                 : Cc::E;
    }
    // The edge that leaves (moved) and the one that stays in r11b.
    std::size_t moved = tt, stays = tf;
    Cc cm = c;
    if (tt == pc + 1) {
      moved = tf;
      stays = tt;
      cm = negate(c);
    }
    const bool one = state_ == P::One;
    if (is_drop(moved)) {
      and_p(negate(cm));
    } else {
      setc(cm, dl);
      if (one) {
        setc(negate(cm), r11b);
      } else {
        and_(dl, r11b);
        xor_(r11b, dl);
      }
      state_ = P::Dyn;
      route(moved, dl, false);
    }
    if (stays != pc + 1) {
      route(stays, r11b, false);
      state_ = P::Dead;
    }
  }

  void insn(std::size_t pc) {
    const Insn& in = prog_[pc];
    const OpInfo& row = *f_[pc].row;
    if (written_[pc] != 0) {  // edges from jumps: their predicate, A and X
      unsigned nr = 0;
      const auto regs = live_regs(pc, &nr);
      if (state_ == P::Dead) {
        mov(r11b, slot(pc));
        for (unsigned i = 0; i < nr; ++i) mov(reg_of(regs[i]), reg_slot(pc, regs[i]));
      } else if (nr == 0) {
        if (state_ == P::One) mov(r11b, 1);
        or_(r11b, slot(pc));
      } else {
        movzx(r10d, slot(pc));
        test(r10d, r10d);
        for (unsigned i = 0; i < nr; ++i) cmovnz(reg_of(regs[i]), reg_slot(pc, regs[i]));
        if (state_ == P::One) mov(r11b, 1);
        or_(r11b, r10b);
      }
      state_ = P::Dyn;
    }
    if (state_ == P::Dead) return;  // nothing reaches pc
    const std::uint32_t mem = kMemOff + 4 * (in.k % kMemWords);
    switch (row.kind) {
      case Kind::LdAbs: load_abs(pc, in.k, size_bytes(row), eax); break;  // A and X writes are plain (renamed)
      case Kind::LdInd: {
        // X + k, 32-bit (the displacement sign-extended, as xbyak encodes it)
        lea(r10d, ptr[rcx + static_cast<std::size_t>(static_cast<std::int64_t>(static_cast<std::int32_t>(in.k)))]);
        if (may_punt(pc)) {  // negative: the context's areas; punt
          test(r10d, r10d);
          sets(dl);
          if (state_ == P::One) {
            setns(r11b);
            state_ = P::Dyn;
            or_(byte[rsp + kPuntOff], dl);
          } else {
            and_(dl, r11b);
            or_(byte[rsp + kPuntOff], dl);
            xor_(r11b, dl);
          }
        }
        lea(r14, ptr[r10 + size_bytes(row)]);
        cmp(r9, r14);
        lea(r10, ptr[r8 + r10]);
        load_checked(size_bytes(row), eax, true);
        break;
      }
      case Kind::LdxMsh: {
        load_abs(pc, in.k, 1, ecx);
        and_(ecx, 0xf);
        shl(ecx, 2);
        break;
      }
      case Kind::LdLen: write(pc, eax, dword[rbx + 12]); break;
      case Kind::LdxLen: write(pc, ecx, dword[rbx + 12]); break;
      case Kind::LdImm:
      case Kind::LdxImm: {
        const Reg32 dst = row.kind == Kind::LdImm ? eax : ecx;
        if (f_[pc].predicated_write && state_ == P::Dyn) {
          mov(edx, in.k);
          write(pc, dst, edx);
        } else {
          mov(dst, in.k);
        }
        break;
      }
      case Kind::LdMem: write(pc, eax, dword[rsp + mem]); break;
      case Kind::LdxMem: write(pc, ecx, dword[rsp + mem]); break;
      case Kind::St:
      case Kind::Stx: {
        const Reg32 src = row.kind == Kind::St ? eax : ecx;
        if (f_[pc].predicated_write && state_ == P::Dyn) {
          mov(edx, dword[rsp + mem]);
          test(r11b, r11b);
          cmovnz(edx, src);
          mov(dword[rsp + mem], edx);
        } else {
          mov(dword[rsp + mem], src);
        }
        break;
      }
      case Kind::AluK: case Kind::AluX: case Kind::Neg: alu(pc, row, in); break;
      case Kind::Tax: write(pc, ecx, eax); break;
      case Kind::Txa: write(pc, eax, ecx); break;
      case Kind::Ja: {
        const std::size_t t = pc + 1 + in.k;
        if (t != pc + 1) {
          route(t, r11b, state_ == P::One);
          state_ = P::Dead;
        }
        break;
      }
      case Kind::JmpK: case Kind::JmpX: cond_jump(pc, row, in); break;
      case Kind::RetK: case Kind::RetA:
        route(pc, r11b, state_ == P::One);
        state_ = P::Dead;
        break;
    }
  }
};

}  // namespace

struct BatchCode::Code {
  void* map = nullptr;
  std::size_t cap = 0;
  std::size_t size = 0;
  bool may_punt = false;
  Code() = default;
  Code(const Code&) = delete;
  Code& operator=(const Code&) = delete;
  ~Code() {
    if (map != nullptr) munmap(map, cap);
  }
};

BatchCode::BatchCode(std::unique_ptr<Code> code) : code_(std::move(code)) {
  fn_ = reinterpret_cast<Fn>(reinterpret_cast<std::uintptr_t>(code_->map));
}
BatchCode::BatchCode(BatchCode&&) noexcept = default;
BatchCode& BatchCode::operator=(BatchCode&&) noexcept = default;
BatchCode::~BatchCode() = default;

std::size_t BatchCode::code_size() const { return code_->size; }
std::span<const std::uint8_t> BatchCode::code() const { return {static_cast<const std::uint8_t*>(code_->map), code_->size}; }
bool BatchCode::may_punt() const { return code_->may_punt; }

Result<BatchCode> BatchCode::compile(std::span<const Insn> prog) {
  if (Status st = check(prog); !st.ok()) return st.error();
  if (prog.size() > kMaxInsns)
    return make_error(E2BIG, "program has " + std::to_string(prog.size()) + " insns: not batched (limit " +
                                 std::to_string(kMaxInsns) + ")");
  auto facts = analyse(prog);
  if (!facts.ok()) return facts.error();
  auto code = std::make_unique<Code>();
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  // Upper bound: the longest sequence of one instruction (a jump whose two
  // edges both carry A and X to far targets, plus its own restore) is under
  // 192 bytes; the loop around the body under 256. A bound too small makes
  // xbyak throw: an error below, never an overflow.
  code->cap = ((prog.size() * 256 + 512) + page - 1) / page * page;
  void* m = mmap(nullptr, code->cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return make_error(ENOMEM, "batch code: cannot map " + std::to_string(code->cap) + " bytes");
  code->map = m;
  try {
    Emitter e(prog, *facts, static_cast<std::uint8_t*>(m), code->cap);
    e.emit(&code->may_punt);
    e.ready();
    code->size = e.getSize();
  } catch (const Xbyak::Error& err) {
    return make_error(EFAULT, std::string("batch code: ") + err.what());
  }
  if (mprotect(m, code->cap, PROT_READ | PROT_EXEC) != 0)
    return make_error(errno, "batch code: mprotect failed");
  return BatchCode(std::move(code));
}

}  // namespace userbpf::cbpf
