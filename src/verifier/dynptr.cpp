// Dynptrs on the stack (the kernel's STACK_DYNPTR), as Linux 6.18's
// process_dynptr_func / mark_stack_slots_dynptr / unmark_stack_slots_dynptr.
//
// How it works: a struct bpf_dynptr is 16 bytes on the stack at a constant,
// 8-aligned offset (fp-16 or lower: two slots, spi and spi - 1). A helper
// argument with MEM_UNINIT (bpf_dynptr_from_mem, bpf_ringbuf_reserve_dynptr)
// first writes both slots (an unreferenced dynptr there is destroyed, a
// referenced one is "cannot overwrite referenced dynptr"), then marks them
// Slot::Dynptr with a new dynptr id (both slots) and, for ring buffer
// dynptrs, an acquired reference (State::refs; ref_obj_id of both slots).
// An initialised dynptr argument (read, write, data) must be the first slot
// of such a pair ("Expected an initialized dynptr as arg #N"); submit and
// discard (OBJ_RELEASE) release the reference, invalidate the slots and
// every slice (bpf_dynptr_data's mem, which carries the reference).
// bpf_dynptr_data returns mem_or_null of the constant size argument with a
// new id, the dynptr's id (dynptr_id: slices die when the dynptr is
// overwritten) and its reference. Stores into dynptr slots destroy the
// dynptr (stack_write calls dynptr_destroy); reads of them are invalid
// stack reads; helpers may not write raw memory over them.
// Invariant: Slot::Dynptr is set on all 8 bytes of both slots of a pair,
// never partially, and exactly one of the two is dynptr_first (the higher
// spi, i.e. the lower address).
#include <fmt/format.h>

#include <cerrno>

#include "verifier/engine.hpp"

