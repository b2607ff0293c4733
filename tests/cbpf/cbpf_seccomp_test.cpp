// Seccomp: policies built with libseccomp, exported with seccomp_export_bpf
// to a memfd, run by userbpf (Target::Seccomp) for a grid of system calls
// and arguments; each decision is compared with the kernel's: a forked child
// installs the same policy (seccomp_load; libseccomp sets NO_NEW_PRIVS) and
// makes the call. Observations: the call ran (ALLOW, LOG), failed with
// errno n (ERRNO(n); TRACE without a tracer gives ENOSYS), SIGSYS caught by
// the child's handler (TRAP), or the child killed by SIGSYS (KILL_*).
// Skipped with the reason when the kernel refuses the policy.
#include <gtest/gtest.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "cbpf/cbpf.hpp"
#include "cbpf/exec.hpp"

using namespace userbpf;

namespace {

// Sanitizer runtimes make system calls of their own in the child (after the
// policy is installed); a default-KILL policy then kills the child for a
// call the test did not make. Such policies are compared only in plain builds.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

struct Call {
  const char* name;
  long nr;
  std::uint64_t a0 = 0;
};

std::vector<std::uint8_t> export_bpf(scmp_filter_ctx ctx) {
  const int fd = static_cast<int>(syscall(SYS_memfd_create, "seccomp", 0));
  if (fd < 0) return {};
  std::vector<std::uint8_t> out;
  if (seccomp_export_bpf(ctx, fd) == 0) {
    const off_t size = lseek(fd, 0, SEEK_END);
    out.resize(static_cast<std::size_t>(size));
    if (pread(fd, out.data(), out.size(), 0) != size) out.clear();
  }
  close(fd);
  return out;
}

int g_pipe = -1;
void on_sigsys(int) {
  const char t = 'T';
  (void)!write(g_pipe, &t, 1);
  _exit(3);
}

// What the kernel did: "RUN", "ERRNO n", "TRAP", "KILL" (or "SETUP ..." on failure).
std::string kernel_outcome(scmp_filter_ctx ctx, const Call& call) {
  int p[2];
  if (pipe(p) != 0) return "SETUP pipe";
  const pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    g_pipe = p[1];
    struct sigaction sa {};
    sa.sa_handler = on_sigsys;
    sigaction(SIGSYS, &sa, nullptr);
    if (seccomp_load(ctx) != 0) {
      (void)!write(p[1], "L", 1);
      _exit(4);
    }
    errno = 0;
    const long r = syscall(call.nr, call.a0, 0, 0, 0, 0, 0);
    const int e = errno;
    char buf[64];
    const int n = std::snprintf(buf, sizeof buf, "R%ld %d", r, e);
    (void)!write(p[1], buf, static_cast<std::size_t>(n));
    _exit(0);
  }
  close(p[1]);
  int status = 0;
  waitpid(pid, &status, 0);
  char buf[64] = {};
  const ssize_t n = read(p[0], buf, sizeof buf - 1);
  close(p[0]);
  if (WIFSIGNALED(status)) return WTERMSIG(status) == SIGSYS ? "KILL" : "SIGNAL " + std::to_string(WTERMSIG(status));
  if (n > 0 && buf[0] == 'T') return "TRAP";
  if (n > 0 && buf[0] == 'L') return "SETUP seccomp_load failed";
  long r = 0;
  int e = 0;
  if (n <= 0 || std::sscanf(buf, "R%ld %d", &r, &e) != 2) return "SETUP no report";
  return r == -1 ? "ERRNO " + std::to_string(e) : "RUN";
}

std::string predicted(std::uint32_t ret) {
  const std::string a = cbpf::seccomp_action_name(ret);
  if (a == "ALLOW" || a == "LOG") return "RUN";
  if (a.rfind("ERRNO(", 0) == 0) return "ERRNO " + std::to_string(ret & cbpf::kSeccompRetData);
  if (a.rfind("TRACE(", 0) == 0) return "ERRNO " + std::to_string(ENOSYS);
  if (a == "TRAP") return "TRAP";
  return "KILL";
}

using Builder = scmp_filter_ctx (*)();

