// Shared pieces of the fuzz targets (fuzz/targets/*.cpp).
//
// A target is one LLVMFuzzerTestOneInput. It reports a finding with
// fuzz::fail(), which prints what went wrong and aborts: libFuzzer stores
// the input as a crash, and the replay driver (tests/fuzz) sees the child
// process die. Targets never throw and never exit on bad input: bad input
// is the normal case and must end in a clean error from the library.
// The execution harness is in harness.hpp (it needs the JIT).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "abi/abi.hpp"
#include "isa/isa.hpp"

namespace userbpf::fuzz {

// Prints "userbpf-fuzz: <target>: <what>" (and `detail`) to stderr and aborts.
[[noreturn]] void fail(std::string_view target, std::string_view what, std::string_view detail = {});

// Reads fields off the fuzzer's input; past the end everything reads as 0.
class Input {
 public:
  explicit Input(std::span<const std::uint8_t> data) : data_(data) {}
  std::uint8_t u8() { return pos_ < data_.size() ? data_[pos_++] : 0; }
  std::uint32_t u32() {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(u8()) << (8 * i);
    return v;
  }
  std::span<const std::uint8_t> bytes(std::size_t n) {
    const std::size_t k = n < remaining() ? n : remaining();
    auto s = data_.subspan(pos_, k);
    pos_ += k;
    return s;
  }
  std::span<const std::uint8_t> rest() { return bytes(remaining()); }
  [[nodiscard]] std::size_t remaining() const { return data_.size() - pos_; }

 private:
  std::span<const std::uint8_t> data_;
  std::size_t pos_ = 0;
};

// The number in environment variable `name` (decimal or 0x hex), `def` when unset.
std::size_t env_number(const char* name, std::size_t def);

// Disassembly of a program for failure reports.
std::string listing(std::span<const isa::Insn> insns);
std::string describe(const abi::RunResult& r);

}  // namespace userbpf::fuzz
