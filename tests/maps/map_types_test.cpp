// The map types of issue 6: LRU hashes, LPM trie, queue/stack, bloom filter,
// ring buffer (+ consumer), perf event array (+ perf buffer), maps of maps,
// BPF_F_MMAPABLE arrays, spin-lock values, program-side operations.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "../runtime/test_util.hpp"
#include "map_test_util.hpp"
#include "maps/map.hpp"
#include "maps/map_of_maps.hpp"
#include "maps/perf_event_array.hpp"
#include "maps/registry.hpp"
#include "maps/ringbuf.hpp"
#include "maps/shm.hpp"
#include "maps/stack_trace.hpp"

using namespace userbpf;
using namespace userbpf::maps;
using userbpf::testing::TempDir;
using userbpf::maps::test::spec;

namespace {

using userbpf::maps::test::make;

using userbpf::maps::test::create_errno;

std::set<std::uint32_t> keys_u32(const Map& m) {
  std::set<std::uint32_t> out;
  std::uint32_t k = 0, next = 0;
  const void* prev = nullptr;
  while (m.get_next_key(prev, &next) == 0) {
    if (!out.insert(next).second) break;
    k = next;
    prev = &k;
  }
  return out;
}

// LPM keys: prefixlen + 4 (IPv4) data bytes
struct Lpm4 {
  std::uint32_t prefixlen;
  std::uint8_t data[4];
};
Lpm4 lpm4(std::uint32_t plen, std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  return Lpm4{plen, {a, b, c, d}};
}

}  // namespace

TEST(MapTypes, RegistryNamesAndKinds) {
  std::set<std::uint32_t> types;
  for (const MapTypeDesc* d : map_types()) EXPECT_TRUE(types.insert(d->type).second) << d->name;
  for (std::uint32_t t : {BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH, BPF_MAP_TYPE_LPM_TRIE,
                          BPF_MAP_TYPE_QUEUE, BPF_MAP_TYPE_STACK, BPF_MAP_TYPE_BLOOM_FILTER, BPF_MAP_TYPE_RINGBUF,
                          BPF_MAP_TYPE_PERF_EVENT_ARRAY, BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_HASH_OF_MAPS})
    EXPECT_NE(find_map_type(t), nullptr) << t;
}

TEST(MapTypes, CreateRules) {
  TempDir d;
  // LRU: no NO_PREALLOC (ENOTSUPP), NO_COMMON_LRU only for LRU types
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_LRU_HASH, 4, 4, 8, BPF_F_NO_PREALLOC)), kENOTSUPP);
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_HASH, 4, 4, 8, BPF_F_NO_COMMON_LRU)), EINVAL);
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_LRU_HASH, 4, 4, 8, BPF_F_NO_COMMON_LRU)), 0);
  // LPM: NO_PREALLOC required, key 5..260
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_LPM_TRIE, 8, 4, 8)), EINVAL);
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_LPM_TRIE, 4, 4, 8, BPF_F_NO_PREALLOC)), EINVAL);
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_LPM_TRIE, 261, 4, 8, BPF_F_NO_PREALLOC)), EINVAL);
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_LPM_TRIE, 20, 4, 8, BPF_F_NO_PREALLOC)), 0);
  // queue / stack: key 0
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_QUEUE, 4, 4, 8)), EINVAL);
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_STACK, 0, 0, 8)), EINVAL);
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_QUEUE, 0, 4, 8)), 0);
  // bloom: map_extra up to 15
  MapSpec b = spec(BPF_MAP_TYPE_BLOOM_FILTER, 0, 8, 100);
  b.map_extra = 16;
  EXPECT_EQ(create_errno(d, b), EINVAL);
  b.map_extra = 3;
  EXPECT_EQ(create_errno(d, b), 0);
  MapSpec h = spec(BPF_MAP_TYPE_HASH, 4, 4, 8);
  h.map_extra = 1;
  EXPECT_EQ(create_errno(d, h), EINVAL);
  // ring buffer: power-of-two multiple of the page, no key/value
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_RINGBUF, 0, 0, 4096 * 3)), EINVAL);
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_RINGBUF, 0, 0, 2048)), EINVAL);
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_RINGBUF, 4, 0, 4096)), EINVAL);
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_RINGBUF, 0, 0, 8192)), 0);
  // maps of maps: need a template (EBADF), not a map of maps
  EXPECT_EQ(create_errno(d, spec(BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 4)), EBADF);
  // spin locks only in hash / array values
  MapSpec l = spec(BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 1);
  l.spin_lock_off = 0;
  EXPECT_EQ(create_errno(d, l), EOPNOTSUPP);
  l.type = BPF_MAP_TYPE_ARRAY;
  l.spin_lock_off = 6;
  EXPECT_EQ(create_errno(d, l), EINVAL);
}

