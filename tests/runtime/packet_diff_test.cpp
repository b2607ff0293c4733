// The context helpers (xdp_adjust_head/meta/tail, skb_load_bytes,
// skb_store_bytes) against the kernel: the same clang-built object
// (progs/packet.bpf.c) loaded by libbpf into the kernel and by userbpf's
// loader into the runtime, the same BPF_PROG_TEST_RUN cases on both; errno,
// retval, output packet and output context must be equal. Skipped, with the
// reason, where the kernel's BPF is not available.
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "loader/loader.hpp"
#include "oracle/oracle.hpp"
#include "runtime/runtime.hpp"
#include "test_util.hpp"

using namespace userbpf;

namespace {

const std::string kObj = std::string(USERBPF_RT_PROGS) + "/packet.bpf.o";

std::string hex(const std::uint8_t* p, std::size_t n) {
  std::string s;
  char b[4];
  for (std::size_t i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, "%02x", p[i]);
    s += b;
  }
  return s;
}

// A frame of n bytes with the two 32-bit parameters at 14 and 18.
std::vector<std::uint8_t> frame(std::size_t n, std::int32_t p1, std::int32_t p2 = 0) {
  std::vector<std::uint8_t> f(n);
  for (std::size_t i = 0; i < n; ++i) f[i] = static_cast<std::uint8_t>(i * 7 + 1);
  f[12] = 0x08;
  f[13] = 0x00;
  if (n >= 22) {
    std::memcpy(f.data() + 14, &p1, 4);
    std::memcpy(f.data() + 18, &p2, 4);
  }
  return f;
}

struct Case {
  std::string name;
  std::string prog;
  std::vector<std::uint8_t> data;
  std::vector<std::uint8_t> ctx;  // ctx_in (empty: none); ctx_out of the same size is asked for then
};

// One BPF_PROG_TEST_RUN as a line: errno or retval, data_out, ctx_out.
std::string run(const std::function<int(bpf_attr&)>& bpf, int fd, const Case& c) {
  std::vector<std::uint8_t> out(8192), ctx_out(c.ctx.size());
  bpf_attr a{};
  a.test.prog_fd = static_cast<std::uint32_t>(fd);
  a.test.data_in = reinterpret_cast<std::uint64_t>(c.data.data());
  a.test.data_size_in = static_cast<std::uint32_t>(c.data.size());
  a.test.data_out = reinterpret_cast<std::uint64_t>(out.data());
  a.test.data_size_out = static_cast<std::uint32_t>(out.size());
  if (!c.ctx.empty()) {
    a.test.ctx_in = reinterpret_cast<std::uint64_t>(c.ctx.data());
    a.test.ctx_size_in = static_cast<std::uint32_t>(c.ctx.size());
    a.test.ctx_out = reinterpret_cast<std::uint64_t>(ctx_out.data());
    a.test.ctx_size_out = static_cast<std::uint32_t>(ctx_out.size());
  }
  errno = 0;
  if (bpf(a) != 0) return "errno " + std::to_string(errno);
  return "retval " + std::to_string(static_cast<std::int32_t>(a.test.retval)) + " out " +
         hex(out.data(), std::min<std::size_t>(a.test.data_size_out, out.size())) + " ctx " +
         hex(ctx_out.data(), ctx_out.size());
}

template <class T>
std::vector<std::uint8_t> bytes(const T& v) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
  return {p, p + sizeof v};
}

