// Verify on load, context rewriting, the engines, and the test-run contexts
// of the tracing types (kprobe / perf_event / tracepoint / raw_tracepoint).
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <cstring>
#include <string>
#include <vector>

#include "helpers/packet_ctx.hpp"
#include "runtime/runtime.hpp"
#include "test_util.hpp"

using namespace userbpf;
using isa::Op;
using userbpf::testing::Asm;
using userbpf::testing::TempDir;

using userbpf::testing::ptr;

namespace {

struct Rt {
  TempDir dir;
  std::unique_ptr<runtime::Runtime> rt;
  explicit Rt(bool verify = true, runtime::Engine engine = userbpf::testing::test_engine()) {
    runtime::Options o = userbpf::testing::rt_options();
    o.pin_dir = dir.path();
    o.verify = verify;
    o.engine = engine;
    rt = std::make_unique<runtime::Runtime>(o);
  }
  int load(std::uint32_t type, const Asm& a, std::string* log = nullptr, std::uint32_t level = 1,
           std::uint32_t log_size = 65536) {
    const auto raw = a.raw();
    std::vector<char> buf(log_size + 1, 0);
    bpf_attr at{};
    at.prog_type = type;
    at.insn_cnt = static_cast<std::uint32_t>(raw.size());
    at.insns = ptr(raw.data());
    at.license = ptr("GPL");
    if (log != nullptr) {
      at.log_level = level;
      at.log_size = log_size;
      at.log_buf = ptr(buf.data());
    }
    const int r = rt->bpf(BPF_PROG_LOAD, &at, sizeof at);
    const int e = errno;
    if (log != nullptr) *log = buf.data();
    errno = e;
    return r;
  }
  struct Run {
    int ret = 0, err = 0;
    std::uint32_t retval = 0, duration = 0;
    std::vector<std::uint8_t> ctx_out;
  };
  Run run(int fd, const std::vector<std::uint8_t>& ctx, std::uint32_t repeat = 0,
          const std::vector<std::uint8_t>& data = {}, bool want_ctx_out = false) {
    Run r;
    r.ctx_out.assign(ctx.size() + 64, 0);
    bpf_attr a{};
    a.test.prog_fd = static_cast<std::uint32_t>(fd);
    a.test.ctx_in = ctx.empty() ? 0 : ptr(ctx.data());
    a.test.ctx_size_in = static_cast<std::uint32_t>(ctx.size());
    a.test.data_in = data.empty() ? 0 : ptr(data.data());
    a.test.data_size_in = static_cast<std::uint32_t>(data.size());
    a.test.repeat = repeat;
    if (want_ctx_out) {
      a.test.ctx_out = ptr(r.ctx_out.data());
      a.test.ctx_size_out = static_cast<std::uint32_t>(r.ctx_out.size());
    }
    r.ret = rt->bpf(BPF_PROG_TEST_RUN, &a, sizeof a);
    r.err = r.ret < 0 ? errno : 0;
    r.retval = a.test.retval;
    r.duration = a.test.duration;
    r.ctx_out.resize(want_ctx_out ? a.test.ctx_size_out : 0);
    return r;
  }
};

std::vector<std::uint8_t> frame(std::size_t n = 64) {
  std::vector<std::uint8_t> f(n, 0x5a);
  f[12] = 0x08;
  f[13] = 0x00;
  return f;
}

}  // namespace

TEST(RuntimeContext, EngineChoiceAndJittedCode) {
  for (const auto engine : {runtime::Engine::Jit, runtime::Engine::Interpreter}) {
    Rt r(true, engine);
    Asm a;
    a.op(Op::MovImm, 0, 0, 0, XDP_TX).op(Op::Exit);
    const int fd = r.load(BPF_PROG_TYPE_XDP, a);
    ASSERT_GE(fd, 0);
    auto p = r.rt->get_prog(fd);
    ASSERT_TRUE(p);
    EXPECT_TRUE(p->exec);
    EXPECT_EQ(p->jitted != nullptr, engine == runtime::Engine::Jit);
    if (p->jitted) {
      EXPECT_GT(p->jitted->code_size(), 0u);
    }
    const auto data = frame();
    auto res = r.run(fd, {}, 1, data);
    EXPECT_EQ(res.ret, 0);
    EXPECT_EQ(res.retval, static_cast<std::uint32_t>(XDP_TX));
  }
}

