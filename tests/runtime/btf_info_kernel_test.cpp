// PROG_LOAD with BTF func and line info, userbpf against the kernel: the same
// attrs (funcs.bpf.o's xdp_funcs, our loader's records, the same BTF blob
// loaded into each) and the variations of funcs_util.hpp's info_cases():
// errno, the written-back record sizes and the logs' kernel texts agree;
// accepted programs give the same test-run results. Also the log-buffer
// attribute rules and the source line a rejection names. Skipped with the
// reason where the kernel's BPF is unavailable.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cstring>

#include "funcs_util.hpp"
#include "oracle/oracle.hpp"
#include "runtime/runtime.hpp"
#include "test_util.hpp"

using namespace userbpf;
using userbpf::testing::Asm;
using userbpf::testing::FuncsLoad;

namespace {

struct Side : userbpf::testing::BpfSide {
  int btf = -1;
  int map = -1;

  void setup(const std::vector<std::uint8_t>& blob) {
    bpf_attr a{};
    a.btf = reinterpret_cast<std::uint64_t>(blob.data());
    a.btf_size = static_cast<std::uint32_t>(blob.size());
    btf = bpf(BPF_BTF_LOAD, a);
    bpf_attr m{};
    m.map_type = BPF_MAP_TYPE_ARRAY;
    m.key_size = 4;
    m.value_size = 4;
    m.max_entries = 1;
    map = bpf(BPF_MAP_CREATE, m);
  }
  std::uint32_t run(int prog, std::uint32_t len) {
    std::vector<std::uint8_t> pkt(len, 0);
    bpf_attr a{};
    a.test.prog_fd = static_cast<std::uint32_t>(prog);
    a.test.data_in = reinterpret_cast<std::uint64_t>(pkt.data());
    a.test.data_size_in = len;
    EXPECT_EQ(bpf(BPF_PROG_TEST_RUN, a), 0) << std::strerror(errno);
    return a.test.retval;
  }
};

class BtfInfoKernel : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& av = oracle::available();
    if (!av.ok) GTEST_SKIP() << "kernel BPF unavailable: " << av.reason;
    static_cast<userbpf::testing::BpfSide&>(kernel_) = userbpf::testing::kernel_side();
    static_cast<userbpf::testing::BpfSide&>(ours_) = userbpf::testing::runtime_side(*rt_.rt);
  }
  void TearDown() override {
    for (Side* s : {&kernel_, &ours_}) {
      if (s->btf >= 0) s->close(s->btf);
      if (s->map >= 0) s->close(s->map);
    }
  }
  userbpf::testing::TestRuntime rt_;
  Side kernel_, ours_;
};

}  // namespace

TEST_F(BtfInfoKernel, FuncAndLineInfoRecordsAgree) {
  const FuncsLoad base = userbpf::testing::funcs_load("xdp_funcs");
  ASSERT_FALSE(base.insns.empty());
  kernel_.setup(base.btf);
  ours_.setup(base.btf);
  ASSERT_GE(kernel_.btf, 0) << "kernel BTF_LOAD: " << std::strerror(errno);
  ASSERT_GE(ours_.btf, 0);
  int compared = 0;
  for (const auto& c : userbpf::testing::info_cases()) {
    SCOPED_TRACE(c.name);
    auto k = userbpf::testing::run_info_case(kernel_.bpf, c, base, kernel_.btf, kernel_.map);
    auto u = userbpf::testing::run_info_case(ours_.bpf, c, base, ours_.btf, ours_.map);
    EXPECT_EQ(u.err, k.err) << "ours: " << std::strerror(u.err) << " kernel: " << std::strerror(k.err)
                            << "\nour log:\n" << u.log << "\nkernel log:\n" << k.log;
    EXPECT_EQ(k.err, c.err) << "the case's expectation is not the kernel's";
    EXPECT_NE(k.log.find(c.log), std::string::npos) << "kernel log:\n" << k.log;
    EXPECT_NE(u.log.find(c.log), std::string::npos) << "our log:\n" << u.log;
    EXPECT_EQ(u.after.func_info_rec_size, k.after.func_info_rec_size);
    EXPECT_EQ(u.after.line_info_rec_size, k.after.line_info_rec_size);
    if (k.err != 0 && k.err != EACCES && c.err != 0 && std::string(c.log).find("missing btf") == std::string::npos) {
      EXPECT_EQ(u.log, k.log);  // the early checks' logs are the kernel's text exactly
    }
    if (k.fd >= 0 && u.fd >= 0) {
      for (std::uint32_t len : {14u, 64u, 101u}) EXPECT_EQ(ours_.run(u.fd, len), kernel_.run(k.fd, len)) << len;
    }
    if (k.fd >= 0) kernel_.close(k.fd);
    if (u.fd >= 0) ours_.close(u.fd);
    ++compared;
  }
  RecordProperty("cases", compared);
}

