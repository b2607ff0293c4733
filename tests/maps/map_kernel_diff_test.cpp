// Differential tests against the kernel's maps: the same bpf() operations on
// a kernel map and on a userbpf map must give the same errno and the same
// contents (LPM trie: the same GET_NEXT_KEY order too). Skipped when the
// kernel's bpf() is not available.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "../runtime/test_util.hpp"
#include "kernel_maps.hpp"
#include "map_test_util.hpp"
#include "maps/map.hpp"
#include "maps/map_of_maps.hpp"
#include "maps/registry.hpp"

using namespace userbpf;
using namespace userbpf::maps;
using userbpf::testing::TempDir;
using userbpf::maps::test::spec;
using namespace userbpf::maps::test;

namespace {

bool kernel_ok() {
  const int fd = kcreate(spec(BPF_MAP_TYPE_ARRAY, 4, 4, 1));
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

#define REQUIRE_KERNEL() \
  if (!kernel_ok()) GTEST_SKIP() << "kernel bpf() unavailable: " << std::strerror(errno)

// The same map on both sides.
struct Twin {
  TempDir dir;
  int kfd = -1;
  std::unique_ptr<Map> u;
  Twin(const MapSpec& s, int kinner = -1, const Map* uinner = nullptr) {
    kfd = kcreate(s, kinner);
    MapSpec us = s;
    us.inner = uinner;
    auto m = create_map(us, dir.path());
    EXPECT_GE(kfd, 0) << std::strerror(-kfd);
    EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().to_string());
    if (m.ok()) u = std::move(*m);
  }
  ~Twin() {
    if (kfd >= 0) ::close(kfd);
  }
  [[nodiscard]] bool ok() const { return kfd >= 0 && u != nullptr; }
};

struct CreateCase {
  const char* what;
  MapSpec s;
};

}  // namespace