scmp_filter_ctx policy_a() {
  scmp_filter_ctx c = seccomp_init(SCMP_ACT_ALLOW);
  seccomp_rule_add(c, SCMP_ACT_ERRNO(101), SCMP_SYS(getpid), 0);
  seccomp_rule_add(c, SCMP_ACT_TRAP, SCMP_SYS(getppid), 0);
  seccomp_rule_add(c, SCMP_ACT_KILL_PROCESS, SCMP_SYS(getuid), 0);
  seccomp_rule_add(c, SCMP_ACT_TRACE(5), SCMP_SYS(sched_yield), 0);
  seccomp_rule_add(c, SCMP_ACT_ERRNO(102), SCMP_SYS(umask), 1, SCMP_A0(SCMP_CMP_EQ, 022, 0));
  seccomp_rule_add(c, SCMP_ACT_LOG, SCMP_SYS(umask), 1, SCMP_A0(SCMP_CMP_GT, 0x100, 0));
  return c;
}
scmp_filter_ctx policy_b() {
  scmp_filter_ctx c = seccomp_init(SCMP_ACT_KILL_PROCESS);
  for (const int nr : {SCMP_SYS(write), SCMP_SYS(exit_group), SCMP_SYS(exit), SCMP_SYS(rt_sigreturn), SCMP_SYS(getpid)})
    seccomp_rule_add(c, SCMP_ACT_ALLOW, nr, 0);
  seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(umask), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, 0700, 0700));
  seccomp_rule_add(c, SCMP_ACT_ERRNO(104), SCMP_SYS(getuid), 0);
  seccomp_rule_add(c, SCMP_ACT_TRAP, SCMP_SYS(getgid), 0);
  return c;
}
scmp_filter_ctx policy_c() {
  scmp_filter_ctx c = seccomp_init(SCMP_ACT_ALLOW);
  seccomp_rule_add(c, SCMP_ACT_KILL, SCMP_SYS(getgid), 0);
  seccomp_rule_add(c, SCMP_ACT_ERRNO(105), SCMP_SYS(umask), 1, SCMP_A0(SCMP_CMP_LT, 10, 0));
  seccomp_rule_add(c, SCMP_ACT_TRAP, SCMP_SYS(umask), 1, SCMP_A0(SCMP_CMP_GE, 0x1000, 0));
  seccomp_rule_add(c, SCMP_ACT_ERRNO(106), SCMP_SYS(umask), 1, SCMP_A0(SCMP_CMP_NE, 0777, 0));
  seccomp_rule_add(c, SCMP_ACT_ERRNO(107), SCMP_SYS(getppid), 0);
  return c;
}

const std::vector<Call>& calls() {
  static const std::vector<Call> kCalls = [] {
    std::vector<Call> v = {{"getpid", SYS_getpid},   {"getppid", SYS_getppid}, {"getuid", SYS_getuid},
                           {"getgid", SYS_getgid},   {"sched_yield", SYS_sched_yield}};
    for (const std::uint64_t a : {0ULL, 5ULL, 022ULL, 0700ULL, 0777ULL, 0x1000ULL, 0x100000022ULL, 0xffffffff00000007ULL})
      v.push_back({"umask", SYS_umask, a});
    return v;
  }();
  return kCalls;
}

}  // namespace

TEST(CbpfSeccomp, ActionNames) {
  EXPECT_EQ(cbpf::seccomp_action_name(SCMP_ACT_ALLOW), "ALLOW");
  EXPECT_EQ(cbpf::seccomp_action_name(SCMP_ACT_KILL_PROCESS), "KILL_PROCESS");
  EXPECT_EQ(cbpf::seccomp_action_name(SCMP_ACT_KILL_THREAD), "KILL_THREAD");
  EXPECT_EQ(cbpf::seccomp_action_name(SCMP_ACT_TRAP), "TRAP");
  EXPECT_EQ(cbpf::seccomp_action_name(SCMP_ACT_ERRNO(13)), "ERRNO(13)");
  EXPECT_EQ(cbpf::seccomp_action_name(SCMP_ACT_TRACE(7)), "TRACE(7)");
  EXPECT_EQ(cbpf::seccomp_action_name(SCMP_ACT_LOG), "LOG");
  EXPECT_EQ(cbpf::seccomp_action_name(SCMP_ACT_NOTIFY), "USER_NOTIF");
  EXPECT_EQ(cbpf::seccomp_action_name(0x12340000), "KILL_PROCESS (unknown action 0x12340000)");
}

