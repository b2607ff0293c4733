// Classic BPF -> eBPF translation with the kernel's semantics (the facts of
// bpf_convert_filter / convert_bpf_extensions, our own code).
//
// Entry (socket target): r1 = &SkbContext, r2 = the packet's first byte,
// r3 = its captured length (Translation::packet_args tells whether the
// program reads r2/r3; exec.cpp always passes them).
// Registers (Regs), A = r0 always:
//   - programs with helper calls (nla, nlan, rand): X = r7, the context
//     pointer r6 (copied from r1 at entry), the packet pointer r9 and
//     length r8 (copied from r2/r3), r2/r3 scratch for offset arithmetic and
//     helper arguments (calls may clobber r1-r5, so nothing lives there
//     across classic instructions);
//   - all others: the context, packet and length stay in r1, r2, r3 (no
//     prologue moves), X = r4, scratch r5 and r0 (only where a load is
//     about to overwrite A). Without M[] the program touches no register
//     above r5 and no stack: jit::Program::leaf calls it as a plain function.
// M[i] is the 32-bit stack slot at r10 - 4 * (16 - i). `ldxb 4*([k]&0xf)`
// loads straight into X; only its rare negative-k form computes in A and
// saves A at r10 - 68 around it. A and X start at 0.
//
// Every packet load is direct: "if len < off + size return 0", a load
// from r9 + off, and be16/be32 (network to host order). This is
// LD_ABS/LD_IND's exact semantics without the engines' out-of-line call,
// so the JIT emits a compare, a load and a bswap; the output has no
// LD_ABS/LD_IND at all (so jit::Program::leaf accepts it unless it calls a
// helper). Offsets computed at run time (X + k, the SKF_NET_OFF /
// SKF_LL_OFF areas) are 32-bit values taken as signed, as LD_IND takes
// them: negative is a failed load too.
//
// Every ALU operation is a 32-bit eBPF ALU op and every compare a JMP32 op,
// taken from the classic row (classic.def's ebpf / ebpf_inverse columns), so
// A and X are always zero-extended 32-bit values and classic K needs no
// sign-extension care. Specific cases:
//   - div/mod by X: "if X == 0 return 0" first, as the kernel does.
//   - shifts by X: eBPF masks the count (& 31), as the kernel's JITs do;
//     libpcap's bpf_filter gives 0 for X >= 32 (documented difference).
//   - conditional jumps: "if cond goto jt" + "goto jf", the goto dropped
//     when jf falls through; when jt falls through the inverse row is used
//     (jset has none: cond + goto).
//   - LD ABS k >= 0: direct load. SKF_AD_OFF <= k < 0: ancillary (SkbContext
//     field, a helper call for nla/nlan/rand, A ^= X for xor_x).
//     SKF_NET_OFF / SKF_LL_OFF areas: from ctx->net_off / ll_off + k - base.
//     k < SKF_LL_OFF: return 0 (the kernel's load fails).
//   - LD IND: X + k is a signed 32-bit offset in the kernel; when it may be
//     negative (k < 0, or X > INT32_MAX - k at run time) an out-of-line
//     block dispatches to the SKF_NET_OFF / SKF_LL_OFF areas or returns 0.
//     The fast path is one compare and one direct load.
//   - LEN: ctx->len (socket) or 64 (seccomp); seccomp LD|W|ABS k: u32 at ctx+k.
//   - Out-of-range packet loads end the run with r0 = 0 (LD_ABS/LD_IND
//     semantics of the abi), as the kernel and libpcap return 0.
// Analysis (before emission; exact because classic jumps go forward):
// liveness of A and X decides whether the prologue zeroes them and whether
// a negative-k `ldxb 4*([k]&0xf)` saves A; an upper bound of X per instruction drops the
// X + k sign guard of LD IND when X is known small (after MSH or ldx #k).
// The ctx move (r6 = r1) is emitted only when something reads the context, the
// out-of-line blocks included: the prologue is decided after every block
// has been emitted (a negative LD IND offset reads ctx->net_off / ll_off
// only in its out-of-line block).
// Invariants: the output starts with the prologue, every classic
// instruction maps to a contiguous block (Translation::start), out-of-line
// blocks follow the last classic instruction, all jumps fit in 16 bits (an
// error names the classic instruction otherwise).
#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <functional>
#include <limits>

#include "cbpf/cbpf.hpp"

