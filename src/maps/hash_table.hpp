// The hash table shared by BPF_MAP_TYPE_HASH and BPF_MAP_TYPE_PERCPU_HASH.
//
// Layout (offsets from the body; nothing in the file is a pointer):
//   HashBody   free-list head, element count, sizes, offsets of the parts
//   locks      nlocks process-shared spin locks (SharedSpinLock, robust against
//              dead processes), one cache line each; bucket b is guarded by
//              lock b % nlocks (nlocks = min(nbuckets, 1024), a power of two)
//   buckets    nbuckets 8-byte buckets { u32 head of a singly linked chain
//              (kNil = empty); u32 sequence counter }, nbuckets =
//              roundup_pow_of_two(max_entries) as in the kernel
//   elements   max_entries preallocated elements:
//                { atomic u32 next; u32 hash; key (round8); value (round8) x ncpus }
//
// Invariants:
//   - an element is either on exactly one bucket chain (live) or on the
//     free list, never both; chains change only under their bucket's lock;
//   - the free list is a lock-free stack (Treiber) whose head packs a 32-bit
//     ABA tag with the element index, so pops racing pushes are safe
//     across processes;
//   - like the kernel's preallocated hash maps, element memory is never
//     released while the map lives: a pointer a program got from a lookup
//     stays valid (though the element may be reused after a delete);
//   - new elements go to the head of their chain (the kernel's
//     hlist_nulls_add_head), so get_next_key walks buckets in index order
//     and each chain from its head; a key that is not in the map restarts
//     the walk at the first element, as the kernel does.
// Readers: program lookups (prog_lookup, lookup_percpu) take no lock. Each
// bucket holds a sequence counter next to its chain head (same 8 bytes, so
// a lookup touches the bucket's cache line and the element's, as the
// kernel's; a counter per lock slot cost one more cache line per lookup)
// that writers make odd before changing the chain (linking, unlinking) and
// even again after; a reader walks the chain with acquire loads (chain
// links, stored hashes and key words are atomics) and accepts the result
// only if the counter was even and unchanged around the walk, else retries
// (a few times, then takes the bucket lock: a writer that died mid-change
// leaves the counter odd, and the reader that then holds the lock, or the
// next writer of that bucket, makes it even). Because elements are never
// freed, a reader holding a stale index
// only reads a reused element's fields, which the counter check rejects. The
// walk is bounded (max_entries steps) against cycles seen through torn
// snapshots. Host lookups, updates and deletes take the bucket lock; updates
// of an existing key copy the value in place (without touching the counter)
// with 8-byte atomic stores, so a reader of an 8-byte value sees a whole
// value written by one update (larger values may be torn, as the kernel's
// in-place BPF_F_LOCK-free updates of array values).
//
// LRU variants (BPF_MAP_TYPE_LRU_HASH / LRU_PERCPU_HASH, lru.cpp): each
// element also has an LruNode (list links, a reference bit, live / in-list
// flags) and the body has `nlists` LRU lists (1 = the common LRU; one per
// CPU with BPF_F_NO_COMMON_LRU), each a doubly linked list under its own
// SharedSpinLock. A new key takes a free element or, when there is none,
// evicts one: the list's tail is scanned, elements whose reference bit is
// set (program lookups and updates set it) get a second chance (bit cleared,
// moved to the head), the first unreferenced one is unlinked from its
// bucket and reused (the kernel's active/inactive rotation, simplified to a
// clock). Lock order: LRU list lock, then bucket lock; never the reverse
// (insertions and deletions touch the list after dropping the bucket lock).
// An element is on a list only while `live` (linked in a bucket); whoever
// unlinks it takes it off its list before freeing it.
#pragma once

#include <linux/bpf.h>

#include <atomic>
#include <cstring>

#include "maps/array.hpp"
#include "maps/map.hpp"
#include "maps/registry.hpp"
#include "maps/seq_edit.hpp"
#include "maps/shm.hpp"

namespace userbpf::maps {

// Seeded hash of n bytes (hash maps, bloom filter, LPM-free types).
std::uint64_t hash_bytes(const void* data, std::size_t n, std::uint64_t seed);

class HashBase : public Map {
 public:
  static constexpr std::uint32_t kNil = 0xffffffffu;
  static constexpr std::uint32_t kMaxLocks = 1024;

