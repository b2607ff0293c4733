// Whole-program facts the x86-64 JIT's code generator uses (internal to
// src/jit; see the design comment in analysis.cpp).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "isa/isa.hpp"

namespace userbpf::jit::detail {

inline constexpr std::uint8_t kAllCalleeSaved = 0xf;  // BPF r6-r9

// Whether an instruction writes r10 (the interpreter allows it).
bool writes_r10(const isa::Insn& in);
// The register an instruction may write (-1: none; calls are not counted:
// they write r0, and bpf-to-bpf calls whatever the callee leaves in r0-r5).
int written_reg(const isa::Insn& in);
// Which of r6-r9 (bits 0-3) an instruction writes.
std::uint8_t callee_saved_written(const isa::Insn& in);
// Registers (bit i = ri) an instruction reads (use) and certainly writes
// (def; atomics: none, the fetch forms write src or r0). exit_reads_all: an
// exit returns to a BPF caller, which may read any register; else it reads
// r0. Calls, callx and LD_ABS/LD_IND read every register.
void use_def(const isa::Insn& in, bool exit_reads_all, std::uint16_t& use, std::uint16_t& def);
// Per function entry pc: the r6-r9 the function or anything it calls may write.
std::vector<std::uint8_t> callee_saved_masks(std::span<const isa::Insn> insns, const std::vector<bool>& is_entry,
                                             bool structured);

// What bpf-to-bpf calls need at run time (all false / empty: the general code).
struct CallFacts {
  // No call can exceed isa::kMaxCallFrames: the call graph is acyclic and
  // its longest chain fits, and nothing enters a function another way
  // (no helper or kfunc call, hence no callback, and no callx).
  bool static_depth = false;
  // No code calls into C (helpers, kfuncs, callx, LD_ABS/LD_IND): in
  // unchecked variants rsp alignment does not matter.
  bool no_c_calls = false;
  // By function entry pc: the function or one it calls reads r10 (the frame
  // pointer). Meaningful only with static_depth.
  std::vector<bool> uses_frame;
  // By function entry pc: one past the function's last instruction if its
  // calls may be inlined (its code emitted at each call site, see
  // kInlineMaxInsns), else 0. Empty: none. Only with static_depth: the
  // function is not the main program, contains no may_goto or LD_ABS/LD_IND,
  // and every function it calls may be inlined (a leaf once expanded).
  std::vector<std::uint32_t> inline_end;
};
// Largest function body, its inlined callees expanded, that is inlined.
inline constexpr std::size_t kInlineMaxInsns = 40;
CallFacts call_facts(std::span<const isa::Insn> insns, const std::vector<bool>& is_entry, bool structured);

// The 64-bit constant register `reg` holds before instruction pc when it
// comes from a plain lddw: traced back through register moves inside pc's
// basic block and, for r6-r9, to their writes in pc's function when all of
// them are the same lddw. Only for verified programs with kernel_structure
// (every register read follows a write on every path; functions are the
// ranges between entries). nullopt: not known.
std::optional<std::uint64_t> lddw_constant(std::span<const isa::Insn> insns, const std::vector<bool>& is_target,
                                           const std::vector<bool>& is_entry, std::size_t pc, int reg);

// The function entry (pc) a `lddw rX, func` (BPF_PSEUDO_FUNC) gave
// register `reg` before instruction pc: traced back through register moves
// inside pc's basic block only, so the fact holds on every path into pc
// (verified or not). nullopt: not known.
std::optional<std::size_t> lddw_func_target(std::span<const isa::Insn> insns, const std::vector<bool>& is_target,
                                            const std::vector<bool>& is_entry, std::size_t pc, int reg);

// Liveness: per pc, the BPF registers (bit i = ri) that may be read after
// the instruction before being written again. Conservative: calls and
// exits of functions other than the main program read every register, r10
// is always live. Without kernel_structure every register is live
// everywhere (no facts).
std::vector<std::uint16_t> live_out(std::span<const isa::Insn> insns, const std::vector<bool>& is_entry,
                                    bool structured);

// Known widths: per BPF register, an upper bound w of its value's
// significant bits (value < 2^w; 64 = nothing known). The code generator
// keeps one set along straight-line code and forgets it at jump targets;
// it drops zero-extensions and masks the widths prove to be no-ops.
using Widths = std::array<std::uint8_t, isa::kNumRegs>;
inline void forget_widths(Widths& w) { w.fill(64); }
// Updates w to the state after `in` executed (and fell through).
void track_widths(Widths& w, const isa::Insn& in);

}  // namespace userbpf::jit::detail
