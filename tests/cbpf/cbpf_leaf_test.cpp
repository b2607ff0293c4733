// The JIT's direct entry (jit::Program::leaf) against Program::run, and the
// classic Filter's direct path against its Env path:
//   - every instruction-semantics data file (tests/data/insn) whose program
//     is eligible: leaf() gives the file's r0 and memory, as run() does;
//   - random eligible programs (every ALU, byte-swap, sign-extension and
//     jump row of the opcode table, stack stores and loads, lddw): identical
//     r0 from leaf() and run();
//   - eligibility: programs with helper calls, bpf-to-bpf calls, LD_ABS /
//     LD_IND, may_goto, counting or checked variants get no leaf;
//   - classic filters from libpcap expressions: the direct path
//     (Filter::run_frame) and the Env path keep the same packets, and the
//     typical expressions are eligible.
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../data/case_file.hpp"
#include "asm/asm.hpp"
#include "cbpf/exec.hpp"
#include "isa/builder.hpp"
#include "jit/jit.hpp"
#include "packets.hpp"

namespace userbpf {
namespace {

using isa::Form;
using isa::Insn;
using isa::Op;

abi::RunResult run_with_env(const jit::Program& p, std::vector<std::uint8_t>& mem) {
  abi::Env env;
  const auto base = reinterpret_cast<std::uint64_t>(mem.data());
  env.regions.push_back(abi::Region{base, mem.size(), true, abi::RegionKind::Memory});
  const std::uint64_t args[2] = {base, mem.size()};
  return p.run(env, args);
}

TEST(Leaf, DataFilesGiveTheSameResultAsRun) {
  const std::string dir = std::string(USERBPF_SOURCE_DIR) + "/tests/data/insn";
  std::size_t eligible = 0, files = 0;
  for (const std::string& path : datatest::list_cases(dir)) {
    auto c = datatest::load_case(path);
    ASSERT_TRUE(c.ok()) << c.error().to_string();
    ++files;
    if (c->checked || c->budget != 0 || c->error) continue;
    auto prog = assembly::assemble(c->asm_text, assembly::Dialect::Auto);
    if (!prog.ok()) continue;
    jit::Options jo;
    jo.kernel_structure = c->kernel_structure;
    auto p = jit::Program::compile(*prog, jo);
    ASSERT_TRUE(p.ok()) << path << ": " << p.error().to_string();
    const jit::Program::Leaf leaf = p->leaf();
    if (!leaf) continue;
    std::vector<std::uint8_t> run_mem = c->mem, leaf_mem = c->mem;
    const abi::RunResult r = run_with_env(*p, run_mem);
    if (!r.ok()) continue;  // the contract covers runs that end without a fault
    ++eligible;
    const std::uint64_t r0 =
        leaf(reinterpret_cast<std::uint64_t>(leaf_mem.data()), static_cast<std::uint64_t>(leaf_mem.size()));
    if (c->result) {
      EXPECT_EQ(r0, *c->result) << path;
    }
    EXPECT_EQ(r0, r.r0) << path;
    EXPECT_EQ(leaf_mem, run_mem) << path;
    if (c->mem_after) {
      EXPECT_EQ(leaf_mem, *c->mem_after) << path;
    }
  }
  EXPECT_GE(files, 250u);
  EXPECT_GE(eligible, 200u) << "most data files are plain ALU / jump / memory programs";
}

// Random programs that read no uninitialised register or stack slot: all
// registers r0-r9 and 8 stack slots are set first, then random ALU, byte
// swap, movsx, stack and forward-jump instructions; r0 is returned.
// regs = 10: r0-r9 (the stub path); regs = 6 and stack = false: only r0-r5
// (a bare leaf: the body called as a plain function).
std::vector<Insn> random_program(std::mt19937_64& rng, unsigned regs = 10, bool stack = true) {
  std::vector<Op> alu, jumps;
  for (const isa::OpInfo& row : isa::kOps) {
    switch (row.form) {
      case Form::AluK: case Form::AluX: case Form::Neg: case Form::End: case Form::MovSx:
        alu.push_back(row.op);
        break;
      case Form::JmpK: case Form::JmpX:
        jumps.push_back(row.op);
        break;
      case Form::Ja: case Form::Gotol: case Form::Call: case Form::CallLocal: case Form::CallKfunc:
      case Form::Callx: case Form::Exit: case Form::MayGoto: case Form::Lddw: case Form::Ldx: case Form::St:
      case Form::Stx: case Form::LdAbs: case Form::LdInd: case Form::Atomic: case Form::LoadAcq:
      case Form::StoreRel:
        break;
    }
  }
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  auto reg = [&] { return static_cast<std::uint8_t>(pick(regs)); };
  auto imm = [&]() -> std::int32_t {
    static const std::int32_t kEdge[] = {0, 1, -1, 31, 32, 63, 64, 0x7fffffff, INT32_MIN, 0xff, 0xffff};
    return pick(3) == 0 ? kEdge[pick(std::size(kEdge))] : static_cast<std::int32_t>(rng());
  };
  isa::Builder b;
  for (std::uint8_t r = 0; r < regs; ++r) b.lddw(r, rng());
  if (stack)
    for (int s = 1; s <= 8; ++s) b(Op::StxDW, 10, reg(), static_cast<std::int16_t>(-8 * s));
  const std::size_t body = 20 + pick(40);
  const std::size_t end = b.size() + body;  // index of the final exit
  while (b.size() < end) {
    const std::size_t k = pick(10);
    if (k < 6 || (!stack && k < 8)) {
      const Op op = alu[pick(alu.size())];
      b(op, reg(), reg(), 0, imm());
    } else if (k == 6) {
      b(Op::StxDW, 10, reg(), static_cast<std::int16_t>(-8 * (1 + static_cast<int>(pick(8)))));
    } else if (k == 7) {
      static const Op kLoads[] = {Op::LdxB, Op::LdxH, Op::LdxW, Op::LdxDW};
      b(kLoads[pick(4)], reg(), 10, static_cast<std::int16_t>(-8 * (1 + static_cast<int>(pick(8)))));
    } else {
      const Op op = jumps[pick(jumps.size())];
      const std::size_t room = end - b.size();  // forward, at most to the exit
      b(op, reg(), reg(), static_cast<std::int16_t>(pick(room)), imm());
    }
  }
  b.exit();
  // Operands by form (the rest reserved = 0), shift counts in range, and the
  // selector fields make() filled (a random imm must not replace an End
  // width or a movsx / sdiv selector).
  for (Insn& in : b.v) {
    if (in.op == Op::LddwTail) continue;
    const isa::OpInfo& row = in.info();
    const Form f = row.form;
    if (f == Form::AluK || f == Form::JmpK || f == Form::Neg || f == Form::End) in.src = 0;
    if (f == Form::AluX || f == Form::JmpX || f == Form::MovSx || f == Form::Neg) in.imm = 0;
    if (row.form == Form::AluK || row.form == Form::AluX || row.form == Form::Neg || row.form == Form::End) in.off = 0;
    const unsigned code = isa::op_code(in.op);
    if (row.form == Form::AluK && (code == 6 || code == 7 || code == 0xc))  // lsh, rsh, arsh
      in.imm &= isa::is_64(in.op) ? 63 : 31;
    if (row.sel == isa::Sel::Imm) in.imm = row.sel_value;
    if (row.sel == isa::Sel::Off) in.off = static_cast<std::int16_t>(row.sel_value);
    if (row.sel == isa::Sel::Src) in.src = static_cast<std::uint8_t>(row.sel_value);
  }
  return b.v;
}

TEST(Leaf, RandomProgramsGiveTheSameR0AsRun) {
  std::mt19937_64 rng(7);
  std::size_t compared = 0;
  for (int i = 0; i < 3000; ++i) {
    const std::vector<Insn> prog = random_program(rng);
    auto p = jit::Program::compile(prog);
    ASSERT_TRUE(p.ok()) << p.error().to_string();
    const jit::Program::Leaf leaf = p->leaf();
    ASSERT_TRUE(leaf) << "program " << i << " is eligible";
    std::vector<std::uint8_t> mem(16);
    const abi::RunResult r = run_with_env(*p, mem);
    ASSERT_TRUE(r.ok()) << "program " << i << ": " << (r.error ? r.error->to_string() : "");
    const std::uint64_t args[2] = {reinterpret_cast<std::uint64_t>(mem.data()), mem.size()};
    ASSERT_EQ(leaf(args[0], args[1]), r.r0) << "program " << i;
    ++compared;
  }
  EXPECT_EQ(compared, 3000u);
}

TEST(Leaf, BareProgramsGiveTheSameR0AsRun) {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 2000; ++i) {
    const std::vector<Insn> prog = random_program(rng, 6, false);
    auto p = jit::Program::compile(prog);
    ASSERT_TRUE(p.ok()) << p.error().to_string();
    const jit::Program::Leaf leaf = p->leaf();
    ASSERT_TRUE(leaf) << "program " << i;
    EXPECT_EQ(leaf.body, nullptr) << "program " << i << " uses only r0-r5: called bare";
    std::vector<std::uint8_t> mem(16);
    const abi::RunResult r = run_with_env(*p, mem);
    ASSERT_TRUE(r.ok()) << "program " << i;
    ASSERT_EQ(leaf(reinterpret_cast<std::uint64_t>(mem.data()), mem.size()), r.r0) << "program " << i;
  }
}

TEST(Leaf, BareOnlyWithoutHighRegistersStackOrUnwrittenR0) {
  auto body_of = [](const std::vector<Insn>& v) {
    auto p = jit::Program::compile(v);
    EXPECT_TRUE(p.ok()) << p.error().to_string();
    const auto l = p.ok() ? p->leaf() : jit::Program::Leaf{};
    EXPECT_TRUE(l);
    return l.body;
  };
  const Insn exit = isa::make(Op::Exit);
  EXPECT_EQ(body_of({isa::make(Op::MovReg, 0, 1), isa::make(Op::AddReg, 0, 2), exit}), nullptr);
  // r0 read before it is written (on one path): the stub gives r0 = 0
  EXPECT_NE(body_of({isa::make(Op::JeqImm, 1, 0, 1, 0), isa::make(Op::MovImm, 0, 0, 0, 1), exit}), nullptr);
  EXPECT_NE(body_of({isa::make(Op::AddImm, 0, 0, 0, 1), exit}), nullptr);
  EXPECT_NE(body_of({isa::make(Op::MovReg, 6, 1), isa::make(Op::MovReg, 0, 6), exit}), nullptr);    // r6
  EXPECT_NE(body_of({isa::make(Op::StxDW, 10, 1, -8), isa::make(Op::LdxDW, 0, 10, -8), exit}), nullptr);  // stack
  // written on both paths: bare
  EXPECT_EQ(body_of({isa::make(Op::MovImm, 0, 0, 0, 2), isa::make(Op::JeqImm, 1, 0, 1, 0),
                     isa::make(Op::MovImm, 0, 0, 0, 1), exit}),
            nullptr);
  // the value is the same either way
  auto p = jit::Program::compile(
      std::vector<Insn>{isa::make(Op::JeqImm, 1, 0, 1, 0), isa::make(Op::MovImm, 0, 0, 0, 1), exit});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->leaf()(0), 0u);
  EXPECT_EQ(p->leaf()(5), 1u);
}

