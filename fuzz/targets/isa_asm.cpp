// Fuzz target: instruction decoding and the assembler round trip.
// Input: raw instruction bytes (8 per slot). Checks:
//   - decode never crashes; errors name an instruction;
//   - encode(decode(bytes)) == bytes (nothing is lost or invented);
//   - for every dialect and number style: assemble(disassemble(insns)) ==
//     insns (the printer and the assembler are inverses).
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "asm/asm.hpp"
#include "fuzz/common/fuzz.hpp"
#include "isa/isa.hpp"

using namespace userbpf;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 8 * 512) return 0;
  const std::span<const std::uint8_t> bytes(data, size);
  for (const bool kernel_only : {false, true}) {
    isa::DecodeOptions opts;
    opts.kernel_only = kernel_only;
    auto dec = isa::decode_bytes(bytes, opts);
    if (!dec) {
      if (dec.error().message.empty()) fuzz::fail("isa_asm", "decode error without a message");
      continue;
    }
    const auto& insns = *dec;
    if (size % 8 != 0) fuzz::fail("isa_asm", "decode accepted a size that is not a multiple of 8");
    const auto enc = isa::encode_bytes(insns);
    if (enc.size() != size || !std::equal(enc.begin(), enc.end(), data))
      fuzz::fail("isa_asm", "encode(decode(bytes)) != bytes", fuzz::listing(insns));
    for (const auto dialect : {assembly::Dialect::Kernel, assembly::Dialect::Ubpf}) {
      for (const bool hex : {true, false}) {
        assembly::DisasmOptions d;
        d.dialect = dialect;
        d.hex_imm = hex;
        d.show_index = false;
        const std::string text = assembly::disassemble(insns, d);
        assembly::AsmOptions ao;
        ao.dialect = dialect;
        auto again = assembly::assemble(text, ao);
        if (!again)
          fuzz::fail("isa_asm",
                     std::string("disassembly does not assemble (") +
                         (dialect == assembly::Dialect::Kernel ? "kernel" : "ubpf") + (hex ? ", hex)" : ", decimal)"),
                     again.error().to_string() + "\n" + text);
        if (*again != insns)
          fuzz::fail("isa_asm",
                     std::string("assemble(disassemble(x)) != x (") +
                         (dialect == assembly::Dialect::Kernel ? "kernel" : "ubpf") + (hex ? ", hex)" : ", decimal)"),
                     text + "-- reassembled:\n" + fuzz::listing(*again));
      }
    }
  }
  return 0;
}
