// Helper-heavy code in the JIT (docs/jit.md, "Helper calls"): lean calls of
// helpers flagged abi::kHelperLeaf (Options::lean_helper_calls), the
// once-per-run bpf_get_smp_processor_id (kHelperRunConstant), inline array
// updates (Options::inline_map_updates) and keys taken from the register
// that stored them (Options::forward_map_keys). Each program is loaded and
// verified by the runtime (real maps, real helpers) and run in the
// interpreter and in JIT builds with each switch on and off; r0 and the
// maps' contents must be the same in every build, and the listings and a
// count of helper calls show that each change fired where it should.
#include <linux/bpf.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
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

// Counting wrappers around the runtime's helpers (the tests run on one
// thread). The wrappers keep the real helpers' flags.
abi::HelperFn g_real_update = nullptr;
abi::HelperFn g_real_cpu = nullptr;
int g_updates = 0;
int g_cpu_calls = 0;
std::uint64_t counting_update(abi::Env& env, std::uint64_t r1, std::uint64_t r2, std::uint64_t r3, std::uint64_t r4,
                              std::uint64_t r5) {
  ++g_updates;
  return g_real_update(env, r1, r2, r3, r4, r5);
}
std::uint64_t counting_cpu(abi::Env& env, std::uint64_t r1, std::uint64_t r2, std::uint64_t r3, std::uint64_t r4,
                           std::uint64_t r5) {
  ++g_cpu_calls;
  return g_real_cpu(env, r1, r2, r3, r4, r5);
}

