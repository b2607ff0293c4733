// End-to-end tests of the `userbpf` command-line tool: each test runs the
// built binary with inputs and checks stdout, stderr and the exit code.
// Expected values come from independent C++ models (fib, checksum, sums),
// not from the tool itself.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "isa/isa.hpp"
#include "process.hpp"

using namespace userbpf;
using namespace userbpf::test;
using isa::Op;

namespace {

ProcessResult ubpf(const std::vector<std::string>& args, const std::string& input = {}) {
  std::vector<std::string> argv{userbpf_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, input);
}

std::string bytes_of(const std::vector<isa::Insn>& insns) {
  const auto b = isa::encode_bytes(insns);
  return {b.begin(), b.end()};
}

// "xx xx xx xx xx xx xx xx\n" per slot, as `userbpf asm --hex` writes.
std::string hex_of(const std::vector<isa::Insn>& insns) {
  const auto b = isa::encode_bytes(insns);
  std::string out;
  for (std::size_t i = 0; i < b.size(); ++i) {
    char buf[4];
    std::snprintf(buf, sizeof buf, "%02x", b[i]);
    out += buf;
    out += (i % 8 == 7) ? '\n' : ' ';
  }
  return out;
}

// An opcode byte that no row of the opcode table uses.
std::uint8_t unused_opcode() {
  for (unsigned b = 255; b > 0; --b)
    if (isa::kOpcodeIndex[b].count == 0) return static_cast<std::uint8_t>(b);
  return 0;
}

// ---- independent models of the bundled examples
std::uint64_t fib(unsigned n) {
  std::uint64_t a = 0, b = 1;
  for (unsigned i = 0; i < n; ++i) {
    const std::uint64_t c = a + b;
    a = b;
    b = c;
  }
  return a;
}

std::uint64_t internet_checksum(const std::vector<std::uint8_t>& d) {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i + 1 < d.size(); i += 2) sum += (static_cast<std::uint64_t>(d[i]) << 8) | d[i + 1];
  if (d.size() % 2 != 0) sum += static_cast<std::uint64_t>(d.back()) << 8;
  while ((sum >> 16) != 0) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

std::vector<std::uint8_t> hex_file_bytes(const std::string& path) {
  const std::string text = read_file_bytes(path);
  std::vector<std::uint8_t> out;
  bool comment = false;
  std::string digits;
  for (char c : text) {
    if (c == '\n') comment = false;
    if (c == '#') comment = true;
    if (comment || std::isxdigit(static_cast<unsigned char>(c)) == 0) continue;
    digits += c;
    if (digits.size() == 2) {
      out.push_back(static_cast<std::uint8_t>(std::stoul(digits, nullptr, 16)));
      digits.clear();
    }
  }
  return out;
}

std::string r0_line(std::uint64_t v) { return "r0 = 0x" + [&] {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(v));
  return std::string(buf);
}(); }

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = temp_dir(); }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::string dir_;
};

