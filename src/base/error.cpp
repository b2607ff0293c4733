#include "base/error.hpp"

#include <fmt/format.h>

namespace userbpf {

std::string Error::to_string() const {
  std::string out;
  if (!where.empty()) out += where + ": ";
  if (line) {
    out += fmt::format("line {}", *line);
    if (column) out += fmt::format(":{}", *column);
    out += ": ";
  }
  if (insn) out += fmt::format("insn {}: ", *insn);
  if (offset) out += fmt::format("byte offset {}: ", *offset);
  out += message;
  return out;
}

}  // namespace userbpf
