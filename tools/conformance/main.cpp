// userbpf-conformance: a plugin for the bpf_conformance test runner
// (github.com/Alan-Jowett/bpf_conformance), speaking its protocol:
//
//   userbpf-conformance [MEMORY] [OPTIONS...]      program on stdin
//
//   MEMORY   present only when the test has input memory: the bytes as hex
//            pairs separated by blanks ("01  02  ff  "), normally one argv
//            element; we also accept it split over several elements (every
//            element before the first "--" option) and an empty element
//            (older runners always pass one).
//   stdin    the program as hex bytes, 8 per instruction slot, little-endian,
//            then a newline (we read to end of input; '#' comments allowed).
//   run      r1 = pointer to a writable copy of MEMORY, r2 = its length.
//   stdout   on success one line: r0 in lowercase hex without "0x" (the
//            runner parses it with stoull(..., 16)); exit code 0.
//            On error one line with the error, exit code 1 (2 for bad usage).
//
//   Options (an element may also hold several, e.g. "--jit --debug"):
//     --interpret   run in the interpreter (the default)
//     --jit         run in the JIT (an error until the JIT exists)
//     --elf         the stdin bytes are an ELF object (not supported yet: error)
//     --program HEX take the program from HEX instead of stdin (as uBPF's plugin)
//     --debug       print the decoded program and the run's details on stderr
//     --budget N    instruction budget (default 100000000, 0 = unlimited)
//     --help        this text
//
// Execution: conformance programs are raw instruction streams, so they load
// without the kernel's structural rules (interp LoadOptions{kernel_structure
// = false}); memory accesses are checked at run time (a bad access is an
// error, never a crash). Helpers are uBPF's test set (common/test_helpers.hpp);
// helper 5 is "unwind": it returns r1, and when r1 is 0 the program ends at
// once with r0 = 0 (bpf_conformance's callx.data and call_unwind_fail.data
// call it with r1 = -1 and expect execution to continue).
#include <fmt/format.h>

#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "abi/abi.hpp"
#include "asm/asm.hpp"
#include "base/hex.hpp"
#include "common/engine.hpp"
#include "common/test_helpers.hpp"
#include "common/tool_io.hpp"
#include "isa/isa.hpp"

namespace {

using namespace userbpf;
namespace tools = userbpf::tools;

constexpr std::uint64_t kDefaultBudget = 100'000'000;

constexpr std::string_view kUsage =
    "usage: userbpf-conformance [MEMORY] [--interpret|--jit] [--elf] [--debug] [--budget N] [--program HEX]\n"
    "  MEMORY: input memory as hex bytes ('01 02 ff'); program: hex bytes on stdin.\n"
    "  Prints r0 in hex on success (exit 0), or the error on stdout (exit 1).\n";

struct Options {
  std::string memory;  // hex text
  std::optional<std::string> program;
  tools::Engine engine = tools::Engine::Interpreter;
  bool elf = false;
  bool debug = false;
  bool help = false;
  std::uint64_t budget = kDefaultBudget;
};

// Protocol errors go to stdout (the runner reads it) and, for people, stderr.
int fail(std::string_view message, int code, bool debug) {
  std::cout << message << std::endl;
  if (debug) std::cerr << "userbpf-conformance: error: " << message << '\n';
  return code;
}

std::vector<std::string> split_blanks(std::string_view s) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
    std::size_t j = i;
    while (j < s.size() && !(s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r')) ++j;
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

bool starts_option(std::string_view arg) {
  const auto p = arg.find_first_not_of(" \t");
  return p != std::string_view::npos && arg.substr(p).starts_with("--");
}

// Returns an error message, or nullopt.
std::optional<std::string> parse_args(int argc, char** argv, Options& o) {
  // Leading non-option elements are memory; after the first option, every
  // element is split into option tokens.
  std::vector<std::string> tokens;
  bool in_options = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (!in_options && !starts_option(arg)) {
      o.memory += ' ';
      o.memory += arg;
      continue;
    }
    in_options = true;
    for (auto& t : split_blanks(arg)) tokens.push_back(std::move(t));
  }
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    if (t == "--interpret") {
      o.engine = tools::Engine::Interpreter;
    } else if (t == "--jit") {
      o.engine = tools::Engine::Jit;
    } else if (t == "--elf") {
      o.elf = true;
    } else if (t == "--debug") {
      o.debug = true;
    } else if (t == "--help" || t == "-h") {
      o.help = true;
    } else if (t == "--program" || t == "--budget") {
      if (i + 1 >= tokens.size()) return fmt::format("option {} needs a value", t);
      const std::string& v = tokens[++i];
      if (t == "--program") {
        // The value may itself have been split on blanks: take the rest up to the next option.
        std::string prog = v;
        while (i + 1 < tokens.size() && !tokens[i + 1].starts_with("--")) prog += " " + tokens[++i];
        o.program = prog;
      } else {
        try {
          std::size_t used = 0;
          o.budget = std::stoull(v, &used, 0);
          if (used != v.size()) return fmt::format("invalid --budget value '{}'", v);
        } catch (const std::exception&) {
          return fmt::format("invalid --budget value '{}'", v);
        }
      }
    } else {
      return fmt::format("unknown option '{}'", t);
    }
  }
  return std::nullopt;
}

std::string read_stdin() {
  std::string text;
  char buf[65536];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) text.append(buf, n);
  return text;
}

