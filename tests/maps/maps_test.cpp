// Map types: creation rules, update flags and errno, iteration, batches,
// freeze and access flags, per-CPU views, concurrency (threads, processes
// sharing a pinned map, per-CPU slot exclusivity).
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>
#include <vector>

#include "../runtime/test_util.hpp"
#include "map_test_util.hpp"
#include "maps/cpu_slots.hpp"
#include "maps/map.hpp"
#include "maps/registry.hpp"
#include "maps/shm.hpp"

using namespace userbpf;
using namespace userbpf::maps;
using userbpf::testing::TempDir;
using userbpf::maps::test::spec;

namespace {

using userbpf::maps::test::make;

using userbpf::maps::test::create_errno;

}  // namespace

TEST(Maps, RegistryHasOneRowPerType) {
  std::set<std::uint32_t> types;
  for (const MapTypeDesc* d : map_types()) {
    EXPECT_TRUE(types.insert(d->type).second) << d->name;
    EXPECT_EQ(find_map_type(d->type), d);
  }
  for (std::uint32_t t : {BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_PERCPU_HASH,
                          BPF_MAP_TYPE_PROG_ARRAY})
    EXPECT_EQ(types.count(t), 1u) << t;
  EXPECT_EQ(find_map_type(BPF_MAP_TYPE_SOCKMAP), nullptr);
}

TEST(Maps, CreateErrors) {
  TempDir d;
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_ARRAY, 8, 4, 1)), EINVAL);   // array key must be 4
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_ARRAY, 4, 0, 1)), EINVAL);
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_ARRAY, 4, 4, 0)), EINVAL);
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_HASH, 0, 4, 1)), EINVAL);
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_HASH, 4, 0, 1)), EINVAL);
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_HASH, 4, 4, 0)), EINVAL);
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_HASH, 4, 5u << 20, 1)), E2BIG);
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_PERCPU_ARRAY, 4, 40000, 1)), E2BIG);
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_PERCPU_HASH, 4, 40000, 1)), E2BIG);
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_PROG_ARRAY, 4, 8, 1)), EINVAL);
  EXPECT_EQ(create_errno(d, spec(999, 4, 4, 1)), EINVAL);
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_HASH, 4, 4, 1, BPF_F_RDONLY | BPF_F_WRONLY)), EINVAL);
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_HASH, 4, 4, 1, BPF_F_MMAPABLE)), EINVAL);
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_ARRAY, 4, 4, 1, BPF_F_NO_PREALLOC)), EINVAL);
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 1, BPF_F_RDONLY_PROG)), EINVAL);
  MapSpec bad = spec(BPF_MAP_TYPE_HASH, 4, 4, 1);
  bad.name = "bad-name";
  EXPECT_EQ(create_errno(d, bad), EINVAL);
  bad.name = "0123456789abcdef";  // 16 characters: no room for the NUL
  EXPECT_EQ(create_errno(d, bad), EINVAL);
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_HASH, 4, 4, 1)), 0);
}

TEST(Maps, ArraySemantics) {
  TempDir d;
  auto m = make(d, spec(BPF_MAP_TYPE_ARRAY, 4, 12, 4));
  ASSERT_TRUE(m);
  std::uint32_t k = 0;
  std::uint8_t v[12] = {1, 2, 3}, out[12] = {};
  EXPECT_EQ(m->lookup(&k, out, 0), 0);
  EXPECT_EQ(out[0], 0);  // arrays start zeroed
  EXPECT_EQ(m->update(&k, v, BPF_ANY), 0);
  EXPECT_EQ(m->update(&k, v, BPF_EXIST), 0);
  EXPECT_EQ(m->update(&k, v, BPF_NOEXIST), EEXIST);
  EXPECT_EQ(m->update(&k, v, 3), EINVAL);
  EXPECT_EQ(m->update(&k, v, BPF_F_LOCK), EINVAL);
  EXPECT_EQ(m->lookup(&k, out, 0), 0);
  EXPECT_EQ(std::vector<std::uint8_t>(out, out + 12), std::vector<std::uint8_t>(v, v + 12));
  k = 4;
  EXPECT_EQ(m->lookup(&k, out, 0), ENOENT);
  EXPECT_EQ(m->update(&k, v, BPF_ANY), E2BIG);
  EXPECT_EQ(m->remove(&k), EINVAL);
  k = 1;
  EXPECT_EQ(m->remove(&k), EINVAL);
  EXPECT_EQ(m->lookup(&k, out, 2), EINVAL);  // unknown lookup flag
  EXPECT_EQ(m->lookup_and_delete(&k, out, 0), kENOTSUPP);
  // get_next_key: by index; null or out of range -> 0; last -> ENOENT
  std::uint32_t next = 99;
  EXPECT_EQ(m->get_next_key(nullptr, &next), 0);
  EXPECT_EQ(next, 0u);
  k = 2;
  EXPECT_EQ(m->get_next_key(&k, &next), 0);
  EXPECT_EQ(next, 3u);
  k = 3;
  EXPECT_EQ(m->get_next_key(&k, &next), ENOENT);
  k = 77;
  EXPECT_EQ(m->get_next_key(&k, &next), 0);
  EXPECT_EQ(next, 0u);
  // direct value access (BPF_PSEUDO_MAP_VALUE) points into the shared mapping
  auto* p = static_cast<std::uint8_t*>(m->direct_value(1));
  ASSERT_NE(p, nullptr);
  p[0] = 42;
  k = 1;
  EXPECT_EQ(m->lookup(&k, out, 0), 0);
  EXPECT_EQ(out[0], 42);
}

