// The eBPF interpreter.
//
// Design
// ------
// Program::create validates the instructions (isa::check_structure, or only
// in-range targets for uBPF-style programs) and pre-decodes them into an array
// of 16-byte Slots, one per instruction index (the lddw tail keeps its slot so
// that indexes, jump offsets and error messages use the kernel's numbering):
//
//   Slot { const void* h;  u8 dst, src;  s16 off;  s32 imm; }
//
// `h` is the address of the handler (a label inside exec<Mode>, GCC/clang
// labels-as-values): dispatch is direct threading, `goto *pc->h`, one
// indirect jump per instruction and no decode at run time. Immediates are
// sign-extended by the load that reads them (movslq), jump targets are
// pc + 1 + off (gotol and local calls: imm), lddw's 64-bit value is split
// over the slot's imm and the tail slot's imm and is resolved at creation
// (LddwFunc becomes abi::func_addr(target)).
//
// Handlers are generated from the opcode table: opcodes.def is expanded once
// into labels, and each row's label gets the body of its Form (HANDLE_AluK,
// HANDLE_JmpK, ...); the per-row details (operator, width, signedness, access
// size, atomic operation) come from isa::info(op) as constants, so every
// handler is specialised at compile time without a byte of opcode in here.
//
// Modes: exec<Mode> is instantiated three times, each with its own handler
// table and therefore its own Slot array (Fast built at creation, the others
// lazily, once, per Program):
//   Fast     no counting, no checks: a verified program is trusted.
//   Counted  counts instructions (RunResult::insns) and enforces the budget.
//   Checked  Counted + every load/store/atomic checked against env.regions
//            and the live stack frames.
// Unchecked mode is NOT memory-safe for an unverified program (like the
// kernel's interpreter): use checked mode for untrusted code.
//
// Frame layout: one run owns a 4 KiB stack (8 frames x 512 bytes) between
// two PROT_NONE guard pages (base::StackLease: per-thread areas reused across
// runs, so an unchecked program that runs off its stack faults instead of
// corrupting the host stack). Frame d's 512 bytes end at top - d * 512, so
// r10 of the callee is the caller's r10 - 512 and the live frames are one contiguous range
// [r10 - 512, top): a pointer into a caller's frame stays valid in the
// callee, a pointer into a returned frame (stale) or below r10 - 512 is a
// violation in checked mode. In checked mode the stack is zeroed at the start
// and a RegionKind::Stack region covering the live frames is appended to
// env.regions for the duration of the run (so helpers can check stack
// pointers with env.find_region); it is removed before run() returns. The
// live range is tracked apart from r10, so a program that writes r10 cannot
// widen it.
//
// Faults: a handler records (reason, pc, operands) in a FaultInfo and jumps
// to one exit; the abi:: error is built there by a cold function, so no Error
// object lives in the hot frame.
//
// Calls: a local call saves (return slot, r6-r9, may_goto counter) in a
// Frame, r10 moves down 512 bytes, r1-r5 are passed as they are; exit
// restores them. More than 8 frames: abi::call_depth_exceeded. Helpers and
// kfuncs get (env, r1..r5) and write r0; r1-r5 are left unchanged (the
// kernel calls them undefined; both engines keep them). After every helper
// call, env.failed() ends the run with Fault::HelperFailed and
// env.exit_requested() ends it with r0 = env.exit_value().
//
// Invariants:
//   - every slot index < n is an instruction or an lddw tail; jumps and calls
//     never target a tail (checked at creation), execution never reaches one;
//   - slot n is a sentinel whose handler reports abi::fell_off_end(n): running
//     past the last instruction costs nothing in the hot path;
//   - register operands are < 11 (checked at creation), so r[] is never
//     indexed out of bounds;
//   - no global mutable state: each run has its registers, frames and stack
//     on its own C++ stack; the only shared state is the lazily built Slot
//     arrays, built under std::call_once and immutable afterwards.
// Budget: with budget B, dispatching instruction number B + 1 ends the run
// with abi::budget_exhausted(pc of that instruction); RunResult::insns counts
// executed instructions (an lddw counts once).
//
// Callbacks (abi::Env::call_function, used by bpf_loop, for_each_map_elem,
// ...): each exec publishes a RunCtx through env.engine and sets
// env.callback to callback<Mode> (both restored when exec returns). Before
// every helper call the exec stores its depth, the call's pc and (counted
// modes) its instruction count in the RunCtx (abi::CallbackScope does the
// publishing and restoring). callback<Mode> then runs a
// nested exec<Mode> that starts at the function's first instruction with
// r1-r5 from the helper, on frame depth + 1 of the SAME 4 KiB stack (r10 =
// caller's r10 - 512; the live range and the checked-mode stack region grow
// to cover it and shrink back afterwards), continuing the outer instruction
// count and budget; its `exit` at that base depth returns r0 to the helper.
//   - function value not a func_addr() of a function entry:
//     bad_call_target(pc of the helper call, value); the run ends.
//   - no frame left (depth + 1 would be the 9th): call_depth_exceeded(pc of
//     the helper call); the run ends.
//   - the callee faults, exhausts the budget, or ends the run (unwind helper,
//     LD_ABS out of range): its RunResult is kept in the outer RunCtx,
//     env.callback_aborted() is set, the helper returns, and the outer exec
//     returns that RunResult as the run's result.
// Counting: the callee's instructions count like any others; the helper call
// counts once (as every call); nothing is counted for the entry itself.
#include "interp/interp.hpp"

