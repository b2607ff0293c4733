// Concurrency of the issue-6 map types: threads and two processes updating
// one map lose nothing (LRU hash, LRU per-CPU hash, LPM trie, queue, bloom
// filter), eviction under contention keeps the map consistent. Also built
// with -DUSERBPF_SANITIZE=thread.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <set>
#include <thread>
#include <vector>

#include "../runtime/test_util.hpp"
#include "map_test_util.hpp"
#include "maps/map.hpp"
#include "maps/shm.hpp"

using namespace userbpf;
using namespace userbpf::maps;
using userbpf::testing::TempDir;
using userbpf::maps::test::spec;

namespace {

using userbpf::maps::test::make;

#if defined(__SANITIZE_THREAD__)
constexpr int kScale = 10;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr int kScale = 10;
#else
constexpr int kScale = 1;
#endif
#else
constexpr int kScale = 1;
#endif

// Each worker (thread or process) inserts its own keys and bumps shared
// counters through program lookups (atomic adds, as programs do).
void lru_worker(Map& m, std::uint32_t id, std::uint32_t nkeys) {
  for (std::uint32_t i = 0; i < nkeys; ++i) {
    const std::uint32_t k = id * 1000000 + i;
    const std::uint64_t zero = 0;
    EXPECT_EQ(m.prog_update(&k, &zero, BPF_NOEXIST, 0), 0);
    const std::uint32_t shared = i % 16;
    auto* c = static_cast<std::uint64_t*>(m.prog_lookup(&shared, 0));
    if (c != nullptr) std::atomic_ref<std::uint64_t>(*c).fetch_add(1);
  }
}

}  // namespace

TEST(MapConcurrency, LruThreadsAndProcessesLoseNothing) {
  TempDir d;
  const std::uint32_t per = 20000 / static_cast<std::uint32_t>(kScale);
  auto m = make(d, spec(BPF_MAP_TYPE_LRU_HASH, 4, 8, 4 * per + 64));
  ASSERT_TRUE(m);
  for (std::uint32_t k = 0; k < 16; ++k) {
    const std::uint64_t zero = 0;
    ASSERT_EQ(m->update(&k, &zero, BPF_ANY), 0);
  }
  const std::string pin = d.path() + "/lru";
  ASSERT_TRUE(m->file().link(pin).ok());
  const pid_t pid = ::fork();
  if (pid == 0) {
    auto other = open_map(pin);
    if (!other.ok()) ::_exit(2);
    std::thread t([&] { lru_worker(**other, 3, per); });
    lru_worker(**other, 4, per);
    t.join();
    ::_exit(::testing::Test::HasFailure() ? 1 : 0);
  }
  std::thread t([&] { lru_worker(*m, 1, per); });
  lru_worker(*m, 2, per);
  t.join();
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // nothing evicted (room for all), every key there, every add counted
  for (std::uint32_t id = 1; id <= 4; ++id)
    for (std::uint32_t i = 0; i < per; ++i) {
      const std::uint32_t k = id * 1000000 + i;
      std::uint64_t v = 1;
      ASSERT_EQ(m->lookup(&k, &v, 0), 0) << k;
    }
  std::uint64_t sum = 0;
  for (std::uint32_t k = 0; k < 16; ++k) {
    std::uint64_t v = 0;
    ASSERT_EQ(m->lookup(&k, &v, 0), 0);
    sum += v;
  }
  EXPECT_EQ(sum, 4ull * per);
}