TEST(MapKernelDiff, CreateErrno) {
  REQUIRE_KERNEL();
  TempDir d;
  auto with_extra = [](MapSpec s, std::uint64_t e) {
    s.map_extra = e;
    return s;
  };
  const std::vector<CreateCase> cases = {
      {"lru ok", spec(BPF_MAP_TYPE_LRU_HASH, 4, 8, 64)},
      {"lru no prealloc", spec(BPF_MAP_TYPE_LRU_HASH, 4, 8, 64, BPF_F_NO_PREALLOC)},
      {"lru no common", spec(BPF_MAP_TYPE_LRU_HASH, 4, 8, 64, BPF_F_NO_COMMON_LRU)},
      {"hash no common", spec(BPF_MAP_TYPE_HASH, 4, 8, 64, BPF_F_NO_COMMON_LRU)},
      {"lru key 0", spec(BPF_MAP_TYPE_LRU_HASH, 0, 8, 64)},
      {"lru percpu ok", spec(BPF_MAP_TYPE_LRU_PERCPU_HASH, 4, 8, 64)},
      {"lru percpu big", spec(BPF_MAP_TYPE_LRU_PERCPU_HASH, 4, 40000, 64)},
      {"lru mmapable", spec(BPF_MAP_TYPE_LRU_HASH, 4, 8, 64, BPF_F_MMAPABLE)},
      {"lpm ok", spec(BPF_MAP_TYPE_LPM_TRIE, 8, 8, 64, BPF_F_NO_PREALLOC)},
      {"lpm prealloc", spec(BPF_MAP_TYPE_LPM_TRIE, 8, 8, 64)},
      {"lpm key 4", spec(BPF_MAP_TYPE_LPM_TRIE, 4, 8, 64, BPF_F_NO_PREALLOC)},
      {"lpm key 261", spec(BPF_MAP_TYPE_LPM_TRIE, 261, 8, 64, BPF_F_NO_PREALLOC)},
      {"lpm key 260", spec(BPF_MAP_TYPE_LPM_TRIE, 260, 8, 64, BPF_F_NO_PREALLOC)},
      {"lpm value 0", spec(BPF_MAP_TYPE_LPM_TRIE, 8, 0, 64, BPF_F_NO_PREALLOC)},
      {"lpm max 0", spec(BPF_MAP_TYPE_LPM_TRIE, 8, 8, 0, BPF_F_NO_PREALLOC)},
      {"lpm zero seed", spec(BPF_MAP_TYPE_LPM_TRIE, 8, 8, 4, BPF_F_NO_PREALLOC | BPF_F_ZERO_SEED)},
      {"queue ok", spec(BPF_MAP_TYPE_QUEUE, 0, 8, 16)},
      {"queue key", spec(BPF_MAP_TYPE_QUEUE, 4, 8, 16)},
      {"queue value 0", spec(BPF_MAP_TYPE_QUEUE, 0, 0, 16)},
      {"queue max 0", spec(BPF_MAP_TYPE_QUEUE, 0, 8, 0)},
      {"queue no prealloc", spec(BPF_MAP_TYPE_QUEUE, 0, 8, 16, BPF_F_NO_PREALLOC)},
      {"stack ok", spec(BPF_MAP_TYPE_STACK, 0, 8, 16, BPF_F_RDONLY_PROG)},
      {"stack zero seed", spec(BPF_MAP_TYPE_STACK, 0, 8, 16, BPF_F_ZERO_SEED)},
      {"bloom ok", spec(BPF_MAP_TYPE_BLOOM_FILTER, 0, 8, 100)},
      {"bloom extra 15", with_extra(spec(BPF_MAP_TYPE_BLOOM_FILTER, 0, 8, 100), 15)},
      {"bloom extra 16", with_extra(spec(BPF_MAP_TYPE_BLOOM_FILTER, 0, 8, 100), 16)},
      {"bloom key", spec(BPF_MAP_TYPE_BLOOM_FILTER, 4, 8, 100)},
      {"bloom zero seed", spec(BPF_MAP_TYPE_BLOOM_FILTER, 0, 8, 100, BPF_F_ZERO_SEED)},
      {"bloom no prealloc", spec(BPF_MAP_TYPE_BLOOM_FILTER, 0, 8, 100, BPF_F_NO_PREALLOC)},
      {"array extra", with_extra(spec(BPF_MAP_TYPE_ARRAY, 4, 8, 100), 1)},
      {"ringbuf ok", spec(BPF_MAP_TYPE_RINGBUF, 0, 0, 4096)},
      {"ringbuf 3 pages", spec(BPF_MAP_TYPE_RINGBUF, 0, 0, 3 * 4096)},
      {"ringbuf half page", spec(BPF_MAP_TYPE_RINGBUF, 0, 0, 2048)},
      {"ringbuf key", spec(BPF_MAP_TYPE_RINGBUF, 4, 0, 4096)},
      {"ringbuf value", spec(BPF_MAP_TYPE_RINGBUF, 0, 4, 4096)},
      {"ringbuf rdonly", spec(BPF_MAP_TYPE_RINGBUF, 0, 0, 4096, BPF_F_RDONLY)},
      {"perf ok", spec(BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 4)},
      {"perf value 8", spec(BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 8, 4)},
      {"perf rdonly prog", spec(BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 4, BPF_F_RDONLY_PROG)},
      {"perf preserve", spec(BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 4, BPF_F_PRESERVE_ELEMS)},
      {"array preserve", spec(BPF_MAP_TYPE_ARRAY, 4, 4, 4, BPF_F_PRESERVE_ELEMS)},
      {"array mmapable", spec(BPF_MAP_TYPE_ARRAY, 4, 4, 4, BPF_F_MMAPABLE)},
      {"percpu array mmapable", spec(BPF_MAP_TYPE_PERCPU_ARRAY, 4, 4, 4, BPF_F_MMAPABLE)},
      {"array of maps no inner", spec(BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 4)},
      {"stack trace ok", spec(BPF_MAP_TYPE_STACK_TRACE, 4, 8 * 127, 16)},
      {"stack trace deep", spec(BPF_MAP_TYPE_STACK_TRACE, 4, 8 * 128, 16)},
      {"stack trace odd", spec(BPF_MAP_TYPE_STACK_TRACE, 4, 12, 16)},
      {"stack trace key 8", spec(BPF_MAP_TYPE_STACK_TRACE, 8, 16, 16)},
      {"stack trace build id", spec(BPF_MAP_TYPE_STACK_TRACE, 4, 64, 16, BPF_F_STACK_BUILD_ID)},
      {"stack trace build id odd", spec(BPF_MAP_TYPE_STACK_TRACE, 4, 48, 16, BPF_F_STACK_BUILD_ID)},
      {"stack trace no prealloc", spec(BPF_MAP_TYPE_STACK_TRACE, 4, 16, 16, BPF_F_NO_PREALLOC)},
  };
  for (const auto& c : cases) {
    const int k = kcreate(c.s);
    if (k >= 0) ::close(k);
    auto m = create_map(c.s, d.path());
    const int u = m.ok() ? 0 : m.error().code;
    EXPECT_EQ(u, k < 0 ? -k : 0) << c.what << (m.ok() ? "" : ": " + m.error().to_string());
  }
}

