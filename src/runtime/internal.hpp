// Runtime internals shared by its files (not part of any API).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "isa/isa.hpp"
#include "verifier/verifier.hpp"

namespace userbpf::runtime {

inline constexpr char kProgMagic[8] = {'U', 'B', 'P', 'F', 'P', 'R', 'G', '1'};
inline constexpr std::size_t kPathLen = 256;

// A pinned program file: this header, insn_cnt raw instructions (map
// references as BPF_PSEUDO_MAP_IDX / _IDX_VALUE indexes), then nmaps paths of
// kPathLen bytes (relative to the pin directory, NUL-padded).
struct ProgFileHeader {
  char magic[8];
  std::uint32_t version;
  std::uint32_t type;
  std::uint32_t expected_attach_type;
  std::uint32_t prog_flags;
  std::uint32_t kern_version;
  std::uint32_t insn_cnt;
  std::uint32_t nmaps;
  char name[16];
  char license[128];
  std::uint32_t reserved;
};

// Rewrites the verified context accesses of `exec` for the runtime's real
// context structures (ctx.cpp); max_ctx_offset receives the end of the
// furthest context access (the kernel's prog->aux->max_ctx_offset).
Status convert_ctx_access(std::uint32_t prog_type, std::span<const verifier::Fact> facts,
                          std::vector<isa::Insn>& exec, std::uint32_t& max_ctx_offset);

}  // namespace userbpf::runtime
