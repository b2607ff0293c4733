// Unit tests of the spec tables and of the verifier API on programs built
// with isa::make (no assembler).
#include <gtest/gtest.h>
#include <cstdio>
#include <cstdlib>
#include <linux/bpf.h>

#include "spec/spec.hpp"
#include "verifier/verifier.hpp"

using namespace userbpf;
using isa::Op;

TEST(Spec, HelperTableMatchesKernelIds) {
  ASSERT_NE(spec::helper(BPF_FUNC_map_lookup_elem), nullptr);
  EXPECT_EQ(spec::helper(BPF_FUNC_map_lookup_elem)->name, "map_lookup_elem");
  EXPECT_EQ(spec::helper(BPF_FUNC_map_lookup_elem)->ret, spec::RetKind::MapValueOrNull);
  EXPECT_EQ(spec::helper(BPF_FUNC_map_update_elem)->args[2], spec::ArgKind::MapValue);
  EXPECT_EQ(spec::helper_name(BPF_FUNC_trace_printk), "trace_printk");
  EXPECT_EQ(spec::helper(100000), nullptr);
  EXPECT_EQ(spec::helper_id_limit(), static_cast<std::uint32_t>(__BPF_FUNC_MAX_ID));
}

TEST(Spec, ProgTypesHaveContexts) {
  const auto* xdp = spec::prog_type(BPF_PROG_TYPE_XDP);
  ASSERT_NE(xdp, nullptr);
  const auto* f = spec::ctx_field_at(xdp->ctx, offsetof(xdp_md, data_end));
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->yields, spec::CtxYield::PacketEnd);
  const auto* skb = spec::prog_type_by_name("socket_filter");
  ASSERT_NE(skb, nullptr);
  EXPECT_EQ(spec::ctx_field_at(skb->ctx, offsetof(__sk_buff, data)), nullptr);  // no packet access
  EXPECT_TRUE(spec::prog_type_allows_helper(*skb, BPF_FUNC_skb_load_bytes));
  EXPECT_FALSE(spec::prog_type_allows_helper(*skb, BPF_FUNC_xdp_adjust_head));
  EXPECT_TRUE(spec::prog_type_by_name("cgroup_skb")->ret.checked);
}

TEST(Verifier, AcceptsTrivialAndReportsStats) {
  const std::vector<isa::Insn> p = {isa::make(Op::MovImm, 0, 0, 0, 0), isa::make(Op::Exit)};
  verifier::Config cfg;
  cfg.log_level = 1;
  const auto v = verifier::verify(p, cfg);
  EXPECT_TRUE(v.accepted) << v.log;
  EXPECT_EQ(v.stats.processed, 2u);
  EXPECT_NE(v.log.find("processed 2 insns (limit 1000000)"), std::string::npos) << v.log;
}

TEST(Verifier, RejectsUninitR0) {
  const std::vector<isa::Insn> p = {isa::make(Op::Exit)};
  const auto v = verifier::verify(p, verifier::Config{});
  EXPECT_FALSE(v.accepted);
  EXPECT_EQ(v.err, EACCES);
  EXPECT_EQ(v.message, "R0 !read_ok");
}

TEST(Verifier, ComplexityLimit) {
  // r0 = 0; loop: r0 += 1; if r0 != -1 goto loop (never proven to end): limit reached
  const std::vector<isa::Insn> p = {isa::make(Op::MovImm, 0, 0, 0, 0), isa::make(Op::AddImm, 0, 0, 0, 1),
                                    isa::make(Op::JneImm, 0, 0, -2, -1), isa::make(Op::Exit)};
  verifier::Config cfg;
  cfg.insn_limit = 1000;
  const auto v = verifier::verify(p, cfg);
  EXPECT_FALSE(v.accepted);
  EXPECT_EQ(v.err, E2BIG) << v.log;
  EXPECT_NE(v.message.find("BPF program is too large. Processed 1001 insn"), std::string::npos) << v.message;
}

