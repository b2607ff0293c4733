#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "isa/semantics.hpp"

using namespace userbpf::isa::sem;

static_assert(div64(7, 0) == 0);
static_assert(mod64(7, 0) == 7);
static_assert(sdiv64(static_cast<u64>(std::numeric_limits<s64>::min()), static_cast<u64>(-1)) ==
              static_cast<u64>(std::numeric_limits<s64>::min()));
static_assert(smod64(static_cast<u64>(std::numeric_limits<s64>::min()), static_cast<u64>(-1)) == 0);
static_assert(sdiv32(0x80000000u, 0xffffffffu) == 0x80000000u);
static_assert(smod32(static_cast<u32>(-13), 3) == static_cast<u32>(-1));
static_assert(smod64(static_cast<u64>(-13), static_cast<u64>(-3)) == static_cast<u64>(-1));
static_assert(lsh64(1, 65) == 2);
static_assert(lsh32(1, 33) == 2);
static_assert(arsh32(0x80000000u, 4) == 0xf8000000u);
static_assert(arsh64(0x8000000000000000ULL, 63) == ~0ULL);
static_assert(sext(0x80, 8) == ~0ULL - 0x7f);
static_assert(sext(0x7f, 8) == 0x7f);
static_assert(to_be(0x1122334455667788ULL, 16) == 0x8877);
static_assert(to_be(0x1122334455667788ULL, 32) == 0x88776655);
static_assert(to_be(0x1122334455667788ULL, 64) == 0x8877665544332211ULL);
static_assert(to_le(0x1122334455667788ULL, 16) == 0x7788);
static_assert(to_le(0x1122334455667788ULL, 32) == 0x55667788);
static_assert(cond32(Cond::Slt, 0xffffffffULL, 0) && !cond64(Cond::Slt, 0xffffffffULL, 0));
static_assert(cond64(Cond::Set, 6, 2) && !cond64(Cond::Set, 4, 2));

TEST(Semantics, DivisionEdgeCases) {
  for (u64 a : {0ULL, 1ULL, 7ULL, ~0ULL, 0x8000000000000000ULL}) {
    EXPECT_EQ(div64(a, 0), 0u);
    EXPECT_EQ(mod64(a, 0), a);
    EXPECT_EQ(sdiv64(a, 0), 0u);
    EXPECT_EQ(smod64(a, 0), a);
    EXPECT_EQ(sdiv64(a, ~0ULL), 0 - a);
    EXPECT_EQ(smod64(a, ~0ULL), 0u);
  }
  EXPECT_EQ(sdiv64(static_cast<u64>(-7), 2), static_cast<u64>(-3));  // truncation toward zero
  EXPECT_EQ(smod64(static_cast<u64>(-7), 2), static_cast<u64>(-1));
}

TEST(Semantics, ShiftMasking) {
  for (u64 s = 0; s < 200; ++s) {
    EXPECT_EQ(lsh64(1, s), 1ULL << (s % 64));
    EXPECT_EQ(lsh32(1, s), 1u << (s % 32));
  }
}

TEST(Semantics, AtomicApply) {
  EXPECT_EQ(atomic_apply(AtomicOp::Add, 5, 3), 8u);
  EXPECT_EQ(atomic_apply(AtomicOp::Or, 5, 3), 7u);
  EXPECT_EQ(atomic_apply(AtomicOp::And, 5, 3), 1u);
  EXPECT_EQ(atomic_apply(AtomicOp::Xor, 5, 3), 6u);
  EXPECT_EQ(atomic_apply(AtomicOp::Xchg, 5, 3), 3u);
}
