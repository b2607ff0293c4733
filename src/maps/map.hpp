// Maps: one interface (maps::Map), one file per map type, a registry generated
// from a descriptor table (registry.cpp), storage in shared-memory files.
//
// Storage model
// -------------
// Every map lives in one file, mmap'ed MAP_SHARED: a MapHeader (shm.hpp)
// followed by the type's body. The body holds offsets, never pointers, so
// any process that maps the file (at any address) sees the same map. A map
// that is not pinned is an unnamed O_TMPFILE in the pin directory; pinning
// hard-links that file to the pin path (linkat), so the map outlives the
// process exactly as long as the path exists (or another process holds it
// open). Concurrency: process-shared locks (SharedSpinLock, robust mutexes) and atomics inside the
// mapping (see hash_table.hpp and array.cpp for each type's rules).
//
// Two families of operations:
//   - host (the bpf() commands): copy keys/values in and out, per-CPU maps
//     copy all slots (value rounded up to 8 bytes per slot, as the kernel);
//     they check BPF_F_RDONLY/WRONLY and freeze and return kernel errno.
//   - program (the helpers): lookup returns a pointer INTO the shared mapping
//     (the program writes through it as in the kernel); per-CPU maps use the
//     run's CPU slot (cpu_slots.hpp).
// Every operation returns 0 or a positive kernel errno (hot path: no
// allocation, no exceptions).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "base/error.hpp"

namespace userbpf::maps {

// What MAP_CREATE receives (the bpf_attr fields we use).
struct MapSpec {
  std::uint32_t type = 0;  // enum bpf_map_type
  std::uint32_t key_size = 0;
  std::uint32_t value_size = 0;
  std::uint32_t max_entries = 0;
  std::uint32_t map_flags = 0;
  std::uint32_t numa_node = 0;
  std::uint64_t map_extra = 0;
  std::uint32_t btf_key_type_id = 0;
  std::uint32_t btf_value_type_id = 0;
  std::string name;  // up to 15 characters (BPF_OBJ_NAME_LEN - 1)
  // Per-CPU slot count for per-CPU maps (0: cpu_slots::default_count()).
  std::uint32_t ncpus = 0;
  // Offset of the struct bpf_spin_lock in the value (from the value's BTF;
  // -1: none). Host BPF_F_LOCK operations need it; lookups zero that field
  // and updates leave it alone, as the kernel.
  std::int32_t spin_lock_off = -1;
  // Offset of the 16-byte struct bpf_timer in the value (from the value's
  // BTF; -1: none). Hash, LRU hash and array maps only (EOPNOTSUPP else).
  // Host lookups read it as zeros; updates of a value reset it (which
  // cancels its timer, helpers/timer.cpp).
  std::int32_t timer_off = -1;
  // Maps of maps: the inner map template (the map behind inner_map_fd).
  const class Map* inner = nullptr;
};

class SharedFile;
struct MapHeader;
struct MapTypeDesc;

class Map {
 public:
  virtual ~Map();
  Map(const Map&) = delete;
  Map& operator=(const Map&) = delete;

  // ---- description (from the shared header)
  [[nodiscard]] std::uint32_t type() const;
  // (sizes and per-CPU-ness are fixed at creation: cached here, inline for the helpers' hot path)
  [[nodiscard]] std::uint32_t key_size() const { return key_size_; }
  [[nodiscard]] std::uint32_t value_size() const { return value_size_; }
  [[nodiscard]] std::uint32_t max_entries() const { return max_entries_; }
  [[nodiscard]] std::uint32_t map_flags() const;
  [[nodiscard]] std::uint32_t ncpus() const { return ncpus_; }  // 1 for maps that are not per-CPU
  [[nodiscard]] std::string name() const;
  [[nodiscard]] const MapTypeDesc& desc() const { return *desc_; }
  [[nodiscard]] bool percpu() const { return percpu_; }
  // Size of a value as the host sees it: value_size, or round_up(value_size, 8) * ncpus.
  [[nodiscard]] std::size_t host_value_size() const;
  [[nodiscard]] bool frozen() const;
  [[nodiscard]] SharedFile& file() const { return *file_; }
  // The whole shared mapping (checked-mode runs register it as a region).
  [[nodiscard]] std::span<std::uint8_t> storage() const;

