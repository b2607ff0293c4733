// Shared pieces of the object-level commands; see objcommon.hpp.
#include "cli/objcommon.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <cctype>
#include <filesystem>
#include <iostream>
#include <fstream>
#include <sys/stat.h>
#include <system_error>

#include "base/hex.hpp"
#include "common/tool_io.hpp"
#include "loader/btf_format.hpp"
#include "maps/shm.hpp"
#include "loader/loader.hpp"

namespace userbpf::cli::obj {

namespace fs = std::filesystem;

void TraceCollector::write(std::string_view message) {
  pending_.append(message);
  std::size_t nl = 0;
  while ((nl = pending_.find('\n')) != std::string::npos) {
    lines_.push_back(pending_.substr(0, nl));
    pending_.erase(0, nl + 1);
  }
}

std::vector<std::string> TraceCollector::take() {
  if (!pending_.empty()) {  // a message without its newline is still a line
    lines_.push_back(pending_);
    pending_.clear();
  }
  std::vector<std::string> out;
  out.swap(lines_);
  return out;
}

Session::Session(runtime::Engine engine) {
  runtime::Options o;
  o.trace = &trace;
  o.engine = engine;
  rt = std::make_unique<runtime::Runtime>(o);
}

void Session::scan_pins() {
  if (scanned) return;
  scanned = true;
  std::error_code ec;
  const fs::path root(rt->pin_dir());
  if (!fs::is_directory(root, ec)) return;
  std::vector<fs::path> files;
  auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && it->path().filename().string().starts_with(".")) {
      it.disable_recursion_pending();  // .objects/: hidden links of pinned programs' maps
      continue;
    }
    if (it->is_regular_file(ec)) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& f : files) {
    auto h = rt->get_pinned(f.string());
    if (!h.ok()) {
      scan_notes.push_back(fmt::format("{}: not a pin ({})", f.string(), h.error().to_string()));
      continue;
    }
    pins.push_back({f.string(), *h, rt->get(*h)->kind});
  }
}

std::vector<std::string> Session::pin_paths(const runtime::Object& o) const {
  std::vector<std::string> out;
  for (const Pinned& p : pins)
    if (rt->get(p.handle).get() == &o) out.push_back(p.path);
  return out;
}

namespace {
std::string_view kind_name(runtime::ObjKind k) {
  switch (k) {
    case runtime::ObjKind::Map: return "map";
    case runtime::ObjKind::Prog: return "program";
    case runtime::ObjKind::Btf: return "BTF object";
  }
  return "object";
}
}  // namespace

Result<int> resolve(Session& s, const std::string& spec, runtime::ObjKind kind) {
  if (spec.empty()) return make_error(EINVAL, fmt::format("empty {} id or pin path", kind_name(kind)));
  const bool digits = std::all_of(spec.begin(), spec.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; });
  if (digits) {
    s.scan_pins();
    std::uint32_t id = 0;
    try {
      id = static_cast<std::uint32_t>(std::stoul(spec));
    } catch (const std::exception&) {
      return make_error(ERANGE, fmt::format("{} id '{}' is out of range", kind_name(kind), spec));
    }
    auto o = s.rt->by_id(kind, id);
    if (!o)
      return make_error(ENOENT, fmt::format("no {} with id {} (ids are those of this invocation: the pins under {})",
                                            kind_name(kind), id, s.rt->pin_dir()));
    return s.rt->new_handle(o);
  }
  s.scan_pins();
  auto h = s.rt->get_pinned(spec);
  if (!h.ok()) {
    Error e = h.error();
    e.message = fmt::format("{}: cannot open pin: {}", spec, e.message);
    return e;
  }
  if (s.rt->get(*h)->kind != kind) {
    return make_error(EINVAL, fmt::format("{}: is a pinned {}, not a {}", spec, kind_name(s.rt->get(*h)->kind),
                                          kind_name(kind)));
  }
  return *h;
}