TEST(Maps, HashSemantics) {
  TempDir d;
  auto m = make(d, spec(BPF_MAP_TYPE_HASH, 8, 8, 4));
  ASSERT_TRUE(m);
  std::uint64_t k = 1, v = 10, out = 0;
  EXPECT_EQ(m->lookup(&k, &out, 0), ENOENT);
  EXPECT_EQ(m->update(&k, &v, BPF_EXIST), ENOENT);
  EXPECT_EQ(m->update(&k, &v, BPF_NOEXIST), 0);
  EXPECT_EQ(m->update(&k, &v, BPF_NOEXIST), EEXIST);
  v = 11;
  EXPECT_EQ(m->update(&k, &v, BPF_EXIST), 0);
  EXPECT_EQ(m->lookup(&k, &out, 0), 0);
  EXPECT_EQ(out, 11u);
  EXPECT_EQ(m->update(&k, &v, 3), EINVAL);
  for (k = 2; k <= 4; ++k) EXPECT_EQ(m->update(&k, &k, BPF_ANY), 0);
  k = 5;
  EXPECT_EQ(m->update(&k, &k, BPF_ANY), E2BIG);  // full
  k = 4;
  EXPECT_EQ(m->update(&k, &v, BPF_ANY), 0);  // replacing in a full map is fine
  // iteration visits every key once; a missing key restarts at the first
  std::set<std::uint64_t> seen;
  std::uint64_t cur = 0, next = 0;
  ASSERT_EQ(m->get_next_key(nullptr, &next), 0);
  const std::uint64_t first = next;
  int guard = 0;
  do {
    EXPECT_TRUE(seen.insert(next).second);
    cur = next;
  } while (m->get_next_key(&cur, &next) == 0 && ++guard < 10);
  EXPECT_EQ(seen, (std::set<std::uint64_t>{1, 2, 3, 4}));
  std::uint64_t missing = 1000;
  EXPECT_EQ(m->get_next_key(&missing, &next), 0);
  EXPECT_EQ(next, first);
  // delete, lookup_and_delete
  k = 2;
  EXPECT_EQ(m->remove(&k), 0);
  EXPECT_EQ(m->remove(&k), ENOENT);
  k = 3;
  EXPECT_EQ(m->lookup_and_delete(&k, &out, 0), 0);
  EXPECT_EQ(out, 3u);
  EXPECT_EQ(m->lookup_and_delete(&k, &out, 0), ENOENT);
  EXPECT_EQ(m->lookup_and_delete(&k, &out, BPF_F_LOCK), EINVAL);
  // freed elements are reused
  for (k = 10; k < 12; ++k) EXPECT_EQ(m->update(&k, &k, BPF_NOEXIST), 0);
  k = 12;
  EXPECT_EQ(m->update(&k, &k, BPF_NOEXIST), E2BIG);
}

