// Builds a program in memory, instruction by instruction (tests, wrappers,
// generated benchmarks). lddw emits its tail slot, so indexes keep the
// kernel's numbering.
#pragma once

#include <cstdint>
#include <vector>

#include "isa/isa.hpp"

namespace userbpf::isa {

struct Builder {
  std::vector<Insn> v;

  Builder& operator()(Op op, std::uint8_t dst = 0, std::uint8_t src = 0, std::int16_t off = 0, std::int32_t imm = 0) {
    v.push_back(make(op, dst, src, off, imm));
    return *this;
  }
  Builder& lddw(std::uint8_t dst, std::uint64_t value, Op op = Op::Lddw) {
    const Insn in = make(op, dst, 0, 0, static_cast<std::int32_t>(static_cast<std::uint32_t>(value)),
                         static_cast<std::int32_t>(static_cast<std::uint32_t>(value >> 32)));
    v.push_back(in);
    Insn tail;
    tail.op = Op::LddwTail;
    tail.imm = in.imm_hi;
    v.push_back(tail);
    return *this;
  }
  Builder& mov(std::uint8_t dst, std::int32_t imm) { return (*this)(Op::MovImm, dst, 0, 0, imm); }
  Builder& exit() { return (*this)(Op::Exit); }
  [[nodiscard]] std::size_t size() const { return v.size(); }
};

}  // namespace userbpf::isa
