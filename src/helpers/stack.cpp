// bpf_get_stackid and bpf_get_stack for user-space stacks of the current
// thread (kernel/bpf/stackmap.c semantics and errno).
//
// Unwinding: frame pointers. The walk starts at the helper's own frame
// (__builtin_frame_address(0)); each frame is {saved rbp, return address};
// it stops at a null or misaligned frame pointer, one outside the thread's
// stack ([lo, hi) from pthread_getattr_np, cached per thread), one that does
// not move towards the stack's base, a return address outside the process's
// executable mappings (/proc/self/maps, cached), or an unreadable word
// (every read is fault-safe: safe_read). The first frames
// are the helper's callers inside userbpf (the engine's call into the
// helper, the run loop, then the host code that ran the program): the
// kernel's BPF_F_SKIP_FIELD_MASK skips frames from the top as in the kernel,
// so a program (or a hook that knows its depth) can skip the engine.
// Code built without frame pointers (-O2 omits them on x86-64) ends the walk
// early at its first frame; build the host with -fno-omit-frame-pointer for
// full stacks. There is no DWARF unwinding.
//
// Flags: BPF_F_USER_STACK is required — a program in user space has no
// kernel stack, so a kernel stack is empty: -EFAULT (the kernel's answer
// when no callchain can be taken). get_stackid: BPF_F_SKIP_FIELD_MASK,
// BPF_F_USER_STACK, BPF_F_FAST_STACK_CMP, BPF_F_REUSE_STACKID (the stack
// trace map's buckets, maps/stack_trace.cpp); other bits -EINVAL. get_stack:
// BPF_F_SKIP_FIELD_MASK, BPF_F_USER_STACK, BPF_F_USER_BUILD_ID (records of
// struct bpf_stack_build_id with status BPF_STACK_BUILD_ID_IP: no build ids
// are read), size a multiple of the record size; errors zero the buffer and
// return -EINVAL / -EFAULT; success returns the bytes written and zeroes the
// rest of the buffer. At most 127 frames (sysctl_perf_event_max_stack).
#include <linux/bpf.h>
#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "helpers/internal.hpp"
#include "maps/registry.hpp"
#include "maps/stack_trace.hpp"

namespace userbpf::helpers {

namespace {

using namespace detail;  // NOLINT(google-build-using-namespace)

constexpr std::uint32_t kMaxStack = 127;  // sysctl_perf_event_max_stack

struct StackBounds {
  u64 lo = 0, hi = 0;
};

// The current thread's stack, once per thread.
const StackBounds& stack_bounds() {
  thread_local const StackBounds b = [] {
    StackBounds s;
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
      void* addr = nullptr;
      std::size_t size = 0;
      if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
        s.lo = reinterpret_cast<u64>(addr);
        s.hi = s.lo + size;
      }
      pthread_attr_destroy(&attr);
    }
    return s;
  }();
  return b;
}

// Executable mappings of the process (from /proc/self/maps), to tell a real
// return address from a stale word found through a frame pointer that code
// without frame pointers left behind. Re-read when an address is not found
// (new code: JIT pages, dlopen), at most once per walk.
class ExecRanges {
 public:
  bool contains(u64 ip, bool& reread) {
    std::lock_guard lock(mu_);
    if (find(ip)) return true;
    if (reread) return false;
    reread = true;
    load();
    return find(ip);
  }

 private:
  [[nodiscard]] bool find(u64 ip) const {
    for (const auto& [lo, hi] : ranges_)
      if (ip >= lo && ip < hi) return true;
    return false;
  }
  void load() {
    ranges_.clear();
    FILE* f = std::fopen("/proc/self/maps", "r");
    if (f == nullptr) return;
    char line[512];
    while (std::fgets(line, sizeof line, f) != nullptr) {
      unsigned long lo = 0, hi = 0;
      char perms[8] = {};
      if (std::sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && perms[2] == 'x') ranges_.emplace_back(lo, hi);
    }
    std::fclose(f);
  }
  std::mutex mu_;
  std::vector<std::pair<u64, u64>> ranges_;
};
ExecRanges& exec_ranges() {
  static ExecRanges r;
  return r;
}

