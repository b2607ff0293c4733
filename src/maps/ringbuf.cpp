// BPF_MAP_TYPE_RINGBUF and its host consumer; design and invariants in
// ringbuf.hpp.
#include "maps/ringbuf.hpp"

#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "maps/registry.hpp"
#include "maps/shm.hpp"

namespace userbpf::maps {

namespace {
constexpr std::size_t kPage = 4096;
constexpr std::size_t kDataFileOffset = kPage;  // data area: page 1 of the file onwards
constexpr std::uint64_t kMaxRecord = 0x3fffffffu;  // RINGBUF_MAX_RECORD_SZ (UINT_MAX / 4)

// Asymmetric fences (membarrier): a producer commits with a plain store
// and no fence when its process is registered for
// MEMBARRIER_CMD_GLOBAL_EXPEDITED; a consumer about to sleep makes every
// running thread of every registered process execute a full barrier
// (heavy_fence) before it looks for records. The consumer sleeps rarely,
// producers commit every record.
int membarrier(int cmd) { return static_cast<int>(::syscall(SYS_membarrier, cmd, 0, 0)); }
std::atomic<int> g_light{-1};  // this process registered: 1, not: 0, not tried: -1
void register_light() {
  g_light.store(membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0 ? 1 : 0, std::memory_order_relaxed);
}
// Whether this process's producers may commit without a fence. A forked
// child registers again (the registration is not inherited).
bool light_commits() {
  int v = g_light.load(std::memory_order_relaxed);
  if (v < 0) [[unlikely]] {
    static const int once = [] {
      ::pthread_atfork(nullptr, nullptr, &register_light);
      register_light();
      return 0;
    }();
    (void)once;
    v = g_light.load(std::memory_order_relaxed);
  }
  return v == 1;
}
// A full barrier on every running thread of the registered processes (the
// light producers); false if the kernel refuses.
bool heavy_fence() { return membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0; }

std::atomic_ref<std::uint32_t> len_word(const std::uint8_t* hdr) {
  return std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(const_cast<std::uint8_t*>(hdr)));
}
}  // namespace

// The control block at the start of the body. Each line has one writer:
// the consumer's position; the published producer position (read by
// consumers); the producers' lock with the producers' cached copy of the
// consumer position (written and read under the lock only, so a spinning
// consumer never takes the lock's line away); the wakeup words.
struct RingBuf::Ctl {
  alignas(64) std::atomic<std::uint64_t> consumer_pos;
  alignas(64) std::atomic<std::uint64_t> producer_pos;
  alignas(64) SharedSpinLock lock;                  // producers
  std::atomic<std::uint64_t> consumer_seen;         // a consumer_pos seen by a producer (<= the real one)
  alignas(64) std::atomic<std::uint32_t> wake_seq;  // futex word, bumped on every wakeup
  std::atomic<std::uint32_t> waiters;               // consumers sleeping on wake_seq + kBridge per eventfd bridge
};
namespace {
// An eventfd bridge counts in Ctl::waiters as this many (its thread also
// counts 1 while it sleeps): producers keep bumping wake_seq for it.
constexpr std::uint32_t kBridge = 1u << 16;
}
static_assert(sizeof(RingBuf::Ctl) <= kPage - kHeaderSize);

RingBuf::RingBuf(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc, std::uint8_t* data)
    : Map(std::move(file), desc), ctl_(reinterpret_cast<Ctl*>(body())), data_(data), mask_(max_entries() - 1u) {}

RingBuf* RingBuf::from(Map* m) {
  return m != nullptr && m->desc().kind == MapKind::RingBuf ? static_cast<RingBuf*>(m) : nullptr;
}

RingBuf::~RingBuf() {
  if (data_ != nullptr) ::munmap(data_, 2 * size());
}

std::span<std::uint8_t> RingBuf::program_area() const {
  return data_ != nullptr ? std::span<std::uint8_t>(data_, 2 * size()) : std::span<std::uint8_t>();
}

