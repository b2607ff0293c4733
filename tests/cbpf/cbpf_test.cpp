// Unit tests of classic BPF: the table (sweep of every code against an
// independent model of the kernel's allowed codes), each check with its
// error, per-instruction semantics (expected values, and random programs
// against libpcap's bpf_filter), the kernel-specific parts libpcap does not
// have (ancillary loads, SKF_NET_OFF/SKF_LL_OFF, X + k wrap-around), and the
// text forms (parse errors with line:column, bpf_asm pseudo jumps).
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <cstring>
#include <memory>
#include <random>
#include <set>

#include "asm/asm.hpp"
#include "cbpf/cbpf.hpp"
#include "cbpf/exec.hpp"
#include "isa/isa.hpp"

using namespace userbpf;
using namespace userbpf::cbpf;

namespace {

Insn I(Op op, std::uint32_t k = 0, std::uint8_t jt = 0, std::uint8_t jf = 0) { return Insn{info(op).code, jt, jf, k}; }

// Independent model of bpf_check_classic's allowed codes, from the field
// layout of linux/filter.h (class 3 bits, size 2 bits, mode 3 bits; ALU/JMP
// op 4 bits + source bit), not from classic.def.
bool kernel_allows(unsigned c) {
  const unsigned cls = c & 7, size = c & 0x18, mode = c & 0xe0, op = c & 0xf0, src = c & 0x08;
  switch (cls) {
    case 0:  // LD
      if (mode == 0x20 || mode == 0x40) return size != 0x18;
      return (mode == 0x00 || mode == 0x60 || mode == 0x80) && size == 0;
    case 1:  // LDX
      return c == (1 | 0x00) || c == (1 | 0x60) || c == (1 | 0x80) || c == (1 | 0x10 | 0xa0);
    case 2: case 3: return c == cls;
    case 4:  // ALU
      if (op == 0x80) return src == 0;
      return op <= 0xa0;
    case 5:  // JMP
      if (op == 0x00) return src == 0;
      return op <= 0x40;
    case 6: return c == 0x06 || c == 0x16;
    case 7: return c == 0x07 || c == 0x87;
    default: return false;
  }
}

std::uint32_t run_on(const std::vector<Insn>& prog, const std::vector<std::uint8_t>& pkt, SkbContext ctx = {}) {
  auto f = Filter::create(prog);
  EXPECT_TRUE(f.ok()) << f.error().to_string() << "\n" << print_tcpdump(prog);
  if (!f.ok()) return 0xdeadbeef;
  if (ctx.len == 0) ctx.len = static_cast<std::uint32_t>(pkt.size());
  return f->run(pkt, ctx);
}

std::vector<std::uint8_t> counting_packet(std::size_t n) {
  std::vector<std::uint8_t> p(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>(i);
  return p;
}

}  // namespace

TEST(CbpfTable, EveryCodeMatchesTheKernelModel) {
  std::size_t rows = 0;
  for (unsigned c = 0; c < 0x10000; ++c) {
    const OpInfo* r = lookup(static_cast<std::uint16_t>(c));
    const bool want = c < 256 && kernel_allows(c);
    ASSERT_EQ(r != nullptr, want) << std::hex << "code 0x" << c;
    if (r != nullptr) {
      EXPECT_EQ(r->code, c);
      ++rows;
    }
  }
  EXPECT_EQ(rows, kOpCount);
}

TEST(CbpfTable, EbpfColumnsAreConsistent) {
  for (const auto& r : kOps) {
    if (r.kind == Kind::AluK) {
      EXPECT_EQ(isa::info(r.ebpf).form, isa::Form::AluK) << r.name;
    }
    if (r.kind == Kind::AluX) {
      EXPECT_EQ(isa::info(r.ebpf).form, isa::Form::AluX) << r.name;
    }
    if (r.kind == Kind::JmpK) {
      EXPECT_EQ(isa::info(r.ebpf).form, isa::Form::JmpK) << r.name;
    }
    if (r.kind == Kind::JmpX) {
      EXPECT_EQ(isa::info(r.ebpf).form, isa::Form::JmpX) << r.name;
    }
    if (r.kind == Kind::AluK || r.kind == Kind::AluX || r.kind == Kind::JmpK || r.kind == Kind::JmpX) {
      EXPECT_EQ(isa::op_class(r.ebpf), r.kind == Kind::AluK || r.kind == Kind::AluX ? isa::Class::Alu : isa::Class::Jmp32)
          << r.name;
      // the classic and eBPF operation codes coincide (both from the same BPF encoding)
      EXPECT_EQ(isa::op_code(r.ebpf), static_cast<unsigned>(r.code >> 4)) << r.name;
    }
  }
}

// ---------------------------------------------------------------- checks
TEST(CbpfCheck, AcceptsMinimalPrograms) {
  EXPECT_TRUE(check(std::vector<Insn>{I(Op::RetK, 0)}).ok());
  EXPECT_TRUE(check(std::vector<Insn>{I(Op::RetA)}).ok());
  std::vector<Insn> big(kMaxInsns, I(Op::LdImm, 1));
  big.back() = I(Op::RetA);
  EXPECT_TRUE(check(big).ok());
}

struct BadCase {
  const char* what;
  std::vector<Insn> prog;
  std::size_t insn;
  const char* message_part;
};

TEST(CbpfCheck, RejectsWithTheInstruction) {
  std::vector<Insn> too_long(kMaxInsns + 1, I(Op::RetA));
  EXPECT_FALSE(check(too_long).ok());
  EXPECT_FALSE(check(std::vector<Insn>{}).ok());
  const BadCase cases[] = {
      {"unknown code", {I(Op::LdImm), Insn{0x0e, 0, 0, 0}, I(Op::RetA)}, 1, "unknown classic opcode 0x000e"},
      {"code above 0xff", {Insn{0x120, 0, 0, 0}, I(Op::RetA)}, 0, "unknown classic opcode"},
      {"jt out of range", {I(Op::JeqK, 0, 2, 0), I(Op::RetA), I(Op::RetK)}, 0, "jt target 3"},
      {"jf out of range", {I(Op::JgtX, 0, 0, 5), I(Op::RetA)}, 0, "jf target 6"},
      {"ja out of range", {I(Op::Ja, 1), I(Op::RetA)}, 0, "ja target 2"},
      {"ja backwards", {I(Op::LdImm), I(Op::Ja, 0xfffffffe), I(Op::RetA)}, 1, "ja target"},
      {"div #0", {I(Op::DivK, 0), I(Op::RetA)}, 0, "by constant zero"},
      {"mod #0", {I(Op::ModK, 0), I(Op::RetA)}, 0, "by constant zero"},
      {"lsh #32", {I(Op::LshK, 32), I(Op::RetA)}, 0, "(must be < 32)"},
      {"rsh #40", {I(Op::RshK, 40), I(Op::RetA)}, 0, "(must be < 32)"},
      {"M[16]", {I(Op::St, 16), I(Op::RetA)}, 0, "M[16] out of range"},
      {"ldx M[20]", {I(Op::LdxMem, 20), I(Op::RetA)}, 0, "M[20] out of range"},
      {"unknown ancillary", {I(Op::LdWAbs, static_cast<std::uint32_t>(kSkfAdOff + 64)), I(Op::RetA)}, 0,
       "unknown ancillary offset SKF_AD_OFF+64"},
      {"last not a return", {I(Op::RetA), I(Op::Tax)}, 1, "last instruction must be a return"},
      {"M read first", {I(Op::LdMem, 3), I(Op::RetA)}, 0, "reads M[3] before it is written"},
      {"M written on one path only",
       {I(Op::JeqK, 0, 0, 1), I(Op::St, 2), I(Op::LdMem, 2), I(Op::RetA)}, 2, "reads M[2]"},
  };
  for (const auto& c : cases) {
    const Status st = check(c.prog);
    ASSERT_FALSE(st.ok()) << c.what;
    EXPECT_EQ(st.error().insn, c.insn) << c.what << ": " << st.error().to_string();
    EXPECT_NE(st.error().message.find(c.message_part), std::string::npos) << c.what << ": " << st.error().message;
    EXPECT_EQ(st.error().code, EINVAL);
  }
}

TEST(CbpfCheck, MemoryWrittenOnBothPathsIsFine) {
  // if (A == 0) M[2] = A else M[2] = A; A = M[2]
  const std::vector<Insn> p = {I(Op::JeqK, 0, 0, 2), I(Op::St, 2), I(Op::Ja, 1), I(Op::St, 2), I(Op::LdMem, 2),
                               I(Op::RetA)};
  EXPECT_TRUE(check(p).ok()) << check(p).error().to_string();
}

TEST(CbpfCheck, BackwardJaOnlyInLibpcapMode) {
  const std::vector<Insn> p = {I(Op::LdImm, 0), I(Op::AddK, 1), I(Op::JgeK, 10, 1, 0), I(Op::Ja, 0xfffffffd), I(Op::RetA)};
  EXPECT_FALSE(check(p).ok());
  CheckOptions o;
  o.allow_backward_ja = true;
  EXPECT_TRUE(check(p, o).ok());
  auto f = Filter::create(p, Target::Socket, o);
  ASSERT_TRUE(f.ok()) << f.error().to_string();
  EXPECT_EQ(f->run({}, SkbContext{}), 10U);  // the loop counts to 10
  // an endless loop ends by the budget, with 0
  const std::vector<Insn> endless = {I(Op::Ja, 0xffffffff), I(Op::RetK, 1)};
  auto g = Filter::create(endless, Target::Socket, o);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->run({}, SkbContext{}), 0U);
}