// A verified XDP program reads 64-bit packet pointers (its ctx->data load
// was rewritten), so the packet need not be below 2 GiB; an unverified one
// reads the uapi's 32-bit field over the stand-in arena below 2 GiB.
TEST(RuntimeContext, RewrittenPacketPointers) {
  for (const bool verify : {true, false}) {
    Rt r(verify);
    bpf_attr m{};
    m.map_type = BPF_MAP_TYPE_ARRAY;
    m.key_size = 4;
    m.value_size = 8;
    m.max_entries = 1;
    const int map = r.rt->bpf(BPF_MAP_CREATE, &m, sizeof m);
    ASSERT_GE(map, 0);
    // value[0] = ctx->data (the packet's address); return the EtherType's first byte
    Asm a;
    a.op(Op::MovReg, 6, 1)
        .lookup_key0(map)
        .jmp(Op::JeqImm, 0, 0, "out")
        .op(Op::LdxW, 2, 6, offsetof(xdp_md, data))
        .op(Op::LdxW, 3, 6, offsetof(xdp_md, data_end))
        .op(Op::StxDW, 0, 2, 0)
        .op(Op::MovReg, 4, 2)
        .op(Op::AddImm, 4, 0, 0, 14)
        .jmp(Op::JgtReg, 4, 0, "out", 3)
        .op(Op::LdxB, 0, 2, 12)
        .op(Op::Exit)
        .label("out")
        .op(Op::MovImm, 0, 0, 0, 1)
        .op(Op::Exit);
    std::string log;
    const int fd = r.load(BPF_PROG_TYPE_XDP, a, &log);
    ASSERT_GE(fd, 0) << log;
    auto p = r.rt->get_prog(fd);
    EXPECT_EQ(p->verified, verify);
    const auto exec = p->exec->insns();
    const std::size_t at = 8;  // the ctx->data load (lddw counts two slots)
    if (verify) {
      EXPECT_EQ(exec[at].op, Op::LdxDW);
      EXPECT_EQ(exec[at].off, static_cast<std::int16_t>(offsetof(helpers::XdpBuff, data)));
      EXPECT_EQ(exec[at + 1].off, static_cast<std::int16_t>(offsetof(helpers::XdpBuff, data_end)));
      EXPECT_NE(log.find("processed"), std::string::npos) << log;
    } else {
      EXPECT_EQ(exec[at].op, Op::LdxW);
      EXPECT_NE(log.find("not verified"), std::string::npos) << log;
    }
    auto res = r.run(fd, {}, 1, frame());
    ASSERT_EQ(res.ret, 0);
    EXPECT_EQ(res.retval, 0x08u);
    std::uint32_t key = 0;
    std::uint64_t addr = 0;
    bpf_attr l{};
    l.map_fd = static_cast<std::uint32_t>(map);
    l.key = ptr(&key);
    l.value = ptr(&addr);
    ASSERT_EQ(r.rt->bpf(BPF_MAP_LOOKUP_ELEM, &l, sizeof l), 0);
    EXPECT_NE(addr, 0u);
    // unverified: the 2 GiB stand-in; verified: ordinary memory (mmap gives
    // high addresses on x86-64)
    EXPECT_EQ(addr >= (1ULL << 31), verify) << std::hex << addr;
  }
}

