// Fuzz target: verifier-gated execution of generated programs. The input
// drives the structure-aware generator (fuzz/gen): its bytes are the
// generator's decisions, so mutations change program structure, not
// encodings. For programs the verifier accepts, ExecHarness runs the
// checked interpreter, checked JIT, JIT and interpreter and compares them;
// a memory violation in the checked interpreter is a verifier soundness bug.
// The first byte picks the program type (kprobe / raw_tracepoint: contexts
// that need no rewriting) and whether faults are injected.
#include <cstddef>
#include <linux/bpf.h>

#include <cstdint>

#include "fuzz/common/harness.hpp"
#include "fuzz/gen/progen.hpp"

using namespace userbpf;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1 || size > 4096) return 0;
  fuzz::Input in({data, size});
  const std::uint8_t sel = in.u8();
  const auto ctx = in.bytes(16);
  fuzz::GenOptions o;
  o.prog_type = (sel & 1) != 0 ? BPF_PROG_TYPE_RAW_TRACEPOINT : BPF_PROG_TYPE_KPROBE;
  o.fault_percent = (sel & 2) != 0 ? 50 : 0;
  o.init_stack = true;
  o.max_statements = 8 + (sel >> 3) % 24;
  fuzz::Rng rng(in.rest());
  const fuzz::GenProgram prog = fuzz::generate(rng, o);
  (void)fuzz::ExecHarness::instance().check("exec", prog, ctx);
  return 0;
}
