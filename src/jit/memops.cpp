// Memory idioms of the x86-64 JIT's code generator (internal to src/jit):
// groups of BPF loads and stores that clang emits for narrow or unaligned
// accesses, lowered to fewer, wider x86 accesses. A one-pass kernel JIT
// translates them access by access.
//
// Where: Emitter::fold_group calls emit_memops first, so only in variants
// that neither count nor check (counting variants count every BPF
// instruction and checked variants are counting: every access there keeps
// its own bounds check), and never across a jump target (the instructions
// after the first of a group are no jump targets). Each rewrite has its own
// jit::Options switch.
//
// * Load combining (Options::combine_loads): two byte loads from adjacent
//   offsets of one base, one shifted left by 8 and or-ed with the other,
//     rA = *(u8 *)(rB + o1);  rC = *(u8 *)(rB + o2);  rH <<= 8;  rH |= rL
//   (or `rA = load; rA <<= 8; rC = load; rA |= rC`; 32- or 64-bit shift and
//   or; {rH, rL} = {rA, rC}) is one 16-bit load:
//     movzx rH32, word [rB + min(o1, o2)]     (rH's byte above rL's: little-endian)
//     rol rH16, 8                             (rH's byte below rL's: big-endian, clang's rd16be)
//   Invariants: the load reads exactly the two bytes the program reads; rH
//   gets the same zero-extended 16-bit value; rL must be dead after the
//   group (liveness: it keeps its old value, which no one reads); the first
//   load does not overwrite the second's base.
// * Copy runs (Options::merge_copies): k >= 2 pairs
//     rX = *(uN *)(rS + s_i);  *(uN *)(rS + s_i + delta) = rX
//   (one size N, one base register rS for loads and stores, one delta, any
//   temporaries rX other than rS / r10), whose source offsets tile one
//   contiguous range [lo, lo + L), L = k * N, with |delta| >= L (source and
//   destination are disjoint: every load reads what it read in the
//   original order), are copied in 16-byte SSE moves through xmm0
//   (movdqu; the tail by one overlapping move) or, for L < 16, one or two
//   general-register moves through r11. Invariants: exactly the program's
//   bytes are read and written; a temporary that is live after the run gets
//   its last value by reloading its last load (the source is unchanged);
//   xmm0 holds nothing across BPF instructions (no call happens inside, and
//   the JIT keeps no value in xmm registers: helpers may clobber them).
// * Address runs (Options::address_runs): `rT = rA; rT += rB; rT += K`
//   (either add may be missing, in either order; rT != rA, rB) followed by
//   loads and at least one store through rT (two accesses or more, or one
//   after ALU instructions: emit_address_fold takes one right after), with up to
//   kMaxBetween plain ALU instructions among them that touch neither rT,
//   rA nor rB, with rT dead after the last access (or the last access a
//   load into rT): no lea, each access addresses [rA + rB / K + off].
//   Invariants: no instruction of the group writes rA or rB before the
//   last access reads them (loads into them only as the last access);
//   stores never store rT. A combined load may follow such a prefix too
//   (the prefix register its base, dead after or its result), also inside
//   an address run.
#include <algorithm>
#include <bit>

#include "jit/emitter.hpp"