namespace userbpf::verifier::detail {

namespace {

constexpr std::int64_t kDynptrSize = 16;  // sizeof(struct bpf_dynptr)

void set_slots(StackSlot& s, std::uint8_t type, bool first, std::uint32_t id, std::uint32_t ref) {
  s.type.fill(type == kDynptrInvalid ? Slot::Invalid : Slot::Dynptr);
  s.spilled = Reg{};
  s.spilled.id = id;
  s.spilled.ref_obj_id = ref;
  s.dynptr_type = type;
  s.dynptr_first = first;
}

}  // namespace

// The first slot of the dynptr a stack pointer names (the kernel's
// dynptr_get_spi), or a rejection with its messages.
int Engine::dynptr_spi(const Reg& r) {
  if (!r.var_off.is_const()) throw Reject{EINVAL, "dynptr has to be at a constant offset"};
  const std::int64_t off = r.off + static_cast<std::int64_t>(r.var_off.value);
  const std::int64_t spi = (-off - 1) / 8;
  if (off % 8 != 0 || spi < 1) throw Reject{EINVAL, fmt::format("cannot pass in dynptr at an offset={}", off)};
  if (spi >= kSlots) throw Reject{EINVAL, fmt::format("cannot pass in dynptr at an offset={}", off)};
  return static_cast<int>(spi);
}

bool Engine::dynptr_destroy(State& st, Frame& fr, std::size_t spi) {
  if (fr.stack[spi].type[0] != Slot::Dynptr) return true;
  if (!fr.stack[spi].dynptr_first) ++spi;
  StackSlot& first = fr.stack[spi];
  if (first.dynptr_type == kDynptrRingbuf) return false;
  const std::uint32_t id = first.spilled.id;
  set_slots(first, kDynptrInvalid, false, 0, 0);
  set_slots(fr.stack[spi - 1], kDynptrInvalid, false, 0, 0);
  // slices of this dynptr are gone (mark_reg_invalid)
  for_each_reg(st, [&](Reg& r) {
    if (r.type != RegType::Mem || r.dynptr_id != id) return;
    const bool w = r.written;
    if (cfg_.privileged) mark_unknown(r);
    else mark_not_init(r);
    r.written = w;
  });
  return true;
}

void Engine::dynptr_arg(State& st, std::size_t idx, const spec::HelperProto& p, unsigned argno, CallMeta& meta) {
  using K = spec::ArgKind;
  const K kind = p.args[argno];
  const unsigned regno = argno + 1;
  const Reg r = reg(st, regno);
  if (r.type != RegType::Stack) reject(EACCES, fmt::format("R{} type={} expected=fp, dynptr_ptr", regno, reg_type_str(r)));
  Frame& fr = stack_frame(st, r);
  meta.dynptr_regno = static_cast<int>(regno);
  if (kind == K::DynptrRingbufRelease) {
    int spi = -1;
    std::string why;
    try {
      spi = dynptr_spi(r);
    } catch (const Reject& e) {
      why = e.message + "\n";
    }
    if (spi < 0 || fr.stack[static_cast<std::size_t>(spi)].spilled.ref_obj_id == 0)
      reject(EINVAL, fmt::format("{}arg {} is an unacquired reference", why, regno));
    meta.dynptr_release = true;
  }
  if (kind == K::DynptrLocalUninit || kind == K::DynptrRingbufUninit) {
    int spi = -1;
    try {
      spi = dynptr_spi(r);
    } catch (const Reject& e) {
      reject(EINVAL, e.message + "\nDynptr has to be an uninitialized dynptr");
    }
    // the kernel writes the 16 bytes as two 8-byte stores first
    for (std::int64_t i = 0; i < kDynptrSize; i += 8) {
      check_stack_bounds(st, regno, r.off + i, 8, Access::Write);
      stack_write(st, regno, r.off + i, 8, nullptr, false, 0);
    }
    const auto s = static_cast<std::size_t>(spi);
    const std::uint8_t type = kind == K::DynptrLocalUninit ? kDynptrLocal : kDynptrRingbuf;
    const std::uint32_t id = new_id();
    std::uint32_t ref = 0;
    if (type == kDynptrRingbuf) {
      ref = new_id();
      st.refs.push_back(State::Ref{ref, static_cast<std::uint32_t>(idx)});
    }
    set_slots(fr.stack[s], type, true, id, ref);
    set_slots(fr.stack[s - 1], type, false, id, ref);
    return;
  }
  // an initialised dynptr (MEM_RDONLY or released)
  int spi = -1;
  try {
    spi = dynptr_spi(r);
  } catch (const Reject& e) {
    reject(EINVAL, fmt::format("{}\nExpected an initialized dynptr as arg #{}", e.message, regno - 1));
  }
  const auto s = static_cast<std::size_t>(spi);
  const StackSlot& first = fr.stack[s];
  bool init = first.dynptr_first;
  for (unsigned b = 0; b < 8; ++b)
    init = init && first.type[b] == Slot::Dynptr && fr.stack[s - 1].type[b] == Slot::Dynptr;
  if (!init) reject(EINVAL, fmt::format("Expected an initialized dynptr as arg #{}", regno - 1));
  if (kind == K::DynptrRingbufRelease && first.dynptr_type != kDynptrRingbuf)
    reject(EINVAL, fmt::format("Expected a dynptr of type ringbuf as arg #{}", regno - 1));
  live_mark_read(st, r.frameno, (1ULL << s) | (1ULL << (s - 1)));
  meta.dynptr_id = first.spilled.id;
  meta.dynptr_ref = first.spilled.ref_obj_id;
}

// submit/discard: the reference, its slices and every dynptr holding it end.
void Engine::dynptr_release(State& st, const CallMeta& meta) {
  const Reg r = reg(st, static_cast<unsigned>(meta.dynptr_regno));
  Frame& fr = stack_frame(st, r);
  const auto spi = static_cast<std::size_t>(dynptr_spi(r));
  const std::uint32_t ref = fr.stack[spi].spilled.ref_obj_id;
  release_reference(st, ref);
  for (std::size_t i = 1; i < static_cast<std::size_t>(kSlots); ++i) {
    if (fr.stack[i].type[0] != Slot::Dynptr || !fr.stack[i].dynptr_first || fr.stack[i].spilled.ref_obj_id != ref)
      continue;
    set_slots(fr.stack[i], kDynptrInvalid, false, 0, 0);
    set_slots(fr.stack[i - 1], kDynptrInvalid, false, 0, 0);
  }
}

// bpf_dynptr_data: a slice of the constant size, null when out of range.
void Engine::dynptr_return(State& st, const CallMeta& meta) {
  Reg& r0 = reg(st, 0);
  r0 = Reg{};
  r0.type = RegType::Mem;
  r0.maybe_null = true;
  r0.range = static_cast<std::uint32_t>(std::max<std::int64_t>(meta.alloc_size, 0));
  r0.id = new_id();
  r0.dynptr_id = meta.dynptr_id;
  r0.ref_obj_id = meta.dynptr_ref;
}

}  // namespace userbpf::verifier::detail
