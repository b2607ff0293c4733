// The hash table engine; design and invariants in hash_table.hpp.
#include "maps/hash_table.hpp"

#include <bit>
#include <vector>

#include "maps/cpu_slots.hpp"

namespace userbpf::maps {

namespace {

std::uint64_t load64(const std::uint8_t* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

}  // namespace

// A seeded multiply-xorshift hash over 8-byte chunks (our own; the kernel's
// jhash order is not reproduced: iteration order is "stable", not "kernel's").
std::uint64_t hash_bytes(const void* data, std::size_t n, std::uint64_t seed) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  std::uint64_t h = seed ^ (0x9e3779b97f4a7c15ULL * (n + 1));
  while (n >= 8) {
    h = (h ^ load64(p)) * 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 31;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    std::uint64_t t = 0;
    std::memcpy(&t, p, n);
    h = (h ^ t) * 0x94d049bb133111ebULL;
    h ^= h >> 29;
  }
  h *= 0xbf58476d1ce4e5b9ULL;
  return h ^ (h >> 32);
}

namespace {

struct Geometry {
  std::uint32_t nbuckets, nlocks, elem_size, nlists;
  std::size_t locks_off, buckets_off, lists_off, elems_off, total;
};

bool is_lru(const MapSpec& s) { return s.type == BPF_MAP_TYPE_LRU_HASH || s.type == BPF_MAP_TYPE_LRU_PERCPU_HASH; }

Geometry geometry(const MapSpec& s, std::uint32_t ncpus) {
  Geometry g{};
  const bool lru = is_lru(s);
  g.nbuckets = std::bit_ceil(s.max_entries);
  g.nlocks = std::min(g.nbuckets, HashBase::kMaxLocks);
  g.nlists = !lru ? 0 : (s.map_flags & BPF_F_NO_COMMON_LRU) != 0 ? default_cpu_count() : 1;
  g.elem_size = static_cast<std::uint32_t>((lru ? 24 : 8) + round8(s.key_size) + round8(s.value_size) * ncpus);
  g.locks_off = align_up(sizeof(HashBase::Body), 64);
  g.buckets_off = g.locks_off + std::size_t{g.nlocks} * 64;
  g.lists_off = align_up(g.buckets_off + std::size_t{g.nbuckets} * 8, 64);
  g.elems_off = g.lists_off + std::size_t{g.nlists} * 64;
  g.total = g.elems_off + std::size_t{g.elem_size} * s.max_entries;
  return g;
}

}  // namespace

int HashBase::check(const MapSpec& s, bool percpu) {
  if (s.max_entries == 0 || s.key_size == 0 || s.value_size == 0) return EINVAL;
  if (std::uint64_t{s.key_size} + s.value_size >= kKmallocMaxSize - 48) return E2BIG;
  if (percpu && round8(s.value_size) > kPcpuMinUnitSize) return E2BIG;
  if (s.max_entries > (1u << 31)) return E2BIG;
  return 0;
}

std::size_t HashBase::body_size(const MapSpec& s, std::uint32_t ncpus) { return geometry(s, ncpus).total; }

void HashBase::init(std::uint8_t* body, const MapSpec& s, std::uint32_t ncpus) {
  const Geometry g = geometry(s, ncpus);
  auto* b = new (body) Body{};
  b->nbuckets = g.nbuckets;
  b->nlocks = g.nlocks;
  b->elem_size = g.elem_size;
  b->locks_off = g.locks_off;
  b->buckets_off = g.buckets_off;
  b->elems_off = g.elems_off;
  b->nlists = g.nlists;
  b->lists_off = g.lists_off;
  for (std::uint32_t l = 0; l < g.nlists; ++l) {
    auto* L = new (body + g.lists_off + std::size_t{l} * 64) LruList{};
    L->lock.init();
    L->head = L->tail = kNil;
  }
  for (std::uint32_t i = 0; i < g.nlocks; ++i)
    (new (body + g.locks_off + std::size_t{i} * 64) SharedSpinLock{})->init();
  for (std::uint32_t i = 0; i < g.nbuckets; ++i) {
    auto* bucket = new (body + g.buckets_off + std::size_t{i} * sizeof(Bucket)) Bucket{};
    bucket->head = kNil;
    bucket->seq.store(0, std::memory_order_relaxed);
  }
  for (std::uint32_t i = 0; i < s.max_entries; ++i) {
    auto* e = new (body + g.elems_off + std::size_t{i} * g.elem_size) Elem{};
    e->next.store(i + 1 < s.max_entries ? i + 1 : kNil, std::memory_order_relaxed);
  }
  b->free_head.store(0, std::memory_order_release);  // tag 0, index 0
  b->count.store(0, std::memory_order_relaxed);
}

HashBase::HashBase(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc) : Map(std::move(file), desc) {
  body_ = reinterpret_cast<Body*>(body());
  locks_ = body() + body_->locks_off;
  buckets_ = reinterpret_cast<Bucket*>(body() + body_->buckets_off);
  elems_ = body() + body_->elems_off;
  elem_size_ = body_->elem_size;
  key_stride_ = round8(key_size());
  value_stride_ = round8(value_size());
  seed_ = header().hash_seed;
  lock_mask_ = body_->nlocks - 1;
  bucket_mask_ = body_->nbuckets - 1;
  ks_ = key_size();
  lru_ = body_->nlists != 0;
  special_fields_ = spin_lock_off() >= 0 || timer_off() >= 0;
  set_prog_lookup_fn(&lookup_direct);
  hdr_ = lru_ ? kLruElemHeader : kElemHeader;
}


void HashBase::store_key(std::uint32_t i, const void* key, std::uint32_t hash) const {
  store_words(key_of(i), key, ks_);
  elem(i).hash.store(hash, std::memory_order_release);
}

bool HashBase::key_equal(std::uint32_t i, const void* key) const {
  const auto* stored = reinterpret_cast<const std::uint64_t*>(key_of(i));
  const auto* k = static_cast<const std::uint8_t*>(key);
  std::uint32_t n = ks_;
  for (; n >= 8; n -= 8, k += 8, ++stored)
    if (std::atomic_ref<const std::uint64_t>(*stored).load(std::memory_order_acquire) != load64(k)) return false;
  return n == 0 || std::atomic_ref<const std::uint64_t>(*stored).load(std::memory_order_acquire) == load_padded(k, n);
}

std::uint32_t HashBase::find(std::uint32_t bucket, std::uint32_t hash, const void* key, std::uint32_t* prev) const {
  std::uint32_t p = kNil;
  for (std::uint32_t i = head(bucket); i != kNil; i = elem(i).next.load(std::memory_order_acquire)) {
    if (elem(i).hash.load(std::memory_order_acquire) == hash && key_equal(i, key)) {
      if (prev != nullptr) *prev = p;
      return i;
    }
    p = i;
  }
  return kNil;
}

// The lock-free walk (design in hash_table.hpp); `eq(i)` compares element
// i's key with atomic loads.
template <class Eq>
[[gnu::always_inline]] inline std::uint32_t HashBase::find_unlocked_with(std::uint32_t hash, const void* key,
                                                                          Eq eq) const {
  const std::uint32_t b = hash & bucket_mask_;
  std::atomic<std::uint32_t>& seq = seq_of(b);
  const std::uint32_t limit = max_entries();
  // locals: the acquire loads below would make the compiler reload members
  std::uint8_t* const elems = elems_;
  const std::size_t esz = elem_size_;
  std::atomic_ref<std::uint32_t> head_ref(buckets_[b].head);
  for (int attempt = 0; attempt < 8; ++attempt) {
    const std::uint32_t s1 = seq.load(std::memory_order_acquire);
    if ((s1 & 1) != 0) [[unlikely]] {
      __builtin_ia32_pause();
      continue;
    }
    std::uint32_t found = kNil;
    std::uint32_t steps = 0;
    for (std::uint32_t i = head_ref.load(std::memory_order_acquire); i != kNil && steps <= limit; ++steps) {
      const Elem& e = *reinterpret_cast<const Elem*>(elems + std::size_t{i} * esz);
      if (e.hash.load(std::memory_order_acquire) == hash && eq(i)) {
        found = i;
        break;
      }
      i = e.next.load(std::memory_order_acquire);
    }
    // the loads above are acquire loads: this one cannot move before them
    if (seq.load(std::memory_order_acquire) == s1) [[likely]]
      return found;
  }
  Guard lock(lock_for(b));  // writers keep changing this bucket (or one died mid-change)
  if (const std::uint32_t s = seq.load(std::memory_order_relaxed); (s & 1) != 0)
    seq.store(s + 1, std::memory_order_release);  // odd under the lock: its writer died mid-change
  return find(b, hash, key, nullptr);
}

[[gnu::always_inline]] inline std::uint32_t HashBase::find_unlocked(std::uint32_t hash, const void* key) const {
  if (ks_ == 4 || ks_ == 8) {  // the common keys: one 8-byte word (stored zero-padded)
    const std::uint64_t w = load_padded(key, ks_);
    const std::uint8_t* const keys = elems_ + hdr_;
    const std::size_t esz = elem_size_;
    return find_unlocked_with(hash, key, [=](std::uint32_t i) {
      return std::atomic_ref<const std::uint64_t>(*reinterpret_cast<const std::uint64_t*>(keys + std::size_t{i} * esz))
                 .load(std::memory_order_acquire) == w;
    });
  }
  return find_unlocked_with(hash, key, [&](std::uint32_t i) { return key_equal(i, key); });
}

std::uint32_t HashBase::pop_free() {
  std::uint64_t head = body_->free_head.load(std::memory_order_acquire);
  for (;;) {
    const auto idx = static_cast<std::uint32_t>(head);
    if (idx == kNil) return kNil;
    const std::uint32_t next = elem(idx).next.load(std::memory_order_relaxed);
    const std::uint64_t tag = (head >> 32) + 1;
    if (body_->free_head.compare_exchange_weak(head, (tag << 32) | next, std::memory_order_acq_rel,
                                               std::memory_order_acquire))
      return idx;
  }
}

void HashBase::push_free(std::uint32_t i) {
  if (!percpu()) free_fields(value_of(i, 0));  // cancels a bpf_timer in the value
  std::uint64_t head = body_->free_head.load(std::memory_order_acquire);
  for (;;) {
    elem(i).next.store(static_cast<std::uint32_t>(head), std::memory_order_relaxed);
    const std::uint64_t tag = (head >> 32) + 1;
    if (body_->free_head.compare_exchange_weak(head, (tag << 32) | i, std::memory_order_acq_rel,
                                               std::memory_order_acquire))
      return;
  }
}

void HashBase::unlink(std::uint32_t bucket, std::uint32_t i, std::uint32_t prev) {
  const std::uint32_t next = elem(i).next.load(std::memory_order_relaxed);
  if (prev == kNil) set_head(bucket, next);
  else elem(prev).next.store(next, std::memory_order_release);
}

void HashBase::copy_out(std::uint32_t i, void* value) const {
  if (!percpu()) {
    copy_value_out(value, value_of(i, 0));
    return;
  }
  auto* out = static_cast<std::uint8_t*>(value);
  for (std::uint32_t c = 0; c < ncpus(); ++c) std::memcpy(out + c * value_stride_, value_of(i, c), value_stride_);
}

void HashBase::write_value(std::uint32_t i, const void* value, std::uint32_t cpu, bool fresh) {
  const auto* in = static_cast<const std::uint8_t*>(value);
  if (!percpu() && !special_fields_) {
    store_words(value_of(i, 0), value, value_size());  // whole 8-byte words for lock-free readers
  } else if (!percpu()) {
    if (fresh) copy_value_out(value_of(i, 0), value);  // a new value starts unlocked
    else copy_value_in(value_of(i, 0), value);  // an existing value keeps its bpf_spin_lock
  } else if (cpu == kAllCpus) {
    // whole 8-byte-rounded slots from the host, as the kernel's bpf_long_memcpy
    for (std::uint32_t c = 0; c < ncpus(); ++c) std::memcpy(value_of(i, c), in + c * value_stride_, value_stride_);
  } else {
    // a program's update sets its own slot; a new element's other slots are zero (pcpu_init_value)
    if (fresh)
      for (std::uint32_t c = 0; c < ncpus(); ++c) std::memset(value_of(i, c), 0, value_stride_);
    std::memcpy(value_of(i, cpu), value, value_size());
  }
}

int HashBase::upsert(const void* key, const void* value, std::uint64_t flags, std::uint32_t cpu) {
  const std::uint64_t mode = flags & ~std::uint64_t{BPF_F_LOCK};
  if (mode > BPF_EXIST) return EINVAL;
  if (lru_) return lru_upsert(key, value, flags, cpu);
  const std::uint32_t h = hash_of(key);
  const std::uint32_t b = h & bucket_mask_;
  Guard lock(lock_for(b));
  std::uint32_t i = find(b, h, key, nullptr);
  if (i != kNil && mode == BPF_NOEXIST) return EEXIST;
  if (i == kNil && mode == BPF_EXIST) return ENOENT;
  const bool fresh = i == kNil;
  if (fresh) {
    i = pop_free();
    if (i == kNil) return E2BIG;
    store_key(i, key, h);
  }
  write_value(i, value, cpu, fresh);
  if (fresh) {
    SeqEdit edit(seq_of(b));
    link_head(b, i);
    body_->count.fetch_add(1, std::memory_order_relaxed);
  }
  return 0;
}

int HashBase::do_update(const void* key, const void* value, std::uint64_t flags) {
  return upsert(key, value, flags, kAllCpus);
}

int HashBase::prog_update(const void* key, const void* value, std::uint64_t flags, std::uint32_t cpu) {
  if (cpu >= ncpus()) return EINVAL;
  return upsert(key, value, flags, percpu() ? cpu : 0);
}

void* HashBase::prog_lookup(const void* key, std::uint32_t cpu) {
  if (cpu >= ncpus()) return nullptr;
  const std::uint32_t i = find_unlocked(hash_of(key), key);
  if (i == kNil) return nullptr;
  touch(i);
  return value_of(i, cpu);
}

void* HashBase::lookup_direct(Map& map, const void* key, std::uint32_t cpu) {
  return static_cast<HashBase&>(map).HashBase::prog_lookup(key, cpu);
}

void* HashBase::lookup_percpu(const void* key, std::uint32_t cpu) {
  if (!percpu()) return nullptr;
  return prog_lookup(key, cpu);
}

long HashBase::for_each_elem(std::uint32_t cpu, ElemVisitor visit, void* ctx) {
  if (percpu() ? cpu >= ncpus() : false) return -EINVAL;
  const std::uint32_t slot = percpu() ? cpu : 0;
  long n = 0;
  std::vector<std::uint32_t> chain;
  for (std::uint32_t b = 0; b < body_->nbuckets; ++b) {
    if (head(b) == kNil) continue;  // unlocked peek; a bucket filled meanwhile may be missed, as under RCU
    chain.clear();
    {
      // snapshot the chain: the callback runs without the lock (it may use this map)
      Guard lock(lock_for(b));
      for (std::uint32_t i = head(b); i != kNil; i = elem(i).next.load(std::memory_order_relaxed))
        chain.push_back(i);
    }
    for (const std::uint32_t i : chain) {
      ++n;
      if (visit(ctx, key_of(i), value_of(i, slot)) != 0) return n;
    }
  }
  return n;
}

int HashBase::do_lookup(const void* key, void* value) const {
  const std::uint32_t h = hash_of(key);
  const std::uint32_t b = h & bucket_mask_;
  Guard lock(lock_for(b));
  const std::uint32_t i = find(b, h, key, nullptr);
  if (i == kNil) return ENOENT;
  copy_out(i, value);
  return 0;
}

int HashBase::do_delete(const void* key) { return HashBase::do_lookup_and_delete(key, nullptr); }

// value null: a plain delete.
int HashBase::do_lookup_and_delete(const void* key, void* value) {
  const std::uint32_t h = hash_of(key);
  const std::uint32_t b = h & bucket_mask_;
  std::uint32_t i = kNil;
  {
    Guard lock(lock_for(b));
    std::uint32_t prev = kNil;
    i = find(b, h, key, &prev);
    if (i == kNil) return ENOENT;
    if (value != nullptr) copy_out(i, value);
    SeqEdit edit(seq_of(b));
    unlink(b, i, prev);
    set_live(i, false);
    body_->count.fetch_sub(1, std::memory_order_relaxed);
  }
  release(i);
  return 0;
}

int HashBase::first_from(std::uint32_t b, void* next_key) const {
  for (; b < body_->nbuckets; ++b) {
    Guard lock(lock_for(b));
    const std::uint32_t i = head(b);
    if (i != kNil) {
      std::memcpy(next_key, key_of(i), key_size());
      return 0;
    }
  }
  return ENOENT;
}

int HashBase::do_get_next_key(const void* key, void* next_key) const {
  if (key == nullptr) return first_from(0, next_key);
  const std::uint32_t h = hash_of(key);
  std::uint32_t b = h & bucket_mask_;
  {
    Guard lock(lock_for(b));
    const std::uint32_t i = find(b, h, key, nullptr);
    if (i == kNil) {
      // not in the map: restart at the first element (the kernel's find_first_elem)
      b = kNil;
    } else if (const std::uint32_t n = elem(i).next.load(std::memory_order_relaxed); n != kNil) {
      std::memcpy(next_key, key_of(n), key_size());
      return 0;
    }
  }
  return first_from(b == kNil ? 0 : b + 1, next_key);
}

// The kernel's __htab_map_lookup_and_delete_batch: the token is a bucket
// index; whole buckets are copied; a bucket that does not fit in the space
// left ends the batch (ENOSPC if it is the first one).
int HashBase::do_lookup_batch(bool /*first*/, std::uint32_t& token, void* keys, void* values, std::uint32_t& count,
                              bool and_delete) {
  const std::uint32_t max = count;
  std::uint32_t total = 0;
  std::uint32_t b = token;
  auto* k = static_cast<std::uint8_t*>(keys);
  auto* v = static_cast<std::uint8_t*>(values);
  const std::size_t vs = host_value_size();
  int err = 0;
  if (b >= body_->nbuckets) {
    count = 0;
    return ENOENT;
  }
  std::vector<std::uint32_t> freed;
  for (; b < body_->nbuckets; ++b) {
    freed.clear();
    {
      Guard lock(lock_for(b));
      std::uint32_t cnt = 0;
      for (std::uint32_t i = head(b); i != kNil; i = elem(i).next.load(std::memory_order_relaxed)) ++cnt;
      if (cnt > max - total) {
        if (total == 0) err = ENOSPC;
        break;
      }
      for (std::uint32_t i = head(b); i != kNil; i = elem(i).next.load(std::memory_order_relaxed)) {
        std::memcpy(k + std::size_t{total} * key_size(), key_of(i), key_size());
        copy_out(i, v + total * vs);
        ++total;
      }
      if (and_delete) {
        std::uint32_t i = head(b);
        SeqEdit edit(seq_of(b));
        set_head(b, kNil);
        while (i != kNil) {
          const std::uint32_t n = elem(i).next.load(std::memory_order_relaxed);
          body_->count.fetch_sub(1, std::memory_order_relaxed);
          set_live(i, false);
          freed.push_back(i);
          i = n;
        }
      }
    }
    for (const std::uint32_t f : freed) release(f);
    if (total == max) {
      ++b;
      break;
    }
  }
  if (err == 0 && b >= body_->nbuckets) err = ENOENT;
  count = err == ENOSPC ? 0 : total;
  token = b;
  return err;
}

}  // namespace userbpf::maps
