// Execution differential with the kernel: generated programs (fuzz/gen) that
// the kernel's verifier and userbpf's both accept run through the kernel's
// BPF_PROG_TEST_RUN and through userbpf's runtime (its PROG_TEST_RUN, in the
// JIT, in the interpreter, and unverified in the checked interpreter), with
// the same packet and identically seeded maps. The return value, the packet
// after the run and every map's contents must agree.
//
// Both sides are driven by the same code: one sequence of bpf() commands
// (MAP_CREATE, MAP_UPDATE_ELEM to seed, PROG_LOAD, PROG_TEST_RUN,
// MAP_GET_NEXT_KEY + MAP_LOOKUP_ELEM to read back) issued to a Backend,
// which is the system call for the kernel and Runtime::bpf for userbpf. So
// what is compared is exactly what a caller of bpf() sees.
//
// Programs: socket filters (context fields, LD_ABS) and XDP (direct packet
// loads and stores behind bounds checks), with a hash and an array map,
// helpers whose results do not depend on the engine (map operations,
// get_smp_processor_id: the whole run is pinned to CPU 0, where the kernel
// runs the program and where userbpf's runtime takes its CPU slot), the stack zeroed at
// entry (reading uninitialised stack is allowed for root but its contents
// are unspecified).
#pragma once

#include <linux/bpf.h>
#include <sched.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "fuzz/gen/progen.hpp"

namespace userbpf::fuzz {

// Where bpf() commands go.
class Backend {
 public:
  virtual ~Backend() = default;
  [[nodiscard]] virtual const char* name() const = 0;
  // Like the system call: >= 0 on success, -1 with errno set on failure.
  virtual long bpf(int cmd, union bpf_attr& attr) = 0;
  // Closes a map or program fd / handle.
  virtual void close(int fd) = 0;
};

// The kernel (bpf(2)).
std::unique_ptr<Backend> kernel_backend();

// Pins the calling thread to CPU 0 for its lifetime (restores the affinity
// after), so that get_smp_processor_id gives 0 on every side.
class OnCpu0 {
 public:
  OnCpu0();
  ~OnCpu0();
  OnCpu0(const OnCpu0&) = delete;
  OnCpu0& operator=(const OnCpu0&) = delete;

 private:
  std::unique_ptr<cpu_set_t> saved_;
};
// userbpf's runtime with its own pin directory (a fresh temporary one,
// removed with the backend). engine_jit: JIT, else interpreter; verify:
// false loads without the verifier and runs in checked mode.
std::unique_ptr<Backend> runtime_backend(bool engine_jit, bool verify);

using MapContents = std::vector<std::pair<std::vector<std::uint8_t>, std::vector<std::uint8_t>>>;

// What one backend did with a program.
struct Observation {
  std::string setup_error;  // a map could not be created or seeded (not a finding)
  bool loaded = false;
  int load_err = 0;
  std::string log;  // verifier log when the load failed
  int run_err = 0;  // errno of PROG_TEST_RUN (0: ran)
  std::uint32_t retval = 0;
  std::vector<std::uint8_t> data_out;
  std::vector<MapContents> maps;  // sorted by key, one per GenProgram::maps entry
};
Observation observe(Backend& b, const GenProgram& prog, std::span<const std::uint8_t> packet);

// Program `index` of an execution differential with `seed` (reproducible):
// socket filters and XDP alternately, no deliberate fault.
GenProgram xdiff_program(std::uint64_t seed, std::size_t index);
// The fixed packet every program runs on (Ethernet, IPv4, UDP, payload).
std::span<const std::uint8_t> xdiff_packet();

struct ExecDisagreement {
  std::uint64_t seed = 0;
  std::size_t index = 0;
  GenProgram prog;
  std::string what;  // which side differs from the kernel, and how
};

struct ExecDiffStats {
  bool available = false;
  std::string reason;  // when not available
  std::size_t programs = 0;
  std::size_t both_loaded = 0;      // compared for execution
  std::size_t neither_loaded = 0;
  std::size_t verdict_differs = 0;  // one verifier accepts (the verifier differential's business; counted)
  std::size_t agree = 0;            // among both_loaded: every userbpf side equals the kernel
  std::size_t xdp = 0, socket_filter = 0;  // compared, by type
};
ExecDiffStats run_xdiff(std::uint64_t seed, std::size_t n, std::vector<ExecDisagreement>* out);

// Compares one userbpf observation with the kernel's; empty when equal.
std::string compare(const Observation& kernel, const Observation& ours);

// The regression file text of a disagreement (a verifier case: the program,
// expected to be accepted, with what differed as comments).
std::string exec_disagreement_case(const ExecDisagreement& d);

}  // namespace userbpf::fuzz
