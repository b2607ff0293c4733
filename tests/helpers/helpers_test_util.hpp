// Shared by the helper tests: programs built with isa::Builder, run by the
// interpreter with every helper of src/helpers registered and a RunState,
// in the three execution modes.
#pragma once

#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <cstdint>
#include <vector>

#include "helpers/helpers.hpp"
#include "interp/interp.hpp"
#include "isa/builder.hpp"

namespace userbpf::helpers::test {

using isa::Op;
using u64 = std::uint64_t;
using Prog = isa::Builder;

enum class Mode { Fast, Counted, Checked };
inline const char* mode_name(Mode m) { return m == Mode::Fast ? "fast" : m == Mode::Counted ? "counted" : "checked"; }
inline constexpr Mode kModes[] = {Mode::Fast, Mode::Counted, Mode::Checked};

inline const abi::HelperTable& table() {
  static const abi::HelperTable t = [] {
    abi::HelperTable h;
    register_helpers(h);
    return h;
  }();
  return t;
}

// One run environment: helpers, a RunState over `maps`, extra regions.
struct Runner {
  abi::HelperTable helpers = table();
  std::vector<maps::Map*> maps;
  std::vector<abi::Region> regions;
  RunState state;
  abi::Env env;
  std::uint32_t prog_type = 0;  // RunState::prog_type of the runs

  abi::RunResult run(const std::vector<isa::Insn>& insns, Mode m, std::vector<u64> args = {}, u64 budget = 0) {
    auto p = interp::Program::create(insns);
    if (!p) {
      ADD_FAILURE() << "create: " << p.error().to_string();
      return {};
    }
    state = RunState{};
    state.maps = maps;
    state.prog_type = prog_type;
    env = abi::Env{};
    env.helpers = &helpers;
    env.user = &state;
    env.regions = regions;
    for (maps::Map* mp : maps) {
      const auto area = mp->program_area();
      if (!area.empty())
        env.regions.push_back(abi::Region{reinterpret_cast<u64>(area.data()), area.size(), true,
                                          abi::RegionKind::MapValue});
    }
    env.options.checked = m == Mode::Checked;
    env.options.count_insns = m == Mode::Counted;
    env.options.budget = budget;
    return p->run(env, args);
  }
  // Region for host memory the program may use in checked mode.
  template <typename T>
  void allow(T* p, std::size_t n, bool writable = true) {
    regions.push_back(abi::Region{reinterpret_cast<u64>(p), n, writable, abi::RegionKind::Memory});
  }
};

// Builder shorthands.
inline Prog& call(Prog& p, std::int32_t id) { return p(Op::Call, 0, 0, 0, id); }
// Stores `s` (with its NUL) at r10 + off, byte by byte.
inline Prog& put_str(Prog& p, std::int16_t off, std::string_view s) {
  for (std::size_t i = 0; i <= s.size(); ++i)
    p(Op::StB, 10, 0, static_cast<std::int16_t>(off + static_cast<std::int16_t>(i)), i < s.size() ? s[i] : 0);
  return p;
}
// r_dst = r10 + off
inline Prog& fp(Prog& p, std::uint8_t dst, std::int32_t off) { return p(Op::MovReg, dst, 10)(Op::AddImm, dst, 0, 0, off); }

}  // namespace userbpf::helpers::test
