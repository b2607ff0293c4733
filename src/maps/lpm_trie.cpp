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
// One SharedSpinLock per map serialises all operations (threads and
// processes); lookups take it too.
#include <linux/bpf.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "maps/array.hpp"
#include "maps/registry.hpp"
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
  std::uint32_t root;
  std::uint32_t n_entries;  // real nodes
  std::uint32_t pool;       // nodes in the pool
  std::uint32_t next_unused;
  std::uint32_t free_head;
  std::uint32_t node_size;
};

struct Node {
  std::uint32_t child[2];
  std::uint32_t prefixlen;
  std::uint32_t flags;
};

std::uint32_t pool_size(const MapSpec& s) {
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(2ULL * s.max_entries, kMaxPool));
}
std::size_t node_size(const MapSpec& s) { return kNodeHdr + round8(s.key_size - 4) + round8(s.value_size); }

class LpmTrieMap final : public Map {
 public:
  LpmTrieMap(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc) : Map(std::move(file), desc) {
    ctl_ = reinterpret_cast<LpmCtl*>(body());
    pool_ = body() + kCtlSize;
    data_size_ = key_size() - 4;
    max_prefixlen_ = data_size_ * 8;
    node_size_ = ctl_->node_size;
    value_off_ = kNodeHdr + round8(data_size_);
  }