Result<std::vector<std::uint8_t>> parse_bytes(std::span<const std::string> tokens, std::string_view what) {
  std::vector<std::uint8_t> out;
  bool all_hex = false;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    if (i == 0 && t == "hex") {
      all_hex = true;
      continue;
    }
    auto bad = [&](std::string_view why) {
      return make_error(EINVAL, fmt::format("{} byte {} ('{}'): {}", what, i, t, why));
    };
    if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
      auto b = parse_hex(std::string_view(t).substr(2));
      if (!b.ok() && t.size() == 3) b = parse_hex("0" + t.substr(2));
      if (!b.ok() || b->size() != 1) return bad("expected one byte 0x00..0xff");
      out.push_back((*b)[0]);
      continue;
    }
    const bool hexdigits = std::all_of(t.begin(), t.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
    const bool decdigits = std::all_of(t.begin(), t.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; });
    if (t.empty() || !hexdigits) return bad("not a byte (use 0x01, plain hex like 01000000, or decimal 0..255)");
    // Short all-decimal tokens are decimal bytes (bpftool: "key 17 0 0 0");
    // longer tokens or tokens with a-f are plain hex ("11000000", "2a").
    if (all_hex || (!decdigits && t.size() % 2 == 0) || (decdigits && t.size() > 3 && t.size() % 2 == 0)) {
      auto b = parse_hex(t);
      if (!b.ok()) return bad(b.error().message);
      out.insert(out.end(), b->begin(), b->end());
      continue;
    }
    if (!decdigits || t.size() > 3) return bad("odd number of hex digits");
    const unsigned long v = std::stoul(t);
    if (v > 255) return bad("decimal byte out of range 0..255");
    out.push_back(static_cast<std::uint8_t>(v));
  }
  return out;
}

std::string hex_bytes(std::span<const std::uint8_t> b) { return to_hex(b, " "); }

nlohmann::json hex_json(std::span<const std::uint8_t> b) {
  nlohmann::json a = nlohmann::json::array();
  for (std::uint8_t x : b) a.push_back(fmt::format("{:#04x}", x));
  return a;
}

std::vector<MapEntry> map_entries(const maps::Map& m) {
  std::vector<MapEntry> out;
  if (m.type() == BPF_MAP_TYPE_PROG_ARRAY) {  // values are program ids, not readable like data
    std::vector<std::uint8_t> key(m.key_size());
    for (std::uint32_t i = 0; i < m.max_entries(); ++i) {
      const std::uint32_t id = maps::prog_array_get(m, i);
      if (id == 0) continue;
      MapEntry e;
      e.key.resize(4);
      e.value.resize(4);
      std::memcpy(e.key.data(), &i, 4);
      std::memcpy(e.value.data(), &id, 4);
      out.push_back(std::move(e));
    }
    return out;
  }
  std::vector<std::uint8_t> key(m.key_size()), next(m.key_size());
  bool first = true;
  for (std::size_t guard = 0; guard <= static_cast<std::size_t>(m.max_entries()) + 1; ++guard) {
    const int rc = m.get_next_key(first ? nullptr : key.data(), next.data());
    if (rc != 0) break;
    first = false;
    key = next;
    MapEntry e;
    e.key = key;
    e.value.resize(m.host_value_size());
    if (m.lookup(key.data(), e.value.data(), 0) != 0) continue;  // deleted meanwhile
    out.push_back(std::move(e));
  }
  return out;
}