TEST(MapTypes, LruEvictsLeastRecentlyUsed) {
  TempDir d;
  auto m = make(d, spec(BPF_MAP_TYPE_LRU_HASH, 4, 8, 4));
  ASSERT_TRUE(m);
  for (std::uint32_t k = 0; k < 4; ++k) {
    const std::uint64_t v = k * 10;
    ASSERT_EQ(m->update(&k, &v, BPF_ANY), 0);
  }
  EXPECT_EQ(keys_u32(*m), (std::set<std::uint32_t>{0, 1, 2, 3}));
  // programs touch 0 and 1: they survive the next two insertions
  std::uint32_t k = 0;
  ASSERT_NE(m->prog_lookup(&k, 0), nullptr);
  k = 1;
  ASSERT_NE(m->prog_lookup(&k, 0), nullptr);
  for (std::uint32_t n = 10; n < 12; ++n) {
    const std::uint64_t v = n;
    ASSERT_EQ(m->update(&n, &v, BPF_ANY), 0);
  }
  EXPECT_EQ(keys_u32(*m), (std::set<std::uint32_t>{0, 1, 10, 11}));
  // flags as a hash map; never more than max_entries keys
  std::uint64_t v = 5;
  k = 10;
  EXPECT_EQ(m->update(&k, &v, BPF_NOEXIST), EEXIST);
  k = 99;
  EXPECT_EQ(m->update(&k, &v, BPF_EXIST), ENOENT);
  for (std::uint32_t n = 100; n < 200; ++n) ASSERT_EQ(m->update(&n, &v, BPF_NOEXIST), 0);
  EXPECT_EQ(keys_u32(*m).size(), 4u);
  EXPECT_EQ(keys_u32(*m), (std::set<std::uint32_t>{196, 197, 198, 199}));
  k = 199;
  EXPECT_EQ(m->remove(&k), 0);
  EXPECT_EQ(m->remove(&k), ENOENT);
  EXPECT_EQ(keys_u32(*m).size(), 3u);
}

TEST(MapTypes, LruPerCpuAndNoCommonLru) {
  TempDir d;
  MapSpec s = spec(BPF_MAP_TYPE_LRU_PERCPU_HASH, 4, 4, 16);
  s.ncpus = 3;
  auto m = make(d, s);
  ASSERT_TRUE(m);
  std::uint32_t k = 7, v = 42;
  ASSERT_EQ(m->prog_update(&k, &v, BPF_ANY, 2), 0);
  std::uint64_t all[3];
  ASSERT_EQ(m->lookup(&k, all, 0), 0);
  EXPECT_EQ(all[0], 0u);
  EXPECT_EQ(all[2], 42u);
  auto* p = static_cast<std::uint32_t*>(m->lookup_percpu(&k, 2));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 42u);
  EXPECT_EQ(m->lookup_percpu(&k, 3), nullptr);

  auto n = make(d, spec(BPF_MAP_TYPE_LRU_HASH, 4, 4, 32, BPF_F_NO_COMMON_LRU));
  ASSERT_TRUE(n);
  for (std::uint32_t i = 0; i < 1000; ++i) ASSERT_EQ(n->update(&i, &i, BPF_ANY), 0);
  const auto ks = keys_u32(*n);
  EXPECT_EQ(ks.size(), 32u);
  for (std::uint32_t i : ks) {
    std::uint32_t out = 0;
    EXPECT_EQ(n->lookup(&i, &out, 0), 0);
    EXPECT_EQ(out, i);
  }
}

