// Internal: the abstract state the verifier explores (registers, stack
// slots, call frames) and the scalar-domain operations on it.
//
// A scalar register carries a tnum (known bits) and four interval pairs:
// signed/unsigned 64-bit and signed/unsigned 32-bit (the low half). After
// every operation `sync_bounds` makes them agree with each other (the same
// deductions as the kernel's reg_bounds_sync: tnum -> ranges, ranges ->
// tnum, 32-bit <-> 64-bit, signed <-> unsigned when the sign is known).
// Invariant: every concrete value the register may hold lies inside all of
// them; an empty intersection means the path is impossible.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "isa/isa.hpp"
#include "verifier/tnum.hpp"

namespace userbpf::verifier::detail {

using u64 = std::uint64_t;
using s64 = std::int64_t;
using u32 = std::uint32_t;
using s32 = std::int32_t;

enum class RegType : std::uint8_t {
  NotInit,
  Scalar,
  Ctx,           // PTR_TO_CTX
  ConstMapPtr,   // CONST_PTR_TO_MAP
  MapValue,      // PTR_TO_MAP_VALUE (maybe_null: PTR_TO_MAP_VALUE_OR_NULL)
  MapKey,        // PTR_TO_MAP_KEY
  Stack,         // PTR_TO_STACK
  PacketMeta,    // PTR_TO_PACKET_META
  Packet,        // PTR_TO_PACKET
  PacketEnd,     // PTR_TO_PACKET_END
  Mem,           // PTR_TO_MEM (rdonly / ringbuf flags, maybe_null)
  Func,          // PTR_TO_FUNC (lddw rX, func): a callback subprogram
  Sock,          // PTR_TO_SOCKET (struct bpf_sock; maybe_null: sock_or_null)
  SockCommon,    // PTR_TO_SOCK_COMMON (struct bpf_sock, common fields only)
  TcpSock,       // PTR_TO_TCP_SOCK (struct bpf_tcp_sock)
};

struct Reg {
  RegType type = RegType::NotInit;
  bool maybe_null = false;
  bool rdonly = false;    // PTR_TO_MEM | MEM_RDONLY
  bool ringbuf = false;   // PTR_TO_MEM | MEM_RINGBUF (reference-tracked)
  bool written = false;   // "_w" in the log: written since the last checkpoint
  bool precise = false;   // scalar whose exact range matters (precision tracking)
  Tnum var_off = Tnum::constant(0);
  s64 smin = 0, smax = 0;
  u64 umin = 0, umax = 0;
  s32 s32min = 0, s32max = 0;
  u32 u32min = 0, u32max = 0;
  s32 off = 0;        // fixed offset of a pointer
  u32 id = 0;         // null-check / packet-range / scalar-copy identity
  u32 ref_obj_id = 0; // acquired reference (ringbuf memory)
  int map = -1;       // index into Config::maps (map pointers, map values)
  u32 range = 0;      // packet: bytes proven readable from off 0; mem: size
  int frameno = 0;    // stack pointers: the frame they point into
  int func = -1;      // PTR_TO_FUNC: the subprogram index
  u32 dynptr_id = 0;  // mem from bpf_dynptr_data: the dynptr's id (slices die with it)

