// The execution ABI shared by the interpreter and the JIT.
//
// Both engines run a program against an Env: the memory regions the run may
// touch (checked mode), the helper table, the run budget, and the embedder's
// data. Both return a RunResult. A program gives the same RunResult in both
// engines, instruction for instruction; tests compare them.
//
// Helpers are plain functions  u64 fn(Env&, u64 r1, u64 r2, u64 r3, u64 r4, u64 r5)
// so that the JIT can call them directly. A helper that must end the run
// (an "unwind" helper, a fault) calls env.request_exit() / env.fail().
//
// Rules both engines follow (so that results match instruction for instruction):
//   - Helper / kfunc calls write r0 only; r1-r5 keep their values (the kernel
//     calls them undefined after a call; we choose "unchanged"). After the
//     call, env.failed() ends the run with Fault::HelperFailed
//     (helper_failed(pc of the call)), then env.exit_requested() ends it
//     cleanly with r0 = env.exit_value(). Signals are reset at run start.
//   - bpf-to-bpf calls: at most 8 frames (main included); the call that would
//     open a 9th frame fails with call_depth_exceeded(pc of that call). The
//     callee's r10 is the caller's r10 - 512; r6-r9 are restored on exit.
//   - Budget B > 0: dispatching instruction number B + 1 ends the run with
//     budget_exhausted(pc of that instruction, B); RunResult::insns = B. An
//     lddw counts as one instruction. insns is only meaningful when counted
//     (options.checked, budget > 0 or count_insns); otherwise it is 0.
//   - Running past the last instruction: fell_off_end(n), n = program size
//     (this wins over the budget when both happen at that point).
//   - LD_ABS/LD_IND: offset = (u32)imm, resp. (u32)src + (u32)imm, taken as a
//     signed 32-bit value; negative or past packet_len ends the run, r0 = 0.
//   - Checked mode: every load, store and atomic must lie inside a region of
//     env.regions (writes: a writable one) or inside the live stack frames
//     [r10 of the deepest frame - 512, top of frame 0); else
//     memory_violation(pc, addr, size, write). The stack is zeroed at run
//     start, and a RegionKind::Stack region covering the live frames is
//     appended to env.regions while the run lasts (helpers can check stack
//     pointers with find_region); it is removed before the run returns.
//     Helpers may append regions during a run but must not remove any.
//   - Unchecked mode trusts the program (it has been verified): no checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"

namespace userbpf::abi {

enum class RegionKind : std::uint8_t { Context, Packet, PacketMeta, Stack, MapValue, Memory, ReadOnly };
std::string_view region_kind_name(RegionKind k);

struct Region {
  std::uint64_t start = 0;
  std::uint64_t size = 0;
  bool writable = true;
  RegionKind kind = RegionKind::Memory;

  [[nodiscard]] bool contains(std::uint64_t addr, std::uint64_t len) const {
    return addr >= start && len <= size && addr - start <= size - len;
  }
};

class Env;
using HelperFn = std::uint64_t (*)(Env& env, std::uint64_t r1, std::uint64_t r2, std::uint64_t r3, std::uint64_t r4,
                                   std::uint64_t r5);

// What an engine may assume about a helper (HelperTable::set's `flags`;
// 0: nothing). Set by whoever registers the helper, which guarantees them.
enum HelperFlags : std::uint8_t {
  // In runs that are not checked, the helper never calls env.fail(),
  // env.request_exit() or env.call_function(), and reads nothing of the Env
  // but `user` and `options`: an engine may call it without publishing the
  // caller's frame for callbacks and without testing the signals after it.
  kHelperLeaf = 1,
  // Returns the same value for every call within one run (whatever r1-r5):
  // an engine may call it once per run and reuse that value.
  kHelperRunConstant = 2,
};

struct Helper {
  HelperFn fn = nullptr;
  std::string name;
  std::uint8_t flags = 0;  // HelperFlags
};

// Helpers keyed by their kernel helper id (BPF_FUNC_*); kfuncs keyed by BTF id.
class HelperTable {
 public:
  void set(std::uint32_t id, std::string name, HelperFn fn, std::uint8_t flags = 0);
  void set_kfunc(std::uint32_t btf_id, std::string name, HelperFn fn);
  [[nodiscard]] const Helper* find(std::uint32_t id) const {
    return id < helpers_.size() && helpers_[id].fn != nullptr ? &helpers_[id] : nullptr;
  }
  [[nodiscard]] const Helper* find_kfunc(std::uint32_t btf_id) const;
  [[nodiscard]] std::size_t size() const { return helpers_.size(); }