// Fills ips with up to `max` return addresses of the current thread after
// skipping `skip`; returns how many.
[[gnu::noinline]] std::uint32_t user_stack(std::uint64_t* ips, std::uint32_t max, std::uint32_t skip) {
  const StackBounds& b = stack_bounds();
  auto fp = reinterpret_cast<u64>(__builtin_frame_address(0));
  std::uint32_t n = 0, seen = 0;
  bool reread = false;
  while (n < max && fp != 0 && fp % 8 == 0 && fp >= b.lo && fp + 16 <= b.hi) {
    u64 frame[2];  // saved frame pointer, return address
    if (!safe_read(frame, fp, sizeof frame) || !exec_ranges().contains(frame[1], reread)) break;
    if (seen++ >= skip) ips[n++] = frame[1];
    if (frame[0] <= fp) break;  // a stack grows down: callers' frames are higher
    fp = frame[0];
  }
  return n;
}

// long bpf_get_stackid(void *ctx, struct bpf_map *map, u64 flags)
u64 get_stackid(abi::Env& env, u64 /*ctx*/, u64 r2, u64 flags, u64, u64) {
  maps::Map* m = arg_map(env, r2);
  if (m == nullptr || m->desc().kind != maps::MapKind::StackTrace) return neg(EINVAL);
  auto* st = static_cast<maps::StackTraceMap*>(m);
  if ((flags & ~u64{BPF_F_SKIP_FIELD_MASK | BPF_F_USER_STACK | BPF_F_FAST_STACK_CMP | BPF_F_REUSE_STACKID}) != 0)
    return neg(EINVAL);
  if ((flags & BPF_F_USER_STACK) == 0) return neg(EFAULT);  // no kernel stack in user space
  std::uint64_t ips[kMaxStack];
  const auto skip = static_cast<std::uint32_t>(flags & BPF_F_SKIP_FIELD_MASK);
  const std::uint32_t nr = user_stack(ips, st->max_depth(), skip);
  if (nr == 0) return neg(EFAULT);
  return sret(st->get_stackid(ips, nr, flags));
}

// long bpf_get_stack(void *ctx, void *buf, u32 size, u64 flags)
u64 get_stack(abi::Env& env, u64 /*ctx*/, u64 buf, u64 size64, u64 flags, u64) {
  const auto size = static_cast<std::uint32_t>(size64);
  if (!arg_mem(env, "get_stack", "buf", buf, size, true)) return 0;
  auto* out = reinterpret_cast<std::uint8_t*>(buf);  // NOLINT(performance-no-int-to-ptr)
  auto fail = [&](int e) {
    if (size != 0) std::memset(out, 0, size);
    return neg(e);
  };
  if ((flags & ~u64{BPF_F_SKIP_FIELD_MASK | BPF_F_USER_STACK | BPF_F_USER_BUILD_ID}) != 0) return fail(EINVAL);
  const bool user = (flags & BPF_F_USER_STACK) != 0;
  const bool build_id = (flags & BPF_F_USER_BUILD_ID) != 0;
  if (!user && build_id) return fail(EINVAL);
  const std::uint32_t elem = build_id ? sizeof(bpf_stack_build_id) : 8;
  if (size % elem != 0) return fail(EINVAL);
  if (!user) return fail(EFAULT);  // no kernel stack in user space
  std::uint64_t ips[kMaxStack];
  const std::uint32_t want = std::min(size / elem, kMaxStack);
  const std::uint32_t nr = user_stack(ips, want, static_cast<std::uint32_t>(flags & BPF_F_SKIP_FIELD_MASK));
  if (nr == 0) return fail(EFAULT);
  for (std::uint32_t i = 0; i < nr; ++i) {
    if (!build_id) {
      std::memcpy(out + std::size_t{i} * 8, &ips[i], 8);
    } else {
      bpf_stack_build_id rec{};
      rec.status = BPF_STACK_BUILD_ID_IP;
      rec.ip = ips[i];
      std::memcpy(out + std::size_t{i} * elem, &rec, elem);
    }
  }
  const std::uint32_t copied = nr * elem;
  if (size > copied) std::memset(out + copied, 0, size - copied);
  return copied;
}

constexpr Entry kStack[] = {UBPF_HELPER_ENTRY(get_stackid), UBPF_HELPER_ENTRY(get_stack)};

}  // namespace

std::span<const detail::Entry> detail::stack_entries() { return kStack; }

}  // namespace userbpf::helpers
