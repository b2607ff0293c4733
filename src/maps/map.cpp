// The parts of every map that do not depend on its type: the host-side
// permission and flag checks of the bpf() commands (in the kernel's order, so
// that the errno matches when several things are wrong), batches built on
// the type's operations, creation and opening of map files.
#include <fmt/format.h>
#include <linux/bpf.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>

#include "maps/cpu_slots.hpp"
#include "maps/map.hpp"
#include "maps/registry.hpp"
#include "maps/shm.hpp"

namespace userbpf::maps {

Map::Map(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc)
    : file_(std::move(file)),
      header_(reinterpret_cast<MapHeader*>(file_->data())),
      desc_(&desc),
      key_size_(header_->key_size),
      value_size_(header_->value_size),
      max_entries_(header_->max_entries),
      ncpus_(header_->ncpus),
      percpu_(desc.percpu) {}

Map::~Map() = default;

std::uint32_t Map::type() const { return header_->map_type; }
std::uint32_t Map::map_flags() const { return header_->map_flags; }
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

namespace {
// Copies a value without touching the 4-byte lock word at `off` in either
// buffer (another thread may be taking it); `zero` clears it in dst.
void copy_around(void* dst, const void* src, std::size_t size, std::int32_t off, bool zero) {
  if (off < 0) {
    std::memcpy(dst, src, size);
    return;
  }
  const auto o = static_cast<std::size_t>(off);
  auto* d = static_cast<std::uint8_t*>(dst);
  const auto* s = static_cast<const std::uint8_t*>(src);
  std::memcpy(d, s, o);
  if (zero) std::memset(d + o, 0, 4);
  std::memcpy(d + o + 4, s + o + 4, size - o - 4);
}

// The struct bpf_timer (16 bytes at `off`, if any) reads and is written as zeros.
// Stored values are cleared with atomic stores: the timer thread of the
// process that owns the timer reads the field concurrently.
void zero_timer(void* dst, std::int32_t off) {
  if (off < 0) return;
  auto* p = static_cast<std::uint8_t*>(dst) + off;
  if (reinterpret_cast<std::uintptr_t>(p) % 8 != 0) {
    std::memset(p, 0, 16);
    return;
  }
  for (int w = 0; w < 2; ++w)
    std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(p + 8 * w)).store(0, std::memory_order_release);
}

// Copies a value around its lock word and, if any, its timer field (never
// written by memcpy: the owning process's timer thread reads it atomically),
// which ends up zero.
void copy_fields(void* dst, const void* src, std::size_t size, std::int32_t lock, std::int32_t timer, bool zero) {
  if (timer < 0) {
    copy_around(dst, src, size, lock, zero);
    return;
  }
  auto* d = static_cast<std::uint8_t*>(dst);
  const auto* s = static_cast<const std::uint8_t*>(src);
  const auto t = static_cast<std::size_t>(timer);
  const bool lock_low = lock >= 0 && static_cast<std::size_t>(lock) < t;
  copy_around(d, s, t, lock_low ? lock : -1, zero);
  const std::int32_t hi_lock = lock >= 0 && !lock_low ? lock - timer - 16 : -1;
  copy_around(d + t + 16, s + t + 16, size - t - 16, hi_lock, zero);
  zero_timer(dst, timer);
}
}  // namespace

void Map::copy_value_in(void* dst, const void* src) const {
  copy_fields(dst, src, value_size(), spin_lock_off(), timer_off(), false);
}
void Map::copy_value_out(void* dst, const void* src) const {
  copy_fields(dst, src, value_size(), spin_lock_off(), timer_off(), true);
}
void Map::free_fields(void* value) const { zero_timer(value, timer_off()); }

int Map::lookup(const void* key, void* value, std::uint64_t flags) const {
  if ((flags & ~std::uint64_t{BPF_F_LOCK}) != 0) return EINVAL;
  if (!can_read(*this)) return EPERM;
  if ((flags & BPF_F_LOCK) == 0) return do_lookup(key, value);
  if (spin_lock_off() < 0) return EINVAL;  // no bpf_spin_lock in the value
  // BPF_F_LOCK: copy the value under its own lock (hash and array only)
  void* v = const_cast<Map*>(this)->prog_lookup(key, 0);
  if (v == nullptr) return ENOENT;
  auto* lock = static_cast<std::uint8_t*>(v) + spin_lock_off();
  value_lock(lock);
  copy_value_out(value, v);
  value_unlock(lock);
  return 0;
}