TEST(CbpfSeccomp, DecisionsMatchTheKernel) {
  std::size_t decisions = 0;
  for (const Builder build : {policy_a, policy_b, policy_c}) {
    if (kSanitized && build == policy_b) {
      std::printf("[ seccomp ] default-KILL policy not compared with the kernel in a sanitizer build\n");
      continue;
    }
    scmp_filter_ctx ctx = build();
    ASSERT_NE(ctx, nullptr);
    const auto bytes = export_bpf(ctx);
    ASSERT_FALSE(bytes.empty()) << "seccomp_export_bpf to a memfd failed";
    auto prog = cbpf::from_bytes(bytes);
    ASSERT_TRUE(prog.ok());
    ASSERT_TRUE(cbpf::check_seccomp(*prog).ok()) << cbpf::check_seccomp(*prog).error().to_string();
    auto filter = cbpf::Filter::create(*prog, cbpf::Target::Seccomp);
    ASSERT_TRUE(filter.ok()) << filter.error().to_string();
    for (const Call& call : calls()) {
      cbpf::SeccompData sd;
      sd.nr = static_cast<std::int32_t>(call.nr);
      sd.arch = seccomp_arch_native();
      sd.args[0] = call.a0;
      const std::uint32_t ret = filter->run_seccomp(sd);
      const std::string got = kernel_outcome(ctx, call);
      if (got.rfind("SETUP", 0) == 0) {
        seccomp_release(ctx);
        GTEST_SKIP() << "cannot install the policy in a child: " << got;
      }
      EXPECT_EQ(predicted(ret), got) << call.name << "(" << call.a0 << "): userbpf says "
                                     << cbpf::seccomp_action_name(ret) << "\n"
                                     << cbpf::print_tcpdump(*prog);
      ++decisions;
    }
    // A foreign architecture gets the policy's bad-arch action.
    std::uint32_t badarch = 0;
    ASSERT_EQ(seccomp_attr_get(ctx, SCMP_FLTATR_ACT_BADARCH, &badarch), 0);
    cbpf::SeccompData foreign;
    foreign.arch = seccomp_arch_resolve_name("aarch64");
    foreign.nr = 172;
    EXPECT_EQ(filter->run_seccomp(foreign), badarch);
    seccomp_release(ctx);
  }
  std::printf("[ seccomp ] %zu decisions, all as the kernel\n", decisions);
}

TEST(CbpfSeccomp, SeccompChecks) {
  using cbpf::Insn;
  using cbpf::Op;
  auto I = [](Op op, std::uint32_t k = 0) { return Insn{cbpf::info(op).code, 0, 0, k}; };
  EXPECT_TRUE(cbpf::check_seccomp(std::vector<Insn>{I(Op::LdWAbs, 4), I(Op::RetA)}).ok());
  EXPECT_TRUE(cbpf::check_seccomp(std::vector<Insn>{I(Op::LdWAbs, 60), I(Op::RetA)}).ok());
  for (const auto& bad : {std::vector<Insn>{I(Op::LdWAbs, 2), I(Op::RetA)},   // misaligned
                          std::vector<Insn>{I(Op::LdWAbs, 64), I(Op::RetA)},  // past seccomp_data
                          std::vector<Insn>{I(Op::LdHAbs, 0), I(Op::RetA)},   // packet-style loads
                          std::vector<Insn>{I(Op::LdWInd, 0), I(Op::RetA)},
                          std::vector<Insn>{I(Op::LdxBMsh, 0), I(Op::RetA)},
                          std::vector<Insn>{I(Op::LdWAbs, static_cast<std::uint32_t>(cbpf::kSkfAdOff)), I(Op::RetA)}}) {
    const auto st = cbpf::check_seccomp(bad);
    ASSERT_FALSE(st.ok()) << cbpf::print_tcpdump(bad);
    EXPECT_EQ(st.error().insn, 0U);
  }
  // LEN is sizeof(struct seccomp_data)
  auto f = cbpf::Filter::create(std::vector<Insn>{I(Op::LdWLen), I(Op::RetA)}, cbpf::Target::Seccomp);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->run_seccomp({}), 64U);
  // nr and the high half of args[1]
  auto g = cbpf::Filter::create(
      std::vector<Insn>{I(Op::LdWAbs, 0), I(Op::Tax), I(Op::LdWAbs, 28), I(Op::AddX), I(Op::RetA)},
      cbpf::Target::Seccomp);
  ASSERT_TRUE(g.ok());
  cbpf::SeccompData sd;
  sd.nr = 39;
  sd.args[1] = 0x0000000500000000ULL;
  EXPECT_EQ(g->run_seccomp(sd), 44U);
}
