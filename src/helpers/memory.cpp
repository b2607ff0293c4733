// Memory, string and checksum helpers.
//
// probe_read / probe_read_user / probe_read_kernel / copy_from_user copy
// `size` bytes from an address the program does not own. The address space
// is this process's ("user" and "kernel" are the same memory in user space,
// so probe_read_kernel reads process addresses too, where the kernel would
// answer -ERANGE/-EFAULT for a user address). The copy is fault-safe
// (process_vm_readv on ourselves): an unmapped address gives -EFAULT and a
// zeroed destination, as the kernel. The _str forms copy up to size - 1
// bytes and a NUL, returning the length with the NUL; probe_write_user writes
// with process_vm_writev (read-only or unmapped pages: -EFAULT).
//
// The destination is the program's (verified) memory; in checked mode it
// must lie in a writable region or the run ends with EFAULT naming it.
//
// strncmp: the kernel's strncmp (-1/0/1). strtol/strtoul: the kernel's
// __bpf_strtoull (leading white space, '-', base 0/8/10/16 with 0/0x
// prefixes, at most 63 characters parsed, -EINVAL/-ERANGE). csum_diff: as
// the running kernel (6.18) computes it: csum_sub(csum_partial(to, seed),
// csum_partial(from)) (or the one-sided forms), any sizes, folded to 16 bits
// (csum_from32to16); csum_partial is x86-64's, so values match bit for bit.
#include <linux/bpf.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <string>

#include "helpers/helpers.hpp"
#include "helpers/internal.hpp"

