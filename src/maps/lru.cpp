// BPF_MAP_TYPE_LRU_HASH and BPF_MAP_TYPE_LRU_PERCPU_HASH: the hash table of
// hash_table.hpp with LRU lists and eviction (design, invariants and lock
// order in hash_table.hpp, "LRU variants").
//
// Differences from the kernel, by design: the kernel moves free elements to
// per-CPU local lists in batches and may evict before the map is full; here
// a key is evicted only when no free element is left, so an LRU map holds up
// to max_entries keys. Updating an existing key copies the value in place
// and marks it referenced (the kernel replaces the element). Host lookups do
// not mark elements (as the kernel's *_sys lookup), program lookups do.
// With BPF_F_NO_COMMON_LRU each CPU has its own list: a new key joins the
// list of the CPU the caller runs on (sched_getcpu), and eviction takes from
// that list first, then from the others.
#include <linux/bpf.h>
#include <sched.h>

#include "maps/cpu_slots.hpp"
#include "maps/hash_table.hpp"

namespace userbpf::maps {

namespace {
std::uint32_t current_list(std::uint32_t nlists) {
  if (nlists <= 1) return 0;
  const int c = sched_getcpu();
  return c < 0 ? 0 : static_cast<std::uint32_t>(c) % nlists;
}
}  // namespace

void HashBase::list_remove(LruList& L, std::uint32_t i) {
  LruNode& n = node(i);
  if (n.prev != kNil) node(n.prev).next = n.next;
  else L.head = n.next;
  if (n.next != kNil) node(n.next).prev = n.prev;
  else L.tail = n.prev;
  n.prev = n.next = kNil;
  n.in_list = 0;
  --L.count;
}

void HashBase::list_push_head(LruList& L, std::uint32_t l, std::uint32_t i) {
  LruNode& n = node(i);
  n.prev = kNil;
  n.next = L.head;
  if (L.head != kNil) node(L.head).prev = i;
  L.head = i;
  if (L.tail == kNil) L.tail = i;
  n.in_list = 1;
  n.list.store(l, std::memory_order_relaxed);
  ++L.count;
}

void HashBase::lru_add(std::uint32_t i) {
  const std::uint32_t l = current_list(body_->nlists);
  LruList& L = lru_list(l);
  Guard g(L.lock);
  // a concurrent delete may have unlinked it already (then it frees it), or
  // the element may already be on a list (freed and reused meanwhile)
  if (node(i).live.load(std::memory_order_relaxed) == 0 || node(i).in_list != 0) return;
  list_push_head(L, l, i);
}

void HashBase::release(std::uint32_t i) {
  if (lru_) {
    // take it off its list (if an evictor did not already); the list an
    // element is on changes only while it is live, and it is not any more
    for (;;) {
      const std::uint32_t l = node(i).list.load(std::memory_order_relaxed);
      LruList& L = lru_list(l < body_->nlists ? l : 0);
      Guard g(L.lock);
      if (node(i).in_list == 0) break;
      if (node(i).list.load(std::memory_order_relaxed) != l) continue;
      list_remove(L, i);
      break;
    }
  }
  push_free(i);
}

std::uint32_t HashBase::lru_evict_from(std::uint32_t l) {
  LruList& L = lru_list(l);
  Guard g(L.lock);
  std::uint32_t second_chances = L.count;
  for (;;) {
    const std::uint32_t v = L.tail;
    if (v == kNil) return kNil;
    if (second_chances > 0 && node(v).ref.load(std::memory_order_relaxed) != 0) {
      --second_chances;
      node(v).ref.store(0, std::memory_order_relaxed);
      list_remove(L, v);
      list_push_head(L, l, v);
      continue;
    }
    bool taken = false;
    {
      const std::uint32_t b = elem(v).hash.load(std::memory_order_relaxed) & bucket_mask_;
      Guard bl(lock_for(b));  // lock order: list, then bucket
      if (node(v).live.load(std::memory_order_relaxed) != 0) {
        std::uint32_t prev = kNil;
        for (std::uint32_t i = head(b); i != kNil && i != v; i = elem(i).next.load(std::memory_order_relaxed))
          prev = i;
        SeqEdit edit(seq_of(b));
        unlink(b, v, prev);
        node(v).live.store(0, std::memory_order_relaxed);
        body_->count.fetch_sub(1, std::memory_order_relaxed);
        taken = true;
      }
    }
    list_remove(L, v);  // not live: being deleted; its deleter frees it
    if (taken) {
      node(v).ref.store(0, std::memory_order_relaxed);
      return v;
    }
  }
}

std::uint32_t HashBase::lru_evict() {
  const std::uint32_t n = body_->nlists;
  const std::uint32_t first = current_list(n);
  for (std::uint32_t k = 0; k < n; ++k)
    if (const std::uint32_t v = lru_evict_from((first + k) % n); v != kNil) return v;
  return kNil;
}

int HashBase::lru_upsert(const void* key, const void* value, std::uint64_t flags, std::uint32_t cpu) {
  const std::uint64_t mode = flags & ~std::uint64_t{BPF_F_LOCK};
  const std::uint32_t h = hash_of(key);
  const std::uint32_t b = h & bucket_mask_;
  std::uint32_t spare = kNil;
  for (int pass = 0; pass < 2; ++pass) {
    {
      Guard lock(lock_for(b));
      const std::uint32_t i = find(b, h, key, nullptr);
      if (i != kNil) {
        if (mode == BPF_NOEXIST) {
          if (spare != kNil) push_free(spare);  // never linked nor listed
          return EEXIST;
        }
        write_value(i, value, cpu, false);
        touch(i);
        if (spare != kNil) push_free(spare);
        return 0;
      }
      if (mode == BPF_EXIST) {
        if (spare != kNil) push_free(spare);
        return ENOENT;
      }
      if (spare != kNil) {
        store_key(spare, key, h);
        node(spare).ref.store(0, std::memory_order_relaxed);
        write_value(spare, value, cpu, true);
        {
          SeqEdit edit(seq_of(b));
          link_head(b, spare);
        }
        node(spare).live.store(1, std::memory_order_relaxed);
        body_->count.fetch_add(1, std::memory_order_relaxed);
        break;
      }
    }
    // a new key: get an element without holding the bucket lock (eviction
    // takes a list lock, then another bucket's lock)
    spare = pop_free();
    if (spare == kNil) spare = lru_evict();
    if (spare == kNil) return E2BIG;  // every element is in flight in other updates
  }
  lru_add(spare);
  return 0;
}

int check_lru(const MapSpec& s, bool percpu) {
  if ((s.map_flags & BPF_F_NO_PREALLOC) != 0) return kENOTSUPP;  // htab_map_alloc_check: lru && !prealloc
  if ((s.map_flags & BPF_F_NO_COMMON_LRU) != 0 && (s.map_flags & BPF_F_NUMA_NODE) != 0) return EINVAL;
  return HashBase::check(s, percpu);
}

namespace {

class LruHashMap final : public HashBase {
 public:
  LruHashMap(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc) : HashBase(std::move(file), desc) {}
};

constexpr std::uint32_t kLruFlags = BPF_F_NO_PREALLOC | BPF_F_NO_COMMON_LRU | BPF_F_NUMA_NODE | BPF_F_RDONLY |
                                    BPF_F_WRONLY | BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG | BPF_F_ZERO_SEED;
constexpr unsigned kLruOps =
    kOpLookupAndDelete | kOpLookupBatch | kOpLookupAndDeleteBatch | kOpUpdateBatch | kOpDeleteBatch;

}  // namespace

const MapTypeDesc kLruHashDesc = {
    BPF_MAP_TYPE_LRU_HASH,
    "lru_hash",
    MapKind::Hash,
    false,
    kLruFlags,
    kLruOps,
    [](const MapSpec& s) { return check_lru(s, false); },
    &HashBase::body_size,
    &HashBase::init,
    [](std::unique_ptr<SharedFile> f, const MapTypeDesc& d) -> std::unique_ptr<Map> {
      return std::make_unique<LruHashMap>(std::move(f), d);
    },
    false,
};

const MapTypeDesc kLruPerCpuHashDesc = {
    BPF_MAP_TYPE_LRU_PERCPU_HASH,
    "lru_percpu_hash",
    MapKind::Hash,
    true,
    kLruFlags,
    kLruOps,
    [](const MapSpec& s) { return check_lru(s, true); },
    &HashBase::body_size,
    &HashBase::init,
    [](std::unique_ptr<SharedFile> f, const MapTypeDesc& d) -> std::unique_ptr<Map> {
      return std::make_unique<LruHashMap>(std::move(f), d);
    },
    false,
};

}  // namespace userbpf::maps
