// Labels and jump fix-ups of the x86-64 JIT, all in one place (internal to
// src/jit).
//
// How it works
// ------------
// A label is an index into one flat vector of code offsets (kUnbound until
// bound). The first n indices are the BPF instructions of the program (label
// = pc: no table from pc to label, nothing allocated per jump target); an
// inlined copy of a function gets a fresh block of indices (add_block); local
// labels (thunks, stubs, the internal jumps of an idiom) get one index each,
// on first use. A `Label` object only holds its index, assigned lazily, so a
// `Label x;` on the stack costs nothing until it is used.
//
// Branches (jcc, jmp, call) to a label are emitted here:
//   * to a bound label (backward): rel8 if the displacement fits and the
//     caller did not ask for T_NEAR, else rel32 (T_SHORT that does not fit
//     throws Xbyak::ERR_LABEL_IS_TOO_FAR, as xbyak does);
//   * to an unbound label (forward): rel8 for T_SHORT, else rel32 (T_AUTO is
//     near: the Emitter's callers decide short forward branches from the
//     code_bounds() upper bounds, see Emitter::jump_type); the displacement
//     field is written as 0 and a fix-up {end of field, label, width} is
//     recorded.
// resolve() patches every fix-up in one pass at the end of code generation;
// an unbound label throws ERR_LABEL_IS_NOT_FOUND and a rel8 that does not
// reach throws ERR_LABEL_IS_TOO_FAR (Program::Impl::generate then generates
// the variant again with near forward branches).
//
// Encoding: the opcode bytes of each branch form (16 conditions, jmp, call;
// rel8 and rel32) are taken once per process from xbyak itself
// (branch_forms(): each form assembled by xbyak into a scratch buffer), so no
// opcode byte is spelled here; only the displacement is ours to write.
// Invariants: offsets and fix-ups are u32 code offsets into one buffer; a
// displacement is relative to the end of its branch instruction.
#pragma once

#include <xbyak/xbyak.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace userbpf::jit::detail {

// The branch conditions (x86 condition codes in encoding order), plus the
// unconditional jmp and call.
enum class Branch : std::uint8_t { O, No, B, Ae, E, Ne, Be, A, S, Ns, P, Np, L, Ge, Le, G, Jmp, Call };
inline constexpr std::size_t kBranchForms = 18;

class Labels;

// A label: its index in Labels, assigned on first use (bind or branch).
// Not copyable (two copies of an unassigned label would become two labels);
// movable.
class Label {
 public:
  Label() = default;
  Label(const Label&) = delete;
  Label& operator=(const Label&) = delete;
  Label(Label&& o) noexcept : id_(o.id_) { o.id_ = kNone; }
  Label& operator=(Label&& o) noexcept {
    id_ = o.id_;
    o.id_ = kNone;
    return *this;
  }
  ~Label() = default;

 private:
  friend class Labels;
  explicit Label(std::uint32_t id) : id_(id) {}
  static constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();
  mutable std::uint32_t id_ = kNone;
};

class Labels {
 public:
  using LabelType = Xbyak::CodeGenerator::LabelType;
  static constexpr std::uint32_t kUnbound = std::numeric_limits<std::uint32_t>::max();

  // `code` assembles into `buf` (its user buffer); labels 0..fixed-1 exist
  // from the start (the BPF instructions).
  Labels(Xbyak::CodeArray& code, std::uint8_t* buf, std::size_t fixed) : code_(code), buf_(buf) {
    offset_.reserve(fixed + 64);
    offset_.assign(fixed, kUnbound);
    fixups_.reserve(fixed / 4 + 64);
  }

  // The label with index id (a BPF pc, or pc + a block's base).
  static Label at(std::uint32_t id) { return Label(id); }
  // A fresh block of k labels; returns the index of its first one.
  std::uint32_t add_block(std::size_t k) {
    const auto first = static_cast<std::uint32_t>(offset_.size());
    offset_.resize(offset_.size() + k, kUnbound);
    return first;
  }

  // Binds l to the current code offset (binding a label twice is an
  // internal error).
  void bind(const Label& l) {
    const std::uint32_t id = index(l);
    if (offset_[id] != kUnbound) throw Xbyak::Error(Xbyak::ERR_LABEL_IS_REDEFINED);
    offset_[id] = here();
  }
  bool bound(const Label& l) const { return l.id_ != Label::kNone && offset_[l.id_] != kUnbound; }
  // The code offset of a bound label.
  std::uint32_t offset(const Label& l) const { return offset_[l.id_]; }

