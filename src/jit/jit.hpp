// The x86-64 JIT: compiles eBPF instructions to native code that returns the
// same abi::RunResult as the interpreter (see the design comment in jit.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "abi/abi.hpp"
#include "base/error.hpp"
#include "base/guarded_stack.hpp"
#include "isa/isa.hpp"
#include "jit/state.hpp"

namespace userbpf::jit {

// Compile-time choices. A run always honours its Env as the interpreter does
// (env.options.checked, env.options.budget, env.options.count_insns,
// env.helpers): if it needs code these Options did not ask for, that variant
// is compiled on first use (once per Program). The Options choose what is
// compiled up front and add defaults.
struct Options {
  // Bounds-check every load, store and atomic against the Env's regions and
  // the live stack frames (abi::memory_violation on failure), in every run.
  bool checked = false;
  // Instruction budget for runs whose env.options.budget is 0. Non-zero: the
  // code counts every executed instruction and ends the run with
  // abi::budget_exhausted when the budget is spent. Counting code exists
  // only in counting variants (budget, count_insns or checked): elsewhere
  // RunResult::insns is 0, as in the interpreter's fast mode.
  std::uint64_t budget = 0;
  // Count instructions (RunResult::insns) in every run.
  bool count_insns = false;
  // Constant blinding: every immediate operand is emitted xor-ed with a
  // random key and un-xor-ed at run time (defence against JIT spraying).
  bool blinding = false;
  // Helper table to resolve helper and kfunc calls at compile time (direct
  // calls, no lookup at run time). Used for runs whose env.helpers is this
  // same table and that are not checked; other runs look helpers up in
  // env.helpers at run time. Must outlive the Program.
  const abi::HelperTable* helpers = nullptr;
  // Apply the kernel's structural rules (isa::check_structure), as
  // interp::LoadOptions::kernel_structure does. Off: only targets in range.
  bool kernel_structure = true;
  // Per BPF instruction index: true if the verifier proved the instruction's
  // memory access safe (its SafeAccess facts). Checked variants emit no
  // bounds check for those instructions; indexes past the end count as
  // unproven. Unchecked variants ignore it.
  std::vector<bool> proven_safe;
  // Map lookups without the generic helper call, as the kernel's verifier
  // rewrites them. A call of helper BPF_FUNC_map_lookup_elem whose r1
  // provably holds the `map` value of an entry here (detail::lddw_constant:
  // a plain lddw in the same basic block, through register moves, or an
  // r6-r9 whose every write in the function is that lddw) is compiled, in
  // variants that call Options::helpers directly (not checked) and without
  // blinding (other variants call the helper), as
  //   * arrays (values != 0; the kernel's array_map_gen_lookup) inline:
  //       i = *(u32 *)r2;  r0 = i < max_entries ? values + i * stride : 0
  //     with r1-r5 kept;
  //   * otherwise, if `lookup` is set and direct_map_lookups is on, a direct
  //     System V call r0 = lookup(map, r2, 0) (maps::Map::direct_lookup,
  //     as the kernel patches the call to map->ops->map_lookup_elem):
  //     none of the helper call's fp / call_pc stores, register saves or
  //     signal checks; r1-r5 are clobbered (a verified program never reads
  //     them after a call), r6-r10 kept. The cpu argument is 0: only maps
  //     that are not per-CPU may be listed with a `lookup`.
  // The caller guarantees what the helper would otherwise check: the
  // program is verified (r1 is that map and r2 points to its key at every
  // such call), Options::helpers' BPF_FUNC_map_lookup_elem is the lookup of
  // these maps (and for `lookup` entries returns exactly lookup(map, r2, 0)
  // in an unchecked run), and the maps and their values stay mapped while
  // the Program lives. Requires kernel_structure.
  struct MapLookup {
    std::uint64_t map = 0;     // the map pointer a relocated lddw loads
    std::uint64_t values = 0;  // arrays: address of element 0's value (0: not inlined)
    std::uint64_t stride = 0;  // arrays: bytes from one element's value to the next (< 2^31)
    std::uint32_t max_entries = 0;
    // address of a System V function void* lookup(map, const void* key,
    // std::uint32_t cpu) with `map` as its first argument (0: none)
    std::uint64_t lookup = 0;
    // arrays: the value size when a program's bpf_map_update_elem is a plain
    // copy (maps::ArrayBase::prog_update of an array whose values hold no
    // bpf_spin_lock or bpf_timer), else 0. See inline_map_updates.
    std::uint32_t update_size = 0;
  };
  std::vector<MapLookup> map_lookups;
  // false: entries with only a `lookup` are ignored (the helper is called; A/B).
  bool direct_map_lookups = true;
  // Array updates inline (under the same conditions as map_lookups): a
  // `call map_update_elem` whose r1 is provably an entry with `values` and
  // an update_size that is a multiple of 8 up to 32 is compiled as the
  // kernel's array_map_update_elem: flags beyond BPF_F_LOCK above BPF_EXIST:
  // -EINVAL; index >= max_entries: -E2BIG; BPF_NOEXIST: -EEXIST;
  // BPF_F_LOCK (no spin lock in such values): -EINVAL; else the value is
  // copied in 8-byte stores and r0 = 0; r1-r5 kept. The caller guarantees
  // that Options::helpers' BPF_FUNC_map_update_elem does exactly that for
  // these maps in an unchecked run (helpers::register_helpers' does).
  bool inline_map_updates = true;
  // Inline array lookups and updates read the key from the register (or
  // immediate) that stored it to the stack, when r2 = r10 + off and the
  // last store to [r10 + off, +4) in the same basic block is a 4- or 8-byte
  // store of a register not written since (or of an immediate), with no
  // call and no store through another pointer in between: no store-to-load
  // forwarding on the path (and a constant key's bounds test folds away).
  bool forward_map_keys = true;
  // Calls of helpers flagged abi::kHelperLeaf in Options::helpers (in
  // variants that call them directly) neither publish the frame for
  // callbacks (State::fp, call_pc) nor test the Env's signals afterwards,
  // and save only those of r1-r5 that are live after the call
  // (detail::live_out); helpers flagged kHelperLeaf | kHelperRunConstant
  // (bpf_get_smp_processor_id) are called once per run, later calls load
  // the value the first one returned (State::run_const, reset by the
  // trampoline). false: every helper call is the general one (tests, A/B).
  bool lean_helper_calls = true;
  // The program passed the verifier (the runtime sets this): after a helper
  // call it never reads r1-r5 before writing them (the kernel's verifier
  // marks them unreadable), so lean helper calls save none of them.
  bool verified = false;
  // Use BMI2 shifts (shlx/shrx/sarx) where the CPU has them; false forces the
  // cl-based sequence (the tests cover both).
  bool bmi2 = true;
  // Inline calls of small bpf-to-bpf functions (leaves once their own calls
  // are inlined, at most detail::kInlineMaxInsns instructions expanded) when
  // the call depth is static (see detail::CallFacts), in variants that
  // neither count nor check. false: every call is a call (tests, A/B).
  bool inline_calls = true;
  // Inline bpf_loop (as the kernel's verifier does, inline_bpf_loop): a
  // `call BPF_FUNC_loop` whose r2 provably holds a `lddw func` of the same
  // basic block (detail::lddw_func_target) is a native loop that calls the
  // callback as a bpf-to-bpf call, in variants that call Options::helpers
  // directly and neither count nor check, when the program never writes
  // r10. Only if Options::helpers' BPF_FUNC_loop entry is named "loop" (as
  // helpers::register_helpers names it): the caller guarantees that such an
  // entry has bpf_loop's semantics (u32 nr_loops > 2^23: -E2BIG; flags != 0:
  // -EINVAL; stops after a callback returns nonzero; returns the number of
  // calls). Results equal the helper's (see emit_inline_loop).
  bool inline_loops = true;
  // Memory idioms (src/jit/memops.cpp), in variants that neither count nor
  // check, never across a jump target:
  // two adjacent byte loads + shift by 8 + or (clang's 16-bit loads of
  // unknown alignment, rd16be) as one 16-bit load (+ rol for big-endian),
  // when the other byte's register is dead afterwards;
  bool combine_loads = true;
  // runs of >= 2 load/store pairs copying one contiguous range to a
  // disjoint one through the same base register (clang's inline memcpy) as
  // 16-byte SSE moves (or one or two wider general-register moves);
  bool merge_copies = true;
  // `rT = rA; rT += rB / K` then several accesses through rT (dead after)
  // as accesses at [rA + rB + K + off], without the lea.
  bool address_runs = true;
  // ALU idioms (src/jit/idioms.cpp), in variants that neither count nor
  // blind, inside one basic block, with the liveness of detail::live_out:
  // a division and the matching modulo (or clang's `a - a / b * b`) of the
  // same operand values as one div / idiv, the other result kept in a
  // dead register or a State slot until its instruction;
  bool divmod_fusion = true;
  // `(x << k) | (x >> (w - k))` (64-bit, or alu32 with w = 32; `|`, `+` or
  // `^`) as one rol / rorx when the shifted temporaries are dead afterwards.
  bool rotates = true;
};

// A compiled program: immutable native code in read+exec memory. One Program
// may run on several threads at once, each with its own Env.
class Program {
 public:
  static Result<Program> compile(std::span<const isa::Insn> insns, const Options& opts = {});
  Program(Program&&) noexcept;
  Program& operator=(Program&&) noexcept;
  ~Program();