TEST(MapKernelDiff, QueueStackSequences) {
  REQUIRE_KERNEL();
  for (std::uint32_t type : {BPF_MAP_TYPE_QUEUE, BPF_MAP_TYPE_STACK}) {
    Twin t(spec(type, 0, 8, 5));
    ASSERT_TRUE(t.ok());
    std::mt19937 rng(type);
    for (int step = 0; step < 400; ++step) {
      std::uint64_t v = rng(), kv = 0, uv = 0;
      const int op = static_cast<int>(rng() % 5);
      int ke = 0, ue = 0;
      if (op <= 1) {
        const std::uint64_t flags = rng() % 4;
        ke = kop(BPF_MAP_UPDATE_ELEM, t.kfd, nullptr, &v, flags);
        ue = t.u->update(nullptr, &v, flags);
      } else if (op == 2) {
        ke = kop(BPF_MAP_LOOKUP_ELEM, t.kfd, nullptr, &kv, 0);
        ue = t.u->lookup(nullptr, &uv, 0);
      } else if (op == 3) {
        ke = kop(BPF_MAP_LOOKUP_AND_DELETE_ELEM, t.kfd, nullptr, &kv, 0);
        ue = t.u->lookup_and_delete(nullptr, &uv, 0);
      } else {
        ke = kop(BPF_MAP_DELETE_ELEM, t.kfd, nullptr, nullptr, 0);
        ue = t.u->remove(nullptr);
      }
      ASSERT_EQ(ue, ke) << "type " << type << " step " << step << " op " << op;
      ASSERT_EQ(uv, kv) << "type " << type << " step " << step;
    }
    std::uint64_t k = 0, n = 0;
    EXPECT_EQ(t.u->get_next_key(nullptr, &n), knext(t.kfd, nullptr, &k));
  }
}

