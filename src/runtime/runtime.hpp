// The runtime: the object model of the kernel's BPF subsystem in user space.
//
// Objects (maps, programs, BTF blobs) are reference-counted (shared_ptr) and
// named by handles: small integers like file descriptors (they are NOT OS
// file descriptors; they start at 3 and the lowest free one is reused). Each
// object also has an id, unique per kind for the life of the Runtime, for
// GET_NEXT_ID / GET_FD_BY_ID / OBJ_GET_INFO_BY_FD. An object is freed when
// its last handle is closed and nothing else (a program's used-maps list, a
// program array slot) refers to it.
//
// Pins. OBJ_PIN names an object by a path under the pin directory (default
// $XDG_RUNTIME_DIR/userbpf, else /dev/shm/userbpf-$UID (or /tmp/userbpf-$UID without /dev/shm); environment variable
// USERBPF_PIN_DIR or Options::pin_dir override it). Paths under /sys/fs/bpf/
// are mapped into the pin directory so that unmodified callers work; other
// paths outside it fail with EPERM, as pinning outside bpffs does. A map's
// pin is a hard link to the map's shared-memory file (maps/map.hpp), so the
// map lives as long as the pin or any process using it. A program's pin is a
// file with its bytecode and metadata (type, name, license, flags) and, for
// each map it uses, the path of that map's file (maps that were not pinned
// get a hidden link under <pin dir>/.objects/ for the program's sake).
// OBJ_GET of a program loads it again in the calling process. Removing a pin
// is unlink(2) of the path (Runtime::unpin).
//
// Execution. Programs run in the JIT (Options::engine, default Jit: the
// program is compiled at load into ProgObject::jitted) or the interpreter
// (ProgObject::exec, always made); both give the same results. Unverified
// programs run in checked mode by default (Options::checked): loads and
// stores are bounded by the run's regions (context, packet, the used maps'
// elements, stack). Helpers: src/helpers. Tail calls: the run loop in test_run.cpp.
//
// bpf(): the command dispatcher takes the kernel's union bpf_attr and size
// and returns like the system call (-1 and errno on error).
//
// Limits (Options::limits: instructions, verifier work, map memory charged
// per runtime like the kernel's old memlock accounting, handles) and
// privilege (Options::privileged: the kernel's unprivileged rules, blinded
// JIT constants) fail with the kernel's errno; see docs/runtime.md.
// PROG_LOAD's BTF func/line info: btf_info.cpp.
//
// Thread safety: every public member may be called from any thread; the
// handle and id tables are guarded by one mutex, map operations use the
// maps' own process-shared locks, runs share nothing but the maps.
#pragma once

#include <linux/bpf.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "abi/abi.hpp"
#include "base/error.hpp"
#include "helpers/helpers.hpp"
#include "interp/interp.hpp"
#include "isa/isa.hpp"
#include "jit/jit.hpp"
#include "maps/cpu_slots.hpp"
#include "maps/map.hpp"
#include "verifier/verifier.hpp"

struct btf;  // libbpf's parsed BTF (bpf/btf.h)

namespace userbpf::loader {
class Object;
}

