// Shared-memory files and the process-shared primitives that live in them.
//
// SharedFile: a file mmap'ed MAP_SHARED read-write. Created unnamed
// (O_TMPFILE in a directory, so it disappears with its last user unless it
// is linked to a path), or opened from a path (a pin). link() gives the
// unnamed file a name with linkat(2), which is how pinning works: the data
// is never copied and every process sees the same pages.
//
// Everything stored in a shared file is position-independent: offsets from
// the start of the file, std::atomic of lock-free integer types, and
// pthread mutexes initialised PTHREAD_PROCESS_SHARED + PTHREAD_MUTEX_ROBUST
// (a process that dies holding one does not block the others: the next
// owner gets EOWNERDEAD, marks it consistent and goes on).
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "base/error.hpp"

namespace userbpf::maps {

class SharedFile {
 public:
  // New unnamed file of `size` bytes (zero-filled) in directory `dir`.
  static Result<std::unique_ptr<SharedFile>> create(const std::string& dir, std::size_t size);
  // Opens an existing file read-write and maps all of it.
  static Result<std::unique_ptr<SharedFile>> open(const std::string& path);
  ~SharedFile();
  SharedFile(const SharedFile&) = delete;
  SharedFile& operator=(const SharedFile&) = delete;
  // Takes ownership of an open fd and its mapping (use create/open).
  SharedFile(int fd, std::uint8_t* data, std::size_t size) : fd_(fd), data_(data), size_(size) {}

  [[nodiscard]] std::uint8_t* data() const { return data_; }
  [[nodiscard]] std::size_t size() const { return size_; }
  [[nodiscard]] int fd() const { return fd_; }
  // Gives the file the name `path` (a new hard link). EEXIST if taken.
  Status link(const std::string& path) const;

 private:
  int fd_ = -1;
  std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

// A robust, process-shared mutex stored in shared memory.
struct SharedMutex {
  pthread_mutex_t m;
  void init();  // once, by the creator, before anyone else maps the file
  void lock();
  bool try_lock();
  void unlock() { pthread_mutex_unlock(&m); }
};

class SharedLock {
 public:
  explicit SharedLock(SharedMutex& m) : m_(m) { m_.lock(); }
  ~SharedLock() { m_.unlock(); }
  SharedLock(const SharedLock&) = delete;
  SharedLock& operator=(const SharedLock&) = delete;

 private:
  SharedMutex& m_;
};

// A process-shared spin lock for short critical sections (hash buckets):
// one atomic word holding 0 (free) or the holder's process id. Uncontended
// lock/unlock is one CAS and one store (a robust pthread mutex costs about
// four times as much). Robustness: a waiter that has spun for a while
// checks whether the holder's process still exists and takes the lock over
// if it does not (a thread that dies holding it kills its process anyway).
// Processes sharing maps must share a PID namespace for that check.
struct SharedSpinLock {
  std::atomic<std::uint32_t> owner;
  void init() { owner.store(0, std::memory_order_relaxed); }
  void lock() {
    std::uint32_t expected = 0;
    if (owner.compare_exchange_strong(expected, self(), std::memory_order_acquire, std::memory_order_relaxed))
      [[likely]] return;
    lock_slow();
  }
  void unlock() { owner.store(0, std::memory_order_release); }
  static std::uint32_t self();  // this process's id (cached, refreshed after fork)

 private:
  void lock_slow();
};

template <class L>
class Guard {
 public:
  explicit Guard(L& l) : l_(l) { l_.lock(); }
  ~Guard() { l_.unlock(); }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

 private:
  L& l_;
};

// Futex on a word of a shared mapping (not FUTEX_PRIVATE: works across
// processes). wait: sleeps while *word == expected, at most timeout_ms
// (-1: no limit); returns false on timeout. wake: wakes every waiter.
bool futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected, int timeout_ms);
void futex_wake(std::atomic<std::uint32_t>& word);

// A poll timeout: timeout_ms < 0 never expires.
class Deadline {
 public:
  explicit Deadline(int timeout_ms);
  [[nodiscard]] bool expired() const;
  // Milliseconds left (rounded up), -1 for no limit.
  [[nodiscard]] int left_ms() const;

 private:
  int timeout_ms_;
  std::int64_t end_ns_;
};

inline constexpr char kMapMagic[8] = {'U', 'B', 'P', 'F', 'M', 'A', 'P', '1'};
inline constexpr std::uint32_t kLayoutVersion = 4;  // 3: hash lock slots hold a sequence counter; 4: hash buckets do

// The first bytes of every map file.
struct MapHeader {
  char magic[8];
  std::uint32_t layout_version;
  std::uint32_t map_type;
  std::uint32_t key_size;
  std::uint32_t value_size;
  std::uint32_t max_entries;
  std::uint32_t map_flags;
  std::uint32_t ncpus;  // slots per value (1 unless per-CPU)
  std::uint32_t numa_node;
  std::uint32_t btf_key_type_id;
  std::uint32_t btf_value_type_id;
  std::uint64_t map_extra;
  std::uint64_t file_size;
  std::uint64_t body_offset;  // start of the type's body
  std::uint64_t hash_seed;
  char name[16];
  std::atomic<std::uint32_t> frozen;
  std::uint32_t spin_lock_off1;  // offset of the value's bpf_spin_lock + 1 (0: none)
  // maps of maps: the inner map template (bpf_map_meta_equal compares these)
  std::uint32_t inner_type;
  std::uint32_t inner_key_size;
  std::uint32_t inner_value_size;
  std::uint32_t inner_max_entries;
  std::uint32_t inner_map_flags;
  std::uint32_t timer_off1;  // offset of the value's bpf_timer + 1 (0: none)
  std::uint8_t reserved[104];
};
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

inline constexpr std::size_t kHeaderSize = 256;
static_assert(sizeof(MapHeader) <= kHeaderSize);

constexpr std::size_t align_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

// n <= 8 bytes at p as a zero-padded little-endian 8-byte word (the
// common 4- and 8-byte sizes without a byte loop).
inline std::uint64_t load_padded(const void* p, std::size_t n) {
  std::uint64_t w = 0;
  if (n == 8) {
    __builtin_memcpy(&w, p, 8);
  } else if (n == 4) {
    std::uint32_t v;
    __builtin_memcpy(&v, p, 4);
    w = v;
  } else {
    const auto* b = static_cast<const std::uint8_t*>(p);
    for (std::size_t i = 0; i < n; ++i) w |= std::uint64_t{b[i]} << (8 * i);
  }
  return w;
}

// Copies n bytes to an 8-byte aligned `dst` in shared memory as 8-byte
// atomic stores (release), the last word zero-padded: a lock-free reader
// (a program, another thread or process) sees each word whole. The bytes
// after n up to the next multiple of 8 are overwritten with zeros.
inline void store_words(void* dst, const void* src, std::size_t n) {
  auto* d = static_cast<std::uint64_t*>(dst);
  const auto* s = static_cast<const std::uint8_t*>(src);
  for (; n >= 8; n -= 8, s += 8, ++d) {
    std::uint64_t w;
    __builtin_memcpy(&w, s, 8);
    std::atomic_ref<std::uint64_t>(*d).store(w, std::memory_order_release);
  }
  if (n > 0) std::atomic_ref<std::uint64_t>(*d).store(load_padded(s, n), std::memory_order_release);
}

}  // namespace userbpf::maps
