// Register reads/writes, ALU instructions (scalars and pointer arithmetic),
// linked-register and null-check propagation, packet ranges.
//
// Pointer arithmetic follows the kernel's adjust_ptr_min_max_vals: only
// 64-bit add/sub of a scalar; a known scalar moves the fixed offset `off`,
// an unknown one is added to the pointer's variable part (var_off and the
// bounds) and gives packet pointers a fresh id with range 0.
#include <fmt/format.h>

#include <algorithm>

#include "verifier/engine.hpp"

namespace userbpf::verifier::detail {

using isa::Form;
using isa::Op;

namespace {

constexpr std::int64_t kMaxVarOff = 1 << 29;  // BPF_MAX_VAR_OFF
constexpr const char* kAluStr[] = {"+=", "-=", "*=", "/=", "|=", "&=", "<<=", ">>=", "neg", "%=", "^=", "=", "s>>=",
                                   "endian", "?", "?"};

}  // namespace

void Engine::check_read(State& st, unsigned r) {
  if (reg(st, r).type == RegType::NotInit) reject(EACCES, fmt::format("R{} !read_ok", r));
}

void Engine::check_write(unsigned r) {
  if (r == 10) reject(EACCES, "frame pointer is read only");
}

void Engine::sync_linked(State& st, const Reg& known) {
  if (known.type != RegType::Scalar || known.id == 0) return;
  for_each_reg(st, [&](Reg& r) {
    if (r.type == RegType::Scalar && r.id == known.id) {
      const bool w = r.written;
      r = known;
      r.written = w;
    }
  });
}

void Engine::mark_ptr_or_null(State& st, std::uint32_t id, bool is_null) {
  // on the null branch an acquired reference (id == ref_obj_id) is gone
  if (is_null)
    st.refs.erase(std::remove_if(st.refs.begin(), st.refs.end(), [&](const State::Ref& r) { return r.id == id; }),
                  st.refs.end());
  for_each_reg(st, [&](Reg& r) {
    if (!r.maybe_null || r.id != id) return;
    if (is_null) {
      const bool w = r.written;
      mark_known(r, 0);
      r.written = w;
    } else {
      r.maybe_null = false;
    }
  });
}

// Imprecise scalars that differ from the loop entry's become unknown (the
// kernel's widen_imprecise_scalars), so that loop iterations converge.
void Engine::widen_imprecise(State& cur, const State& old) {
  auto widen = [](Reg& c, const Reg& o) {
    if (c.type != RegType::Scalar || o.type != RegType::Scalar || c.precise || o.precise) return;
    if (c.var_off == o.var_off && c.smin == o.smin && c.smax == o.smax && c.umin == o.umin && c.umax == o.umax &&
        c.s32min == o.s32min && c.s32max == o.s32max && c.u32min == o.u32min && c.u32max == o.u32max)
      return;
    const bool w = c.written;
    mark_unknown(c);
    c.written = w;
  };
  for (std::size_t f = 0; f < cur.frames.size() && f < old.frames.size(); ++f) {
    Frame& cf = cur.frames[f];
    const Frame& of = old.frames[f];
    for (std::size_t r = 0; r < cf.regs.size(); ++r) widen(cf.regs[r], of.regs[r]);
    for (std::size_t i = 0; i < cf.stack.size(); ++i)
      if (cf.stack[i].type[0] == Slot::Spill && of.stack[i].type[0] == Slot::Spill)
        widen(cf.stack[i].spilled, of.stack[i].spilled);
  }
}

void Engine::release_reference(State& st, std::uint32_t ref_obj_id) {
  const auto it =
      std::find_if(st.refs.begin(), st.refs.end(), [&](const State::Ref& r) { return r.id == ref_obj_id; });
  if (it == st.refs.end()) reject(EINVAL, fmt::format("verifier internal error: reference id={} not acquired", ref_obj_id));
  st.refs.erase(it);
  // every copy of the released pointer becomes unusable (a scalar for the
  // privileged profile, as the kernel's mark_reg_invalid with ptr leaks allowed)
  for_each_reg(st, [&](Reg& r) {
    if (!r.is_pointer() || r.ref_obj_id != ref_obj_id) return;
    const bool w = r.written;
    if (cfg_.privileged) mark_unknown(r);
    else mark_not_init(r);
    r.written = w;
  });
}

void Engine::check_no_refs(const State& st, const char* what) {
  if (st.lock_map >= 0) reject(EINVAL, fmt::format("{} cannot be used inside bpf_spin_lock-ed region", what));
  if (!st.refs.empty()) reject(EINVAL, fmt::format("{} would lead to reference leak", what));
  if (st.active_rcu != 0) reject(EINVAL, fmt::format("{} cannot be used inside bpf_rcu_read_lock-ed region", what));
}

void Engine::find_good_pkt_pointers(State& st, const Reg& pkt, bool right_open) {
  if (pkt.off < 0 || (pkt.off == 0 && right_open)) return;
  constexpr std::uint64_t kMaxPacketOff = 0xffff;
  if (pkt.umax > kMaxPacketOff || pkt.umax + static_cast<std::uint64_t>(pkt.off) > kMaxPacketOff) return;
  std::uint32_t new_range = static_cast<std::uint32_t>(pkt.off);
  if (right_open) ++new_range;
  for_each_reg(st, [&](Reg& r) {
    if (r.type == pkt.type && r.id == pkt.id) r.range = std::max(r.range, new_range);
  });
}

void Engine::clear_pkt_pointers(State& st) {
  for_each_reg(st, [&](Reg& r) {
    if (r.is_pkt() || r.type == RegType::PacketEnd) {
      if (cfg_.privileged) mark_unknown(r);
      else mark_not_init(r);
    }
  });
}

bool Engine::check_reg_sane_offset(const Reg& r, const Reg& ptr) {
  const std::string t = reg_type_str(ptr);
  constexpr int kSaneErr = EINVAL;  // the kernel returns -EINVAL after these messages
  const bool known = r.var_off.is_const();
  const auto val = static_cast<std::int64_t>(r.var_off.value);
  if (known && (val >= kMaxVarOff || val <= -kMaxVarOff))
    reject(kSaneErr, fmt::format("math between {} pointer and {} is not allowed", t, val));
  if (r.off >= kMaxVarOff || r.off <= -kMaxVarOff)
    reject(kSaneErr, fmt::format("{} pointer offset {} is not allowed", t, r.off));
  if (r.smin == std::numeric_limits<s64>::min())
    reject(kSaneErr, fmt::format("math between {} pointer and register with unbounded min value is not allowed", t));
  if (r.smin >= kMaxVarOff || r.smin <= -kMaxVarOff)
    reject(kSaneErr, fmt::format("value {} makes {} pointer be out of bounds", r.smin, t));
  return true;
}

void Engine::ptr_alu(State& st, const isa::Insn& in, Reg& dst, const Reg& ptr, const Reg& off, unsigned op,
                     bool ptr_is_dst) {
  (void)st;
  const unsigned dreg = in.dst;
  if (ptr.maybe_null)
    reject(EACCES, fmt::format("R{} pointer arithmetic on {} prohibited, null-check it first", dreg,
                               reg_type_str(ptr)));
  const bool map_ptr_noop = ptr.type == RegType::ConstMapPtr && off.var_off.equals_const(0) && op == 0;
  if ((ptr.type == RegType::ConstMapPtr && !map_ptr_noop) || ptr.type == RegType::PacketEnd || ptr.is_sock())
    reject(EACCES, fmt::format("R{} pointer arithmetic on {} prohibited", dreg, reg_type_str(ptr)));
  check_reg_sane_offset(off, ptr);
  check_reg_sane_offset(ptr, ptr);
  if (op == 1 && !ptr_is_dst) reject(EACCES, fmt::format("R{} tried to subtract pointer from scalar", dreg));
  if (op != 0 && op != 1) {
    if (op == 5 || op == 4 || op == 0xa)
      reject(EACCES, fmt::format("R{} bitwise operator {} on pointer prohibited", dreg, kAluStr[op]));
    reject(EACCES, fmt::format("R{} pointer arithmetic with {} operator prohibited", dreg, kAluStr[op]));
  }
  Reg res = ptr;
  res.written = true;
  const bool known = off.var_off.is_const();
  const auto val = static_cast<std::int64_t>(off.var_off.value);
  if (op == 0) {
    if (known) {
      const std::int64_t n = static_cast<std::int64_t>(ptr.off) + val;
      if (n != static_cast<std::int32_t>(n)) reject(EACCES, fmt::format("R{} pointer offset overflow", dreg));
      res.off = static_cast<std::int32_t>(n);
    } else {
      res.var_off = tnum_add(ptr.var_off, off.var_off);
      s64 a, b;
      if (__builtin_add_overflow(ptr.smin, off.smin, &a) || __builtin_add_overflow(ptr.smax, off.smax, &b)) {
        res.smin = std::numeric_limits<s64>::min(); res.smax = std::numeric_limits<s64>::max();
      } else { res.smin = a; res.smax = b; }
      u64 c, d;
      if (__builtin_add_overflow(ptr.umin, off.umin, &c) || __builtin_add_overflow(ptr.umax, off.umax, &d)) {
        res.umin = 0; res.umax = std::numeric_limits<u64>::max();
      } else { res.umin = c; res.umax = d; }
      res.s32min = std::numeric_limits<s32>::min(); res.s32max = std::numeric_limits<s32>::max();
      res.u32min = 0; res.u32max = std::numeric_limits<u32>::max();
      if (ptr.is_pkt()) { res.id = new_id(); res.range = 0; }
    }
  } else {
    if (known) {
      const std::int64_t n = static_cast<std::int64_t>(ptr.off) - val;
      if (n != static_cast<std::int32_t>(n)) reject(EACCES, fmt::format("R{} pointer offset overflow", dreg));
      res.off = static_cast<std::int32_t>(n);
    } else {
      res.var_off = tnum_sub(ptr.var_off, off.var_off);
      s64 a, b;
      if (__builtin_sub_overflow(ptr.smin, off.smax, &a) || __builtin_sub_overflow(ptr.smax, off.smin, &b)) {
        res.smin = std::numeric_limits<s64>::min(); res.smax = std::numeric_limits<s64>::max();
      } else { res.smin = a; res.smax = b; }
      if (ptr.umin < off.umax) { res.umin = 0; res.umax = std::numeric_limits<u64>::max(); }
      else { res.umin = ptr.umin - off.umax; res.umax = ptr.umax - off.umin; }
      res.s32min = std::numeric_limits<s32>::min(); res.s32max = std::numeric_limits<s32>::max();
      res.u32min = 0; res.u32max = std::numeric_limits<u32>::max();
      if (ptr.is_pkt()) { res.id = new_id(); res.range = 0; }
    }
  }
  if (!known) sync_bounds(res);
  check_reg_sane_offset(res, res);
  if (!cfg_.privileged && res.type == RegType::Stack && !res.var_off.is_const())
    reject(EACCES, fmt::format("R{} variable stack access prohibited for !root, var_off={} off={}", dreg,
                               res.var_off.str(), res.off));
  dst = res;
}

void Engine::do_alu(State& st, const isa::Insn& in) {
  const Form f = in.info().form;
  const bool is64 = isa::op_class(in.op) == isa::Class::Alu64;
  const unsigned op = isa::op_code(in.op);
  const bool x = f == Form::AluX || f == Form::MovSx;
  if (x) check_read(st, in.src);
  // MOV
  if (op == 0xb) {
    check_write(in.dst);
    Reg& d = reg(st, in.dst);
    if (!x) {
      mark_known(d, is64 ? isa::sem::imm64(in.imm) : static_cast<std::uint32_t>(in.imm));
      d.written = true;
      return;
    }
    Reg s = reg(st, in.src);
    if (f == Form::MovSx) {
      const unsigned bits = static_cast<unsigned>(in.off);
      if (s.type != RegType::Scalar) {
        if (!cfg_.privileged) reject(EACCES, fmt::format("R{} sign-extension part of pointer", in.src));
        mark_unknown(d);
      } else {
        d = s;
        d.id = 0;
        coerce_to_size_sx(d, bits / 8);
        if (!is64) zext_32_to_64(d);
      }
      d.written = true;
      return;
    }
    if (is64) {
      if (s.type == RegType::Scalar && s.id == 0 && !s.var_off.is_const()) {
        s.id = new_id();
        reg(st, in.src).id = s.id;
      }
      d = s;
    } else if (s.type != RegType::Scalar) {
      if (!cfg_.privileged) reject(EACCES, fmt::format("R{} partial copy of pointer", in.src));
      mark_unknown(d);
      zext_32_to_64(d);
    } else {
      d = s;
      d.id = 0;
      zext_32_to_64(d);
    }
    d.written = true;
    return;
  }
  check_read(st, in.dst);
  check_write(in.dst);
  if (f == Form::AluK && (op == 6 || op == 7 || op == 0xc)) {
    const int size = is64 ? 64 : 32;
    if (in.imm < 0 || in.imm >= size) reject(EINVAL, fmt::format("invalid shift {}", in.imm));
  }
  if (f == Form::AluK && (op == 3 || op == 9) && in.imm == 0) reject(EINVAL, "div by zero");
  Reg& d = reg(st, in.dst);
  if (f == Form::Neg || f == Form::End) {
    if (d.is_pointer()) {
      if (!cfg_.privileged) reject(EACCES, fmt::format("R{} pointer arithmetic prohibited", in.dst));
      mark_unknown(d);
    } else if (f == Form::Neg) {
      Reg zero;
      mark_known(zero, 0);
      scalar_alu(d, zero, 8, is64);
    } else {
      // Byte swaps are tracked as the kernel does (scalar_byte_swap): a swap
      // permutes the tnum's bytes (value and mask alike) and the ranges are
      // derived again from it; le16/le32 only truncate; le64 is a no-op and
      // keeps the register's id.
      const unsigned width = static_cast<unsigned>(in.info().sel_value);
      const bool swap = !in.info().kop.starts_with("le");
      if (swap) {
        d.var_off = Tnum{isa::sem::to_be(d.var_off.value, width), isa::sem::to_be(d.var_off.mask, width)};
        reset_bounds_from_tnum(d);
      } else if (width < 64) {
        coerce_to_size(d, width / 8);
        sync_bounds(d);
      }
      if (swap || width < 64) d.id = 0;
      d.written = true;
      return;
    }
    d.id = 0;
    d.written = true;
    return;
  }
  Reg s;
  if (x) s = reg(st, in.src);
  else mark_known(s, is64 ? isa::sem::imm64(in.imm) : static_cast<std::uint32_t>(in.imm));

  if (d.is_pointer() || s.is_pointer()) {
    if (d.is_pointer() && s.is_pointer()) {
      if (op == 1 && cfg_.privileged) {
        mark_unknown(d);
        d.written = true;
        return;
      }
      reject(EACCES, fmt::format("R{} pointer {} pointer prohibited", in.dst, kAluStr[op]));
    }
    if (!is64) {
      if (op == 1 && cfg_.privileged) {
        mark_unknown(d);
        zext_32_to_64(d);
        d.written = true;
        return;
      }
      reject(EACCES, fmt::format("R{} 32-bit pointer arithmetic prohibited", in.dst));
    }
    if (x && d.is_pointer()) mark_precise(st, in.src);
    if (x && !d.is_pointer()) mark_precise(st, in.dst);
    const Reg dd = d;
    if (dd.is_pointer()) ptr_alu(st, in, d, dd, s, op, true);
    else ptr_alu(st, in, d, s, dd, op, false);
    d.written = true;
    return;
  }
  scalar_alu(d, s, op, is64);
  d.id = 0;
  d.written = true;
}

}  // namespace userbpf::verifier::detail