TEST(MapTypes, LpmLongestMatchAndOrder) {
  TempDir d;
  auto m = make(d, spec(BPF_MAP_TYPE_LPM_TRIE, 8, 4, 16, BPF_F_NO_PREALLOC));
  ASSERT_TRUE(m);
  auto put = [&](Lpm4 k, std::uint32_t v) { return m->update(&k, &v, BPF_ANY); };
  ASSERT_EQ(put(lpm4(16, 192, 168, 0, 0), 16), 0);
  ASSERT_EQ(put(lpm4(24, 192, 168, 0, 0), 24), 0);
  ASSERT_EQ(put(lpm4(24, 192, 168, 1, 0), 241), 0);
  ASSERT_EQ(put(lpm4(24, 192, 168, 128, 0), 2428), 0);
  ASSERT_EQ(put(lpm4(8, 10, 0, 0, 0), 8), 0);
  ASSERT_EQ(put(lpm4(0, 0, 0, 0, 0), 1), 0);  // default route
  auto get = [&](Lpm4 k) {
    std::uint32_t v = 0;
    return m->lookup(&k, &v, 0) == 0 ? v : 0xdeadu;
  };
  EXPECT_EQ(get(lpm4(32, 192, 168, 0, 77)), 24u);
  EXPECT_EQ(get(lpm4(32, 192, 168, 1, 1)), 241u);
  EXPECT_EQ(get(lpm4(32, 192, 168, 2, 1)), 16u);
  EXPECT_EQ(get(lpm4(32, 192, 168, 128, 9)), 2428u);
  EXPECT_EQ(get(lpm4(32, 10, 1, 2, 3)), 8u);
  EXPECT_EQ(get(lpm4(32, 11, 1, 2, 3)), 1u);
  EXPECT_EQ(get(lpm4(20, 192, 168, 1, 1)), 16u);  // the key's own prefix length limits the match
  // program lookup gives a pointer to the value
  Lpm4 q = lpm4(32, 192, 168, 1, 200);
  auto* pv = static_cast<std::uint32_t*>(m->prog_lookup(&q, 0));
  ASSERT_NE(pv, nullptr);
  EXPECT_EQ(*pv, 241u);
  // flags and errors
  std::uint32_t v = 0;
  Lpm4 k = lpm4(24, 192, 168, 1, 0);
  EXPECT_EQ(m->update(&k, &v, BPF_NOEXIST), EEXIST);
  k = lpm4(33, 1, 2, 3, 4);
  EXPECT_EQ(m->update(&k, &v, BPF_ANY), EINVAL);
  k = lpm4(20, 1, 2, 3, 4);
  EXPECT_EQ(m->update(&k, &v, BPF_EXIST), ENOENT);
  EXPECT_EQ(m->update(&k, &v, 4), EINVAL);
  // post-order: more specific first, 0 side first
  std::vector<std::pair<std::uint32_t, std::uint32_t>> order;
  Lpm4 cur{}, next{};
  const void* prev = nullptr;
  while (m->get_next_key(prev, &next) == 0 && order.size() < 20) {
    std::uint32_t ip;
    std::memcpy(&ip, next.data, 4);
    order.emplace_back(next.prefixlen, __builtin_bswap32(ip));
    cur = next;
    prev = &cur;
  }
  const std::vector<std::pair<std::uint32_t, std::uint32_t>> want = {
      {8, 0x0a000000}, {24, 0xc0a80000}, {24, 0xc0a80100}, {24, 0xc0a88000}, {16, 0xc0a80000}, {0, 0}};
  EXPECT_EQ(order, want);
  // deleting
  k = lpm4(16, 192, 168, 0, 0);
  EXPECT_EQ(m->remove(&k), 0);
  EXPECT_EQ(m->remove(&k), ENOENT);
  EXPECT_EQ(get(lpm4(32, 192, 168, 2, 1)), 1u);
  EXPECT_EQ(get(lpm4(32, 192, 168, 1, 1)), 241u);
  k = lpm4(0, 0, 0, 0, 0);
  EXPECT_EQ(m->remove(&k), 0);
  EXPECT_EQ(get(lpm4(32, 192, 168, 2, 1)), 0xdeadu);
  // capacity: ENOSPC for new keys when full
  auto small = make(d, spec(BPF_MAP_TYPE_LPM_TRIE, 8, 4, 2, BPF_F_NO_PREALLOC));
  k = lpm4(8, 1, 0, 0, 0);
  ASSERT_EQ(small->update(&k, &v, BPF_ANY), 0);
  k = lpm4(8, 2, 0, 0, 0);
  ASSERT_EQ(small->update(&k, &v, BPF_ANY), 0);
  k = lpm4(8, 3, 0, 0, 0);
  EXPECT_EQ(small->update(&k, &v, BPF_ANY), ENOSPC);
  k = lpm4(8, 2, 0, 0, 0);
  EXPECT_EQ(small->update(&k, &v, BPF_ANY), 0);
}

TEST(MapTypes, LpmMatchesReferenceModel) {
  // random prefixes against a brute-force longest-prefix model
  TempDir d;
  auto m = make(d, spec(BPF_MAP_TYPE_LPM_TRIE, 8, 4, 512, BPF_F_NO_PREALLOC));
  ASSERT_TRUE(m);
  std::mt19937 rng(7);
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint32_t> model;  // (plen, masked ip) -> value
  auto mask = [](std::uint32_t plen) { return plen == 0 ? 0u : ~0u << (32 - plen); };
  for (int step = 0; step < 3000; ++step) {
    const std::uint32_t plen = rng() % 33;
    const std::uint32_t ip = (rng() & 0xff0f0f0fu) & mask(plen);  // few distinct bits: many shared prefixes
    Lpm4 k{plen, {}};
    const std::uint32_t be = __builtin_bswap32(ip);
    std::memcpy(k.data, &be, 4);
    if (rng() % 3 == 0) {
      const int e = m->remove(&k);
      EXPECT_EQ(e, model.erase({plen, ip}) != 0 ? 0 : ENOENT);
    } else {
      const std::uint32_t v = static_cast<std::uint32_t>(step);
      const int e = m->update(&k, &v, BPF_ANY);
      if (model.size() >= 512 && !model.count({plen, ip})) {
        EXPECT_EQ(e, ENOSPC);
      } else {
        EXPECT_EQ(e, 0);
        model[{plen, ip}] = v;
      }
    }
    const std::uint32_t probe = rng() & 0xff0f0f0fu;
    Lpm4 q{32, {}};
    const std::uint32_t pbe = __builtin_bswap32(probe);
    std::memcpy(q.data, &pbe, 4);
    std::uint32_t want = 0xdead, got = 0xdead;
    for (int p = 32; p >= 0; --p) {
      auto it = model.find({static_cast<std::uint32_t>(p), probe & mask(static_cast<std::uint32_t>(p))});
      if (it != model.end()) {
        want = it->second;
        break;
      }
    }
    (void)m->lookup(&q, &got, 0);
    ASSERT_EQ(got, want) << "step " << step;
  }
  // iteration visits every key exactly once
  std::set<std::pair<std::uint32_t, std::uint32_t>> seen;
  Lpm4 cur{}, next{};
  const void* prev = nullptr;
  while (m->get_next_key(prev, &next) == 0) {
    std::uint32_t be;
    std::memcpy(&be, next.data, 4);
    ASSERT_TRUE(seen.insert({next.prefixlen, __builtin_bswap32(be)}).second);
    cur = next;
    prev = &cur;
  }
  std::set<std::pair<std::uint32_t, std::uint32_t>> want;
  for (auto& [k, v] : model) want.insert(k);
  EXPECT_EQ(seen, want);
}

