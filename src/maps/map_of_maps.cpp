// Maps of maps (design in map_of_maps.hpp): the two outer types over the
// array and hash engines, the template check and the id -> map resolver.
#include "maps/map_of_maps.hpp"

#include <linux/bpf.h>

#include <algorithm>

#include "maps/array.hpp"
#include "maps/hash_table.hpp"
#include "maps/registry.hpp"
#include "maps/shm.hpp"

namespace userbpf::maps {

void OuterMap::set_resolver(Resolver r, void* owner) {
  std::lock_guard g(mu_);
  resolver_ = r;
  owner_ = owner;
  cache_.clear();
}

bool OuterMap::fits_template(const Map& inner) const {
  if (inner.type() != header_.inner_type || inner.key_size() != header_.inner_key_size ||
      inner.value_size() != header_.inner_value_size || inner.map_flags() != header_.inner_map_flags)
    return false;
  // only arrays compare max_entries (array_map_meta_equal), unless BPF_F_INNER_MAP
  if (header_.inner_type != BPF_MAP_TYPE_ARRAY && header_.inner_type != BPF_MAP_TYPE_PERCPU_ARRAY) return true;
  return (header_.inner_map_flags & BPF_F_INNER_MAP) != 0 || inner.max_entries() == header_.inner_max_entries;
}

Map* OuterMap::resolve(std::uint32_t id) {
  if (id == 0) return nullptr;
  std::lock_guard g(mu_);
  for (const auto& [i, m] : cache_)
    if (i == id) return m;
  if (resolver_ == nullptr) return nullptr;
  Map* m = resolver_(owner_, id);
  if (m != nullptr && fits_template(*m)) {
    cache_.emplace_back(id, m);
    return m;
  }
  return nullptr;
}

bool OuterMap::resolved(const Map* m) const {
  std::lock_guard g(mu_);
  return std::any_of(cache_.begin(), cache_.end(), [&](const auto& e) { return e.second == m; });
}

namespace {

bool writable(const Map& m) { return (m.map_flags() & BPF_F_RDONLY) == 0 && !m.frozen(); }

class ArrayOfMaps final : public ArrayBase, public OuterMap {
 public:
  ArrayOfMaps(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc)
      : ArrayBase(std::move(file), desc), OuterMap(header()) {}

  int update_inner(const void* key, const Map& inner, std::uint32_t inner_id, std::uint64_t flags) override {
    if (!writable(*this)) return EPERM;
    if (flags != BPF_ANY) return EINVAL;  // bpf_fd_array_map_update_elem
    const std::uint32_t i = index(key);
    if (i >= max_entries()) return E2BIG;
    if (!fits_template(inner)) return EINVAL;
    id_slot(i).store(inner_id, std::memory_order_release);
    return 0;
  }
  void* prog_lookup(const void* key, std::uint32_t /*cpu*/) override {
    const std::uint32_t i = index(key);
    if (i >= max_entries()) return nullptr;
    return resolve(id_slot(i).load(std::memory_order_acquire));
  }
  int prog_update(const void*, const void*, std::uint64_t, std::uint32_t) override { return EINVAL; }
  int prog_delete(const void*) override { return EINVAL; }
  long for_each_elem(std::uint32_t, ElemVisitor, void*) override { return -EINVAL; }
  [[nodiscard]] bool holds_inner(const Map* m) const override { return resolved(m); }
  [[nodiscard]] std::span<std::uint8_t> program_area() const override { return {}; }

 protected:
  int do_lookup(const void* key, void* value) const override { return id_lookup(key, value); }
  int do_update(const void*, const void*, std::uint64_t) override { return EINVAL; }  // use update_inner
  int do_delete(const void* key) override { return id_delete(key); }
};

class HashOfMaps final : public HashBase, public OuterMap {
 public:
  HashOfMaps(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc)
      : HashBase(std::move(file), desc), OuterMap(header()) {}

  int update_inner(const void* key, const Map& inner, std::uint32_t inner_id, std::uint64_t flags) override {
    if (!writable(*this)) return EPERM;
    if (!fits_template(inner)) return EINVAL;
    return HashBase::do_update(key, &inner_id, flags);
  }
  void* prog_lookup(const void* key, std::uint32_t cpu) override {
    const void* v = HashBase::prog_lookup(key, cpu);
    if (v == nullptr) return nullptr;
    std::uint32_t id;
    std::memcpy(&id, v, 4);
    return resolve(id);
  }
  int prog_update(const void*, const void*, std::uint64_t, std::uint32_t) override { return EINVAL; }
  int prog_delete(const void* key) override { return HashBase::do_delete(key); }
  long for_each_elem(std::uint32_t, ElemVisitor, void*) override { return -EINVAL; }
  [[nodiscard]] bool holds_inner(const Map* m) const override { return resolved(m); }
  [[nodiscard]] std::span<std::uint8_t> program_area() const override { return {}; }

 protected:
  int do_update(const void*, const void*, std::uint64_t) override { return EINVAL; }  // use update_inner
};

// bpf_map_meta_alloc + the outer type's own checks.
int check_outer(const MapSpec& s, bool array) {
  if (s.inner == nullptr) return EBADF;  // no inner_map_fd
  if (s.inner->desc().kind == MapKind::MapOfMaps) return EINVAL;  // one level only
  if (s.value_size != 4) return EINVAL;
  if (array) return check_array(s, false);
  return HashBase::check(s, false);
}

void init_template(std::uint8_t* body, const MapSpec& s) {
  // the header sits just before the body
  auto* h = reinterpret_cast<MapHeader*>(body - kHeaderSize);
  h->inner_type = s.inner->type();
  h->inner_key_size = s.inner->key_size();
  h->inner_value_size = s.inner->value_size();
  h->inner_max_entries = s.inner->max_entries();
  h->inner_map_flags = s.inner->map_flags();
}

}  // namespace

OuterMap* as_outer(Map& m) { return dynamic_cast<OuterMap*>(&m); }

const MapTypeDesc kArrayOfMapsDesc = {
    BPF_MAP_TYPE_ARRAY_OF_MAPS,
    "array_of_maps",
    MapKind::MapOfMaps,
    false,
    BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY,
    kOpLookupBatch | kOpUpdateBatch,
    [](const MapSpec& s) { return check_outer(s, true); },
    &ArrayBase::body_size,
    [](std::uint8_t* body, const MapSpec& s, std::uint32_t) { init_template(body, s); },
    [](std::unique_ptr<SharedFile> f, const MapTypeDesc& d) -> std::unique_ptr<Map> {
      return std::make_unique<ArrayOfMaps>(std::move(f), d);
    },
    false,
};

const MapTypeDesc kHashOfMapsDesc = {
    BPF_MAP_TYPE_HASH_OF_MAPS,
    "hash_of_maps",
    MapKind::MapOfMaps,
    false,
    BPF_F_NO_PREALLOC | BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY | BPF_F_ZERO_SEED,
    kOpLookupBatch | kOpLookupAndDeleteBatch | kOpUpdateBatch | kOpDeleteBatch,
    [](const MapSpec& s) { return check_outer(s, false); },
    &HashBase::body_size,
    [](std::uint8_t* body, const MapSpec& s, std::uint32_t ncpus) {
      HashBase::init(body, s, ncpus);
      init_template(body, s);
    },
    [](std::unique_ptr<SharedFile> f, const MapTypeDesc& d) -> std::unique_ptr<Map> {
      return std::make_unique<HashOfMaps>(std::move(f), d);
    },
    false,
};

}  // namespace userbpf::maps