namespace userbpf::runtime {

// The engine programs run in. Both give the same results (tests compare them).
enum class Engine : std::uint8_t { Interpreter, Jit };

// Resource limits (issue 8), each failing with the kernel's errno and a
// message naming the limit. A field left 0 takes the kernel's default when
// the Runtime is made (Runtime::limits() has the resolved values).
struct Limits {
  static constexpr std::uint64_t kUnlimited = ~std::uint64_t{0};
  // Instructions per program (PROG_LOAD insn_cnt, E2BIG beyond): 0 = the
  // kernel's: BPF_COMPLEXITY_LIMIT_INSNS (1,000,000) for privileged loads,
  // BPF_MAXINSNS (4096) for unprivileged ones.
  std::uint32_t max_insns = 0;
  // Instructions the verifier may process per load (E2BIG, "BPF program is
  // too large"): 0 = the kernel's 1,000,000.
  std::uint64_t verifier_insns = 0;
  // Bytes the verifier may hold in stored states per load (checkpoints for
  // pruning, pending branches; ENOMEM beyond, as when the kernel's state
  // allocation fails): 0 = 1 GiB for privileged runtimes, 256 MiB for
  // unprivileged ones (the kernel has no fixed figure: its states are charged
  // to the memory cgroup); kUnlimited: none.
  std::uint64_t verifier_memory = 0;
  // Bytes of map memory charged to this runtime's user, as the kernel
  // charged maps to the user's RLIMIT_MEMLOCK before 5.11: a map is charged
  // its shared-memory file's size at MAP_CREATE (EPERM beyond the budget)
  // and uncharged when it is freed. Maps opened from pins are not charged
  // (their creator was). 0 = unlimited for privileged runtimes (kernels since
  // 5.11 charge the memory cgroup instead), the process's RLIMIT_MEMLOCK for
  // unprivileged ones; kUnlimited: none.
  std::uint64_t map_memory = 0;
  // Open handles: a new handle's number must stay below this, like a file
  // descriptor below RLIMIT_NOFILE (EMFILE). 0 = the process's RLIMIT_NOFILE.
  std::uint64_t max_handles = 0;
};

// When the JIT blinds constants (the kernel's net.core.bpf_jit_harden:
// 0 = Off, 1 = Unprivileged, the default here, 2 = All).
enum class Blinding : std::uint8_t { Off, Unprivileged, All };

struct Options {
  std::string pin_dir;        // empty: default_pin_dir()
  Engine engine = Engine::Jit;  // Jit: ProgObject::jitted is compiled at load and runs
  std::uint32_t ncpus = 0;    // per-CPU slots for new slot files (0: possible CPUs)
  bool checked = true;        // run unverified programs in checked mode
  bool verify = true;         // PROG_LOAD runs the verifier (false: unverified, checked runs)
  std::uint64_t budget = 0;   // instruction budget per run (0: none)
  helpers::TraceSink* trace = nullptr;  // bpf_trace_printk output (null: stderr)
  // Loads are privileged (CAP_BPF: the kernel's limits and verifier rules for
  // root) or not (BPF_MAXINSNS, the unprivileged verifier rules, only socket
  // filter and cgroup_skb programs, blinded constants). The runtime is the
  // privilege holder of its own sandbox, so the default is privileged;
  // embedders running untrusted code set false.
  bool privileged = true;
  Blinding blinding = Blinding::Unprivileged;
  Limits limits;
};

// The map lookups a JIT may do without the helper call, as the kernel's
// verifier rewrites them (for verified programs run unchecked: the verifier
// proved r1 and r2 at every lookup): arrays inline (array_map_gen_lookup;
// values never move), other types with a direct lookup function (hash, LRU,
// LPM) as a direct call of it (map->ops->map_lookup_elem). Not per-CPU maps:
// their lookup needs the run's CPU slot (helpers' map_lookup_elem passes cpu
// 0 only for maps that are not per-CPU).
std::vector<jit::Options::MapLookup> jit_map_lookups(std::span<maps::Map* const> used);

// USERBPF_PIN_DIR, else $XDG_RUNTIME_DIR/userbpf, else /dev/shm/userbpf-$UID, else /tmp/userbpf-$UID.
std::string default_pin_dir();

enum class ObjKind : std::uint8_t { Map, Prog, Btf };

struct Object {
  explicit Object(ObjKind k) : kind(k) {}
  virtual ~Object() = default;
  Object(const Object&) = delete;
  Object& operator=(const Object&) = delete;
  const ObjKind kind;
  std::uint32_t id = 0;
};

struct ProgObject;
struct BtfObject;

// The map-memory budget of one runtime (Limits::map_memory): maps hold a
// reference and give their charge back when they are freed.
struct MemoryAccount {
  std::uint64_t limit = Limits::kUnlimited;
  std::mutex mu;
  std::uint64_t used = 0;
};

struct MapObject final : Object {
  MapObject() : Object(ObjKind::Map) {}
  ~MapObject() override;
  MapObject(const MapObject&) = delete;
  MapObject& operator=(const MapObject&) = delete;
  std::shared_ptr<MemoryAccount> account;  // charged `charged` bytes at creation (null: not charged)
  std::uint64_t charged = 0;
  std::unique_ptr<maps::Map> map;
  std::uint32_t btf_id = 0;
  std::string hidden_path;  // link under .objects/ made for a pinned program ("" if none)
  // Program arrays: the programs the slots refer to (kept alive by the map).
  std::mutex prog_mu;
  std::vector<std::shared_ptr<ProgObject>> progs;
  std::uint32_t owner_prog_type = 0;  // type of the first program stored (0: none yet)
  // Maps of maps: the inner maps stored or resolved (kept alive by the map).
  class Runtime* rt = nullptr;
  std::mutex inner_mu;
  std::vector<std::shared_ptr<MapObject>> inner_maps;
};

struct ProgObject final : Object {
  ProgObject() : Object(ObjKind::Prog) {}
  std::uint32_t type = 0;
  std::uint32_t expected_attach_type = 0;
  std::uint32_t prog_flags = 0;
  std::uint32_t kern_version = 0;
  std::string name;
  std::string license;
  // The instructions as loaded, with map references turned into
  // BPF_PSEUDO_MAP_IDX / _IDX_VALUE indexes into used_maps (what a pin stores).
  std::vector<isa::Insn> insns;
  std::vector<std::shared_ptr<MapObject>> used_maps;
  std::vector<maps::Map*> map_ptrs;      // used_maps' maps, for helpers::RunState
  std::mutex bind_mu;                    // guards bound_maps
  std::vector<std::shared_ptr<MapObject>> bound_maps;  // PROG_BIND_MAP (kept alive, not usable by code)
  std::unique_ptr<interp::Program> exec;  // relocated, ready to run (always made; the interpreter)
  std::unique_ptr<jit::Program> jitted;   // the same code compiled (Options::engine == Jit), else null
  // Verification (Options::verify): accepted programs run unchecked with
  // their context accesses rewritten (ctx.cpp) and may keep packets anywhere;
  // unverified ones run checked (Options::checked) over the 2 GiB stand-in.
  bool verified = false;
  std::uint32_t max_ctx_offset = 0;        // end of the furthest context access (verified programs)
  std::vector<std::uint32_t> stack_depth;  // per subprogram (verified programs)
  std::uint8_t tag[8] = {};
  std::uint64_t load_time_ns = 0;
  std::uint32_t uid = 0;
  std::uint32_t btf_id = 0;
  // PROG_LOAD's BTF (kept alive, as the kernel's prog->aux->btf), its func
  // and line info as checked (kernel record layout), for info and messages.
  std::shared_ptr<BtfObject> btf;
  std::vector<bpf_func_info> func_info;
  std::vector<bpf_line_info> line_info;
  // bpf_timer (timers.cpp): the program calls a timer helper (its runs get
  // the runtime's timer service); its timer callbacks' entry code, compiled
  // on first use, by callback (abi::func_addr).
  bool uses_timers = false;
  struct CallbackEntry;
  mutable std::mutex entry_mu;
  mutable std::vector<std::pair<std::uint64_t, std::shared_ptr<CallbackEntry>>> callback_entries;
};

// libbpf's parsed BTF, freed with btf__free.
struct BtfDeleter {
  void operator()(struct btf* b) const;
};

struct BtfObject final : Object {
  BtfObject() : Object(ObjKind::Btf) {}
  std::vector<std::uint8_t> data;
  std::unique_ptr<struct btf, BtfDeleter> btf;  // parsed at BTF_LOAD (never null)
};

// PROG_LOAD input (the bpf_attr fields, typed).
struct ProgSpec {
  std::uint32_t type = BPF_PROG_TYPE_SOCKET_FILTER;
  std::uint32_t expected_attach_type = 0;
  std::uint32_t prog_flags = 0;
  std::uint32_t kern_version = 0;
  std::string name;
  std::string license = "GPL";
  std::span<const isa::RawInsn> insns;
  std::span<const int> fd_array;  // for BPF_PSEUDO_MAP_IDX / _IDX_VALUE
  std::uint32_t log_level = 0;
  // BTF func and line info, as PROG_LOAD's prog_btf_fd, func_info,
  // func_info_rec_size, func_info_cnt, line_info, ... (records of rec_size
  // bytes each, cnt of them; rec_size may differ from the kernel's struct).
  // Checked with the kernel's rules (btf_info.cpp); the func_info gives the
  // verifier the functions' BTF signatures (global functions, callbacks),
  // the line info names source lines in rejections. Without func_info every
  // function is verified as a static one and callbacks are refused
  // ("missing btf func_info"). btf_fd is looked at only when there are records.
  std::uint32_t btf_fd = 0;
  const void* func_info = nullptr;
  std::uint32_t func_info_rec_size = 0;
  std::uint32_t func_info_cnt = 0;
  const void* line_info = nullptr;
  std::uint32_t line_info_rec_size = 0;
  std::uint32_t line_info_cnt = 0;
  // When a record has nonzero bytes past the kernel's struct (E2BIG), the
  // record size the kernel expects is stored here (non-null) as the kernel
  // writes it back to func_info_rec_size / line_info_rec_size.
  std::uint32_t* func_info_rec_size_out = nullptr;
  std::uint32_t* line_info_rec_size_out = nullptr;
};

// PROG_TEST_RUN input/output (typed).
struct TestRunArgs {
  std::span<const std::uint8_t> data_in;
  std::span<const std::uint8_t> ctx_in;
  std::uint32_t repeat = 1;
  std::uint32_t flags = 0;
  std::uint32_t cpu = 0;
  bool ctx_given = false;  // ctx_in or ctx_out was passed (the kernel then builds a context)
  bool data_out_given = false;  // data_out was passed
  bool ctx_out_given = false;   // ctx_out was passed
  bool duration_given = false;  // the duration field was not zero on input
};
struct TestRunOutcome {
  std::uint32_t retval = 0;
  std::uint32_t duration_ns = 0;  // average per repetition
  std::vector<std::uint8_t> data_out;
  std::vector<std::uint8_t> ctx_out;
  std::uint64_t insns = 0;  // instructions executed by the last repetition (checked/counted runs)
  // The last repetition's redirect target (bpf_redirect / bpf_redirect_map),
  // e.g. "devmap[3]", "ifindex 5 (ingress)"; empty when the program did not redirect.
  std::string redirect;
};

// What load_object() made: handles by name, in the object's order.
struct LoadedObject {
  std::vector<std::pair<std::string, int>> maps;   // loader map name -> handle
  std::vector<std::pair<std::string, int>> progs;  // program name -> handle
  std::string log;                                 // PROG_LOAD logs, one per program
};

class Runtime {
 public:
  explicit Runtime(Options opts = {});
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // The process-wide runtime behind userbpf::runtime::bpf().
  static Runtime& global();