TEST(Verifier, RawDecodeErrors) {
  isa::RawInsn bad{};
  bad.opcode = 0xff;
  const std::vector<isa::RawInsn> raw = {bad};
  const auto v = verifier::verify_raw(raw, verifier::Config{});
  EXPECT_FALSE(v.accepted);
  EXPECT_EQ(v.err, EINVAL);
  EXPECT_NE(v.message.find("unknown opcode ff"), std::string::npos);
}

TEST(Verifier, ReportsCtxFacts) {
  const std::vector<isa::Insn> p = {isa::make(Op::LdxW, 0, 1, 0, 0), isa::make(Op::Exit)};
  const auto v = verifier::verify(p, verifier::Config{});
  ASSERT_TRUE(v.accepted) << v.log;
  std::size_t ctx = 0;
  for (const auto& f : v.facts) {
    if (f.kind != verifier::FactKind::CtxLoad) continue;
    ++ctx;
    EXPECT_EQ(f.insn, 0u);
  }
  EXPECT_EQ(ctx, 1u);
}

namespace {
std::vector<std::size_t> safe_insns(const verifier::Verdict& v) {
  std::vector<std::size_t> out;
  for (const auto& f : v.facts)
    if (f.kind == verifier::FactKind::SafeAccess) out.push_back(f.insn);
  return out;
}
}  // namespace

// SafeAccess: every load/store/atomic reached and checked on all paths; not
// the ones on a branch no path takes, nor LD_ABS (checked at run time).
TEST(Verifier, ReportsSafeAccessFacts) {
  const std::vector<isa::Insn> p = {
      isa::make(Op::MovImm, 0, 0, 0, 7),        // 0: r0 = 7
      isa::make(Op::StxDW, 10, 0, -8, 0),       // 1: *(u64 *)(r10 - 8) = r0
      isa::make(Op::LdxDW, 2, 10, -8, 0),       // 2: r2 = *(u64 *)(r10 - 8)
      isa::make(Op::JeqImm, 0, 0, 1, 7),        // 3: if r0 == 7 goto +1 (always)
      isa::make(Op::LdxDW, 3, 10, -16, 0),      // 4: never reached
      isa::make(Op::MovReg, 6, 1, 0, 0),        // 5: r6 = r1
      isa::make(Op::LdAbsB, 0, 0, 0, 0),        // 6: r0 = LD_ABS byte 0
      isa::make(Op::MovImm, 0, 0, 0, 0),        // 7
      isa::make(Op::Exit),                      // 8
  };
  const auto v = verifier::verify(p, verifier::Config{});
  ASSERT_TRUE(v.accepted) << v.log;
  EXPECT_EQ(safe_insns(v), (std::vector<std::size_t>{1, 2}));
  const auto bad = verifier::verify(std::vector<isa::Insn>{isa::make(Op::LdxDW, 0, 10, 0, 0), isa::make(Op::Exit)},
                                    verifier::Config{});
  ASSERT_FALSE(bad.accepted);
  EXPECT_TRUE(bad.facts.empty());
}

TEST(Verifier, ReportsCallGraphAndStackDepth) {
  const std::vector<isa::Insn> p = {
      isa::make(Op::StxDW, 10, 1, -8, 0),        // 0: main uses 8 bytes
      isa::make(Op::CallLocal, 0, 1, 0, 2),      // 1: call 4
      isa::make(Op::MovImm, 0, 0, 0, 0),         // 2
      isa::make(Op::Exit),                       // 3
      isa::make(Op::MovImm, 1, 0, 0, 1),         // 4: sub uses 24 bytes
      isa::make(Op::StxDW, 10, 1, -24, 0),       // 5
      isa::make(Op::MovImm, 0, 0, 0, 0),         // 6
      isa::make(Op::Exit),                       // 7
  };
  const auto v = verifier::verify(p, verifier::Config{});
  ASSERT_TRUE(v.accepted) << v.log;
  EXPECT_EQ(v.subprogs, (std::vector<std::size_t>{0, 4}));
  EXPECT_EQ(v.stack_depth, (std::vector<std::uint32_t>{8, 24}));
  ASSERT_EQ(v.callees.size(), 2u);
  EXPECT_EQ(v.callees[0], (std::vector<std::size_t>{1}));
  EXPECT_TRUE(v.callees[1].empty());
}

