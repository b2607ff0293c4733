// The redirect maps, targets of bpf_redirect_map: BPF_MAP_TYPE_DEVMAP,
// BPF_MAP_TYPE_DEVMAP_HASH (network devices by ifindex), BPF_MAP_TYPE_CPUMAP
// (CPUs, value = queue size) and BPF_MAP_TYPE_XSKMAP (AF_XDP sockets), with
// the kernel's MAP_CREATE / UPDATE / LOOKUP / DELETE / GET_NEXT_KEY rules and
// errno (kernel/bpf/devmap.c, cpumap.c, net/xdp/xskmap.c), checked against
// the kernel by tests/maps/redirect_map_test.cpp.
//
// What user space can check, it checks: a devmap's ifindex must name one of
// the host's network interfaces (if_indextoname), a cpumap key must be a
// possible CPU of the host and max_entries at most NR_CPUS
// (/sys/devices/system/cpu/kernel_max + 1), an xskmap value must be an
// AF_XDP socket of the calling process. Nothing is ever transmitted: a test
// run only records the target (helpers' RunState::redirect). Programs
// attached to devmap / cpumap entries (bpf_devmap_val.bpf_prog.fd > 0) are
// not supported: such updates fail as the kernel fails for an fd that is not
// a suitable program (devmap: EINVAL, cpumap: ENOMEM).
//
// Storage. devmap, cpumap, xskmap: arrays (array.hpp) of 8-byte slots
// {u32 a, u32 b}: a = ifindex / queue size / 1 (xsk present), b = program id
// (always 0) / the socket's inode number (storing the same socket again is
// a no-op, as the kernel's old_xs == xs); a == 0 is an empty slot. Slots are written
// with two relaxed atomic stores of `b` then `a` (release), read `a` first
// (acquire), so a reader never sees a half-written entry as present.
// devmap_hash: the kernel's structure: roundup_pow_of_two(max_entries)
// buckets (key & (nbuckets - 1)) of chains, new or replaced entries at the
// head of their chain, so GET_NEXT_KEY walks in exactly the kernel's order;
// max_entries preallocated elements, a free list, one SharedSpinLock.
#include <fcntl.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "maps/array.hpp"
#include "maps/registry.hpp"
#include "maps/shm.hpp"

namespace userbpf::maps {

namespace {

constexpr std::uint32_t kCpuMapMaxQsize = 16384;
constexpr std::uint32_t kNil = 0xffffffffu;
constexpr std::uint64_t kDevRedirectFlags = BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS;

// NR_CPUS of the running kernel (cpumap's max_entries limit).
std::uint32_t nr_cpus() {
  static const std::uint32_t n = [] {
    unsigned v = 0;
    if (FILE* f = std::fopen("/sys/devices/system/cpu/kernel_max", "r")) {
      if (std::fscanf(f, "%u", &v) != 1) v = 0;
      std::fclose(f);
    }
    return v != 0 ? v + 1 : 8192u;
  }();
  return n;
}

struct Val {
  std::uint32_t a = 0;
  std::int32_t fd = 0;  // bpf_prog.fd / the socket (0 when the value has no second field)
};
Val read_val(const void* value, std::uint32_t value_size) {
  Val v;
  std::memcpy(&v.a, value, 4);
  if (value_size >= 8) std::memcpy(&v.fd, static_cast<const std::uint8_t*>(value) + 4, 4);
  return v;
}

bool ifindex_exists(std::uint32_t ifindex) {
  char name[IF_NAMESIZE];
  return ifindex != 0 && if_indextoname(ifindex, name) != nullptr;
}

// A devmap value (ifindex, program fd): 0 or the kernel's errno of __dev_map_alloc_node.
int check_dev_val(const Val& v) {
  if (!ifindex_exists(v.a)) return EINVAL;
  if (v.fd > 0) return EINVAL;  // devmap programs are not supported
  return 0;
}

enum class Target : std::uint8_t { Dev, Cpu, Xsk };

class RedirectArray final : public ArrayBase {
 public:
  RedirectArray(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc, Target t)
      : ArrayBase(std::move(file), desc), target_(t) {}

