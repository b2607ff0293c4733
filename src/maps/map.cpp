// The parts of every map that do not depend on its type: the host-side
// permission and flag checks of the bpf() commands (in the kernel's order, so
// that the errno matches when several things are wrong), batches built on
// the type's operations, creation and opening of map files.
#include <fmt/format.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "maps/cpu_slots.hpp"
#include "maps/map.hpp"
#include "maps/registry.hpp"
#include "maps/shm.hpp"

namespace userbpf::maps {

Map::Map(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc)
    : file_(std::move(file)), header_(reinterpret_cast<MapHeader*>(file_->data())), desc_(&desc) {}

Map::~Map() = default;

std::uint32_t Map::type() const { return header_->map_type; }
std::uint32_t Map::key_size() const { return header_->key_size; }
std::uint32_t Map::value_size() const { return header_->value_size; }
std::uint32_t Map::max_entries() const { return header_->max_entries; }
std::uint32_t Map::map_flags() const { return header_->map_flags; }
std::uint32_t Map::ncpus() const { return header_->ncpus; }
bool Map::percpu() const { return desc_->percpu; }
std::string Map::name() const { return std::string(header_->name, strnlen(header_->name, sizeof header_->name)); }
std::size_t Map::host_value_size() const {
  return desc_->percpu ? round8(header_->value_size) * header_->ncpus : header_->value_size;
}
bool Map::frozen() const { return header_->frozen.load(std::memory_order_acquire) != 0; }
std::span<std::uint8_t> Map::storage() const { return {file_->data(), file_->size()}; }
std::uint8_t* Map::body() const { return file_->data() + header_->body_offset; }

namespace {
// The kernel's map_get_sys_perms: frozen maps and BPF_F_RDONLY lose write,
// BPF_F_WRONLY loses read (for the syscall side only).
bool can_read(const Map& m) { return (m.map_flags() & BPF_F_WRONLY) == 0; }
bool can_write(const Map& m) { return (m.map_flags() & BPF_F_RDONLY) == 0 && !m.frozen(); }
}  // namespace

int Map::lookup(const void* key, void* value, std::uint64_t flags) const {
  if ((flags & ~std::uint64_t{BPF_F_LOCK}) != 0) return EINVAL;
  if (!can_read(*this)) return EPERM;
  if ((flags & BPF_F_LOCK) != 0) return EINVAL;  // no bpf_spin_lock in our values
  return do_lookup(key, value);
}

int Map::update(const void* key, const void* value, std::uint64_t flags) {
  if (!can_write(*this)) return EPERM;
  if ((flags & BPF_F_LOCK) != 0) return EINVAL;
  return do_update(key, value, flags);
}

int Map::remove(const void* key) {
  if (!can_write(*this)) return EPERM;
  return do_delete(key);
}

int Map::get_next_key(const void* key, void* next_key) const {
  if (!can_read(*this)) return EPERM;
  return do_get_next_key(key, next_key);
}

int Map::lookup_and_delete(const void* key, void* value, std::uint64_t flags) {
  if ((flags & ~std::uint64_t{BPF_F_LOCK}) != 0) return EINVAL;
  if (!can_read(*this) || !can_write(*this)) return EPERM;
  if ((desc_->ops & kOpLookupAndDelete) == 0) return kENOTSUPP;
  if ((flags & BPF_F_LOCK) != 0) return EINVAL;
  return do_lookup_and_delete(key, value);
}

int Map::do_lookup_and_delete(const void* key, void* value) {
  const int e = do_lookup(key, value);
  return e != 0 ? e : do_delete(key);
}

int Map::freeze() {
  if (!can_write(*this)) return EPERM;
  std::uint32_t expected = 0;
  return header_->frozen.compare_exchange_strong(expected, 1, std::memory_order_acq_rel) ? 0 : EBUSY;
}

int Map::lookup_batch(bool first, std::uint32_t& token, void* keys, void* values, std::uint32_t& count,
                      bool and_delete) {
  const unsigned need = and_delete ? kOpLookupAndDeleteBatch : kOpLookupBatch;
  if ((desc_->ops & need) == 0) return kENOTSUPP;
  if (!can_read(*this) || (and_delete && !can_write(*this))) return EPERM;
  if (count == 0) return 0;
  if (first) token = 0;
  return do_lookup_batch(first, token, keys, values, count, and_delete);
}

// Arrays (generic_map_lookup_batch): the token is the last key copied.
int Map::do_lookup_batch(bool first, std::uint32_t& token, void* keys, void* values, std::uint32_t& count,
                         bool and_delete) {
  const std::uint32_t max = count;
  std::uint32_t cp = 0;
  // like get_next_key: after the last index ENOENT, after an out-of-range one restart at 0
  std::uint32_t idx = first || token >= max_entries() ? 0 : token + 1;
  std::uint32_t last = token;
  auto* k = static_cast<std::uint8_t*>(keys);
  auto* v = static_cast<std::uint8_t*>(values);
  const std::size_t vs = host_value_size();
  int err = 0;
  while (cp < max) {
    if (idx >= max_entries()) {
      err = ENOENT;
      break;
    }
    std::memcpy(k + std::size_t{cp} * 4, &idx, 4);
    const int e = and_delete ? do_lookup_and_delete(&idx, v + cp * vs) : do_lookup(&idx, v + cp * vs);
    if (e == ENOENT) {
      ++idx;
      continue;
    }
    if (e != 0) {
      err = e;
      break;
    }
    last = idx++;
    ++cp;
  }
  count = cp;
  token = last;
  return err;
}

int Map::update_batch(const void* keys, const void* values, std::uint32_t& count, std::uint64_t elem_flags) {
  if ((desc_->ops & kOpUpdateBatch) == 0) return kENOTSUPP;
  if ((elem_flags & ~std::uint64_t{BPF_F_LOCK}) != 0) return EINVAL;  // generic_map_update_batch
  if (!can_write(*this)) return EPERM;
  const auto* k = static_cast<const std::uint8_t*>(keys);
  const auto* v = static_cast<const std::uint8_t*>(values);
  const std::size_t vs = host_value_size();
  std::uint32_t cp = 0;
  int err = 0;
  for (; cp < count; ++cp) {
    err = update(k + std::size_t{cp} * key_size(), v + cp * vs, elem_flags);
    if (err != 0) break;
  }
  count = cp;
  return err;
}

int Map::delete_batch(const void* keys, std::uint32_t& count) {
  if ((desc_->ops & kOpDeleteBatch) == 0) return kENOTSUPP;
  if (!can_write(*this)) return EPERM;
  const auto* k = static_cast<const std::uint8_t*>(keys);
  std::uint32_t cp = 0;
  int err = 0;
  for (; cp < count; ++cp) {
    err = remove(k + std::size_t{cp} * key_size());
    if (err != 0) break;
  }
  count = cp;
  return err;
}

// ------------------------------------------------------------------ creation

namespace {


// The kernel's bpf_obj_name_cpy: [A-Za-z0-9_.], NUL-terminated within 16 bytes.
bool valid_name(const std::string& name) {
  if (name.size() >= BPF_OBJ_NAME_LEN) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
  });
}

}  // namespace

