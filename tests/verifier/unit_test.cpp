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
  ASSERT_EQ(v.facts.size(), 1u);
  EXPECT_EQ(v.facts[0].kind, verifier::FactKind::CtxLoad);
  EXPECT_EQ(v.facts[0].insn, 0u);
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
