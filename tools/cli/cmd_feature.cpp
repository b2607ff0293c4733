// Command "feature": `userbpf feature [--json]` lists what userbpf supports,
// as `bpftool feature probe` does for the kernel: every program type and map
// type the kernel's uapi header knows (available or not), the helpers each
// available program type may call, and every kernel helper with whether
// userbpf implements it.
//
// Sources: program types are available when the spec table describes them
// (the verifier and the runtime accept exactly those); map types when the
// maps registry has a row for them; a helper is available when src/helpers
// implements it and the spec table has its prototype (the verifier needs
// it); for a program type, when that type may also call it (spec). Names
// are the kernel's (libbpf's name tables for program and map types, the
// uapi helper list for helpers).
//
// JSON (--json) keeps bpftool's keys: "program_types": {"have_xdp_prog_type":
// true, ...}, "map_types": {"have_hash_map_type": true, ...}, "helpers":
// {"xdp_available_helpers": ["bpf_map_lookup_elem", ...], ...}, plus
// "userbpf_helpers": [{"id", "name", "implemented", "prototype"}, ...].
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <linux/bpf.h>

#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/registry.hpp"
#include "common/tool_io.hpp"
#include "helpers/helpers.hpp"
#include "maps/registry.hpp"
#include "spec/spec.hpp"

namespace userbpf::cli {
namespace {

struct FeatureOptions {
  bool json = false;
};

// libbpf knows the names of every type of the uapi it was built with (null past the last).
const char* prog_type_str(std::uint32_t id) { return libbpf_bpf_prog_type_str(static_cast<bpf_prog_type>(id)); }
const char* map_type_str(std::uint32_t id) { return libbpf_bpf_map_type_str(static_cast<bpf_map_type>(id)); }
std::string prog_type_name(std::uint32_t id) {
  const char* n = prog_type_str(id);
  return n != nullptr ? n : fmt::format("prog_type_{}", id);
}
std::string map_type_name(std::uint32_t id) {
  const char* n = map_type_str(id);
  return n != nullptr ? n : fmt::format("map_type_{}", id);
}

bool helper_available(std::uint32_t id) { return helpers::supported(id) && spec::helper(id) != nullptr; }

int feature(const FeatureOptions& o) {
  nlohmann::ordered_json j;
  std::string text;
  text += "Scanning eBPF program types...\n";
  for (std::uint32_t t = 1; prog_type_str(t) != nullptr; ++t) {
    const bool ok = spec::prog_type(t) != nullptr;
    j["program_types"][fmt::format("have_{}_prog_type", prog_type_name(t))] = ok;
    text += fmt::format("eBPF program_type {} is {}available\n", prog_type_name(t), ok ? "" : "NOT ");
  }
  text += "\nScanning eBPF map types...\n";
  for (std::uint32_t t = 1; map_type_str(t) != nullptr; ++t) {
    const bool ok = maps::find_map_type(t) != nullptr;
    j["map_types"][fmt::format("have_{}_map_type", map_type_name(t))] = ok;
    text += fmt::format("eBPF map_type {} is {}available\n", map_type_name(t), ok ? "" : "NOT ");
  }
  text += "\nScanning eBPF helper functions...\n";
  for (const spec::ProgType& pt : spec::prog_types()) {
    const std::string name = prog_type_name(pt.id);
    auto& list = j["helpers"][fmt::format("{}_available_helpers", name)];
    list = nlohmann::json::array();
    text += fmt::format("eBPF helpers supported for program type {}:\n", name);
    for (const std::uint32_t id : helpers::helper_ids()) {
      if (!helper_available(id) || !spec::prog_type_allows_helper(pt, id)) continue;
      list.push_back(fmt::format("bpf_{}", spec::helper_name(id)));
      text += fmt::format("\t- bpf_{}\n", spec::helper_name(id));
    }
  }
  text += "\nKernel helpers and userbpf:\n";
  std::size_t implemented = 0, known = 0;
  auto& all = j["userbpf_helpers"];
  all = nlohmann::json::array();
  for (std::uint32_t id = 1; id < spec::helper_id_limit(); ++id) {
    const std::string_view name = spec::helper_name(id);
    if (name.empty()) continue;
    ++known;
    const bool impl = helpers::supported(id);
    const bool proto = spec::helper(id) != nullptr;
    implemented += impl && proto ? 1 : 0;
    all.push_back({{"id", id}, {"name", fmt::format("bpf_{}", name)}, {"implemented", impl}, {"prototype", proto}});
    text += fmt::format("\t{:>3} bpf_{:<32} {}\n", id, name,
                        impl && proto ? "supported"
                        : impl        ? "implemented, no verifier prototype yet"
                                      : "NOT supported");
  }
  text += fmt::format("\n{} of {} kernel helpers supported\n", implemented, known);
  if (o.json)
    std::cout << j.dump() << "\n";
  else
    std::cout << text;
  return tools::kExitOk;
}

}  // namespace

void register_feature_commands(Registry& r) {
  auto o = std::make_shared<FeatureOptions>();
  CLI::App& c = r.add("feature", "List the program types, map types and helpers userbpf supports (like bpftool feature)",
                      [o] { return feature(*o); });
  c.add_flag("--json,-j", o->json, "JSON output (bpftool's keys)");
}

}  // namespace userbpf::cli
