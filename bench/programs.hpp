// Benchmark programs for the engines, built with isa::make through a small
// label-resolving builder. Every program takes r1 = memory, r2 = its length
// (the conformance convention that oracle::run_r0 also uses), touches only
// memory[0, kMemorySize), uses bounded loops with constant trip counts so that
// the kernel's verifier accepts it, and leaves memory such that running it
// again gives the same r0 (the kernel repeats runs on the same map value).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "isa/isa.hpp"

namespace userbpf::bench {

inline constexpr std::size_t kMemorySize = 4096;

struct BenchProgram {
  std::string name;
  std::string what;  // one line: what it exercises
  std::vector<isa::Insn> insns;
  std::vector<std::uint8_t> memory;  // initial memory (kMemorySize bytes)
};

std::vector<BenchProgram> programs();

}  // namespace userbpf::bench
