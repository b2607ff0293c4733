// Batched native filtering (src/cbpf/batch.cpp, Filter::run_batch) against
// the per-packet path (Filter::run_frame) and libpcap: every packet's return
// value must be the same.
//   - every expression of the corpus (tests/cbpf/corpus.hpp) over 4,000
//     generated packets (truncated and runt frames included) and 500 packets
//     of random bytes and lengths; pcap_offline_filter agrees too;
//   - 2,000 random classic programs (all ALU ops with K and X, division by a
//     zero X, M[] stores and loads, [x + k] with X + k negative (punts) and
//     past the end, BPF_LEN, jumps of every kind to every later
//     instruction, returns of A and of constants mid-program);
//   - which programs are batched and why not (ancillary loads, libpcap's
//     backward jumps, the interpreter), batches of every length.
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <cstdio>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "cbpf/batch.hpp"
#include "cbpf/cbpf.hpp"
#include "cbpf/exec.hpp"
#include "corpus.hpp"
#include "packets.hpp"

using namespace userbpf;
using cbpf::Frame;
using cbpf::Insn;

namespace {

struct Packets {
  std::vector<std::vector<std::uint8_t>> data;
  std::vector<std::uint32_t> wirelen;
  std::vector<Frame> frames;
};

// Generated frames (seed 4242) and random byte strings of 0..99 bytes.
const Packets& packets() {
  static const Packets p = [] {
    Packets out;
    userbpf::testing::PacketGen gen(4242);
    for (int i = 0; i < 4000; ++i) {
      auto pk = gen.next();
      out.data.push_back(std::move(pk.data));
      out.wirelen.push_back(pk.wirelen);
    }
    std::mt19937 rng(77);
    for (int i = 0; i < 500; ++i) {
      std::vector<std::uint8_t> d(rng() % 100);
      for (auto& b : d) b = static_cast<std::uint8_t>(rng() % 4 == 0 ? rng() : rng() % 8);
      out.wirelen.push_back(static_cast<std::uint32_t>(d.size() + rng() % 3 * 50));
      out.data.push_back(std::move(d));
    }
    for (std::size_t i = 0; i < out.data.size(); ++i)
      out.frames.push_back({out.data[i].data(), static_cast<std::uint32_t>(out.data[i].size()), out.wirelen[i]});
    return out;
  }();
  return p;
}

std::vector<Insn> compile_expr(const std::string& expr, bpf_program* keep) {
  pcap_t* dead = pcap_open_dead(DLT_EN10MB, 262144);
  std::vector<Insn> out;
  if (pcap_compile(dead, keep, expr.c_str(), 1, userbpf::testing::kNetmask) == 0) {
    for (u_int i = 0; i < keep->bf_len; ++i)
      out.push_back({keep->bf_insns[i].code, keep->bf_insns[i].jt, keep->bf_insns[i].jf, keep->bf_insns[i].k});
  } else {
    ADD_FAILURE() << "pcap_compile('" << expr << "'): " << pcap_geterr(dead);
  }
  pcap_close(dead);
  return out;
}

// The classic program of `expr` (Ethernet) in a JIT Filter.
cbpf::Filter jit_filter(const std::string& expr, std::vector<Insn>* prog = nullptr) {
  bpf_program bp{};
  auto insns = compile_expr(expr, &bp);
  pcap_freecode(&bp);
  auto f = cbpf::Filter::create(insns, cbpf::Target::Socket, {}, cbpf::Engine::Jit);
  if (!f.ok()) throw std::runtime_error(expr + ": " + f.error().to_string());
  if (prog != nullptr) *prog = insns;
  return std::move(*f);
}

// Compares run_batch with run_frame for every packet; returns the number of
// mismatches (the first few are reported).
std::size_t compare(cbpf::Filter& f, const std::string& what, const Packets& p) {
  std::vector<std::uint32_t> want(p.frames.size()), got(p.frames.size(), 0xdeadbeef);
  f.set_batched(false);
  std::size_t kept_want = 0;
  for (std::size_t i = 0; i < p.frames.size(); ++i) {
    want[i] = f.run_frame({p.frames[i].data, p.frames[i].caplen}, p.frames[i].wirelen, cbpf::LinkLayer::Ethernet);
    kept_want += want[i] != 0;
  }
  f.set_batched(true);
  const std::size_t kept = f.run_batch(p.frames, got, cbpf::LinkLayer::Ethernet);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < p.frames.size(); ++i) {
    if (got[i] == want[i]) continue;
    if (++bad <= 3)
      ADD_FAILURE() << what << ": packet " << i << " (caplen " << p.frames[i].caplen << "): batch " << got[i]
                    << ", per packet " << want[i];
  }
  EXPECT_EQ(kept, kept_want) << what;
  return bad;
}

}  // namespace