  void* prog_lookup(const void* key, std::uint32_t /*cpu*/) override {
    const std::uint32_t i = index(key);
    return i < max_entries() && present(i) ? slot_ptr(i, 0) : nullptr;
  }
  int prog_update(const void*, const void*, std::uint64_t, std::uint32_t) override { return EINVAL; }
  int prog_delete(const void*) override { return EINVAL; }
  long for_each_elem(std::uint32_t, ElemVisitor, void*) override { return -EINVAL; }
  [[nodiscard]] bool redirect_target(std::uint32_t key) const override { return key < max_entries() && present(key); }
  [[nodiscard]] std::uint64_t redirect_flags() const override {
    return target_ == Target::Dev ? kDevRedirectFlags : 0;
  }

 protected:
  int do_lookup(const void* key, void* value) const override {
    if (target_ == Target::Xsk) return EOPNOTSUPP;  // xsk_map_lookup_elem_sys
    const std::uint32_t i = index(key);
    if (i >= max_entries() || !present(i)) return ENOENT;
    const std::uint32_t words[2] = {word(i, 0).load(std::memory_order_acquire), word(i, 1).load(std::memory_order_relaxed)};
    std::memcpy(value, words, value_size());
    return 0;
  }
  int do_update(const void* key, const void* value, std::uint64_t flags) override {
    if (flags > BPF_EXIST) return EINVAL;
    const std::uint32_t i = index(key);
    if (i >= max_entries()) return E2BIG;
    const Val v = read_val(value, value_size());
    switch (target_) {
      case Target::Dev:
        if (flags == BPF_NOEXIST) return EEXIST;  // dev_map_update_elem: entries always "exist"
        if (v.a == 0) {
          if (v.fd > 0) return EINVAL;  // no program without a device
          clear(i);
          return 0;
        }
        if (const int e = check_dev_val(v); e != 0) return e;
        store(i, v.a, 0);
        return 0;
      case Target::Cpu:
        if (flags == BPF_NOEXIST) return EEXIST;
        if (v.a > kCpuMapMaxQsize) return EOVERFLOW;
        if (i >= cpu_slots_possible()) return ENODEV;  // not a possible CPU
        if (v.a == 0) {
          clear(i);
          return 0;
        }
        if (v.fd > 0) return ENOMEM;  // cpumap programs are not supported
        store(i, v.a, 0);
        return 0;
      case Target::Xsk: {
        if (::fcntl(static_cast<int>(v.a), F_GETFD) < 0) return EBADF;
        int domain = 0;
        socklen_t len = sizeof domain;
        if (::getsockopt(static_cast<int>(v.a), SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) return ENOTSOCK;
        if (domain != AF_XDP) return EOPNOTSUPP;
        struct stat st {};
        if (::fstat(static_cast<int>(v.a), &st) != 0) return EBADF;
        const auto sock = static_cast<std::uint32_t>(st.st_ino);  // the socket's identity (not the fd number)
        const bool had = present(i);
        if (had && word(i, 1).load(std::memory_order_relaxed) == sock) return 0;  // the same socket again
        if (had && flags == BPF_NOEXIST) return EEXIST;
        if (!had && flags == BPF_EXIST) return ENOENT;
        store(i, 1, sock);
        return 0;
      }
    }
    return EINVAL;
  }
  int do_delete(const void* key) override {
    const std::uint32_t i = index(key);
    if (i >= max_entries()) return EINVAL;
    clear(i);
    return 0;
  }

 private:
  [[nodiscard]] std::atomic_ref<std::uint32_t> word(std::uint32_t i, int w) const {
    return std::atomic_ref<std::uint32_t>(*(reinterpret_cast<std::uint32_t*>(slot_ptr(i, 0)) + w));
  }
  [[nodiscard]] bool present(std::uint32_t i) const { return word(i, 0).load(std::memory_order_acquire) != 0; }
  void store(std::uint32_t i, std::uint32_t a, std::uint32_t b) {
    word(i, 0).store(0, std::memory_order_relaxed);
    word(i, 1).store(b, std::memory_order_relaxed);
    word(i, 0).store(a, std::memory_order_release);
  }
  void clear(std::uint32_t i) { word(i, 0).store(0, std::memory_order_release); }
  static std::uint32_t cpu_slots_possible();

  Target target_;
};

std::uint32_t RedirectArray::cpu_slots_possible() {
  static const std::uint32_t n = [] {
    // "/sys/devices/system/cpu/possible": "0-N" (or a list; the last number + 1)
    unsigned last = 0;
    if (FILE* f = std::fopen("/sys/devices/system/cpu/possible", "r")) {
      char buf[256] = {};
      if (std::fgets(buf, sizeof buf, f) != nullptr) {
        const char* p = buf;
        for (const char* q = buf; *q != '\0'; ++q)
          if (*q == '-' || *q == ',') p = q + 1;
        last = static_cast<unsigned>(std::strtoul(p, nullptr, 10));
      }
      std::fclose(f);
    }
    return last + 1;
  }();
  return n;
}

template <Target T>
std::unique_ptr<Map> attach_array(std::unique_ptr<SharedFile> f, const MapTypeDesc& d) {
  return std::make_unique<RedirectArray>(std::move(f), d, T);
}

// ---- devmap_hash

struct HashHead {
  SharedSpinLock lock;
  std::uint32_t free;      // first free element (kNil: none)
  std::uint32_t items;     // entries in use
  std::uint32_t nbuckets;  // power of two
};
struct HashElem {
  std::uint32_t next;  // next element of the chain or of the free list
  std::uint32_t key;
  std::uint32_t val[2];  // struct bpf_devmap_val (ifindex, prog id)
};

std::size_t hash_body_size(const MapSpec& s, std::uint32_t) {
  return sizeof(HashHead) + std::size_t{std::bit_ceil(s.max_entries)} * 4 + std::size_t{s.max_entries} * sizeof(HashElem);
}

class DevMapHash final : public Map {
 public:
  DevMapHash(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc) : Map(std::move(file), desc) {
    head_ = reinterpret_cast<HashHead*>(body());
    buckets_ = reinterpret_cast<std::uint32_t*>(body() + sizeof(HashHead));
    elems_ = reinterpret_cast<HashElem*>(body() + sizeof(HashHead) + std::size_t{head_->nbuckets} * 4);
  }

