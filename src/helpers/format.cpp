// The kernel's bprintf formatter and the helpers built on it: trace_printk
// (helpers.cpp calls format_trace), trace_vprintk and snprintf.
//
// How it works: one pass over the format string validates it exactly as the
// kernel's bpf_bprintf_prepare does (character set, conversion syntax, one
// argument per conversion) and formats each conversion at once with the
// host's snprintf from a rebuilt conversion spec ("%" flags width length
// conv), with the argument cast to the width the kernel would pass (int for
// %d/%u/%x, 64 bits with l/ll). Pointer conversions never dereference except
// %s/%pks/%pus (strings) and %pi4/%pI4/%pi6/%pI6 (4 or 16 bytes), which are
// read through the fault-safe readers of internal.hpp.
// Invariants: the output never depends on host pointers other than the
// arguments; every error is -EINVAL before anything is written to the
// program's buffer; widths are clamped to kMaxWidth so that a format cannot
// make the host allocate without bound.
#include <fmt/format.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "helpers/helpers.hpp"
#include "helpers/internal.hpp"

namespace userbpf::helpers {

namespace {

using namespace detail;  // NOLINT(google-build-using-namespace)

constexpr std::size_t kMaxArgs = 12;      // MAX_BPRINTF_VARARGS
constexpr unsigned long kMaxWidth = 4096;  // userbpf's cap on a conversion's width

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }
bool is_punct(char c) { return std::ispunct(static_cast<unsigned char>(c)) != 0; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// snprintf into a std::string with a runtime-built spec.
template <typename T>
void append_printf(std::string& out, const std::string& spec, T value) {
  char small[128];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
  const int n = std::snprintf(small, sizeof small, spec.c_str(), value);
  if (n < 0) return;
  if (static_cast<std::size_t>(n) < sizeof small) {
    out.append(small, static_cast<std::size_t>(n));
    return;
  }
  std::string big(static_cast<std::size_t>(n) + 1, '\0');
  std::snprintf(big.data(), big.size(), spec.c_str(), value);
#pragma GCC diagnostic pop
  big.resize(static_cast<std::size_t>(n));
  out += big;
}

void read_bytes(const abi::Env* env, u64 addr, std::uint8_t* out, std::size_t len) {
  std::memset(out, 0, len);
  if (env == nullptr) return;
  if (env->options.checked && env->find_region(addr, len, false) == nullptr) return;
  if (!safe_read(out, addr, len)) std::memset(out, 0, len);
}

void append_ip(std::string& out, const std::uint8_t* b, bool v6, bool padded) {
  if (!v6) {
    out += padded ? fmt::format("{:03}.{:03}.{:03}.{:03}", b[0], b[1], b[2], b[3])
                  : fmt::format("{}.{}.{}.{}", b[0], b[1], b[2], b[3]);
    return;
  }
  for (std::size_t i = 0; i < 16; i += 2) {
    if (!padded && i > 0) out.push_back(':');
    out += fmt::format("{:02x}{:02x}", b[i], b[i + 1]);
  }
}

}  // namespace

int format_bprintf(std::string_view fmt, std::span<const std::uint64_t> args, std::string& out, ReadStr read_str,
                   const abi::Env* env) {
  out.clear();
  std::size_t next = 0;
  const auto at = [&](std::size_t i) { return i < fmt.size() ? fmt[i] : '\0'; };
  for (std::size_t i = 0; i < fmt.size(); ++i) {
    const char c = fmt[i];
    const auto uc = static_cast<unsigned char>(c);
    if (uc >= 0x80 || (std::isprint(uc) == 0 && !is_space(c))) return -EINVAL;
    if (c != '%') {
      out.push_back(c);
      continue;
    }
    if (at(i + 1) == '%') {
      out.push_back('%');
      ++i;
      continue;
    }
    if (next >= args.size()) return -EINVAL;
    const u64 a = args[next++];
    std::string spec = "%";
    ++i;
    while (at(i) == '0' || at(i) == '+' || at(i) == '-' || at(i) == ' ') spec.push_back(fmt[i++]);
    if (at(i) >= '1' && at(i) <= '9') {
      unsigned long width = 0;
      while (is_digit(at(i))) {
        width = std::min(width * 10 + static_cast<unsigned long>(at(i) - '0'), kMaxWidth);
        ++i;
      }
      spec += std::to_string(width);
    }
    const char conv = at(i);
    if (conv == 'p') {
      const char m = at(i + 1);
      if ((m == 'k' || m == 'u') && at(i + 2) == 's') {
        i += 2;
        if (at(i + 1) != '\0' && !is_space(at(i + 1)) && !is_punct(at(i + 1))) return -EINVAL;
        std::string s;
        if (read_str == nullptr || env == nullptr || !read_str(*env, a, s)) s.clear();
        append_printf(out, spec + "s", s.c_str());
        continue;
      }
      if (m == '\0' || is_space(m) || is_punct(m)) {
        out += fmt::format("{:016x}", a);  // %p: not hashed in user space
        continue;
      }
      if (m == 'K' || m == 'x') {
        ++i;
        out += fmt::format("{:016x}", a);
        continue;
      }
      if (m == 's' || m == 'S' || m == 'B') {
        ++i;
        out += fmt::format("{:#x}", a);  // no symbols: the address, as the kernel prints an unknown one
        continue;
      }
      if ((m != 'i' && m != 'I') || (at(i + 2) != '4' && at(i + 2) != '6')) return -EINVAL;
      const bool v6 = at(i + 2) == '6';
      std::uint8_t bytes[16];
      read_bytes(env, a, bytes, v6 ? 16 : 4);
      append_ip(out, bytes, v6, m == 'i');
      i += 2;
      continue;
    }
    if (conv == 's') {
      if (at(i + 1) != '\0' && !is_space(at(i + 1)) && !is_punct(at(i + 1))) return -EINVAL;
      std::string s;
      if (read_str == nullptr || env == nullptr || !read_str(*env, a, s)) s.clear();
      append_printf(out, spec + "s", s.c_str());
      continue;
    }
    if (conv == 'c') {
      append_printf(out, spec + "c", static_cast<int>(static_cast<unsigned char>(a)));
      continue;
    }
    int longs = 0;
    while (at(i) == 'l' && longs < 2) {
      ++longs;
      ++i;
    }
    const char k = at(i);
    if (k != 'd' && k != 'i' && k != 'u' && k != 'x' && k != 'X') return -EINVAL;
    const bool is_signed = k == 'd' || k == 'i';
    if (longs > 0) {
      spec += "ll";
      spec.push_back(k);
      if (is_signed)
        append_printf(out, spec, static_cast<long long>(a));
      else
        append_printf(out, spec, static_cast<unsigned long long>(a));
    } else {
      spec.push_back(k);
      if (is_signed)
        append_printf(out, spec, static_cast<int>(static_cast<std::uint32_t>(a)));
      else
        append_printf(out, spec, static_cast<unsigned>(a));
    }
  }
  return static_cast<int>(std::min<std::size_t>(out.size(), 0x7fffffff));
}

int format_trace(std::string_view fmt, std::span<const std::uint64_t> args, std::string& out, ReadStr read_str,
                 const abi::Env* env) {
  return format_bprintf(fmt, args.subspan(0, std::min<std::size_t>(args.size(), 3)), out, read_str, env);
}

namespace {

// The variadic arguments of snprintf / trace_vprintk: data_len bytes of u64s.
bool var_args(abi::Env& env, std::string_view helper, u64 data, u64 data_len, u64 (&out)[kMaxArgs]) {
  if (data_len % 8 != 0 || data_len > kMaxArgs * 8 || (data_len != 0 && data == 0)) return false;
  if (!arg_mem(env, helper, "data", data, data_len, false)) return false;
  if (data_len != 0) std::memcpy(out, reinterpret_cast<const void*>(data), data_len);  // NOLINT
  return true;
}

// long bpf_snprintf(char *str, u32 str_size, const char *fmt, u64 *data, u32 data_len)
u64 snprintf(abi::Env& env, u64 str, u64 str_size, u64 fmt, u64 data, u64 data_len) {
  u64 args[kMaxArgs] = {};
  const auto len = static_cast<std::uint32_t>(data_len);
  if (!var_args(env, "snprintf", data, len, args)) return env.failed() ? 0 : neg(EINVAL);
  const auto size = static_cast<std::uint32_t>(str_size);
  if (size != 0 && !arg_mem(env, "snprintf", "str", str, size, true)) return 0;
  std::string f;
  if (!read_cstr(env, fmt, f)) return neg(EINVAL);
  std::string out;
  const int n = format_bprintf(f, std::span<const u64>(args, len / 8), out, &read_cstr, &env);
  if (n < 0) return sret(n);
  if (size != 0 && str != 0) {
    const std::size_t copy = std::min<std::size_t>(out.size(), size - 1);
    auto* dst = reinterpret_cast<char*>(str);  // NOLINT(performance-no-int-to-ptr)
    std::memcpy(dst, out.data(), copy);
    dst[copy] = '\0';
  }
  return out.size() + 1;
}

// long bpf_trace_vprintk(const char *fmt, u32 fmt_size, const void *data, u32 data_len)
u64 trace_vprintk(abi::Env& env, u64 fmt, u64 fmt_size, u64 data, u64 data_len, u64) {
  u64 args[kMaxArgs] = {};
  const auto len = static_cast<std::uint32_t>(data_len);
  if (!var_args(env, "trace_vprintk", data, len, args)) return env.failed() ? 0 : neg(EINVAL);
  const auto size = static_cast<std::uint32_t>(fmt_size);
  if (size == 0 || !mem_ok(env, fmt, size, false)) return neg(EINVAL);
  const auto* f = reinterpret_cast<const char*>(fmt);  // NOLINT(performance-no-int-to-ptr)
  const void* nul = std::memchr(f, 0, size);
  if (nul == nullptr) return neg(EINVAL);
  std::string out;
  const int n = format_bprintf(std::string_view(f, static_cast<std::size_t>(static_cast<const char*>(nul) - f)),
                               std::span<const u64>(args, len / 8), out, &read_cstr, &env);
  if (n < 0) return sret(n);
  emit_trace(env, out);
  return static_cast<u64>(n);
}

constexpr Entry kFormat[] = {UBPF_HELPER_ENTRY(snprintf), UBPF_HELPER_ENTRY(trace_vprintk)};

}  // namespace

std::span<const detail::Entry> detail::format_entries() { return kFormat; }

}  // namespace userbpf::helpers
