// BPF_MAP_TYPE_HASH: keys of key_size bytes to values of value_size bytes,
// max_entries preallocated elements (engine and invariants: hash_table.hpp).
#include "maps/hash_table.hpp"

namespace userbpf::maps {

namespace {

class HashMap final : public HashBase {
 public:
  HashMap(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc) : HashBase(std::move(file), desc) {}
};

}  // namespace

const MapTypeDesc kHashDesc = {
    BPF_MAP_TYPE_HASH,
    "hash",
    MapKind::Hash,
    false,
    BPF_F_NO_PREALLOC | BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY | BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG |
        BPF_F_ZERO_SEED,
    kOpLookupAndDelete | kOpLookupBatch | kOpLookupAndDeleteBatch | kOpUpdateBatch | kOpDeleteBatch,
    [](const MapSpec& s) { return HashBase::check(s, false); },
    &HashBase::body_size,
    &HashBase::init,
    [](std::unique_ptr<SharedFile> f, const MapTypeDesc& d) -> std::unique_ptr<Map> {
      return std::make_unique<HashMap>(std::move(f), d);
    },
    false,
};

}  // namespace userbpf::maps