  static void init(std::uint8_t* body, const MapSpec& s, std::uint32_t) {
    auto* h = reinterpret_cast<HashHead*>(body);
    h->lock.init();
    h->nbuckets = std::bit_ceil(s.max_entries);
    auto* buckets = reinterpret_cast<std::uint32_t*>(body + sizeof(HashHead));
    for (std::uint32_t b = 0; b < h->nbuckets; ++b) buckets[b] = kNil;
    auto* elems = reinterpret_cast<HashElem*>(body + sizeof(HashHead) + std::size_t{h->nbuckets} * 4);
    for (std::uint32_t i = 0; i < s.max_entries; ++i) elems[i].next = i + 1 < s.max_entries ? i + 1 : kNil;
    h->free = 0;
  }

  void* prog_lookup(const void* key, std::uint32_t /*cpu*/) override {
    Guard g(head_->lock);
    const std::uint32_t e = find(load_key(key));
    return e != kNil ? elems_[e].val : nullptr;
  }
  int prog_update(const void*, const void*, std::uint64_t, std::uint32_t) override { return EINVAL; }
  int prog_delete(const void*) override { return EINVAL; }
  [[nodiscard]] std::span<std::uint8_t> program_area() const override {
    return {reinterpret_cast<std::uint8_t*>(elems_), std::size_t{max_entries()} * sizeof(HashElem)};
  }
  [[nodiscard]] bool redirect_target(std::uint32_t key) const override {
    Guard g(head_->lock);
    return find(key) != kNil;
  }
  [[nodiscard]] std::uint64_t redirect_flags() const override { return kDevRedirectFlags; }

 protected:
  int do_lookup(const void* key, void* value) const override {
    Guard g(head_->lock);
    const std::uint32_t e = find(load_key(key));
    if (e == kNil) return ENOENT;
    std::memcpy(value, elems_[e].val, value_size());
    return 0;
  }
  int do_update(const void* key, const void* value, std::uint64_t flags) override {
    const Val v = read_val(value, value_size());
    if (flags > BPF_EXIST || v.a == 0) return EINVAL;
    const std::uint32_t k = load_key(key);
    Guard g(head_->lock);
    const std::uint32_t old = find(k);
    if (old != kNil && flags == BPF_NOEXIST) return EEXIST;
    if (const int e = check_dev_val(v); e != 0) return e;
    std::uint32_t e = old;
    if (old != kNil) {
      unlink(old);  // the replacement goes to the head of the chain, as the kernel's new node
    } else {
      if (head_->items >= max_entries() || head_->free == kNil) return E2BIG;
      e = head_->free;
      head_->free = elems_[e].next;
      ++head_->items;
    }
    HashElem& el = elems_[e];
    el.key = k;
    el.val[0] = v.a;
    el.val[1] = 0;
    std::uint32_t& b = buckets_[k & (head_->nbuckets - 1)];
    el.next = b;
    b = e;
    return 0;
  }
  int do_delete(const void* key) override {
    Guard g(head_->lock);
    const std::uint32_t e = find(load_key(key));
    if (e == kNil) return ENOENT;
    unlink(e);
    elems_[e].next = head_->free;
    head_->free = e;
    --head_->items;
    return 0;
  }
  // dev_map_hash_get_next_key: the next element of the key's chain, else
  // the first element of the following buckets; a missing key restarts.
  int do_get_next_key(const void* key, void* next_key) const override {
    Guard g(head_->lock);
    std::uint32_t b = 0;
    if (key != nullptr) {
      const std::uint32_t k = load_key(key);
      const std::uint32_t e = find(k);
      if (e != kNil) {
        if (elems_[e].next != kNil) {
          std::memcpy(next_key, &elems_[elems_[e].next].key, 4);
          return 0;
        }
        b = (k & (head_->nbuckets - 1)) + 1;
      }
    }
    for (; b < head_->nbuckets; ++b)
      if (buckets_[b] != kNil) {
        std::memcpy(next_key, &elems_[buckets_[b]].key, 4);
        return 0;
      }
    return ENOENT;
  }

