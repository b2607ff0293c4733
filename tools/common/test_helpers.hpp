// The helper set of the bpf_conformance / uBPF test plugins, written for our
// ABI. Ids are uBPF's test ids, NOT kernel helper ids, so tools register them
// only on request (userbpf-conformance always; `userbpf run --test-helpers`).
//
//   0 gather_bytes(a,b,c,d,e)  (a&0xff)<<32 | (b&0xff)<<24 | (c&0xff)<<16 | (d&0xff)<<8 | (e&0xff)
//   1 memfrob(ptr, len)        xors len bytes at ptr with 42, returns 0
//   2 no_op()                  returns 0
//   3 sqrti(x)                 floor(sqrt(x))
//   4 strcmp_ext(a, b)         strcmp of two NUL-terminated strings
//   5 unwind(x)                returns x; if x == 0 the program ends at once with r0 = 0
//
// Pointer arguments are checked against the run's memory regions when the
// run is in checked mode (a bad pointer fails the run with EFAULT).
#pragma once

#include <cstdint>

#include "abi/abi.hpp"

namespace userbpf::tools {

inline constexpr std::uint32_t kUnwindHelperId = 5;

// Registers helper 5 (unwind) only.
void register_unwind_helper(abi::HelperTable& table);
// Registers all six test helpers.
void register_test_helpers(abi::HelperTable& table);

}  // namespace userbpf::tools
