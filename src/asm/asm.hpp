// Assembler and disassembler for eBPF text, in two dialects:
//  - Kernel: the syntax llvm-objdump -d and bpftool prog dump xlated print
//      r0 = 1 / w1 += w2 / if r1 > r2 goto +3 / *(u32 *)(r10 - 4) = r1 / call 1 / exit
//  - Ubpf: the uBPF / bpf_conformance syntax
//      mov32 %r0, 0 / ldxw %r0, [%r1+4] / lddw %r0, 0x... / ja +2
// Both directions are generated from the opcode table (isa/opcodes.def): every
// row has, per dialect, a small list of syntax templates chosen by its Form
// (src/asm/syntax.cpp); the printer expands a template, the assembler matches
// the same templates against the text. See docs/asm.md for the grammar.
//
// Immediates and offsets: LLVM >= 15 llvm-objdump prints them in hex
// ("r0 = 0x1", "goto +0x3", "(r10 - 0x8)"), LLVM 14 and bpftool in decimal.
// The assembler accepts both; the printer uses hex unless
// DisasmOptions::hex_imm is false.
//
// Forms that llvm-objdump prints ambiguously get a re-assemblable spelling
// by default (DisasmOptions::objdump_exact restores objdump's text):
//   kind                       Kernel dialect                Ubpf dialect
//   local call (src 1)         call pc+0x2                   call local +2
//   kfunc call (src 2)         call kfunc(0x9)               call runtime 0x9
//                              call kfunc(0x9, 0x1)  (off=1) call runtime 0x9, 1
//   lddw src 1 (map fd)        r1 = map_fd(3) ll             lddw %r1, map_by_fd(3)
//   lddw src 2 (map value)     r1 = map_value(3) + 16 ll     lddw %r1, map_val(map_by_fd(3)) + 16
//   lddw src 3 (btf id)        r1 = btf_id(55) ll            lddw %r1, var_addr(55)
//   lddw src 4 (func)          r1 = func(+5) ll              lddw %r1, code_addr(+5)
//   lddw src 5 (map idx)       r1 = map_idx(0) ll            lddw %r1, map_by_idx(0)
//   lddw src 6 (map idx value) r1 = map_idx_value(0) + 8 ll  lddw %r1, map_val(map_by_idx(0)) + 8
// (numbers follow hex_imm). The assembler also accepts, in either dialect:
// bpftool's "r1 = map[id:5]", "r1 = map[id:5][0]+16", "r1 = map[idx:0]+8",
// "r1 = subprog[+5]", LLVM's "ld_pseudo r1, 1, 5", the kernel log's
// "goto pc+3" / "call pc+2", "call <label>" (local call, or a helper/kfunc
// name through AsmOptions::resolve_symbol), and bpf_conformance's
// "call helper N", "call %r2", "ja32 +N".
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "isa/isa.hpp"

namespace userbpf::assembly {

enum class Dialect { Kernel, Ubpf, Auto /* assembler only: decide per line */ };

struct AsmOptions {
  Dialect dialect = Dialect::Auto;
  // Resolves a name used where a number is expected: helper names in
  // "call bpf_map_lookup_elem", map names in "map_by_fd(array_map)". Unset or
  // returning nullopt: the name is an error (or, after "call", a label).
  std::function<std::optional<std::int64_t>(std::string_view name)> resolve_symbol;
  // Accept r11..r15 (for negative tests that must reach the decoder/verifier).
  bool allow_invalid_registers = false;
  // Keep the low 32 bits of an immediate that does not fit in 32 bits instead
  // of failing, as bpf_conformance's assembler does (its lock_cmpxchg32.data
  // has "mov32 r1, 0x876543210"). Offsets and registers are still checked.
  bool truncate_imm32 = false;
};

// Assembles text into instructions (lddw yields two slots: the Lddw row and an
// Op::LddwTail). Labels ("name:"), comments ("#", "//", ";") and both
// dialects (Auto) are accepted. Errors carry line and column
// (Error::to_string() gives "line 3:9: unknown register 'r11'").
Result<std::vector<isa::Insn>> assemble(std::string_view text, Dialect dialect = Dialect::Auto);
Result<std::vector<isa::Insn>> assemble(std::string_view text, const AsmOptions& opts);

struct DisasmOptions {
  Dialect dialect = Dialect::Kernel;
  bool show_index = true;   // "   0: " prefix like llvm-objdump
  bool show_bytes = false;  // raw bytes like llvm-objdump without --no-show-raw-insn
  bool hex_imm = true;      // LLVM >= 15 objdump style; false: LLVM 14 / bpftool decimal
  // Sub-register names (w0) for loads/stores/atomics of 32 bits or less, as
  // llvm-objdump prints them for alu32 (-mcpu=v3 and later, --mattr=+alu32).
  bool alu32_names = true;
  // Print local/kfunc calls as "call imm" and pseudo lddw as "ld_pseudo r1, 1, 3"
  // exactly as llvm-objdump does (loses information: not re-assemblable).
  bool objdump_exact = false;
};

// One instruction (pc is its index, used for jump targets); lddw tails print nothing.
std::string disassemble_one(const isa::Insn& insn, std::size_t pc, Dialect dialect = Dialect::Kernel);
std::string disassemble_one(const isa::Insn& insn, std::size_t pc, const DisasmOptions& opts);
// A whole program, one line per instruction, '\n'-terminated.
std::string disassemble(std::span<const isa::Insn> insns, const DisasmOptions& opts = {});

}  // namespace userbpf::assembly