TEST(MapKernelDiff, LpmTrieContentsAndOrder) {
  REQUIRE_KERNEL();
  for (std::uint32_t data_size : {4u, 16u}) {
    Twin t(spec(BPF_MAP_TYPE_LPM_TRIE, 4 + data_size, 8, 64, BPF_F_NO_PREALLOC));
    ASSERT_TRUE(t.ok());
    std::mt19937 rng(data_size);
    const std::uint32_t maxp = data_size * 8;
    std::vector<std::uint8_t> key(4 + data_size), kv(8), uv(8), kn(4 + data_size), un(4 + data_size);
    auto random_key = [&] {
      std::uint32_t plen = rng() % (maxp + 2);  // sometimes invalid (maxp + 1)
      std::memcpy(key.data(), &plen, 4);
      for (std::uint32_t i = 0; i < data_size; ++i)
        key[4 + i] = static_cast<std::uint8_t>(i < 2 ? (rng() % 2) * 0x80 + 1 : rng() % 4);  // shared prefixes
    };
    for (int step = 0; step < 600; ++step) {
      random_key();
      const int op = static_cast<int>(rng() % 6);
      int ke = 0, ue = 0;
      std::uint64_t val = rng();
      std::fill(kv.begin(), kv.end(), 0);
      std::fill(uv.begin(), uv.end(), 0);
      if (op <= 2) {
        const std::uint64_t flags = rng() % 4;
        ke = kop(BPF_MAP_UPDATE_ELEM, t.kfd, key.data(), &val, flags);
        ue = t.u->update(key.data(), &val, flags);
      } else if (op == 3) {
        ke = kop(BPF_MAP_DELETE_ELEM, t.kfd, key.data(), nullptr, 0);
        ue = t.u->remove(key.data());
      } else if (op == 4) {
        ke = kop(BPF_MAP_LOOKUP_ELEM, t.kfd, key.data(), kv.data(), 0);
        ue = t.u->lookup(key.data(), uv.data(), 0);
      } else {
        std::fill(kn.begin(), kn.end(), 0);
        std::fill(un.begin(), un.end(), 0);
        ke = knext(t.kfd, key.data(), kn.data());
        ue = t.u->get_next_key(key.data(), un.data());
        ASSERT_EQ(un, kn) << "next key, step " << step;
      }
      std::string kh;
      for (auto b : key) kh += std::to_string(b) + ".";
      ASSERT_EQ(ue, ke) << "data " << data_size << " step " << step << " op " << op << " key " << kh;
      ASSERT_EQ(uv, kv) << "step " << step;
    }
    // the whole iteration, in order
    std::vector<std::vector<std::uint8_t>> korder, uorder;
    std::vector<std::uint8_t> cur;
    for (int side = 0; side < 2; ++side) {
      auto& out = side == 0 ? korder : uorder;
      std::vector<std::uint8_t> next(4 + data_size);
      const void* prev = nullptr;
      while ((side == 0 ? knext(t.kfd, prev, next.data()) : t.u->get_next_key(prev, next.data())) == 0 &&
             out.size() < 200) {
        out.push_back(next);
        cur = next;
        prev = cur.data();
      }
    }
    EXPECT_GT(korder.size(), 5u);
    EXPECT_EQ(uorder, korder);
    // the generic lookup batch (key tokens), 3 elements at a time
    const std::size_t ks = 4 + data_size;
    for (int side = 0; side < 2; ++side) {
      std::vector<std::vector<std::uint8_t>> got;
      std::vector<std::uint8_t> token(ks), in(ks), keys(3 * ks), vals(3 * 8);
      bool first = true;
      int e = 0;
      for (int guard = 0; guard < 100 && e == 0; ++guard) {
        std::uint32_t count = 3;
        if (side == 0) {
          bpf_attr a{};
          a.batch.map_fd = static_cast<std::uint32_t>(t.kfd);
          a.batch.in_batch = first ? 0 : reinterpret_cast<std::uint64_t>(in.data());
          a.batch.out_batch = reinterpret_cast<std::uint64_t>(token.data());
          a.batch.keys = reinterpret_cast<std::uint64_t>(keys.data());
          a.batch.values = reinterpret_cast<std::uint64_t>(vals.data());
          a.batch.count = count;
          e = kerr(kbpf(BPF_MAP_LOOKUP_BATCH, a));
          count = a.batch.count;
        } else {
          e = t.u->lookup_batch_keyed(first ? nullptr : in.data(), token.data(), keys.data(), vals.data(), count);
        }
        for (std::uint32_t i = 0; i < count; ++i) got.emplace_back(keys.begin() + i * ks, keys.begin() + (i + 1) * ks);
        in = token;
        first = false;
      }
      EXPECT_EQ(e, ENOENT);
      EXPECT_EQ(got, korder) << (side == 0 ? "kernel" : "userbpf") << " batch";
    }
  }
}

