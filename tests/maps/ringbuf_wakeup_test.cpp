// Ring-buffer wakeups are never lost (src/maps/ringbuf.cpp: producers
// commit with a plain store when their process is registered for
// membarrier; a consumer about to sleep issues the heavy fence). Each round
// the producer commits one record while the consumer is going to sleep in
// poll() with a long timeout, so the two race in every round: a lost wakeup
// shows as a poll() that takes its whole timeout (and then finds the record).
// Producers: a thread, and a second process that opens the pinned ring.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "../runtime/test_util.hpp"
#include "map_test_util.hpp"
#include "maps/registry.hpp"
#include "maps/ringbuf.hpp"
#include "maps/shm.hpp"

using namespace userbpf;
using namespace userbpf::maps;
using userbpf::testing::TempDir;

namespace {

constexpr std::uint32_t kRounds = 3000;
constexpr int kPollMs = 2000;  // far above any scheduling delay: a poll this long is a lost wakeup
constexpr std::uint32_t kGiveUp = ~0u;  // `ack` when the consumer stops early

// Consumes kRounds records, one poll() per record; `ack` (in shared memory)
// tells the producer which round the consumer has finished. Returns the
// number of polls that waited out their timeout.
int consume_rounds(Map& m, std::atomic<std::uint32_t>& ack, bool& in_order) {
  RingBufConsumer c;
  std::uint32_t expect = 1;
  in_order = true;
  c.add(m, [&](const void* p, std::size_t) {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    in_order = in_order && v == expect;
    ++expect;
    return 0;
  });
  int timeouts = 0;
  while (expect <= kRounds) {
    const auto t0 = std::chrono::steady_clock::now();
    const long n = c.poll(kPollMs);
    if (n <= 0 || std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(kPollMs)) {
      ++timeouts;
      if (timeouts > 1) break;
    }
    ack.store(expect - 1, std::memory_order_release);
  }
  if (expect <= kRounds) ack.store(kGiveUp, std::memory_order_release);
  return timeouts;
}

// Round i: wait until the consumer finished round i - 1, give it a moment
// to reach its sleep, then commit record i.
void produce_rounds(RingBuf& rb, const std::atomic<std::uint32_t>& ack) {
  for (std::uint32_t i = 1; i <= kRounds; ++i) {
    for (std::uint32_t a; (a = ack.load(std::memory_order_acquire)) != i - 1;) {
      if (a == kGiveUp) return;
      std::this_thread::yield();
    }
    for (std::uint32_t spin = (i * 7919u) % 512; spin > 0; --spin) __builtin_ia32_pause();  // vary the race
    ASSERT_EQ(rb.output(&i, 4, 0), 0);
  }
}

TEST(RingBufWakeup, ThreadProducerNeverLosesAWakeup) {
  TempDir d;
  auto m = test::make(d, test::spec(BPF_MAP_TYPE_RINGBUF, 0, 0, 1 << 14));
  ASSERT_TRUE(m);
  std::atomic<std::uint32_t> ack{0};
  std::thread producer([&] { produce_rounds(dynamic_cast<RingBuf&>(*m), ack); });
  bool in_order = false;
  const int timeouts = consume_rounds(*m, ack, in_order);
  producer.join();
  EXPECT_EQ(timeouts, 0) << "poll() waited out its timeout with a record committed: a lost wakeup";
  EXPECT_TRUE(in_order);
}

TEST(RingBufWakeup, ProcessProducerNeverLosesAWakeup) {
  TempDir d;
  auto m = test::make(d, test::spec(BPF_MAP_TYPE_RINGBUF, 0, 0, 1 << 14));
  ASSERT_TRUE(m);
  const std::string pin = d.path() + "/rb";
  ASSERT_TRUE(m->file().link(pin).ok());
  void* shared = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(shared, MAP_FAILED);
  auto* ack = new (shared) std::atomic<std::uint32_t>(0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    auto child = open_map(pin);
    if (!child.ok()) ::_exit(2);
    produce_rounds(dynamic_cast<RingBuf&>(**child), *ack);
    ::_exit(::testing::Test::HasFailure() ? 3 : 0);
  }
  ASSERT_GT(pid, 0);
  bool in_order = false;
  const int timeouts = consume_rounds(*m, *ack, in_order);
  if (timeouts != 0) ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_EQ(timeouts, 0) << "poll() waited out its timeout with a record committed: a lost wakeup";
  EXPECT_TRUE(in_order);
  if (timeouts == 0) {
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  ::munmap(shared, 4096);
}

}  // namespace