// ---------------------------------------------------------------- semantics
TEST(CbpfRun, LoadsAndAlu) {
  const auto pkt = counting_packet(64);
  EXPECT_EQ(run_on({I(Op::LdWAbs, 4), I(Op::RetA)}, pkt), 0x04050607U);
  EXPECT_EQ(run_on({I(Op::LdHAbs, 10), I(Op::RetA)}, pkt), 0x0a0bU);
  EXPECT_EQ(run_on({I(Op::LdBAbs, 63), I(Op::RetA)}, pkt), 63U);
  EXPECT_EQ(run_on({I(Op::LdBAbs, 64), I(Op::RetK, 9)}, pkt), 0U);   // out of range: return 0
  EXPECT_EQ(run_on({I(Op::LdWAbs, 61), I(Op::RetK, 9)}, pkt), 0U);
  EXPECT_EQ(run_on({I(Op::LdxImm, 3), I(Op::LdHInd, 7), I(Op::RetA)}, pkt), 0x0a0bU);
  EXPECT_EQ(run_on({I(Op::LdxBMsh, 14), I(Op::Txa), I(Op::RetA)}, pkt), 4U * (14 & 0xf));
  EXPECT_EQ(run_on({I(Op::LdImm, 77), I(Op::LdxBMsh, 1), I(Op::RetA)}, pkt), 77U);  // MSH keeps A
  EXPECT_EQ(run_on({I(Op::LdWLen), I(Op::RetA)}, pkt), 64U);
  EXPECT_EQ(run_on({I(Op::LdxWLen), I(Op::Txa), I(Op::RetA)}, pkt), 64U);
  EXPECT_EQ(run_on({I(Op::LdImm, 7), I(Op::St, 5), I(Op::LdImm, 1), I(Op::LdxMem, 5), I(Op::AddX), I(Op::RetA)}, pkt),
            8U);
  EXPECT_EQ(run_on({I(Op::LdImm, 0xfffffff0), I(Op::AddK, 0x20), I(Op::RetA)}, pkt), 0x10U);  // 32-bit wrap
  EXPECT_EQ(run_on({I(Op::LdImm, 3), I(Op::SubK, 5), I(Op::RetA)}, pkt), 0xfffffffeU);
  EXPECT_EQ(run_on({I(Op::LdImm, 100), I(Op::DivK, 7), I(Op::RetA)}, pkt), 14U);
  EXPECT_EQ(run_on({I(Op::LdImm, 100), I(Op::ModK, 7), I(Op::RetA)}, pkt), 2U);
  EXPECT_EQ(run_on({I(Op::LdImm, 5), I(Op::Neg), I(Op::RetA)}, pkt), 0xfffffffbU);
  EXPECT_EQ(run_on({I(Op::LdImm, 1), I(Op::LshK, 31), I(Op::RetA)}, pkt), 0x80000000U);
  EXPECT_EQ(run_on({I(Op::LdImm, 0x80000000), I(Op::RshK, 31), I(Op::RetA)}, pkt), 1U);  // logical
  EXPECT_EQ(run_on({I(Op::LdImm, 0xf0), I(Op::XorK, 0xff), I(Op::OrK, 0x100), I(Op::AndK, 0x10f), I(Op::RetA)}, pkt),
            0x10fU);
  EXPECT_EQ(run_on({I(Op::LdImm, 6), I(Op::MulK, 7), I(Op::RetA)}, pkt), 42U);
  // division and modulo by X == 0 return 0 from the whole program
  EXPECT_EQ(run_on({I(Op::LdImm, 9), I(Op::DivX), I(Op::RetK, 5)}, pkt), 0U);
  EXPECT_EQ(run_on({I(Op::LdImm, 9), I(Op::ModX), I(Op::RetK, 5)}, pkt), 0U);
  EXPECT_EQ(run_on({I(Op::LdxImm, 2), I(Op::LdImm, 9), I(Op::DivX), I(Op::RetA)}, pkt), 4U);
  // shifts by X: the count is masked (& 31) as in the kernel's JITs
  EXPECT_EQ(run_on({I(Op::LdxImm, 33), I(Op::LdImm, 1), I(Op::LshX), I(Op::RetA)}, pkt), 2U);
}