  // ---- host operations (bpf() commands)
  int lookup(const void* key, void* value, std::uint64_t flags) const;
  int update(const void* key, const void* value, std::uint64_t flags);
  int remove(const void* key);
  int get_next_key(const void* key, void* next_key) const;  // key may be null
  int lookup_and_delete(const void* key, void* value, std::uint64_t flags);
  // Freeze: host writes fail with EPERM afterwards; EBUSY if already frozen.
  int freeze();
  // Batches. `token` in: where to start (ignored when `first`); out: where
  // to continue. count in: capacity; out: elements copied. ENOENT: no more
  // elements after this batch (count may still be > 0), as the kernel.
  int lookup_batch(bool first, std::uint32_t& token, void* keys, void* values, std::uint32_t& count,
                   bool and_delete);
  // The kernel's generic_map_lookup_batch for types with kOpKeyedBatch:
  // walks with get_next_key from `in_key` (null: from the start), copies up
  // to `count` elements; `out_key` gets the last key copied. ENOENT: the
  // walk is complete.
  int lookup_batch_keyed(const void* in_key, void* out_key, void* keys, void* values, std::uint32_t& count);
  int update_batch(const void* keys, const void* values, std::uint32_t& count, std::uint64_t elem_flags);
  int delete_batch(const void* keys, std::uint32_t& count);

  // ---- program operations (helpers). `cpu` is the run's CPU slot.
  // Maps of maps: prog_lookup returns the inner maps::Map* (or null).
  virtual void* prog_lookup(const void* key, std::uint32_t cpu) = 0;
  // prog_lookup without virtual dispatch (bpf_map_lookup_elem's hot path):
  // types with a lock-free lookup install a direct function, as the kernel's
  // verifier patches the call to map->ops->map_lookup_elem.
  void* lookup_from_prog(const void* key, std::uint32_t cpu) { return prog_lookup_fn_(*this, key, cpu); }
  // The type's direct program-side lookup, for a JIT that calls it without
  // the helper (as the kernel's verifier patches map_lookup_elem to the
  // map's own lookup): fn(map, key, cpu) behaves exactly as
  // bpf_map_lookup_elem with a valid map and key (no argument checks), and
  // does not fail, call back or touch the run's Env. Null for types
  // without one (they dispatch through prog_lookup). `cpu` is the run's
  // CPU slot for per-CPU maps (0 otherwise).
  using ProgLookupFn = void* (*)(Map& map, const void* key, std::uint32_t cpu);
  [[nodiscard]] ProgLookupFn direct_lookup() const {
    return prog_lookup_fn_ == &virtual_prog_lookup ? nullptr : prog_lookup_fn_;
  }
  virtual int prog_update(const void* key, const void* value, std::uint64_t flags, std::uint32_t cpu) = 0;
  virtual int prog_delete(const void* key) = 0;
  // Address of the value at `index` for BPF_PSEUDO_MAP_VALUE (arrays only).
  virtual void* direct_value(std::uint32_t /*index*/) { return nullptr; }
  // The bytes a program may reach through pointers it got from this map
  // (the elements; not the header, locks or buckets). Checked-mode runs
  // register exactly this as the map's region.
  [[nodiscard]] virtual std::span<std::uint8_t> program_area() const { return {}; }

  // Queue / stack / bloom filter (bpf_map_push_elem / pop / peek). Return 0
  // or a positive errno; maps without them return EINVAL (the kernel's
  // verifier refuses those calls). Bloom filter: push adds `value`, peek
  // tests it (0: maybe present, ENOENT: absent), pop is EOPNOTSUPP.
  virtual int push(const void* value, std::uint64_t flags);
  virtual int pop(void* value);
  virtual int peek(void* value);
  // bpf_for_each_map_elem: calls `visit` for each element (per-CPU maps:
  // the value of slot `cpu`) until it returns nonzero; returns the number of
  // elements visited (including the one that stopped it), or a negative
  // errno (-EINVAL) for maps that cannot be iterated.
  using ElemVisitor = std::uint64_t (*)(void* ctx, const void* key, void* value);
  virtual long for_each_elem(std::uint32_t cpu, ElemVisitor visit, void* ctx);
  // bpf_map_lookup_percpu_elem: the value of slot `cpu` of a per-CPU map
  // (null: not per-CPU, no such key or cpu >= ncpus()).
  virtual void* lookup_percpu(const void* key, std::uint32_t cpu);
  // Maps of maps: true when `m` is an inner map this map handed to a
  // program (so a helper may accept it as a map argument).
  [[nodiscard]] virtual bool holds_inner(const Map* /*m*/) const { return false; }
  // Redirect maps (devmap, devmap_hash, cpumap, xskmap) for
  // bpf_redirect_map: whether `key` names a target (the kernel's
  // map->ops->map_redirect lookup), and the flags this type accepts beyond
  // the fallback action in the lower bits (BPF_F_BROADCAST and
  // BPF_F_EXCLUDE_INGRESS for devmaps). Other maps: false / 0.
  [[nodiscard]] virtual bool redirect_target(std::uint32_t /*key*/) const { return false; }
  [[nodiscard]] virtual std::uint64_t redirect_flags() const { return 0; }
  // BPF_F_RDONLY_PROG / BPF_F_WRONLY_PROG (for the verifier and helpers).
  [[nodiscard]] bool prog_can_read() const;
  [[nodiscard]] bool prog_can_write() const;
  // Offset of the bpf_spin_lock in the value, -1 if none.
  [[nodiscard]] std::int32_t spin_lock_off() const;
  // Offset of the struct bpf_timer in the value, -1 if none.
  [[nodiscard]] std::int32_t timer_off() const;

