// BPF_MAP_TYPE_STACK_TRACE: the buckets of bpf_get_stackid.
//
// Layout: n_buckets = roundup_pow_of_two(max_entries) buckets, each
// { SharedSpinLock; u32 hash; u32 nr (0 = empty); u64 ips[value_size / 8] }.
// get_stackid hashes the instruction pointers, bucket = hash & (n - 1):
// the same stack gets the same id; another stack in the bucket gives
// -EEXIST unless BPF_F_REUSE_STACKID replaces it; BPF_F_FAST_STACK_CMP
// compares hashes only (the kernel's rules). Host: lookup copies the ips
// (zero-padded to value_size), delete empties a bucket (E2BIG past the end,
// ENOENT if empty), lookup-and-delete does both, get_next_key walks non-empty buckets, update is EINVAL.
// With BPF_F_STACK_BUILD_ID values are struct bpf_stack_build_id records
// (32 bytes) with status BPF_STACK_BUILD_ID_IP (no build ids in user space).
#pragma once

#include "maps/map.hpp"

namespace userbpf::maps {

class StackTraceMap final : public Map {
 public:
  StackTraceMap(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc);

  // bpf_get_stackid for a stack the helper collected (already skipped as
  // BPF_F_SKIP_FIELD_MASK asks): the id (>= 0) or -errno (EINVAL flags,
  // EFAULT empty stack, EEXIST bucket taken).
  long get_stackid(const std::uint64_t* ips, std::uint32_t nr, std::uint64_t flags);
  // Frames a value holds.
  [[nodiscard]] std::uint32_t max_depth() const { return depth_; }

  void* prog_lookup(const void*, std::uint32_t) override { return nullptr; }
  int prog_update(const void*, const void*, std::uint64_t, std::uint32_t) override { return EINVAL; }
  int prog_delete(const void* key) override { return do_delete(key); }

 protected:
  int do_lookup(const void* key, void* value) const override;
  int do_update(const void*, const void*, std::uint64_t) override { return EINVAL; }
  int do_delete(const void* key) override;
  int do_get_next_key(const void* key, void* next_key) const override;
  int do_lookup_and_delete(const void* key, void* value) override;

 private:
  int copy_out(const void* key, void* value, bool remove) const;
  struct Bucket;
  [[nodiscard]] Bucket& bucket(std::uint32_t i) const;
  std::uint32_t nbuckets_ = 0;
  std::uint32_t depth_ = 0;
  std::size_t bucket_size_ = 0;
  bool build_id_ = false;
};

}  // namespace userbpf::maps
