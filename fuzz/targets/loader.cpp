// Fuzz target: the ELF/BTF object loader on arbitrary bytes (seeds: small
// objects compiled at build time, fuzz/seeds/loader). Checks: no crash, no
// hang; a failed open has a message; an opened object's programs are
// well-formed (every lddw has its tail) and print.
#include <cstddef>
#include <cstdint>
#include <span>

#include "asm/asm.hpp"
#include "fuzz/common/fuzz.hpp"
#include "loader/loader.hpp"

using namespace userbpf;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > (1u << 20)) return 0;
  loader::OpenOptions opts;
  opts.object_name = "fuzz";
  opts.use_vmlinux_btf = false;  // CO-RE against the object's own BTF only: bounded, host-independent
  auto obj = loader::Object::open(std::span<const std::uint8_t>(data, size), opts);
  if (!obj) {
    if (obj.error().message.empty()) fuzz::fail("loader", "open failed without a message");
    return 0;
  }
  for (const auto& p : obj->programs()) {
    for (std::size_t i = 0; i < p.insns.size(); ++i) {
      const bool lddw = isa::info(p.insns[i].op).form == isa::Form::Lddw && p.insns[i].op != isa::Op::LddwTail;
      if (lddw && (i + 1 >= p.insns.size() || p.insns[i + 1].op != isa::Op::LddwTail))
        fuzz::fail("loader", "program with an lddw lacking its tail", p.name);
    }
    (void)assembly::disassemble(p.insns);
  }
  return 0;
}