TEST(MapKernelDiff, LruHashBelowCapacity) {
  REQUIRE_KERNEL();
  for (std::uint32_t flags : {0u, static_cast<std::uint32_t>(BPF_F_NO_COMMON_LRU)}) {
    Twin t(spec(BPF_MAP_TYPE_LRU_HASH, 4, 8, 4096, flags));
    ASSERT_TRUE(t.ok());
    std::mt19937 rng(flags + 1);
    for (int step = 0; step < 500; ++step) {
      std::uint32_t k = rng() % 128;
      std::uint64_t v = rng(), kv = 0, uv = 0;
      const int op = static_cast<int>(rng() % 4);
      int ke = 0, ue = 0;
      if (op <= 1) {
        const std::uint64_t f = rng() % 4;
        ke = kop(BPF_MAP_UPDATE_ELEM, t.kfd, &k, &v, f);
        ue = t.u->update(&k, &v, f);
      } else if (op == 2) {
        ke = kop(BPF_MAP_DELETE_ELEM, t.kfd, &k, nullptr, 0);
        ue = t.u->remove(&k);
      } else {
        ke = kop(BPF_MAP_LOOKUP_AND_DELETE_ELEM, t.kfd, &k, &kv, 0);
        ue = t.u->lookup_and_delete(&k, &uv, 0);
      }
      ASSERT_EQ(ue, ke) << "step " << step << " op " << op;
      ASSERT_EQ(uv, kv);
    }
    std::map<std::uint32_t, std::uint64_t> kc, uc;
    for (std::uint32_t k = 0; k < 128; ++k) {
      std::uint64_t v = 0;
      if (kop(BPF_MAP_LOOKUP_ELEM, t.kfd, &k, &v, 0) == 0) kc[k] = v;
      if (t.u->lookup(&k, &v, 0) == 0) uc[k] = v;
    }
    EXPECT_EQ(uc, kc);
    EXPECT_FALSE(kc.empty());
  }
}

TEST(MapKernelDiff, BloomRingbufPerfCommandErrno) {
  REQUIRE_KERNEL();
  {
    MapSpec s = spec(BPF_MAP_TYPE_BLOOM_FILTER, 0, 8, 100);
    s.map_extra = 4;
    Twin t(s);
    ASSERT_TRUE(t.ok());
    for (std::uint64_t v = 0; v < 50; v += 2) {
      for (std::uint64_t f = 0; f < 3; ++f)
        EXPECT_EQ(t.u->update(nullptr, &v, f), kop(BPF_MAP_UPDATE_ELEM, t.kfd, nullptr, &v, f)) << f;
    }
    for (std::uint64_t v = 0; v < 50; v += 2) {
      std::uint64_t a = v, b = v;
      EXPECT_EQ(t.u->lookup(nullptr, &a, 0), 0);
      EXPECT_EQ(kop(BPF_MAP_LOOKUP_ELEM, t.kfd, nullptr, &b, 0), 0);
    }
    std::uint64_t v = 0, n = 0;
    EXPECT_EQ(t.u->remove(nullptr), kop(BPF_MAP_DELETE_ELEM, t.kfd, nullptr, nullptr, 0));
    EXPECT_EQ(t.u->get_next_key(nullptr, &n), knext(t.kfd, nullptr, &n));
    EXPECT_EQ(t.u->lookup_and_delete(nullptr, &v, 0), kop(BPF_MAP_LOOKUP_AND_DELETE_ELEM, t.kfd, nullptr, &v, 0));
  }
  {
    Twin t(spec(BPF_MAP_TYPE_RINGBUF, 0, 0, 4096));
    ASSERT_TRUE(t.ok());
    std::uint64_t v = 0, n = 0;
    EXPECT_EQ(t.u->lookup(nullptr, &v, 0), kop(BPF_MAP_LOOKUP_ELEM, t.kfd, nullptr, &v, 0));
    EXPECT_EQ(t.u->update(nullptr, &v, 0), kop(BPF_MAP_UPDATE_ELEM, t.kfd, nullptr, &v, 0));
    EXPECT_EQ(t.u->remove(nullptr), kop(BPF_MAP_DELETE_ELEM, t.kfd, nullptr, nullptr, 0));
    EXPECT_EQ(t.u->get_next_key(nullptr, &n), knext(t.kfd, nullptr, &n));
  }
  {
    Twin t(spec(BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 4));
    ASSERT_TRUE(t.ok());
    std::uint32_t k = 1, v = 0, n = 0;
    EXPECT_EQ(t.u->lookup(&k, &v, 0), kop(BPF_MAP_LOOKUP_ELEM, t.kfd, &k, &v, 0));
    EXPECT_EQ(t.u->remove(&k), kop(BPF_MAP_DELETE_ELEM, t.kfd, &k, nullptr, 0));
    k = 9;
    EXPECT_EQ(t.u->remove(&k), kop(BPF_MAP_DELETE_ELEM, t.kfd, &k, nullptr, 0));
    EXPECT_EQ(t.u->get_next_key(&k, &n), knext(t.kfd, &k, &n));
  }
  {
    Twin t(spec(BPF_MAP_TYPE_STACK_TRACE, 4, 32, 8));
    ASSERT_TRUE(t.ok());
    std::uint64_t v[4] = {};
    std::uint32_t n = 0, m = 0;
    for (std::uint32_t k : {0u, 3u, 8u, 100u}) {
      EXPECT_EQ(t.u->lookup(&k, v, 0), kop(BPF_MAP_LOOKUP_ELEM, t.kfd, &k, v, 0)) << k;
      EXPECT_EQ(t.u->update(&k, v, 0), kop(BPF_MAP_UPDATE_ELEM, t.kfd, &k, v, 0)) << k;
      EXPECT_EQ(t.u->remove(&k), kop(BPF_MAP_DELETE_ELEM, t.kfd, &k, nullptr, 0)) << k;
      EXPECT_EQ(t.u->get_next_key(&k, &n), knext(t.kfd, &k, &m)) << k;
      EXPECT_EQ(t.u->lookup_and_delete(&k, v, 0), kop(BPF_MAP_LOOKUP_AND_DELETE_ELEM, t.kfd, &k, v, 0)) << k;
    }
  }
  {
    Twin t(spec(BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 4));
    ASSERT_TRUE(t.ok());
    for (std::uint32_t k : {1u, 9u}) EXPECT_EQ(t.u->remove(&k), kop(BPF_MAP_DELETE_ELEM, t.kfd, &k, nullptr, 0)) << k;
  }
}