  struct Body {
    std::atomic<std::uint64_t> free_head;  // (tag << 32) | index
    std::atomic<std::uint32_t> count;
    std::uint32_t nbuckets;
    std::uint32_t nlocks;
    std::uint32_t elem_size;
    std::uint64_t locks_off, buckets_off, elems_off;
    std::uint32_t nlists;  // LRU lists (0: not an LRU map)
    std::uint32_t pad;
    std::uint64_t lists_off;
  };
  static_assert(sizeof(Body) <= 64);

  static int check(const MapSpec& s, bool percpu);
  static std::size_t body_size(const MapSpec& s, std::uint32_t ncpus);
  static void init(std::uint8_t* body, const MapSpec& s, std::uint32_t ncpus);

  void* prog_lookup(const void* key, std::uint32_t cpu) override;
  int prog_update(const void* key, const void* value, std::uint64_t flags, std::uint32_t cpu) override;
  int prog_delete(const void* key) override { return do_delete(key); }
  long for_each_elem(std::uint32_t cpu, ElemVisitor visit, void* ctx) override;
  void* lookup_percpu(const void* key, std::uint32_t cpu) override;
  [[nodiscard]] std::uint32_t count() const { return body_->count.load(std::memory_order_relaxed); }
  [[nodiscard]] std::span<std::uint8_t> program_area() const override {
    return {elems_, std::size_t{body_->elem_size} * max_entries()};
  }

 protected:
  HashBase(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc);

  int do_lookup(const void* key, void* value) const override;
  int do_update(const void* key, const void* value, std::uint64_t flags) override;
  int do_delete(const void* key) override;
  int do_get_next_key(const void* key, void* next_key) const override;
  int do_lookup_and_delete(const void* key, void* value) override;
  int do_lookup_batch(bool first, std::uint32_t& token, void* keys, void* values, std::uint32_t& count,
                      bool and_delete) override;

 private:
  struct Elem {
    std::atomic<std::uint32_t> next;
    std::atomic<std::uint32_t> hash;
  };
  // A bucket: the chain's head (written under the bucket lock, read by
  // lock-free readers) and its sequence counter (odd while the chain changes).
  struct Bucket {
    std::uint32_t head;
    std::atomic<std::uint32_t> seq;
  };
  static_assert(sizeof(Bucket) == 8);
  // LRU maps: after Elem (elements are then 24 bytes of header).
  struct LruNode {
    std::uint32_t prev, next;       // list links (list lock)
    std::atomic<std::uint8_t> ref;  // set by lookups, cleared by the evictor
    std::atomic<std::uint8_t> live; // linked in a bucket (bucket lock)
    std::uint8_t in_list;           // on list `list` (list lock)
    std::uint8_t pad;
    std::atomic<std::uint32_t> list;
  };
  struct LruList {
    SharedSpinLock lock;
    std::uint32_t head, tail, count;
  };
  static constexpr std::size_t kElemHeader = 8;
  static constexpr std::size_t kLruElemHeader = 24;
  static_assert(sizeof(LruNode) == kLruElemHeader - kElemHeader);

  // ---- LRU (lru.cpp)
  [[nodiscard]] LruNode& node(std::uint32_t i) const {
    return *reinterpret_cast<LruNode*>(elems_ + std::size_t{i} * elem_size_ + kElemHeader);
  }
  [[nodiscard]] LruList& lru_list(std::uint32_t l) const {
    return *reinterpret_cast<LruList*>(body() + body_->lists_off + std::size_t{l} * 64);
  }
  std::uint32_t lru_evict();                 // an element taken from a list and its bucket, or kNil
  std::uint32_t lru_evict_from(std::uint32_t l);
  void lru_add(std::uint32_t i);             // after linking i in its bucket (no bucket lock held)
  void list_remove(LruList& L, std::uint32_t i);
  void list_push_head(LruList& L, std::uint32_t l, std::uint32_t i);
  int lru_upsert(const void* key, const void* value, std::uint64_t flags, std::uint32_t cpu);
  // Frees an element that is no longer in a bucket (no bucket lock held).
  void release(std::uint32_t i);
  void touch(std::uint32_t i) const {
    // as the kernel's bpf_lru_node_set_ref: no store (no cache-line transfer) when already set
    if (lru_ && node(i).ref.load(std::memory_order_relaxed) == 0) node(i).ref.store(1, std::memory_order_relaxed);
  }
  void set_live(std::uint32_t i, bool live) const {
    if (lru_) node(i).live.store(live ? 1 : 0, std::memory_order_relaxed);
  }
  void write_value(std::uint32_t i, const void* value, std::uint32_t cpu, bool fresh);