namespace userbpf::cbpf {
namespace {

using isa::Op;
using isa::make;

constexpr std::uint8_t kA = 0, kFp = 10;

// Where X, the context, the packet and its length live, and two scratch
// registers (see the top of this file).
struct Regs {
  std::uint8_t x, ctx, len, data, s1, s2;
};
// Programs with helper calls (nla, nlan, rand): calls take r1-r3, so the
// values that live across them are in r6-r9.
constexpr Regs kCallRegs = {7, 6, 8, 9, 2, 3};
// Programs without calls keep everything in r0-r5: the context, packet and
// length stay where they arrive (no prologue moves), X = r4, scratch r5 and
// A (r0) itself where a load overwrites A anyway. Without M[] such a
// program uses no callee-saved register (jit::Program::leaf calls it bare).
constexpr Regs kLeafRegs = {4, 1, 3, 2, 5, 0};
constexpr std::int16_t kSaveSlot = -68;  // A around MSH (below M[0..15])
constexpr std::int16_t kMaxOff = std::numeric_limits<std::int16_t>::max();

constexpr std::int16_t mem_slot(std::uint32_t k) { return static_cast<std::int16_t>(-4 * (16 - static_cast<int>(k))); }
constexpr std::int16_t ctx_off(std::size_t off) { return static_cast<std::int16_t>(off); }

class Emitter {
 public:
  explicit Emitter(std::size_t classic_len) : labels_(classic_len, kUnplaced) {}

  std::size_t new_label() {
    labels_.push_back(kUnplaced);
    return labels_.size() - 1;
  }
  void place(std::size_t label) { labels_[label] = out_.size(); }
  void emit(const isa::Insn& in) { out_.push_back(in); }
  // A jump (JA or conditional) to a label, patched at the end.
  void jump(isa::Insn in, std::size_t label, std::size_t classic_pc) {
    fixups_.push_back({out_.size(), label, classic_pc});
    out_.push_back(in);
  }
  void defer(std::function<void()> block) { deferred_.push_back(std::move(block)); }
  [[nodiscard]] std::size_t size() const { return out_.size(); }

  // Inserts instructions before everything emitted so far (the prologue,
  // decided after the body). Relative jumps are unaffected.
  void prepend(const std::vector<isa::Insn>& insns) {
    out_.insert(out_.begin(), insns.begin(), insns.end());
    for (auto& f : fixups_) f.at += insns.size();
    for (auto& l : labels_)
      if (l != kUnplaced) l += insns.size();
  }

  // Emits the deferred (out-of-line) blocks; they may defer more.
  void flush_deferred() {
    for (std::size_t i = 0; i < deferred_.size(); ++i) {
      auto block = std::move(deferred_[i]);  // a block may defer more: deferred_ may grow
      block();
    }
    deferred_.clear();
  }

  Result<std::vector<isa::Insn>> finish() {
    flush_deferred();
    for (const auto& f : fixups_) {
      const std::int64_t rel =
          static_cast<std::int64_t>(labels_[f.label]) - static_cast<std::int64_t>(f.at) - 1;
      if (rel > std::numeric_limits<std::int16_t>::max() || rel < std::numeric_limits<std::int16_t>::min())
        return insn_error(E2BIG, f.classic_pc, "translated jump does not fit in 16 bits (program too large)");
      out_[f.at].off = static_cast<std::int16_t>(rel);
    }
    return std::move(out_);
  }

 private:
  static constexpr std::size_t kUnplaced = static_cast<std::size_t>(-1);
  struct Fixup {
    std::size_t at, label, classic_pc;
  };
  std::vector<isa::Insn> out_;
  std::vector<std::size_t> labels_;
  std::vector<Fixup> fixups_;
  std::vector<std::function<void()>> deferred_;
};

// Width-indexed rows for direct loads.
Op ldx(unsigned size) { return size == 4 ? Op::LdxW : size == 2 ? Op::LdxH : Op::LdxB; }

class Translator {
 public:
  Translator(std::span<const Insn> prog, Target target, bool hoist)
      : prog_(prog),
        target_(target),
        hoist_(hoist),
        e_(prog.size()),
        regs_(calls_helpers(prog) ? kCallRegs : kLeafRegs) {}