  [[nodiscard]] bool is_pointer() const { return type != RegType::NotInit && type != RegType::Scalar; }
  [[nodiscard]] bool is_pkt() const { return type == RegType::Packet || type == RegType::PacketMeta; }
  [[nodiscard]] bool is_sock() const {
    return type == RegType::Sock || type == RegType::SockCommon || type == RegType::TcpSock;
  }
  [[nodiscard]] bool is_const() const { return type == RegType::Scalar && var_off.is_const(); }
};

// Scalar constructors and the bounds logic (scalar.cpp).
void mark_unknown(Reg& r);                 // scalar, all bits unknown
void mark_known(Reg& r, u64 v);            // scalar constant
void mark_unbounded(Reg& r);               // bounds unknown, keep type/offset
void mark_not_init(Reg& r);
void reset_bounds_from_tnum(Reg& r);
void sync_bounds(Reg& r);                  // reg_bounds_sync
void zext_32_to_64(Reg& r);                // after a 32-bit operation
bool bounds_empty(const Reg& r);           // contradictory: impossible path
void assign_32_into_64(Reg& r);            // 64-bit bounds from 32-bit ones (zero-extended)
void coerce_to_size(Reg& r, unsigned size);     // zero-extending load/truncation
void coerce_to_size_sx(Reg& r, unsigned size);  // sign-extending load/movsx

// ALU on scalars: dst = dst op src for ALU (is64 false) or ALU64.
// `op_code` is the 4-bit operation (isa::op_code). Returns false when the
// operation is not defined for scalars (never for valid opcodes).
void scalar_alu(Reg& dst, const Reg& src, unsigned op_code, bool is64);

// Branch evaluation: 1 = always taken, 0 = never, -1 = unknown.
int branch_taken(const Reg& a, const Reg& b, isa::sem::Cond c, bool is32);
// Refines both registers for the branch outcome (taken / fall-through).
void refine(Reg& a, Reg& b, isa::sem::Cond c, bool is32, bool taken);

// ---------------------------------------------------------------- stack and frames
// Iter: an open-coded iterator (STACK_ITER); Dynptr: half of a struct bpf_dynptr (STACK_DYNPTR, two slots)
enum class Slot : std::uint8_t { Invalid, Spill, Misc, Zero, Iter, Dynptr };

inline constexpr int kStackSize = 512;
inline constexpr int kSlots = kStackSize / 8;
inline constexpr int kMaxFrames = 8;

struct StackSlot {
  std::array<Slot, 8> type{};  // per byte, index 0 = lowest address
  Reg spilled;                 // valid when all 8 bytes are Spill (or partial scalar spills)
  // Slot::Iter (all 8 bytes): the iterator's state and loop depth (the
  // kernel's spilled_ptr.iter); spilled.ref_obj_id is its reference.
  std::uint8_t iter_state = 0;  // IterState
  std::uint32_t iter_depth = 0;
  // Slot::Dynptr (all 8 bytes of both slots): the dynptr's type (DynptrType)
  // and whether this is its first (higher) slot; spilled.id is the dynptr's
  // id, spilled.ref_obj_id its reference (ring buffer dynptrs).
  std::uint8_t dynptr_type = 0;
  bool dynptr_first = false;
};
enum DynptrType : std::uint8_t { kDynptrInvalid = 0, kDynptrLocal = 1, kDynptrRingbuf = 2 };  // enum bpf_dynptr_type
enum IterState : std::uint8_t { kIterNone = 0, kIterActive = 1, kIterDrained = 2 };

struct Frame {
  std::array<Reg, 11> regs{};
  std::array<StackSlot, kSlots> stack{};  // stack[i] covers fp-(i+1)*8 .. fp-i*8-1
  int callsite = -1;  // instruction index of the call that created this frame
  int subprog = 0;    // index of the subprogram
  int frameno = 0;
  bool in_callback = false;     // a callback called by a helper (returns to the helper call)
  u32 callback_depth = 0;       // callback iterations started from this frame's current call
  bool in_async_callback = false;  // frame 0 of a bpf_timer callback (returns 0; timers.cpp)
};

// One executed instruction of the current path segment (since the last
// checkpoint), for precision backtracking.
struct HistEntry {
  u32 idx = 0;
  std::int16_t spi = -1;   // stack slot a fill/spill at a constant offset used
  std::uint8_t frame = 0;  // frame of that stack slot
};

struct State {
  std::vector<Frame> frames;
  struct Ref {
    u32 id = 0;    // the reference's id (ref_obj_id of the registers holding it)
    u32 insn = 0;  // the instruction that acquired it
  };
  std::vector<Ref> refs;  // acquired references (ring buffer reservations)
  u32 parent = ~0u;       // index of the last checkpoint on this path
  std::vector<HistEntry> hist;  // instructions since that checkpoint
  u32 jmp_hist = 0;             // entries of the kernel's jump history since that checkpoint
  u32 may_goto_depth = 0;       // may_goto iterations taken on this path
  u32 dfs_depth = 0;            // pending-branch nesting (a pushed state is one deeper)
  u32 active_rcu = 0;           // bpf_rcu_read_lock() sections open on this path
  int lock_map = -1;            // bpf_spin_lock held: the map (Config::maps index) of the lock
  u32 lock_id = 0;              // ... and the id of the map value register that took it
  [[nodiscard]] Frame& cur() { return frames.back(); }
  [[nodiscard]] const Frame& cur() const { return frames.back(); }
};

// Calls f(Reg&) for every register of every frame and every spilled register.
template <class F>
void for_each_reg(State& st, F&& f) {
  for (auto& fr : st.frames) {
    for (auto& r : fr.regs) f(r);
    for (auto& s : fr.stack)
      if (s.type[7] == Slot::Spill || s.type[0] == Slot::Spill) f(s.spilled);
  }
}

// Equivalence for pruning: every concrete state of `cur` is a concrete state
// of `old` (old was fully explored and safe).
// Cmp::Exact: equal but for id renaming (infinite-loop detection);
// Cmp::RangeWithin: like NotExact, but imprecise scalars are compared by
// range too (callback loops, whose precision marks are not final yet).
enum class Cmp : std::uint8_t { NotExact, Exact, RangeWithin };
// Only registers in live_before[idx] (live_before[callsite] for outer
// frames) are compared; an empty span compares all.
bool states_equal(const State& old, const State& cur, Cmp mode, std::span<const std::uint16_t> live_before = {},
                  std::size_t idx = 0);

}  // namespace userbpf::verifier::detail
