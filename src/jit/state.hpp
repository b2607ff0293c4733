// The run-time side of the x86-64 JIT (internal to src/jit): the per-run
// State that generated code addresses through r12, and the C functions the
// code calls on slow paths (defined in runtime.cpp; see the design comment
// in jit.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "abi/abi.hpp"
#include "isa/isa.hpp"

namespace userbpf::jit::detail {

using u8 = std::uint8_t;
using u32 = std::uint32_t;
using u64 = std::uint64_t;
using s32 = std::int32_t;
using s64 = std::int64_t;

inline constexpr u64 kFrameSize = static_cast<u64>(isa::kStackSize);
inline constexpr u64 kStackTotal = kFrameSize * static_cast<u64>(isa::kMaxCallFrames);
inline constexpr u32 kNoEntry = std::numeric_limits<u32>::max();
inline constexpr std::size_t kNoRegion = std::numeric_limits<std::size_t>::max();

// What generated code needs at run time besides the State: where the code
// lives and where each BPF function starts (for callx and callbacks).
struct CodeInfo {
  const u8* base = nullptr;
  u32 trampoline_offset = 0;      // entry(State*, const u64 args[5], u64 r10, const u8* target)
  std::vector<u32> entry_offset;  // by pc; kNoEntry if pc is not a function start
};

// What every run of one Program on one Env needs and that does not change
// from run to run (Program::run and Program::Runner choose it once).
struct State;
struct RunPlan {
  void (*entry)(State*, const u64*, u64, const u8*);  // the variant's trampoline
  const u8* target;      // the main program's first instruction
  const CodeInfo* code;  // the variant's code
  u64 budget;            // the run's budget (counting variants; 0: none)
  u64 start_left;        // State::budget_left at the start of a run
  bool checked;          // checked variant: zeroed stack, Stack region
  bool counting;         // RunResult::insns is counted
  bool writes_r10;       // the program writes r10 (State::writes_r10)
};

// Per-run state, addressed from generated code through r12. Deliberately
// without member initialisers: Program::run sets exactly the fields the
// variant reads (a value-initialised State cost a `rep stos` per run).
// Fields marked "on fault" are only read when `fault` is non-zero.
struct State {
  u64 saved_rsp;      // set by the trampoline (each callback run saves and restores it)
  u64 budget_left;    // counting variants
  u64 min_call_rbp;
  abi::Env* env;
  const CodeInfo* code;
  u64 stack_top;
  u64 fp;  // canonical r10 of the current frame (kept only if the program writes r10, or for checked helpers)
  std::size_t region_index;  // checked mode: the Stack region appended to env.regions (else kNoRegion)
  u64 r0;
  u64 fault_addr;  // on fault: memory violation address, callx value
  u64 fault_size;  // on fault
  u64 cb_r0;       // callbacks: r0 of the callee run that ended the whole run
  u64 run_const[4];  // values of run-constant helpers (Options::lean_helper_calls); ~0: not called yet
  u64 alu_keep;    // idioms.cpp: a division's other result until its use (written first)
  u32 fault_pc;    // on fault
  u32 fault_id;    // on fault: helper / kfunc id
  u32 call_id;     // helper id for run-time dispatch (set before use)
  u32 call_pc;     // pc of the current helper call (stored before each helper call)
  u8 cb_aborted;   // callbacks: a callee ended the run; st holds its result
  u8 fault;        // abi::Fault
  u8 fault_write;  // on fault
  u8 fault_kfunc;  // on fault
  u8 stop;         // set by run-time stubs: end the run (fault or exit recorded)
  u8 call_kfunc;   // set before use
  u8 callx_kind;   // set before use. 0: BPF function, 1: helper
  u8 writes_r10;   // the program writes r10: fp is the canonical frame pointer
};
static_assert(std::is_standard_layout_v<State>);

template <class T>
int off_of(T State::*member) {
  // offsetof for a pointer-to-member (State is standard layout).
  static const State s{};
  return static_cast<int>(reinterpret_cast<const char*>(&(s.*member)) - reinterpret_cast<const char*>(&s));
}

// Run-time stubs, called from generated code (see runtime.cpp).
void set_fault(State* st, abi::Fault f, u64 pc);
u64 rt_check_access(State* st, u64 addr, u64 info, u64 pc, u64 rbp);
u64 rt_ld_packet(State* st, u64 src, u64 imm, u64 size_pc);
u64 rt_dispatch(State* st, u64 r1, u64 r2, u64 r3, u64 r4, u64 r5);
u64 rt_resolve_callx(State* st, u64 value, u64 pc);
void rt_finish_signal(State* st, u64 pc);
u64 rt_callback(abi::Env& env, u64 fn, u64 r1, u64 r2, u64 r3, u64 r4, u64 r5);

}  // namespace userbpf::jit::detail