TEST(CbpfRun, JumpsAndReturns) {
  const auto pkt = counting_packet(16);
  for (const auto& [op, k, a, taken] : std::vector<std::tuple<Op, std::uint32_t, std::uint32_t, bool>>{
           {Op::JeqK, 5, 5, true}, {Op::JeqK, 5, 6, false}, {Op::JgtK, 5, 6, true}, {Op::JgtK, 5, 5, false},
           {Op::JgeK, 5, 5, true}, {Op::JgeK, 5, 4, false}, {Op::JsetK, 4, 6, true}, {Op::JsetK, 8, 6, false},
           {Op::JgtK, 0x7fffffff, 0x80000000, true},  // unsigned compares
           {Op::JeqK, 0xffffffff, 0xffffffff, true}}) {
    for (const auto& [jt, jf] : {std::pair<int, int>{0, 1}, {1, 0}, {1, 2}, {2, 1}}) {
      // A = a; if (A op k) goto +jt else +jf; three returns at 2, 3, 4 (ret #2/#3/#4)
      std::vector<Insn> p = {I(Op::LdImm, a), I(op, k, static_cast<std::uint8_t>(jt), static_cast<std::uint8_t>(jf)),
                             I(Op::RetK, 2), I(Op::RetK, 3), I(Op::RetK, 4)};
      const std::uint32_t want = 2U + static_cast<std::uint32_t>(taken ? jt : jf);
      EXPECT_EQ(run_on(p, pkt), want) << info(op).name << " k=" << k << " a=" << a << " jt=" << jt << " jf=" << jf;
      // the X form
      const Op xop = op == Op::JeqK ? Op::JeqX : op == Op::JgtK ? Op::JgtX : op == Op::JgeK ? Op::JgeX : Op::JsetX;
      std::vector<Insn> q = {I(Op::LdxImm, k), I(Op::LdImm, a),
                             I(xop, 0, static_cast<std::uint8_t>(jt), static_cast<std::uint8_t>(jf)),
                             I(Op::RetK, 2), I(Op::RetK, 3), I(Op::RetK, 4)};
      EXPECT_EQ(run_on(q, pkt), want) << info(xop).name;
    }
  }
  EXPECT_EQ(run_on({I(Op::Ja, 1), I(Op::RetK, 1), I(Op::RetK, 2)}, pkt), 2U);
  EXPECT_EQ(run_on({I(Op::LdImm, 3), I(Op::JeqK, 3, 0, 0), I(Op::RetA)}, pkt), 3U);
  EXPECT_EQ(run_on({I(Op::RetK, 0xffffffff)}, pkt), 0xffffffffU);
}

TEST(CbpfRun, KernelOffsetsAndWrapAround) {
  const auto pkt = counting_packet(60);
  SkbContext ctx;
  ctx.len = 60;
  ctx.net_off = 14;
  ctx.ll_off = 0;
  const auto net = [](std::int32_t k) { return static_cast<std::uint32_t>(kSkfNetOff + k); };
  const auto ll = [](std::int32_t k) { return static_cast<std::uint32_t>(kSkfLlOff + k); };
  EXPECT_EQ(run_on({I(Op::LdBAbs, net(9)), I(Op::RetA)}, pkt, ctx), 23U);
  EXPECT_EQ(run_on({I(Op::LdHAbs, ll(12)), I(Op::RetA)}, pkt, ctx), 0x0c0dU);
  EXPECT_EQ(run_on({I(Op::LdxBMsh, net(0)), I(Op::Txa), I(Op::RetA)}, pkt, ctx), 4U * (14 & 0xf));
  EXPECT_EQ(run_on({I(Op::LdBAbs, static_cast<std::uint32_t>(kSkfLlOff - 1)), I(Op::RetK, 7)}, pkt, ctx), 0U);
  EXPECT_EQ(run_on({I(Op::LdBAbs, net(50)), I(Op::RetK, 7)}, pkt, ctx), 0U);  // past the end
  // IND into the SKF areas: X + k negative
  EXPECT_EQ(run_on({I(Op::LdxImm, 9), I(Op::LdBInd, net(0)), I(Op::RetA)}, pkt, ctx), 23U);
  EXPECT_EQ(run_on({I(Op::LdxImm, 2), I(Op::LdHInd, ll(10)), I(Op::RetA)}, pkt, ctx), 0x0c0dU);
  EXPECT_EQ(run_on({I(Op::LdxImm, 0), I(Op::LdBInd, static_cast<std::uint32_t>(-5)), I(Op::RetK, 7)}, pkt, ctx), 0U);
  // X + k wraps around 2^32 to a small offset: the kernel loads it (libpcap returns 0)
  EXPECT_EQ(run_on({I(Op::LdxImm, 0xfffffff0), I(Op::LdBInd, 20), I(Op::RetA)}, pkt, ctx), 4U);
  // X + k in [INT32_MAX+1, 2^32 - SKF_LL_OFF): negative and below SKF_LL_OFF: 0
  EXPECT_EQ(run_on({I(Op::LdxImm, 0x7ffffff0), I(Op::LdBInd, 0x20), I(Op::RetK, 7)}, pkt, ctx), 0U);
}