Result<std::unique_ptr<Map>> create_map(const MapSpec& spec, const std::string& dir) {
  const MapTypeDesc* desc = find_map_type(spec.type);
  if (desc == nullptr) return make_error(EINVAL, fmt::format("map type {} is not supported", spec.type));
  auto fail = [&](int code, std::string_view why) -> Error {
    return make_error(code, fmt::format("map '{}' ({}): {}", spec.name, desc->name, why));
  };
  if (!valid_name(spec.name)) return fail(EINVAL, "invalid name (at most 15 of [A-Za-z0-9_.])");
  if ((spec.map_flags & BPF_F_RDONLY) != 0 && (spec.map_flags & BPF_F_WRONLY) != 0)
    return fail(EINVAL, "BPF_F_RDONLY and BPF_F_WRONLY together");
  if ((spec.map_flags & BPF_F_RDONLY_PROG) != 0 && (spec.map_flags & BPF_F_WRONLY_PROG) != 0)
    return fail(EINVAL, "BPF_F_RDONLY_PROG and BPF_F_WRONLY_PROG together");
  if ((spec.map_flags & ~desc->flags_mask) != 0)
    return fail(EINVAL, fmt::format("map_flags 0x{:x} not allowed for this type", spec.map_flags));
  if (spec.map_extra != 0) return fail(EINVAL, "map_extra must be 0 for this type");
  if ((spec.map_flags & BPF_F_NUMA_NODE) != 0 && (desc->percpu || spec.numa_node != 0))
    return fail(EINVAL, "numa_node not available");
  if (const int e = desc->check(spec); e != 0) {
    return fail(e, fmt::format("key_size {} value_size {} max_entries {} rejected", spec.key_size, spec.value_size,
                               spec.max_entries));
  }
  const std::uint32_t ncpus = desc->percpu ? (spec.ncpus != 0 ? spec.ncpus : default_cpu_count()) : 1;
  const std::size_t body = desc->body_size(spec, ncpus);
  const std::size_t total = kHeaderSize + align_up(body, 64);
  if (body == 0 || total > (std::size_t{1} << 40)) return fail(E2BIG, "map too large");
  auto file = SharedFile::create(dir, total);
  if (!file) return fail(file.error().code == ENOSPC ? E2BIG : file.error().code, file.error().message);
  auto* h = new ((*file)->data()) MapHeader{};
  std::memcpy(h->magic, kMapMagic, sizeof kMapMagic);
  h->layout_version = kLayoutVersion;
  h->map_type = spec.type;
  h->key_size = spec.key_size;
  h->value_size = spec.value_size;
  h->max_entries = spec.max_entries;
  h->map_flags = spec.map_flags;
  h->ncpus = ncpus;
  h->numa_node = spec.numa_node;
  h->btf_key_type_id = spec.btf_key_type_id;
  h->btf_value_type_id = spec.btf_value_type_id;
  h->file_size = total;
  h->body_offset = kHeaderSize;
  std::random_device rd;
  h->hash_seed = (spec.map_flags & BPF_F_ZERO_SEED) != 0 ? 0 : (std::uint64_t{rd()} << 32 | rd());
  std::memcpy(h->name, spec.name.data(), spec.name.size());
  desc->init((*file)->data() + kHeaderSize, spec, ncpus);
  return desc->attach(std::move(*file), *desc);
}

