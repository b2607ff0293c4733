// Differential testing of userbpf's verifier against the kernel's: the same
// generated program (fuzz/gen) is verified by verifier::verify and loaded
// with BPF_PROG_LOAD (maps created with BPF_MAP_CREATE, lddw map_fd(i)
// patched to their fds). Verdicts (accept/reject) must agree; errnos are
// compared and counted too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/gen/progen.hpp"
#include "verifier/verifier.hpp"

namespace userbpf::fuzz {

struct KernelVerdict {
  bool available = false;
  std::string reason;  // when not available
  bool accepted = false;
  int err = 0;
  std::string log;
};
KernelVerdict kernel_verify(const GenProgram& prog, unsigned log_level = 1);

// Program `index` of a differential run with `seed` (reproducible).
GenProgram kdiff_program(std::uint64_t seed, std::size_t index);

struct Disagreement {
  std::uint64_t seed = 0;
  std::size_t index = 0;
  GenProgram prog;
  verifier::Verdict ours;
  KernelVerdict kernel;
};

struct DiffStats {
  bool available = false;
  std::string reason;
  std::size_t programs = 0;
  std::size_t agree = 0;
  std::size_t both_accept = 0, both_reject = 0;
  std::size_t only_userbpf_accepts = 0, only_kernel_accepts = 0;
  std::size_t errno_agree = 0;  // among both_reject
  std::size_t with_fault = 0;   // programs that carry a deliberate fault
};
DiffStats run_kdiff(std::uint64_t seed, std::size_t n, std::vector<Disagreement>* out);

// The regression file text of a disagreement (a verifier case, kernel's verdict expected).
std::string disagreement_case(const Disagreement& d);

}  // namespace userbpf::fuzz
