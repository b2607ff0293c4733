// The kernel as the oracle for classic BPF: random classic programs are
// attached with SO_ATTACH_FILTER to the receiving end of an AF_UNIX datagram
// socket pair; the kernel runs them on every datagram (sk_filter: drop on 0,
// trim to the return value otherwise). userbpf's verdict for the same bytes
// must predict what arrives: nothing, or min(len, ret) bytes. Invalid
// programs (mutated) must be rejected by the kernel exactly when
// cbpf::check rejects them. Skipped with the reason when the socket or the
// filter cannot be set up.
//
// Context of an AF_UNIX skb: protocol, pkt_type, mark, queue, VLAN fields
// are 0; len is the datagram length; ancillary loads used are those with a
// defined value there (no ifindex/hatype/cpu/rxhash/poff/rand, no SKF_NET_OFF).
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cbpf/cbpf.hpp"
#include "cbpf/exec.hpp"

using namespace userbpf;
using namespace userbpf::cbpf;

namespace {

struct SocketPair {
  int fd[2] = {-1, -1};
  SocketPair() {
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, fd) != 0) fd[0] = fd[1] = -1;
  }
  ~SocketPair() {
    for (int f : fd)
      if (f >= 0) close(f);
  }
  [[nodiscard]] bool ok() const { return fd[0] >= 0; }
};

// Returns 0 on success or the errno of setsockopt.
int attach(int fd, const std::vector<Insn>& prog) {
  static_assert(sizeof(sock_filter) == sizeof(Insn));
  sock_fprog fp{};
  fp.len = static_cast<unsigned short>(prog.size());
  fp.filter = reinterpret_cast<sock_filter*>(const_cast<Insn*>(prog.data()));
  return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof fp) == 0 ? 0 : errno;
}

// -1 when nothing arrived, else the received length.
long kernel_verdict(const SocketPair& sp, const std::vector<std::uint8_t>& payload) {
  if (send(sp.fd[0], payload.data(), payload.size(), 0) < 0) return -2;
  std::vector<std::uint8_t> buf(payload.size() + 16);
  const ssize_t n = recv(sp.fd[1], buf.data(), buf.size(), MSG_DONTWAIT);
  return n < 0 ? -1 : static_cast<long>(n);
}

const OpInfo& row(Op op) { return info(op); }
Insn I(Op op, std::uint32_t k = 0, std::uint8_t jt = 0, std::uint8_t jf = 0) { return Insn{row(op).code, jt, jf, k}; }

// A random valid classic program over payloads of up to ~64 bytes.
std::vector<Insn> random_program(std::mt19937& rng) {
  auto pick = [&](std::uint32_t n) { return static_cast<std::uint32_t>(rng() % n); };
  std::vector<Insn> p;
  for (std::uint32_t m = 0; m < 4; ++m) {  // M[0..3] written first
    p.push_back(I(Op::LdImm, static_cast<std::uint32_t>(rng())));
    p.push_back(I(Op::St, m));
  }
  const std::uint32_t body = 4 + pick(24);
  static const Op kAluK[] = {Op::AddK, Op::SubK, Op::MulK, Op::DivK, Op::ModK, Op::AndK,
                             Op::OrK,  Op::XorK, Op::LshK, Op::RshK};
  static const Op kAluX[] = {Op::AddX, Op::SubX, Op::MulX, Op::DivX, Op::ModX, Op::AndX,
                             Op::OrX,  Op::XorX, Op::LshX, Op::RshX};
  static const Op kJmpK[] = {Op::JeqK, Op::JgtK, Op::JgeK, Op::JsetK};
  static const Op kJmpX[] = {Op::JeqX, Op::JgtX, Op::JgeX, Op::JsetX};
  static const std::int32_t kAnc[] = {0, 4, 20, 24, 40, 44, 48, 60};  // proto type mark queue xor_x vlan_tci vlanp tpid
  for (std::uint32_t i = 0; i < body; ++i) {
    const std::uint32_t remaining = body - i;  // insns after this one before the final two rets
    switch (pick(14)) {
      case 0: p.push_back(I(pick(3) == 0 ? Op::LdWAbs : pick(2) ? Op::LdHAbs : Op::LdBAbs, pick(72))); break;
      case 1: p.push_back(I(pick(3) == 0 ? Op::LdWInd : pick(2) ? Op::LdHInd : Op::LdBInd, pick(40))); break;
      case 2: p.push_back(I(Op::LdxBMsh, pick(70))); break;
      case 3: p.push_back(I(pick(2) ? Op::LdWLen : Op::LdxWLen)); break;
      case 4: {
        const Op op = kAluK[pick(10)];
        std::uint32_t k = static_cast<std::uint32_t>(rng());
        if (op == Op::LshK || op == Op::RshK) k %= 32;
        if (pick(2)) k %= 17;
        if ((op == Op::DivK || op == Op::ModK) && k == 0) k = 3;
        p.push_back(I(op, k));
        break;
      }
      case 5: p.push_back(I(kAluX[pick(10)])); break;
      case 6: p.push_back(I(Op::Neg)); break;
      case 7: p.push_back(I(pick(2) ? Op::Tax : Op::Txa)); break;
      case 8: p.push_back(I(pick(2) ? Op::LdMem : Op::LdxMem, pick(4))); break;
      case 9: p.push_back(I(pick(2) ? Op::St : Op::Stx, pick(4))); break;
      case 10: p.push_back(I(pick(2) ? Op::LdImm : Op::LdxImm, pick(2) ? pick(100) : static_cast<std::uint32_t>(rng())));
        break;
      case 11: {
        const Op op = pick(2) ? kJmpK[pick(4)] : kJmpX[pick(4)];
        const auto jt = static_cast<std::uint8_t>(pick(remaining + 1));
        const auto jf = static_cast<std::uint8_t>(pick(remaining + 1));
        p.push_back(I(op, pick(2) ? pick(64) : static_cast<std::uint32_t>(rng()), jt, jf));
        break;
      }
      case 12: p.push_back(I(Op::Ja, pick(remaining + 1))); break;
      case 13:
        p.push_back(I(pick(3) == 0 ? Op::LdWAbs : Op::LdBAbs,
                      static_cast<std::uint32_t>(kSkfAdOff + kAnc[pick(8)])));
        break;
    }
  }
  p.push_back(I(Op::RetA));
  p.push_back(I(Op::RetK, pick(2) ? 0xffffffffU : pick(80)));
  return p;
}

