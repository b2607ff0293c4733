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

#include <cstring>

#include "maps/map.hpp"
#include "maps/registry.hpp"
#include "maps/shm.hpp"

namespace userbpf::maps {

// Kernel limits that decide E2BIG at MAP_CREATE.
inline constexpr std::size_t kPcpuMinUnitSize = 32768;        // PCPU_MIN_UNIT_SIZE
inline constexpr std::size_t kKmallocMaxSize = 4u << 20;      // KMALLOC_MAX_SIZE (x86-64)

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
    if (cpu >= ncpus()) return EINVAL;
    std::memcpy(slot_ptr(i, cpu), value, value_size());
    return 0;
  }
  int prog_delete(const void* /*key*/) override { return EINVAL; }
  [[nodiscard]] std::span<std::uint8_t> program_area() const override {
    return {base_, elem_stride_ * max_entries()};
  }

  static std::size_t elem_stride(const MapSpec& s, std::uint32_t ncpus) { return round8(s.value_size) * ncpus; }
  static std::size_t body_size(const MapSpec& s, std::uint32_t ncpus) {
    return elem_stride(s, ncpus) * s.max_entries;
  }
  static void init(std::uint8_t* /*body*/, const MapSpec& /*s*/, std::uint32_t /*ncpus*/) {}  // zeroed file

 protected:
  ArrayBase(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc) : Map(std::move(file), desc) {
    stride_ = round8(value_size());
    elem_stride_ = stride_ * ncpus();
    base_ = body();
  }
  static std::uint32_t index(const void* key) {
    std::uint32_t i;
    std::memcpy(&i, key, sizeof i);
    return i;
  }
  [[nodiscard]] std::uint8_t* slot_ptr(std::uint32_t i, std::uint32_t cpu) const {
    return base_ + std::size_t{i} * elem_stride_ + std::size_t{cpu} * stride_;
  }

  int do_lookup(const void* key, void* value) const override {
    const std::uint32_t i = index(key);
    if (i >= max_entries()) return ENOENT;
    if (!percpu()) {
      std::memcpy(value, slot_ptr(i, 0), value_size());
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
      std::memcpy(slot_ptr(i, 0), value, value_size());
      return 0;
    }
    // the kernel copies whole 8-byte-rounded slots from the host (bpf_long_memcpy)
    const auto* in = static_cast<const std::uint8_t*>(value);
    for (std::uint32_t c = 0; c < ncpus(); ++c) std::memcpy(slot_ptr(i, c), in + c * stride_, stride_);
    return 0;
  }
  int do_delete(const void* /*key*/) override { return EINVAL; }
  int do_get_next_key(const void* key, void* next_key) const override {
    const std::uint32_t n = max_entries();
    std::uint32_t next = 0;
    if (key != nullptr) {
      const std::uint32_t i = index(key);
      if (i < n) {
        if (i == n - 1) return ENOENT;
        next = i + 1;
      }
    }
    std::memcpy(next_key, &next, sizeof next);
    return 0;
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