TEST(RuntimeContext, VerifyOnLoadErrnoAndLog) {
  Rt r;
  Asm bad;
  bad.op(Op::Exit);  // R0 not initialised
  std::string log;
  EXPECT_EQ(r.load(BPF_PROG_TYPE_XDP, bad, &log), -1);
  EXPECT_EQ(errno, EACCES);
  EXPECT_NE(log.find("R0 !read_ok"), std::string::npos) << log;
  EXPECT_NE(log.find("processed 1 insns"), std::string::npos) << log;
  // context rules: xdp_md is read-only, __sk_buff.len too
  Asm wr;
  wr.op(Op::StW, 1, 0, offsetof(xdp_md, data), 0).op(Op::MovImm, 0, 0, 0, 0).op(Op::Exit);
  EXPECT_EQ(r.load(BPF_PROG_TYPE_XDP, wr, &log), -1);
  EXPECT_EQ(errno, EACCES);
  EXPECT_NE(log.find("invalid bpf_context access off=0 size=4"), std::string::npos) << log;
  Asm narrow;  // a 2-byte read of xdp_md.data is not allowed (pointer field)
  narrow.op(Op::LdxH, 0, 1, offsetof(xdp_md, data)).op(Op::Exit);
  EXPECT_EQ(r.load(BPF_PROG_TYPE_XDP, narrow, &log), -1);
  EXPECT_EQ(errno, EACCES);
  Asm good;
  good.op(Op::LdxW, 0, 1, offsetof(__sk_buff, len)).op(Op::Exit);
  EXPECT_GE(r.load(BPF_PROG_TYPE_SOCKET_FILTER, good, &log), 0);
  EXPECT_EQ(log.rfind("processed 2 insns", 0), 0u) << log;
  // a log that does not fit: ENOSPC, truncated, no program made
  const std::size_t handles = r.rt->handle_count();
  EXPECT_EQ(r.load(BPF_PROG_TYPE_SOCKET_FILTER, good, &log, 1, 10), -1);
  EXPECT_EQ(errno, ENOSPC);
  EXPECT_EQ(log.size(), 9u);
  EXPECT_EQ(r.rt->handle_count(), handles);
  // BPF_LOG_STATS alone: just the statistics
  EXPECT_GE(r.load(BPF_PROG_TYPE_SOCKET_FILTER, good, &log, 4), 0);
  EXPECT_EQ(log.rfind("processed 2 insns", 0), 0u) << log;
  // without verification the same faulty program loads (and runs checked)
  Rt u(false);
  EXPECT_GE(u.load(BPF_PROG_TYPE_XDP, bad, &log), 0);
}

// kprobe/uprobe: struct pt_regs from ctx_in (userbpf extension; the kernel
// has no test run for kprobes).
TEST(RuntimeContext, KprobePtRegs) {
  Rt r;
  constexpr int kDi = 14 * 8;  // pt_regs.di (PT_REGS_PARM1 on x86-64)
  Asm a;
  a.op(Op::LdxDW, 0, 1, kDi).op(Op::Exit);
  std::string log;
  const int fd = r.load(BPF_PROG_TYPE_KPROBE, a, &log);
  ASSERT_GE(fd, 0) << log;
  std::vector<std::uint8_t> regs(21 * 8, 0);
  const std::uint64_t di = 42;
  std::memcpy(regs.data() + kDi, &di, 8);
  auto res = r.run(fd, regs, 3, {}, true);
  ASSERT_EQ(res.ret, 0) << res.err;
  EXPECT_EQ(res.retval, 42u);
  EXPECT_EQ(res.ctx_out, regs);
  // shorter than the furthest access, data_in, bytes beyond the struct
  EXPECT_EQ(r.run(fd, std::vector<std::uint8_t>(kDi, 0)).err, EINVAL);
  EXPECT_EQ(r.run(fd, regs, 1, frame()).err, EINVAL);
  auto big = regs;
  big.resize(200, 0);
  EXPECT_EQ(r.run(fd, big).ret, 0);
  big[190] = 1;
  EXPECT_EQ(r.run(fd, big).err, E2BIG);
  // pt_regs is read-only for the program
  Asm w;
  w.op(Op::StDW, 1, 0, 0, 1).op(Op::MovImm, 0, 0, 0, 0).op(Op::Exit);
  EXPECT_EQ(r.load(BPF_PROG_TYPE_KPROBE, w, &log), -1);
  EXPECT_EQ(errno, EACCES);
}

