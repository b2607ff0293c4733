// Runs every instruction-semantics case in tests/data/insn/*.data through
// every engine of engines.cpp (one GoogleTest per file and engine, named
// <Engine>_<file>), and checks that the cases together exercise every row of
// the opcode table. Format of the files: docs/testing.md.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <bitset>
#include <cctype>
#include <filesystem>

#include "asm/asm.hpp"
#include "base/hex.hpp"
#include "case_file.hpp"
#include "engines.hpp"
#include "isa/isa.hpp"

using namespace userbpf;
using namespace userbpf::datatest;

namespace {

const std::string& insn_dir() {
  static const std::string dir = std::string(USERBPF_SOURCE_DIR) + "/tests/data/insn";
  return dir;
}

struct Param {
  std::size_t engine;
  std::string path;
};

// gtest prints a failing parameter with this instead of its bytes.
void PrintTo(const Param& p, std::ostream* os) { *os << engines()[p.engine].name << " " << p.path; }

std::vector<Param> all_params() {
  std::vector<Param> out;
  const auto files = list_cases(insn_dir());
  for (std::size_t e = 0; e < engines().size(); ++e)
    for (const auto& f : files) out.push_back({e, f});
  return out;
}

std::string param_name(const testing::TestParamInfo<Param>& info) {
  std::string n = std::string(engines()[info.param.engine].name) + "_" +
                  std::filesystem::path(info.param.path).stem().string();
  for (char& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
}

// The file position of an assembler error: asm lines are counted from the
// section's first line.
std::string asm_error(const Case& c, const Error& e) {
  Error f = e;
  if (f.line) *f.line += c.asm_line - 1;
  f.where = c.path;
  return f.to_string();
}

std::string mem_text(const std::vector<std::uint8_t>& m) { return m.empty() ? "(empty)" : to_hex(m); }

class DataTest : public testing::TestWithParam<Param> {};

TEST_P(DataTest, Run) {
  const Engine& engine = engines()[GetParam().engine];
  auto loaded = load_case(GetParam().path);
  ASSERT_TRUE(loaded.ok()) << loaded.error().to_string();
  const Case& c = *loaded;
  SCOPED_TRACE(c.path);

  auto prog = assembly::assemble(c.asm_text, assembly::Dialect::Auto);
  if (!prog) {
    // An assembler error is a valid outcome only for '-- error' cases, checked once.
    ASSERT_TRUE(c.error.has_value()) << "assembly failed: " << asm_error(c, prog.error());
    if (engine.is_kernel) GTEST_SKIP() << "the case is an assembly error";
    EXPECT_NE(prog.error().to_string().find(*c.error), std::string::npos)
        << "assembly error '" << prog.error().to_string() << "' does not contain '" << *c.error << "'";
    return;
  }

  const Outcome o = engine.run(c, *prog);
  if (o.kind == Outcome::Kind::NotRun) GTEST_SKIP() << o.text;

  if (engine.is_kernel) {
    if (c.kernel_rejects) {
      EXPECT_EQ(o.kind, Outcome::Kind::Refused)
          << "the file says the kernel rejects this case (" << c.kernel_reason << ") but the kernel "
          << (o.kind == Outcome::Kind::Ran ? "ran it, r0 = 0x" + fmt::format("{:x}", o.r0) : "said: " + o.text);
      if (o.kind == Outcome::Kind::Refused && !c.kernel_log.empty()) {
        EXPECT_NE(o.text.find(c.kernel_log), std::string::npos)
            << "the verifier log lacks '" << c.kernel_log << "':\n" << o.text;
      }
      return;
    }
    ASSERT_NE(o.kind, Outcome::Kind::Refused)
        << "the kernel refused a case the file expects it to run; verifier says " << o.text;
    ASSERT_FALSE(c.error.has_value()) << "the case expects the error '" << *c.error
                                      << "' but has no '-- kernel' section saying what the kernel does";
  }

  if (c.result) {
    ASSERT_EQ(o.kind, Outcome::Kind::Ran) << engine.name << " failed: " << o.text;
    EXPECT_EQ(o.r0, *c.result) << engine.name << ": r0 = 0x" << std::hex << o.r0 << ", expected 0x" << *c.result;
  } else {
    ASSERT_EQ(o.kind, Outcome::Kind::Failed)
        << engine.name << " ran to r0 = 0x" << std::hex << o.r0 << " but an error '" << *c.error << "' was expected";
    EXPECT_NE(o.text.find(*c.error), std::string::npos)
        << engine.name << " error '" << o.text << "' does not contain '" << *c.error << "'";
  }
  if (o.kind != Outcome::Kind::Ran) return;
  if (c.mem_after) {
    EXPECT_EQ(mem_text(o.memory), mem_text(*c.mem_after)) << engine.name << ": memory after the run";
  }
  if (GetParam().engine != 0) {
    const Outcome ref = engines()[0].run(c, *prog);
    if (ref.kind == Outcome::Kind::Ran) {
      EXPECT_EQ(mem_text(o.memory), mem_text(ref.memory))
          << engine.name << " and " << engines()[0].name << " leave different memory";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Insn, DataTest, testing::ValuesIn(all_params()), param_name);

TEST(DataFiles, Exist) { EXPECT_GE(list_cases(insn_dir()).size(), 250u) << "in " << insn_dir(); }

// Every row of the opcode table is exercised by at least one case.
TEST(DataFiles, CoverEveryOpcodeRow) {
  std::bitset<isa::kOpCount> seen;
  for (const auto& f : list_cases(insn_dir())) {
    auto c = load_case(f);
    ASSERT_TRUE(c.ok()) << c.error().to_string();
    auto prog = assembly::assemble(c->asm_text, assembly::Dialect::Auto);
    if (!prog) continue;  // assembly-error cases
    for (const auto& in : *prog)
      if (in.op != isa::Op::LddwTail) seen.set(static_cast<std::size_t>(in.op));
  }
  std::string missing;
  for (const auto& row : isa::kOps)
    if (!seen.test(static_cast<std::size_t>(row.op))) missing += " " + std::string(row.name);
  EXPECT_TRUE(missing.empty()) << "opcode rows no data file exercises:" << missing;
}

}  // namespace