  Result<Translation> run() {
    analyse();
    Translation t;
    for (pc_ = 0; pc_ < prog_.size(); ++pc_) {
      e_.place(pc_);
      t.start.push_back(e_.size());
      if (seg_end_[pc_] != 0) hoist(pc_);
      one(prog_[pc_]);
    }
    // The out-of-line blocks first: they too read the context (the
    // SKF_NET_OFF / SKF_LL_OFF bases of a negative LD IND offset), and the
    // prologue must know that before it decides about r6.
    e_.flush_deferred();
    // Prologue: ctx, packet and length to their registers if read there (not
    // where they arrive), A and X zeroed if they may
    // be read before written (the kernel zeroes both).
    std::vector<isa::Insn> prologue;
    prologue.reserve(5);
    if ((ctx_used_ || target_ == Target::Seccomp) && kCtx != 1) prologue.push_back(make(Op::MovReg, kCtx, 1));
    if (packet_used_ && kData != 2) prologue.push_back(make(Op::MovReg, kData, 2));
    if (packet_used_ && kLen != 3) prologue.push_back(make(Op::MovReg, kLen, 3));
    if (a_live_in_[0]) prologue.push_back(make(Op::Mov32Imm, kA, 0, 0, 0));
    if (x_live_in_[0]) prologue.push_back(make(Op::Mov32Imm, kX, 0, 0, 0));
    e_.prepend(prologue);
    for (auto& s : t.start) s += prologue.size();
    auto insns = e_.finish();
    if (!insns.ok()) return insns.error();
    t.insns = std::move(*insns);
    t.packet_args = packet_used_;
    t.ctx_reads = ctx_reads_;
    return t;
  }

 private:
  // ---- analysis (jumps are forward, so one pass in each direction is exact;
  //      with libpcap's backward ja everything is assumed live and unbounded)
  struct Effect {
    bool reads_a, writes_a, reads_x, writes_x;
  };
  static Effect effect(const Insn& in) {
    const OpInfo& row = *lookup(in.code);
    switch (row.kind) {
      case Kind::LdAbs:
        if (const AncInfo* a = ancillary(in.k)) {
          const bool ax = a->anc == Anc::AluXorX || a->anc == Anc::NlAttr || a->anc == Anc::NlAttrNest;
          return {ax, true, ax, false};
        }
        return {false, true, false, false};
      case Kind::LdInd: return {false, true, true, false};
      case Kind::LdLen: case Kind::LdImm: case Kind::LdMem: return {false, true, false, false};
      case Kind::LdxImm: case Kind::LdxMem: case Kind::LdxLen: case Kind::LdxMsh: return {false, false, false, true};
      case Kind::St: case Kind::JmpK: case Kind::RetA: return {true, false, false, false};
      case Kind::Stx: return {false, false, true, false};
      case Kind::AluK: case Kind::Neg: return {true, true, false, false};
      case Kind::AluX: return {true, true, true, false};
      case Kind::JmpX: return {true, false, true, false};
      case Kind::Tax: return {true, false, false, true};
      case Kind::Txa: return {false, true, true, false};
      case Kind::Ja: case Kind::RetK: return {false, false, false, false};
    }
    return {true, true, true, true};
  }
  std::vector<std::size_t> successors(std::size_t pc) const {
    const Insn& in = prog_[pc];
    const OpInfo& row = *lookup(in.code);
    switch (row.kind) {
      case Kind::Ja: return {ja_target(pc, in.k)};
      case Kind::JmpK: case Kind::JmpX: return {pc + 1 + in.jt, pc + 1 + in.jf};
      case Kind::RetK: case Kind::RetA: return {};
      case Kind::LdAbs: case Kind::LdInd: case Kind::LdLen: case Kind::LdImm: case Kind::LdMem: case Kind::LdxImm:
      case Kind::LdxMem: case Kind::LdxLen: case Kind::LdxMsh: case Kind::St: case Kind::Stx: case Kind::AluK:
      case Kind::AluX: case Kind::Neg: case Kind::Tax: case Kind::Txa:
        return {pc + 1};
    }
    return {};
  }
  static std::size_t ja_target(std::size_t pc, std::uint32_t k) {
    return static_cast<std::size_t>(static_cast<std::int64_t>(pc) + 1 + static_cast<std::int32_t>(k));
  }
  void analyse() {
    const std::size_t n = prog_.size();
    a_live_in_.assign(n, true);
    x_live_in_.assign(n, true);
    a_live_out_.assign(n, true);
    x_bound_.assign(n, kUnknownX);
    segments();
    if (has_backward_ja(prog_)) return;
    for (std::size_t pc = n; pc-- > 0;) {  // liveness, backwards
      bool a_out = false, x_out = false;
      for (const std::size_t s : successors(pc)) {
        a_out = a_out || a_live_in_[s];
        x_out = x_out || x_live_in_[s];
      }
      const Effect e = effect(prog_[pc]);
      a_live_out_[pc] = a_out;
      a_live_in_[pc] = e.reads_a || (a_out && !e.writes_a);
      x_live_in_[pc] = e.reads_x || (x_out && !e.writes_x);
    }
    std::vector<bool> reached(n, false);  // largest value X can hold, forwards
    reached[0] = true;
    x_bound_[0] = 0;
    for (std::size_t pc = 0; pc < n; ++pc) {
      if (!reached[pc]) continue;
      const Insn& in = prog_[pc];
      std::uint64_t out = x_bound_[pc];
      switch (lookup(in.code)->kind) {
        case Kind::LdxImm: out = in.k; break;
        case Kind::LdxMsh: out = 60; break;
        case Kind::LdxMem: case Kind::LdxLen: case Kind::Tax: out = kUnknownX; break;
        case Kind::LdAbs: case Kind::LdInd: case Kind::LdLen: case Kind::LdImm: case Kind::LdMem: case Kind::St:
        case Kind::Stx: case Kind::AluK: case Kind::AluX: case Kind::Neg: case Kind::Ja: case Kind::JmpK:
        case Kind::JmpX: case Kind::RetK: case Kind::RetA: case Kind::Txa:
          break;
      }
      for (const std::size_t s : successors(pc)) {
        x_bound_[s] = reached[s] ? std::max(x_bound_[s], out) : out;
        reached[s] = true;
      }
    }
  }
  static constexpr std::uint64_t kUnknownX = 0xffffffffULL;

