// Helpers against the kernel: the same program run by the kernel
// (BPF_PROG_TEST_RUN through src/oracle) and by userbpf's interpreter with
// src/helpers, comparing r0 and memory. Covers the helpers the kernel lets
// a socket filter / XDP program call with plain memory arguments: strtol,
// strtoul, bpf_loop (callbacks) and csum_diff. Skipped, with the reason,
// where the kernel's bpf() cannot be used.
#include <gtest/gtest.h>

#include <linux/btf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "helpers_test_util.hpp"
#include "helpers/packet_ctx.hpp"
#include "oracle/oracle.hpp"

#include <fmt/format.h>

namespace userbpf::helpers::test {
namespace {

#define REQUIRE_KERNEL()                                                               \
  do {                                                                                 \
    const auto& av_ = oracle::available();                                             \
    if (!av_.ok) GTEST_SKIP() << "kernel BPF unavailable: " << av_.reason;             \
  } while (0)

struct Outcome {
  u64 r0 = 0;
  std::vector<std::uint8_t> memory;
};

// userbpf: the program with r1 = memory, r2 = its size (as oracle::run_r0), checked mode.
Outcome run_userbpf(const std::vector<isa::Insn>& prog, std::vector<std::uint8_t> memory) {
  Runner r;
  r.allow(memory.data(), memory.size());
  const auto res = r.run(prog, Mode::Checked, {reinterpret_cast<u64>(memory.data()), memory.size()});
  EXPECT_TRUE(res.ok()) << (res.error ? res.error->to_string() : "");
  return {res.r0, std::move(memory)};
}

// The kernel; nullopt (with a failure) when it refuses the program.
std::optional<Outcome> run_kernel(const std::vector<isa::Insn>& prog, const std::vector<std::uint8_t>& memory) {
  auto run = oracle::run_r0(prog, memory);
  if (!run) {
    ADD_FAILURE() << "oracle: " << run.error().to_string();
    return std::nullopt;
  }
  if (!run->loaded) {
    ADD_FAILURE() << "kernel refused the program: " << run->verifier_log;
    return std::nullopt;
  }
  return Outcome{run->r0, run->memory_after};
}

// memory: [0, 48) the string (NUL padded), [48, 56) the result.
std::vector<isa::Insn> strto_prog(std::int32_t helper, std::int32_t len, std::int32_t flags) {
  Prog p;
  p(Op::MovReg, 6, 1).mov(2, len).mov(3, flags)(Op::MovReg, 4, 6)(Op::AddImm, 4, 0, 0, 48);
  call(p, helper).exit();
  return p.v;
}

TEST(KernelDiff, StrtolStrtoul) {
  REQUIRE_KERNEL();
  const char* strings[] = {"123",  "  -42xyz", "0x1f",  "1f",   "017", "0x",   "089", "\t\n 7", "-0", "",
                           "+5",   "-",        "0X1A",  "0xg",  "00",  "1234567890123456789012345",
                           "9223372036854775807", "9223372036854775808", "-9223372036854775808",
                           "18446744073709551615", "18446744073709551616", "777777777777777777777777"};
  const std::int32_t flags[] = {0, 8, 10, 16, 3, 0x21};
  int compared = 0;
  for (std::int32_t helper : {BPF_FUNC_strtol, BPF_FUNC_strtoul}) {
    for (const char* s : strings) {
      for (std::int32_t f : flags) {
        std::vector<std::uint8_t> mem(56, 0);
        std::memcpy(mem.data(), s, std::strlen(s));
        const auto len = static_cast<std::int32_t>(std::max<std::size_t>(std::strlen(s), 1));
        const auto prog = strto_prog(helper, len, f);
        const auto k = run_kernel(prog, mem);
        if (!k) return;
        const Outcome u = run_userbpf(prog, mem);
        EXPECT_EQ(static_cast<std::int64_t>(u.r0), static_cast<std::int64_t>(k->r0))
            << (helper == BPF_FUNC_strtol ? "strtol" : "strtoul") << "('" << s << "', flags " << f << ")";
        EXPECT_EQ(u.memory, k->memory) << s;
        ++compared;
      }
    }
  }
  EXPECT_GT(compared, 200);
}

// r0 = (bpf_loop(n, cb, fp-8, flags) << 16) + ctx; cb(i, ctx): *ctx = *ctx * 3 + i + 1; return i == stop
std::vector<isa::Insn> loop_prog(std::int32_t n, std::int32_t stop, std::int32_t flags, std::uint32_t* cb_at) {
  Prog p;
  p(Op::StDW, 10, 0, -8, 0).mov(1, n);
  const std::size_t ld = p.size();
  p.lddw(2, 0, Op::LddwFunc);
  fp(p, 3, -8).mov(4, flags);
  call(p, BPF_FUNC_loop);
  p(Op::LshImm, 0, 0, 0, 16)(Op::LdxDW, 1, 10, -8)(Op::AddReg, 0, 1).exit();
  const std::size_t cb = p.size();
  *cb_at = static_cast<std::uint32_t>(cb);
  p(Op::LdxDW, 3, 2, 0)(Op::MulImm, 3, 0, 0, 3)(Op::AddReg, 3, 1)(Op::AddImm, 3, 0, 0, 1)(Op::StxDW, 2, 3, 0);
  p.mov(0, 0)(Op::JneImm, 1, 0, 1, stop).mov(0, 1).exit();
  p.v[ld].imm = static_cast<std::int32_t>(cb - ld - 1);
  return p.v;
}

// Callbacks need BTF func_info in the kernel: oracle::func_btf's minimal
// BTF (one FUNC per subprogram) and a socket filter loaded with it.
struct BtfProg {
  oracle::Fd btf;
  oracle::Fd prog;
  std::string log;
};
BtfProg load_with_func_info(const std::vector<isa::Insn>& insns, std::uint32_t cb_insn) {
  BtfProg out;
  auto btf = oracle::load_btf(oracle::func_btf(2));
  if (!btf) {
    out.log = btf.error().to_string();
    return out;
  }
  out.btf = std::move(*btf);
  const bpf_func_info fi[2] = {{0, oracle::kFuncBtfFirstId}, {cb_insn, oracle::kFuncBtfFirstId + 1}};
  oracle::LoadExtras extras;
  extras.btf_fd = out.btf.get();
  extras.func_info = fi;
  oracle::LoadResult lr = oracle::load(isa::encode(insns), BPF_PROG_TYPE_SOCKET_FILTER, 1, 0, extras);
  out.prog = std::move(lr.prog);
  if (!out.prog) out.log = "PROG_LOAD: " + lr.log;
  return out;
}

TEST(KernelDiff, Loop) {
  REQUIRE_KERNEL();
  const std::vector<std::uint8_t> pkt(64, 0);
  int compared = 0;
  for (auto [n, stop, flags] : {std::tuple{0, -1, 0}, {1, -1, 0}, {5, -1, 0}, {30, -1, 0}, {10, 4, 0}, {10, 0, 0},
                                {10, 9, 0}, {3, -1, 1}, {(1 << 23) + 1, -1, 0}, {1000, 500, 0}}) {
    std::uint32_t cb = 0;
    const auto prog = loop_prog(n, stop, flags, &cb);
    const BtfProg k = load_with_func_info(prog, cb);
    ASSERT_TRUE(k.prog) << k.log;
    auto kr = oracle::test_run(k.prog, pkt);
    ASSERT_TRUE(kr.ok()) << kr.error().to_string();
    const Outcome u = run_userbpf(prog, {});
    EXPECT_EQ(static_cast<std::uint32_t>(u.r0), kr->retval) << "bpf_loop(" << n << ") stop " << stop << " flags " << flags;
    ++compared;
  }
  EXPECT_EQ(compared, 10);
}

// XDP: r0 = csum_diff(data, from_size, data + 64, to_size, seed) on a 1024-byte packet.
TEST(KernelDiff, CsumDiff) {
  REQUIRE_KERNEL();
  std::vector<std::uint8_t> pkt(1024);
  for (std::size_t i = 0; i < pkt.size(); ++i) pkt[i] = static_cast<std::uint8_t>(i * 37 + 11);
  pkt[4] = 0xff;
  pkt[5] = 0xff;
  pkt[6] = 0xff;
  pkt[7] = 0xff;
  struct C {
    std::int32_t from, to, seed;
  };
  const C cases[] = {{4, 4, 0},   {8, 0, 0},  {0, 8, 0},   {16, 16, 0x1234}, {0, 0, 77}, {64, 64, -1},
                     {60, 12, 9}, {3, 4, 0},  {4, 3, 0},   {4, 0, 0x7fffffff}, {0, 4, -2},
                     {1, 0, 0},   {0, 7, 3},  {13, 29, 5}, {300, 300, 0}, {512, 4, 1}, {600, 0, 0},
                     {0, 960, 0}, {256, 256, -1}};
  int compared = 0;
  for (const C& c : cases) {
    Prog p;
    p(Op::LdxW, 2, 1, 0)(Op::LdxW, 3, 1, 4);           // data, data_end
    p(Op::MovReg, 4, 2)(Op::AddImm, 4, 0, 0, 1024);    // data + 1024
    p(Op::JleReg, 4, 3, 2);                            // in bounds: skip the error exit
    p.mov(0, -1).exit();
    p(Op::MovReg, 1, 2).mov(2, c.from)(Op::MovReg, 3, 1)(Op::AddImm, 3, 0, 0, 64).mov(4, c.to).mov(5, c.seed);
    call(p, BPF_FUNC_csum_diff).exit();
    const auto raw = isa::encode(p.v);
    auto lr = oracle::load(raw, BPF_PROG_TYPE_XDP, 1);
    if (lr.err != 0) {
      // the kernel's verifier refuses sizes that are not allowed for ARG_CONST_SIZE_OR_ZERO in some
      // cases; what it refuses, userbpf's verifier refuses, so only run what loads
      continue;
    }
    auto kr = oracle::test_run(lr.prog, pkt);
    ASSERT_TRUE(kr.ok()) << kr.error().to_string();
    // userbpf: the same instructions with r1 = an xdp_md-like context over the packet
    std::vector<std::uint8_t> data = pkt;
    // the same checks and call, with data and data_end in r1/r2 instead of the context
    Prog q;
    q(Op::MovReg, 4, 1)(Op::AddImm, 4, 0, 0, 1024)(Op::JleReg, 4, 2, 2).mov(0, -1).exit();
    q(Op::MovReg, 6, 1).mov(2, c.from)(Op::MovReg, 3, 6)(Op::AddImm, 3, 0, 0, 64).mov(4, c.to).mov(5, c.seed);
    call(q, BPF_FUNC_csum_diff).exit();
    Runner r;
    r.allow(data.data(), data.size());
    const auto ur = r.run(q.v, Mode::Checked, {reinterpret_cast<u64>(data.data()), reinterpret_cast<u64>(data.data()) + data.size()});
    ASSERT_TRUE(ur.ok()) << ur.error->to_string();
    EXPECT_EQ(static_cast<std::uint32_t>(ur.r0), kr->retval)
        << "csum_diff(from " << c.from << ", to " << c.to << ", seed " << c.seed << ")";
    ++compared;
  }
  EXPECT_GT(compared, 5);
}

}  // namespace
}  // namespace userbpf::helpers::test