 private:
  std::vector<Helper> helpers_;                            // dense by helper id
  std::vector<std::pair<std::uint32_t, Helper>> kfuncs_;   // sparse by BTF id
};

// Why a run ended early. The errno is what PROG_TEST_RUN-style callers report.
enum class Fault : std::uint8_t {
  None,
  MemoryViolation,  // EFAULT: checked-mode load/store outside the registered regions
  Budget,           // E2BIG: instruction budget exhausted
  CallDepth,        // E2BIG: more than 8 bpf-to-bpf frames
  UnknownHelper,    // ENOENT: call to a helper id with no registered function
  BadCallTarget,    // EINVAL: callx to something that is neither a helper nor a function
  FellOffEnd,       // EINVAL: execution ran past the last instruction
  HelperFailed,     // helper-chosen errno
};
std::string_view fault_name(Fault f);

struct RunResult {
  std::uint64_t r0 = 0;
  std::uint64_t insns = 0;  // instructions executed
  Fault fault = Fault::None;
  std::optional<Error> error;  // set iff fault != None; names instruction (and address)

  [[nodiscard]] bool ok() const { return fault == Fault::None; }
  friend bool operator==(const RunResult& a, const RunResult& b) {
    return a.r0 == b.r0 && a.fault == b.fault &&
           (a.error.has_value() ? b.error.has_value() && a.error->message == b.error->message : !b.error.has_value());
  }
};

struct ExecOptions {
  bool checked = false;           // check every load/store against the regions
  std::uint64_t budget = 0;       // max instructions executed (0 = unlimited)
  bool count_insns = false;       // report RunResult::insns (implied by checked and budget > 0)
};

// Per-run environment. Not thread-safe: one Env per concurrent run.
class Env {
 public:
  // Memory regions the program may access in checked mode. The engine adds
  // the stack itself.
  std::vector<Region> regions;
  const HelperTable* helpers = nullptr;
  ExecOptions options;
  // Packet for the legacy LD_ABS / LD_IND instructions (socket filters, classic
  // BPF): bytes [packet, packet + packet_len). A load outside ends the run with
  // r0 = 0, as in the kernel.
  const std::uint8_t* packet = nullptr;
  std::uint64_t packet_len = 0;
  void* user = nullptr;  // embedder data (runtime program context, map table, ...)

  // ---- signals from helpers to the engine
  void request_exit(std::uint64_t r0) {
    exit_requested_ = true;
    exit_value_ = r0;
  }
  void fail(int code, std::string message) {
    failed_ = true;
    fail_code_ = code;
    fail_message_ = std::move(message);
  }
  [[nodiscard]] bool exit_requested() const { return exit_requested_; }
  [[nodiscard]] std::uint64_t exit_value() const { return exit_value_; }
  [[nodiscard]] bool failed() const { return failed_; }
  [[nodiscard]] int fail_code() const { return fail_code_; }
  [[nodiscard]] const std::string& fail_message() const { return fail_message_; }
  void reset_signals() {
    exit_requested_ = false;
    failed_ = false;
    callback_aborted_ = false;
  }
  // Addresses of the signal flags, for engines that test them from
  // generated code right after a helper returns (the JIT). Valid while the
  // Env lives.
  [[nodiscard]] const bool* exit_requested_flag() const { return &exit_requested_; }
  [[nodiscard]] const bool* failed_flag() const { return &failed_; }
  [[nodiscard]] const bool* callback_aborted_flag() const { return &callback_aborted_; }

