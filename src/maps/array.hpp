// Array storage shared by the array-like map types (array, per-CPU array,
// program array): a flat table of max_entries elements, each
// round8(value_size) * ncpus bytes, starting at the body. Element i, slot c
// is at body + i * elem_stride + c * round8(value_size).
//
// Concurrency: as in the kernel, array values are not locked: host updates
// and program writes are plain copies into the shared mapping, and a reader
// racing a writer may see a torn value (programs use atomics through the
// lookup pointer for counters). Elements always exist, so a pointer a
// program got stays valid for the life of the map.
#pragma once

#include <linux/bpf.h>

#include <atomic>
#include <cstring>

#include "maps/map.hpp"
#include "maps/registry.hpp"
#include "maps/shm.hpp"

namespace userbpf::maps {

// Kernel limits that decide E2BIG at MAP_CREATE.
inline constexpr std::size_t kPcpuMinUnitSize = 32768;        // PCPU_MIN_UNIT_SIZE
inline constexpr std::size_t kKmallocMaxSize = 4u << 20;      // KMALLOC_MAX_SIZE (x86-64)

// GET_NEXT_KEY of every array-indexed map (array_map_get_next_key): the
// index after `key`, 0 for a null or out-of-range key, ENOENT after the last.
inline int array_next_key(const void* key, void* next_key, std::uint32_t n) {
  std::uint32_t next = 0;
  if (key != nullptr) {
    std::uint32_t i;
    std::memcpy(&i, key, sizeof i);
    if (i < n) {
      if (i == n - 1) return ENOENT;
      next = i + 1;
    }
  }
  std::memcpy(next_key, &next, sizeof next);
  return 0;
}

class ArrayBase : public Map {
 public:
  void* prog_lookup(const void* key, std::uint32_t cpu) override {
    const std::uint32_t i = index(key);
    if (i >= max_entries() || cpu >= ncpus()) return nullptr;
    return slot_ptr(i, cpu);
  }
  int prog_update(const void* key, const void* value, std::uint64_t flags, std::uint32_t cpu) override {
    if ((flags & ~std::uint64_t{BPF_F_LOCK}) > BPF_EXIST) return EINVAL;
    const std::uint32_t i = index(key);
    if (i >= max_entries()) return E2BIG;
    if ((flags & ~std::uint64_t{BPF_F_LOCK}) == BPF_NOEXIST) return EEXIST;
    if ((flags & BPF_F_LOCK) != 0 && spin_lock_off() < 0) return EINVAL;  // array_map_update_elem
    if (cpu >= ncpus()) return EINVAL;
    if (!percpu() && (spin_lock_off() >= 0 || timer_off() >= 0)) {
      copy_value_in(slot_ptr(i, 0), value);  // keeps the lock word, resets the timer (copy_map_value)
      return 0;
    }
    store_words(slot_ptr(i, cpu), value, value_size());  // 8-byte atomic stores (slots are round8 apart)
    return 0;
  }
  int prog_delete(const void* /*key*/) override { return EINVAL; }
  void* lookup_percpu(const void* key, std::uint32_t cpu) override {
    return percpu() ? prog_lookup(key, cpu) : nullptr;
  }
  // Keys are passed as a pointer to a u32 on this function's stack.
  long for_each_elem(std::uint32_t cpu, ElemVisitor visit, void* ctx) override {
    if (cpu >= ncpus()) return -EINVAL;
    long n = 0;
    for (std::uint32_t i = 0; i < max_entries(); ++i) {
      ++n;
      const std::uint32_t key = i;
      if (visit(ctx, &key, slot_ptr(i, cpu)) != 0) break;
    }
    return n;
  }
  [[nodiscard]] std::span<std::uint8_t> program_area() const override {
    return {base_, elem_stride_ * max_entries()};
  }

