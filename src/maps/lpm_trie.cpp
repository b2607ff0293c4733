// BPF_MAP_TYPE_LPM_TRIE: longest-prefix-match map (IPv4, IPv6, any key of
// 1..256 data bytes), a path-compressed binary trie as the kernel's.
//
// Keys are struct bpf_lpm_trie_key { u32 prefixlen; u8 data[]; } in network
// bit order (bit 0 is the most significant bit of data[0]).
//
// Layout (offsets only): LpmCtl (lock, root, counts, free list) | node pool.
// A node is { u32 child[2]; u32 prefixlen; u32 flags; data; value } and is
// either real (holds a value) or intermediate (kImFlag: a branch point
// created by an insert, always with two children). Pool: 2 * max_entries
// nodes (real <= max_entries, intermediates < real), capped at kMaxPool;
// unused nodes are handed out in order (the file is sparse, so only pages
// touched cost memory), freed ones go on a free list through child[0].
//
// Invariants: along any path prefixlen strictly increases and every node's
// data agrees with its ancestors' on the ancestors' prefix; the child a key
// continues to from node n is bit n.prefixlen of the key.
// Lookup (programs and host): the deepest real node whose prefix matches
// the key (up to the key's own prefixlen). GET_NEXT_KEY walks in post-order
// (more specific prefixes first, the 0 side before the 1 side), starting
// over at the first node for a missing or invalid key, exactly the kernel's
// order. Keys are stored with all their data bytes as given by the last
// update (bits beyond the prefix included), as the kernel.
// One SharedSpinLock per map serialises updates and deletes (threads and
// processes). Lookups take no lock: writers make LpmCtl::seq odd for the
// whole operation and even after it; a reader walks with acquire loads
// (every field a reader looks at - root, child links, prefixlen, flags, key
// data words - is stored with release stores) and keeps its result only if
// seq was even and unchanged around the walk, else retries (a few times,
// then takes the lock). Nodes live in the pool for the map's lifetime, so a
// reader that follows a stale link reads a released or reused node, never
// unmapped memory; it bounds the walk by the key length and checks node
// indexes and prefix lengths before using them. The key's data bits are
// compared 64 at a time (big-endian words built once per operation).
#include <linux/bpf.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>

#include "maps/array.hpp"
#include "maps/registry.hpp"
#include "maps/seq_edit.hpp"
#include "maps/shm.hpp"

namespace userbpf::maps {

namespace {

constexpr std::uint32_t kNil = 0xffffffffu;
constexpr std::uint32_t kImFlag = 1;
constexpr std::uint64_t kMaxPool = 1u << 24;
constexpr std::size_t kCtlSize = 64;
constexpr std::size_t kNodeHdr = 16;

struct LpmCtl {
  SharedSpinLock lock;
  std::atomic<std::uint32_t> seq;  // odd while an update or delete runs
  std::uint32_t root;
  std::uint32_t n_entries;  // real nodes
  std::uint32_t pool;       // nodes in the pool
  std::uint32_t next_unused;
  std::uint32_t free_head;
  std::uint32_t node_size;
};
static_assert(sizeof(LpmCtl) <= kCtlSize);

struct Node {
  std::uint32_t child[2];
  std::uint32_t prefixlen;
  std::uint32_t flags;
};

std::uint32_t pool_size(const MapSpec& s) {
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(2ULL * s.max_entries, kMaxPool));
}
std::size_t node_size(const MapSpec& s) { return kNodeHdr + round8(s.key_size - 4) + round8(s.value_size); }

std::uint32_t load_u32(const std::uint32_t& v) {
  return std::atomic_ref<const std::uint32_t>(v).load(std::memory_order_acquire);
}
void store_u32(std::uint32_t& v, std::uint32_t x) { std::atomic_ref<std::uint32_t>(v).store(x, std::memory_order_release); }

// A key's data as big-endian 64-bit words (bit 0 = the most significant bit
// of word 0), built once per operation.
struct Probe {
  std::uint32_t plen;
  std::uint32_t nwords;
  std::uint64_t w[32];  // up to 256 data bytes
  [[nodiscard]] std::uint32_t bit(std::uint32_t index) const {
    return static_cast<std::uint32_t>(w[index / 64] >> (63 - index % 64)) & 1u;
  }
};


class LpmTrieMap final : public Map {
 public:
  LpmTrieMap(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc) : Map(std::move(file), desc) {
    ctl_ = reinterpret_cast<LpmCtl*>(body());
    pool_ = body() + kCtlSize;
    data_size_ = key_size() - 4;
    max_prefixlen_ = data_size_ * 8;
    node_size_ = ctl_->node_size;
    value_off_ = kNodeHdr + round8(data_size_);
    set_prog_lookup_fn([](Map& m, const void* key, std::uint32_t cpu) {
      return static_cast<LpmTrieMap&>(m).LpmTrieMap::prog_lookup(key, cpu);
    });
  }