  [[nodiscard]] const std::string& pin_dir() const { return pin_dir_; }
  [[nodiscard]] const Options& options() const { return opts_; }
  // The limits in force (Options::limits with the defaults filled in).
  [[nodiscard]] const Limits& limits() const { return limits_; }
  // Bytes of map memory charged now (Limits::map_memory).
  [[nodiscard]] std::uint64_t map_memory_used() const;
  [[nodiscard]] maps::CpuSlots& cpu_slots() { return *slots_; }
  [[nodiscard]] const abi::HelperTable& helper_table() const { return helpers_; }

  // The bpf() system call: -1 and errno on failure.
  int bpf(int cmd, union bpf_attr* attr, unsigned size);

  // ---- typed operations (the bpf() commands call these)
  Result<int> map_create(const maps::MapSpec& spec);
  // `log` receives what the kernel would write to log_buf (also on failure).
  Result<int> prog_load(const ProgSpec& spec, std::string* log = nullptr);
  Result<int> btf_load(std::span<const std::uint8_t> blob);
  Result<TestRunOutcome> test_run(int prog_handle, const TestRunArgs& args);
  // Creates the object's maps (initial data for global data, .rodata and
  // .kconfig frozen, LIBBPF_PIN_BY_NAME maps reused from / pinned to
  // <pin dir>/<name>), loads its autoload programs (map references through
  // fd_array) and fills program arrays from __array initialisers, as
  // libbpf's bpf_object__load. Errors name the map or program.
  Result<LoadedObject> load_object(const loader::Object& obj);
  Status pin(int handle, const std::string& path);
  Result<int> get_pinned(const std::string& path);
  Status unpin(const std::string& path);
  Status close(int handle);
  // Map operations where the value of a program array is a program handle.
  int map_update(MapObject& m, const void* key, const void* value, std::uint64_t flags);
  int map_delete(MapObject& m, const void* key);