TEST(MapTypes, QueueAndStack) {
  TempDir d;
  auto q = make(d, spec(BPF_MAP_TYPE_QUEUE, 0, 4, 3));
  auto s = make(d, spec(BPF_MAP_TYPE_STACK, 0, 4, 3));
  ASSERT_TRUE(q && s);
  for (std::uint32_t v : {1u, 2u, 3u}) {
    ASSERT_EQ(q->update(nullptr, &v, BPF_ANY), 0);
    ASSERT_EQ(s->push(&v, BPF_ANY), 0);
  }
  std::uint32_t v = 4, out = 0;
  EXPECT_EQ(q->update(nullptr, &v, BPF_ANY), E2BIG);
  EXPECT_EQ(q->update(nullptr, &v, BPF_NOEXIST), EINVAL);
  EXPECT_EQ(q->push(&v, BPF_EXIST), 0);  // overwrite: drops the oldest (1)
  EXPECT_EQ(s->push(&v, BPF_EXIST), 0);  // also drops the oldest (1)
  EXPECT_EQ(q->lookup(nullptr, &out, 0), 0);
  EXPECT_EQ(out, 2u);
  EXPECT_EQ(s->peek(&out), 0);
  EXPECT_EQ(out, 4u);
  std::vector<std::uint32_t> qa, sa;
  while (q->lookup_and_delete(nullptr, &out, 0) == 0) qa.push_back(out);
  while (s->pop(&out) == 0) sa.push_back(out);
  EXPECT_EQ(qa, (std::vector<std::uint32_t>{2, 3, 4}));
  EXPECT_EQ(sa, (std::vector<std::uint32_t>{4, 3, 2}));
  EXPECT_EQ(q->pop(&out), ENOENT);
  EXPECT_EQ(q->remove(nullptr), EINVAL);
  EXPECT_EQ(q->get_next_key(nullptr, &out), EINVAL);
}

TEST(MapTypes, BloomFilterHasNoFalseNegatives) {
  TempDir d;
  MapSpec s = spec(BPF_MAP_TYPE_BLOOM_FILTER, 0, 8, 1000);
  s.map_extra = 3;
  auto m = make(d, s);
  ASSERT_TRUE(m);
  for (std::uint64_t v = 0; v < 1000; ++v) ASSERT_EQ(m->push(&v, BPF_ANY), 0);
  for (std::uint64_t v = 0; v < 1000; ++v) ASSERT_EQ(m->peek(&v), 0) << v;
  int fp = 0;
  for (std::uint64_t v = 1000000; v < 1010000; ++v) fp += m->peek(&v) == 0;
  EXPECT_LT(fp, 2000);  // roughly 5% expected with 3 hashes
  std::uint64_t v = 1;
  EXPECT_EQ(m->update(nullptr, &v, BPF_EXIST), EINVAL);
  EXPECT_EQ(m->lookup(nullptr, &v, 0), 0);
  EXPECT_EQ(m->pop(&v), EOPNOTSUPP);
  EXPECT_EQ(m->remove(nullptr), EOPNOTSUPP);
}

