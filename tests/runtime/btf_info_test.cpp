// PROG_LOAD through bpf() with BTF func and line info (prog_btf_fd,
// func_info*, line_info*): a global function and a bpf_loop callback load
// and run; bad records give the kernel's errno and log text (the same cases
// run against the kernel in btf_info_kernel_test.cpp); OBJ_GET_INFO_BY_FD
// reports the records; rejections name the source line.
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <cstring>

#include "funcs_util.hpp"
#include "runtime/runtime.hpp"
#include "test_util.hpp"

using namespace userbpf;
using userbpf::testing::FuncsLoad;
using userbpf::testing::TempDir;

namespace {

struct Rt : userbpf::testing::TestRuntime {
  userbpf::testing::BpfFn fn() {
    return [this](int cmd, bpf_attr& a) { return call(cmd, a); };
  }
  int btf(const std::vector<std::uint8_t>& blob) {
    bpf_attr a{};
    a.btf = reinterpret_cast<std::uint64_t>(blob.data());
    a.btf_size = static_cast<std::uint32_t>(blob.size());
    return call(BPF_BTF_LOAD, a);
  }
  int array() {
    bpf_attr a{};
    a.map_type = BPF_MAP_TYPE_ARRAY;
    a.key_size = 4;
    a.value_size = 4;
    a.max_entries = 1;
    return call(BPF_MAP_CREATE, a);
  }
  std::uint32_t run(int prog, std::vector<std::uint8_t> pkt) {
    bpf_attr a{};
    a.test.prog_fd = static_cast<std::uint32_t>(prog);
    a.test.data_in = reinterpret_cast<std::uint64_t>(pkt.data());
    a.test.data_size_in = static_cast<std::uint32_t>(pkt.size());
    EXPECT_EQ(call(BPF_PROG_TEST_RUN, a), 0) << std::strerror(errno);
    return a.test.retval;
  }
};

// xdp_funcs: sum 0..9 through the bpf_loop callback, plus the packet length,
// through the global function scale(x) = 3x + 1, & 3.
std::uint32_t expected_retval(std::uint32_t len) { return ((45 + len) * 3 + 1) & 3; }

}  // namespace

TEST(BtfInfo, GlobalFunctionAndCallbackLoadThroughBpfAndRun) {
  FuncsLoad l = userbpf::testing::funcs_load("xdp_funcs");
  ASSERT_FALSE(l.insns.empty()) << userbpf::testing::funcs_object_path();
  ASSERT_EQ(l.func_cnt, 3u);  // xdp_funcs, and the appended scale and add_step
  Rt r;
  const int btf = r.btf(l.btf);
  ASSERT_GE(btf, 0) << std::strerror(errno);
  std::vector<char> log(1 << 16);
  bpf_attr a = l.attr(static_cast<std::uint32_t>(btf), log.data(), static_cast<std::uint32_t>(log.size()));
  a.log_level = 2;  // every instruction, with its source line
  const int prog = r.call(BPF_PROG_LOAD, a);
  ASSERT_GE(prog, 0) << std::strerror(errno) << "\n" << log.data();
  for (std::uint32_t len : {14u, 60u, 61u, 100u})
    EXPECT_EQ(r.run(prog, std::vector<std::uint8_t>(len, 0)), expected_retval(len)) << len;
  // the log names source lines as the kernel's does ("; <source> @ <file>:<line>")
  EXPECT_NE(std::string(log.data()).find("@ funcs.bpf.c:"), std::string::npos) << log.data();

  // OBJ_GET_INFO_BY_FD: btf_id, the records as loaded
  auto p = r.rt->get_prog(prog);
  auto b = r.rt->get_btf(btf);
  bpf_prog_info info{};
  std::vector<bpf_func_info> fi(8);
  std::vector<bpf_line_info> li(64);
  info.nr_func_info = static_cast<std::uint32_t>(fi.size());
  info.func_info_rec_size = sizeof(bpf_func_info);
  info.func_info = reinterpret_cast<std::uint64_t>(fi.data());
  info.nr_line_info = static_cast<std::uint32_t>(li.size());
  info.line_info_rec_size = sizeof(bpf_line_info);
  info.line_info = reinterpret_cast<std::uint64_t>(li.data());
  bpf_attr ia{};
  ia.info.bpf_fd = static_cast<std::uint32_t>(prog);
  ia.info.info_len = sizeof info;
  ia.info.info = reinterpret_cast<std::uint64_t>(&info);
  ASSERT_EQ(r.call(BPF_OBJ_GET_INFO_BY_FD, ia), 0) << std::strerror(errno);
  EXPECT_EQ(info.btf_id, b->id);
  EXPECT_EQ(info.nr_func_info, 3u);
  EXPECT_EQ(info.nr_line_info, l.line_cnt);
  ASSERT_LE(l.line_cnt, li.size());
  EXPECT_EQ(std::memcmp(fi.data(), l.func_info.data(), 3 * sizeof(bpf_func_info)), 0);
  EXPECT_EQ(std::memcmp(li.data(), l.line_info.data(), l.line_cnt * sizeof(bpf_line_info)), 0);
  // a record size other than the kernel's is EINVAL (set_info_rec_size)
  info.func_info_rec_size = 12;
  EXPECT_EQ(r.call(BPF_OBJ_GET_INFO_BY_FD, ia), -1);
  EXPECT_EQ(errno, EINVAL);
  // the program keeps its BTF alive after the BTF handle is closed
  ASSERT_EQ(r.rt->close(btf).ok(), true);
  EXPECT_EQ(r.run(prog, std::vector<std::uint8_t>(64, 0)), expected_retval(64));
}

