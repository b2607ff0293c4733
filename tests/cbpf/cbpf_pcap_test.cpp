// Differential tests: tcpdump expressions compiled by libpcap, run by
// userbpf (classic -> eBPF -> interpreter) and by libpcap's own
// pcap_offline_filter over a generated capture written with pcap_dump and
// read back with pcap_open_offline. The return value of every packet must be
// identical (not only kept/dropped). Also: the `userbpf filter` command on
// the same file, and the text printers against libpcap's bpf_image.
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cbpf/cbpf.hpp"
#include "cbpf/exec.hpp"
#include "corpus.hpp"
#include "packets.hpp"

using namespace userbpf;
using userbpf::testing::Packet;
using userbpf::testing::PacketGen;
using userbpf::testing::corpus;
using userbpf::testing::kNetmask;

namespace {

constexpr std::size_t kPackets = 4000;

struct Capture {
  std::vector<pcap_pkthdr> hdrs;
  std::vector<std::vector<std::uint8_t>> data;
  std::string path;
};

// Writes the generated capture with pcap_dump and reads it back.
const Capture& capture() {
  static const Capture cap = [] {
    Capture c;
    PacketGen gen(12345);
    std::vector<Packet> pkts;
    for (std::size_t i = 0; i < kPackets; ++i) pkts.push_back(gen.next());
    c.path = (std::filesystem::temp_directory_path() / ("userbpf-cbpf-" + std::to_string(getpid()) + ".pcap")).string();
    if (!userbpf::testing::write_pcap(c.path, pkts)) return c;
    static std::string cleanup;
    cleanup = c.path;
    std::atexit([] { std::filesystem::remove(cleanup); });
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* p = pcap_open_offline(c.path.c_str(), err);
    if (p == nullptr) return c;
    pcap_pkthdr* h = nullptr;
    const u_char* d = nullptr;
    while (pcap_next_ex(p, &h, &d) == 1) {
      c.hdrs.push_back(*h);
      c.data.emplace_back(d, d + h->caplen);
    }
    pcap_close(p);
    return c;
  }();
  return cap;
}

std::vector<cbpf::Insn> compile(const std::string& expr, int dlt = DLT_EN10MB, bool* ok = nullptr,
                                bpf_program* keep = nullptr) {
  pcap_t* dead = pcap_open_dead(dlt, 262144);
  bpf_program bp{};
  std::vector<cbpf::Insn> out;
  const bool good = pcap_compile(dead, &bp, expr.c_str(), 1, kNetmask) == 0;
  if (ok != nullptr) *ok = good;
  if (good) {
    for (u_int i = 0; i < bp.bf_len; ++i)
      out.push_back({bp.bf_insns[i].code, bp.bf_insns[i].jt, bp.bf_insns[i].jf, bp.bf_insns[i].k});
    if (keep != nullptr)
      *keep = bp;
    else
      pcap_freecode(&bp);
  } else {
    ADD_FAILURE() << "pcap_compile('" << expr << "'): " << pcap_geterr(dead);
  }
  pcap_close(dead);
  return out;
}

// Text forms carry only operand fields; libpcap leaves junk in unused ones
// (e.g. k of `tax`). Zero them for comparisons.
std::vector<cbpf::Insn> normalized(std::vector<cbpf::Insn> prog) {
  for (auto& in : prog) {
    const cbpf::OpInfo* row = cbpf::lookup(in.code);
    if (row == nullptr) continue;
    using K = cbpf::Kind;
    const bool cond = row->kind == K::JmpK || row->kind == K::JmpX;
    if (!cond) in.jt = in.jf = 0;
    if (row->kind == K::Tax || row->kind == K::Txa || row->kind == K::Neg || row->kind == K::RetA ||
        row->kind == K::AluX || row->kind == K::JmpX || row->kind == K::LdLen || row->kind == K::LdxLen)
      in.k = 0;
  }
  return prog;
}


}  // namespace

TEST(CbpfPcap, CaptureWrittenAndReadBack) {
  const Capture& c = capture();
  ASSERT_EQ(c.hdrs.size(), kPackets) << "pcap_dump/pcap_open_offline round trip of " << c.path;
  std::size_t truncated = 0;
  for (const auto& h : c.hdrs) truncated += h.caplen < h.len;
  EXPECT_GT(truncated, 10U);
}