 private:
  static std::uint32_t load_key(const void* key) {
    std::uint32_t k;
    std::memcpy(&k, key, 4);
    return k;
  }
  // Under the lock.
  [[nodiscard]] std::uint32_t find(std::uint32_t k) const {
    for (std::uint32_t e = buckets_[k & (head_->nbuckets - 1)]; e != kNil; e = elems_[e].next)
      if (elems_[e].key == k) return e;
    return kNil;
  }
  void unlink(std::uint32_t e) {
    std::uint32_t* at = &buckets_[elems_[e].key & (head_->nbuckets - 1)];
    while (*at != e) at = &elems_[*at].next;
    *at = elems_[e].next;
  }

  HashHead* head_ = nullptr;
  std::uint32_t* buckets_ = nullptr;
  HashElem* elems_ = nullptr;
};

// dev_map_init_map / xsk_map_alloc / cpu_map_alloc checks.
int check_redirect(const MapSpec& s, bool value8_ok) {
  if (s.max_entries == 0 || s.key_size != 4) return EINVAL;
  if (s.value_size != 4 && !(value8_ok && s.value_size == 8)) return EINVAL;
  return 0;
}

}  // namespace

const MapTypeDesc kDevMapDesc = {
    BPF_MAP_TYPE_DEVMAP,
    "devmap",
    MapKind::Redirect,
    false,
    BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY,
    0,
    [](const MapSpec& s) { return check_redirect(s, true); },
    &ArrayBase::body_size,
    &ArrayBase::init,
    &attach_array<Target::Dev>,
    false,
};

const MapTypeDesc kCpuMapDesc = {
    BPF_MAP_TYPE_CPUMAP,
    "cpumap",
    MapKind::Redirect,
    false,
    BPF_F_NUMA_NODE,
    0,
    [](const MapSpec& s) {
      if (const int e = check_redirect(s, true); e != 0) return e;
      return s.max_entries > nr_cpus() ? E2BIG : 0;
    },
    &ArrayBase::body_size,
    &ArrayBase::init,
    &attach_array<Target::Cpu>,
    false,
};

const MapTypeDesc kXskMapDesc = {
    BPF_MAP_TYPE_XSKMAP,
    "xskmap",
    MapKind::Redirect,
    false,
    BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY,
    0,
    [](const MapSpec& s) { return check_redirect(s, false); },
    &ArrayBase::body_size,  // 8-byte slots {present, fd}: round8 of the 4-byte value
    &ArrayBase::init,
    &attach_array<Target::Xsk>,
    false,
};

const MapTypeDesc kDevMapHashDesc = {
    BPF_MAP_TYPE_DEVMAP_HASH,
    "devmap_hash",
    MapKind::Redirect,
    false,
    BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY,
    0,
    [](const MapSpec& s) {
      if (const int e = check_redirect(s, true); e != 0) return e;
      return s.max_entries > (1u << 31) ? EINVAL : 0;  // roundup_pow_of_two overflows
    },
    &hash_body_size,
    &DevMapHash::init,
    [](std::unique_ptr<SharedFile> f, const MapTypeDesc& d) -> std::unique_ptr<Map> {
      return std::make_unique<DevMapHash>(std::move(f), d);
    },
    false,
};

}  // namespace userbpf::maps