TEST(Maps, HashBatches) {
  TempDir d;
  auto m = make(d, spec(BPF_MAP_TYPE_HASH, 4, 4, 64));
  ASSERT_TRUE(m);
  std::vector<std::uint32_t> keys(40), vals(40);
  for (std::uint32_t i = 0; i < 40; ++i) keys[i] = i, vals[i] = i * 3;
  std::uint32_t n = 40;
  EXPECT_EQ(m->update_batch(keys.data(), vals.data(), n, BPF_NOEXIST), EINVAL);  // elem_flags: only BPF_F_LOCK
  n = 40;
  EXPECT_EQ(m->update_batch(keys.data(), vals.data(), n, 0), 0);
  EXPECT_EQ(n, 40u);
  // lookup in batches of 8 until ENOENT: every element once
  std::vector<std::uint32_t> ok(64), ov(64);
  std::set<std::uint32_t> seen;
  std::uint32_t token = 0;
  bool first = true;
  int rounds = 0, e = 0;
  do {
    std::uint32_t cnt = 8;
    e = m->lookup_batch(first, token, ok.data(), ov.data(), cnt, false);
    ASSERT_TRUE(e == 0 || e == ENOENT || e == ENOSPC) << e;
    if (e == ENOSPC) break;
    for (std::uint32_t i = 0; i < cnt; ++i) {
      EXPECT_EQ(ov[i], ok[i] * 3);
      EXPECT_TRUE(seen.insert(ok[i]).second);
    }
    first = false;
  } while (e == 0 && ++rounds < 100);
  EXPECT_EQ(seen.size(), 40u);
  n = 10;
  EXPECT_EQ(m->delete_batch(keys.data(), n), 0);
  EXPECT_EQ(n, 10u);
  n = 10;
  EXPECT_EQ(m->delete_batch(keys.data(), n), ENOENT);
  EXPECT_EQ(n, 0u);
  // lookup-and-delete everything
  token = 0;
  std::uint32_t cnt = 64;
  e = m->lookup_batch(true, token, ok.data(), ov.data(), cnt, true);
  EXPECT_EQ(e, ENOENT);
  EXPECT_EQ(cnt, 30u);
  std::uint32_t next = 0;
  EXPECT_EQ(m->get_next_key(nullptr, &next), ENOENT);
}

TEST(Maps, ArrayBatches) {
  TempDir d;
  auto m = make(d, spec(BPF_MAP_TYPE_ARRAY, 4, 4, 10));
  ASSERT_TRUE(m);
  std::vector<std::uint32_t> ok(10), ov(10);
  std::uint32_t token = 0, cnt = 4;
  EXPECT_EQ(m->lookup_batch(true, token, ok.data(), ov.data(), cnt, false), 0);
  EXPECT_EQ(cnt, 4u);
  EXPECT_EQ(token, 3u);  // the last key copied, as the kernel's generic batch
  cnt = 10;
  EXPECT_EQ(m->lookup_batch(false, token, ok.data(), ov.data(), cnt, false), ENOENT);
  EXPECT_EQ(cnt, 6u);
  EXPECT_EQ(ok[0], 4u);
  cnt = 1;
  EXPECT_EQ(m->lookup_batch(false, token, ok.data(), ov.data(), cnt, true), kENOTSUPP);
  cnt = 1;
  EXPECT_EQ(m->delete_batch(ok.data(), cnt), kENOTSUPP);
}

TEST(Maps, FreezeAndAccessFlags) {
  TempDir d;
  auto m = make(d, spec(BPF_MAP_TYPE_ARRAY, 4, 4, 2));
  std::uint32_t k = 0, v = 5, out = 0;
  EXPECT_EQ(m->freeze(), 0);
  EXPECT_TRUE(m->frozen());
  EXPECT_EQ(m->update(&k, &v, 0), EPERM);
  EXPECT_EQ(m->freeze(), EPERM);  // frozen maps lost write permission, as in the kernel
  EXPECT_EQ(m->lookup(&k, &out, 0), 0);
  EXPECT_EQ(m->prog_update(&k, &v, 0, 0), 0);  // programs may still write
  EXPECT_EQ(m->lookup(&k, &out, 0), 0);
  EXPECT_EQ(out, 5u);
  auto ro = make(d, spec(BPF_MAP_TYPE_HASH, 4, 4, 2, BPF_F_RDONLY));
  EXPECT_EQ(ro->update(&k, &v, 0), EPERM);
  EXPECT_EQ(ro->remove(&k), EPERM);
  EXPECT_EQ(ro->lookup(&k, &out, 0), ENOENT);
  auto wo = make(d, spec(BPF_MAP_TYPE_HASH, 4, 4, 2, BPF_F_WRONLY));
  EXPECT_EQ(wo->update(&k, &v, 0), 0);
  EXPECT_EQ(wo->lookup(&k, &out, 0), EPERM);
  EXPECT_EQ(wo->get_next_key(nullptr, &out), EPERM);
}

