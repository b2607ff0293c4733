// Helpers about the current process and thread, clocks and NUMA, answered
// for the user-space thread that runs the program (the kernel answers for
// the task it runs in).
//
//   get_current_pid_tgid   (tgid << 32) | tid           getpid(), gettid()
//   get_current_uid_gid    (gid << 32) | uid            real ids, as current_uid_gid()
//   get_current_comm       the thread's name (PR_GET_NAME), NUL-padded to size
//   get_current_task       an opaque per-thread value shaped like a kernel
//                          address (0xffff8880'00000000 | tid << 13): stable
//                          for the thread, different between threads, never
//                          readable (probe_read_kernel on it gives -EFAULT)
//   get_ns_current_pid_tgid  pid/tgid in the pid namespace named by dev/ino
//                          (the st_dev/st_ino of /proc/self/ns/pid); another
//                          namespace: -ENOENT; bad size or dev: -EINVAL
//   get_numa_node_id       getcpu()'s node
//   jiffies64              CLOCK_MONOTONIC in units of 1/kJiffyHz s
//   ktime_get_tai_ns       CLOCK_TAI
//   get_func_ip            RunState::func_ip (set by hooks that know it), else 0
#include <fcntl.h>
#include <linux/bpf.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "helpers/helpers.hpp"
#include "helpers/internal.hpp"

namespace userbpf::helpers {

namespace {

using namespace detail;  // NOLINT(google-build-using-namespace)

constexpr u64 kJiffyHz = 1000;  // userbpf's HZ

u64 tid() { return static_cast<u64>(static_cast<std::uint32_t>(gettid())); }

u64 get_current_pid_tgid(abi::Env&, u64, u64, u64, u64, u64) {
  return (static_cast<u64>(static_cast<std::uint32_t>(getpid())) << 32) | tid();
}

u64 get_current_uid_gid(abi::Env&, u64, u64, u64, u64, u64) {
  return (static_cast<u64>(getgid()) << 32) | static_cast<u64>(getuid());
}

// long bpf_get_current_comm(void *buf, u32 size_of_buf)
u64 get_current_comm(abi::Env& env, u64 buf, u64 size, u64, u64, u64) {
  const auto n = static_cast<std::uint32_t>(size);
  if (n == 0 || buf == 0) return neg(EINVAL);
  if (!arg_mem(env, "get_current_comm", "buf", buf, n, true)) return 0;
  char comm[17] = {};
  if (prctl(PR_GET_NAME, comm, 0, 0, 0) != 0) comm[0] = '\0';
  auto* out = reinterpret_cast<char*>(buf);  // NOLINT(performance-no-int-to-ptr)
  const std::size_t len = std::min<std::size_t>(std::strlen(comm), n - 1);
  std::memcpy(out, comm, len);
  std::memset(out + len, 0, n - len);  // strscpy_pad
  return 0;
}

u64 get_current_task(abi::Env&, u64, u64, u64, u64, u64) { return 0xffff888000000000ULL | (tid() << 13); }

// long bpf_get_ns_current_pid_tgid(u64 dev, u64 ino, struct bpf_pidns_info *nsdata, u32 size)
u64 get_ns_current_pid_tgid(abi::Env& env, u64 dev, u64 ino, u64 nsdata, u64 size, u64) {
  struct PidNsInfo {
    std::uint32_t pid, tgid;
  };
  const auto n = static_cast<std::uint32_t>(size);
  if (!arg_mem(env, "get_ns_current_pid_tgid", "nsdata", nsdata, n, true)) return 0;
  auto* out = reinterpret_cast<std::uint8_t*>(nsdata);  // NOLINT(performance-no-int-to-ptr)
  const auto clear = [&](int e) {
    if (out != nullptr) std::memset(out, 0, n);
    return neg(e);
  };
  if (n != sizeof(PidNsInfo) || static_cast<u64>(static_cast<std::uint32_t>(dev)) != dev || out == nullptr)
    return clear(EINVAL);
  struct stat st {};
  if (stat("/proc/self/ns/pid", &st) != 0) return clear(ENOENT);
  if (static_cast<u64>(st.st_dev) != dev || static_cast<u64>(st.st_ino) != ino) return clear(ENOENT);
  const PidNsInfo info{static_cast<std::uint32_t>(tid()), static_cast<std::uint32_t>(getpid())};
  std::memcpy(out, &info, sizeof info);
  return 0;
}

u64 get_numa_node_id(abi::Env&, u64, u64, u64, u64, u64) {
  unsigned cpu = 0, node = 0;
  if (syscall(SYS_getcpu, &cpu, &node, nullptr) != 0) return 0;
  return node;
}

u64 jiffies64(abi::Env&, u64, u64, u64, u64, u64) { return clock_ns(CLOCK_MONOTONIC) / (1000000000ULL / kJiffyHz); }

u64 ktime_get_tai_ns(abi::Env&, u64, u64, u64, u64, u64) { return clock_ns(CLOCK_TAI); }

u64 get_func_ip(abi::Env& env, u64, u64, u64, u64, u64) {
  const RunState* s = state(env);
  return s != nullptr ? s->func_ip : 0;
}

constexpr Entry kProcess[] = {
    UBPF_HELPER_ENTRY_F(get_current_pid_tgid, kLeaf), UBPF_HELPER_ENTRY_F(get_current_uid_gid, kLeaf),
    UBPF_HELPER_ENTRY(get_current_comm),     UBPF_HELPER_ENTRY_F(get_current_task, kLeaf),
    UBPF_HELPER_ENTRY(get_ns_current_pid_tgid), UBPF_HELPER_ENTRY_F(get_numa_node_id, kLeaf),
    UBPF_HELPER_ENTRY_F(jiffies64, kLeaf),   UBPF_HELPER_ENTRY_F(ktime_get_tai_ns, kLeaf),
    UBPF_HELPER_ENTRY_F(get_func_ip, kLeaf),
};

}  // namespace

std::span<const detail::Entry> detail::process_entries() { return kProcess; }

}  // namespace userbpf::helpers
