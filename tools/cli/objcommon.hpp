// Shared pieces of the object-level commands (cmd_prog.cpp, cmd_map.cpp,
// cmd_btf.cpp): the per-invocation runtime, finding objects by id or pin
// path, bpftool-style hex byte arguments and map/program rendering.
//
// Objects of the runtime live in the process; only pins persist (in the pin
// directory: $USERBPF_PIN_DIR, else $XDG_RUNTIME_DIR/userbpf, else
// /tmp/userbpf-$UID). So every invocation first opens the pins it can see
// (scan_pins: the pin directory walked in sorted order, hidden .objects/
// skipped) and ids are those of this invocation's runtime: deterministic for
// an unchanged pin directory, but not stable across changes of it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "helpers/helpers.hpp"
#include "runtime/runtime.hpp"

struct btf;
namespace userbpf::loader {
class Object;
struct Map;
struct Program;
}  // namespace userbpf::loader

namespace userbpf::cli::obj {

// Collects bpf_trace_printk lines (take() empties it).
class TraceCollector final : public helpers::TraceSink {
 public:
  void write(std::string_view message) override;
  std::vector<std::string> take();

 private:
  std::string pending_;
  std::vector<std::string> lines_;
};

struct Pinned {
  std::string path;  // as given to OBJ_GET (absolute path in the pin directory)
  int handle = -1;
  runtime::ObjKind kind = runtime::ObjKind::Map;
};

// One invocation's runtime, with its trace collector.
struct Session {
  // `engine`: where programs loaded in this invocation run (runtime::Options::engine).
  explicit Session(runtime::Engine engine = runtime::Engine::Jit);
  TraceCollector trace;
  std::unique_ptr<runtime::Runtime> rt;
  std::vector<Pinned> pins;  // after scan_pins()
  std::vector<std::string> scan_notes;
  // Opens every pin under the pin directory (once).
  void scan_pins();
  // Pin paths of an object (by handle's object identity).
  [[nodiscard]] std::vector<std::string> pin_paths(const runtime::Object& o) const;
  bool scanned = false;
};

// "ID" (digits) or a pin path ("/sys/fs/bpf/x", a path in the pin dir, or
// relative to it): a handle of the wanted kind, or a clear error.
Result<int> resolve(Session& s, const std::string& spec, runtime::ObjKind kind);

// bpftool's byte syntax: "0x01 0x00" (one byte per 0x token), "hex 01 02"
// (hex tokens), plain hex (a token of 4+ digits or with a-f, even length:
// "01000000", "2a"), or decimal bytes of 1-3 digits ("17 0 0 0", as bpftool).
// `what` names the argument in errors ("key", "value").
Result<std::vector<std::uint8_t>> parse_bytes(std::span<const std::string> tokens, std::string_view what);

std::string hex_bytes(std::span<const std::uint8_t> b);             // "01 00 00 00"
nlohmann::json hex_json(std::span<const std::uint8_t> b);           // ["0x01","0x00",...]

// One map's entries as bpftool prints them (text) and as JSON objects.
struct MapEntry {
  std::vector<std::uint8_t> key, value;  // value: all CPU slots for per-CPU maps
};
// The BTF types of a map's key and value (0: not typed), for formatting.
struct MapBtf {
  std::shared_ptr<const struct btf> btf;
  std::uint32_t key_type_id = 0, value_type_id = 0;
};
std::vector<MapEntry> map_entries(const maps::Map& m);
// With `btf`, keys and values are also decoded by their BTF types
// (loader::format_btf_value, bpftool's "formatted"); without it, keys and
// values of 1, 2, 4 or 8 bytes are read as little-endian integers.
std::string map_entries_text(const maps::Map& m, const std::vector<MapEntry>& entries, const MapBtf* btf = nullptr);
nlohmann::json map_entries_json(const maps::Map& m, const std::vector<MapEntry>& entries, const MapBtf* btf = nullptr);
// The formatted JSON of one key or value: by BTF when `type_id` != 0, else
// the integer reading; null when neither applies (or the BTF decode fails).
nlohmann::json format_bytes(std::span<const std::uint8_t> b, const MapBtf* btf, std::uint32_t type_id);

// A loader map's BTF types (the object's BTF parsed once into `parsed`).
std::optional<MapBtf> loader_map_btf(const loader::Object& o, const loader::Map& m,
                                     std::shared_ptr<const struct btf>& parsed);
// Pinned maps do not carry BTF; `prog load --pin` (and load_object's
// pin-by-name maps) store it next to them: <pin dir>/.objects/btf/DEV-INO of
// the map's shared-memory file, so any later invocation finds it.
void save_map_btf(const runtime::Runtime& rt, const runtime::MapObject& m, const loader::Object& o,
                  const loader::Map& lm);
std::optional<MapBtf> load_map_btf(const runtime::Runtime& rt, const runtime::MapObject& m);

nlohmann::json map_info_json(const runtime::MapObject& m, const std::vector<std::string>& pins);
std::string map_info_text(const runtime::MapObject& m, const std::vector<std::string>& pins);
nlohmann::json prog_info_json(const runtime::ProgObject& p, const std::vector<std::string>& pins);
std::string prog_info_text(const runtime::ProgObject& p, const std::vector<std::string>& pins);

// Prints an error (text to stderr, and a JSON object on stdout with --json)
// and returns kExitError.
int fail(bool json, const std::string& message);

// "name (SEC("section")), ..." for every program of the object.
std::string program_names(const loader::Object& o);
// The one program that --program NAME and --section S (each optional)
// choose among the object's programs that `accept` takes (all when it is
// empty); `kind` names those in messages ("program", "packet program").
// Errors name `path`, say what did not match or how many did, and list the
// object's programs. Used by `prog` (cmd_prog.cpp) and `capture --prog`.
Result<const loader::Program*> pick_program(const loader::Object& o, const std::string& program,
                                            const std::string& section, const std::string& path,
                                            const std::function<bool(const loader::Program&)>& accept = {},
                                            std::string_view kind = "program");

}  // namespace userbpf::cli::obj
