// bpf_timer helpers (src/helpers/timer.cpp) beyond the kernel comparison of
// tests/realprogs/timer_run_test.cpp: unverified (checked) programs, the
// runtime's shutdown with a periodic timer armed (no hang, the program is
// released), and maps shared between processes (the initialising process
// owns the timer: -EBUSY / -EPERM elsewhere; a dead owner's timer can be
// initialised again). Programs are assembled here, one per operation
// (helpers by id: 1 map_lookup_elem, 169-172 timer_init .. timer_cancel); the
// map is made with MapSpec::timer_off (no BTF needed: the runs are
// unverified, so they are checked).
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "asm/asm.hpp"
#include "runtime/runtime.hpp"

namespace {

using namespace userbpf;

// value: u64 count @0, struct bpf_timer @8, s64 ret @24, u64 periodic @32
constexpr std::uint32_t kValueSize = 40;
struct Value {
  std::uint64_t count;
  std::uint64_t timer[2];
  std::int64_t ret;
  std::uint64_t periodic;
};
static_assert(sizeof(Value) == kValueSize);

// Resolves `goto LABEL` and `func(LABEL)` in kernel-syntax lines ("LABEL:" lines).
std::string resolve(const std::vector<std::string>& lines) {
  std::map<std::string, int> labels;
  std::vector<int> pos;
  int n = 0;
  for (const auto& l : lines) {
    if (l.back() == ':') {
      labels[l.substr(0, l.size() - 1)] = n;
      pos.push_back(-1);
      continue;
    }
    pos.push_back(n);
    n += l.size() > 3 && l.compare(l.size() - 3, 3, " ll") == 0 ? 2 : 1;
  }
  std::string out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (pos[i] < 0) continue;
    std::string l = lines[i];
    for (const auto& [name, at] : labels) {
      const std::string g = "goto " + name, f = "func(" + name + ")";
      if (const auto p = l.find(g); p != std::string::npos && p + g.size() == l.size())
        l = l.substr(0, p) + fmt::format("goto {:+d}", at - pos[i] - 1);
      if (const auto p = l.find(f); p != std::string::npos)
        l = l.substr(0, p) + fmt::format("func(+{:#x})", at - pos[i] - 1) + l.substr(p + f.size());
    }
    out += l + "\n";
  }
  return out;
}

// Start arms for 1 ms; StartLong for 1 s, for checks that need the timer
// still armed at the next run (a sanitizer build can take over 1 ms between
// two runs).
enum class Op { Init, SetCallback, Start, StartLong, Cancel };

// Looks up `key` of map handle `map`, runs one timer helper on its timer,
// stores r0 in the value's `ret`; the callback counts and re-arms itself
// (1 ms) while `periodic` is set.
std::string program(Op op, int map, int key) {
  std::vector<std::string> v = {fmt::format("r1 = {}", key), "*(u32 *)(r10 - 4) = r1",
                                fmt::format("r1 = map_fd({}) ll", map), "r2 = r10", "r2 += -4",
                                "call 1", "if r0 == 0 goto out", "r6 = r0", "r1 = r6", "r1 += 8"};
  switch (op) {
    case Op::Init: v.insert(v.end(), {fmt::format("r2 = map_fd({}) ll", map), "r3 = 1", "call 169"}); break;
    case Op::SetCallback: v.insert(v.end(), {"r2 = func(cb) ll", "call 170"}); break;
    case Op::Start: v.insert(v.end(), {"r2 = 1000000", "r3 = 0", "call 171"}); break;
    case Op::StartLong: v.insert(v.end(), {"r2 = 1000000000", "r3 = 0", "call 171"}); break;
    case Op::Cancel: v.insert(v.end(), {"call 172"}); break;
  }
  v.insert(v.end(), {"*(u64 *)(r6 + 24) = r0", "out:", "r0 = 2", "exit", "cb:", "r6 = r3", "r1 = *(u64 *)(r6 + 0)",
                     "r1 += 1", "*(u64 *)(r6 + 0) = r1", "r1 = *(u64 *)(r6 + 32)", "if r1 == 0 goto cbout",
                     "r1 = r6", "r1 += 8", "r2 = 1000000", "r3 = 0", "call 171", "cbout:", "r0 = 0",
                     "exit"});
  return resolve(v);
}

