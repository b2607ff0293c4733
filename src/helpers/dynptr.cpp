// Dynptr helpers (struct bpf_dynptr, Linux 6.18 semantics):
//
//   dynptr_from_mem         a local dynptr over program memory
//   ringbuf_reserve_dynptr  a ring buffer sample as a dynptr (bpf_ringbuf_reserve)
//   ringbuf_submit_dynptr / ringbuf_discard_dynptr   commit it, then null it
//   dynptr_read / dynptr_write / dynptr_data         bounds-checked copies and slices
//
// Layout (the kernel's struct bpf_dynptr_kern, 16 bytes, 8-aligned): the data
// pointer (0 = a null dynptr), a u32 whose low 24 bits are the size, bits
// 28..30 the type (BPF_DYNPTR_TYPE_LOCAL = 1, RINGBUF = 2) and bit 31 the
// read-only flag, and a u32 offset into the data. Errors as the kernel's:
// sizes over 2^24 - 1 -E2BIG, flags -EINVAL (the dynptr is set null), a
// failed reservation -EINVAL with a null dynptr (which must still be
// submitted or discarded; committing a null dynptr does nothing), reads and
// writes past the size -E2BIG, a slice out of range or of a read-only
// dynptr NULL. The ring buffer operations go through the registered
// ringbuf_reserve / submit / discard helpers.
#include <linux/bpf.h>

#include <cerrno>
#include <cstring>

#include "helpers/helpers.hpp"
#include "helpers/internal.hpp"