#include <fmt/format.h>

#include <array>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <string_view>

#include "base/guarded_stack.hpp"

namespace userbpf::interp {

namespace {

using isa::Op;
using isa::sem::s32;
using isa::sem::s64;
using isa::sem::u16;
using isa::sem::u32;
using isa::sem::u64;
using isa::sem::u8;

#define UBPF_INLINE [[gnu::always_inline]] inline

struct Slot {
  const void* h = nullptr;
  u8 dst = 0;
  u8 src = 0;
  std::int16_t off = 0;
  std::int32_t imm = 0;
};
static_assert(sizeof(Slot) == 16);

// Handler indexes: one per table row (the isa::Op value), then the lddw tail
// (isa::Op::LddwTail == kOpCount) and the end sentinel.
constexpr std::size_t kTailHandler = isa::kOpCount;
constexpr std::size_t kEndHandler = isa::kOpCount + 1;
constexpr std::size_t kNumHandlers = isa::kOpCount + 2;

enum class Mode : std::uint8_t { Fast = 0, Counted = 1, Checked = 2 };
constexpr std::size_t kNumModes = 3;

constexpr u64 kFrameBytes = static_cast<u64>(isa::kStackSize);
constexpr u64 kStackBytes = kFrameBytes * isa::kMaxCallFrames;

// ---------------------------------------------------------------- per-row semantics
// All of these take the row as a template argument and fold to a few
// instructions; the row's fields are read from the table at compile time.

template <Op kOp>
constexpr std::string_view kop() {
  return isa::info(kOp).kop;
}

// ALU operation: a = dst value, b = operand (sign-extended imm or src value).
template <Op kOp>
UBPF_INLINE u64 alu(u64 a, u64 b) {
  namespace sem = isa::sem;
  constexpr std::string_view k = kop<kOp>();
  if constexpr (isa::is_64(kOp)) {
    if constexpr (k == "+=")
      return a + b;
    else if constexpr (k == "-=")
      return a - b;
    else if constexpr (k == "*=")
      return a * b;
    else if constexpr (k == "/=")
      return sem::div64(a, b);
    else if constexpr (k == "s/=")
      return sem::sdiv64(a, b);
    else if constexpr (k == "%=")
      return sem::mod64(a, b);
    else if constexpr (k == "s%=")
      return sem::smod64(a, b);
    else if constexpr (k == "|=")
      return a | b;
    else if constexpr (k == "&=")
      return a & b;
    else if constexpr (k == "^=")
      return a ^ b;
    else if constexpr (k == "<<=")
      return sem::lsh64(a, b);
    else if constexpr (k == ">>=")
      return sem::rsh64(a, b);
    else if constexpr (k == "s>>=")
      return sem::arsh64(a, b);
    else if constexpr (k == "=")
      return b;
    else
      static_assert(k == "+=", "unhandled ALU64 operator");
  } else {
    const u32 x = static_cast<u32>(a), y = static_cast<u32>(b);
    if constexpr (k == "+=")
      return static_cast<u32>(x + y);
    else if constexpr (k == "-=")
      return static_cast<u32>(x - y);
    else if constexpr (k == "*=")
      return static_cast<u32>(x * y);
    else if constexpr (k == "/=")
      return sem::div32(x, y);
    else if constexpr (k == "s/=")
      return sem::sdiv32(x, y);
    else if constexpr (k == "%=")
      return sem::mod32(x, y);
    else if constexpr (k == "s%=")
      return sem::smod32(x, y);
    else if constexpr (k == "|=")
      return x | y;
    else if constexpr (k == "&=")
      return x & y;
    else if constexpr (k == "^=")
      return x ^ y;
    else if constexpr (k == "<<=")
      return sem::lsh32(x, b);
    else if constexpr (k == ">>=")
      return sem::rsh32(x, b);
    else if constexpr (k == "s>>=")
      return sem::arsh32(x, b);
    else if constexpr (k == "=")
      return y;
    else
      static_assert(k == "+=", "unhandled ALU32 operator");
  }
}

template <Op kOp>
UBPF_INLINE u64 neg(u64 a) {
  if constexpr (isa::is_64(kOp))
    return 0 - a;
  else
    return static_cast<u32>(0U - static_cast<u32>(a));
}

template <Op kOp>
UBPF_INLINE u64 end(u64 a) {
  namespace sem = isa::sem;
  constexpr std::string_view k = kop<kOp>();
  constexpr auto width = static_cast<unsigned>(isa::info(kOp).sel_value);
  if constexpr (k.starts_with("le"))
    return sem::to_le(a, width);
  else if constexpr (k.starts_with("be"))
    return sem::to_be(a, width);
  else
    return sem::bswap(a, width);
}

template <Op kOp>
UBPF_INLINE u64 movsx(u64 a) {
  constexpr auto bits = static_cast<unsigned>(isa::info(kOp).sel_value);
  const u64 v = isa::sem::sext(a, bits);
  if constexpr (isa::is_64(kOp))
    return v;
  else
    return isa::sem::zext32(v);
}

template <Op kOp>
UBPF_INLINE bool cond(u64 a, u64 b) {
  constexpr auto c = static_cast<isa::sem::Cond>(isa::op_code(kOp));
  if constexpr (isa::is_64(kOp))
    return isa::sem::cond64(c, a, b);
  else
    return isa::sem::cond32(c, a, b);
}

// Unsigned host type of an access size.
template <unsigned kSize>
struct UType;
template <>
struct UType<1> {
  using T = u8;
};
template <>
struct UType<2> {
  using T = u16;
};
template <>
struct UType<4> {
  using T = u32;
};
template <>
struct UType<8> {
  using T = u64;
};

template <unsigned kSize>
UBPF_INLINE u64 load(u64 addr) {
  typename UType<kSize>::T v;
  std::memcpy(&v, reinterpret_cast<const void*>(addr), kSize);  // NOLINT(performance-no-int-to-ptr)
  return v;
}
template <unsigned kSize>
UBPF_INLINE void store(u64 addr, u64 value) {
  const auto v = static_cast<typename UType<kSize>::T>(value);
  std::memcpy(reinterpret_cast<void*>(addr), &v, kSize);  // NOLINT(performance-no-int-to-ptr)
}
// load-acquire / store-release (BPF_LOAD_ACQ / BPF_STORE_REL)
template <unsigned kSize>
UBPF_INLINE u64 load_acquire(u64 addr) {
  using T = typename UType<kSize>::T;
  return __atomic_load_n(reinterpret_cast<const T*>(addr), __ATOMIC_ACQUIRE);  // NOLINT(performance-no-int-to-ptr)
}
template <unsigned kSize>
UBPF_INLINE void store_release(u64 addr, u64 value) {
  using T = typename UType<kSize>::T;
  // NOLINTNEXTLINE(performance-no-int-to-ptr): BPF addresses are host addresses
  __atomic_store_n(reinterpret_cast<T*>(addr), static_cast<T>(value), __ATOMIC_RELEASE);
}

// Ldx: zero- or sign-extending load (kop "s8"/"s16"/"s32" sign-extends).
template <Op kOp>
UBPF_INLINE u64 ldx(u64 addr) {
  constexpr unsigned size = isa::access_size(kOp);
  const u64 v = load<size>(addr);
  if constexpr (kop<kOp>().starts_with("s"))
    return isa::sem::sext(v, size * 8);
  else
    return v;
}

// Atomics. Returns nothing; writes the fetched value to *fetch_dst (src or r0).
template <Op kOp>
UBPF_INLINE void atomic(u64 addr, u64* regs, unsigned src) {
  using T = typename UType<isa::access_size(kOp)>::T;
  constexpr std::int32_t sel = isa::info(kOp).sel_value;
  constexpr auto aop = static_cast<isa::sem::AtomicOp>(sel & ~isa::sem::kAtomicFetch);
  constexpr bool fetch = (sel & isa::sem::kAtomicFetch) != 0;
  T* p = reinterpret_cast<T*>(addr);  // NOLINT(performance-no-int-to-ptr)
  const T v = static_cast<T>(regs[src]);
  using isa::sem::AtomicOp;
  if constexpr (aop == AtomicOp::Cmpxchg) {
    T expected = static_cast<T>(regs[0]);
    __atomic_compare_exchange_n(p, &expected, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    regs[0] = expected;
  } else if constexpr (aop == AtomicOp::Xchg) {
    regs[src] = __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
  } else {
    T old;
    if constexpr (aop == AtomicOp::Add)
      old = __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
    else if constexpr (aop == AtomicOp::Or)
      old = __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST);
    else if constexpr (aop == AtomicOp::And)
      old = __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST);
    else
      old = __atomic_fetch_xor(p, v, __ATOMIC_SEQ_CST);
    if constexpr (fetch) regs[src] = old;
  }
}

// LD_ABS / LD_IND: big-endian packet load; false if out of range.
template <unsigned kSize>
UBPF_INLINE bool packet_load(const abi::Env& env, u32 off, u64& out) {
  // The kernel passes the offset as a signed 32-bit int; negative offsets are
  // its special SKF_* areas, which have no meaning here: out of range.
  if (static_cast<s32>(off) < 0 || env.packet == nullptr) return false;
  if (static_cast<u64>(off) + kSize > env.packet_len) return false;
  const u64 v = load<kSize>(reinterpret_cast<u64>(env.packet + off));
  if constexpr (kSize == 1)
    out = v;
  else
    out = isa::sem::to_be(v, kSize * 8);
  return true;
}

// ---------------------------------------------------------------- faults (cold)
// Why a run ended early; the error is built only then, out of the hot path.
enum class Why : std::uint8_t {
  UnknownHelper,
  UnknownKfunc,
  BadCallTarget,
  FellOff,
  HelperFailed,
  CallDepth,
  Memory,
  Budget
};
struct FaultInfo {
  Why why = Why::FellOff;
  std::size_t pc = 0;
  u64 a = 0;  // helper id / callx value / address
  u64 b = 0;  // access size
  bool write = false;
};

[[gnu::cold, gnu::noinline]] abi::RunResult fault_result(const FaultInfo& fi, const abi::Env& env, u64 r0, u64 insns) {
  abi::RunResult res;
  res.r0 = r0;
  res.insns = insns;
  switch (fi.why) {
    case Why::UnknownHelper:
      res.fault = abi::Fault::UnknownHelper;
      res.error = abi::unknown_helper(fi.pc, static_cast<u32>(fi.a));
      break;
    case Why::UnknownKfunc:
      res.fault = abi::Fault::UnknownHelper;
      res.error = abi::unknown_kfunc(fi.pc, static_cast<u32>(fi.a));
      break;
    case Why::BadCallTarget:
      res.fault = abi::Fault::BadCallTarget;
      res.error = abi::bad_call_target(fi.pc, fi.a);
      break;
    case Why::FellOff:
      res.fault = abi::Fault::FellOffEnd;
      res.error = abi::fell_off_end(fi.pc);
      break;
    case Why::HelperFailed:
      res.fault = abi::Fault::HelperFailed;
      res.error = abi::helper_failed(fi.pc, env);
      break;
    case Why::CallDepth:
      res.fault = abi::Fault::CallDepth;
      res.error = abi::call_depth_exceeded(fi.pc);
      break;
    case Why::Memory:
      res.fault = abi::Fault::MemoryViolation;
      res.error = abi::memory_violation(fi.pc, fi.a, fi.b, fi.write);
      break;
    case Why::Budget:
      res.fault = abi::Fault::Budget;
      res.error = abi::budget_exhausted(fi.pc, env.options.budget);
      break;
  }
  return res;
}

struct Frame {
  const Slot* ret;
  u64 r6, r7, r8, r9;
  u64 may_goto;
};

struct ProgramView {
  const Slot* code;
  std::size_t n;
  const std::vector<bool>* func_entry;
};

class StackRegion;

// Where a nested exec (a callback) starts; filled by callback<Mode>.
struct Nested {
  std::size_t entry = 0;  // pc of the callee's first instruction
  unsigned depth = 0;     // its frame depth (the base depth of this exec)
  u64 count = 0;          // instructions counted so far in the run
  u64 stack_top = 0;      // the run's stack (the outer exec's buffer)
  StackRegion* region = nullptr;  // checked mode: the run's stack region
  u64 args[5] = {};
  bool ended_run = false;  // out: the callee ended the whole run cleanly
};

// What an exec publishes for callbacks (env.engine points here during a run).
struct RunCtx {
  const ProgramView* prog = nullptr;
  u64 stack_top = 0;
  StackRegion* region = nullptr;
  unsigned depth = 0;         // published before each helper call
  std::size_t call_pc = 0;    // published before each helper call
  u64 count = 0;              // published before / reloaded after each helper call (counted modes)
  std::optional<abi::RunResult> aborted;  // set when a callback ended the run
};


// Appends the checked-mode stack region and removes it on scope exit.
class StackRegion {
 public:
  StackRegion(abi::Env& env, u64 lo, u64 hi) : env_(env), index_(env.regions.size()) {
    env.regions.push_back(abi::Region{lo, hi - lo, true, abi::RegionKind::Stack});
  }
  StackRegion(const StackRegion&) = delete;
  StackRegion& operator=(const StackRegion&) = delete;
  ~StackRegion() {
    if (index_ < env_.regions.size()) env_.regions.erase(env_.regions.begin() + static_cast<std::ptrdiff_t>(index_));
  }
  void update(u64 lo, u64 hi) {
    if (index_ < env_.regions.size()) {
      env_.regions[index_].start = lo;
      env_.regions[index_].size = hi - lo;
    }
  }

