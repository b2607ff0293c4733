// Inputs, outputs and diagnostics shared by the command-line tools.
//
// A program reaches a tool in one of three encodings: assembly text (either
// dialect), raw bytecode (8 bytes per instruction slot, little-endian) or hex
// text of that bytecode. The encoding comes from a flag or from the file
// extension (.s/.asm, .bin/.o/.raw, .hex). ELF objects are recognised by
// their magic and refused with a clear message until the loader exists.
// Without a flag or a known extension the content decides (see load_program).
//
// Diagnostics follow the compiler convention "SOURCE:LINE:COL: error: MSG"
// (or "SOURCE: insn N: error: MSG" / "SOURCE: byte offset N: ..."), so editors
// and scripts can jump to the place. Exit codes: 0 success, 1 error,
// 2 usage error.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "asm/asm.hpp"
#include "base/error.hpp"
#include "isa/isa.hpp"

namespace userbpf::tools {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

// "-" means standard input; it is displayed as "<stdin>".
std::string display_name(std::string_view path);

// Reads a whole file (or all of stdin for "-") as bytes.
Result<std::vector<std::uint8_t>> read_input(const std::string& path);

// Writes bytes to a file (or stdout for "-" / empty). Errors name the file.
Status write_output(const std::string& path, std::span<const std::uint8_t> bytes);

[[nodiscard]] bool stdout_is_terminal();

// The ELF magic "\x7f" "ELF".
[[nodiscard]] bool is_elf(std::span<const std::uint8_t> bytes);
// Printable ASCII (plus whitespace) only: a hint that "raw" input is really text.
[[nodiscard]] bool looks_like_text(std::span<const std::uint8_t> bytes);

enum class ProgramFormat { Auto, Asm, Raw, Hex };
std::string_view format_name(ProgramFormat f);
// By extension: .s/.asm -> Asm, .hex -> Hex, .bin/.o/.raw/.obj -> Raw, else Auto.
ProgramFormat format_from_extension(std::string_view path);

// Hex text as written by `userbpf asm --hex` or bpf_conformance: pairs of hex
// digits separated by anything blank; '#' starts a comment to end of line.
// Errors carry line and column of the offending character.
Result<std::vector<std::uint8_t>> parse_hex_text(std::string_view text);

// Decodes raw bytecode into instructions. ELF input gets the "not supported
// yet" error; undecodable input that looks like text gets a hint.
Result<std::vector<isa::Insn>> decode_program(std::span<const std::uint8_t> bytes);

// Turns program input (already read) into instructions. Auto decides by
// content: ELF magic -> the "not supported yet" error; printable text -> hex
// if it parses as hex, else assembly; anything else -> raw bytecode.
Result<std::vector<isa::Insn>> load_program(std::span<const std::uint8_t> data, ProgramFormat format,
                                            assembly::Dialect dialect);

// The error message for ELF input (one place, so all tools say the same).
Error elf_not_supported();

// "SOURCE:3:5: error: MSG" / "SOURCE: insn 4: error: MSG" / "SOURCE: error: MSG".
std::string format_error(const Error& e, std::string_view source);
// Prints format_error to stderr and returns kExitError.
int report_error(const Error& e, std::string_view source);

// One instruction slot per line: "b7 01 00 00 2a 00 00 00\n".
std::string bytes_to_hex_lines(std::span<const std::uint8_t> bytes);

}  // namespace userbpf::tools
