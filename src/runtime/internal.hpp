// Runtime internals shared by its files (not part of any API).
#pragma once

#include <cstddef>
#include <linux/bpf.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "isa/isa.hpp"
#include "verifier/verifier.hpp"

struct btf;

namespace userbpf::runtime {

class Runtime;
struct BtfObject;
struct ProgObject;
struct ProgSpec;

inline constexpr char kProgMagic[8] = {'U', 'B', 'P', 'F', 'P', 'R', 'G', '1'};
inline constexpr std::size_t kPathLen = 256;

// A pinned program file: this header, insn_cnt raw instructions (map
// references as BPF_PSEUDO_MAP_IDX / _IDX_VALUE indexes), then nmaps paths of
// kPathLen bytes (relative to the pin directory, NUL-padded). Version 2 adds
// the program's BTF: a ProgFileBtf, btf_size bytes of BTF, nfunc
// bpf_func_info and nline bpf_line_info records (so that a program with
// global functions or callbacks verifies again when it is opened).
inline constexpr std::uint32_t kProgFileVersion = 2;
struct ProgFileBtf {
  std::uint32_t btf_size;
  std::uint32_t nfunc;
  std::uint32_t nline;
  std::uint32_t reserved;
};
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

// PROG_LOAD's BTF func and line info as checked (btf_info.cpp).
struct BtfInfo {
  std::shared_ptr<BtfObject> btf;            // null: no records were given
  std::vector<bpf_func_info> func_info;      // one per subprogram, kernel layout
  std::vector<bpf_line_info> line_info;      // kernel layout
  std::vector<verifier::FuncSig> funcs;      // the verifier's signatures from func_info
};

// The kernel's check_btf_info_early / check_btf_func / check_btf_line over
// spec's records and the decoded instructions: errno and log text as the
// kernel's (the text is appended to `log` when spec.log_level != 0).
Result<BtfInfo> check_btf_info(const Runtime& rt, const ProgSpec& spec, std::span<const isa::Insn> insns,
                               std::string& log);

// "<source> @ <file>:<line>" of the line info covering `insn` ("" if none).
std::string source_line(const BtfInfo& info, std::size_t insn);
// The verifier log with "; <source> @ <file>:<line>" before each instruction
// line whose source line differs from the one printed before (the kernel's
// verbose_linfo); unchanged without line info.
std::string annotate_log(const std::string& log, const BtfInfo& info);

// A call of a bpf_timer helper (timer_init .. timer_cancel, timers.cpp).
bool is_timer_helper(std::int32_t helper_id);

}  // namespace userbpf::runtime
