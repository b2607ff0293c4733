// Guarded stacks: the slow paths (mapping areas, thread-exit cleanup).
// Design and invariants: guarded_stack.hpp.
#include "base/guarded_stack.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <new>
#include <vector>

namespace userbpf::base {

constinit thread_local StackPool tls_stack_pool{};

namespace {

// Set by the first page_size() call; read by is_stack_guard (signal-safe).
std::atomic<std::size_t> g_page{0};

// An area of `bytes` usable bytes (rounded up to pages) between two guard
// pages: the mapping's length and the area's top (the upper guard).
struct Mapping {
  std::size_t len = 0;
  std::uint8_t* top = nullptr;
};

Mapping map_area(std::size_t bytes) {
  const std::size_t page = page_size();
  const std::size_t usable = (bytes + page - 1) / page * page;
  Mapping m;
  m.len = usable + 2 * page;
  // Reserve the whole range inaccessible, then open the middle: the guards
  // stay PROT_NONE mappings of our own, so no other allocation (the host's
  // malloc, a sanitizer's allocator) can be placed there.
  void* p = ::mmap(nullptr, m.len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  auto* base = static_cast<std::uint8_t*>(p);
  if (::mprotect(base + page, usable, PROT_READ | PROT_WRITE) != 0) {
    ::munmap(p, m.len);
    throw std::bad_alloc();
  }
  m.top = base + page + usable;
  return m;
}

void unmap_area(const StackArea& a) {
  const std::size_t page = page_size();
  ::munmap(a.top - a.bytes - page, a.bytes + 2 * page);
}

// The thread's areas past the pool's array (depth >= StackPool::kSlots),
// and the unmapping of all its areas when the thread exits. Constructed
// (and its destructor registered) by the first slow-path mapping of a thread.
struct Overflow {
  std::vector<StackArea> areas;  // index: depth - StackPool::kSlots
  Overflow() = default;
  Overflow(const Overflow&) = delete;
  Overflow& operator=(const Overflow&) = delete;
  Overflow(Overflow&&) = delete;
  Overflow& operator=(Overflow&&) = delete;
  ~Overflow() {
    for (StackArea& a : tls_stack_pool.slots) {
      if (a.top != nullptr) unmap_area(a);
      a = StackArea{nullptr, 0};
    }
    for (const StackArea& a : areas)
      if (a.top != nullptr) unmap_area(a);
  }
};

Overflow& overflow() {
  static thread_local Overflow o;
  return o;
}

}  // namespace

std::size_t page_size() {
  std::size_t p = g_page.load(std::memory_order_relaxed);
  if (p == 0) {
    const long v = ::sysconf(_SC_PAGESIZE);
    p = v > 0 ? static_cast<std::size_t>(v) : 4096;
    g_page.store(p, std::memory_order_relaxed);
  }
  return p;
}

std::uint8_t* StackLease::acquire_slow(std::size_t bytes) {
  StackPool& p = tls_stack_pool;
  Overflow& o = overflow();  // registers the thread-exit cleanup
  StackArea* slot = nullptr;
  if (p.depth < StackPool::kSlots) {
    slot = &p.slots[p.depth];
  } else {
    const std::size_t i = p.depth - StackPool::kSlots;
    if (o.areas.size() <= i) o.areas.resize(i + 1, StackArea{nullptr, 0});
    slot = &o.areas[i];
  }
  if (slot->top == nullptr || slot->bytes < bytes) {
    // first use of this depth on this thread, or a larger size than before
    const Mapping m = map_area(bytes);
    if (slot->top != nullptr) unmap_area(*slot);
    *slot = StackArea{m.top, m.len - 2 * page_size()};
  }
  ++p.depth;
  return slot->top;
}

bool is_stack_guard(const void* addr) {
  const std::size_t page = g_page.load(std::memory_order_relaxed);
  if (page == 0) return false;
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  for (const StackArea& s : tls_stack_pool.slots) {
    if (s.top == nullptr) continue;
    const auto top = reinterpret_cast<std::uintptr_t>(s.top);
    const std::uintptr_t lo = top - s.bytes;
    if ((a >= top && a - top < page) || (a < lo && lo - a <= page)) return true;
  }
  return false;
}

}  // namespace userbpf::base