  void* prog_lookup(const void* key, std::uint32_t /*cpu*/) override {
    if (key_prefixlen(key) > max_prefixlen_) return nullptr;  // as the kernel's trie_lookup_elem
    const Probe p = probe(key);
    for (int attempt = 0; attempt < 8; ++attempt) {
      const std::uint32_t s1 = ctl_->seq.load(std::memory_order_acquire);
      if ((s1 & 1) != 0) {
        __builtin_ia32_pause();
        continue;
      }
      const std::uint32_t n = longest_match(p);
      // the walk's loads are acquire loads: this one cannot move before them
      if (ctl_->seq.load(std::memory_order_acquire) == s1) return n == kNil ? nullptr : value(n);
    }
    Guard g(ctl_->lock);  // writers keep changing the trie (or one died mid-change)
    const std::uint32_t n = longest_match(p);
    return n == kNil ? nullptr : value(n);
  }
  int prog_update(const void* key, const void* val, std::uint64_t flags, std::uint32_t /*cpu*/) override {
    return do_update(key, val, flags);
  }
  int prog_delete(const void* key) override { return do_delete(key); }
  [[nodiscard]] std::span<std::uint8_t> program_area() const override {
    return {pool_, std::size_t{ctl_->pool} * node_size_};
  }

 protected:
  int do_lookup(const void* key, void* out) const override {
    if (key_prefixlen(key) > max_prefixlen_) return ENOENT;
    const Probe p = probe(key);
    Guard g(ctl_->lock);
    const std::uint32_t n = longest_match(p);
    if (n == kNil) return ENOENT;
    std::memcpy(out, value(n), value_size());
    return 0;
  }
  int do_update(const void* key, const void* val, std::uint64_t flags) override;
  int do_delete(const void* key) override;
  int do_get_next_key(const void* key, void* next_key) const override;

