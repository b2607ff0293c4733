// Option helpers shared by the command groups of `userbpf`.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "asm/asm.hpp"

namespace userbpf::cli {

// --dialect kernel|ubpf[|auto] stored into `out`; the error for a bad value
// lists the accepted names.
inline CLI::Option* add_dialect_option(CLI::App& cmd, assembly::Dialect& out, bool allow_auto,
                                       const std::string& description) {
  std::vector<std::string> names = {"kernel", "ubpf"};
  if (allow_auto) names.emplace_back("auto");
  auto* opt = cmd.add_option_function<std::string>(
      "--dialect",
      [&out](const std::string& v) {
        out = v == "kernel" ? assembly::Dialect::Kernel
              : v == "ubpf" ? assembly::Dialect::Ubpf
                            : assembly::Dialect::Auto;
      },
      description + (allow_auto ? " (default: auto)" : " (default: kernel)"));
  opt->check(CLI::IsMember(names, CLI::ignore_case));
  opt->option_text(allow_auto ? "kernel|ubpf|auto" : "kernel|ubpf");
  opt->default_str(allow_auto ? "auto" : "kernel");
  return opt;
}

}  // namespace userbpf::cli
