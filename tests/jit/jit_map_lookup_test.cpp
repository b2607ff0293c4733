// Direct map lookups (jit::Options::map_lookups entries with a `lookup`):
// a verified program loaded through the runtime with hash, LRU hash and LPM
// maps calls the map type's lookup function instead of the helper. Every
// case runs the same relocated program over the same maps in the
// interpreter (the helper), the runtime's JIT build (direct calls), and the
// JIT with direct_map_lookups off (the helper); r0 and the map contents
// afterwards must agree. A counting wrapper around the runtime's
// map_lookup_elem shows which path each build took; a per-CPU hash map
// keeps the helper path (its lookup needs the run's CPU slot).
#include <linux/bpf.h>

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "../runtime/test_util.hpp"
#include "helpers/helpers.hpp"
#include "interp/interp.hpp"
#include "jit/jit.hpp"
#include "maps/map.hpp"
#include "runtime/runtime.hpp"

namespace userbpf::jit::test {
namespace {

using isa::Op;
using testing::Asm;

// The runtime's map_lookup_elem, counted (the tests run on one thread).
abi::HelperFn g_real_lookup = nullptr;
int g_helper_lookups = 0;
std::uint64_t counting_lookup(abi::Env& env, std::uint64_t r1, std::uint64_t r2, std::uint64_t r3, std::uint64_t r4,
                              std::uint64_t r5) {
  ++g_helper_lookups;
  return g_real_lookup(env, r1, r2, r3, r4, r5);
}

constexpr std::uint32_t kValueSize = 16;  // u64 data, u64 hit counter

// The key at fp-8 as the map expects it: a u32 (hash), or prefixlen 32 and
// the u32 (LPM, 8-byte key).
void store_key(Asm& a, bool lpm, std::int32_t key) {
  if (lpm) {
    a.op(Op::StW, 10, 0, -8, 32).op(Op::StW, 10, 0, -4, key);
  } else {
    a.op(Op::StW, 10, 0, -8, key);
  }
}

// r6 = r6 * 31 + (value's data, or 7 on a miss) for each key; the value's
// counter is incremented through the returned pointer; r7 (set before the
// first call) is added at the end, so r6 and r7 must survive every call.
// The first lookup loads the map into r1 itself, the others move it from r9
// (loaded once): both forms r1 is proven one map by.
std::vector<isa::RawInsn> lookup_prog(int map_fd, bool lpm, const std::vector<std::int32_t>& keys) {
  Asm a;
  a.op(Op::MovImm, 6, 0, 0, 0).op(Op::MovImm, 7, 0, 0, 1000).lddw(Op::LddwMapFd, 9, map_fd);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const std::string miss = "miss" + std::to_string(i), next = "next" + std::to_string(i);
    store_key(a, lpm, keys[i]);
    if (i == 0) {
      a.lddw(Op::LddwMapFd, 1, map_fd);
    } else {
      a.op(Op::MovReg, 1, 9);
    }
    a.op(Op::MovReg, 2, 10).op(Op::AddImm, 2, 0, 0, -8).call(BPF_FUNC_map_lookup_elem);
    a.op(Op::MulImm, 6, 0, 0, 31);
    a.jmp(Op::JeqImm, 0, 0, miss);
    a.op(Op::LdxDW, 1, 0, 0).op(Op::AddReg, 6, 1);
    a.op(Op::LdxDW, 1, 0, 8).op(Op::AddImm, 1, 0, 0, 1).op(Op::StxDW, 0, 1, 8);
    a.jmp(Op::Ja, 0, 0, next);
    a.label(miss).op(Op::AddImm, 6, 0, 0, 7);
    a.label(next);
  }
  a.op(Op::MovReg, 0, 6).op(Op::AddReg, 0, 7).op(Op::Exit);
  return a.raw();
}

class JitMapLookup : public ::testing::Test {
 protected:
  void SetUp() override {
    runtime::Options o;
    o.engine = runtime::Engine::Jit;
    o.pin_dir = dir_.path();
    rt_ = std::make_unique<runtime::Runtime>(o);
    table_ = rt_->helper_table();
    const abi::Helper* h = table_.find(BPF_FUNC_map_lookup_elem);
    ASSERT_NE(h, nullptr);
    g_real_lookup = h->fn;
    table_.set(BPF_FUNC_map_lookup_elem, "map_lookup_elem", &counting_lookup);
  }