TEST(RuntimeContext, PerfEventAndTracepoint) {
  Rt r;
  Asm pe;  // bpf_perf_event_data.sample_period (after pt_regs)
  pe.op(Op::LdxDW, 0, 1, 21 * 8).op(Op::Exit);
  std::string log;
  const int pfd = r.load(BPF_PROG_TYPE_PERF_EVENT, pe, &log);
  ASSERT_GE(pfd, 0) << log;
  std::vector<std::uint8_t> pctx(21 * 8 + 16, 0);
  const std::uint64_t period = 7777;
  std::memcpy(pctx.data() + 21 * 8, &period, 8);
  EXPECT_EQ(r.run(pfd, pctx).retval, 7777u);
  Asm tp;  // the first field after the common header
  tp.op(Op::LdxW, 0, 1, 8).op(Op::Exit);
  const int tfd = r.load(BPF_PROG_TYPE_TRACEPOINT, tp, &log);
  ASSERT_GE(tfd, 0) << log;
  std::vector<std::uint8_t> rec(16, 0);
  rec[8] = 0x34;
  rec[9] = 0x12;
  auto res = r.run(tfd, rec, 0, {}, true);
  EXPECT_EQ(res.retval, 0x1234u);
  EXPECT_EQ(res.ctx_out, rec);
  Asm common;  // the common fields (first 8 bytes) are not readable
  common.op(Op::LdxW, 0, 1, 0).op(Op::Exit);
  EXPECT_EQ(r.load(BPF_PROG_TYPE_TRACEPOINT, common, &log), -1);
  EXPECT_EQ(errno, EACCES);
}

TEST(RuntimeContext, RawTracepointRules) {
  Rt r;
  Asm a;
  a.op(Op::LdxDW, 0, 1, 8).op(Op::Exit);  // args[1]
  std::string log;
  const int fd = r.load(BPF_PROG_TYPE_RAW_TRACEPOINT, a, &log);
  ASSERT_GE(fd, 0) << log;
  std::vector<std::uint8_t> args(16, 0);
  args[8] = 9;
  auto res = r.run(fd, args);
  EXPECT_EQ(res.ret, 0);
  EXPECT_EQ(res.retval, 9u);
  EXPECT_EQ(r.run(fd, args, 1).err, EINVAL);                        // repeat
  EXPECT_EQ(r.run(fd, std::vector<std::uint8_t>(8, 0)).err, EINVAL);  // shorter than args[1]
  EXPECT_EQ(r.run(fd, std::vector<std::uint8_t>(13 * 8, 0)).err, EINVAL);
}

// __sk_buff.sk: the verifier types it sock_common_or_null and the runtime
// rewrites the load to `mov r, 0` (no kernel socket in user space), so a
// verified tc program takes its null branch in both engines.
TEST(RuntimeContext, SkbSkIsNull) {
  for (const auto engine : {runtime::Engine::Jit, runtime::Engine::Interpreter}) {
    Rt r(true, engine);
    Asm a;
    a.op(Op::LdxDW, 2, 1, offsetof(__sk_buff, sk))
        .jmp(Op::JeqImm, 2, 0, "null")
        .op(Op::LdxW, 0, 2, offsetof(bpf_sock, family))
        .op(Op::AddImm, 0, 0, 0, 100)
        .op(Op::Exit)
        .label("null")
        .op(Op::MovImm, 0, 0, 0, 3)
        .op(Op::Exit);
    std::string log;
    const int fd = r.load(BPF_PROG_TYPE_SCHED_CLS, a, &log, 2);
    ASSERT_GE(fd, 0) << log;
    EXPECT_NE(log.find("sock_common_or_null"), std::string::npos) << log;
    auto p = r.rt->get_prog(fd);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->exec->insns()[0].op, Op::MovImm);
    EXPECT_EQ(p->jitted != nullptr, engine == runtime::Engine::Jit);
    auto res = r.run(fd, {}, 1, frame());
    ASSERT_EQ(res.ret, 0) << res.err;
    EXPECT_EQ(res.retval, 3u);
  }
}