TEST(CbpfRun, AncillaryLoads) {
  const auto pkt = counting_packet(40);
  SkbContext ctx;
  ctx.len = 1500;
  ctx.protocol = 0x86dd;
  ctx.pkt_type = 3;
  ctx.ifindex = 7;
  ctx.mark = 0xabc;
  ctx.queue = 2;
  ctx.hatype = 1;
  ctx.rxhash = 0xdeadbeef;
  ctx.cpu = 5;
  ctx.vlan_tci = 100;
  ctx.vlan_present = 1;
  ctx.pay_offset = 54;
  ctx.vlan_tpid = 0x8100;
  const std::pair<Anc, std::uint32_t> fields[] = {
      {Anc::Protocol, 0x86dd}, {Anc::PktType, 3}, {Anc::IfIndex, 7},   {Anc::Mark, 0xabc},
      {Anc::Queue, 2},         {Anc::HaType, 1},  {Anc::RxHash, 0xdeadbeef}, {Anc::Cpu, 5},
      {Anc::VlanTag, 100},     {Anc::VlanTagPresent, 1}, {Anc::PayOffset, 54}, {Anc::VlanTpid, 0x8100}};
  for (const auto& [anc, want] : fields) {
    const auto k = static_cast<std::uint32_t>(kSkfAdOff + kAncs[static_cast<std::size_t>(anc)].offset);
    for (const Op op : {Op::LdWAbs, Op::LdHAbs, Op::LdBAbs})  // size does not matter for ancillary loads
      EXPECT_EQ(run_on({I(op, k), I(Op::RetA)}, pkt, ctx), want) << kAncs[static_cast<std::size_t>(anc)].tcpdump;
  }
  const auto xor_k = static_cast<std::uint32_t>(kSkfAdOff + 40);
  EXPECT_EQ(run_on({I(Op::LdxImm, 0x0f), I(Op::LdImm, 0xff), I(Op::LdWAbs, xor_k), I(Op::RetA)}, pkt, ctx), 0xf0U);
  // rand: two loads differ (almost always)
  const auto rnd = static_cast<std::uint32_t>(kSkfAdOff + 56);
  auto f = Filter::create(std::vector<Insn>{I(Op::LdWAbs, rnd), I(Op::Tax), I(Op::LdWAbs, rnd), I(Op::SubX), I(Op::RetA)});
  ASSERT_TRUE(f.ok());
  int nonzero = 0;
  for (int i = 0; i < 8; ++i) nonzero += f->run(pkt, ctx) != 0;
  EXPECT_GE(nonzero, 7);
}

TEST(CbpfRun, NetlinkAttributes) {
  // nlmsg-like payload: 4 junk bytes, then attrs {len 8, type 1}, {len 12, type 2 | NESTED: {len 8, type 5}}
  std::vector<std::uint8_t> p = {0, 0, 0, 0, 8, 0, 1, 0, 0xaa, 0xbb, 0xcc, 0xdd, 12, 0, 2, 0x80, 8, 0, 5, 0, 1, 2, 3, 4};
  const auto nla = static_cast<std::uint32_t>(kSkfAdOff + 12), nlan = static_cast<std::uint32_t>(kSkfAdOff + 16);
  EXPECT_EQ(run_on({I(Op::LdImm, 4), I(Op::LdxImm, 1), I(Op::LdWAbs, nla), I(Op::RetA)}, p), 4U);
  EXPECT_EQ(run_on({I(Op::LdImm, 4), I(Op::LdxImm, 2), I(Op::LdWAbs, nla), I(Op::RetA)}, p), 12U);  // flag bits masked
  EXPECT_EQ(run_on({I(Op::LdImm, 4), I(Op::LdxImm, 9), I(Op::LdWAbs, nla), I(Op::RetA)}, p), 0U);
  EXPECT_EQ(run_on({I(Op::LdImm, 12), I(Op::LdxImm, 5), I(Op::LdWAbs, nlan), I(Op::RetA)}, p), 16U);
  EXPECT_EQ(run_on({I(Op::LdImm, 100), I(Op::LdxImm, 1), I(Op::LdWAbs, nla), I(Op::RetA)}, p), 0U);
}

TEST(CbpfRun, PayloadOffsetFromTheDissector) {
  std::vector<std::uint8_t> eth(14 + 20 + 32, 0);
  eth[12] = 0x08;
  eth[14] = 0x45;
  eth[14 + 9] = 6;
  eth[14 + 20 + 12] = 0x80;  // doff 8 -> 32 bytes
  const SkbContext c = make_context(eth, static_cast<std::uint32_t>(eth.size()), LinkLayer::Ethernet);
  EXPECT_EQ(c.protocol, 0x0800U);
  EXPECT_EQ(c.net_off, 14U);
  EXPECT_EQ(c.pay_offset, 14U + 20 + 32);
}

// Random programs (packet loads, ALU, M[], jumps) against libpcap's bpf_filter.
TEST(CbpfRun, RandomProgramsAgreeWithLibpcap) {
  std::mt19937 rng(4242);
  auto pick = [&](std::uint32_t n) { return static_cast<std::uint32_t>(rng() % n); };
  static const Op kAluK[] = {Op::AddK, Op::SubK, Op::MulK, Op::DivK, Op::ModK, Op::AndK, Op::OrK, Op::XorK, Op::LshK, Op::RshK};
  static const Op kAluX[] = {Op::AddX, Op::SubX, Op::MulX, Op::DivX, Op::ModX, Op::AndX, Op::OrX, Op::XorX};
  static const Op kJmp[] = {Op::JeqK, Op::JgtK, Op::JgeK, Op::JsetK, Op::JeqX, Op::JgtX, Op::JgeX, Op::JsetX};
  std::size_t compared = 0;
  for (int n = 0; n < 500; ++n) {
    std::vector<Insn> p = {I(Op::LdImm, pick(1000)), I(Op::St, 0), I(Op::St, 1)};
    const std::uint32_t body = 3 + pick(25);
    for (std::uint32_t i = 0; i < body; ++i) {
      const std::uint32_t rem = body - i;
      switch (pick(11)) {
        case 0: p.push_back(I(pick(2) ? Op::LdBAbs : pick(2) ? Op::LdHAbs : Op::LdWAbs, pick(80))); break;
        case 1: p.push_back(I(pick(2) ? Op::LdBInd : pick(2) ? Op::LdHInd : Op::LdWInd, pick(40))); break;
        case 2: p.push_back(I(Op::LdxBMsh, pick(70))); break;
        case 3: {
          const Op op = kAluK[pick(10)];
          std::uint32_t k = pick(2) ? pick(40) : static_cast<std::uint32_t>(rng());
          if (op == Op::LshK || op == Op::RshK) k %= 32;
          if ((op == Op::DivK || op == Op::ModK) && k == 0) k = 1;
          p.push_back(I(op, k));
          break;
        }
        case 4: p.push_back(I(kAluX[pick(8)])); break;
        case 5: p.push_back(I(pick(2) ? Op::LdxImm : Op::LdImm, pick(64))); break;  // X stays small (no wrap)
        case 6: p.push_back(I(pick(2) ? Op::LdMem : Op::St, pick(2))); break;
        case 7: p.push_back(I(kJmp[pick(8)], pick(64), static_cast<std::uint8_t>(pick(rem + 1)),
                              static_cast<std::uint8_t>(pick(rem + 1))));
          break;
        case 8: p.push_back(I(Op::LdWLen)); break;
        case 9: p.push_back(I(Op::Neg)); break;
        case 10: p.push_back(I(Op::Txa)); break;
      }
    }
    p.push_back(I(Op::RetA));
    p.push_back(I(Op::RetK, 1 + pick(1000)));
    ASSERT_TRUE(check(p).ok()) << check(p).error().to_string();
    auto f = Filter::create(p);
    ASSERT_TRUE(f.ok());
    std::vector<bpf_insn> bi;
    for (const Insn& in : p) bi.push_back(bpf_insn{in.code, in.jt, in.jf, in.k});
    bpf_program bp{static_cast<u_int>(bi.size()), bi.data()};
    for (int t = 0; t < 10; ++t) {
      std::vector<std::uint8_t> pkt(pick(80));
      for (auto& b : pkt) b = static_cast<std::uint8_t>(rng());
      pcap_pkthdr h{};
      h.caplen = static_cast<bpf_u_int32>(pkt.size());
      h.len = h.caplen + pick(3) * 100;
      SkbContext ctx;
      ctx.len = h.len;
      ASSERT_EQ(f->run(pkt, ctx), pcap_offline_filter(&bp, &h, pkt.data())) << print_tcpdump(p);
      ++compared;
    }
  }
  EXPECT_EQ(compared, 5000U);
}

