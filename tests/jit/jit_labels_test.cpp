// The JIT's labels and jump fix-ups (src/jit/labels.hpp): every branch form
// at the rel8 / rel32 boundaries, backward and forward, byte for byte
// against xbyak's own labels (the oracle for the encoding) and against the
// displacement arithmetic; the errors; and whole programs whose branches
// straddle the boundary, to the body and to out-of-line stubs, in the plain,
// counted, checked and blinded variants against the interpreter.
#include "jit/labels.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "jit_test_util.hpp"

namespace userbpf::jit::test {
namespace {

using detail::Branch;
using detail::kBranchForms;
using detail::Labels;
using LabelType = Xbyak::CodeGenerator::LabelType;

constexpr std::size_t kCap = 4096;

// What one emitted sequence came out as: its bytes, or the xbyak error.
struct Emitted {
  std::vector<std::uint8_t> bytes;
  int error = 0;
};

// The branch as xbyak encodes it with its own labels (the oracle).
void xbyak_branch(Xbyak::CodeGenerator& g, Branch b, const Xbyak::Label& l, LabelType t) {
  switch (b) {
    case Branch::O: g.jo(l, t); break;
    case Branch::No: g.jno(l, t); break;
    case Branch::B: g.jb(l, t); break;
    case Branch::Ae: g.jae(l, t); break;
    case Branch::E: g.je(l, t); break;
    case Branch::Ne: g.jne(l, t); break;
    case Branch::Be: g.jbe(l, t); break;
    case Branch::A: g.ja(l, t); break;
    case Branch::S: g.js(l, t); break;
    case Branch::Ns: g.jns(l, t); break;
    case Branch::P: g.jp(l, t); break;
    case Branch::Np: g.jnp(l, t); break;
    case Branch::L: g.jl(l, t); break;
    case Branch::Ge: g.jge(l, t); break;
    case Branch::Le: g.jle(l, t); break;
    case Branch::G: g.jg(l, t); break;
    case Branch::Jmp: g.jmp(l, t); break;
    case Branch::Call: g.call(l); break;
  }
}

// `pad` one-byte nops between the label and the branch (backward: label,
// nops, branch; forward: branch, nops, label).
Emitted with_xbyak(Branch b, bool backward, std::size_t pad, LabelType t) {
  alignas(16) static std::uint8_t buf[kCap];
  Emitted out;
  try {
    Xbyak::CodeGenerator g(kCap, buf);
    g.setDefaultJmpNEAR(true);  // the Emitter's setting: T_AUTO forward is near
    Xbyak::Label l;
    if (backward) g.L(l);
    if (!backward) xbyak_branch(g, b, l, t);
    for (std::size_t i = 0; i < pad; ++i) g.nop();
    if (backward) xbyak_branch(g, b, l, t);
    if (!backward) g.L(l);
    g.ready();
    out.bytes.assign(g.getCode(), g.getCode() + g.getSize());
  } catch (const Xbyak::Error& e) {
    out.error = static_cast<int>(e);
  }
  return out;
}

struct Ours : Xbyak::CodeGenerator {
  explicit Ours(std::uint8_t* buf) : Xbyak::CodeGenerator(kCap, buf), labels(*this, buf, 4) {}
  Labels labels;
};

// The same with our labels; also checks that the displacement lands on the
// label. `first` labels a BPF instruction (Labels::at) instead of a local one.
Emitted with_ours(Branch b, bool backward, std::size_t pad, LabelType t, bool pc_label = false) {
  alignas(16) static std::uint8_t buf[kCap];
  Emitted out;
  try {
    Ours g(buf);
    detail::Label local;
    const detail::Label pc = Labels::at(2);
    const detail::Label& l = pc_label ? pc : local;
    if (backward) g.labels.bind(l);
    std::size_t branch_end = 0;
    if (!backward) {
      g.labels.branch(b, l, t);
      branch_end = g.getSize();
    }
    for (std::size_t i = 0; i < pad; ++i) g.nop();
    if (backward) {
      g.labels.branch(b, l, t);
      branch_end = g.getSize();
    }
    if (!backward) g.labels.bind(l);
    g.labels.resolve();
    out.bytes.assign(g.getCode(), g.getCode() + g.getSize());
    // The displacement (the branch's last 1 or 4 bytes) reaches the label.
    const std::size_t start = backward ? pad : 0;
    const std::size_t len = branch_end - start;
    const bool rel8 = len == 2;
    std::int64_t disp = 0;
    if (rel8) {
      disp = static_cast<std::int8_t>(out.bytes[branch_end - 1]);
    } else {
      std::int32_t d32 = 0;
      std::memcpy(&d32, &out.bytes[branch_end - 4], 4);
      disp = d32;
    }
    EXPECT_EQ(static_cast<std::int64_t>(branch_end) + disp, static_cast<std::int64_t>(g.labels.offset(l)));
  } catch (const Xbyak::Error& e) {
    out.error = static_cast<int>(e);
  }
  return out;
}

const char* branch_name(std::size_t k) {
  static const char* const kNames[] = {"jo", "jno", "jb", "jae", "je", "jne", "jbe", "ja", "js",
                                       "jns", "jp", "jnp", "jl", "jge", "jle", "jg", "jmp", "call"};
  return kNames[k];
}

// Around the boundaries: forward rel8 reaches +127 (pad 127) but not +128;
// backward rel8 reaches -128, i.e. pad 126 (the 2-byte branch counts).
TEST(JitLabels, EveryBranchFormMatchesXbyakAtTheRel8Boundary) {
  const std::size_t pads[] = {0, 1, 60, 124, 125, 126, 127, 128, 129, 200, 1000};
  int rel8_seen = 0, rel32_seen = 0, too_far_seen = 0;
  for (std::size_t k = 0; k < kBranchForms; ++k) {
    const auto b = static_cast<Branch>(k);
    for (const bool backward : {true, false}) {
      for (const std::size_t pad : pads) {
        for (const LabelType t : {LabelType::T_AUTO, LabelType::T_SHORT, LabelType::T_NEAR}) {
          if (b == Branch::Call && t != LabelType::T_NEAR) continue;  // call is rel32 only
          SCOPED_TRACE(std::string(branch_name(k)) + (backward ? " backward" : " forward") + " pad " +
                       std::to_string(pad) + " type " + std::to_string(static_cast<int>(t)));
          const Emitted want = with_xbyak(b, backward, pad, t);
          const Emitted got = with_ours(b, backward, pad, t);
          EXPECT_EQ(got.error, want.error);
          EXPECT_EQ(got.bytes, want.bytes);
          if (want.error == Xbyak::ERR_LABEL_IS_TOO_FAR) ++too_far_seen;
          else if (want.bytes.size() == pad + 2) ++rel8_seen;
          else ++rel32_seen;
        }
      }
    }
  }
  // The cases really straddle the boundary.
  EXPECT_GT(rel8_seen, 0);
  EXPECT_GT(rel32_seen, 0);
  EXPECT_GT(too_far_seen, 0);
}

TEST(JitLabels, ExactBoundaries) {
  // forward: +127 is rel8, +128 does not fit rel8
  EXPECT_EQ(with_ours(Branch::Jmp, false, 127, LabelType::T_SHORT).bytes.size(), 129u);
  EXPECT_EQ(with_ours(Branch::Jmp, false, 128, LabelType::T_SHORT).error, Xbyak::ERR_LABEL_IS_TOO_FAR);
  EXPECT_EQ(with_ours(Branch::E, false, 128, LabelType::T_AUTO).bytes.size(), 128u + 6);  // near jcc
  // backward: -128 is rel8 (pad 126 + the 2-byte branch), -129 is rel32 with T_AUTO
  EXPECT_EQ(with_ours(Branch::Ne, true, 126, LabelType::T_AUTO).bytes.size(), 126u + 2);
  EXPECT_EQ(with_ours(Branch::Ne, true, 127, LabelType::T_AUTO).bytes.size(), 127u + 6);
  EXPECT_EQ(with_ours(Branch::Jmp, true, 127, LabelType::T_AUTO).bytes.size(), 127u + 5);
  EXPECT_EQ(with_ours(Branch::Jmp, true, 127, LabelType::T_SHORT).error, Xbyak::ERR_LABEL_IS_TOO_FAR);
  // a BPF-instruction label behaves like a local one
  EXPECT_EQ(with_ours(Branch::G, false, 127, LabelType::T_SHORT, true).bytes,
            with_ours(Branch::G, false, 127, LabelType::T_SHORT).bytes);
  EXPECT_EQ(with_ours(Branch::Call, true, 300, LabelType::T_NEAR, true).bytes,
            with_xbyak(Branch::Call, true, 300, LabelType::T_NEAR).bytes);
}

TEST(JitLabels, Errors) {
  alignas(16) static std::uint8_t buf[kCap];
  {
    Ours g(buf);
    detail::Label l;
    g.labels.branch(Branch::Jmp, l, LabelType::T_NEAR);
    EXPECT_THROW(g.labels.resolve(), Xbyak::Error);  // never bound
  }
  {
    Ours g(buf);
    detail::Label l;
    g.labels.bind(l);
    EXPECT_THROW(g.labels.bind(l), Xbyak::Error);  // bound twice
  }
  {
    Ours g(buf);
    g.labels.branch(Branch::E, Labels::at(3), LabelType::T_NEAR);  // a BPF-instruction label never bound
    EXPECT_THROW(g.labels.resolve(), Xbyak::Error);
  }
  {  // a block of labels (an inlined copy) is separate from the instructions' labels
    Ours g(buf);
    const std::uint32_t first = g.labels.add_block(2);
    EXPECT_EQ(first, 4u);
    g.labels.branch(Branch::Jmp, Labels::at(first + 1), LabelType::T_SHORT);
    g.nop();
    g.labels.bind(Labels::at(first + 1));
    g.labels.resolve();
    EXPECT_EQ(g.getCode()[1], 1);  // over the nop
    EXPECT_FALSE(g.labels.bound(Labels::at(1)));
  }
}

// ---- whole programs

// Length of the last machine instruction of BPF instruction pc's block in a
// listing (Program::disassemble: "; <pc>: ..." headers, "  <hex offset>:  <text>" lines).
std::size_t last_insn_len(const std::string& listing, std::size_t pc) {
  std::istringstream in(listing);
  std::string line;
  bool inside = false;
  long last = -1;  // offset of the last instruction of pc's block so far
  const std::string head = "; " + std::to_string(pc) + ":";
  while (std::getline(in, line)) {
    if (line.rfind("; ", 0) == 0) {
      inside = line.rfind(head, 0) == 0;
      continue;
    }
    const long off = std::stol(line.substr(0, line.find(':')), nullptr, 16);
    if (inside) last = off;
    else if (last >= 0) return static_cast<std::size_t>(off - last);
  }
  return 0;
}

// `if r1 > 5 goto +k` over k additions, in every variant against the
// interpreter; short forward branches where the bound allows, near beyond.
TEST(JitLabels, ForwardBranchesAcrossTheBoundaryMatchTheInterpreter) {
  std::size_t short_seen = 0, near_seen = 0;
  for (int k = 0; k <= 48; ++k) {
    for (const u64 r1 : {u64{3}, u64{9}}) {
      SCOPED_TRACE("k " + std::to_string(k) + " r1 " + std::to_string(r1));
      Prog p;
      p.mov(0, 1)(Op::JgtImm, 1, 0, static_cast<std::int16_t>(k), 5);
      for (int i = 0; i < k; ++i) p(Op::AddImm, 0, 0, 0, 1000 + i);
      p.exit();
      RunSetup s;
      s.args = {r1};
      run_all(p.v, s);
      if (r1 == 3) {
        const std::size_t len = last_insn_len(compile(p.v).disassemble({}), 1);
        if (k > 0) (len == 2 ? short_seen : near_seen) += 1;
      }
    }
  }
  EXPECT_GT(short_seen, 0u);
  EXPECT_GT(near_seen, 0u);
}

// Loops whose backward branch is just under / over 128 bytes.
TEST(JitLabels, BackwardBranchesAcrossTheBoundaryMatchTheInterpreter) {
  std::size_t short_seen = 0, near_seen = 0;
  for (int k = 1; k <= 48; ++k) {
    SCOPED_TRACE("k " + std::to_string(k));
    Prog p;
    p.mov(0, 0).mov(2, 0);
    const std::size_t head = p.size();
    for (int i = 0; i < k; ++i) p(Op::AddImm, 0, 0, 0, 1 + i)(Op::XorReg, 0, 2);
    p(Op::AddImm, 2, 0, 0, 1);
    const std::size_t back = p.size();
    p(Op::JltImm, 2, 0, static_cast<std::int16_t>(static_cast<std::int64_t>(head) - static_cast<std::int64_t>(back) - 1), 3);
    p.exit();
    run_all(p.v, RunSetup{});
    const std::size_t len = last_insn_len(compile(p.v).disassemble({}), back);
    (len == 2 ? short_seen : near_seen) += 1;
  }
  EXPECT_GT(short_seen, 0u);
  EXPECT_GT(near_seen, 0u);
}

// Branches to out-of-line stubs and thunks (checked-mode fault, budget,
// division by a zero register and back) from programs of several sizes.
TEST(JitLabels, BranchesToStubsMatchTheInterpreter) {
  for (int k : {0, 1, 20, 31, 32, 33, 100, 400}) {
    SCOPED_TRACE("k " + std::to_string(k));
    {  // a store out of bounds at the end: checked mode faults through the check stub
      Prog p;
      p.mov(0, 7);
      for (int i = 0; i < k; ++i) p(Op::AddImm, 0, 0, 0, i);
      p(Op::StxDW, 1, 0, 64).exit();
      RunSetup s;
      s.memory.assign(16, 0);
      s.mem_arg = true;
      s.checked = true;
      run_all(p.v, s, false);
      const Outcome o = run_engine(Engine::JitChecked, p.v, s);
      EXPECT_EQ(o.result.fault, abi::Fault::MemoryViolation);
    }
    {  // division by a zero register (out-of-line case and the jump back), then a budget fault
      Prog p;
      p.mov(0, 100).mov(3, 0);
      for (int i = 0; i < k; ++i) p(Op::AddImm, 0, 0, 0, i);
      p(Op::DivReg, 0, 3)(Op::AddImm, 0, 0, 0, 5)(Op::ModReg, 0, 3);
      for (int i = 0; i < k; ++i) p(Op::AddImm, 0, 0, 0, i);
      p.exit();
      run_all(p.v, RunSetup{});
      RunSetup s;
      s.budget = static_cast<u64>(k) + 3;
      run_all(p.v, s);
    }
  }
}

// The code's mapping (jit.cpp: map_code_file): read+exec from a memfd,
// never writable; the program runs from it.
TEST(JitCodeMapping, CodeIsMappedReadExecFromASealedFile) {
  Prog p;
  p.mov(0, 41)(Op::AddImm, 0, 0, 0, 1).exit();
  const Program prog = compile(p.v);
  abi::Env env;
  EXPECT_EQ(prog.run(env).r0, 42u);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  int found = 0;
  while (std::getline(maps, line)) {
    if (line.find("memfd:userbpf-jit") == std::string::npos) continue;
    std::istringstream ls(line);
    std::string range, perms;
    ls >> range >> perms;
    EXPECT_EQ(perms, "r-xp") << line;
    ++found;
  }
  if (found == 0) GTEST_SKIP() << "no memfd code mapping (memfd_create or exec memfds unavailable: the anonymous path is used)";
}

}  // namespace
}  // namespace userbpf::jit::test