 private:
  abi::Env& env_;
  std::size_t index_;
};

// ---------------------------------------------------------------- the engine
// Some fault labels are unused in some modes (no memory checks in Fast).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-label"
template <Mode kMode>
u64 callback(abi::Env& env, u64 fn, u64 r1, u64 r2, u64 r3, u64 r4, u64 r5);

// exec<kMode>(nullptr, ...) returns the handler table through `table_out`.
// `nested` non-null: a callback run (see the design comment).
template <Mode kMode>
abi::RunResult exec(const ProgramView* prog, abi::Env& env, std::span<const u64> args, const void* const** table_out,
                    Nested* nested = nullptr) {
  static const void* const kTable[kNumHandlers] = {
#define UBPF_OP(name, byte, sel, selval, form, kop, mnem, ver, group, kern) &&L_##name,
#include "isa/opcodes.def"
#undef UBPF_OP
      &&L_LddwTail,
      &&L_End,
  };
  if (table_out != nullptr) {
    *table_out = kTable;
    return {};
  }

  constexpr bool kCount = kMode != Mode::Fast;
  constexpr bool kCheck = kMode == Mode::Checked;

  const Slot* const code = prog->code;
  const Slot* pc = code;
  u64 r[isa::kNumRegs] = {};
  // the run's stack between guard pages (callbacks use their caller's: no lease)
  const base::StackLease stack_lease(nested == nullptr ? kStackBytes : 0);
  Frame frames[isa::kMaxCallFrames];
  const unsigned base_depth = nested != nullptr ? nested->depth : 0;
  unsigned depth = base_depth;
  u64 may_goto = abi::kMayGotoBudget;
  u64 count = nested != nullptr ? nested->count : 0;
  const u64 budget = env.options.budget > 0 ? env.options.budget : std::numeric_limits<u64>::max();

  const u64 stack_top = nested != nullptr ? nested->stack_top : reinterpret_cast<u64>(stack_lease.top());
  u64 live_lo = stack_top - (depth + 1) * kFrameBytes;  // lowest live stack byte (checked mode)
  std::optional<StackRegion> own_region;
  StackRegion* stack_region = nullptr;
  if constexpr (kCheck) {
    if (nested == nullptr) {
      std::memset(stack_lease.top() - kStackBytes, 0, kStackBytes);
      stack_region = &own_region.emplace(env, live_lo, stack_top);
    } else {
      stack_region = nested->region;
      stack_region->update(live_lo, stack_top);
    }
  }
  if (nested == nullptr) {
    for (std::size_t i = 0; i < args.size() && i < 5; ++i) r[i + 1] = args[i];
    env.reset_signals();
  } else {
    for (std::size_t i = 0; i < 5; ++i) r[i + 1] = nested->args[i];
    pc = code + nested->entry;
  }
  r[isa::kFrameReg] = stack_top - depth * kFrameBytes;
  RunCtx ctx;
  ctx.prog = prog;
  ctx.stack_top = stack_top;
  ctx.region = stack_region;
  const abi::CallbackScope engine_scope(env, &ctx, &callback<kMode>);

  FaultInfo fi;  // filled on the way to `fail`

  auto index = [&](const Slot* at) { return static_cast<std::size_t>(at - code); };

#define NEXT()                           \
  do {                                   \
    if constexpr (kCount) {              \
      if (++count > budget) [[unlikely]] \
        goto budget_fault;               \
    }                                    \
    goto * pc->h;                        \
  } while (0)

#define CHECK_MEM(addr, size, write)                                                                          \
  do {                                                                                                        \
    if constexpr (kCheck) {                                                                                   \
      const u64 a_ = (addr);                                                                                  \
      if (!(a_ - live_lo <= stack_top - live_lo - (size)) && env.find_region(a_, (size), (write)) == nullptr) \
          [[unlikely]] {                                                                                      \
        fi = FaultInfo{Why::Memory, index(pc), a_, (size), (write)};                                          \
        goto fail;                                                                                            \
      }                                                                                                       \
    }                                                                                                         \
  } while (0)

// ---- one macro per Form; each row of the table expands to its form's macro
#define HANDLE_AluK(name)                           \
  L_##name : {                                      \
    u64& d = r[pc->dst];                            \
    d = alu<Op::name>(d, isa::sem::imm64(pc->imm)); \
    ++pc;                                           \
    NEXT();                                         \
  }
#define HANDLE_AluX(name)             \
  L_##name : {                        \
    u64& d = r[pc->dst];              \
    d = alu<Op::name>(d, r[pc->src]); \
    ++pc;                             \
    NEXT();                           \
  }