TEST(Maps, PerCpuViews) {
  TempDir d;
  MapSpec s = spec(BPF_MAP_TYPE_PERCPU_ARRAY, 4, 4, 2);
  s.ncpus = 3;
  auto a = make(d, s);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host_value_size(), 24u);  // round8(4) * 3
  std::uint32_t k = 1;
  for (std::uint32_t c = 0; c < 3; ++c) *static_cast<std::uint32_t*>(a->prog_lookup(&k, c)) = 100 + c;
  EXPECT_EQ(a->prog_lookup(&k, 3), nullptr);
  std::uint8_t all[24];
  EXPECT_EQ(a->lookup(&k, all, 0), 0);
  for (std::uint32_t c = 0; c < 3; ++c) {
    std::uint32_t x;
    std::memcpy(&x, all + c * 8, 4);
    EXPECT_EQ(x, 100 + c);
  }
  s.type = BPF_MAP_TYPE_PERCPU_HASH;
  auto h = make(d, s);
  ASSERT_TRUE(h);
  std::uint32_t one = 7;
  EXPECT_EQ(h->prog_update(&k, &one, BPF_ANY, 1), 0);  // slot 1 only; others zero
  EXPECT_EQ(h->lookup(&k, all, 0), 0);
  std::uint32_t x0, x1, x2;
  std::memcpy(&x0, all, 4);
  std::memcpy(&x1, all + 8, 4);
  std::memcpy(&x2, all + 16, 4);
  EXPECT_EQ(x0, 0u);
  EXPECT_EQ(x1, 7u);
  EXPECT_EQ(x2, 0u);
  std::uint8_t in[24] = {};
  in[0] = 1, in[8] = 2, in[16] = 3;
  EXPECT_EQ(h->update(&k, in, BPF_EXIST), 0);
  EXPECT_EQ(*static_cast<std::uint8_t*>(h->prog_lookup(&k, 2)), 3);
}

TEST(Maps, ProgArrayStoresIds) {
  TempDir d;
  auto m = make(d, spec(BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 4));
  std::uint32_t k = 1, id = 17, out = 0;
  EXPECT_EQ(m->lookup(&k, &out, 0), ENOENT);
  EXPECT_EQ(m->update(&k, &id, BPF_NOEXIST), EINVAL);  // only BPF_ANY
  EXPECT_EQ(m->update(&k, &id, BPF_ANY), 0);
  EXPECT_EQ(m->lookup(&k, &out, 0), 0);
  EXPECT_EQ(out, 17u);
  EXPECT_EQ(prog_array_get(*m, 1), 17u);
  EXPECT_EQ(prog_array_get(*m, 9), 0u);
  EXPECT_EQ(m->prog_lookup(&k, 0), nullptr);  // programs cannot look program arrays up
  EXPECT_EQ(m->remove(&k), 0);
  EXPECT_EQ(m->remove(&k), ENOENT);
  k = 4;
  EXPECT_EQ(m->update(&k, &id, BPF_ANY), E2BIG);
}

TEST(Maps, OpenByPathSeesSameData) {
  TempDir d;
  auto m = make(d, spec(BPF_MAP_TYPE_HASH, 4, 8, 16));
  const std::string pin = d.path() + "/m";
  ASSERT_TRUE(m->file().link(pin).ok());
  EXPECT_EQ(m->file().link(pin).error().code, EEXIST);
  auto o = open_map(pin);
  ASSERT_TRUE(o.ok()) << o.error().to_string();
  std::uint32_t k = 3;
  std::uint64_t v = 99, out = 0;
  EXPECT_EQ(m->update(&k, &v, 0), 0);
  EXPECT_EQ((*o)->lookup(&k, &out, 0), 0);
  EXPECT_EQ(out, 99u);
  EXPECT_EQ((*o)->type(), static_cast<std::uint32_t>(BPF_MAP_TYPE_HASH));
  EXPECT_EQ((*o)->name(), "t");
  // not a map file
  const std::string junk = d.path() + "/junk";
  FILE* f = std::fopen(junk.c_str(), "w");
  std::fputs("hello, this is not a map at all; long enough to hold a header? no.", f);
  std::fclose(f);
  auto bad = open_map(junk);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, EINVAL);
}

