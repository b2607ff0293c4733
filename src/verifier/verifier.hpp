// userbpf verifier: kernel-style abstract interpretation of eBPF programs.
//
// verify() explores every path of the program as the Linux verifier does
// (depth-first, with a stack of pending branch states and state pruning at
// jump targets) and either accepts it, with the facts execution needs, or
// rejects it with the kernel's errno and a log whose lines read like the
// kernel's (same message texts for the faults implemented).
//
// Milestone 1 scope (see docs/verifier.md): raw instruction programs, the
// privileged profile (CAP_BPF + CAP_PERFMON, as root loads them) and the
// main rules of the unprivileged one; no BTF, no kfuncs, no reference
// tracking (ring buffer reservations), no callbacks.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "isa/isa.hpp"

namespace userbpf::verifier {

// A map the program refers to with lddw (BPF_PSEUDO_MAP_FD: imm = fd, or
// BPF_PSEUDO_MAP_IDX: imm = index into Config::maps).
struct MapDesc {
  std::uint32_t type = 0;  // enum bpf_map_type
  std::uint32_t key_size = 0;
  std::uint32_t value_size = 0;
  std::uint32_t max_entries = 0;
  int fd = -1;             // the fd lddw map_fd names; -1: the index in Config::maps
  std::string name;        // for messages ("map=name" in register states)
};

struct Config {
  std::uint32_t prog_type = 1;        // enum bpf_prog_type (1 = socket filter)
  std::vector<MapDesc> maps;
  unsigned log_level = 0;             // 0, 1 (failing path + message), 2 (every state)
  bool privileged = true;             // CAP_BPF + CAP_PERFMON (root); false: unprivileged rules
  std::uint64_t insn_limit = 1'000'000;  // BPF_COMPLEXITY_LIMIT_INSNS
};

struct Stats {
  std::uint64_t processed = 0;     // instructions processed (the kernel's insn_processed)
  std::uint32_t max_states_per_insn = 0;
  std::uint32_t total_states = 0;
  std::uint32_t peak_states = 0;
  std::uint32_t mark_read = 0;     // liveness is not tracked yet: always 0
};

// Facts for execution, produced for accepted programs.
enum class FactKind : std::uint8_t {
  CtxLoad,      // insn loads a context field: off/size are the context access
  CtxStore,     // insn stores into a context field
  SafeAccess,   // every path proved this load/store in bounds
};
struct Fact {
  std::size_t insn = 0;
  FactKind kind = FactKind::SafeAccess;
  std::int32_t off = 0;
  std::uint32_t size = 0;
};

struct Verdict {
  bool accepted = false;
  int err = 0;                 // kernel errno when rejected (EACCES, EINVAL, E2BIG, ...)
  std::string log;             // kernel-style log (log_level > 0), always with the error line
  std::string message;         // the error line alone ("R0 !read_ok")
  std::size_t error_insn = 0;  // instruction the error is about
  Stats stats;
  std::vector<Fact> facts;
  std::vector<std::uint32_t> stack_depth;  // per subprogram, bytes
  std::vector<std::size_t> subprogs;       // start instruction of each subprogram
};

// Verifies decoded instructions (lddw as two slots, as isa::decode gives them).
Verdict verify(std::span<const isa::Insn> insns, const Config& cfg);
// Decodes raw slots with the kernel's opcode set first (invalid opcodes and
// reserved fields are EINVAL with the kernel's message), then verifies.
Verdict verify_raw(std::span<const isa::RawInsn> raw, const Config& cfg);

}  // namespace userbpf::verifier
