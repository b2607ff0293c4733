// Assembler and disassembler for eBPF text, in two dialects:
//  - Kernel: the syntax llvm-objdump -d and bpftool prog dump xlated print
//      r0 = 1 / w1 += w2 / if r1 > r2 goto +3 / *(u32 *)(r10 - 4) = r1 / call 1 / exit
//  - Ubpf: the uBPF / bpf_conformance syntax
//      mov32 %r0, 0 / ldxw %r0, [%r1+4] / lddw %r0, 0x... / ja +2
// Both directions are generated from the opcode table (isa/opcodes.def).
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "isa/isa.hpp"

namespace userbpf::assembly {

enum class Dialect { Kernel, Ubpf, Auto /* assembler only: decide per line */ };

// Assembles text into instructions (lddw yields two slots: the Lddw row and an
// Op::LddwTail). Labels ("name:"), comments ("#", "//", ";") and both
// dialects (Auto) are accepted. Errors carry line and column.
Result<std::vector<isa::Insn>> assemble(std::string_view text, Dialect dialect = Dialect::Auto);

struct DisasmOptions {
  Dialect dialect = Dialect::Kernel;
  bool show_index = true;   // "   0: " prefix like llvm-objdump
  bool show_bytes = false;  // raw bytes like llvm-objdump without --no-show-raw-insn
};

// One instruction (pc is its index, used for jump targets); lddw tails print nothing.
std::string disassemble_one(const isa::Insn& insn, std::size_t pc, Dialect dialect = Dialect::Kernel);
// A whole program, one line per instruction, '\n'-terminated.
std::string disassemble(std::span<const isa::Insn> insns, const DisasmOptions& opts = {});

}  // namespace userbpf::assembly