// Every corpus expression: the batch keeps exactly what the per-packet path
// and pcap_offline_filter keep, with the same return values.
TEST(CbpfBatch, CorpusAgreesWithPerPacketAndLibpcap) {
  const Packets& p = packets();
  std::size_t batched = 0, exprs = 0, nontrivial = 0;
  for (const auto& expr : userbpf::testing::corpus()) {
    bpf_program bp{};
    const auto prog = compile_expr(expr, &bp);
    if (prog.empty()) continue;
    ++exprs;
    cbpf::CheckOptions opts;
    opts.allow_backward_ja = true;
    auto f = cbpf::Filter::create(prog, cbpf::Target::Socket, opts, cbpf::Engine::Jit);
    ASSERT_TRUE(f.ok()) << expr << ": " << f.error().to_string();
    EXPECT_EQ(f->batched(), f->batchable() && prog.size() <= cbpf::Filter::kBatchPreferred) << expr;
    if (f->batchable()) ++batched;
    else EXPECT_FALSE(f->batch_note().empty()) << expr;
    EXPECT_EQ(compare(*f, "'" + expr + "'", p), 0U);
    std::vector<std::uint32_t> got(p.frames.size());
    const std::size_t kept = f->run_batch(p.frames, got, cbpf::LinkLayer::Ethernet);
    if (kept != 0 && kept != p.frames.size()) ++nontrivial;
    for (std::size_t i = 0; i < p.frames.size(); ++i) {
      pcap_pkthdr h{};
      h.caplen = p.frames[i].caplen;
      h.len = p.frames[i].wirelen;
      const auto want = static_cast<std::uint32_t>(pcap_offline_filter(&bp, &h, p.frames[i].data));
      if (got[i] != want) {
        ADD_FAILURE() << "'" << expr << "' packet " << i << ": batch " << got[i] << ", libpcap " << want;
        break;
      }
    }
    pcap_freecode(&bp);
  }
  std::printf("[ batch ] %zu expressions, %zu batched, %zu keep some packets and drop others\n", exprs, batched,
              nontrivial);
  EXPECT_GE(exprs, 300U);
  EXPECT_GE(batched, exprs - 5);  // only protochain (backward jumps) is not batched
  EXPECT_GE(nontrivial, exprs / 2);
}

