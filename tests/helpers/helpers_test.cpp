// Helper families of src/helpers, called from programs run by the
// interpreter: process and thread identity, clocks, safe memory access,
// strings, checksums, the registry and the load-time message for helpers
// userbpf does not implement.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include "helpers_test_util.hpp"
#include "spec/spec.hpp"

namespace userbpf::helpers::test {
namespace {

// A program that calls helper `id` with r1..r5 = args and returns r0.
std::vector<isa::Insn> call_prog(std::int32_t id, std::vector<u64> args) {
  Prog p;
  for (std::size_t i = 0; i < args.size(); ++i) p.lddw(static_cast<std::uint8_t>(i + 1), args[i]);
  call(p, id).exit();
  return p.v;
}

// Calls helper `id` with args from a program, in `mode`.
u64 call_helper(Runner& r, std::int32_t id, std::vector<u64> args, Mode mode = Mode::Fast) {
  const auto res = r.run(call_prog(id, std::move(args)), mode);
  EXPECT_TRUE(res.ok()) << (res.error ? res.error->to_string() : "");
  return res.r0;
}

template <typename T>
u64 addr(T* p) {
  return reinterpret_cast<u64>(p);
}
u64 err(int e) { return static_cast<u64>(-static_cast<std::int64_t>(e)); }

TEST(Registry, EveryHelperHasTheKernelsIdAndAPrototype) {
  abi::HelperTable t;
  register_helpers(t);
  std::uint32_t last = 0;
  for (const std::uint32_t id : helper_ids()) {
    EXPECT_GT(id, last) << "helper_ids() is ascending";
    last = id;
    const abi::Helper* h = t.find(id);
    ASSERT_NE(h, nullptr) << id;
    EXPECT_EQ(h->name, spec::helper_name(id)) << "the kernel's name of id " << id;
    EXPECT_NE(spec::helper(id), nullptr) << "bpf_" << h->name << " has no prototype in spec/helpers.def";
    EXPECT_TRUE(supported(id));
  }
  EXPECT_GE(helper_ids().size(), 45u);
  EXPECT_FALSE(supported(BPF_FUNC_skb_get_tunnel_key));
}

TEST(Registry, UnsupportedHelperMessageNamesTheHelper) {
  const std::string m = unsupported_helper_message(BPF_FUNC_skb_get_tunnel_key);
  EXPECT_NE(m.find("bpf_skb_get_tunnel_key"), std::string::npos) << m;
  EXPECT_NE(m.find("id 20"), std::string::npos) << m;
  EXPECT_NE(m.find("not supported"), std::string::npos) << m;
  const std::string u = unsupported_helper_message(100000);
  EXPECT_NE(u.find("100000"), std::string::npos) << u;
  // fib_lookup says why
  EXPECT_FALSE(supported(BPF_FUNC_fib_lookup));
  const std::string f = unsupported_helper_message(BPF_FUNC_fib_lookup);
  EXPECT_NE(f.find("bpf_fib_lookup"), std::string::npos) << f;
  EXPECT_NE(f.find("routing table"), std::string::npos) << f;
  // the helpers of this issue are registered
  for (std::uint32_t id : {BPF_FUNC_skb_vlan_push, BPF_FUNC_skb_vlan_pop, BPF_FUNC_skb_change_head,
                           BPF_FUNC_skb_change_tail, BPF_FUNC_skb_adjust_room, BPF_FUNC_redirect_map,
                           BPF_FUNC_get_stackid, BPF_FUNC_get_stack})
    EXPECT_TRUE(supported(id)) << spec::helper_name(id);
}

TEST(Process, PidTgidUidGid) {
  Runner r;
  for (Mode m : kModes) {
    const u64 pt = call_helper(r, BPF_FUNC_get_current_pid_tgid, {}, m);
    EXPECT_EQ(pt >> 32, static_cast<u64>(getpid()));
    EXPECT_EQ(pt & 0xffffffff, static_cast<u64>(gettid()));
    const u64 ug = call_helper(r, BPF_FUNC_get_current_uid_gid, {}, m);
    EXPECT_EQ(ug & 0xffffffff, static_cast<u64>(getuid()));
    EXPECT_EQ(ug >> 32, static_cast<u64>(getgid()));
  }
  // another thread: its own tid, same tgid
  u64 other = 0;
  std::thread([&] {
    Runner r2;
    other = call_helper(r2, BPF_FUNC_get_current_pid_tgid, {});
  }).join();
  EXPECT_EQ(other >> 32, static_cast<u64>(getpid()));
  EXPECT_NE(other & 0xffffffff, static_cast<u64>(gettid()));
}

TEST(Process, CurrentCommIsTheThreadNamePadded) {
  std::string got, small;
  std::thread([&] {
    prctl(PR_SET_NAME, "ubpf-comm-test", 0, 0, 0);
    Runner r;
    char buf[24];
    std::memset(buf, 'x', sizeof buf);
    r.allow(buf, sizeof buf);
    EXPECT_EQ(call_helper(r, BPF_FUNC_get_current_comm, {addr(buf), sizeof buf}, Mode::Checked), 0u);
    got.assign(buf, sizeof buf);
    char four[4];
    r.allow(four, sizeof four);
    EXPECT_EQ(call_helper(r, BPF_FUNC_get_current_comm, {addr(four), sizeof four}, Mode::Checked), 0u);
    small.assign(four, sizeof four);
  }).join();
  EXPECT_EQ(got, std::string("ubpf-comm-test") + std::string(10, '\0'));
  EXPECT_EQ(small, std::string("ubp\0", 4));
}

TEST(Process, CheckedModeRefusesABufferOutsideTheProgramsMemory) {
  Runner r;
  char buf[16];
  const auto res = r.run(call_prog(BPF_FUNC_get_current_comm, {addr(buf), sizeof buf}), Mode::Checked);
  ASSERT_EQ(res.fault, abi::Fault::HelperFailed);
  EXPECT_NE(res.error->message.find("bpf_get_current_comm: buf"), std::string::npos) << res.error->message;
}

TEST(Process, CurrentTaskIsStablePerThread) {
  Runner r;
  const u64 a = call_helper(r, BPF_FUNC_get_current_task, {});
  const u64 b = call_helper(r, BPF_FUNC_get_current_task, {});
  EXPECT_EQ(a, b);
  EXPECT_NE(a, 0u);
  u64 other = 0;
  std::thread([&] {
    Runner r2;
    other = call_helper(r2, BPF_FUNC_get_current_task, {});
  }).join();
  EXPECT_NE(a, other);
  // it is opaque: reading through it fails cleanly
  std::uint64_t v = 1;
  EXPECT_EQ(call_helper(r, BPF_FUNC_probe_read_kernel, {addr(&v), 8, a}), err(EFAULT));
  EXPECT_EQ(v, 0u);
}

TEST(Process, NsCurrentPidTgid) {
  struct stat st {};
  ASSERT_EQ(stat("/proc/self/ns/pid", &st), 0);
  Runner r;
  std::uint32_t info[2] = {7, 7};
  r.allow(info, sizeof info);
  EXPECT_EQ(call_helper(r, BPF_FUNC_get_ns_current_pid_tgid,
                        {static_cast<u64>(st.st_dev), static_cast<u64>(st.st_ino), addr(info), 8}, Mode::Checked),
            0u);
  EXPECT_EQ(info[0], static_cast<std::uint32_t>(gettid()));
  EXPECT_EQ(info[1], static_cast<std::uint32_t>(getpid()));
  EXPECT_EQ(call_helper(r, BPF_FUNC_get_ns_current_pid_tgid, {static_cast<u64>(st.st_dev), 1, addr(info), 8}),
            err(ENOENT));
  EXPECT_EQ(info[0], 0u);
  EXPECT_EQ(call_helper(r, BPF_FUNC_get_ns_current_pid_tgid,
                        {static_cast<u64>(st.st_dev), static_cast<u64>(st.st_ino), addr(info), 4}),
            err(EINVAL));
  EXPECT_EQ(call_helper(r, BPF_FUNC_get_ns_current_pid_tgid, {1ULL << 33, static_cast<u64>(st.st_ino), addr(info), 8}),
            err(EINVAL));
}

TEST(Process, Clocks) {
  Runner r;
  timespec ts{};
  clock_gettime(CLOCK_TAI, &ts);
  const u64 tai = call_helper(r, BPF_FUNC_ktime_get_tai_ns, {});
  const u64 host = static_cast<u64>(ts.tv_sec) * 1000000000ULL + static_cast<u64>(ts.tv_nsec);
  EXPECT_GE(tai, host);
  EXPECT_LT(tai - host, 1000000000ULL);
  const u64 j1 = call_helper(r, BPF_FUNC_jiffies64, {});
  usleep(20000);
  const u64 j2 = call_helper(r, BPF_FUNC_jiffies64, {});
  EXPECT_GE(j2 - j1, 15u);  // HZ 1000
  EXPECT_LT(j2 - j1, 2000u);
  EXPECT_LT(call_helper(r, BPF_FUNC_get_numa_node_id, {}), 1024u);
  EXPECT_EQ(call_helper(r, BPF_FUNC_get_func_ip, {}), 0u);
}

TEST(Memory, ProbeReadCopiesOrFailsWithEfault) {
  const char src[] = "hello, probe";
  for (std::int32_t id : {BPF_FUNC_probe_read, BPF_FUNC_probe_read_user, BPF_FUNC_probe_read_kernel,
                          BPF_FUNC_copy_from_user}) {
    for (Mode m : kModes) {
      Runner r;
      char dst[8];
      r.allow(dst, sizeof dst);
      EXPECT_EQ(call_helper(r, id, {addr(dst), 8, addr(src)}, m), 0u) << id;
      EXPECT_EQ(std::memcmp(dst, src, 8), 0);
      EXPECT_EQ(call_helper(r, id, {addr(dst), 8, 8}, m), err(EFAULT)) << id;  // unmapped page 0
      EXPECT_EQ(std::string(dst, 8), std::string(8, '\0'));
      EXPECT_EQ(call_helper(r, id, {addr(dst), 0, 8}, m), 0u);
    }
  }
}

// Two pages, the second inaccessible (PROT_NONE, kept reserved so that no
// other mapping — ASan's allocator, say — can take its place): a string at
// the end of the first page.
struct EdgePage {
  char* base = nullptr;
  long page = sysconf(_SC_PAGESIZE);
  EdgePage() {
    void* p = mmap(nullptr, static_cast<std::size_t>(2 * page), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    base = static_cast<char*>(p);
    mprotect(base + page, static_cast<std::size_t>(page), PROT_NONE);
  }
  ~EdgePage() { munmap(base, static_cast<std::size_t>(2 * page)); }
  char* end() const { return base + page; }
};

TEST(Memory, ProbeReadStrForms) {
  EdgePage edge;
  char* s = edge.end() - 6;
  std::memcpy(s, "abcde", 6);  // with its NUL, the last bytes of the page
  for (std::int32_t id : {BPF_FUNC_probe_read_str, BPF_FUNC_probe_read_user_str, BPF_FUNC_probe_read_kernel_str}) {
    for (Mode m : kModes) {
      Runner r;
      char dst[16];
      r.allow(dst, sizeof dst);
      std::memset(dst, 'x', sizeof dst);
      EXPECT_EQ(call_helper(r, id, {addr(dst), 16, addr(s)}, m), 6u);
      EXPECT_STREQ(dst, "abcde");
      EXPECT_EQ(call_helper(r, id, {addr(dst), 3, addr(s)}, m), 3u);  // truncated: "ab" + NUL
      EXPECT_STREQ(dst, "ab");
      EXPECT_EQ(call_helper(r, id, {addr(dst), 0, addr(s)}, m), 0u);
      // no NUL before the unmapped page: -EFAULT, dst zeroed
      std::memcpy(s, "abcdef", 6);
      EXPECT_EQ(call_helper(r, id, {addr(dst), 16, addr(s)}, m), err(EFAULT));
      EXPECT_EQ(std::string(dst, 16), std::string(16, '\0'));
      // ... but a size that stops before the page end is fine
      EXPECT_EQ(call_helper(r, id, {addr(dst), 6, addr(s)}, m), 6u);
      EXPECT_STREQ(dst, "abcde");
      std::memcpy(s, "abcde", 6);
    }
  }
}

TEST(Memory, ProbeWriteUser) {
  Runner r;
  char target[8] = "aaaaaaa";
  const char src[8] = "bbbbbbb";
  r.allow(src, sizeof src, false);
  EXPECT_EQ(call_helper(r, BPF_FUNC_probe_write_user, {addr(target), addr(src), 4}, Mode::Checked), 0u);
  EXPECT_STREQ(target, "bbbbaaa");
  EXPECT_EQ(call_helper(r, BPF_FUNC_probe_write_user, {8, addr(src), 4}), err(EFAULT));
  void* ro = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(ro, MAP_FAILED);
  EXPECT_EQ(call_helper(r, BPF_FUNC_probe_write_user, {addr(ro), addr(src), 4}), err(EFAULT));
  munmap(ro, 4096);
}

TEST(Strings, Strncmp) {
  Runner r;
  const char a[] = "abcdef";
  const auto cmp = [&](const char* s1, u64 n, const char* s2) {
    return static_cast<std::int64_t>(call_helper(r, BPF_FUNC_strncmp, {addr(s1), n, addr(s2)}));
  };
  EXPECT_EQ(cmp(a, 6, "abcdef"), 0);
  EXPECT_EQ(cmp(a, 3, "abcxyz"), 0);
  EXPECT_EQ(cmp(a, 4, "abcx"), -1);
  EXPECT_EQ(cmp(a, 4, "abca"), 1);
  EXPECT_EQ(cmp(a, 6, "abc"), 1);  // s2 ends first
  const char hi[] = "\xff";
  EXPECT_EQ(cmp(hi, 1, "a"), 1);  // unsigned comparison
}

struct StrtoCase {
  const char* s;
  std::size_t len;  // 0: strlen
  u64 flags;
  std::int64_t ret;
  std::int64_t val;  // strtol's result when ret > 0
};

TEST(Strings, StrtolAndStrtoul) {
  const StrtoCase cases[] = {
      {"123", 0, 0, 3, 123},
      {"  -42xyz", 0, 0, 5, -42},
      {"0x1f", 0, 0, 4, 31},
      {"0x1f", 0, 16, 4, 31},
      {"1f", 0, 16, 2, 31},
      {"017", 0, 0, 3, 15},
      {"0x", 0, 0, 1, 0},  // base 8, "0"
      {"089", 0, 0, 1, 0},
      {"12345", 3, 10, 3, 123},
      {"", 1, 0, -EINVAL, 0},
      {"   ", 0, 0, -EINVAL, 0},
      {"-", 0, 0, -EINVAL, 0},
      {"abc", 0, 10, -EINVAL, 0},
      {"12", 0, 7, -EINVAL, 0},     // base 7
      {"12", 0, 0x20, -EINVAL, 0},  // unknown flag
      {"9223372036854775807", 0, 0, 19, INT64_MAX},
      {"9223372036854775808", 0, 0, -ERANGE, 0},
      {"-9223372036854775808", 0, 0, 20, INT64_MIN},
      {"99999999999999999999", 0, 0, -ERANGE, 0},
  };
  Runner r;
  for (const auto& c : cases) {
    const u64 len = c.len != 0 ? c.len : std::strlen(c.s);
    std::int64_t res = 77;
    const auto ret = static_cast<std::int64_t>(call_helper(r, BPF_FUNC_strtol, {addr(c.s), len, c.flags, addr(&res)}));
    EXPECT_EQ(ret, c.ret) << "strtol '" << c.s << "'";
    if (ret > 0) {
      EXPECT_EQ(res, c.val) << c.s;
    }
  }
  u64 ures = 0;
  EXPECT_EQ(call_helper(r, BPF_FUNC_strtoul, {addr("-1"), 2, 0, addr(&ures)}), err(EINVAL));
  EXPECT_EQ(call_helper(r, BPF_FUNC_strtoul, {addr("18446744073709551615"), 20, 0, addr(&ures)}), 20u);
  EXPECT_EQ(ures, ~0ULL);
  EXPECT_EQ(call_helper(r, BPF_FUNC_strtoul, {addr("18446744073709551616"), 20, 0, addr(&ures)}), err(ERANGE));
  std::int64_t res = 0;
  EXPECT_EQ(call_helper(r, BPF_FUNC_strtol, {addr("18446744073709551615"), 20, 0, addr(&res)}), err(ERANGE));
}

TEST(Checksum, CsumDiff) {
  // RFC 1624-style: the one's-complement sum folds to the same 16-bit checksum
  const std::uint32_t from[2] = {0x01020304, 0x05060708};
  const std::uint32_t to[2] = {0x11121314, 0x15161718};
  Runner r;
  const u64 d = call_helper(r, BPF_FUNC_csum_diff, {addr(from), 8, addr(to), 8, 0});
  auto fold = [](u64 v) {
    v = (v & 0xffff) + (v >> 16);
    v = (v & 0xffff) + (v >> 16);
    return (v & 0xffff) + (v >> 16);
  };
  // sum(~from) + sum(to) in 16-bit one's complement
  u64 want = 0;
  for (std::uint32_t w : from) want += (~w & 0xffff) + ((~w >> 16) & 0xffff);
  for (std::uint32_t w : to) want += (w & 0xffff) + (w >> 16);
  EXPECT_LE(d, 0xffffu);  // folded to 16 bits
  EXPECT_EQ(fold(d), fold(want));
  EXPECT_EQ(call_helper(r, BPF_FUNC_csum_diff, {0, 0, addr(to), 8, 5}), csum_fold16(csum_partial(to, 8, 5)));
  // odd sizes: the tail is zero-padded (3 bytes 01 02 03 -> 0x030201)
  const std::uint8_t three[3] = {1, 2, 3};
  EXPECT_EQ(call_helper(r, BPF_FUNC_csum_diff, {0, 0, addr(three), 3, 0}), csum_fold16(0x030201));
  EXPECT_EQ(call_helper(r, BPF_FUNC_csum_diff, {0, 0, 0, 0, 0x1234}), 0x1234u);
}

}  // namespace
}  // namespace userbpf::helpers::test

namespace userbpf::helpers::test {
namespace {

TEST(Skb, RedirectIsRecorded) {
  Runner r;
  Prog p;
  p.mov(1, 7).mov(2, BPF_F_INGRESS);
  call(p, BPF_FUNC_redirect).exit();
  r.prog_type = BPF_PROG_TYPE_SCHED_CLS;
  auto res = r.run(p.v, Mode::Fast);
  EXPECT_EQ(res.r0, 7u);  // TC_ACT_REDIRECT
  EXPECT_TRUE(r.state.redirect.set);
  EXPECT_EQ(r.state.redirect.ifindex, 7u);
  EXPECT_EQ(r.state.redirect.flags, static_cast<u64>(BPF_F_INGRESS));
  r.prog_type = BPF_PROG_TYPE_XDP;
  res = r.run(p.v, Mode::Fast);
  EXPECT_EQ(res.r0, static_cast<u64>(XDP_ABORTED));  // XDP takes no flags
  EXPECT_FALSE(r.state.redirect.set);
  p.v[1].imm = 0;
  res = r.run(p.v, Mode::Fast);
  EXPECT_EQ(res.r0, static_cast<u64>(XDP_REDIRECT));
  EXPECT_EQ(r.state.redirect.ifindex, 7u);
}

TEST(Skb, ChecksumHelpersWantAnSkbContext) {
  // a context that is not an SkBuff ends the run with a message naming the helper
  std::uint64_t not_ctx[16] = {};
  Runner r;
  Prog p;
  p.mov(2, 0).mov(3, 0).mov(4, 0).mov(5, 2);
  call(p, BPF_FUNC_l3_csum_replace).exit();
  const auto res = r.run(p.v, Mode::Fast, {addr(not_ctx)});
  ASSERT_EQ(res.fault, abi::Fault::HelperFailed);
  EXPECT_NE(res.error->message.find("bpf_l3_csum_replace: r1"), std::string::npos) << res.error->message;
}

}  // namespace
}  // namespace userbpf::helpers::test