std::vector<Case> cases() {
  std::vector<Case> v;
  xdp_md meta8{};
  meta8.data = 8;
  auto with_meta = [&](std::size_t n) {
    xdp_md m = meta8;
    m.data_end = static_cast<std::uint32_t>(n);
    return bytes(m);
  };
  // adjust_head: data may move down to data_hard_start + sizeof(xdp_frame)
  // + metadata and up to data_end - ETH_HLEN
  for (std::int32_t off : {0, 14, -14, -216, -217, 50, 51, -100000, 100000})
    v.push_back({"head " + std::to_string(off), "adjust_head", frame(64, off), {}});
  for (std::int32_t off : {-208, -209, 20})
    v.push_back({"head with meta " + std::to_string(off), "adjust_head", frame(64, off), with_meta(64)});
  // adjust_meta: metadata of 0..32 bytes, multiple of 4, above the frame
  for (std::int32_t off : {0, -4, -32, -36, -6, 4, -216, -217})
    v.push_back({"meta " + std::to_string(off), "adjust_meta", frame(64, off), {}});
  v.push_back({"meta with meta -4", "adjust_meta", frame(64, -4), with_meta(64)});
  v.push_back({"meta with meta -28", "adjust_meta", frame(64, -28), with_meta(64)});
  // adjust_tail: data_end from data + ETH_HLEN to the frame's end less the tailroom
  for (std::int32_t off : {0, -50, -51, 100, 3456, 3457, -100000})
    v.push_back({"tail " + std::to_string(off), "adjust_tail", frame(64, off), {}});
  // multi-buffer frames (fragments)
  for (std::int32_t off : {-100, 100, 2616, 2617, -1480, -2000, -4986, -4987})
    v.push_back({"tail frags " + std::to_string(off), "adjust_tail", frame(5000, off), {}});
  v.push_back({"head frags 20", "adjust_head", frame(5000, 20), {}});
  for (auto [h, t] : {std::pair{10, -5}, {-20, 30}, {-216, 0}, {40, -20}, {0, 4000}})
    v.push_back({"all " + std::to_string(h) + "/" + std::to_string(t), "adjust_all", frame(80, h, t), {}});
  v.push_back({"all with ctx", "adjust_all", frame(80, -16, 8), with_meta(80)});
  // skb_load_bytes: offset from skb->mark (tc: from the MAC header, socket: from the network header)
  for (const char* prog : {"tc_load_bytes", "sock_load_bytes"})
    for (std::uint32_t off : {0u, 8u, 42u, 43u, 56u, 57u, 0x7fffffffu, 0x80000000u}) {
      __sk_buff s{};
      s.mark = off;
      v.push_back({std::string(prog) + " " + std::to_string(off), prog, frame(64, 0), bytes(s)});
    }
  // skb_store_bytes: offset from mark, flags from priority
  for (auto [off, flags] : {std::pair{0u, 0u}, {10u, 0u}, {60u, 0u}, {61u, 0u}, {0x80000000u, 0u}, {4u, 1u},
                            {4u, 2u}, {4u, 3u}, {4u, 4u}, {4u, 0x10u}}) {
    __sk_buff s{};
    s.mark = off;
    s.priority = flags;
    v.push_back({"store " + std::to_string(off) + " flags " + std::to_string(flags), "tc_store_bytes", frame(64, 0),
                 bytes(s)});
  }
  return v;
}

}  // namespace

TEST(PacketHelpersKernelDiff, SameResultsAsTheKernel) {
  const auto& av = oracle::available();
  if (!av.ok) GTEST_SKIP() << "kernel BPF unavailable: " << av.reason;
  // kernel side: libbpf
  libbpf_set_print(nullptr);
  bpf_object* kobj = bpf_object__open_file(kObj.c_str(), nullptr);
  ASSERT_NE(kobj, nullptr);
  ASSERT_EQ(bpf_object__load(kobj), 0) << "the kernel refused " << kObj;
  // userbpf side: our loader and runtime
  loader::OpenOptions oo;
  oo.use_vmlinux_btf = false;
  auto obj = loader::Object::open(kObj, oo);
  ASSERT_TRUE(obj.ok()) << obj.error().to_string();
  // every engine, verified (rewritten contexts, packets anywhere) and
  // unverified (checked runs over the 32-bit stand-in)
  int compared = 0;
  for (const auto engine : {runtime::Engine::Jit, runtime::Engine::Interpreter})
    for (const bool verify : {true, false}) {
      const std::string mode = std::string(engine == runtime::Engine::Jit ? "jit" : "interpreter") +
                               (verify ? ", verified" : ", unverified");
      userbpf::testing::TempDir dir;
      runtime::Options o;
      o.pin_dir = dir.path();
      o.engine = engine;
      o.verify = verify;
      runtime::Runtime rt(o);
      auto loaded = rt.load_object(*obj);
      ASSERT_TRUE(loaded.ok()) << mode << ": " << loaded.error().to_string();
      auto user_fd = [&](const std::string& name) {
        for (const auto& [n, h] : loaded->progs)
          if (n == name) return h;
        return -1;
      };
      for (const Case& c : cases()) {
        bpf_program* kp = bpf_object__find_program_by_name(kobj, c.prog.c_str());
        ASSERT_NE(kp, nullptr) << c.prog;
        const std::string k =
            run([](bpf_attr& a) { return userbpf::testing::sys_bpf(BPF_PROG_TEST_RUN, &a, sizeof a); },
                bpf_program__fd(kp), c);
        const std::string u =
            run([&](bpf_attr& a) { return rt.bpf(BPF_PROG_TEST_RUN, &a, sizeof a); }, user_fd(c.prog), c);
        EXPECT_EQ(u, k) << c.name << " [" << mode << "] (left: userbpf, right: kernel)";
        ++compared;
      }
    }
  EXPECT_GT(compared, 200);
  bpf_object__close(kobj);
}