namespace userbpf::helpers {

namespace {

using namespace detail;  // NOLINT(google-build-using-namespace)

struct DynptrKern {
  u64 data;
  std::uint32_t size;  // size | type << 28 | rdonly << 31
  std::uint32_t offset;
};
static_assert(sizeof(DynptrKern) == sizeof(bpf_dynptr), "struct bpf_dynptr is 16 bytes");

constexpr std::uint32_t kSizeMask = 0xFFFFFF;  // DYNPTR_SIZE_MASK
constexpr std::uint32_t kMaxSize = kSizeMask;  // DYNPTR_MAX_SIZE
constexpr std::uint32_t kTypeShift = 28;
constexpr std::uint32_t kTypeMask = 0x7;
constexpr std::uint32_t kRdonlyBit = 1U << 31;
constexpr std::uint32_t kTypeLocal = 1, kTypeRingbuf = 2;

// The dynptr at `addr` (16 writable/readable bytes of program memory), or
// null after env.fail in checked mode.
DynptrKern* arg_dynptr(abi::Env& env, std::string_view helper, u64 addr, bool write) {
  if (!arg_mem(env, helper, "dynptr", addr, sizeof(DynptrKern), write) || addr == 0) return nullptr;
  return reinterpret_cast<DynptrKern*>(addr);  // NOLINT(performance-no-int-to-ptr)
}

void set_null(DynptrKern* d) { *d = DynptrKern{}; }
void init(DynptrKern* d, u64 data, std::uint32_t type, std::uint32_t size) {
  d->data = data;
  d->offset = 0;
  d->size = (size & kSizeMask) | (type << kTypeShift);
}
std::uint32_t size_of(const DynptrKern* d) { return d->size & kSizeMask; }
std::uint32_t type_of(const DynptrKern* d) { return (d->size >> kTypeShift) & kTypeMask; }
bool rdonly(const DynptrKern* d) { return (d->size & kRdonlyBit) != 0; }
bool off_len_ok(const DynptrKern* d, std::uint32_t off, std::uint32_t len) {
  const std::uint32_t size = size_of(d);
  return len <= size && off <= size - len;
}

u64 call_helper(abi::Env& env, std::uint32_t id, u64 a, u64 b, u64 c) {
  const abi::Helper* h = env.helpers != nullptr ? env.helpers->find(id) : nullptr;
  return h != nullptr ? h->fn(env, a, b, c, 0, 0) : 0;
}

// long bpf_dynptr_from_mem(void *data, u32 size, u64 flags, struct bpf_dynptr *ptr)
u64 dynptr_from_mem(abi::Env& env, u64 data, u64 size, u64 flags, u64 ptr, u64) {
  DynptrKern* d = arg_dynptr(env, "dynptr_from_mem", ptr, true);
  if (d == nullptr) return neg(EINVAL);
  const auto sz = static_cast<std::uint32_t>(size);
  if (sz > kMaxSize) {
    set_null(d);
    return neg(E2BIG);
  }
  if (flags != 0) {
    set_null(d);
    return neg(EINVAL);
  }
  if (!arg_mem(env, "dynptr_from_mem", "data", data, sz, true)) return 0;
  init(d, data, kTypeLocal, sz);
  return 0;
}

// long bpf_ringbuf_reserve_dynptr(void *ringbuf, u32 size, u64 flags, struct bpf_dynptr *ptr)
u64 ringbuf_reserve_dynptr(abi::Env& env, u64 map, u64 size, u64 flags, u64 ptr, u64) {
  DynptrKern* d = arg_dynptr(env, "ringbuf_reserve_dynptr", ptr, true);
  if (d == nullptr) return neg(EINVAL);
  const auto sz = static_cast<std::uint32_t>(size);
  if (flags != 0) {
    set_null(d);
    return neg(EINVAL);
  }
  if (sz > kMaxSize) {
    set_null(d);
    return neg(E2BIG);
  }
  const u64 sample = call_helper(env, BPF_FUNC_ringbuf_reserve, map, sz, 0);
  if (sample == 0) {
    set_null(d);
    return neg(EINVAL);
  }
  init(d, sample, kTypeRingbuf, sz);
  return 0;
}

u64 ringbuf_commit_dynptr(abi::Env& env, std::string_view helper, std::uint32_t id, u64 ptr, u64 flags) {
  DynptrKern* d = arg_dynptr(env, helper, ptr, true);
  if (d == nullptr || d->data == 0) return 0;
  call_helper(env, id, d->data, flags, 0);
  set_null(d);
  return 0;
}

// void bpf_ringbuf_submit_dynptr(struct bpf_dynptr *ptr, u64 flags)
u64 ringbuf_submit_dynptr(abi::Env& env, u64 ptr, u64 flags, u64, u64, u64) {
  return ringbuf_commit_dynptr(env, "ringbuf_submit_dynptr", BPF_FUNC_ringbuf_submit, ptr, flags);
}
// void bpf_ringbuf_discard_dynptr(struct bpf_dynptr *ptr, u64 flags)
u64 ringbuf_discard_dynptr(abi::Env& env, u64 ptr, u64 flags, u64, u64, u64) {
  return ringbuf_commit_dynptr(env, "ringbuf_discard_dynptr", BPF_FUNC_ringbuf_discard, ptr, flags);
}

// long bpf_dynptr_read(void *dst, u32 len, const struct bpf_dynptr *src, u32 offset, u64 flags)
u64 dynptr_read(abi::Env& env, u64 dst, u64 len, u64 src, u64 offset, u64 flags) {
  const DynptrKern* d = arg_dynptr(env, "dynptr_read", src, false);
  if (d == nullptr || d->data == 0 || flags != 0) return neg(EINVAL);
  const auto n = static_cast<std::uint32_t>(len), off = static_cast<std::uint32_t>(offset);
  if (!off_len_ok(d, off, n)) return neg(E2BIG);
  const u64 from = d->data + d->offset + off;
  if (!arg_mem(env, "dynptr_read", "dst", dst, n, true) || !arg_mem(env, "dynptr_read", "dynptr data", from, n, false))
    return 0;
  if (n != 0) std::memmove(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(from), n);  // NOLINT
  return 0;
}

// long bpf_dynptr_write(const struct bpf_dynptr *dst, u32 offset, void *src, u32 len, u64 flags)
u64 dynptr_write(abi::Env& env, u64 dst, u64 offset, u64 src, u64 len, u64 flags) {
  const DynptrKern* d = arg_dynptr(env, "dynptr_write", dst, false);
  if (d == nullptr || d->data == 0 || rdonly(d)) return neg(EINVAL);
  const auto n = static_cast<std::uint32_t>(len), off = static_cast<std::uint32_t>(offset);
  if (!off_len_ok(d, off, n)) return neg(E2BIG);
  const std::uint32_t type = type_of(d);
  if (type != kTypeLocal && type != kTypeRingbuf) return neg(EINVAL);
  if (flags != 0) return neg(EINVAL);
  const u64 to = d->data + d->offset + off;
  if (!arg_mem(env, "dynptr_write", "src", src, n, false) || !arg_mem(env, "dynptr_write", "dynptr data", to, n, true))
    return 0;
  if (n != 0) std::memmove(reinterpret_cast<void*>(to), reinterpret_cast<const void*>(src), n);  // NOLINT
  return 0;
}

// void *bpf_dynptr_data(const struct bpf_dynptr *ptr, u32 offset, u32 len)
u64 dynptr_data(abi::Env& env, u64 ptr, u64 offset, u64 len, u64, u64) {
  const DynptrKern* d = arg_dynptr(env, "dynptr_data", ptr, false);
  if (d == nullptr || d->data == 0) return 0;
  const auto n = static_cast<std::uint32_t>(len), off = static_cast<std::uint32_t>(offset);
  if (!off_len_ok(d, off, n) || rdonly(d)) return 0;
  const std::uint32_t type = type_of(d);
  if (type != kTypeLocal && type != kTypeRingbuf) return 0;
  return d->data + d->offset + off;
}

constexpr Entry kDynptr[] = {
    UBPF_HELPER_ENTRY(dynptr_from_mem),        UBPF_HELPER_ENTRY(ringbuf_reserve_dynptr),
    UBPF_HELPER_ENTRY(ringbuf_submit_dynptr),  UBPF_HELPER_ENTRY(ringbuf_discard_dynptr),
    UBPF_HELPER_ENTRY(dynptr_read),            UBPF_HELPER_ENTRY(dynptr_write),
    UBPF_HELPER_ENTRY(dynptr_data),
};

}  // namespace

std::span<const detail::Entry> detail::dynptr_entries() { return kDynptr; }

}  // namespace userbpf::helpers
