// Fuzz target: the verifier on raw instruction bytes, with a program type
// and log level taken from the first bytes. Checks: no crash; every run
// ends (the processed-instruction limit is lowered to 200k so that one
// input stays within libFuzzer's time bound) within a memory bound (stored
// states limited to 64 MiB, Config::memory_limit, ENOMEM beyond); a
// rejection carries an errno and a message; an accepted program passes the
// structural check every executor applies and stayed within both limits.
// Time bound: the verifier's run of one input must take at most
// kCpuBoundSeconds of CPU (this thread's CPU clock, so that a loaded machine
// or a nice level does not count); a slower input is a finding. Measured:
// the slowest stored inputs (fuzz/regressions/verifier/slow-*) take
// 0.2-0.5 s plain and ~1-2 s under ASan+UBSan at the 200k limit.
#include <time.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <span>
#include <vector>

#include "fuzz/common/fuzz.hpp"
#include "spec/spec.hpp"
#include "verifier/verifier.hpp"

using namespace userbpf;

namespace {

constexpr double kCpuBoundSeconds = 10.0;

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2 || size > 2 + 8 * 4096) return 0;
  fuzz::Input in({data, size});
  const auto types = spec::prog_types();
  const std::uint8_t sel = in.u8();
  verifier::Config cfg;
  cfg.prog_type = types[sel % types.size()].id;
  cfg.log_level = (sel >> 4) % 3;
  cfg.privileged = (sel & 0x80) == 0;
  cfg.insn_limit = 200000;
  cfg.memory_limit = std::uint64_t{64} << 20;
  cfg.maps.push_back({1, 4, 16, 8, -1, "hash0"});
  cfg.maps.push_back({2, 4, 16, 4, -1, "array1"});
  cfg.maps.push_back({3, 4, 4, 4, -1, "progs"});
  (void)in.u8();
  const auto body = in.rest();
  std::vector<isa::RawInsn> raw(body.size() / 8);
  if (!raw.empty()) std::memcpy(raw.data(), body.data(), raw.size() * 8);
  const double t0 = thread_cpu_seconds();
  const verifier::Verdict v = verifier::verify_raw(raw, cfg);
  const double cpu = thread_cpu_seconds() - t0;
  if (cpu > kCpuBoundSeconds)
    fuzz::fail("verifier", "verification took longer than the time bound",
               std::to_string(cpu) + " s CPU (bound " + std::to_string(kCpuBoundSeconds) + " s), " +
                   std::to_string(v.stats.processed) + " processed insns, " +
                   std::to_string(v.stats.total_states) + " states: " + v.message);
  if (!v.accepted) {
    if (v.err <= 0) fuzz::fail("verifier", "rejection without an errno", v.log);
    if (v.message.empty()) fuzz::fail("verifier", "rejection without a message", v.log);
    return 0;
  }
  auto dec = isa::decode(raw, {.max_version = 4, .kernel_only = true});
  if (!dec) fuzz::fail("verifier", "accepted a program that does not decode", dec.error().to_string());
  if (!isa::check_program(*dec, true))
    fuzz::fail("verifier", "accepted a program that fails isa::check_program", fuzz::listing(*dec));
  if (v.stats.processed > cfg.insn_limit + 1)
    fuzz::fail("verifier", "processed more instructions than the limit", fuzz::listing(*dec));
  if (v.stats.peak_state_bytes > cfg.memory_limit)
    fuzz::fail("verifier", "stored more state bytes than the memory limit", fuzz::listing(*dec));
  return 0;
}
