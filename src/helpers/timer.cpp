// bpf_timer: bpf_timer_init / set_callback / start / cancel (helpers 169-172)
// and the TimerService that fires timers on a runtime-owned thread.
//
// Where a timer lives. As in the kernel, a timer is the 16-byte `struct
// bpf_timer` of a map value (hash, LRU hash or array; the map knows the
// field's offset from the value's BTF: Map::timer_off()). The kernel keeps
// a pointer to its bpf_hrtimer there; map values here are shared memory that
// several processes may map at different addresses, so the field holds a
// token instead: word 0 = (pid of the owning process << 32) | a per-process
// sequence number (never 0), word 1 = 0. The token names a Timer record in
// this process's registry (token -> Timer, one mutex for all timer state).
// Zero means "not initialised". The maps reset the field (atomic stores of
// zero) whenever the value is overwritten or its element is deleted
// (Map::copy_value_in, Map::free_fields), which is how deleting or
// overwriting an element cancels its timer: an expiring timer whose field no
// longer holds its token is dropped without running (and releases its
// program), as the kernel's bpf_obj_free_fields cancels it at once.
//
// Ownership across processes: the process that initialised a timer owns it
// (its pid is in the token) and only that process's service fires it.
// Another process sees an initialised timer: bpf_timer_init returns -EBUSY
// as the kernel would, set_callback/start/cancel return -EPERM (the kernel
// has no such case: there is one kernel). A token whose process is gone is
// treated as uninitialised (bpf_timer_init takes the timer over).
//
// Firing. Each TimerService has a thread and a queue ordered by deadline
// (CLOCK_MONOTONIC nanoseconds; BPF_F_TIMER_ABS deadlines of CLOCK_REALTIME
// / CLOCK_BOOTTIME timers are converted when started; BPF_F_TIMER_CPU_PIN is
// accepted and has no effect). At expiry the thread marks the timer running
// and calls AsyncRunner::run_function(prog, callback, map, key, value)
// without holding the lock: the callback may start (re-arm) its own timer;
// cancelling it from its own callback is -EDEADLK, as in the kernel. A
// cancel from another thread waits for a running callback to finish
// (hrtimer_cancel). The key passed is a copy made at bpf_timer_init (hash:
// the element's key; array: the u32 index), stable while the timer lives.
//
// Invariants: every Timer field is guarded by Registry::mu; a Timer is
// destroyed only by its service's thread (dropped at expiry) or by the
// service's destructor after the thread was joined, never while running;
// queue entries carry the arm sequence number they were queued with, so a
// re-armed or cancelled timer's old entry is ignored.
#include <fmt/format.h>
#include <linux/bpf.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "helpers/helpers.hpp"
#include "helpers/internal.hpp"

namespace userbpf::helpers {

namespace {

using namespace detail;  // NOLINT(google-build-using-namespace)

constexpr u64 kTimerSize = 16;  // sizeof(struct bpf_timer)
constexpr u64 kMaxClocks = 16;  // MAX_CLOCKS
// bpf_timer_start flags (uapi enum, newer than some <linux/bpf.h> headers)
constexpr u64 kTimerAbs = 1ULL << 0;     // BPF_F_TIMER_ABS
constexpr u64 kTimerCpuPin = 1ULL << 1;  // BPF_F_TIMER_CPU_PIN

std::atomic_ref<u64> token_word(u64 field) {
  return std::atomic_ref<u64>(*reinterpret_cast<u64*>(field));  // NOLINT(performance-no-int-to-ptr)
}

u64 pid_of(u64 token) { return token >> 32; }

bool process_alive(u64 pid) {
  return pid != 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
}

}  // namespace

struct Timer {
  u64 token = 0;
  u64 field = 0;  // address of the struct bpf_timer
  maps::Map* map = nullptr;
  u64 value = 0;  // start of the map value
  std::vector<std::uint8_t> key;
  clockid_t clock = CLOCK_MONOTONIC;
  TimerService::Impl* svc = nullptr;
  std::shared_ptr<const void> prog;  // the program of the callback (held)
  const void* prog_raw = nullptr;
  u64 fn = 0;           // abi::func_addr in the program's own numbering; 0: no callback
  u64 arm_seq = 0;      // bumped by every start and cancel
  bool armed = false;
  bool running = false;
  std::thread::id runner;
  int waiters = 0;      // bpf_timer_cancel calls waiting for the callback (keep the record)
};

namespace {

struct Registry {
  std::mutex mu;
  std::unordered_map<u64, std::unique_ptr<Timer>> by_token;
  u64 seq = 0;
};
// Never destroyed: services of static runtimes may outlive other statics.
// fork() takes the lock first, so a child never inherits it held by a
// thread it does not have.
Registry& registry() {
  static Registry* r = [] {
    auto* reg = new Registry;
    ::pthread_atfork([] { registry().mu.lock(); }, [] { registry().mu.unlock(); },
                     [] { registry().mu.unlock(); });
    return reg;
  }();
  return *r;
}

}  // namespace

struct TimerService::Impl {
  explicit Impl(AsyncRunner& r) : runner(r) {}
  AsyncRunner& runner;
  std::condition_variable wake;  // the thread: queue changed or stop
  std::condition_variable done;  // a callback finished
  std::set<std::tuple<u64, u64, u64>> queue;  // (deadline, token, arm_seq)
  bool stop = false;
  Counts counts;
  std::thread thread;

