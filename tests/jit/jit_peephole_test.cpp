// The JIT's cross-instruction optimisations against the interpreter: random
// programs dense in the patterns they rewrite (known-width zero-extensions
// and masks, load + byte swap, load + ALU op, compare-and-branch over a goto, jump chains,
// division register choices), and bpf-to-bpf calls in programs without
// helpers (static call depth, no frame move for callees that do not use r10).
#include <gtest/gtest.h>

#include <random>

#include "jit_test_util.hpp"

namespace userbpf::jit::test {
namespace {

class PatternGen {
 public:
  explicit PatternGen(u64 seed) : rng_(seed) {}

  std::vector<Insn> program(std::size_t steps) {
    Prog p;
    for (std::uint8_t r = 0; r < 10; ++r) p.lddw(r, value());
    for (std::int16_t k = 1; k <= 8; ++k) p(Op::StxDW, 10, static_cast<std::uint8_t>(k), static_cast<std::int16_t>(-8 * k));
    std::vector<std::size_t> fwd;  // forward jumps to patch: target after them, up to the fold
    std::vector<std::size_t> to_exit;
    std::vector<std::size_t> starts;  // jump targets: step boundaries (never into a step's middle)
    for (std::size_t s = 0; s < steps; ++s) {
      starts.push_back(p.size());
      const std::uint8_t r = reg();
      switch (pick(10)) {
        case 9:  // address arithmetic, then a load or store through it
          address(p);
          break;
        case 0: case 1: {  // a load, then what its width makes a no-op (or not)
          static const Op kLoads[] = {Op::LdxB, Op::LdxH, Op::LdxW, Op::LdxDW, Op::LdxSB, Op::LdxSH, Op::LdxSW};
          const Op ld = kLoads[pick(7)];
          const unsigned size = isa::access_size(ld);
          p(ld, r, 10, static_cast<std::int16_t>(-64 + static_cast<int>(pick(64 / size) * size)));
          after(p, r);
          break;
        }
        case 2:  // a 32-bit result, then a zero-extension
          p(pick(2) ? Op::Add32Imm : Op::Mov32Imm, r, 0, 0, imm());
          after(p, r);
          break;
        case 3: {  // compare-and-branch over a goto
          static const Op kJ[] = {Op::JeqImm, Op::JneImm, Op::JgtImm, Op::JgeImm, Op::JltImm, Op::JleImm, Op::JsgtImm,
                                  Op::JsgeImm, Op::JsltImm, Op::JsleImm, Op::JsetImm, Op::Jeq32Imm, Op::Jslt32Imm,
                                  Op::JgtReg, Op::Jsle32Reg};
          const Op j = kJ[pick(static_cast<unsigned>(std::size(kJ)))];
          p(j, r, reg(), 1, imm());
          fwd.push_back(p.size());
          p(Op::Ja);
          p(Op::AddImm, reg(), 0, 0, imm());
          break;
        }
        case 4:  // jump chains, a goto to exit
          if (pick(3) == 0) {
            to_exit.push_back(p.size());
            p(Op::Ja);
          } else {
            p(Op::Ja, 0, 0, 1);
            p(Op::Ja, 0, 0, 1);
            p(Op::XorImm, r, 0, 0, imm());
            p(Op::AddImm, r, 0, 0, 1);
          }
          break;
        case 5: case 6: {  // division and modulo: every register pairing, special divisors
          static const Op kDiv[] = {Op::DivReg, Op::ModReg, Op::SDivReg, Op::SModReg, Op::Div32Reg, Op::Mod32Reg,
                                    Op::SDiv32Reg, Op::SMod32Reg, Op::DivImm, Op::ModImm, Op::SDivImm, Op::SMod32Imm};
          const Op d = kDiv[pick(static_cast<unsigned>(std::size(kDiv)))];
          static const std::uint8_t kRegs[] = {0, 2, 3, 6};
          const std::uint8_t dst = kRegs[pick(4)], src = kRegs[pick(4)];
          if (pick(3) == 0) p(Op::MovImm, src, 0, 0, pick(2) ? 0 : -1);
          static const s32 kImm[] = {0, -1, 1, 7, -3, 1 << 20};
          p(d, dst, src, 0, kImm[pick(6)]);
          break;
        }
        case 7:  // widths through ALU ops
          p(Op::AndImm, r, 0, 0, static_cast<s32>(pick(0x10000)));
          p(pick(2) ? Op::RshImm : Op::LshImm, r, 0, 0, static_cast<s32>(pick(40)));
          p(Op::MulReg, r, reg());
          after(p, r);
          break;
        default:
          if (pick(2) == 0) {
            load_op(p);
            break;
          }
          p(Op::Mov32Reg, r, reg());
          after(p, r);
          break;
      }
    }
    const std::size_t fold = p.size();
    starts.push_back(fold);
    for (std::uint8_t i = 1; i < 10; ++i) p(Op::MulImm, 0, 0, 0, 31)(Op::XorReg, 0, i);
    const std::size_t exit_pc = p.size();
    p.exit();
    for (std::size_t j : fwd) {
      std::vector<std::size_t> later;
      for (std::size_t t : starts)
        if (t > j) later.push_back(t);
      const std::size_t t = later[pick(static_cast<unsigned>(later.size()))];
      p.v[j].off = static_cast<std::int16_t>(static_cast<std::int64_t>(t) - static_cast<std::int64_t>(j) - 1);
    }
    for (std::size_t j : to_exit) p.v[j].off = static_cast<std::int16_t>(exit_pc - j - 1);
    return p.v;
  }

