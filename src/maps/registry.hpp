// The map-type descriptor table: one row per supported enum bpf_map_type.
// Every type-dependent decision outside a map type's own file goes through
// its row (creation checks, storage size, attaching to a file); nothing
// switches on the map type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "maps/map.hpp"

namespace userbpf::maps {

enum class MapKind : std::uint8_t {
  Array,
  Hash,
  ProgArray,
  LpmTrie,
  Queue,  // queue and stack
  BloomFilter,
  RingBuf,
  PerfEventArray,
  MapOfMaps,  // array of maps, hash of maps
  StackTrace,
  Redirect,  // devmap, devmap_hash, cpumap, xskmap (bpf_redirect_map targets)
};

// Optional bpf() commands a type supports (the kernel's map_ops members that
// may be NULL; a missing one makes the command fail with ENOTSUPP).
enum MapOps : unsigned {
  kOpLookupAndDelete = 1u << 0,
  kOpLookupBatch = 1u << 1,
  kOpLookupAndDeleteBatch = 1u << 2,
  kOpUpdateBatch = 1u << 3,
  kOpDeleteBatch = 1u << 4,
  // The lookup batch is the kernel's generic one with a key as the token
  // (Map::lookup_batch_keyed), not an index or bucket (Map::lookup_batch).
  kOpKeyedBatch = 1u << 5,
};
// The kernel's internal ENOTSUPP, which reaches user space as 524.
inline constexpr int kENOTSUPP = 524;

struct MapTypeDesc {
  std::uint32_t type;        // enum bpf_map_type
  std::string_view name;     // the kernel's name ("array", "percpu_hash", ...)
  MapKind kind;
  bool percpu;
  std::uint32_t flags_mask;  // map_flags accepted at MAP_CREATE
  unsigned ops;              // MapOps bits
  // MAP_CREATE checks beyond the common ones: 0 or the kernel's errno.
  int (*check)(const MapSpec& spec);
  // Bytes of the type's body for `spec` (ncpus already resolved).
  std::size_t (*body_size)(const MapSpec& spec, std::uint32_t ncpus);
  // Initialises a zeroed body (creator only, before anyone else can see it).
  void (*init)(std::uint8_t* body, const MapSpec& spec, std::uint32_t ncpus);
  // Builds the Map object over an initialised file.
  std::unique_ptr<Map> (*attach)(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc);
  // map_extra may be nonzero (bloom filter); otherwise MAP_CREATE wants 0.
  bool map_extra_ok;
};

// The rows, in enum bpf_map_type order.
std::span<const MapTypeDesc* const> map_types();
// nullptr when the type is not supported.
const MapTypeDesc* find_map_type(std::uint32_t type);

// Each map type's file defines its row.
extern const MapTypeDesc kArrayDesc;
extern const MapTypeDesc kPerCpuArrayDesc;
extern const MapTypeDesc kHashDesc;
extern const MapTypeDesc kPerCpuHashDesc;
extern const MapTypeDesc kProgArrayDesc;
extern const MapTypeDesc kLruHashDesc;
extern const MapTypeDesc kLruPerCpuHashDesc;
extern const MapTypeDesc kLpmTrieDesc;
extern const MapTypeDesc kQueueDesc;
extern const MapTypeDesc kStackDesc;
extern const MapTypeDesc kBloomFilterDesc;
extern const MapTypeDesc kRingBufDesc;
extern const MapTypeDesc kPerfEventArrayDesc;
extern const MapTypeDesc kArrayOfMapsDesc;
extern const MapTypeDesc kHashOfMapsDesc;
extern const MapTypeDesc kStackTraceDesc;
extern const MapTypeDesc kDevMapDesc;
extern const MapTypeDesc kCpuMapDesc;
extern const MapTypeDesc kXskMapDesc;
extern const MapTypeDesc kDevMapHashDesc;

}  // namespace userbpf::maps