 private:
  [[nodiscard]] Node& node(std::uint32_t i) const {
    return *reinterpret_cast<Node*>(pool_ + std::size_t{i} * node_size_);
  }
  [[nodiscard]] std::uint8_t* ndata(std::uint32_t i) const { return pool_ + std::size_t{i} * node_size_ + kNodeHdr; }
  [[nodiscard]] std::uint8_t* value(std::uint32_t i) const { return pool_ + std::size_t{i} * node_size_ + value_off_; }
  static std::uint32_t key_prefixlen(const void* key) {
    std::uint32_t p;
    std::memcpy(&p, key, 4);
    return p;
  }
  static const std::uint8_t* key_data(const void* key) { return static_cast<const std::uint8_t*>(key) + 4; }
  static std::uint32_t bit(const std::uint8_t* data, std::uint32_t index) {
    return (data[index / 8] >> (7 - index % 8)) & 1u;
  }
  [[nodiscard]] Probe probe(const void* key) const {
    Probe p;
    p.plen = key_prefixlen(key);
    p.nwords = (data_size_ + 7) / 8;
    const std::uint8_t* d = key_data(key);
    for (std::uint32_t w = 0; w < p.nwords; ++w) {
      const std::uint32_t off = w * 8;
      p.w[w] = __builtin_bswap64(load_padded(d + off, std::min<std::uint32_t>(8, data_size_ - off)));  // first byte most significant
    }
    return p;
  }
  // Leading bits node i (of prefix length `plen`) and the key share, at
  // most min(both prefix lengths). The node's padding bytes are never
  // counted: the limit is at most the data's bit length.
  [[nodiscard]] std::uint32_t match(std::uint32_t i, std::uint32_t plen, const Probe& key) const {
    return match_data(reinterpret_cast<const std::uint64_t*>(ndata(i)), plen, key);
  }
  static std::uint32_t match_data(const std::uint64_t* a, std::uint32_t plen, const Probe& key) {
    const std::uint32_t limit = std::min(plen, key.plen);
    std::uint32_t n = 0;
    for (std::uint32_t w = 0; n < limit && w < key.nwords; ++w, n += 64) {
      const std::uint64_t x = __builtin_bswap64(std::atomic_ref<const std::uint64_t>(a[w]).load(std::memory_order_acquire));
      if (const std::uint64_t d = x ^ key.w[w]; d != 0) {
        n += static_cast<std::uint32_t>(std::countl_zero(d));
        break;
      }
    }
    return std::min(n, limit);
  }
  [[nodiscard]] std::uint32_t match(std::uint32_t i, const Probe& key) const {
    return match(i, load_u32(node(i).prefixlen), key);
  }
  // The deepest real node matching the key (key.plen <= max_prefixlen_).
  // Safe without the lock: every index and prefix length read is checked
  // before use and the walk is bounded (prefix lengths increase on a
  // consistent path); the caller validates the result with seq.
  [[nodiscard]] std::uint32_t longest_match(const Probe& key) const {
    return key.nwords == 1 ? walk<true>(key) : walk<false>(key);
  }
  // The walk. Per level the dependency chain is short: both child links are
  // loaded with the prefix length and one is picked by the key's bit (no
  // load waits for the bit). kOneWord (keys of at most 8 data bytes: IPv4):
  // the key's word stays in a register and a node matches in a few
  // instructions (~40% fewer cycles per level than the generic match).
  template <bool kOneWord>
  [[nodiscard]] std::uint32_t walk(const Probe& key) const {
    // locals: the acquire loads below would make the compiler reload members
    const std::uint8_t* const pool = pool_;
    const std::size_t nsz = node_size_;
    const std::uint32_t pool_count = ctl_->pool;
    const std::uint32_t max_plen = max_prefixlen_;  // kOneWord: <= 64
    const std::uint64_t w = key.w[0];
    std::uint32_t found = kNil;
    std::uint32_t steps = 0;
    for (std::uint32_t n = load_u32(ctl_->root); n < pool_count && steps <= max_plen; ++steps) {
      const std::uint8_t* at = pool + std::size_t{n} * nsz;
      const Node& nd = *reinterpret_cast<const Node*>(at);
      const std::uint32_t plen = load_u32(nd.prefixlen);
      const std::uint32_t c0 = load_u32(nd.child[0]);
      const std::uint32_t c1 = load_u32(nd.child[1]);
      if (plen > max_plen) break;  // a torn view of a reused node
      // the node's whole prefix must be within the key's and agree with it
      const auto* data = reinterpret_cast<const std::uint64_t*>(at + kNodeHdr);
      if constexpr (kOneWord) {
        const std::uint64_t d =
            __builtin_bswap64(std::atomic_ref<const std::uint64_t>(*data).load(std::memory_order_acquire)) ^ w;
        if (plen > key.plen || static_cast<std::uint32_t>(std::countl_zero(d)) < plen) break;
      } else if (match_data(data, plen, key) < plen) {
        break;
      }
      if ((load_u32(nd.flags) & kImFlag) == 0) found = n;
      if (plen == max_plen) break;  // kOneWord: plen < 64 below
      n = (kOneWord ? static_cast<std::uint32_t>((w << plen) >> 63) : key.bit(plen)) != 0 ? c1 : c0;
    }
    return found;
  }
  std::uint32_t alloc() {
    std::uint32_t i = ctl_->free_head;
    if (i != kNil) {
      ctl_->free_head = node(i).child[0];
    } else {
      if (ctl_->next_unused >= ctl_->pool) return kNil;
      i = ctl_->next_unused++;
    }
    Node& n = node(i);
    store_u32(n.child[0], kNil);
    store_u32(n.child[1], kNil);
    store_u32(n.flags, 0);
    return i;
  }
  void release(std::uint32_t i) {
    store_u32(node(i).child[0], ctl_->free_head);
    store_u32(node(i).flags, kImFlag);
    ctl_->free_head = i;
  }
  void set_data(std::uint32_t i, const std::uint8_t* data) const { store_words(ndata(i), data, data_size_); }
  void set_value(std::uint32_t i, const void* val) const { store_words(value(i), val, value_size()); }
  // A new real node for `key` (the caller has checked capacity).
  std::uint32_t make_real(const void* key, const void* val) {
    const std::uint32_t i = alloc();
    if (i == kNil) return kNil;
    store_u32(node(i).prefixlen, key_prefixlen(key));
    set_data(i, key_data(key));
    set_value(i, val);
    return i;
  }
  // First node of the subtree at i in post-order.
  [[nodiscard]] std::uint32_t leftmost(std::uint32_t i) const {
    for (;;) {
      const Node& n = node(i);
      if (n.child[0] != kNil) i = n.child[0];
      else if (n.child[1] != kNil) i = n.child[1];
      else return i;
    }
  }
  void copy_key(std::uint32_t i, void* out) const {
    auto* o = static_cast<std::uint8_t*>(out);
    std::memcpy(o, &node(i).prefixlen, 4);
    std::memcpy(o + 4, ndata(i), data_size_);
  }

