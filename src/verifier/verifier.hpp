// userbpf verifier: kernel-style abstract interpretation of eBPF programs.
//
// verify() explores every path of the program as the Linux verifier does
// (depth-first, with a stack of pending branch states and state pruning at
// jump targets) and either accepts it, with the facts execution needs, or
// rejects it with the kernel's errno and a log whose lines read like the
// kernel's (same message texts for the faults implemented).
//
// Scope (see docs/verifier.md): raw instruction programs, the privileged
// profile (CAP_BPF + CAP_PERFMON, as root loads them) and the main rules of
// the unprivileged one; Linux 6.18 liveness and pruning, ring buffer
// reference tracking, bpf_loop / for_each_map_elem callbacks, may_goto,
// global functions from their BTF signature (Config::funcs), bpf_timer
// (timers.cpp), socket references (sockets.cpp), dynptrs (dynptr.cpp).
// kfuncs: the host table
// (spec/kfuncs.def) with open-coded numeric iterators; bpf_spin_lock.
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
  bool btf = false;                // the map has BTF for its value (bpf_spin_lock needs it)
  std::int32_t spin_lock_off = -1;  // offset of the value's struct bpf_spin_lock (-1: none)
  std::int32_t timer_off = -1;      // offset of the value's struct bpf_timer (-1: none; verifier/timers.cpp)
};

// A function's signature from the program's BTF (func_info + FUNC_PROTO),
// as the kernel's btf_prepare_func_args reduces it. Global functions (BTF
// linkage global) are verified on their own against it; the caller only
// checks its arguments and sees an unknown scalar return value.
struct FuncArg {
  enum class Kind : std::uint8_t {
    Scalar,       // integer or enum: any scalar
    Ctx,          // pointer to the program type's context structure
    Mem,          // pointer to `size` bytes (NULL allowed: PTR_TO_MEM_OR_NULL)
    Unsupported,  // anything else (void *, pointer to pointer, struct by value)
  };
  Kind kind = Kind::Scalar;
  std::uint32_t size = 0;  // Mem: bytes the callee may access
  std::string type;        // spelled type, for messages
};
struct FuncSig {
  std::size_t insn = 0;  // first instruction of the function
  std::string name;
  bool global = false;   // BTF_FUNC_GLOBAL
  std::vector<FuncArg> args;
};

struct Config {
  std::uint32_t prog_type = 1;        // enum bpf_prog_type (1 = socket filter)
  std::vector<MapDesc> maps;
  std::vector<FuncSig> funcs;         // BTF signatures by subprogram start (empty: every function static)
  unsigned log_level = 0;             // 0, 1 (failing path + message), 2 (every state)
  bool privileged = true;             // CAP_BPF + CAP_PERFMON (root); false: unprivileged rules
  std::uint64_t insn_limit = 1'000'000;  // BPF_COMPLEXITY_LIMIT_INSNS
  // Bytes the verifier may hold in stored states (checkpoints kept for
  // pruning and pending branches): beyond it the load fails with ENOMEM, the
  // kernel's errno when a state allocation fails. 0: no limit.
  std::uint64_t memory_limit = std::uint64_t{1} << 30;
  // bpf_get_smp_processor_id() returns [0, cpu_count - 1] (the kernel's
  // nr_cpu_ids); 0: the machine's possible CPUs (maps::default_cpu_count(),
  // the runtime's default number of CPU slots). A runtime using more slots
  // than this must pass its count here.
  std::uint32_t cpu_count = 0;
};

struct Stats {
  std::uint64_t processed = 0;     // instructions processed (the kernel's insn_processed)
  std::uint32_t max_states_per_insn = 0;
  std::uint32_t total_states = 0;
  std::uint32_t peak_states = 0;
  std::uint32_t mark_read = 0;     // liveness is not tracked yet: always 0
  std::uint64_t peak_state_bytes = 0;  // most bytes held in stored states at once (Config::memory_limit)
};

// Facts for execution, produced for accepted programs.
enum class FactKind : std::uint8_t {
  CtxLoad,      // insn loads a context field: off/size are the context access
  CtxStore,     // insn stores into a context field
  SafeAccess,   // every path that reached this load/store/atomic proved it in bounds
                // (off/size: the instruction's offset and access size; not for
                // LD_ABS/LD_IND, which check at run time, nor for instructions
                // no path reached)
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
  std::vector<std::vector<std::size_t>> callees;  // call graph: subprograms each subprogram calls
};

// Verifies decoded instructions (lddw as two slots, as isa::decode gives them).
Verdict verify(std::span<const isa::Insn> insns, const Config& cfg);
// Decodes raw slots with the kernel's opcode set first (invalid opcodes and
// reserved fields are EINVAL with the kernel's message), then verifies.
Verdict verify_raw(std::span<const isa::RawInsn> raw, const Config& cfg);

}  // namespace userbpf::verifier
