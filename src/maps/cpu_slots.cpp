#include "maps/cpu_slots.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>

#include "maps/shm.hpp"

namespace userbpf::maps {

namespace {

constexpr char kSlotsMagic[8] = {'U', 'B', 'P', 'F', 'C', 'P', 'U', '1'};
constexpr std::size_t kSlotStride = 64;  // one cache line per mutex
constexpr std::size_t kSlotsHeader = 64;

struct SlotsHeader {
  char magic[8];
  std::uint32_t count;
};

// Parses "0-3,5,7-8" (the kernel's cpu list format) into a count of CPUs:
// the highest number + 1, as libbpf does for "possible".
std::uint32_t parse_possible(const std::string& s) {
  std::uint32_t max_cpu = 0;
  bool any = false;
  std::size_t i = 0;
  while (i < s.size()) {
    std::uint32_t a = 0, b = 0;
    std::size_t j = i;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') a = a * 10 + static_cast<std::uint32_t>(s[j++] - '0');
    if (j == i) break;
    b = a;
    if (j < s.size() && s[j] == '-') {
      std::size_t k = ++j;
      b = 0;
      while (j < s.size() && s[j] >= '0' && s[j] <= '9') b = b * 10 + static_cast<std::uint32_t>(s[j++] - '0');
      if (j == k) break;
    }
    max_cpu = std::max(max_cpu, std::max(a, b));
    any = true;
    if (j < s.size() && s[j] == ',') ++j;
    else break;
    i = j;
  }
  return any ? max_cpu + 1 : 0;
}

std::size_t slots_size(std::uint32_t n) { return kSlotsHeader + std::size_t{n} * kSlotStride; }

void init_slots(std::uint8_t* base, std::uint32_t n) {
  auto* h = new (base) SlotsHeader{};
  std::memcpy(h->magic, kSlotsMagic, sizeof kSlotsMagic);
  h->count = n;
  for (std::uint32_t i = 0; i < n; ++i) {
    auto* m = new (base + kSlotsHeader + std::size_t{i} * kSlotStride) SharedMutex{};
    m->init();
  }
}

struct Held {
  const CpuSlots* owner = nullptr;
  std::uint32_t slot = 0;
  std::uint32_t depth = 0;
};
thread_local Held t_held;

}  // namespace

std::uint32_t default_cpu_count() {
  static const std::uint32_t n = [] {
    std::ifstream f("/sys/devices/system/cpu/possible");
    std::string s;
    std::getline(f, s);
    std::uint32_t c = parse_possible(s);
    if (c == 0) {
      const long online = ::sysconf(_SC_NPROCESSORS_CONF);
      c = online > 0 ? static_cast<std::uint32_t>(online) : 1;
    }
    return c;
  }();
  return n;
}

CpuSlots::CpuSlots(std::unique_ptr<SharedFile> file, std::uint8_t* anon, std::size_t anon_size)
    : file_(std::move(file)), anon_(anon), anon_size_(anon_size) {
  base_ = file_ ? file_->data() : anon_;
  count_ = reinterpret_cast<const SlotsHeader*>(base_)->count;
}

CpuSlots::~CpuSlots() {
  if (anon_ != nullptr) ::munmap(anon_, anon_size_);
}

SharedMutex* CpuSlots::mutex(std::uint32_t i) const {
  return reinterpret_cast<SharedMutex*>(base_ + kSlotsHeader + std::size_t{i} * kSlotStride);
}

Result<std::unique_ptr<CpuSlots>> CpuSlots::open(const std::string& dir, std::uint32_t count) {
  const std::string path = dir + "/.cpu-slots";
  for (int attempt = 0; attempt < 4; ++attempt) {
    if (auto f = SharedFile::open(path)) {
      const auto* h = reinterpret_cast<const SlotsHeader*>((*f)->data());
      if ((*f)->size() < kSlotsHeader || std::memcmp(h->magic, kSlotsMagic, sizeof kSlotsMagic) != 0 ||
          h->count == 0 || slots_size(h->count) > (*f)->size())
        return make_error(EINVAL, fmt::format("'{}' is not a userbpf CPU slot file", path));
      return std::unique_ptr<CpuSlots>(new CpuSlots(std::move(*f), nullptr, 0));
    } else if (f.error().code != ENOENT) {
      return f.error();
    }
    const std::uint32_t n = count != 0 ? count : default_cpu_count();
    auto created = SharedFile::create(dir, slots_size(n));
    if (!created) return created.error();
    init_slots((*created)->data(), n);
    if ((*created)->link(path)) return std::unique_ptr<CpuSlots>(new CpuSlots(std::move(*created), nullptr, 0));
    // Lost the race to another creator: open theirs.
  }
  return make_error(EAGAIN, fmt::format("could not create or open '{}'", path));
}

std::unique_ptr<CpuSlots> CpuSlots::local(std::uint32_t count) {
  const std::uint32_t n = count != 0 ? count : default_cpu_count();
  const std::size_t size = slots_size(n);
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  init_slots(static_cast<std::uint8_t*>(p), n);
  return std::unique_ptr<CpuSlots>(new CpuSlots(nullptr, static_cast<std::uint8_t*>(p), size));
}

std::uint32_t CpuSlots::acquire() {
  if (t_held.depth > 0 && t_held.owner == this) {
    ++t_held.depth;
    return t_held.slot;
  }
  const int cpu = ::sched_getcpu();
  const std::uint32_t first = cpu >= 0 ? static_cast<std::uint32_t>(cpu) % count_ : 0;
  std::uint32_t got = count_;
  for (std::uint32_t k = 0; k < count_; ++k) {
    const std::uint32_t i = (first + k) % count_;
    if (mutex(i)->try_lock()) {
      got = i;
      break;
    }
  }
  if (got == count_) {
    mutex(first)->lock();
    got = first;
  }
  if (t_held.depth == 0) t_held = Held{this, got, 1};
  return got;
}

void CpuSlots::release(std::uint32_t slot) {
  if (t_held.depth > 0 && t_held.owner == this && t_held.slot == slot) {
    if (--t_held.depth > 0) return;
    t_held.owner = nullptr;
  }
  mutex(slot)->unlock();
}

std::uint32_t CpuSlots::Guard::slot() {
  if (!held_) {
    slot_ = slots_->acquire();
    held_ = true;
  }
  return slot_;
}

CpuSlots::Guard::~Guard() {
  if (held_) slots_->release(slot_);
}

}  // namespace userbpf::maps
