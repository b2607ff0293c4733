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
#include <fstream>
#include <sstream>
#include <string>

#include "asm/asm.hpp"
#include "fuzz/common/kdiff.hpp"
#include "spec/spec.hpp"

using namespace userbpf;

namespace {

namespace fs = std::filesystem;

constexpr double kMinAgreement = 0.90;

std::size_t env_num(const char* name, std::size_t def) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 0) : def;
}

TEST(KernelVerifierDiff, AgreementRate) {
  const std::size_t n = env_num("USERBPF_KDIFF_N", 150);
  const std::uint64_t seed = env_num("USERBPF_KDIFF_SEED", 1);
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

struct Case {
  std::string file, name, type, code;
  std::vector<verifier::MapDesc> maps;
  bool accept = false;
  bool open = false;
};

Case parse(const fs::path& p) {
  Case c;
  c.file = p.filename().string();
  std::ifstream f(p);
  std::string line;
  bool in_code = false;
  while (std::getline(f, line)) {
    if (in_code) {
      c.code += line + "\n";
      continue;
    }
    if (line.find("status: open") != std::string::npos) c.open = true;
    if (line.rfind("=== ", 0) == 0) c.name = line.substr(4);
    else if (line.rfind("type: ", 0) == 0) c.type = line.substr(6);
    else if (line.rfind("expect: ", 0) == 0) c.accept = line.substr(8) == "accept";
    else if (line.rfind("map: ", 0) == 0) {
      std::istringstream ss(line.substr(5));
      std::string type, kv;
      ss >> type;
      verifier::MapDesc md;
      const spec::MapType* mt = spec::map_type_by_name(type);
      md.type = mt != nullptr ? mt->id : 0;
      while (ss >> kv) {
        const auto eq = kv.find('=');
        const auto key = kv.substr(0, eq);
        const auto val = static_cast<std::uint32_t>(std::stoul(kv.substr(eq + 1)));
        if (key == "key") md.key_size = val;
        if (key == "value") md.value_size = val;
        if (key == "entries") md.max_entries = val;
      }
      c.maps.push_back(md);
    } else if (line == "---") in_code = true;
  }
  return c;
}

TEST(KernelVerifierDiff, Regressions) {
  const fs::path dir = fs::path(USERBPF_SOURCE_DIR) / "fuzz" / "regressions" / "kdiff";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) GTEST_SKIP() << "no stored disagreements";
  std::size_t n = 0, known = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".txt") continue;
    const Case c = parse(e.path());
    SCOPED_TRACE(c.file);
    ++n;
    auto prog = assembly::assemble(c.code, assembly::Dialect::Kernel);
    ASSERT_TRUE(prog.ok()) << prog.error().to_string();
    const spec::ProgType* pt = spec::prog_type_by_name(c.type);
    ASSERT_NE(pt, nullptr) << c.type;
    fuzz::GenProgram gp;
    gp.insns = *prog;
    gp.prog_type = pt->id;
    gp.maps = c.maps;
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