#define HANDLE_Neg(name)  \
  L_##name : {            \
    u64& d = r[pc->dst];  \
    d = neg<Op::name>(d); \
    ++pc;                 \
    NEXT();               \
  }
#define HANDLE_End(name)  \
  L_##name : {            \
    u64& d = r[pc->dst];  \
    d = end<Op::name>(d); \
    ++pc;                 \
    NEXT();               \
  }
#define HANDLE_MovSx(name)                    \
  L_##name : {                                \
    r[pc->dst] = movsx<Op::name>(r[pc->src]); \
    ++pc;                                     \
    NEXT();                                   \
  }
#define HANDLE_Ja(name)    \
  L_##name : {             \
    pc = pc + 1 + pc->off; \
    NEXT();                \
  }
#define HANDLE_Gotol(name)                          \
  L_##name : {                                      \
    pc += 1 + static_cast<std::ptrdiff_t>(pc->imm); \
    NEXT();                                         \
  }
// Conditional jumps branch on the host too: a predicted host branch lets the
// CPU run ahead; a branch-free select (cmov) measured 1.5-3x slower because
// the next dispatch then waits for the compare.
#define HANDLE_JmpK(name)                                     \
  L_##name : {                                                \
    if (cond<Op::name>(r[pc->dst], isa::sem::imm64(pc->imm))) \
      pc = pc + 1 + pc->off;                                  \
    else                                                      \
      pc = pc + 1;                                            \
    NEXT();                                                   \
  }
