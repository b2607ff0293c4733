// Per-CPU slots in user space.
//
// The kernel guarantees that a program runs on one CPU and is not preempted
// by another program on that CPU, so per-CPU map values need no locking. In
// user space many threads (and processes) run programs at once, so "CPU" is
// a slot: a run acquires a slot for its duration and two concurrent runs
// never hold the same slot. Per-CPU maps keep one value per slot and
// bpf_get_smp_processor_id() returns the slot number.
//
// The slots are N robust process-shared mutexes in a small shared file
// (<pin dir>/.cpu-slots, created once by whoever comes first, atomically via
// O_TMPFILE + linkat), so processes that share pinned per-CPU maps also share
// the slots. acquire() tries the slot of the CPU the thread is on
// (sched_getcpu() % N) first, then every other slot, and only then blocks on
// its preferred slot. A thread that already holds a slot (a nested run on
// the same thread) gets the same slot again (counted, released by the
// outermost holder). A process that dies holding a slot frees it (robust).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/error.hpp"

namespace userbpf::maps {

class SharedFile;
struct SharedMutex;

// Number of possible CPUs (/sys/devices/system/cpu/possible), as libbpf's
// libbpf_num_possible_cpus(); at least 1.
std::uint32_t default_cpu_count();

class CpuSlots {
 public:
  // The slot file `<dir>/.cpu-slots`; created with `count` slots
  // (0: default_cpu_count()) if it does not exist, else its own count is used.
  static Result<std::unique_ptr<CpuSlots>> open(const std::string& dir, std::uint32_t count = 0);
  // Slots private to this process (anonymous shared mapping).
  static std::unique_ptr<CpuSlots> local(std::uint32_t count = 0);
  ~CpuSlots();
  CpuSlots(const CpuSlots&) = delete;
  CpuSlots& operator=(const CpuSlots&) = delete;

  [[nodiscard]] std::uint32_t count() const { return count_; }
  // Blocks until a slot is free; returns its number.
  std::uint32_t acquire();
  void release(std::uint32_t slot);

  // RAII holder; slot() acquires on first use (lazily: runs that never touch
  // a per-CPU value never take a slot).
  class Guard {
   public:
    explicit Guard(CpuSlots* slots) : slots_(slots) {}
    ~Guard();
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    std::uint32_t slot();
    [[nodiscard]] bool held() const { return held_; }

   private:
    CpuSlots* slots_;
    std::uint32_t slot_ = 0;
    bool held_ = false;
  };

 private:
  CpuSlots(std::unique_ptr<SharedFile> file, std::uint8_t* anon, std::size_t anon_size);
  SharedMutex* mutex(std::uint32_t i) const;
  std::unique_ptr<SharedFile> file_;
  std::uint8_t* base_ = nullptr;
  std::uint8_t* anon_ = nullptr;
  std::size_t anon_size_ = 0;
  std::uint32_t count_ = 0;
};

}  // namespace userbpf::maps