// The listing without its out-of-line thunks, stubs and trampoline.
std::string body(const std::string& listing) { return listing.substr(0, listing.find("; out-of-line")); }

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (std::size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

class JitHelperCalls : public ::testing::Test {
 protected:
  void SetUp() override {
    runtime::Options o;
    o.engine = runtime::Engine::Jit;
    o.pin_dir = dir_.path();
    rt_ = std::make_unique<runtime::Runtime>(o);
    table_ = rt_->helper_table();
    const abi::Helper* u = table_.find(BPF_FUNC_map_update_elem);
    const abi::Helper* c = table_.find(BPF_FUNC_get_smp_processor_id);
    ASSERT_NE(u, nullptr);
    ASSERT_NE(c, nullptr);
    EXPECT_NE(u->flags & abi::kHelperLeaf, 0);
    EXPECT_EQ(c->flags, abi::kHelperLeaf | abi::kHelperRunConstant);
    g_real_update = u->fn;
    g_real_cpu = c->fn;
    table_.set(BPF_FUNC_map_update_elem, "map_update_elem", &counting_update, u->flags);
    table_.set(BPF_FUNC_get_smp_processor_id, "get_smp_processor_id", &counting_cpu, c->flags);
  }

  int make_array(std::uint32_t value_size, std::uint32_t entries) {
    maps::MapSpec s;
    s.type = BPF_MAP_TYPE_ARRAY;
    s.key_size = 4;
    s.value_size = value_size;
    s.max_entries = entries;
    auto fd = rt_->map_create(s);
    EXPECT_TRUE(fd.ok()) << fd.error().to_string();
    return fd.ok() ? *fd : -1;
  }

  // Every map's bytes, and a reset to a fixed pattern before each run.
  std::vector<std::uint8_t> contents(const runtime::ProgObject& p) {
    std::vector<std::uint8_t> out;
    for (maps::Map* m : p.map_ptrs) {
      const auto s = m->program_area();
      out.insert(out.end(), s.begin(), s.end());
    }
    return out;
  }
  void reset(const runtime::ProgObject& p) {
    for (maps::Map* m : p.map_ptrs) {
      const auto s = m->program_area();
      for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<std::uint8_t>(i * 7 + 3);
    }
  }

  struct Outcome {
    abi::RunResult r;
    std::vector<std::uint8_t> maps;
    int updates = 0, cpu_calls = 0;
  };
  using RunFn = std::function<abi::RunResult(abi::Env&, std::span<const std::uint64_t>)>;
  // Two runs with one RunState (as a test run's repeat loop): the second's outcome.
  Outcome run_with(const runtime::ProgObject& p, const abi::HelperTable* helpers, const RunFn& run) {
    maps::CpuSlots::Guard guard(&rt_->cpu_slots());
    helpers::RunState st;
    st.cpu = &guard;
    st.maps = p.map_ptrs;
    abi::Env env;
    env.helpers = helpers;
    env.user = &st;
    const std::uint64_t args[1] = {0};
    reset(p);
    (void)run(env, args);
    reset(p);
    g_updates = g_cpu_calls = 0;
    Outcome o;
    o.r = run(env, args);
    o.maps = contents(p);
    o.updates = g_updates;
    o.cpu_calls = g_cpu_calls;
    return o;
  }

  struct Builds {
    Outcome interp, jit_on, jit_off;
    std::string listing_on, listing_off;
  };
  // Loads `raw` (verified), runs the interpreter, the JIT with the runtime's
  // options (every switch on) and with `off` applied; checks they agree.
  Builds check(const std::vector<isa::RawInsn>& raw, const std::function<void(Options&)>& off) {
    Builds b;
    runtime::ProgSpec s;
    s.insns = raw;
    std::string log;
    auto h = rt_->prog_load(s, &log);
    EXPECT_TRUE(h.ok()) << (h.ok() ? "" : h.error().to_string()) << "\n" << log;
    if (!h.ok()) return b;
    const auto p = rt_->get_prog(*h);
    EXPECT_TRUE(p->verified);
    if (p->jitted == nullptr) {
      ADD_FAILURE() << "not jitted";
      return b;
    }
    Options on = p->jitted->options();
    on.helpers = &table_;
    Options plain = on;
    off(plain);
    auto jon = Program::compile(p->exec->insns(), on);
    auto joff = Program::compile(p->exec->insns(), plain);
    EXPECT_TRUE(jon.ok() && joff.ok());
    if (!jon.ok() || !joff.ok()) return b;
    b.interp = run_with(*p, &table_, [&](abi::Env& e, auto a) { return p->exec->run(e, a); });
    b.jit_on = run_with(*p, &table_, [&](abi::Env& e, auto a) { return jon->run(e, a); });
    b.jit_off = run_with(*p, &table_, [&](abi::Env& e, auto a) { return joff->run(e, a); });
    for (const Outcome* o : {&b.jit_on, &b.jit_off}) {
      EXPECT_TRUE(o->r == b.interp.r) << std::hex << o->r.r0 << " vs interpreter " << b.interp.r.r0;
      EXPECT_EQ(o->maps, b.interp.maps);
    }
    EXPECT_TRUE(b.interp.r.ok()) << (b.interp.r.error ? b.interp.r.error->to_string() : "");
    b.listing_on = jon->disassemble();
    b.listing_off = joff->disassemble();
    (void)rt_->close(*h);
    return b;
  }

  testing::TempDir dir_;
  std::unique_ptr<runtime::Runtime> rt_;
  abi::HelperTable table_;
};

struct UpdateCase {
  std::int64_t key;  // < 0: the key is an immediate store (StW) of -key - 1
  std::uint64_t flags;
};

// r7 = r7 * 31 + bpf_map_update_elem(map, &key, &value, flags) for each
// case, the value's words from r8 + i; the key from a register (StxW) or an
// immediate (StW) right before the call (forward_map_keys), or stored
// earlier with a store to another slot in between.
std::vector<isa::RawInsn> update_prog(int fd, std::uint32_t words, const std::vector<UpdateCase>& cases,
                                      bool gap) {
  Asm a;
  a.op(Op::MovImm, 7, 0, 0, 0).op(Op::MovImm, 8, 0, 0, 0x1234);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const UpdateCase& c = cases[i];
    for (std::uint32_t w = 0; w < words; ++w) {
      a.op(Op::MovReg, 1, 8).op(Op::AddImm, 1, 0, 0, static_cast<std::int32_t>(i * 16 + w));
      a.op(Op::StxDW, 10, 1, static_cast<std::int16_t>(-48 + 8 * static_cast<int>(w)));
    }
    if (c.key < 0) {
      a.op(Op::StW, 10, 0, -4, static_cast<std::int32_t>(-c.key - 1));
    } else {
      a.lddw(Op::Lddw, 6, static_cast<std::int32_t>(c.key), static_cast<std::int32_t>(c.key >> 32));
      a.op(Op::StxW, 10, 6, -4);
    }
    if (gap) a.op(Op::StDW, 10, 0, -16, 99).op(Op::MovImm, 5, 0, 0, 3);
    a.lddw(Op::LddwMapFd, 1, fd);
    a.op(Op::MovReg, 2, 10).op(Op::AddImm, 2, 0, 0, -4);
    a.op(Op::MovReg, 3, 10).op(Op::AddImm, 3, 0, 0, -48);
    a.lddw(Op::Lddw, 4, static_cast<std::int32_t>(c.flags), static_cast<std::int32_t>(c.flags >> 32));
    a.call(BPF_FUNC_map_update_elem);
    a.op(Op::MulImm, 7, 0, 0, 31).op(Op::AddReg, 7, 0);
    // r1-r5 are dead after the call (lean calls save none of them)
  }
  a.op(Op::MovReg, 0, 7).op(Op::Exit);
  return a.raw();
}