  // ---- hoisting of bounds checks
  // A segment is a run of classic instructions entered only at its head:
  // every other instruction's only predecessor is the one before it (so
  // every path to it passes the head). The packet loads at constant
  // offsets in a segment (LD ABS k >= 0, MSH) need len >= k + size; with two
  // or more of them ending within kHoistLimit bytes, the head tests the
  // largest of those ends once, and those loads have no other check. Packets shorter than that end
  // take a copy of the segment with every check (emitted out of line, its
  // inner jumps to its own labels, leaving to the next head), so a failed
  // load still returns 0 exactly where the kernel's would.
  // Only with CheckOptions::hoist_checks: hoisting up to the farthest load
  // measured 15-20% slower on the benchmark's mix of short and long frames
  // (the hoisted test becomes a mispredicted branch; the per-load tests it
  // replaces almost never fail), and still ~10% slower with this cap.
  // Loads ending past this many bytes keep their own check: a shorter frame
  // is a runt or a cut capture, so a hoisted test up to here rarely fails.
  static constexpr std::int64_t kHoistLimit = 42;  // Ethernet + ARP / IPv4 + UDP headers
  void segments() {
    const std::size_t n = prog_.size();
    std::vector<unsigned> preds(n, 0);
    std::vector<bool> from_prev(n, false);
    for (std::size_t pc = 0; pc < n; ++pc)
      for (const std::size_t s : successors(pc)) {
        if (s >= n) continue;
        ++preds[s];
        if (s == pc + 1) from_prev[s] = true;
      }
    seg_end_.assign(n, 0);
    hoist_end_.assign(n, 0);
    if (target_ != Target::Socket || !hoist_) return;
    for (std::size_t h = 0; h < n;) {
      std::size_t e = h + 1;
      while (e < n && preds[e] == 1 && from_prev[e]) ++e;
      std::int64_t max_end = 0;
      unsigned loads = 0;
      for (std::size_t pc = h; pc < e; ++pc) {
        const Insn& in = prog_[pc];
        const Kind kind = lookup(in.code)->kind;
        if ((kind != Kind::LdAbs && kind != Kind::LdxMsh) || static_cast<std::int32_t>(in.k) < 0) continue;
        const std::int64_t end = static_cast<std::int64_t>(in.k) + (kind == Kind::LdxMsh ? 1 : size_bytes(*lookup(in.code)));
        if (end > kHoistLimit) continue;
        max_end = std::max(max_end, end);
        ++loads;
      }
      if (loads >= 2) {
        seg_end_[h] = e;
        hoist_end_[h] = max_end;
      }
      h = e;
    }
  }
  // At the head h of a segment with hoisted checks.
  void hoist(std::size_t h) {
    const std::size_t e = seg_end_[h];
    const std::int64_t end = hoist_end_[h];
    const std::size_t checked = e_.new_label();
    packet_used_ = true;
    e_.jump(make(Op::JltImm, kLen, 0, 0, static_cast<std::int32_t>(end)), checked, h);
    hoisted_end_ = end;
    hoisted_until_ = e;
    e_.defer([this, h, e, checked] {
      const std::size_t saved = pc_;
      copy_labels_.assign(e - h, 0);
      for (std::size_t pc = h + 1; pc < e; ++pc) copy_labels_[pc - h] = e_.new_label();
      copy_head_ = h;
      copy_end_ = e;
      e_.place(checked);
      for (pc_ = h; pc_ < e; ++pc_) {
        if (pc_ > h) e_.place(copy_labels_[pc_ - h]);
        one(prog_[pc_]);
      }
      const Kind last = lookup(prog_[e - 1].code)->kind;
      const bool ends = last == Kind::RetK || last == Kind::RetA || (last == Kind::Ja && prog_[e - 1].k != 0);
      copy_head_ = copy_end_ = kNoLabel;
      if (!ends && e < prog_.size()) e_.jump(make(Op::Ja), e, e - 1);
      pc_ = saved;
    });
  }

