// The Linux kernel as an oracle: thin wrappers over the bpf() system call used
// by differential tests and benchmarks. Everything here reports "unavailable"
// (with the reason) instead of failing when the kernel's BPF cannot be used
// (not root, no CONFIG_BPF_SYSCALL, seccomp, ...).
#pragma once

#include <linux/bpf.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "isa/isa.hpp"

namespace userbpf::oracle {

struct Availability {
  bool ok = false;
  std::string reason;  // why not, when !ok
};
// Probes once (loads and test-runs a trivial socket filter, creates an array
// map) and caches the answer.
const Availability& available();

// An owned file descriptor of a kernel object (program or map).
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();
  [[nodiscard]] int get() const { return fd_; }
  int release() { int f = fd_; fd_ = -1; return f; }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

struct LoadResult {
  Fd prog;
  int err = 0;          // errno of BPF_PROG_LOAD (0 on success)
  std::string log;      // the verifier log (log_level as requested)
};
// BPF_PROG_LOAD of raw instructions. prog_type is the kernel's enum bpf_prog_type value.
LoadResult load(std::span<const isa::RawInsn> insns, std::uint32_t prog_type, std::uint32_t log_level = 1,
                std::uint32_t expected_attach_type = 0);
// What the plain load() leaves out: the fd_array that `lddw map_idx(i)` /
// `map_idx_value(i)` index (BPF_PSEUDO_MAP_IDX), and BTF func_info (one
// record per subprogram, insn_off ascending from 0; the kernel's verifier
// wants it for programs that pass callbacks, e.g. to bpf_loop).
struct LoadExtras {
  std::span<const int> fd_array;
  int btf_fd = -1;  // prog_btf_fd of the func_info (see load_btf)
  std::span<const bpf_func_info> func_info;
};
LoadResult load(std::span<const isa::RawInsn> insns, std::uint32_t prog_type, std::uint32_t log_level,
                std::uint32_t expected_attach_type, const LoadExtras& extras);
// BPF_BTF_LOAD of a raw BTF blob (header, types, strings).
Result<Fd> load_btf(std::span<const std::uint8_t> blob);
// A BTF blob declaring `n` functions `long f<i>(void)`, type ids
// kFuncBtfFirstId + i, the first global and the others static: func_info
// for raw programs (one record per isa::subprogram_starts() entry) that the
// kernel's verifier accepts with callbacks (static subprograms are verified
// in their caller's context, so the prototype does not matter).
inline constexpr std::uint32_t kFuncBtfFirstId = 3;
std::vector<std::uint8_t> func_btf(std::size_t n);

struct TestRun {
  std::uint32_t retval = 0;
  std::uint32_t duration_ns = 0;  // average per repetition, as the kernel reports it
  std::vector<std::uint8_t> data_out;
};
// BPF_PROG_TEST_RUN with data_in and repeat.
Result<TestRun> test_run(const Fd& prog, std::span<const std::uint8_t> data_in, std::uint32_t repeat = 1,
                         std::size_t data_out_size = 0);

// BPF_MAP_CREATE of any map type (map_type is the kernel's enum bpf_map_type value).
struct MapParams {
  std::uint32_t type = 0;
  std::uint32_t key_size = 0;
  std::uint32_t value_size = 0;
  std::uint32_t max_entries = 0;
  std::uint32_t flags = 0;
};
Result<Fd> create_map(const MapParams& p);
// The MAP_CREATE attributes of `p` (everything else zero), for callers that
// add BTF or send them through another bpf() (userbpf's runtime).
union bpf_attr map_create_attr(const MapParams& p);

// Replaces the index i of every `lddw map_fd(i)` / `map_value(i)` in `prog`
// by maps[i]'s fd (indexes out of range stay as they are).
void bind_maps(std::span<isa::Insn> prog, std::span<const Fd> maps);
// The same with plain fds (or userbpf runtime handles).
void bind_maps(std::span<isa::Insn> prog, std::span<const int> fds);

// Array maps: create / update / lookup.
Result<Fd> create_array_map(std::uint32_t value_size, std::uint32_t max_entries);
Status map_update(const Fd& map, std::uint32_t key, std::span<const std::uint8_t> value);
Result<std::vector<std::uint8_t>> map_lookup(const Fd& map, std::uint32_t key, std::uint32_t value_size);

// Runs a conformance-style program (r1 = memory, r2 = memory length, result =
// full 64-bit r0) in the kernel. The program is appended as a subprogram of a
// wrapper that copies `memory` into an array-map value, calls the program with
// r1 = the value pointer and r2 = its length, and stores the 64-bit r0 into a
// second map. Memory the program changes is returned too.
struct R0Run {
  bool loaded = false;       // false: the kernel's verifier refused the program
  int load_errno = 0;
  std::string verifier_log;  // when refused
  std::uint64_t r0 = 0;
  std::vector<std::uint8_t> memory_after;
  std::uint32_t duration_ns = 0;  // kernel-reported average, with repeat
};
// Errors: EOPNOTSUPP when the program is not comparable (see not_comparable),
// ENOSYS when the kernel's BPF is unavailable, E2BIG when memory exceeds
// kMaxMemory; other codes when a bpf() command of the oracle itself fails.
// With repeat > 1 the program runs `repeat` times on the same memory:
// memory_after and r0 are those of the last run.
Result<R0Run> run_r0(std::span<const isa::Insn> program, std::span<const std::uint8_t> memory,
                     std::uint32_t repeat = 1);

// Helper id that conformance tests use for "unwind" (uBPF): the kernel's helper
// with that id means something else, so such programs are not comparable.
inline constexpr std::int32_t kUnwindHelper = 5;
// Largest memory run_r0 accepts (it becomes one array-map value).
inline constexpr std::size_t kMaxMemory = 1u << 20;

// Why `program` cannot run under run_r0's wrapper (helper 5, LD_ABS/LD_IND,
// callx, kfunc calls), naming the instruction; nullopt if it can.
std::optional<std::string> not_comparable(std::span<const isa::Insn> program);

// The wrapped program run_r0 loads (exposed for tests and for printing):
// the wrapper instructions followed by `program`.
std::vector<isa::Insn> make_wrapper(int in_map_fd, int out_map_fd, std::uint64_t len,
                                    std::span<const isa::Insn> program);

}  // namespace userbpf::oracle