// ---------------------------------------------------------------- translation
// Hoisted bounds checks keep the kernel's semantics: a packet too short for
// the segment's farthest load still runs the loads before it (and the exit
// between them) as the classic program does.
TEST(CbpfTranslate, HoistedChecksKeepEarlyExits) {
  //   0: ldb [0]   1: jeq #1 jt 2 (-> 4) jf 0   2: ldb [10]   3: ret a   4: ret #7
  const std::vector<Insn> p = {I(Op::LdBAbs, 0), I(Op::JeqK, 1, 2, 0), I(Op::LdBAbs, 10), I(Op::RetA),
                               I(Op::RetK, 7)};
  CheckOptions hoist;
  hoist.hoist_checks = true;
  EXPECT_EQ(translate(p)->insns[0].imm, 1);  // off by default: each load checks itself
  auto t = translate(p, Target::Socket, hoist);
  ASSERT_TRUE(t.ok()) << t.error().to_string();
  EXPECT_EQ(t->insns[t->start[0]].op, isa::Op::JltImm);
  EXPECT_EQ(t->insns[t->start[0]].imm, 11);  // one check for the segment 0-3
  for (const Engine engine : {Engine::Jit, Engine::Interpreter}) {
    auto f = Filter::create(p, Target::Socket, hoist, engine);
    ASSERT_TRUE(f.ok()) << f.error().to_string();
    std::vector<std::uint8_t> pkt(10, 0);
    pkt[0] = 1;
    EXPECT_EQ(f->run_frame(pkt, 10, LinkLayer::Other), 7U);  // short, but the exit comes first
    pkt[0] = 2;
    EXPECT_EQ(f->run_frame(pkt, 10, LinkLayer::Other), 0U);  // short: [10] fails
    pkt.assign(20, 0);
    pkt[0] = 2;
    pkt[10] = 42;
    EXPECT_EQ(f->run_frame(pkt, 20, LinkLayer::Other), 42U);
    pkt[0] = 1;
    EXPECT_EQ(f->run_frame(pkt, 20, LinkLayer::Other), 7U);
    std::vector<std::uint8_t> empty;
    EXPECT_EQ(f->run_frame(empty, 0, LinkLayer::Other), 0U);
  }
}

TEST(CbpfTranslate, StructureAndBlocks) {
  const std::vector<Insn> p = {I(Op::LdHAbs, 12), I(Op::JeqK, 0x800, 0, 3), I(Op::LdxBMsh, 14),
                               I(Op::LdHInd, 16),  I(Op::RetA),               I(Op::RetK, 0)};
  auto t = translate(p);
  ASSERT_TRUE(t.ok()) << t.error().to_string();
  ASSERT_EQ(t->start.size(), p.size());
  for (std::size_t i = 1; i < t->start.size(); ++i) EXPECT_LT(t->start[i - 1], t->start[i]);
  EXPECT_TRUE(isa::check_structure(t->insns).ok()) << isa::check_structure(t->insns).error().to_string();
  // the block of `ldh [12]` is a direct load: bounds check, load, byte swap
  EXPECT_TRUE(t->packet_args);
  ASSERT_EQ(t->start[1] - t->start[0], 3U);
  EXPECT_EQ(t->insns[t->start[0]].op, isa::Op::JltImm);
  EXPECT_EQ(t->insns[t->start[0]].imm, 14);
  // with hoist_checks, len >= 15 at the head covers [12] and MSH's [14]
  CheckOptions hoist;
  hoist.hoist_checks = true;
  auto th = translate(p, Target::Socket, hoist);
  ASSERT_TRUE(th.ok());
  EXPECT_EQ(th->insns[th->start[0]].imm, 15);
  EXPECT_NE(th->insns[th->start[2]].op, isa::Op::JltImm);
  EXPECT_EQ(t->insns[t->start[0] + 1].op, isa::Op::LdxH);
  EXPECT_EQ(t->insns[t->start[0] + 1].off, 12);
  EXPECT_EQ(t->insns[t->start[0] + 2].op, isa::Op::Be16);
  // the jeq with jt falling through uses the inverse row
  EXPECT_EQ(t->insns[t->start[1]].op, isa::Op::Jne32Imm);
  const std::string text = assembly::disassemble(t->insns);
  EXPECT_NE(text.find("*(u16 *)(r2 + 0xc)"), std::string::npos) << text;  // the packet stays in r2
  // offsets past a 16-bit field, and the network-header area (ctx->net_off + k, a direct load too)
  auto far = translate(std::vector<Insn>{I(Op::LdWAbs, 40000), I(Op::RetA)});
  ASSERT_TRUE(far.ok());
  EXPECT_NE(assembly::disassemble(far->insns).find("r5 += 0x9c40"), std::string::npos)
      << assembly::disassemble(far->insns);
  auto net = translate(std::vector<Insn>{I(Op::LdBAbs, static_cast<std::uint32_t>(kSkfNetOff + 9)), I(Op::RetA)});
  ASSERT_TRUE(net.ok());
  EXPECT_TRUE(net->packet_args);
  EXPECT_EQ(net->ctx_reads, ctx_bit(offsetof(SkbContext, net_off)));
  for (const auto& in : net->insns) {
    const isa::Form f = in.info().form;
    EXPECT_TRUE(f != isa::Form::LdAbs && f != isa::Form::LdInd) << assembly::disassemble(net->insns);
  }
  // analysis: X is bounded after MSH, so LD IND has no sign guard; A is dead
  // after MSH (the IND overwrites it), so it is not saved; no ctx, no A/X zeroing
  auto u = translate(std::vector<Insn>{I(Op::LdxBMsh, 14), I(Op::LdHInd, 14), I(Op::RetA)});
  ASSERT_TRUE(u.ok());
  for (const auto& in : u->insns) {
    EXPECT_NE(in.op, isa::Op::Jgt32Imm) << assembly::disassemble(u->insns);
    EXPECT_NE(in.op, isa::Op::StxW) << assembly::disassemble(u->insns);  // A not saved
    EXPECT_FALSE(in.op == isa::Op::MovReg && in.dst == 6) << assembly::disassemble(u->insns);  // no ctx
  }
  EXPECT_EQ(u->start[0], 0U);  // no helper calls: packet and length stay in r2, r3 (no prologue)
  for (const auto& in : u->insns) {
    EXPECT_LT(in.dst, 6) << assembly::disassemble(u->insns);  // r0-r5 only
    EXPECT_LT(in.src, 6) << assembly::disassemble(u->insns);
  }
  // with a helper call (rand), the values live in r6-r9 across it
  auto h = translate(std::vector<Insn>{I(Op::LdHAbs, 12), I(Op::Tax),
                                       I(Op::LdWAbs, static_cast<std::uint32_t>(kSkfAdOff + 56)), I(Op::AddX),
                                       I(Op::RetA)});
  ASSERT_TRUE(h.ok()) << h.error().to_string();
  EXPECT_NE(assembly::disassemble(h->insns).find("r9 = r2"), std::string::npos) << assembly::disassemble(h->insns);
  EXPECT_NE(assembly::disassemble(h->insns).find("w0 += w7"), std::string::npos) << assembly::disassemble(h->insns);
  // ... but with an unknown X the guard is there
  auto v = translate(std::vector<Insn>{I(Op::LdxMem, 0), I(Op::LdHInd, 14), I(Op::RetA)});
  EXPECT_FALSE(v.ok());  // M[0] never written
  v = translate(std::vector<Insn>{I(Op::LdWLen), I(Op::Tax), I(Op::LdHInd, 14), I(Op::RetA)});
  ASSERT_TRUE(v.ok());
  bool guarded = false;
  for (const auto& in : v->insns) guarded = guarded || in.op == isa::Op::Jgt32Imm;
  EXPECT_TRUE(guarded) << assembly::disassemble(v->insns);
  // rejected programs do not translate
  EXPECT_FALSE(translate(std::vector<Insn>{I(Op::DivK, 0), I(Op::RetA)}).ok());
  EXPECT_FALSE(translate(std::vector<Insn>{I(Op::LdHAbs, 12), I(Op::RetA)}, Target::Seccomp).ok());
}

