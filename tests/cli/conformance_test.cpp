// Tests of the bpf_conformance plugin protocol spoken by userbpf-conformance:
// memory in argv[1] as hex pairs, the program as hex on stdin, r0 printed in
// hex on stdout (parsed by the runner with stoull(.., 16)), errors on stdout
// with a non-zero exit code. Programs are built with the isa encoder, so the
// tests do not depend on the assembler.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "common/engine.hpp"
#include "isa/isa.hpp"
#include "process.hpp"

using namespace userbpf;
using namespace userbpf::test;
using isa::Op;

namespace {

// The runner's encoding: every byte as two hex digits followed by two spaces.
std::string runner_hex(const std::vector<std::uint8_t>& bytes) {
  std::string out;
  for (auto b : bytes) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%02x  ", b);
    out += buf;
  }
  return out;
}

std::string program_hex(const std::vector<isa::Insn>& insns) { return runner_hex(isa::encode_bytes(insns)) + "\n"; }

ProcessResult plugin(const std::vector<std::string>& args, const std::vector<isa::Insn>& prog) {
  std::vector<std::string> argv{conformance_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, program_hex(prog));
}

// What the runner does with stdout: concatenate lines, parse base 16.
std::uint64_t runner_parse(const ProcessResult& r) {
  std::string joined;
  for (char c : r.out)
    if (c != '\n') joined += c;
  return std::stoull(joined, nullptr, 16);
}

const std::vector<isa::Insn> kReturn42 = {isa::make(Op::MovImm, 0, 0, 0, 42), isa::make(Op::Exit)};

TEST(Conformance, NoMemory) {
  auto r = plugin({}, kReturn42);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "2a\n");
  EXPECT_EQ(runner_parse(r), 42u);
}

TEST(Conformance, FullWidthLowercaseHex) {
  const std::uint64_t v = 0xdeadbeefcafebabeULL;
  auto r = plugin({}, {isa::make(Op::Lddw, 0, 0, 0, static_cast<std::int32_t>(v & 0xffffffff),
                                 static_cast<std::int32_t>(v >> 32)),
                       isa::make(Op::Exit)});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "deadbeefcafebabe\n");
  EXPECT_EQ(runner_parse(r), v);
}

TEST(Conformance, MemoryInFirstArgument) {
  // r0 = *(u32 *)(r1 + 0) + r2
  const std::vector<isa::Insn> prog = {isa::make(Op::LdxW, 0, 1, 0, 0), isa::make(Op::AddReg, 0, 2),
                                       isa::make(Op::Exit)};
  auto r = plugin({runner_hex({0x01, 0x02, 0x03, 0x04, 0xaa})}, prog);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(runner_parse(r), 0x04030201u + 5u);

  // split over several argv elements, and followed by an option
  auto s = plugin({"01", "02", "03 04", "aa", "--interpret"}, prog);
  ASSERT_EQ(s.exit_code, 0) << s.out << s.err;
  EXPECT_EQ(runner_parse(s), 0x04030201u + 5u);
}

TEST(Conformance, MemoryIsWritable) {
  // *(u32 *)(r1 + 4) = 0x11223344; r0 = *(u64 *)(r1 + 0)
  const std::vector<isa::Insn> prog = {isa::make(Op::StW, 1, 0, 4, 0x11223344), isa::make(Op::LdxDW, 0, 1, 0, 0),
                                       isa::make(Op::Exit)};
  auto r = plugin({runner_hex({1, 2, 3, 4, 5, 6, 7, 8})}, prog);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(runner_parse(r), 0x1122334404030201ULL);
}

TEST(Conformance, OldRunnerEmptyArguments) {
  // older runners always pass memory and options, possibly as empty strings
  auto r = plugin({"", ""}, kReturn42);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(runner_parse(r), 42u);
  auto m = plugin({"", "--interpret --debug"}, kReturn42);
  ASSERT_EQ(m.exit_code, 0) << m.out << m.err;
  EXPECT_EQ(m.out, "2a\n");
  EXPECT_FALSE(m.err.empty());  // --debug talks on stderr only
}

TEST(Conformance, UnwindHelperContinuesOnNonZero) {
  // callx.data / call_unwind_fail.data: r1 = -1; call 5; r0 = 2
  auto r = plugin({}, {isa::make(Op::MovImm, 1, 0, 0, -1), isa::make(Op::Call, 0, 0, 0, 5),
                       isa::make(Op::MovImm, 0, 0, 0, 2), isa::make(Op::Exit)});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(runner_parse(r), 2u);
  // through callx with the helper id in a register
  auto x = plugin({}, {isa::make(Op::MovImm, 1, 0, 0, -1), isa::make(Op::MovImm, 2, 0, 0, 5),
                       isa::make(Op::Callx, 2), isa::make(Op::MovImm, 0, 0, 0, 2), isa::make(Op::Exit)});
  ASSERT_EQ(x.exit_code, 0) << x.out << x.err;
  EXPECT_EQ(runner_parse(x), 2u);
}