// 8 threads increment shared counters through lookup pointers (atomic add,
// as programs do) and race BPF_NOEXIST inserts: no update may be lost.
TEST(Maps, ThreadsLoseNoUpdate) {
  TempDir d;
  auto m = make(d, spec(BPF_MAP_TYPE_HASH, 4, 8, 1024));
  constexpr int kThreads = 8, kIters = 20000, kKeys = 64;
  std::atomic<int> inserted{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kIters; ++i) {
        std::uint32_t k = static_cast<std::uint32_t>((i + t) % kKeys);
        auto* p = static_cast<std::uint64_t*>(m->prog_lookup(&k, 0));
        if (p == nullptr) {
          std::uint64_t zero = 0;
          if (m->prog_update(&k, &zero, BPF_NOEXIST, 0) == 0) inserted.fetch_add(1);
          p = static_cast<std::uint64_t*>(m->prog_lookup(&k, 0));
        }
        ASSERT_NE(p, nullptr);
        __atomic_fetch_add(p, 1, __ATOMIC_RELAXED);
      }
    });
  }
  for (auto& th : ts) th.join();
  EXPECT_EQ(inserted.load(), kKeys);  // exactly one NOEXIST insert won per key
  std::uint64_t total = 0;
  for (std::uint32_t k = 0; k < kKeys; ++k) {
    std::uint64_t v = 0;
    ASSERT_EQ(m->lookup(&k, &v, 0), 0);
    total += v;
  }
  EXPECT_EQ(total, static_cast<std::uint64_t>(kThreads) * kIters);
}

// Concurrent inserts and deletes of distinct keys keep the table consistent.
TEST(Maps, ThreadsInsertDeleteChurn) {
  TempDir d;
  auto m = make(d, spec(BPF_MAP_TYPE_HASH, 4, 4, 256));
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < 5000; ++i) {
        std::uint32_t k = static_cast<std::uint32_t>(t * 32 + i % 32), v = k;
        EXPECT_EQ(m->update(&k, &v, BPF_NOEXIST), 0);
        std::uint32_t out = 0;
        EXPECT_EQ(m->lookup(&k, &out, 0), 0);
        EXPECT_EQ(out, k);
        EXPECT_EQ(m->remove(&k), 0);
      }
    });
  }
  for (auto& th : ts) th.join();
  std::uint32_t next = 0;
  EXPECT_EQ(m->get_next_key(nullptr, &next), ENOENT);
}

// Two processes open one pinned map by path and increment the same counters.
TEST(Maps, TwoProcessesShareAPinnedMap) {
  TempDir d;
  auto m = make(d, spec(BPF_MAP_TYPE_HASH, 4, 8, 64));
  const std::string pin = d.path() + "/shared";
  ASSERT_TRUE(m->file().link(pin).ok());
  constexpr int kIters = 50000;
  pid_t kids[2];
  for (int c = 0; c < 2; ++c) {
    kids[c] = ::fork();
    ASSERT_GE(kids[c], 0);
    if (kids[c] == 0) {
      auto o = open_map(pin);
      if (!o.ok()) ::_exit(2);
      for (int i = 0; i < kIters; ++i) {
        std::uint32_t k = static_cast<std::uint32_t>(i % 8);
        auto* p = static_cast<std::uint64_t*>((*o)->prog_lookup(&k, 0));
        if (p == nullptr) {
          std::uint64_t zero = 0;
          (*o)->prog_update(&k, &zero, BPF_NOEXIST, 0);
          p = static_cast<std::uint64_t*>((*o)->prog_lookup(&k, 0));
        }
        if (p == nullptr) ::_exit(3);
        __atomic_fetch_add(p, 1, __ATOMIC_RELAXED);
        // and each process inserts its own keys
        std::uint32_t own = 1000 + static_cast<std::uint32_t>(c) * 100 + static_cast<std::uint32_t>(i % 20);
        std::uint64_t v = 1;
        (*o)->update(&own, &v, BPF_ANY);
      }
      ::_exit(0);
    }
  }
  for (pid_t k : kids) {
    int st = 0;
    ASSERT_EQ(::waitpid(k, &st, 0), k);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  }
  std::uint64_t total = 0;
  for (std::uint32_t k = 0; k < 8; ++k) {
    std::uint64_t v = 0;
    ASSERT_EQ(m->lookup(&k, &v, 0), 0);
    total += v;
  }
  EXPECT_EQ(total, 2u * kIters);
  int own = 0;
  std::uint32_t cur = 0, next = 0;
  for (int e = m->get_next_key(nullptr, &next); e == 0; e = m->get_next_key(&cur, &next)) {
    own += next >= 1000 ? 1 : 0;
    cur = next;
  }
  EXPECT_EQ(own, 40);
}

