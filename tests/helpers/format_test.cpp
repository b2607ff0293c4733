// The kernel's bprintf formatter (format_bprintf) and the helpers on it:
// snprintf, trace_vprintk, trace_printk.
#include <gtest/gtest.h>

#include <cerrno>
#include <string>

#include "helpers/internal.hpp"
#include "helpers_test_util.hpp"

namespace userbpf::helpers::test {
namespace {

template <typename T>
u64 addr(T* p) {
  return reinterpret_cast<u64>(p);
}

std::string fmt_ok(std::string_view f, std::vector<u64> args) {
  std::string out;
  abi::Env env;
  const int n = format_bprintf(f, args, out, &detail::read_cstr, &env);
  EXPECT_GE(n, 0) << f;
  EXPECT_EQ(static_cast<std::size_t>(n), out.size());
  return out;
}
int fmt_err(std::string_view f, std::vector<u64> args) {
  std::string out;
  abi::Env env;
  return format_bprintf(f, args, out, &detail::read_cstr, &env);
}

TEST(Format, Integers) {
  EXPECT_EQ(fmt_ok("%d %u %x %li %llu %lX", {static_cast<u64>(-8), 9, 150, static_cast<u64>(-424242), 1337,
                                             0xDABBAD00}),
            "-8 9 96 -424242 1337 DABBAD00");
  EXPECT_EQ(fmt_ok("%d", {0x1ffffffffULL}), "-1");  // int: the low 32 bits
  EXPECT_EQ(fmt_ok("%u", {0x1ffffffffULL}), "4294967295");
  EXPECT_EQ(fmt_ok("%5d|%-5d|%05d|%+d|% d", {42, 42, 42, 42, 42}), "   42|42   |00042|+42| 42");
  EXPECT_EQ(fmt_ok("100%%", {}), "100%");
  EXPECT_EQ(fmt_ok("%c%c", {'o', 'k'}), "ok");
}

TEST(Format, StringsPointersAddresses) {
  const char s[] = "str";
  EXPECT_EQ(fmt_ok("[%s] [%5s] [%-4s]", {addr(s), addr(s), addr(s)}), "[str] [  str] [str ]");
  EXPECT_EQ(fmt_ok("%s.", {8}), ".");  // unreadable: empty, as the kernel
  EXPECT_EQ(fmt_ok("%pks %pus", {addr(s), addr(s)}), "str str");
  EXPECT_EQ(fmt_ok("%p %px %pK", {0x1234, 0xab, 0}), "0000000000001234 00000000000000ab 0000000000000000");
  EXPECT_EQ(fmt_ok("%ps", {0xffffffff81000000ULL}), "0xffffffff81000000");
  const unsigned char v4[4] = {127, 0, 0, 1};
  const unsigned char v6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  EXPECT_EQ(fmt_ok("%pI4 %pi4", {addr(v4), addr(v4)}), "127.0.0.1 127.000.000.001");
  EXPECT_EQ(fmt_ok("%pI6", {addr(v6)}), "0000:0000:0000:0000:0000:0000:0000:0001");
  EXPECT_EQ(fmt_ok("%pi6", {addr(v6)}), "00000000000000000000000000000001");
}

TEST(Format, Rejections) {
  EXPECT_EQ(fmt_err("%d %d", {1}), -EINVAL);      // more conversions than arguments
  EXPECT_EQ(fmt_err("%f", {1}), -EINVAL);
  EXPECT_EQ(fmt_err("%hd", {1}), -EINVAL);
  EXPECT_EQ(fmt_err("%lc", {1}), -EINVAL);
  EXPECT_EQ(fmt_err("%sx", {1}), -EINVAL);        // %s must be followed by NUL, space or punctuation
  EXPECT_EQ(fmt_err("%pA", {1}), -EINVAL);
  EXPECT_EQ(fmt_err("%pI5", {1}), -EINVAL);
  EXPECT_EQ(fmt_err("%", {1}), -EINVAL);
  EXPECT_EQ(fmt_err("bell\a", {}), -EINVAL);      // not printable
  EXPECT_EQ(fmt_err("caf\xc3\xa9", {}), -EINVAL);  // not ASCII
  EXPECT_EQ(fmt_ok("tab\there\n", {}), "tab\there\n");
  std::string out;
  const std::uint64_t three[3] = {1, 2, 3};
  EXPECT_EQ(format_trace("%d %d %d %d", three, out, nullptr, nullptr), -EINVAL);  // trace_printk: 3 at most
}

TEST(Format, WidthIsCapped) {
  const std::string s = fmt_ok("%99999999999999d", {1});
  EXPECT_EQ(s.size(), 4096u);
}

// snprintf(str, size, fmt, data, len) from a program; fmt and data are host arrays.
TEST(Snprintf, WritesTruncatesAndReturnsTheFullLengthPlusOne) {
  const char fmt[] = "%d-%s";
  const char word[] = "abc";
  const u64 data[2] = {static_cast<u64>(-5), addr(word)};
  for (Mode m : kModes) {
    Runner r;
    char out[16];
    r.allow(out, sizeof out);
    r.allow(fmt, sizeof fmt, false);
    r.allow(data, sizeof data, false);
    r.allow(word, sizeof word, false);
    Prog p;
    p.lddw(1, addr(out)).mov(2, 16).lddw(3, addr(fmt)).lddw(4, addr(data)).mov(5, 16);
    call(p, BPF_FUNC_snprintf).exit();
    auto res = r.run(p.v, m);
    ASSERT_TRUE(res.ok()) << mode_name(m) << ": " << res.error->to_string();
    EXPECT_EQ(res.r0, 7u);
    EXPECT_STREQ(out, "-5-abc");
    p.v[2].imm = 4;  // str_size 4
    res = r.run(p.v, m);
    EXPECT_EQ(res.r0, 7u);
    EXPECT_STREQ(out, "-5-");
    p.v[7].imm = 12;  // data_len not a multiple of 8
    EXPECT_EQ(r.run(p.v, m).r0, static_cast<u64>(-EINVAL));
    p.v[7].imm = 8;  // one argument for two conversions
    EXPECT_EQ(r.run(p.v, m).r0, static_cast<u64>(-EINVAL));
  }
}

struct Collect final : TraceSink {
  std::vector<std::string> lines;
  void write(std::string_view m) override { lines.emplace_back(m); }
};

TEST(TraceVprintk, FormatsIntoTheSink) {
  const char fmt[] = "a=%d b=%s c=%llx d=%u";
  const char word[] = "w";
  const u64 data[4] = {1, addr(word), 0xabcdef012345ULL, 4};
  Runner r;
  Prog p;
  p.lddw(1, addr(fmt)).mov(2, sizeof fmt).lddw(3, addr(data)).mov(4, sizeof data);
  call(p, BPF_FUNC_trace_vprintk).exit();
  Collect sink;
  auto prog = interp::Program::create(p.v);
  ASSERT_TRUE(prog.ok());
  RunState st;
  st.trace = &sink;
  abi::Env env;
  env.helpers = &r.helpers;
  env.user = &st;
  const auto res = prog->run(env);
  ASSERT_TRUE(res.ok());
  ASSERT_EQ(sink.lines.size(), 1u);
  EXPECT_EQ(sink.lines[0], "a=1 b=w c=abcdef012345 d=4");
  EXPECT_EQ(res.r0, sink.lines[0].size());
  // a format without its NUL inside fmt_size
  p.v[2].imm = 3;
  auto prog2 = interp::Program::create(p.v);
  EXPECT_EQ(prog2->run(env).r0, static_cast<u64>(-EINVAL));
}

}  // namespace
}  // namespace userbpf::helpers::test