// Robustness: random programs built from the opcode table (operand fields
// only, so that they decode) never crash or hang the verifier, and every
// verdict is consistent.
TEST(Verifier, RandomProgramsAreHandled) {
  std::uint64_t seed = 0x9e3779b97f4a7c15ULL;
  auto next = [&seed]() {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
  };
  std::vector<isa::Op> ops;
  for (const auto& row : isa::kOps) {
    if (!row.in_kernel) continue;
    if (row.form == isa::Form::CallLocal || row.form == isa::Form::CallKfunc || row.form == isa::Form::Callx ||
        row.form == isa::Form::Gotol)
      continue;
    if (row.form == isa::Form::Lddw && row.op != Op::Lddw && row.op != Op::LddwMapFd) continue;
    ops.push_back(row.op);
  }
  verifier::Config cfg;
  cfg.insn_limit = 20000;
  cfg.maps.push_back(verifier::MapDesc{BPF_MAP_TYPE_ARRAY, 4, 16, 1, -1, "a"});
  int accepted = 0, rejected = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    cfg.prog_type = (iter % 3 == 0) ? BPF_PROG_TYPE_XDP : (iter % 3 == 1) ? BPF_PROG_TYPE_SOCKET_FILTER
                                                                         : BPF_PROG_TYPE_KPROBE;
    cfg.privileged = iter % 5 != 0;
    cfg.log_level = static_cast<unsigned>(iter % 3);  // exercise the log printers too
    std::vector<isa::Insn> p;
    for (std::uint8_t r : {0, 2, 3, 4, 5}) p.push_back(isa::make(Op::MovImm, r, 0, 0, r));
    const std::size_t n = 1 + next() % 10;
    for (std::size_t i = 0; i < n; ++i) {
      const isa::Op op = ops[next() % ops.size()];
      const auto f = isa::info(op).form;
      auto dst = static_cast<std::uint8_t>(next() % 6);
      auto src = static_cast<std::uint8_t>(next() % 11);
      auto off = static_cast<std::int16_t>(-8 * static_cast<int>(next() % 3));
      std::int32_t imm = static_cast<std::int32_t>(next() % 16);
      if (isa::is_memory(f) && next() % 2 == 0) {
        if (f == isa::Form::Ldx) src = 10;
        else dst = 10;
        off = static_cast<std::int16_t>(-8 * static_cast<int>(1 + next() % 4));
      }
      if (isa::is_jump(f)) off = static_cast<std::int16_t>(next() % 3);
      if (f == isa::Form::Call) imm = static_cast<std::int32_t>(next() % 10);
      const auto fields = isa::operand_fields(f);
      if (!(fields & isa::kFieldDst)) dst = 0;
      if (!(fields & isa::kFieldSrc)) src = 0;
      if (!(fields & isa::kFieldOff)) off = 0;
      if (!(fields & isa::kFieldImm)) imm = 0;
      if (f == isa::Form::Lddw) {
        p.push_back(isa::make(op, dst, 0, 0, 0, 0));
        isa::Insn tail;
        tail.op = Op::LddwTail;
        p.push_back(tail);
        continue;
      }
      p.push_back(isa::make(op, dst, src, off, imm));
    }
    p.push_back(isa::make(Op::Exit));
    // keep jumps inside the program, not into an lddw tail, and `goto` reachable-safe
    for (std::size_t i = 0; i < p.size(); ++i) {
      if (p[i].op == Op::LddwTail || !isa::is_jump(p[i].info().form)) continue;
      if (p[i].op == Op::Ja) { p[i].off = 0; continue; }
      const auto max_off = static_cast<std::int16_t>(p.size() - i - 2);
      if (p[i].off > max_off) p[i].off = max_off;
      const std::size_t t = i + 1 + static_cast<std::size_t>(p[i].off);
      if (p[t].op == Op::LddwTail) p[i].off = static_cast<std::int16_t>(p[i].off - 1);
    }
    const auto v = verifier::verify(p, cfg);
    if (v.accepted) {
      EXPECT_EQ(v.err, 0);
      ++accepted;
    } else {
      EXPECT_NE(v.err, 0);
      EXPECT_FALSE(v.message.empty());
      if (std::getenv("RANDOM_VERBOSE")) std::printf("%s\n", v.message.c_str());
      ++rejected;
    }
  }
  EXPECT_GT(accepted, 100) << "rejected " << rejected;
  EXPECT_GT(rejected, 100) << "accepted " << accepted;
}

