// The runtime through its bpf() commands: maps, programs, test runs, helpers,
// tail calls, pins shared between processes, ids, info, refcounts, logs.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "runtime/runtime.hpp"
#include "test_util.hpp"
#include "userbpf/userbpf.hpp"

using namespace userbpf;
using userbpf::runtime::Options;
using userbpf::runtime::ProgSpec;
using userbpf::runtime::TestRunArgs;
using userbpf::runtime::default_pin_dir;
using RT = userbpf::runtime::Runtime;
using isa::Op;
using userbpf::testing::Asm;
using userbpf::testing::TempDir;

using userbpf::testing::ptr;

namespace {

struct Fixture {
  TempDir dir;
  std::unique_ptr<RT> rt;
  explicit Fixture(std::uint32_t ncpus = 0, bool verify = true) {
    Options o = userbpf::testing::rt_options();
    o.pin_dir = dir.path();
    o.ncpus = ncpus;
    o.verify = verify;
    rt = std::make_unique<RT>(o);
  }
  int call(int cmd, bpf_attr& a) { return rt->bpf(cmd, &a, sizeof a); }
  int map_create(std::uint32_t type, std::uint32_t ks, std::uint32_t vs, std::uint32_t max, const char* name = "m",
                 std::uint32_t flags = 0) {
    bpf_attr a{};
    a.map_type = type;
    a.key_size = ks;
    a.value_size = vs;
    a.max_entries = max;
    a.map_flags = flags;
    std::strncpy(a.map_name, name, sizeof a.map_name - 1);
    return call(BPF_MAP_CREATE, a);
  }
  int update(int fd, const void* k, const void* v, std::uint64_t flags = 0) {
    bpf_attr a{};
    a.map_fd = static_cast<std::uint32_t>(fd);
    a.key = ptr(k);
    a.value = ptr(v);
    a.flags = flags;
    return call(BPF_MAP_UPDATE_ELEM, a);
  }
  int lookup(int fd, const void* k, void* v) {
    bpf_attr a{};
    a.map_fd = static_cast<std::uint32_t>(fd);
    a.key = ptr(k);
    a.value = ptr(v);
    return call(BPF_MAP_LOOKUP_ELEM, a);
  }
  int load(std::uint32_t type, const std::vector<isa::RawInsn>& insns, std::string* log = nullptr,
           std::uint32_t log_size = 4096, std::uint32_t level = 1, const char* name = "p") {
    static std::vector<char> buf;
    buf.assign(log_size + 1, 0);
    bpf_attr a{};
    a.prog_type = type;
    a.insn_cnt = static_cast<std::uint32_t>(insns.size());
    a.insns = ptr(insns.data());
    a.license = ptr("GPL");
    std::strncpy(a.prog_name, name, sizeof a.prog_name - 1);
    if (log != nullptr) {
      a.log_level = level;
      a.log_size = log_size;
      a.log_buf = ptr(buf.data());
    }
    const int r = call(BPF_PROG_LOAD, a);
    if (log != nullptr) *log = buf.data();
    return r;
  }
  struct Run {
    int ret;
    int err;
    std::uint32_t retval;
    std::uint32_t duration;
    std::uint32_t size_out;
    std::vector<std::uint8_t> out;
  };
  Run test_run(int prog, const std::vector<std::uint8_t>& data, std::uint32_t repeat = 1,
               std::uint32_t out_size = 1500) {
    Run r{};
    r.out.assign(out_size, 0);
    bpf_attr a{};
    a.test.prog_fd = static_cast<std::uint32_t>(prog);
    a.test.data_in = ptr(data.data());
    a.test.data_size_in = static_cast<std::uint32_t>(data.size());
    a.test.data_out = out_size != 0 ? ptr(r.out.data()) : 0;
    a.test.data_size_out = out_size;
    a.test.repeat = repeat;
    r.ret = call(BPF_PROG_TEST_RUN, a);
    r.err = r.ret < 0 ? errno : 0;
    r.retval = a.test.retval;
    r.duration = a.test.duration;
    r.size_out = a.test.data_size_out;
    r.out.resize(std::min<std::size_t>(out_size, a.test.data_size_out));
    return r;
  }
};

std::vector<std::uint8_t> packet(std::size_t n = 64) {
  std::vector<std::uint8_t> p(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>(i);
  p[12] = 0x08;  // IPv4
  p[13] = 0x00;
  return p;
}

// key = 7 in a hash map: insert 1 (BPF_NOEXIST) or add 1 atomically; returns `ret`.
Asm counting_prog(int map_fd, std::int32_t ret, isa::Op map_op = Op::LddwMapFd) {
  Asm a;
  a.op(Op::StW, 10, 0, -4, 7)
      .lddw(map_op, 1, map_fd)
      .op(Op::MovReg, 2, 10)
      .op(Op::AddImm, 2, 0, 0, -4)
      .call(BPF_FUNC_map_lookup_elem)
      .jmp(Op::JneImm, 0, 0, "found")
      .op(Op::StDW, 10, 0, -16, 1)
      .lddw(map_op, 1, map_fd)
      .op(Op::MovReg, 2, 10)
      .op(Op::AddImm, 2, 0, 0, -4)
      .op(Op::MovReg, 3, 10)
      .op(Op::AddImm, 3, 0, 0, -16)
      .op(Op::MovImm, 4, 0, 0, BPF_NOEXIST)
      .call(BPF_FUNC_map_update_elem)
      .jmp(Op::JeqImm, 0, 0, "out")
      .lddw(map_op, 1, map_fd)  // lost the insert race: look up again
      .op(Op::MovReg, 2, 10)
      .op(Op::AddImm, 2, 0, 0, -4)
      .call(BPF_FUNC_map_lookup_elem)
      .jmp(Op::JeqImm, 0, 0, "out")
      .label("found")
      .op(Op::MovImm, 1, 0, 0, 1)
      .op(Op::AtomicAddDW, 0, 1, 0)
      .label("out")
      .op(Op::MovImm, 0, 0, 0, ret)
      .op(Op::Exit);
  return a;
}

Asm return_imm(std::int32_t v) {
  Asm a;
  a.op(Op::MovImm, 0, 0, 0, v).op(Op::Exit);
  return a;
}

}  // namespace

TEST(Runtime, DefaultPinDir) {
  ::setenv("USERBPF_PIN_DIR", "/tmp/some-dir", 1);
  EXPECT_EQ(default_pin_dir(), "/tmp/some-dir");
  ::unsetenv("USERBPF_PIN_DIR");
  ::setenv("XDG_RUNTIME_DIR", "/run/user/5", 1);
  EXPECT_EQ(default_pin_dir(), "/run/user/5/userbpf");
  ::unsetenv("XDG_RUNTIME_DIR");
  const bool shm = ::access("/dev/shm", W_OK) == 0;
  EXPECT_EQ(default_pin_dir(), (shm ? "/dev/shm/userbpf-" : "/tmp/userbpf-") + std::to_string(::getuid()));
}

TEST(Runtime, MapCommandsAndErrno) {
  Fixture f;
  const int fd = f.map_create(BPF_MAP_TYPE_HASH, 4, 8, 2);
  ASSERT_GE(fd, 3);
  std::uint32_t k = 1;
  std::uint64_t v = 5, out = 0;
  EXPECT_EQ(f.update(fd, &k, &v, BPF_NOEXIST), 0);
  EXPECT_EQ(f.update(fd, &k, &v, BPF_NOEXIST), -1);
  EXPECT_EQ(errno, EEXIST);
  EXPECT_EQ(f.lookup(fd, &k, &out), 0);
  EXPECT_EQ(out, 5u);
  EXPECT_EQ(f.lookup(99, &k, &out), -1);
  EXPECT_EQ(errno, EBADF);
  // get next key with a NULL key gives the first key
  bpf_attr a{};
  a.map_fd = static_cast<std::uint32_t>(fd);
  std::uint32_t next = 0;
  a.next_key = ptr(&next);
  EXPECT_EQ(f.call(BPF_MAP_GET_NEXT_KEY, a), 0);
  EXPECT_EQ(next, 1u);
  a.key = ptr(&next);
  EXPECT_EQ(f.call(BPF_MAP_GET_NEXT_KEY, a), -1);
  EXPECT_EQ(errno, ENOENT);
  // CHECK_ATTR: a byte after the command's last field
  bpf_attr d{};
  d.map_fd = static_cast<std::uint32_t>(fd);
  d.key = ptr(&k);
  d.flags = 1;  // DELETE_ELEM's last field is key
  EXPECT_EQ(f.call(BPF_MAP_DELETE_ELEM, d), -1);
  EXPECT_EQ(errno, EINVAL);
  d.flags = 0;
  EXPECT_EQ(f.call(BPF_MAP_DELETE_ELEM, d), 0);
  EXPECT_EQ(f.call(BPF_MAP_DELETE_ELEM, d), -1);
  EXPECT_EQ(errno, ENOENT);
  // attr bigger than ours: the tail must be zero
  std::vector<std::uint8_t> big(sizeof(bpf_attr) + 16, 0);
  auto* ba = reinterpret_cast<bpf_attr*>(big.data());
  ba->map_fd = static_cast<std::uint32_t>(fd);
  ba->key = ptr(&k);
  ba->value = ptr(&out);
  EXPECT_EQ(f.rt->bpf(BPF_MAP_LOOKUP_ELEM, ba, static_cast<unsigned>(big.size())), -1);
  EXPECT_EQ(errno, ENOENT);
  big.back() = 1;
  EXPECT_EQ(f.rt->bpf(BPF_MAP_LOOKUP_ELEM, ba, static_cast<unsigned>(big.size())), -1);
  EXPECT_EQ(errno, E2BIG);
  EXPECT_EQ(f.rt->bpf(12345, ba, sizeof(bpf_attr)), -1);
  EXPECT_EQ(errno, EINVAL);
  // freeze
  bpf_attr fz{};
  fz.map_fd = static_cast<std::uint32_t>(fd);
  EXPECT_EQ(f.call(BPF_MAP_FREEZE, fz), 0);
  EXPECT_EQ(f.update(fd, &k, &v), -1);
  EXPECT_EQ(errno, EPERM);
}

TEST(Runtime, BatchCommands) {
  Fixture f;
  const int fd = f.map_create(BPF_MAP_TYPE_HASH, 4, 4, 32);
  std::vector<std::uint32_t> keys(20), vals(20);
  for (std::uint32_t i = 0; i < 20; ++i) keys[i] = i + 1, vals[i] = i * i;
  bpf_attr a{};
  a.batch.map_fd = static_cast<std::uint32_t>(fd);
  a.batch.keys = ptr(keys.data());
  a.batch.values = ptr(vals.data());
  a.batch.count = 20;
  ASSERT_EQ(f.call(BPF_MAP_UPDATE_BATCH, a), 0);
  EXPECT_EQ(a.batch.count, 20u);
  std::vector<std::uint32_t> ok(32), ov(32);
  std::uint32_t out_batch = 0;
  bpf_attr l{};
  l.batch.map_fd = static_cast<std::uint32_t>(fd);
  l.batch.keys = ptr(ok.data());
  l.batch.values = ptr(ov.data());
  l.batch.out_batch = ptr(&out_batch);
  l.batch.count = 32;
  EXPECT_EQ(f.call(BPF_MAP_LOOKUP_AND_DELETE_BATCH, l), -1);
  EXPECT_EQ(errno, ENOENT);  // everything fit: no more after this batch
  EXPECT_EQ(l.batch.count, 20u);
  for (std::uint32_t i = 0; i < 20; ++i) EXPECT_EQ(ov[i], (ok[i] - 1) * (ok[i] - 1));
  std::uint32_t k = 1, v = 0;
  EXPECT_EQ(f.lookup(fd, &k, &v), -1);
  EXPECT_EQ(errno, ENOENT);
  l.batch.flags = 1;
  EXPECT_EQ(f.call(BPF_MAP_LOOKUP_BATCH, l), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST(Runtime, LoadAndTestRunCountsInAHashMap) {
  Fixture f;
  const int map = f.map_create(BPF_MAP_TYPE_HASH, 4, 8, 16);
  const auto prog = counting_prog(map, XDP_PASS).raw();
  std::string log;
  const int p = f.load(BPF_PROG_TYPE_XDP, prog, &log);
  ASSERT_GE(p, 0) << log;
  EXPECT_NE(log.find("processed"), std::string::npos) << log;
  const auto pkt = packet();
  auto r = f.test_run(p, pkt, 10);
  ASSERT_EQ(r.ret, 0) << r.err;
  EXPECT_EQ(r.retval, static_cast<std::uint32_t>(XDP_PASS));
  EXPECT_EQ(r.out, pkt);
  EXPECT_EQ(r.size_out, pkt.size());
  std::uint32_t k = 7;
  std::uint64_t v = 0;
  ASSERT_EQ(f.lookup(map, &k, &v), 0);
  EXPECT_EQ(v, 10u);
  // data_out too small: partial copy, full size reported, ENOSPC
  r = f.test_run(p, pkt, 1, 20);
  EXPECT_EQ(r.ret, -1);
  EXPECT_EQ(r.err, ENOSPC);
  EXPECT_EQ(r.size_out, pkt.size());
  EXPECT_EQ(r.retval, static_cast<std::uint32_t>(XDP_PASS));
  // too short for Ethernet
  r = f.test_run(p, std::vector<std::uint8_t>(10), 1);
  EXPECT_EQ(r.err, EINVAL);
  // the map is still used by the program after its handle is closed
  ASSERT_TRUE(f.rt->close(map).ok());
  r = f.test_run(p, pkt, 5);
  EXPECT_EQ(r.ret, 0);
}

TEST(Runtime, ThreadsRunOneProgramLosingNoUpdate) {
  Fixture f;
  const int map = f.map_create(BPF_MAP_TYPE_HASH, 4, 8, 16);
  const int p = f.load(BPF_PROG_TYPE_SCHED_CLS, counting_prog(map, 0).raw());
  ASSERT_GE(p, 0);
  std::vector<std::thread> ts;
  const auto pkt = packet();
  for (int t = 0; t < 8; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        auto r = f.test_run(p, pkt, 10);
        EXPECT_EQ(r.ret, 0);
      }
    });
  for (auto& th : ts) th.join();
  std::uint32_t k = 7;
  std::uint64_t v = 0;
  ASSERT_EQ(f.lookup(map, &k, &v), 0);
  EXPECT_EQ(v, 8u * 200 * 10);
}

TEST(Runtime, LoadErrorsAndLog) {
  Fixture f;
  std::string log;
  Asm bad;
  bad.call(999).op(Op::Exit);
  EXPECT_EQ(f.load(BPF_PROG_TYPE_XDP, bad.raw(), &log), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_NE(log.find("invalid func unknown#999"), std::string::npos) << log;
  // map fd that is not a map
  Asm nomap;
  nomap.lddw(Op::LddwMapFd, 1, 55).op(Op::MovImm, 0).op(Op::Exit);
  EXPECT_EQ(f.load(BPF_PROG_TYPE_XDP, nomap.raw(), &log), -1);
  EXPECT_EQ(errno, EBADF);
  // log too small: ENOSPC (rotating log keeps the end), the program is not loaded
  const std::size_t before = f.rt->handle_count();
  EXPECT_EQ(f.load(BPF_PROG_TYPE_XDP, return_imm(2).raw(), &log, 16), -1);
  EXPECT_EQ(errno, ENOSPC);
  EXPECT_EQ(log.size(), 15u);
  EXPECT_EQ(f.rt->handle_count(), before);
  // log_buf without log_level
  EXPECT_EQ(f.load(BPF_PROG_TYPE_XDP, return_imm(2).raw(), &log, 4096, 0), -1);
  EXPECT_EQ(errno, EINVAL);
  // empty program, unknown type, bad name
  EXPECT_EQ(f.load(BPF_PROG_TYPE_XDP, {}), -1);
  EXPECT_EQ(errno, E2BIG);
  EXPECT_EQ(f.load(777, return_imm(1).raw()), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(f.load(BPF_PROG_TYPE_XDP, return_imm(1).raw(), nullptr, 0, 0, "bad name"), -1);
  EXPECT_EQ(errno, EINVAL);
  // falls off the end
  Asm fall;
  fall.op(Op::MovImm, 0, 0, 0, 1);
  EXPECT_EQ(f.load(BPF_PROG_TYPE_XDP, fall.raw(), &log), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST(Runtime, MapValueRelocationAndFdArray) {
  Fixture f;
  const int arr = f.map_create(BPF_MAP_TYPE_ARRAY, 4, 16, 1);
  // r1 = &value[0] + 8 (BPF_PSEUDO_MAP_IDX_VALUE via fd_array); *(u64*)r1 = 0x1234; return *(u32*)(r1)
  Asm a;
  a.lddw(Op::LddwMapIdxVal, 1, 0, 8).op(Op::StDW, 1, 0, 0, 0x1234).op(Op::LdxW, 0, 1, 0).op(Op::Exit);
  const auto raw = a.raw();
  int fds[1] = {arr};
  bpf_attr la{};
  la.prog_type = BPF_PROG_TYPE_XDP;
  la.insn_cnt = static_cast<std::uint32_t>(raw.size());
  la.insns = ptr(raw.data());
  la.fd_array = ptr(fds);
  const int p = f.call(BPF_PROG_LOAD, la);
  ASSERT_GE(p, 0) << errno;
  auto r = f.test_run(p, packet());
  EXPECT_EQ(r.retval, 0x1234u);
  std::uint32_t k = 0;
  std::uint8_t v[16] = {};
  ASSERT_EQ(f.lookup(arr, &k, v), 0);
  std::uint64_t x;
  std::memcpy(&x, v + 8, 8);
  EXPECT_EQ(x, 0x1234u);
  // offset beyond the value
  Asm far;
  far.lddw(Op::LddwMapIdxVal, 1, 0, 16).op(Op::MovImm, 0).op(Op::Exit);
  const auto raw2 = far.raw();
  la.insns = ptr(raw2.data());
  la.insn_cnt = static_cast<std::uint32_t>(raw2.size());
  EXPECT_EQ(f.call(BPF_PROG_LOAD, la), -1);
  EXPECT_EQ(errno, EACCES);
  // fd_idx without fd_array
  la.insns = ptr(raw.data());
  la.insn_cnt = static_cast<std::uint32_t>(raw.size());
  la.fd_array = 0;
  EXPECT_EQ(f.call(BPF_PROG_LOAD, la), -1);
  EXPECT_EQ(errno, EPROTO);
}

TEST(Runtime, CheckedRunsStopWildAccesses) {
  Asm a;
  a.lddw(Op::Lddw, 1, 0x1000, 0).op(Op::LdxDW, 0, 1, 0).op(Op::Exit);  // read address 0x1000
  {
    Fixture v;  // the verifier refuses it
    std::string log;
    EXPECT_EQ(v.load(BPF_PROG_TYPE_XDP, a.raw(), &log), -1);
    EXPECT_EQ(errno, EACCES);
    EXPECT_NE(log.find("invalid mem access 'scalar'"), std::string::npos) << log;
  }
  Fixture f(0, /*verify=*/false);  // unverified: the checked run stops it
  const int p = f.load(BPF_PROG_TYPE_XDP, a.raw());
  ASSERT_GE(p, 0);
  auto r = f.test_run(p, packet());
  EXPECT_EQ(r.ret, -1);
  EXPECT_EQ(r.err, EFAULT);
}

TEST(Runtime, XdpContextPointsAtThePacket) {
  Fixture f;
  // r2 = ctx->data; r3 = ctx->data_end; if r2 + 14 > r3 return 0; r0 = *(u8*)(r2 + 12); *(u8*)(r2+0) = 0xee
  Asm a;
  a.op(Op::LdxW, 2, 1, 0)
      .op(Op::LdxW, 3, 1, 4)
      .op(Op::MovReg, 4, 2)
      .op(Op::AddImm, 4, 0, 0, 14)
      .jmp(Op::JgtReg, 4, 0, "short", 3)
      .op(Op::StB, 2, 0, 0, 0xee)
      .op(Op::LdxB, 0, 2, 12)
      .op(Op::Exit)
      .label("short")
      .op(Op::MovImm, 0, 0, 0, 0)
      .op(Op::Exit);
  const int p = f.load(BPF_PROG_TYPE_XDP, a.raw());
  ASSERT_GE(p, 0);
  auto pkt = packet(60);
  auto r = f.test_run(p, pkt);
  ASSERT_EQ(r.ret, 0) << r.err;
  EXPECT_EQ(r.retval, 8u);
  pkt[0] = 0xee;
  EXPECT_EQ(r.out, pkt);
}

TEST(Runtime, SocketFilterSeesTheNetworkHeader) {
  Fixture f;
  // ldabs b[0]: for socket filters the packet starts after the Ethernet header
  Asm a;
  a.op(Op::MovReg, 6, 1).op(Op::LdAbsB, 0, 0, 0, 0).op(Op::Exit);
  const int p = f.load(BPF_PROG_TYPE_SOCKET_FILTER, a.raw());
  ASSERT_GE(p, 0);
  auto pkt = packet(40);
  pkt[14] = 0x45;
  auto r = f.test_run(p, pkt);
  ASSERT_EQ(r.ret, 0) << r.err;
  EXPECT_EQ(r.retval, 0x45u);
  // __sk_buff->len and ->protocol
  Asm b;
  b.op(Op::LdxW, 0, 1, 0).op(Op::Exit);
  const int q = f.load(BPF_PROG_TYPE_SOCKET_FILTER, b.raw());
  EXPECT_EQ(f.test_run(q, pkt).retval, 26u);  // 40 - ETH_HLEN
  const int t = f.load(BPF_PROG_TYPE_SCHED_CLS, b.raw());
  EXPECT_EQ(f.test_run(t, pkt).retval, 40u);
  Asm c;
  c.op(Op::LdxW, 0, 1, 16).op(Op::Exit);
  const int u = f.load(BPF_PROG_TYPE_SCHED_CLS, c.raw());
  EXPECT_EQ(f.test_run(u, pkt).retval, 0x0008u);  // htons(ETH_P_IP) as stored
}

TEST(Runtime, SkbContextRules) {
  Fixture f;
  Asm a;
  a.op(Op::LdxW, 0, 1, offsetof(__sk_buff, mark)).op(Op::StW, 1, 0, offsetof(__sk_buff, cb), 77).op(Op::Exit);
  const int p = f.load(BPF_PROG_TYPE_SCHED_CLS, a.raw());
  ASSERT_GE(p, 0);
  const auto pkt = packet();
  __sk_buff in{}, out{};
  in.mark = 1234;
  bpf_attr t{};
  t.test.prog_fd = static_cast<std::uint32_t>(p);
  t.test.data_in = ptr(pkt.data());
  t.test.data_size_in = static_cast<std::uint32_t>(pkt.size());
  t.test.ctx_in = ptr(&in);
  t.test.ctx_size_in = sizeof in;
  t.test.ctx_out = ptr(&out);
  t.test.ctx_size_out = sizeof out;
  ASSERT_EQ(f.call(BPF_PROG_TEST_RUN, t), 0) << errno;
  EXPECT_EQ(t.test.retval, 1234u);
  EXPECT_EQ(out.mark, 1234u);
  EXPECT_EQ(out.cb[0], 77u);
  in.len = 5;  // not settable
  EXPECT_EQ(f.call(BPF_PROG_TEST_RUN, t), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST(Runtime, TailCalls) {
  Fixture f;
  const int jt = f.map_create(BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 4);
  const int target = f.load(BPF_PROG_TYPE_XDP, return_imm(42).raw());
  ASSERT_GE(target, 0);
  std::uint32_t k = 0;
  std::int32_t v = target;
  ASSERT_EQ(f.update(jt, &k, &v), 0);
  std::uint32_t id = 0;
  ASSERT_EQ(f.lookup(jt, &k, &id), 0);  // the host sees the program's id
  EXPECT_EQ(id, f.rt->get_prog(target)->id);
  // tail_call(ctx, jt, r3) then return 1
  auto caller = [&](std::int32_t index) {
    Asm a;
    a.lddw(Op::LddwMapFd, 2, jt).op(Op::MovImm, 3, 0, 0, index).call(BPF_FUNC_tail_call).op(Op::MovImm, 0, 0, 0, 1).op(Op::Exit);
    return f.load(BPF_PROG_TYPE_XDP, a.raw());
  };
  const int p0 = caller(0), p1 = caller(1), p9 = caller(9);
  EXPECT_EQ(f.test_run(p0, packet()).retval, 42u);
  EXPECT_EQ(f.test_run(p1, packet()).retval, 1u);  // empty slot: falls through
  EXPECT_EQ(f.test_run(p9, packet()).retval, 1u);  // out of range: falls through
  // the program array keeps the target alive after its handle is closed
  ASSERT_TRUE(f.rt->close(target).ok());
  EXPECT_EQ(f.test_run(p0, packet()).retval, 42u);
  // a program of another type cannot join the array
  const int skb = f.load(BPF_PROG_TYPE_SCHED_CLS, return_imm(0).raw());
  v = skb;
  EXPECT_EQ(f.update(jt, &k, &v), -1);
  EXPECT_EQ(errno, EINVAL);
  // the limit: a program counting its runs in an array and tail-calling itself
  const int cnt = f.map_create(BPF_MAP_TYPE_ARRAY, 4, 8, 1);
  Asm self;
  self.op(Op::MovReg, 6, 1)
      .lookup_key0(cnt)
      .jmp(Op::JeqImm, 0, 0, "out")
      .op(Op::MovImm, 1, 0, 0, 1)
      .op(Op::AtomicAddDW, 0, 1, 0)
      .op(Op::MovReg, 1, 6)
      .lddw(Op::LddwMapFd, 2, jt)
      .op(Op::MovImm, 3, 0, 0, 2)
      .call(BPF_FUNC_tail_call)
      .label("out")
      .op(Op::MovImm, 0, 0, 0, 7)
      .op(Op::Exit);
  const int sp = f.load(BPF_PROG_TYPE_XDP, self.raw());
  ASSERT_GE(sp, 0);
  k = 2;
  v = sp;
  ASSERT_EQ(f.update(jt, &k, &v), 0);
  EXPECT_EQ(f.test_run(sp, packet()).retval, 7u);
  k = 0;
  std::uint64_t runs = 0;
  ASSERT_EQ(f.lookup(cnt, &k, &runs), 0);
  EXPECT_EQ(runs, 34u);  // the first run + 33 tail calls
  // closing the last handle of an unpinned program array empties it (the
  // kernel's rule, which also breaks the sp -> jt -> sp reference cycle)
  ASSERT_TRUE(f.rt->close(jt).ok());
  EXPECT_EQ(f.test_run(p0, packet()).retval, 1u);
}

namespace {
class Capture final : public helpers::TraceSink {
 public:
  void write(std::string_view m) override { lines.emplace_back(m); }
  std::vector<std::string> lines;
};
}  // namespace

TEST(Runtime, TracePrintkAndMiscHelpers) {
  TempDir d;
  Capture sink;
  Options o = userbpf::testing::rt_options();
  o.pin_dir = d.path();
  o.trace = &sink;
  o.ncpus = 2;
  RT rt(o);
  // "x=%d %s\n" on the stack, args 7 and a pointer to "hi"
  const char fmt[] = "x=%d %s %x%%\n";  // 14 bytes with NUL -> 16
  Asm a;
  std::uint8_t buf[16] = {};
  std::memcpy(buf, fmt, sizeof fmt);
  for (int i = 0; i < 16; i += 4) {
    std::int32_t w;
    std::memcpy(&w, buf + i, 4);
    a.op(Op::StW, 10, 0, static_cast<std::int16_t>(-16 + i), w);
  }
  a.op(Op::StW, 10, 0, -24, 0x6968)  // "hi\0\0"
      .op(Op::MovReg, 1, 10)
      .op(Op::AddImm, 1, 0, 0, -16)
      .op(Op::MovImm, 2, 0, 0, sizeof fmt)
      .op(Op::MovImm, 3, 0, 0, -7)
      .op(Op::MovReg, 4, 10)
      .op(Op::AddImm, 4, 0, 0, -24)
      .op(Op::MovImm, 5, 0, 0, 255)
      .call(BPF_FUNC_trace_printk)
      .op(Op::Exit);
  const auto raw = a.raw();
  ProgSpec s;
  s.type = BPF_PROG_TYPE_XDP;
  s.insns = raw;
  auto h = rt.prog_load(s);
  ASSERT_TRUE(h.ok()) << h.error().to_string();
  const auto pkt = packet();
  TestRunArgs args;
  args.data_in = pkt;
  auto r = rt.test_run(*h, args);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_EQ(sink.lines.size(), 1u);
  EXPECT_EQ(sink.lines[0], "x=-7 hi ff%\n");
  EXPECT_EQ(r->retval, sink.lines[0].size());
  // get_smp_processor_id is a slot number
  Asm c;
  c.call(BPF_FUNC_get_smp_processor_id).op(Op::Exit);
  const auto rc = c.raw();
  s.insns = rc;
  auto hc = rt.prog_load(s);
  ASSERT_TRUE(hc.ok());
  for (int i = 0; i < 20; ++i) EXPECT_LT(rt.test_run(*hc, args)->retval, 2u);
  // ktime helpers move forward
  Asm t;
  t.call(BPF_FUNC_ktime_get_ns).op(Op::MovReg, 6, 0).call(BPF_FUNC_ktime_get_ns).op(Op::SubReg, 0, 6).op(Op::Exit);
  const auto rt2 = t.raw();
  s.insns = rt2;
  auto ht = rt.prog_load(s);
  ASSERT_TRUE(ht.ok());
  EXPECT_LT(rt.test_run(*ht, args)->retval, 1000000u);
}

TEST(Runtime, FormatTraceSubset) {
  std::string out;
  const std::uint64_t args[3] = {0xffffffffffffffffULL, 5, 'z'};
  EXPECT_GT(helpers::format_trace("%lld %u %c", args, out, nullptr, nullptr), 0);
  EXPECT_EQ(out, "-1 5 z");
  EXPECT_GT(helpers::format_trace("%llx %lu %%", args, out, nullptr, nullptr), 0);
  EXPECT_EQ(out, "ffffffffffffffff 5 %");
  EXPECT_EQ(helpers::format_trace("%d %d %d %d", args, out, nullptr, nullptr), -EINVAL);  // 4 conversions
  EXPECT_EQ(helpers::format_trace("%f", args, out, nullptr, nullptr), -EINVAL);
  EXPECT_EQ(helpers::format_trace("%", args, out, nullptr, nullptr), -EINVAL);
}

TEST(Runtime, PerCpuMapsFromPrograms) {
  Fixture f(2);
  const int m = f.map_create(BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 1);
  Asm a;
  a.op(Op::StW, 10, 0, -4, 0)
      .lddw(Op::LddwMapFd, 1, m)
      .op(Op::MovReg, 2, 10)
      .op(Op::AddImm, 2, 0, 0, -4)
      .call(BPF_FUNC_map_lookup_elem)
      .jmp(Op::JeqImm, 0, 0, "out")
      .op(Op::LdxDW, 1, 0, 0)  // plain (non-atomic) increment: the slot is ours
      .op(Op::AddImm, 1, 0, 0, 1)
      .op(Op::StxDW, 0, 1, 0)
      .label("out")
      .op(Op::MovImm, 0, 0, 0, 2)
      .op(Op::Exit);
  const int p = f.load(BPF_PROG_TYPE_XDP, a.raw());
  ASSERT_GE(p, 0);
  std::vector<std::thread> ts;
  const auto pkt = packet();
  for (int t = 0; t < 8; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 500; ++i) EXPECT_EQ(f.test_run(p, pkt, 4).ret, 0);
    });
  for (auto& th : ts) th.join();
  std::uint32_t k = 0;
  std::uint64_t v[2] = {};
  ASSERT_EQ(f.lookup(m, &k, v), 0);
  EXPECT_EQ(v[0] + v[1], 8u * 500 * 4);  // non-atomic increments: exact only if slots are exclusive
}

TEST(Runtime, IdsInfoAndRefcounts) {
  Fixture f;
  const int m = f.map_create(BPF_MAP_TYPE_HASH, 4, 8, 16, "counts");
  const int p = f.load(BPF_PROG_TYPE_XDP, counting_prog(m, 2).raw(), nullptr, 0, 0, "xdp_count");
  ASSERT_GE(p, 0);
  // map info
  bpf_map_info mi{};
  bpf_attr a{};
  a.info.bpf_fd = static_cast<std::uint32_t>(m);
  a.info.info_len = sizeof mi;
  a.info.info = ptr(&mi);
  ASSERT_EQ(f.call(BPF_OBJ_GET_INFO_BY_FD, a), 0);
  EXPECT_EQ(mi.type, static_cast<std::uint32_t>(BPF_MAP_TYPE_HASH));
  EXPECT_EQ(mi.key_size, 4u);
  EXPECT_EQ(mi.value_size, 8u);
  EXPECT_EQ(mi.max_entries, 16u);
  EXPECT_STREQ(mi.name, "counts");
  const std::uint32_t map_id = mi.id;
  // prog info with map ids and xlated instructions
  bpf_prog_info pi{};
  std::uint32_t ids[4] = {};
  std::vector<std::uint64_t> xl(64);
  pi.nr_map_ids = 4;
  pi.map_ids = ptr(ids);
  pi.xlated_prog_len = static_cast<std::uint32_t>(xl.size() * 8);
  pi.xlated_prog_insns = ptr(xl.data());
  a.info.bpf_fd = static_cast<std::uint32_t>(p);
  a.info.info_len = sizeof pi;
  a.info.info = ptr(&pi);
  ASSERT_EQ(f.call(BPF_OBJ_GET_INFO_BY_FD, a), 0);
  EXPECT_EQ(pi.type, static_cast<std::uint32_t>(BPF_PROG_TYPE_XDP));
  EXPECT_STREQ(pi.name, "xdp_count");
  EXPECT_EQ(pi.nr_map_ids, 1u);
  EXPECT_EQ(ids[0], map_id);
  EXPECT_EQ(pi.xlated_prog_len, counting_prog(m, 2).raw().size() * 8);
  EXPECT_TRUE(pi.gpl_compatible);
  isa::RawInsn first_lddw;
  std::memcpy(static_cast<void*>(&first_lddw), &xl[1], 8);
  EXPECT_EQ(first_lddw.src(), isa::kPseudoMapFd);
  EXPECT_EQ(static_cast<std::uint32_t>(first_lddw.imm), map_id);  // map references shown as ids
  // GET_NEXT_ID / GET_FD_BY_ID
  bpf_attr n{};
  n.start_id = 0;
  ASSERT_EQ(f.call(BPF_MAP_GET_NEXT_ID, n), 0);
  EXPECT_EQ(n.next_id, map_id);
  n.start_id = map_id;
  EXPECT_EQ(f.call(BPF_MAP_GET_NEXT_ID, n), -1);
  EXPECT_EQ(errno, ENOENT);
  bpf_attr g{};
  g.map_id = map_id;
  const int m2 = f.call(BPF_MAP_GET_FD_BY_ID, g);
  ASSERT_GE(m2, 0);
  EXPECT_NE(m2, m);
  // the map lives while the program uses it; freed when the program goes
  ASSERT_TRUE(f.rt->close(m).ok());
  ASSERT_TRUE(f.rt->close(m2).ok());
  EXPECT_GE(f.call(BPF_MAP_GET_FD_BY_ID, g), 0);  // still alive (used by the program); new handle
  EXPECT_EQ(f.rt->close(p).ok(), true);
  EXPECT_EQ(f.rt->close(p).error().code, EBADF);
}

TEST(Runtime, MapFreedOnLastCloseAndUnpin) {
  Fixture f;
  const int m = f.map_create(BPF_MAP_TYPE_ARRAY, 4, 4, 4, "pinned");
  bpf_map_info mi{};
  bpf_attr a{};
  a.info.bpf_fd = static_cast<std::uint32_t>(m);
  a.info.info_len = sizeof mi;
  a.info.info = ptr(&mi);
  ASSERT_EQ(f.call(BPF_OBJ_GET_INFO_BY_FD, a), 0);
  std::uint32_t k = 1, v = 99;
  ASSERT_EQ(f.update(m, &k, &v), 0);
  bpf_attr pin{};
  pin.bpf_fd = static_cast<std::uint32_t>(m);
  pin.pathname = ptr("/sys/fs/bpf/pinned");  // mapped into the pin directory
  ASSERT_EQ(f.call(BPF_OBJ_PIN, pin), 0) << errno;
  struct stat st {};
  ASSERT_EQ(::stat((f.dir.path() + "/pinned").c_str(), &st), 0);
  EXPECT_EQ(f.call(BPF_OBJ_PIN, pin), -1);
  EXPECT_EQ(errno, EEXIST);
  bpf_attr out{};
  out.bpf_fd = static_cast<std::uint32_t>(m);
  out.pathname = ptr("/etc/nope");
  EXPECT_EQ(f.call(BPF_OBJ_PIN, out), -1);
  EXPECT_EQ(errno, EPERM);
  // last handle closed: the object is gone from this process, the pin keeps the data
  ASSERT_TRUE(f.rt->close(m).ok());
  bpf_attr g{};
  g.map_id = mi.id;
  EXPECT_EQ(f.call(BPF_MAP_GET_FD_BY_ID, g), -1);
  EXPECT_EQ(errno, ENOENT);
  bpf_attr get{};
  get.pathname = ptr("pinned");
  const int m2 = f.call(BPF_OBJ_GET, get);
  ASSERT_GE(m2, 0) << errno;
  std::uint32_t out_v = 0;
  ASSERT_EQ(f.lookup(m2, &k, &out_v), 0);
  EXPECT_EQ(out_v, 99u);
  // a second OBJ_GET finds the same object (same id)
  const int m3 = f.call(BPF_OBJ_GET, get);
  ASSERT_GE(m3, 0);
  EXPECT_EQ(f.rt->get_map(m2)->id, f.rt->get_map(m3)->id);
  // unpin + close everything: the name is gone and nothing can reach the map
  ASSERT_TRUE(f.rt->unpin("pinned").ok());
  EXPECT_NE(::stat((f.dir.path() + "/pinned").c_str(), &st), 0);
  const std::uint32_t id2 = f.rt->get_map(m2)->id;
  ASSERT_TRUE(f.rt->close(m2).ok());
  ASSERT_TRUE(f.rt->close(m3).ok());
  g.map_id = id2;
  EXPECT_EQ(f.call(BPF_MAP_GET_FD_BY_ID, g), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(f.call(BPF_OBJ_GET, get), -1);
  EXPECT_EQ(errno, ENOENT);
  // the storage file is really gone (only the CPU slot file remains)
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(f.dir.path())) files += e.path().filename() != ".cpu-slots";
  EXPECT_EQ(files, 0);
}

// A map and a program pinned by one process, opened and run by others.
TEST(Runtime, PinnedProgramAndMapAcrossProcesses) {
  Fixture f;
  const int m = f.map_create(BPF_MAP_TYPE_HASH, 4, 8, 16, "counts");
  const int p = f.load(BPF_PROG_TYPE_XDP, counting_prog(m, XDP_DROP).raw(), nullptr, 0, 0, "xdp_count");
  ASSERT_GE(p, 0);
  ASSERT_TRUE(f.rt->pin(p, "prog").ok());
  ASSERT_TRUE(f.rt->pin(m, "counts").ok());
  constexpr int kRuns = 2000;
  pid_t kids[2];
  for (int c = 0; c < 2; ++c) {
    kids[c] = ::fork();
    ASSERT_GE(kids[c], 0);
    if (kids[c] == 0) {
      Options o = userbpf::testing::rt_options();
      o.pin_dir = f.dir.path();
      RT other(o);
      auto h = other.get_pinned("prog");
      if (!h.ok()) ::_exit(2);
      auto pkt = packet();
      TestRunArgs args;
      args.data_in = pkt;
      args.repeat = kRuns;
      auto r = other.test_run(*h, args);
      if (!r.ok() || r->retval != XDP_DROP) ::_exit(3);
      ::_exit(0);
    }
  }
  // meanwhile this process runs the program too
  const auto pkt = packet();
  auto r = f.test_run(p, pkt, kRuns);
  EXPECT_EQ(r.ret, 0);
  for (pid_t k : kids) {
    int st = 0;
    ASSERT_EQ(::waitpid(k, &st, 0), k);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  }
  // the pinned map seen by path in a fresh runtime: all 3 * kRuns counted
  Options o = userbpf::testing::rt_options();
  o.pin_dir = f.dir.path();
  RT fresh(o);
  auto hm = fresh.get_pinned("counts");
  ASSERT_TRUE(hm.ok());
  std::uint32_t k = 7;
  std::uint64_t v = 0;
  ASSERT_EQ(fresh.get_map(*hm)->map->lookup(&k, &v, 0), 0);
  EXPECT_EQ(v, 3u * kRuns);
  // the reloaded program keeps its metadata
  auto hp = fresh.get_pinned("prog");
  ASSERT_TRUE(hp.ok()) << hp.error().to_string();
  auto po = fresh.get_prog(*hp);
  EXPECT_EQ(po->name, "xdp_count");
  EXPECT_EQ(po->type, static_cast<std::uint32_t>(BPF_PROG_TYPE_XDP));
  EXPECT_EQ(po->used_maps.size(), 1u);
  EXPECT_EQ(po->used_maps[0]->map.get()->storage().data() != nullptr, true);
}

TEST(Runtime, BtfLoadAndBind) {
  Fixture f;
  // the smallest valid BTF: a header, no types, a string section of "\0"
  std::vector<std::uint8_t> blob(25, 0);
  blob[0] = 0x9f;
  blob[1] = 0xeb;
  blob[2] = 1;
  blob[4] = 24;
  blob[20] = 1;  // str_len
  bpf_attr a{};
  a.btf = ptr(blob.data());
  a.btf_size = static_cast<std::uint32_t>(blob.size());
  const int b = f.call(BPF_BTF_LOAD, a);
  ASSERT_GE(b, 0) << std::strerror(errno);
  a.btf_size = 24;  // no string section: refused as the kernel's btf_parse does
  EXPECT_EQ(f.call(BPF_BTF_LOAD, a), -1);
  EXPECT_EQ(errno, EINVAL);
  a.btf_size = 25;
  blob[0] = 0;
  EXPECT_EQ(f.call(BPF_BTF_LOAD, a), -1);
  EXPECT_EQ(errno, EINVAL);
  const int m = f.map_create(BPF_MAP_TYPE_ARRAY, 4, 4, 1);
  const int p = f.load(BPF_PROG_TYPE_XDP, return_imm(1).raw());
  bpf_attr bind{};
  bind.prog_bind_map.prog_fd = static_cast<std::uint32_t>(p);
  bind.prog_bind_map.map_fd = static_cast<std::uint32_t>(m);
  ASSERT_EQ(f.call(BPF_PROG_BIND_MAP, bind), 0);
  EXPECT_EQ(f.rt->get_prog(p)->bound_maps.size(), 1u);
  bind.prog_bind_map.flags = 1;
  EXPECT_EQ(f.call(BPF_PROG_BIND_MAP, bind), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST(Runtime, PublicApi) {
  TempDir d;
  RuntimeOptions o;
  o.pin_dir = d.path();
  o.jit = userbpf::testing::test_engine() == runtime::Engine::Jit;
  userbpf::Runtime rt(o);
  auto counts = rt.create_map(BPF_MAP_TYPE_HASH, 4, 8, 16, "counts");
  ASSERT_TRUE(counts.ok());
  int maps[1] = {counts->handle()};
  std::string log;
  auto prog = rt.load_program(BPF_PROG_TYPE_XDP, counting_prog(0, XDP_PASS, Op::LddwMapIdx).words(), "c", maps, &log);
  ASSERT_TRUE(prog.ok()) << prog.error().to_string();
  auto r = prog->test_run(packet(), 3);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->retval, static_cast<std::uint32_t>(XDP_PASS));
  std::uint32_t k = 7;
  std::uint64_t v = 0;
  EXPECT_EQ(counts->lookup(&k, &v), 0);
  EXPECT_EQ(v, 3u);
  ASSERT_TRUE(counts->pin("counts").ok());
  auto again = rt.open_map("counts");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->id(), counts->id());
  EXPECT_TRUE(rt.unpin("counts").ok());
}

// Numbers: host-side map operations and a test run, printed (not asserted).
TEST(Runtime, Timings) {
  Fixture f;
  const int h = f.map_create(BPF_MAP_TYPE_HASH, 4, 8, 1024);
  const int a = f.map_create(BPF_MAP_TYPE_ARRAY, 4, 8, 1024);
  auto hm = f.rt->get_map(h)->map.get();
  auto am = f.rt->get_map(a)->map.get();
  for (std::uint32_t k = 0; k < 1024; ++k) {
    std::uint64_t v = k;
    ASSERT_EQ(hm->update(&k, &v, 0), 0);
  }
  auto time_ns = [](int n, auto&& fn) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) fn(i);
    return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / n;
  };
  std::uint64_t sink = 0;
  const double hl = time_ns(1000000, [&](int i) {
    std::uint32_t k = static_cast<std::uint32_t>(i) & 1023;
    std::uint64_t v;
    hm->lookup(&k, &v, 0);
    sink += v;
  });
  const double al = time_ns(1000000, [&](int i) {
    std::uint32_t k = static_cast<std::uint32_t>(i) & 1023;
    std::uint64_t v;
    am->lookup(&k, &v, 0);
    sink += v;
  });
  const double pl = time_ns(1000000, [&](int i) {
    std::uint32_t k = static_cast<std::uint32_t>(i) & 1023;
    sink += reinterpret_cast<std::uintptr_t>(hm->prog_lookup(&k, 0));
  });
  const double hu = time_ns(1000000, [&](int i) {
    std::uint32_t k = static_cast<std::uint32_t>(i) & 1023;
    std::uint64_t v = 1;
    hm->update(&k, &v, BPF_EXIST);
  });
  std::uint32_t k = 0;
  std::uint64_t v = 0;
  bpf_attr la{};
  la.map_fd = static_cast<std::uint32_t>(h);
  la.key = ptr(&k);
  la.value = ptr(&v);
  const double bl = time_ns(1000000, [&](int) { f.call(BPF_MAP_LOOKUP_ELEM, la); });
  const int p = f.load(BPF_PROG_TYPE_XDP, counting_prog(h, 2).raw());
  auto r = f.test_run(p, packet(), 100000);
  std::printf("[timing] hash lookup (host copy) %.1f ns, array lookup %.1f ns, hash lookup (program pointer) %.1f "
              "ns, hash update %.1f ns, bpf(MAP_LOOKUP_ELEM) %.1f ns, test run of the counting XDP program "
              "(checked interpreter) %u ns/run\n",
              hl, al, pl, hu, bl, r.duration);
  EXPECT_GT(sink, 0u);
}
