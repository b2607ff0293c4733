// Shared by the skb_resize tests: the program that calls a list of helpers
// on a tc context and copies what they changed into cb[], and test frames.
#pragma once

#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "helpers/packet_ctx.hpp"
#include "helpers_test_util.hpp"

namespace userbpf::helpers::test {

constexpr std::int16_t cb(int i) { return static_cast<std::int16_t>(offsetof(__sk_buff, cb) + 4 * i); }
constexpr std::int16_t field(std::size_t off) { return static_cast<std::int16_t>(off); }
constexpr u64 kDecapIpv4 = 1ULL << 7, kDecapIpv6 = 1ULL << 8;  // newer than our uapi header

// One helper call: the helper and r2..r4.
struct Call {
  std::int32_t helper;
  u64 a2 = 0, a3 = 0, a4 = 0;
};

// r6 = ctx; the calls (r1 = ctx); cb[0] = first result; cb[1] = len,
// cb[2] = protocol, cb[3] = vlan_present, cb[4] = vlan_tci << 16 | vlan_proto;
// r0 = the last result.
inline std::vector<isa::Insn> calls_prog(const std::vector<Call>& calls) {
  Prog p;
  p(Op::MovReg, 6, 1);
  for (std::size_t i = 0; i < calls.size(); ++i) {
    const Call& c = calls[i];
    p(Op::MovReg, 1, 6).lddw(2, c.a2).lddw(3, c.a3).lddw(4, c.a4);
    call(p, c.helper);
    if (i == 0) p(Op::StxW, 6, 0, cb(0));
  }
  p(Op::MovReg, 7, 0);
  p(Op::LdxW, 2, 6, field(offsetof(__sk_buff, len)))(Op::StxW, 6, 2, cb(1));
  p(Op::LdxW, 2, 6, field(offsetof(__sk_buff, protocol)))(Op::StxW, 6, 2, cb(2));
  p(Op::LdxW, 2, 6, field(offsetof(__sk_buff, vlan_present)))(Op::StxW, 6, 2, cb(3));
  p(Op::LdxW, 2, 6, field(offsetof(__sk_buff, vlan_tci)))(Op::LshImm, 2, 0, 0, 16);
  p(Op::LdxW, 3, 6, field(offsetof(__sk_buff, vlan_proto)))(Op::OrReg, 2, 3)(Op::StxW, 6, 2, cb(4));
  p(Op::MovReg, 0, 7).exit();
  return p.v;
}

using Bytes = std::vector<std::uint8_t>;

// An Ethernet frame of n bytes with ethertype `type` (then `tags` VLAN tags
// before it), filled with a pattern.
inline Bytes frame(std::size_t n, std::uint16_t type, std::vector<std::uint16_t> tags = {}) {
  Bytes f(n);
  for (std::size_t i = 0; i < n; ++i) f[i] = static_cast<std::uint8_t>(i * 13 + 5);
  std::size_t at = 12;
  for (std::uint16_t tci : tags) {
    f[at] = 0x81;
    f[at + 1] = 0x00;
    f[at + 2] = static_cast<std::uint8_t>(tci >> 8);
    f[at + 3] = static_cast<std::uint8_t>(tci);
    at += 4;
  }
  if (at + 2 <= n) {
    f[at] = static_cast<std::uint8_t>(type >> 8);
    f[at + 1] = static_cast<std::uint8_t>(type);
  }
  return f;
}

inline std::string hex(const Bytes& b) {
  std::string s;
  for (std::uint8_t c : b) s += fmt::format("{:02x}", c);
  return s;
}

}  // namespace userbpf::helpers::test
