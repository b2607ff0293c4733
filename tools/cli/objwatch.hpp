// Ring buffer and perf event array records for the CLI (`map watch`,
// `prog run --follow`): one watcher over any number of such maps, built on
// the maps' host consumers (maps::RingBufConsumer, maps::PerfBuffer).
//
// Records are collected in arrival order by drain()/poll() and rendered as
// one text line or one JSON object each: the map, the CPU (perf buffers),
// the bytes in hex and, when a BTF type is known for the records, the value
// decoded by it (loader::format_btf_value, the same formatter as map dumps).
// Lost perf samples are reported as records of kind "lost" with the count.
// Invariant: the watcher never outlives the maps it was given (the caller's
// Session keeps them).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "cli/objcommon.hpp"

namespace userbpf::maps {
class Map;
class RingBufConsumer;
class PerfBuffer;
}  // namespace userbpf::maps

namespace userbpf::cli::obj {

struct Record {
  std::string map;
  std::optional<std::uint32_t> cpu;  // perf buffers
  std::vector<std::uint8_t> bytes;
  std::uint64_t lost = 0;            // > 0: a lost-samples notice, no bytes
  nlohmann::json formatted;          // null unless decoded by BTF
};

// true for the map types whose records can be watched.
bool is_record_map(const maps::Map& m);

class RecordWatcher {
 public:
  RecordWatcher();
  ~RecordWatcher();
  RecordWatcher(const RecordWatcher&) = delete;
  RecordWatcher& operator=(const RecordWatcher&) = delete;

  // Watches `m` (a ring buffer or perf event array) named `name`; records
  // are decoded by `btf`'s type `type_id` when both are given.
  Status add(const std::string& name, maps::Map& m, std::optional<MapBtf> btf, std::uint32_t type_id);
  [[nodiscard]] bool empty() const { return sources_ == 0; }
  // Consumes what is there now; waits up to timeout_ms first (-1: forever).
  void drain();
  void poll(int timeout_ms);
  std::vector<Record> take();

 private:
  struct Decoder {
    std::string name;
    std::optional<MapBtf> btf;
    std::uint32_t type_id = 0;
  };
  void push(const Decoder& d, std::optional<std::uint32_t> cpu, const void* data, std::size_t size);
  std::unique_ptr<maps::RingBufConsumer> rings_;
  std::vector<std::unique_ptr<maps::PerfBuffer>> perfs_;
  std::vector<std::unique_ptr<Decoder>> decoders_;
  std::vector<Record> records_;
  std::size_t sources_ = 0;
  std::size_t ring_count_ = 0;
};

std::string record_text(const Record& r);
nlohmann::json record_json(const Record& r);

// The id of a named BTF type (struct, union, typedef, int, ...) in `btf`, or
// an error listing what was looked for.
Result<std::uint32_t> find_btf_type(const MapBtf& btf, const std::string& name);

}  // namespace userbpf::cli::obj
