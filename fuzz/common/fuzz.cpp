// Shared fuzz support: failure reports, listings.
#include "fuzz/common/fuzz.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

#include "asm/asm.hpp"

namespace userbpf::fuzz {

void fail(std::string_view target, std::string_view what, std::string_view detail) {
  std::fprintf(stderr, "userbpf-fuzz: %.*s: FINDING: %.*s\n", static_cast<int>(target.size()), target.data(),
               static_cast<int>(what.size()), what.data());
  if (!detail.empty()) std::fprintf(stderr, "%.*s\n", static_cast<int>(detail.size()), detail.data());
  std::fflush(stderr);
  std::abort();
}

std::string listing(std::span<const isa::Insn> insns) {
  assembly::DisasmOptions d;
  d.hex_imm = false;
  return assembly::disassemble(insns, d);
}

std::string describe(const abi::RunResult& r) {
  return fmt::format("r0={:#x} insns={} fault={} {}", r.r0, r.insns, abi::fault_name(r.fault),
                     r.error ? r.error->to_string() : std::string());
}

std::size_t env_number(const char* name, std::size_t def) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 0) : def;
}

}  // namespace userbpf::fuzz