TEST(MapTypes, RingBufRecordsInOrderWithDiscard) {
  TempDir d;
  auto m = make(d, spec(BPF_MAP_TYPE_RINGBUF, 0, 0, 4096));
  ASSERT_TRUE(m);
  auto& rb = dynamic_cast<RingBuf&>(*m);
  EXPECT_EQ(rb.query(BPF_RB_RING_SIZE), 4096u);
  auto* a = static_cast<std::uint32_t*>(rb.reserve(4));
  auto* b = static_cast<std::uint32_t*>(rb.reserve(4));
  ASSERT_TRUE(a && b);
  *a = 1;
  *b = 2;
  EXPECT_EQ(rb.query(BPF_RB_AVAIL_DATA), 32u);
  std::vector<std::uint32_t> got;
  RingBufConsumer c;
  ASSERT_EQ(c.add(*m, [&](const void* p, std::size_t n) {
    if (n == 4) got.push_back(*static_cast<const std::uint32_t*>(p));
    return 0;
  }), 0);
  rb.submit(b, 0);
  EXPECT_EQ(c.consume(), 0);  // a is still reserved: b waits behind it
  rb.discard(a, 0);
  EXPECT_EQ(c.consume(), 1);
  EXPECT_EQ(got, (std::vector<std::uint32_t>{2}));
  const std::uint64_t v = 7;
  EXPECT_EQ(rb.output(&v, 8, BPF_RB_FORCE_WAKEUP | BPF_RB_NO_WAKEUP), 0);
  EXPECT_EQ(rb.output(&v, 8, 4), EINVAL);
  EXPECT_EQ(c.consume(), 1);
  // space: the producer may be at most size - 1 bytes ahead
  EXPECT_EQ(rb.reserve(4096 - 8), nullptr);
  void* big = rb.reserve(4096 - 16);
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(rb.reserve(1), nullptr);
  EXPECT_EQ(rb.output(&v, 8, 0), EAGAIN);
  rb.submit(big, 0);
  EXPECT_EQ(c.consume(), 1);
  // wrap-around records are contiguous
  for (int i = 0; i < 100; ++i) {
    std::vector<std::uint8_t> rec(100 + static_cast<std::size_t>(i), static_cast<std::uint8_t>(i));
    ASSERT_EQ(rb.output(rec.data(), rec.size(), 0), 0);
    RingBufConsumer c2;
    bool ok = false;
    c2.add(*m, [&](const void* p, std::size_t n) {
      ok = n == rec.size() && std::memcmp(p, rec.data(), n) == 0;
      return 0;
    });
    ASSERT_EQ(c2.consume(), 1);
    ASSERT_TRUE(ok) << i;
  }
  EXPECT_EQ(rb.query(BPF_RB_CONS_POS), rb.query(BPF_RB_PROD_POS));
  std::uint32_t k = 0;
  EXPECT_EQ(m->lookup(&k, &k, 0), kENOTSUPP);
}

TEST(MapTypes, RingBufPollAndEventfdAcrossThreads) {
  TempDir d;
  auto m = make(d, spec(BPF_MAP_TYPE_RINGBUF, 0, 0, 1 << 16));
  ASSERT_TRUE(m);
  auto& rb = dynamic_cast<RingBuf&>(*m);
  constexpr int kProducers = 2, kPerProducer = 20000;
  std::vector<std::uint32_t> last(kProducers, 0);
  long total = 0;
  bool in_order = true;
  RingBufConsumer c;
  c.add(*m, [&](const void* p, std::size_t) {
    std::uint32_t rec[2];
    std::memcpy(rec, p, 8);
    if (rec[1] != last[rec[0]] + 1) in_order = false;
    last[rec[0]] = rec[1];
    ++total;
    return 0;
  });
  const int efd = c.fd();
  ASSERT_GE(efd, 0);
  std::vector<std::thread> ps;
  for (std::uint32_t p = 0; p < kProducers; ++p)
    ps.emplace_back([&rb, p] {
      for (std::uint32_t i = 1; i <= kPerProducer;) {
        const std::uint32_t rec[2] = {p, i};
        if (rb.output(rec, 8, 0) == 0) ++i;
        else std::this_thread::yield();  // full: the consumer catches up
      }
    });
  // until everything arrived (a generous deadline: the machine may be loaded)
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (total < kProducers * kPerProducer && std::chrono::steady_clock::now() < deadline) {
    pollfd pfd{efd, POLLIN, 0};
    const int r = ::poll(&pfd, 1, 100);
    if (r > 0) c.consume();
    else c.poll(100);
  }
  for (auto& t : ps) t.join();
  c.consume();
  EXPECT_EQ(total, kProducers * kPerProducer);
  EXPECT_TRUE(in_order);
  // poll() times out when nothing comes
  EXPECT_EQ(c.poll(20), 0);
}

