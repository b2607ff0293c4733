#include "maps/shm.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <ctime>
#include <random>

namespace userbpf::maps {

namespace {

Error sys_error(int code, const std::string& what) {
  return make_error(code, fmt::format("{}: {}", what, std::strerror(code)));
}

Result<std::unique_ptr<SharedFile>> map_fd(int fd, std::size_t size, const std::string& what) {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    const int e = errno;
    ::close(fd);
    return sys_error(e, fmt::format("mmap {}", what));
  }
  return std::unique_ptr<SharedFile>(new SharedFile(fd, static_cast<std::uint8_t*>(p), size));
}

}  // namespace

Result<std::unique_ptr<SharedFile>> SharedFile::create(const std::string& dir, std::size_t size) {
  if (size == 0) return make_error(EINVAL, "shared file of size 0");
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
    // No O_TMPFILE on this file system: a named file, unlinked at once.
    std::random_device rd;
    for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
      const std::string path = fmt::format("{}/.userbpf-tmp-{:08x}{:08x}", dir, rd(), rd());
      fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
      if (fd >= 0) ::unlink(path.c_str());
    }
  }
  if (fd < 0) return sys_error(errno, fmt::format("create shared file in '{}'", dir));
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    const int e = errno;
    ::close(fd);
    return sys_error(e == EFBIG ? E2BIG : e, fmt::format("size shared file to {} bytes", size));
  }
  return map_fd(fd, size, fmt::format("shared file of {} bytes", size));
}

Result<std::unique_ptr<SharedFile>> SharedFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return sys_error(errno, fmt::format("open '{}'", path));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size <= 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(EINVAL, fmt::format("'{}' is not a userbpf object file", path));
  }
  return map_fd(fd, static_cast<std::size_t>(st.st_size), fmt::format("'{}'", path));
}

SharedFile::~SharedFile() {
  if (data_ != nullptr) ::munmap(data_, size_);
  if (fd_ >= 0) ::close(fd_);
}

Status SharedFile::link(const std::string& path) const {
  const std::string proc = fmt::format("/proc/self/fd/{}", fd_);
  if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) == 0) return Ok{};
  const int e = errno;
  if (e == EEXIST) return make_error(EEXIST, fmt::format("pin path '{}' already exists", path));
  if (e != ENOENT && e != EXDEV) return sys_error(e, fmt::format("link to '{}'", path));
  // A named file (or another file system): we cannot give it a second name
  // without copying, which would split the map; say so.
  return sys_error(e, fmt::format("link to '{}' (the pin directory must be on the file system of the map's storage)",
                                  path));
}

void SharedMutex::init() {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&m, &a);
  pthread_mutexattr_destroy(&a);
}

void SharedMutex::lock() {
  const int r = pthread_mutex_lock(&m);
  if (r == EOWNERDEAD) pthread_mutex_consistent(&m);  // the data may be half-updated; maps stay usable
}

bool SharedMutex::try_lock() {
  const int r = pthread_mutex_trylock(&m);
  if (r == EOWNERDEAD) {
    pthread_mutex_consistent(&m);
    return true;
  }
  return r == 0;
}

namespace {
std::atomic<std::uint32_t> g_pid{0};
void refresh_pid() { g_pid.store(static_cast<std::uint32_t>(::getpid()), std::memory_order_relaxed); }
}  // namespace

std::uint32_t SharedSpinLock::self() {
  std::uint32_t p = g_pid.load(std::memory_order_relaxed);
  if (p == 0) [[unlikely]] {
    static const int registered = pthread_atfork(nullptr, nullptr, &refresh_pid);
    (void)registered;
    refresh_pid();
    p = g_pid.load(std::memory_order_relaxed);
  }
  return p;
}

void SharedSpinLock::lock_slow() {
  const std::uint32_t me = self();
  for (std::uint64_t spins = 1;; ++spins) {
    std::uint32_t cur = owner.load(std::memory_order_relaxed);
    if (cur == 0) {
      if (owner.compare_exchange_weak(cur, me, std::memory_order_acquire, std::memory_order_relaxed)) return;
      continue;
    }
    if (spins < 128) {
      __builtin_ia32_pause();
    } else {
      sched_yield();
      // every 4096 yields: is the holder's process gone? Then take over.
      if ((spins & 4095) == 0 && cur != me && ::kill(static_cast<pid_t>(cur), 0) != 0 && errno == ESRCH) {
        if (owner.compare_exchange_strong(cur, me, std::memory_order_acquire, std::memory_order_relaxed)) return;
      }
    }
  }
}

namespace {
std::int64_t mono_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}
}  // namespace

Deadline::Deadline(int timeout_ms)
    : timeout_ms_(timeout_ms), end_ns_(mono_ns() + std::int64_t{timeout_ms < 0 ? 0 : timeout_ms} * 1000000) {}
bool Deadline::expired() const { return timeout_ms_ >= 0 && mono_ns() >= end_ns_; }
int Deadline::left_ms() const {
  if (timeout_ms_ < 0) return -1;
  const std::int64_t left = end_ns_ - mono_ns();
  return left <= 0 ? 0 : static_cast<int>(left / 1000000 + 1);
}

bool futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected, int timeout_ms) {
  static_assert(sizeof(std::atomic<std::uint32_t>) == 4);
  timespec ts{};
  if (timeout_ms >= 0) {
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = static_cast<long>(timeout_ms % 1000) * 1000000L;
  }
  const long r = ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT, expected,
                           timeout_ms >= 0 ? &ts : nullptr, nullptr, 0);
  return !(r != 0 && errno == ETIMEDOUT);
}

void futex_wake(std::atomic<std::uint32_t>& word) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, 0x7fffffff, nullptr, nullptr, 0);
}

}  // namespace userbpf::maps
