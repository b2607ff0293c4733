#include "cli/registry.hpp"

#include "common/tool_io.hpp"

namespace userbpf::cli {

CLI::App& Registry::add(const std::string& name, const std::string& description, Action action) {
  return add(root_, name, description, std::move(action));
}

CLI::App& Registry::add(CLI::App& parent, const std::string& name, const std::string& description, Action action) {
  CLI::App* sub = parent.add_subcommand(name, description);
  commands_.emplace_back(sub, std::move(action));
  return *sub;
}

CLI::App& Registry::group(const std::string& name, const std::string& description) {
  CLI::App* sub = root_.add_subcommand(name, description);
  sub->require_subcommand(1);
  return *sub;
}

int Registry::dispatch() const {
  for (const auto& [app, action] : commands_)
    if (app->parsed()) return action();
  return tools::kExitUsage;
}

}  // namespace userbpf::cli