namespace userbpf::helpers::test {
namespace {

// A linear test-run skb over `data` (its MAC header first, as tc sees it).
SkBuff skb_over(std::vector<std::uint8_t>& data) {
  SkBuff s;
  s.data = reinterpret_cast<u64>(data.data());
  s.pkt_len = data.size();
  s.data_end = s.data + s.pkt_len;
  s.data_meta = s.data;
  return s;
}

// tc (SCHED_CLS): r0 = l3/l4_csum_replace(skb, off, from, to, flags) on a
// 64-byte packet; the packet afterwards and r0 compared with userbpf's on
// an SkBuff over the same bytes.
TEST(KernelDiff, CsumReplace) {
  REQUIRE_KERNEL();
  std::vector<std::uint8_t> pkt(64);
  for (std::size_t i = 0; i < pkt.size(); ++i) pkt[i] = static_cast<std::uint8_t>(i * 53 + 7);
  pkt[24] = 0;  // a zero checksum at 24 (BPF_F_MARK_MANGLED_0 cases)
  pkt[25] = 0;
  struct C {
    std::int32_t helper, off;
    std::uint32_t from, to;
    std::int32_t flags;
  };
  const std::uint32_t m0 = BPF_F_MARK_MANGLED_0, pseudo = BPF_F_PSEUDO_HDR;
  const C cases[] = {
      {BPF_FUNC_l3_csum_replace, 24, 0x1234, 0xabcd, 2},
      {BPF_FUNC_l3_csum_replace, 14, 0x0a000001, 0xc0a80101, 4},
      {BPF_FUNC_l3_csum_replace, 16, 0, 0x1234ffff, 0},
      {BPF_FUNC_l3_csum_replace, 16, 1, 0x1234ffff, 0},          // from != 0 with size 0: -EINVAL
      {BPF_FUNC_l3_csum_replace, 15, 1, 2, 2},                   // odd offset: -EFAULT
      {BPF_FUNC_l3_csum_replace, 62, 1, 2, 2},                   // last two bytes
      {BPF_FUNC_l3_csum_replace, 64, 1, 2, 2},                   // past the packet: -EFAULT
      {BPF_FUNC_l3_csum_replace, 20, 1, 2, 3},                   // bad size: -EINVAL
      {BPF_FUNC_l3_csum_replace, 20, 1, 2, 0x12},                // bad flag: -EINVAL
      {BPF_FUNC_l3_csum_replace, 20, 0xffff, 0xffff, 2},
      {BPF_FUNC_l3_csum_replace, 20, 0, 0xffffffff, 4},
      {BPF_FUNC_l4_csum_replace, 40, 0x1234, 0xabcd, 2},
      {BPF_FUNC_l4_csum_replace, 40, 0x0a000001, 0xc0a80101, static_cast<std::int32_t>(4 | pseudo)},
      {BPF_FUNC_l4_csum_replace, 40, 0, 0xdeadbeef, 0},
      {BPF_FUNC_l4_csum_replace, 24, 0x1234, 0xabcd, static_cast<std::int32_t>(2 | m0)},  // zero stays zero
      {BPF_FUNC_l4_csum_replace, 24, 0x1234, 0xabcd, static_cast<std::int32_t>(2 | m0 | BPF_F_MARK_ENFORCE)},
      {BPF_FUNC_l4_csum_replace, 40, 1, 2, 0x4000},              // bad flag
      {BPF_FUNC_l4_csum_replace, 41, 1, 2, 2},                   // odd offset
  };
  int compared = 0;
  for (const C& c : cases) {
    Prog p;
    p.mov(2, c.off).lddw(3, c.from).lddw(4, c.to).mov(5, c.flags);
    call(p, c.helper).exit();
    auto lr = oracle::load(isa::encode(p.v), BPF_PROG_TYPE_SCHED_CLS, 1);
    ASSERT_EQ(lr.err, 0) << lr.log;
    auto kr = oracle::test_run(lr.prog, pkt, 1, pkt.size());
    ASSERT_TRUE(kr.ok()) << kr.error().to_string();
    std::vector<std::uint8_t> data = pkt;
    const SkBuff s = skb_over(data);
    Runner r;
    const auto ur = r.run(p.v, Mode::Fast, {reinterpret_cast<u64>(&s)});
    ASSERT_TRUE(ur.ok()) << ur.error->to_string();
    const std::string what = fmt::format("{}(off {}, from {:#x}, to {:#x}, flags {:#x})",
                                         c.helper == BPF_FUNC_l3_csum_replace ? "l3" : "l4", c.off, c.from, c.to,
                                         c.flags);
    EXPECT_EQ(static_cast<std::uint32_t>(ur.r0), kr->retval) << what;
    EXPECT_EQ(data, kr->data_out) << what;
    ++compared;
  }
  EXPECT_EQ(compared, static_cast<int>(std::size(cases)));
}

// tc: bpf_redirect's verdicts and bpf_csum_update on a test-run skb.
TEST(KernelDiff, RedirectAndCsumUpdate) {
  REQUIRE_KERNEL();
  const std::vector<std::uint8_t> pkt(64, 0x11);
  struct C {
    std::int32_t helper;
    std::int32_t a, b;
  };
  const C cases[] = {{BPF_FUNC_redirect, 5, 0}, {BPF_FUNC_redirect, 5, BPF_F_INGRESS}, {BPF_FUNC_redirect, 5, 2},
                     {BPF_FUNC_redirect, 0, 0}, {BPF_FUNC_csum_update, 0x1234, 0}};
  for (const C& c : cases) {
    Prog p;
    if (c.helper == BPF_FUNC_redirect)
      p.mov(1, c.a).mov(2, c.b);
    else
      p.mov(2, c.a);
    call(p, c.helper).exit();
    auto lr = oracle::load(isa::encode(p.v), BPF_PROG_TYPE_SCHED_CLS, 1);
    ASSERT_EQ(lr.err, 0) << lr.log;
    auto kr = oracle::test_run(lr.prog, pkt);
    ASSERT_TRUE(kr.ok()) << kr.error().to_string();
    std::vector<std::uint8_t> data = pkt;
    const SkBuff s = skb_over(data);
    Runner r;
    r.prog_type = BPF_PROG_TYPE_SCHED_CLS;
    const auto ur = r.run(p.v, Mode::Fast, {reinterpret_cast<u64>(&s)});
    ASSERT_TRUE(ur.ok()) << ur.error->to_string();
    EXPECT_EQ(static_cast<std::uint32_t>(ur.r0), kr->retval) << "helper " << c.helper << " (" << c.a << ", " << c.b << ")";
  }
}

}  // namespace
}  // namespace userbpf::helpers::test
