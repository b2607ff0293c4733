// bpf_get_stack / bpf_get_stackid on user stacks (src/helpers/stack.cpp),
// through the interpreter in the three modes: frame-pointer unwinding of
// the current thread, flags and errno (kernel stacks: -EFAULT), the buffer
// rules, and the stack trace map's ids.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <stdlib.h>

#include <cstdio>
#include <cstring>

#include <filesystem>

#include "helpers_test_util.hpp"

namespace userbpf::helpers::test {
namespace {

// r0 = helper(r1..r4) with the arguments given to the run.
std::vector<isa::Insn> call_prog(std::int32_t helper) {
  Prog p;
  call(p, helper).exit();
  return p.v;
}

TEST(Stack, GetStackUser) {
  for (Mode m : kModes) {
    std::uint64_t buf[32];
    std::memset(buf, 0xaa, sizeof buf);
    Runner r;
    r.allow(buf, sizeof buf);
    const auto res = r.run(call_prog(BPF_FUNC_get_stack), m, {0, reinterpret_cast<u64>(buf), sizeof buf, BPF_F_USER_STACK});
    ASSERT_TRUE(res.ok()) << mode_name(m);
    const auto n = static_cast<std::int64_t>(res.r0);
    ASSERT_GT(n, 0) << mode_name(m);
    ASSERT_EQ(n % 8, 0);
    const auto frames = static_cast<std::size_t>(n / 8);
    // the first frame returns into the engine that called the helper: code of this executable
    Dl_info info{};
    ASSERT_NE(dladdr(reinterpret_cast<void*>(buf[0]), &info), 0) << std::hex << buf[0];
    for (std::size_t i = 0; i < frames; ++i) EXPECT_NE(buf[i], 0u) << i;
    for (std::size_t i = frames; i < 32; ++i) EXPECT_EQ(buf[i], 0u) << "tail not zeroed at " << i;
    // build-id records: status IP, the same addresses
    bpf_stack_build_id recs[4];
    r.allow(recs, sizeof recs);
    const auto rb = r.run(call_prog(BPF_FUNC_get_stack), m,
                          {0, reinterpret_cast<u64>(recs), sizeof recs, BPF_F_USER_STACK | BPF_F_USER_BUILD_ID});
    ASSERT_GT(static_cast<std::int64_t>(rb.r0), 0);
    EXPECT_EQ(rb.r0 % sizeof(bpf_stack_build_id), 0u);
    EXPECT_EQ(recs[0].status, BPF_STACK_BUILD_ID_IP);
    EXPECT_EQ(recs[0].ip, buf[0]);  // the same call site in the engine
  }
}

TEST(Stack, GetStackErrors) {
  std::uint64_t buf[8];
  Runner r;
  r.allow(buf, sizeof buf);
  auto run = [&](u64 size, u64 flags) {
    std::memset(buf, 0xaa, sizeof buf);
    return static_cast<std::int64_t>(
        r.run(call_prog(BPF_FUNC_get_stack), Mode::Checked, {0, reinterpret_cast<u64>(buf), size, flags}).r0);
  };
  auto zeroed = [&](std::size_t n) {
    for (std::size_t i = 0; i < n / 8; ++i)
      if (buf[i] != 0) return false;
    return true;
  };
  EXPECT_EQ(run(sizeof buf, 0), -EFAULT);  // kernel stack: none in user space
  EXPECT_TRUE(zeroed(sizeof buf));
  EXPECT_EQ(run(sizeof buf, BPF_F_USER_STACK | (1ULL << 12)), -EINVAL);
  EXPECT_TRUE(zeroed(sizeof buf));
  EXPECT_EQ(run(12, BPF_F_USER_STACK), -EINVAL);  // not a multiple of 8
  EXPECT_EQ(run(sizeof buf, BPF_F_USER_BUILD_ID), -EINVAL);  // build ids of a kernel stack
  EXPECT_EQ(run(sizeof buf, BPF_F_USER_STACK | 255), -EFAULT);  // everything skipped
  EXPECT_TRUE(zeroed(sizeof buf));
  // a buffer outside the program's memory in a checked run ends the run
  const auto bad = r.run(call_prog(BPF_FUNC_get_stack), Mode::Checked, {0, 0x1000, 64, BPF_F_USER_STACK});
  EXPECT_FALSE(bad.ok());
}

TEST(Stack, GetStackid) {
  char tmpl[] = "/tmp/userbpf-stack-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  maps::MapSpec spec;
  spec.type = BPF_MAP_TYPE_STACK_TRACE;
  spec.key_size = 4;
  spec.value_size = 8 * 32;
  spec.max_entries = 64;
  auto m = maps::create_map(spec, tmpl);
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  Runner r;
  r.maps = {m->get()};
  auto stackid = [&](u64 flags) {
    Prog p;
    p.lddw(2, reinterpret_cast<u64>(m->get())).lddw(3, flags);
    call(p, BPF_FUNC_get_stackid).exit();
    return static_cast<std::int64_t>(r.run(p.v, Mode::Fast, {0}).r0);
  };
  std::int64_t ids[2];
  for (auto& id : ids) id = stackid(BPF_F_USER_STACK);  // the same stack twice: the same id
  ASSERT_GE(ids[0], 0);
  ASSERT_GE(ids[1], 0);
#if defined(__SANITIZE_ADDRESS__)
  constexpr bool kAsan = true;
#elif defined(__has_feature)
  constexpr bool kAsan = __has_feature(address_sanitizer);
#else
  constexpr bool kAsan = false;
#endif
  if (kAsan)  // ASan's fake stack frames (use-after-return) make frame-pointer walks vary from call to call
    std::printf("ASan build: not comparing the ids of two walks of the same stack (%lld, %lld)\n",
                static_cast<long long>(ids[0]), static_cast<long long>(ids[1]));
  else
    EXPECT_EQ(ids[0], ids[1]);
  // the map holds the frames
  std::uint64_t frames[32] = {};
  const auto key = static_cast<std::uint32_t>(ids[0]);
  ASSERT_EQ((*m)->lookup(&key, frames, 0), 0);
  EXPECT_NE(frames[0], 0u);
  EXPECT_EQ(stackid(0), -EFAULT);                        // kernel stack
  EXPECT_EQ(stackid(BPF_F_USER_STACK | (1ULL << 12)), -EINVAL);  // unknown flag
  EXPECT_EQ(stackid(BPF_F_USER_STACK | 255), -EFAULT);   // everything skipped
  m->reset();
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace userbpf::helpers::test
