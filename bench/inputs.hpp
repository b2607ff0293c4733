// Deterministic inputs and descriptions of the BPF C benchmark programs
// (bench/progs/*.bpf.c): the memory each one runs on (kProgMemSize bytes,
// MEM_SIZE in progs/common.h) is generated from a fixed seed per program.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace userbpf::bench {

inline constexpr std::size_t kProgMemSize = 2048;  // = MEM_SIZE in progs/common.h

// The initial memory of the program called `name` (the object's base name,
// e.g. "parse_pkt"); random bytes for programs without a special layout.
std::vector<std::uint8_t> prog_input(std::string_view name);
// One line: what the program exercises ("" if unknown).
std::string prog_description(std::string_view name);

}  // namespace userbpf::bench