  LpmCtl* ctl_;
  std::uint8_t* pool_;
  std::uint32_t data_size_;
  std::uint32_t max_prefixlen_;
  std::size_t node_size_;
  std::size_t value_off_;
};

int LpmTrieMap::do_update(const void* key, const void* val, std::uint64_t flags) {
  if (flags > BPF_EXIST) return EINVAL;
  const std::uint32_t plen = key_prefixlen(key);
  if (plen > max_prefixlen_) return EINVAL;
  const Probe p = probe(key);
  Guard g(ctl_->lock);
  SeqEdit edit(ctl_->seq);
  // Checks for a key that is not in the trie yet.
  auto can_add = [&]() -> int {
    if (flags == BPF_EXIST) return ENOENT;
    if (ctl_->n_entries >= max_entries()) return ENOSPC;
    return 0;
  };
  std::uint32_t* slot = &ctl_->root;
  std::uint32_t n = kNil;
  std::uint32_t m = 0;
  while ((n = *slot) != kNil) {
    m = match(n, p);
    if (node(n).prefixlen != m || node(n).prefixlen == plen || node(n).prefixlen == max_prefixlen_) break;
    slot = &node(n).child[p.bit(node(n).prefixlen)];
  }
  if (n != kNil && node(n).prefixlen == plen && m == plen) {  // same prefix
    if ((node(n).flags & kImFlag) == 0) {
      if (flags == BPF_NOEXIST) return EEXIST;
      set_data(n, key_data(key));
      set_value(n, val);
      return 0;
    }
    if (const int e = can_add(); e != 0) return e;
    set_data(n, key_data(key));
    set_value(n, val);
    store_u32(node(n).flags, 0);  // the branch point becomes a real node
    ++ctl_->n_entries;
    return 0;
  }
  if (const int e = can_add(); e != 0) return e;
  if (n == kNil) {  // an empty slot
    const std::uint32_t nn = make_real(key, val);
    if (nn == kNil) return ENOMEM;
    store_u32(*slot, nn);
    ++ctl_->n_entries;
    return 0;
  }
  if (m == plen) {  // the new key is a prefix of n: it goes above n
    const std::uint32_t nn = make_real(key, val);
    if (nn == kNil) return ENOMEM;
    store_u32(node(nn).child[bit(ndata(n), m)], n);
    store_u32(*slot, nn);
    ++ctl_->n_entries;
    return 0;
  }
  // n and the key diverge at bit m: a branch point with both below it
  const std::uint32_t im = alloc();
  if (im == kNil) return ENOMEM;
  const std::uint32_t nn = make_real(key, val);
  if (nn == kNil) {
    release(im);
    return ENOMEM;
  }
  store_u32(node(im).prefixlen, m);
  store_u32(node(im).flags, kImFlag);
  set_data(im, ndata(n));
  const std::uint32_t kb = p.bit(m);
  store_u32(node(im).child[kb], nn);
  store_u32(node(im).child[1 - kb], n);
  store_u32(*slot, im);
  ++ctl_->n_entries;
  return 0;
}

int LpmTrieMap::do_delete(const void* key) {
  const std::uint32_t plen = key_prefixlen(key);
  if (plen > max_prefixlen_) return EINVAL;
  const Probe p = probe(key);
  Guard g(ctl_->lock);
  SeqEdit edit(ctl_->seq);
  std::uint32_t* slot = &ctl_->root;
  std::uint32_t* parent_slot = nullptr;
  std::uint32_t parent = kNil;
  std::uint32_t n = ctl_->root;
  std::uint32_t m = 0;
  while (n != kNil) {
    m = match(n, p);
    if (node(n).prefixlen != m || node(n).prefixlen == plen) break;
    parent = n;
    parent_slot = slot;
    slot = &node(n).child[p.bit(node(n).prefixlen)];
    n = *slot;
  }
  if (n == kNil || node(n).prefixlen != plen || m != plen || (node(n).flags & kImFlag) != 0) return ENOENT;
  --ctl_->n_entries;
  Node& d = node(n);
  if (d.child[0] != kNil && d.child[1] != kNil) {  // still a branch point
    store_u32(d.flags, kImFlag);
    return 0;
  }
  if (parent != kNil && (node(parent).flags & kImFlag) != 0 && d.child[0] == kNil && d.child[1] == kNil) {
    // a leaf under a branch point: the branch point is not needed any more
    const Node& pn = node(parent);
    store_u32(*parent_slot, pn.child[0] == n ? pn.child[1] : pn.child[0]);
    release(parent);
    release(n);
    return 0;
  }
  store_u32(*slot, d.child[0] != kNil ? d.child[0] : d.child[1]);
  release(n);
  return 0;
}

int LpmTrieMap::do_get_next_key(const void* key, void* next_key) const {
  Guard g(ctl_->lock);
  const std::uint32_t root = ctl_->root;
  if (root == kNil) return ENOENT;
  if (key == nullptr || key_prefixlen(key) > max_prefixlen_) {
    copy_key(leftmost(root), next_key);
    return 0;
  }
  // the path to the node holding exactly `key`
  const std::uint32_t plen = key_prefixlen(key);
  const Probe p = probe(key);
  std::uint32_t path[2048 + 2];
  std::uint32_t depth = 0;
  std::uint32_t n = root;
  bool found = false;
  while (n != kNil && depth < 2050) {
    path[depth++] = n;
    const std::uint32_t m = match(n, p);
    if (m < node(n).prefixlen) break;
    if (node(n).prefixlen == plen) {
      found = (node(n).flags & kImFlag) == 0;
      break;
    }
    if (node(n).prefixlen > plen) break;
    n = node(n).child[p.bit(node(n).prefixlen)];
  }
  if (!found) {
    copy_key(leftmost(root), next_key);
    return 0;
  }
  // post-order successor: climb until a parent has an unvisited right side
  // or is itself a real node
  for (std::uint32_t k = depth - 1; k > 0; --k) {
    const std::uint32_t child = path[k];
    const Node& pn = node(path[k - 1]);
    if (pn.child[0] == child && pn.child[1] != kNil) {
      copy_key(leftmost(pn.child[1]), next_key);
      return 0;
    }
    if ((pn.flags & kImFlag) == 0) {
      copy_key(path[k - 1], next_key);
      return 0;
    }
  }
  return ENOENT;
}

}  // namespace

