// Instruction-semantics test cases as data files (format: docs/testing.md).
//
//   # free text (comments) before the first section
//   -- asm            program text (kernel or uBPF dialect, assembled with Dialect::Auto)
//   -- mem            input memory as hex bytes (optional; default: empty)
//   -- result         expected r0 as hex (0x...)            } exactly one of
//   -- error          expected error message substring       } these two
//   -- mem-after      expected memory after the run (optional)
//   -- kernel         optional: "rejects: why" [+ "log: substring"] or "skip: why"
//   -- options        optional words: checked, budget=N, no-kernel-structure
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/error.hpp"

namespace userbpf::datatest {

struct Case {
  std::string name;  // file stem
  std::string path;
  std::string asm_text;
  std::size_t asm_line = 0;  // 1-based line of the first asm line in the file
  std::vector<std::uint8_t> mem;
  std::optional<std::uint64_t> result;
  std::optional<std::string> error;
  std::optional<std::vector<std::uint8_t>> mem_after;
  // -- kernel
  bool kernel_rejects = false;
  std::string kernel_reason;  // why it rejects / why it is skipped
  std::string kernel_log;     // substring the verifier log must contain (rejects)
  bool kernel_skip = false;
  // -- options
  bool checked = false;
  std::uint64_t budget = 0;
  bool kernel_structure = true;
};

// Parses one file; errors name the file and line.
Result<Case> parse_case(const std::string& path, const std::string& text);
Result<Case> load_case(const std::string& path);

// All *.data files under `dir`, sorted by name.
std::vector<std::string> list_cases(const std::string& dir);

}  // namespace userbpf::datatest