// ---------------------------------------------------------------- text
TEST(CbpfText, BpfAsmFromTheKernelDocs) {
  const char* src = R"(
    ; IPv4 TCP port 80, written for bpf_asm
    ldh [12]
    jne #0x800, drop
    ldb [23]
    jneq #6, drop
    ldh [20]
    jset #0x1fff, drop
    ldxb 4*([14]&0xf)
    ldh [x + 14]
    jeq #80, pass
    ldh [x + 16]
    jne #80, drop
    pass: ret #-1
    drop: ret #0
  )";
  auto p = parse_bpf_asm(src);
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  ASSERT_EQ(p->size(), 13U);
  EXPECT_EQ((*p)[1], I(Op::JeqK, 0x800, 0, 10));  // jne: targets swapped
  EXPECT_EQ((*p)[11], I(Op::RetK, 0xffffffff));
  EXPECT_TRUE(check(*p).ok());
  // printed back and parsed again: the same program
  auto again = parse_text(print_bpf_asm(*p));
  ASSERT_TRUE(again.ok()) << again.error().to_string();
  EXPECT_EQ(*again, *p);
  // jlt / jle pseudo jumps
  auto q = parse_bpf_asm("jlt #5, yes, no\nyes: ret #1\nno: jle x, a\nret #2\na: ret #3\n");
  ASSERT_TRUE(q.ok()) << q.error().to_string();
  EXPECT_EQ((*q)[0], I(Op::JgeK, 5, 1, 0));
  EXPECT_EQ((*q)[2], I(Op::JgtX, 0, 0, 1));  // jle: if A <= X goto a
}

TEST(CbpfText, AncillaryNamesBothWays) {
  auto p = parse_text("ld #proto\nldb [type]\nld #vlan_avail\nld len\nldx #len\nld [xor_x]\nret a\n");
  ASSERT_FALSE(p.ok());  // "ld len" without '#' is not bpf_asm (we accept #len only)
  p = parse_text("ld #proto\nldb [type]\nld #vlan_avail\nld #len\nldx #len\nld [xor_x]\nret a\n");
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  EXPECT_EQ((*p)[0].k, static_cast<std::uint32_t>(kSkfAdOff));
  EXPECT_EQ((*p)[1], I(Op::LdBAbs, static_cast<std::uint32_t>(kSkfAdOff + 4)));
  EXPECT_EQ((*p)[2].k, static_cast<std::uint32_t>(kSkfAdOff + 48));
  EXPECT_EQ((*p)[3], I(Op::LdWLen));
  EXPECT_EQ((*p)[4], I(Op::LdxWLen));
  EXPECT_EQ((*p)[5].k, static_cast<std::uint32_t>(kSkfAdOff + 40));
  EXPECT_EQ(print_tcpdump_one((*p)[0], 0), "(000) ld       [proto]");
  EXPECT_EQ(print_tcpdump_one((*p)[4], 4), "(004) ldx      #pktlen");
  EXPECT_NE(print_bpf_asm(*p).find("ld #vlan_avail"), std::string::npos);
}

TEST(CbpfText, ErrorsNameLineAndColumn) {
  struct Case {
    const char* text;
    std::size_t line, column;
    const char* part;
  } cases[] = {
      {"ldh [12]\nfoo #1\n", 2, 1, "unknown mnemonic 'foo'"},
      {"ldh [12]\njeq #1, nowhere\nret #0\n", 2, 1, "undefined label 'nowhere'"},
      {"ld #0x1ffffffff\nret a\n", 1, 5, "does not fit in 32 bits"},
      {"ld [x + ]\n", 1, 9, "expected a number"},
      {"L1: ret #1\nL1: ret #2\n", 2, 1, "defined twice"},
      {"(000) ldh [12]\n(002) ret #0\n", 2, 2, "instruction number 2 where 1 was expected"},
      {"ld #nosuch\n", 1, 5, "unknown ancillary name"},
      {"ret x\n", 1, 5, "'ret' expects #k or a"},
  };
  for (const auto& c : cases) {
    auto r = parse_text(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.error().line, c.line) << c.text << ": " << r.error().to_string();
    EXPECT_EQ(r.error().column, c.column) << c.text << ": " << r.error().to_string();
    EXPECT_NE(r.error().message.find(c.part), std::string::npos) << r.error().message;
  }
}