#define HANDLE_JmpX(name)                       \
  L_##name : {                                  \
    if (cond<Op::name>(r[pc->dst], r[pc->src])) \
      pc = pc + 1 + pc->off;                    \
    else                                        \
      pc = pc + 1;                              \
    NEXT();                                     \
  }
#define HANDLE_MayGoto(name) \
  L_##name : {               \
    if (may_goto == 0) {     \
      pc += 1 + pc->off;     \
    } else {                 \
      --may_goto;            \
      ++pc;                  \
    }                        \
    NEXT();                  \
  }
#define HANDLE_Call(name)                  \
  L_##name : {                             \
    helper_id = static_cast<u32>(pc->imm); \
    goto call_helper;                      \
  }
#define HANDLE_CallKfunc(name)                                                                                    \
  L_##name : {                                                                                                    \
    const abi::Helper* h = env.helpers != nullptr ? env.helpers->find_kfunc(static_cast<u32>(pc->imm)) : nullptr; \
    if (h == nullptr) [[unlikely]] {                                                                              \
      fi = FaultInfo{Why::UnknownKfunc, index(pc), static_cast<u32>(pc->imm)};                                    \
      goto fail;                                                                                                  \
    }                                                                                                             \
    helper_fn = h->fn;                                                                                            \
    goto call_fn;                                                                                                 \
  }
