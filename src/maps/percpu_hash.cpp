// BPF_MAP_TYPE_PERCPU_HASH: a hash map whose elements hold one value per CPU
// slot (engine: hash_table.hpp; slots: cpu_slots.hpp). A program's update
// writes its own slot (a new element's other slots start at zero); the host
// reads and writes all slots, round8(value_size) bytes apart.
#include "maps/hash_table.hpp"

namespace userbpf::maps {

namespace {

class PerCpuHashMap final : public HashBase {
 public:
  PerCpuHashMap(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc) : HashBase(std::move(file), desc) {}
};

}  // namespace

const MapTypeDesc kPerCpuHashDesc = {
    BPF_MAP_TYPE_PERCPU_HASH,
    "percpu_hash",
    MapKind::Hash,
    true,
    BPF_F_NO_PREALLOC | BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY | BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG |
        BPF_F_ZERO_SEED,
    kOpLookupAndDelete | kOpLookupBatch | kOpLookupAndDeleteBatch | kOpUpdateBatch | kOpDeleteBatch,
    [](const MapSpec& s) { return HashBase::check(s, true); },
    &HashBase::body_size,
    &HashBase::init,
    [](std::unique_ptr<SharedFile> f, const MapTypeDesc& d) -> std::unique_ptr<Map> {
      return std::make_unique<PerCpuHashMap>(std::move(f), d);
    },
    false,
};

}  // namespace userbpf::maps
