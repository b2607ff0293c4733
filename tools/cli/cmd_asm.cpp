// Command group "asm": `userbpf asm` (text -> bytecode) and `userbpf disasm`
// (bytecode -> text). Both are thin shells over assembly::assemble /
// assembly::disassemble and the shared input handling in common/tool_io.
#include <iostream>
#include <memory>
#include <string>

#include "asm/asm.hpp"
#include "cli/options.hpp"
#include "cli/registry.hpp"
#include "common/tool_io.hpp"
#include "isa/isa.hpp"

namespace userbpf::cli {
namespace {

using assembly::Dialect;
using tools::ProgramFormat;

struct AsmOptions {
  std::string input;
  std::string output;
  Dialect dialect = Dialect::Auto;
  bool hex = false;
};

int run_asm(const AsmOptions& o) {
  const std::string source = tools::display_name(o.input);
  auto data = tools::read_input(o.input);
  if (!data.ok()) return tools::report_error(data.error(), "userbpf asm");
  auto insns = tools::load_program(*data, ProgramFormat::Asm, o.dialect);
  if (!insns.ok()) return tools::report_error(insns.error(), source);

  const std::vector<std::uint8_t> bytes = isa::encode_bytes(*insns);
  const bool to_stdout = o.output.empty() || o.output == "-";
  // Binary bytes on a terminal help nobody: print hex there unless -o is given.
  const bool hex = o.hex || (to_stdout && tools::stdout_is_terminal());
  Status st = Ok{};
  if (hex) {
    const std::string text = tools::bytes_to_hex_lines(bytes);
    st = tools::write_output(o.output, {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()});
  } else {
    st = tools::write_output(o.output, bytes);
  }
  if (!st.ok()) return tools::report_error(st.error(), "userbpf asm");
  return tools::kExitOk;
}

struct DisasmOptions {
  std::string input;
  Dialect dialect = Dialect::Kernel;
  bool bytes = false;
  bool no_index = false;
  bool hex = false;
  bool raw = false;
};

int run_disasm(const DisasmOptions& o) {
  const std::string source = tools::display_name(o.input);
  auto data = tools::read_input(o.input);
  if (!data.ok()) return tools::report_error(data.error(), "userbpf disasm");
  ProgramFormat format = o.hex ? ProgramFormat::Hex : o.raw ? ProgramFormat::Raw : ProgramFormat::Auto;
  if (format == ProgramFormat::Auto && o.input != "-") format = tools::format_from_extension(o.input);
  auto insns = tools::load_program(*data, format, Dialect::Auto);
  if (!insns.ok()) return tools::report_error(insns.error(), source);

  assembly::DisasmOptions opts;
  opts.dialect = o.dialect;
  opts.show_index = !o.no_index;
  opts.show_bytes = o.bytes;
  std::cout << assembly::disassemble(*insns, opts) << std::flush;
  return tools::kExitOk;
}

}  // namespace

void register_asm_commands(Registry& r) {
  {
    auto o = std::make_shared<AsmOptions>();
    CLI::App& cmd = r.add("asm", "Assemble eBPF assembly text into raw bytecode", [o] { return run_asm(*o); });
    cmd.add_option("FILE", o->input, "Assembly text file ('-' for standard input)")->required();
    cmd.add_option("-o,--output", o->output, "Write bytecode to OUT (default: standard output)")
        ->option_text("OUT");
    add_dialect_option(cmd, o->dialect, true,
                       "Syntax: kernel (llvm-objdump: r0 = 1), ubpf (mov %r0, 1) or auto (per line)");
    cmd.add_flag("--hex", o->hex,
                 "Write hex text (8 bytes per line) instead of binary; the default when standard output is a "
                 "terminal");
    cmd.footer(
        "Examples:\n"
        "  userbpf asm examples/checksum.s -o /tmp/checksum.bin\n"
        "  echo 'r0 = 42\n  exit' | userbpf asm --hex -");
  }
  {
    auto o = std::make_shared<DisasmOptions>();
    CLI::App& cmd =
        r.add("disasm", "Disassemble raw or hex eBPF bytecode into text", [o] { return run_disasm(*o); });
    cmd.add_option("FILE", o->input, "Bytecode file ('-' for standard input)")->required();
    add_dialect_option(cmd, o->dialect, false, "Output syntax: kernel (llvm-objdump style) or ubpf");
    cmd.add_flag("--bytes", o->bytes, "Show each instruction's raw bytes");
    cmd.add_flag("--no-index", o->no_index, "Do not prefix lines with the instruction index");
    auto* hex = cmd.add_flag("--hex", o->hex, "Input is hex text (default: detected from .hex or the content)");
    auto* raw = cmd.add_flag("--raw", o->raw, "Input is binary bytecode, even if it looks like text");
    hex->excludes(raw);
    cmd.footer(
        "Input: binary bytecode (8 bytes per slot, little-endian), hex text, or assembly text\n"
        "(which disasm re-prints, e.g. to convert between dialects). ELF objects are not supported yet.\n"
        "Examples:\n"
        "  userbpf disasm /tmp/checksum.bin\n"
        "  userbpf disasm --dialect ubpf --bytes prog.hex");
  }
}

}  // namespace userbpf::cli