// ---------------------------------------------------------------- general
TEST_F(CliTest, VersionAndHelp) {
  auto v = ubpf({"--version"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.out.rfind("userbpf ", 0), 0u) << v.out;

  for (const char* cmd : {"asm", "disasm", "run"}) {
    auto h = ubpf({cmd, "--help"});
    EXPECT_EQ(h.exit_code, 0) << cmd;
    EXPECT_NE(h.out.find(cmd), std::string::npos) << h.out;
    EXPECT_NE(h.out.find("--dialect"), std::string::npos) << h.out;
  }
  auto top = ubpf({"--help"});
  EXPECT_EQ(top.exit_code, 0);
  for (const char* cmd : {"asm", "disasm", "run"}) EXPECT_NE(top.out.find(cmd), std::string::npos) << top.out;
}

TEST_F(CliTest, UsageErrorsExitWithTwo) {
  EXPECT_EQ(ubpf({}).exit_code, 2);
  EXPECT_EQ(ubpf({"frobnicate"}).exit_code, 2);
  auto r = ubpf({"asm", "--dialect", "klingon", "x.s"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_FALSE(r.err.empty());
  EXPECT_EQ(ubpf({"run"}).exit_code, 2);  // PROGRAM is required
  EXPECT_EQ(ubpf({"run", "x.s", "--mem", "00", "--mem-file", "m.bin"}).exit_code, 2);
  EXPECT_EQ(ubpf({"run", "x.s", "--asm", "--raw"}).exit_code, 2);
}

// ---------------------------------------------------------------- asm / disasm
TEST_F(CliTest, ExamplesRoundTripThroughAsmAndDisasm) {
  for (const char* ex : {"examples/checksum.s", "examples/fib.s", "examples/sum.ubpf.s"}) {
    SCOPED_TRACE(ex);
    const std::string bin = path("a.bin");
    auto a = ubpf({"asm", source_path(ex), "-o", bin});
    ASSERT_EQ(a.exit_code, 0) << a.err;
    const std::string bytes = read_file_bytes(bin);
    ASSERT_FALSE(bytes.empty());
    EXPECT_EQ(bytes.size() % 8, 0u);

    for (const char* dialect : {"kernel", "ubpf"}) {
      SCOPED_TRACE(dialect);
      auto d = ubpf({"disasm", "--no-index", "--dialect", dialect, bin});
      ASSERT_EQ(d.exit_code, 0) << d.err;
      ASSERT_FALSE(d.out.empty());
      write_file(path("re.s"), d.out);
      auto a2 = ubpf({"asm", "--dialect", dialect, path("re.s"), "-o", path("b.bin")});
      ASSERT_EQ(a2.exit_code, 0) << a2.err << "\n" << d.out;
      EXPECT_EQ(read_file_bytes(path("b.bin")), bytes) << d.out;
    }
  }
}

TEST_F(CliTest, AsmHexOutputMatchesBinary) {
  auto bin = ubpf({"asm", source_path("examples/fib.s"), "-o", path("f.bin")});
  ASSERT_EQ(bin.exit_code, 0) << bin.err;
  auto hex = ubpf({"asm", "--hex", source_path("examples/fib.s")});
  ASSERT_EQ(hex.exit_code, 0) << hex.err;
  const std::string bytes = read_file_bytes(path("f.bin"));
  // one 8-byte slot per line: "xx xx xx xx xx xx xx xx"
  std::size_t lines = 0;
  for (char c : hex.out) lines += c == '\n' ? 1 : 0;
  EXPECT_EQ(lines, bytes.size() / 8);
  write_file(path("f.hex"), hex.out);
  // disasm of the hex file and of the binary agree
  auto d1 = ubpf({"disasm", path("f.bin")});
  auto d2 = ubpf({"disasm", path("f.hex")});
  auto d3 = ubpf({"disasm", "--hex", "-"}, hex.out);
  ASSERT_EQ(d1.exit_code, 0) << d1.err;
  EXPECT_EQ(d1.out, d2.out);
  EXPECT_EQ(d1.out, d3.out);
}

TEST_F(CliTest, AsmFromStdinToStdout) {
  const std::string text = "r0 = 42\nexit\n";
  auto a = ubpf({"asm", "-"}, text);  // stdout is a file here: binary
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, bytes_of({isa::make(Op::MovImm, 0, 0, 0, 42), isa::make(Op::Exit)}));
}

TEST_F(CliTest, AsmToTerminalWritesHex) {
  // util-linux `script` gives the tool a terminal as stdout.
  if (::access("/usr/bin/script", X_OK) != 0) GTEST_SKIP() << "/usr/bin/script (util-linux) not available";
  auto r = run_process({"/usr/bin/script", "-qec", userbpf_bin() + " asm " + source_path("examples/fib.s"),
                        "/dev/null"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto hex = ubpf({"asm", "--hex", source_path("examples/fib.s")});
  std::string term = r.out;
  term.erase(std::remove(term.begin(), term.end(), '\r'), term.end());
  EXPECT_EQ(term, hex.out);
}

TEST_F(CliTest, LddwAndNegativeOffsetsRoundTrip) {
  const std::vector<isa::Insn> prog = {
      isa::make(Op::Lddw, 1, 0, 0, static_cast<std::int32_t>(0x89abcdef), 0x01234567),
      isa::make(Op::StxDW, 10, 1, -8), isa::make(Op::LdxW, 0, 10, -8), isa::make(Op::JeqImm, 0, 0, 1, -1),
      isa::make(Op::Ja, 0, 0, 0, 0), isa::make(Op::Exit)};
  write_file(path("p.bin"), bytes_of(prog));
  for (const char* dialect : {"kernel", "ubpf"}) {
    SCOPED_TRACE(dialect);
    auto d = ubpf({"disasm", "--no-index", "--dialect", dialect, path("p.bin")});
    ASSERT_EQ(d.exit_code, 0) << d.err;
    auto a = ubpf({"asm", "--dialect", dialect, "-"}, d.out);
    ASSERT_EQ(a.exit_code, 0) << a.err << d.out;
    EXPECT_EQ(a.out, bytes_of(prog)) << d.out;
  }
  auto r = ubpf({"run", "-", "--raw", "--json"}, bytes_of(prog));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out).at("r0").get<std::uint64_t>(), 0x89abcdefu);
}

TEST_F(CliTest, DisasmShowsBytesAndIndex) {
  write_file(path("p.bin"), bytes_of({isa::make(Op::MovImm, 0, 0, 0, 7), isa::make(Op::Exit)}));
  auto d = ubpf({"disasm", "--bytes", path("p.bin")});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_NE(d.out.find(hex_of({isa::make(Op::MovImm, 0, 0, 0, 7)}).substr(0, 11)), std::string::npos) << d.out;
  EXPECT_NE(d.out.find("0:"), std::string::npos) << d.out;
  EXPECT_NE(d.out.find("exit"), std::string::npos) << d.out;
  auto n = ubpf({"disasm", "--no-index", path("p.bin")});
  ASSERT_EQ(n.exit_code, 0);
  EXPECT_EQ(n.out.find("0:"), std::string::npos) << n.out;
}

TEST_F(CliTest, AsmErrorNamesFileLineAndColumn) {
  write_file(path("bad.s"), "r0 = 1\nr0 = frobnicate r1\nexit\n");
  auto r = ubpf({"asm", path("bad.s"), "-o", path("bad.bin")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(path("bad.s") + ":2:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("error"), std::string::npos) << r.err;
}

TEST_F(CliTest, MissingFileIsAnError) {
  auto r = ubpf({"asm", path("nope.s")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("nope.s"), std::string::npos) << r.err;
  auto d = ubpf({"disasm", path("nope.bin")});
  EXPECT_EQ(d.exit_code, 1);
  EXPECT_NE(d.err.find("nope.bin"), std::string::npos) << d.err;
}

TEST_F(CliTest, BadHexNamesLineAndColumn) {
  std::string text = hex_of({isa::make(Op::MovImm, 0, 0, 0, 42), isa::make(Op::Exit)});
  text[24 + 4] = 'g';  // line 2, column 5
  write_file(path("p.hex"), text);
  auto r = ubpf({"disasm", path("p.hex")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(path("p.hex") + ":2:5"), std::string::npos) << r.err;
  auto run = ubpf({"run", path("p.hex")});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.err.find(":2:5"), std::string::npos) << run.err;
}

TEST_F(CliTest, BadBytecodeNamesInstruction) {
  // slot 1 has an opcode that does not exist
  std::string bytes = bytes_of({isa::make(Op::MovImm, 0, 0, 0, 1), isa::make(Op::Exit)});
  ASSERT_NE(unused_opcode(), 0);
  bytes[8] = static_cast<char>(unused_opcode());
  write_file(path("p.bin"), bytes);
  auto r = ubpf({"disasm", path("p.bin")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("insn 1"), std::string::npos) << r.err;
  // a length that is not a multiple of 8
  write_file(path("q.bin"), bytes.substr(0, 12));
  auto q = ubpf({"disasm", path("q.bin")});
  EXPECT_EQ(q.exit_code, 1);
  EXPECT_NE(q.err.find("multiple of 8"), std::string::npos) << q.err;
}

TEST_F(CliTest, ElfInputIsRefusedClearly) {
  write_file(path("prog.o"), std::string("\x7f" "ELF\x02\x01\x01", 7) + std::string(57, '\0'));
  for (const char* cmd : {"disasm", "run"}) {
    auto r = ubpf({cmd, path("prog.o")});
    EXPECT_EQ(r.exit_code, 1) << cmd;
    EXPECT_NE(r.err.find("ELF"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("not supported yet"), std::string::npos) << r.err;
  }
}

// ---------------------------------------------------------------- run
TEST_F(CliTest, RunFibExample) {
  auto none = ubpf({"run", source_path("examples/fib.s")});
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_NE(none.out.find(r0_line(fib(10)) + " (" + std::to_string(fib(10)) + ")"), std::string::npos) << none.out;
  EXPECT_NE(none.out.find("instructions executed: "), std::string::npos) << none.out;

  for (unsigned n : {0u, 1u, 2u, 20u, 90u}) {
    char mem[8];
    std::snprintf(mem, sizeof mem, "%02x", n);
    auto r = ubpf({"run", source_path("examples/fib.s"), "--mem", mem});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find(r0_line(fib(n)) + " "), std::string::npos) << n << ": " << r.out;
  }
}

TEST_F(CliTest, RunChecksumExampleAsInTheQuickStart) {
  auto a = ubpf({"asm", source_path("examples/checksum.s"), "-o", path("checksum.bin")});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const std::string memfile = source_path("examples/ipv4-header.hex");
  auto r = ubpf({"run", path("checksum.bin"), "--mem-file", memfile});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto header = hex_file_bytes(memfile);
  ASSERT_EQ(header.size(), 20u);
  EXPECT_NE(r.out.find(r0_line(internet_checksum(header)) + " "), std::string::npos) << r.out;

  // odd lengths and a header with its checksum filled in (sum 0)
  for (const std::vector<std::uint8_t>& mem :
       {std::vector<std::uint8_t>{0x12}, std::vector<std::uint8_t>{0xff, 0xff, 0x01},
        std::vector<std::uint8_t>{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0,
                                  0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}}) {
    std::string hex;
    for (auto b : mem) {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%02x ", b);
      hex += buf;
    }
    auto m = ubpf({"run", path("checksum.bin"), "--mem", hex});
    ASSERT_EQ(m.exit_code, 0) << m.err;
    EXPECT_NE(m.out.find(r0_line(internet_checksum(mem)) + " "), std::string::npos) << hex << ": " << m.out;
  }
}

TEST_F(CliTest, RunUbpfDialectExample) {
  const std::vector<std::uint8_t> mem = {1, 2, 3, 250, 7};
  std::uint64_t sum = 0;
  for (auto b : mem) sum += b;
  auto r = ubpf({"run", source_path("examples/sum.ubpf.s"), "--mem", "01 02 03 fa 07", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("r0").get<std::uint64_t>(), sum);
}

TEST_F(CliTest, RunJsonShape) {
  write_file(path("p.bin"),
             bytes_of({isa::make(Op::MovImm, 0, 0, 0, -2), isa::make(Op::AddImm, 0, 0, 0, 1), isa::make(Op::Exit)}));
  auto r = ubpf({"run", path("p.bin"), "--json", "--mem", "01 02"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j.at("ok").get<bool>());
  EXPECT_EQ(j.at("r0").get<std::uint64_t>(), ~std::uint64_t{0});
  EXPECT_EQ(j.at("r0_hex").get<std::string>(), "0xffffffffffffffff");
  EXPECT_EQ(j.at("r0_signed").get<std::int64_t>(), -1);
  EXPECT_EQ(j.at("insns").get<std::uint64_t>(), 3u);
  EXPECT_EQ(j.at("engine").get<std::string>(), "interpreter");
  EXPECT_EQ(j.at("memory_size").get<std::uint64_t>(), 2u);
  EXPECT_FALSE(j.contains("error"));

  // text mode shows the signed value too
  auto t = ubpf({"run", path("p.bin")});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find("signed -1"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("instructions executed: 3"), std::string::npos) << t.out;
}

TEST_F(CliTest, RunSeesMemoryAndLength) {
  // r0 = r2 + *(u8 *)(r1 + 1); *(u8 *)(r1 + 0) = 0x55
  write_file(path("p.bin"), bytes_of({isa::make(Op::LdxB, 0, 1, 1, 0), isa::make(Op::AddReg, 0, 2),
                                      isa::make(Op::StB, 1, 0, 0, 0x55), isa::make(Op::Exit)}));
  auto r = ubpf({"run", path("p.bin"), "--mem", "00 30 00", "--show-mem", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("r0").get<std::uint64_t>(), 0x30u + 3u);
  EXPECT_EQ(j.at("memory").get<std::string>(), "55 30 00");
}

TEST_F(CliTest, RunFormatFlagsOverrideExtension) {
  const std::string prog = bytes_of({isa::make(Op::MovImm, 0, 0, 0, 9), isa::make(Op::Exit)});
  write_file(path("prog.txt"), "r0 = 9\nexit\n");
  write_file(path("prog.dat"), prog);
  write_file(path("prog2.txt"), hex_of({isa::make(Op::MovImm, 0, 0, 0, 9), isa::make(Op::Exit)}));
  for (const auto& args : std::vector<std::vector<std::string>>{{path("prog.txt"), "--asm"},
                                                                {path("prog.txt")},  // detected as text
                                                                {path("prog.dat"), "--raw"},
                                                                {path("prog.dat")},
                                                                {path("prog2.txt"), "--hex"},
                                                                {path("prog2.txt")}}) {
    std::vector<std::string> a{"run"};
    a.insert(a.end(), args.begin(), args.end());
    auto r = ubpf(a);
    EXPECT_EQ(r.exit_code, 0) << args[0] << ": " << r.err;
    EXPECT_NE(r.out.find("r0 = 0x9 (9)"), std::string::npos) << r.out;
  }
  // --no-verify is accepted (there is no verifier yet)
  EXPECT_EQ(ubpf({"run", "--no-verify", path("prog.dat")}).exit_code, 0);
}

TEST_F(CliTest, RunUnknownHelperNamesInstruction) {
  write_file(path("p.bin"),
             bytes_of({isa::make(Op::MovImm, 0, 0, 0, 0), isa::make(Op::Call, 0, 0, 0, 77), isa::make(Op::Exit)}));
  auto r = ubpf({"run", path("p.bin")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("insn 1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("77"), std::string::npos) << r.err;
  auto j = ubpf({"run", path("p.bin"), "--json"});
  EXPECT_EQ(j.exit_code, 1);
  const auto js = nlohmann::json::parse(j.out);
  EXPECT_FALSE(js.at("ok").get<bool>());
  EXPECT_EQ(js.at("error").at("insn").get<std::size_t>(), 1u);
}

TEST_F(CliTest, RunTestHelpersOnRequest) {
  // r1 = 3, r2 = 4 ... gather_bytes(1,2,3,4,5) = 0x0102030405
  std::vector<isa::Insn> p;
  for (std::uint8_t i = 1; i <= 5; ++i) p.push_back(isa::make(Op::MovImm, i, 0, 0, i));
  p.push_back(isa::make(Op::Call, 0, 0, 0, 0));
  p.push_back(isa::make(Op::Exit));
  write_file(path("p.bin"), bytes_of(p));
  EXPECT_EQ(ubpf({"run", path("p.bin")}).exit_code, 1);  // helper 0 unknown without the flag
  auto r = ubpf({"run", path("p.bin"), "--test-helpers", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out).at("r0").get<std::uint64_t>(), 0x0102030405u);
}

TEST_F(CliTest, RunOutOfBoundsAccessIsAnErrorNotACrash) {
  write_file(path("p.bin"), bytes_of({isa::make(Op::LdxW, 0, 1, 100, 0), isa::make(Op::Exit)}));
  auto r = ubpf({"run", path("p.bin"), "--mem", "01 02 03 04"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.signal, 0);
  EXPECT_NE(r.err.find("insn 0"), std::string::npos) << r.err;
}

TEST_F(CliTest, RunBudgetStopsEndlessLoop) {
  write_file(path("p.bin"), bytes_of({isa::make(Op::MovImm, 0, 0, 0, 0), isa::make(Op::Ja, 0, 0, -1, 0),
                                      isa::make(Op::Exit)}));
  auto r = ubpf({"run", path("p.bin"), "--budget", "1000"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("budget"), std::string::npos) << r.err;
}

TEST_F(CliTest, RunBadMemoryHex) {
  write_file(path("p.bin"), bytes_of({isa::make(Op::MovImm, 0, 0, 0, 0), isa::make(Op::Exit)}));
  auto r = ubpf({"run", path("p.bin"), "--mem", "01 zz"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--mem"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("1:4"), std::string::npos) << r.err;
}

TEST_F(CliTest, RunAsmErrorNamesLine) {
  write_file(path("bad.s"), "r0 = 1\n\n   goto nowhere\nexit\n");
  auto r = ubpf({"run", path("bad.s")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(path("bad.s") + ":3"), std::string::npos) << r.err;
}

}  // namespace