// Breaks one rule of bpf_check_classic (or, rarely, none).
std::vector<Insn> mutate(std::vector<Insn> p, std::mt19937& rng) {
  auto pick = [&](std::uint32_t n) { return static_cast<std::uint32_t>(rng() % n); };
  const std::size_t at = pick(static_cast<std::uint32_t>(p.size()));
  switch (pick(10)) {  // 8, 9: unchanged
    case 0: p[at].code = static_cast<std::uint16_t>(pick(256)); break;
    case 1: p[at] = I(Op::JeqK, 0, static_cast<std::uint8_t>(p.size() - at - 1 + pick(3)), 0); break;
    case 2: p[at] = I(Op::DivK, 0); break;
    case 3: p[at] = I(Op::LdMem, 4 + pick(20)); break;  // never written (or >= 16)
    case 4: p.back() = I(Op::Tax); break;
    case 5: p[at] = I(Op::LdWAbs, static_cast<std::uint32_t>(kSkfAdOff + 64 + 4 * static_cast<std::int32_t>(pick(8))));
      break;
    case 6: p[at] = I(Op::Ja, static_cast<std::uint32_t>(p.size() - at - 1 + pick(3))); break;
    case 7: p[at] = I(Op::LshK, 32 + pick(10)); break;
  }
  return p;
}

}  // namespace

TEST(CbpfKernel, SocketFilterVerdictsMatch) {
  SocketPair probe;
  if (!probe.ok()) GTEST_SKIP() << "socketpair(AF_UNIX, SOCK_DGRAM) failed: " << std::strerror(errno);
  if (attach(probe.fd[1], {I(Op::RetK, 0xffffffffU)}) != 0)
    GTEST_SKIP() << "SO_ATTACH_FILTER unavailable: " << std::strerror(errno);
  std::mt19937 rng(2024);
  std::size_t programs = 0, runs = 0, kept = 0, dropped = 0;
  for (int n = 0; n < 400; ++n) {
    const auto prog = random_program(rng);
    ASSERT_TRUE(check(prog).ok()) << check(prog).error().to_string();
    SocketPair sp;
    ASSERT_TRUE(sp.ok());
    ASSERT_EQ(attach(sp.fd[1], prog), 0) << "kernel rejected a program cbpf::check accepts:\n" << print_tcpdump(prog);
    auto filter = Filter::create(prog);
    ASSERT_TRUE(filter.ok()) << filter.error().to_string();
    ++programs;
    for (int t = 0; t < 12; ++t) {
      std::vector<std::uint8_t> payload(1 + rng() % 64);
      for (auto& b : payload) b = static_cast<std::uint8_t>(rng() % 4 == 0 ? rng() % 16 : rng());
      SkbContext ctx;
      ctx.len = static_cast<std::uint32_t>(payload.size());
      const std::uint32_t ours = filter->run(payload, ctx);
      const long want = ours == 0 ? -1 : static_cast<long>(std::min<std::uint64_t>(payload.size(), ours));
      const long got = kernel_verdict(sp, payload);
      ASSERT_NE(got, -2) << "send failed: " << std::strerror(errno);
      ASSERT_EQ(got, want) << "payload of " << payload.size() << " bytes, userbpf returned " << ours << "\n"
                           << print_tcpdump(prog);
      ++runs;
      (ours == 0 ? dropped : kept) += 1;
    }
  }
  EXPECT_GT(kept, runs / 10);
  EXPECT_GT(dropped, runs / 10);
  std::printf("[ kernel ] %zu programs, %zu datagrams: %zu kept, %zu dropped, all as the kernel\n", programs, runs, kept,
              dropped);
}

TEST(CbpfKernel, CheckVerdictsMatch) {
  SocketPair probe;
  if (!probe.ok()) GTEST_SKIP() << "socketpair(AF_UNIX, SOCK_DGRAM) failed: " << std::strerror(errno);
  if (attach(probe.fd[1], {I(Op::RetK, 1)}) != 0) GTEST_SKIP() << "SO_ATTACH_FILTER unavailable";
  std::mt19937 rng(77);
  std::size_t accepted = 0, rejected = 0;
  for (int n = 0; n < 1500; ++n) {
    const auto prog = mutate(random_program(rng), rng);
    const bool ours = check(prog).ok();
    const int err = attach(probe.fd[1], prog);
    ASSERT_EQ(ours, err == 0) << "kernel: " << (err == 0 ? "accepted" : std::strerror(err)) << ", userbpf: "
                              << (ours ? "accepted" : check(prog).error().to_string()) << "\n"
                              << print_tcpdump(prog);
    (ours ? accepted : rejected) += 1;
  }
  EXPECT_GT(rejected, 500U);
  std::printf("[ kernel ] check: %zu accepted, %zu rejected, all as the kernel\n", accepted, rejected);
}
