// Fuzz target: the assembler on arbitrary text. Checks: no crash or hang;
// an error carries a line; what assembles prints back to text that
// assembles to the same instructions (in the dialect it is printed in).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "asm/asm.hpp"
#include "fuzz/common/fuzz.hpp"

using namespace userbpf;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 16384) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto prog = assembly::assemble(text);
  if (!prog) {
    if (!prog.error().line) fuzz::fail("asm_text", "assembler error without a line", prog.error().to_string());
    return 0;
  }
  // Programs with invalid lddw pairing etc. may assemble; only round-trip what decodes.
  if (!isa::check_program(*prog, false)) return 0;
  for (const auto dialect : {assembly::Dialect::Kernel, assembly::Dialect::Ubpf}) {
    assembly::DisasmOptions d;
    d.dialect = dialect;
    d.show_index = false;
    const std::string out = assembly::disassemble(*prog, d);
    assembly::AsmOptions ao;
    ao.dialect = dialect;
    auto again = assembly::assemble(out, ao);
    if (!again) fuzz::fail("asm_text", "printed program does not assemble", again.error().to_string() + "\n" + out);
    if (*again != *prog) fuzz::fail("asm_text", "assemble(print(x)) != x", out);
  }
  return 0;
}