  // The label of classic pc `t`: its own, or in a segment's checked copy
  // (see hoisting) the copy's label for the segment's inner instructions.
  std::size_t label_for(std::size_t t) const {
    return t > copy_head_ && t < copy_end_ ? copy_labels_[t - copy_head_] : t;
  }
  std::size_t target_label(std::uint64_t rel) const { return label_for(pc_ + 1 + static_cast<std::size_t>(rel)); }
  // ja's k is a signed offset in libpcap mode (backward jumps).
  std::size_t ja_label(std::uint32_t k) const {
    return label_for(static_cast<std::size_t>(static_cast<std::int64_t>(pc_) + 1 + static_cast<std::int32_t>(k)));
  }

  void ret_zero() {
    e_.emit(make(Op::Mov32Imm, kA, 0, 0, 0));
    e_.emit(make(Op::Exit));
  }
  void ld_ctx(std::uint8_t dst, std::size_t off) {
    ctx_used_ = true;
    ctx_reads_ |= ctx_bit(off);
    e_.emit(make(Op::LdxW, dst, kCtx, ctx_off(off)));
  }

  // The shared "return 0" block of failed packet loads (placed at the end).
  std::size_t fail_label() {
    if (fail_ == kNoLabel) {
      fail_ = e_.new_label();
      e_.defer([this] {
        e_.place(fail_);
        ret_zero();
      });
    }
    return fail_;
  }
  // A = the big-endian value of `size` bytes at [reg + off] (bounds checked).
  void load_be(unsigned size, std::uint8_t reg, std::int16_t off, std::uint8_t dst = kA) {
    e_.emit(make(ldx(size), dst, reg, off));
    if (size == 2) e_.emit(make(Op::Be16, dst));
    if (size == 4) e_.emit(make(Op::Be32, dst));
  }
  // dst (A) = packet[k], 0 <= k <= INT32_MAX: "if len < k + size return 0", load.
  void direct_abs(unsigned size, std::uint32_t k, std::uint8_t dst = kA) {
    packet_used_ = true;
    const std::int64_t end = static_cast<std::int64_t>(k) + size;
    if (end > std::numeric_limits<std::int32_t>::max()) {  // past any packet
      e_.jump(make(Op::Ja), fail_label(), pc_);
      return;
    }
    if (end > hoisted_end_) e_.jump(make(Op::JltImm, kLen, 0, 0, static_cast<std::int32_t>(end)), fail_label(), pc_);
    if (k <= static_cast<std::uint32_t>(kMaxOff)) {
      load_be(size, kData, static_cast<std::int16_t>(k), dst);
    } else {
      e_.emit(make(Op::MovReg, kS1, kData));
      e_.emit(make(Op::AddImm, kS1, 0, 0, static_cast<std::int32_t>(k)));
      load_be(size, kS1, 0, dst);
    }
  }
  // A = packet[X + k] where X + k is known to be a non-negative int
  // (0 <= k, X <= INT32_MAX - k).
  void direct_ind(unsigned size, std::uint32_t k) {
    packet_used_ = true;
    const std::int64_t end = static_cast<std::int64_t>(k) + size;
    if (end > std::numeric_limits<std::int32_t>::max()) {
      e_.jump(make(Op::Ja), fail_label(), pc_);
      return;
    }
    e_.emit(make(Op::Mov32Reg, kS1, kX));  // zero-extended X
    e_.emit(make(Op::AddImm, kS1, 0, 0, static_cast<std::int32_t>(end)));
    e_.jump(make(Op::JgtReg, kS1, kLen), fail_label(), pc_);
    e_.emit(make(Op::AddReg, kS1, kData));
    load_be(size, kS1, static_cast<std::int16_t>(-static_cast<int>(size)));
  }