// Global functions (BTF linkage global): the caller checks the arguments
// against the signature and sees an unknown scalar; the body is verified on
// its own from the signature, only when some verified code calls it.
namespace {
verifier::Config with_global(std::size_t insn, std::vector<verifier::FuncArg::Kind> args) {
  verifier::Config cfg;
  cfg.log_level = 1;
  verifier::FuncSig f;
  f.insn = insn;
  f.name = "f";
  f.global = true;
  for (auto k : args) {
    verifier::FuncArg a;
    a.kind = k;
    a.size = 8;
    f.args.push_back(a);
  }
  cfg.funcs.push_back(f);
  return cfg;
}
}  // namespace

TEST(Verifier, GlobalFunctionArgumentsChecked) {
  using K = verifier::FuncArg::Kind;
  const std::vector<isa::Insn> p = {
      isa::make(Op::MovReg, 1, 10, 0, 0),    // 0: r1 = r10 (a pointer where a scalar is expected)
      isa::make(Op::CallLocal, 0, 1, 0, 2),  // 1: call f
      isa::make(Op::MovImm, 0, 0, 0, 0),     // 2
      isa::make(Op::Exit),                   // 3
      isa::make(Op::MovReg, 0, 1, 0, 0),     // 4: f: return its argument
      isa::make(Op::Exit),                   // 5
  };
  const auto v = verifier::verify(p, with_global(4, {K::Scalar}));
  ASSERT_FALSE(v.accepted);
  EXPECT_EQ(v.err, EINVAL);
  EXPECT_NE(v.log.find("R1 is not a scalar\nCaller passes invalid args into func#1 ('f')"), std::string::npos) << v.log;
  // as a static function the same program is fine
  verifier::Config st = with_global(4, {K::Scalar});
  st.funcs[0].global = false;
  EXPECT_TRUE(verifier::verify(p, st).accepted);
}

TEST(Verifier, GlobalFunctionVerifiedOnItsOwn) {
  using K = verifier::FuncArg::Kind;
  const std::vector<isa::Insn> p = {
      isa::make(Op::MovImm, 1, 0, 0, 3),     // 0
      isa::make(Op::CallLocal, 0, 1, 0, 2),  // 1: call f(3): r0 = unknown scalar
      isa::make(Op::MovImm, 0, 0, 0, 0),     // 2
      isa::make(Op::Exit),                   // 3
      isa::make(Op::MovReg, 0, 10, 0, 0),    // 4: f returns a stack pointer
      isa::make(Op::Exit),                   // 5
  };
  const auto v = verifier::verify(p, with_global(4, {K::Scalar}));
  ASSERT_FALSE(v.accepted);
  EXPECT_NE(v.log.find("Func#1 ('f') is global and assumed valid."), std::string::npos) << v.log;
  EXPECT_NE(v.log.find("Validating f() func#1..."), std::string::npos) << v.log;
  EXPECT_NE(v.message.find("At subprogram exit the register R0 is not a scalar value (fp)"), std::string::npos)
      << v.message;
  // a nullable memory argument must be checked before the body reads it
  const std::vector<isa::Insn> q = {
      isa::make(Op::MovImm, 1, 0, 0, 0),     // 0: f(NULL)
      isa::make(Op::CallLocal, 0, 1, 0, 2),  // 1
      isa::make(Op::MovImm, 0, 0, 0, 0),     // 2
      isa::make(Op::Exit),                   // 3
      isa::make(Op::LdxDW, 0, 1, 0, 0),      // 4: r0 = *(u64 *)(r1 + 0) without a null check
      isa::make(Op::Exit),                   // 5
  };
  const auto w = verifier::verify(q, with_global(4, {K::Mem}));
  ASSERT_FALSE(w.accepted);
  EXPECT_EQ(w.message, "R1 invalid mem access 'mem_or_null'");
}
