// JIT memory idioms (src/jit/memops.cpp: Options::combine_loads,
// merge_copies, address_runs) against the interpreter: fixed cases for each
// idiom and the cases where it must not fire (a temporary live afterwards,
// overlapping copies, another base register, a jump target inside), each
// checked in the listing; memory placed right before a PROT_NONE page so
// that a wider access reading one byte too many crashes; checked runs whose
// accesses leave the region fault at the same instruction as in the
// interpreter; and random programs dense in the idioms, with them on and off.
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "jit_test_util.hpp"

namespace userbpf::jit::test {
namespace {

// `size` bytes ending right before a PROT_NONE page.
class GuardedMemory {
 public:
  explicit GuardedMemory(std::size_t size) : size_(size) {
    const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    span_ = (size + page - 1) / page * page + page;
    void* m = mmap(nullptr, span_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::runtime_error("mmap");
    base_ = static_cast<u8*>(m);
    mprotect(base_ + span_ - page, page, PROT_NONE);
    data_ = base_ + span_ - page - size;
  }
  ~GuardedMemory() { munmap(base_, span_); }
  GuardedMemory(const GuardedMemory&) = delete;
  GuardedMemory& operator=(const GuardedMemory&) = delete;
  u8* data() { return data_; }
  std::size_t size() const { return size_; }

 private:
  std::size_t size_, span_;
  u8* base_ = nullptr;
  u8* data_ = nullptr;
};

enum class Mode { Interp, On, Off };

Options memops_options(Mode m) {
  Options o;
  const bool on = m == Mode::On;
  o.combine_loads = on;
  o.merge_copies = on;
  o.address_runs = on;
  return o;
}

struct Ran {
  abi::RunResult result;
  std::vector<u8> memory;
};

// Runs with r1 = the guarded memory (initialised from `init`), r2 = arg2.
Ran run(Mode m, const std::vector<Insn>& insns, const std::vector<u8>& init, bool checked = false, u64 arg2 = 0) {
  static GuardedMemory* mem = nullptr;
  if (mem == nullptr || mem->size() != init.size()) {
    delete mem;
    mem = new GuardedMemory(init.size());
  }
  std::copy(init.begin(), init.end(), mem->data());
  abi::Env env;
  env.options.checked = checked;
  env.regions.push_back(
      abi::Region{reinterpret_cast<u64>(mem->data()), init.size(), true, abi::RegionKind::Memory});
  const std::vector<u64> args = {reinterpret_cast<u64>(mem->data()), arg2};
  Ran out;
  if (m == Mode::Interp) {
    auto p = interp::Program::create(insns, {});
    if (!p) {
      ADD_FAILURE() << "interp: " << p.error().to_string();
      return out;
    }
    out.result = p->run(env, args);
  } else {
    out.result = compile(insns, memops_options(m)).run(env, args);
  }
  out.memory.assign(mem->data(), mem->data() + init.size());
  return out;
}

// The interpreter, the JIT with the idioms on and off: same result and memory.
void expect_same(const std::vector<Insn>& insns, const std::vector<u8>& init, bool checked = false, u64 arg2 = 0,
                 const std::string& what = "") {
  const Ran ref = run(Mode::Interp, insns, init, checked, arg2);
  for (Mode m : {Mode::On, Mode::Off}) {
    const Ran r = run(m, insns, init, checked, arg2);
    const char* name = m == Mode::On ? "memops on" : "memops off";
    EXPECT_TRUE(same(r.result, ref.result)) << what << " " << name << ": " << describe(r.result)
                                            << "\ninterp: " << describe(ref.result);
    EXPECT_EQ(r.memory, ref.memory) << what << " " << name << ": memory differs";
  }
}

std::vector<u8> pattern(std::size_t n, u64 seed = 1) {
  std::mt19937_64 rng(seed);
  std::vector<u8> v(n);
  for (u8& b : v) b = static_cast<u8>(rng());
  return v;
}

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t c = 0;
  for (std::size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++c;
  return c;
}

// The listing of the program's own code (without the out-of-line stubs).
std::string listing(const std::vector<Insn>& insns, Mode m = Mode::On) {
  const std::string l = compile(insns, memops_options(m)).disassemble();
  return l.substr(0, l.find("; out-of-line"));
}

// ---------------------------------------------------------------- load combining

// r7 = u8[base + lo_off]; r6 = u8[base + hi_off]; r6 <<= 8; r6 |= r7 (+ variants)
struct Combine {
  bool shift_between = false;  // load, shift, load, or
  bool alu32 = false;
  int hi_off = 0, lo_off = 1;  // big-endian by default
  int h = 6, l = 7, base = 1;
};
void append_combine(Prog& p, const Combine& c) {
  const Op sh = c.alu32 ? Op::Lsh32Imm : Op::LshImm;
  const Op orr = c.alu32 ? Op::Or32Reg : Op::OrReg;
  const auto ld = [&](int d, int off) {
    p(Op::LdxB, static_cast<std::uint8_t>(d), static_cast<std::uint8_t>(c.base), static_cast<std::int16_t>(off));
  };
  if (c.shift_between) {
    ld(c.h, c.hi_off);
    p(sh, static_cast<std::uint8_t>(c.h), 0, 0, 8);
    ld(c.l, c.lo_off);
  } else {
    ld(c.l, c.lo_off);
    ld(c.h, c.hi_off);
    p(sh, static_cast<std::uint8_t>(c.h), 0, 0, 8);
  }
  p(orr, static_cast<std::uint8_t>(c.h), static_cast<std::uint8_t>(c.l));
}

TEST(JitMemops, CombinesBigAndLittleEndianByteLoads) {
  const std::vector<u8> mem = pattern(64);
  for (int order = 0; order < 2; ++order)
    for (int alu32 = 0; alu32 < 2; ++alu32)
      for (int be = 0; be < 2; ++be)
        for (int off : {0, 1, 7, 61}) {  // aligned, odd, the last two bytes
          Combine c;
          c.shift_between = order == 1;
          c.alu32 = alu32 == 1;
          c.hi_off = be ? off : off + 1;
          c.lo_off = be ? off + 1 : off;
          Prog p;
          p.mov(7, 0x5555);
          append_combine(p, c);
          p(Op::MovReg, 0, 6).mov(7, 1)(Op::AddReg, 0, 7).exit();  // r7 dead after the or
          const std::string what = "order " + std::to_string(order) + " alu32 " + std::to_string(alu32) + " be " +
                                   std::to_string(be) + " off " + std::to_string(off);
          expect_same(p.v, mem, false, 0, what);
          const u64 want = be ? (u64{mem[static_cast<std::size_t>(off)]} << 8 | mem[static_cast<std::size_t>(off) + 1])
                              : (u64{mem[static_cast<std::size_t>(off) + 1]} << 8 | mem[static_cast<std::size_t>(off)]);
          EXPECT_EQ(run(Mode::On, p.v, mem).result.r0, want + 1) << what;
          const std::string on = listing(p.v);
          EXPECT_EQ(count(on, "word ptr"), 1u) << what << "\n" << on;
          EXPECT_EQ(count(on, "rol"), be ? 1u : 0u) << what << "\n" << on;
          EXPECT_EQ(count(on, "byte ptr"), 0u) << what << "\n" << on;
          EXPECT_EQ(count(listing(p.v, Mode::Off), "word ptr"), 0u) << what;
        }
}

TEST(JitMemops, CombinedLoadWithAddressPrefixAndBaseOverwritten) {
  const std::vector<u8> mem = pattern(64, 2);
  // csum's shape: r4 = r1; r4 += r0; r7 = u8[r4 + 1]; r4 = u8[r4]; r4 <<= 8; r4 |= r7
  for (int idx : {0, 5, 62}) {
    Prog p;
    p.mov(0, idx).mov(7, 3)(Op::MovReg, 4, 1)(Op::AddReg, 4, 0);
    Combine c;
    c.base = 4;
    c.h = 4;
    c.l = 7;
    append_combine(p, c);
    p(Op::MovReg, 0, 4).mov(7, 0).exit();
    expect_same(p.v, mem, false, 0, "idx " + std::to_string(idx));
    EXPECT_EQ(run(Mode::On, p.v, mem).result.r0,
              u64{mem[static_cast<std::size_t>(idx)]} << 8 | mem[static_cast<std::size_t>(idx) + 1]);
    const std::string on = listing(p.v);
    EXPECT_EQ(count(on, "movzx r8d, word ptr [rsi+rax"), 1u) << on;  // no lea: the prefix is folded
    EXPECT_EQ(count(on, "lea"), 0u) << on;
  }
  // The same with the prefix register live afterwards: the prefix stays.
  Prog p;
  p.mov(0, 9).mov(7, 3)(Op::MovReg, 4, 1)(Op::AddReg, 4, 0);
  Combine c;
  c.base = 4;
  c.h = 6;
  c.l = 7;
  append_combine(p, c);
  p(Op::LdxB, 0, 4, 2)(Op::AddReg, 0, 6).mov(7, 0).exit();  // r4 read again
  expect_same(p.v, mem);
  EXPECT_EQ(count(listing(p.v), "word ptr"), 1u);
}

TEST(JitMemops, NoCombiningWhenTheOtherByteIsLiveOrTheShapeDiffers) {
  const std::vector<u8> mem = pattern(64, 3);
  {  // r7 (the low byte) is read afterwards
    Prog p;
    append_combine(p, Combine{});
    p(Op::MovReg, 0, 6)(Op::AddReg, 0, 7).exit();
    expect_same(p.v, mem);
    EXPECT_EQ(count(listing(p.v), "word ptr"), 0u);
  }
  {  // live on one path only (a branch reads r7)
    Prog p;
    p(Op::LdxB, 2, 1, 40);
    append_combine(p, Combine{});
    p(Op::JeqImm, 2, 0, 2, 0x17)(Op::MovReg, 0, 6).exit()(Op::MovReg, 0, 7).exit();
    for (u8 v : {u8{0x17}, u8{0x18}}) {
      std::vector<u8> m2 = mem;
      m2[40] = v;
      expect_same(p.v, m2);
    }
    EXPECT_EQ(count(listing(p.v), "word ptr"), 0u);
  }
  for (int k = 0; k < 4; ++k) {  // offsets 2 apart; shift by 16; two base registers; a jump target
    Prog p;
    p(Op::MovReg, 3, 1);
    if (k == 0) {
      Combine c;
      c.hi_off = 0;
      c.lo_off = 2;
      append_combine(p, c);
    } else if (k == 1) {
      p(Op::LdxB, 7, 1, 1)(Op::LdxB, 6, 1, 0)(Op::LshImm, 6, 0, 0, 16)(Op::OrReg, 6, 7);
    } else if (k == 2) {  // the two bytes through different base registers (same address)
      p(Op::LdxB, 7, 1, 1)(Op::LdxB, 6, 3, 0)(Op::LshImm, 6, 0, 0, 8)(Op::OrReg, 6, 7);
    } else {
      // a jump (taken when r2 == 0) to the shift: a jump target inside the group
      p.mov(6, 1).mov(7, 2)(Op::JeqImm, 2, 0, 2, 0);
      p(Op::LdxB, 7, 1, 1)(Op::LdxB, 6, 1, 0)(Op::LshImm, 6, 0, 0, 8)(Op::OrReg, 6, 7);
    }
    p(Op::MovReg, 0, 6).mov(7, 0).mov(3, 0).exit();
    expect_same(p.v, mem, false, 0, "shape " + std::to_string(k));
    expect_same(p.v, mem, false, 1, "shape " + std::to_string(k) + " r2 = 1");
    EXPECT_EQ(count(listing(p.v), "word ptr"), 0u) << "shape " << k;
  }
}

TEST(JitMemops, CheckedRunsKeepEveryBoundsCheck) {
  // The second byte is one past the region: the interpreter faults at the
  // second load; so must every JIT variant (checked code is never combined).
  const std::vector<u8> mem = pattern(16, 4);
  Combine c;
  c.hi_off = 15;
  c.lo_off = 16;
  Prog p;
  append_combine(p, c);
  p(Op::MovReg, 0, 6).mov(7, 0).exit();
  const Ran ref = run(Mode::Interp, p.v, mem, true);
  ASSERT_EQ(ref.result.fault, abi::Fault::MemoryViolation) << describe(ref.result);
  ASSERT_TRUE(ref.result.error.has_value());
  EXPECT_EQ(ref.result.error->insn, 0u);  // the low byte is loaded first
  expect_same(p.v, mem, true);
  // a copy run whose last byte is out of range
  Prog q;
  for (int i = 0; i < 8; ++i) q(Op::LdxB, 2, 1, static_cast<std::int16_t>(9 + i))(Op::StxB, 1, 2, static_cast<std::int16_t>(i));
  q.mov(0, 0).exit();
  const Ran qref = run(Mode::Interp, q.v, mem, true);
  ASSERT_EQ(qref.result.fault, abi::Fault::MemoryViolation);
  EXPECT_EQ(qref.result.error->insn, 14u);
  expect_same(q.v, mem, true);
}

// ---------------------------------------------------------------- copy runs

// count pairs of `size`-byte loads from src_off + i*size and stores to
// dst_off + i*size, in `order` (0 ascending, 1 descending, 2 shuffled), temp
// registers from `temps`.
void append_copy(Prog& p, Op ld, Op st, int count, int src_off, int dst_off, int order, std::vector<int> temps,
                 std::mt19937& rng, int src_base = 1, int dst_base = 1) {
  const int size = static_cast<int>(isa::access_size(ld));
  std::vector<int> idx(static_cast<std::size_t>(count));
  std::iota(idx.begin(), idx.end(), 0);
  if (order == 1) std::reverse(idx.begin(), idx.end());
  if (order == 2) std::shuffle(idx.begin(), idx.end(), rng);
  for (std::size_t k = 0; k < idx.size(); ++k) {
    const int i = idx[k];
    const auto t = static_cast<std::uint8_t>(temps[k % temps.size()]);
    p(ld, t, static_cast<std::uint8_t>(src_base), static_cast<std::int16_t>(src_off + i * size));
    p(st, static_cast<std::uint8_t>(dst_base), t, static_cast<std::int16_t>(dst_off + i * size));
  }
}

TEST(JitMemops, CopyRunsOfEverySizeAndOrder) {
  std::mt19937 rng(7);
  const std::vector<u8> mem = pattern(1024, 5);
  const std::pair<Op, Op> kSizes[] = {{Op::LdxB, Op::StxB}, {Op::LdxH, Op::StxH}, {Op::LdxW, Op::StxW},
                                      {Op::LdxDW, Op::StxDW}};
  for (const auto& [ld, st] : kSizes)
    for (int pairs : {2, 3, 5, 8, 16, 17, 33})
      for (int order = 0; order < 3; ++order) {
        const int size = static_cast<int>(isa::access_size(ld));
        const int len = pairs * size;
        // source ending at the last byte of the memory (guard page after it), destination below
        const int src = 1024 - len, dst = 1 + (order * 3) % 7;
        Prog p;
        append_copy(p, ld, st, pairs, src, dst, order, {2}, rng);
        p.mov(2, 0)(Op::LdxDW, 0, 1, static_cast<std::int16_t>(dst)).exit();
        const std::string what = "size " + std::to_string(size) + " pairs " + std::to_string(pairs) + " order " +
                                 std::to_string(order);
        expect_same(p.v, mem, false, 0, what);
        const Ran r = run(Mode::On, p.v, mem);
        EXPECT_TRUE(std::equal(mem.begin() + src, mem.end(), r.memory.begin() + dst)) << what;
        const std::string on = listing(p.v);
        EXPECT_EQ(count(on, "movdqu") > 0, len >= 16) << what << "\n" << on;
        EXPECT_EQ(count(on, "r11"), len >= 16 ? 0u : 2u * (static_cast<unsigned>(len) == std::bit_floor(static_cast<unsigned>(len)) ? 1u : 2u))
            << what << "\n" << on;
        EXPECT_EQ(count(listing(p.v, Mode::Off), "movdqu"), 0u);
      }
}

TEST(JitMemops, CopyRunsThatMustNotMerge) {
  std::mt19937 rng(8);
  const std::vector<u8> mem = pattern(256, 6);
  for (int order = 0; order < 3; ++order) {
    // overlapping source and destination (forward and backward by less than the length)
    for (int dst : {8, 100, 120, 124, 127, 129, 132, 140}) {
      Prog p;
      append_copy(p, Op::LdxDW, Op::StxDW, 4, 128 - 16, dst - 16, order, {2, 3}, rng);
      p.mov(2, 0).mov(3, 0).mov(0, 0).exit();
      const std::string what = "dst " + std::to_string(dst) + " order " + std::to_string(order);
      expect_same(p.v, mem, false, 0, what);
      const bool disjoint = std::abs(dst - 128) >= 32;
      EXPECT_EQ(count(listing(p.v), "movdqu") > 0, disjoint) << what;
    }
    // load and store through different base registers (the same address: not provably disjoint)
    Prog p;
    p(Op::MovReg, 6, 1);
    append_copy(p, Op::LdxB, Op::StxB, 16, 0, 16, order, {2}, rng, 1, 6);
    p.mov(2, 0).mov(0, 0).exit();
    expect_same(p.v, mem);
    EXPECT_EQ(count(listing(p.v), "movdqu"), 0u);
    // a gap: offsets that do not tile one range
    Prog g;
    append_copy(g, Op::LdxW, Op::StxW, 3, 0, 64, order, {2}, rng);
    append_copy(g, Op::LdxW, Op::StxW, 3, 16, 80, order, {2}, rng);
    g.mov(2, 0).mov(0, 0).exit();
    expect_same(g.v, mem);
  }
}

TEST(JitMemops, CopyRunTemporariesLiveAfterwardGetTheirLastValue) {
  std::mt19937 rng(9);
  const std::vector<u8> mem = pattern(256, 7);
  for (int order = 0; order < 3; ++order)
    for (const auto& [ld, st] : {std::pair{Op::LdxB, Op::StxB}, std::pair{Op::LdxH, Op::StxH},
                                  std::pair{Op::LdxW, Op::StxW}, std::pair{Op::LdxDW, Op::StxDW}}) {
      Prog p;
      p.mov(3, 77);
      append_copy(p, ld, st, 8, 10, 130, order, {2, 3, 4}, rng);
      // every temporary read afterwards
      p(Op::MovReg, 0, 2)(Op::LshImm, 0, 0, 0, 1)(Op::XorReg, 0, 3)(Op::LshImm, 0, 0, 0, 1)(Op::XorReg, 0, 4).exit();
      const std::string what = "order " + std::to_string(order) + " size " + std::to_string(isa::access_size(ld));
      expect_same(p.v, mem, false, 0, what);
      EXPECT_GT(count(listing(p.v), "movdqu") + count(listing(p.v), "r11"), 0u) << what;
    }
}

TEST(JitMemops, CopyRunStopsAtAJumpTarget) {
  std::mt19937 rng(10);
  const std::vector<u8> mem = pattern(256, 8);
  Prog p;
  p.mov(5, 0)(Op::JeqImm, 2, 0, 8, 0);  // taken: skips the first 4 pairs
  append_copy(p, Op::LdxDW, Op::StxDW, 8, 0, 128, 0, {3}, rng);
  p.mov(3, 0).mov(0, 0).exit();
  for (u64 a : {0u, 1u}) expect_same(p.v, mem, false, a, "r2 = " + std::to_string(a));
  EXPECT_EQ(count(listing(p.v), "movdqu"), 8u);  // 2 x 32 bytes (2 loads, 2 stores each): before and after the target
}

// ---------------------------------------------------------------- address runs

TEST(JitMemops, AddressRuns) {
  const std::vector<u8> mem = pattern(256, 9);
  {  // memcpy_1k's loop body: r4 = r1; r4 += r3; r5 = [r4]; [r4 + 128] = r5, r4 dead
    Prog p;
    p.mov(3, 0);
    const std::size_t head = p.size();
    p(Op::MovReg, 4, 1)(Op::AddReg, 4, 3)(Op::LdxDW, 5, 4, 0)(Op::StxDW, 4, 5, 128)(Op::AddImm, 3, 0, 0, 8);
    p(Op::JltImm, 3, 0, static_cast<std::int16_t>(static_cast<std::int64_t>(head) - static_cast<std::int64_t>(p.size()) - 1), 128);
    p.mov(0, 0)(Op::LdxDW, 0, 1, 200).exit();
    expect_same(p.v, mem);
    const std::string on = listing(p.v);
    EXPECT_EQ(count(on, "lea"), 0u) << on;
    EXPECT_EQ(count(on, "[rsi+rcx*1+0x80]"), 1u) << on;
    EXPECT_GT(count(listing(p.v, Mode::Off), "lea"), 0u);
  }
  {  // stack_array's fill: r4 = r10; r4 += -64; r4 += r3; r5 = r3; r5 *= r7; [r4] = r5
    Prog p;
    p.mov(3, 0).mov(7, 3);
    const std::size_t head = p.size();
    p(Op::MovReg, 4, 10)(Op::AddImm, 4, 0, 0, -64)(Op::AddReg, 4, 3)(Op::MovReg, 5, 3)(Op::MulReg, 5, 7);
    p(Op::StxDW, 4, 5, 0)(Op::AddImm, 3, 0, 0, 8);
    p(Op::JltImm, 3, 0, static_cast<std::int16_t>(static_cast<std::int64_t>(head) - static_cast<std::int64_t>(p.size()) - 1), 64);
    p(Op::LdxDW, 0, 10, -64)(Op::LdxDW, 2, 10, -8)(Op::AddReg, 0, 2).exit();
    expect_same(p.v, mem);
    EXPECT_EQ(count(listing(p.v), "lea r8"), 0u) << listing(p.v);  // r4 = r8: no prefix lea
  }
  {  // the prefix register live afterwards: no fold
    Prog p;
    p.mov(3, 16)(Op::MovReg, 4, 1)(Op::AddReg, 4, 3)(Op::LdxDW, 5, 4, 0)(Op::StxDW, 4, 5, 64);
    p(Op::MovReg, 0, 4)(Op::SubReg, 0, 1)(Op::AddReg, 0, 5).exit();
    expect_same(p.v, mem);
    EXPECT_EQ(count(listing(p.v), "lea"), 1u);
  }
  {  // the last access loads into an address register; an ALU op in between
    Prog p;
    p.mov(3, 16)(Op::MovReg, 4, 1)(Op::AddReg, 4, 3)(Op::LdxDW, 5, 4, 0)(Op::AddImm, 5, 0, 0, 1);
    p(Op::StxDW, 4, 5, 64)(Op::LdxB, 3, 4, 3)(Op::MovReg, 0, 3)(Op::AddReg, 0, 5).exit();
    expect_same(p.v, mem);
    EXPECT_EQ(count(listing(p.v), "lea r8"), 0u) << listing(p.v);  // r4 = r8: no prefix lea
  }
  {  // an ALU op in between writes an address register: the run ends before it
    Prog p;
    p.mov(3, 16)(Op::MovReg, 4, 1)(Op::AddReg, 4, 3)(Op::LdxDW, 5, 4, 0)(Op::AddImm, 3, 0, 0, 1);
    p(Op::StxDW, 4, 5, 64).mov(4, 0)(Op::MovReg, 0, 3)(Op::AddReg, 0, 5).exit();
    expect_same(p.v, mem);
  }
}

// ---------------------------------------------------------------- random programs

// Random programs made of the idioms and their near misses: r1 = the memory
// (never written), r6 = r1 + 64, loads and stores only at constant offsets
// of r1 / r6 or through an address prefix with an index in r8 (0..63); other
// registers hold data. r0 = a mix of a random subset of registers at the end
// (so temporaries are sometimes live).
std::vector<Insn> random_program(std::mt19937& rng) {
  const auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  static const int kData[] = {0, 2, 3, 4, 5, 7, 9};
  const auto data = [&] { return kData[pick(7)]; };
  Prog p;
  for (int r : kData) p.mov(static_cast<std::uint8_t>(r), pick(1000));
  p(Op::MovReg, 6, 1)(Op::AddImm, 6, 0, 0, 64).mov(8, pick(64));
  std::vector<std::size_t> fwd;  // forward jumps to patch to a later step start
  const int steps = 4 + pick(10);
  for (int s = 0; s < steps; ++s) {
    for (std::size_t at : fwd)
      if (pick(2) == 0) p.v[at].off = static_cast<std::int16_t>(p.size() - at - 1);
    std::erase_if(fwd, [&](std::size_t at) { return p.v[at].off != 0; });
    const int base = pick(3) == 0 ? 6 : 1;
    switch (pick(5)) {
      case 0: case 1: {  // byte loads combined (or nearly)
        Combine c;
        c.shift_between = pick(2) == 1;
        c.alu32 = pick(2) == 1;
        const int off = pick(126);
        const bool be = pick(2) == 1;
        c.hi_off = be ? off : off + 1;
        c.lo_off = be ? off + 1 : off;
        if (pick(8) == 0) c.lo_off += 1;  // not adjacent
        c.h = data();
        do c.l = data(); while (c.l == c.h);
        c.base = base;
        if (pick(3) == 0) {  // through an address prefix rT = base + r8
          int t = c.h;
          if (pick(2)) {
            do t = data(); while (t == c.h || t == c.l);
          } else {
            c.shift_between = false;  // rH (= rT) is loaded second
          }
          p(Op::MovReg, static_cast<std::uint8_t>(t), static_cast<std::uint8_t>(base))(Op::AddReg, static_cast<std::uint8_t>(t), 8);
          c.base = t;
        }
        append_combine(p, c);
        break;
      }
      case 2: {  // a copy run
        static const std::pair<Op, Op> kSizes[] = {{Op::LdxB, Op::StxB}, {Op::LdxH, Op::StxH}, {Op::LdxW, Op::StxW},
                                                   {Op::LdxDW, Op::StxDW}};
        const auto [ld, st] = kSizes[pick(4)];
        const int size = static_cast<int>(isa::access_size(ld));
        const int count = 2 + pick(12);
        const int len = count * size;
        const int lim = 192 - len;
        const int src = pick(lim / size + 1) * size, dst = pick(lim / size + 1) * size + pick(2) * pick(size);
        std::vector<int> temps = {data()};
        if (pick(2)) temps.push_back(data());
        append_copy(p, ld, st, count, src, std::min(dst, lim), pick(3), temps, rng, base,
                    pick(6) == 0 ? 7 - base : base);  // sometimes r6 vs r1 (another base)
        break;
      }
      case 3: {  // an address run
        const int t = data();
        int d = data();
        while (d == t) d = data();
        p(Op::MovReg, static_cast<std::uint8_t>(t), static_cast<std::uint8_t>(base))(Op::AddReg, static_cast<std::uint8_t>(t), 8);
        if (pick(2)) p(Op::AddImm, static_cast<std::uint8_t>(t), 0, 0, pick(32));
        const int n = 1 + pick(3);
        for (int k = 0; k < n; ++k) {
          switch (pick(4)) {
            case 0: p(Op::LdxDW, static_cast<std::uint8_t>(d), static_cast<std::uint8_t>(t), static_cast<std::int16_t>(pick(8) * 8)); break;
            case 1: p(Op::StxW, static_cast<std::uint8_t>(t), static_cast<std::uint8_t>(d), static_cast<std::int16_t>(pick(60))); break;
            case 2: p(Op::StW, static_cast<std::uint8_t>(t), 0, static_cast<std::int16_t>(pick(60)), pick(1 << 20)); break;
            default: p(Op::AddImm, static_cast<std::uint8_t>(d), 0, 0, pick(100)); break;
          }
        }
        if (pick(3) == 0) p(Op::LdxH, static_cast<std::uint8_t>(t), static_cast<std::uint8_t>(t), static_cast<std::int16_t>(pick(60)));
        break;
      }
      default: {  // mixing, a forward branch
        const int d = data();
        p(Op::XorReg, static_cast<std::uint8_t>(d), static_cast<std::uint8_t>(data()));
        if (pick(2)) {
          fwd.push_back(p.size());
          p(Op::JgtImm, static_cast<std::uint8_t>(data()), 0, 0, pick(256));
        }
        break;
      }
    }
  }
  for (std::size_t at : fwd) p.v[at].off = static_cast<std::int16_t>(p.size() - at - 1);
  p.mov(6, 0);
  for (int r : kData)
    if (r != 0 && pick(2)) p(Op::LshImm, 0, 0, 0, 3)(Op::XorReg, 0, static_cast<std::uint8_t>(r));
  for (int r : kData)
    if (r != 0) p.mov(static_cast<std::uint8_t>(r), 0);
  p.mov(8, 0).exit();
  return p.v;
}

TEST(JitMemops, RandomProgramsAgreeWithTheInterpreter) {
  std::mt19937 rng(20261123);
  const std::vector<u8> mem = pattern(256, 10);
  std::size_t fired = 0;
  for (int i = 0; i < 1500; ++i) {
    const std::vector<Insn> prog = random_program(rng);
    expect_same(prog, mem, false, 0, "program " + std::to_string(i));
    if (i % 10 == 0) expect_same(prog, mem, true, 0, "program " + std::to_string(i) + " checked");
    const std::string on = listing(prog);
    if (on.find("word ptr") != std::string::npos || on.find("movdqu") != std::string::npos) ++fired;
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "first failing program: " << i << "\n" << on;
      break;
    }
  }
  EXPECT_GT(fired, 500u);  // the idioms fire in most programs
}

}  // namespace
}  // namespace userbpf::jit::test
