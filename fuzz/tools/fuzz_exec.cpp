// userbpf-fuzz-exec N [SEED] [TYPE]: runs N generated programs (seed SEED,
// program type kprobe or raw_tracepoint, alternating) through the
// verifier-gated execution harness (fuzz/common/harness.hpp) without
// libFuzzer, so that it works with any compiler. Prints how many were
// accepted and compared; a finding aborts with the program's listing.
#include <linux/bpf.h>

#include <cstdio>
#include <cstdlib>

#include "fuzz/common/harness.hpp"
#include "fuzz/gen/progen.hpp"

using namespace userbpf;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: userbpf-fuzz-exec N [SEED]\n");
    return 64;
  }
  const std::size_t n = std::strtoull(argv[1], nullptr, 0);
  const std::uint64_t seed = argc > 2 ? std::strtoull(argv[2], nullptr, 0) : 1;
  std::size_t accepted = 0, faults = 0;
  for (std::size_t i = 0; i < n; ++i) {
    fuzz::Rng rng(seed * 0x9e3779b97f4a7c15ULL + i);
    fuzz::GenOptions o;
    o.prog_type = i % 2 == 0 ? BPF_PROG_TYPE_KPROBE : BPF_PROG_TYPE_RAW_TRACEPOINT;
    o.init_stack = true;
    o.fault_percent = i % 4 == 3 ? 50 : 0;
    o.max_statements = 8 + rng.below(32);
    const fuzz::GenProgram prog = fuzz::generate(rng, o);
    std::uint8_t ctx[16];
    for (std::size_t k = 0; k < sizeof(ctx); ++k) ctx[k] = static_cast<std::uint8_t>(rng.next());
    const auto out = fuzz::ExecHarness::instance().check("exec", prog, ctx);
    if (out.accepted) {
      ++accepted;
      if (out.result.fault != abi::Fault::None) ++faults;
    }
  }
  std::printf("programs %zu, accepted and compared in 4 engine variants %zu (ended by a fault: %zu)\n", n, accepted,
              faults);
  return 0;
}