  void* prog_lookup(const void* key, std::uint32_t /*cpu*/) override {
    Guard g(ctl_->lock);
    const std::uint32_t n = longest_match(key);
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
    Guard g(ctl_->lock);
    const std::uint32_t n = longest_match(key);
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
  // Leading bits node i and the key share, at most min(both prefix lengths).
  [[nodiscard]] std::uint32_t match(std::uint32_t i, const void* key) const {
    const std::uint32_t limit = std::min(node(i).prefixlen, key_prefixlen(key));
    const std::uint8_t* a = ndata(i);
    const std::uint8_t* b = key_data(key);
    std::uint32_t n = 0;
    for (std::uint32_t off = 0; n < limit && off < data_size_; off += 8) {
      std::uint64_t x = 0, y = 0;
      const std::uint32_t len = std::min<std::uint32_t>(8, data_size_ - off);
      std::memcpy(&x, a + off, len);
      std::memcpy(&y, b + off, len);
      const std::uint64_t d = __builtin_bswap64(x ^ y);  // first byte most significant
      if (d != 0) {
        n += static_cast<std::uint32_t>(std::countl_zero(d));
        break;
      }
      n += len * 8;
    }
    return std::min(n, limit);
  }
  [[nodiscard]] std::uint32_t longest_match(const void* key) const {
    std::uint32_t found = kNil;
    if (key_prefixlen(key) > max_prefixlen_) return kNil;  // as the kernel's trie_lookup_elem
    for (std::uint32_t n = ctl_->root; n != kNil;) {
      const std::uint32_t m = match(n, key);
      if (m < node(n).prefixlen) break;
      if ((node(n).flags & kImFlag) == 0) found = n;
      if (m == max_prefixlen_) break;
      n = node(n).child[bit(key_data(key), node(n).prefixlen)];
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
    n.child[0] = n.child[1] = kNil;
    n.flags = 0;
    return i;
  }
  void release(std::uint32_t i) {
    node(i).child[0] = ctl_->free_head;
    node(i).flags = kImFlag;
    ctl_->free_head = i;
  }
  // A new real node for `key` (the caller has checked capacity).
  std::uint32_t make_real(const void* key, const void* val) {
    const std::uint32_t i = alloc();
    if (i == kNil) return kNil;
    node(i).prefixlen = key_prefixlen(key);
    std::memcpy(ndata(i), key_data(key), data_size_);
    std::memcpy(value(i), val, value_size());
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
  Guard g(ctl_->lock);
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
    m = match(n, key);
    if (node(n).prefixlen != m || node(n).prefixlen == plen || node(n).prefixlen == max_prefixlen_) break;
    slot = &node(n).child[bit(key_data(key), node(n).prefixlen)];
  }
  if (n != kNil && node(n).prefixlen == plen && m == plen) {  // same prefix
    if ((node(n).flags & kImFlag) == 0) {
      if (flags == BPF_NOEXIST) return EEXIST;
      std::memcpy(ndata(n), key_data(key), data_size_);
      std::memcpy(value(n), val, value_size());
      return 0;
    }
    if (const int e = can_add(); e != 0) return e;
    node(n).flags = 0;  // the branch point becomes a real node
    std::memcpy(ndata(n), key_data(key), data_size_);
    std::memcpy(value(n), val, value_size());
    ++ctl_->n_entries;
    return 0;
  }
  if (const int e = can_add(); e != 0) return e;
  if (n == kNil) {  // an empty slot
    const std::uint32_t nn = make_real(key, val);
    if (nn == kNil) return ENOMEM;
    *slot = nn;
    ++ctl_->n_entries;
    return 0;
  }
  if (m == plen) {  // the new key is a prefix of n: it goes above n
    const std::uint32_t nn = make_real(key, val);
    if (nn == kNil) return ENOMEM;
    node(nn).child[bit(ndata(n), m)] = n;
    *slot = nn;
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
  node(im).prefixlen = m;
  node(im).flags = kImFlag;
  std::memcpy(ndata(im), ndata(n), data_size_);
  const std::uint32_t kb = bit(key_data(key), m);
  node(im).child[kb] = nn;
  node(im).child[1 - kb] = n;
  *slot = im;
  ++ctl_->n_entries;
  return 0;
}

int LpmTrieMap::do_delete(const void* key) {
  const std::uint32_t plen = key_prefixlen(key);
  if (plen > max_prefixlen_) return EINVAL;
  Guard g(ctl_->lock);
  std::uint32_t* slot = &ctl_->root;
  std::uint32_t* parent_slot = nullptr;
  std::uint32_t parent = kNil;
  std::uint32_t n = ctl_->root;
  std::uint32_t m = 0;
  while (n != kNil) {
    m = match(n, key);
    if (node(n).prefixlen != m || node(n).prefixlen == plen) break;
    parent = n;
    parent_slot = slot;
    slot = &node(n).child[bit(key_data(key), node(n).prefixlen)];
    n = *slot;
  }
  if (n == kNil || node(n).prefixlen != plen || m != plen || (node(n).flags & kImFlag) != 0) return ENOENT;
  --ctl_->n_entries;
  Node& d = node(n);
  if (d.child[0] != kNil && d.child[1] != kNil) {  // still a branch point
    d.flags = kImFlag;
    return 0;
  }
  if (parent != kNil && (node(parent).flags & kImFlag) != 0 && d.child[0] == kNil && d.child[1] == kNil) {
    // a leaf under a branch point: the branch point is not needed any more
    const Node& p = node(parent);
    *parent_slot = p.child[0] == n ? p.child[1] : p.child[0];
    release(parent);
    release(n);
    return 0;
  }
  *slot = d.child[0] != kNil ? d.child[0] : d.child[1];
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
  std::uint32_t path[2048 + 2];
  std::uint32_t depth = 0;
  std::uint32_t n = root;
  bool found = false;
  while (n != kNil && depth < 2050) {
    path[depth++] = n;
    const std::uint32_t m = match(n, key);
    if (m < node(n).prefixlen) break;
    if (node(n).prefixlen == plen) {
      found = (node(n).flags & kImFlag) == 0;
      break;
    }
    if (node(n).prefixlen > plen) break;
    n = node(n).child[bit(key_data(key), node(n).prefixlen)];
  }
  if (!found) {
    copy_key(leftmost(root), next_key);
    return 0;
  }
  // post-order successor: climb until a parent has an unvisited right side
  // or is itself a real node
  for (std::uint32_t k = depth - 1; k > 0; --k) {
    const std::uint32_t child = path[k];
    const Node& p = node(path[k - 1]);
    if (p.child[0] == child && p.child[1] != kNil) {
      copy_key(leftmost(p.child[1]), next_key);
      return 0;
    }
    if ((p.flags & kImFlag) == 0) {
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
