// Hex text <-> bytes, used by the CLI, the conformance plugin and the tests.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"

namespace userbpf {

// Parses hex digits into bytes. Whitespace separates nothing in particular:
// "01 02", "0102", "01\n02" all give {1, 2}. An optional "0x" prefix per
// token is accepted. An odd number of digits or a non-hex character is an
// error naming the character's byte offset.
Result<std::vector<std::uint8_t>> parse_hex(std::string_view text);

// "01 02 ff" (separator between bytes, none at the end).
std::string to_hex(std::span<const std::uint8_t> bytes, std::string_view sep = " ");

// Reads a whole file into bytes.
Result<std::vector<std::uint8_t>> read_file(const std::string& path);

}  // namespace userbpf
