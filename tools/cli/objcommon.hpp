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
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "helpers/helpers.hpp"
#include "runtime/runtime.hpp"

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
  Session();
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
std::vector<MapEntry> map_entries(const maps::Map& m);
std::string map_entries_text(const maps::Map& m, const std::vector<MapEntry>& entries);
nlohmann::json map_entries_json(const maps::Map& m, const std::vector<MapEntry>& entries);

nlohmann::json map_info_json(const runtime::MapObject& m, const std::vector<std::string>& pins);
std::string map_info_text(const runtime::MapObject& m, const std::vector<std::string>& pins);
nlohmann::json prog_info_json(const runtime::ProgObject& p, const std::vector<std::string>& pins);
std::string prog_info_text(const runtime::ProgObject& p, const std::vector<std::string>& pins);

// Prints an error (text to stderr, and a JSON object on stdout with --json)
// and returns kExitError.
int fail(bool json, const std::string& message);

}  // namespace userbpf::cli::obj
