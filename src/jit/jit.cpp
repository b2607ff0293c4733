// The x86-64 JIT.
//
// How it works
// ------------
// Files: jit.cpp (this comment, Program), emitter.hpp/.cpp (the code
// generator), fold.cpp (cross-instruction rewrites that need more facts),
// analysis.cpp (whole-program facts), runtime.cpp (run-time stubs).
//
// Program::compile validates the instructions (the interpreter's rules and
// messages: isa::check_structure, or only in-range targets), then lowers
// them in one pass, in program order, with xbyak (typed operands, labels and
// fix-ups by the encoder; no hand-assembled bytes). Each BPF instruction
// becomes a short sequence; jump targets get an xbyak label. Slow and rare
// paths (faults, checked-mode slow checks, helper signals) are out-of-line
// thunks emitted after the body, so the straight-line code stays compact.
// The code is assembled straight into a fresh private mapping sized by an
// upper bound (code_bounds), writable while it is filled and then
// mprotect'ed to read+exec: never writable and executable at once. One
// mapping and one mprotect per variant, no per-instruction allocation except
// a label per jump target: compile time is linear in the program size.
//
// Branches: a forward branch is short (rel8) when the upper bound of the
// code between it and its target (prefix sums of max_code_size) fits in
// 127 bytes; backward branches are short when they fit (the target is
// known). A bound that proved too small would make xbyak throw and the
// variant is generated again with near branches (never seen; a safety net).
//
// Loop heads (targets of backward jumps) start at a 16-byte boundary
// (multi-byte nops before them; their bound counts 15 bytes of padding):
// measured 10-15% on c/state_machine and c/memcpy_cmp, 32 bytes was slower.
//
// Cross-instruction optimisations, only in non-counting variants (counting
// ones count every BPF instruction, and checked ones are counting), using
// whole-program facts from analysis.cpp (computed once by compile(), only
// when the program has something they serve):
//   * known value widths along straight-line code (forgotten at labels):
//     `w = w`, le16/le32, the movzx of be16, `r <<= 32; r >>= 32` and masks
//     like `r &= 0xff` after a byte load emit nothing when the width proves
//     them no-ops;
//   * address arithmetic folded into x86 addressing: `rT = rA; rT += K;
//     rT += rB` is one lea, and a load/store through rT right after uses
//     [rA + rB + K + off] directly when rT is dead afterwards (liveness);
//   * `if c goto +1; goto T` is one inverted compare-and-branch `if !c goto
//     T`; jumps to a `goto` go to its target, a `goto` to `exit` is a `ret`;
//   * a load followed by be16/be32/be64 (or bswap) of its result is movbe
//     (movzx + rol for 16 bits);
//   * division by a register divides by that register (no copy); the
//     divisor-0 / -1 cases are out of line, the common path has no jump;
//   * loads folded into ALU operands: `rX = load; rD op= rX` with rX dead
//     afterwards is `op rD, [mem]` (fold.cpp: emit_load_op);
//   * map lookups (Options::map_lookups; fold.cpp): a `call
//     map_lookup_elem` whose r1 is provably a listed map
//     (detail::lddw_constant) is, for an array, a bounds test and an
//     address computation, for other maps a direct call of the type's
//     lookup function (no helper frame, no signal check), in direct-helper
//     variants that are neither checked nor blinded;
//   * bpf-to-bpf calls in programs without helper calls or callx, whose call
//     graph is acyclic and at most 8 frames deep, have no depth check; a
//     callee that (with its callees) never reads r10 is called without
//     moving r10; without any call into C the rsp alignment pad is dropped.
//   * in such programs, calls of small functions (at most kInlineMaxInsns
//     instructions with their own calls expanded, no may_goto or LD_ABS;
//     CallFacts::inline_end) are inlined (Emitter::emit_inline): the body
//     is emitted at the call site with fresh labels, `exit` jumps to the
//     end of the copy, and exactly what a call does to the BPF state is
//     kept: the r6-r9 the callee may write are pushed and popped around it,
//     r10 moves down a frame if the callee reads it, r0-r5 are left as the
//     callee leaves them. No depth fault is possible (static depth), so
//     results equal the interpreter's. The function's own code is still
//     emitted (listings, other entries). Options::inline_calls turns it off.
//   * inline bpf_loop (Options::inline_loops; fold.cpp: emit_inline_loop):
//     a `call bpf_loop` whose r2 is a `lddw func` of the same basic block
//     (detail::lddw_func_target) is a native loop that calls the callback
//     as a bpf-to-bpf call, starting it exactly as rt_callback does (r0,
//     r3-r9 = 0, the frame below, a fresh may_goto counter, the same depth
//     check), in direct-helper variants that neither count nor check, when
//     the program never writes r10.
// Each fused group's code shows under its first instruction in listings.
//
// Variants: a Program holds up to 8 compiled variants (checked x counting x
// direct helper calls). The one the Options ask for is compiled by compile();
// a run whose Env asks for more (env.options.checked, a budget, count_insns,
// or a helper table other than Options::helpers) gets the matching variant,
// compiled once on first use (std::call_once). So the JIT follows
// env.options exactly like the interpreter does.
//
// Register map (BPF -> x86-64)
//   r0 -> rax   (helper return value)
//   r1 -> rsi, r2 -> rdx, r3 -> rcx, r4 -> r8, r5 -> r9
//        (= the SysV argument registers 2..6, so a helper call
//         u64 fn(Env&, r1..r5) only needs rdi = &env)
//   r6 -> rbx, r7 -> r13, r8 -> r14, r9 -> r15   (callee-saved in SysV)
//   r10 -> rbp  (frame pointer)
//   r12 -> State* of the current run (callee-saved, never changes)
//   rdi, r10, r11 -> scratch
//
// Stack and frames
//   The BPF stack is 8 x 512 bytes between guard pages (base::StackLease); frame k
//   (k = 0 for the main program) has r10 = top - 512*k. Each BPF function
//   activation also has a native frame on rsp: [rsp] is its return address
//   and, in programs that use may_goto, [rsp + 8] its may_goto counter
//   (pushed by the caller right before the `call`, initialised to
//   abi::kMayGotoBudget: a fresh counter per frame, the caller's kept, as in
//   the interpreter and the kernel). Functions are entered at their first
//   instruction and `exit` is a plain `ret`. Invariant: in BPF code that
//   can reach C code (helpers, callx, LD_ABS, checked mode) rsp is 16-byte
//   aligned, so helpers are called directly; a caller pads its pushes so
//   that rsp is 8 mod 16 at the `call` (call_pad).
//   A bpf-to-bpf call (call/callx) checks the depth (r10 below min_call_rbp
//   means 8 frames are in use: abi::call_depth_exceeded) unless the depth is
//   proven statically (CallFacts), pushes those of r6-r9 (BPF callee-saved)
//   that the callee or its callees may write (callee_saved_masks; all four
//   for callx or without kernel_structure), moves r10 down 512 (unless the
//   callee provably never reads it), `call`s the callee and undoes all that
//   on return. The main program is itself called by the entry trampoline.
//   Programs may write r10 (the interpreter allows it). If one does, the
//   canonical frame pointer lives in State::fp and calls, depth checks and
//   the checked-mode stack test use it instead of rbp; otherwise rbp is
//   always canonical and nothing is kept in memory.
//
// Callbacks (abi::Env::call_function)
//   run() publishes rt_callback and the State in env.callback / env.engine.
//   Before every helper call the code stores r10 (State::fp) and the call's
//   pc. rt_callback checks the function value and the depth (the callee gets
//   the frame below the helper's caller: the 8-frame limit counts it), then
//   enters the function through the trampoline (fresh r0, r6-r9 = 0 and
//   may_goto counter, as the interpreter), sharing the State: budget and
//   counts continue, a fault or exit inside ends at the nested trampoline
//   (its own saved_rsp), is kept (cb_aborted, cb_r0) and the helper's caller
//   ends the run with it once the helper returns (the signal check tests
//   env.callback_aborted() with the exit and fail flags).
//
// Calls to helpers
//   With Options::helpers (and that same table in the Env), helper and kfunc
//   ids are resolved at compile time and called directly (an unknown id
//   becomes a fault thunk at that pc). Otherwise, and always in checked mode,
//   calls go through rt_dispatch, which looks the id up in env.helpers at run
//   time (and, in checked mode, first moves the Stack region in env.regions
//   to the live frames so that helpers can check stack pointers).
//   r1-r5 are preserved across helper calls (the interpreter does not clobber
//   them either; the kernel leaves them undefined). After the call the Env's
//   failed/exit flags (abi::Env::failed_flag / exit_requested_flag) are
//   tested; if one is set, a thunk records HelperFailed (abi::helper_failed)
//   or the requested exit value and aborts the run.
//   callx: rt_resolve_callx maps the register value to a helper (a value
//   that fits 32 bits: a helper id) or to the first instruction of a function
//   (abi::func_addr(pc) where pc is 0, a call target or an lddw-func target).
//
// Faults and the end of a run
//   Every early end (memory violation, budget, call depth, unknown helper,
//   bad callx, falling off the end, helper failure or exit request, LD_ABS
//   out of range) stores its cause and r0 (as the interpreter reports r0 at
//   the fault) in State and jumps to `abort`, which restores rsp from
//   State::saved_rsp (unwinding any depth of BPF calls) and returns from the
//   trampoline. run() then builds the RunResult with the abi:: constructors,
//   so messages equal the interpreter's.
//
// Budget and counting
//   Only in counting variants: every instruction starts with
//   `sub [budget_left], 1; jb thunk`, so the fault names the exact
//   instruction that would exceed the budget (abi::budget_exhausted) and
//   RunResult::insns is exact. Non-counting variants count nothing (insns 0).
//
// Per-run cost
//   run() sets only the State fields the code reads (no zero-fill of State
//   or stack; unchecked runs trust the verified program, as the
//   interpreter's fast mode) and uses the primary variant without
//   call_once: a few ns per run (bench: userbpf-bench --overhead).
//
// Checked mode
//   Instructions marked in Options::proven_safe get no check. Otherwise
//   a load/store/atomic computes its address into rdi, tests it inline
//   against the live stack [r10 - 512, top) and otherwise calls
//   rt_check_access (which searches env.regions) through a register-saving
//   stub on a cold path. The stack is zeroed and a RegionKind::Stack region
//   is added to env.regions for the run, as the interpreter does.
//
// Semantics invariants
//   32-bit ALU results are written through 32-bit registers (the CPU
//   zero-extends); div/mod test for 0 (and -1 for signed) before div/idiv so
//   they never trap (x86 traps on INT_MIN / -1); shifts are masked by the
//   CPU exactly as sem:: masks; imm operands are sign-extended for 64-bit
//   ops as in sem::imm64; cmpxchg32 zero-extends r0 also when it succeeds.
//   Constant blinding (Options::blinding) loads every immediate of ALU, JMP,
//   ST and lddw as (imm ^ key) and xors the key back at run time.
#include "jit/jit.hpp"