namespace userbpf::helpers {

namespace {

using namespace detail;  // NOLINT(google-build-using-namespace)

u64 read_common(abi::Env& env, std::string_view helper, u64 dst, u64 size, u64 src) {
  const auto n = static_cast<std::uint32_t>(size);
  if (n == 0) return 0;
  if (!arg_mem(env, helper, "dst", dst, n, true)) return 0;
  if (dst == 0) return neg(EFAULT);
  auto* out = reinterpret_cast<std::uint8_t*>(dst);  // NOLINT(performance-no-int-to-ptr)
  if (!safe_read(out, src, n)) {
    std::memset(out, 0, n);
    return neg(EFAULT);
  }
  return 0;
}

u64 read_str_common(abi::Env& env, std::string_view helper, u64 dst, u64 size, u64 src) {
  const auto n = static_cast<std::uint32_t>(size);
  if (n == 0) return 0;
  if (!arg_mem(env, helper, "dst", dst, n, true)) return 0;
  if (dst == 0) return neg(EFAULT);
  auto* out = reinterpret_cast<char*>(dst);  // NOLINT(performance-no-int-to-ptr)
  const long len = safe_read_str(out, src, n);
  if (len < 0) {
    std::memset(out, 0, n);
    return neg(EFAULT);
  }
  if (static_cast<std::uint32_t>(len) == n) {  // no NUL within n bytes: truncate
    out[n - 1] = '\0';
    return n;
  }
  return static_cast<u64>(len) + 1;
}

// long bpf_probe_read(void *dst, u32 size, const void *unsafe_ptr) and friends: one
// function per kernel name (the registry and the error messages use it).
#define UBPF_READ_HELPER(name, common)                                   \
  u64 name(abi::Env& env, u64 dst, u64 size, u64 src, u64, u64) { /* NOLINT */ \
    return common(env, #name, dst, size, src);                           \
  }
UBPF_READ_HELPER(probe_read, read_common)
UBPF_READ_HELPER(probe_read_user, read_common)
UBPF_READ_HELPER(probe_read_kernel, read_common)
UBPF_READ_HELPER(copy_from_user, read_common)
UBPF_READ_HELPER(probe_read_str, read_str_common)
UBPF_READ_HELPER(probe_read_user_str, read_str_common)
UBPF_READ_HELPER(probe_read_kernel_str, read_str_common)
#undef UBPF_READ_HELPER

// long bpf_probe_write_user(void *dst, const void *src, u32 len)
u64 probe_write_user(abi::Env& env, u64 dst, u64 src, u64 len, u64, u64) {
  const auto n = static_cast<std::uint32_t>(len);
  if (!arg_mem(env, "probe_write_user", "src", src, n, false)) return 0;
  if (n != 0 && src == 0) return neg(EFAULT);
  return safe_write(dst, reinterpret_cast<const void*>(src), n) ? 0 : neg(EFAULT);  // NOLINT
}

// long bpf_strncmp(const char *s1, u32 s1_sz, const char *s2)
u64 strncmp(abi::Env& env, u64 s1, u64 s1_sz, u64 s2, u64, u64) {
  const auto n = static_cast<std::uint32_t>(s1_sz);
  if (!arg_mem(env, "strncmp", "s1", s1, n, false)) return 0;
  std::string b;
  if (!read_cstr(env, s2, b)) return neg(EINVAL);
  const auto* a = reinterpret_cast<const unsigned char*>(s1);  // NOLINT(performance-no-int-to-ptr)
  for (std::uint32_t i = 0; i < n; ++i) {
    const unsigned char c1 = a[i];
    const unsigned char c2 = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    if (c1 != c2) return c1 < c2 ? sret(-1) : 1;
    if (c1 == 0) break;
  }
  return 0;
}

// The kernel's isspace (its ctype table also counts 0xa0, NBSP).
bool kspace(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r') || c == 0xa0; }

int digit_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  const int l = std::tolower(c);
  if (l >= 'a' && l <= 'f') return l - 'a' + 10;
  return 99;
}

// __bpf_strtoull: characters consumed (> 0) or -EINVAL / -ERANGE.
long strtoull_common(const unsigned char* buf, std::size_t len, u64 flags, u64& res, bool& negative) {
  constexpr u64 kBaseMask = 0x1f;  // BPF_STRTOX_BASE_MASK
  unsigned base = static_cast<unsigned>(flags & kBaseMask);
  if (buf == nullptr || len == 0) return -EINVAL;
  if (base != 0 && base != 8 && base != 10 && base != 16) return -EINVAL;
  if ((flags & ~kBaseMask) != 0) return -EINVAL;
  std::size_t at = 0;
  while (at < len && kspace(buf[at])) ++at;
  negative = at < len && buf[at] == '-';
  if (negative) ++at;
  const std::size_t consumed = at;
  if (consumed == len) return -EINVAL;
  char str[64];
  const std::size_t n = std::min(len - consumed, sizeof str - 1);
  std::memcpy(str, buf + consumed, n);
  str[n] = '\0';
  const char* p = str;
  const auto lower = [](char c) { return std::tolower(static_cast<unsigned char>(c)); };
  if (base == 0) {
    if (p[0] == '0')
      base = lower(p[1]) == 'x' && std::isxdigit(static_cast<unsigned char>(p[2])) != 0 ? 16 : 8;
    else
      base = 10;
  }
  if (base == 16 && p[0] == '0' && lower(p[1]) == 'x') p += 2;
  u64 v = 0;
  bool overflow = false;
  std::size_t digits = 0;
  for (; p[digits] != '\0'; ++digits) {
    const int d = digit_value(static_cast<unsigned char>(p[digits]));
    if (d >= static_cast<int>(base)) break;
    u64 next = 0;
    if (__builtin_mul_overflow(v, u64{base}, &next) || __builtin_add_overflow(next, static_cast<u64>(d), &next))
      overflow = true;
    v = next;
  }
  if (overflow) return -ERANGE;
  if (digits == 0) return -EINVAL;
  res = v;
  return static_cast<long>(consumed + static_cast<std::size_t>(p + digits - str));
}

// The common part of strtol/strtoul: argument checks and the parse. Returns
// characters consumed (> 0) or -errno; 0 when a checked run failed (the
// helper returns at once).
long strto_parse(abi::Env& env, std::string_view helper, u64 buf, u64 buf_len, u64 flags, u64 res, u64& v,
                 bool& negative) {
  if (!arg_mem(env, helper, "buf", buf, buf_len, false) || !arg_mem(env, helper, "res", res, 8, true)) return 0;
  if (res == 0) return -EINVAL;
  return strtoull_common(reinterpret_cast<const unsigned char*>(buf), buf_len, flags, v, negative);  // NOLINT
}

// long bpf_strtol(const char *buf, size_t buf_len, u64 flags, long *res)
u64 strtol(abi::Env& env, u64 buf, u64 buf_len, u64 flags, u64 res, u64) {
  u64 v = 0;
  bool negative = false;
  const long e = strto_parse(env, "strtol", buf, buf_len, flags, res, v, negative);
  if (e <= 0) return sret(e);
  std::int64_t out = 0;
  if (negative) {
    if (static_cast<std::int64_t>(0 - v) > 0) return neg(ERANGE);
    out = static_cast<std::int64_t>(0 - v);
  } else {
    if (static_cast<std::int64_t>(v) < 0) return neg(ERANGE);
    out = static_cast<std::int64_t>(v);
  }
  std::memcpy(reinterpret_cast<void*>(res), &out, sizeof out);  // NOLINT(performance-no-int-to-ptr)
  return static_cast<u64>(e);
}

// long bpf_strtoul(const char *buf, size_t buf_len, u64 flags, unsigned long *res)
u64 strtoul(abi::Env& env, u64 buf, u64 buf_len, u64 flags, u64 res, u64) {
  u64 v = 0;
  bool negative = false;
  const long e = strto_parse(env, "strtoul", buf, buf_len, flags, res, v, negative);
  if (e <= 0) return sret(e);
  if (negative) return neg(EINVAL);
  std::memcpy(reinterpret_cast<void*>(res), &v, sizeof v);  // NOLINT(performance-no-int-to-ptr)
  return static_cast<u64>(e);
}

// s64 bpf_csum_diff(__be32 *from, u32 from_size, __be32 *to, u32 to_size, __wsum seed)
u64 csum_diff(abi::Env& env, u64 from, u64 from_size, u64 to, u64 to_size, u64 seed) {
  const auto fs = static_cast<std::uint32_t>(from_size), ts = static_cast<std::uint32_t>(to_size);
  if (!arg_mem(env, "csum_diff", "from", from, fs, false) || !arg_mem(env, "csum_diff", "to", to, ts, false)) return 0;
  const auto* f = reinterpret_cast<const void*>(from);  // NOLINT(performance-no-int-to-ptr)
  const auto* t = reinterpret_cast<const void*>(to);    // NOLINT(performance-no-int-to-ptr)
  auto ret = static_cast<std::uint32_t>(seed);
  if (fs != 0 && ts != 0)
    ret = csum_add(csum_partial(t, ts, ret), ~csum_partial(f, fs, 0));
  else if (ts != 0)
    ret = csum_partial(t, ts, ret);
  else if (fs != 0)
    ret = ~csum_partial(f, fs, ~ret);
  return csum_fold16(ret);
}

constexpr Entry kMemory[] = {
    UBPF_HELPER_ENTRY(probe_read),          UBPF_HELPER_ENTRY(probe_read_user),
    UBPF_HELPER_ENTRY(probe_read_kernel),   UBPF_HELPER_ENTRY(copy_from_user),
    UBPF_HELPER_ENTRY(probe_read_str),      UBPF_HELPER_ENTRY(probe_read_user_str),
    UBPF_HELPER_ENTRY(probe_read_kernel_str), UBPF_HELPER_ENTRY(probe_write_user),
    UBPF_HELPER_ENTRY(strncmp),             UBPF_HELPER_ENTRY(strtol),
    UBPF_HELPER_ENTRY(strtoul),             UBPF_HELPER_ENTRY(csum_diff),
};

}  // namespace

std::uint32_t csum_partial(const void* data, std::size_t len, std::uint32_t seed) {
  // x86-64 csum_partial: 64-bit little-endian words (the last one zero-padded)
  // added with end-around carry, then folded to 32 bits with end-around carry.
  // The end-around sum does not depend on the order or grouping of the adds.
  std::uint64_t acc = seed;
  const auto* p = static_cast<const std::uint8_t*>(data);
  for (std::size_t at = 0; at < len; at += 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, p + at, std::min<std::size_t>(8, len - at));
    acc += w;
    if (acc < w) ++acc;
  }
  return csum_add(static_cast<std::uint32_t>(acc >> 32), static_cast<std::uint32_t>(acc));
}

std::uint32_t csum_add(std::uint32_t a, std::uint32_t b) {
  const std::uint32_t r = a + b;
  return r + (r < b ? 1U : 0U);
}

std::uint32_t csum_fold16(std::uint32_t sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  return (sum & 0xffff) + (sum >> 16);
}

std::span<const detail::Entry> detail::memory_entries() { return kMemory; }

}  // namespace userbpf::helpers