const MapTypeDesc kLpmTrieDesc = {
    BPF_MAP_TYPE_LPM_TRIE,
    "lpm_trie",
    MapKind::LpmTrie,
    false,
    BPF_F_NO_PREALLOC | BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY | BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG,
    kOpLookupBatch | kOpKeyedBatch | kOpUpdateBatch | kOpDeleteBatch,
    [](const MapSpec& s) {
      // trie_alloc: BPF_F_NO_PREALLOC required, 1..256 data bytes, 1.. value bytes
      if (s.max_entries == 0 || (s.map_flags & BPF_F_NO_PREALLOC) == 0 || s.key_size < 5 || s.key_size > 4 + 256 ||
          s.value_size < 1 || s.value_size > kKmallocMaxSize - 256 - 32)
        return EINVAL;
      return 0;
    },
    [](const MapSpec& s, std::uint32_t) -> std::size_t { return kCtlSize + std::size_t{pool_size(s)} * node_size(s); },
    [](std::uint8_t* body, const MapSpec& s, std::uint32_t) {
      auto* c = new (body) LpmCtl{};
      c->lock.init();
      c->seq.store(0, std::memory_order_relaxed);
      c->root = kNil;
      c->free_head = kNil;
      c->pool = pool_size(s);
      c->node_size = static_cast<std::uint32_t>(node_size(s));
    },
    [](std::unique_ptr<SharedFile> f, const MapTypeDesc& d) -> std::unique_ptr<Map> {
      return std::make_unique<LpmTrieMap>(std::move(f), d);
    },
    false,
};

}  // namespace userbpf::maps
