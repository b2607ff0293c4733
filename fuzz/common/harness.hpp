// ExecHarness runs a generated program the way a verifier-gated embedder
// would: verify, relocate map references to live maps::Map objects, run in
// the checked interpreter, the checked JIT, the unchecked JIT and the
// unchecked interpreter, with the same context and freshly cleared maps,
// and compare results and map contents. A memory violation reported by the
// checked interpreter for a program the verifier accepted is a verifier
// soundness bug; any difference between engines is an engine bug.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "abi/abi.hpp"
#include "fuzz/common/fuzz.hpp"
#include "fuzz/gen/progen.hpp"

namespace userbpf::fuzz {

class ExecHarness {
 public:
  static ExecHarness& instance();

  struct Outcome {
    bool accepted = false;
    std::string verifier_message;  // when rejected
    abi::RunResult result;         // checked interpreter, when accepted
  };
  // `ctx_bytes` seeds the context (repeated to its size). Calls fail() on a
  // finding; `target` names the caller in the report.
  Outcome check(std::string_view target, const GenProgram& prog, std::span<const std::uint8_t> ctx_bytes);

  // Instructions budget of every run (generated loops are bounded far below).
  static constexpr std::uint64_t kBudget = 200000;

 private:
  ExecHarness();
  struct Impl;
  Impl* impl_;
};

}  // namespace userbpf::fuzz
