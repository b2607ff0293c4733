// userbpf's verifier against the kernel's on generated programs.
//
// AgreementRate: USERBPF_KDIFF_N programs (default 150) of seed
// USERBPF_KDIFF_SEED (default 1) through both verifiers; prints the rate and
// every disagreement (reproduce with `userbpf-fuzz-gen show SEED INDEX`);
// fails below kMinAgreement. Skipped when the kernel's BPF is unavailable.
//
// Regressions: fuzz/regressions/kdiff/*.txt are disagreements found earlier,
// stored as verifier cases whose expectation is the kernel's verdict. A case
// with "# status: open" that still disagrees is reported as a known failure
// (skipped); any other mismatch fails.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "fuzz/common/fuzz.hpp"
#include "fuzz/common/kdiff.hpp"

using namespace userbpf;

namespace {

namespace fs = std::filesystem;

constexpr double kMinAgreement = 0.90;

TEST(KernelVerifierDiff, AgreementRate) {
  const std::size_t n = fuzz::env_number("USERBPF_KDIFF_N", 150);
  const std::uint64_t seed = fuzz::env_number("USERBPF_KDIFF_SEED", 1);
  std::vector<fuzz::Disagreement> dis;
  const fuzz::DiffStats st = fuzz::run_kdiff(seed, n, &dis);
  if (!st.available) GTEST_SKIP() << "kernel verifier unavailable: " << st.reason;
  const double rate = static_cast<double>(st.agree) / static_cast<double>(st.programs);
  std::printf("kdiff seed %llu: %zu programs (%zu with a deliberate fault), agreement %.2f%% "
              "(both accept %zu, both reject %zu, same errno %zu); only userbpf accepts %zu, only the kernel %zu\n",
              static_cast<unsigned long long>(seed), st.programs, st.with_fault, 100.0 * rate, st.both_accept,
              st.both_reject, st.errno_agree, st.only_userbpf_accepts, st.only_kernel_accepts);
  for (const auto& d : dis)
    std::printf("  disagreement: userbpf-fuzz-gen show %llu %zu  (kernel %s, userbpf %s: %s)\n",
                static_cast<unsigned long long>(d.seed), d.index, d.kernel.accepted ? "accepts" : "rejects",
                d.ours.accepted ? "accepts" : "rejects", d.ours.message.c_str());
  EXPECT_GE(rate, kMinAgreement);
  EXPECT_GT(st.both_accept, st.programs / 5) << "the generator should produce accepted programs";
  EXPECT_GT(st.both_reject, st.programs / 20) << "the generator should produce rejected programs";
}

TEST(KernelVerifierDiff, Regressions) {
  const fs::path dir = fs::path(USERBPF_SOURCE_DIR) / "fuzz" / "regressions" / "kdiff";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) GTEST_SKIP() << "no stored disagreements";
  std::size_t n = 0, known = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".txt") continue;
    auto rc = fuzz::read_case(e.path().string());
    ASSERT_TRUE(rc.ok()) << rc.error().to_string();
    const fuzz::StoredCase& c = *rc;
    const fuzz::GenProgram& gp = c.prog;
    SCOPED_TRACE(c.file);
    ++n;
    const auto ours = verifier::verify(gp.insns, fuzz::verifier_config(gp, 1));
    const auto kv = fuzz::kernel_verify(gp);
    if (kv.available) {
      EXPECT_EQ(kv.accepted, c.accept) << "the kernel's verdict changed; kernel log:\n" << kv.log;
    }
    if (ours.accepted != c.accept) {
      if (c.open) {
        ++known;
        std::printf("known disagreement (status: open): %s: userbpf %s (%s)\n", c.file.c_str(),
                    ours.accepted ? "accepts" : "rejects", ours.message.c_str());
        continue;
      }
      ADD_FAILURE() << "userbpf " << (ours.accepted ? "accepts" : "rejects") << ", the kernel "
                    << (c.accept ? "accepts" : "rejects") << "\n" << ours.log;
    } else if (c.open) {
      std::printf("%s agrees now: change its status to fixed\n", c.file.c_str());
    }
  }
  std::printf("%zu stored disagreements, %zu still open\n", n, known);
}

}  // namespace