struct Fixture {
  explicit Fixture(const std::string& pin_dir) {
    runtime::Options o;
    o.pin_dir = pin_dir;
    o.verify = false;  // unverified: checked runs, no BTF needed
    rt = std::make_unique<runtime::Runtime>(o);
  }
  std::unique_ptr<runtime::Runtime> rt;
  int map = -1;

  int create_map(std::uint32_t type) {
    maps::MapSpec s;
    s.type = type;
    s.key_size = 4;
    s.value_size = kValueSize;
    s.max_entries = 4;
    s.name = "timers";
    s.timer_off = 8;
    auto h = rt->map_create(s);
    return map = h.ok() ? *h : -1;
  }
  // Runs `op` on `key`; returns the helper's r0 (the value's ret).
  std::int64_t run(Op op, int key, int* prog_out = nullptr) {
    auto code = assembly::assemble(program(op, map, key));
    if (!code.ok()) {
      ADD_FAILURE() << code.error().to_string();
      return -1000;
    }
    const auto raw = isa::encode(*code);
    runtime::ProgSpec ps;
    ps.type = BPF_PROG_TYPE_XDP;
    ps.name = "timer_op";
    ps.insns = raw;
    auto h = rt->prog_load(ps);
    if (!h.ok()) {
      ADD_FAILURE() << h.error().to_string();
      return -1000;
    }
    const std::vector<std::uint8_t> pkt(64, 0);
    runtime::TestRunArgs a;
    a.data_in = pkt;
    auto r = rt->test_run(*h, a);
    if (!r.ok() || r->retval != XDP_PASS) ADD_FAILURE() << (r.ok() ? "retval" : r.error().to_string());
    if (prog_out != nullptr) *prog_out = *h;
    else (void)rt->close(*h);
    return value(key).ret;
  }
  Value value(int key) {
    Value v{};
    auto m = rt->get_map(map);
    const auto k = static_cast<std::uint32_t>(key);
    EXPECT_EQ(m->map->lookup(&k, &v, 0), 0);
    return v;
  }
  void set_periodic(int key, bool on) {
    auto m = rt->get_map(map);
    // the host cannot write the value without resetting the timer: write
    // `periodic` through the program's view of the element
    const auto k = static_cast<std::uint32_t>(key);
    auto* v = static_cast<Value*>(m->map->prog_lookup(&k, 0));
    __atomic_store_n(&v->periodic, on ? 1 : 0, __ATOMIC_RELAXED);
  }
};

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

class TimerHelpers : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/userbpf-timerh-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(TimerHelpers, UnverifiedCheckedRunsFireOnce) {
  Fixture f(dir_);
  ASSERT_GE(f.create_map(BPF_MAP_TYPE_ARRAY), 0);
  EXPECT_EQ(f.run(Op::Start, 0), -EINVAL);  // not initialised
  EXPECT_EQ(f.run(Op::Init, 0), 0);
  EXPECT_EQ(f.run(Op::Init, 0), -EBUSY);
  EXPECT_EQ(f.run(Op::Start, 0), -EINVAL);  // no callback yet
  EXPECT_EQ(f.run(Op::SetCallback, 0), 0);
  EXPECT_EQ(f.run(Op::Start, 0), 0);
  for (int i = 0; i < 300 && f.value(0).count == 0; ++i) sleep_ms(10);
  sleep_ms(20);
  EXPECT_EQ(f.value(0).count, 1u);
  EXPECT_EQ(f.value(0).timer[0], 0u) << "host lookups read the timer as zeros";
  const auto c = f.rt->timer_service()->counts();
  EXPECT_EQ(c.fired, 1u);
  EXPECT_EQ(c.timers, 1u);
  EXPECT_EQ(c.armed, 0u);
}

TEST_F(TimerHelpers, MapTypesWithoutTimers) {
  Fixture f(dir_);
  EXPECT_LT(f.create_map(BPF_MAP_TYPE_PERCPU_ARRAY), 0);  // EOPNOTSUPP, as map_check_btf
  EXPECT_GE(f.create_map(BPF_MAP_TYPE_LRU_HASH), 0);
}