TEST(MapKernelDiff, MapsOfMaps) {
  REQUIRE_KERNEL();
  TempDir d;
  const MapSpec inner_s = spec(BPF_MAP_TYPE_HASH, 4, 8, 16);
  const int kin = kcreate(inner_s);
  ASSERT_GE(kin, 0);
  auto uin = create_map(inner_s, d.path());
  ASSERT_TRUE(uin.ok());
  const MapSpec other_s = spec(BPF_MAP_TYPE_HASH, 4, 8, 17);
  const int kother = kcreate(other_s);
  auto uother = create_map(other_s, d.path());
  ASSERT_TRUE(uother.ok());
  for (std::uint32_t type : {BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_HASH_OF_MAPS}) {
    Twin t(spec(type, 4, 4, 4), kin, uin->get());
    ASSERT_TRUE(t.ok());
    OuterMap* o = as_outer(*t.u);
    ASSERT_NE(o, nullptr);
    for (std::uint32_t k : {0u, 1u, 7u}) {
      for (std::uint64_t f : {0ull, 1ull, 2ull}) {
        const int ke = kop(BPF_MAP_UPDATE_ELEM, t.kfd, &k, const_cast<int*>(&kin), f);
        EXPECT_EQ(o->update_inner(&k, **uin, 5, f), ke) << type << " key " << k << " flags " << f;
      }
      EXPECT_EQ(o->update_inner(&k, **uother, 6, 0), kop(BPF_MAP_UPDATE_ELEM, t.kfd, &k, const_cast<int*>(&kother), 0))
          << "template mismatch";
      std::uint32_t kid = 0, uid = 0;
      const int ke = kop(BPF_MAP_LOOKUP_ELEM, t.kfd, &k, &kid, 0);
      EXPECT_EQ(t.u->lookup(&k, &uid, 0), ke);
      EXPECT_EQ(t.u->remove(&k), kop(BPF_MAP_DELETE_ELEM, t.kfd, &k, nullptr, 0));
      EXPECT_EQ(t.u->remove(&k), kop(BPF_MAP_DELETE_ELEM, t.kfd, &k, nullptr, 0));
    }
    // nested maps of maps are refused
    const int nested = kcreate(spec(type, 4, 4, 4), t.kfd);
    if (nested >= 0) ::close(nested);
    MapSpec ns = spec(type, 4, 4, 4);
    ns.inner = t.u.get();
    auto un = create_map(ns, d.path());
    EXPECT_EQ(un.ok() ? 0 : un.error().code, nested < 0 ? -nested : 0);
  }
  ::close(kin);
  ::close(kother);
}

