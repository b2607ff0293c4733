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
// them in one pass, in program order, with xbyak as the typed encoder (no
// hand-assembled bytes). Each BPF instruction becomes a short sequence.
// Labels and jump fix-ups are ours, in one place (labels.hpp): a label is an
// index into a flat vector of code offsets (label = BPF pc for the
// instructions), branches are emitted rel8 or rel32 and patched in one pass
// at the end. Slow and rare paths (faults, checked-mode slow checks, helper
// signals) are out-of-line thunks emitted after the body, so the
// straight-line code stays compact.
// The code is assembled into a per-thread buffer sized by an upper bound
// (code_bounds), then written to a sealed memfd that is mapped read+exec:
// the pages are never writable in the process (map_code_file; without a
// memfd: an anonymous mapping, written, then mprotect'ed to read+exec, never
// writable and executable at once: map_code). No per-instruction allocation:
// compile time is linear in the program size.
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
#include <fcntl.h>
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

// The code's private mapping, writable (Program::Impl::generate fills it and
// makes it read+exec). Its cost in a VM is mostly TLB flushes: the
// mprotect to read+exec (and the munmap) flush the range of the pages that
// are present, and Linux flushes page by page up to
// tlb_single_page_flush_ceiling (33) pages, else the whole TLB once. In a
// paravirtual guest each of those is a hypercall: measured here 23 us per
// page, ~50-90 us for a whole flush, so 8 pages cost ~190 us and 33 pages
// ~780 us. So code of 8 to 33 pages gets a mapping of 34 pages whose last
// page is populated too (the populated range then spans more than the
// ceiling: one whole flush); the pages in between stay untouched (no
// memory). Every page the code may use (`bytes`) is populated up front (a
// page fault per page cost more than the rest of a compile in a VM).
constexpr std::size_t kFlushCeilingPages = 33;
constexpr std::size_t kSpreadMinPages = 8;  // below: a few page flushes cost less than a whole one (measured)
u8* map_code(std::size_t bytes, std::size_t& map_len) {
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const std::size_t pages = (bytes + page - 1) / page;
  const bool spread = pages >= kSpreadMinPages && pages <= kFlushCeilingPages;
  map_len = (spread ? kFlushCeilingPages + 1 : pages) * page;
  void* m = mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (spread ? 0 : MAP_POPULATE),
                 -1, 0);
  if (m == MAP_FAILED) return nullptr;
  auto* base = static_cast<u8*>(m);
  if (spread) {
    u8* const last = base + map_len - page;
    if (madvise(base, pages * page, MADV_POPULATE_WRITE) != 0 || madvise(last, page, MADV_POPULATE_WRITE) != 0) {
      // (kernels before 5.14: fault the pages in)
      for (std::size_t i = 0; i < pages; ++i) static_cast<volatile u8*>(base)[i * page] = 0;
      *static_cast<volatile u8*>(last) = 0;
    }
  }
  return base;
}

