// The two homes of a benchmark program that uses maps and helpers: userbpf's
// runtime (its maps, the program relocated against them, the helper table)
// for our interpreter and JIT, and the kernel (the oracle's wrapper with the
// program as a bpf-to-bpf subprogram, the kernel's own maps) for the
// kernel's JIT. Programs without maps use the same KernelRunner.
//
// How it works:
//   - A program's maps are MapDefs (from the loader's BTF-defined maps);
//     its instructions refer to them as `lddw map_idx(i)` (index into the
//     MapDefs), as loader::Object produces them.
//   - UserSide creates the maps in a Runtime (empty) and loads the program
//     there unverified (Options::verify false: the runtime's verifier would
//     take r1 as a socket filter's context; the kernel's verifier checks the
//     same instructions with r1 = a map value of the memory's size, and the
//     bench refuses a program the kernel refuses). code() is the runtime's
//     relocated code (map references are the maps' addresses); the bench
//     builds its own interp::Program and jit::Program from it. The JIT
//     options are the runtime's for verified programs: direct helper calls
//     and inline array-map lookups. prepare() gives a run the helper table
//     and a helpers::RunState naming the program's maps.
//   - KernelRunner creates the maps in the kernel, wraps the program
//     (oracle::make_wrapper: r1 = value of a one-entry array holding the
//     memory, r2 = its length, r0 stored into a second map) and loads it
//     once as a socket filter with fd_array = the maps. A program that
//     passes a callback (lddw func, e.g. for bpf_loop) also gets BTF
//     func_info, which the kernel's verifier requires for callbacks: a
//     minimal BTF (oracle::func_btf: one `long f(void)` prototype, one FUNC
//     per subprogram, static except the wrapper). run() resets the memory and
//     test-runs with repeat; r0 is read back.
//   - contents() of either side: every map's key/value pairs (GET_NEXT_KEY +
//     LOOKUP), sorted by key, so that hash maps compare whatever their
//     iteration order. Per-CPU maps are not supported (refused at make).
// Invariants: every kernel fd is an oracle::Fd; UserSide closes its handles.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "abi/abi.hpp"
#include "base/error.hpp"
#include "helpers/helpers.hpp"
#include "isa/isa.hpp"
#include "jit/jit.hpp"
#include "oracle/oracle.hpp"

namespace userbpf::runtime {
class Runtime;
struct ProgObject;
}  // namespace userbpf::runtime

namespace userbpf::bench {

struct MapDef {
  std::string name;
  oracle::MapParams params;
};

// One map's key/value pairs sorted by key; all maps of a program in MapDef order.
using MapContents = std::vector<std::pair<std::vector<std::uint8_t>, std::vector<std::uint8_t>>>;
using MapsContents = std::vector<MapContents>;
// The first difference between two snapshots ("map 'x': 3 entries vs 2",
// "map 'x': key 0a00.. value differs"); "" when equal.
std::string describe_difference(const MapsContents& a, const MapsContents& b, std::span<const MapDef> defs);

class UserSide {
 public:
  static Result<std::unique_ptr<UserSide>> make(runtime::Runtime& rt, std::span<const isa::Insn> insns,
                                                std::span<const MapDef> maps);
  ~UserSide();
  UserSide(const UserSide&) = delete;
  UserSide& operator=(const UserSide&) = delete;

  [[nodiscard]] std::span<const isa::Insn> code() const;
  [[nodiscard]] jit::Options jit_options() const;
  void prepare(abi::Env& env);
  // Zeroes every array element, deletes every other map's keys.
  Status reset_maps() const;
  [[nodiscard]] Result<MapsContents> contents() const;

 private:
  UserSide(runtime::Runtime& rt, std::vector<MapDef> defs) : rt_(rt), defs_(std::move(defs)) {}
  runtime::Runtime& rt_;
  std::vector<MapDef> defs_;
  std::vector<int> maps_;
  int prog_ = -1;
  std::shared_ptr<runtime::ProgObject> obj_;
  helpers::RunState state_;
};

class KernelRunner {
 public:
  // Errors: the kernel's verifier refused the program (errno of PROG_LOAD;
  // *verifier_log receives its log), or a bpf() command failed (log empty).
  static Result<KernelRunner> make(std::span<const isa::Insn> prog, std::span<const std::uint8_t> mem,
                                   std::span<const MapDef> maps, std::string* verifier_log);
  // Average ns per repetition and the r0 of the last one; the memory after
  // the runs into *mem_after when given. nullopt if a command failed.
  std::optional<std::pair<double, std::uint64_t>> run(std::uint32_t repeat,
                                                      std::vector<std::uint8_t>* mem_after = nullptr) const;
  [[nodiscard]] Result<MapsContents> contents() const;

 private:
  KernelRunner() = default;
  std::vector<std::uint8_t> mem_;
  std::vector<MapDef> defs_;
  std::vector<oracle::Fd> maps_;
  oracle::Fd in_, out_, btf_, prog_;
};

}  // namespace userbpf::bench
