// Structure-aware eBPF program generator for fuzzing and differential tests.
//
// Not random bytes: every program is a well-formed instruction sequence built
// from statements a BPF C compiler would produce (ALU on scalars, stack
// spills and fills, context loads, map lookups with null checks and value
// accesses, map updates and deletes, helper calls, forward branches, bounded
// loops, bpf-to-bpf subprograms, atomics, LD_ABS), so that most programs
// get deep into the verifier and, when accepted, run for a while. With
// GenOptions::fault_percent > 0 a program may carry one deliberate fault
// (out-of-bounds map access, missing null check, uninitialised register,
// bad stack/context access, unbounded loop, ...) named in GenProgram::fault,
// so that verdict comparisons see both outcomes.
//
// Choices come from an Rng: fuzzer bytes first (libFuzzer mutates the
// decisions, not the encoding), then a splitmix64 stream seeded from them;
// or a seed alone (differential runs: program N of seed S is reproducible).
//
// Invariants of the output: lddw is two slots (kernel numbering), jumps and
// calls are in range, every subprogram ends with exit, r6 holds the context
// pointer in the main program, maps are named by `lddw map_fd(i)` with i the
// index into GenProgram::maps (fd = -1 in verifier::MapDesc terms).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "isa/isa.hpp"
#include "verifier/verifier.hpp"

namespace userbpf::fuzz {

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  explicit Rng(std::span<const std::uint8_t> bytes);
  std::uint64_t next();
  // Uniform-ish in [0, n); n == 0 gives 0.
  std::uint32_t below(std::uint32_t n);
  // Signed in [lo, hi].
  std::int64_t range(std::int64_t lo, std::int64_t hi);
  bool chance(unsigned percent) { return below(100) < percent; }

 private:
  std::span<const std::uint8_t> bytes_;
  std::size_t pos_ = 0;
  std::uint64_t state_ = 0;
};

struct GenOptions {
  std::uint32_t prog_type = 2;          // enum bpf_prog_type (2 = kprobe)
  unsigned max_statements = 24;         // top-level statements of the main program
  unsigned fault_percent = 0;           // chance that a program carries one deliberate fault
  bool deterministic_helpers = true;    // only helpers whose result is engine-independent
  bool subprograms = true;
  bool loops = true;
  // Zero every stack slot at function entry. Reading uninitialised stack is
  // allowed for privileged programs but its contents are unspecified
  // (unchecked engine runs do not clear the stack), so execution
  // comparisons need this; verifier comparisons leave it off.
  bool init_stack = false;
};

struct GenProgram {
  std::vector<isa::Insn> insns;
  std::uint32_t prog_type = 0;
  std::vector<verifier::MapDesc> maps;  // lddw map_fd(i) names maps[i]
  std::string fault;                    // the deliberate fault, empty when none
};

GenProgram generate(Rng& rng, const GenOptions& opts);

// Verifier configuration for a generated program (privileged, as root loads it).
verifier::Config verifier_config(const GenProgram& prog, unsigned log_level = 0);

// The program as a verifier case (tests/verifier/cases format: name, type,
// maps, expected verdict, assembly), used for regression files.
std::string to_case_text(const GenProgram& prog, const std::string& name, const std::string& comment);

// A stored case (fuzz/regressions/kdiff, xdiff) read back: to_case_text's
// format, plus "expect: accept|reject ..." and "# status: open" (a known,
// not yet fixed finding).
struct StoredCase {
  std::string file, name;
  bool accept = false;
  bool open = false;
  GenProgram prog;
};
// Errors name the file (and the line for assembly errors).
Result<StoredCase> read_case(const std::string& path);

}  // namespace userbpf::fuzz