  // ---- callbacks: helpers that call back into the program (bpf_loop,
  // for_each_map_elem, timers, ...). The engine sets `callback` and
  // `engine` at run start (null when it cannot call back). call_function()
  // runs the program's function `fn` (a func_addr() value the program passed
  // as an ARG_PTR_TO_FUNC argument) with r1-r5 on a new frame, one call level
  // deeper than the helper's caller (the 8-frame limit counts it), and
  // returns the callee's r0. If the callee ends the run (fault, budget,
  // unwind helper), callback_aborted() is true afterwards: the helper must
  // return at once (its value is ignored) and the engine ends the run with
  // the callee's result.
  using CallbackFn = std::uint64_t (*)(Env& env, std::uint64_t fn, std::uint64_t r1, std::uint64_t r2,
                                       std::uint64_t r3, std::uint64_t r4, std::uint64_t r5);
  CallbackFn callback = nullptr;
  void* engine = nullptr;  // the engine's per-run state, for `callback`
  std::uint64_t call_function(std::uint64_t fn, std::uint64_t r1, std::uint64_t r2, std::uint64_t r3,
                              std::uint64_t r4, std::uint64_t r5) {
    if (callback == nullptr) {
      fail(95 /* EOPNOTSUPP */, "this engine cannot call back into the program");
      callback_aborted_ = true;
      return 0;
    }
    return callback(*this, fn, r1, r2, r3, r4, r5);
  }
  void set_callback_aborted() { callback_aborted_ = true; }
  [[nodiscard]] bool callback_aborted() const { return callback_aborted_; }

  // Checked-mode test used by engines and by helpers that take pointers.
  [[nodiscard]] const Region* find_region(std::uint64_t addr, std::uint64_t len, bool write) const;

 private:
  bool exit_requested_ = false;
  std::uint64_t exit_value_ = 0;
  bool failed_ = false;
  bool callback_aborted_ = false;
  int fail_code_ = 0;
  std::string fail_message_;
};

// Publishes an engine's callback and per-run state in env.callback /
// env.engine for one run and restores the previous ones when it ends (runs
// may nest: a helper may run a program on the same Env).
class CallbackScope {
 public:
  CallbackScope(Env& env, void* engine, Env::CallbackFn fn) : env_(env), engine_(env.engine), fn_(env.callback) {
    env.engine = engine;
    env.callback = fn;
  }
  CallbackScope(const CallbackScope&) = delete;
  CallbackScope& operator=(const CallbackScope&) = delete;
  ~CallbackScope() {
    env_.engine = engine_;
    env_.callback = fn_;
  }

 private:
  Env& env_;
  void* engine_;
  Env::CallbackFn fn_;
};

// ---- the errors both engines report, built in one place so that messages match
Error memory_violation(std::size_t pc, std::uint64_t addr, std::uint64_t size, bool write);
Error budget_exhausted(std::size_t pc, std::uint64_t budget);
Error call_depth_exceeded(std::size_t pc);
Error unknown_helper(std::size_t pc, std::uint32_t id);
Error unknown_kfunc(std::size_t pc, std::uint32_t btf_id);
Error bad_call_target(std::size_t pc, std::uint64_t value);
Error fell_off_end(std::size_t pc);
Error helper_failed(std::size_t pc, const Env& env);

// The value a `lddw rX, func` (BPF_PSEUDO_FUNC) produces for the function at
// instruction index `pc`, and its inverse; callx accepts these and helper ids.
inline constexpr std::uint64_t kFuncAddrTag = 0xfbf0'0000'0000'0000ULL;
constexpr std::uint64_t func_addr(std::size_t pc) { return kFuncAddrTag | pc; }
constexpr bool is_func_addr(std::uint64_t v) { return (v & 0xffff'0000'0000'0000ULL) == kFuncAddrTag; }
constexpr std::size_t func_pc(std::uint64_t v) { return static_cast<std::size_t>(v & 0x0000'ffff'ffff'ffffULL); }

// may_goto: iterations allowed per frame before the branch is forced (BPF_MAX_LOOPS).
inline constexpr std::uint64_t kMayGotoBudget = 8ULL * 1024 * 1024;

}  // namespace userbpf::abi
