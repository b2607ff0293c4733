// BTF-typed values as JSON, the way bpftool's btf_dumper formats map keys
// and values ("formatted" output of `bpftool map dump -j`).
//
// Rules (bpftool's, with the deviations noted):
//   - int: unsigned / signed decimal by encoding and size; bool -> true/false;
//     BTF_INT_CHAR -> a one-character string when printable, else the
//     number; ints wider than 64 bits -> "0x..." hex string; ints with a bit
//     offset or fewer bits than their size are read as bitfields.
//   - arrays of 1-byte ints named "char" (or BTF_INT_CHAR) that hold a
//     printable NUL-terminated string followed only by NULs -> a JSON string;
//     other arrays -> JSON arrays.
//   - struct / union -> object of members; an anonymous struct/union member
//     is under the key "" as bpftool prints it (several of them: merged
//     into that one key, bpftool repeats the key); bitfields -> numbers
//     (bpftool prints bare 0x.. hex, which is not valid JSON: we print the
//     decimal value).
//   - enum / enum64 -> the enumerator's name, or the number when no
//     enumerator matches.
//   - pointers -> the address as an unsigned number; float/double -> number.
//   - typedef / const / volatile / restrict / type_tag: the type they name.
//   - VAR -> {"name": value}; DATASEC (global data maps) -> {"<section>":
//     [{"var": value}, ...]}.
//   - anything else (func, fwd, void) -> "<kind>" placeholder string.
// Every read is bounded by `data`; a value too short for its type, a bad
// type id or nesting deeper than 64 levels is an error naming the type.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>

#include "base/error.hpp"

struct btf;

namespace userbpf::loader {

// Raw BTF bytes parsed by libbpf and validated as the loader validates an
// object's BTF (ids in range, no by-value cycles), for format_btf_value.
Result<std::shared_ptr<const struct btf>> parse_btf(std::span<const std::uint8_t> raw);

Result<nlohmann::json> format_btf_value(const struct btf* btf, std::uint32_t type_id,
                                        std::span<const std::uint8_t> data);

}  // namespace userbpf::loader