TEST(MapTypes, RingBufTwoProcesses) {
  TempDir d;
  auto m = make(d, spec(BPF_MAP_TYPE_RINGBUF, 0, 0, 1 << 14));
  ASSERT_TRUE(m);
  const std::string pin = d.path() + "/rb";
  ASSERT_TRUE(m->file().link(pin).ok());
  constexpr std::uint32_t kN = 20000;
  const pid_t pid = ::fork();
  if (pid == 0) {
    auto child = open_map(pin);
    if (!child.ok()) ::_exit(2);
    auto& rb = dynamic_cast<RingBuf&>(**child);
    for (std::uint32_t i = 1; i <= kN;) {
      if (rb.output(&i, 4, 0) == 0) ++i;
      else ::sched_yield();
    }
    ::_exit(0);
  }
  std::uint32_t expect = 1;
  bool ok = true;
  RingBufConsumer c;
  c.add(*m, [&](const void* p, std::size_t) {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    ok = ok && v == expect;
    ++expect;
    return 0;
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (expect <= kN && std::chrono::steady_clock::now() < deadline) c.poll(100);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(ok);
  EXPECT_EQ(expect, kN + 1);
}

TEST(MapTypes, PerfEventArrayAndPerfBuffer) {
  TempDir d;
  auto m = make(d, spec(BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 2));
  ASSERT_TRUE(m);
  auto& pa = dynamic_cast<PerfEventArray&>(*m);
  const std::uint32_t x = 5;
  EXPECT_EQ(pa.output(0, &x, 4), ENOENT);  // nobody listens yet
  EXPECT_EQ(pa.output(2, &x, 4), E2BIG);
  std::vector<std::pair<std::uint32_t, std::uint32_t>> samples;
  std::uint64_t lost = 0;
  auto pb = PerfBuffer::open(
      *m,
      [&](std::uint32_t cpu, const void* data, std::uint32_t size) {
        if (size < 100) EXPECT_EQ(size, 4u);  // round_up(4 + 4, 8) - 4: the kernel's raw size
        else EXPECT_EQ(size, 1004u);            // round_up(1000 + 4, 8) - 4
        std::uint32_t v;
        std::memcpy(&v, data, 4);
        samples.emplace_back(cpu, v);
      },
      [&](std::uint32_t, std::uint64_t n) { lost += n; });
  ASSERT_TRUE(pb.ok());
  for (std::uint32_t i = 0; i < 10; ++i) ASSERT_EQ(pa.output(i % 2, &i, 4), 0);
  EXPECT_EQ((*pb)->consume(), 10);
  ASSERT_EQ(samples.size(), 10u);
  EXPECT_EQ(samples[0], (std::pair<std::uint32_t, std::uint32_t>{0, 0}));
  EXPECT_EQ(samples[1], (std::pair<std::uint32_t, std::uint32_t>{0, 2}));
  // fill CPU 1's ring: the overflow is counted and reported as lost
  std::vector<std::uint8_t> big(1000, 1);
  int sent = 0, dropped = 0;
  for (int i = 0; i < 100; ++i) (pa.output(1, big.data(), big.size()) == 0 ? sent : dropped)++;
  EXPECT_GT(dropped, 0);
  samples.clear();
  (*pb)->consume();
  EXPECT_EQ(static_cast<int>(samples.size()), sent);
  EXPECT_EQ(pa.output(1, &x, 4), 0);  // room again: the lost record goes first
  (*pb)->consume();
  EXPECT_EQ(lost, static_cast<std::uint64_t>(dropped));
  EXPECT_EQ((*pb)->lost_total(), static_cast<std::uint64_t>(dropped));
  EXPECT_EQ((*pb)->poll(10), 0);
}

TEST(MapTypes, MapsOfMaps) {
  TempDir d;
  auto inner = make(d, spec(BPF_MAP_TYPE_ARRAY, 4, 8, 4));
  auto other = make(d, spec(BPF_MAP_TYPE_ARRAY, 4, 8, 5));
  ASSERT_TRUE(inner && other);
  MapSpec os = spec(BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 2);
  os.inner = inner.get();
  auto outer = make(d, os);
  MapSpec hs = spec(BPF_MAP_TYPE_HASH_OF_MAPS, 8, 4, 2);
  hs.inner = inner.get();
  auto houter = make(d, hs);
  ASSERT_TRUE(outer && houter);
  MapSpec nested = os;
  nested.inner = outer.get();
  EXPECT_EQ(create_errno(d, nested), EINVAL);
  OuterMap* o = as_outer(*outer);
  OuterMap* ho = as_outer(*houter);
  ASSERT_TRUE(o && ho);
  EXPECT_EQ(as_outer(*inner), nullptr);
  std::uint32_t k = 1;
  EXPECT_EQ(o->update_inner(&k, *other, 9, BPF_ANY), EINVAL);  // max_entries differs
  EXPECT_EQ(o->update_inner(&k, *inner, 7, BPF_ANY), 0);
  std::uint32_t id = 0;
  EXPECT_EQ(outer->lookup(&k, &id, 0), 0);
  EXPECT_EQ(id, 7u);
  EXPECT_EQ(outer->update(&k, &id, BPF_ANY), EINVAL);  // ids only through update_inner
  struct Ctx {
    Map* m;
  } ctx{inner.get()};
  o->set_resolver([](void* owner, std::uint32_t i) -> Map* { return i == 7 ? static_cast<Ctx*>(owner)->m : nullptr; },
                  &ctx);
  EXPECT_EQ(outer->prog_lookup(&k, 0), inner.get());
  EXPECT_TRUE(outer->holds_inner(inner.get()));
  EXPECT_FALSE(outer->holds_inner(other.get()));
  k = 0;
  EXPECT_EQ(outer->prog_lookup(&k, 0), nullptr);
  k = 1;
  EXPECT_EQ(outer->remove(&k), 0);
  EXPECT_EQ(outer->remove(&k), ENOENT);
  const std::uint64_t hk = 0x1234;
  EXPECT_EQ(ho->update_inner(&hk, *inner, 7, BPF_NOEXIST), 0);
  EXPECT_EQ(ho->update_inner(&hk, *inner, 7, BPF_NOEXIST), EEXIST);
  ho->set_resolver([](void* owner, std::uint32_t i) -> Map* { return i == 7 ? static_cast<Ctx*>(owner)->m : nullptr; },
                   &ctx);
  EXPECT_EQ(houter->prog_lookup(&hk, 0), inner.get());
  EXPECT_EQ(houter->lookup(&hk, &id, 0), 0);
  EXPECT_EQ(id, 7u);
  // BPF_F_INNER_MAP templates accept any max_entries
  auto flex = make(d, spec(BPF_MAP_TYPE_ARRAY, 4, 8, 4, BPF_F_INNER_MAP));
  auto flex2 = make(d, spec(BPF_MAP_TYPE_ARRAY, 4, 8, 40, BPF_F_INNER_MAP));
  MapSpec fs = os;
  fs.inner = flex.get();
  auto fouter = make(d, fs);
  EXPECT_EQ(as_outer(*fouter)->update_inner(&k, *flex2, 3, BPF_ANY), 0);
}

TEST(MapTypes, MmapableArrayIsShared) {
  TempDir d;
  auto m = make(d, spec(BPF_MAP_TYPE_ARRAY, 4, 8, 1000, BPF_F_MMAPABLE));
  ASSERT_TRUE(m);
  auto area = mmap_values(*m, true);
  ASSERT_TRUE(area.ok()) << area.error().to_string();
  auto* vals = reinterpret_cast<std::uint64_t*>(area->data());
  vals[5] = 55;
  std::uint32_t k = 5;
  std::uint64_t v = 0;
  EXPECT_EQ(m->lookup(&k, &v, 0), 0);
  EXPECT_EQ(v, 55u);
  v = 66;
  k = 999;
  EXPECT_EQ(m->update(&k, &v, BPF_ANY), 0);
  EXPECT_EQ(vals[999], 66u);
  EXPECT_EQ(*static_cast<std::uint64_t*>(m->prog_lookup(&k, 0)), 66u);
  ::munmap(area->data(), area->size());
  auto plain = make(d, spec(BPF_MAP_TYPE_ARRAY, 4, 8, 10));
  EXPECT_FALSE(mmap_values(*plain, false).ok());
  ASSERT_EQ(m->freeze(), 0);
  EXPECT_EQ(mmap_values(*m, true).error().code, EPERM);
}

TEST(MapTypes, SpinLockValues) {
  TempDir d;
  for (std::uint32_t type : {BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_ARRAY}) {
    MapSpec s = spec(type, 4, 16, 4);
    s.spin_lock_off = 0;  // struct { struct bpf_spin_lock l; u32 pad; u64 counter; }
    auto m = make(d, s);
    ASSERT_TRUE(m);
    std::uint32_t k = 1;
    std::uint64_t v[2] = {0xffffffffULL, 0};
    ASSERT_EQ(m->update(&k, v, BPF_ANY), 0);
    auto* p = static_cast<std::uint8_t*>(m->prog_lookup(&k, 0));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(*reinterpret_cast<std::uint32_t*>(p), 0u);  // the lock starts free whatever the host wrote
    // programs add under bpf_spin_lock while the host updates with BPF_F_LOCK
    std::atomic<bool> stop{false};
    std::thread prog([&] {
      for (int i = 0; i < 20000; ++i) {
        value_lock(p);
        auto* c = reinterpret_cast<std::uint64_t*>(p + 8);
        *c += 1;
        value_unlock(p);
      }
      stop = true;
    });
    std::uint64_t out[2];
    int reads = 0;
    do {
      ASSERT_EQ(m->lookup(&k, out, BPF_F_LOCK), 0);
      EXPECT_EQ(out[0] & 0xffffffffu, 0u);  // the lock field reads as 0
      ++reads;
    } while (!stop);
    prog.join();
    ASSERT_EQ(m->lookup(&k, out, BPF_F_LOCK), 0);
    EXPECT_EQ(out[1], 20000u);
    out[1] = 5;
    EXPECT_EQ(m->update(&k, out, BPF_F_LOCK | BPF_EXIST), 0);
    EXPECT_EQ(*reinterpret_cast<std::uint64_t*>(p + 8), 5u);
    EXPECT_GT(reads, 0);
  }
}

TEST(MapTypes, ForEachElem) {
  TempDir d;
  auto h = make(d, spec(BPF_MAP_TYPE_HASH, 4, 8, 64));
  for (std::uint32_t k = 0; k < 10; ++k) {
    const std::uint64_t v = k * 3;
    ASSERT_EQ(h->update(&k, &v, BPF_ANY), 0);
  }
  struct Acc {
    std::uint64_t sum = 0;
    int stop_after = 100;
    int seen = 0;
  } acc;
  auto visit = [](void* ctx, const void* key, void* value) -> std::uint64_t {
    auto* a = static_cast<Acc*>(ctx);
    std::uint32_t k;
    std::memcpy(&k, key, 4);
    a->sum += *static_cast<std::uint64_t*>(value) + k;
    return ++a->seen >= a->stop_after ? 1 : 0;
  };
  EXPECT_EQ(h->for_each_elem(0, visit, &acc), 10);
  EXPECT_EQ(acc.sum, 45u * 4);
  acc = Acc{};
  acc.stop_after = 3;
  EXPECT_EQ(h->for_each_elem(0, visit, &acc), 3);
  // the callback may delete from the map it walks
  auto del = [](void* ctx, const void* key, void*) -> std::uint64_t {
    static_cast<Map*>(ctx)->prog_delete(key);
    return 0;
  };
  EXPECT_EQ(h->for_each_elem(0, del, h.get()), 10);
  EXPECT_EQ(keys_u32(*h).size(), 0u);
  MapSpec ps = spec(BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 4);
  ps.ncpus = 2;
  auto pa = make(d, ps);
  *static_cast<std::uint64_t*>(pa->lookup_percpu(&acc.seen, 1)) = 0;  // key 0 (seen == 0)
  acc = Acc{};
  EXPECT_EQ(pa->for_each_elem(1, visit, &acc), 4);
  EXPECT_EQ(pa->for_each_elem(2, visit, &acc), -EINVAL);
  auto q = make(d, spec(BPF_MAP_TYPE_QUEUE, 0, 4, 4));
  EXPECT_EQ(q->for_each_elem(0, visit, &acc), -EINVAL);
}

TEST(MapTypes, StackTraceBuckets) {
  TempDir d;
  auto m = make(d, spec(BPF_MAP_TYPE_STACK_TRACE, 4, 8 * 4, 64));
  ASSERT_TRUE(m);
  auto& st = dynamic_cast<StackTraceMap&>(*m);
  EXPECT_EQ(st.max_depth(), 4u);
  const std::uint64_t a[3] = {0x1000, 0x2000, 0x3000};
  const std::uint64_t b[6] = {0x1111, 0x2222, 0x3333, 0x4444, 0x5555, 0x6666};
  const long ida = st.get_stackid(a, 3, 0);
  ASSERT_GE(ida, 0);
  EXPECT_EQ(st.get_stackid(a, 3, 0), ida);  // same stack, same id
  const long idb = st.get_stackid(b, 6, 0);  // truncated to 4 frames
  ASSERT_GE(idb, 0);
  EXPECT_EQ(st.get_stackid(a, 0, 0), -EFAULT);
  EXPECT_EQ(st.get_stackid(a, 3, 1ull << 20), -EINVAL);
  std::uint64_t out[4];
  auto key = static_cast<std::uint32_t>(ida);
  ASSERT_EQ(m->lookup(&key, out, 0), 0);
  EXPECT_EQ(out[0], 0x1000u);
  EXPECT_EQ(out[2], 0x3000u);
  EXPECT_EQ(out[3], 0u);  // zero padded
  key = static_cast<std::uint32_t>(idb);
  ASSERT_EQ(m->lookup(&key, out, 0), 0);
  EXPECT_EQ(out[3], 0x4444u);
  // a different stack in a taken bucket: EEXIST unless BPF_F_REUSE_STACKID
  auto one = make(d, spec(BPF_MAP_TYPE_STACK_TRACE, 4, 8 * 4, 1));  // one bucket
  auto& st1 = dynamic_cast<StackTraceMap&>(*one);
  EXPECT_EQ(st1.get_stackid(a, 3, 0), 0);
  EXPECT_EQ(st1.get_stackid(b, 4, 0), -EEXIST);
  EXPECT_EQ(st1.get_stackid(b, 4, BPF_F_REUSE_STACKID), 0);
  std::uint32_t zero = 0;
  ASSERT_EQ(one->lookup(&zero, out, 0), 0);
  EXPECT_EQ(out[0], 0x1111u);
  EXPECT_EQ(st1.get_stackid(a, 3, BPF_F_FAST_STACK_CMP), -EEXIST);
  std::uint32_t n = 0, prev = 0;
  std::set<std::uint32_t> ids;
  const void* pk = nullptr;
  while (m->get_next_key(pk, &n) == 0) {
    ids.insert(n);
    prev = n;
    pk = &prev;
  }
  EXPECT_TRUE(ids.count(static_cast<std::uint32_t>(ida)));
  EXPECT_TRUE(ids.count(static_cast<std::uint32_t>(idb)));
  key = 64;
  EXPECT_EQ(m->remove(&key), E2BIG);
  key = static_cast<std::uint32_t>(idb);
  EXPECT_EQ(m->remove(&key), 0);
  EXPECT_EQ(m->remove(&key), ENOENT);
  EXPECT_EQ(m->lookup(&key, out, 0), ENOENT);
  EXPECT_EQ(m->update(&key, out, 0), EINVAL);
}
