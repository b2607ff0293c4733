// BPF_MAP_TYPE_STACK_TRACE; design in stack_trace.hpp.
#include "maps/stack_trace.hpp"

#include <linux/bpf.h>

#include <bit>
#include <cstring>

#include "maps/hash_table.hpp"
#include "maps/registry.hpp"
#include "maps/shm.hpp"

namespace userbpf::maps {

namespace {
constexpr std::uint32_t kMaxStack = 127;  // sysctl_perf_event_max_stack default
constexpr std::size_t kBuildIdElem = sizeof(bpf_stack_build_id);

std::uint32_t elem_size(std::uint32_t map_flags) {
  return (map_flags & BPF_F_STACK_BUILD_ID) != 0 ? kBuildIdElem : 8;
}
std::size_t bucket_bytes(const MapSpec& s) { return 16 + std::size_t{s.value_size / elem_size(s.map_flags)} * 8; }
}  // namespace

struct StackTraceMap::Bucket {
  SharedSpinLock lock;
  std::uint32_t hash;
  std::uint32_t nr;
  std::uint32_t pad;
  std::uint64_t ips[1];  // depth_ of them
};

StackTraceMap::StackTraceMap(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc)
    : Map(std::move(file), desc) {
  nbuckets_ = std::bit_ceil(max_entries());
  build_id_ = (map_flags() & BPF_F_STACK_BUILD_ID) != 0;
  depth_ = value_size() / elem_size(map_flags());
  bucket_size_ = 16 + std::size_t{depth_} * 8;
}

StackTraceMap::Bucket& StackTraceMap::bucket(std::uint32_t i) const {
  return *reinterpret_cast<Bucket*>(body() + std::size_t{i} * bucket_size_);
}

long StackTraceMap::get_stackid(const std::uint64_t* ips, std::uint32_t nr, std::uint64_t flags) {
  if ((flags & ~std::uint64_t{BPF_F_SKIP_FIELD_MASK | BPF_F_USER_STACK | BPF_F_FAST_STACK_CMP |
                              BPF_F_REUSE_STACKID}) != 0)
    return -EINVAL;
  if (nr == 0 || ips == nullptr) return -EFAULT;
  if (nr > depth_) nr = depth_;
  const auto hash = static_cast<std::uint32_t>(hash_bytes(ips, std::size_t{nr} * 8, 0));
  const std::uint32_t id = hash & (nbuckets_ - 1);
  Bucket& b = bucket(id);
  Guard g(b.lock);
  if (b.nr != 0 && b.hash == hash) {
    if ((flags & BPF_F_FAST_STACK_CMP) != 0) return id;
    if (b.nr == nr && std::memcmp(b.ips, ips, std::size_t{nr} * 8) == 0) return id;
  }
  if (b.nr != 0 && (flags & BPF_F_REUSE_STACKID) == 0) return -EEXIST;
  b.hash = hash;
  b.nr = nr;
  std::memcpy(b.ips, ips, std::size_t{nr} * 8);
  return id;
}

int StackTraceMap::do_lookup(const void* key, void* value) const { return copy_out(key, value, false); }
int StackTraceMap::do_lookup_and_delete(const void* key, void* value) { return copy_out(key, value, true); }

int StackTraceMap::copy_out(const void* key, void* value, bool remove) const {
  std::uint32_t id;
  std::memcpy(&id, key, 4);
  if (id >= nbuckets_) return ENOENT;
  Bucket& b = bucket(id);
  Guard g(b.lock);
  if (b.nr == 0) return ENOENT;
  auto* out = static_cast<std::uint8_t*>(value);
  std::memset(out, 0, value_size());
  for (std::uint32_t i = 0; i < b.nr; ++i) {
    if (!build_id_) {
      std::memcpy(out + std::size_t{i} * 8, &b.ips[i], 8);
    } else {
      bpf_stack_build_id rec{};
      rec.status = BPF_STACK_BUILD_ID_IP;
      rec.ip = b.ips[i];
      std::memcpy(out + std::size_t{i} * kBuildIdElem, &rec, kBuildIdElem);
    }
  }
  if (remove) b.nr = 0;
  return 0;
}

int StackTraceMap::do_delete(const void* key) {
  std::uint32_t id;
  std::memcpy(&id, key, 4);
  if (id >= nbuckets_) return E2BIG;
  Bucket& b = bucket(id);
  Guard g(b.lock);
  if (b.nr == 0) return ENOENT;
  b.nr = 0;
  return 0;
}

int StackTraceMap::do_get_next_key(const void* key, void* next_key) const {
  auto used = [&](std::uint32_t i) { return std::atomic_ref<std::uint32_t>(bucket(i).nr).load() != 0; };
  std::uint32_t id = 0;
  if (key != nullptr) {
    std::memcpy(&id, key, 4);
    id = id >= nbuckets_ || !used(id) ? 0 : id + 1;
  }
  while (id < nbuckets_ && !used(id)) ++id;
  if (id >= nbuckets_) return ENOENT;
  std::memcpy(next_key, &id, 4);
  return 0;
}

const MapTypeDesc kStackTraceDesc = {
    BPF_MAP_TYPE_STACK_TRACE,
    "stack_trace",
    MapKind::StackTrace,
    false,
    BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY | BPF_F_STACK_BUILD_ID,
    kOpLookupAndDelete,
    [](const MapSpec& s) {
      // stack_map_alloc
      const std::uint32_t es = elem_size(s.map_flags);
      if (s.max_entries == 0 || s.key_size != 4 || s.value_size < 8 || s.value_size % es != 0) return EINVAL;
      if (s.value_size / es > kMaxStack) return EINVAL;
      if (s.max_entries > (1u << 31)) return E2BIG;
      return 0;
    },
    [](const MapSpec& s, std::uint32_t) -> std::size_t { return std::size_t{std::bit_ceil(s.max_entries)} * bucket_bytes(s); },
    [](std::uint8_t* body, const MapSpec& s, std::uint32_t) {
      const std::size_t bs = bucket_bytes(s);
      for (std::uint32_t i = 0; i < std::bit_ceil(s.max_entries); ++i)
        reinterpret_cast<SharedSpinLock*>(body + std::size_t{i} * bs)->init();
    },
    [](std::unique_ptr<SharedFile> f, const MapTypeDesc& d) -> std::unique_ptr<Map> {
      return std::make_unique<StackTraceMap>(std::move(f), d);
    },
    false,
};

}  // namespace userbpf::maps
