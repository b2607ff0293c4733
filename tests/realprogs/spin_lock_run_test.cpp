// bpf_spin_lock through the runtime: progs/spin_lock.bpf.c's tc_locked_count
// loads through load_object (the map's spin-lock offset comes from its value
// BTF at map creation and reaches the verifier) and runs in two threads at
// once on packets of one protocol, so both update one map value under its
// lock: no update may be lost (packets and bytes add up exactly), in the
// interpreter and in the JIT.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "loader/loader.hpp"
#include "runtime/runtime.hpp"
#include "verifier/object_config.hpp"

namespace {

using namespace userbpf;

const std::string kObj = std::string(REALPROGS_DIR) + "/spin_lock.bpf.o";

struct Counter {  // struct counter of the program
  std::uint32_t lock;
  std::uint32_t packets;
  std::uint64_t bytes;
};

void run_two_threads(runtime::Engine engine) {
  loader::OpenOptions oo;
  oo.use_vmlinux_btf = false;
  auto obj = loader::Object::open(kObj, oo);
  ASSERT_TRUE(obj.ok()) << obj.error().to_string();
  char tmpl[] = "/tmp/userbpf-spinlock-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  runtime::Options o;
  o.pin_dir = dir;
  o.engine = engine;
  runtime::Runtime rt(o);
  auto loaded = rt.load_object(*obj);
  ASSERT_TRUE(loaded.ok()) << loaded.error().to_string();
  int prog = -1, map = -1;
  for (const auto& [n, h] : loaded->progs)
    if (n == "tc_locked_count") prog = h;
  for (const auto& [n, h] : loaded->maps)
    if (n == "counters") map = h;
  ASSERT_GE(prog, 0) << "tc_locked_count not loaded";
  ASSERT_GE(map, 0);
  auto m = rt.get_map(map);
  ASSERT_EQ(m->map->spin_lock_off(), 0) << "the value's struct bpf_spin_lock is at offset 0";

  // IPv4 frames of 60 bytes: skb->protocol 0x0800 -> one key for every run
  std::vector<std::uint8_t> pkt(60, 0);
  pkt[12] = 0x08;
  pkt[14] = 0x45;
  constexpr int kRuns = 20000;
  auto worker = [&](int* failures) {
    runtime::TestRunArgs a;
    a.data_in = pkt;
    for (int i = 0; i < kRuns; ++i)
      if (!rt.test_run(prog, a).ok()) ++*failures;
  };
  int f1 = 0, f2 = 0;
  std::thread t1(worker, &f1), t2(worker, &f2);
  t1.join();
  t2.join();
  EXPECT_EQ(f1 + f2, 0);
  // the first run of each thread may both create the entry (BPF_NOEXIST: one wins)
  std::vector<std::uint32_t> keys;
  std::uint32_t k = 0, next = 0;
  const std::uint32_t* cur = nullptr;
  while (m->map->get_next_key(cur, &next) == 0) {
    keys.push_back(next);
    k = next;
    cur = &k;
  }
  ASSERT_EQ(keys.size(), 1u) << "one protocol, one key";
  const std::uint32_t key = keys[0];
  Counter c{};
  ASSERT_EQ(m->map->lookup(&key, &c, 0), 0);
  EXPECT_EQ(c.packets, 2u * kRuns) << "an update under the lock was lost";
  EXPECT_EQ(c.bytes, 2ull * kRuns * pkt.size());
}

TEST(SpinLockRun, TwoThreadsLoseNoUpdateJit) { run_two_threads(runtime::Engine::Jit); }
TEST(SpinLockRun, TwoThreadsLoseNoUpdateInterpreter) { run_two_threads(runtime::Engine::Interpreter); }

}  // namespace
