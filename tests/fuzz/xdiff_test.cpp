// Execution of generated programs in the kernel and in userbpf (fuzz/common/xdiff.hpp).
//
// AgreementRate: USERBPF_XDIFF_N programs (default 500: socket filters and
// XDP alternately) of seed USERBPF_XDIFF_SEED (default 1); those both
// verifiers accept run through the kernel's BPF_PROG_TEST_RUN and userbpf's
// runtime (JIT, interpreter, unverified checked interpreter) on one packet
// with identically seeded maps; retval, packet out and maps must agree.
// Prints every difference (reproduce with `userbpf-fuzz-gen xshow SEED
// INDEX`); fails below kMinAgreement. Skipped without the kernel's BPF.
//
// Regressions: fuzz/regressions/xdiff/*.txt, programs whose execution
// differed, run again on both sides; "# status: open" marks a known
// difference (reported, not failed, while it persists).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "fuzz/common/fuzz.hpp"
#include "fuzz/common/xdiff.hpp"
#include "oracle/oracle.hpp"

using namespace userbpf;

namespace {

namespace fs = std::filesystem;

// Every generated program both verifiers accept must run alike (the one
// difference found, fuzz/regressions/xdiff/xdp_ingress_ifindex.txt, is fixed).
constexpr double kMinAgreement = 1.0;

TEST(ExecutionDiff, AgreementRate) {
  const std::size_t n = fuzz::env_number("USERBPF_XDIFF_N", 500);
  const std::uint64_t seed = fuzz::env_number("USERBPF_XDIFF_SEED", 1);
  std::vector<fuzz::ExecDisagreement> dis;
  const fuzz::ExecDiffStats st = fuzz::run_xdiff(seed, n, &dis);
  if (!st.available) GTEST_SKIP() << "kernel BPF unavailable: " << st.reason;
  ASSERT_EQ(st.programs, n);
  const double rate =
      st.both_loaded == 0 ? 0.0 : static_cast<double>(st.agree) / static_cast<double>(st.both_loaded);
  std::printf("xdiff seed %llu: %zu programs, %zu run on both (socket_filter %zu, xdp %zu), %zu rejected by both, "
              "verdicts differ %zu; execution agrees %zu (%.2f%%)\n",
              static_cast<unsigned long long>(seed), st.programs, st.both_loaded, st.socket_filter, st.xdp,
              st.neither_loaded, st.verdict_differs, st.agree, 100.0 * rate);
  for (const auto& d : dis)
    std::printf("  difference: userbpf-fuzz-gen xshow %llu %zu\n%s", static_cast<unsigned long long>(d.seed), d.index,
                d.what.c_str());
  EXPECT_GE(rate, kMinAgreement);
  EXPECT_GT(st.both_loaded, n * 8 / 10) << "the generator should produce programs both verifiers accept";
  EXPECT_GT(st.xdp, 0u);
  EXPECT_GT(st.socket_filter, 0u);
}

// The comparison itself can fail: a runtime whose program returns something
// else must be reported.
TEST(ExecutionDiff, CompareReportsEveryDifference) {
  fuzz::Observation a, b;
  a.loaded = b.loaded = true;
  a.retval = 1;
  a.data_out = {1, 2, 3};
  b.data_out = {1, 2, 4};
  a.maps = {{{{0, 0, 0, 0}, {1}}}};
  b.maps = {{{{0, 0, 0, 0}, {2}}}};
  const std::string d = fuzz::compare(a, b);
  EXPECT_NE(d.find("retval: kernel 0x1, userbpf 0x0"), std::string::npos) << d;
  EXPECT_NE(d.find("packet out"), std::string::npos) << d;
  EXPECT_NE(d.find("map 0"), std::string::npos) << d;
  EXPECT_EQ(fuzz::compare(a, a), "");
}

TEST(ExecutionDiff, Regressions) {
  const fs::path dir = fs::path(USERBPF_SOURCE_DIR) / "fuzz" / "regressions" / "xdiff";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) GTEST_SKIP() << "no stored differences";
  if (!oracle::available().ok) GTEST_SKIP() << "kernel BPF unavailable: " << oracle::available().reason;
  const fuzz::OnCpu0 pin;
  auto kernel = fuzz::kernel_backend();
  std::unique_ptr<fuzz::Backend> sides[] = {fuzz::runtime_backend(true, true), fuzz::runtime_backend(false, true),
                                            fuzz::runtime_backend(false, false)};
  std::size_t n = 0, known = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".txt") continue;
    auto rc = fuzz::read_case(e.path().string());
    ASSERT_TRUE(rc.ok()) << rc.error().to_string();
    SCOPED_TRACE(rc->file);
    ++n;
    const fuzz::Observation k = fuzz::observe(*kernel, rc->prog, fuzz::xdiff_packet());
    ASSERT_TRUE(k.setup_error.empty()) << k.setup_error;
    ASSERT_TRUE(k.loaded) << "the kernel no longer accepts the program:\n" << k.log;
    std::string what;
    for (auto& s : sides) {
      const fuzz::Observation o = fuzz::observe(*s, rc->prog, fuzz::xdiff_packet());
      if (!o.loaded) what += std::string(s->name()) + ": PROG_LOAD refused:\n" + o.log;
      else if (auto d = fuzz::compare(k, o); !d.empty()) what += std::string(s->name()) + ":\n" + d;
    }
    if (what.empty()) {
      if (rc->open) std::printf("%s agrees now: change its status to fixed\n", rc->file.c_str());
      continue;
    }
    if (rc->open) {
      ++known;
      std::printf("known difference (status: open): %s\n%s", rc->file.c_str(), what.c_str());
      continue;
    }
    ADD_FAILURE() << what;
  }
  std::printf("%zu stored differences, %zu still open\n", n, known);
}

}  // namespace