#define HANDLE_CallLocal(name)                              \
  L_##name : {                                              \
    target = pc + 1 + static_cast<std::ptrdiff_t>(pc->imm); \
    goto call_local;                                        \
  }
#define HANDLE_Callx(name)                                                                           \
  L_##name : {                                                                                       \
    const u64 v = r[pc->dst];                                                                        \
    if (v <= std::numeric_limits<u32>::max()) {                                                      \
      helper_id = static_cast<u32>(v);                                                               \
      goto call_helper;                                                                              \
    }                                                                                                \
    if (abi::is_func_addr(v) && abi::func_pc(v) < prog->n && (*prog->func_entry)[abi::func_pc(v)]) { \
      target = code + abi::func_pc(v);                                                               \
      goto call_local;                                                                               \
    }                                                                                                \
    fi = FaultInfo{Why::BadCallTarget, index(pc), v};                                                \
    goto fail;                                                                                       \
  }
#define HANDLE_Exit(name)                                \
  L_##name : {                                           \
    if (depth == base_depth) goto done;                  \
    const Frame& f = frames[--depth];                    \
    pc = f.ret;                                          \
    r[6] = f.r6;                                         \
    r[7] = f.r7;                                         \
    r[8] = f.r8;                                         \
    r[9] = f.r9;                                         \
    may_goto = f.may_goto;                               \
    r[isa::kFrameReg] = stack_top - depth * kFrameBytes; \
    if constexpr (kCheck) {                              \
      live_lo = stack_top - (depth + 1) * kFrameBytes;   \
      stack_region->update(live_lo, stack_top);          \
    }                                                    \
    NEXT();                                              \
  }
#define HANDLE_Lddw(name)                                                                           \
  L_##name : {                                                                                      \
    r[pc->dst] = static_cast<u32>(pc->imm) | (static_cast<u64>(static_cast<u32>(pc[1].imm)) << 32); \
    pc += 2;                                                                                        \
    NEXT();                                                                                         \
  }
#define HANDLE_LdAbs(name)                                                                           \
  L_##name : {                                                                                       \
    if (!packet_load<isa::access_size(Op::name)>(env, static_cast<u32>(pc->imm), r[0])) [[unlikely]] \
      goto packet_out_of_range;                                                                      \
    ++pc;                                                                                            \
    NEXT();                                                                                          \
  }
#define HANDLE_LdInd(name)                                                      \
  L_##name : {                                                                  \
    const u32 off_ = static_cast<u32>(r[pc->src]) + static_cast<u32>(pc->imm);  \
    if (!packet_load<isa::access_size(Op::name)>(env, off_, r[0])) [[unlikely]] \
      goto packet_out_of_range;                                                 \
    ++pc;                                                                       \
    NEXT();                                                                     \
  }
#define HANDLE_Ldx(name)                                    \
  L_##name : {                                              \
    const u64 addr = r[pc->src] + isa::sem::imm64(pc->off); \
    CHECK_MEM(addr, isa::access_size(Op::name), false);     \
    r[pc->dst] = ldx<Op::name>(addr);                       \
    ++pc;                                                   \
    NEXT();                                                 \
  }
#define HANDLE_St(name)                                                \
  L_##name : {                                                         \
    const u64 addr = r[pc->dst] + isa::sem::imm64(pc->off);            \
    CHECK_MEM(addr, isa::access_size(Op::name), true);                 \
    store<isa::access_size(Op::name)>(addr, isa::sem::imm64(pc->imm)); \
    ++pc;                                                              \
    NEXT();                                                            \
  }
#define HANDLE_Stx(name)                                    \
  L_##name : {                                              \
    const u64 addr = r[pc->dst] + isa::sem::imm64(pc->off); \
    CHECK_MEM(addr, isa::access_size(Op::name), true);      \
    store<isa::access_size(Op::name)>(addr, r[pc->src]);    \
    ++pc;                                                   \
    NEXT();                                                 \
  }
