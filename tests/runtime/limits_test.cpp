// Resource limits (issue 8) and privilege: each limit is hit, with the
// kernel's errno through bpf() and a message naming the limit through the
// typed API; constant blinding of unprivileged loads' JIT code.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <sys/resource.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>

#include "runtime/runtime.hpp"
#include "test_util.hpp"

using namespace userbpf;
using isa::Op;
using userbpf::testing::Asm;
using userbpf::testing::TempDir;

namespace {

struct Rt : userbpf::testing::TestRuntime {
  using TestRuntime::TestRuntime;
  int load(std::uint32_t type, const std::vector<isa::RawInsn>& insns, char* log = nullptr, std::uint32_t size = 0,
           std::uint32_t level = 0) {
    bpf_attr a{};
    a.prog_type = type;
    a.insn_cnt = static_cast<std::uint32_t>(insns.size());
    a.insns = reinterpret_cast<std::uint64_t>(insns.data());
    a.license = reinterpret_cast<std::uint64_t>("GPL");
    a.log_buf = reinterpret_cast<std::uint64_t>(log);
    a.log_size = size;
    a.log_level = level;
    return call(BPF_PROG_LOAD, a);
  }
  int array(std::uint32_t value_size, std::uint32_t entries) {
    bpf_attr a{};
    a.map_type = BPF_MAP_TYPE_ARRAY;
    a.key_size = 4;
    a.value_size = value_size;
    a.max_entries = entries;
    return call(BPF_MAP_CREATE, a);
  }
};

// r0 = 0 repeated, then exit: `n` instructions in all.
std::vector<isa::RawInsn> straight(std::size_t n) {
  Asm a;
  for (std::size_t i = 0; i + 1 < n; ++i) a.op(Op::MovImm, 0, 0, 0, 0);
  a.op(Op::Exit);
  return a.raw();
}

std::uint64_t soft_limit(int resource) {
  rlimit r{};
  EXPECT_EQ(getrlimit(resource, &r), 0);
  return r.rlim_cur == RLIM_INFINITY ? runtime::Limits::kUnlimited : r.rlim_cur;
}

}  // namespace

TEST(Limits, DefaultsAreTheKernels) {
  Rt priv;
  EXPECT_EQ(priv.rt->limits().max_insns, 1'000'000u);
  EXPECT_EQ(priv.rt->limits().verifier_insns, 1'000'000u);
  EXPECT_EQ(priv.rt->limits().map_memory, runtime::Limits::kUnlimited);
  EXPECT_EQ(priv.rt->limits().max_handles, soft_limit(RLIMIT_NOFILE));
  Rt unpriv([](runtime::Options& o) { o.privileged = false; });
  EXPECT_EQ(unpriv.rt->limits().max_insns, static_cast<std::uint32_t>(BPF_MAXINSNS));
  EXPECT_EQ(unpriv.rt->limits().map_memory, soft_limit(RLIMIT_MEMLOCK));
}

TEST(Limits, InstructionsPerProgramUnprivileged) {
  Rt r([](runtime::Options& o) { o.privileged = false; });
  EXPECT_GE(r.load(BPF_PROG_TYPE_SOCKET_FILTER, straight(BPF_MAXINSNS)), 0) << std::strerror(errno);
  EXPECT_EQ(r.load(BPF_PROG_TYPE_SOCKET_FILTER, straight(BPF_MAXINSNS + 1)), -1);
  EXPECT_EQ(errno, E2BIG);
  const auto raw = straight(BPF_MAXINSNS + 1);
  runtime::ProgSpec s;
  s.insns = raw;
  auto h = r.rt->prog_load(s);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.error().code, E2BIG);
  EXPECT_NE(h.error().message.find("BPF_MAXINSNS"), std::string::npos) << h.error().message;
  // privileged: up to 1,000,000
  Rt p;
  EXPECT_GE(p.load(BPF_PROG_TYPE_SOCKET_FILTER, straight(BPF_MAXINSNS + 1)), 0) << std::strerror(errno);
}