  // A = packet[off] where `reg` holds the offset as a zero-extended 32-bit
  // value taken as signed (LD_IND's rule): negative or past the captured
  // length, the run returns 0. Clobbers reg. known_nonneg: the caller has
  // tested the sign already.
  void load_at_w32(unsigned size, std::uint8_t reg, bool known_nonneg = false) {
    packet_used_ = true;
    if (!known_nonneg) e_.jump(make(Op::Jslt32Imm, reg, 0, 0, 0), fail_label(), pc_);
    e_.emit(make(Op::AddImm, reg, 0, 0, static_cast<std::int32_t>(size)));
    e_.jump(make(Op::JgtReg, reg, kLen), fail_label(), pc_);
    e_.emit(make(Op::AddReg, reg, kData));
    load_be(size, reg, static_cast<std::int16_t>(-static_cast<int>(size)));
  }
  // A = packet[ctx->field + rel] (the SKF_NET_OFF / SKF_LL_OFF areas); rel
  // is added in 32 bits, as LD_IND adds src and imm.
  void load_rel(unsigned size, std::size_t field, std::int32_t rel) {
    ld_ctx(kS1, field);
    e_.emit(make(Op::Add32Imm, kS1, 0, 0, rel));
    load_at_w32(size, kS1);
  }

  // A = packet[k] of `size` bytes for a constant offset (LD ABS, MSH).
  void packet_abs(unsigned size, std::uint32_t k) {
    const auto sk = static_cast<std::int32_t>(k);
    if (sk >= 0) {
      direct_abs(size, k);
    } else if (sk >= kSkfNetOff) {
      load_rel(size, offsetof(SkbContext, net_off), sk - kSkfNetOff);
    } else if (sk >= kSkfLlOff) {
      load_rel(size, offsetof(SkbContext, ll_off), sk - kSkfLlOff);
    } else {
      ret_zero();
    }
  }

  // The general X + k load (k any): dispatch on the sign of the 32-bit sum.
  void packet_ind_general(unsigned size, std::uint32_t k, std::size_t cont) {
    const std::size_t pc = pc_;
    const std::size_t neg = e_.new_label(), ll = e_.new_label();
    e_.emit(make(Op::Mov32Reg, kS1, kX));
    e_.emit(make(Op::Add32Imm, kS1, 0, 0, static_cast<std::int32_t>(k)));
    e_.jump(make(Op::Jslt32Imm, kS1, 0, 0, 0), neg, pc);
    load_at_w32(size, kS1, true);
    e_.jump(make(Op::Ja), cont, pc);
    e_.place(neg);
    e_.jump(make(Op::Jslt32Imm, kS1, 0, 0, kSkfLlOff), fail_label(), pc);
    e_.jump(make(Op::Jslt32Imm, kS1, 0, 0, kSkfNetOff), ll, pc);
    ld_ctx(kS2, offsetof(SkbContext, net_off));
    e_.emit(make(Op::Add32Reg, kS2, kS1));
    e_.emit(make(Op::Add32Imm, kS2, 0, 0, -kSkfNetOff));
    load_at_w32(size, kS2);
    e_.jump(make(Op::Ja), cont, pc);
    e_.place(ll);
    ld_ctx(kS2, offsetof(SkbContext, ll_off));
    e_.emit(make(Op::Add32Reg, kS2, kS1));
    e_.emit(make(Op::Add32Imm, kS2, 0, 0, -kSkfLlOff));
    load_at_w32(size, kS2);
    e_.jump(make(Op::Ja), cont, pc);
  }

  void packet_ind(unsigned size, std::uint32_t k) {
    const auto sk = static_cast<std::int32_t>(k);
    const std::size_t cont = e_.new_label();
    if (sk < 0) {
      packet_ind_general(size, k, cont);
    } else if (x_bound_[pc_] <= static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max() - sk)) {
      // X is known small here (e.g. set by ldxb 4*([k]&0xf)): X + k cannot be negative.
      direct_ind(size, k);
    } else {
      // Fast path: X <= INT32_MAX - k means X + k is a non-negative int.
      const std::size_t slow = e_.new_label();
      e_.jump(make(Op::Jgt32Imm, kX, 0, 0, std::numeric_limits<std::int32_t>::max() - sk), slow, pc_);
      direct_ind(size, k);
      const std::size_t pc = pc_;
      e_.defer([this, size, k, slow, cont, pc] {
        const std::size_t saved = pc_;
        pc_ = pc;
        e_.place(slow);
        packet_ind_general(size, k, cont);
        pc_ = saved;
      });
    }
    e_.place(cont);
  }