int Map::update(const void* key, const void* value, std::uint64_t flags) {
  if (!can_write(*this)) return EPERM;
  if ((flags & BPF_F_LOCK) == 0) return do_update(key, value, flags);
  if (spin_lock_off() < 0) return EINVAL;
  const std::uint64_t mode = flags & ~std::uint64_t{BPF_F_LOCK};
  if (mode > BPF_EXIST) return EINVAL;
  // an existing value is updated in place under its lock; a new key is inserted normally
  void* v = prog_lookup(key, 0);
  if (v == nullptr) return do_update(key, value, flags);
  if (mode == BPF_NOEXIST) return EEXIST;
  auto* lock = static_cast<std::uint8_t*>(v) + spin_lock_off();
  value_lock(lock);
  copy_value_in(v, value);
  value_unlock(lock);
  return 0;
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

// ---- program-side operations that only some types have
int Map::push(const void* /*value*/, std::uint64_t /*flags*/) { return EINVAL; }
int Map::pop(void* /*value*/) { return EINVAL; }
int Map::peek(void* /*value*/) { return EINVAL; }
long Map::for_each_elem(std::uint32_t /*cpu*/, ElemVisitor /*visit*/, void* /*ctx*/) { return -EINVAL; }
void* Map::lookup_percpu(const void* /*key*/, std::uint32_t /*cpu*/) { return nullptr; }
bool Map::prog_can_read() const { return (header_->map_flags & BPF_F_WRONLY_PROG) == 0; }
bool Map::prog_can_write() const { return (header_->map_flags & BPF_F_RDONLY_PROG) == 0; }
std::int32_t Map::spin_lock_off() const { return static_cast<std::int32_t>(header_->spin_lock_off1) - 1; }
std::int32_t Map::timer_off() const { return static_cast<std::int32_t>(header_->timer_off1) - 1; }

void value_lock(void* lock_word) { static_cast<SharedSpinLock*>(lock_word)->lock(); }
void value_unlock(void* lock_word) { static_cast<SharedSpinLock*>(lock_word)->unlock(); }
static_assert(sizeof(SharedSpinLock) == 4, "struct bpf_spin_lock is 4 bytes");

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
  if ((desc_->ops & kOpKeyedBatch) != 0) return EINVAL;  // the token is a key: lookup_batch_keyed
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

int Map::lookup_batch_keyed(const void* in_key, void* out_key, void* keys, void* values, std::uint32_t& count) {
  if ((desc_->ops & kOpLookupBatch) == 0) return kENOTSUPP;
  if (!can_read(*this)) return EPERM;
  const std::uint32_t max = count;
  count = 0;
  if (max == 0) return 0;
  const std::size_t ks = key_size();
  const std::size_t vs = host_value_size();
  auto* k = static_cast<std::uint8_t*>(keys);
  auto* v = static_cast<std::uint8_t*>(values);
  const void* prev = in_key;
  int err = 0;
  int retries = 3;  // MAP_LOOKUP_RETRIES: a key deleted between next_key and lookup
  while (count < max) {
    std::uint8_t* key = k + count * ks;
    err = do_get_next_key(prev, key);
    if (err != 0) break;
    err = do_lookup(key, v + count * vs);
    if (err == ENOENT) {
      if (retries-- > 0) continue;
      err = EINTR;
      break;
    }
    if (err != 0) break;
    prev = key;
    retries = 3;
    ++count;
  }
  if (count > 0) std::memcpy(out_key, k + (count - 1) * ks, ks);
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
  if (spec.map_extra != 0 && !desc->map_extra_ok) return fail(EINVAL, "map_extra must be 0 for this type");
  if ((spec.map_flags & BPF_F_NUMA_NODE) != 0 && (desc->percpu || spec.numa_node != 0))
    return fail(EINVAL, "numa_node not available");
  if (spec.spin_lock_off >= 0) {
    if (spec.type != BPF_MAP_TYPE_HASH && spec.type != BPF_MAP_TYPE_ARRAY)
      return fail(EOPNOTSUPP, "bpf_spin_lock in values of this map type");
    if (static_cast<std::uint64_t>(spec.spin_lock_off) + 4 > spec.value_size || spec.spin_lock_off % 4 != 0)
      return fail(EINVAL, "bpf_spin_lock outside the value or misaligned");
  }
  if (spec.timer_off >= 0) {
    // the kernel's map_check_btf: BPF_TIMER only in hash, LRU hash and array values
    if (spec.type != BPF_MAP_TYPE_HASH && spec.type != BPF_MAP_TYPE_LRU_HASH && spec.type != BPF_MAP_TYPE_ARRAY)
      return fail(EOPNOTSUPP, "bpf_timer in values of this map type");
    if (static_cast<std::uint64_t>(spec.timer_off) + 16 > spec.value_size || spec.timer_off % 8 != 0)
      return fail(EINVAL, "bpf_timer outside the value or misaligned");
  }
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
  h->map_extra = spec.map_extra;
  h->spin_lock_off1 = spec.spin_lock_off >= 0 ? static_cast<std::uint32_t>(spec.spin_lock_off) + 1 : 0;
  h->timer_off1 = spec.timer_off >= 0 ? static_cast<std::uint32_t>(spec.timer_off) + 1 : 0;
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
  spec.map_extra = h->map_extra;
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