#include "jit/analysis.hpp"
#include "jit/emitter.hpp"
#include "jit/state.hpp"

#include "base/guarded_stack.hpp"
#include "base/hex.hpp"

#include <Zydis/Zydis.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xbyak/xbyak.h>
#include <xbyak/xbyak_util.h>

#include <array>
#include <bit>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>

namespace userbpf::jit {

using isa::Form;
using isa::Insn;
using isa::Op;
using u8 = std::uint8_t;
using u32 = std::uint32_t;
using u64 = std::uint64_t;
using s32 = std::int32_t;
using s64 = std::int64_t;

namespace {

using namespace detail;  // State, CodeInfo, the run-time stubs (state.hpp), analyses (analysis.hpp)

Status validate(std::span<const Insn> insns, const Options& opts) {
  return isa::check_program(insns, opts.kernel_structure);
}

}  // namespace

// ---------------------------------------------------------------- Program
namespace {

// One compiled variant: code in read+exec memory.
struct Code {
  CodeInfo info;
  u8* map = nullptr;
  std::size_t map_len = 0;
  std::size_t len = 0;
  std::vector<u32> pc_offset;
  u32 stubs_offset = 0;

  Code() = default;
  Code(const Code&) = delete;
  Code& operator=(const Code&) = delete;
  ~Code() {
    if (map != nullptr) munmap(map, map_len);
  }
};

constexpr std::size_t variant_index(Variant v) {
  return (v.checked ? 4u : 0u) + (v.counting ? 2u : 0u) + (v.direct ? 1u : 0u);
}

}  // namespace

struct Program::Impl {
  std::vector<Insn> insns;
  Options opts;
  std::vector<bool> is_target, is_entry;
  std::vector<u8> save_mask;  // by function entry pc: see callee_saved_masks
  detail::CallFacts calls;
  std::vector<std::uint16_t> live;  // detail::live_out (empty: not needed)
  std::vector<bool> heads;          // loop heads (targets of backward jumps)
  std::vector<u32> map_lookup;      // detail::map_lookup_pcs (empty: no lookup to rewrite)
  std::vector<u32> loop_inline;     // detail::loop_inline_pcs (empty: no bpf_loop to inline)
  bool writes_r10 = false;
  Variant primary;
  // Variants are compiled on demand (the primary one at compile time): the
  // Env of a run may ask for checks or counting the Options did not.
  mutable std::array<std::unique_ptr<Code>, 8> code;
  mutable std::array<std::once_flag, 8> once;

