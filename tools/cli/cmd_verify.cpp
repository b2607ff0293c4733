// Command group "verify": `userbpf verify OBJ` opens a clang-built BPF object
// with the loader (as libbpf's bpf_object__open would), builds the verifier's
// Config with verifier::config_for (map table: map index N -> type/key/value/
// entries, as the loader rewrites map lddw's to map_idx N; BTF signatures of
// the functions, so that global functions are verified on their own) and
// runs userbpf's verifier on every program (or the ones selected by
// --section / --program).
//
// Output per program: the verdict, the kernel-style log at --log-level, and
// for a rejection the source location of the failing instruction from the
// program's BTF line info (the nearest line-info record at or before the
// instruction), the source line's text and a hint for the common faults.
// With --json: one JSON object per program per line.
//
// Exit code: 0 when every verified program was accepted, 1 when any was
// rejected or the object could not be opened, 2 for usage errors (including
// a --section/--program that selects nothing).
#include <fmt/format.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/registry.hpp"
#include "common/tool_io.hpp"
#include "loader/loader.hpp"
#include "verifier/object_config.hpp"
#include "verifier/verifier.hpp"

namespace userbpf::cli {
namespace {

struct VerifyOptions {
  std::string object;
  std::string section;
  std::string program;
  std::string type;
  unsigned log_level = 1;
  bool unprivileged = false;
  bool json = false;
};

// The names of the errno values the verifier returns.
std::string errno_name(int e) {
  switch (e) {
    case 0: return "0";
    case EACCES: return "EACCES";
    case EINVAL: return "EINVAL";
    case E2BIG: return "E2BIG";
    case ENOSPC: return "ENOSPC";
    case EFAULT: return "EFAULT";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    default: return std::to_string(e);
  }
}

// --type: a program type name as the loader prints them ("xdp",
// "socket_filter", ...) or its number.
std::optional<std::uint32_t> parse_prog_type(std::string_view s) {
  std::uint32_t n = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec == std::errc() && p == s.data() + s.size()) return n;
  for (std::uint32_t t = 1; t < 64; ++t) {
    const std::string_view name = loader::prog_type_name(t);
    if (name == "unknown") break;
    if (name == s) return t;
  }
  return std::nullopt;
}

std::string known_type_names() {
  std::string out;
  for (std::uint32_t t = 1; t < 64; ++t) {
    const std::string_view name = loader::prog_type_name(t);
    if (name == "unknown") break;
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

// The line-info record of instruction `insn`: the last one at or before it.
const loader::LineInfo* line_for(const loader::Program& p, std::size_t insn) {
  const loader::LineInfo* best = nullptr;
  for (const auto& li : p.line_info) {
    if (li.insn <= insn && (best == nullptr || li.insn >= best->insn)) best = &li;
  }
  return best;
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
  return std::string(s);
}

bool contains(std::string_view hay, std::string_view needle) { return hay.find(needle) != std::string_view::npos; }

// The usual fix for the common faults, from the kernel-style message.
std::string hint_for(std::string_view msg) {
  if (contains(msg, "invalid access to packet") || contains(msg, "offset is outside of the packet"))
    return "the packet access is not proven in bounds: compare the pointer plus the access size with "
           "data_end first, e.g. `if ((void *)(hdr + 1) > data_end) return ...;`, on every path to this access";
  if (contains(msg, "map_value_or_null") || contains(msg, "_or_null"))
    return "the pointer may be NULL (bpf_map_lookup_elem and similar helpers return NULL when there is no "
           "element): check it, e.g. `if (!val) return ...;`, before dereferencing it or doing arithmetic on it";
  if (contains(msg, "!read_ok"))
    return "a register is read before anything was written to it on this path: initialise the variable on "
           "every path (a missing else branch or an uninitialised return value)";
  if (contains(msg, "invalid read from stack") || contains(msg, "invalid indirect read from stack"))
    return "stack memory is read before it was written: initialise the variable or buffer (e.g. `= {}` or "
           "__builtin_memset) before reading it or passing it to a helper";
  if (contains(msg, "invalid access to map value"))
    return "the access is outside the map value: check the offset/index against the value size "
           "(e.g. `if (idx >= ARRAY_SIZE(val->slots)) return ...;`) before the access";
  if (contains(msg, "min value is negative"))
    return "the index may be negative: use an unsigned type or check `if (idx < 0) return ...;` first";
  if (contains(msg, "unbounded memory access"))
    return "the offset has no upper bound: check it against the size (`if (idx >= N) return ...;`) or mask it";
  if (contains(msg, "invalid bpf_context access"))
    return "this context field cannot be accessed this way by this program type (wrong offset, size or "
           "write to a read-only field): use the uapi structure's fields with their natural size";
  if (contains(msg, "BPF program is too large") || contains(msg, "infinite loop"))
    return "the loop is not provably bounded: give it a constant trip count the verifier can see";
  if (contains(msg, "Unreleased reference"))
    return "a bpf_ringbuf_reserve() record is neither submitted nor discarded on some path: call "
           "bpf_ringbuf_submit() or bpf_ringbuf_discard() on every path after a successful reserve";
  if (contains(msg, "expected=ringbuf_mem"))
    return "bpf_ringbuf_submit/discard take the pointer a successful bpf_ringbuf_reserve() returned, once: "
           "check it for NULL first and do not use it after submitting or discarding";
  if (contains(msg, "Caller passes invalid args"))
    return "the arguments do not match the global function's BTF signature (global functions are verified on "
           "their own): pass values of the declared types, or make the function static";
  if (contains(msg, "At callback return"))
    return "a bpf_loop / bpf_for_each_map_elem callback must return 0 (continue) or 1 (stop)";
  if (contains(msg, "should have been in"))
    return "the return value is outside the range this program type allows";
  if (contains(msg, "combined stack size"))
    return "the call chain uses more than 512 bytes of stack: make large buffers per-CPU array map values";
  return "";
}

struct ProgramResult {
  const loader::Program* prog = nullptr;
  std::uint32_t type = 0;
  verifier::Verdict verdict;
  std::uint64_t time_us = 0;
  const loader::LineInfo* line = nullptr;
  std::string hint;
};

ProgramResult verify_program(const loader::Object& obj, const loader::Program& p, std::uint32_t type,
                             const VerifyOptions& o) {
  ProgramResult r;
  r.prog = &p;
  r.type = type;
  verifier::Config cfg = verifier::config_for(obj, p, type);
  cfg.log_level = o.log_level;
  cfg.privileged = !o.unprivileged;
  const auto t0 = std::chrono::steady_clock::now();
  r.verdict = verifier::verify(p.insns, cfg);
  const auto t1 = std::chrono::steady_clock::now();
  r.time_us = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0).count());
  if (!r.verdict.accepted) {
    r.line = line_for(p, r.verdict.error_insn);
    r.hint = hint_for(r.verdict.message);
  }
  return r;
}

void print_text(const ProgramResult& r, const VerifyOptions& o) {
  const auto& p = *r.prog;
  const auto& v = r.verdict;
  std::cout << fmt::format("{}: program {} (section {}, type {}): {}", tools::display_name(o.object), p.name,
                           p.section, loader::prog_type_name(r.type), v.accepted ? "accepted" : "REJECTED");
  if (!v.accepted) std::cout << fmt::format(" ({})", errno_name(v.err));
  std::cout << fmt::format("  [{} insns processed, {} states (peak {}), {} us]\n", v.stats.processed,
                           v.stats.total_states, v.stats.peak_states, r.time_us);
  if (o.log_level > 0 && !v.log.empty()) {
    std::cout << "--- verifier log\n" << v.log;
    if (v.log.back() != '\n') std::cout << '\n';
    std::cout << "---\n";
  }
  if (v.accepted) return;
  std::cout << fmt::format("error: insn {}: {}\n", v.error_insn, v.message);
  if (r.line != nullptr) {
    std::cout << fmt::format("  at {}:{}:{}\n", r.line->file, r.line->line, r.line->column);
    const std::string text = trim(r.line->line_text);
    if (!text.empty()) std::cout << fmt::format("  {:>5} | {}\n", r.line->line, text);
  } else {
    std::cout << "  (no BTF line info for this instruction: compile with -g for source locations)\n";
  }
  if (!r.hint.empty()) std::cout << "  hint: " << r.hint << '\n';
}

void print_json(const ProgramResult& r, bool with_log) {
  const auto& p = *r.prog;
  const auto& v = r.verdict;
  nlohmann::json j = {
      {"section", p.section},
      {"program", p.name},
      {"type", loader::prog_type_name(r.type)},
      {"verdict", v.accepted ? "accept" : "reject"},
      {"errno", v.accepted ? 0 : v.err},
      {"errno_name", v.accepted ? "" : errno_name(v.err)},
      {"error", v.accepted ? "" : v.message},
      {"source", nullptr},
      {"processed_insns", v.stats.processed},
      {"max_states_per_insn", v.stats.max_states_per_insn},
      {"total_states", v.stats.total_states},
      {"peak_states", v.stats.peak_states},
      {"time_us", r.time_us},
      {"insns", p.insns.size()},
  };
  if (!v.accepted) {
    j["error_insn"] = v.error_insn;
    if (r.line != nullptr) {
      j["source"] = fmt::format("{}:{}", r.line->file, r.line->line);
      j["source_text"] = trim(r.line->line_text);
    }
    if (!r.hint.empty()) j["hint"] = r.hint;
  }
  if (with_log) j["log"] = v.log;
  std::cout << j.dump() << '\n';
}

int run_verify(const VerifyOptions& o, bool log_level_given) {
  const std::string src = tools::display_name(o.object);
  std::optional<std::uint32_t> type_override;
  if (!o.type.empty()) {
    type_override = parse_prog_type(o.type);
    if (!type_override) {
      std::cerr << fmt::format("userbpf verify: error: unknown program type '{}' (known: {})\n", o.type,
                               known_type_names());
      return tools::kExitUsage;
    }
  }
  loader::OpenOptions oo;
  oo.externs.kfuncs = verifier::kfunc_symbols();  // __ksym functions: the host kfuncs
  auto obj = loader::Object::open(o.object, oo);
  if (!obj.ok()) return tools::report_error(obj.error(), src);

  std::vector<const loader::Program*> selected;
  for (const auto& p : obj->programs()) {
    if (!o.section.empty() && p.section != o.section) continue;
    if (!o.program.empty() && p.name != o.program) continue;
    selected.push_back(&p);
  }
  if (selected.empty()) {
    std::string names;
    for (const auto& p : obj->programs()) names += fmt::format("{}{} (section {})", names.empty() ? "" : ", ", p.name, p.section);
    std::cerr << fmt::format("{}: error: no program matches{}{}; the object has: {}\n", src,
                             o.section.empty() ? "" : " --section " + o.section,
                             o.program.empty() ? "" : " --program " + o.program, names.empty() ? "none" : names);
    return tools::kExitUsage;
  }

  bool all_ok = true;
  for (const loader::Program* p : selected) {
    const std::uint32_t type = type_override.value_or(p->prog_type);
    if (type == 0) {
      // An unrecognised SEC() name: libbpf can't load it either without a type.
      all_ok = false;
      const std::string msg = fmt::format(
          "program {} (section {}): unknown program type for this section; pass --type TYPE", p->name, p->section);
      if (o.json) {
        const nlohmann::json j = {{"section", p->section}, {"program", p->name}, {"type", "unspec"},
                                  {"verdict", "reject"}, {"errno", EINVAL}, {"error", msg}, {"source", nullptr},
                                  {"processed_insns", 0}, {"total_states", 0}, {"peak_states", 0},
                                  {"time_us", 0}};
        std::cout << j.dump() << '\n';
      } else {
        std::cerr << fmt::format("{}: error: {}\n", src, msg);
      }
      continue;
    }
    const ProgramResult r = verify_program(*obj, *p, type, o);
    if (!r.verdict.accepted) all_ok = false;
    if (o.json) {
      print_json(r, log_level_given);
    } else {
      print_text(r, o);
    }
  }
  return all_ok ? tools::kExitOk : tools::kExitError;
}

}  // namespace