namespace {
// A little-endian unsigned integer of 1, 2, 4 or 8 bytes (the common case of
// counters); nullopt otherwise.
std::optional<std::uint64_t> as_int(std::span<const std::uint8_t> b) {
  if (b.size() != 1 && b.size() != 2 && b.size() != 4 && b.size() != 8) return std::nullopt;
  std::uint64_t v = 0;
  for (std::size_t i = b.size(); i-- > 0;) v = (v << 8) | b[i];
  return v;
}

// Per-CPU values: each CPU's slot is the value size rounded up to 8 bytes.
std::size_t percpu_stride(const maps::Map& m) { return (static_cast<std::size_t>(m.value_size()) + 7) / 8 * 8; }

std::span<const std::uint8_t> cpu_value(const maps::Map& m, const MapEntry& e, std::uint32_t cpu) {
  return std::span<const std::uint8_t>(e.value).subspan(cpu * percpu_stride(m), m.value_size());
}
}  // namespace

nlohmann::json format_bytes(std::span<const std::uint8_t> b, const MapBtf* btf, std::uint32_t type_id) {
  if (btf != nullptr && btf->btf && type_id != 0) {
    auto j = loader::format_btf_value(btf->btf.get(), type_id, b);
    if (j.ok()) return *j;
  }
  if (const auto v = as_int(b)) return *v;
  return nullptr;
}

std::string map_entries_text(const maps::Map& m, const std::vector<MapEntry>& entries, const MapBtf* btf) {
  std::string s;
  const std::uint32_t kid = btf != nullptr ? btf->key_type_id : 0, vid = btf != nullptr ? btf->value_type_id : 0;
  for (const MapEntry& e : entries) {
    const nlohmann::json k = format_bytes(e.key, btf, kid);
    if (m.percpu()) {
      s += fmt::format("key:\n{}{}\n", hex_bytes(e.key), k.is_null() ? "" : "  (" + k.dump() + ")");
      for (std::uint32_t c = 0; c < m.ncpus(); ++c) {
        const auto v = cpu_value(m, e, c);
        const nlohmann::json vj = format_bytes(v, btf, vid);
        s += fmt::format("value (CPU {:02}): {}{}\n", c, hex_bytes(v), vj.is_null() ? "" : "  (" + vj.dump() + ")");
      }
      continue;
    }
    s += fmt::format("key: {}  value: {}", hex_bytes(e.key), hex_bytes(e.value));
    const nlohmann::json v = format_bytes(e.value, btf, vid);
    if (!k.is_null() && !v.is_null()) s += fmt::format("  ({} -> {})", k.dump(), v.dump());
    s += '\n';
  }
  s += fmt::format("Found {} element{}\n", entries.size(), entries.size() == 1 ? "" : "s");
  return s;
}

nlohmann::json map_entries_json(const maps::Map& m, const std::vector<MapEntry>& entries, const MapBtf* btf) {
  nlohmann::json a = nlohmann::json::array();
  const std::uint32_t kid = btf != nullptr ? btf->key_type_id : 0, vid = btf != nullptr ? btf->value_type_id : 0;
  for (const MapEntry& e : entries) {
    nlohmann::json j = {{"key", hex_json(e.key)}};
    const nlohmann::json k = format_bytes(e.key, btf, kid);
    if (m.percpu()) {
      nlohmann::json vals = nlohmann::json::array(), fvals = nlohmann::json::array();
      bool all = true;
      for (std::uint32_t c = 0; c < m.ncpus(); ++c) {
        const auto v = cpu_value(m, e, c);
        vals.push_back({{"cpu", c}, {"value", hex_json(v)}});
        const nlohmann::json fv = format_bytes(v, btf, vid);
        all = all && !fv.is_null();
        fvals.push_back({{"cpu", c}, {"value", fv}});
      }
      j["values"] = vals;
      if (!k.is_null() && all) j["formatted"] = {{"key", k}, {"values", fvals}};
    } else {
      j["value"] = hex_json(e.value);
      const nlohmann::json v = format_bytes(e.value, btf, vid);
      if (!k.is_null() && !v.is_null()) j["formatted"] = {{"key", k}, {"value", v}};
    }
    a.push_back(j);
  }
  return a;
}

