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
#include "isa/isa.hpp"

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
  // Use BMI2 shifts (shlx/shrx/sarx) where the CPU has them; false forces the
  // cl-based sequence (the tests cover both).
  bool bmi2 = true;
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
};

}  // namespace userbpf::jit