TEST(Limits, InstructionsPerProgramConfigured) {
  Rt r([](runtime::Options& o) { o.limits.max_insns = 8; });
  EXPECT_GE(r.load(BPF_PROG_TYPE_SOCKET_FILTER, straight(8)), 0);
  EXPECT_EQ(r.load(BPF_PROG_TYPE_SOCKET_FILTER, straight(9)), -1);
  EXPECT_EQ(errno, E2BIG);
  const auto raw = straight(9);
  runtime::ProgSpec s;
  s.insns = raw;
  auto h = r.rt->prog_load(s);
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.error().message.find("Limits::max_insns"), std::string::npos) << h.error().message;
}

TEST(Limits, VerifierProcessedInstructions) {
  Rt r([](runtime::Options& o) { o.limits.verifier_insns = 50; });
  EXPECT_GE(r.load(BPF_PROG_TYPE_SOCKET_FILTER, straight(40)), 0);
  std::vector<char> log(1 << 16);
  EXPECT_EQ(r.load(BPF_PROG_TYPE_SOCKET_FILTER, straight(100), log.data(), static_cast<std::uint32_t>(log.size()), 1),
            -1);
  EXPECT_EQ(errno, E2BIG);
  EXPECT_NE(std::string(log.data()).find("BPF program is too large"), std::string::npos) << log.data();
}

TEST(Limits, UnprivilegedProgramTypes) {
  Rt r([](runtime::Options& o) { o.privileged = false; });
  EXPECT_EQ(r.load(BPF_PROG_TYPE_XDP, straight(2)), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_GE(r.load(BPF_PROG_TYPE_CGROUP_SKB, straight(2)), 0) << std::strerror(errno);
  const auto raw = straight(2);
  runtime::ProgSpec s;
  s.type = BPF_PROG_TYPE_KPROBE;
  s.insns = raw;
  auto h = r.rt->prog_load(s);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.error().code, EPERM);
  EXPECT_NE(h.error().message.find("privileged"), std::string::npos);
}

TEST(Limits, LogBufferRules) {
  Rt r;
  const auto prog = straight(2);
  std::vector<char> log(4096);
  auto load = [&](char* buf, std::uint32_t size, std::uint32_t level) {
    errno = 0;
    const int fd = r.load(BPF_PROG_TYPE_SOCKET_FILTER, prog, buf, size, level);
    return fd >= 0 ? 0 : errno;
  };
  EXPECT_EQ(load(log.data(), 4096, 1), 0);
  EXPECT_EQ(load(log.data(), (0xffffffffu >> 2) + 1, 1), EINVAL);  // log_size > UINT_MAX >> 2
  EXPECT_EQ(load(log.data(), 0, 1), EINVAL);                        // buffer without size
  EXPECT_EQ(load(nullptr, 4096, 1), EINVAL);                        // size without buffer
  EXPECT_EQ(load(log.data(), 4096, 0), EINVAL);                     // buffer without level
  EXPECT_EQ(load(log.data(), 4096, 16), EINVAL);                    // BPF_LOG_KERNEL is not for users
  EXPECT_EQ(load(nullptr, 0, 1), 0);                                // level alone (kernel >= 6.4)
  EXPECT_EQ(load(log.data(), 8, 1), ENOSPC);                        // the log did not fit
}

TEST(Limits, MapMemoryIsChargedAndGivenBack) {
  constexpr std::uint64_t kBudget = 1 << 20;
  Rt r([](runtime::Options& o) { o.limits.map_memory = kBudget; });
  std::vector<int> maps;
  int fd = 0;
  while ((fd = r.array(4096, 32)) >= 0) {  // 128 KiB of values each
    maps.push_back(fd);
    ASSERT_LT(maps.size(), 100u) << "the budget never ran out";
  }
  EXPECT_EQ(errno, EPERM);
  EXPECT_GE(maps.size(), 4u);
  EXPECT_LE(r.rt->map_memory_used(), kBudget);
  const std::uint64_t used = r.rt->map_memory_used();
  maps::MapSpec s;
  s.type = BPF_MAP_TYPE_ARRAY;
  s.key_size = 4;
  s.value_size = 4096;
  s.max_entries = 32;
  s.name = "big";
  auto h = r.rt->map_create(s);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.error().code, EPERM);
  EXPECT_NE(h.error().message.find("Limits::map_memory"), std::string::npos) << h.error().message;
  EXPECT_NE(h.error().message.find("'big'"), std::string::npos) << h.error().message;
  // freed when the map goes: room again
  ASSERT_TRUE(r.rt->close(maps.back()).ok());
  EXPECT_LT(r.rt->map_memory_used(), used);
  EXPECT_GE(r.array(4096, 32), 0) << std::strerror(errno);
  // a program keeps its map (and the charge) alive after the map's handle is closed
  Asm a;
  a.lookup_key0(maps[0]).op(Op::MovImm, 0, 0, 0, 0).op(Op::Exit);
  const int prog = r.load(BPF_PROG_TYPE_SOCKET_FILTER, a.raw());
  ASSERT_GE(prog, 0) << std::strerror(errno);
  const std::uint64_t before = r.rt->map_memory_used();
  ASSERT_TRUE(r.rt->close(maps[0]).ok());
  EXPECT_EQ(r.rt->map_memory_used(), before);
  ASSERT_TRUE(r.rt->close(prog).ok());
  EXPECT_LT(r.rt->map_memory_used(), before);
}