// Tracing test runs: raw_tracepoint rules as the kernel's; kprobe,
// tracepoint and perf_event, which the kernel cannot test-run (ENOTSUPP),
// run in userbpf as an extension (context_test.cpp).
TEST(PacketHelpersKernelDiff, TracingTestRunRules) {
  const auto& av = oracle::available();
  if (!av.ok) GTEST_SKIP() << "kernel BPF unavailable: " << av.reason;
  userbpf::testing::Asm a;
  a.op(isa::Op::LdxDW, 0, 1, 8).op(isa::Op::Exit);  // args[1]
  const auto raw = a.raw();
  userbpf::testing::TempDir dir;
  runtime::Options o = userbpf::testing::rt_options();
  o.pin_dir = dir.path();
  runtime::Runtime rt(o);
  auto load = [&](const std::function<int(int, bpf_attr&)>& bpf, std::uint32_t type) {
    bpf_attr at{};
    at.prog_type = type;
    at.insn_cnt = static_cast<std::uint32_t>(raw.size());
    at.insns = reinterpret_cast<std::uint64_t>(raw.data());
    at.license = reinterpret_cast<std::uint64_t>("GPL");
    return bpf(BPF_PROG_LOAD, at);
  };
  const std::function<int(int, bpf_attr&)> kernel = [](int cmd, bpf_attr& at) {
    return userbpf::testing::sys_bpf(cmd, &at, sizeof at);
  };
  const std::function<int(int, bpf_attr&)> user = [&](int cmd, bpf_attr& at) { return rt.bpf(cmd, &at, sizeof at); };
  struct RunCase {
    std::string name;
    std::size_t ctx_size;
    std::uint32_t repeat, flags, cpu;
    bool data, ctx_out;
  };
  const RunCase runs[] = {
      {"ok", 16, 0, 0, 0, false, false},         {"repeat", 16, 1, 0, 0, false, false},
      {"short ctx", 8, 0, 0, 0, false, false},   {"13 args", 104, 0, 0, 0, false, false},
      {"data_in", 16, 0, 0, 0, true, false},     {"ctx_out", 16, 0, 0, 0, false, true},
      {"cpu no flag", 16, 0, 0, 1, false, false}, {"bad flags", 16, 0, 4, 0, false, false},
  };
  auto run = [&](const std::function<int(int, bpf_attr&)>& bpf, int fd, const RunCase& c) {
    std::vector<std::uint8_t> ctx(c.ctx_size, 0), out(c.ctx_size), data(64, 1);
    if (ctx.size() >= 16) ctx[8] = 77;
    bpf_attr at{};
    at.test.prog_fd = static_cast<std::uint32_t>(fd);
    at.test.ctx_in = reinterpret_cast<std::uint64_t>(ctx.data());
    at.test.ctx_size_in = static_cast<std::uint32_t>(ctx.size());
    at.test.repeat = c.repeat;
    at.test.flags = c.flags;
    at.test.cpu = c.cpu;
    if (c.data) {
      at.test.data_in = reinterpret_cast<std::uint64_t>(data.data());
      at.test.data_size_in = static_cast<std::uint32_t>(data.size());
    }
    if (c.ctx_out) {
      at.test.ctx_out = reinterpret_cast<std::uint64_t>(out.data());
      at.test.ctx_size_out = static_cast<std::uint32_t>(out.size());
    }
    errno = 0;
    if (bpf(BPF_PROG_TEST_RUN, at) != 0) return "errno " + std::to_string(errno);
    return "retval " + std::to_string(at.test.retval);
  };
  const int kfd = load(kernel, BPF_PROG_TYPE_RAW_TRACEPOINT);
  ASSERT_GE(kfd, 0) << errno;
  const int ufd = load(user, BPF_PROG_TYPE_RAW_TRACEPOINT);
  ASSERT_GE(ufd, 0);
  for (const RunCase& c : runs) EXPECT_EQ(run(user, ufd, c), run(kernel, kfd, c)) << c.name;
  ::close(kfd);
  // kprobe: the kernel has no test run (ENOTSUPP = 524); userbpf runs it
  const int kk = load(kernel, BPF_PROG_TYPE_KPROBE);
  ASSERT_GE(kk, 0) << errno;
  const RunCase regs{"pt_regs", 168, 0, 0, 0, false, false};
  EXPECT_EQ(run(kernel, kk, regs), "errno 524");
  ::close(kk);
  const int uk = load(user, BPF_PROG_TYPE_KPROBE);
  ASSERT_GE(uk, 0);
  EXPECT_EQ(run(user, uk, regs), "retval 77");
}
