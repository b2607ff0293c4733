// BPF_MAP_TYPE_BLOOM_FILTER (the kernel's bloom_filter.c): a bit array of
// roundup_pow_of_two(max_entries * k * 7 / 5) bits (at least 64; 2^32 when
// that overflows), k = map_extra & 0xF hash functions (0 means 5). push sets
// k bits (atomic fetch_or: no lock, safe across threads and processes), peek
// tests them: 0 = maybe present, ENOENT = certainly absent. No false
// negatives; false positives as any bloom filter. Values cannot be removed
// or listed (pop, delete, get_next_key: EOPNOTSUPP). Hash: our seeded
// hash_bytes with seed + i for function i (not the kernel's jhash: which
// bits are set differs, the answers for added values do not).
#include <linux/bpf.h>

#include <atomic>
#include <bit>
#include <cstring>

#include "maps/array.hpp"
#include "maps/hash_table.hpp"
#include "maps/registry.hpp"
#include "maps/shm.hpp"

namespace userbpf::maps {

namespace {

struct BloomGeometry {
  std::uint64_t nbits_mask;
  std::size_t bytes;
  std::uint32_t nhash;
};

BloomGeometry bloom_geometry(const MapSpec& s) {
  BloomGeometry g{};
  g.nhash = static_cast<std::uint32_t>(s.map_extra & 0xF);
  if (g.nhash == 0) g.nhash = 5;
  const std::uint64_t bits = std::uint64_t{s.max_entries} * g.nhash / 5 * 7;
  if (std::uint64_t{s.max_entries} * g.nhash > 0xffffffffULL || bits > 0xffffffffULL || bits > (1ULL << 31)) {
    g.nbits_mask = 0xffffffffULL;
    g.bytes = (1ULL << 32) / 8;
  } else {
    const std::uint64_t n = bits <= 64 ? 64 : std::bit_ceil(bits);
    g.nbits_mask = n - 1;
    g.bytes = n / 8;
  }
  return g;
}

class BloomFilterMap final : public Map {
 public:
  BloomFilterMap(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc) : Map(std::move(file), desc) {
    MapSpec s;
    s.max_entries = max_entries();
    s.map_extra = header().map_extra;
    g_ = bloom_geometry(s);
    bits_ = reinterpret_cast<std::uint64_t*>(body());
    seed_ = header().hash_seed;
  }

  int push(const void* value, std::uint64_t flags) override {
    if (flags != BPF_ANY) return EINVAL;
    for (std::uint32_t i = 0; i < g_.nhash; ++i) {
      const std::uint64_t bit = bit_of(value, i);
      std::atomic_ref<std::uint64_t>(bits_[bit / 64]).fetch_or(1ULL << (bit % 64), std::memory_order_relaxed);
    }
    return 0;
  }
  int peek(void* value) override {
    for (std::uint32_t i = 0; i < g_.nhash; ++i) {
      const std::uint64_t bit = bit_of(value, i);
      if ((std::atomic_ref<std::uint64_t>(bits_[bit / 64]).load(std::memory_order_relaxed) & (1ULL << (bit % 64))) ==
          0)
        return ENOENT;
    }
    return 0;
  }
  int pop(void*) override { return EOPNOTSUPP; }

  void* prog_lookup(const void*, std::uint32_t) override { return nullptr; }
  int prog_update(const void*, const void*, std::uint64_t, std::uint32_t) override { return EOPNOTSUPP; }
  int prog_delete(const void*) override { return EOPNOTSUPP; }

 protected:
  int do_lookup(const void* /*key*/, void* value) const override {
    return const_cast<BloomFilterMap*>(this)->peek(value);
  }
  int do_update(const void* /*key*/, const void* value, std::uint64_t flags) override { return push(value, flags); }
  int do_delete(const void*) override { return EOPNOTSUPP; }
  int do_get_next_key(const void*, void*) const override { return EOPNOTSUPP; }

 private:
  [[nodiscard]] std::uint64_t bit_of(const void* value, std::uint32_t i) const {
    return hash_bytes(value, value_size(), seed_ + i) & g_.nbits_mask;
  }
  BloomGeometry g_{};
  std::uint64_t* bits_ = nullptr;
  std::uint64_t seed_ = 0;
};

}  // namespace

const MapTypeDesc kBloomFilterDesc = {
    BPF_MAP_TYPE_BLOOM_FILTER,
    "bloom_filter",
    MapKind::BloomFilter,
    false,
    BPF_F_NUMA_NODE | BPF_F_ZERO_SEED | BPF_F_RDONLY | BPF_F_WRONLY | BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG,
    0,
    [](const MapSpec& s) {
      if (s.key_size != 0 || s.value_size == 0 || s.max_entries == 0 || (s.map_extra & ~std::uint64_t{0xF}) != 0)
        return EINVAL;
      if (s.value_size > kKmallocMaxSize) return E2BIG;
      return 0;
    },
    [](const MapSpec& s, std::uint32_t) -> std::size_t { return bloom_geometry(s).bytes; },
    [](std::uint8_t*, const MapSpec&, std::uint32_t) {},  // zeroed file
    [](std::unique_ptr<SharedFile> f, const MapTypeDesc& d) -> std::unique_ptr<Map> {
      return std::make_unique<BloomFilterMap>(std::move(f), d);
    },
    true,
};

}  // namespace userbpf::maps