TEST(Leaf, ArgumentsAndFrame) {
  // r0 = r1 + 2*r2 + 3*r3 through the stack: the arguments arrive, the frame is usable.
  isa::Builder b;
  b(Op::StxDW, 10, 1, -8)(Op::StxDW, 10, 2, -512)(Op::StxDW, 10, 3, -256);
  b(Op::LdxDW, 0, 10, -8)(Op::LdxDW, 4, 10, -512)(Op::LshImm, 4, 0, 0, 1)(Op::AddReg, 0, 4);
  b(Op::LdxDW, 4, 10, -256)(Op::MulImm, 4, 0, 0, 3)(Op::AddReg, 0, 4);
  b(Op::AddReg, 0, 6)(Op::AddReg, 0, 9);  // r6-r9 start at 0
  b.exit();
  auto p = jit::Program::compile(b.v);
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  const auto leaf = p->leaf();
  ASSERT_TRUE(leaf);
  EXPECT_EQ(leaf(5, 7, 11), 5u + 14u + 33u);
  EXPECT_EQ(leaf(0xffffffffffffffffULL, 1, 0), 1u);
}

TEST(Leaf, NotEligible) {
  auto leaf_of = [](const std::vector<Insn>& v, const jit::Options& o = {}) {
    auto p = jit::Program::compile(v, o);
    EXPECT_TRUE(p.ok()) << p.error().to_string();
    return p.ok() && static_cast<bool>(p->leaf());
  };
  const std::vector<Insn> plain = {isa::make(Op::MovImm, 0, 0, 0, 1), isa::make(Op::Exit)};
  EXPECT_TRUE(leaf_of(plain));
  jit::Options counted;
  counted.count_insns = true;
  EXPECT_FALSE(leaf_of(plain, counted));
  jit::Options budget;
  budget.budget = 100;
  EXPECT_FALSE(leaf_of(plain, budget));
  jit::Options checked;
  checked.checked = true;
  EXPECT_FALSE(leaf_of(plain, checked));
  EXPECT_FALSE(leaf_of({isa::make(Op::Call, 0, 0, 0, 1), isa::make(Op::Exit)}));
  EXPECT_FALSE(leaf_of({isa::make(Op::CallLocal, 0, 0, 0, 1), isa::make(Op::Exit), isa::make(Op::MovImm, 0, 0, 0, 2),
                        isa::make(Op::Exit)}));
  EXPECT_FALSE(leaf_of({isa::make(Op::LdAbsB, 0, 0, 0, 3), isa::make(Op::Exit)}));
  EXPECT_FALSE(leaf_of({isa::make(Op::LdIndB, 0, 1, 0, 3), isa::make(Op::Exit)}));
  EXPECT_FALSE(leaf_of({isa::make(Op::MayGoto, 0, 0, 0), isa::make(Op::Exit)}));
}

