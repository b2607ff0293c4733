// Shared helpers of the maps tests and benchmark: map specs, creation.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "../runtime/test_util.hpp"
#include "maps/map.hpp"
#include "map_spec.hpp"

namespace userbpf::maps::test {

// Creates the map in `dir`; a failure fails the test (and returns null).
inline std::unique_ptr<Map> make_in(const std::string& dir, const MapSpec& s) {
  auto m = create_map(s, dir);
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().to_string());
  return m.ok() ? std::move(*m) : nullptr;
}

// 0 or the errno MAP_CREATE gives.
inline int create_errno_in(const std::string& dir, const MapSpec& s) {
  auto m = create_map(s, dir);
  return m.ok() ? 0 : m.error().code;
}

// The same in a test's temporary directory.
inline std::unique_ptr<Map> make(const userbpf::testing::TempDir& d, const MapSpec& s) { return make_in(d.path(), s); }
inline int create_errno(const userbpf::testing::TempDir& d, const MapSpec& s) { return create_errno_in(d.path(), s); }

}  // namespace userbpf::maps::test