  // Runs with r1..r5 = args (missing ones zero, extra ones ignored); r10 =
  // top of a fresh stack. The same RunResult as interp::Program::run for the
  // same Env. Helpers must not throw (JIT frames have no unwind tables).
  // Throws std::runtime_error only if a variant compiled on demand cannot be
  // mapped (out of memory).
  abi::RunResult run(abi::Env& env, std::span<const std::uint64_t> args = {}) const;

  // Runs of one Program on one Env, back to back on the calling thread (a
  // test run's repeat loop). run() is one Runner making one run; a Runner
  // does once what does not change between runs (choosing the variant,
  // leasing the stack, publishing the callback in env.callback / env.engine,
  // the State's constant fields) and each run() makes one complete run, as
  // Program::run would: the Env's signals reset, r0 and r6-r9 = 0, r10 = the
  // top of the stack, the budget restarted; in checked mode the stack zeroed
  // and the Stack region appended to env.regions for the run. No RunResult
  // per run: result() builds the last run's on demand.
  //   jit::Program::Runner r(prog, env);
  //   for (...) if (!r.run(args)) break;   // false: the run faulted
  //   abi::RunResult res = r.result();
  // env.options and env.helpers must not change while the Runner lives (the
  // variant is chosen by the constructor); other runs may nest inside or
  // between runs (they lease their own stack). Not copyable or movable.
  class Runner {
   public:
    Runner(const Program& prog, abi::Env& env);
    Runner(const Runner&) = delete;
    Runner& operator=(const Runner&) = delete;
    ~Runner();
    // One run with r1..r5 = args (as Program::run); true if it ended without a fault.
    bool run(std::span<const std::uint64_t> args);
    [[nodiscard]] std::uint64_t r0() const { return st_.r0; }
    // The last run's RunResult (that of Program::run).
    [[nodiscard]] abi::RunResult result() const;