// Random programs over every classic instruction the batch compiler takes.
TEST(CbpfBatch, RandomProgramsAgreeWithPerPacket) {
  using namespace cbpf::field;
  const Packets& p = packets();
  std::mt19937 rng(2024);
  auto r32 = [&] { return static_cast<std::uint32_t>(rng()); };
  auto pick = [&](std::uint32_t n) { return r32() % n; };
  const std::uint32_t alu_ops[] = {kAdd, kSub, kMul, kDiv, kOr, kAnd, kLsh, kRsh, kMod, kXor};
  const std::uint32_t jmp_ops[] = {kJeq, kJgt, kJge, kJset};
  const std::uint16_t sizes[] = {kW, kH, kB};
  std::size_t tested = 0, punting = 0, with_punts = 0;
  while (tested < 2000) {
    const std::uint32_t body = 4 + pick(36);
    const std::uint32_t rets = 3;
    const std::uint32_t n = 5 + body + rets;
    std::vector<Insn> prog;
    auto u16 = [](std::uint32_t c) { return static_cast<std::uint16_t>(c); };
    prog.push_back({u16(kLd | kW | kImm), 0, 0, r32()});
    for (std::uint32_t m = 0; m < 4; ++m) prog.push_back({u16(kSt), 0, 0, m});
    for (std::uint32_t i = 0; i < body; ++i) {
      const auto pc = static_cast<std::uint32_t>(prog.size());
      const std::uint32_t left = n - pc - 1;  // instructions after this one
      Insn in;
      switch (pick(14)) {
        case 0: in = {u16(kLd | sizes[pick(3)] | kAbs), 0, 0, pick(8) == 0 ? 0x7ffffff0 + pick(16) : pick(90)}; break;
        case 1: {
          const std::uint32_t k = pick(6) == 0 ? static_cast<std::uint32_t>(cbpf::kSkfNetOff) + pick(20)
                                  : pick(6) == 0 ? 0xfffffff0 + pick(16)
                                                 : pick(60);
          in = {u16(kLd | sizes[pick(3)] | kInd), 0, 0, k};
          break;
        }
        case 2: in = {u16(kLdx | kW | kImm), 0, 0, pick(4) == 0 ? 0x80000000U + pick(64) : pick(4) == 0 ? r32() : pick(70)}; break;
        case 3: in = {u16(kLdx | kB | kMsh), 0, 0, pick(40)}; break;
        case 4: in = {u16(pick(2) == 0 ? kLd | kW | kLen : kLdx | kW | kLen), 0, 0, 0}; break;
        case 5: in = {u16(pick(2) == 0 ? kLd | kW | kMem : kLdx | kW | kMem), 0, 0, pick(4)}; break;
        case 6: in = {u16(pick(2) == 0 ? kSt : kStx), 0, 0, pick(4)}; break;
        case 7: {
          const std::uint32_t op = alu_ops[pick(10)];
          std::uint32_t k = pick(3) == 0 ? r32() : pick(40);
          if (op == kLsh || op == kRsh) k %= 32;
          if ((op == kDiv || op == kMod) && k == 0) k = 3;
          in = {u16(kAlu | op | kK), 0, 0, k};
          break;
        }
        case 8: in = {u16(kAlu | alu_ops[pick(10)] | kX), 0, 0, 0}; break;
        case 9: in = {u16(pick(3) == 0 ? kAlu | kNeg : pick(2) == 0 ? kMisc | kTax : kMisc | kTxa), 0, 0, 0}; break;
        case 10: in = {u16(kJmp | kJa), 0, 0, pick(left)}; break;
        case 11: in = {u16(kRet | (pick(2) == 0 ? kA : kK)), 0, 0, pick(3) == 0 ? 0 : r32()}; break;
        default: {
          in = {u16(kJmp | jmp_ops[pick(4)] | (pick(3) == 0 ? kX : kK)), static_cast<std::uint8_t>(pick(std::min(left, 255U))),
                static_cast<std::uint8_t>(pick(std::min(left, 255U))), pick(3) == 0 ? r32() : pick(70)};
          break;
        }
      }
      prog.push_back(in);
    }
    prog.push_back({u16(kRet | kA), 0, 0, 0});
    prog.push_back({u16(kRet | kK), 0, 0, 0});
    prog.push_back({u16(kRet | kK), 0, 0, 0xffff});
    if (!cbpf::check(prog).ok()) continue;
    auto f = cbpf::Filter::create(prog, cbpf::Target::Socket, {}, cbpf::Engine::Jit);
    ASSERT_TRUE(f.ok()) << f.error().to_string();
    ASSERT_TRUE(f->batchable()) << f->batch_note() << "\n" << cbpf::print_bpf_asm(prog);
    auto bc = cbpf::BatchCode::compile(prog);
    ASSERT_TRUE(bc.ok());
    if (bc->may_punt()) {
      ++punting;
      std::vector<std::uint32_t> out(cbpf::Filter::kBatch), punts(cbpf::Filter::kBatch);
      if (bc->run(p.frames.data(), out.size(), out.data(), punts.data()) != 0) ++with_punts;
    }
    const std::size_t bad = compare(*f, "program " + std::to_string(tested), p);
    ASSERT_EQ(bad, 0U) << cbpf::print_bpf_asm(prog);
    ++tested;
  }
  std::printf("[ batch ] %zu random programs agree; %zu may punt, %zu punted packets\n", tested, punting, with_punts);
  EXPECT_GT(with_punts, 20U);
}

