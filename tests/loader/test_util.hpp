// Shared helpers of the loader tests.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "loader/loader.hpp"

namespace loader_test {

inline std::string prog_path(const std::string& name) { return std::string(LOADER_PROGS_DIR) + "/" + name; }

// Counts instructions of a program that satisfy `pred`.
template <class P>
int count_insns(const userbpf::loader::Program& p, P pred) {
  int n = 0;
  for (const auto& in : p.insns)
    if (in.op != userbpf::isa::Op::LddwTail && pred(in)) ++n;
  return n;
}

}  // namespace loader_test

// Opens progs/<name> into `var` or fails the test.
#define OPEN_OR_FAIL(var, name, ...)                                                              \
  auto var##_result = userbpf::loader::Object::open(loader_test::prog_path(name), ##__VA_ARGS__); \
  ASSERT_TRUE(var##_result.ok()) << var##_result.error().to_string();                            \
  const userbpf::loader::Object& var = *var##_result
