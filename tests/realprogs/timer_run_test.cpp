// bpf_timer end to end (progs/timer.bpf.c): the same clang-built XDP program
// arms, cancels, re-arms and deletes timers in userbpf's runtime (JIT and
// interpreter) and in the kernel (BPF_PROG_TEST_RUN + the kernel's timers);
// every scenario's observations (helper return codes, callback counts) must
// be the expected ones and identical in all three. The kernel part is
// skipped with the reason where the kernel's BPF is unavailable.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "loader/loader.hpp"
#include "oracle/oracle.hpp"
#include "runtime/runtime.hpp"
#include "verifier/object_config.hpp"

namespace {

using namespace userbpf;

const std::string kObj = std::string(REALPROGS_DIR) + "/timer.bpf.o";

struct Elem {  // struct elem of timer.bpf.c
  std::uint64_t count;
  std::uint64_t timer[2];
  std::uint64_t rearm;
  std::int64_t cb_ret;
  std::uint32_t mode;
  std::uint32_t which;
};
static_assert(sizeof(Elem) == 48);

// What a scenario can do: run the program on a packet, read/write maps.
struct Backend {
  std::function<int(std::vector<std::uint8_t> pkt)> run;  // retval (-1: error)
  std::function<std::int64_t(std::uint32_t slot)> result;
  std::function<std::uint64_t(std::uint32_t idx)> fired;
  std::function<bool(std::uint32_t key, Elem& e)> array_elem;
  std::function<bool(std::uint32_t key, const Elem* e)> hash_put;  // null: delete
};

std::vector<std::uint8_t> pkt(int op, int key, int rearm = 0, int map = 0, int mode = 0) {
  std::vector<std::uint8_t> p(64, 0);
  p[0] = static_cast<std::uint8_t>(op);
  p[1] = static_cast<std::uint8_t>(key);
  p[2] = static_cast<std::uint8_t>(rearm);
  p[3] = static_cast<std::uint8_t>(map);
  p[4] = static_cast<std::uint8_t>(mode);
  return p;
}

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// Waits up to 3 s for fired(idx) to reach n, then 30 ms more (no extra runs).
std::uint64_t wait_fired(Backend& b, std::uint32_t idx, std::uint64_t n) {
  for (int i = 0; i < 300 && b.fired(idx) < n; ++i) sleep_ms(10);
  sleep_ms(30);
  return b.fired(idx);
}

// Every scenario, as lines of observations.
std::vector<std::string> scenarios(Backend& b) {
  std::vector<std::string> out;
  auto res = [&](int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += fmt::format("{}{}", i ? "," : "", b.result(static_cast<std::uint32_t>(i)));
    return s;
  };
  // runs first, then reads the results (argument order is unspecified)
  auto op = [&](const std::vector<std::uint8_t>& p, std::uint32_t slot) {
    const int x = b.run(p);
    return fmt::format("xdp={} ret={}", x, b.result(slot));
  };
  auto op3 = [&](const std::vector<std::uint8_t>& p) {
    const int x = b.run(p);
    return fmt::format("xdp={} rets={}", x, res(3));
  };
  // once: a 1 ms timer whose callback increments the value, fires once
  out.push_back("once: " + op3(pkt(1, 0)));
  out.push_back(fmt::format("once: fired={}", wait_fired(b, 0, 1)));
  Elem e{};
  b.array_elem(0, e);
  out.push_back(fmt::format("once: count={} rearm={}", e.count, e.rearm));
  // errors on an initialised timer and on an uninitialised one
  out.push_back("init again: " + op(pkt(3, 0), 0));
  out.push_back("bad start flags: " + op(pkt(6, 0), 2));
  out.push_back("cancel idle: " + op(pkt(2, 0), 3));
  out.push_back("uninit start: " + op(pkt(4, 3), 2));
  out.push_back("uninit set_callback: " + op(pkt(5, 3), 1));
  out.push_back("uninit cancel: " + op(pkt(2, 3), 3));
  out.push_back("bad clock: " + op(pkt(7, 3), 0));
  // cancel before expiry: 1 (it was armed), then nothing fires
  b.run(pkt(1, 1));
  out.push_back("cancel armed: " + op(pkt(2, 1), 3));
  sleep_ms(40);
  out.push_back(fmt::format("cancel armed: fired={}", b.fired(1)));
  // periodic: re-armed from the callback 4 times: 5 runs
  b.run(pkt(1, 2, 4));
  const std::string periodic = res(3);
  out.push_back(fmt::format("periodic: rets={} fired={}", periodic, wait_fired(b, 2, 5)));
  b.array_elem(2, e);
  out.push_back(fmt::format("periodic: count={} rearm={}", e.count, e.rearm));
  // bpf_timer_cancel dropped the callback: start fails until it is set again
  out.push_back("start after cancel: " + op(pkt(4, 1), 2));
  out.push_back("set_callback after cancel: " + op(pkt(5, 1), 1));
  // an absolute deadline (BPF_F_TIMER_ABS) on the timer of key 1
  const std::string abs = op(pkt(8, 1), 2);
  out.push_back(fmt::format("abs: {} fired={}", abs, wait_fired(b, 1, 1)));
  // the callback cancels its own timer: -EDEADLK
  b.run(pkt(1, 3, 0, 0, 1));
  const std::string self = res(3);
  out.push_back(fmt::format("self cancel: rets={} fired={}", self, wait_fired(b, 3, 1)));
  b.array_elem(3, e);
  out.push_back(fmt::format("self cancel: cb_ret={}", e.cb_ret));
  // hash: delete the element while its timer is armed: the callback never runs
  Elem zero{};
  b.hash_put(0, &zero);
  out.push_back("hash delete: " + op3(pkt(1, 0, 0, 1)));
  b.hash_put(0, nullptr);
  sleep_ms(40);
  out.push_back(fmt::format("hash delete: fired={}", b.fired(4)));
  // hash: a timer that is left alone fires
  b.hash_put(1, &zero);
  b.run(pkt(1, 1, 0, 1));
  const std::string hash_once = res(3);
  out.push_back(fmt::format("hash once: rets={} fired={}", hash_once, wait_fired(b, 5, 1)));
  // overwriting the value from the host cancels the timer
  b.hash_put(2, &zero);
  b.run(pkt(1, 2, 0, 1));
  b.hash_put(2, &zero);
  sleep_ms(40);
  out.push_back(fmt::format("hash overwrite: fired={}", b.fired(6)));
  out.push_back("hash overwrite: init again " + op(pkt(3, 2, 0, 1), 0));
  return out;
}

std::vector<std::string> run_userbpf(runtime::Engine engine) {
  loader::OpenOptions oo;
  oo.use_vmlinux_btf = false;
  auto obj = loader::Object::open(kObj, oo);
  if (!obj.ok()) return {"open: " + obj.error().to_string()};
  char tmpl[] = "/tmp/userbpf-timer-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  std::vector<std::string> out;
  {
    runtime::Options o;
    o.pin_dir = dir;
    o.engine = engine;
    runtime::Runtime rt(o);
    auto loaded = rt.load_object(*obj);
    if (!loaded.ok()) return {"load: " + loaded.error().to_string()};
    auto map = [&](const char* name) {
      for (const auto& [n, h] : loaded->maps)
        if (n == name) return rt.get_map(h);
      return std::shared_ptr<runtime::MapObject>();
    };
    auto results = map("results"), fired = map("fired"), atimers = map("atimers"), htimers = map("htimers");
    int prog = -1;
    for (const auto& [n, h] : loaded->progs)
      if (n == "xdp_timer") prog = h;
    Backend b;
    b.run = [&](std::vector<std::uint8_t> p) {
      runtime::TestRunArgs a;
      a.data_in = p;
      auto r = rt.test_run(prog, a);
      return r.ok() ? static_cast<int>(r->retval) : -1;
    };
    b.result = [&](std::uint32_t s) {
      std::int64_t v = 0;
      (void)results->map->lookup(&s, &v, 0);
      return v;
    };
    // Callbacks run on the timer thread: counters are read atomically (the
    // callback adds atomically), whole values only after taking the timer
    // service's lock, which every finished callback released (TSan-clean).
    b.fired = [&](std::uint32_t s) {
      const auto* v = static_cast<const std::uint64_t*>(fired->map->prog_lookup(&s, 0));
      return v != nullptr ? __atomic_load_n(v, __ATOMIC_ACQUIRE) : 0;
    };
    b.array_elem = [&](std::uint32_t k, Elem& e) {
      (void)rt.timer_service()->counts();
      return atimers->map->lookup(&k, &e, 0) == 0;
    };
    b.hash_put = [&](std::uint32_t k, const Elem* e) {
      return (e != nullptr ? htimers->map->update(&k, e, 0) : htimers->map->remove(&k)) == 0;
    };
    out = scenarios(b);
  }  // the runtime stops its timers first
  std::filesystem::remove_all(dir);
  return out;
}

std::vector<std::string> run_kernel() {
  libbpf_set_print(nullptr);
  bpf_object* kobj = bpf_object__open_file(kObj.c_str(), nullptr);
  if (kobj == nullptr) return {"open failed"};
  if (bpf_object__load(kobj) != 0) {
    bpf_object__close(kobj);
    return {"the kernel refused the object"};
  }
  const int results = bpf_object__find_map_fd_by_name(kobj, "results");
  const int fired = bpf_object__find_map_fd_by_name(kobj, "fired");
  const int atimers = bpf_object__find_map_fd_by_name(kobj, "atimers");
  const int htimers = bpf_object__find_map_fd_by_name(kobj, "htimers");
  const int prog = bpf_program__fd(bpf_object__find_program_by_name(kobj, "xdp_timer"));
  Backend b;
  b.run = [&](std::vector<std::uint8_t> p) {
    LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = p.data(), .data_size_in = static_cast<__u32>(p.size()));
    return bpf_prog_test_run_opts(prog, &t) == 0 ? static_cast<int>(t.retval) : -1;
  };
  b.result = [&](std::uint32_t s) {
    std::int64_t v = 0;
    (void)bpf_map_lookup_elem(results, &s, &v);
    return v;
  };
  b.fired = [&](std::uint32_t s) {
    std::uint64_t v = 0;
    (void)bpf_map_lookup_elem(fired, &s, &v);
    return v;
  };
  b.array_elem = [&](std::uint32_t k, Elem& e) { return bpf_map_lookup_elem(atimers, &k, &e) == 0; };
  b.hash_put = [&](std::uint32_t k, const Elem* e) {
    return (e != nullptr ? bpf_map_update_elem(htimers, &k, e, 0) : bpf_map_delete_elem(htimers, &k)) == 0;
  };
  auto out = scenarios(b);
  bpf_object__close(kobj);
  return out;
}