Result<std::unique_ptr<Map>> attach_map(std::unique_ptr<SharedFile> file) {
  if (file->size() < kHeaderSize) return make_error(EINVAL, "file too small for a map header");
  const auto* h = reinterpret_cast<const MapHeader*>(file->data());
  if (std::memcmp(h->magic, kMapMagic, sizeof kMapMagic) != 0)
    return make_error(EINVAL, "not a userbpf map file (bad magic)");
  if (h->layout_version != kLayoutVersion)
    return make_error(EINVAL, fmt::format("map file layout version {} (this build reads {})", h->layout_version,
                                          kLayoutVersion));
  if (h->file_size != file->size()) return make_error(EINVAL, "map file size does not match its header");
  const MapTypeDesc* desc = find_map_type(h->map_type);
  if (desc == nullptr) return make_error(EINVAL, fmt::format("map file of unsupported type {}", h->map_type));
  MapSpec spec;
  spec.type = h->map_type;
  spec.key_size = h->key_size;
  spec.value_size = h->value_size;
  spec.max_entries = h->max_entries;
  spec.map_flags = h->map_flags;
  if (h->body_offset != kHeaderSize || desc->body_size(spec, h->ncpus) + kHeaderSize > file->size())
    return make_error(EINVAL, "map file body does not fit its header");
  return desc->attach(std::move(file), *desc);
}

Result<std::unique_ptr<Map>> open_map(const std::string& path) {
  auto file = SharedFile::open(path);
  if (!file) return file.error();
  auto m = attach_map(std::move(*file));
  if (!m) m.error().where = path;
  return m;
}

}  // namespace userbpf::maps
