// The eBPF interpreter.
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
class Program {
 public:
  static Result<Program> create(std::span<const isa::Insn> insns, const LoadOptions& opts = {});
  Program(Program&&) noexcept;
  Program& operator=(Program&&) noexcept;
  ~Program();

  // Runs with r1..r5 = args (missing ones zero); r10 = top of a fresh stack.
  abi::RunResult run(abi::Env& env, std::span<const std::uint64_t> args = {}) const;
  [[nodiscard]] std::size_t size() const;

 private:
  struct Impl;
  explicit Program(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace userbpf::interp