  int make_map(std::uint32_t type, bool lpm, const std::vector<std::pair<std::int32_t, std::uint64_t>>& elems) {
    maps::MapSpec s;
    s.type = type;
    s.key_size = lpm ? 8 : 4;
    s.value_size = kValueSize;
    s.max_entries = 64;
    s.map_flags = lpm ? BPF_F_NO_PREALLOC : 0;
    auto fd = rt_->map_create(s);
    EXPECT_TRUE(fd.ok()) << fd.error().to_string();
    if (!fd.ok()) return -1;
    maps::Map& m = *rt_->get_map(*fd)->map;
    for (const auto& [k, v] : elems) {
      std::uint32_t key[2] = {static_cast<std::uint32_t>(k), 0};
      if (lpm) key[0] = 32, key[1] = static_cast<std::uint32_t>(k);
      std::vector<std::uint64_t> value(2 * m.ncpus(), 0);
      for (std::uint32_t c = 0; c < m.ncpus(); ++c) value[2 * c] = v;
      EXPECT_EQ(m.update(key, value.data(), BPF_ANY), 0);
    }
    return *fd;
  }

  // The element of key k as the host sees it: {data, hit counter} (per-CPU
  // maps: slot 0's data, the counters of all slots added), or nothing.
  std::optional<std::array<std::uint64_t, 2>> element(int fd, bool lpm, std::int32_t k) {
    maps::Map& m = *rt_->get_map(fd)->map;
    std::uint32_t key[2] = {static_cast<std::uint32_t>(k), 0};
    if (lpm) key[0] = 32, key[1] = static_cast<std::uint32_t>(k);
    std::vector<std::uint64_t> value(2 * m.ncpus(), 0);
    if (m.lookup(key, value.data(), 0) != 0) return std::nullopt;
    std::uint64_t hits = 0;
    for (std::uint32_t c = 0; c < m.ncpus(); ++c) hits += value[2 * c + 1];
    return std::array<std::uint64_t, 2>{value[0], hits};
  }

  // Sum of the hit counters of the distinct `keys`.
  std::uint64_t counters(int fd, bool lpm, const std::vector<std::int32_t>& keys) {
    std::uint64_t sum = 0;
    for (const std::int32_t k : std::set<std::int32_t>(keys.begin(), keys.end()))
      if (const auto e = element(fd, lpm, k)) sum += (*e)[1];
    return sum;
  }

  struct Outcome {
    std::uint64_t r0 = 0;
    int helper_calls = 0;
  };

  // Runs `run` once with a RunState as the runtime's test runs have.
  template <class F>
  Outcome run_with(const runtime::ProgObject& p, const abi::HelperTable* helpers, F&& run) {
    maps::CpuSlots::Guard guard(&rt_->cpu_slots());
    helpers::RunState st;
    st.cpu = &guard;
    st.maps = p.map_ptrs;
    abi::Env env;
    env.helpers = helpers;
    env.user = &st;
    g_helper_lookups = 0;
    const std::uint64_t args[1] = {0};
    const abi::RunResult r = run(env, std::span<const std::uint64_t>(args));
    EXPECT_TRUE(r.ok()) << (r.error ? r.error->to_string() : "");
    return Outcome{r.r0, g_helper_lookups};
  }

  // Loads the program over map `fd` and runs it in the three builds. Returns
  // the helper calls of the direct build.
  int check(int fd, bool lpm, const std::vector<std::int32_t>& keys, bool expect_direct) {
    const auto raw = lookup_prog(fd, lpm, keys);
    runtime::ProgSpec s;
    s.insns = raw;
    std::string log;
    auto h = rt_->prog_load(s, &log);
    EXPECT_TRUE(h.ok()) << h.error().to_string() << "\n" << log;
    if (!h.ok()) return -1;
    const auto p = rt_->get_prog(*h);
    EXPECT_TRUE(p->verified);
    EXPECT_NE(p->jitted, nullptr);
    if (p->jitted == nullptr) return -1;
    // the runtime lists the map for a direct lookup exactly when it may
    const Options& loaded = p->jitted->options();
    bool listed = false;
    for (const Options::MapLookup& ml : loaded.map_lookups)
      if (ml.map == reinterpret_cast<std::uint64_t>(p->map_ptrs.at(0)) && ml.lookup != 0) listed = true;
    EXPECT_EQ(listed, expect_direct);

    // the same options with the counting table, direct lookups on and off
    Options direct = loaded;
    direct.helpers = &table_;
    Options plain = direct;
    plain.direct_map_lookups = false;
    auto jd = Program::compile(p->exec->insns(), direct);
    auto jp = Program::compile(p->exec->insns(), plain);
    EXPECT_TRUE(jd.ok() && jp.ok());
    if (!jd.ok() || !jp.ok()) return -1;

    const std::uint64_t before = counters(fd, lpm, keys);
    const Outcome oi = run_with(*p, &table_, [&](abi::Env& e, auto a) { return p->exec->run(e, a); });
    const Outcome od = run_with(*p, &table_, [&](abi::Env& e, auto a) { return jd->run(e, a); });
    const Outcome op = run_with(*p, &table_, [&](abi::Env& e, auto a) { return jp->run(e, a); });
    // and the runtime's own build with the runtime's table
    const Outcome orr =
        run_with(*p, &rt_->helper_table(), [&](abi::Env& e, auto a) { return p->jitted->run(e, a); });
    EXPECT_EQ(oi.r0, od.r0);
    EXPECT_EQ(oi.r0, op.r0);
    EXPECT_EQ(oi.r0, orr.r0);
    const auto n = static_cast<int>(keys.size());
    EXPECT_EQ(oi.helper_calls, n);
    EXPECT_EQ(op.helper_calls, n);
    // every run incremented the counter of a key once per lookup that found it
    std::uint64_t hits_per_run = 0;
    for (const std::int32_t k : keys) hits_per_run += element(fd, lpm, k) ? 1 : 0;
    EXPECT_EQ(counters(fd, lpm, keys) - before, 4 * hits_per_run);
    last_r0_ = oi.r0;
    return od.helper_calls;
  }