 private:
  // rT = r10; rT += -64 / rI (either order or one of them); *(rT + off)
  // loaded or stored; rT afterwards read (live), overwritten or left.
  void address(Prog& p) {
    const std::uint8_t i = static_cast<std::uint8_t>(1 + pick(9));
    std::uint8_t t = static_cast<std::uint8_t>(pick(10));
    if (t == i) t = static_cast<std::uint8_t>((t + 1) % 10);
    const bool with_imm = pick(3) != 0;
    p(Op::MovImm, i, 0, 0, with_imm ? static_cast<s32>(8 * pick(7)) : -8 * static_cast<s32>(1 + pick(7)));
    p(Op::MovReg, t, 10);
    if (with_imm && pick(2)) p(Op::AddImm, t, 0, 0, -64)(Op::AddReg, t, i);
    else if (with_imm) p(Op::AddReg, t, i)(Op::AddImm, t, 0, 0, -64);
    else p(Op::AddReg, t, i);
    static const Op kMem[] = {Op::LdxB, Op::LdxH, Op::LdxW, Op::LdxDW, Op::LdxSB, Op::LdxSH, Op::LdxSW,
                              Op::StxB, Op::StxH, Op::StxW, Op::StxDW, Op::StB, Op::StW, Op::StDW};
    const Op m = kMem[pick(static_cast<unsigned>(std::size(kMem)))];
    const isa::Form f = isa::info(m).form;
    const std::uint8_t other = pick(4) == 0 ? t : reg();
    if (f == isa::Form::Ldx) p(m, other, t, 0);
    else if (f == isa::Form::Stx) p(m, t, other == t ? i : other, 0);  // never the address itself
    else p(m, t, 0, 0, imm());
    // rT read again (live) or not (dead); then overwritten: a stack address
    // must not reach r0 (each engine's stack is elsewhere).
    if (pick(2) == 0 && !(f == isa::Form::Ldx && other == t)) p(Op::LdxB, static_cast<std::uint8_t>(pick(10) == 0 ? 0 : i), t, 0);
    p(Op::MovImm, t, 0, 0, 5);
  }

  // rX = load; rD op= rX (emit_load_op): load widths that match the
  // operation's or not, rD == rX or not, rX dead afterwards or read again.
  void load_op(Prog& p) {
    static const Op kLoads[] = {Op::LdxW, Op::LdxDW, Op::LdxDW, Op::LdxW, Op::LdxH, Op::LdxSW};
    static const Op kOps[] = {Op::AddReg, Op::SubReg, Op::MulReg, Op::OrReg, Op::AndReg, Op::XorReg, Op::Add32Reg,
                              Op::Sub32Reg, Op::Mul32Reg, Op::Or32Reg, Op::And32Reg, Op::Xor32Reg, Op::LshReg};
    const Op ld = kLoads[pick(static_cast<unsigned>(std::size(kLoads)))];
    const std::uint8_t x = reg(), d = pick(8) == 0 ? x : reg();
    const unsigned size = isa::access_size(ld);
    p(ld, x, 10, static_cast<std::int16_t>(-64 + static_cast<int>(pick(64 / size) * size)));
    if (pick(2) == 0) {  // rD loaded in between (the three-instruction form)
      const Op ld2 = kLoads[pick(static_cast<unsigned>(std::size(kLoads)))];
      const unsigned size2 = isa::access_size(ld2);
      p(ld2, d, 10, static_cast<std::int16_t>(-64 + static_cast<int>(pick(64 / size2) * size2)));
    }
    p(kOps[pick(static_cast<unsigned>(std::size(kOps)))], d, x);
    if (pick(2) == 0) p(Op::AddReg, reg(), x);  // x live after the pair
    else p(Op::MovImm, x, 0, 0, imm());         // x dead
  }

