// State equivalence for pruning (the kernel's states_equal / regsafe /
// stacksafe), without liveness or precision marks: every register and
// stack byte of the old (explored) state counts. A scalar of the current
// state is covered when its bounds lie inside the old one's and its tnum is
// a subset; pointers must match in type, map, fixed offset and ids (through
// a consistent id map), with at least the old packet range.
#include <map>

#include "verifier/state.hpp"

namespace userbpf::verifier::detail {

namespace {

struct IdMap {
  std::map<u32, u32> fwd, back;
  bool check(u32 a, u32 b) {
    if (a == 0 && b == 0) return true;
    if (a == 0 || b == 0) return false;
    auto f = fwd.find(a);
    auto r = back.find(b);
    if (f == fwd.end() && r == back.end()) {
      fwd[a] = b;
      back[b] = a;
      return true;
    }
    return f != fwd.end() && f->second == b && r != back.end() && r->second == a;
  }
};

bool range_within(const Reg& o, const Reg& c) {
  return o.umin <= c.umin && o.umax >= c.umax && o.smin <= c.smin && o.smax >= c.smax && o.u32min <= c.u32min &&
         o.u32max >= c.u32max && o.s32min <= c.s32min && o.s32max >= c.s32max;
}

bool same_reg(const Reg& a, const Reg& b, IdMap& ids) {
  if (a.type == RegType::NotInit && b.type == RegType::NotInit) return true;
  return a.type == b.type && a.maybe_null == b.maybe_null && a.rdonly == b.rdonly && a.var_off == b.var_off &&
         a.smin == b.smin && a.smax == b.smax && a.umin == b.umin && a.umax == b.umax && a.s32min == b.s32min &&
         a.s32max == b.s32max && a.u32min == b.u32min && a.u32max == b.u32max && a.off == b.off && a.map == b.map &&
         a.range == b.range && a.frameno == b.frameno && a.ringbuf == b.ringbuf && a.func == b.func &&
         a.dynptr_id == b.dynptr_id &&
         ids.check(a.id, b.id) &&
         ids.check(a.ref_obj_id, b.ref_obj_id);
}

bool regsafe(const Reg& o, const Reg& c, IdMap& ids, Cmp mode) {
  const bool exact = mode == Cmp::Exact;
  if (exact) return same_reg(o, c, ids);
  if (o.type == RegType::NotInit) return true;
  if (c.type != o.type) return false;
  switch (o.type) {
    case RegType::Scalar:
      if (!o.precise && mode == Cmp::NotExact) return true;  // its value never mattered on the explored paths
      if (o.id != 0 && !ids.check(o.id, c.id)) return false;
      return range_within(o, c) && o.var_off.contains(c.var_off);
    case RegType::Packet: case RegType::PacketMeta:
      if (c.range < o.range) return false;
      if (o.off != c.off) return false;
      if (!ids.check(o.id, c.id)) return false;
      return range_within(o, c) && o.var_off.contains(c.var_off);
    case RegType::NotInit: case RegType::Ctx: case RegType::ConstMapPtr: case RegType::MapValue:
    case RegType::MapKey: case RegType::Stack: case RegType::PacketEnd: case RegType::Mem: case RegType::Func:
    case RegType::Sock: case RegType::SockCommon: case RegType::TcpSock:
      if (o.maybe_null != c.maybe_null || o.rdonly != c.rdonly || o.ringbuf != c.ringbuf || o.map != c.map ||
          o.func != c.func || o.dynptr_id != c.dynptr_id ||
          o.off != c.off || o.frameno != c.frameno || o.range != c.range)
        return false;
      if (!ids.check(o.id, c.id) || !ids.check(o.ref_obj_id, c.ref_obj_id)) return false;
      return range_within(o, c) && o.var_off.contains(c.var_off);
  }
  return false;
}

bool stacksafe(const Frame& o, const Frame& c, IdMap& ids, Cmp mode) {
  const bool exact = mode == Cmp::Exact;
  for (int spi = 0; spi < kSlots; ++spi) {
    const StackSlot& os = o.stack[static_cast<std::size_t>(spi)];
    const StackSlot& cs = c.stack[static_cast<std::size_t>(spi)];
    for (unsigned i = 0; i < 8; ++i) {
      const Slot ot = os.type[i], ct = cs.type[i];
      if (exact) {
        if (ot != ct) return false;
        continue;
      }
      if (ot == Slot::Invalid) continue;
      if (ot == Slot::Misc && ct != Slot::Invalid && ct != Slot::Spill) continue;
      if (ot == Slot::Misc && ct == Slot::Spill && cs.spilled.type == RegType::Scalar) continue;
      if (ot != ct) return false;
    }
    if (os.type[0] == Slot::Spill && !regsafe(os.spilled, cs.spilled, ids, mode)) return false;
    if (os.type[0] == Slot::Iter) {
      // the iterator's depth is ignored, except for the infinite-loop check
      // (exact): another depth is another iteration (iter_active_depths_differ)
      if (os.iter_state != cs.iter_state || !ids.check(os.spilled.ref_obj_id, cs.spilled.ref_obj_id)) return false;
      if (exact && os.iter_depth != cs.iter_depth) return false;
    }
    if (os.type[0] == Slot::Dynptr &&
        (os.dynptr_type != cs.dynptr_type || os.dynptr_first != cs.dynptr_first ||
         !ids.check(os.spilled.ref_obj_id, cs.spilled.ref_obj_id)))
      return false;
  }
  return true;
}

}  // namespace

bool states_equal(const State& old, const State& cur, Cmp mode, std::span<const std::uint16_t> live_before,
                  std::size_t idx) {
  if (old.frames.size() != cur.frames.size()) return false;
  if (old.refs.size() != cur.refs.size() || old.active_rcu != cur.active_rcu || old.lock_map != cur.lock_map)
    return false;
  IdMap ids;
  if (old.lock_map >= 0 && !ids.check(old.lock_id, cur.lock_id)) return false;
  for (std::size_t f = 0; f < old.frames.size(); ++f) {
    const Frame& o = old.frames[f];
    const Frame& c = cur.frames[f];
    if (o.callsite != c.callsite) return false;
    // only registers live at the frame's instruction count (Linux 6.18:
    // live_regs_before of the insn, or of the call for an outer frame)
    const std::size_t at = f + 1 == old.frames.size() ? idx : static_cast<std::size_t>(old.frames[f + 1].callsite);
    const unsigned live = at < live_before.size() ? live_before[at] | (1u << 10) : 0xffffu;
    for (std::size_t r = 0; r < o.regs.size(); ++r)
      if ((live & (1u << r)) != 0 && !regsafe(o.regs[r], c.regs[r], ids, mode)) return false;
    if (!stacksafe(o, c, ids, mode)) return false;
  }
  for (std::size_t i = 0; i < old.refs.size(); ++i)
    if (!ids.check(old.refs[i].id, cur.refs[i].id)) return false;
  return true;
}

}  // namespace userbpf::verifier::detail
