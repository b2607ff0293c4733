// BPF_MAP_TYPE_ARRAY: fixed-size array of values indexed by a u32 key (see
// array.hpp for storage and concurrency). Values are addressable directly
// by programs (BPF_PSEUDO_MAP_VALUE), as global data needs.
#include "maps/array.hpp"

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
};

}  // namespace userbpf::maps