  [[nodiscard]] std::uint32_t hash_of(const void* key) const {
    if (ks_ == 4 || ks_ == 8) {  // the common keys, without the generic loop
      std::uint64_t h = (seed_ ^ load_padded(key, ks_)) * 0x94d049bb133111ebULL;
      h ^= h >> 31;
      h *= 0xbf58476d1ce4e5b9ULL;
      return static_cast<std::uint32_t>(h ^ (h >> 32));
    }
    return static_cast<std::uint32_t>(hash_bytes(key, ks_, seed_));
  }
  // Lock slots are 64 bytes (one cache line) each.
  [[nodiscard]] SharedSpinLock& lock_for(std::uint32_t bucket) const {
    return *reinterpret_cast<SharedSpinLock*>(locks_ + std::size_t{bucket & lock_mask_} * 64);
  }
  [[nodiscard]] std::atomic<std::uint32_t>& seq_of(std::uint32_t bucket) const { return buckets_[bucket].seq; }
  // Bucket heads: written under the bucket lock, read by lock-free readers.
  [[nodiscard]] std::uint32_t head(std::uint32_t bucket) const {
    return std::atomic_ref<std::uint32_t>(buckets_[bucket].head).load(std::memory_order_acquire);
  }
  void set_head(std::uint32_t bucket, std::uint32_t i) const {
    std::atomic_ref<std::uint32_t>(buckets_[bucket].head).store(i, std::memory_order_release);
  }
  // Links element i at the head of bucket b (bucket lock held, inside a SeqEdit).
  void link_head(std::uint32_t b, std::uint32_t i) const {
    elem(i).next.store(head(b), std::memory_order_release);
    set_head(b, i);
  }
  // Stores the key of a fresh element (8-byte atomic words; padding zero).
  void store_key(std::uint32_t i, const void* key, std::uint32_t hash) const;
  // Whether element i holds `key` (atomic loads: safe against a concurrent reuse).
  [[nodiscard]] bool key_equal(std::uint32_t i, const void* key) const;
  // The lock-free lookup: the element holding `key`, or kNil.
  [[nodiscard]] std::uint32_t find_unlocked(std::uint32_t hash, const void* key) const;
  template <class Eq>
  [[nodiscard]] std::uint32_t find_unlocked_with(std::uint32_t hash, const void* key, Eq eq) const;
  static void* lookup_direct(Map& map, const void* key, std::uint32_t cpu);
  [[nodiscard]] Elem& elem(std::uint32_t i) const {
    return *reinterpret_cast<Elem*>(elems_ + std::size_t{i} * elem_size_);
  }
  [[nodiscard]] std::uint8_t* key_of(std::uint32_t i) const {
    return elems_ + std::size_t{i} * elem_size_ + hdr_;
  }
  [[nodiscard]] std::uint8_t* value_of(std::uint32_t i, std::uint32_t cpu) const {
    return key_of(i) + key_stride_ + std::size_t{cpu} * value_stride_;
  }
  // Under the bucket lock: the element holding `key`, and its predecessor.
  std::uint32_t find(std::uint32_t bucket, std::uint32_t hash, const void* key, std::uint32_t* prev) const;
  std::uint32_t pop_free();
  void push_free(std::uint32_t i);
  void unlink(std::uint32_t bucket, std::uint32_t i, std::uint32_t prev);
  void copy_out(std::uint32_t i, void* value) const;  // host view (all slots)
  // Insert or replace; `cpu` = kAllCpus for a host update.
  static constexpr std::uint32_t kAllCpus = 0xffffffffu;
  int upsert(const void* key, const void* value, std::uint64_t flags, std::uint32_t cpu);
  // First element at or after bucket `b` (copies its key); ENOENT if none.
  int first_from(std::uint32_t b, void* next_key) const;

  Body* body_;
  std::uint8_t* locks_;
  Bucket* buckets_;
  std::uint8_t* elems_;
  std::uint32_t elem_size_;  // body_->elem_size (fixed)
  std::size_t key_stride_;
  std::size_t value_stride_;
  std::uint64_t seed_;
  std::uint32_t lock_mask_;
  std::uint32_t bucket_mask_;
  std::uint32_t ks_;
  std::size_t hdr_;  // element header: kElemHeader, or kLruElemHeader for LRU maps
  bool lru_;
  bool special_fields_;  // the value has a bpf_spin_lock or bpf_timer (copied around them)
};

// LRU types: MAP_CREATE checks.
int check_lru(const MapSpec& s, bool percpu);

}  // namespace userbpf::maps