  testing::TempDir dir_;
  std::unique_ptr<runtime::Runtime> rt_;
  abi::HelperTable table_;
  std::uint64_t last_r0_ = 0;
};

// keys: hits and misses, one key twice
const std::vector<std::int32_t> kKeys = {5, 6, 1000, 5, -1, 42};
const std::vector<std::pair<std::int32_t, std::uint64_t>> kElems = {{5, 111}, {42, 0x123456789ull}, {-1, 3}};

// What the program computes for kElems and kKeys.
std::uint64_t expected_r0() {
  std::uint64_t r6 = 0;
  for (const std::int32_t k : kKeys) {
    std::uint64_t v = 7;
    for (const auto& [ek, ev] : kElems)
      if (ek == k) v = ev;
    r6 = r6 * 31 + v;
  }
  return r6 + 1000;
}

TEST_F(JitMapLookup, HashDirectCallMatchesHelper) {
  const int fd = make_map(BPF_MAP_TYPE_HASH, false, kElems);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(check(fd, false, kKeys, true), 0);
  EXPECT_EQ(last_r0_, expected_r0());
}

TEST_F(JitMapLookup, LruHashDirectCallMatchesHelper) {
  const int fd = make_map(BPF_MAP_TYPE_LRU_HASH, false, kElems);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(check(fd, false, kKeys, true), 0);
  EXPECT_EQ(last_r0_, expected_r0());
}

TEST_F(JitMapLookup, LpmTrieDirectCallMatchesHelper) {
  const int fd = make_map(BPF_MAP_TYPE_LPM_TRIE, true, kElems);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(check(fd, true, kKeys, true), 0);
  EXPECT_EQ(last_r0_, expected_r0());
}

TEST_F(JitMapLookup, EmptyMapAllMisses) {
  const int fd = make_map(BPF_MAP_TYPE_HASH, false, {});
  ASSERT_GE(fd, 0);
  EXPECT_EQ(check(fd, false, kKeys, true), 0);
  std::uint64_t r6 = 0;
  for (std::size_t i = 0; i < kKeys.size(); ++i) r6 = r6 * 31 + 7;
  EXPECT_EQ(last_r0_, r6 + 1000);
}

TEST_F(JitMapLookup, PerCpuHashKeepsHelperCall) {
  const int fd = make_map(BPF_MAP_TYPE_PERCPU_HASH, false, kElems);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(check(fd, false, kKeys, false), static_cast<int>(kKeys.size()));
  EXPECT_EQ(last_r0_, expected_r0());
}

TEST_F(JitMapLookup, ListingCallsLookupFunction) {
  const int fd = make_map(BPF_MAP_TYPE_HASH, false, kElems);
  ASSERT_GE(fd, 0);
  const auto raw = lookup_prog(fd, false, {5});
  runtime::ProgSpec s;
  s.insns = raw;
  auto h = rt_->prog_load(s);
  ASSERT_TRUE(h.ok()) << h.error().to_string();
  const auto p = rt_->get_prog(*h);
  ASSERT_NE(p->jitted, nullptr);
  const auto fn = reinterpret_cast<std::uint64_t>(rt_->get_map(fd)->map->direct_lookup());
  ASSERT_NE(fn, 0u);
  char hex[32];
  std::snprintf(hex, sizeof hex, "0x%lX", static_cast<unsigned long>(fn));
  const std::string direct = p->jitted->disassemble();
  EXPECT_NE(direct.find(hex), std::string::npos) << direct;
  Options plain = p->jitted->options();
  plain.direct_map_lookups = false;
  plain.lean_helper_calls = false;  // the general helper call (a lean call is shorter than a direct one)
  auto jp = Program::compile(p->exec->insns(), plain);
  ASSERT_TRUE(jp.ok());
  EXPECT_EQ(jp->disassemble().find(hex), std::string::npos);
  EXPECT_LT(p->jitted->code_size(), jp->code_size());
}

}  // namespace
}  // namespace userbpf::jit::test