TEST(Limits, OpenHandles) {
  Rt r([](runtime::Options& o) { o.limits.max_handles = 8; });  // handles 3..7
  std::vector<int> fds;
  for (int i = 0; i < 5; ++i) {
    fds.push_back(r.array(4, 1));
    ASSERT_GE(fds.back(), 0) << std::strerror(errno);
  }
  EXPECT_EQ(fds.back(), 7);
  EXPECT_EQ(r.array(4, 1), -1);
  EXPECT_EQ(errno, EMFILE);
  EXPECT_EQ(r.load(BPF_PROG_TYPE_SOCKET_FILTER, straight(2)), -1);
  EXPECT_EQ(errno, EMFILE);
  maps::MapSpec s;
  s.type = BPF_MAP_TYPE_ARRAY;
  s.key_size = 4;
  s.value_size = 4;
  s.max_entries = 1;
  auto h = r.rt->map_create(s);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.error().code, EMFILE);
  EXPECT_NE(h.error().message.find("Limits::max_handles"), std::string::npos) << h.error().message;
  EXPECT_EQ(r.rt->map_memory_used() > 0, true);
  // GET_FD_BY_ID too
  bpf_attr a{};
  a.map_id = r.rt->get_map(fds[0])->id;
  EXPECT_EQ(r.call(BPF_MAP_GET_FD_BY_ID, a), -1);
  EXPECT_EQ(errno, EMFILE);
  ASSERT_TRUE(r.rt->close(fds[2]).ok());
  EXPECT_EQ(r.array(4, 1), fds[2]);
}