const std::vector<UpdateCase> kUpdates = {
    {0, BPF_ANY},           {3, BPF_EXIST},    {7, BPF_ANY},        {8, BPF_ANY},  // 8: past the end
    {0xffffffff, BPF_ANY},  {2, BPF_NOEXIST},  {2, 3},              {2, BPF_F_LOCK},
    {2, BPF_F_LOCK | 2},    {1, 1ull << 32},   {-1 - 5, BPF_ANY},   {-1 - 9, BPF_ANY},
    {-1 - 6, BPF_NOEXIST},  {-1 - 4, 7},       {0x100000004, BPF_ANY},  // a register key's upper half is not the key
};

TEST_F(JitHelperCalls, ArrayUpdatesInlineMatchHelper) {
  for (const std::uint32_t vs : {8u, 16u, 32u}) {
    for (const bool gap : {false, true}) {
      SCOPED_TRACE("value size " + std::to_string(vs) + (gap ? ", gap" : ""));
      const int fd = make_array(vs, 8);
      ASSERT_GE(fd, 0);
      const Builds b = check(update_prog(fd, vs / 8, kUpdates, gap), [](Options& o) { o.inline_map_updates = false; });
      const auto n = static_cast<int>(kUpdates.size());
      EXPECT_EQ(b.interp.updates, n);
      EXPECT_EQ(b.jit_off.updates, n);
      EXPECT_EQ(b.jit_on.updates, 0);  // all inline
      (void)rt_->close(fd);
    }
  }
}

TEST_F(JitHelperCalls, ArrayUpdatesNotInlinedKeepHelper) {
  // 12-byte values (a partial word) and 40-byte values (more than 4 words) call the helper
  for (const std::uint32_t vs : {12u, 40u}) {
    SCOPED_TRACE("value size " + std::to_string(vs));
    const int fd = make_array(vs, 8);
    ASSERT_GE(fd, 0);
    const Builds b = check(update_prog(fd, (vs + 7) / 8, kUpdates, false), [](Options& o) { o.lean_helper_calls = false; });
    EXPECT_EQ(b.jit_on.updates, static_cast<int>(kUpdates.size()));
    (void)rt_->close(fd);
  }
}

