// BPF_MAP_TYPE_PERCPU_ARRAY: an array with one value per CPU slot (see
// array.hpp for storage, cpu_slots.hpp for what a CPU slot is). Programs
// see the value of the slot their run holds; the host sees all slots.
#include "maps/array.hpp"

namespace userbpf::maps {

namespace {

class PerCpuArrayMap final : public ArrayBase {
 public:
  PerCpuArrayMap(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc) : ArrayBase(std::move(file), desc) {}
};

}  // namespace

const MapTypeDesc kPerCpuArrayDesc = {
    BPF_MAP_TYPE_PERCPU_ARRAY,
    "percpu_array",
    MapKind::Array,
    true,
    BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY | BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG,
    kOpLookupBatch | kOpUpdateBatch,
    [](const MapSpec& s) { return check_array(s, true); },
    &ArrayBase::body_size,
    &ArrayBase::init,
    [](std::unique_ptr<SharedFile> f, const MapTypeDesc& d) -> std::unique_ptr<Map> {
      return std::make_unique<PerCpuArrayMap>(std::move(f), d);
    },
    false,
};

}  // namespace userbpf::maps