  std::shared_ptr<Object> get(int handle) const;
  std::shared_ptr<MapObject> get_map(int handle) const;
  std::shared_ptr<ProgObject> get_prog(int handle) const;
  std::shared_ptr<BtfObject> get_btf(int handle) const;
  std::shared_ptr<Object> by_id(ObjKind kind, std::uint32_t id) const;
  // Smallest live id > start of `kind`; 0 if none.
  std::uint32_t next_id(ObjKind kind, std::uint32_t start) const;
  // A handle for `obj`: the lowest free number; EMFILE when it would reach
  // Limits::max_handles.
  Result<int> new_handle(std::shared_ptr<Object> obj);
  // Resolves a pin-style path to the file it names (EPERM outside the pin dir).
  Result<std::string> resolve_path(const std::string& path) const;
  std::size_t handle_count() const;

  // bpf_timer: the runtime's timer thread, made by the first run of a
  // program that calls a timer helper (timers.cpp, docs/timers.md); it is
  // stopped (timers cancelled, callbacks' programs released) first when the
  // Runtime is destroyed.
  helpers::TimerService* timer_service();
  void stop_timers();

 private:
  friend struct RunLoop;
  struct TimerRunner;  // a helpers::AsyncRunner (timers.cpp)
  std::mutex timer_mu_;
  std::unique_ptr<helpers::AsyncRunner> timer_runner_;
  std::unique_ptr<helpers::TimerService> timers_;
  void register_object(const std::shared_ptr<Object>& obj);
  Result<std::shared_ptr<ProgObject>> build_prog(const ProgSpec& spec,
                                                 std::vector<std::shared_ptr<MapObject>> preset_maps,
                                                 std::string& log);
  Result<std::shared_ptr<MapObject>> open_map_file(const std::string& file);
  Result<std::shared_ptr<ProgObject>> open_prog_file(const std::string& file);
  Status pin_prog(ProgObject& p, const std::string& file);

  Options opts_;
  Limits limits_;
  std::shared_ptr<MemoryAccount> memory_;
  std::string pin_dir_;
  std::unique_ptr<maps::CpuSlots> slots_;
  abi::HelperTable helpers_;

  mutable std::mutex mu_;
  std::vector<std::shared_ptr<Object>> handles_;  // index = handle
  std::uint32_t next_ids_[3] = {1, 1, 1};
  std::unordered_map<std::uint32_t, std::weak_ptr<Object>> ids_[3];
  // Opened pins by (device, inode), so a second OBJ_GET finds the same object.
  std::unordered_map<std::string, std::weak_ptr<Object>> by_inode_;
};

// The bpf() system call served by Runtime::global().
int bpf(int cmd, union bpf_attr* attr, unsigned size);
// close(2) for runtime handles of Runtime::global().
int close_handle(int handle);

}  // namespace userbpf::runtime