void register_verify_commands(Registry& r) {
  auto opts = std::make_shared<VerifyOptions>();
  auto log_opt = std::make_shared<CLI::Option*>(nullptr);
  CLI::App& cmd = r.add("verify", "Verify the programs of a BPF ELF object with userbpf's verifier",
                        [opts, log_opt] { return run_verify(*opts, (*log_opt)->count() > 0); });
  cmd.add_option("object", opts->object, "The BPF ELF object (clang -target bpf -g -O2 -c ...)")->required();
  cmd.add_option("--section", opts->section, "Verify only the programs of this ELF section (e.g. xdp)");
  cmd.add_option("--program", opts->program, "Verify only the program with this function name");
  cmd.add_option("--type", opts->type,
                 "Program type to verify as, overriding the one the section implies (xdp, sched_cls, "
                 "socket_filter, ... or the number)");
  *log_opt = cmd.add_option("--log-level", opts->log_level,
                            "Verifier log level: 0 none, 1 the failing path (default), 2 every state")
                 ->check(CLI::Range(0u, 2u));
  cmd.add_flag("--unprivileged", opts->unprivileged, "Use the unprivileged profile (no CAP_BPF/CAP_PERFMON)");
  cmd.add_flag("--json", opts->json, "One JSON object per program per line");
  cmd.footer(
      "Exit status: 0 when every program was accepted, 1 when one was rejected or the object is bad.\n"
      "Example: userbpf verify build/tests/realprogs/progs/xdp_parse.bpf.o --program xdp_parse --log-level 2");
}

}  // namespace userbpf::cli