  Result<std::unique_ptr<Code>> generate(Variant v) const;
  const Code& variant(Variant v) const {
    const std::size_t i = variant_index(v);
    std::call_once(once[i], [&] {
      if (code[i]) return;
      auto c = generate(v);
      if (!c) throw std::runtime_error("jit: " + c.error().message);
      code[i] = std::move(c).value();
    });
    return *code[i];
  }
};

// Assembles directly into a fresh private mapping sized by code_bounds(),
// then makes it read+exec: no heap buffer, no copy, one mmap and one
// mprotect per variant.
Result<std::unique_ptr<Code>> Program::Impl::generate(Variant v) const {
  auto c = std::make_unique<Code>();
  std::size_t cap = 0;
  static const std::vector<std::uint32_t> kNone;
  static const std::vector<u32> kNoLoops;
  const std::vector<u32> bound =
      code_bounds(insns, heads, v, opts.blinding, inline_enabled(v, opts, writes_r10, calls) ? calls.inline_end : kNone,
                  loops_enabled(v, writes_r10) ? loop_inline : kNoLoops, cap);
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  bool short_jumps = true;
  try {
    for (;;) {
      const std::size_t map_len = (cap + page - 1) / page * page;
      if (c->map != nullptr) munmap(c->map, c->map_len);
      c->map = nullptr;
      // MAP_POPULATE: the pages are faulted in by one call (a page fault
      // per page cost more than the rest of a compile in a VM).
      void* m = mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
      if (m == MAP_FAILED) return make_error(ENOMEM, fmt::format("jit: cannot map {} bytes for code", map_len));
      c->map = static_cast<u8*>(m);
      c->map_len = map_len;
      Emitter e(insns, opts, v, is_target, is_entry, writes_r10, save_mask, calls, live, heads, map_lookup, loop_inline, c->map, map_len,
                bound);
      e.short_jumps = short_jumps;
      try {
        e.generate();
        e.ready();
      } catch (const Xbyak::Error& err) {
        // Safety nets, never expected: a max_code_size() bound too small made
        // a short branch out of reach (again with near branches only) or the
        // code bigger than the mapping (again with twice the room).
        if (static_cast<int>(err) == Xbyak::ERR_LABEL_IS_TOO_FAR && short_jumps) {
          short_jumps = false;
          continue;
        }
        if (static_cast<int>(err) == Xbyak::ERR_CODE_IS_TOO_BIG) {
          cap *= 2;
          continue;
        }
        throw;
      }
      c->len = e.getSize();
      c->pc_offset = std::move(e.pc_offset);
      c->stubs_offset = e.stubs_offset;
      c->info.trampoline_offset = e.trampoline_offset;
      c->info.entry_offset = std::move(e.entry_offset);
      break;
    }
    // W^X: the pages were writable while filled; from now on read+exec only.
    if (mprotect(c->map, c->map_len, PROT_READ | PROT_EXEC) != 0)
      return make_error(errno, "jit: cannot make the code executable (mprotect)");
    c->info.base = c->map;
  } catch (const Xbyak::Error& err) {
    return make_error(EINVAL, fmt::format("jit: code generation failed: {}", err.what()));
  } catch (const std::bad_alloc&) {
    return make_error(ENOMEM, "jit: out of memory while generating code");
  }
  return c;
}

Program::Program(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Program::Program(Program&&) noexcept = default;
Program& Program::operator=(Program&&) noexcept = default;
Program::~Program() = default;

Result<Program> Program::compile(std::span<const Insn> insns, const Options& opts) {
  if (auto s = validate(insns, opts); !s) return s.error();
  auto impl = std::make_unique<Impl>();
  impl->insns.assign(insns.begin(), insns.end());
  impl->opts = opts;
  const std::size_t n = insns.size();
  impl->is_target.assign(n, false);
  impl->is_entry.assign(n, false);
  impl->heads.assign(n, false);
  impl->is_entry[0] = true;
  impl->is_target[0] = true;
  // One scan for labels, function entries, loop heads and which analyses
  // are worth running (compile time: see the design comment).
  bool local_calls = false, pointer_access = false;
  for (std::size_t pc = 0; pc < n; ++pc) {
    const Insn& in = insns[pc];
    if (in.op == Op::LddwTail) continue;
    const Form f = in.info().form;
    if (detail::writes_r10(in)) impl->writes_r10 = true;
    if (isa::is_jump(f)) {
      const auto t = static_cast<std::size_t>(isa::jump_target(in, pc));
      impl->is_target[t] = true;
      if (t <= pc) impl->heads[t] = true;
    }
    if (f == Form::CallLocal || in.op == Op::LddwFunc) {
      const auto t = static_cast<std::size_t>(static_cast<std::int64_t>(pc) + 1 + in.imm);
      impl->is_target[t] = true;
      impl->is_entry[t] = true;
      local_calls = true;
    }
    // (any load: emit_load_op folds stack loads too)
    if (f == Form::Ldx || ((f == Form::Stx || f == Form::St) && in.dst != isa::kFrameReg)) pointer_access = true;
  }
  if (local_calls) {
    impl->save_mask = detail::callee_saved_masks(insns, impl->is_entry, opts.kernel_structure);
  } else {
    impl->save_mask.assign(n, kAllCalleeSaved);  // read only at call targets: none
  }
  impl->calls = detail::call_facts(insns, impl->is_entry, opts.kernel_structure);
  // Liveness serves emit_address_fold (accesses through a pointer register)
  // and emit_load_op (loads).
  if (pointer_access) impl->live = detail::live_out(insns, impl->is_entry, opts.kernel_structure);
  impl->map_lookup = detail::map_lookup_pcs(insns, opts, impl->is_target, impl->is_entry);
  impl->loop_inline = detail::loop_inline_pcs(insns, opts, impl->is_target, impl->is_entry);
  impl->primary.checked = opts.checked;
  impl->primary.counting = opts.budget != 0 || opts.count_insns || opts.checked;
  impl->primary.direct = opts.helpers != nullptr && !opts.checked;
  auto c = impl->generate(impl->primary);
  if (!c) return c.error();
  impl->code[variant_index(impl->primary)] = std::move(c).value();
  return Program(std::move(impl));
}

namespace {
// Appends the checked-mode Stack region to env.regions for one run.
class StackRegion {
 public:
  StackRegion(abi::Env& env, State& st) : env_(env) {
    st.region_index = env.regions.size();
    env.regions.push_back(abi::Region{st.stack_top - kFrameSize, kFrameSize, true, abi::RegionKind::Stack});
    index_ = st.region_index;
  }
  StackRegion(const StackRegion&) = delete;
  StackRegion& operator=(const StackRegion&) = delete;
  ~StackRegion() {
    if (index_ < env_.regions.size()) env_.regions.erase(env_.regions.begin() + static_cast<std::ptrdiff_t>(index_));
  }

 private:
  abi::Env& env_;
  std::size_t index_ = 0;
};
}  // namespace

abi::RunResult Program::run(abi::Env& env, std::span<const u64> args) const {
  const Impl& p = *impl_;
  Variant v;
  v.checked = p.opts.checked || env.options.checked;
  v.counting = p.primary.counting || v.checked || env.options.budget != 0 || env.options.count_insns;
  v.direct = p.opts.helpers != nullptr && !v.checked && env.helpers == p.opts.helpers;
  // The primary variant exists from compile() on: no call_once on the hot path.
  const std::size_t vi = variant_index(v);
  const Code& code = vi == variant_index(p.primary) ? *p.code[vi] : p.variant(v);

  // Per-run setup is a handful of stores: the stack is not zeroed (unchecked
  // runs trust the verified program, as the interpreter's fast mode does) and
  // State has no initialisers (see State).
  // The run's stack, between guard pages (base/guarded_stack.hpp: a per-thread
  // area reused across runs); zeroed only in checked mode, like the interpreter.
  const base::StackLease stack_lease(kStackTotal);
  u8* const stack = stack_lease.top() - kStackTotal;
  State st;  // NOLINT(cppcoreguidelines-pro-type-member-init): set field by field below
  const u64 stack_lo = reinterpret_cast<u64>(stack);
  st.env = &env;
  st.code = &code.info;
  st.stack_top = stack_lo + kStackTotal;
  st.fp = st.stack_top;
  st.min_call_rbp = stack_lo + 2 * kFrameSize;
  st.region_index = kNoRegion;
  st.r0 = 0;
  st.cb_aborted = 0;
  st.fault = 0;
  st.stop = 0;
  st.writes_r10 = p.writes_r10 ? 1 : 0;
  const u64 budget = env.options.budget != 0 ? env.options.budget : p.opts.budget;
  st.budget_left = v.counting ? (budget != 0 ? budget : std::numeric_limits<u64>::max()) : 0;
  const u64 start_left = st.budget_left;
  u64 a[5];
  const u64* argp = args.data();
  if (args.size() < 5) {
    for (std::size_t i = 0; i < 5; ++i) a[i] = i < args.size() ? args[i] : 0;
    argp = a;
  }
  std::optional<StackRegion> region;
  if (v.checked) [[unlikely]] {
    std::memset(stack, 0, kStackTotal);
    region.emplace(env, st);
  }
  env.reset_signals();
  const abi::CallbackScope callback_scope(env, &st, &rt_callback);

  using EntryFn = void (*)(State*, const u64*, u64, const u8*);
  const auto entry = reinterpret_cast<EntryFn>(code.map + code.info.trampoline_offset);
  entry(&st, argp, st.stack_top, code.map + code.info.entry_offset[0]);

  abi::RunResult r;
  const auto fault = static_cast<abi::Fault>(st.fault);
  if (v.counting) r.insns = fault == abi::Fault::Budget ? budget : start_left - st.budget_left;
  r.fault = fault;
  r.r0 = st.r0;
  const std::size_t pc = st.fault_pc;
  switch (fault) {
    case abi::Fault::None: break;
    case abi::Fault::MemoryViolation:
      r.error = abi::memory_violation(pc, st.fault_addr, st.fault_size, st.fault_write != 0);
      break;
    case abi::Fault::Budget: r.error = abi::budget_exhausted(pc, budget); break;
    case abi::Fault::CallDepth: r.error = abi::call_depth_exceeded(pc); break;
    case abi::Fault::UnknownHelper:
      r.error = st.fault_kfunc ? abi::unknown_kfunc(pc, st.fault_id) : abi::unknown_helper(pc, st.fault_id);
      break;
    case abi::Fault::BadCallTarget: r.error = abi::bad_call_target(pc, st.fault_addr); break;
    case abi::Fault::FellOffEnd: r.error = abi::fell_off_end(pc); break;
    case abi::Fault::HelperFailed: r.error = abi::helper_failed(pc, env); break;
  }
  return r;
}

std::size_t Program::size() const { return impl_->insns.size(); }
std::size_t Program::code_size() const { return impl_->variant(impl_->primary).len; }
const Options& Program::options() const { return impl_->opts; }

std::string Program::disassemble(const std::function<std::string(std::size_t pc)>& insn_text) const {
  const Impl& p = *impl_;
  const Code& c = p.variant(p.primary);
  std::string out;
  auto dis = [&](u32 from, u32 to) {
    u32 at = from;
    while (at < to) {
      ZydisDisassembledInstruction zi;
      // offsets as addresses: branch targets read as offsets in this listing
      if (!ZYAN_SUCCESS(ZydisDisassembleIntel(ZYDIS_MACHINE_MODE_LONG_64, at, c.map + at, to - at, &zi))) {
        out += fmt::format("  {:6x}:  (bad byte 0x{:02x})\n", at, c.map[at]);
        ++at;
        continue;
      }
      out += fmt::format("  {:6x}:  {}\n", at, zi.text);
      at += zi.info.length;
    }
  };
  const std::size_t n = p.insns.size();
  for (std::size_t pc = 0; pc < n; ++pc) {
    if (p.insns[pc].op == Op::LddwTail) continue;
    std::size_t next = pc + 1;
    while (next < n && p.insns[next].op == Op::LddwTail) ++next;
    const u32 end = next < n ? c.pc_offset[next] : c.stubs_offset;  // the last block keeps the fall-off jump
    if (insn_text) {
      out += fmt::format("; {}: {}\n", pc, insn_text(pc));
    } else {
      const std::vector<u8> raw = isa::encode_bytes(std::span<const Insn>(p.insns).subspan(pc, next - pc));
      out += fmt::format("; {}: {}\n", pc, to_hex(raw));
    }
    dis(c.pc_offset[pc], end);
  }
  out += "; out-of-line thunks, stubs and trampoline\n";
  dis(c.stubs_offset, static_cast<u32>(c.len));
  return out;
}

}  // namespace userbpf::jit

// ---- leaf entry (filter helper) ----
// Program::leaf (contract in jit.hpp). The body of an eligible program reads
// nothing through r12 (no State): without calls, LD_ABS/LD_IND, counting,
// checks or may_goto, and ending in exit or ja, none of the code that
// addresses the State (helper calls, fault and signal thunks, the fall-off
// thunk) is emitted. So the body can be entered like the trampoline enters
// it, by a stub that needs no per-program data: the body's address arrives
// as the first argument. One stub serves every Program of the process; it is
// generated once, into its own page (written, then read+exec).
// Stub invariants: rsp is 8 mod 16 at its `call` (as at the trampoline's),
// so the body sees the alignment it was compiled for; the frame is
// [rbp - 512, rbp) below the saved registers; r0 and r6-r9 start at 0 as in
// the trampoline; the callee-saved registers the body may write (rbx, rbp,
// r13-r15 = BPF r6-r10) are restored before the `ret`.
namespace userbpf::jit {
namespace {

class LeafStub : public Xbyak::CodeGenerator {
 public:
  LeafStub(u8* buf, std::size_t cap) : Xbyak::CodeGenerator(cap, buf) {
    constexpr u32 kReserve = static_cast<u32>(kFrameSize) + 8;  // the frame and an alignment pad
    push(rbx);  // 5 pushes after the return address: rsp = 0 mod 16
    push(rbp);
    push(r13);
    push(r14);
    push(r15);
    sub(rsp, kReserve);  // 8 mod 16
    lea(rbp, ptr[rsp + kReserve]);
    xor_(eax, eax);
    xor_(ebx, ebx);
    xor_(r13d, r13d);
    xor_(r14d, r14d);
    xor_(r15d, r15d);
    call(rdi);  // r1-r5 are already in rsi, rdx, rcx, r8, r9
    add(rsp, kReserve);
    pop(r15);
    pop(r14);
    pop(r13);
    pop(rbp);
    pop(rbx);
    ret();
  }
};

// The process-wide stub, or nullptr if it could not be mapped.
const u8* leaf_stub() {
  static const u8* const stub = []() -> const u8* {
    const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    void* m = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    auto* buf = static_cast<u8*>(m);
    try {
      LeafStub s(buf, page);
      s.ready();
    } catch (const Xbyak::Error&) {
      munmap(m, page);
      return nullptr;
    }
    if (mprotect(m, page, PROT_READ | PROT_EXEC) != 0) {
      munmap(m, page);
      return nullptr;
    }
    return buf;
  }();
  return stub;
}

bool leaf_eligible(std::span<const Insn> insns) {
  if (insns.empty()) return false;
  for (const Insn& in : insns) {
    switch (in.info().form) {
      case Form::Call: case Form::CallKfunc: case Form::CallLocal: case Form::Callx: case Form::LdAbs:
      case Form::LdInd: case Form::MayGoto:
        return false;
      case Form::AluK: case Form::AluX: case Form::Neg: case Form::End: case Form::MovSx: case Form::Lddw:
      case Form::Ja: case Form::Gotol: case Form::JmpK: case Form::JmpX: case Form::Exit: case Form::Ldx:
      case Form::St: case Form::Stx: case Form::LoadAcq: case Form::StoreRel: case Form::Atomic:
        break;
    }
  }
  const Op last = insns.back().op;
  return last == Op::Exit || last == Op::Ja || last == Op::Gotol;
}

// Registers (bit i = ri) an instruction of an eligible program may read and
// write: detail::use_def, with atomics writing src and r0 (conservative).
struct RegUse {
  unsigned reads = 0, writes = 0;
};
RegUse reg_use(const Insn& in) {
  std::uint16_t use = 0, def = 0;
  detail::use_def(in, false, use, def);
  if (in.info().form == Form::Atomic) def = static_cast<std::uint16_t>(def | (1u << in.src) | 1u);
  return {use, def};
}

// A bare leaf: the body can be called as a plain SysV function
// u64 body(ignored, r1, r2, r3, r4, r5): it uses only r0-r5 (rax, rsi, rdx,
// rcx, r8, r9 and the JIT's caller-saved scratch registers: no callee-saved
// register, no frame, no call), jumps only forward, and writes r0 before any
// read of it on every path (so r0's start value does not matter).
bool leaf_bare(std::span<const Insn> insns) {
  const std::size_t n = insns.size();
  std::vector<u8> undef(n + 1, 0);  // r0 may be unwritten at the start of pc
  undef[0] = 1;
  constexpr unsigned kHigh = ~0x3fu;  // r6 and up
  for (std::size_t pc = 0; pc < n; ++pc) {
    const Insn& in = insns[pc];
    if (in.op == Op::LddwTail) {
      undef[pc + 1] = static_cast<u8>(undef[pc + 1] | undef[pc]);
      continue;
    }
    const RegUse u = reg_use(in);
    if (((u.reads | u.writes) & kHigh) != 0) return false;
    if (undef[pc] != 0 && (u.reads & 1u) != 0) return false;
    const u8 out = undef[pc] != 0 && (u.writes & 1u) == 0 ? 1 : 0;
    const Form f = in.info().form;
    if (isa::is_jump(f)) {
      const std::int64_t t = isa::jump_target(in, pc);
      if (t <= static_cast<std::int64_t>(pc)) return false;
      undef[static_cast<std::size_t>(t)] = static_cast<u8>(undef[static_cast<std::size_t>(t)] | out);
    }
    if (f != Form::Exit && f != Form::Ja && f != Form::Gotol) undef[pc + 1] = static_cast<u8>(undef[pc + 1] | out);
  }
  return true;
}

}  // namespace

Program::Leaf Program::leaf() const {
  const Impl& p = *impl_;
  if (p.primary.checked || p.primary.counting || !leaf_eligible(p.insns)) return {};
  const std::unique_ptr<Code>& c = p.code[variant_index(p.primary)];
  if (!c) return {};
  const u8* body = c->map + c->info.entry_offset[0];
  Leaf l;
  if (leaf_bare(p.insns)) {  // called directly: `body` arrives in rdi and is ignored
    l.fn = reinterpret_cast<Leaf::Fn>(reinterpret_cast<std::uintptr_t>(body));
    return l;
  }
  const u8* stub = leaf_stub();
  if (stub == nullptr) return {};
  l.fn = reinterpret_cast<Leaf::Fn>(reinterpret_cast<std::uintptr_t>(stub));
  l.body = body;
  return l;
}

}  // namespace userbpf::jit
// ---- end of leaf entry (filter helper) ----