TEST(CbpfText, DecimalAndBinaryForms) {
  auto a = parse_text("4\n40 0 0 12\n21 0 1 2048\n6 0 0 65535\n6 0 0 0\n");
  auto b = parse_text("4,40 0 0 12,21 0 1 2048,6 0 0 65535,6 0 0 0");
  ASSERT_TRUE(a.ok()) << a.error().to_string();
  ASSERT_TRUE(b.ok()) << b.error().to_string();
  EXPECT_EQ(*a, *b);
  EXPECT_EQ((*a)[1], I(Op::JeqK, 2048, 0, 1));
  EXPECT_FALSE(parse_text("3\n40 0 0 12\n").ok());  // count mismatch
  auto bytes = to_bytes(*a);
  EXPECT_EQ(bytes.size(), 32U);
  auto back = from_bytes(bytes);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, *a);
  bytes.pop_back();
  EXPECT_FALSE(from_bytes(bytes).ok());
}

// bpf_asm's C comments (the kernel's seccomp examples use them), also across
// lines; an unterminated one names its line and column.
TEST(CbpfText, BpfAsmCComments) {
  auto p = parse_bpf_asm(
      "ld [4]                  /* offsetof(struct seccomp_data, arch) */\n"
      "jne #0xc000003e, bad    /* AUDIT_ARCH_X86_64 */\n"
      "/* two\n   lines */ ld [0]\n"
      "ret #0x7fff0000 /* SECCOMP_RET_ALLOW */\n"
      "bad: ret #0\n");
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  ASSERT_EQ(p->size(), 5U);
  EXPECT_EQ((*p)[0], I(Op::LdWAbs, 4));
  EXPECT_EQ((*p)[2], I(Op::LdWAbs, 0));
  EXPECT_EQ((*p)[4], I(Op::RetK, 0));
  EXPECT_TRUE(check_seccomp(*p).ok());
  auto bad = parse_bpf_asm("ret #0\n  ld [0] /* never closed\nret #1\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().line, 2U);
  EXPECT_EQ(bad.error().column, 10U);
  EXPECT_NE(bad.error().message.find("unterminated comment"), std::string::npos);
}

// ------------------------------------------- fuzz regressions (both engines)
namespace {

constexpr Engine kEngines[] = {Engine::Jit, Engine::Interpreter};

std::uint32_t run_engine(const std::vector<Insn>& prog, Engine engine, const std::vector<std::uint8_t>& pkt,
                         const SkbContext& ctx, const CheckOptions& opts = {}) {
  auto f = Filter::create(prog, Target::Socket, opts, engine);
  EXPECT_TRUE(f.ok()) << f.error().to_string() << "\n" << print_tcpdump(prog);
  if (!f.ok()) return 0xdeadbeef;
  return f->run(pkt, ctx);
}

// libpcap's bpf_filter on the same program and packet (caplen = wirelen).
unsigned pcap_result(const std::vector<Insn>& prog, const std::vector<std::uint8_t>& pkt) {
  std::vector<bpf_insn> bi;
  for (const Insn& in : prog) bi.push_back(bpf_insn{in.code, in.jt, in.jf, in.k});
  bpf_program bp{static_cast<u_int>(bi.size()), bi.data()};
  pcap_pkthdr h{};
  h.caplen = h.len = static_cast<bpf_u_int32>(pkt.size());
  return pcap_offline_filter(&bp, &h, pkt.data());
}

}  // namespace

// fuzz/regressions/filter/ldind_negative_net_off*: an LD IND whose X is not
// known (tax) takes the out-of-line sign dispatch for a negative X + k; that
// block reads ctx->net_off / ll_off, and the prologue did not copy the
// context to r6 when nothing else read it (SEGV at 0x38 in the JIT).
TEST(CbpfRegression, NegativeIndOffsetsOutOfLine) {
  const auto pkt = counting_packet(60);
  SkbContext ctx;  // len stays 0: nothing but the SKF bases is read from it
  ctx.net_off = 14;
  ctx.ll_off = 2;
  const auto neg = [](std::int32_t v) { return static_cast<std::uint32_t>(v); };
  struct Case {
    std::uint32_t a;  // X = A (unknown to the translation), then ld [x + k]
    Op op;
    std::uint32_t k;
    std::uint32_t want;
  };
  const Case cases[] = {
      {neg(kSkfNetOff + 5), Op::LdBInd, 4, 14 + 9},                 // SKF_NET_OFF area, byte
      {neg(kSkfNetOff), Op::LdHInd, 2, (16U << 8) | 17U},           // SKF_NET_OFF area, half
      {neg(kSkfLlOff + 8), Op::LdWInd, 2, 0x0c0d0e0fU},             // SKF_LL_OFF area, word
      {neg(-20), Op::LdBInd, 4, 0},                                 // plain negative: 0
      {neg(-1), Op::LdWInd, 0, 0},                                  // plain negative: 0
      {neg(kSkfLlOff - 1), Op::LdHInd, 0, 0},                       // below SKF_LL_OFF: 0
      {neg(kSkfNetOff + 60), Op::LdBInd, 0, 0},                     // past the end in the net area: 0
      {10, Op::LdHInd, 1, (11U << 8) | 12U},                        // fast path still fine
  };
  for (const Case& c : cases) {
    const std::vector<Insn> prog = {I(Op::LdImm, c.a), I(Op::Tax), I(c.op, c.k), I(Op::JeqK, 0x12345678, 0, 1),
                                    I(Op::RetK, 1), I(Op::RetA)};
    for (const Engine e : kEngines) {
      SCOPED_TRACE(std::string(engine_name(e)) + "\n" + print_tcpdump(prog));
      EXPECT_EQ(run_engine(prog, e, pkt, ctx), c.want);
    }
    // libpcap has no SKF areas (0 there); elsewhere it must agree.
    const auto sum = static_cast<std::int32_t>(c.a + c.k);
    if (sum >= 0 || sum < kSkfLlOff || c.want == 0) {
      EXPECT_EQ(pcap_result(prog, pkt), c.want) << print_tcpdump(prog);
    }
  }
  // The translation of such a program reads the context in its out-of-line
  // block (ctx->net_off, ll_off): from r1, where it arrives (no helper
  // call), and Translation::ctx_reads says so (run_frame builds it).
  auto tr = translate(std::vector<Insn>{I(Op::LdImm, 0), I(Op::Tax), I(Op::LdBInd, 4), I(Op::RetA)});
  ASSERT_TRUE(tr.ok());
  bool reads_ctx = false;
  for (const auto& in : tr->insns) reads_ctx = reads_ctx || (in.op == isa::Op::LdxW && in.src == 1);
  EXPECT_TRUE(reads_ctx) << "the out-of-line block reads ctx->net_off";
  EXPECT_EQ(tr->ctx_reads, ctx_bit(offsetof(SkbContext, net_off)) | ctx_bit(offsetof(SkbContext, ll_off)));
  // with a helper call the context is copied to r6 first
  auto h = translate(std::vector<Insn>{I(Op::LdWAbs, static_cast<std::uint32_t>(kSkfAdOff + 56)), I(Op::Tax),
                                       I(Op::LdBInd, 4), I(Op::RetA)});
  ASSERT_TRUE(h.ok());
  ASSERT_FALSE(h->insns.empty());
  EXPECT_EQ(h->insns[0], isa::make(isa::Op::MovReg, 6, 1));
}

// fuzz/regressions/cbpf/ldabs_out_of_packet and the general rule: a packet
// load that does not fit in the captured bytes ends the run with 0, for
// LD ABS and LD IND (X known small, and X unknown: the guarded fast path) of
// every size, on both engines, as libpcap's bpf_filter does.
TEST(CbpfRegression, OutOfPacketLoadsReturnZero) {
  struct Load {
    Op abs, ind;
    std::uint32_t size;
  };
  const Load loads[] = {{Op::LdBAbs, Op::LdBInd, 1}, {Op::LdHAbs, Op::LdHInd, 2}, {Op::LdWAbs, Op::LdWInd, 4}};
  std::size_t compared = 0;
  for (const Load& l : loads) {
    for (const std::uint32_t off : {0U, 3U, 19U, 40U}) {
      const std::vector<std::vector<Insn>> progs = {
          {I(l.abs, off), I(Op::JeqK, 0x7fffffff, 0, 1), I(Op::RetK, 1), I(Op::RetK, 0xff7fff)},
          {I(Op::LdxImm, off / 2), I(l.ind, off - off / 2), I(Op::JeqK, 0x7fffffff, 0, 1), I(Op::RetK, 1),
           I(Op::RetA)},
          {I(Op::LdImm, off / 3), I(Op::Tax), I(Op::LdImm, 0), I(l.ind, off - off / 3), I(Op::JeqK, 0x7fffffff, 0, 1),
           I(Op::RetK, 1), I(Op::RetA)},
      };
      for (std::size_t len = 0; len <= off + l.size + 1; ++len) {
        auto pkt = counting_packet(len);
        for (auto& b : pkt) ++b;  // no zero byte: a load that fits never gives 0
        SkbContext ctx;
        ctx.len = static_cast<std::uint32_t>(len);
        const bool fits = len >= off + l.size;
        for (std::size_t pi = 0; pi < progs.size(); ++pi) {
          const unsigned want = pcap_result(progs[pi], pkt);
          if (fits) {
            EXPECT_NE(want, 0U);
          } else {
            EXPECT_EQ(want, 0U);
          }
          for (const Engine e : kEngines) {
            SCOPED_TRACE(std::string(engine_name(e)) + " packet of " + std::to_string(len) + " bytes\n" +
                         print_tcpdump(progs[pi]));
            EXPECT_EQ(run_engine(progs[pi], e, pkt, ctx), want);
            ++compared;
          }
        }
      }
    }
  }
  EXPECT_GT(compared, 300U);

  // The fuzz input itself: "ldb [19]" on its 40-byte packet loads (0x13 ->
  // ret #16744447); on a 19-byte packet the load fails (0).
  const std::vector<Insn> fuzz_prog = {I(Op::LdImm, 0x13000800), I(Op::LdImm, 0), I(Op::LdBAbs, 19),
                                       I(Op::JeqK, 0x25, 0, 0), I(Op::LdImm, 6), I(Op::RetK, 16744447)};
  for (const std::size_t len : {40U, 20U, 19U, 0U}) {
    const auto pkt = counting_packet(len);
    SkbContext ctx;
    ctx.len = static_cast<std::uint32_t>(len);
    const unsigned want = pcap_result(fuzz_prog, pkt);
    EXPECT_EQ(want, len >= 20 ? 16744447U : 0U);
    for (const Engine e : kEngines) EXPECT_EQ(run_engine(fuzz_prog, e, pkt, ctx), want) << engine_name(e) << " " << len;
  }
}

// The expressions of fuzz/regressions/filter: libpcap's code (optimized and
// not) on the fuzz target's packet and on shorter ones, both engines against
// pcap_offline_filter.
TEST(CbpfRegression, NegativeOffsetExpressionsAgreeWithLibpcap) {
  const char* const exprs[] = {"tcp[tcpflags * -tcp-syn] = 1",
                               "tcp[tcpflags] = tcp[tcpflags * -tcp[tcpflags * --tcp-syn] * 2]",
                               "tcp[tcpflags * -tcp-syn] = 0", "ip[-2] = 0 or tcp[tcpflags - 30:2] = 0"};
  std::size_t compared = 0;
  for (const char* expr : exprs) {
    for (const int optimize : {0, 1}) {
      std::unique_ptr<pcap_t, void (*)(pcap_t*)> dead(pcap_open_dead(DLT_EN10MB, 65535), pcap_close);
      ASSERT_TRUE(dead);
      bpf_program bp{};
      ASSERT_EQ(pcap_compile(dead.get(), &bp, expr, optimize, PCAP_NETMASK_UNKNOWN), 0) << expr << ": " << pcap_geterr(dead.get());
      std::vector<Insn> prog(bp.bf_len);
      for (unsigned i = 0; i < bp.bf_len; ++i)
        prog[i] = {bp.bf_insns[i].code, bp.bf_insns[i].jt, bp.bf_insns[i].jf, bp.bf_insns[i].k};
      std::vector<std::uint8_t> pkt = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00, 0x45, 0, 0, 40, 0, 0, 0x40, 0,
                                       64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x1f, 0x90, 0x00, 0x50};
      pkt.insert(pkt.end(), expr, expr + std::strlen(expr));
      CheckOptions co;
      co.allow_backward_ja = true;
      for (std::size_t len = pkt.size(); len + 12 > pkt.size() && len > 30; len -= 3) {
        const std::vector<std::uint8_t> p(pkt.begin(), pkt.begin() + static_cast<std::ptrdiff_t>(len));
        pcap_pkthdr h{};
        h.caplen = h.len = static_cast<bpf_u_int32>(p.size());
        const unsigned want = pcap_offline_filter(&bp, &h, p.data());
        const SkbContext ctx = make_context(p, h.len, LinkLayer::Ethernet);
        for (const Engine e : kEngines) {
          EXPECT_EQ(run_engine(prog, e, p, ctx, co), want) << expr << " (" << engine_name(e) << ", " << len << " bytes)\n"
                                                          << print_tcpdump(prog);
          ++compared;
        }
      }
      pcap_freecode(&bp);
    }
  }
  EXPECT_GT(compared, 30U);
}