  // An instruction that is a no-op or not depending on r's width.
  void after(Prog& p, std::uint8_t r) {
    static const s32 kMasks[] = {0xff, 0xffff, -1, 0x7f, 0x1ff, static_cast<s32>(0x80000000u), 0x7fffffff};
    switch (pick(9)) {
      case 0: p(pick(2) ? Op::AndImm : Op::And32Imm, r, 0, 0, kMasks[pick(7)]); break;
      case 1: p(Op::Le16, r, 0, 0, 16); break;
      case 2: p(Op::Le32, r, 0, 0, 32); break;
      case 3: p(pick(2) ? Op::Be16 : Op::Bswap16, r, 0, 0, 16); break;
      case 4: p(pick(2) ? Op::Be32 : Op::Be64, r, 0, 0, 0); p.v.back().imm = isa::info(p.v.back().op).sel_value; break;
      case 5: p(Op::Mov32Reg, r, r); break;
      case 6: p(Op::LshImm, r, 0, 0, 32)(Op::RshImm, r, 0, 0, 32); break;
      case 7: p(Op::Rsh32Imm, r, 0, 0, 0); break;
      default: p(Op::Mod32Imm, r, 0, 0, 0); break;
    }
  }
  unsigned pick(unsigned n) { return static_cast<unsigned>(rng_() % n); }
  std::uint8_t reg() { return static_cast<std::uint8_t>(pick(10)); }
  u64 value() {
    static const u64 kSpecial[] = {0, 1, ~u64{0}, 0x8000000000000000, 0x80000000, 0xffffffff, 0xff, 0xffff, 0x1234};
    return pick(2) ? kSpecial[pick(9)] : rng_();
  }
  s32 imm() { return static_cast<s32>(static_cast<u32>(value())); }
  std::mt19937_64 rng_;
};

TEST(JitPeephole, PatternDenseProgramsMatchTheInterpreter) {
  PatternGen g(4242);
  int failures = 0;
  for (int i = 0; i < 1500 && failures < 5; ++i) {
    const auto prog = g.program(10 + static_cast<std::size_t>(i % 6) * 10);
    const Outcome ref = run_engine(Engine::Interp, prog, RunSetup{});
    ASSERT_TRUE(ref.result.ok()) << "program " << i << ": " << describe(ref.result);
    const std::vector<Engine> engines = i % 8 == 0 ? std::vector<Engine>{Engine::Jit, Engine::JitCounted,
                                                                        Engine::JitChecked, Engine::JitBlinded,
                                                                        Engine::JitNoBmi2}
                                                  : std::vector<Engine>{Engine::Jit, Engine::JitNoBmi2};
    for (Engine e : engines) {
      const Outcome o = run_engine(e, prog, RunSetup{});
      if (!same(o.result, ref.result)) {
        ++failures;
        ADD_FAILURE() << "program " << i << " (" << engine_name(e) << "): " << describe(o.result)
                      << "\ninterp: " << describe(ref.result);
      }
    }
  }
}

// A loop over a chain of `depth` functions, each calling the next; those
// with `stack` set use their frame (store, load through r10), the others
// not. No helpers: the depth is known statically when it fits.
std::vector<Insn> call_chain(int depth, std::uint32_t stack_mask) {
  Prog p;
  p.mov(6, 0).mov(7, 0);
  const std::size_t loop = p.size();
  p(Op::MovReg, 1, 6)(Op::CallLocal);
  const std::size_t first_call = p.size() - 1;
  p(Op::AddReg, 7, 0)(Op::AddImm, 6, 0, 0, 1);
  p(Op::JltImm, 6, 0, static_cast<std::int16_t>(static_cast<std::int64_t>(loop) - static_cast<std::int64_t>(p.size()) - 1), 50);
  p(Op::MovReg, 0, 7).exit();
  std::vector<std::size_t> calls{first_call};
  for (int f = 1; f <= depth; ++f) {
    const std::size_t entry = p.size();
    p.v[calls.back()].imm = static_cast<s32>(static_cast<std::int64_t>(entry) - static_cast<std::int64_t>(calls.back()) - 1);
    p(Op::MovReg, 6, 1)(Op::MulImm, 6, 0, 0, 3)(Op::AddImm, 6, 0, 0, f);
    if ((stack_mask >> f) & 1) p(Op::StxDW, 10, 6, -8)(Op::LdxDW, 6, 10, -8);
    if (f < depth) {
      p(Op::MovReg, 1, 6)(Op::CallLocal);
      calls.push_back(p.size() - 1);
      p(Op::XorReg, 0, 6);
    } else {
      p(Op::MovReg, 0, 6);
    }
    p.exit();
  }
  return p.v;
}

TEST(JitPeephole, CallsWithoutHelpersMatchTheInterpreter) {
  for (int depth : {1, 2, 5, 7}) {  // 7 below main: 8 frames, the limit
    for (std::uint32_t mask : {0u, 0x2u, 0x1feu, 0x80u, 0x14u}) {
      SCOPED_TRACE("depth " + std::to_string(depth) + " stack mask " + std::to_string(mask));
      const Outcome o = run_all(call_chain(depth, mask), RunSetup{});
      EXPECT_TRUE(o.result.ok()) << describe(o.result);
    }
  }
}

TEST(JitPeephole, TooDeepCallChainWithoutHelpersStillFaults) {
  // 8 functions below main: frame 9 does not exist (abi::call_depth_exceeded).
  for (std::uint32_t mask : {0u, 0x3feu}) {
    const Outcome o = run_all(call_chain(8, mask), RunSetup{});
    EXPECT_EQ(o.result.fault, abi::Fault::CallDepth) << describe(o.result);
  }
}

TEST(JitPeephole, RecursionWithoutHelpersFaultsAtTheDepthLimit) {
  // f(x) = x == 0 ? 0 : f(x - 1) + 1, called with 20: too deep.
  Prog p;
  p.mov(1, 20)(Op::CallLocal, 0, 0, 0, 1).exit();
  p(Op::MovImm, 0, 0, 0, 0)(Op::JeqImm, 1, 0, 3, 0)(Op::SubImm, 1, 0, 0, 1)(Op::CallLocal, 0, 0, 0, -4)(Op::AddImm, 0, 0, 0, 1).exit();
  const Outcome o = run_all(p.v, RunSetup{});
  EXPECT_EQ(o.result.fault, abi::Fault::CallDepth) << describe(o.result);
}

}  // namespace
}  // namespace userbpf::jit::test