// The corpus: every expression, every packet, the exact return value.
TEST(CbpfPcap, CorpusAgreesWithPcapOfflineFilter) {
  const Capture& c = capture();
  ASSERT_EQ(c.hdrs.size(), kPackets);
  const auto exprs = corpus();
  ASSERT_GE(exprs.size(), 300U);
  std::size_t agreed = 0, nontrivial = 0, backward = 0;
  for (const auto& expr : exprs) {
    bpf_program bp{};
    bool ok = false;
    const auto prog = compile(expr, DLT_EN10MB, &ok, &bp);
    if (!ok) continue;
    // The kernel's rules reject only libpcap's backward jumps (protochain loops).
    const auto kernel = cbpf::check(prog);
    EXPECT_EQ(kernel.ok(), !cbpf::has_backward_ja(prog)) << expr;
    backward += cbpf::has_backward_ja(prog);
    cbpf::CheckOptions copts;
    copts.allow_backward_ja = true;
    // both engines: the JIT (default) and the interpreter
    auto filter = cbpf::Filter::create(prog, cbpf::Target::Socket, copts);
    auto interp = cbpf::Filter::create(prog, cbpf::Target::Socket, copts, cbpf::Engine::Interpreter);
    ASSERT_TRUE(filter.ok()) << expr << ": " << filter.error().to_string();
    ASSERT_TRUE(interp.ok()) << expr << ": " << interp.error().to_string();
    std::size_t mismatches = 0, kept = 0;
    std::string first;
    for (std::size_t i = 0; i < c.hdrs.size(); ++i) {
      const u_int want = pcap_offline_filter(&bp, &c.hdrs[i], c.data[i].data());
      const std::span<const std::uint8_t> pkt(c.data[i]);
      const cbpf::SkbContext ctx = cbpf::make_context(pkt, c.hdrs[i].len, cbpf::LinkLayer::Ethernet);
      const std::uint32_t got = filter->run(pkt, ctx);
      const std::uint32_t got_interp = interp->run(pkt, ctx);
      kept += want != 0;
      if ((got != want || got_interp != want) && mismatches++ == 0)
        first = "packet " + std::to_string(i) + ": libpcap " + std::to_string(want) + ", userbpf jit " +
                std::to_string(got) + ", interpreter " + std::to_string(got_interp);
    }
    pcap_freecode(&bp);
    EXPECT_EQ(mismatches, 0U) << "'" << expr << "': " << mismatches << " packets differ; first " << first;
    agreed += mismatches == 0;
    nontrivial += kept != 0 && kept != c.hdrs.size();
  }
  EXPECT_EQ(agreed, exprs.size());
  // The capture must exercise the expressions: most keep some packets and drop others.
  EXPECT_GT(nontrivial, exprs.size() * 3 / 4);
  std::printf("[ corpus ] %zu expressions, %zu agree with pcap_offline_filter on %zu packets, %zu non-trivial, "
              "%zu with backward jumps (kernel rejects; libpcap mode runs them)\n",
              exprs.size(), agreed, c.hdrs.size(), nontrivial, backward);
}

// Every printed line equals libpcap's bpf_image, for the whole corpus, and
// the printed listing / bpf_asm / decimal forms parse back to the program.
TEST(CbpfPcap, TextFormsMatchBpfImageAndRoundTrip) {
  for (const auto& expr : corpus()) {
    const auto prog = compile(expr);
    for (std::size_t pc = 0; pc < prog.size(); ++pc) {
      bpf_insn bi{prog[pc].code, prog[pc].jt, prog[pc].jf, prog[pc].k};
      ASSERT_EQ(cbpf::print_tcpdump_one(prog[pc], pc), bpf_image(&bi, static_cast<int>(pc))) << expr;
    }
    for (const std::string& text :
         {cbpf::print_tcpdump(prog), cbpf::print_bpf_asm(prog), cbpf::print_decimal(prog), cbpf::print_c_array(prog)}) {
      auto back = cbpf::parse_text(text);
      ASSERT_TRUE(back.ok()) << expr << ": " << back.error().to_string() << "\n" << text;
      EXPECT_EQ(normalized(*back), normalized(prog)) << expr << "\n" << text;
    }
  }
}

// Other link types: raw IP and Linux cooked captures.
TEST(CbpfPcap, OtherLinkTypesAgree) {
  const Capture& c = capture();
  for (const int dlt : {DLT_RAW, DLT_LINUX_SLL}) {
    for (const char* expr : {"tcp port 80", "udp", "ip6 and tcp", "host 10.0.0.1", "ip[8] > 64", "len > 100"}) {
      bpf_program bp{};
      bool ok = false;
      const auto prog = compile(expr, dlt, &ok, &bp);
      if (!ok) continue;
      auto filter = cbpf::Filter::create(prog);
      ASSERT_TRUE(filter.ok()) << filter.error().to_string();
      for (std::size_t i = 0; i < c.hdrs.size(); ++i) {
        // reuse the Ethernet bytes minus the link header as the "packet"
        const std::size_t skip = dlt == DLT_RAW ? 14 : 0;
        if (c.data[i].size() < skip) continue;
        pcap_pkthdr h = c.hdrs[i];
        h.caplen -= static_cast<bpf_u_int32>(skip);
        h.len -= static_cast<bpf_u_int32>(skip);
        const u_char* d = c.data[i].data() + skip;
        const std::span<const std::uint8_t> pkt(d, h.caplen);
        ASSERT_EQ(filter->run(pkt, cbpf::make_context(pkt, h.len, cbpf::LinkLayer::RawIp)),
                  pcap_offline_filter(&bp, &h, d))
            << expr << " dlt " << dlt << " packet " << i;
      }
      pcap_freecode(&bp);
    }
  }
}