TEST(MapConcurrency, LruEvictionUnderContentionStaysConsistent) {
  TempDir d;
  for (std::uint32_t flags : {0u, static_cast<std::uint32_t>(BPF_F_NO_COMMON_LRU)}) {
    auto m = make(d, spec(BPF_MAP_TYPE_LRU_HASH, 4, 8, 256, flags));
    ASSERT_TRUE(m);
    std::vector<std::thread> ts;
    for (std::uint32_t t = 0; t < 4; ++t)
      ts.emplace_back([&, t] {
        for (std::uint32_t i = 0; i < 40000u / static_cast<std::uint32_t>(kScale); ++i) {
          const std::uint32_t k = (i * 7919u + t * 104729u) % 5000;
          const std::uint64_t v = std::uint64_t{k} * 3;
          switch (i % 4) {
            case 0:
            case 1:
              EXPECT_EQ(m->prog_update(&k, &v, BPF_ANY, 0), 0);
              break;
            case 2: {
              auto* p = static_cast<std::uint64_t*>(m->prog_lookup(&k, 0));
              (void)p;
              break;
            }
            default:
              (void)m->remove(&k);
          }
        }
      });
    for (auto& t : ts) t.join();
    // every key present maps to its own value; never more than max_entries
    std::uint32_t n = 0, cur = 0, next = 0;
    const void* prev = nullptr;
    std::set<std::uint32_t> seen;
    while (m->get_next_key(prev, &next) == 0 && n < 1000) {
      std::uint64_t v = 0;
      ASSERT_EQ(m->lookup(&next, &v, 0), 0);
      EXPECT_EQ(v, std::uint64_t{next} * 3);
      EXPECT_TRUE(seen.insert(next).second);
      ++n;
      cur = next;
      prev = &cur;
    }
    EXPECT_LE(n, 256u);
    EXPECT_GT(n, 0u);
    // and it still fills up to capacity (common LRU: the new keys evict all
    // the old ones; per-CPU lists evict from the caller's CPU list first)
    if (flags != 0) continue;
    for (std::uint32_t k = 100000; k < 100256; ++k) {
      const std::uint64_t v = std::uint64_t{k} * 3;
      ASSERT_EQ(m->update(&k, &v, BPF_ANY), 0);
    }
    for (std::uint32_t k = 100000; k < 100256; ++k) {
      std::uint64_t v = 0;
      EXPECT_EQ(m->lookup(&k, &v, 0), 0) << k << " flags " << flags;
    }
  }
}

TEST(MapConcurrency, LruPerCpuSlotsAreIndependent) {
  TempDir d;
  MapSpec s = spec(BPF_MAP_TYPE_LRU_PERCPU_HASH, 4, 8, 64);
  s.ncpus = 4;
  auto m = make(d, s);
  ASSERT_TRUE(m);
  const std::uint32_t k = 1;
  const std::uint64_t zero = 0;
  ASSERT_EQ(m->update(&k, std::vector<std::uint64_t>(4, 0).data(), BPF_ANY), 0);
  (void)zero;
  const int per = 100000 / kScale;
  std::vector<std::thread> ts;
  for (std::uint32_t cpu = 0; cpu < 4; ++cpu)
    ts.emplace_back([&, cpu] {
      for (int i = 0; i < per; ++i) {
        auto* p = static_cast<std::uint64_t*>(m->lookup_percpu(&k, cpu));
        ASSERT_NE(p, nullptr);
        ++*p;  // a CPU slot is owned by one run at a time: no atomics needed
      }
    });
  for (auto& t : ts) t.join();
  std::uint64_t all[4];
  ASSERT_EQ(m->lookup(&k, all, 0), 0);
  for (std::uint64_t v : all) EXPECT_EQ(v, static_cast<std::uint64_t>(per));
}