// No two concurrent holders of a CPU slot, in threads and across processes.
TEST(Maps, CpuSlotsAreExclusive) {
  TempDir d;
  auto slots = CpuSlots::open(d.path(), 2);
  ASSERT_TRUE(slots.ok()) << slots.error().to_string();
  EXPECT_EQ((*slots)->count(), 2u);
  auto again = CpuSlots::open(d.path(), 7);  // the existing file decides the count
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->count(), 2u);
  // a shared "in use" flag per slot, in a shared mapping so child processes see it
  auto* flags = static_cast<std::atomic<int>*>(
      ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  auto* violations = flags + 8;
  auto* max_seen = flags + 9;
  auto hammer = [&](CpuSlots& s, int iters) {
    for (int i = 0; i < iters; ++i) {
      CpuSlots::Guard g(&s);
      const std::uint32_t slot = g.slot();
      if (slot >= s.count()) violations->fetch_add(1);
      if (flags[slot].fetch_add(1) != 0) violations->fetch_add(1);
      int m = max_seen->load();
      while (static_cast<int>(slot) > m && !max_seen->compare_exchange_weak(m, static_cast<int>(slot))) {
      }
      std::this_thread::yield();
      EXPECT_EQ(g.slot(), slot);  // stable for the run
      flags[slot].fetch_sub(1);
    }
  };
  pid_t kid = ::fork();
  if (kid == 0) {
    auto s = CpuSlots::open(d.path());
    if (!s.ok()) ::_exit(2);
    hammer(**s, 20000);
    ::_exit(0);
  }
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t) ts.emplace_back([&] { hammer(**slots, 5000); });
  for (auto& th : ts) th.join();
  int st = 0;
  ::waitpid(kid, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  EXPECT_EQ(violations->load(), 0);
  EXPECT_EQ(max_seen->load(), 1);  // both slots were used
  ::munmap(flags, 4096);
}

TEST(Maps, CpuSlotNestedOnOneThread) {
  auto s = CpuSlots::local(1);
  CpuSlots::Guard outer(s.get());
  const auto a = outer.slot();
  {
    CpuSlots::Guard inner(s.get());  // same thread: same slot, no deadlock
    EXPECT_EQ(inner.slot(), a);
  }
  EXPECT_EQ(outer.slot(), a);
}

// A process that dies holding a spin lock (a bucket lock) does not block the others.
TEST(Maps, SpinLockOfADeadProcessIsTakenOver) {
  auto* lk = static_cast<SharedSpinLock*>(
      ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  lk->init();
  pid_t kid = ::fork();
  if (kid == 0) {
    lk->lock();
    ::_exit(0);  // dies holding it
  }
  int st = 0;
  ::waitpid(kid, &st, 0);
  EXPECT_EQ(lk->owner.load(), static_cast<std::uint32_t>(kid));
  const auto t0 = std::chrono::steady_clock::now();
  lk->lock();  // must not hang
  EXPECT_EQ(lk->owner.load(), SharedSpinLock::self());
  lk->unlock();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
  // and a robust mutex (CPU slots) likewise
  auto* m = reinterpret_cast<SharedMutex*>(reinterpret_cast<std::uint8_t*>(lk) + 64);
  m->init();
  kid = ::fork();
  if (kid == 0) {
    m->lock();
    ::_exit(0);
  }
  ::waitpid(kid, &st, 0);
  m->lock();
  m->unlock();
  ::munmap(lk, 4096);
}