// The command: `userbpf filter EXPR -r IN -w OUT --count` keeps what libpcap keeps.
TEST(CbpfPcap, FilterCommandMatches) {
  const std::string tool = std::string(USERBPF_BINARY_DIR) + "/bin/userbpf";
  if (!std::filesystem::exists(tool)) GTEST_SKIP() << "userbpf binary not built: " << tool;
  const Capture& c = capture();
  for (const char* expr : {"tcp port 80", "vlan and udp", "ip6 or arp", "not ip"}) {
    bpf_program bp{};
    bool ok = false;
    compile(expr, DLT_EN10MB, &ok, &bp);
    ASSERT_TRUE(ok);
    std::size_t want = 0;
    for (std::size_t i = 0; i < c.hdrs.size(); ++i) want += pcap_offline_filter(&bp, &c.hdrs[i], c.data[i].data()) != 0;
    pcap_freecode(&bp);
    const std::string out = c.path + ".out.pcap";
    const std::string cmd = tool + " filter '" + expr + "' -r " + c.path + " -w " + out + " --count";
    FILE* f = popen(cmd.c_str(), "r");
    ASSERT_NE(f, nullptr);
    char buf[64] = {};
    ASSERT_NE(fgets(buf, sizeof buf, f), nullptr) << cmd;
    ASSERT_EQ(pclose(f), 0) << cmd;
    EXPECT_EQ(std::strtoull(buf, nullptr, 10), want) << cmd;
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* p = pcap_open_offline(out.c_str(), err);
    ASSERT_NE(p, nullptr) << err;
    std::size_t n = 0;
    pcap_pkthdr* h = nullptr;
    const u_char* d = nullptr;
    while (pcap_next_ex(p, &h, &d) == 1) ++n;
    pcap_close(p);
    EXPECT_EQ(n, want) << out;
    std::filesystem::remove(out);
  }
}

// pcapng input (written by hand: SHB, IDB, EPBs) through `userbpf filter`.
TEST(CbpfPcap, FilterCommandReadsPcapng) {
  const std::string tool = std::string(USERBPF_BINARY_DIR) + "/bin/userbpf";
  if (!std::filesystem::exists(tool)) GTEST_SKIP() << "userbpf binary not built: " << tool;
  const Capture& c = capture();
  std::vector<std::uint8_t> f;
  auto u32 = [&](std::uint32_t v) { for (int i = 0; i < 4; ++i) f.push_back(static_cast<std::uint8_t>(v >> (8 * i))); };
  auto u16 = [&](std::uint16_t v) { f.push_back(static_cast<std::uint8_t>(v)); f.push_back(static_cast<std::uint8_t>(v >> 8)); };
  u32(0x0A0D0D0A); u32(28); u32(0x1A2B3C4D); u16(1); u16(0); u32(0xffffffff); u32(0xffffffff); u32(28);  // SHB
  u32(1); u32(20); u16(DLT_EN10MB); u16(0); u32(262144); u32(20);                                       // IDB
  const std::size_t n = 500;
  for (std::size_t i = 0; i < n; ++i) {                                                                  // EPBs
    const std::uint32_t cap = c.hdrs[i].caplen, pad = (4 - cap % 4) % 4, total = 32 + cap + pad;
    u32(6); u32(total); u32(0); u32(0); u32(static_cast<std::uint32_t>(i)); u32(cap); u32(c.hdrs[i].len);
    f.insert(f.end(), c.data[i].begin(), c.data[i].end());
    f.insert(f.end(), pad, 0);
    u32(total);
  }
  const std::string path = c.path + ".pcapng";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(f.data()), static_cast<std::streamsize>(f.size()));
  for (const char* expr : {"tcp", "udp port 53", "vlan"}) {
    bpf_program bp{};
    bool ok = false;
    compile(expr, DLT_EN10MB, &ok, &bp);
    ASSERT_TRUE(ok);
    std::size_t want = 0;
    for (std::size_t i = 0; i < n; ++i) want += pcap_offline_filter(&bp, &c.hdrs[i], c.data[i].data()) != 0;
    pcap_freecode(&bp);
    const std::string cmd = tool + " filter '" + expr + "' -r " + path + " --count";
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    char buf[64] = {};
    ASSERT_NE(fgets(buf, sizeof buf, p), nullptr) << cmd;
    ASSERT_EQ(pclose(p), 0) << cmd;
    EXPECT_EQ(std::strtoull(buf, nullptr, 10), want) << cmd;
  }
  std::filesystem::remove(path);
}