#define HANDLE_Atomic(name)                                 \
  L_##name : {                                              \
    const u64 addr = r[pc->dst] + isa::sem::imm64(pc->off); \
    CHECK_MEM(addr, isa::access_size(Op::name), true);      \
    atomic<Op::name>(addr, r, pc->src);                     \
    ++pc;                                                   \
    NEXT();                                                 \
  }
#define HANDLE_LoadAcq(name)                                        \
  L_##name : {                                                      \
    const u64 addr = r[pc->src] + isa::sem::imm64(pc->off);         \
    CHECK_MEM(addr, isa::access_size(Op::name), false);             \
    r[pc->dst] = load_acquire<isa::access_size(Op::name)>(addr);    \
    ++pc;                                                           \
    NEXT();                                                         \
  }
#define HANDLE_StoreRel(name)                                       \
  L_##name : {                                                      \
    const u64 addr = r[pc->dst] + isa::sem::imm64(pc->off);         \
    CHECK_MEM(addr, isa::access_size(Op::name), true);              \
    store_release<isa::access_size(Op::name)>(addr, r[pc->src]);    \
    ++pc;                                                           \
    NEXT();                                                         \
  }

  // shared state of the call paths
  u32 helper_id = 0;
  abi::HelperFn helper_fn = nullptr;
  const Slot* target = nullptr;

  NEXT();

#define UBPF_OP(name, byte, sel, selval, form, kop, mnem, ver, group, kern) HANDLE_##form(name)
#include "isa/opcodes.def"
#undef UBPF_OP

L_LddwTail:
  // Unreachable: creation guarantees no jump or call lands on a tail.
  fi = FaultInfo{Why::FellOff, index(pc)};
  goto fail;

L_End:
  if constexpr (kCount) --count;  // the sentinel is not an instruction
  fi = FaultInfo{Why::FellOff, index(pc)};
  goto fail;

call_helper : {
  const abi::Helper* h = env.helpers != nullptr ? env.helpers->find(helper_id) : nullptr;
  if (h == nullptr) [[unlikely]] {
    fi = FaultInfo{Why::UnknownHelper, index(pc), helper_id};
    goto fail;
  }
  helper_fn = h->fn;
}
call_fn:
  ctx.depth = depth;
  ctx.call_pc = index(pc);
  if constexpr (kCount) ctx.count = count;
  r[0] = helper_fn(env, r[1], r[2], r[3], r[4], r[5]);
  if constexpr (kCount) count = ctx.count;
  if (env.callback_aborted() && ctx.aborted.has_value()) [[unlikely]] {
    if (nested != nullptr) nested->ended_run = true;
    return *ctx.aborted;
  }
  if (env.failed()) [[unlikely]] {
    fi = FaultInfo{Why::HelperFailed, index(pc)};
    goto fail;
  }
  if (env.exit_requested()) [[unlikely]] {
    if (nested != nullptr) nested->ended_run = true;
    r[0] = env.exit_value();
    goto done;
  }
  ++pc;
  NEXT();

call_local : {
  if (depth + 1 >= static_cast<unsigned>(isa::kMaxCallFrames)) [[unlikely]] {
    fi = FaultInfo{Why::CallDepth, index(pc)};
    goto fail;
  }
  Frame& f = frames[depth++];
  f.ret = pc + 1;
  f.r6 = r[6];
  f.r7 = r[7];
  f.r8 = r[8];
  f.r9 = r[9];
  f.may_goto = may_goto;
  may_goto = abi::kMayGotoBudget;
  r[isa::kFrameReg] = stack_top - depth * kFrameBytes;
  if constexpr (kCheck) {
    live_lo = stack_top - (depth + 1) * kFrameBytes;
    stack_region->update(live_lo, stack_top);
  }
  pc = target;
  NEXT();
}

packet_out_of_range:
  if (nested != nullptr) nested->ended_run = true;
  r[0] = 0;
  goto done;

budget_fault:
  if (pc == code + prog->n) goto L_End;  // running past the end is reported as such
  --count;
  fi = FaultInfo{Why::Budget, index(pc)};
  goto fail;

fail:
  return fault_result(fi, env, r[0], count);

done : {
  abi::RunResult res;
  res.r0 = r[0];
  res.insns = count;
  return res;
}

#undef NEXT
#undef CHECK_MEM
}
#pragma GCC diagnostic pop