TEST_F(TimerHelpers, RuntimeEndsWithPeriodicTimerArmed) {
  std::weak_ptr<runtime::ProgObject> prog;
  {
    Fixture f(dir_);
    ASSERT_GE(f.create_map(BPF_MAP_TYPE_ARRAY), 0);
    ASSERT_EQ(f.run(Op::Init, 1), 0);
    int h = -1;
    ASSERT_EQ(f.run(Op::SetCallback, 1, &h), 0);
    prog = f.rt->get_prog(h);
    ASSERT_EQ(f.rt->close(h).ok(), true);
    f.set_periodic(1, true);
    ASSERT_EQ(f.run(Op::Start, 1), 0);
    for (int i = 0; i < 300 && f.value(1).count < 3; ++i) sleep_ms(10);
    EXPECT_GE(f.value(1).count, 3u);
    EXPECT_FALSE(prog.expired()) << "the armed timer holds its program";
    EXPECT_EQ(f.rt->timer_service()->counts().armed, 1u);
  }  // ~Runtime stops the timer thread first
  EXPECT_TRUE(prog.expired()) << "the program was released with the timers";
}

TEST_F(TimerHelpers, CancelReleasesTheCallbackAndWaits) {
  Fixture f(dir_);
  ASSERT_GE(f.create_map(BPF_MAP_TYPE_HASH), 0);
  const std::uint32_t key = 2;
  const Value zero{};
  ASSERT_EQ(f.rt->get_map(f.map)->map->update(&key, &zero, 0), 0);
  ASSERT_EQ(f.run(Op::Init, 2), 0);
  ASSERT_EQ(f.run(Op::SetCallback, 2), 0);
  f.set_periodic(2, true);
  ASSERT_EQ(f.run(Op::Start, 2), 0);
  for (int i = 0; i < 300 && f.value(2).count < 2; ++i) sleep_ms(10);
  EXPECT_EQ(f.run(Op::Cancel, 2), 1);  // armed (or re-armed by a running callback)
  const std::uint64_t n = f.value(2).count;
  sleep_ms(30);
  EXPECT_EQ(f.value(2).count, n) << "no run after cancel";
  EXPECT_EQ(f.run(Op::Start, 2), -EINVAL) << "cancel dropped the callback";
  EXPECT_EQ(f.run(Op::Cancel, 2), 0);
}

// The child's view of a timer the parent owns, as an exit code: bit 0 init
// was -EBUSY, bit 1 start was -EPERM, bit 2 cancel was -EPERM, bit 3 the
// child could init key 3 (to die owning it).
int child_checks(const std::string& dir, const std::string& pin) {
  Fixture f(dir);
  auto h = f.rt->get_pinned(pin);
  if (!h.ok()) return 100;
  f.map = *h;
  int code = 0;
  if (f.run(Op::Init, 0) == -EBUSY) code |= 1;
  if (f.run(Op::Start, 0) == -EPERM) code |= 2;
  if (f.run(Op::Cancel, 0) == -EPERM) code |= 4;
  if (f.run(Op::Init, 3) == 0) code |= 8;
  return code;
}

TEST_F(TimerHelpers, TheInitialisingProcessOwnsTheTimer) {
  Fixture f(dir_);
  ASSERT_GE(f.create_map(BPF_MAP_TYPE_ARRAY), 0);
  const std::string pin = dir_ + "/timers";
  ASSERT_TRUE(f.rt->pin(f.map, pin).ok());
  ASSERT_EQ(f.run(Op::Init, 0), 0);
  ASSERT_EQ(f.run(Op::SetCallback, 0), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const int code = child_checks(dir_, pin);
    std::fflush(nullptr);
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 15) << "bits: 1 init -EBUSY, 2 start -EPERM, 4 cancel -EPERM, 8 init key 3";
  // the parent still owns key 0; key 3's owner is gone: it can be taken over
  EXPECT_EQ(f.run(Op::StartLong, 0), 0);
  EXPECT_EQ(f.run(Op::Cancel, 0), 1);
  EXPECT_EQ(f.run(Op::Init, 3), 0);
}

}  // namespace
