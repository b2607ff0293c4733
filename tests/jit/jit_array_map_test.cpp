// Inline array-map lookups (jit::Options::map_lookups): a `call
// map_lookup_elem` whose r1 is a listed map becomes inline code in the
// direct-helper variant. Every case runs in the interpreter (which calls the
// helper) and in the JIT with and without the table; results must agree,
// and a counter in the test's helper shows whether the JIT inlined (no
// helper call) or called it.
#include <linux/bpf.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "interp/interp.hpp"
#include "jit/jit.hpp"
#include "jit_test_util.hpp"

namespace userbpf::jit::test {
namespace {

// A stand-in array map: the helper below is its lookup, with the runtime's
// semantics (u32 key, exact bound, element i at values + i * stride).
struct FakeArray {
  std::vector<u8> storage;
  u64 stride = 8;
  u32 max_entries = 0;
  u64 values() const { return reinterpret_cast<u64>(storage.data()); }
};

int g_lookups = 0;  // helper calls (the test runs on one thread)

u64 lookup(abi::Env&, u64 r1, u64 r2, u64, u64, u64) {
  ++g_lookups;
  clobber_caller_saved();
  const auto* m = reinterpret_cast<const FakeArray*>(r1);
  u32 i;
  std::memcpy(&i, reinterpret_cast<const void*>(r2), sizeof i);
  return i < m->max_entries ? m->values() + u64{i} * m->stride : 0;
}

FakeArray make_array(u32 entries, u64 stride) {
  FakeArray a;
  a.stride = stride;
  a.max_entries = entries;
  a.storage.resize(static_cast<std::size_t>(entries) * stride + 8);
  for (std::size_t k = 0; k < a.storage.size(); ++k) a.storage[k] = static_cast<u8>(k * 37 + 11);
  return a;
}

// r0 = result of lookup(key = w1) XOR the u32 at the value (or ~0 when
// null), so that both the pointer and the memory behind it are compared.
// `gap`: the lddw of r1 is not adjacent to the call (other instructions and
// a store in between); `via_r6`: the map address lives in r6, loaded before
// a loop head, and reaches r1 by a move in another block.
std::vector<Insn> lookup_prog(u64 map, bool gap, bool via_r6) {
  Prog p;
  p(Op::StxW, 10, 1, -4);
  if (via_r6) {
    p.lddw(6, map);
    p.mov(7, 2);  // two iterations: the call is in a loop body (a jump target)
    p.mov(8, 0);
    // loop: r1 = r6; r2 = r10 - 4; call; r8 ^= result; if --r7 != 0 goto loop
    p(Op::MovReg, 1, 6);
  } else {
    p.lddw(1, map);
  }
  if (gap) p(Op::StDW, 10, 0, -16, 5).mov(3, 7)(Op::AddImm, 3, 0, 0, 1);
  p(Op::MovReg, 2, 10)(Op::AddImm, 2, 0, 0, -4);
  p(Op::Call, 0, 0, 0, BPF_FUNC_map_lookup_elem);
  p(Op::JeqImm, 0, 0, 3, 0);
  p(Op::LdxW, 3, 0, 0)(Op::XorReg, 0, 3);
  p(Op::Ja, 0, 0, 1);
  p.mov(0, -1);
  if (via_r6) {
    constexpr std::int16_t loop_start = 5;  // the r1 = r6 move (lddw has two slots)
    p(Op::XorReg, 8, 0)(Op::SubImm, 7, 0, 0, 1);
    const auto here = static_cast<std::int16_t>(p.v.size());
    p(Op::JneImm, 7, 0, static_cast<std::int16_t>(loop_start - here - 1), 0);
    p(Op::MovReg, 0, 8);
  }
  p.exit();
  return p.v;
}

struct Runs {
  abi::RunResult interp, jit_inline, jit_plain;
  int inline_calls = 0;
};

Runs run_three(const std::vector<Insn>& insns, const FakeArray& a, u64 key) {
  abi::HelperTable helpers;
  helpers.set(BPF_FUNC_map_lookup_elem, "map_lookup_elem", &lookup);
  Runs r;
  const std::vector<u64> args = {key};
  {
    abi::Env env;
    env.helpers = &helpers;
    auto p = interp::Program::create(insns);
    EXPECT_TRUE(static_cast<bool>(p));
    if (p) r.interp = p->run(env, args);
  }
  Options o;
  o.helpers = &helpers;
  o.map_lookups.push_back(Options::MapLookup{reinterpret_cast<u64>(&a), a.values(), a.stride, a.max_entries, 0});
  {
    abi::Env env;
    env.helpers = &helpers;
    const Program p = compile(insns, o);
    g_lookups = 0;
    r.jit_inline = p.run(env, args);
    r.inline_calls = g_lookups;
  }
  {
    Options plain = o;
    plain.map_lookups.clear();
    abi::Env env;
    env.helpers = &helpers;
    r.jit_plain = compile(insns, plain).run(env, args);
  }
  return r;
}

TEST(JitArrayMap, InlineLookupMatchesHelper) {
  for (const u64 stride : {u64{8}, u64{16}, u64{24}, u64{4}, u64{64}, u64{4104}}) {
    for (const u32 entries : {1u, 3u, 64u}) {
      const FakeArray a = make_array(entries, stride);
      for (const bool gap : {false, true}) {
        for (const bool via_r6 : {false, true}) {
          const std::vector<Insn> prog = lookup_prog(reinterpret_cast<u64>(&a), gap, via_r6);
          for (const u64 key : {u64{0}, u64{1}, u64{entries - 1}, u64{entries}, u64{entries + 1}, u64{0x7fffffff},
                                u64{0x80000000}, u64{0xffffffff}, u64{0x100000000} /* w1 = 0 */}) {
            const Runs r = run_three(prog, a, key);
            const std::string what = "stride " + std::to_string(stride) + " entries " + std::to_string(entries) +
                                     " key " + std::to_string(key) + (gap ? " gap" : "") + (via_r6 ? " r6" : "");
            EXPECT_TRUE(same(r.jit_inline, r.interp)) << what << ": " << describe(r.jit_inline) << " vs "
                                                      << describe(r.interp);
            EXPECT_TRUE(same(r.jit_plain, r.interp)) << what;
            EXPECT_EQ(r.inline_calls, 0) << what << ": the lookup was not inlined";
          }
        }
      }
    }
  }
}

TEST(JitArrayMap, InRangeAndOutOfRangeValues) {
  const FakeArray a = make_array(4, 16);
  const std::vector<Insn> prog = lookup_prog(reinterpret_cast<u64>(&a), false, false);
  u32 v;
  std::memcpy(&v, a.storage.data() + 3 * 16, sizeof v);
  const u64 expect = (a.values() + 3 * 16) ^ v;
  EXPECT_EQ(run_three(prog, a, 3).jit_inline.r0, expect);
  EXPECT_EQ(run_three(prog, a, 4).jit_inline.r0, ~u64{0});
}

// Cases the JIT must leave to the helper: r1 not provably the map.
TEST(JitArrayMap, UnknownMapCallsHelper) {
  const FakeArray a = make_array(8, 8);
  const FakeArray other = make_array(8, 8);
  const u64 map = reinterpret_cast<u64>(&a);
  // (1) r1 = a map the table does not list.
  const std::vector<Insn> unlisted = lookup_prog(reinterpret_cast<u64>(&other), false, false);
  // (2) r1's lddw is in another block (the call is a jump target).
  Prog p2;
  p2(Op::StxW, 10, 1, -4).lddw(1, map)(Op::MovReg, 2, 10)(Op::AddImm, 2, 0, 0, -4);
  p2(Op::JeqImm, 2, 0, 0, 0);  // falls through to the call: the call is a target
  p2(Op::Call, 0, 0, 0, BPF_FUNC_map_lookup_elem).exit();
  // (3) r6 written twice with different values.
  Prog p3;
  p3(Op::StxW, 10, 1, -4).lddw(6, map)(Op::JeqImm, 1, 0, 2, 7).lddw(6, reinterpret_cast<u64>(&other));
  p3(Op::MovReg, 1, 6)(Op::MovReg, 2, 10)(Op::AddImm, 2, 0, 0, -4);
  p3(Op::Call, 0, 0, 0, BPF_FUNC_map_lookup_elem).exit();
  for (const std::vector<Insn>* prog : {&unlisted, static_cast<const std::vector<Insn>*>(&p2.v), static_cast<const std::vector<Insn>*>(&p3.v)}) {
    for (const u64 key : {u64{1}, u64{7}, u64{8}}) {
      const Runs r = run_three(*prog, a, key);
      EXPECT_TRUE(same(r.jit_inline, r.interp)) << describe(r.jit_inline) << " vs " << describe(r.interp);
      EXPECT_EQ(r.inline_calls, 1) << "a lookup whose map is not known must call the helper";
    }
  }
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The listing shows the inline sequence instead of a call.
TEST(JitArrayMap, ListingHasNoCall) {
  const FakeArray a = make_array(16, 8);
  abi::HelperTable helpers;
  helpers.set(BPF_FUNC_map_lookup_elem, "map_lookup_elem", &lookup);
  Options o;
  o.helpers = &helpers;
  o.map_lookups.push_back(Options::MapLookup{reinterpret_cast<u64>(&a), a.values(), a.stride, a.max_entries, 0});
  const std::vector<Insn> prog = lookup_prog(reinterpret_cast<u64>(&a), true, false);
  const std::string text = compile(prog, o).disassemble();
  Options plain = o;
  plain.map_lookups.clear();
  const std::string plain_text = compile(prog, plain).disassemble();
  EXPECT_EQ(count(text, "call"), count(plain_text, "call") - 1) << text;
  EXPECT_NE(text.find("cmp eax, 0x10"), std::string::npos) << text;
  // Checked and blinded variants call the helper.
  for (const bool checked : {true, false}) {
    Options other = o;
    other.checked = checked;
    other.blinding = !checked;
    EXPECT_EQ(count(compile(prog, other).disassemble(), "cmp eax, 0x10"), 0) << (checked ? "checked" : "blinded");
  }
}

}  // namespace
}  // namespace userbpf::jit::test
