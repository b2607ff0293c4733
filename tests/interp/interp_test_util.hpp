// Helpers shared by the interpreter tests: a tiny program builder on isa::make
// (the assembler is a separate component) and runners for every mode.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "interp/interp.hpp"

namespace userbpf::interp::test {

using isa::Insn;
using isa::Op;

// Builds a program instruction by instruction; lddw emits its tail slot.
struct Prog {
  std::vector<Insn> v;
  Prog& operator()(Op op, std::uint8_t dst = 0, std::uint8_t src = 0, std::int16_t off = 0, std::int32_t imm = 0) {
    v.push_back(isa::make(op, dst, src, off, imm));
    return *this;
  }
  Prog& lddw(std::uint8_t dst, std::uint64_t value, Op op = Op::Lddw) {
    Insn in = isa::make(op, dst, 0, 0, static_cast<std::int32_t>(static_cast<std::uint32_t>(value)),
                        static_cast<std::int32_t>(static_cast<std::uint32_t>(value >> 32)));
    v.push_back(in);
    Insn tail;
    tail.op = Op::LddwTail;
    tail.imm = in.imm_hi;
    v.push_back(tail);
    return *this;
  }
  Prog& mov(std::uint8_t dst, std::int32_t imm) { return (*this)(Op::MovImm, dst, 0, 0, imm); }
  Prog& exit() { return (*this)(Op::Exit); }
};

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