TEST_F(JitHelperCalls, SingleEntryArrayUpdateInline) {
  const int fd = make_array(8, 1);
  ASSERT_GE(fd, 0);
  const Builds b = check(update_prog(fd, 1, kUpdates, false), [](Options& o) { o.inline_map_updates = false; });
  EXPECT_EQ(b.jit_on.updates, 0);
}

// The value of each update's r0 is the kernel's (the helper's errno).
TEST_F(JitHelperCalls, ArrayUpdateErrnos) {
  const int fd = make_array(8, 8);
  ASSERT_GE(fd, 0);
  const std::vector<UpdateCase> one[] = {{{8, BPF_ANY}}, {{2, BPF_NOEXIST}}, {{2, 3}}, {{2, BPF_F_LOCK}}, {{2, BPF_EXIST}}};
  const std::int64_t want[] = {-E2BIG, -EEXIST, -EINVAL, -EINVAL, 0};
  for (std::size_t i = 0; i < std::size(one); ++i) {
    const Builds b = check(update_prog(fd, 1, one[i], false), [](Options& o) { o.inline_map_updates = false; });
    EXPECT_EQ(static_cast<std::int64_t>(b.jit_on.r.r0), want[i]) << i;
  }
}

// Forwarded keys: the listing of the inline update reads the key from the
// register (no load through rdx) when it was stored right before.
TEST_F(JitHelperCalls, ForwardedKeyListing) {
  const int fd = make_array(8, 8);
  ASSERT_GE(fd, 0);
  const std::vector<UpdateCase> reg_key = {{3, BPF_ANY}};
  const Builds on = check(update_prog(fd, 1, reg_key, false), [](Options& o) { o.forward_map_keys = false; });
  EXPECT_EQ(count(on.listing_on, "[rdx]"), 0) << on.listing_on;
  EXPECT_EQ(count(on.listing_off, "[rdx]"), 1) << on.listing_off;
  // a store to the key slot through another pointer in between: not forwarded
  Asm a;
  a.op(Op::MovImm, 6, 0, 0, 5).op(Op::StxW, 10, 6, -4);
  a.op(Op::MovReg, 9, 10).op(Op::StW, 9, 0, -4, 2);  // *(u32 *)(fp - 4) = 2 through r9
  a.op(Op::StDW, 10, 0, -16, 77);
  a.lddw(Op::LddwMapFd, 1, fd).op(Op::MovReg, 2, 10).op(Op::AddImm, 2, 0, 0, -4);
  a.op(Op::MovReg, 3, 10).op(Op::AddImm, 3, 0, 0, -16).op(Op::MovImm, 4, 0, 0, 0).call(BPF_FUNC_map_update_elem);
  a.op(Op::Exit);
  const Builds alias = check(a.raw(), [](Options& o) { o.forward_map_keys = false; });
  EXPECT_EQ(count(alias.listing_on, "[rdx]"), 1) << alias.listing_on;
}