  // A branch of kind b to l (see the comment at the top for the forms).
  void branch(Branch b, const Label& l, LabelType type) {
    const Forms& f = branch_forms();
    const auto k = static_cast<std::size_t>(b);
    const std::uint32_t id = index(l);
    const std::uint32_t at = here();
    if (offset_[id] != kUnbound) {
      const std::int64_t target = offset_[id];
      if (type != LabelType::T_NEAR && f.short_len[k] != 0) {
        const std::int64_t d = target - (at + f.short_len[k] + 1);
        if (d >= -128 && d <= 127) {
          put(f.short_op[k], f.short_len[k]);
          code_.db(static_cast<std::uint8_t>(d));
          return;
        }
      }
      if (type == LabelType::T_SHORT) throw Xbyak::Error(Xbyak::ERR_LABEL_IS_TOO_FAR);
      put(f.near_op[k], f.near_len[k]);
      code_.dd(static_cast<std::uint32_t>(target - (at + f.near_len[k] + 4)));
      return;
    }
    if (type == LabelType::T_SHORT && f.short_len[k] != 0) {
      put(f.short_op[k], f.short_len[k]);
      code_.db(0);
      fixups_.push_back({here(), id, 1});
    } else {
      put(f.near_op[k], f.near_len[k]);
      code_.dd(0);
      fixups_.push_back({here(), id, 4});
    }
  }

  // Patches every recorded fix-up (one pass; see the top comment).
  void resolve() {
    for (const Fixup& x : fixups_) {
      const std::uint32_t target = offset_[x.label];
      if (target == kUnbound) throw Xbyak::Error(Xbyak::ERR_LABEL_IS_NOT_FOUND);
      const std::int64_t d = static_cast<std::int64_t>(target) - x.end;
      if (x.width == 1) {
        if (d < -128 || d > 127) throw Xbyak::Error(Xbyak::ERR_LABEL_IS_TOO_FAR);
        buf_[x.end - 1] = static_cast<std::uint8_t>(d);
      } else {
        const auto d32 = static_cast<std::uint32_t>(d);
        std::memcpy(buf_ + x.end - 4, &d32, 4);
      }
    }
    fixups_.clear();
  }

  // The opcode bytes (without displacement) of each branch form.
  struct Forms {
    std::array<std::array<std::uint8_t, 2>, kBranchForms> short_op{}, near_op{};
    std::array<std::uint8_t, kBranchForms> short_len{}, near_len{};  // short_len 0: no rel8 form (call)
  };
  static const Forms& branch_forms();

 private:
  struct Fixup {
    std::uint32_t end;    // code offset just past the displacement field
    std::uint32_t label;  // index into offset_
    std::uint32_t width;  // 1 (rel8) or 4 (rel32)
  };
  std::uint32_t here() const { return static_cast<std::uint32_t>(code_.getSize()); }
  std::uint32_t index(const Label& l) {
    if (l.id_ == Label::kNone) {
      l.id_ = static_cast<std::uint32_t>(offset_.size());
      offset_.push_back(kUnbound);
    }
    return l.id_;
  }
  void put(const std::array<std::uint8_t, 2>& op, std::uint8_t len) {
    for (std::uint8_t i = 0; i < len; ++i) code_.db(op[i]);
  }

  Xbyak::CodeArray& code_;
  std::uint8_t* buf_;
  std::vector<std::uint32_t> offset_;
  std::vector<Fixup> fixups_;
};

// Built once: each form assembled by xbyak (a backward branch to a label
// bound right before it, so xbyak picks the rel8 / rel32 form asked for) and
// its bytes before the displacement kept.
inline const Labels::Forms& Labels::branch_forms() {
  static const Forms kForms = [] {
    Forms f;
    alignas(16) static std::uint8_t scratch[256];
    using CG = Xbyak::CodeGenerator;
    struct Gen : CG {
      Gen() : CG(sizeof(scratch), scratch) {}
      void one(std::size_t k, LabelType t) {
        Xbyak::Label l;
        L(l);
        switch (static_cast<Branch>(k)) {
          case Branch::O: jo(l, t); break;
          case Branch::No: jno(l, t); break;
          case Branch::B: jb(l, t); break;
          case Branch::Ae: jae(l, t); break;
          case Branch::E: je(l, t); break;
          case Branch::Ne: jne(l, t); break;
          case Branch::Be: jbe(l, t); break;
          case Branch::A: ja(l, t); break;
          case Branch::S: js(l, t); break;
          case Branch::Ns: jns(l, t); break;
          case Branch::P: jp(l, t); break;
          case Branch::Np: jnp(l, t); break;
          case Branch::L: jl(l, t); break;
          case Branch::Ge: jge(l, t); break;
          case Branch::Le: jle(l, t); break;
          case Branch::G: jg(l, t); break;
          case Branch::Jmp: jmp(l, t); break;
          case Branch::Call: call(l); break;
        }
      }
    };
    for (std::size_t k = 0; k < kBranchForms; ++k) {
      for (const bool near : {false, true}) {
        if (!near && static_cast<Branch>(k) == Branch::Call) continue;  // no rel8 call
        Gen g;
        g.one(k, near ? CG::T_NEAR : CG::T_SHORT);
        const std::size_t len = g.getSize() - (near ? 4 : 1);
        auto& op = near ? f.near_op[k] : f.short_op[k];
        for (std::size_t i = 0; i < len && i < op.size(); ++i) op[i] = g.getCode()[i];
        (near ? f.near_len[k] : f.short_len[k]) = static_cast<std::uint8_t>(len);
      }
    }
    return f;
  }();
  return kForms;
}

}  // namespace userbpf::jit::detail