void* RingBuf::reserve(std::uint64_t size) {
  if (data_ == nullptr || size > kMaxRecord) [[unlikely]]
    return nullptr;
  const std::uint64_t len = round8(size + kRingHdrSize);
  if (len > mask_ + 1) [[unlikely]]
    return nullptr;
  Guard g(ctl_->lock);
  const std::uint64_t prod = ctl_->producer_pos.load(std::memory_order_relaxed);  // written under the lock only
  // The producer may run at most size - 1 bytes ahead of the consumer. The
  // cached consumer position is never ahead of the real one, so a check that
  // passes with it holds; the real one (a line the consumer writes) is read
  // only when the ring looks full.
  if (prod + len - ctl_->consumer_seen.load(std::memory_order_relaxed) > mask_) {
    const std::uint64_t cons = ctl_->consumer_pos.load(std::memory_order_acquire);
    ctl_->consumer_seen.store(cons, std::memory_order_relaxed);
    if (prod + len - cons > mask_) return nullptr;
  }
  std::uint8_t* hdr = data_ + (prod & mask_);
  len_word(hdr).store(static_cast<std::uint32_t>(size) | kRingBusyBit, std::memory_order_relaxed);
  const auto pg_off = static_cast<std::uint32_t>((prod & mask_) / kPage);
  std::memcpy(hdr + 4, &pg_off, 4);
  ctl_->producer_pos.store(prod + len, std::memory_order_release);
  return hdr + kRingHdrSize;
}

void RingBuf::commit_record(std::uint8_t* hdr, std::uint32_t len, std::uint64_t flags) {
  // The record is published before we look for sleeping consumers, and a
  // consumer registers as a waiter before it looks for records
  // (RingBufConsumer::sleep), so one of the two sees the other (Dekker).
  // Light: a release store (a plain mov) and a compiler barrier; the
  // consumer's heavy_fence supplies the store-load ordering. Otherwise
  // seq_cst store and load (an xchg, as the kernel's commit).
  std::uint32_t waiting;
  if (light_commits()) [[likely]] {
    len_word(hdr).store(len, std::memory_order_release);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    waiting = ctl_->waiters.load(std::memory_order_acquire);
  } else {
    len_word(hdr).store(len, std::memory_order_seq_cst);
    waiting = ctl_->waiters.load(std::memory_order_seq_cst);
  }
  // Nobody sleeps: a wakeup would reach no one (the kernel's irq_work wakes
  // the wait queue's sleepers only). An eventfd bridge counts as a waiter.
  if (waiting == 0) [[likely]]
    return;
  const std::uint64_t rec_pos = static_cast<std::uint64_t>(hdr - data_) & mask_;
  const std::uint64_t cons = ctl_->consumer_pos.load(std::memory_order_seq_cst) & mask_;
  const bool wake = (flags & BPF_RB_FORCE_WAKEUP) != 0 || (cons == rec_pos && (flags & BPF_RB_NO_WAKEUP) == 0);
  if (!wake) return;
  ctl_->wake_seq.fetch_add(1, std::memory_order_seq_cst);
  if ((ctl_->waiters.load(std::memory_order_seq_cst) & (kBridge - 1)) != 0) futex_wake(ctl_->wake_seq);
}

void RingBuf::commit(void* sample, std::uint64_t flags, bool discard) {
  auto* hdr = static_cast<std::uint8_t*>(sample) - kRingHdrSize;
  if (data_ == nullptr || hdr < data_ || hdr >= data_ + 2 * size()) return;  // not one of ours
  const std::uint32_t len = len_word(hdr).load(std::memory_order_relaxed);
  if ((len & kRingBusyBit) == 0) return;  // already committed
  commit_record(hdr, (len & ~kRingBusyBit) | (discard ? kRingDiscardBit : 0), flags);
}

void RingBuf::submit(void* sample, std::uint64_t flags) { commit(sample, flags, false); }
void RingBuf::discard(void* sample, std::uint64_t flags) { commit(sample, flags, true); }

namespace {
// memcpy for record payloads: sizes up to 32 bytes (most event records)
// with two overlapping word copies instead of a library call.
void copy_sample(std::uint8_t* dst, const std::uint8_t* src, std::uint64_t n) {
  if (n >= 8 && n <= 16) {
    std::uint64_t a, b;
    std::memcpy(&a, src, 8);
    std::memcpy(&b, src + n - 8, 8);
    std::memcpy(dst, &a, 8);
    std::memcpy(dst + n - 8, &b, 8);
  } else if (n > 16 && n <= 32) {
    std::uint64_t a[2], b[2];
    std::memcpy(a, src, 16);
    std::memcpy(b, src + n - 16, 16);
    std::memcpy(dst, a, 16);
    std::memcpy(dst + n - 16, b, 16);
  } else {
    std::memcpy(dst, src, n);
  }
}
}  // namespace

int RingBuf::output(const void* data, std::uint64_t size, std::uint64_t flags) {
  if ((flags & ~std::uint64_t{BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP}) != 0) return EINVAL;
  auto* s = static_cast<std::uint8_t*>(reserve(size));
  if (s == nullptr) return EAGAIN;
  copy_sample(s, static_cast<const std::uint8_t*>(data), size);
  commit_record(s - kRingHdrSize, static_cast<std::uint32_t>(size), flags);
  return 0;
}

