// Structure-aware program generator (see progen.hpp for what it produces).
//
// How it works: a Gen emits one function at a time into a vector of Insn.
// It tracks which registers hold initialised scalars (`init_`, a bit set):
// a statement only reads registers from that set (unless its fault is to
// read an uninitialised one) and records what it writes. Blocks that may be
// skipped at run time (if-blocks, null-checked map blocks, loop bodies)
// leave the intersection of the sets on entry and exit, which is what every
// path guarantees. Helper and bpf-to-bpf calls clobber r1-r5 and set r0, as
// the kernel's verifier models them. Registers that must keep their value
// for a while (r6 = context in the main program, loop counters, the map
// value pointer inside its null-checked block) are in `reserved_` and are
// never chosen as destinations.
//
// Stack layout of every frame: [r10-8, r10) the map key, [r10-24, r10-8)
// the value buffer for map updates, [r10-256, r10-24) spill slots for
// statements. Forward jumps are emitted with a placeholder offset and
// patched when their block is complete; local calls are patched when the
// subprograms are appended after the main program.
#include "fuzz/gen/progen.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <array>
#include <initializer_list>
#include <limits>
#include <optional>

#include "asm/asm.hpp"
#include "spec/spec.hpp"

namespace userbpf::fuzz {

// ---------------------------------------------------------------- Rng
Rng::Rng(std::span<const std::uint8_t> bytes) : bytes_(bytes) {
  std::uint64_t h = 0x9e3779b97f4a7c15ULL ^ bytes.size();
  for (std::uint8_t b : bytes) h = (h ^ b) * 0x100000001b3ULL;
  state_ = h;
}

std::uint64_t Rng::next() {
  state_ += 0x9e3779b97f4a7c15ULL;
  std::uint64_t z = state_;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::uint32_t Rng::below(std::uint32_t n) {
  if (n <= 1) return 0;
  if (pos_ < bytes_.size()) {
    // One fuzzer byte per decision (two when the range needs them).
    std::uint32_t v = bytes_[pos_++];
    if (n > 256 && pos_ < bytes_.size()) v = (v << 8) | bytes_[pos_++];
    return v % n;
  }
  return static_cast<std::uint32_t>(next() % n);
}

std::int64_t Rng::range(std::int64_t lo, std::int64_t hi) {
  const auto span = static_cast<std::uint64_t>(hi - lo) + 1;
  const std::uint64_t r = span == 0 ? next() : (pos_ < bytes_.size() ? below(256) : next()) % span;
  return lo + static_cast<std::int64_t>(r);
}

namespace {

using isa::Insn;
using isa::make;
using isa::Op;

constexpr std::int16_t kKeyOff = -8;
constexpr std::int16_t kValueOff = -24;
constexpr std::uint32_t kValueSize = 16;
constexpr std::uint8_t kCtxReg = 6;

// Faults a program may carry (one at most).
enum class Fault : std::uint8_t {
  None, UninitReg, NoNullCheck, MapValueOob, MapValueNeg, UnboundedVarOff, StackOob, StackMisaligned, CtxOob,
  CtxWrite, BadShift, DivByZeroImm, InfiniteLoop, WriteFp, PtrAlu, UnknownHelper, HelperNotAllowed, BadKeyPtr,
  ReturnUninit, JumpIntoLddw, NullCheck32, PacketOob, Count
};
constexpr std::array<const char*, static_cast<std::size_t>(Fault::Count)> kFaultNames = {
    "none", "uninitialised register read", "map value used without null check", "map value access past the end",
    "negative map value offset", "unbounded variable map value offset", "stack access out of bounds",
    "misaligned stack access", "context access out of bounds", "write to read-only context",
    "shift by an out-of-range immediate", "division by immediate zero", "loop without progress",
    "write to r10", "ALU on the context pointer", "unknown helper id", "helper not allowed for the program type",
    "map key pointer outside the stack", "r0 not set at exit", "jump into the middle of lddw",
    "null check with a 32-bit compare", "packet access past the bounds check"};

std::vector<Op> rows_where(bool (*pred)(const isa::OpInfo&)) {
  std::vector<Op> v;
  for (const auto& r : isa::kOps)
    if (r.in_kernel && pred(r)) v.push_back(r.op);
  return v;
}

const std::vector<Op>& alu_k_rows() {
  static const auto v = rows_where([](const isa::OpInfo& r) { return r.form == isa::Form::AluK; });
  return v;
}
const std::vector<Op>& alu_x_rows() {
  static const auto v = rows_where([](const isa::OpInfo& r) { return r.form == isa::Form::AluX; });
  return v;
}
const std::vector<Op>& unary_rows() {
  static const auto v = rows_where([](const isa::OpInfo& r) {
    return r.form == isa::Form::Neg || r.form == isa::Form::End || r.form == isa::Form::MovSx;
  });
  return v;
}
const std::vector<Op>& jmp_k_rows() {
  static const auto v = rows_where([](const isa::OpInfo& r) { return r.form == isa::Form::JmpK; });
  return v;
}
const std::vector<Op>& jmp_x_rows() {
  static const auto v = rows_where([](const isa::OpInfo& r) { return r.form == isa::Form::JmpX; });
  return v;
}
const std::vector<Op>& atomic_rows() {
  static const auto v = rows_where([](const isa::OpInfo& r) { return r.form == isa::Form::Atomic; });
  return v;
}
// Loads / stores of each width, indexed by log2(size).
Op sized_row(isa::Form form, unsigned size, bool sign = false) {
  for (const auto& r : isa::kOps) {
    if (r.form != form || isa::access_size(r.op) != size) continue;
    const bool is_sign = r.kop.size() > 0 && r.kop[0] == 's';
    if (form == isa::Form::Ldx && is_sign != sign) continue;
    return r.op;
  }
  return Op::Exit;
}

bool is_shift(Op op) {
  const auto k = isa::info(op).kop;
  return k == "<<=" || k == ">>=" || k == "s>>=";
}
bool is_divmod(Op op) {
  const auto k = isa::info(op).kop;
  return k == "/=" || k == "%=" || k == "s/=" || k == "s%=";
}

struct Subprog {
  std::vector<Insn> code;
  unsigned nargs = 0;
};

struct CallFix {
  std::size_t at;   // index in the function's code
  std::size_t sub;  // subprogram index
};

class Gen {
 public:
  Gen(Rng& rng, const GenOptions& o, GenProgram& out) : rng_(rng), o_(o), out_(out) {}

  void run() {
    pt_ = spec::prog_type(o_.prog_type);
    out_.prog_type = o_.prog_type;
    out_.maps.push_back({1 /* hash */, 4, kValueSize, 8, -1, "hash0"});
    out_.maps.push_back({2 /* array */, 4, kValueSize, 4, -1, "array1"});
    // (PacketOob is drawn separately, for XDP only, so that programs of the
    // other types stay what they were for a given seed)
    if (rng_.chance(o_.fault_percent))
      pending_ = static_cast<Fault>(1 + rng_.below(static_cast<std::uint32_t>(Fault::PacketOob) - 1));
    if (pending_ != Fault::None && direct_packet() && rng_.chance(25)) pending_ = Fault::PacketOob;
    ld_abs_ = pt_ != nullptr && pt_->ld_abs && rng_.chance(30);
    subprogs_ok_ = o_.subprograms && !ld_abs_;
    budget_ = o_.max_statements;

    // main
    Fn main_fn;
    fn_ = &main_fn;
    init_ = 0;
    reserved_ = bit(kCtxReg) | bit(10);
    emit(make(Op::MovReg, kCtxReg, 1));
    zero_stack();
    in_main_ = true;
    for (std::uint8_t r : {std::uint8_t{7}, std::uint8_t{8}, std::uint8_t{9}, std::uint8_t{0}})
      if (rng_.chance(75)) set_imm(r);
    const unsigned n = 1 + rng_.below(o_.max_statements);
    for (unsigned i = 0; i < n && budget_ > 0; ++i) statement(0);
    finish_function();
    in_main_ = false;

    // subprograms (they may be added while generating others: index loop)
    std::vector<Fn> subs_code;
    for (std::size_t s = 0; s < subs_.size(); ++s) {
      Fn f;
      fn_ = &f;
      init_ = 0;
      for (unsigned a = 1; a <= subs_[s].nargs; ++a) init_ |= bit(static_cast<std::uint8_t>(a));
      reserved_ = bit(10);
      budget_ = std::max(4u, o_.max_statements / 2);
      zero_stack();
      const unsigned k = 1 + rng_.below(6);
      for (unsigned i = 0; i < k && budget_ > 0; ++i) statement(0);
      finish_function();
      subs_code.push_back(std::move(f));
    }

    // layout: main, then subprograms; patch local calls
    std::vector<std::size_t> start;
    auto& code = out_.insns;
    std::vector<std::pair<std::size_t, std::size_t>> fixes;  // absolute call index, sub
    auto append = [&](Fn& f) {
      const std::size_t base = code.size();
      for (const auto& c : f.calls) fixes.push_back({base + c.at, c.sub});
      code.insert(code.end(), f.code.begin(), f.code.end());
    };
    append(main_fn);
    for (auto& f : subs_code) {
      start.push_back(code.size());
      append(f);
    }
    for (const auto& [at, sub] : fixes)
      code[at].imm = static_cast<std::int32_t>(static_cast<std::int64_t>(start[sub]) - static_cast<std::int64_t>(at) - 1);
    if (pending_ == Fault::JumpIntoLddw) inject_jump_into_lddw();
  }

 private:
  struct Fn {
    std::vector<Insn> code;
    std::vector<CallFix> calls;
  };

  static constexpr std::uint16_t bit(std::uint8_t r) { return static_cast<std::uint16_t>(1u << r); }
  void emit(const Insn& in) { fn_->code.push_back(in); }
  void emit_lddw(Op op, std::uint8_t dst, std::int32_t imm, std::int32_t imm_hi = 0) {
    emit(make(op, dst, 0, 0, imm, imm_hi));
    Insn tail;
    tail.op = Op::LddwTail;
    tail.imm = imm_hi;
    emit(tail);
  }
  std::size_t here() const { return fn_->code.size(); }
  void patch_forward(std::size_t jump_at) {
    fn_->code[jump_at].off = static_cast<std::int16_t>(here() - jump_at - 1);
  }
  bool take_fault(Fault f) {
    if (pending_ != f || !rng_.chance(40)) return false;
    out_.fault = kFaultNames[static_cast<std::size_t>(f)];
    pending_ = Fault::None;
    return true;
  }

  // A register holding an initialised scalar (or, rarely, r-any for faults).
  std::optional<std::uint8_t> scalar_reg() {
    std::array<std::uint8_t, 11> c{};
    std::size_t n = 0;
    for (std::uint8_t r = 0; r < 10; ++r)
      if ((init_ & bit(r)) != 0) c[n++] = r;
    if (n == 0) return std::nullopt;
    return c[rng_.below(static_cast<std::uint32_t>(n))];
  }
  std::optional<std::uint8_t> uninit_reg() {
    std::array<std::uint8_t, 11> c{};
    std::size_t n = 0;
    for (std::uint8_t r = 0; r < 10; ++r)
      if ((init_ & bit(r)) == 0 && (reserved_ & bit(r)) == 0) c[n++] = r;
    if (n == 0) return std::nullopt;
    return c[rng_.below(static_cast<std::uint32_t>(n))];
  }
  // A destination register (not reserved).
  std::uint8_t dst_reg() {
    for (;;) {
      const auto r = static_cast<std::uint8_t>(rng_.below(10));
      if ((reserved_ & bit(r)) == 0) return r;
    }
  }
  std::int32_t interesting_imm() {
    static constexpr std::array<std::int32_t, 12> kVals = {
        0, 1, -1, 2, 7, 8, 16, 31, 32, 63, std::numeric_limits<std::int32_t>::min(),
        std::numeric_limits<std::int32_t>::max()};
    switch (rng_.below(3)) {
      case 0: return kVals[rng_.below(kVals.size())];
      case 1: return static_cast<std::int32_t>(rng_.range(-16, 64));
      default: return static_cast<std::int32_t>(static_cast<std::uint32_t>(rng_.next()));
    }
  }
  void set_imm(std::uint8_t r) {
    emit(make(Op::MovImm, r, 0, 0, interesting_imm()));
    init_ |= bit(r);
  }
  // Reads `r` as a scalar: fine when initialised; else initialise it first
  // (or not, when that is the fault).
  std::uint8_t readable(std::uint8_t r) {
    if ((init_ & bit(r)) != 0) return r;
    if (take_fault(Fault::UninitReg)) return r;
    if ((reserved_ & bit(r)) != 0) return r;
    set_imm(r);
    return r;
  }
  std::uint8_t any_scalar() {
    if (auto r = scalar_reg()) {
      if (pending_ == Fault::UninitReg) {
        if (auto u = uninit_reg(); u && take_fault(Fault::UninitReg)) return *u;
      }
      return *r;
    }
    const std::uint8_t r = dst_reg();
    set_imm(r);
    return r;
  }
  void clobber_call() {
    init_ = static_cast<std::uint16_t>(init_ & ~(bit(1) | bit(2) | bit(3) | bit(4) | bit(5)));
    init_ |= bit(0);
  }

  void zero_stack() {
    if (!o_.init_stack) return;
    for (int off = -8; off >= -256; off -= 8) emit(make(Op::StDW, 10, 0, static_cast<std::int16_t>(off), 0));
  }

  void statement(int depth) {
    if (budget_ == 0) return;
    --budget_;
    const bool r0_free = (reserved_ & bit(0)) == 0;
    // weights
    struct Choice {
      unsigned w;
      void (Gen::*fn)(int);
    };
    const bool nest = depth < 3 && budget_ > 2;
    const Choice choices[] = {
        {18, &Gen::alu_imm},
        {14, &Gen::alu_reg},
        {5, &Gen::unary},
        {8, &Gen::stack_store},
        {6, &Gen::stack_load},
        {in_main_ && pt_ != nullptr ? 6u : 0u, &Gen::ctx_load},
        {r0_free && nest ? 9u : 0u, &Gen::map_lookup},
        {r0_free ? 4u : 0u, &Gen::map_update},
        {r0_free ? 2u : 0u, &Gen::map_delete},
        {r0_free ? 3u : 0u, &Gen::helper_call},
        {4, &Gen::atomic},
        {nest ? 10u : 0u, &Gen::if_block},
        {o_.loops && nest && loops_open_ < 2 ? 4u : 0u, &Gen::loop},
        {in_main_ && subprogs_ok_ && r0_free ? 4u : 0u, &Gen::call_subprog},
        {in_main_ && ld_abs_ && r0_free ? 3u : 0u, &Gen::ld_abs},
        {in_main_ && direct_packet() ? 6u : 0u, &Gen::packet_access},
        {1, &Gen::misc_fault},
    };
    unsigned total = 0;
    for (const auto& c : choices) total += c.w;
    unsigned pick = rng_.below(total);
    for (const auto& c : choices) {
      if (pick < c.w) {
        (this->*c.fn)(depth);
        return;
      }
      pick -= c.w;
    }
  }

  void alu_imm(int) {
    const auto& rows = alu_k_rows();
    const Op op = rows[rng_.below(static_cast<std::uint32_t>(rows.size()))];
    const std::uint8_t dst = dst_reg();
    const bool mov = isa::info(op).kop == "=";
    if (!mov) readable(dst);
    std::int32_t imm = interesting_imm();
    const int width = isa::is_64(op) ? 64 : 32;
    if (is_shift(op)) {
      if (take_fault(Fault::BadShift)) imm = width + static_cast<std::int32_t>(rng_.below(8));
      else imm = static_cast<std::int32_t>(static_cast<std::uint32_t>(imm) % static_cast<std::uint32_t>(width));
    } else if (is_divmod(op) && imm == 0 && !take_fault(Fault::DivByZeroImm)) {
      imm = 3;
    }
    emit(make(op, dst, 0, 0, imm));
    init_ |= bit(dst);
  }

  void alu_reg(int) {
    const auto& rows = alu_x_rows();
    const Op op = rows[rng_.below(static_cast<std::uint32_t>(rows.size()))];
    const std::uint8_t dst = dst_reg();
    const bool mov = isa::info(op).kop == "=";
    const std::uint8_t src = any_scalar();
    if (!mov) readable(dst);
    emit(make(op, dst, src));
    init_ |= bit(dst);
  }

  void unary(int) {
    const auto& rows = unary_rows();
    const Op op = rows[rng_.below(static_cast<std::uint32_t>(rows.size()))];
    const std::uint8_t dst = dst_reg();
    if (isa::info(op).form == isa::Form::MovSx) {
      emit(make(op, dst, any_scalar()));
    } else {
      readable(dst);
      emit(make(op, dst));
    }
    init_ |= bit(dst);
  }

  // A spill-slot offset for an access of `size` bytes (or a faulty one).
  std::int16_t stack_off(unsigned size) {
    if (take_fault(Fault::StackOob)) return static_cast<std::int16_t>(rng_.chance(50) ? -512 - 8 : 0);
    const auto slot = static_cast<std::int16_t>(-32 - 8 * static_cast<int>(rng_.below(28)));
    const auto sub = static_cast<std::int16_t>(size * rng_.below(8 / size));
    if (size > 1 && take_fault(Fault::StackMisaligned)) return static_cast<std::int16_t>(slot + 1);
    return static_cast<std::int16_t>(slot + sub);
  }
  static unsigned pick_size(Rng& rng) { return 1u << rng.below(4); }

  void stack_store(int) {
    const unsigned size = pick_size(rng_);
    const std::int16_t off = stack_off(size);
    if (rng_.chance(30)) {
      emit(make(sized_row(isa::Form::St, size), 10, 0, off, interesting_imm()));
    } else {
      emit(make(sized_row(isa::Form::Stx, size), 10, any_scalar(), off));
    }
  }

  void stack_load(int) {
    const unsigned size = pick_size(rng_);
    const bool sign = size < 8 && rng_.chance(25);
    const std::int16_t off = stack_off(size);
    const std::uint8_t dst = dst_reg();
    emit(make(sized_row(isa::Form::Ldx, size, sign), dst, 10, off));
    init_ |= bit(dst);
  }

  void ctx_load(int) {
    const std::uint8_t dst = dst_reg();
    unsigned size = 4;
    std::int32_t off = 0;
    const std::uint32_t ctx_size = pt_->ctx.size;
    if (pt_->id == 1 /* socket filter: __sk_buff u32 fields len..protocol */) {
      off = static_cast<std::int32_t>(4 * rng_.below(5));
    } else if (direct_packet()) {
      // xdp_md's scalar fields ingress_ifindex, rx_queue_index (data,
      // data_end, data_meta are pointers: packet_access uses them)
      off = static_cast<std::int32_t>(12 + 4 * rng_.below(2));
    } else {
      size = pick_size(rng_);
      const std::uint32_t limit = std::min<std::uint32_t>(ctx_size, 168);
      off = static_cast<std::int32_t>(size * rng_.below(limit / size));
    }
    if (take_fault(Fault::CtxOob)) off = static_cast<std::int32_t>(ctx_size + 8 * rng_.below(4));
    if (take_fault(Fault::CtxWrite)) {
      emit(make(sized_row(isa::Form::Stx, size), kCtxReg, any_scalar(), static_cast<std::int16_t>(off)));
      return;
    }
    emit(make(sized_row(isa::Form::Ldx, size), dst, kCtxReg, static_cast<std::int16_t>(off)));
    init_ |= bit(dst);
  }

  // *(u32 *)(r10 - 8) = key; r2 = r10 - 8 (or a faulty pointer); r1 = map
  std::size_t key_and_map() {
    const std::size_t m = rng_.below(static_cast<std::uint32_t>(out_.maps.size()));
    if (rng_.chance(60)) {
      emit(make(Op::StW, 10, 0, kKeyOff, static_cast<std::int32_t>(rng_.below(out_.maps[m].max_entries + 2))));
    } else {
      emit(make(Op::StxW, 10, any_scalar(), kKeyOff));
    }
    emit(make(Op::MovReg, 2, 10));
    emit(make(Op::AddImm, 2, 0, 0, take_fault(Fault::BadKeyPtr) ? 4 : kKeyOff));
    emit_lddw(Op::LddwMapFd, 1, static_cast<std::int32_t>(m));
    return m;
  }

  void map_lookup(int depth) {
    const std::size_t m = key_and_map();
    (void)m;
    emit(make(Op::Call, 0, 0, 0, static_cast<std::int32_t>(spec::HelperId::map_lookup_elem)));
    clobber_call();
    init_ = static_cast<std::uint16_t>(init_ & ~bit(0));
    const std::uint16_t before = init_;
    std::size_t jump = 0;
    const bool checked = !take_fault(Fault::NoNullCheck);
    if (checked) {
      jump = here();
      emit(make(take_fault(Fault::NullCheck32) ? Op::Jeq32Imm : Op::JeqImm, 0, 0, 0, 0));
    }
    reserved_ |= bit(0);
    const unsigned n = 1 + rng_.below(3);
    for (unsigned i = 0; i < n; ++i) {
      if (rng_.chance(25) && budget_ > 0) {
        statement(depth + 1);
        continue;
      }
      value_access();
    }
    if (rng_.chance(20)) var_off_access();
    reserved_ = static_cast<std::uint16_t>(reserved_ & ~bit(0));
    if (checked) patch_forward(jump);
    init_ = static_cast<std::uint16_t>(before & init_ & ~bit(0));
  }

  std::int16_t value_off(unsigned size) {
    if (take_fault(Fault::MapValueOob)) return static_cast<std::int16_t>(kValueSize - size + 1 + rng_.below(size));
    if (take_fault(Fault::MapValueNeg)) return static_cast<std::int16_t>(-static_cast<int>(size));
    return static_cast<std::int16_t>(size * rng_.below(kValueSize / size));
  }

  void value_access() {
    const unsigned size = pick_size(rng_);
    const std::int16_t off = value_off(size);
    switch (rng_.below(4)) {
      case 0: {
        const std::uint8_t dst = dst_reg();
        emit(make(sized_row(isa::Form::Ldx, size, size < 8 && rng_.chance(20)), dst, 0, off));
        init_ |= bit(dst);
        break;
      }
      case 1: emit(make(sized_row(isa::Form::Stx, size), 0, any_scalar(), off)); break;
      case 2: emit(make(sized_row(isa::Form::St, size), 0, 0, off, interesting_imm())); break;
      default: {
        // atomic add on an aligned word of the value
        const bool dw = rng_.chance(50);
        const Op op = dw ? Op::AtomicAddDW : Op::AtomicAddW;
        const unsigned sz = dw ? 8 : 4;
        emit(make(op, 0, any_scalar(), static_cast<std::int16_t>(sz * rng_.below(kValueSize / sz))));
        break;
      }
    }
  }

  // rT = scalar & 7; r0 += rT; access at an offset that stays inside.
  void var_off_access() {
    const std::uint8_t t = dst_reg();
    emit(make(Op::MovReg, t, any_scalar()));
    if (!take_fault(Fault::UnboundedVarOff)) emit(make(Op::AndImm, t, 0, 0, 7));
    emit(make(Op::AddReg, 0, t));
    init_ |= bit(t);
    const std::uint8_t dst = dst_reg();
    emit(make(Op::LdxB, dst, 0, static_cast<std::int16_t>(rng_.below(kValueSize - 7))));
    init_ |= bit(dst);
  }

  void map_update(int) {
    // value buffer [r10-24, r10-8)
    emit(make(Op::StxDW, 10, any_scalar(), kValueOff));
    emit(make(Op::StDW, 10, 0, kValueOff + 8, interesting_imm()));
    key_and_map();
    emit(make(Op::MovReg, 3, 10));
    emit(make(Op::AddImm, 3, 0, 0, kValueOff));
    emit(make(Op::MovImm, 4, 0, 0, static_cast<std::int32_t>(rng_.below(3))));  // BPF_ANY / NOEXIST / EXIST
    emit(make(Op::Call, 0, 0, 0, static_cast<std::int32_t>(spec::HelperId::map_update_elem)));
    clobber_call();
  }

  void map_delete(int) {
    key_and_map();
    emit(make(Op::Call, 0, 0, 0, static_cast<std::int32_t>(spec::HelperId::map_delete_elem)));
    clobber_call();
  }

  void helper_call(int) {
    std::int32_t id = static_cast<std::int32_t>(spec::HelperId::get_smp_processor_id);
    if (!o_.deterministic_helpers && rng_.chance(50))
      id = static_cast<std::int32_t>(rng_.chance(50) ? spec::HelperId::ktime_get_ns : spec::HelperId::get_prandom_u32);
    if (take_fault(Fault::UnknownHelper)) id = 100000 + static_cast<std::int32_t>(rng_.below(100));
    if (take_fault(Fault::HelperNotAllowed)) id = static_cast<std::int32_t>(spec::HelperId::xdp_adjust_head);
    emit(make(Op::Call, 0, 0, 0, id));
    clobber_call();
  }

  void atomic(int) {
    const auto& rows = atomic_rows();
    const Op op = rows[rng_.below(static_cast<std::uint32_t>(rows.size()))];
    const unsigned size = isa::access_size(op);
    const auto off = static_cast<std::int16_t>(-32 - 8 * static_cast<int>(rng_.below(28)));
    emit(make(size == 8 ? Op::StxDW : Op::StxW, 10, any_scalar(), off));
    const auto kop = isa::info(op).kop;
    const bool fetch = kop.find("fetch") != std::string_view::npos || kop == "xchg" || kop == "cmpxchg";
    // fetch forms write their source register: never a reserved one
    std::uint8_t src = any_scalar();
    if (fetch && (reserved_ & bit(src)) != 0) src = readable(dst_reg());
    const bool cmpxchg = kop == "cmpxchg";
    if (cmpxchg) {
      if ((reserved_ & bit(0)) != 0) return;
      readable(0);
    }
    emit(make(op, 10, src, off));
    if (cmpxchg) init_ |= bit(0);
    if (fetch && !cmpxchg) init_ |= bit(src);
  }

  void if_block(int depth) {
    const bool reg = rng_.chance(40);
    const auto& rows = reg ? jmp_x_rows() : jmp_k_rows();
    const Op op = rows[rng_.below(static_cast<std::uint32_t>(rows.size()))];
    const std::uint8_t a = any_scalar();
    const std::uint16_t before = init_;
    const std::size_t jump = here();
    if (reg) emit(make(op, a, any_scalar()));
    else emit(make(op, a, 0, 0, interesting_imm()));
    const unsigned n = 1 + rng_.below(3);
    for (unsigned i = 0; i < n; ++i) statement(depth + 1);
    std::uint16_t after = init_;
    if (rng_.chance(35)) {  // else branch
      const std::size_t skip = here();
      emit(make(Op::Ja));
      patch_forward(jump);
      init_ = before;
      const unsigned m = 1 + rng_.below(2);
      for (unsigned i = 0; i < m; ++i) statement(depth + 1);
      after &= init_;
      patch_forward(skip);
    } else {
      patch_forward(jump);
      after &= before;
    }
    init_ = after;
  }

  void loop(int depth) {
    std::uint8_t c = 0;
    {
      std::array<std::uint8_t, 4> cand{};
      std::size_t n = 0;
      for (std::uint8_t r = 6; r <= 9; ++r)
        if ((reserved_ & bit(r)) == 0) cand[n++] = r;
      if (n == 0) return;
      c = cand[rng_.below(static_cast<std::uint32_t>(n))];
    }
    const bool w32 = rng_.chance(30);
    emit(make(w32 ? Op::Mov32Imm : Op::MovImm, c, 0, 0, 0));
    init_ |= bit(c);
    reserved_ |= bit(c);
    ++loops_open_;
    // The body runs again with what it left behind: only callee-saved
    // registers (r6-r9) keep being initialised scalars on every iteration.
    init_ &= static_cast<std::uint16_t>(bit(6) | bit(7) | bit(8) | bit(9));
    const std::uint16_t before = init_;
    const std::size_t top = here();
    const unsigned n = 1 + rng_.below(3);
    for (unsigned i = 0; i < n; ++i) statement(depth + 1);
    const bool progress = !take_fault(Fault::InfiniteLoop);
    if (progress) emit(make(w32 ? Op::Add32Imm : Op::AddImm, c, 0, 0, 1));
    const auto bound = static_cast<std::int32_t>(2 + rng_.below(5));
    const auto back = static_cast<std::int16_t>(static_cast<std::int64_t>(top) - static_cast<std::int64_t>(here()) - 1);
    emit(make(w32 ? Op::Jlt32Imm : Op::JltImm, c, 0, back, bound));
    --loops_open_;
    reserved_ = static_cast<std::uint16_t>(reserved_ & ~bit(c));
    init_ &= before;
  }

  void call_subprog(int) {
    std::size_t s = 0;
    if (subs_.empty() || (subs_.size() < 3 && rng_.chance(40))) {
      subs_.push_back({{}, rng_.below(6)});
      s = subs_.size() - 1;
    } else {
      s = rng_.below(static_cast<std::uint32_t>(subs_.size()));
    }
    for (unsigned a = 1; a <= subs_[s].nargs; ++a) {
      const auto r = static_cast<std::uint8_t>(a);
      if (rng_.chance(50)) emit(make(Op::MovImm, r, 0, 0, interesting_imm()));
      else emit(make(Op::MovReg, r, any_scalar()));
      init_ |= bit(r);
    }
    fn_->calls.push_back({here(), s});
    emit(make(Op::CallLocal, 0, 0, 0, 0));
    clobber_call();
  }

  // XDP: the program reaches the packet through xdp_md's data/data_end.
  [[nodiscard]] bool direct_packet() const { return pt_ != nullptr && pt_->id == 6 /* BPF_PROG_TYPE_XDP */; }

  // Bounds-checked direct packet access (XDP), as clang emits it:
  //   r2 = ctx->data; r3 = ctx->data_end; r4 = r2; r4 += N
  //   if r4 > r3 goto out;  <loads/stores at r2 + [0, N)>;  out:
  // r2-r4 hold pointers afterwards (not scalars). A loaded register is set
  // before the check so that it is initialised on both paths.
  void packet_access(int) {
    const std::uint8_t dst = pick_from({0, 5, 7, 8, 9});
    if (dst != 0xff) set_imm(dst);
    const auto n = static_cast<std::int32_t>(1 + rng_.below(64));
    emit(make(Op::LdxW, 2, kCtxReg, 0));
    emit(make(Op::LdxW, 3, kCtxReg, 4));
    emit(make(Op::MovReg, 4, 2));
    emit(make(Op::AddImm, 4, 0, 0, n));
    const std::size_t check = here();
    emit(make(Op::JgtReg, 4, 3));
    init_ = static_cast<std::uint16_t>(init_ & ~(bit(2) | bit(3) | bit(4)));
    const unsigned k = 1 + rng_.below(3);
    for (unsigned i = 0; i < k; ++i) {
      unsigned size = pick_size(rng_);
      while (static_cast<std::int32_t>(size) > n) size /= 2;
      auto off = static_cast<std::int16_t>(size * rng_.below(static_cast<std::uint32_t>(n) / size));
      if (take_fault(Fault::PacketOob)) off = static_cast<std::int16_t>(n);
      const bool load = dst != 0xff && (i + 1 == k || rng_.chance(40));
      if (load) {
        emit(make(sized_row(isa::Form::Ldx, size), dst, 2, off));
        break;
      }
      if (rng_.chance(30)) emit(make(sized_row(isa::Form::St, size), 2, 0, off, interesting_imm()));
      else if (auto r = scalar_reg()) emit(make(sized_row(isa::Form::Stx, size), 2, *r, off));
    }
    patch_forward(check);
  }
  // A random register of `cands` that is not reserved, 0xff if none.
  std::uint8_t pick_from(std::initializer_list<std::uint8_t> cands) {
    std::array<std::uint8_t, 8> c{};
    std::size_t n = 0;
    for (std::uint8_t r : cands)
      if ((reserved_ & bit(r)) == 0) c[n++] = r;
    return n == 0 ? 0xff : c[rng_.below(static_cast<std::uint32_t>(n))];
  }

  void ld_abs(int) {
    static constexpr std::array<Op, 3> kOpsAbs = {Op::LdAbsB, Op::LdAbsH, Op::LdAbsW};
    emit(make(kOpsAbs[rng_.below(3)], 0, 0, 0, static_cast<std::int32_t>(rng_.below(64))));
    clobber_call();
  }

  // Faults that are statements of their own.
  void misc_fault(int) {
    if (take_fault(Fault::WriteFp)) {
      emit(make(Op::MovImm, 10, 0, 0, 0));
      return;
    }
    if (in_main_ && take_fault(Fault::PtrAlu)) {
      emit(make(Op::MulImm, kCtxReg, 0, 0, 2));
      return;
    }
    alu_imm(0);
  }

  void finish_function() {
    if (take_fault(Fault::ReturnUninit)) {
      emit(make(Op::Exit));
      return;
    }
    if (auto r = scalar_reg(); r && rng_.chance(70)) emit(make(Op::MovReg, 0, *r));
    else emit(make(Op::MovImm, 0, 0, 0, static_cast<std::int32_t>(rng_.below(3))));
    emit(make(Op::Exit));
  }

  void inject_jump_into_lddw() {
    auto& code = out_.insns;
    for (std::size_t i = 0; i + 1 < code.size(); ++i) {
      if (code[i].op != Op::LddwTail) continue;
      // insert "goto" at the start that lands on the tail
      std::vector<Insn> v;
      v.push_back(make(Op::JeqImm, 0, 0, static_cast<std::int16_t>(i), 12345));
      // r0 must be readable at insn 0: use r1 (the context) instead
      v[0].dst = 1;
      v.insert(v.end(), code.begin(), code.end());  // jumps and local calls are relative: unchanged
      code = std::move(v);
      out_.fault = kFaultNames[static_cast<std::size_t>(Fault::JumpIntoLddw)];
      return;
    }
  }

  Rng& rng_;
  const GenOptions& o_;
  GenProgram& out_;
  const spec::ProgType* pt_ = nullptr;
  Fn* fn_ = nullptr;
  std::vector<Subprog> subs_;
  std::uint16_t init_ = 0;
  std::uint16_t reserved_ = 0;
  unsigned budget_ = 0;
  unsigned loops_open_ = 0;
  bool in_main_ = false;
  bool ld_abs_ = false;
  bool subprogs_ok_ = true;
  Fault pending_ = Fault::None;
};

}  // namespace

GenProgram generate(Rng& rng, const GenOptions& opts) {
  GenProgram out;
  Gen g(rng, opts, out);
  g.run();
  return out;
}

verifier::Config verifier_config(const GenProgram& prog, unsigned log_level) {
  verifier::Config cfg;
  cfg.prog_type = prog.prog_type;
  cfg.maps = prog.maps;
  cfg.log_level = log_level;
  cfg.privileged = true;
  return cfg;
}

std::string to_case_text(const GenProgram& prog, const std::string& name, const std::string& comment) {
  std::string s = fmt::format("# {}\n=== {}\n", comment, name);
  const spec::ProgType* pt = spec::prog_type(prog.prog_type);
  s += fmt::format("type: {}\n", pt != nullptr ? pt->name : std::string_view("socket_filter"));
  for (const auto& m : prog.maps) {
    const spec::MapType* mt = spec::map_type(m.type);
    s += fmt::format("map: {} key={} value={} entries={}\n", mt != nullptr ? mt->name : std::string_view("hash"),
                     m.key_size, m.value_size, m.max_entries);
  }
  if (!prog.fault.empty()) s += fmt::format("# fault: {}\n", prog.fault);
  s += "---\n";
  assembly::DisasmOptions d;
  d.show_index = false;
  d.hex_imm = false;
  s += assembly::disassemble(prog.insns, d);
  return s;
}

Result<StoredCase> read_case(const std::string& path) {
  std::ifstream f(path);
  if (!f) return make_error(ENOENT, fmt::format("{}: cannot open", path));
  StoredCase c;
  c.file = std::filesystem::path(path).filename().string();
  std::string line, code, type = "socket_filter";
  bool in_code = false;
  while (std::getline(f, line)) {
    if (in_code) {
      code += line + "\n";
      continue;
    }
    if (line.find("status: open") != std::string::npos) c.open = true;
    if (line.rfind("=== ", 0) == 0) {
      c.name = line.substr(4);
    } else if (line.rfind("type: ", 0) == 0) {
      type = line.substr(6);
    } else if (line.rfind("expect: ", 0) == 0) {
      c.accept = line.substr(8) == "accept";
    } else if (line.rfind("map: ", 0) == 0) {
      std::istringstream ss(line.substr(5));
      std::string mtype, kv;
      ss >> mtype;
      verifier::MapDesc md;
      const spec::MapType* mt = spec::map_type_by_name(mtype);
      if (mt == nullptr) return make_error(EINVAL, fmt::format("{}: unknown map type '{}'", path, mtype));
      md.type = mt->id;
      md.name = fmt::format("map{}", c.prog.maps.size());
      while (ss >> kv) {
        const auto eq = kv.find('=');
        if (eq == std::string::npos) return make_error(EINVAL, fmt::format("{}: bad map field '{}'", path, kv));
        const auto key = kv.substr(0, eq);
        const auto val = static_cast<std::uint32_t>(std::strtoul(kv.c_str() + eq + 1, nullptr, 0));
        if (key == "key") md.key_size = val;
        if (key == "value") md.value_size = val;
        if (key == "entries") md.max_entries = val;
      }
      c.prog.maps.push_back(md);
    } else if (line == "---") {
      in_code = true;
    }
  }
  const spec::ProgType* pt = spec::prog_type_by_name(type);
  if (pt == nullptr) return make_error(EINVAL, fmt::format("{}: unknown program type '{}'", path, type));
  c.prog.prog_type = pt->id;
  auto prog = assembly::assemble(code, assembly::Dialect::Kernel);
  if (!prog) return make_error(EINVAL, fmt::format("{}: {}", path, prog.error().to_string()));
  c.prog.insns = std::move(*prog);
  return c;
}

}  // namespace userbpf::fuzz