const std::vector<std::string> kExpected = {
    "once: xdp=2 rets=0,0,0",
    "once: fired=1",
    "once: count=1 rearm=0",
    "init again: xdp=2 ret=-16",
    "bad start flags: xdp=2 ret=-22",
    "cancel idle: xdp=2 ret=0",
    "uninit start: xdp=2 ret=-22",
    "uninit set_callback: xdp=2 ret=-22",
    "uninit cancel: xdp=2 ret=-22",
    "bad clock: xdp=2 ret=-22",
    "cancel armed: xdp=2 ret=1",
    "cancel armed: fired=0",
    "periodic: rets=0,0,0 fired=5",
    "periodic: count=5 rearm=0",
    "start after cancel: xdp=2 ret=-22",
    "set_callback after cancel: xdp=2 ret=0",
    "abs: xdp=2 ret=0 fired=1",
    "self cancel: rets=0,0,0 fired=1",
    "self cancel: cb_ret=-35",
    "hash delete: xdp=2 rets=0,0,0",
    "hash delete: fired=0",
    "hash once: rets=0,0,0 fired=1",
    "hash overwrite: fired=0",
    "hash overwrite: init again xdp=2 ret=0",
};

TEST(TimerRun, Interpreter) { EXPECT_EQ(run_userbpf(runtime::Engine::Interpreter), kExpected); }

TEST(TimerRun, Jit) { EXPECT_EQ(run_userbpf(runtime::Engine::Jit), kExpected); }

TEST(TimerRun, Kernel) {
  const auto& av = oracle::available();
  if (!av.ok) GTEST_SKIP() << "kernel part skipped: " << av.reason;
  EXPECT_EQ(run_kernel(), kExpected);
}

}  // namespace
