#include "common/tool_io.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>

#include "base/hex.hpp"

namespace userbpf::tools {

std::string display_name(std::string_view path) { return path == "-" ? std::string("<stdin>") : std::string(path); }

Result<std::vector<std::uint8_t>> read_input(const std::string& path) {
  if (path != "-") return read_file(path);
  std::vector<std::uint8_t> data;
  std::array<char, 65536> buf{};
  for (;;) {
    const std::size_t n = std::fread(buf.data(), 1, buf.size(), stdin);
    data.insert(data.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    if (n < buf.size()) break;
  }
  if (std::ferror(stdin) != 0) return make_error(EIO, "error reading standard input");
  return data;
}

Status write_output(const std::string& path, std::span<const std::uint8_t> bytes) {
  if (path.empty() || path == "-") {
    if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size())
      return make_error(EIO, "error writing standard output");
    if (std::fflush(stdout) != 0) return make_error(EIO, "error writing standard output");
    return Ok{};
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) {
    const int err = errno != 0 ? errno : EACCES;
    return make_error(err, fmt::format("cannot create '{}': {}", path, std::strerror(err)));
  }
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return make_error(EIO, fmt::format("error writing '{}'", path));
  return Ok{};
}

bool stdout_is_terminal() { return ::isatty(STDOUT_FILENO) == 1; }

bool is_elf(std::span<const std::uint8_t> bytes) {
  return bytes.size() >= 4 && bytes[0] == 0x7f && bytes[1] == 'E' && bytes[2] == 'L' && bytes[3] == 'F';
}

bool looks_like_text(std::span<const std::uint8_t> bytes) {
  if (bytes.empty()) return false;
  for (const std::uint8_t b : bytes) {
    const bool printable = b >= 0x20 && b < 0x7f;
    const bool blank = b == '\n' || b == '\r' || b == '\t';
    if (!printable && !blank) return false;
  }
  return true;
}

std::string_view format_name(ProgramFormat f) {
  switch (f) {
    case ProgramFormat::Auto: return "auto";
    case ProgramFormat::Asm: return "asm";
    case ProgramFormat::Raw: return "raw";
    case ProgramFormat::Hex: return "hex";
  }
  return "?";
}

ProgramFormat format_from_extension(std::string_view path) {
  const auto slash = path.find_last_of('/');
  const std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
  const auto dot = base.find_last_of('.');
  if (dot == std::string_view::npos) return ProgramFormat::Auto;
  const std::string_view ext = base.substr(dot + 1);
  if (ext == "s" || ext == "S" || ext == "asm") return ProgramFormat::Asm;
  if (ext == "hex") return ProgramFormat::Hex;
  if (ext == "bin" || ext == "o" || ext == "raw" || ext == "obj") return ProgramFormat::Raw;
  return ProgramFormat::Auto;
}

Result<std::vector<std::uint8_t>> parse_hex_text(std::string_view text) {
  // Blank out comments (keeping offsets), then let base::parse_hex do the work.
  std::string clean(text);
  bool in_comment = false;
  for (char& c : clean) {
    if (c == '\n') in_comment = false;
    else if (c == '#') in_comment = true;
    if (in_comment) c = ' ';
  }
  auto bytes = parse_hex(clean);
  if (bytes.ok()) return bytes;
  Error e = bytes.error();
  if (e.offset) {
    // Turn the byte offset into line:column of the text.
    std::size_t line = 1, col = 1;
    for (std::size_t i = 0; i < *e.offset && i < clean.size(); ++i) {
      if (clean[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    e.line = line;
    e.column = col;
    e.offset.reset();
  }
  return e;
}

Error elf_not_supported() {
  return make_error(ENOTSUP,
                    "ELF objects are not supported yet (they come with the loader); give assembly text, raw "
                    "bytecode or hex instead, e.g. extract a section with "
                    "'llvm-objcopy -O binary --only-section=SECTION prog.o prog.bin'");
}

Result<std::vector<isa::Insn>> decode_program(std::span<const std::uint8_t> bytes) {
  if (is_elf(bytes)) return elf_not_supported();
  if (bytes.empty()) return make_error(EINVAL, "program is empty");
  auto insns = isa::decode_bytes(bytes);
  if (!insns.ok() && looks_like_text(bytes)) {
    Error e = insns.error();
    e.message += " (the input looks like text: use --asm for assembly or --hex for hex bytecode)";
    return e;
  }
  return insns;
}

Result<std::vector<isa::Insn>> load_program(std::span<const std::uint8_t> data, ProgramFormat format,
                                            assembly::Dialect dialect) {
  const std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
  switch (format) {
    case ProgramFormat::Asm: {
      auto insns = assembly::assemble(text, dialect);
      if (insns.ok() && insns->empty()) return make_error(EINVAL, "program has no instructions");
      return insns;
    }
    case ProgramFormat::Hex: {
      auto bytes = parse_hex_text(text);
      if (!bytes.ok()) return bytes.error();
      return decode_program(*bytes);
    }
    case ProgramFormat::Raw: return decode_program(data);
    case ProgramFormat::Auto:
      // Binary bytecode of any real program holds bytes that are not printable
      // text (zero registers, small immediates), so text is hex or assembly.
      if (is_elf(data) || !looks_like_text(data)) return decode_program(data);
      if (parse_hex_text(text).ok()) return load_program(data, ProgramFormat::Hex, dialect);
      return load_program(data, ProgramFormat::Asm, dialect);
  }
  return make_error(EINVAL, "unknown program format");
}

std::string format_error(const Error& e, std::string_view source) {
  std::string where(source);
  if (e.line) {
    where += fmt::format(":{}", *e.line);
    if (e.column) where += fmt::format(":{}", *e.column);
  }
  if (e.insn) where += fmt::format("{}insn {}", where.empty() ? "" : ": ", *e.insn);
  if (e.offset) where += fmt::format("{}byte offset {}", where.empty() ? "" : ": ", *e.offset);
  std::string out = where.empty() ? std::string("error: ") : where + ": error: ";
  if (!e.where.empty()) out += e.where + ": ";
  out += e.message;
  return out;
}

int report_error(const Error& e, std::string_view source) {
  std::cerr << format_error(e, source) << '\n';
  return kExitError;
}

std::string bytes_to_hex_lines(std::span<const std::uint8_t> bytes) {
  std::string out;
  for (std::size_t i = 0; i < bytes.size(); i += 8) {
    out += to_hex(bytes.subspan(i, std::min<std::size_t>(8, bytes.size() - i)));
    out += '\n';
  }
  return out;
}

}  // namespace userbpf::tools