template <Mode kMode>
u64 callback(abi::Env& env, u64 fn, u64 r1, u64 r2, u64 r3, u64 r4, u64 r5) {
  auto& c = *static_cast<RunCtx*>(env.engine);
  const ProgramView& prog = *c.prog;
  if (!abi::is_func_addr(fn) || abi::func_pc(fn) >= prog.n || !(*prog.func_entry)[abi::func_pc(fn)]) [[unlikely]] {
    FaultInfo fi{Why::BadCallTarget, c.call_pc, fn};
    c.aborted = fault_result(fi, env, 0, c.count);
    env.set_callback_aborted();
    return 0;
  }
  if (c.depth + 1 >= static_cast<unsigned>(isa::kMaxCallFrames)) [[unlikely]] {
    FaultInfo fi{Why::CallDepth, c.call_pc};
    c.aborted = fault_result(fi, env, 0, c.count);
    env.set_callback_aborted();
    return 0;
  }
  Nested n;
  n.entry = abi::func_pc(fn);
  n.depth = c.depth + 1;
  n.count = c.count;
  n.stack_top = c.stack_top;
  n.region = c.region;
  n.args[0] = r1;
  n.args[1] = r2;
  n.args[2] = r3;
  n.args[3] = r4;
  n.args[4] = r5;
  abi::RunResult res = exec<kMode>(&prog, env, {}, nullptr, &n);
  c.count = res.insns;
  if (res.fault != abi::Fault::None || n.ended_run) [[unlikely]] {
    c.aborted = std::move(res);
    env.set_callback_aborted();
    return 0;
  }
  if constexpr (kMode == Mode::Checked)
    c.region->update(c.stack_top - (c.depth + 1) * kFrameBytes, c.stack_top);
  return res.r0;
}

}  // namespace

// ---------------------------------------------------------------- Program
struct Program::Impl {
  std::vector<isa::Insn> insns;
  std::vector<Slot> proto;          // n + 1 slots without handlers
  std::vector<std::uint16_t> kind;  // handler index per slot
  std::vector<bool> func_entry;     // valid callx / func_addr targets
  mutable std::array<std::vector<Slot>, kNumModes> code;
  mutable std::array<std::once_flag, kNumModes> once;

  template <Mode kMode>
  const std::vector<Slot>& code_for() const {
    constexpr auto m = static_cast<std::size_t>(kMode);
    std::call_once(once[m], [this] {
      const void* const* table = nullptr;
      abi::Env unused;
      (void)exec<kMode>(nullptr, unused, {}, &table);
      std::vector<Slot> out = proto;
      for (std::size_t i = 0; i < out.size(); ++i) out[i].h = table[kind[i]];
      code[m] = std::move(out);
    });
    return code[m];
  }
};

Program::Program(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Program::Program(Program&&) noexcept = default;
Program& Program::operator=(Program&&) noexcept = default;
Program::~Program() = default;

std::size_t Program::size() const { return impl_->insns.size(); }
std::span<const isa::Insn> Program::insns() const { return impl_->insns; }

Result<Program> Program::create(std::span<const isa::Insn> insns, const LoadOptions& opts) {
  if (auto st = isa::check_program(insns, opts.kernel_structure); !st) return st.error();
  auto impl = std::make_unique<Impl>();
  const std::size_t n = insns.size();
  impl->insns.assign(insns.begin(), insns.end());
  impl->proto.resize(n + 1);
  impl->kind.resize(n + 1);
  impl->func_entry.assign(n, false);
  impl->func_entry[0] = true;
  for (std::size_t pc = 0; pc < n; ++pc) {
    const isa::Insn& in = insns[pc];
    Slot& s = impl->proto[pc];
    s.dst = in.dst;
    s.src = in.src;
    s.off = in.off;
    s.imm = in.imm;
    impl->kind[pc] = static_cast<std::uint16_t>(in.op);
    if (in.op == Op::LddwTail) {
      impl->kind[pc] = static_cast<std::uint16_t>(kTailHandler);
      continue;
    }
    if (in.op == Op::CallLocal || in.op == Op::LddwFunc)
      impl->func_entry[static_cast<std::size_t>(static_cast<std::int64_t>(pc) + 1 + in.imm)] = true;
    if (in.info().form == isa::Form::Lddw) {
      u64 value = in.imm64();
      if (in.op == Op::LddwFunc)
        value = abi::func_addr(static_cast<std::size_t>(static_cast<std::int64_t>(pc) + 1 + in.imm));
      s.imm = static_cast<std::int32_t>(static_cast<u32>(value));
      // the tail's imm holds the high half (written when the tail is visited)
      impl->proto[pc + 1].imm = static_cast<std::int32_t>(static_cast<u32>(value >> 32));
      impl->proto[pc + 1].dst = 0;
      impl->kind[pc + 1] = static_cast<std::uint16_t>(kTailHandler);
      ++pc;  // skip the tail
    }
  }
  impl->kind[n] = static_cast<std::uint16_t>(kEndHandler);
  (void)impl->code_for<Mode::Fast>();
  return Program(std::move(impl));
}

abi::RunResult Program::run(abi::Env& env, std::span<const std::uint64_t> args) const {
  const Impl& p = *impl_;
  if (env.options.checked) {
    const ProgramView view{p.code_for<Mode::Checked>().data(), p.insns.size(), &p.func_entry};
    return exec<Mode::Checked>(&view, env, args, nullptr);
  }
  if (env.options.budget > 0 || env.options.count_insns) {
    const ProgramView view{p.code_for<Mode::Counted>().data(), p.insns.size(), &p.func_entry};
    return exec<Mode::Counted>(&view, env, args, nullptr);
  }
  const ProgramView view{p.code[0].data(), p.insns.size(), &p.func_entry};
  return exec<Mode::Fast>(&view, env, args, nullptr);
}

}  // namespace userbpf::interp