// The code, mapped read+exec from a sealed memfd that holds it: the pages
// are never writable in this process (W^X without an mprotect, so without
// its TLB flush: measured 1.0 -> 0.8 ms per compile and destruction of the
// 10,000-instruction program, 0.41 -> 0.13 ms at 2,000). The file is
// written with pwrite, sealed against writes, mapped (populated) and closed
// at once: nothing else refers to it. nullptr if any step fails (the caller
// then uses map_code).
u8* map_code_file(const u8* code, std::size_t len, std::size_t& map_len) {
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const int fd = memfd_create("userbpf-jit", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return nullptr;
  void* m = MAP_FAILED;
  if (pwrite(fd, code, len, 0) == static_cast<ssize_t>(len) &&
      fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0) {
    map_len = (len + page - 1) / page * page;
    m = mmap(nullptr, map_len, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  }
  close(fd);
  return m == MAP_FAILED ? nullptr : static_cast<u8*>(m);
}

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
  // The variant a run on `env` uses (compiled on first use) and the rest of its RunPlan.
  [[gnu::always_inline]] inline detail::RunPlan plan(const abi::Env& env) const;
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

// Assembles into a per-thread buffer sized by code_bounds(), then maps the
// code read+exec (map_code_file: no writable mapping, no mprotect; else
// map_code + copy + mprotect).
Result<std::unique_ptr<Code>> Program::Impl::generate(Variant v) const {
  auto c = std::make_unique<Code>();
  std::size_t cap = 0;
  static const std::vector<std::uint32_t> kNone;
  static const std::vector<u32> kNoLoops;
  const std::vector<u32> bound =
      code_bounds(insns, heads, v, opts.blinding, inline_enabled(v, opts, writes_r10, calls) ? calls.inline_end : kNone,
                  loops_enabled(v, writes_r10) ? loop_inline : kNoLoops, cap);
  bool short_jumps = true;
  // The per-thread assembly buffer (reused: warm, no page faults).
  thread_local std::vector<u8> scratch;
  try {
    for (;;) {
      if (scratch.size() < cap) scratch.resize(cap);
      Emitter e(insns, opts, v, is_target, is_entry, writes_r10, save_mask, calls, live, heads, map_lookup, loop_inline,
                scratch.data(), cap, bound);
      e.short_jumps = short_jumps;
      try {
        e.generate();
        e.ready();
      } catch (const Xbyak::Error& err) {
        // Safety nets, never expected: a max_code_size() bound too small made
        // a short branch out of reach (again with near branches only) or the
        // code bigger than the buffer (again with twice the room).
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
    // The code is position-independent (branches are relative, calls into C
    // are absolute): it runs wherever it is mapped.
    c->map = map_code_file(scratch.data(), c->len, c->map_len);
    if (c->map == nullptr) {  // no memfd (sandbox, vm.memfd_noexec): write an anonymous mapping, then protect it
      c->map = map_code(c->len, c->map_len);
      if (c->map == nullptr) return make_error(ENOMEM, fmt::format("jit: cannot map {} bytes for code", c->len));
      std::memcpy(c->map, scratch.data(), c->len);
      // W^X: the pages were writable while filled; from now on read+exec only.
      if (mprotect(c->map, c->map_len, PROT_READ | PROT_EXEC) != 0)
        return make_error(errno, "jit: cannot make the code executable (mprotect)");
    }
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
    // (lean helper calls, fold.cpp: they save only the live r1-r5)
    if (f == Form::Call && opts.lean_helper_calls && opts.helpers != nullptr) pointer_access = true;
  }
  if (local_calls) {
    impl->save_mask = detail::callee_saved_masks(insns, impl->is_entry, opts.kernel_structure);
  } else {
    impl->save_mask.assign(n, kAllCalleeSaved);  // read only at call targets: none
  }
  impl->calls = detail::call_facts(insns, impl->is_entry, opts.kernel_structure);
  // Liveness serves emit_address_fold (accesses through a pointer register)
  // and emit_load_op (loads), and the ALU idioms (idioms.cpp).
  if (!pointer_access) pointer_access = detail::alu_idioms_possible(insns, opts);
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

// ---- runs: Program::run is one Runner making one run, written out with the
// same inline pieces (plan, start_state, run_once, result_of) so that a
// single run pays for no Runner fields. Per run: the handful of State stores
// in run_once and the trampoline; the stack is not zeroed (unchecked runs
// trust the verified program, as the interpreter's fast mode does) and
// State has no initialisers (see State). The run's stack lies between guard
// pages (base/guarded_stack.hpp: a per-thread area reused across runs),
// zeroed only in checked mode, like the interpreter.
inline detail::RunPlan Program::Impl::plan(const abi::Env& env) const {
  Variant v;
  v.checked = opts.checked || env.options.checked;
  v.counting = primary.counting || v.checked || env.options.budget != 0 || env.options.count_insns;
  v.direct = opts.helpers != nullptr && !v.checked && env.helpers == opts.helpers;
  // The primary variant exists from compile() on: no call_once on that path.
  const std::size_t vi = variant_index(v);
  const Code& c = vi == variant_index(primary) ? *code[vi] : variant(v);
  RunPlan rp;
  rp.entry = reinterpret_cast<decltype(rp.entry)>(c.map + c.info.trampoline_offset);
  rp.target = c.map + c.info.entry_offset[0];
  rp.code = &c.info;
  rp.budget = env.options.budget != 0 ? env.options.budget : opts.budget;
  rp.start_left = v.counting ? (rp.budget != 0 ? rp.budget : std::numeric_limits<u64>::max()) : 0;
  rp.checked = v.checked;
  rp.counting = v.counting;
  rp.writes_r10 = writes_r10;
  return rp;
}

namespace {

// The State fields that stay the same for every run on this stack.
[[gnu::always_inline]] inline void start_state(State& st, const RunPlan& rp, abi::Env& env, const u8* stack_top) {
  const u64 top = reinterpret_cast<u64>(stack_top);
  st.env = &env;
  st.code = rp.code;
  st.stack_top = top;
  st.min_call_rbp = top - kStackTotal + 2 * kFrameSize;
  st.region_index = kNoRegion;
  st.writes_r10 = rp.writes_r10 ? 1 : 0;
  st.r0 = 0;
  st.fault = 0;
}

// r1..r5 for the trampoline: `args` itself when it has 5, else `a` filled.
[[gnu::always_inline]] inline const u64* arg_block(std::span<const u64> args, u64 (&a)[5]) {
  const std::size_t n = args.size();
  if (n >= 5) return args.data();
  a[0] = n > 0 ? args[0] : 0;
  a[1] = n > 1 ? args[1] : 0;
  a[2] = n > 2 ? args[2] : 0;
  a[3] = n > 3 ? args[3] : 0;
  a[4] = 0;
  return a;
}

// Checked mode: a zeroed stack and the Stack region in env.regions for the run.
[[gnu::noinline]] void enter_checked(State& st, const RunPlan& rp, abi::Env& env, const u64* argp) {
  std::memset(reinterpret_cast<u8*>(st.stack_top - kStackTotal), 0, kStackTotal);
  const StackRegion region(env, st);
  rp.entry(&st, argp, st.stack_top, rp.target);
  st.region_index = kNoRegion;
}

// One run: exactly the State fields a run may have changed (fp, which a
// fault inside a call leaves moved; budget_left; r0; the end flags), the
// Env's signals, then the code.
[[gnu::always_inline]] inline void run_once(State& st, const RunPlan& rp, abi::Env& env, std::span<const u64> args) {
  st.fp = st.stack_top;
  st.r0 = 0;
  st.cb_aborted = 0;
  st.fault = 0;
  st.stop = 0;
  st.budget_left = rp.start_left;
  u64 a[5];
  const u64* argp = arg_block(args, a);
  env.reset_signals();
  if (rp.checked) [[unlikely]]
    enter_checked(st, rp, env, argp);
  else
    rp.entry(&st, argp, st.stack_top, rp.target);
}

// The error of a run that ended with a fault (built with the abi::
// constructors, so messages equal the interpreter's).
[[gnu::noinline, gnu::cold]] Error fault_error(const State& st, const RunPlan& rp, const abi::Env& env) {
  const std::size_t pc = st.fault_pc;
  switch (static_cast<abi::Fault>(st.fault)) {
    case abi::Fault::None: break;
    case abi::Fault::MemoryViolation:
      return abi::memory_violation(pc, st.fault_addr, st.fault_size, st.fault_write != 0);
    case abi::Fault::Budget: return abi::budget_exhausted(pc, rp.budget);
    case abi::Fault::CallDepth: return abi::call_depth_exceeded(pc);
    case abi::Fault::UnknownHelper:
      return st.fault_kfunc ? abi::unknown_kfunc(pc, st.fault_id) : abi::unknown_helper(pc, st.fault_id);
    case abi::Fault::BadCallTarget: return abi::bad_call_target(pc, st.fault_addr);
    case abi::Fault::FellOffEnd: return abi::fell_off_end(pc);
    case abi::Fault::HelperFailed: return abi::helper_failed(pc, env);
  }
  return make_error(EINVAL, "jit: no fault");  // (not reached: called only on a fault)
}

[[gnu::always_inline]] inline abi::RunResult result_of(const State& st, const RunPlan& rp, const abi::Env& env) {
  abi::RunResult r;
  const auto fault = static_cast<abi::Fault>(st.fault);
  if (rp.counting) r.insns = fault == abi::Fault::Budget ? rp.budget : rp.start_left - st.budget_left;
  r.fault = fault;
  r.r0 = st.r0;
  if (fault != abi::Fault::None) [[unlikely]]
    r.error = fault_error(st, rp, env);
  return r;
}

}  // namespace

abi::RunResult Program::run(abi::Env& env, std::span<const u64> args) const {
  const RunPlan rp = impl_->plan(env);
  const base::StackLease stack(kStackTotal);
  State st;  // NOLINT(cppcoreguidelines-pro-type-member-init): start_state and run_once set what is read
  start_state(st, rp, env, stack.top());
  const abi::CallbackScope callback(env, &st, &rt_callback);
  run_once(st, rp, env, args);
  return result_of(st, rp, env);
}

Program::Runner::Runner(const Program& prog, abi::Env& env)
    : env_(env), plan_(prog.impl_->plan(env)), stack_(kStackTotal), callback_(env, &st_, &rt_callback) {
  start_state(st_, plan_, env, stack_.top());
}

Program::Runner::~Runner() = default;

bool Program::Runner::run(std::span<const u64> args) {
  run_once(st_, plan_, env_, args);
  return st_.fault == 0;
}

abi::RunResult Program::Runner::result() const { return result_of(st_, plan_, env_); }

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