// Lookups with forwarded keys: register keys in a loop, constant keys in and
// out of range; r0 sums what the lookups found.
TEST_F(JitHelperCalls, ForwardedLookupKeys) {
  const int fd = make_array(16, 8);
  ASSERT_GE(fd, 0);
  Asm a;
  a.op(Op::MovImm, 7, 0, 0, 0).op(Op::MovImm, 6, 0, 0, 11);
  a.label("loop");
  a.op(Op::SubImm, 6, 0, 0, 1).op(Op::StxW, 10, 6, -4);
  a.lddw(Op::LddwMapFd, 1, fd).op(Op::MovReg, 2, 10).op(Op::AddImm, 2, 0, 0, -4).call(BPF_FUNC_map_lookup_elem);
  a.jmp(Op::JeqImm, 0, 0, "miss").op(Op::LdxDW, 1, 0, 8).op(Op::AddReg, 7, 1).op(Op::StxDW, 0, 6, 0);
  a.label("miss").op(Op::MulImm, 7, 0, 0, 3);
  a.jmp(Op::JneImm, 6, 0, "loop");
  for (const std::int32_t k : {0, 7, 8, -1}) {
    a.op(Op::StW, 10, 0, -8, k).lddw(Op::LddwMapFd, 1, fd).op(Op::MovReg, 2, 10).op(Op::AddImm, 2, 0, 0, -8);
    a.call(BPF_FUNC_map_lookup_elem);
    a.jmp(Op::JeqImm, 0, 0, "m" + std::to_string(k)).op(Op::LdxDW, 1, 0, 0).op(Op::XorReg, 7, 1).op(Op::AddImm, 7, 0, 0, 1);
    a.label("m" + std::to_string(k)).op(Op::MulImm, 7, 0, 0, 5);
  }
  a.op(Op::MovReg, 0, 7).op(Op::Exit);
  const Builds b = check(a.raw(), [](Options& o) { o.forward_map_keys = false; });
  EXPECT_LT(count(b.listing_on, "[rdx]"), count(b.listing_off, "[rdx]"));
}

// Lookups with register keys and both null-test senses, keys in and out of
// range, a null test whose target is the next instruction.
TEST_F(JitHelperCalls, LookupRegisterKeys) {
  const int fd = make_array(24, 5);
  ASSERT_GE(fd, 0);
  Asm a;
  a.op(Op::MovImm, 7, 0, 0, 0).op(Op::MovImm, 6, 0, 0, 9);
  a.label("loop");
  a.op(Op::SubImm, 6, 0, 0, 1).op(Op::StxW, 10, 6, -4);
  a.lddw(Op::LddwMapFd, 1, fd).op(Op::MovReg, 2, 10).op(Op::AddImm, 2, 0, 0, -4).call(BPF_FUNC_map_lookup_elem);
  a.jmp(Op::JneImm, 0, 0, "hit").op(Op::AddImm, 7, 0, 0, 100).jmp(Op::Ja, 0, 0, "next");
  a.label("hit").op(Op::LdxDW, 1, 0, 16).op(Op::AddReg, 7, 1).op(Op::StxDW, 0, 6, 16);
  a.label("next");
  a.op(Op::StxW, 10, 6, -8).lddw(Op::LddwMapFd, 1, fd).op(Op::MovReg, 2, 10).op(Op::AddImm, 2, 0, 0, -8);
  a.call(BPF_FUNC_map_lookup_elem).jmp(Op::JeqImm, 0, 0, "after").label("after");  // target right after
  a.op(Op::MulImm, 7, 0, 0, 3);
  a.jmp(Op::JneImm, 6, 0, "loop");
  a.op(Op::MovReg, 0, 7).op(Op::Exit);
  const Builds b = check(a.raw(), [](Options& o) { o.forward_map_keys = false; });
  EXPECT_LT(count(b.listing_on, "[rdx]"), count(b.listing_off, "[rdx]"));
}

