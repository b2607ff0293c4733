// Helpers shared by the interpreter tests: a tiny program builder on isa::make
// (the assembler is a separate component) and runners for every mode.
#pragma once

#include "isa/builder.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "interp/interp.hpp"

namespace userbpf::interp::test {

using isa::Insn;
using isa::Op;

// Builds a program instruction by instruction; lddw emits its tail slot.
using Prog = isa::Builder;

inline Program load(const std::vector<Insn>& insns, bool kernel_structure = true) {
  LoadOptions o;
  o.kernel_structure = kernel_structure;
  auto p = Program::create(insns, o);
  if (!p) ADD_FAILURE() << "create failed: " << p.error().to_string();
  return std::move(p).value();
}

enum class RunMode { Fast, Counted, Checked };
inline const char* mode_name(RunMode m) {
  return m == RunMode::Fast ? "fast" : m == RunMode::Counted ? "counted" : "checked";
}
inline abi::RunResult run_mode(const Program& p, abi::Env& env, RunMode m, std::vector<std::uint64_t> args = {}) {
  env.options.checked = m == RunMode::Checked;
  env.options.count_insns = m == RunMode::Counted;
  return p.run(env, args);
}

// Errors match when errno, instruction and message match.
inline ::testing::AssertionResult same_error(const Error& got, const Error& want) {
  if (got.code == want.code && got.insn == want.insn && got.message == want.message)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "got '" << got.to_string() << "' (errno " << got.code << "), want '"
                                       << want.to_string() << "' (errno " << want.code << ")";
}

}  // namespace userbpf::interp::test