// What is batched and what is not, with the reason.
TEST(CbpfBatch, Eligibility) {
  std::vector<Insn> prog;
  auto jit = std::optional<cbpf::Filter>(jit_filter("tcp port 80", &prog));
  EXPECT_TRUE(jit->batched());
  EXPECT_EQ(jit->batch_note(), "");
  jit->set_direct(false);
  EXPECT_FALSE(jit->batched());
  jit->set_direct(true);
  EXPECT_TRUE(jit->batched());
  // Longer programs are batchable but run per packet unless asked.
  std::vector<Insn> longer;
  auto lf = std::optional<cbpf::Filter>(jit_filter("tcp and (port 80 or port 443 or port 8080) and not host 10.0.0.5", &longer));
  ASSERT_GT(longer.size(), cbpf::Filter::kBatchPreferred);
  EXPECT_TRUE(lf->batchable());
  EXPECT_FALSE(lf->batched());
  lf->set_batched(true);
  EXPECT_TRUE(lf->batched());

  auto interp = cbpf::Filter::create(prog, cbpf::Target::Socket, {}, cbpf::Engine::Interpreter);
  ASSERT_TRUE(interp.ok());
  EXPECT_FALSE(interp->batched());

  using namespace cbpf::field;
  const std::vector<Insn> anc = {{kLd | kW | kAbs, 0, 0, static_cast<std::uint32_t>(cbpf::kSkfAdOff)},  // ld [proto]
                                 {kRet | kA, 0, 0, 0}};
  auto a = cbpf::Filter::create(anc, cbpf::Target::Socket, {}, cbpf::Engine::Jit);
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->batched());
  EXPECT_NE(a->batch_note().find("insn 0: ancillary load"), std::string::npos) << a->batch_note();

  const std::vector<Insn> net = {{kLd | kB | kAbs, 0, 0, static_cast<std::uint32_t>(cbpf::kSkfNetOff) + 9},
                                 {kRet | kA, 0, 0, 0}};
  auto b = cbpf::BatchCode::compile(net);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().to_string().find("insn 0: load at a negative offset"), std::string::npos);

  bpf_program pc{};
  auto loop = compile_expr("ip6 protochain 6", &pc);
  pcap_freecode(&pc);
  cbpf::CheckOptions opts;
  opts.allow_backward_ja = true;
  auto l = cbpf::Filter::create(loop, cbpf::Target::Socket, opts, cbpf::Engine::Jit);
  ASSERT_TRUE(l.ok());
  EXPECT_FALSE(l->batched());
  EXPECT_NE(l->batch_note().find("backward"), std::string::npos) << l->batch_note();

  std::vector<Insn> big(cbpf::BatchCode::kMaxInsns + 1, Insn{kLd | kW | kImm, 0, 0, 1});
  big.back() = {kRet | kA, 0, 0, 0};
  auto g = cbpf::BatchCode::compile(big);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.error().to_string().find("not batched (limit"), std::string::npos) << g.error().to_string();
}

// Batches of every length up to a few chunks, and the empty batch.
TEST(CbpfBatch, EveryBatchLength) {
  auto f = std::optional<cbpf::Filter>(jit_filter("udp or (tcp and len > 100)"));
  ASSERT_TRUE(f->batched());
  const Packets& p = packets();
  std::vector<std::uint32_t> want(p.frames.size());
  for (std::size_t i = 0; i < p.frames.size(); ++i)
    want[i] = f->run_frame({p.frames[i].data, p.frames[i].caplen}, p.frames[i].wirelen, cbpf::LinkLayer::Ethernet);
  EXPECT_EQ(f->run_batch({}, {}, cbpf::LinkLayer::Ethernet), 0U);
  for (std::size_t len = 1; len <= 3 * cbpf::Filter::kBatch + 1; len += len < 20 ? 1 : 37) {
    std::vector<std::uint32_t> got(len + 1, 0xdeadbeef);
    const std::size_t off = len % 7;
    f->run_batch(std::span(p.frames).subspan(off, len), std::span(got).first(len), cbpf::LinkLayer::Ethernet);
    for (std::size_t i = 0; i < len; ++i) ASSERT_EQ(got[i], want[off + i]) << "batch of " << len << ", packet " << i;
    EXPECT_EQ(got[len], 0xdeadbeefU) << "wrote past the batch of " << len;
  }
}
