// The command registry of `userbpf`.
//
// Each command group lives in its own file (cmd_asm.cpp, cmd_run.cpp, ...)
// and exposes one function `void register_<group>(Registry&)` that adds its
// subcommands: a CLI11 subcommand with its options, plus the action to run
// when it is selected. main.cpp calls every group's function (kGroups) and,
// after parsing, runs the action of the selected command.
//
// Adding a command group: write cmd_<group>.cpp with register_<group>(),
// declare it below, add it to kGroups in main.cpp and to CMakeLists.txt.
// Nested commands (`userbpf map dump ...`) use group() for the container and
// add(parent, ...) for the leaves; only leaves have actions.
//
// Actions return the process exit code (tools::kExitOk / kExitError /
// kExitUsage) and print errors to stderr themselves.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace userbpf::cli {

using Action = std::function<int()>;

class Registry {
 public:
  explicit Registry(CLI::App& root) : root_(root) {}

  // A leaf command under the root (or under `parent`).
  CLI::App& add(const std::string& name, const std::string& description, Action action);
  CLI::App& add(CLI::App& parent, const std::string& name, const std::string& description, Action action);
  // A container of subcommands (`userbpf map ...`); it needs one of them.
  CLI::App& group(const std::string& name, const std::string& description);

  // Runs the action of the command that was parsed. Returns kExitUsage if none.
  [[nodiscard]] int dispatch() const;

 private:
  CLI::App& root_;
  std::vector<std::pair<CLI::App*, Action>> commands_;
};

using GroupFn = void (*)(Registry&);

// ---- the command groups
void register_asm_commands(Registry& r);  // asm, disasm
void register_run_commands(Registry& r);  // run
void register_verify_commands(Registry& r);  // verify (BPF objects through the verifier)
void register_filter_commands(Registry& r);   // filter (classic BPF over pcap)
void register_seccomp_commands(Registry& r);  // seccomp check, seccomp dump
void register_capture_commands(Registry& r);  // capture (live traffic through a filter or program)
void register_prog_commands(Registry& r);  // prog load/list/show/dump/run (objects)
void register_map_commands(Registry& r);   // map list/show/dump/lookup/update/delete
void register_btf_commands(Registry& r);   // btf dump
void register_feature_commands(Registry& r);  // feature (supported program/map types, helpers)

}  // namespace userbpf::cli
