// The engines the data-file runner checks every case against. Adding an
// engine is one line in kEngines (engines.cpp); the JIT's line is there,
// enabled by the CMake option USERBPF_DATA_TEST_JIT.
#pragma once

#include <cstdint>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "case_file.hpp"
#include "isa/isa.hpp"

namespace userbpf::datatest {

struct Outcome {
  enum class Kind {
    Ran,      // finished: r0 and memory are valid
    Failed,   // the engine reported an error (load or run): `text`
    Refused,  // the kernel's verifier refused the program: `text` = errno + log
    NotRun,   // the engine cannot run this case here: `text` = why (test is skipped)
  };
  Kind kind = Kind::NotRun;
  std::uint64_t r0 = 0;
  std::vector<std::uint8_t> memory;  // memory after the run
  std::string text;
};

// For readable test failures.
inline std::ostream& operator<<(std::ostream& os, Outcome::Kind k) {
  switch (k) {
    case Outcome::Kind::Ran: return os << "ran";
    case Outcome::Kind::Failed: return os << "failed";
    case Outcome::Kind::Refused: return os << "refused by the verifier";
    case Outcome::Kind::NotRun: return os << "not run";
  }
  return os << "?";
}

struct Engine {
  const char* name;  // test-name prefix
  Outcome (*run)(const Case& c, std::span<const isa::Insn> prog);
  bool is_kernel;    // honours '-- kernel' (rejects / skip) instead of our own checks
};

// kEngines[0] is the reference engine (the interpreter): other engines'
// memory-after is compared with it.
std::span<const Engine> engines();

}  // namespace userbpf::datatest
