// The structure-aware generator and the execution harness: programs are
// reproducible, structurally valid, mostly accepted by the verifier when no
// fault is injected, mostly rejected when one is, and accepted programs run
// identically in the checked interpreter and the JIT (ExecHarness aborts
// the test on a finding).
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <cstdio>

#include "fuzz/common/harness.hpp"
#include "fuzz/common/kdiff.hpp"
#include "fuzz/gen/progen.hpp"
#include "verifier/verifier.hpp"

using namespace userbpf;

namespace {

fuzz::GenProgram gen(std::uint64_t seed, std::uint32_t type, unsigned faults, bool init_stack = false) {
  fuzz::Rng rng(seed);
  fuzz::GenOptions o;
  o.init_stack = init_stack;
  o.prog_type = type;
  o.fault_percent = faults;
  return fuzz::generate(rng, o);
}

TEST(Generator, Reproducible) {
  for (std::uint64_t s = 0; s < 20; ++s) {
    EXPECT_EQ(gen(s, BPF_PROG_TYPE_KPROBE, 50).insns, gen(s, BPF_PROG_TYPE_KPROBE, 50).insns);
  }
  EXPECT_NE(gen(1, BPF_PROG_TYPE_KPROBE, 0).insns, gen(2, BPF_PROG_TYPE_KPROBE, 0).insns);
}

TEST(Generator, FuzzerBytesDriveTheChoices) {
  const std::vector<std::uint8_t> a(64, 1), b(64, 200);
  fuzz::Rng ra(a), ra2(a), rb(b);
  fuzz::GenOptions o;
  EXPECT_EQ(fuzz::generate(ra, o).insns, fuzz::generate(ra2, o).insns);
  EXPECT_NE(fuzz::generate(ra, o).insns, fuzz::generate(rb, o).insns);
}

TEST(Generator, StructurallyValidAndMostlyAccepted) {
  std::size_t accepted = 0, n = 300, subprogs = 0, loops = 0, lookups = 0;
  for (std::uint64_t s = 0; s < n; ++s) {
    const auto type = s % 3 == 0 ? BPF_PROG_TYPE_SOCKET_FILTER : s % 3 == 1 ? BPF_PROG_TYPE_KPROBE
                                                                             : BPF_PROG_TYPE_RAW_TRACEPOINT;
    const auto p = gen(s, type, 0);
    ASSERT_TRUE(p.fault.empty());
    auto st = isa::check_program(p.insns, true);
    ASSERT_TRUE(st.ok()) << st.error().to_string() << "\n" << fuzz::listing(p.insns);
    const auto v = verifier::verify(p.insns, fuzz::verifier_config(p, 1));
    if (v.accepted) ++accepted;
    else if (std::getenv("FUZZ_VERBOSE") != nullptr)
      std::printf("seed %llu rejected: %s\n%s\n", static_cast<unsigned long long>(s), v.message.c_str(),
                  fuzz::listing(p.insns).c_str());
    bool back = false, call = false, lookup = false;
    for (std::size_t i = 0; i < p.insns.size(); ++i) {
      const auto& in = p.insns[i];
      if (in.op == isa::Op::CallLocal) call = true;
      if (in.op == isa::Op::Call && in.imm == 1) lookup = true;
      if (isa::is_jump(in.info().form) && in.off < 0) back = true;
    }
    subprogs += call ? 1 : 0;
    loops += back ? 1 : 0;
    lookups += lookup ? 1 : 0;
  }
  std::printf("generator: %zu/%zu accepted; with subprograms %zu, loops %zu, map lookups %zu\n", accepted, n,
              subprogs, loops, lookups);
  EXPECT_GE(accepted * 100, n * 80) << "programs without faults should mostly pass the verifier";
  EXPECT_GT(subprogs, n / 10);
  EXPECT_GT(loops, n / 10);
  EXPECT_GT(lookups, n / 5);
}

TEST(Generator, FaultsAreMostlyRejected) {
  std::size_t with_fault = 0, rejected = 0;
  for (std::uint64_t s = 1000; s < 1400; ++s) {
    const auto p = gen(s, BPF_PROG_TYPE_KPROBE, 100);
    if (p.fault.empty()) continue;
    ++with_fault;
    if (!verifier::verify(p.insns, fuzz::verifier_config(p)).accepted) ++rejected;
  }
  std::printf("faults: %zu programs with a fault, %zu rejected\n", with_fault, rejected);
  EXPECT_GT(with_fault, 100u);
  EXPECT_GE(rejected * 100, with_fault * 60);
}

// XDP programs reach the packet through bounds-checked direct accesses; the
// packet fault (an access just past the checked length) must be refused.
TEST(Generator, XdpPacketAccessAndItsFault) {
  std::size_t accepted = 0, with_access = 0, n = 200, oob = 0, oob_rejected = 0;
  for (std::uint64_t s = 0; s < n; ++s) {
    const auto p = gen(s, BPF_PROG_TYPE_XDP, 0, true);
    if (verifier::verify(p.insns, fuzz::verifier_config(p)).accepted) ++accepted;
    for (const auto& in : p.insns)
      if (in.op == isa::Op::LdxW && in.src == 6 && in.off == 4) {  // r = ctx->data_end
        ++with_access;
        break;
      }
  }
  // (a fault can land in a branch the verifier proves dead, or in a store
  // that was not emitted: then the kernel accepts too. The verdicts must
  // agree with the kernel's where it is available.)
  std::size_t kernel_agrees = 0, kernel_checked = 0;
  for (std::uint64_t s = 5000; s < 7000; ++s) {
    const auto p = gen(s, BPF_PROG_TYPE_XDP, 100, true);
    if (p.fault != "packet access past the bounds check") continue;
    ++oob;
    const bool ours = verifier::verify(p.insns, fuzz::verifier_config(p)).accepted;
    if (!ours) ++oob_rejected;
    const auto kv = fuzz::kernel_verify(p, 0);
    if (!kv.available) continue;
    ++kernel_checked;
    if (kv.accepted == ours) ++kernel_agrees;
    else ADD_FAILURE() << "seed " << s << ": userbpf " << (ours ? "accepts" : "rejects") << ", the kernel "
                       << (kv.accepted ? "accepts" : "rejects") << "\n" << fuzz::listing(p.insns);
  }
  std::printf("xdp: %zu/%zu accepted, %zu with packet access; packet faults %zu, rejected %zu; kernel agrees on "
              "%zu of %zu\n",
              accepted, n, with_access, oob, oob_rejected, kernel_agrees, kernel_checked);
  EXPECT_GE(accepted * 100, n * 80);
  EXPECT_GT(with_access, n / 4);
  EXPECT_GT(oob, 10u);
  EXPECT_GE(oob_rejected * 100, oob * 80);
}

TEST(ExecHarness, GeneratedProgramsRunAlikeInEveryEngine) {
  std::size_t accepted = 0, n = 150;
  const std::uint8_t ctx[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  for (std::uint64_t s = 0; s < n; ++s) {
    const auto p = gen(5000 + s, s % 2 == 0 ? BPF_PROG_TYPE_KPROBE : BPF_PROG_TYPE_RAW_TRACEPOINT, 0, true);
    const auto o = fuzz::ExecHarness::instance().check("test", p, ctx);
    if (o.accepted) ++accepted;
  }
  std::printf("exec: %zu/%zu programs accepted and compared\n", accepted, n);
  EXPECT_GE(accepted * 100, n * 70);
}

}  // namespace