int run(int argc, char** argv) {
  Options o;
  if (auto err = parse_args(argc, argv, o)) {
    std::cerr << kUsage;
    return fail(*err, tools::kExitUsage, false);
  }
  if (o.help) {
    std::cout << kUsage;
    return tools::kExitOk;
  }

  auto memory = tools::parse_hex_text(o.memory);
  if (!memory.ok()) return fail("memory argument: " + memory.error().to_string(), tools::kExitUsage, o.debug);
  std::vector<std::uint8_t> mem = std::move(*memory);

  const std::string program_text = o.program ? *o.program : read_stdin();
  auto bytes = tools::parse_hex_text(program_text);
  if (!bytes.ok()) return fail("program: " + bytes.error().to_string(), tools::kExitError, o.debug);
  if (o.elf || tools::is_elf(*bytes)) return fail(tools::elf_not_supported().message, tools::kExitError, o.debug);
  if (bytes->empty()) return fail("program is empty", tools::kExitError, o.debug);

  auto insns = isa::decode_bytes(*bytes);
  if (!insns.ok()) return fail(insns.error().to_string(), tools::kExitError, o.debug);

  if (o.debug) {
    std::cerr << fmt::format("userbpf-conformance: engine {}, {} instruction slots, {} bytes of memory\n",
                             tools::engine_name(o.engine), insns->size(), mem.size());
    if (!mem.empty()) std::cerr << "memory: " << to_hex(mem) << '\n';
    assembly::DisasmOptions dis;
    dis.dialect = assembly::Dialect::Ubpf;
    std::cerr << assembly::disassemble(*insns, dis);
  }

  abi::HelperTable helpers;
  tools::register_test_helpers(helpers);
  abi::Env env;
  env.helpers = &helpers;
  env.options.checked = true;
  env.options.budget = o.budget;
  const std::uint64_t mem_addr = mem.empty() ? 0 : reinterpret_cast<std::uint64_t>(mem.data());
  if (!mem.empty()) {
    env.regions.push_back(abi::Region{mem_addr, mem.size(), true, abi::RegionKind::Memory});
    env.packet = mem.data();
    env.packet_len = mem.size();
  }
  const std::uint64_t args[] = {mem_addr, mem.size()};

  interp::LoadOptions load;
  load.kernel_structure = false;
  auto result = tools::load_and_run(o.engine, *insns, load, env, args);
  if (!result.ok()) return fail(result.error().to_string(), tools::kExitError, o.debug);
  const abi::RunResult& r = *result;
  if (!r.ok()) {
    const std::string msg = r.error ? r.error->to_string() : std::string(abi::fault_name(r.fault));
    return fail(msg, tools::kExitError, o.debug);
  }
  if (o.debug) std::cerr << fmt::format("r0 = 0x{:x} after {} instructions\n", r.r0, r.insns);
  std::cout << fmt::format("{:x}", r.r0) << std::endl;
  return tools::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cout << "internal error: " << e.what() << std::endl;
    return tools::kExitError;
  }
}
