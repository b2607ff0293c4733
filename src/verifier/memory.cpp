// Memory accesses (loads, stores, atomics, LD_ABS/IND) and helper calls.
//
// Each access is checked against the base register's pointer type as in
// the kernel's check_mem_access: context fields per program type (spec),
// stack slots (spill/fill of registers, STACK_MISC/ZERO/INVALID bytes,
// strict alignment), map values with variable offsets (smin/umax checked
// against value_size), packet pointers against the range proven by
// comparisons with data_end, and helper memory. Helper calls are checked
// argument by argument against spec::HelperProto; r1-r5 are clobbered and
// r0 is set from the return kind.
#include <fmt/format.h>

#include <algorithm>

#include "maps/cpu_slots.hpp"
#include "verifier/engine.hpp"

namespace userbpf::verifier::detail {

using isa::Form;
using isa::Op;

namespace {

constexpr std::int64_t kMaxVarOff = 1 << 29;  // BPF_MAX_VAR_OFF
constexpr std::uint64_t kMaxVarSiz = 1 << 29;  // BPF_MAX_VAR_SIZ

struct SlotPos {
  std::size_t spi;
  unsigned byte;  // 0 = lowest address of the slot
};
SlotPos slot_pos(std::int64_t off) {
  const auto spi = static_cast<std::size_t>((-off - 1) / 8);
  const auto byte = static_cast<unsigned>(off + static_cast<std::int64_t>(spi + 1) * 8);
  return {spi, byte};
}

bool prog_reads_packet(std::uint32_t t) {
  return t == 3 || t == 4 || t == 6 || t == 8;  // sched_cls, sched_act, xdp, cgroup_skb
}
bool prog_writes_packet(std::uint32_t t) {
  return t == 3 || t == 4 || t == 6;  // sched_cls, sched_act, xdp
}

}  // namespace

// ---------------------------------------------------------------- generic regions
void Engine::mem_error(const Reg& r, unsigned regno, std::int64_t off, std::int64_t size, std::uint64_t mem_size) {
  std::string m;
  switch (r.type) {
    case RegType::MapKey:
      m = fmt::format("invalid access to map key, key_size={} off={} size={}", mem_size, off, size);
      break;
    case RegType::MapValue:
      m = fmt::format("invalid access to map value, value_size={} off={} size={}", mem_size, off, size);
      break;
    case RegType::Packet: case RegType::PacketMeta: case RegType::PacketEnd:
      m = fmt::format("invalid access to packet, off={} size={}, R{}(id={},off={},r={})", off, size, regno, r.id, off,
                      mem_size);
      break;
    case RegType::NotInit: case RegType::Scalar: case RegType::Ctx: case RegType::ConstMapPtr: case RegType::Stack: case RegType::Mem:
    case RegType::Func: case RegType::Sock: case RegType::SockCommon: case RegType::TcpSock:
      m = fmt::format("invalid access to memory, mem_size={} off={} size={}", mem_size, off, size);
  }
  throw Reject{EACCES, m};
}

void Engine::check_mem_region(State& st, unsigned regno, std::int64_t off, std::int64_t size, std::uint64_t mem_size,
                              bool zero_ok) {
  const Reg r = reg(st, regno);
  auto in_bounds = [&](std::int64_t o) {
    const bool size_ok = size > 0 || (size == 0 && zero_ok);
    return o >= 0 && size_ok && static_cast<std::uint64_t>(o) + static_cast<std::uint64_t>(size) <= mem_size;
  };
  if (r.smin < 0 && (r.smin == std::numeric_limits<s64>::min() ||
                     off + r.smin != static_cast<std::int64_t>(static_cast<std::int32_t>(off + r.smin)) ||
                     r.smin + off < 0))
    reject(EACCES, fmt::format("R{} min value is negative, either use unsigned index or do a if (index >=0) check.",
                               regno));
  if (!in_bounds(r.smin + off)) {
    try {
      mem_error(r, regno, r.smin + off, size, mem_size);
    } catch (Reject& e) {
      e.message += fmt::format("\nR{} min value is outside of the allowed memory range", regno);
      throw;
    }
  }
  if (r.umax >= static_cast<std::uint64_t>(kMaxVarOff))
    reject(EACCES, fmt::format("R{} unbounded memory access, make sure to bounds check any such access", regno));
  if (!in_bounds(static_cast<std::int64_t>(r.umax) + off)) {
    try {
      mem_error(r, regno, static_cast<std::int64_t>(r.umax) + off, size, mem_size);
    } catch (Reject& e) {
      e.message += fmt::format("\nR{} max value is outside of the allowed memory range", regno);
      throw;
    }
  }
}

void Engine::check_packet_access(State& st, unsigned regno, std::int64_t off, std::int64_t size, bool zero_ok) {
  const Reg r = reg(st, regno);
  if (r.smin < 0)
    reject(EACCES, fmt::format("R{} min value is negative, either use unsigned index or do a if (index >=0) check.",
                               regno));
  const bool size_ok = size > 0 || (size == 0 && zero_ok);
  if (!(off >= 0 && size_ok && static_cast<std::uint64_t>(off + size) <= r.range)) {
    try {
      mem_error(r, regno, off, size, r.range);
    } catch (Reject& e) {
      e.message += fmt::format("\nR{} offset is outside of the packet", regno);
      throw;
    }
  }
}

// ---------------------------------------------------------------- stack
void Engine::check_stack_bounds(State& st, unsigned regno, std::int64_t off, std::int64_t size, Access t) {
  const Reg r = reg(st, regno);
  const char* extra = t == Access::Read ? " read from" : t == Access::Helper ? " indirect access to" : " write to";
  std::int64_t min_off, max_off;
  if (r.var_off.is_const()) {
    min_off = static_cast<std::int64_t>(r.var_off.value) + off;
    max_off = min_off + size;
  } else {
    if (r.smax >= kMaxVarOff || r.smin <= -kMaxVarOff)
      reject(EACCES, fmt::format("invalid unbounded variable-offset{} stack R{}", extra, regno));
    min_off = r.smin + off;
    max_off = r.smax + off + size;
  }
  int err = 0;
  if (min_off < -kStackSize || min_off > -1) err = EACCES;
  if (err == 0 && max_off > 0) err = EINVAL;
  if (err == 0 && size < 0) err = EINVAL;
  if (err != 0) {
    if (r.var_off.is_const())
      reject(err, fmt::format("invalid{} stack R{} off={} size={}", extra, regno, off, size));
    reject(err, fmt::format("invalid variable-offset{} stack R{} var_off={} off={} size={}", extra, regno,
                            r.var_off.str(), off, size));
  }
  note_stack_depth(st, r, min_off);
}

void Engine::stack_write(State& st, unsigned regno, std::int64_t off, unsigned size, const Reg* value, bool is_st_imm,
                         std::int32_t st_imm) {
  const Reg base = reg(st, regno);
  Frame& fr = stack_frame(st, base);
  const bool zero = (value != nullptr && value->type == RegType::Scalar && value->var_off.equals_const(0)) ||
                    (value == nullptr && is_st_imm && st_imm == 0);
  if (!base.var_off.is_const()) {
    const std::int64_t lo = base.smin + off, hi = base.smax + off + size;
    for (std::int64_t a = lo; a < hi; ++a) {
      const SlotPos p = slot_pos(a);
      StackSlot& s = fr.stack[p.spi];
      if (!dynptr_destroy(st, fr, p.spi)) reject(EINVAL, "cannot overwrite referenced dynptr");
      if (s.type[0] == Slot::Spill || s.type[0] == Slot::Iter) {
        for (auto& b : s.type)
          if (b != Slot::Invalid) b = Slot::Misc;
        mark_not_init(s.spilled);
      }
      if (s.type[p.byte] == Slot::Invalid && !cfg_.privileged)
        reject(EACCES, "uninit stack in range of var-offset write prohibited for !root");
      if (s.type[p.byte] != Slot::Zero || !zero) s.type[p.byte] = Slot::Misc;
    }
    return;
  }
  const std::int64_t o = static_cast<std::int64_t>(base.var_off.value) + off;
  const SlotPos p = slot_pos(o);
  StackSlot& s = fr.stack[p.spi];
  if (!dynptr_destroy(st, fr, p.spi)) reject(EINVAL, "cannot overwrite referenced dynptr");
  last_spi_ = static_cast<std::int16_t>(p.spi);
  last_spi_frame_ = static_cast<std::uint8_t>(base.frameno);
  if (p.byte == 0 && size == 8) live_mark_write(base.frameno, 1ULL << p.spi);
  Reg v;
  bool have_value = false;
  if (value != nullptr) {
    v = *value;
    have_value = true;
  } else if (is_st_imm) {
    mark_known(v, isa::sem::imm64(st_imm));
    have_value = true;
  }
  auto save_spill = [&](const Reg& r) {
    s.spilled = r;
    s.spilled.written = false;
    for (unsigned i = 0; i < 8; ++i) {
      if (i < size) s.type[i] = Slot::Spill;
      else if (s.type[i] == Slot::Zero || (s.type[i] == Slot::Invalid && cfg_.privileged)) continue;
      else s.type[i] = Slot::Misc;
    }
  };
  if (have_value && p.byte == 0 && v.type == RegType::Scalar && cfg_.privileged) {
    save_spill(v);
    if (size < 8 && (v.umax >> (size * 8)) != 0) s.spilled.id = 0;
    return;
  }
  if (value != nullptr && value->is_pointer()) {
    if (size != 8) reject(EACCES, "invalid size of register spill");
    if (&fr != &st.cur() && value->type == RegType::Stack)
      reject(EINVAL, "cannot spill pointers to stack into stack frame of the caller");
    if (!cfg_.privileged && value->type == RegType::Stack) { /* allowed */ }
    save_spill(v);
    return;
  }
  if (s.type[0] == Slot::Spill || s.type[7] == Slot::Spill || s.type[0] == Slot::Iter)
    for (auto& b : s.type)
      if (b != Slot::Invalid) b = Slot::Misc;
  mark_not_init(s.spilled);
  for (unsigned i = 0; i < size; ++i) s.type[p.byte + i] = zero ? Slot::Zero : Slot::Misc;
}

void Engine::stack_read(State& st, unsigned regno, std::int64_t off, unsigned size, int value_regno) {
  const Reg base = reg(st, regno);
  Frame& fr = stack_frame(st, base);
  if (!base.var_off.is_const()) {
    check_stack_range_init(st, regno, off, size, false, false, nullptr);
    if (value_regno >= 0) {
      Reg& d = reg(st, static_cast<unsigned>(value_regno));
      mark_unknown(d);
      d.written = true;
    }
    return;
  }
  const std::int64_t o = static_cast<std::int64_t>(base.var_off.value) + off;
  const SlotPos p = slot_pos(o);
  StackSlot& s = fr.stack[p.spi];
  last_spi_ = static_cast<std::int16_t>(p.spi);
  last_spi_frame_ = static_cast<std::uint8_t>(base.frameno);
  live_mark_read(st, base.frameno, 1ULL << p.spi);
  Reg result;
  if (s.type[0] == Slot::Spill) {
    unsigned spill_size = 1;
    while (spill_size < 8 && s.type[spill_size] == Slot::Spill) ++spill_size;
    if (size != 8 || spill_size != 8) {
      if (s.spilled.type != RegType::Scalar) reject(EACCES, "invalid size of register fill");
      if (size <= spill_size && p.byte == 0) {
        result = s.spilled;
        if (size < 8) result.id = 0;
      } else {
        unsigned spill_cnt = 0, zero_cnt = 0;
        for (unsigned i = 0; i < size; ++i) {
          const Slot t = s.type[p.byte + i];
          if (t == Slot::Spill) { ++spill_cnt; continue; }
          if (t == Slot::Misc) continue;
          if (t == Slot::Zero) { ++zero_cnt; continue; }
          if (t == Slot::Invalid && cfg_.privileged) continue;
          reject(EACCES, fmt::format("invalid read from stack off {}+{} size {}", o, i, size));
        }
        if ((spill_cnt == size && s.spilled.var_off.equals_const(0)) || zero_cnt == size) mark_known(result, 0);
        else mark_unknown(result);
      }
    } else {
      result = s.spilled;
    }
  } else {
    unsigned zero_cnt = 0;
    for (unsigned i = 0; i < size; ++i) {
      const Slot t = s.type[p.byte + i];
      if (t == Slot::Misc) continue;
      if (t == Slot::Zero) { ++zero_cnt; continue; }
      if (t == Slot::Invalid && cfg_.privileged) continue;
      reject(EACCES, fmt::format("invalid read from stack off {}+{} size {}", o, i, size));
    }
    if (zero_cnt == size) mark_known(result, 0);
    else mark_unknown(result);
  }
  if (value_regno >= 0) {
    Reg& d = reg(st, static_cast<unsigned>(value_regno));
    d = result;
    d.written = true;
  }
}

void Engine::check_stack_range_init(State& st, unsigned regno, std::int64_t off, std::int64_t size, bool zero_ok,
                                    bool clobber, CallMeta* meta) {
  const Reg r = reg(st, regno);
  if (size == 0 && !zero_ok) reject(EACCES, "invalid zero-sized read");
  check_stack_bounds(st, regno, off, size, clobber || (meta != nullptr && meta->raw_mode) ? Access::Write : Access::Read);
  std::int64_t min_off, max_off;
  if (r.var_off.is_const()) {
    min_off = max_off = static_cast<std::int64_t>(r.var_off.value) + off;
  } else {
    if (!cfg_.privileged)
      reject(EACCES, fmt::format("R{} variable offset stack access prohibited for !root, var_off={}", regno,
                                 r.var_off.str()));
    if (meta != nullptr && meta->raw_mode) meta = nullptr;
    min_off = r.smin + off;
    max_off = r.smax + off;
  }
  if (meta != nullptr && meta->raw_mode) {
    // helpers must not write over a dynptr (the kernel refuses possible aliasing)
    const Frame& fr = stack_frame(st, r);
    for (std::int64_t i = min_off; i < max_off + size; ++i) {
      const SlotPos p = slot_pos(i);
      if (i < 0 && fr.stack[p.spi].type[p.byte] == Slot::Dynptr)
        reject(EACCES, fmt::format("potential write to dynptr at off={} disallowed", i));
    }
    meta->raw_regno = static_cast<int>(regno);
    meta->raw_size = size;
    return;
  }
  Frame& fr = stack_frame(st, r);
  for (std::int64_t i = min_off; i < max_off + size; ++i) {
    const SlotPos p = slot_pos(i);
    StackSlot& s = fr.stack[p.spi];
    live_mark_read(st, r.frameno, 1ULL << p.spi);
    Slot& t = s.type[p.byte];
    if (t == Slot::Misc) continue;
    if (t == Slot::Zero || (t == Slot::Invalid && cfg_.privileged)) {
      if (clobber) t = Slot::Misc;
      continue;
    }
    if (t == Slot::Spill && (s.spilled.type == RegType::Scalar || cfg_.privileged)) {
      if (clobber) {
        mark_unknown(s.spilled);
        for (auto& b : s.type)
          if (b != Slot::Invalid) b = Slot::Misc;
      }
      continue;
    }
    if (r.var_off.is_const())
      reject(EACCES, fmt::format("invalid read from stack R{} off {}+{} size {}", regno, min_off, i - min_off, size));
    reject(EACCES, fmt::format("invalid read from stack R{} var_off {}+{} size {}", regno, r.var_off.str(),
                               i - min_off, size));
  }
}

// ---------------------------------------------------------------- context
void Engine::check_ctx_access(State& st, std::size_t idx, unsigned regno, std::int32_t off, unsigned size, Access t,
                              int value_regno) {
  const Reg r = reg(st, regno);
  if (r.off != 0)
    reject(EACCES, fmt::format("dereference of modified ctx ptr R{} off={} disallowed", regno, r.off));
  if (!r.var_off.equals_const(0))
    reject(EACCES, fmt::format("variable ctx access var_off={} disallowed", r.var_off.str()));
  auto bad = [&]() { reject(EACCES, fmt::format("invalid bpf_context access off={} size={}", off, size)); };
  const spec::CtxField* f = spec::ctx_field_at(pt_->ctx, off);
  if (f == nullptr || off < 0 || off % static_cast<std::int32_t>(size) != 0) bad();
  const auto rel = static_cast<std::uint32_t>(off) - f->off;
  if (rel + size > f->size) bad();
  if (t == Access::Write ? !f->write : !f->read) bad();
  switch (f->rule) {
    case spec::CtxSize::Narrow:
      if (t == Access::Write ? size != f->elem : (size > f->elem || (rel % f->elem) + size > f->elem)) bad();
      break;
    case spec::CtxSize::Exact:
      if (size != f->elem) bad();
      break;
    case spec::CtxSize::Any:
      break;
  }
  if (f->yields == spec::CtxYield::Unsupported && t == Access::Read)
    reject(EINVAL, fmt::format("context field {}.{} (a kernel object pointer) is not supported yet", pt_->ctx.name,
                               f->name));
  if (!ctx_fact_[idx]) {
    ctx_fact_[idx] = 1;
    out_.facts.push_back(Fact{idx, t == Access::Write ? FactKind::CtxStore : FactKind::CtxLoad, off, size});
  }
  if (value_regno < 0) return;
  Reg& d = reg(st, static_cast<unsigned>(value_regno));
  switch (f->yields) {
    case spec::CtxYield::Packet: case spec::CtxYield::PacketEnd: case spec::CtxYield::PacketMeta:
      d = Reg{};
      d.type = f->yields == spec::CtxYield::Packet      ? RegType::Packet
               : f->yields == spec::CtxYield::PacketEnd ? RegType::PacketEnd
                                                        : RegType::PacketMeta;
      break;
    case spec::CtxYield::SockCommonOrNull:  // __sk_buff.sk: a fresh id for the null check, no reference
      d = Reg{};
      d.type = RegType::SockCommon;
      d.maybe_null = true;
      d.id = new_id();
      break;
    case spec::CtxYield::Scalar: case spec::CtxYield::Unsupported:
      mark_unknown(d);
  }
  d.written = true;
}

// ---------------------------------------------------------------- the access
void Engine::check_mem_access(State& st, std::size_t idx, unsigned regno, std::int32_t insn_off, unsigned size,
                              Access t, int value_regno, const Reg* value, bool sign_ext, bool is_st_imm,
                              std::int32_t st_imm) {
  const Reg r = reg(st, regno);
  const std::int64_t off = static_cast<std::int64_t>(insn_off) + r.off;
  if (r.type == RegType::ConstMapPtr && !r.maybe_null) {
    // The kernel allows reading struct bpf_map fields through BTF; without
    // BTF userbpf allows reads inside the structure and gives a scalar.
    if (t != Access::Read) reject(EACCES, "only read from bpf_map is supported");
    if (off < 0 || off + size > 256) reject(EACCES, fmt::format("R{} invalid mem access 'map_ptr'", regno));
    access_[idx] = -1;  // the runtime's map object is not the kernel's struct bpf_map
    if (value_regno >= 0) {
      Reg& d = reg(st, static_cast<unsigned>(value_regno));
      mark_unknown(d);
      d.written = true;
    }
    return;
  }
  if (r.maybe_null || r.type == RegType::Scalar || r.type == RegType::ConstMapPtr || r.type == RegType::PacketEnd ||
      r.type == RegType::NotInit || r.type == RegType::Func)
    reject(EACCES, fmt::format("R{} invalid mem access '{}'", regno, reg_type_str(r)));
  const bool ptr_value = value != nullptr && value->is_pointer();
  switch (r.type) {
    case RegType::Ctx:
      if (t == Access::Write && ptr_value && !cfg_.privileged) reject(EACCES, fmt::format("R{} leaks addr into ctx", value_regno));
      check_ctx_access(st, idx, regno, insn_off, size, t, t == Access::Read ? value_regno : -1);
      break;
    case RegType::MapValue: case RegType::MapKey: case RegType::Mem: {
      // callbacks get map keys read-only (the kernel's check_mem_access)
      if (t == Access::Write && r.type == RegType::MapKey)
        reject(EACCES, fmt::format("write to change key R{} not allowed", regno));
      if (t == Access::Write && ptr_value && !cfg_.privileged && r.type == RegType::MapValue)
        reject(EACCES, fmt::format("R{} leaks addr into map", regno));
      if (r.type == RegType::Mem && r.rdonly && t == Access::Write)
        reject(EACCES, fmt::format("R{} cannot write into {}", regno, reg_type_str(r)));
      const MapDesc* md = r.map >= 0 ? &cfg_.maps[static_cast<std::size_t>(r.map)] : nullptr;
      const std::uint64_t mem_size = r.type == RegType::MapValue ? md->value_size
                                     : r.type == RegType::MapKey ? md->key_size
                                                                 : r.range;
      check_mem_region(st, regno, off, size, mem_size, false);
      check_lock_field(r, off, size);
      if (t == Access::Read && value_regno >= 0) {
        Reg& d = reg(st, static_cast<unsigned>(value_regno));
        mark_unknown(d);
        d.written = true;
      }
      break;
    }
    case RegType::Stack: {
      const Tnum a = tnum_add(r.var_off, Tnum::constant(static_cast<std::uint64_t>(off)));
      if (!a.is_aligned(size))
        reject(EACCES, fmt::format("misaligned stack access off {}+{}+{} size {}", r.var_off.str(), r.off, insn_off,
                                   size));
      check_stack_bounds(st, regno, off, size, t);
      if (t == Access::Write) stack_write(st, regno, off, size, value, is_st_imm, st_imm);
      else stack_read(st, regno, off, size, value_regno);
      break;
    }
    case RegType::Packet: case RegType::PacketMeta:
      if (t == Access::Write && !prog_writes_packet(cfg_.prog_type)) reject(EACCES, "cannot write into packet");
      if (t == Access::Read && !prog_reads_packet(cfg_.prog_type))
        reject(EACCES, fmt::format("R{} invalid mem access '{}'", regno, reg_type_str(r)));
      if (t == Access::Write && ptr_value && !cfg_.privileged) reject(EACCES, fmt::format("R{} leaks addr into packet", regno));
      check_packet_access(st, regno, off, size, false);
      if (t == Access::Read && value_regno >= 0) {
        Reg& d = reg(st, static_cast<unsigned>(value_regno));
        mark_unknown(d);
        d.written = true;
      }
      break;
    case RegType::Sock: case RegType::SockCommon: case RegType::TcpSock:
      check_sock_access(st, idx, regno, off, size, t, value_regno);
      break;
    case RegType::NotInit: case RegType::Scalar: case RegType::ConstMapPtr: case RegType::PacketEnd:
    case RegType::Func:
      reject(EACCES, fmt::format("R{} invalid mem access '{}'", regno, reg_type_str(r)));
  }
  if (access_[idx] == 0) access_[idx] = 1;
  if (t == Access::Read && value_regno >= 0) {
    Reg& d = reg(st, static_cast<unsigned>(value_regno));
    if (d.type == RegType::Scalar && size < 8) {
      if (sign_ext) coerce_to_size_sx(d, size);
      else coerce_to_size(d, size);
    }
  }
}

void Engine::do_mem(State& st, std::size_t idx, const isa::Insn& in) {
  const Form f = in.info().form;
  const unsigned size = isa::access_size(in.op);
  if (f == Form::Ldx) {
    check_read(st, in.src);
    check_write(in.dst);
    const bool sx = in.op == Op::LdxSB || in.op == Op::LdxSH || in.op == Op::LdxSW;
    const RegType base = reg(st, in.src).type;
    check_mem_access(st, idx, in.src, in.off, size, Access::Read, in.dst, nullptr, sx, false, 0);
    check_same_ptr_kind(idx, base);
    return;
  }
  if (f == Form::Stx) {
    check_read(st, in.src);
    check_read(st, in.dst);
    const Reg v = reg(st, in.src);
    check_mem_access(st, idx, in.dst, in.off, size, Access::Write, in.src, &v, false, false, 0);
    check_same_ptr_kind(idx, reg(st, in.dst).type);
    return;
  }
  // ST
  check_read(st, in.dst);
  check_mem_access(st, idx, in.dst, in.off, size, Access::Write, -1, nullptr, false, true, in.imm);
}

void Engine::check_same_ptr_kind(std::size_t idx, RegType base) {
  const std::int8_t kind = base == RegType::Ctx ? 1 : 2;
  if (ptr_kind_[idx] == 0) ptr_kind_[idx] = kind;
  else if (ptr_kind_[idx] != kind) reject(EINVAL, "same insn cannot be used with different pointers");
}

void Engine::do_atomic(State& st, std::size_t idx, const isa::Insn& in) {
  const unsigned size = isa::access_size(in.op);
  if (in.info().form == Form::LoadAcq) {
    check_read(st, in.src);
    check_write(in.dst);
    check_mem_access(st, idx, in.src, in.off, size, Access::Read, in.dst, nullptr, false, false, 0);
    return;
  }
  if (in.info().form == Form::StoreRel) {
    check_read(st, in.src);
    check_read(st, in.dst);
    const Reg v = reg(st, in.src);
    check_mem_access(st, idx, in.dst, in.off, size, Access::Write, in.src, &v, false, false, 0);
    return;
  }
  check_read(st, in.src);
  check_read(st, in.dst);
  const bool cmpxchg = (in.imm & 0xf0) == 0xf0;
  const bool fetch = (in.imm & isa::sem::kAtomicFetch) != 0;
  if (cmpxchg) check_read(st, 0);
  const Reg src = reg(st, in.src);
  if (src.is_pointer() && !cfg_.privileged) reject(EACCES, fmt::format("R{} leaks addr into mem", in.src));
  const Reg base = reg(st, in.dst);
  if (base.type == RegType::Ctx || base.is_pkt() || base.type == RegType::PacketEnd)
    reject(EACCES, fmt::format("BPF_ATOMIC stores into R{} {} is not allowed", in.dst, reg_type_str(base)));
  const int load_reg = fetch ? (cmpxchg ? 0 : static_cast<int>(in.src)) : -1;
  if (load_reg >= 0) check_write(static_cast<unsigned>(load_reg));
  check_mem_access(st, idx, in.dst, in.off, size, Access::Read, load_reg, nullptr, false, false, 0);
  if (load_reg >= 0 && reg(st, static_cast<unsigned>(load_reg)).is_pointer() && !cfg_.privileged)
    reject(EACCES, fmt::format("R{} leaks addr into mem", load_reg));
  // A fetch from a slot holding a spilled pointer fills that pointer (the
  // kernel simulates the register fill); the slot itself becomes misc below.
  check_mem_access(st, idx, in.dst, in.off, size, Access::Write, -1, nullptr, false, false, 0);
}

void Engine::do_ld_abs(State& st, const isa::Insn& in) {
  if (!pt_->ld_abs) reject(EINVAL, "BPF_LD_[ABS|IND] instructions not allowed for this program type");
  if (subprog_start_.size() > 1)
    reject(EINVAL, "BPF_LD_[ABS|IND] instructions cannot be mixed with bpf-to-bpf calls");
  check_read(st, 6);
  check_no_refs(st, "BPF_LD_[ABS|IND]");
  if (reg(st, 6).type != RegType::Ctx) reject(EINVAL, "at the time of BPF_LD_ABS|IND R6 != pointer to skb");
  if (in.info().form == Form::LdInd) check_read(st, in.src);
  for (unsigned r = 1; r <= 5; ++r) mark_not_init(reg(st, r));
  Reg& r0 = reg(st, 0);
  mark_unknown(r0);
  r0.written = true;
}

// ---------------------------------------------------------------- helper calls
namespace {

bool is_mem_kind(spec::ArgKind k) {
  using K = spec::ArgKind;
  return k == K::MapKey || k == K::MapValue || k == K::UninitMapValue || k == K::Mem || k == K::ReadonlyMem ||
         k == K::ReadonlyMemOrNull || k == K::MemOrNull || k == K::UninitMem || k == K::PtrToLong;
}

}  // namespace

void Engine::check_map_compat(const spec::HelperProto& p, int map) {
  if (map < 0) return;
  const std::uint32_t mtype = cfg_.maps[static_cast<std::size_t>(map)].type;
  const spec::MapType* mt = spec::map_type(mtype);
  const auto need = spec::helper_map_types(p.id);
  bool ok;
  if (!need.empty()) {
    ok = std::find(need.begin(), need.end(), mtype) != need.end();
  } else {
    // generic map helpers: maps that do not support them refuse
    ok = mt == nullptr || mt->lookup;
    if (mt != nullptr && !mt->lookup && (p.id == 1 || p.id == 2 || p.id == 3)) ok = false;
    if (mt != nullptr && !mt->lookup && p.id != 1 && p.id != 2 && p.id != 3) ok = true;
  }
  if (mt != nullptr && !mt->special_helpers.empty() && need.empty() && (p.id == 1 || p.id == 2 || p.id == 3)) {
    // queue/stack: update (push) is fine, lookup/delete are not
    ok = (mtype == 22 || mtype == 23) && p.id == 2;
  }
  if (!ok)
    reject(EINVAL, fmt::format("cannot pass map_type {} into func bpf_{}#{}", mtype, p.name, p.id));
}

void Engine::check_helper_mem(State& st, unsigned regno, std::int64_t size, bool zero_ok, bool write, CallMeta* meta) {
  const Reg r = reg(st, regno);
  switch (r.type) {
    case RegType::Packet: case RegType::PacketMeta:
      if (write && !prog_writes_packet(cfg_.prog_type)) reject(EACCES, "cannot write into packet");
      check_packet_access(st, regno, r.off, size, zero_ok);
      return;
    case RegType::MapKey: case RegType::MapValue: {
      const MapDesc& md = cfg_.maps[static_cast<std::size_t>(r.map)];
      check_mem_region(st, regno, r.off, size, r.type == RegType::MapKey ? md.key_size : md.value_size, zero_ok);
      return;
    }
    case RegType::Mem:
      if (write && r.rdonly) reject(EACCES, fmt::format("R{} cannot write into {}", regno, reg_type_str(r)));
      check_mem_region(st, regno, r.off, size, r.range, zero_ok);
      return;
    case RegType::Stack:
      check_stack_range_init(st, regno, r.off, size, zero_ok, write, meta);
      return;
    case RegType::Scalar:
      if (zero_ok && size == 0 && r.var_off.equals_const(0)) return;
      [[fallthrough]];
    case RegType::NotInit: case RegType::Ctx: case RegType::ConstMapPtr: case RegType::PacketEnd:
    case RegType::Func: case RegType::Sock: case RegType::SockCommon: case RegType::TcpSock:
      reject(EACCES, fmt::format("R{} type={} expected=fp, pkt, pkt_meta, map_key, map_value, mem, ringbuf_mem, buf, "
                                 "trusted_ptr_",
                                 regno, reg_type_str(r)));
  }
}

void Engine::check_helper_arg(State& st, const spec::HelperProto& p, unsigned argno, CallMeta& meta) {
  using K = spec::ArgKind;
  const K kind = p.args[argno];
  const unsigned regno = argno + 1;
  if (kind == K::Unused) return;
  check_read(st, regno);
  const Reg r = reg(st, regno);
  auto mismatch = [&](const char* expected) {
    reject(EACCES, fmt::format("R{} type={} expected={}", regno, reg_type_str(r), expected));
  };
  if (kind != K::Anything && r.is_pkt() && !spec::helper_pkt_access(p.id))
    reject(EACCES, "helper access to the packet is not allowed");
  switch (kind) {
    case K::Unused: return;
    case K::Anything:
      if (r.is_pointer() && !cfg_.privileged) reject(EACCES, fmt::format("R{} leaks addr into helper function", regno));
      return;
    case K::ConstMapPtr:
      if (r.type != RegType::ConstMapPtr) mismatch("map_ptr");
      check_timer_map(r, regno, meta);  // bpf_timer_init: the timer's own map (timers.cpp)
      meta.map = r.map;
      if (p.id == 12 && cfg_.maps[static_cast<std::size_t>(r.map)].type != 3)
        reject(EINVAL, "expected prog array map for tail call");
      return;
    case K::Ctx:
      if (r.type != RegType::Ctx) mismatch("ctx");
      if (r.off != 0)
        reject(EACCES, fmt::format("dereference of modified ctx ptr R{} off={} disallowed", regno, r.off));
      if (!r.var_off.equals_const(0))
        reject(EACCES, fmt::format("variable ctx access var_off={} disallowed", r.var_off.str()));
      return;
    case K::ConstSize: case K::ConstSizeOrZero: {
      if (r.type != RegType::Scalar) mismatch("scalar");
      const bool zero_ok = kind == K::ConstSizeOrZero;
      const K mem_kind = p.args[argno - 1];
      CallMeta* m = r.var_off.is_const() ? &meta : nullptr;
      if (r.smin < 0)
        reject(EACCES, fmt::format("R{} min value is negative, either use unsigned or 'var &= const'", regno));
      if (r.umin == 0 && !zero_ok)
        reject(EACCES, fmt::format("R{} invalid zero-sized read: u64=[{},{}]", regno, r.umin, r.umax));
      if (r.umax >= kMaxVarSiz)
        reject(EACCES, fmt::format("R{} unbounded memory access, use 'var &= const' or 'if (var < const)'", regno));
      const bool write = mem_kind == K::UninitMem || mem_kind == K::Mem || mem_kind == K::MemOrNull;
      if (m != nullptr) m->raw_mode = mem_kind == K::UninitMem;
      if (mem_kind == K::ReadonlyMemOrNull || mem_kind == K::MemOrNull) {
        const Reg& mr = reg(st, regno - 1);
        if (mr.type == RegType::Scalar && mr.var_off.equals_const(0)) return;
      }
      check_helper_mem(st, regno - 1, static_cast<std::int64_t>(r.umax), zero_ok, write, m);
      meta.raw_mode = false;
      mark_precise(st, regno);
      return;
    }
    case K::ConstAllocSizeOrZero:
      if (r.type != RegType::Scalar) mismatch("scalar");
      if (!r.var_off.is_const()) reject(EACCES, fmt::format("R{} is not a known constant'", regno));
      meta.alloc_size = static_cast<std::int64_t>(r.var_off.value);
      mark_precise(st, regno);
      return;
    case K::RingbufMemRelease:
      // ARG_PTR_TO_RINGBUF_MEM | OBJ_RELEASE: the checked pointer a reserve returned
      if (r.type != RegType::Mem || !r.ringbuf || r.maybe_null) mismatch("ringbuf_mem");
      if (r.ref_obj_id == 0)
        reject(EINVAL, fmt::format("R{} must be referenced when passed to release function", regno));
      if (r.off != 0)
        reject(EINVAL, fmt::format("R{} must have zero offset when passed to release func or trusted arg to kfunc",
                                   regno));
      if (!r.var_off.equals_const(0))
        reject(EACCES, fmt::format("variable ringbuf_mem access var_off={} disallowed", r.var_off.str()));
      meta.release_ref = r.ref_obj_id;
      return;
    case K::Func:
      if (r.type != RegType::Func) mismatch("func");
      meta.callback = r.func;
      return;
    case K::StackOrNull:
      if (r.type == RegType::Scalar && r.var_off.equals_const(0)) return;
      if (r.type != RegType::Stack) mismatch("fp");
      return;
    case K::SockCommon: case K::SockCommonRelease:
      sock_arg(st, p, argno, meta);  // sockets.cpp
      return;
    case K::DynptrLocalUninit: case K::DynptrRingbufUninit: case K::DynptrRingbufRelease: case K::DynptrRdonly:
      dynptr_arg(st, cur_idx_, p, argno, meta);  // dynptr.cpp
      return;
    case K::Timer:
      check_timer_arg(st, regno, meta);  // timers.cpp
      return;
    case K::SpinLock: {
      // the kernel's process_spin_lock: the map value's struct bpf_spin_lock
      if (r.type != RegType::MapValue || r.maybe_null) mismatch("map_value, ptr_");
      check_map_field_pointer(r, regno, "bpf_spin_lock");  // timers.cpp
      meta.lock_map = r.map;
      meta.lock_id = r.id;
      return;
    }
    case K::MapKey: case K::MapValue: case K::UninitMapValue: case K::Mem: case K::ReadonlyMem:
    case K::ReadonlyMemOrNull: case K::MemOrNull: case K::UninitMem: case K::ConstStr: case K::PtrToLong:
      break;
  }
  if (is_mem_kind(kind)) {
    const bool or_null = kind == K::ReadonlyMemOrNull || kind == K::MemOrNull;
    if (or_null && r.type == RegType::Scalar && r.var_off.equals_const(0)) return;
    const bool ok_type = !r.maybe_null && (r.type == RegType::Stack || r.type == RegType::Packet ||
                                           r.type == RegType::PacketMeta || r.type == RegType::MapKey ||
                                           r.type == RegType::MapValue || r.type == RegType::Mem);
    if (!ok_type) mismatch("fp, pkt, pkt_meta, map_key, map_value, mem, ringbuf_mem, buf, trusted_ptr_");
    if (kind == K::PtrToLong) {
      // a fixed 8-byte result slot, written by the helper (may be
      // uninitialised), strictly aligned whatever the pointer type (MEM_ALIGNED)
      constexpr std::int64_t kLong = 8;
      if (!tnum_add(r.var_off, Tnum::constant(static_cast<std::uint64_t>(r.off))).is_aligned(kLong)) {
        const char* what = r.type == RegType::Stack ? "stack " : r.type == RegType::MapValue ? "value "
                           : r.type == RegType::Packet || r.type == RegType::PacketMeta ? "packet " : "";
        reject(EACCES, fmt::format("misaligned {}access off {}+{}+{} size {}", what, r.var_off.str(), r.off, 0, kLong));
      }
      if (r.type == RegType::Mem && r.rdonly) reject(EACCES, fmt::format("R{} cannot write into {}", regno, reg_type_str(r)));
      CallMeta m2;
      m2.raw_mode = true;
      check_helper_mem(st, regno, kLong, false, true, &m2);
      if (m2.raw_regno >= 0) {
        meta.raw_regno = m2.raw_regno;
        meta.raw_size = m2.raw_size;
      }
      return;
    }
    if (kind == K::MapKey || kind == K::MapValue || kind == K::UninitMapValue) {
      if (meta.map < 0) reject(EACCES, kind == K::MapKey ? "invalid map_ptr to access map->key"
                                                         : "invalid map_ptr to access map->value");
      const MapDesc& md = cfg_.maps[static_cast<std::size_t>(meta.map)];
      const std::uint32_t sz = kind == K::MapKey ? md.key_size : md.value_size;
      CallMeta m2;
      m2.raw_mode = kind == K::UninitMapValue;
      check_helper_mem(st, regno, sz, false, kind == K::UninitMapValue, m2.raw_mode ? &m2 : nullptr);
      if (m2.raw_regno >= 0) {
        meta.raw_regno = m2.raw_regno;
        meta.raw_size = m2.raw_size;
      }
      if (kind == K::MapKey && r.type == RegType::Stack && r.var_off.is_const()) {
        // remember a constant key (for array lookups that cannot fail): all
        // bytes STACK_ZERO, or an aligned spill of a constant of the key's size
        const std::int64_t o = static_cast<std::int64_t>(r.var_off.value) + r.off;
        const Frame& fr = st.frames[static_cast<std::size_t>(r.frameno)];
        bool zero = sz <= 8 && o < 0 && o + sz <= 0;
        for (std::int64_t a = o; zero && a < o + sz; ++a) {
          const SlotPos sp = slot_pos(a);
          zero = fr.stack[sp.spi].type[sp.byte] == Slot::Zero;
        }
        if (zero) {
          meta.has_const_key = true;
          meta.const_key = 0;
        } else if (o < 0 && o % 8 == 0 && sz <= 8) {
          const StackSlot& sl = fr.stack[static_cast<std::size_t>((-o - 1) / 8)];
          unsigned spill = 0;
          while (spill < 8 && sl.type[spill] == Slot::Spill) ++spill;
          if (spill == sz && sl.spilled.type == RegType::Scalar && sl.spilled.var_off.is_const()) {
            meta.has_const_key = true;
            // the whole spilled register, as the kernel's get_constant_map_key: a
            // narrow spill of a wider constant is a key out of range, not its low bytes
            meta.const_key = sl.spilled.var_off.value;
            // the key's value decides the result: it must be precise
            Masks m;
            m.stack[static_cast<std::size_t>(r.frameno)] = 1ULL << ((-o - 1) / 8);
            mark_precise_frames(st, m);
          }
        }
      }
    }
  }
}

// bpf_spin_lock / bpf_spin_unlock: one lock held at a time, unlocked by
// the same map value (the kernel's process_spin_lock).
void Engine::spin_lock_call(State& st, const spec::HelperProto& p, const CallMeta& meta) {
  if (p.id == static_cast<std::uint32_t>(spec::HelperId::spin_lock)) {
    if (st.lock_map >= 0) reject(EINVAL, "Locking two bpf_spin_locks are not allowed");
    st.lock_map = meta.lock_map;
    st.lock_id = meta.lock_id;
    return;
  }
  if (st.lock_map < 0) reject(EINVAL, "bpf_spin_unlock without taking a lock");
  if (st.lock_map != meta.lock_map || st.lock_id != meta.lock_id) reject(EINVAL, "bpf_spin_unlock of different lock");
  st.lock_map = -1;
  st.lock_id = 0;
}

// Loads and stores must not touch a map value's bpf_spin_lock.
void Engine::check_lock_field(const Reg& r, std::int64_t off, std::int64_t size) {
  check_timer_field(r, off, size);  // timers.cpp
  if (r.type != RegType::MapValue || r.map < 0) return;
  const std::int32_t lock = cfg_.maps[static_cast<std::size_t>(r.map)].spin_lock_off;
  if (lock < 0) return;
  const std::int64_t lo = r.smin + off, hi = static_cast<std::int64_t>(r.umax) + off + size;
  if (lo < lock + 4 && lock < hi) reject(EACCES, "bpf_spin_lock cannot be accessed directly by load/store");
}

void Engine::do_helper_call(State& st, std::size_t idx, const isa::Insn& in) {
  const std::int32_t id = in.imm;
  if (st.lock_map >= 0 && id != static_cast<std::int32_t>(spec::HelperId::spin_unlock))
    reject(EINVAL, "function calls are not allowed while holding a lock");
  if (id < 0 || static_cast<std::uint32_t>(id) >= spec::helper_id_limit())
    reject(EINVAL, fmt::format("invalid func unknown#{}", id));
  const auto uid = static_cast<std::uint32_t>(id);
  const spec::HelperProto* p = spec::helper(uid);
  if (p == nullptr || !spec::prog_type_allows_helper(*pt_, uid))
    reject(EINVAL, fmt::format("program of this type cannot use helper bpf_{}#{}", spec::helper_name(uid), id));
  using K = spec::ArgKind;
  for (const K k : p->args)
    if (k == K::ConstStr)
      reject(EINVAL, fmt::format("helper bpf_{}#{} is not supported by the userbpf verifier yet", p->name, id));
  if (p->ret == spec::RetKind::BtfIdTask)
    reject(EINVAL, fmt::format("helper bpf_{}#{} is not supported by the userbpf verifier yet", p->name, id));
  CallMeta meta;
  for (unsigned a = 0; a < 5; ++a) check_helper_arg(st, *p, a, meta);
  if (meta.raw_regno >= 0) {
    const Reg r = reg(st, static_cast<unsigned>(meta.raw_regno));
    if (r.type == RegType::Stack) {
      for (std::int64_t i = 0; i < meta.raw_size; ++i)
        stack_write(st, static_cast<unsigned>(meta.raw_regno), r.off + i, 1, nullptr, false, 0);
    }
  }
  check_map_compat(*p, meta.map);
  if (meta.lock_map >= 0) spin_lock_call(st, *p, meta);
  if (meta.callback >= 0 && is_async_callback_call(in)) push_async_callback(st, idx, meta);  // timers.cpp
  else if (meta.callback >= 0) push_callback(st, idx, *p, meta);
  if (uid == static_cast<std::uint32_t>(spec::HelperId::tail_call)) check_no_refs(st, "tail_call");
  if (meta.release_ref != 0) {
    if (std::none_of(st.refs.begin(), st.refs.end(), [&](const State::Ref& r) { return r.id == meta.release_ref; }))
      reject(EINVAL, fmt::format("func bpf_{}#{} reference has not been acquired before", p->name, id));
    release_reference(st, meta.release_ref);
  }
  if (meta.dynptr_release) dynptr_release(st, meta);  // dynptr.cpp
  if (uid == static_cast<std::uint32_t>(spec::HelperId::dynptr_from_mem) && reg(st, 1).type != RegType::MapValue)
    reject(EACCES, fmt::format("Unsupported reg type {} for bpf_dynptr_from_mem data", reg_type_str(reg(st, 1))));
  for (unsigned r = 1; r <= 5; ++r) mark_not_init(reg(st, r));
  Reg& r0 = reg(st, 0);
  switch (p->ret) {
    case spec::RetKind::Integer:
      mark_unknown(r0);
      if (uid == static_cast<std::uint32_t>(spec::HelperId::get_smp_processor_id)) {
        // the kernel's do_refine_retval_range: a CPU number below nr_cpu_ids
        const std::uint32_t n = cfg_.cpu_count != 0 ? cfg_.cpu_count : maps::default_cpu_count();
        r0.umin = r0.u32min = 0;
        r0.smin = r0.s32min = 0;
        r0.umax = r0.u32max = n - 1;
        r0.smax = r0.s32max = static_cast<std::int32_t>(n - 1);
        sync_bounds(r0);
      }
      break;
    case spec::RetKind::Void:
      mark_not_init(r0);
      break;
    case spec::RetKind::MapValueOrNull: {
      r0 = Reg{};
      r0.type = RegType::MapValue;
      r0.map = meta.map;
      const MapDesc& md = cfg_.maps[static_cast<std::size_t>(meta.map)];
      const spec::MapType* mt = spec::map_type(md.type);
      // Linux 6.18 returns a non-null map_value for a constant in-range key
      // of an array map (the null check's branch is then dead).
      const bool never_null = mt != nullptr && mt->value_null_key_const && meta.has_const_key &&
                              meta.const_key < md.max_entries;
      if (!never_null) {
        r0.maybe_null = true;
        r0.id = new_id();
      }
      break;
    }
    case spec::RetKind::RingbufMemOrNull: {
      // PTR_TO_MEM | MEM_RINGBUF | PTR_MAYBE_NULL of the reserved size; the
      // reservation is an acquired reference until submitted or discarded
      r0 = Reg{};
      r0.type = RegType::Mem;
      r0.ringbuf = true;
      r0.maybe_null = true;
      r0.range = static_cast<std::uint32_t>(std::max<std::int64_t>(meta.alloc_size, 0));
      (void)new_id();  // the kernel's id for the null check, replaced by the reference's
      r0.id = r0.ref_obj_id = new_id();
      st.refs.push_back(State::Ref{r0.id, static_cast<std::uint32_t>(idx)});
      break;
    }
    case spec::RetKind::BtfIdTask:
      break;
    case spec::RetKind::SocketOrNull: case spec::RetKind::SockCommonOrNull: case spec::RetKind::TcpSockOrNull:
      sock_return(st, idx, *p, meta);  // sockets.cpp
      break;
    case spec::RetKind::DynptrMemOrNull:
      dynptr_return(st, meta);  // dynptr.cpp
      break;
  }
  r0.written = true;
  if (spec::helper_changes_pkt_data(uid)) clear_pkt_pointers(st);
}

}  // namespace userbpf::verifier::detail
