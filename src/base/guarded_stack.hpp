// Guarded stacks for BPF runs (issue 8: guard pages around stacks).
//
// Design
// ------
// The BPF stack of an interpreter or JIT run (8 frames x 512 bytes) does not
// live on the host's C++ stack but in a page-aligned area of its own, with an
// inaccessible (PROT_NONE) guard page directly below and directly above:
//
//     [ guard page ][ ... stack bytes ... top ][ guard page ]
//                                          ^ r10 of frame 0
//
// The stack ends at the upper guard (top = the guard's first byte), so a
// write just past r10 of frame 0 faults at once; when the size is a multiple
// of the page size (4096 bytes: the engines' 8 x 512) the lowest byte sits
// on the lower guard too. An unchecked (unverified, fast-mode) program that
// runs off its stack therefore takes SIGSEGV on a guard page instead of
// overwriting the host's return addresses and locals. Guards catch
// overflows into the adjacent page only: an access a page or more beyond
// the stack lands wherever it lands (checked mode is the safety mechanism
// for untrusted code; guards are defence in depth for trusted fast runs).
//
// Cost: areas are made once per thread and reused. Each thread has a pool
// (StackPool, a zero-initialised thread_local without constructor, so
// access needs no TLS guard) of areas indexed by nesting depth: a
// StackLease takes the area at `depth` and increments it, its destructor
// decrements it. A run therefore costs a TLS load, two compares and two
// stores (measured: about +0.5 ns per interpreter run, +1 ns per JIT run);
// mmap happens only the first time a depth is reached on a thread (or when
// a larger size is asked for at that depth).
//
// Nesting: a run started while another is active on the same thread (a
// helper that runs another program, a test run from a callback, a
// tail-called program is sequential and reuses depth 0) gets the next slot,
// its own area. Callbacks of one run (bpf_loop, for_each_map_elem) share
// their run's stack (they are frames of the same run) and take no lease.
// The first kSlots depths are in the pool's array (the fast path); deeper
// nesting takes the slow path, with areas in a per-thread vector (kept for
// reuse like the others).
//
// Invariants:
//   - leases on one thread end in the reverse order of their start (they are
//     scoped objects; a lease is neither copyable nor movable);
//   - areas at depths [0, depth) are in use and never unmapped while in
//     use; those at depths >= depth may be remapped;
//   - a thread's areas are unmapped when the thread exits (a thread_local
//     object set up by the thread's first slow path; runs started from
//     other thread_local destructors after it are not supported).
// Failure to map (ENOMEM, address space limit) throws std::bad_alloc, as any
// allocation of the host would.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace userbpf::base {

// One area of the pool: `top` is the first byte of the upper guard page,
// `bytes` how many bytes below it are usable (a multiple of the page size).
struct StackArea {
  std::uint8_t* top;
  std::size_t bytes;
};

struct StackPool {
  static constexpr unsigned kSlots = 16;
  std::array<StackArea, kSlots> slots;
  unsigned depth;
};

// The calling thread's pool (zero-initialised; see the design comment).
extern constinit thread_local StackPool tls_stack_pool;

// A stack of at least `bytes` bytes for one run, between guard pages.
// `bytes == 0`: an empty lease (a nested callback run that uses its
// caller's stack); top() is then null.
class StackLease {
 public:
  explicit StackLease(std::size_t bytes) {
    if (bytes == 0) return;
    StackPool& p = tls_stack_pool;
    const unsigned d = p.depth;
    if (d < StackPool::kSlots && bytes <= p.slots[d].bytes) [[likely]] {
      top_ = p.slots[d].top;
      p.depth = d + 1;
      return;
    }
    top_ = acquire_slow(bytes);
  }
  ~StackLease() {
    if (top_ != nullptr) --tls_stack_pool.depth;
  }
  StackLease(const StackLease&) = delete;
  StackLease& operator=(const StackLease&) = delete;
  StackLease(StackLease&&) = delete;
  StackLease& operator=(StackLease&&) = delete;

  // One past the highest usable byte (the upper guard page's first byte).
  [[nodiscard]] std::uint8_t* top() const { return top_; }

 private:
  // Maps (or remaps larger) the area at the current depth, increments the
  // depth, returns the area's top.
  static std::uint8_t* acquire_slow(std::size_t bytes);

  std::uint8_t* top_ = nullptr;
};

// The system page size (cached).
std::size_t page_size();

// True if `addr` lies in a guard page of one of the calling thread's stack
// areas at the first StackPool::kSlots depths. Async-signal-safe: reads the
// thread's pool only, for SIGSEGV handlers that want to tell a BPF stack
// overflow from another fault.
bool is_stack_guard(const void* addr);

}  // namespace userbpf::base
