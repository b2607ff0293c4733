// BPF_MAP_TYPE_ARRAY: fixed-size array of values indexed by a u32 key (see
// array.hpp for storage and concurrency). Values are addressable directly
// by programs (BPF_PSEUDO_MAP_VALUE), as global data needs.
#include "maps/array.hpp"

#include <fmt/format.h>
#include <sys/mman.h>

#include <cerrno>

namespace userbpf::maps {

namespace {

class ArrayMap final : public ArrayBase {
 public:
  ArrayMap(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc) : ArrayBase(std::move(file), desc) {}
  void* direct_value(std::uint32_t index) override {
    return index < max_entries() ? slot_ptr(index, 0) : nullptr;
  }
};

}  // namespace

Result<std::span<std::uint8_t>> mmap_values(const Map& map, bool writable) {
  if (map.type() != BPF_MAP_TYPE_ARRAY || (map.map_flags() & BPF_F_MMAPABLE) == 0)
    return make_error(EINVAL, fmt::format("map '{}' is not a BPF_F_MMAPABLE array", map.name()));
  if (writable && (map.frozen() || (map.map_flags() & BPF_F_RDONLY) != 0))
    return make_error(EPERM, fmt::format("map '{}' is frozen or read-only: no writable mapping", map.name()));
  const std::size_t len = align_up(round8(map.value_size()) * map.max_entries(), ArrayBase::kMmapOffset);
  const int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  void* p = ::mmap(nullptr, len, prot, MAP_SHARED, map.file().fd(), static_cast<off_t>(ArrayBase::kMmapOffset));
  if (p == MAP_FAILED) return make_error(errno, fmt::format("mmap of map '{}': {}", map.name(), std::strerror(errno)));
  return std::span<std::uint8_t>(static_cast<std::uint8_t*>(p), len);
}

const MapTypeDesc kArrayDesc = {
    BPF_MAP_TYPE_ARRAY,
    "array",
    MapKind::Array,
    false,
    BPF_F_NUMA_NODE | BPF_F_MMAPABLE | BPF_F_RDONLY | BPF_F_WRONLY | BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG |
        BPF_F_INNER_MAP,
    kOpLookupBatch | kOpUpdateBatch,
    [](const MapSpec& s) { return check_array(s, false); },
    &ArrayBase::body_size,
    &ArrayBase::init,
    [](std::unique_ptr<SharedFile> f, const MapTypeDesc& d) -> std::unique_ptr<Map> {
      return std::make_unique<ArrayMap>(std::move(f), d);
    },
    false,
};

}  // namespace userbpf::maps
