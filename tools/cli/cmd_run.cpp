// Command group "run": `userbpf run PROGRAM` executes a program once with
// r1 = pointer to the input memory and r2 = its length, and prints r0 and the
// number of instructions executed (text, or one JSON object with --json).
//
// There is no verifier yet, so programs run unverified; --no-verify is
// accepted already (it will be needed to skip the verifier once it exists).
// Because nothing has verified the program, memory accesses are checked at
// run time by default (--unchecked turns that off for trusted programs), and
// a default instruction budget stops runaway loops.
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "abi/abi.hpp"
#include "asm/asm.hpp"
#include "base/hex.hpp"
#include "cli/options.hpp"
#include "cli/registry.hpp"
#include "common/engine.hpp"
#include "common/test_helpers.hpp"
#include "common/tool_io.hpp"

namespace userbpf::cli {
namespace {

using assembly::Dialect;
using tools::ProgramFormat;

inline constexpr std::uint64_t kDefaultBudget = 100'000'000;

struct RunOptions {
  std::string program;
  bool as_asm = false, as_raw = false, as_hex = false;
  Dialect dialect = Dialect::Auto;
  std::string mem_hex;
  std::string mem_file;
  bool checked = false, unchecked = false;
  std::uint64_t budget = kDefaultBudget;
  bool no_verify = false;
  bool json = false;
  bool show_mem = false;
  bool test_helpers = false;
  bool jit = false, interpret = false;
};

nlohmann::json error_json(const Error& e, std::string_view stage, std::string_view source) {
  nlohmann::json j = {{"stage", stage}, {"message", e.message}, {"errno", e.code}, {"text", tools::format_error(e, source)}};
  if (e.insn) j["insn"] = *e.insn;
  if (e.line) j["line"] = *e.line;
  if (e.column) j["column"] = *e.column;
  if (e.offset) j["offset"] = *e.offset;
  return j;
}

// Input/load errors: text on stderr, or a JSON object on stdout with --json.
int fail(const RunOptions& o, const Error& e, std::string_view stage, std::string_view source) {
  if (o.json) {
    const nlohmann::json j = {{"ok", false}, {"error", error_json(e, stage, source)}};
    std::cout << j.dump(2) << '\n';
  }
  return tools::report_error(e, source);
}

Result<std::vector<std::uint8_t>> read_memory(const RunOptions& o) {
  if (!o.mem_hex.empty()) {
    return tools::parse_hex_text(o.mem_hex);
  }
  if (!o.mem_file.empty()) {
    auto data = tools::read_input(o.mem_file);
    if (!data.ok()) return data;
    if (tools::format_from_extension(o.mem_file) != ProgramFormat::Hex) return data;
    const std::string_view text(reinterpret_cast<const char*>(data->data()), data->size());
    return tools::parse_hex_text(text);
  }
  return std::vector<std::uint8_t>{};
}

int run_program(const RunOptions& o) {
  const std::string source = tools::display_name(o.program);
  auto data = tools::read_input(o.program);
  if (!data.ok()) return fail(o, data.error(), "input", "userbpf run");

  ProgramFormat format = o.as_asm ? ProgramFormat::Asm
                         : o.as_raw ? ProgramFormat::Raw
                         : o.as_hex ? ProgramFormat::Hex
                                    : ProgramFormat::Auto;
  if (format == ProgramFormat::Auto && o.program != "-") format = tools::format_from_extension(o.program);
  auto insns = tools::load_program(*data, format, o.dialect);
  if (!insns.ok()) return fail(o, insns.error(), "load", source);

  auto memory = read_memory(o);
  if (!memory.ok()) return fail(o, memory.error(), "input", o.mem_file.empty() ? "--mem" : o.mem_file);
  std::vector<std::uint8_t>& mem = *memory;

  abi::HelperTable helpers;
  if (o.test_helpers) tools::register_test_helpers(helpers);

  abi::Env env;
  env.helpers = &helpers;
  env.options.checked = !o.unchecked;
  env.options.budget = o.budget;
  const std::uint64_t mem_addr = mem.empty() ? 0 : reinterpret_cast<std::uint64_t>(mem.data());
  if (!mem.empty()) {
    env.regions.push_back(abi::Region{mem_addr, mem.size(), true, abi::RegionKind::Memory});
    env.packet = mem.data();  // legacy LD_ABS / LD_IND read the same bytes
    env.packet_len = mem.size();
  }
  const std::uint64_t args[] = {mem_addr, mem.size()};

  interp::LoadOptions load;
  load.kernel_structure = true;
  const tools::Engine engine = o.jit ? tools::Engine::Jit : tools::Engine::Interpreter;
  auto result = tools::load_and_run(engine, *insns, load, env, args);
  if (!result.ok()) return fail(o, result.error(), "load", source);
  const abi::RunResult& r = *result;

  const auto signed_r0 = static_cast<std::int64_t>(r.r0);
  if (o.json) {
    nlohmann::json j = {
        {"ok", r.ok()},        {"r0", r.r0}, {"r0_hex", fmt::format("0x{:x}", r.r0)}, {"r0_signed", signed_r0},
        {"insns", r.insns},    {"engine", tools::engine_name(engine)},
        {"checked", env.options.checked}, {"memory_size", mem.size()}};
    if (o.show_mem) j["memory"] = to_hex(mem);
    if (!r.ok()) {
      nlohmann::json err = r.error ? error_json(*r.error, "run", source) : nlohmann::json::object();
      err["fault"] = abi::fault_name(r.fault);
      j["error"] = err;
    }
    std::cout << j.dump(2) << '\n';
  } else if (r.ok()) {
    if (signed_r0 < 0)
      std::cout << fmt::format("r0 = 0x{:x} ({}, signed {})\n", r.r0, r.r0, signed_r0);
    else
      std::cout << fmt::format("r0 = 0x{:x} ({})\n", r.r0, r.r0);
    std::cout << fmt::format("instructions executed: {}\n", r.insns);
    if (o.show_mem) std::cout << "memory: " << to_hex(mem) << '\n';
  }
  if (!r.ok()) {
    Error e = r.error ? *r.error : make_error(EINVAL, std::string(abi::fault_name(r.fault)));
    std::cerr << tools::format_error(e, source) << fmt::format(" ({}; the run stopped after {} instructions)", abi::fault_name(r.fault), r.insns)
              << '\n';
    return tools::kExitError;
  }
  return tools::kExitOk;
}

}  // namespace

void register_run_commands(Registry& r) {
  auto o = std::make_shared<RunOptions>();
  CLI::App& cmd = r.add("run", "Run an eBPF program once (r1 = memory, r2 = its length) and print r0",
                        [o] { return run_program(*o); });
  cmd.add_option("PROGRAM", o->program, "Program file: assembly, raw bytecode or hex ('-' for standard input)")
      ->required();
  auto* f_asm = cmd.add_flag("--asm", o->as_asm, "PROGRAM is assembly text (default for .s/.asm)");
  auto* f_raw = cmd.add_flag("--raw", o->as_raw, "PROGRAM is raw bytecode (default for .bin/.o/.raw)");
  auto* f_hex = cmd.add_flag("--hex", o->as_hex, "PROGRAM is hex text of bytecode (default for .hex)");
  f_asm->excludes(f_raw)->excludes(f_hex);
  f_raw->excludes(f_hex);
  add_dialect_option(cmd, o->dialect, true, "Assembly syntax of PROGRAM");
  auto* mem = cmd.add_option("--mem", o->mem_hex, "Input memory as hex bytes, e.g. '01 02 ff'")->option_text("HEX");
  auto* mem_file = cmd.add_option("--mem-file", o->mem_file, "Input memory from a file (hex text if it ends in .hex)")
                       ->option_text("FILE");
  mem->excludes(mem_file);
  auto* checked = cmd.add_flag("--checked", o->checked,
                               "Check every memory access against the input memory and stack (the default)");
  auto* unchecked =
      cmd.add_flag("--unchecked", o->unchecked, "Do not check memory accesses (only for trusted programs)");
  checked->excludes(unchecked);
  cmd.add_option("--budget", o->budget, fmt::format("Stop with an error after N instructions (default: {}; 0 = unlimited)", kDefaultBudget))
      ->option_text("N")
      ->default_str(std::to_string(kDefaultBudget));
  cmd.add_flag("--no-verify", o->no_verify,
               "Run without verifying (accepted now; there is no verifier yet, so every run is unverified)");
  auto* f_jit = cmd.add_flag("--jit", o->jit, "Run in the x86-64 JIT (same results as the interpreter)");
  cmd.add_flag("--interpret", o->interpret, "Run in the interpreter (the default)")->excludes(f_jit);
  cmd.add_flag("--json", o->json, "Print the result as one JSON object");
  cmd.add_flag("--show-mem", o->show_mem, "Also print the input memory after the run (hex)");
  cmd.add_flag("--test-helpers", o->test_helpers,
               "Register the uBPF/bpf_conformance test helpers (ids 0-5; not kernel helpers)");
  cmd.footer(
      "Output: 'r0 = 0x37 (55)' and 'instructions executed: N'; exit code 0 when the program ran to its\n"
      "exit, 1 on any error (load error or run-time fault, printed with the instruction index).\n"
      "Examples:\n"
      "  userbpf run examples/fib.s --mem 0a\n"
      "  userbpf run /tmp/checksum.bin --mem-file examples/ipv4-header.hex --json");
}

}  // namespace userbpf::cli