  void ancillary_load(const AncInfo& a) {
    switch (a.anc) {
      case Anc::Protocol: ld_ctx(kA, offsetof(SkbContext, protocol)); break;
      case Anc::PktType: ld_ctx(kA, offsetof(SkbContext, pkt_type)); break;
      case Anc::IfIndex: ld_ctx(kA, offsetof(SkbContext, ifindex)); break;
      case Anc::Mark: ld_ctx(kA, offsetof(SkbContext, mark)); break;
      case Anc::Queue: ld_ctx(kA, offsetof(SkbContext, queue)); break;
      case Anc::HaType: ld_ctx(kA, offsetof(SkbContext, hatype)); break;
      case Anc::RxHash: ld_ctx(kA, offsetof(SkbContext, rxhash)); break;
      case Anc::Cpu: ld_ctx(kA, offsetof(SkbContext, cpu)); break;
      case Anc::VlanTag: ld_ctx(kA, offsetof(SkbContext, vlan_tci)); break;
      case Anc::VlanTagPresent: ld_ctx(kA, offsetof(SkbContext, vlan_present)); break;
      case Anc::PayOffset: ld_ctx(kA, offsetof(SkbContext, pay_offset)); break;
      case Anc::VlanTpid: ld_ctx(kA, offsetof(SkbContext, vlan_tpid)); break;
      case Anc::AluXorX: e_.emit(make(Op::Xor32Reg, kA, kX)); break;
      case Anc::NlAttr:
      case Anc::NlAttrNest:
        ctx_used_ = true;
        e_.emit(make(Op::MovReg, 1, kCtx));
        e_.emit(make(Op::MovReg, 2, kA));
        e_.emit(make(Op::MovReg, 3, kX));
        e_.emit(make(Op::Call, 0, 0, 0,
                     static_cast<std::int32_t>(a.anc == Anc::NlAttr ? HelperId::NlAttr : HelperId::NlAttrNest)));
        break;
      case Anc::Random: e_.emit(make(Op::Call, 0, 0, 0, static_cast<std::int32_t>(HelperId::Random))); break;
    }
  }

  void jump_to(std::uint64_t rel) { e_.jump(make(Op::Ja), target_label(rel), pc_); }

  void one(const Insn& in) {
    if (pc_ >= hoisted_until_ || copy_head_ != kNoLabel) hoisted_end_ = 0;  // outside the fast segment
    const OpInfo& row = *lookup(in.code);
    const auto k = static_cast<std::int32_t>(in.k);
    switch (row.kind) {
      case Kind::LdAbs:
        if (target_ == Target::Seccomp) {
          e_.emit(make(Op::LdxW, kA, kCtx, ctx_off(in.k)));
        } else if (const AncInfo* a = ancillary(in.k)) {
          ancillary_load(*a);
        } else {
          packet_abs(size_bytes(row), in.k);
        }
        break;
      case Kind::LdInd: packet_ind(size_bytes(row), in.k); break;
      case Kind::LdLen:
      case Kind::LdxLen: {
        const std::uint8_t dst = row.kind == Kind::LdLen ? kA : kX;
        if (target_ == Target::Seccomp)
          e_.emit(make(Op::Mov32Imm, dst, 0, 0, static_cast<std::int32_t>(sizeof(SeccompData))));
        else
          ld_ctx(dst, offsetof(SkbContext, len));
        break;
      }
      case Kind::LdImm: e_.emit(make(row.ebpf, kA, 0, 0, k)); break;
      case Kind::LdxImm: e_.emit(make(row.ebpf, kX, 0, 0, k)); break;
      case Kind::LdMem: e_.emit(make(row.ebpf, kA, kFp, mem_slot(in.k))); break;
      case Kind::LdxMem: e_.emit(make(row.ebpf, kX, kFp, mem_slot(in.k))); break;
      case Kind::St: e_.emit(make(row.ebpf, kFp, kA, mem_slot(in.k))); break;
      case Kind::Stx: e_.emit(make(row.ebpf, kFp, kX, mem_slot(in.k))); break;
      case Kind::LdxMsh: {
        if (static_cast<std::int32_t>(in.k) >= 0) {  // straight into X: A untouched
          direct_abs(1, in.k, kX);
          e_.emit(make(Op::And32Imm, kX, 0, 0, 0xf));
          e_.emit(make(Op::Lsh32Imm, kX, 0, 0, 2));
          break;
        }
        const bool keep_a = a_live_out_[pc_];  // A survives MSH only if someone reads it
        if (keep_a) e_.emit(make(Op::StxW, kFp, kA, kSaveSlot));
        packet_abs(1, in.k);
        e_.emit(make(Op::And32Imm, kA, 0, 0, 0xf));
        e_.emit(make(Op::Lsh32Imm, kA, 0, 0, 2));
        e_.emit(make(Op::Mov32Reg, kX, kA));
        if (keep_a) e_.emit(make(Op::LdxW, kA, kFp, kSaveSlot));
        break;
      }
      case Kind::AluK: e_.emit(make(row.ebpf, kA, 0, 0, k)); break;
      case Kind::AluX:
        if (row.op == cbpf::Op::DivX || row.op == cbpf::Op::ModX) {
          e_.emit(make(Op::Jne32Imm, kX, 0, 2, 0));
          ret_zero();
        }
        e_.emit(make(row.ebpf, kA, kX));
        break;
      case Kind::Neg: e_.emit(make(row.ebpf, kA)); break;
      case Kind::Ja:
        if (in.k != 0) e_.jump(make(Op::Ja), ja_label(in.k), pc_);
        break;
      case Kind::JmpK:
      case Kind::JmpX: {
        const bool x = row.kind == Kind::JmpX;
        auto cond = [&](Op op) { return x ? make(op, kA, kX) : make(op, kA, 0, 0, k); };
        if (in.jt == in.jf) {
          if (in.jt != 0) jump_to(in.jt);
        } else if (in.jf == 0) {
          e_.jump(cond(row.ebpf), target_label(in.jt), pc_);
        } else if (in.jt == 0 && row.ebpf_inverse != Op::Exit) {
          e_.jump(cond(row.ebpf_inverse), target_label(in.jf), pc_);
        } else {
          e_.jump(cond(row.ebpf), target_label(in.jt), pc_);
          jump_to(in.jf);
        }
        break;
      }
      case Kind::RetK:
        e_.emit(make(Op::Mov32Imm, kA, 0, 0, k));
        e_.emit(make(Op::Exit));
        break;
      case Kind::RetA: e_.emit(make(Op::Exit)); break;
      case Kind::Tax: e_.emit(make(row.ebpf, kX, kA)); break;
      case Kind::Txa: e_.emit(make(row.ebpf, kA, kX)); break;
    }
  }

