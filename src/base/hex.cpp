#include "base/hex.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace userbpf {

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == '\f' || c == '\v'; }
}  // namespace

Result<std::vector<std::uint8_t>> parse_hex(std::string_view text) {
  std::vector<std::uint8_t> out;
  int pending = -1;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (is_space(c)) continue;
    if (c == '0' && i + 1 < text.size() && (text[i + 1] == 'x' || text[i + 1] == 'X') && pending < 0) {
      ++i;
      continue;
    }
    const int v = hex_value(c);
    if (v < 0) {
      Error e = make_error(EINVAL, fmt::format("invalid hex character '{}'", c));
      e.offset = i;
      return e;
    }
    if (pending < 0) {
      pending = v;
    } else {
      out.push_back(static_cast<std::uint8_t>((pending << 4) | v));
      pending = -1;
    }
  }
  if (pending >= 0) {
    Error e = make_error(EINVAL, "odd number of hex digits");
    e.offset = text.size();
    return e;
  }
  return out;
}

std::string to_hex(std::span<const std::uint8_t> bytes, std::string_view sep) {
  std::string out;
  out.reserve(bytes.size() * (2 + sep.size()));
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i != 0) out += sep;
    out += fmt::format("{:02x}", bytes[i]);
  }
  return out;
}

Result<std::vector<std::uint8_t>> read_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return make_error(EISDIR, fmt::format("cannot read '{}': it is a directory", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno != 0 ? errno : ENOENT;
    Error e = make_error(err, fmt::format("cannot open '{}': {}", path, std::strerror(err)));
    return e;
  }
  std::vector<std::uint8_t> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return make_error(EIO, fmt::format("error reading '{}'", path));
  return data;
}

}  // namespace userbpf