TEST(MapKernelDiff, BatchCommandsExistWhereTheKernelHasThem) {
  REQUIRE_KERNEL();
  TempDir d;
  const MapSpec inner_s = spec(BPF_MAP_TYPE_ARRAY, 4, 8, 4);
  const int kin = kcreate(inner_s);
  auto uin = create_map(inner_s, d.path());
  ASSERT_TRUE(kin >= 0 && uin.ok());
  MapSpec bloom = spec(BPF_MAP_TYPE_BLOOM_FILTER, 0, 8, 16);
  const std::vector<MapSpec> specs = {
      spec(BPF_MAP_TYPE_LRU_HASH, 4, 8, 16),        spec(BPF_MAP_TYPE_LRU_PERCPU_HASH, 4, 8, 16),
      spec(BPF_MAP_TYPE_LPM_TRIE, 8, 8, 16, BPF_F_NO_PREALLOC), spec(BPF_MAP_TYPE_QUEUE, 0, 8, 16),
      spec(BPF_MAP_TYPE_STACK, 0, 8, 16),           bloom,
      spec(BPF_MAP_TYPE_RINGBUF, 0, 0, 4096),       spec(BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 4),
      spec(BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 4),    spec(BPF_MAP_TYPE_HASH_OF_MAPS, 4, 4, 4),
  };
  for (const MapSpec& s : specs) {
    const bool outer = s.type == BPF_MAP_TYPE_ARRAY_OF_MAPS || s.type == BPF_MAP_TYPE_HASH_OF_MAPS;
    Twin t(s, outer ? kin : -1, outer ? uin->get() : nullptr);
    ASSERT_TRUE(t.ok()) << s.type;
    std::vector<std::uint8_t> keys(64 * 8), values(64 * 4096);
    for (int cmd : {BPF_MAP_LOOKUP_BATCH, BPF_MAP_LOOKUP_AND_DELETE_BATCH, BPF_MAP_UPDATE_BATCH,
                    BPF_MAP_DELETE_BATCH}) {
      bpf_attr a{};
      std::uint64_t out_batch = 0;
      a.batch.map_fd = static_cast<std::uint32_t>(t.kfd);
      a.batch.keys = reinterpret_cast<std::uint64_t>(keys.data());
      a.batch.values = reinterpret_cast<std::uint64_t>(values.data());
      a.batch.out_batch = reinterpret_cast<std::uint64_t>(&out_batch);
      a.batch.count = 0;
      const int ke = kerr(kbpf(cmd, a));
      std::uint32_t count = 0, token = 0;
      int ue = 0;
      if (cmd == BPF_MAP_UPDATE_BATCH) ue = t.u->update_batch(keys.data(), values.data(), count, 0);
      else if (cmd == BPF_MAP_DELETE_BATCH) ue = t.u->delete_batch(keys.data(), count);
      else ue = t.u->lookup_batch(true, token, keys.data(), values.data(), count, cmd == BPF_MAP_LOOKUP_AND_DELETE_BATCH);
      EXPECT_EQ(ue == kENOTSUPP, ke == kENOTSUPP) << "type " << s.type << " cmd " << cmd << " kernel " << ke
                                                   << " userbpf " << ue;
    }
  }
  ::close(kin);
}
