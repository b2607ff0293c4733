// A MapSpec in one line (maps tests and benchmark).
#pragma once

#include "maps/map.hpp"

namespace userbpf::maps::test {

inline MapSpec spec(std::uint32_t type, std::uint32_t ks, std::uint32_t vs, std::uint32_t max,
                    std::uint32_t flags = 0) {
  MapSpec s;
  s.type = type;
  s.key_size = ks;
  s.value_size = vs;
  s.max_entries = max;
  s.map_flags = flags;
  s.name = "t";
  return s;
}

}  // namespace userbpf::maps::test