 protected:
  Map(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc);
  [[nodiscard]] MapHeader& header() const { return *header_; }
  // Installs `fn` (which must behave as this type's prog_lookup) for lookup_from_prog.
  void set_prog_lookup_fn(ProgLookupFn fn) { prog_lookup_fn_ = fn; }
  [[nodiscard]] std::uint8_t* body() const;
  // Value copies between the host and a stored value: the bpf_spin_lock
  // field (if any) is left alone on the way in and zeroed on the way out,
  // as the kernel's copy_map_value / check_and_init_map_value; the
  // bpf_timer field (if any) is zeroed both ways (an overwritten value's
  // timer is cancelled, as the kernel's bpf_obj_free_fields).
  void copy_value_in(void* dst, const void* src) const;
  void copy_value_out(void* dst, const void* src) const;
  // A value leaves the map (deleted element): its bpf_timer field is reset,
  // which cancels the timer (the kernel's bpf_obj_free_fields).
  void free_fields(void* value) const;

  // Type-specific parts of the host operations (flags already validated).
  virtual int do_lookup(const void* key, void* value) const = 0;
  virtual int do_update(const void* key, const void* value, std::uint64_t flags) = 0;
  virtual int do_delete(const void* key) = 0;
  virtual int do_get_next_key(const void* key, void* next_key) const = 0;
  virtual int do_lookup_and_delete(const void* key, void* value);
  // Batch iteration: copies up to `count` elements starting at cursor
  // `token` (hash: the bucket to start at).
  // Arrays (the kernel's generic batch): the token is the last index
  // copied; a batch that is not `first` starts after it.
  virtual int do_lookup_batch(bool first, std::uint32_t& token, void* keys, void* values, std::uint32_t& count,
                              bool and_delete);

 private:
  static void* virtual_prog_lookup(Map& map, const void* key, std::uint32_t cpu) { return map.prog_lookup(key, cpu); }

  std::unique_ptr<SharedFile> file_;
  MapHeader* header_ = nullptr;
  const MapTypeDesc* desc_ = nullptr;
  ProgLookupFn prog_lookup_fn_ = &virtual_prog_lookup;
  std::uint32_t key_size_ = 0;
  std::uint32_t value_size_ = 0;
  std::uint32_t max_entries_ = 0;
  std::uint32_t ncpus_ = 1;
  bool percpu_ = false;
};

// ---- creating and opening
// Creates a map in a new unnamed shared file in `dir` (the pin directory).
// Errors carry the kernel's errno for MAP_CREATE (EINVAL, E2BIG, ...).
Result<std::unique_ptr<Map>> create_map(const MapSpec& spec, const std::string& dir);
// Opens a map file (a pin) created by this or another process.
Result<std::unique_ptr<Map>> open_map(const std::string& path);
// Attaches to an already open shared file holding a map.
Result<std::unique_ptr<Map>> attach_map(std::unique_ptr<SharedFile> file);

// BPF_F_MMAPABLE arrays: maps the values (round_up(value_size, 8) *
// max_entries bytes, rounded up to pages) into this process, shared with
// every other user of the map; release with munmap(). EINVAL for other
// maps, EPERM for a writable mapping of a frozen or BPF_F_RDONLY map.
Result<std::span<std::uint8_t>> mmap_values(const Map& map, bool writable);

// Rounds up to a multiple of 8 (the kernel's per-CPU value stride).
constexpr std::size_t round8(std::size_t n) { return (n + 7) & ~std::size_t{7}; }

}  // namespace userbpf::maps

namespace userbpf::maps {
// struct bpf_spin_lock in a map value (4 bytes, zero = unlocked): the lock
// used by bpf_spin_lock/bpf_spin_unlock and by host BPF_F_LOCK operations.
// Same protocol as SharedSpinLock (holder's pid; robust to dead processes).
void value_lock(void* lock_word);
void value_unlock(void* lock_word);

// For bpf_tail_call: the program id in slot `index` of a program array (0:
// empty, out of range, or not a program array).
std::uint32_t prog_array_get(const Map& map, std::uint32_t index);
}  // namespace userbpf::maps