std::optional<MapBtf> loader_map_btf(const loader::Object& o, const loader::Map& m,
                                     std::shared_ptr<const struct btf>& parsed) {
  if (m.btf_value_type_id == 0 && m.btf_key_type_id == 0) return std::nullopt;
  if (!parsed) {
    auto b = loader::parse_btf(o.btf_data());
    if (!b.ok()) return std::nullopt;
    parsed = *b;
  }
  return MapBtf{parsed, m.btf_key_type_id, m.btf_value_type_id};
}

namespace {
// <pin dir>/.objects/btf/DEV-INO for the map's shared-memory file.
std::optional<std::string> btf_sidecar(const runtime::Runtime& rt, const runtime::MapObject& m) {
  struct stat st {};
  if (fstat(m.map->file().fd(), &st) != 0) return std::nullopt;
  return fmt::format("{}/.objects/btf/{}-{}", rt.pin_dir(), static_cast<unsigned long>(st.st_dev),
                     static_cast<unsigned long>(st.st_ino));
}
constexpr char kSidecarMagic[8] = {'U', 'B', 'P', 'F', 'B', 'T', 'F', '1'};
}  // namespace

void save_map_btf(const runtime::Runtime& rt, const runtime::MapObject& m, const loader::Object& o,
                  const loader::Map& lm) {
  // Maps without key/value types (ring buffers) keep the object's BTF too,
  // for `map watch --type`.
  const auto path = btf_sidecar(rt, m);
  if (!path || o.btf_data().empty()) return;
  std::error_code ec;
  fs::create_directories(fs::path(*path).parent_path(), ec);
  std::ofstream f(*path, std::ios::binary | std::ios::trunc);
  const std::uint32_t ids[2] = {lm.btf_key_type_id, lm.btf_value_type_id};
  f.write(kSidecarMagic, sizeof kSidecarMagic);
  f.write(reinterpret_cast<const char*>(ids), sizeof ids);
  f.write(reinterpret_cast<const char*>(o.btf_data().data()), static_cast<std::streamsize>(o.btf_data().size()));
}

std::optional<MapBtf> load_map_btf(const runtime::Runtime& rt, const runtime::MapObject& m) {
  const auto path = btf_sidecar(rt, m);
  if (!path) return std::nullopt;
  auto bytes = tools::read_input(*path);
  if (!bytes.ok() || bytes->size() < 16 || !std::equal(kSidecarMagic, kSidecarMagic + 8, bytes->begin()))
    return std::nullopt;
  std::uint32_t ids[2];
  std::memcpy(ids, bytes->data() + 8, sizeof ids);
  auto b = loader::parse_btf(std::span<const std::uint8_t>(*bytes).subspan(16));
  if (!b.ok()) return std::nullopt;
  return MapBtf{*b, ids[0], ids[1]};
}

nlohmann::json map_info_json(const runtime::MapObject& mo, const std::vector<std::string>& pins) {
  const maps::Map& m = *mo.map;
  nlohmann::json j = {{"id", mo.id},
                      {"type", loader::map_type_name(m.type())},
                      {"name", m.name()},
                      {"flags", m.map_flags()},
                      {"bytes_key", m.key_size()},
                      {"bytes_value", m.value_size()},
                      {"max_entries", m.max_entries()},
                      {"frozen", m.frozen() ? 1 : 0}};
  if (!pins.empty()) j["pinned"] = pins;
  return j;
}

std::string map_info_text(const runtime::MapObject& mo, const std::vector<std::string>& pins) {
  const maps::Map& m = *mo.map;
  std::string s = fmt::format("{}: {}  name {}  flags {:#x}\n\tkey {}B  value {}B  max_entries {}{}\n", mo.id,
                              loader::map_type_name(m.type()), m.name(), m.map_flags(), m.key_size(), m.value_size(),
                              m.max_entries(), m.frozen() ? "  frozen" : "");
  for (const std::string& p : pins) s += fmt::format("\tpinned {}\n", p);
  return s;
}

