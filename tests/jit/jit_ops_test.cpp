// Every Op of the table through the JIT: several programs per op built with
// isa::make, checked against an independent model written here from RFC 9669
// with the sem:: functions, and against the interpreter (RunResult, memory).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "jit_test_util.hpp"

namespace userbpf::jit::test {
namespace {

namespace sem = isa::sem;

// The forms the tests of this file exercise, each for every row of that form
// (the tests iterate over isa::kOps). Call forms and may_goto are tested in
// jit_calls_test.cpp.
const std::set<isa::Form> kFormsTestedHere = {
    isa::Form::AluK, isa::Form::AluX,  isa::Form::Neg,   isa::Form::End,     isa::Form::MovSx, isa::Form::Ja,
    isa::Form::Gotol, isa::Form::JmpK, isa::Form::JmpX,  isa::Form::Exit,    isa::Form::Lddw,  isa::Form::LdAbs,
    isa::Form::LdInd, isa::Form::Ldx,  isa::Form::St,    isa::Form::Stx,     isa::Form::Atomic, isa::Form::LoadAcq,
    isa::Form::StoreRel};
const std::set<isa::Form> kFormsTestedInCalls = {isa::Form::Call, isa::Form::CallLocal, isa::Form::CallKfunc,
                                                 isa::Form::Callx, isa::Form::MayGoto};

const std::vector<u64> kValues = {0,
                                  1,
                                  2,
                                  7,
                                  31,
                                  32,
                                  63,
                                  64,
                                  0x7f,
                                  0x80,
                                  0xff,
                                  0x7fff,
                                  0x8000,
                                  0xffff,
                                  0x7fffffff,
                                  0x80000000,
                                  0xffffffff,
                                  0x100000000,
                                  0x7fffffffffffffff,
                                  0x8000000000000000,
                                  0xffffffffffffffff,
                                  0xfffffffffffffff9,
                                  0x123456789abcdef0,
                                  0xfedcba9876543210,
                                  0x00000000ffff0001,
                                  0xffffffff00000005};
// A smaller set for the register-pair sweeps (the full sets run with one pair).
const std::vector<u64> kFewValues = {0, 1, 63, 0x7fffffff, 0x80000000, 0xffffffff, 0x8000000000000000,
                                     0xffffffffffffffff, 0xfffffffffffffff9, 0x123456789abcdef0};
const std::vector<s32> kImms = {0, 1, -1, 2, 7, -7, 31, 32, 63, 64, INT32_MIN, INT32_MAX, 0x12345678, -0x12345678, 0xff, 0x8000};

// ---------------------------------------------------------------- the model
// d: dst value; s: the operand (src register value, or the sign-extended imm).
u64 model_alu(Op op, u64 d, u64 s) {
  const u32 x = static_cast<u32>(d), y = static_cast<u32>(s);
  switch (op) {
    case Op::Add32Imm: case Op::Add32Reg: return static_cast<u32>(x + y);
    case Op::Sub32Imm: case Op::Sub32Reg: return static_cast<u32>(x - y);
    case Op::Mul32Imm: case Op::Mul32Reg: return static_cast<u32>(x * y);
    case Op::Div32Imm: case Op::Div32Reg: return sem::div32(x, y);
    case Op::SDiv32Imm: case Op::SDiv32Reg: return sem::sdiv32(x, y);
    case Op::Or32Imm: case Op::Or32Reg: return x | y;
    case Op::And32Imm: case Op::And32Reg: return x & y;
    case Op::Lsh32Imm: case Op::Lsh32Reg: return sem::lsh32(x, s);
    case Op::Rsh32Imm: case Op::Rsh32Reg: return sem::rsh32(x, s);
    case Op::Neg32: return static_cast<u32>(0u - x);
    case Op::Mod32Imm: case Op::Mod32Reg: return sem::mod32(x, y);
    case Op::SMod32Imm: case Op::SMod32Reg: return sem::smod32(x, y);
    case Op::Xor32Imm: case Op::Xor32Reg: return x ^ y;
    case Op::Mov32Imm: case Op::Mov32Reg: return y;
    case Op::MovSx8_32: return sem::zext32(sem::sext(s, 8));
    case Op::MovSx16_32: return sem::zext32(sem::sext(s, 16));
    case Op::Arsh32Imm: case Op::Arsh32Reg: return sem::arsh32(x, s);
    case Op::Le16: return static_cast<std::uint16_t>(d);
    case Op::Le32: return x;
    case Op::Le64: return d;
    case Op::Be16: case Op::Bswap16: return sem::bswap16(static_cast<std::uint16_t>(d));
    case Op::Be32: case Op::Bswap32: return sem::bswap32(x);
    case Op::Be64: case Op::Bswap64: return sem::bswap64(d);
    case Op::AddImm: case Op::AddReg: return d + s;
    case Op::SubImm: case Op::SubReg: return d - s;
    case Op::MulImm: case Op::MulReg: return d * s;
    case Op::DivImm: case Op::DivReg: return sem::div64(d, s);
    case Op::SDivImm: case Op::SDivReg: return sem::sdiv64(d, s);
    case Op::OrImm: case Op::OrReg: return d | s;
    case Op::AndImm: case Op::AndReg: return d & s;
    case Op::LshImm: case Op::LshReg: return sem::lsh64(d, s);
    case Op::RshImm: case Op::RshReg: return sem::rsh64(d, s);
    case Op::Neg64: return 0 - d;
    case Op::ModImm: case Op::ModReg: return sem::mod64(d, s);
    case Op::SModImm: case Op::SModReg: return sem::smod64(d, s);
    case Op::XorImm: case Op::XorReg: return d ^ s;
    case Op::MovImm: case Op::MovReg: return s;
    case Op::MovSx8: return sem::sext(s, 8);
    case Op::MovSx16: return sem::sext(s, 16);
    case Op::MovSx32: return sem::sext(s, 32);
    case Op::ArshImm: case Op::ArshReg: return sem::arsh64(d, s);
    default: ADD_FAILURE() << "no model for " << isa::info(op).name; return 0;
  }
}

// Initial register values of an ALU test case (r0..r9).
std::array<u64, 10> initial_regs(u64 d, u64 s, unsigned dst, unsigned src) {
  std::array<u64, 10> r{};
  for (unsigned i = 0; i < 10; ++i) r[i] = 0x1111111111111111ULL * (i + 1) ^ (u64{i} << 60);
  r[src] = s;
  r[dst] = d;  // dst == src: the dst value wins
  return r;
}

// A batch of test cases in one program: r1 points at a result area; each
// case stores what it observes there through a base register (one not used
// by the case) and the model appends the expected words. One compile per
// batch keeps the suite fast (mprotect/munmap dominate a compile).
struct Batch {
  Prog p;
  std::vector<u64> expect;
  std::uint8_t base;
  std::string what;
  explicit Batch(std::uint8_t b, std::string w) : base(b), what(std::move(w)) {
    if (base != 1) p(Op::MovReg, base, 1);
  }
  // stores register r at the next result word
  void observe(std::uint8_t r, u64 expected) {
    p(Op::StxDW, base, r, 0);
    p(Op::AddImm, base, 0, 0, 8);
    expect.push_back(expected);
  }
  // runs in every engine and compares the result words with the model
  void check(bool all_variants = true, bool also_no_bmi2 = false) {
    p.mov(0, 0).exit();
    RunSetup s;
    s.memory.assign(expect.size() * 8, 0);
    s.mem_arg = true;
    const Outcome o = run_all(p.v, s, all_variants);
    if (also_no_bmi2 && !all_variants) {
      const Outcome n = run_engine(Engine::JitNoBmi2, p.v, s);
      EXPECT_TRUE(same(n.result, o.result)) << what << " (no bmi2): " << describe(n.result);
      EXPECT_EQ(n.memory, o.memory) << what << ": memory differs without bmi2";
    }
    EXPECT_TRUE(o.result.ok()) << what << ": " << describe(o.result);
    for (std::size_t i = 0; i < expect.size(); ++i) {
      u64 got = 0;
      std::memcpy(&got, o.memory.data() + i * 8, 8);
      if (got != expect[i]) {
        ADD_FAILURE() << what << ": result word " << i << " is 0x" << std::hex << got << ", expected 0x"
                      << expect[i];
        return;
      }
    }
  }
};

std::uint8_t free_reg(std::initializer_list<unsigned> used) {
  for (std::uint8_t r : {9, 8, 7, 6, 5, 4, 3, 2, 1, 0})
    if (std::find(used.begin(), used.end(), r) == used.end()) return r;
  return 0;
}

// One ALU case: all registers but the base get known values, the op runs,
// every register but the base is observed.
void alu_case(Batch& b, Op op, unsigned dst, unsigned src, u64 d, u64 s_or_imm) {
  const bool imm = isa::info(op).form == isa::Form::AluK;
  std::array<u64, 10> regs = initial_regs(d, s_or_imm, dst, imm ? dst : src);
  const s32 immv = static_cast<s32>(static_cast<u32>(s_or_imm));
  for (std::uint8_t i = 0; i < 10; ++i)
    if (i != b.base) b.p.lddw(i, regs[i]);
  b.p(op, static_cast<std::uint8_t>(dst), static_cast<std::uint8_t>(imm ? 0 : src), 0, imm ? immv : 0);
  const u64 operand = imm ? (isa::is_64(op) ? sem::imm64(immv) : static_cast<u32>(immv)) : regs[src];
  regs[dst] = model_alu(op, regs[dst], operand);
  for (std::uint8_t i = 0; i < 10; ++i)
    if (i != b.base) b.observe(i, regs[i]);
}

const std::vector<std::pair<unsigned, unsigned>> kRegPairs = {{1, 2}, {0, 1}, {1, 0}, {2, 3}, {3, 2}, {3, 3},
                                                              {0, 0}, {2, 0}, {0, 2}, {6, 9}, {5, 4}, {3, 1},
                                                              {1, 3}, {2, 2}, {4, 3}, {3, 0}, {9, 7}, {8, 3}};

std::vector<Op> ops_of(std::initializer_list<isa::Form> forms) {
  std::vector<Op> out;
  for (const auto& row : isa::kOps)
    for (isa::Form f : forms)
      if (row.form == f) out.push_back(row.op);
  return out;
}

std::string name_of(Op op, unsigned dst, unsigned src) {
  return std::string(isa::info(op).name) + " r" + std::to_string(dst) + ", r" + std::to_string(src);
}

TEST(JitOps, AluRegisterForms) {
  for (Op op : ops_of({isa::Form::AluX, isa::Form::MovSx})) {
    // every value pair, for every register pair (rax/rdx for div, rcx for shifts, same register, ...)
    for (auto [dst, src] : kRegPairs) {
      Batch b(free_reg({dst, src}), name_of(op, dst, src));
      const bool full = dst == 1 && src == 2;
      for (u64 d : full ? kValues : kFewValues)
        for (u64 s : full ? kValues : kFewValues) alu_case(b, op, dst, src, d, s);
      const bool shift = isa::op_code(op) == 6 || isa::op_code(op) == 7 || isa::op_code(op) == 0xc;
      b.check(dst == 3 && src == 2, shift);  // all JIT variants on a small batch; every pair without BMI2
      if (HasFailure()) return;
    }
  }
}

TEST(JitOps, AluImmediateForms) {
  for (Op op : ops_of({isa::Form::AluK})) {
    for (unsigned dst : {0u, 1u, 2u, 3u, 6u, 9u}) {
      Batch b(free_reg({dst}), name_of(op, dst, 0));
      for (u64 d : dst == 1 ? kValues : kFewValues)
        for (s32 imm : kImms) alu_case(b, op, dst, 0, d, static_cast<u32>(imm));
      b.check(dst == 3);
      if (HasFailure()) return;
    }
  }
}

TEST(JitOps, UnaryForms) {
  for (Op op : ops_of({isa::Form::Neg, isa::Form::End})) {
    for (unsigned dst : {0u, 1u, 2u, 3u, 6u, 9u}) {
      Batch b(free_reg({dst}), name_of(op, dst, 0));
      for (u64 d : kValues) alu_case(b, op, dst, 0, d, 0);
      b.check(dst == 3);
      if (HasFailure()) return;
    }
  }
}

// ---------------------------------------------------------------- jumps
// One case: dst/src get values, the jump stores 1 if taken and 2 if not.
void jump_case(Batch& b, Op op, unsigned dst, unsigned src, u64 d, u64 s_or_imm) {
  const bool imm = isa::info(op).form == isa::Form::JmpK;
  std::array<u64, 10> regs = initial_regs(d, s_or_imm, dst, imm ? dst : src);
  const s32 immv = static_cast<s32>(static_cast<u32>(s_or_imm));
  b.p.lddw(static_cast<std::uint8_t>(src), regs[src]);
  b.p.lddw(static_cast<std::uint8_t>(dst), regs[dst]);
  b.p(op, static_cast<std::uint8_t>(dst), static_cast<std::uint8_t>(imm ? 0 : src), 2, imm ? immv : 0);
  b.p(Op::StDW, b.base, 0, 0, 2)(Op::Ja, 0, 0, 1);
  b.p(Op::StDW, b.base, 0, 0, 1)(Op::AddImm, b.base, 0, 0, 8);
  const u64 operand = imm ? sem::imm64(immv) : regs[src];
  const auto c = static_cast<sem::Cond>(isa::op_code(op));
  const bool taken = isa::is_64(op) ? sem::cond64(c, regs[dst], operand) : sem::cond32(c, regs[dst], operand);
  b.expect.push_back(taken ? 1 : 2);
}

TEST(JitOps, ConditionalJumps) {
  for (Op op : ops_of({isa::Form::JmpK, isa::Form::JmpX})) {
    const bool imm = isa::info(op).form == isa::Form::JmpK;
    for (auto [dst, src] : kRegPairs) {
      if (imm && dst != src) continue;  // imm forms: the pairs (d, d)
      Batch b(free_reg({dst, src}), name_of(op, dst, src));
      const bool full = dst == 1;
      for (u64 d : full ? kValues : kFewValues) {
        if (imm) {
          for (s32 i : kImms) jump_case(b, op, dst, dst, d, static_cast<u32>(i));
          jump_case(b, op, dst, dst, d, static_cast<u32>(d));  // equal operands
        } else {
          for (u64 s : full ? kValues : kFewValues) jump_case(b, op, dst, src, d, s);
        }
      }
      b.check(dst == 3);
      if (HasFailure()) return;
    }
  }
}

TEST(JitOps, UnconditionalJumps) {
  // forward and backward ja / gotol: a loop summing 1..10
  for (Op back : {Op::Ja, Op::Gotol}) {
    Prog p;
    p.mov(0, 0).mov(1, 10);
    p(Op::AddReg, 0, 1)(Op::SubImm, 1, 0, 0, 1)(Op::JeqImm, 1, 0, 1, 0);  // 2, 3, 4
    if (back == Op::Ja) p(Op::Ja, 0, 0, -4);
    else p(Op::Gotol, 0, 0, 0, -4);  // 5 -> 2
    p(Op::Gotol, 0, 0, 0, 1).mov(0, 999).exit();  // 6 -> 8
    const Outcome o = run_all(p.v, RunSetup{});
    EXPECT_EQ(o.result.r0, 55u);
  }
}

// ---------------------------------------------------------------- lddw
TEST(JitOps, Lddw) {
  for (const auto& row : isa::kOps) {
    if (row.form != isa::Form::Lddw) continue;
    for (u64 v : kValues) {
      if (row.op == Op::LddwFunc) continue;
      for (std::uint8_t dst : {0, 3, 9}) {
        Prog p;
        p.lddw(dst, v, row.op)(Op::MovReg, 0, dst).exit();
        EXPECT_EQ(run_all(p.v, RunSetup{}, dst == 3).result.r0, v) << row.name;
      }
    }
  }
  // lddw func: abi::func_addr of the target
  Prog p;
  p.lddw(2, 0, Op::LddwFunc);
  p.v[0].imm = 3;  // 0 + 1 + 3 = 4
  p(Op::MovReg, 0, 2).exit();
  p.mov(0, 0).exit();  // 4: the function
  EXPECT_EQ(run_all(p.v, RunSetup{}).result.r0, abi::func_addr(4));
}

// ---------------------------------------------------------------- loads and stores
std::vector<u8> pattern(std::size_t n) {
  std::vector<u8> m(n);
  for (std::size_t i = 0; i < n; ++i) m[i] = static_cast<u8>(0x81 + i * 37);
  return m;
}

u64 read_le(const std::vector<u8>& m, std::size_t at, unsigned size) {
  u64 v = 0;
  std::memcpy(&v, m.data() + at, size);
  return v;
}

TEST(JitOps, Loads) {
  for (const auto& row : isa::kOps) {
    if (row.form != isa::Form::Ldx && row.form != isa::Form::LoadAcq) continue;
    const unsigned size = isa::access_size(row.op);
    const bool sx = row.kop.starts_with("s");
    for (s32 off : {-16, -9, -1, 0, 1, 3, 7, 8, 15}) {
      for (auto [dst, base] : std::vector<std::pair<unsigned, unsigned>>{{0, 2}, {2, 2}, {3, 0}, {6, 1}, {1, 1}}) {
        RunSetup s;
        s.memory = pattern(64);
        s.mem_arg = true;
        Prog p;
        p(Op::MovReg, static_cast<std::uint8_t>(base), 1)(Op::AddImm, static_cast<std::uint8_t>(base), 0, 0, 24);
        if (row.form == isa::Form::Ldx)
          p(row.op, static_cast<std::uint8_t>(dst), static_cast<std::uint8_t>(base), static_cast<std::int16_t>(off));
        else
          p(row.op, static_cast<std::uint8_t>(dst), static_cast<std::uint8_t>(base), static_cast<std::int16_t>(off));
        p(Op::MovReg, 0, static_cast<std::uint8_t>(dst)).exit();
        u64 v = read_le(s.memory, static_cast<std::size_t>(24 + off), size);
        if (sx) v = sem::sext(v, size * 8);
        const Outcome o = run_all(p.v, s, off == 1);
        EXPECT_TRUE(o.result.ok()) << describe(o.result);
        EXPECT_EQ(o.result.r0, v) << row.name << " off " << off << " dst r" << dst << " base r" << base;
      }
    }
  }
}

TEST(JitOps, Stores) {
  for (const auto& row : isa::kOps) {
    if (row.form != isa::Form::St && row.form != isa::Form::Stx && row.form != isa::Form::StoreRel) continue;
    const unsigned size = isa::access_size(row.op);
    for (s32 off : {-16, -1, 0, 3, 8}) {
      for (u64 val : {u64{0x0102030405060708}, u64{0xfffffffffffffff9}, u64{0x80}, u64{0x7fffffff}}) {
        for (auto [base, src] : std::vector<std::pair<unsigned, unsigned>>{{2, 3}, {0, 1}, {3, 0}, {1, 2}}) {
          RunSetup s;
          s.memory = pattern(48);
          s.mem_arg = true;
          Prog p;
          const auto sv = static_cast<s32>(static_cast<u32>(val));
          if (row.form == isa::Form::St) {
            p(Op::MovReg, static_cast<std::uint8_t>(base), 1)(Op::AddImm, static_cast<std::uint8_t>(base), 0, 0, 24);
            p(row.op, static_cast<std::uint8_t>(base), 0, static_cast<std::int16_t>(off), sv);
          } else {
            p(Op::MovReg, 9, 1);
            p.lddw(static_cast<std::uint8_t>(src), val);
            p(Op::MovReg, static_cast<std::uint8_t>(base), 9)(Op::AddImm, static_cast<std::uint8_t>(base), 0, 0, 24);
            p(row.op, static_cast<std::uint8_t>(base), static_cast<std::uint8_t>(src), static_cast<std::int16_t>(off));
          }
          p.mov(0, 1).exit();
          const u64 stored = row.form == isa::Form::St ? sem::imm64(sv) : val;
          std::vector<u8> expect = s.memory;
          std::memcpy(expect.data() + 24 + off, &stored, size);
          const Outcome o = run_all(p.v, s, off == 3);
          EXPECT_TRUE(o.result.ok()) << describe(o.result);
          EXPECT_EQ(o.memory, expect) << row.name << " off " << off;
        }
      }
    }
  }
}

// ---------------------------------------------------------------- atomics
TEST(JitOps, Atomics) {
  for (const auto& row : isa::kOps) {
    if (row.form != isa::Form::Atomic) continue;
    const unsigned size = isa::access_size(row.op);
    const auto aop = static_cast<sem::AtomicOp>(row.sel_value & ~sem::kAtomicFetch);
    const bool fetch = (row.sel_value & sem::kAtomicFetch) != 0;
    const u64 mask = size == 8 ? ~u64{0} : 0xffffffffULL;
    for (u64 mem0 : {u64{0x00ff00ff12345678}, u64{0xffffffff80000001}}) {
      for (u64 operand : {u64{0x0f0f0f0f0f0f0f0f}, u64{0x12345678}, u64{0xffffffff80000001}}) {
        for (auto [base, src] : std::vector<std::pair<unsigned, unsigned>>{{1, 2}, {6, 2}, {2, 0}, {1, 3}, {3, 1}}) {
          for (u64 r0v : {mem0, u64{0x5555}}) {  // cmpxchg: equal and unequal
            RunSetup s;
            s.memory = pattern(32);
            std::memcpy(s.memory.data() + 8, &mem0, 8);
            s.mem_arg = true;
            Prog p;
            p(Op::MovReg, 9, 1);
            p.lddw(0, r0v);
            p.lddw(static_cast<std::uint8_t>(src), operand);
            p(Op::MovReg, static_cast<std::uint8_t>(base), 9);
            p(row.op, static_cast<std::uint8_t>(base), static_cast<std::uint8_t>(src), 8);
            p(Op::MulImm, 0, 0, 0, 31)(Op::XorReg, 0, static_cast<std::uint8_t>(src)).exit();  // r0 = fold(r0, src)
            // model: the registers that matter are r0 and src
            u64 r0 = src == 0 ? operand : r0v;
            const u64 srcv = operand;
            const u64 old = mem0 & mask;
            u64 nw = old;
            u64 src_after = srcv;
            if (aop == sem::AtomicOp::Cmpxchg) {
              if ((r0 & mask) == old) nw = srcv & mask;
              r0 = old;
              if (src == 0) src_after = r0;
            } else {
              nw = sem::atomic_apply(aop, old, srcv) & mask;
              if (fetch) src_after = old;
              if (src == 0) r0 = src_after;
            }
            std::vector<u8> expect = s.memory;
            std::memcpy(expect.data() + 8, &nw, size);
            const u64 expect_r0 = src == 0 ? 0 : (r0 * 31) ^ src_after;  // src r0: r0 ^= r0
            const Outcome o = run_all(p.v, s, base == 1 && src == 2);
            EXPECT_TRUE(o.result.ok()) << describe(o.result);
            EXPECT_EQ(o.memory, expect) << row.name;
            EXPECT_EQ(o.result.r0, expect_r0) << row.name << " base r" << base << " src r" << src << std::hex
                                              << " mem0 " << mem0 << " operand " << operand << " r0 " << r0v;
            if (::testing::Test::HasFailure()) return;
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------- legacy packet access
TEST(JitOps, LdAbsLdInd) {
  std::vector<u8> pkt(40);
  for (std::size_t i = 0; i < pkt.size(); ++i) pkt[i] = static_cast<u8>(0xa0 + i);
  for (const auto& row : isa::kOps) {
    if (row.form != isa::Form::LdAbs && row.form != isa::Form::LdInd) continue;
    const unsigned size = isa::access_size(row.op);
    for (s32 at : {0, 1, 35, 36, 37, 39, 40, 100, -1}) {
      for (u64 base : {u64{0}, u64{4}, u64{0xffffffff}, u64{0x100000002}}) {
        if (row.form == isa::Form::LdAbs && base != 0) continue;
        RunSetup s;
        s.packet = pkt;
        Prog p;
        p.mov(1, 77).mov(2, 88);
        p.lddw(3, base);
        p.mov(0, 12345);
        p(row.op, 0, 3, 0, at);
        // r0 = loaded * 1000 + r1 + r2 (r1..r5 are kept)
        p(Op::MulImm, 0, 0, 0, 1000)(Op::AddReg, 0, 1)(Op::AddReg, 0, 2).exit();
        const u32 off = (row.form == isa::Form::LdInd ? static_cast<u32>(base) : 0u) + static_cast<u32>(at);
        u64 expect = 0;
        if (static_cast<s32>(off) >= 0 && off + size <= pkt.size()) {
          u64 v = 0;
          for (unsigned i = 0; i < size; ++i) v = (v << 8) | pkt[off + i];
          expect = v * 1000 + 77 + 88;
        }
        const Outcome o = run_all(p.v, s, at == 1);
        EXPECT_TRUE(o.result.ok()) << describe(o.result);
        EXPECT_EQ(o.result.r0, expect) << row.name << " at " << at << " base " << base;
      }
    }
  }
}

TEST(JitOps, EveryFormIsTested) {
  for (const auto& row : isa::kOps)
    EXPECT_TRUE(kFormsTestedHere.count(row.form) + kFormsTestedInCalls.count(row.form) == 1) << row.name;
}

}  // namespace
}  // namespace userbpf::jit::test