std::uint64_t RingBuf::query(std::uint64_t flags) const {
  switch (flags) {
    case BPF_RB_AVAIL_DATA:
      return ctl_->producer_pos.load(std::memory_order_acquire) - ctl_->consumer_pos.load(std::memory_order_acquire);
    case BPF_RB_RING_SIZE:
      return size();
    case BPF_RB_CONS_POS:
      return ctl_->consumer_pos.load(std::memory_order_acquire);
    case BPF_RB_PROD_POS:
      return ctl_->producer_pos.load(std::memory_order_acquire);
    default:
      return 0;
  }
}

// The bpf() element commands do not exist for ring buffers (ENOTSUPP).
int RingBuf::do_lookup(const void*, void*) const { return kENOTSUPP; }
int RingBuf::do_update(const void*, const void*, std::uint64_t) { return kENOTSUPP; }
int RingBuf::do_delete(const void*) { return kENOTSUPP; }
int RingBuf::do_get_next_key(const void*, void*) const { return kENOTSUPP; }

namespace {

// Maps the data area (file offset kDataFileOffset, `size` bytes) twice, back
// to back; null on failure.
std::uint8_t* map_twice(int fd, std::size_t size) {
  void* area = ::mmap(nullptr, 2 * size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (area == MAP_FAILED) return nullptr;
  auto* base = static_cast<std::uint8_t*>(area);
  for (std::size_t half = 0; half < 2; ++half) {
    // MAP_POPULATE: page tables now, not one fault per page in the producers
    void* p = ::mmap(base + half * size, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | MAP_POPULATE, fd,
                     static_cast<off_t>(kDataFileOffset));
    if (p == MAP_FAILED) {
      ::munmap(area, 2 * size);
      return nullptr;
    }
  }
  return base;
}

}  // namespace

const MapTypeDesc kRingBufDesc = {
    BPF_MAP_TYPE_RINGBUF,
    "ringbuf",
    MapKind::RingBuf,
    false,
    BPF_F_NUMA_NODE,
    0,
    [](const MapSpec& s) {
      // ringbuf_map_alloc
      if (s.key_size != 0 || s.value_size != 0 || s.max_entries == 0 || (s.max_entries & (s.max_entries - 1)) != 0 ||
          s.max_entries % kPage != 0)
        return EINVAL;
      return 0;
    },
    [](const MapSpec& s, std::uint32_t) -> std::size_t { return kDataFileOffset - kHeaderSize + s.max_entries; },
    [](std::uint8_t* body, const MapSpec& s, std::uint32_t) {
      auto* c = new (body) RingBuf::Ctl{};
      c->lock.init();
      // Allocate the data pages now, as the kernel allocates its ring's pages
      // at MAP_CREATE: otherwise a program's first write to each page faults
      // (a page-cache allocation; on a disk file system a block reservation),
      // which cost producers several times the record's own cost.
      std::uint8_t* d = body + (kDataFileOffset - kHeaderSize);
      for (std::size_t off = 0; off < s.max_entries; off += kPage)
        std::atomic_ref<std::uint8_t>(d[off]).store(0, std::memory_order_relaxed);
    },
    [](std::unique_ptr<SharedFile> f, const MapTypeDesc& d) -> std::unique_ptr<Map> {
      const auto* h = reinterpret_cast<const MapHeader*>(f->data());
      std::uint8_t* data = map_twice(f->fd(), h->max_entries);
      return std::make_unique<RingBuf>(std::move(f), d, data);
    },
    false,
};

// ------------------------------------------------------------------ consumer

RingBufConsumer::RingBufConsumer() = default;

RingBufConsumer::~RingBufConsumer() {
  if (bridge_.joinable()) {
    stop_.store(true, std::memory_order_seq_cst);
    for (Ring& r : rings_) {
      r.rb->ctl().waiters.fetch_sub(kBridge, std::memory_order_seq_cst);
      r.rb->ctl().wake_seq.fetch_add(1, std::memory_order_seq_cst);
      futex_wake(r.rb->ctl().wake_seq);
    }
    bridge_.join();
  }
  if (efd_ >= 0) ::close(efd_);
}

int RingBufConsumer::add(Map& map, Callback cb) {
  auto* rb = dynamic_cast<RingBuf*>(&map);
  if (rb == nullptr || rb->data() == nullptr || !cb) return EINVAL;
  if (bridge_.joinable()) return EBUSY;  // add every ring before asking for fd()
  rings_.push_back(Ring{rb, std::move(cb)});
  return 0;
}

long RingBufConsumer::consume_one(Ring& r) {
  RingBuf::Ctl& c = r.rb->ctl();
  const std::uint64_t mask = r.rb->size() - 1;
  std::uint64_t cons = c.consumer_pos.load(std::memory_order_relaxed);  // we are the only writer
  long n = 0;
  for (;;) {
    const std::uint64_t prod = c.producer_pos.load(std::memory_order_acquire);
    if (cons == prod) break;
    const std::uint8_t* hdr = r.rb->data() + (cons & mask);
    const std::uint32_t len = len_word(hdr).load(std::memory_order_acquire);
    if ((len & kRingBusyBit) != 0) break;  // not committed yet: records stay in order
    const std::uint32_t sz = len & ~(kRingBusyBit | kRingDiscardBit);
    int stop = 0;
    if ((len & kRingDiscardBit) == 0) {
      stop = r.cb(hdr + kRingHdrSize, sz);
      ++n;
    }
    cons += round8(std::uint64_t{sz} + kRingHdrSize);
    c.consumer_pos.store(cons, std::memory_order_release);
    if (stop != 0) return stop > 0 ? -stop : stop;
  }
  return n;
}

long RingBufConsumer::consume() {
  if (efd_ >= 0) {
    std::uint64_t v;
    [[maybe_unused]] const ssize_t got = ::read(efd_, &v, sizeof v);  // reset readiness (non-blocking)
  }
  long total = 0;
  for (Ring& r : rings_) {
    const long n = consume_one(r);
    if (n < 0) return n;
    total += n;
  }
  return total;
}

std::uint32_t RingBufConsumer::wake_sum() const {
  std::uint32_t s = 0;
  for (const Ring& r : rings_) s += r.rb->ctl().wake_seq.load(std::memory_order_seq_cst);
  return s;
}

bool RingBufConsumer::has_record() const {
  for (const Ring& r : rings_) {
    const RingBuf::Ctl& c = r.rb->ctl();
    const std::uint64_t cons = c.consumer_pos.load(std::memory_order_seq_cst);
    if (c.producer_pos.load(std::memory_order_seq_cst) == cons) continue;
    if ((len_word(r.rb->data() + (cons & (r.rb->size() - 1))).load(std::memory_order_seq_cst) & kRingBusyBit) == 0)
      return true;
  }
  return false;
}

// Sleeps on the first ring's wakeup word until a wakeup, a record, or
// `ms` (-1: no limit). Registering as a waiter before looking for records
// closes the race with a commit (see RingBuf::commit).
void RingBufConsumer::sleep(int ms, bool look) const {
  RingBuf::Ctl& c = rings_.front().rb->ctl();
  const std::uint32_t seq = c.wake_seq.load(std::memory_order_seq_cst);
  c.waiters.fetch_add(1, std::memory_order_seq_cst);
  // Light producers' commits become visible before has_record looks. If
  // the kernel refuses the fence, sleep at most 1 ms at a time (a commit
  // may have missed us).
  if (!heavy_fence() && (ms < 0 || ms > 1)) ms = 1;
  if (!(look && has_record()) && !stop_.load(std::memory_order_seq_cst)) futex_wait(c.wake_seq, seq, ms);
  c.waiters.fetch_sub(1, std::memory_order_seq_cst);
}

long RingBufConsumer::poll(int timeout_ms) {
  const Deadline deadline(timeout_ms);
  for (;;) {
    const long n = consume();
    if (n != 0 || deadline.expired()) return n;
    const int left = deadline.left_ms();
    if (rings_.empty()) {
      if (left >= 0) ::usleep(static_cast<useconds_t>(left) * 1000);
      return 0;
    }
    // one futex word at a time: with several rings, look at the others every 10 ms
    sleep(rings_.size() > 1 && (left < 0 || left > 10) ? 10 : left, true);
  }
}

int RingBufConsumer::fd() {
  if (efd_ >= 0) return efd_;
  efd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd_ < 0) return -errno;
  if (rings_.empty()) return efd_;
  for (Ring& r : rings_) r.rb->ctl().waiters.fetch_add(kBridge, std::memory_order_seq_cst);
  bridge_ = std::thread([this] {
    // Turns wakeups into eventfd signals: signals whenever a record is
    // waiting and the wakeup word moved since the last signal.
    std::uint32_t signalled = 0;
    bool first = true;
    while (!stop_.load(std::memory_order_seq_cst)) {
      const std::uint32_t now = wake_sum();
      const bool fresh = first || now != signalled;
      if (fresh && has_record()) {
        const std::uint64_t one = 1;
        [[maybe_unused]] const ssize_t w = ::write(efd_, &one, sizeof one);
        signalled = now;
        first = false;
      }
      // after a signal, wait for the next wakeup (not for the records already signalled)
      sleep(rings_.size() > 1 ? 10 : 100, !(now == signalled && !first));
    }
  });
  return efd_;
}

}  // namespace userbpf::maps
