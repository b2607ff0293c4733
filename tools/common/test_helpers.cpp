#include "common/test_helpers.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

namespace userbpf::tools {
namespace {

using u64 = std::uint64_t;

// In checked mode a helper may only touch registered memory.
bool check_pointer(abi::Env& env, u64 addr, u64 len, bool write, const char* helper) {
  if (!env.options.checked || len == 0) return true;
  if (env.find_region(addr, len, write) != nullptr) return true;
  env.fail(EFAULT, fmt::format("{}: {} of {} byte{} at 0x{:x} is outside the run's memory", helper,
                               write ? "write" : "read", len, len == 1 ? "" : "s", addr));
  return false;
}

// Length of a NUL-terminated string at addr, checked byte by byte in checked mode.
bool checked_strlen(abi::Env& env, u64 addr, const char* helper, u64& len) {
  if (!env.options.checked) {
    len = std::strlen(reinterpret_cast<const char*>(addr));
    return true;
  }
  for (u64 i = 0;; ++i) {
    if (env.find_region(addr + i, 1, false) == nullptr) {
      env.fail(EFAULT, fmt::format("{}: string at 0x{:x} runs outside the run's memory", helper, addr));
      return false;
    }
    if (*reinterpret_cast<const char*>(addr + i) == '\0') {
      len = i;
      return true;
    }
  }
}

u64 gather_bytes(abi::Env&, u64 a, u64 b, u64 c, u64 d, u64 e) {
  return ((a & 0xff) << 32) | ((b & 0xff) << 24) | ((c & 0xff) << 16) | ((d & 0xff) << 8) | (e & 0xff);
}

u64 memfrob(abi::Env& env, u64 ptr, u64 len, u64, u64, u64) {
  if (!check_pointer(env, ptr, len, true, "memfrob")) return 0;
  auto* p = reinterpret_cast<std::uint8_t*>(ptr);
  for (u64 i = 0; i < len; ++i) p[i] ^= 42;
  return 0;
}

u64 no_op(abi::Env&, u64, u64, u64, u64, u64) { return 0; }

u64 sqrti(abi::Env&, u64 x, u64, u64, u64, u64) {
  // Exact floor(sqrt(x)) by bisection on the result (no floating point).
  u64 lo = 0, hi = 0xffffffffULL;
  while (lo < hi) {
    const u64 mid = lo + (hi - lo + 1) / 2;
    if (mid * mid <= x) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

u64 strcmp_ext(abi::Env& env, u64 a, u64 b, u64, u64, u64) {
  u64 la = 0, lb = 0;
  if (!checked_strlen(env, a, "strcmp_ext", la) || !checked_strlen(env, b, "strcmp_ext", lb)) return 0;
  const int r = std::strcmp(reinterpret_cast<const char*>(a), reinterpret_cast<const char*>(b));
  return static_cast<u64>(static_cast<std::int64_t>(r));
}

u64 unwind(abi::Env& env, u64 x, u64, u64, u64, u64) {
  if (x == 0) env.request_exit(0);
  return x;
}

}  // namespace

void register_unwind_helper(abi::HelperTable& table) { table.set(kUnwindHelperId, "unwind", unwind); }

void register_test_helpers(abi::HelperTable& table) {
  table.set(0, "gather_bytes", gather_bytes);
  table.set(1, "memfrob", memfrob);
  table.set(2, "no_op", no_op);
  table.set(3, "sqrti", sqrti);
  table.set(4, "strcmp_ext", strcmp_ext);
  register_unwind_helper(table);
}

}  // namespace userbpf::tools