  void loop();
};

struct TimerAccess {
  static TimerService::Impl* impl(TimerService* s) { return s != nullptr ? s->impl_.get() : nullptr; }
};

void TimerService::Impl::loop() {
  Registry& reg = registry();
  std::unique_lock lk(reg.mu);
  while (!stop) {
    if (queue.empty()) {
      wake.wait(lk);
      continue;
    }
    const auto [deadline, token, seq] = *queue.begin();
    const u64 now = clock_ns(CLOCK_MONOTONIC);
    if (deadline > now) {
      wake.wait_for(lk, std::chrono::nanoseconds(deadline - now));
      continue;
    }
    queue.erase(queue.begin());
    auto it = reg.by_token.find(token);
    if (it == reg.by_token.end()) continue;
    Timer& t = *it->second;
    if (!t.armed || t.arm_seq != seq) continue;
    t.armed = false;
    if (token_word(t.field).load(std::memory_order_acquire) != t.token && t.waiters == 0) {
      // the element was deleted or its value overwritten: the timer is gone
      std::unique_ptr<Timer> dead = std::move(it->second);
      reg.by_token.erase(it);
      ++counts.dropped;
      --counts.timers;
      lk.unlock();
      dead.reset();  // may release the last reference to the program
      lk.lock();
      continue;
    }
    t.running = true;
    t.runner = std::this_thread::get_id();
    const std::shared_ptr<const void> prog = t.prog;
    const abi::Region key_region{reinterpret_cast<u64>(t.key.data()), t.key.size(), false, abi::RegionKind::ReadOnly};
    const u64 fn = t.fn, map = reinterpret_cast<u64>(t.map), key = reinterpret_cast<u64>(t.key.data()),
              value = t.value;
    const void* raw = t.prog_raw;
    lk.unlock();
    runner.run_function(raw, fn, map, key, value, std::span<const abi::Region>(&key_region, 1));
    lk.lock();
    t.running = false;
    ++counts.fired;
    done.notify_all();
  }
}

TimerService::TimerService(AsyncRunner& runner) : impl_(std::make_unique<Impl>(runner)) {
  impl_->thread = std::thread([this] { impl_->loop(); });
}

TimerService::~TimerService() {
  Registry& reg = registry();
  {
    std::lock_guard lk(reg.mu);
    impl_->stop = true;
    impl_->wake.notify_all();
  }
  impl_->thread.join();
  std::vector<std::unique_ptr<Timer>> mine;
  {
    std::lock_guard lk(reg.mu);
    for (auto it = reg.by_token.begin(); it != reg.by_token.end();) {
      if (it->second->svc == impl_.get()) {
        mine.push_back(std::move(it->second));
        it = reg.by_token.erase(it);
      } else {
        ++it;
      }
    }
  }
  mine.clear();  // programs released outside the lock
}

TimerService::Counts TimerService::counts() const {
  std::lock_guard lk(registry().mu);
  Counts c = impl_->counts;
  c.armed = 0;
  for (const auto& [tok, t] : registry().by_token)
    if (t->svc == impl_.get() && t->armed) ++c.armed;
  return c;
}

namespace {

enum class Find : std::uint8_t { Mine, None, Foreign };

// The Timer whose struct bpf_timer is at `field` (registry lock held).
Find find_timer(u64 field, Timer*& out) {
  out = nullptr;
  const u64 tok = token_word(field).load(std::memory_order_acquire);
  if (tok == 0) return Find::None;
  auto& by = registry().by_token;
  const u64 pid = pid_of(tok);
  const bool ours = pid == static_cast<u64>(::getpid());  // a forked child inherits records it does not own
  if (auto it = by.find(tok); ours && it != by.end() && it->second->field == field) {
    out = it->second.get();
    return Find::Mine;
  }
  if (!ours && process_alive(pid)) return Find::Foreign;
  return Find::None;  // a stale token (its process or record is gone)
}

// Common entry checks: the service, the pointer (checked runs: inside a
// writable region; always 8-aligned). Returns false with r0 in `ret`.
bool timer_arg(abi::Env& env, std::string_view helper, u64 field, TimerService::Impl*& svc, u64& ret) {
  RunState* s = state(env);
  svc = TimerAccess::impl(s != nullptr ? s->timers : nullptr);
  if (svc == nullptr) {
    ret = neg(EOPNOTSUPP);  // no runtime timer thread (a bare interpreter run)
    return false;
  }
  if (!arg_mem(env, helper, "timer", field, kTimerSize, true)) {
    ret = 0;
    return false;
  }
  if (field == 0 || field % 8 != 0) {
    ret = neg(EINVAL);
    return false;
  }
  return true;
}

struct ElemSearch {
  u64 field;
  std::uint32_t key_size, value_size;
  std::int32_t timer_off;
  u64 value = 0;
  std::vector<std::uint8_t> key;
};

u64 match_elem(void* p, const void* key, void* value) {
  auto& s = *static_cast<ElemSearch*>(p);
  const auto v = reinterpret_cast<u64>(value);
  if (s.field < v || s.field >= v + s.value_size) return 0;
  if (s.field - v == static_cast<u64>(s.timer_off)) {
    s.value = v;
    const auto* k = static_cast<const std::uint8_t*>(key);
    s.key.assign(k, k + s.key_size);
  }
  return 1;
}

// long bpf_timer_init(struct bpf_timer *timer, struct bpf_map *map, u64 flags)
u64 timer_init(abi::Env& env, u64 field, u64 map, u64 flags, u64, u64) {
  TimerService::Impl* svc = nullptr;
  u64 ret = 0;
  if (!timer_arg(env, "timer_init", field, svc, ret)) return ret;
  const u64 clock = flags & (kMaxClocks - 1);
  if (flags >= kMaxClocks || (clock != CLOCK_MONOTONIC && clock != CLOCK_REALTIME && clock != CLOCK_BOOTTIME))
    return neg(EINVAL);
  maps::Map* m = arg_map(env, map);
  if (m == nullptr || m->timer_off() < 0) return neg(EINVAL);
  // the element that holds this timer (its key goes to the callback)
  ElemSearch search{field, m->key_size(), m->value_size(), m->timer_off(), 0, {}};
  m->for_each_elem(0, &match_elem, &search);
  if (search.value == 0) return neg(EINVAL);
  Registry& reg = registry();
  std::unique_ptr<Timer> retired;  // a stale record of this field, destroyed unlocked
  std::lock_guard lk(reg.mu);
  Timer* t = nullptr;
  const Find f = find_timer(field, t);
  if (f != Find::None) return neg(EBUSY);
  const u64 old = token_word(field).load(std::memory_order_acquire);
  if (auto it = reg.by_token.find(old); old != 0 && it != reg.by_token.end()) {
    retired = std::move(it->second);
    reg.by_token.erase(it);
    --retired->svc->counts.timers;
  }
  if (++reg.seq > 0xffffffffULL) reg.seq = 1;
  auto timer = std::make_unique<Timer>();
  timer->token = (static_cast<u64>(::getpid()) << 32) | reg.seq;
  timer->field = field;
  timer->map = m;
  timer->value = search.value;
  timer->key = std::move(search.key);
  timer->clock = static_cast<clockid_t>(clock);
  timer->svc = svc;
  u64 expected = old;
  // another process may initialise the same shared value at the same time
  if (!token_word(field).compare_exchange_strong(expected, timer->token, std::memory_order_acq_rel))
    return neg(EBUSY);
  ++svc->counts.timers;
  reg.by_token.emplace(timer->token, std::move(timer));
  return 0;
}

// Looks up an initialised timer of this process for set_callback / start /
// cancel; -EINVAL when not initialised, -EPERM when another process owns it.
Timer* own_timer(u64 field, u64& ret) {
  Timer* t = nullptr;
  switch (find_timer(field, t)) {
    case Find::Mine: return t;
    case Find::None: ret = neg(EINVAL); return nullptr;
    case Find::Foreign: ret = neg(EPERM); return nullptr;
  }
  return nullptr;
}

// long bpf_timer_set_callback(struct bpf_timer *timer, void *callback_fn)
u64 timer_set_callback(abi::Env& env, u64 field, u64 fn, u64, u64, u64) {
  TimerService::Impl* svc = nullptr;
  u64 ret = 0;
  if (!timer_arg(env, "timer_set_callback", field, svc, ret)) return ret;
  RunState* s = state(env);
  if (!abi::is_func_addr(fn) || abi::func_pc(fn) < s->func_base) return neg(EINVAL);
  const u64 own_fn = abi::func_addr(abi::func_pc(fn) - s->func_base);
  std::shared_ptr<const void> prog;
  {
    std::lock_guard lk(registry().mu);
    Timer* t = own_timer(field, ret);
    if (t == nullptr) return ret;
    if (t->prog_raw != s->prog) {
      prog = svc->runner.hold(s->prog);
      if (!prog) return neg(EPERM);
      std::swap(t->prog, prog);  // the old program is released below, unlocked
      t->prog_raw = s->prog;
    }
    t->fn = own_fn;
  }
  return 0;
}

// long bpf_timer_start(struct bpf_timer *timer, u64 nsecs, u64 flags)
u64 timer_start(abi::Env& env, u64 field, u64 nsecs, u64 flags, u64, u64) {
  TimerService::Impl* svc = nullptr;
  u64 ret = 0;
  if (!timer_arg(env, "timer_start", field, svc, ret)) return ret;
  if ((flags & ~(kTimerAbs | kTimerCpuPin)) != 0) return neg(EINVAL);
  std::lock_guard lk(registry().mu);
  Timer* t = own_timer(field, ret);
  if (t == nullptr) return ret;
  if (t->fn == 0 || !t->prog) return neg(EINVAL);
  const u64 now = clock_ns(CLOCK_MONOTONIC);
  u64 deadline = now + nsecs;
  if ((flags & kTimerAbs) != 0) {
    const u64 clock_now = t->clock == CLOCK_MONOTONIC ? now : clock_ns(t->clock);
    deadline = nsecs > clock_now ? now + (nsecs - clock_now) : now;
  }
  if (deadline < now) deadline = ~u64{0};  // overflow: never
  ++t->arm_seq;
  t->armed = true;
  t->svc->queue.emplace(deadline, t->token, t->arm_seq);
  t->svc->wake.notify_all();
  return 0;
}

// long bpf_timer_cancel(struct bpf_timer *timer)
u64 timer_cancel(abi::Env& env, u64 field, u64, u64, u64, u64) {
  TimerService::Impl* svc = nullptr;
  u64 ret = 0;
  if (!timer_arg(env, "timer_cancel", field, svc, ret)) return ret;
  std::shared_ptr<const void> dropped;  // released after the lock
  std::unique_lock lk(registry().mu);
  Timer* t = own_timer(field, ret);
  if (t == nullptr) return ret;
  // cancelling its own timer from the callback would wait for itself
  if (t->running && t->runner == std::this_thread::get_id()) return neg(EDEADLK);
  // the kernel drops the callback and its program (drop_prog_refcnt):
  // bpf_timer_start fails with -EINVAL until set_callback is called again
  dropped = std::move(t->prog);
  t->prog_raw = nullptr;
  t->fn = 0;
  // hrtimer_cancel: dequeue; if the callback runs elsewhere, wait for it
  // and dequeue again (it may have re-armed the timer)
  bool was_armed = false;
  ++t->waiters;
  for (;;) {
    if (t->armed) {
      was_armed = true;
      t->armed = false;
      ++t->arm_seq;
    }
    if (!t->running) break;
    t->svc->done.wait(lk);
  }
  --t->waiters;
  return was_armed ? 1 : 0;
}

constexpr Entry kTimers[] = {
    UBPF_HELPER_ENTRY(timer_init),
    UBPF_HELPER_ENTRY(timer_set_callback),
    UBPF_HELPER_ENTRY(timer_start),
    UBPF_HELPER_ENTRY(timer_cancel),
};

}  // namespace

std::span<const detail::Entry> detail::timer_entries() { return kTimers; }

}  // namespace userbpf::helpers
