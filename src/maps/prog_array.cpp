// BPF_MAP_TYPE_PROG_ARRAY: the targets of bpf_tail_call. Each element is a
// u32 program id (0 = empty) stored atomically in the shared mapping. The
// bpf() layer translates the program handle a host passes as the value into
// the program's id (and keeps a reference to the program); a lookup from the
// host returns the id, as the kernel does. Ids are those of the runtime that
// stored them: another process sees the numbers but resolves them against
// its own programs (documented in docs/maps.md).
#include <atomic>

#include "maps/array.hpp"

namespace userbpf::maps {

namespace {

class ProgArrayMap final : public ArrayBase {
 public:
  ProgArrayMap(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc) : ArrayBase(std::move(file), desc) {}

  // Programs may not look up, update or delete program arrays (the kernel's
  // verifier refuses); only bpf_tail_call reads them, through prog_id().
  void* prog_lookup(const void* /*key*/, std::uint32_t /*cpu*/) override { return nullptr; }
  int prog_update(const void*, const void*, std::uint64_t, std::uint32_t) override { return EINVAL; }
  int prog_delete(const void*) override { return EINVAL; }
  long for_each_elem(std::uint32_t, ElemVisitor, void*) override { return -EINVAL; }
  [[nodiscard]] std::span<std::uint8_t> program_area() const override { return {}; }

 protected:
  int do_lookup(const void* key, void* value) const override { return id_lookup(key, value); }
  int do_update(const void* key, const void* value, std::uint64_t flags) override {
    if (flags != BPF_ANY) return EINVAL;
    const std::uint32_t i = index(key);
    if (i >= max_entries()) return E2BIG;
    std::uint32_t id;
    std::memcpy(&id, value, sizeof id);
    id_slot(i).store(id, std::memory_order_release);
    return 0;
  }
  int do_delete(const void* key) override { return id_delete(key); }
};

}  // namespace

// The program id in slot `index` (0 when empty or out of range).
std::uint32_t prog_array_get(const Map& map, std::uint32_t index) {
  if (map.desc().kind != MapKind::ProgArray || index >= map.max_entries()) return 0;
  auto* p = reinterpret_cast<std::uint32_t*>(map.storage().data() + kHeaderSize + std::size_t{index} * 8);
  return std::atomic_ref<std::uint32_t>(*p).load(std::memory_order_acquire);
}

const MapTypeDesc kProgArrayDesc = {
    BPF_MAP_TYPE_PROG_ARRAY,
    "prog_array",
    MapKind::ProgArray,
    false,
    BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY,
    0,
    [](const MapSpec& s) {
      if (s.value_size != 4) return EINVAL;
      return check_array(s, false);
    },
    &ArrayBase::body_size,
    &ArrayBase::init,
    [](std::unique_ptr<SharedFile> f, const MapTypeDesc& d) -> std::unique_ptr<Map> {
      return std::make_unique<ProgArrayMap>(std::move(f), d);
    },
    false,
};

}  // namespace userbpf::maps