TEST(Conformance, UnwindHelperStopsOnZero) {
  auto r = plugin({}, {isa::make(Op::MovImm, 0, 0, 0, 7), isa::make(Op::MovImm, 1, 0, 0, 0),
                       isa::make(Op::Call, 0, 0, 0, 5), isa::make(Op::MovImm, 0, 0, 0, 2), isa::make(Op::Exit)});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(runner_parse(r), 0u);
  // from inside a local function, too
  auto f = plugin({}, {isa::make(Op::MovImm, 0, 0, 0, 7), isa::make(Op::CallLocal, 0, 0, 0, 2),
                       isa::make(Op::MovImm, 0, 0, 0, 3), isa::make(Op::Exit),
                       // func: r1 = 0; call unwind; r0 = 9; exit
                       isa::make(Op::MovImm, 1, 0, 0, 0), isa::make(Op::Call, 0, 0, 0, 5),
                       isa::make(Op::MovImm, 0, 0, 0, 9), isa::make(Op::Exit)});
  ASSERT_EQ(f.exit_code, 0) << f.out << f.err;
  EXPECT_EQ(runner_parse(f), 0u);
}

TEST(Conformance, RawProgramsSkipKernelStructureRules) {
  // the last instruction is not an exit: the kernel would refuse, raw streams are fine
  auto r = plugin({}, {isa::make(Op::MovImm, 0, 0, 0, 3), isa::make(Op::Exit), isa::make(Op::MovImm, 0, 0, 0, 4)});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(runner_parse(r), 3u);
}

TEST(Conformance, ErrorsGoToStdoutWithNonZeroExit) {
  auto helper = plugin({}, {isa::make(Op::Call, 0, 0, 0, 99), isa::make(Op::Exit)});
  EXPECT_NE(helper.exit_code, 0);
  EXPECT_NE(helper.out.find("99"), std::string::npos) << helper.out;
  EXPECT_EQ(std::count(helper.out.begin(), helper.out.end(), '\n'), 1) << helper.out;

  auto oob = plugin({runner_hex({1, 2})}, {isa::make(Op::LdxDW, 0, 1, 0, 0), isa::make(Op::Exit)});
  EXPECT_NE(oob.exit_code, 0);
  EXPECT_EQ(oob.signal, 0);
  EXPECT_FALSE(oob.out.empty());

  std::vector<std::string> argv{conformance_bin()};
  auto badhex = run_process(argv, program_hex(kReturn42).substr(0, 12) + "zz\n");
  EXPECT_EQ(badhex.exit_code, 1);
  EXPECT_FALSE(badhex.out.empty());

  auto empty = run_process(argv, "\n");
  EXPECT_EQ(empty.exit_code, 1);
  EXPECT_NE(empty.out.find("empty"), std::string::npos) << empty.out;

  std::vector<std::uint8_t> bad = isa::encode_bytes(kReturn42);
  for (unsigned b = 255; b > 0; --b)
    if (isa::kOpcodeIndex[b].count == 0) {
      bad[0] = static_cast<std::uint8_t>(b);  // an opcode byte no row uses
      break;
    }
  auto badop = run_process(argv, runner_hex(bad) + "\n");
  EXPECT_EQ(badop.exit_code, 1);
  EXPECT_NE(badop.out.find("insn 0"), std::string::npos) << badop.out;
}

TEST(Conformance, Options) {
  auto unknown = plugin({"--frobnicate"}, kReturn42);
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.out.find("--frobnicate"), std::string::npos) << unknown.out;

  auto elf = plugin({"--elf"}, kReturn42);
  EXPECT_EQ(elf.exit_code, 1);
  EXPECT_NE(elf.out.find("ELF"), std::string::npos) << elf.out;

  auto jit = plugin({"--jit"}, kReturn42);
  if (tools::engine_available(tools::Engine::Jit)) {
    ASSERT_EQ(jit.exit_code, 0) << jit.out;
    EXPECT_EQ(runner_parse(jit), 42u);
  } else {
    EXPECT_NE(jit.exit_code, 0);
    EXPECT_NE(jit.out.find("JIT not implemented yet"), std::string::npos) << jit.out;
  }

  // uBPF's plugin accepts the program in --program instead of stdin
  std::vector<std::string> argv{conformance_bin(), "--program", program_hex(kReturn42)};
  auto prog = run_process(argv, "");
  ASSERT_EQ(prog.exit_code, 0) << prog.out;
  EXPECT_EQ(runner_parse(prog), 42u);

  auto budget = plugin({"--budget", "100"}, {isa::make(Op::Ja, 0, 0, -1, 0), isa::make(Op::Exit)});
  EXPECT_EQ(budget.exit_code, 1);
  EXPECT_NE(budget.out.find("budget"), std::string::npos) << budget.out;
}

}  // namespace