// The JIT listing of a program that loads `imm` (without the BPF
// instruction headers, which would show the immediate themselves).
std::string jit_listing(runtime::Runtime& rt, int prog) {
  auto p = rt.get_prog(prog);
  if (!p || !p->jitted) return {};
  std::string s = p->jitted->disassemble([](std::size_t) { return std::string("insn"); });
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

TEST(Limits, BlindingOnForUnprivilegedLoads) {
  constexpr std::int32_t kImm = 0x5a3c9e17;
  Asm a;
  a.op(Op::MovImm, 0, 0, 0, kImm).op(Op::AndImm, 0, 0, 0, 1).op(Op::Exit);
  const auto raw = a.raw();
  auto listing = [&](bool privileged, runtime::Blinding b) {
    Rt r([&](runtime::Options& o) {
      o.engine = runtime::Engine::Jit;
      o.privileged = privileged;
      o.blinding = b;
    });
    const int prog = r.load(BPF_PROG_TYPE_SOCKET_FILTER, raw);
    EXPECT_GE(prog, 0) << std::strerror(errno);
    // the blinded code computes the same result
    std::vector<std::uint8_t> pkt(64, 0);
    bpf_attr t{};
    t.test.prog_fd = static_cast<std::uint32_t>(prog);
    t.test.data_in = reinterpret_cast<std::uint64_t>(pkt.data());
    t.test.data_size_in = static_cast<std::uint32_t>(pkt.size());
    EXPECT_EQ(r.call(BPF_PROG_TEST_RUN, t), 0);
    EXPECT_EQ(t.test.retval, static_cast<std::uint32_t>(kImm & 1));
    return jit_listing(*r.rt, prog);
  };
  const std::string imm = "0x5a3c9e17";
  const std::string priv = listing(true, runtime::Blinding::Unprivileged);
  ASSERT_FALSE(priv.empty());
  EXPECT_NE(priv.find(imm), std::string::npos) << priv;  // the listing shows the immediate
  const std::string unpriv = listing(false, runtime::Blinding::Unprivileged);
  ASSERT_FALSE(unpriv.empty());
  EXPECT_EQ(unpriv.find(imm), std::string::npos) << unpriv;
  EXPECT_EQ(listing(true, runtime::Blinding::All).find(imm), std::string::npos);
  EXPECT_NE(listing(false, runtime::Blinding::Off).find(imm), std::string::npos);
}

// ---------------------------------------------------------------- verifier memory

namespace {

// A socket filter whose verification stores states: an unknown r6 (prandom)
// compared with `n` constants; each comparison either writes a stack slot
// or not, so paths differ and branches and checkpoints pile up.
std::vector<isa::RawInsn> branchy(int n) {
  Asm a;
  a.call(BPF_FUNC_get_prandom_u32).op(Op::MovReg, 6, 0).op(Op::MovImm, 7, 0, 0, 0);
  for (int k = 0; k < n; ++k) {
    const std::string skip = "skip" + std::to_string(k);
    a.jmp(Op::JgtImm, 6, k * 3, skip);
    a.op(Op::StDW, 10, 0, static_cast<std::int16_t>(-8 * (k % 60 + 1)), k).op(Op::AddImm, 7, 0, 0, k);
    a.label(skip);
  }
  a.op(Op::MovImm, 0, 0, 0, 0).op(Op::Exit);
  return a.raw();
}

}  // namespace

TEST(Limits, VerifierMemoryDefaults) {
  Rt priv;
  EXPECT_EQ(priv.rt->limits().verifier_memory, std::uint64_t{1} << 30);
  Rt unpriv([](runtime::Options& o) { o.privileged = false; });
  EXPECT_EQ(unpriv.rt->limits().verifier_memory, std::uint64_t{256} << 20);
}

TEST(Limits, VerifierMemoryIsCountedExactly) {
  // the peak of stored state bytes, then the same load with one byte less
  const auto raw = branchy(64);
  auto insns = isa::decode(raw);
  ASSERT_TRUE(insns.ok());
  verifier::Config cfg;
  cfg.memory_limit = 0;
  const verifier::Verdict full = verifier::verify(*insns, cfg);
  ASSERT_TRUE(full.accepted) << full.message;
  const std::uint64_t peak = full.stats.peak_state_bytes;
  ASSERT_GT(peak, 0u);
  cfg.memory_limit = peak;
  EXPECT_TRUE(verifier::verify(*insns, cfg).accepted);
  cfg.memory_limit = peak - 1;
  const verifier::Verdict v = verifier::verify(*insns, cfg);
  EXPECT_FALSE(v.accepted);
  EXPECT_EQ(v.err, ENOMEM);
  EXPECT_NE(v.message.find("verifier memory limit"), std::string::npos) << v.message;
  std::printf("64 branches: peak %llu bytes of stored states, %u checkpoints\n",
              static_cast<unsigned long long>(peak), full.stats.total_states);
}

TEST(Limits, VerifierMemoryThroughTheRuntime) {
  const auto raw = branchy(64);
  Rt def;
  EXPECT_GE(def.load(BPF_PROG_TYPE_SOCKET_FILTER, raw), 0) << std::strerror(errno);
  Rt r([](runtime::Options& o) { o.limits.verifier_memory = 64 * 1024; });
  EXPECT_EQ(r.load(BPF_PROG_TYPE_SOCKET_FILTER, raw), -1);
  EXPECT_EQ(errno, ENOMEM);
  runtime::ProgSpec s;
  s.insns = raw;
  auto h = r.rt->prog_load(s);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.error().code, ENOMEM);
  EXPECT_NE(h.error().message.find("Limits::verifier_memory"), std::string::npos) << h.error().message;
  EXPECT_TRUE(h.error().insn.has_value());
  // a straight-line program stores no state: it loads under the same limit
  EXPECT_GE(r.load(BPF_PROG_TYPE_SOCKET_FILTER, straight(100)), 0) << std::strerror(errno);
}
