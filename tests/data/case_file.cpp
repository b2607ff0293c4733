#include "case_file.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/hex.hpp"

namespace userbpf::datatest {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

Error file_error(const std::string& path, std::size_t line, std::string msg) {
  Error e = make_error(EINVAL, std::move(msg));
  e.where = path;
  e.line = line;
  return e;
}

std::optional<std::uint64_t> parse_u64(std::string_view s, int base) {
  if (base == 16 && (s.starts_with("0x") || s.starts_with("0X"))) s.remove_prefix(2);
  if (s.empty()) return std::nullopt;
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

Result<Case> parse_case(const std::string& path, const std::string& text) {
  Case c;
  c.path = path;
  c.name = std::filesystem::path(path).stem().string();
  struct Section {
    std::string name;
    std::size_t line;
    std::string body;
  };
  std::vector<Section> sections;
  std::istringstream in(text);
  std::string line;
  std::size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.starts_with("--")) {
      std::string_view name = trim(std::string_view(line).substr(2));
      for (const auto& s : sections)
        if (s.name == name) return file_error(path, lineno, fmt::format("section '-- {}' appears twice", name));
      sections.push_back({std::string(name), lineno, {}});
      continue;
    }
    if (sections.empty()) {
      if (!trim(line).empty() && !line.starts_with("#"))
        return file_error(path, lineno, "text before the first section must be a '#' comment");
      continue;
    }
    sections.back().body += line;
    sections.back().body += '\n';
  }
  for (const auto& s : sections) {
    const std::size_t l = s.line;
    if (s.name == "asm") {
      c.asm_text = s.body;
      c.asm_line = l + 1;
    } else if (s.name == "mem" || s.name == "mem-after") {
      auto bytes = parse_hex(s.body);
      if (!bytes) return file_error(path, l, fmt::format("-- {}: {}", s.name, bytes.error().to_string()));
      if (s.name == "mem")
        c.mem = std::move(*bytes);
      else
        c.mem_after = std::move(*bytes);
    } else if (s.name == "result") {
      auto v = parse_u64(trim(s.body), 16);
      if (!v) return file_error(path, l, fmt::format("-- result: '{}' is not a 64-bit hex number", trim(s.body)));
      c.result = *v;
    } else if (s.name == "error") {
      if (trim(s.body).empty()) return file_error(path, l, "-- error: empty expected message");
      c.error = std::string(trim(s.body));
    } else if (s.name == "kernel") {
      std::istringstream kin(s.body);
      std::string kl;
      std::size_t k = l;
      while (std::getline(kin, kl)) {
        ++k;
        std::string_view v = trim(kl);
        if (v.empty() || v.starts_with("#")) continue;
        if (v.starts_with("rejects")) {
          c.kernel_rejects = true;
          v.remove_prefix(7);
          if (v.starts_with(":")) v.remove_prefix(1);
          c.kernel_reason = std::string(trim(v));
        } else if (v.starts_with("skip")) {
          c.kernel_skip = true;
          v.remove_prefix(4);
          if (v.starts_with(":")) v.remove_prefix(1);
          c.kernel_reason = std::string(trim(v));
        } else if (v.starts_with("log:")) {
          c.kernel_log = std::string(trim(v.substr(4)));
        } else {
          return file_error(path, k, fmt::format("-- kernel: expected 'rejects: why', 'skip: why' or 'log: text', "
                                                 "got '{}'", v));
        }
      }
      if (c.kernel_rejects == c.kernel_skip)
        return file_error(path, l, "-- kernel: needs exactly one of 'rejects: why' or 'skip: why'");
      if (c.kernel_reason.empty()) return file_error(path, l, "-- kernel: say why");
      if (!c.kernel_log.empty() && !c.kernel_rejects) return file_error(path, l, "-- kernel: 'log:' needs 'rejects'");
    } else if (s.name == "options") {
      std::istringstream oin(s.body);
      std::string w;
      while (oin >> w) {
        if (w == "checked") {
          c.checked = true;
        } else if (w == "no-kernel-structure") {
          c.kernel_structure = false;
        } else if (w.starts_with("budget=")) {
          auto v = parse_u64(std::string_view(w).substr(7), 10);
          if (!v || *v == 0) return file_error(path, l, fmt::format("-- options: bad budget '{}'", w));
          c.budget = *v;
        } else {
          return file_error(path, l, fmt::format("-- options: unknown option '{}'", w));
        }
      }
    } else {
      return file_error(path, l, fmt::format("unknown section '-- {}'", s.name));
    }
  }
  if (c.asm_text.empty()) return file_error(path, 1, "missing '-- asm' section");
  if (c.result.has_value() == c.error.has_value())
    return file_error(path, 1, "needs exactly one of '-- result' and '-- error'");
  return c;
}

Result<Case> load_case(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return file_error(path, 0, "cannot open");
  std::ostringstream ss;
  ss << f.rdbuf();
  return parse_case(path, ss.str());
}

std::vector<std::string> list_cases(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.is_regular_file() && e.path().extension() == ".data") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace userbpf::datatest