TEST(BtfInfo, BadRecordsGiveTheKernelsErrnoAndLog) {
  const FuncsLoad base = userbpf::testing::funcs_load("xdp_funcs");
  ASSERT_FALSE(base.insns.empty());
  Rt r;
  const int btf = r.btf(base.btf);
  const int map = r.array();
  ASSERT_GE(btf, 0);
  ASSERT_GE(map, 0);
  for (const auto& c : userbpf::testing::info_cases()) {
    SCOPED_TRACE(c.name);
    auto o = userbpf::testing::run_info_case(r.fn(), c, base, btf, map);
    EXPECT_EQ(o.err, c.err) << std::strerror(o.err) << "\n" << o.log;
    if (o.fd >= 0) {
      EXPECT_EQ(r.run(o.fd, std::vector<std::uint8_t>(64, 0)), expected_retval(64));
      (void)r.rt->close(o.fd);
    }
    EXPECT_NE(o.log.find(c.log), std::string::npos) << o.log;
    if (c.rec_size_out != 0) {
      EXPECT_EQ(c.err == E2BIG && std::string(c.name).rfind("func", 0) == 0 ? o.after.func_info_rec_size
                                                                            : o.after.line_info_rec_size,
                c.rec_size_out);
    }
  }
}

TEST(BtfInfo, RejectionNamesTheSourceLine) {
  FuncsLoad l = userbpf::testing::funcs_load("xdp_bad");
  ASSERT_FALSE(l.insns.empty());
  Rt r;
  const int btf = r.btf(l.btf);
  ASSERT_GE(btf, 0);
  // through the typed API: the Error names the line
  runtime::ProgSpec s;
  s.type = BPF_PROG_TYPE_XDP;
  s.insns = l.insns;
  s.btf_fd = static_cast<std::uint32_t>(btf);
  s.func_info = l.func_info.data();
  s.func_info_rec_size = l.func_rec;
  s.func_info_cnt = l.func_cnt;
  s.line_info = l.line_info.data();
  s.line_info_rec_size = l.line_rec;
  s.line_info_cnt = l.line_cnt;
  s.log_level = 1;
  std::string log;
  auto h = r.rt->prog_load(s, &log);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.error().code, EACCES);
  const std::string msg = h.error().to_string();
  EXPECT_NE(msg.find("return *p; /* no bounds check */ @ funcs.bpf.c:"), std::string::npos) << msg;
  // and the log has the kernel's "; <source> @ <file>:<line>" lines
  EXPECT_NE(log.find("; return *p; /* no bounds check */ @ funcs.bpf.c:"), std::string::npos) << log;
}

TEST(BtfInfo, LoadObjectUsesTheSamePath) {
  loader::OpenOptions oo;
  oo.use_vmlinux_btf = false;
  auto obj = loader::Object::open(userbpf::testing::funcs_object_path(), oo);
  ASSERT_TRUE(obj.ok()) << obj.error().to_string();
  Rt r;
  auto loaded = r.rt->load_object(*obj);
  ASSERT_TRUE(loaded.ok()) << loaded.error().to_string();
  ASSERT_EQ(loaded->progs.size(), 1u);  // xdp_bad is not autoloaded ("?xdp")
  const int prog = loaded->progs[0].second;
  EXPECT_EQ(r.run(prog, std::vector<std::uint8_t>(64, 0)), expected_retval(64));
  auto p = r.rt->get_prog(prog);
  ASSERT_TRUE(p->btf);
  EXPECT_EQ(p->btf_id, p->btf->id);
  EXPECT_EQ(p->func_info.size(), 3u);
  EXPECT_FALSE(p->line_info.empty());
}

TEST(BtfInfo, PinnedProgramKeepsItsBtf) {
  FuncsLoad l = userbpf::testing::funcs_load("xdp_funcs");
  ASSERT_FALSE(l.insns.empty());
  TempDir shared;
  std::uint32_t btf_id = 0;
  {
    runtime::Options o = userbpf::testing::rt_options();
    o.pin_dir = shared.path();
    runtime::Runtime first(o);
    const auto blob = l.btf;
    auto b = first.btf_load(blob);
    ASSERT_TRUE(b.ok()) << b.error().to_string();
    std::vector<char> log(1 << 12);
    bpf_attr a = l.attr(static_cast<std::uint32_t>(*b), log.data(), static_cast<std::uint32_t>(log.size()));
    const int prog = first.bpf(BPF_PROG_LOAD, &a, sizeof a);
    ASSERT_GE(prog, 0) << std::strerror(errno) << log.data();
    ASSERT_TRUE(first.pin(prog, "funcs").ok());
    btf_id = first.get_prog(prog)->btf_id;
    EXPECT_NE(btf_id, 0u);
  }
  // another runtime (as another process would) opens the pin: the callback
  // and the global function verify again with the pinned func_info
  runtime::Options o = userbpf::testing::rt_options();
  o.pin_dir = shared.path();
  runtime::Runtime second(o);
  auto h = second.get_pinned("funcs");
  ASSERT_TRUE(h.ok()) << h.error().to_string();
  auto p = second.get_prog(*h);
  EXPECT_EQ(p->func_info.size(), 3u);
  EXPECT_EQ(p->line_info.size(), l.line_cnt);
  ASSERT_TRUE(p->btf);
  EXPECT_EQ(p->btf_id, p->btf->id);
  runtime::TestRunArgs args;
  const std::vector<std::uint8_t> pkt(64, 0);
  args.data_in = pkt;
  auto run = second.test_run(*h, args);
  ASSERT_TRUE(run.ok()) << run.error().to_string();
  EXPECT_EQ(run->retval, expected_retval(64));
}