  static bool calls_helpers(std::span<const Insn> prog) {
    for (const Insn& in : prog) {
      const OpInfo* row = lookup(in.code);
      const AncInfo* a = row != nullptr && row->kind == Kind::LdAbs ? ancillary(in.k) : nullptr;
      if (a != nullptr && (a->anc == Anc::NlAttr || a->anc == Anc::NlAttrNest || a->anc == Anc::Random)) return true;
    }
    return false;
  }

  std::span<const Insn> prog_;
  Target target_;
  bool hoist_;  // CheckOptions::hoist_checks
  Emitter e_;
  const Regs regs_;
  const std::uint8_t kX = regs_.x, kCtx = regs_.ctx, kLen = regs_.len, kData = regs_.data, kS1 = regs_.s1,
                     kS2 = regs_.s2;
  std::size_t pc_ = 0;
  bool ctx_used_ = false;
  std::uint32_t ctx_reads_ = 0;  // Translation::ctx_reads
  bool packet_used_ = false;  // direct loads read r9/r8 (from r2/r3)
  static constexpr std::size_t kNoLabel = static_cast<std::size_t>(-1);
  std::size_t fail_ = kNoLabel;
  std::vector<bool> a_live_in_, x_live_in_, a_live_out_;  // per classic insn
  std::vector<std::uint64_t> x_bound_;                    // max value of X on entry to each insn
  std::vector<std::size_t> seg_end_;     // at a segment head with hoisted checks: its end (else 0)
  std::vector<std::int64_t> hoist_end_;  // ... and the largest k + size it tests
  std::int64_t hoisted_end_ = 0;         // loads ending at or below it need no check (current segment)
  std::size_t hoisted_until_ = 0;        // end of the current segment with hoisted checks
  std::size_t copy_head_ = kNoLabel, copy_end_ = kNoLabel;  // the checked copy being emitted
  std::vector<std::size_t> copy_labels_;                   // its labels by pc - copy_head_
};

}  // namespace

Result<Translation> translate(std::span<const Insn> prog, Target target, const CheckOptions& opts) {
  const Status st = target == Target::Seccomp ? check_seccomp(prog) : check(prog, opts);
  if (!st.ok()) return st.error();
  return Translator(prog, target, opts.hoist_checks).run();
}

}  // namespace userbpf::cbpf