namespace userbpf::jit::test {
namespace {

// The folds happen (listing), and the folded code computes the same.
TEST(JitPeephole, AddressArithmeticFoldsIntoTheAccess) {
  Prog p;
  p.mov(1, 8);
  p(Op::StDW, 10, 0, -56, 77);
  p(Op::MovReg, 2, 10)(Op::AddImm, 2, 0, 0, -64)(Op::AddReg, 2, 1)(Op::LdxDW, 0, 2, 0);  // r2 dead after
  p.exit();
  const Program jp = compile(p.v);
  const std::string listing = jp.disassemble();
  EXPECT_EQ(listing.find("lea"), std::string::npos) << listing;
  EXPECT_NE(listing.find("mov rax, [rbp+rsi*1-0x40]"), std::string::npos) << listing;
  const Outcome o = run_all(p.v, RunSetup{});
  EXPECT_EQ(o.result.r0, 77u);

  // r2 read afterwards: the address is still computed (one lea), the load uses it.
  Prog q = p;
  q.v.pop_back();
  q(Op::LdxDW, 3, 2, 0)(Op::AddReg, 0, 3).exit();
  const std::string l2 = compile(q.v).disassemble();
  EXPECT_NE(l2.find("lea rdx, [rbp+rsi*1-0x40]"), std::string::npos) << l2;
  EXPECT_EQ(run_all(q.v, RunSetup{}).result.r0, 154u);
}

TEST(JitPeephole, CompareOverGotoBecomesOneInvertedBranch) {
  // loop: r1 += 1; if r1 == 100 goto +1; goto loop; exit
  Prog p;
  p.mov(1, 0)(Op::AddImm, 1, 0, 0, 1)(Op::JeqImm, 1, 0, 1, 100)(Op::Ja, 0, 0, -3)(Op::MovReg, 0, 1).exit();
  const std::string full = compile(p.v).disassemble();
  const std::string listing = full.substr(0, full.find("; out-of-line"));  // the body
  EXPECT_NE(listing.find("jnz"), std::string::npos) << listing;
  EXPECT_EQ(listing.find("jmp"), std::string::npos) << listing;
  EXPECT_EQ(run_all(p.v, RunSetup{}).result.r0, 100u);
}

}  // namespace
}  // namespace userbpf::jit::test