   private:
    abi::Env& env_;
    const detail::RunPlan plan_;
    const base::StackLease stack_;
    detail::State st_;
    const abi::CallbackScope callback_;
  };

  [[nodiscard]] std::size_t size() const;       // BPF instructions
  [[nodiscard]] std::size_t code_size() const;  // bytes of machine code (the Options' variant)
  // Intel-syntax listing of the machine code of the Options' variant, each
  // block headed by "; <index>: <text>" of the BPF instruction it came from;
  // out-of-line stubs last. The text is insn_text(index) (e.g. src/asm's
  // printer, which the JIT does not depend on); without it, the
  // instruction's raw bytes in hex (both slots of an lddw).
  [[nodiscard]] std::string disassemble(const std::function<std::string(std::size_t pc)>& insn_text = {}) const;
  [[nodiscard]] const Options& options() const;

 private:
  struct Impl;
  explicit Program(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;

 public:
  // ---- leaf entry (filter helper) ----
  // A direct native entry for programs that need nothing from a run but
  // their arguments: a run costs one call, no Env, no State, no RunResult.
  //   Leaf l = prog.leaf();  if (l) r0 = l(r1, r2, r3);
  // Contract: the same r0 as run(env, {r1, r2, r3}) with a default Env
  // (unchecked, no budget, no count) for every input for which that run
  // ends without a fault; r4 = r5 = 0, r0 and r6-r9 start at 0, r10 = the
  // top of a fresh, not zeroed 512-byte frame on the caller's native stack
  // (no bpf-to-bpf calls, so one frame). Unchecked: the program must be
  // verified (or trusted) like any unchecked run. Thread-safe (nothing is
  // shared between calls); valid while the Program lives.
  // Eligible (leaf() is non-null) only if the Options' variant is neither
  // checked nor counting (budget, count_insns) and the program has no helper
  // or kfunc call (tail calls are helper calls), no bpf-to-bpf call or
  // callx, no LD_ABS / LD_IND (they read the Env's packet), no may_goto, and
  // ends with exit or ja (it cannot fall off its end).
  // How: one process-wide stub (generated once) saves the SysV callee-saved
  // registers the body may write, reserves the frame, zeroes r0 and r6-r9
  // and calls the body of the compiled variant (rdi = its address;
  // r1-r5 arrive in rsi, rdx, rcx, r8, r9, where the JIT keeps them).
  // A program that uses only r0-r5, jumps only forward and writes r0 before
  // reading it needs no stub: fn is then the body itself (body = nullptr),
  // a plain SysV function.
  struct Leaf {
    using Fn = std::uint64_t (*)(const void* body, std::uint64_t r1, std::uint64_t r2, std::uint64_t r3,
                                 std::uint64_t r4, std::uint64_t r5);
    Fn fn = nullptr;
    const void* body = nullptr;
    explicit operator bool() const { return fn != nullptr; }
    std::uint64_t operator()(std::uint64_t r1 = 0, std::uint64_t r2 = 0, std::uint64_t r3 = 0) const {
      return fn(body, r1, r2, r3, 0, 0);
    }
  };
  [[nodiscard]] Leaf leaf() const;
};

}  // namespace userbpf::jit