TEST_F(BtfInfoKernel, RejectionLogNamesTheSameSourceLine) {
  const FuncsLoad base = userbpf::testing::funcs_load("xdp_bad");
  ASSERT_FALSE(base.insns.empty());
  kernel_.setup(base.btf);
  ours_.setup(base.btf);
  ASSERT_GE(kernel_.btf, 0);
  userbpf::testing::InfoCase c{"xdp_bad", EACCES, "", [](FuncsLoad&) {}};
  auto k = userbpf::testing::run_info_case(kernel_.bpf, c, base, kernel_.btf, kernel_.map);
  auto u = userbpf::testing::run_info_case(ours_.bpf, c, base, ours_.btf, ours_.map);
  EXPECT_EQ(k.err, EACCES);
  EXPECT_EQ(u.err, k.err);
  // the kernel's "; <source> @ funcs.bpf.c:<line>" for the faulting access
  const std::string needle = "; return *p; /* no bounds check */ @ funcs.bpf.c:";
  const auto at = k.log.find(needle);
  ASSERT_NE(at, std::string::npos) << k.log;
  const std::string line = k.log.substr(at, k.log.find('\n', at) - at);
  EXPECT_NE(u.log.find(line), std::string::npos) << "kernel: " << line << "\nours:\n" << u.log;
}

TEST_F(BtfInfoKernel, LogBufferRulesAgree) {
  Asm a;
  a.op(isa::Op::MovImm, 0, 0, 0, 0).op(isa::Op::Exit);
  const auto prog = a.raw();
  std::vector<char> log(4096);
  struct Case {
    const char* name;
    char* buf;
    std::uint32_t size;
    std::uint32_t level;
  };
  const Case cases[] = {
      {"ok", log.data(), 4096, 1},
      {"size over UINT_MAX >> 2", log.data(), (0xffffffffu >> 2) + 1, 1},
      {"buffer without size", log.data(), 0, 1},
      {"size without buffer", nullptr, 4096, 1},
      {"buffer without level", log.data(), 4096, 0},
      {"BPF_LOG_KERNEL", log.data(), 4096, 16},
      {"level without buffer", nullptr, 0, 1},
      {"level 2 without buffer", nullptr, 0, 2},
      {"stats only", log.data(), 4096, 4},
      {"too small", log.data(), 8, 1},
  };
  for (const Case& c : cases) {
    auto load = [&](Side& s) {
      bpf_attr at{};
      at.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
      at.insn_cnt = static_cast<std::uint32_t>(prog.size());
      at.insns = reinterpret_cast<std::uint64_t>(prog.data());
      at.license = reinterpret_cast<std::uint64_t>("GPL");
      at.log_buf = reinterpret_cast<std::uint64_t>(c.buf);
      at.log_size = c.size;
      at.log_level = c.level;
      errno = 0;
      const int fd = s.bpf(BPF_PROG_LOAD, at);
      if (fd >= 0) s.close(fd);
      return fd >= 0 ? 0 : errno;
    };
    const int k = load(kernel_);
    EXPECT_EQ(load(ours_), k) << c.name << ": kernel " << std::strerror(k);
  }
}