  static std::size_t elem_stride(const MapSpec& s, std::uint32_t ncpus) { return round8(s.value_size) * ncpus; }
  // BPF_F_MMAPABLE arrays: the values start on a page boundary of the file
  // (file offset kMmapOffset), so that the host can mmap them.
  static constexpr std::size_t kMmapOffset = 4096;
  static std::size_t pad(std::uint32_t map_flags) {
    return (map_flags & BPF_F_MMAPABLE) != 0 ? kMmapOffset - kHeaderSize : 0;
  }
  static std::size_t body_size(const MapSpec& s, std::uint32_t ncpus) {
    const std::size_t data = elem_stride(s, ncpus) * s.max_entries;
    return (s.map_flags & BPF_F_MMAPABLE) != 0 ? pad(s.map_flags) + align_up(data, kMmapOffset) : data;
  }
  static void init(std::uint8_t* /*body*/, const MapSpec& /*s*/, std::uint32_t /*ncpus*/) {}  // zeroed file

 protected:
  ArrayBase(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc) : Map(std::move(file), desc) {
    stride_ = round8(value_size());
    elem_stride_ = stride_ * ncpus();
    base_ = body() + pad(map_flags());
  }
  static std::uint32_t index(const void* key) {
    std::uint32_t i;
    std::memcpy(&i, key, sizeof i);
    return i;
  }
  [[nodiscard]] std::uint8_t* slot_ptr(std::uint32_t i, std::uint32_t cpu) const {
    return base_ + std::size_t{i} * elem_stride_ + std::size_t{cpu} * stride_;
  }
  // Arrays of ids (program arrays, arrays of maps): slot i holds a u32 id
  // stored atomically, 0 = empty; lookup and delete as the kernel's fd arrays.
  [[nodiscard]] std::atomic_ref<std::uint32_t> id_slot(std::uint32_t i) const {
    return std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(slot_ptr(i, 0)));
  }
  int id_lookup(const void* key, void* value) const {
    const std::uint32_t i = index(key);
    if (i >= max_entries()) return ENOENT;
    const std::uint32_t id = id_slot(i).load(std::memory_order_acquire);
    if (id == 0) return ENOENT;
    std::memcpy(value, &id, sizeof id);
    return 0;
  }
  int id_delete(const void* key) {
    const std::uint32_t i = index(key);
    if (i >= max_entries()) return E2BIG;  // fd_array_map_delete_elem
    return id_slot(i).exchange(0, std::memory_order_acq_rel) != 0 ? 0 : ENOENT;
  }

  int do_lookup(const void* key, void* value) const override {
    const std::uint32_t i = index(key);
    if (i >= max_entries()) return ENOENT;
    if (!percpu()) {
      copy_value_out(value, slot_ptr(i, 0));
      return 0;
    }
    auto* out = static_cast<std::uint8_t*>(value);
    for (std::uint32_t c = 0; c < ncpus(); ++c) std::memcpy(out + c * stride_, slot_ptr(i, c), stride_);
    return 0;
  }
  int do_update(const void* key, const void* value, std::uint64_t flags) override {
    if ((flags & ~std::uint64_t{BPF_F_LOCK}) > BPF_EXIST) return EINVAL;
    const std::uint32_t i = index(key);
    if (i >= max_entries()) return E2BIG;
    if ((flags & ~std::uint64_t{BPF_F_LOCK}) == BPF_NOEXIST) return EEXIST;
    if (!percpu()) {
      copy_value_in(slot_ptr(i, 0), value);
      return 0;
    }
    // the kernel copies whole 8-byte-rounded slots from the host (bpf_long_memcpy)
    const auto* in = static_cast<const std::uint8_t*>(value);
    for (std::uint32_t c = 0; c < ncpus(); ++c) std::memcpy(slot_ptr(i, c), in + c * stride_, stride_);
    return 0;
  }
  int do_delete(const void* /*key*/) override { return EINVAL; }
  int do_get_next_key(const void* key, void* next_key) const override {
    return array_next_key(key, next_key, max_entries());
  }

  std::size_t stride_ = 0;
  std::size_t elem_stride_ = 0;
  std::uint8_t* base_ = nullptr;
};

// MAP_CREATE checks shared by the array types (array_map_alloc_check).
inline int check_array(const MapSpec& s, bool percpu) {
  if (s.max_entries == 0 || s.key_size != 4 || s.value_size == 0) return EINVAL;
  if (s.value_size > 0x7fffffffu) return E2BIG;
  if (percpu && round8(s.value_size) > kPcpuMinUnitSize) return E2BIG;
  if (s.max_entries > (1u << 31)) return E2BIG;
  return 0;
}

}  // namespace userbpf::maps
