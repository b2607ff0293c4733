// BPF_MAP_TYPE_ARRAY_OF_MAPS and BPF_MAP_TYPE_HASH_OF_MAPS.
//
// Storage: an array (array.hpp) or a hash table (hash_table.hpp) whose
// values are u32 map ids (0 = empty slot in an array), plus the inner-map
// template in the map header (type, key/value size, max_entries, flags of
// the map given as inner_map_fd at MAP_CREATE). Ids are those of the
// runtime that stored them (as program arrays).
//
// Host: update_inner() stores a map after the kernel's bpf_map_meta_equal
// check (same type, key and value size, flags, and max_entries unless the
// template has BPF_F_INNER_MAP: else EINVAL); a plain update() is refused
// (EINVAL: the bpf() layer must translate the fd); lookup returns the id.
// Programs: prog_lookup returns the inner maps::Map* that the resolver
// (set by the runtime) gives for the stored id, or null; holds_inner()
// tells helpers that such a pointer is a map.
#pragma once

#include <mutex>
#include <vector>

#include "maps/map.hpp"

namespace userbpf::maps {

class OuterMap {
 public:
  using Resolver = Map* (*)(void* owner, std::uint32_t id);
  virtual ~OuterMap() = default;
  // Stores `inner` (whose id is `inner_id`) at `key`. 0 or errno.
  virtual int update_inner(const void* key, const Map& inner, std::uint32_t inner_id, std::uint64_t flags) = 0;
  // How program lookups turn ids into maps (null resolver: lookups give null).
  void set_resolver(Resolver r, void* owner);
  // bpf_map_meta_equal against this map's template.
  [[nodiscard]] bool fits_template(const Map& inner) const;

 protected:
  explicit OuterMap(const MapHeader& h) : header_(h) {}
  Map* resolve(std::uint32_t id);
  [[nodiscard]] bool resolved(const Map* m) const;

 private:
  const MapHeader& header_;
  mutable std::mutex mu_;
  Resolver resolver_ = nullptr;
  void* owner_ = nullptr;
  std::vector<std::pair<std::uint32_t, Map*>> cache_;  // ids resolved so far
};

// The outer map interface of `m`, or null when `m` is not a map of maps.
OuterMap* as_outer(Map& m);

}  // namespace userbpf::maps