namespace {
std::string tag_hex(const runtime::ProgObject& p) { return to_hex(std::span<const std::uint8_t>(p.tag), ""); }
std::vector<std::uint32_t> map_ids(const runtime::ProgObject& p) {
  std::vector<std::uint32_t> ids;
  for (const auto& m : p.used_maps) ids.push_back(m->id);
  return ids;
}
}  // namespace

nlohmann::json prog_info_json(const runtime::ProgObject& p, const std::vector<std::string>& pins) {
  nlohmann::json j = {{"id", p.id},
                      {"type", loader::prog_type_name(p.type)},
                      {"name", p.name},
                      {"tag", tag_hex(p)},
                      {"gpl_compatible", p.license == "GPL" || p.license.starts_with("Dual") ||
                                             p.license == "GPL v2" || p.license == "Dual BSD/GPL"},
                      {"bytes_xlated", p.insns.size() * 8},
                      {"jited", p.jitted != nullptr},
                      {"engine", p.jitted != nullptr ? "jit" : "interpreter"},
                      {"map_ids", map_ids(p)}};
  if (!pins.empty()) j["pinned"] = pins;
  return j;
}

std::string prog_info_text(const runtime::ProgObject& p, const std::vector<std::string>& pins) {
  std::string ids;
  for (std::uint32_t id : map_ids(p)) ids += (ids.empty() ? "" : ",") + std::to_string(id);
  std::string s = fmt::format("{}: {}  name {}  tag {}{}\n\txlated {}B  {}", p.id, loader::prog_type_name(p.type),
                              p.name, tag_hex(p), prog_info_json(p, {})["gpl_compatible"].get<bool>() ? "  gpl" : "",
                              p.insns.size() * 8,
                              p.jitted != nullptr ? fmt::format("jited {}B", p.jitted->code_size())
                                                  : std::string("not jited (interpreter)"));
  if (!ids.empty()) s += "  map_ids " + ids;
  s += '\n';
  for (const std::string& pp : pins) s += fmt::format("\tpinned {}\n", pp);
  return s;
}

int fail(bool json, const std::string& message) {
  if (json) std::cout << nlohmann::json{{"error", message}}.dump() << '\n';
  std::cerr << "userbpf: error: " << message << '\n';
  return tools::kExitError;
}

std::string program_names(const loader::Object& o) {
  std::string s;
  for (const auto& p : o.programs()) s += fmt::format("{}{} (SEC(\"{}\"))", s.empty() ? "" : ", ", p.name, p.section);
  return s;
}

Result<const loader::Program*> pick_program(const loader::Object& o, const std::string& program,
                                            const std::string& section, const std::string& path,
                                            const std::function<bool(const loader::Program&)>& accept,
                                            std::string_view kind) {
  if (o.programs().empty()) return make_error(ENOENT, fmt::format("{}: the object has no programs", path));
  std::vector<const loader::Program*> hits;
  for (const auto& p : o.programs()) {
    if (!program.empty() && p.name != program) continue;
    if (!section.empty() && p.section != section) continue;
    if (accept && !accept(p)) continue;
    hits.push_back(&p);
  }
  if (hits.empty()) {
    std::string what;
    if (!program.empty())
      what = fmt::format("{} '{}'{}", kind, program, section.empty() ? "" : fmt::format(" in section '{}'", section));
    else if (!section.empty())
      what = kind == "program" ? fmt::format("section '{}'", section) : fmt::format("{} in section '{}'", kind, section);
    else
      what = kind;
    return make_error(ENOENT, fmt::format("{}: no {}; the object has: {}", path, what, program_names(o)));
  }
  if (hits.size() > 1)
    return make_error(EINVAL, fmt::format("{}: {} {}s match; choose one with --program NAME or --section S: {}", path,
                                          hits.size(), kind, program_names(o)));
  return hits[0];
}

}  // namespace userbpf::cli::obj
