// userbpf: the command-line front end. Parses the command line with CLI11,
// then runs the selected command's action (see registry.hpp).
// Exit codes: 0 success, 1 error (printed to stderr), 2 usage error.
#include <iostream>
#include <string>

#include "cli/registry.hpp"
#include "common/tool_io.hpp"

namespace {

using userbpf::cli::GroupFn;

// Every command group of the tool, in help order.
constexpr GroupFn kGroups[] = {
    userbpf::cli::register_asm_commands,
    userbpf::cli::register_run_commands,
    userbpf::cli::register_verify_commands,
    userbpf::cli::register_filter_commands,
    userbpf::cli::register_seccomp_commands,
    userbpf::cli::register_capture_commands,
    userbpf::cli::register_prog_commands,
    userbpf::cli::register_map_commands,
    userbpf::cli::register_btf_commands,
    userbpf::cli::register_feature_commands,
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"userbpf: the eBPF system in user space (assemble, disassemble and run eBPF programs)", "userbpf"};
  app.set_version_flag("--version", std::string("userbpf ") + USERBPF_VERSION);
  app.require_subcommand(1);
  app.fallthrough(false);
  app.footer(
      "Run 'userbpf COMMAND --help' for the options of a command; docs/cli.md has them all.\n"
      "Quick start:\n"
      "  userbpf asm examples/checksum.s -o /tmp/checksum.bin\n"
      "  userbpf run /tmp/checksum.bin --mem-file examples/ipv4-header.hex\n"
      "  userbpf disasm /tmp/checksum.bin");

  userbpf::cli::Registry registry(app);
  for (const GroupFn group : kGroups) group(registry);

  // An unknown command or option before any command: name it (CLI11 would
  // only say that a subcommand is required).
  if (argc > 1) {
    const std::string first = argv[1];
    const bool known_flag = first == "-h" || first == "--help" || first == "--version";
    bool known_command = false;
    for (const CLI::App* sub : app.get_subcommands({}))
      known_command = known_command || sub->check_name(first);
    if (!known_flag && !known_command) {
      std::cerr << "userbpf: error: unknown " << (first.starts_with('-') ? "option" : "command") << " '" << first
                << "'\n";
      std::cerr << "Run 'userbpf --help' for the list of commands.\n";
      return userbpf::tools::kExitUsage;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "userbpf: error: " << e.what() << "\n";
    std::cerr << "Run 'userbpf --help' (or 'userbpf COMMAND --help') for usage.\n";
    return userbpf::tools::kExitUsage;
  }
  try {
    return registry.dispatch();
  } catch (const std::exception& e) {  // bad_alloc and the like: still a clear message
    std::cerr << "userbpf: error: " << e.what() << "\n";
    return userbpf::tools::kExitError;
  }
}
