// The eBPF interpreter: a pre-decoded, direct-threaded interpreter over the
// execution ABI of src/abi (the same RunResult and error messages as the JIT).
// See interp.cpp for the design and its invariants.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "abi/abi.hpp"
#include "base/error.hpp"
#include "isa/isa.hpp"

namespace userbpf::interp {

struct LoadOptions {
  // Apply the kernel's structural rules (every subprogram ends in exit/jmp,
  // jumps stay inside their subprogram). Off: only targets in range.
  bool kernel_structure = true;
};

// A program pre-decoded for fast dispatch. Immutable after creation; one
// Program may run on several threads at once (each with its own Env).
//
// Input: decoded instructions as isa::decode produces them, i.e. every lddw
// followed by its Op::LddwTail slot (indexes keep the kernel's numbering).
// Execution modes (chosen per run from env.options):
//   - unchecked (default): the program is trusted (it passed a verifier):
//     loads and stores go straight to host memory, nothing is counted.
//   - counted (budget > 0 or count_insns): RunResult::insns is exact and the
//     budget is enforced.
//   - checked: counted, plus every load/store/atomic is checked against
//     env.regions and the live stack frames.
class Program {
 public:
  static Result<Program> create(std::span<const isa::Insn> insns, const LoadOptions& opts = {});
  Program(Program&&) noexcept;
  Program& operator=(Program&&) noexcept;
  ~Program();

  // Runs with r1..r5 = args (missing ones zero); r10 = top of a fresh stack.
  // Extra args beyond five are ignored.
  abi::RunResult run(abi::Env& env, std::span<const std::uint64_t> args = {}) const;
  [[nodiscard]] std::size_t size() const;
  // The instructions the program was created from.
  [[nodiscard]] std::span<const isa::Insn> insns() const;

 private:
  struct Impl;
  explicit Program(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace userbpf::interp