// ---------------------------------------------------------------- classic filters
std::vector<cbpf::Insn> compile_expr(const char* expr) {
  pcap_t* dead = pcap_open_dead(DLT_EN10MB, 262144);
  bpf_program bp{};
  std::vector<cbpf::Insn> prog;
  if (pcap_compile(dead, &bp, expr, 1, PCAP_NETMASK_UNKNOWN) == 0) {
    for (u_int i = 0; i < bp.bf_len; ++i)
      prog.push_back({bp.bf_insns[i].code, bp.bf_insns[i].jt, bp.bf_insns[i].jf, bp.bf_insns[i].k});
    pcap_freecode(&bp);
  } else {
    ADD_FAILURE() << expr << ": " << pcap_geterr(dead);
  }
  pcap_close(dead);
  return prog;
}

TEST(LeafFilter, DirectAndEnvPathsKeepTheSamePackets) {
  struct Case {
    const char* expr;
    bool direct;  // expected eligibility
  };
  const Case cases[] = {
      {"tcp port 80", true},
      {"host 10.0.0.1", true},
      {"udp and port 53", true},
      {"tcp[tcpflags] & tcp-syn != 0", true},
      {"net 192.168.0.0/16 and not port 22", true},
      {"ip6 and tcp", true},
      {"vlan and ip", true},
      {"icmp or arp", true},
      {"tcp and (port 80 or port 443 or port 8080) and not host 10.0.0.5", true},
      {"greater 100", true},
      {"ether[len - 1] = 0", true},
      {"ip[2:2] - ((ip[0]&0xf)<<2) > 40", true},
      {"tcp[((tcp[12]&0xf0)>>2)] > 100", true},
      {"ip6 protochain 6", false},  // backward ja: budgeted runs
  };
  userbpf::testing::PacketGen gen(5);
  std::vector<userbpf::testing::Packet> pkts;
  for (int i = 0; i < 4000; ++i) pkts.push_back(gen.next());
  for (const Case& c : cases) {
    const auto prog = compile_expr(c.expr);
    auto fast = cbpf::Filter::create(prog, cbpf::Target::Socket, {true}, cbpf::Engine::Jit);
    auto slow = cbpf::Filter::create(prog, cbpf::Target::Socket, {true}, cbpf::Engine::Jit);
    ASSERT_TRUE(fast.ok() && slow.ok()) << c.expr;
    slow->set_direct(false);
    cbpf::CheckOptions hoist;  // hoisted bounds checks keep the same packets too
    hoist.allow_backward_ja = true;
    hoist.hoist_checks = true;
    auto hoisted = cbpf::Filter::create(prog, cbpf::Target::Socket, hoist, cbpf::Engine::Jit);
    ASSERT_TRUE(hoisted.ok()) << c.expr;
    EXPECT_EQ(fast->direct(), c.direct) << c.expr;
    EXPECT_FALSE(slow->direct());
    std::size_t kept = 0;
    for (const auto& p : pkts) {
      const std::uint32_t a = fast->run_frame(p.data, p.wirelen, cbpf::LinkLayer::Ethernet);
      const std::uint32_t b = slow->run(p.data, cbpf::make_context(p.data, p.wirelen, cbpf::LinkLayer::Ethernet));
      ASSERT_EQ(a, b) << c.expr;
      ASSERT_EQ(hoisted->run_frame(p.data, p.wirelen, cbpf::LinkLayer::Ethernet), b) << c.expr << " (hoisted)";
      kept += a != 0;
    }
    bool scratch = false;  // M[] lives on the stack (r10)
    for (const cbpf::Insn& in : prog) {
      const cbpf::Kind k = cbpf::lookup(in.code)->kind;
      scratch = scratch || k == cbpf::Kind::St || k == cbpf::Kind::Stx || k == cbpf::Kind::LdMem ||
                k == cbpf::Kind::LdxMem;
    }
    if (c.direct && !scratch) {  // no helper call, no M[]: everything in r0-r5, no prologue moves
      for (const isa::Insn& in : fast->ebpf()) {
        EXPECT_LT(in.dst, 6) << c.expr;
        EXPECT_LT(in.src, 6) << c.expr;
      }
    }
    EXPECT_GT(kept, 0u) << c.expr;
    EXPECT_LT(kept, pkts.size()) << c.expr;
  }
}

