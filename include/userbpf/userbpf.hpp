// userbpf: the public C++ API for embedders.
//
//   userbpf::Runtime rt;                                   // pin dir from the environment
//   auto counts = rt.create_map(BPF_MAP_TYPE_HASH, 4, 8, 1024, "counts");
//   auto prog = rt.load_program(BPF_PROG_TYPE_XDP, insns, "xdp_count", {counts->handle()});
//   auto run = prog->test_run(packet);                     // run->retval, run->data_out
//   counts->lookup(&key, &value);                          // 0 or a kernel errno
//   counts->pin("counts");                                 // <pin dir>/counts, for other processes
//
// Everything here is a thin layer over userbpf::runtime::Runtime (the object
// model and bpf() commands, src/runtime/runtime.hpp). Handles are the
// runtime's (not OS file descriptors); MapRef and ProgRef own one handle
// each and close it when destroyed. Map operations return 0 or the kernel's
// errno value, exactly as the bpf() command would.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/error.hpp"

namespace userbpf {

namespace runtime {
class Runtime;
}

struct RuntimeOptions {
  std::string pin_dir;      // empty: $USERBPF_PIN_DIR, $XDG_RUNTIME_DIR/userbpf, /dev/shm/userbpf-$UID, /tmp/userbpf-$UID
  std::uint32_t ncpus = 0;  // per-CPU slots (0: possible CPUs)
  bool checked = true;      // bounds-check every memory access of unverified runs
  bool jit = true;          // run programs in the JIT (false: the interpreter)
  bool verify = true;       // verify programs at load (the kernel's verifier rules)
  // Untrusted code: false gives the kernel's unprivileged rules (4096
  // instructions, socket filter / cgroup_skb only, the unprivileged verifier,
  // blinded JIT constants).
  bool privileged = true;
  // Resource limits; 0 takes the kernel's default (docs/runtime.md, "Limits").
  std::uint32_t max_insns = 0;        // instructions per program (E2BIG)
  std::uint64_t map_memory = 0;       // bytes of map memory (EPERM; default: unlimited privileged, RLIMIT_MEMLOCK unprivileged)
  std::uint64_t max_handles = 0;      // open handles (EMFILE; default RLIMIT_NOFILE)
  std::uint64_t verifier_memory = 0;  // bytes of verifier states per load (ENOMEM; default 1 GiB, 256 MiB unprivileged)
};

// An owned handle of a runtime object: closed when the owner goes; movable,
// not copyable (a file descriptor's life in the kernel's model).
class HandleRef {
 public:
  HandleRef(runtime::Runtime* rt, int handle) : rt_(rt), handle_(handle) {}
  HandleRef(HandleRef&& o) noexcept : rt_(o.rt_), handle_(o.handle_) { o.handle_ = -1; }
  HandleRef& operator=(HandleRef&& o) noexcept;
  HandleRef(const HandleRef&) = delete;
  HandleRef& operator=(const HandleRef&) = delete;
  ~HandleRef();

  [[nodiscard]] int handle() const { return handle_; }

 protected:
  runtime::Runtime* rt_;
  int handle_;
};

class MapRef : public HandleRef {
 public:
  using HandleRef::HandleRef;

  [[nodiscard]] std::uint32_t id() const;
  [[nodiscard]] std::uint32_t key_size() const;
  [[nodiscard]] std::uint32_t value_size() const;   // per-CPU: of one slot
  [[nodiscard]] std::size_t host_value_size() const;  // per-CPU: all slots
  [[nodiscard]] std::uint32_t max_entries() const;

  int lookup(const void* key, void* value, std::uint64_t flags = 0) const;
  int update(const void* key, const void* value, std::uint64_t flags = 0);
  int remove(const void* key);
  int next_key(const void* key, void* next) const;  // key null: first key
  int freeze();
  Status pin(const std::string& path) const;
};

struct TestRun {
  std::uint32_t retval = 0;
  std::uint32_t duration_ns = 0;
  std::vector<std::uint8_t> data_out;
  std::vector<std::uint8_t> ctx_out;
};

class ProgRef : public HandleRef {
 public:
  using HandleRef::HandleRef;

  [[nodiscard]] std::uint32_t id() const;
  // PROG_TEST_RUN with data_in (and optionally a context).
  Result<TestRun> test_run(std::span<const std::uint8_t> data, std::uint32_t repeat = 1,
                           std::span<const std::uint8_t> ctx = {}) const;
  Status pin(const std::string& path) const;
};

class Runtime {
 public:
  explicit Runtime(const RuntimeOptions& opts = {});
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  [[nodiscard]] const std::string& pin_dir() const;
  Result<MapRef> create_map(std::uint32_t type, std::uint32_t key_size, std::uint32_t value_size,
                            std::uint32_t max_entries, const std::string& name = "", std::uint32_t flags = 0);
  // Raw instructions (8 bytes each). BPF_PSEUDO_MAP_IDX lddw refer to `maps` by index.
  Result<ProgRef> load_program(std::uint32_t type, std::span<const std::uint64_t> insns, const std::string& name = "",
                               std::span<const int> maps = {}, std::string* log = nullptr);
  Result<MapRef> open_map(const std::string& pin_path);
  Result<ProgRef> open_program(const std::string& pin_path);
  Status unpin(const std::string& pin_path);
  // The bpf() system call on this runtime (-1 and errno on error).
  int bpf(int cmd, void* attr, unsigned size);
  [[nodiscard]] runtime::Runtime& impl() { return *rt_; }

 private:
  std::unique_ptr<runtime::Runtime> rt_;
};

}  // namespace userbpf