TEST(MapConcurrency, LpmWritersAndReaders) {
  TempDir d;
  auto m = make(d, spec(BPF_MAP_TYPE_LPM_TRIE, 8, 4, 4096, BPF_F_NO_PREALLOC));
  ASSERT_TRUE(m);
  struct K {
    std::uint32_t plen;
    std::uint8_t d[4];
  };
  K def{8, {10, 0, 0, 0}};
  std::uint32_t dv = 8;
  ASSERT_EQ(m->update(&def, &dv, BPF_ANY), 0);
  std::atomic<bool> stop{false};
  std::atomic<long> bad{0};
  std::thread reader([&] {
    while (!stop) {
      for (std::uint32_t a = 0; a < 64; ++a) {
        K q{32, {10, static_cast<std::uint8_t>(a), 1, 1}};
        std::uint32_t v = 0;
        // the /8 default is always there: a lookup never fails, and finds a /16 or the /8
        if (m->lookup(&q, &v, 0) != 0 || (v != 8 && v != 16 + a)) bad.fetch_add(1);
      }
    }
  });
  std::vector<std::thread> ws;
  for (std::uint32_t w = 0; w < 2; ++w)
    ws.emplace_back([&, w] {
      for (int round = 0; round < 2000 / kScale; ++round)
        for (std::uint32_t a = w; a < 64; a += 2) {
          K k{16, {10, static_cast<std::uint8_t>(a), 0, 0}};
          const std::uint32_t v = 16 + a;
          if (round % 2 == 0) EXPECT_EQ(m->update(&k, &v, BPF_NOEXIST), 0);
          else EXPECT_EQ(m->remove(&k), 0);
        }
    });
  for (auto& t : ws) t.join();
  stop = true;
  reader.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(MapConcurrency, QueueProducersConsumersExactlyOnce) {
  TempDir d;
  auto q = make(d, spec(BPF_MAP_TYPE_QUEUE, 0, 4, 128));
  ASSERT_TRUE(q);
  const std::uint32_t per = 50000u / static_cast<std::uint32_t>(kScale);
  std::vector<std::atomic<std::uint8_t>> got(2 * per);
  std::atomic<std::uint32_t> popped{0};
  std::vector<std::thread> ts;
  for (std::uint32_t p = 0; p < 2; ++p)
    ts.emplace_back([&, p] {
      for (std::uint32_t i = 0; i < per;) {
        const std::uint32_t v = p * per + i;
        if (q->push(&v, BPF_ANY) == 0) ++i;
        else std::this_thread::yield();
      }
    });
  for (int c = 0; c < 2; ++c)
    ts.emplace_back([&] {
      while (popped.load() < 2 * per) {
        std::uint32_t v;
        if (q->pop(&v) == 0) {
          got[v].fetch_add(1);
          popped.fetch_add(1);
        } else {
          std::this_thread::yield();
        }
      }
    });
  for (auto& t : ts) t.join();
  for (std::uint32_t i = 0; i < 2 * per; ++i) ASSERT_EQ(got[i].load(), 1) << i;
}

namespace {

// Lock-free program lookups against updates and deletes of the same keys.
// Keys 0..kStable-1 are always present (updated in place); keys kStable..
// kKeys-1 are deleted and inserted again all the time (their elements are
// reused by other keys). Every value written is whole_value(key, r): a
// reader checks that each value it sees is one that was written (its two
// halves agree), and for the stable keys that a lookup never misses and
// reads a value of that key.
constexpr std::uint32_t kStable = 24;
constexpr std::uint32_t kKeys = 48;

std::uint64_t whole_value(std::uint32_t key, std::uint32_t r) {
  return (std::uint64_t{~r ^ key} << 32) | r;
}
// The key a whole value was written for, or ~0u for a torn value.
std::uint32_t value_key(std::uint64_t v) {
  const std::uint32_t k = static_cast<std::uint32_t>(v >> 32) ^ ~static_cast<std::uint32_t>(v);
  return k < kKeys ? k : ~0u;
}

// The map's key for key number i (LPM: a /32 IPv4 prefix).
struct KeyBuf {
  std::uint8_t b[8];
};
KeyBuf key_for(std::uint32_t type, std::uint32_t i) {
  KeyBuf k{};
  if (type == BPF_MAP_TYPE_LPM_TRIE) {
    const std::uint32_t plen = 32;
    const std::uint32_t addr = 0x0a000000u + i * 0x01010101u;  // spread over the trie
    std::memcpy(k.b, &plen, 4);
    std::memcpy(k.b + 4, &addr, 4);
  } else {
    std::memcpy(k.b, &i, 4);
  }
  return k;
}

void churn(Map& m, std::uint32_t type, std::uint32_t seed, std::uint32_t rounds) {
  std::uint32_t r = seed;
  for (std::uint32_t n = 0; n < rounds; ++n) {
    r = r * 1664525u + 1013904223u;
    const std::uint32_t i = (r >> 8) % kKeys;
    const KeyBuf k = key_for(type, i);
    const std::uint64_t v = whole_value(i, r);
    if (i < kStable || (r & 1) != 0) {
      const int e = m.prog_update(k.b, &v, BPF_ANY, 0);
      EXPECT_EQ(e, 0) << i;
    } else {
      (void)m.prog_delete(k.b);
    }
  }
}

// Returns the number of failures seen (so a forked child can report them).
std::uint32_t read_all(Map& m, std::uint32_t type, std::uint32_t rounds) {
  std::uint32_t bad = 0;
  for (std::uint32_t n = 0; n < rounds; ++n)
    for (std::uint32_t i = 0; i < kKeys; ++i) {
      const KeyBuf k = key_for(type, i);
      auto* p = static_cast<std::uint64_t*>(m.prog_lookup(k.b, 0));
      if (p == nullptr) {
        if (i < kStable) ++bad;  // a key that is always there was missed
        continue;
      }
      const std::uint32_t vk = value_key(std::atomic_ref<std::uint64_t>(*p).load(std::memory_order_relaxed));
      if (vk == ~0u || (i < kStable && vk != i)) ++bad;
    }
  return bad;
}

}  // namespace

TEST(MapConcurrency, LockFreeLookupsAgainstUpdatesAndDeletes) {
  TempDir d;
  for (const std::uint32_t type : {BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_LPM_TRIE}) {
    SCOPED_TRACE(type);
    const bool lpm = type == BPF_MAP_TYPE_LPM_TRIE;
    // room for every key (no eviction of the stable ones); few buckets, so chains are shared
    auto m = make(d, spec(type, lpm ? 8 : 4, 8, 2 * kKeys, lpm ? BPF_F_NO_PREALLOC : 0));
    ASSERT_TRUE(m);
    for (std::uint32_t i = 0; i < kKeys; ++i) {
      const KeyBuf k = key_for(type, i);
      const std::uint64_t v = whole_value(i, i);
      ASSERT_EQ(m->update(k.b, &v, BPF_ANY), 0);
    }
    const std::uint32_t rounds = 200000u / static_cast<std::uint32_t>(kScale);
    const std::string pin = d.path() + "/lockfree" + std::to_string(type);
    ASSERT_TRUE(m->file().link(pin).ok());
    const pid_t pid = ::fork();
    if (pid == 0) {  // a second process: one writer, one reader
      auto other = open_map(pin);
      if (!other.ok()) ::_exit(2);
      std::uint32_t bad = 0;
      std::thread reader([&] { bad = read_all(**other, type, rounds / kKeys); });
      churn(**other, type, 77, rounds);
      reader.join();
      ::_exit(bad != 0 || ::testing::Test::HasFailure() ? 1 : 0);
    }
    std::atomic<std::uint32_t> bad{0};
    std::vector<std::thread> ts;
    ts.emplace_back([&] { churn(*m, type, 1, rounds); });
    ts.emplace_back([&] { churn(*m, type, 2, rounds); });
    for (int t = 0; t < 2; ++t) ts.emplace_back([&] { bad += read_all(*m, type, rounds / kKeys); });
    for (auto& t : ts) t.join();
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_EQ(bad.load(), 0u);
    // afterwards: every stable key holds one of its own values
    for (std::uint32_t i = 0; i < kStable; ++i) {
      const KeyBuf k = key_for(type, i);
      std::uint64_t v = 0;
      ASSERT_EQ(m->lookup(k.b, &v, 0), 0) << i;
      EXPECT_EQ(value_key(v), i);
    }
  }
}