namespace userbpf::jit::detail {

namespace {

// `rT = rA` followed by `rT += rB` and / or `rT += K` (either order; the
// instructions after pc no jump targets), as emit_address_fold matches.
struct Prefix {
  int t = -1;           // rT
  int a = -1, b = -1;   // rA, rB (b = -1: none)
  s64 disp = 0;         // K
  std::size_t len = 0;  // instructions (0: none)
};

Prefix address_prefix(std::span<const Insn> insns, const std::vector<bool>& is_target, std::size_t pc,
                      bool blinding) {
  Prefix p;
  const Insn& m = insns[pc];
  if (m.op != Op::MovReg || m.dst == m.src || m.dst == isa::kFrameReg) return p;
  bool has_imm = false;
  std::size_t k = pc + 1;
  for (; k < insns.size() && k - pc < 3 && !is_target[k]; ++k) {
    const Insn& in = insns[k];
    if (in.dst != m.dst) break;
    if (in.op == Op::AddReg && p.b < 0 && in.src != in.dst) {
      p.b = in.src;
    } else if (in.op == Op::AddImm && !has_imm && !blinding) {
      p.disp = in.imm;
      has_imm = true;
    } else {
      break;
    }
  }
  if (k == pc + 1) return p;
  p.t = m.dst;
  p.a = m.src;
  p.len = k - pc;
  return p;
}

bool plain_load(Op op) { return op == Op::LdxB || op == Op::LdxH || op == Op::LdxW || op == Op::LdxDW; }
bool is_shl8(const Insn& in, int r) {
  return (in.op == Op::LshImm || in.op == Op::Lsh32Imm) && in.dst == r && in.imm == 8;
}
bool is_or(const Insn& in, int h, int l) {
  return (in.op == Op::OrReg || in.op == Op::Or32Reg) && in.dst == h && in.src == l;
}

}  // namespace

std::size_t Emitter::emit_memops(std::size_t pc) {
  if (!opts_.combine_loads && !opts_.merge_copies && !opts_.address_runs) return 0;
  const Prefix p = address_prefix(insns_, is_target_, pc, blinding());
  if (p.len != 0 && pc + p.len < insns_.size() && !is_target_[pc + p.len]) {
    const Xbyak::RegExp base = p.b >= 0 ? kReg[static_cast<std::size_t>(p.a)] + kReg[static_cast<std::size_t>(p.b)] +
                                              static_cast<std::size_t>(p.disp)
                                        : kReg[static_cast<std::size_t>(p.a)] + static_cast<std::size_t>(p.disp);
    const MemBase mb{p.t, base, 0};
    if (opts_.combine_loads)
      if (const std::size_t k = emit_combined_load(pc + p.len, &mb); k != 0) return p.len + k - 1;
    if (opts_.address_runs)
      if (const std::size_t k = emit_address_run(pc, pc + p.len, p.a, p.b, base); k != 0) return p.len - 1 + k;
    return 0;
  }
  if (opts_.combine_loads)
    if (const std::size_t k = emit_combined_load(pc, nullptr); k != 0) return k - 1;
  if (opts_.merge_copies)
    if (const std::size_t k = emit_copy_run(pc); k != 0) return k - 1;
  return 0;
}

// The byte-load group at pc (see the design comment); mb: an address
// prefix whose register is the loads' base. Returns the group's length
// (0: no match, nothing emitted).
std::size_t Emitter::emit_combined_load(std::size_t pc, const MemBase* mb) {
  const std::size_t n = insns_.size();
  if (pc + 3 >= n || is_target_[pc + 1] || is_target_[pc + 2] || is_target_[pc + 3]) return 0;
  const Insn& l1 = insns_[pc];
  if (l1.op != Op::LdxB || l1.dst == l1.src || l1.dst == isa::kFrameReg) return 0;
  const int base = l1.src;
  // Either load, load, shift, or  or  load, shift, load, or.
  const Insn* l2 = nullptr;
  const Insn* sh = nullptr;
  if (insns_[pc + 1].op == Op::LdxB) {
    l2 = &insns_[pc + 1];
    sh = &insns_[pc + 2];
  } else {
    sh = &insns_[pc + 1];
    l2 = &insns_[pc + 2];
    if (l2->op != Op::LdxB || !is_shl8(*sh, l1.dst)) return 0;
  }
  const Insn& o = insns_[pc + 3];
  if (l2->src != base || l2->dst == l1.dst || l2->dst == isa::kFrameReg) return 0;
  const int h = sh->dst;
  if (h != l1.dst && h != l2->dst) return 0;
  const int l = h == l1.dst ? l2->dst : l1.dst;
  if (!is_shl8(*sh, h) || !is_or(o, h, l) || !dead_after(pc + 3, l)) return 0;
  // An address prefix's register must be the base and dead afterwards (or the result).
  if (mb != nullptr && (base != mb->reg || (mb->avoid == 0 && base != h && !dead_after(pc + 3, base)))) return 0;
  if (mb != nullptr && (((mb->avoid >> h) & 1u) != 0 || ((mb->avoid >> l) & 1u) != 0)) return 0;
  const s32 off_h = h == l1.dst ? l1.off : l2->off;
  const s32 off_l = h == l1.dst ? l2->off : l1.off;
  if (off_h != off_l + 1 && off_h != off_l - 1) return 0;
  const s64 at = std::min(off_h, off_l);
  const Xbyak::RegExp addr = mb != nullptr ? mb->exp + static_cast<std::size_t>(at)
                                           : kReg[static_cast<std::size_t>(base)] + static_cast<std::size_t>(at);
  const Reg64& d = kReg[static_cast<std::size_t>(h)];
  movzx(r32(d), word[addr]);
  if (off_h < off_l) rol(d.cvt16(), 8);
  return 4;
}

// A copy run starting at pc (see the design comment). Returns its length in
// instructions (0: no match, nothing emitted).
std::size_t Emitter::emit_copy_run(std::size_t pc) {
  constexpr std::size_t kMaxPairs = 1024;
  const std::size_t n = insns_.size();
  if (pc < copy_rejected_end_) return 0;  // inside a run already rejected: no rescan (linear time)
  const Insn& first = insns_[pc];
  if (!plain_load(first.op) || pc + 1 >= n) return 0;
  const unsigned size = isa::access_size(first.op);
  const int src = first.src;
  const s64 delta = static_cast<s64>(insns_[pc + 1].off) - first.off;
  std::vector<s32> offs;
  std::size_t k = pc;
  while (k + 1 < n && offs.size() < kMaxPairs) {
    const Insn& ld = insns_[k];
    const Insn& st = insns_[k + 1];
    if ((k > pc && is_target_[k]) || is_target_[k + 1]) break;
    if (ld.op != first.op || ld.src != src || ld.dst == src || ld.dst == isa::kFrameReg) break;
    if (st.info().form != Form::Stx || isa::access_size(st.op) != size || st.dst != src || st.src != ld.dst) break;
    if (static_cast<s64>(st.off) - ld.off != delta) break;
    offs.push_back(ld.off);
    k += 2;
  }
  if (offs.size() < 2) return 0;
  const std::size_t end = k;  // one past the run
  std::sort(offs.begin(), offs.end());
  bool tiled = true;
  for (std::size_t i = 1; i < offs.size() && tiled; ++i) tiled = offs[i] == offs[i - 1] + static_cast<s32>(size);
  const s64 len = static_cast<s64>(offs.size()) * size;
  if (!tiled || (delta < len && -delta < len)) {
    copy_rejected_end_ = end;
    return 0;
  }
  const Reg64& b = kReg[static_cast<std::size_t>(src)];
  const s64 lo = offs.front();
  const auto move = [&](s64 at, unsigned w) {
    const Xbyak::RegExp from = b + static_cast<std::size_t>(lo + at);
    const Xbyak::RegExp to = b + static_cast<std::size_t>(lo + at + delta);
    switch (w) {
      case 16: movdqu(xmm0, ptr[from]); movdqu(ptr[to], xmm0); break;
      case 8: mov(r11, qword[from]); mov(qword[to], r11); break;
      case 4: mov(r11d, dword[from]); mov(dword[to], r11d); break;
      case 2: movzx(r11d, word[from]); mov(word[to], r11w); break;
      default: movzx(r11d, byte[from]); mov(byte[to], r11b); break;
    }
  };
  if (len >= 16) {
    s64 at = 0;
    for (; at + 16 <= len; at += 16) move(at, 16);
    if (at < len) move(len - 16, 16);
  } else {
    const auto w = std::bit_floor(static_cast<unsigned>(len));
    move(0, w);
    if (len > w) move(len - w, w);
  }
  // Temporaries live afterwards get their last value.
  u32 done = 0;
  for (std::size_t j = end; j > pc; j -= 2) {
    const Insn& ld = insns_[j - 2];
    const u32 bit = 1u << ld.dst;
    if ((done & bit) != 0) continue;
    done |= bit;
    if (!dead_after(end - 1, ld.dst)) emit_mem(j - 2, ld);
  }
  return end - pc;
}

// Memory accesses through the register t of the address prefix at `from`
// (t = a [+ b] [+ K], `base`), at pc onwards (see the design comment).
// Returns how many instructions from pc it consumed (0: none, nothing
// emitted).
std::size_t Emitter::emit_address_run(std::size_t from, std::size_t pc, int a, int b, const Xbyak::RegExp& base) {
  const int t = insns_[from].dst;
  constexpr int kMaxBetween = 3;
  const std::size_t n = insns_.size();
  const auto touches = [&](int r) { return r == t || r == a || r == b; };
  std::size_t accesses = 0, last = 0, stores = 0;  // last: the last access's pc
  int between = 0, between_used = 0;   // ALU instructions seen, and before the last access
  for (std::size_t k = pc; k < n && (k == pc || !is_target_[k]); ++k) {
    const Insn& in = insns_[k];
    const Form f = in.info().form;
    const bool load = f == Form::Ldx && in.src == t;
    const bool store = (f == Form::Stx && in.dst == t && in.src != t) || (f == Form::St && in.dst == t);
    if (load || store) {
      ++accesses;
      if (store) ++stores;
      last = k;
      between_used = between;
      if (load && touches(in.dst)) break;  // it overwrites an address register: the last access
      continue;
    }
    const bool alu = (f == Form::AluK || f == Form::AluX) && isa::op_code(in.op) != 3 && isa::op_code(in.op) != 9;
    if (!alu || touches(in.dst) || (f == Form::AluX && in.src == t) || ++between > kMaxBetween) break;
  }
  // One access right after the prefix is emit_address_fold's case.
  // Loads only: the lea is kept (one lea amortised over several loads
  // with simple addressing; the existing fold takes a single load).
  if (accesses == 0 || (accesses == 1 && between_used == 0) || stores == 0) return 0;
  const Insn& lastin = insns_[last];
  if (!((lastin.info().form == Form::Ldx && lastin.dst == t) || dead_after(last, t))) return 0;
  // Emit: the ALU instructions in between as they are (with the known
  // widths tracked along, then restored: emit_body tracks the whole group).
  const Widths saved = width_;
  for (std::size_t k = from; k < pc; ++k) detail::track_widths(width_, insns_[k]);
  const auto bit = [](int r) { return r < 0 ? 0u : 1u << static_cast<unsigned>(r); };
  const MemBase mb{t, base, bit(t) | bit(a) | bit(b)};
  for (std::size_t k = pc; k <= last; ++k) {
    const Insn& in = insns_[k];
    const Form f = in.info().form;
    if (f == Form::Ldx && opts_.combine_loads && emit_combined_load(k, &mb) != 0) {
      // rH and rL are none of rT, rA, rB: its shift and or may end after `last`
      for (std::size_t j = k; j < k + 4; ++j) detail::track_widths(width_, insns_[j]);
      k += 3;
      last = std::max(last, k);
      continue;
    }
    if (f == Form::Ldx || f == Form::Stx || f == Form::St) {
      addr_override_ = base + static_cast<std::size_t>(static_cast<s64>(in.off));
      emit_mem(k, in);
      addr_override_.reset();
    } else {
      emit_insn(k, in);
    }
    detail::track_widths(width_, in);
  }
  width_ = saved;
  return last - pc + 1;
}

}  // namespace userbpf::jit::detail