// Lean calls: ktime, prandom and the CPU id; the CPU id is asked 9 times
// and called once per run in the lean build.
TEST_F(JitHelperCalls, LeanCallsAndRunConstantCpu) {
  Asm a;
  a.op(Op::MovImm, 6, 0, 0, 0).op(Op::MovImm, 7, 0, 0, 0).op(Op::MovImm, 8, 0, 0, 0);
  for (int i = 0; i < 8; ++i) {
    a.call(BPF_FUNC_get_smp_processor_id);
    a.op(Op::AddReg, 6, 0);
    a.call(BPF_FUNC_ktime_get_ns).op(Op::JneImm, 0, 0, 1, 0).op(Op::AddImm, 7, 0, 0, 1000);  // never 0
    a.call(BPF_FUNC_get_prandom_u32).op(Op::RshImm, 0, 0, 0, 32).op(Op::AddReg, 7, 0);       // < 2^32
    a.op(Op::AddImm, 8, 0, 0, 6000);
  }
  a.call(BPF_FUNC_get_smp_processor_id);
  // r0 = (8 * cpu == r6) + r7 * 2 + r8 * 4 (r7 must stay 0, r8 = 8 * 6000)
  a.op(Op::MulImm, 0, 0, 0, 8).op(Op::MovImm, 1, 0, 0, 1);
  a.jmp(Op::JeqReg, 0, 0, "same", 6).op(Op::MovImm, 1, 0, 0, 0);
  a.label("same").op(Op::MovReg, 0, 1).op(Op::LshImm, 7, 0, 0, 1).op(Op::AddReg, 0, 7);
  a.op(Op::LshImm, 8, 0, 0, 2).op(Op::AddReg, 0, 8).op(Op::Exit);
  const Builds b = check(a.raw(), [](Options& o) { o.lean_helper_calls = false; });
  EXPECT_EQ(b.interp.r.r0, 1 + 8 * 6000 * 4);
  EXPECT_EQ(b.interp.cpu_calls, 9);
  EXPECT_EQ(b.jit_off.cpu_calls, 9);
  EXPECT_EQ(b.jit_on.cpu_calls, 1);
  // no signal test and no register saves around the lean calls
  EXPECT_EQ(count(b.listing_on, "or r10b"), 0) << b.listing_on;
  EXPECT_EQ(count(b.listing_off, "or r10b"), 2 * 25) << b.listing_off;  // two per call
  EXPECT_EQ(count(body(b.listing_on), "push"), 0) << b.listing_on;
}

// An unverified program (compiled directly, as an embedder may) reads r1-r5
// after helper calls: the lean call saves exactly the live ones.
TEST_F(JitHelperCalls, LeanCallsKeepLiveArguments) {
  Asm a;
  a.op(Op::MovImm, 1, 0, 0, 11).op(Op::MovImm, 2, 0, 0, 22).op(Op::MovImm, 3, 0, 0, 33);
  a.op(Op::MovImm, 4, 0, 0, 44).op(Op::MovImm, 5, 0, 0, 55).op(Op::MovImm, 6, 0, 0, 0);
  a.call(BPF_FUNC_ktime_get_ns).op(Op::AddReg, 6, 1).op(Op::AddReg, 6, 3).op(Op::AddReg, 6, 5);  // r1, r3, r5 live
  a.call(BPF_FUNC_get_prandom_u32).op(Op::AddReg, 6, 2);                                        // r2, r4 live
  a.call(BPF_FUNC_get_smp_processor_id).op(Op::AddReg, 6, 4);
  a.call(BPF_FUNC_get_smp_processor_id).op(Op::MovReg, 0, 6).op(Op::Exit);
  const auto insns = a.insns();
  auto ip = interp::Program::create(insns);
  ASSERT_TRUE(ip.ok());
  for (const bool lean : {true, false}) {
    Options o;
    o.helpers = &table_;
    o.lean_helper_calls = lean;
    auto jp = Program::compile(insns, o);
    ASSERT_TRUE(jp.ok());
    maps::CpuSlots::Guard guard(&rt_->cpu_slots());
    helpers::RunState st;
    st.cpu = &guard;
    abi::Env env;
    env.helpers = &table_;
    env.user = &st;
    const abi::RunResult ri = ip->run(env);
    const abi::RunResult rj = jp->run(env);
    EXPECT_EQ(ri.r0, 11u + 33 + 55 + 22 + 44);
    EXPECT_TRUE(rj == ri) << lean << ": " << rj.r0;
    const std::string l = jp->disassemble();
    // the calls read r1-r5 (liveness counts them as arguments): the first
    // three calls keep all five, the last keeps none
    EXPECT_EQ(count(body(l), "push"), lean ? 3 * 5 : 4 * 5) << l;
  }
}

}  // namespace
}  // namespace userbpf::jit::test