TEST(LeafFilter, ContextNeed) {
  auto need = [](const char* expr) {
    auto f = cbpf::Filter::create(compile_expr(expr), cbpf::Target::Socket, {true});
    EXPECT_TRUE(f.ok()) << expr;
    return f.ok() ? f->context_need() : cbpf::ContextNeed::Payload;
  };
  EXPECT_EQ(need("tcp port 80"), cbpf::ContextNeed::None);
  EXPECT_EQ(need("greater 100"), cbpf::ContextNeed::Len);
  auto bpf_asm = [](const char* text) {
    auto prog = cbpf::parse_bpf_asm(text);
    EXPECT_TRUE(prog.ok()) << text;
    auto f = cbpf::Filter::create(*prog);
    EXPECT_TRUE(f.ok()) << text;
    return f.ok() ? f->context_need() : cbpf::ContextNeed::None;
  };
  EXPECT_EQ(bpf_asm("ld #proto\nret a\n"), cbpf::ContextNeed::Fields);
  EXPECT_EQ(bpf_asm("ld #poff\nret a\n"), cbpf::ContextNeed::Payload);
}

TEST(LeafFilter, SeccompUsesTheDirectEntry) {
  auto prog = cbpf::parse_bpf_asm("ld [0]\njeq #39, allow\nret #0\nallow: ret #0x7fff0000\n");
  ASSERT_TRUE(prog.ok()) << prog.error().to_string();
  auto f = cbpf::Filter::create(*prog, cbpf::Target::Seccomp);
  ASSERT_TRUE(f.ok()) << f.error().to_string();
  EXPECT_TRUE(f->direct());
  cbpf::SeccompData d;
  d.nr = 39;
  EXPECT_EQ(f->run_seccomp(d), 0x7fff0000u);
  d.nr = 40;
  EXPECT_EQ(f->run_seccomp(d), 0u);
}

}  // namespace
}  // namespace userbpf
