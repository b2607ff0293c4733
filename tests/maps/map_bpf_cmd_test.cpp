// The new map types through the bpf() command layer of the runtime, side by
// side with the kernel: maps of maps created with inner_map_fd and updated
// with map handles, keyless maps (queue, bloom) with NULL keys, the LPM
// generic batch through BPF_MAP_LOOKUP_BATCH.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <functional>

#include "../runtime/test_util.hpp"
#include "bpf_sides.hpp"
#include "kernel_maps.hpp"
#include "map_spec.hpp"
#include "maps/map.hpp"
#include "runtime/runtime.hpp"

using namespace userbpf;
using userbpf::testing::TempDir;

namespace {

// The script's results on one side (the kernel's bpf() or userbpf's).
using maps::test::Side;

std::vector<long> script(const Side& s) {
  std::vector<long> out;
  const maps::test::MapOps ops{s};
  auto create = [&](std::uint32_t type, std::uint32_t ks, std::uint32_t vs, std::uint32_t max, std::uint32_t flags,
                    int inner) { return ops.create(type, ks, vs, max, flags, inner); };
  auto op = [&](int cmd, int fd, const void* key, void* value, std::uint64_t flags) {
    return ops.op(cmd, fd, key, value, flags);
  };
  const int inner = create(BPF_MAP_TYPE_HASH, 4, 8, 8, 0, -1);
  const int other = create(BPF_MAP_TYPE_ARRAY, 4, 8, 8, 0, -1);
  out.push_back(inner >= 0);
  out.push_back(create(BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 4, 0, -1) >= 0 ? 0 : -1);  // no inner: refused
  const int outer = create(BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 4, 0, inner);
  const int houter = create(BPF_MAP_TYPE_HASH_OF_MAPS, 4, 4, 4, 0, inner);
  out.push_back(outer >= 0);
  out.push_back(houter >= 0);
  std::uint32_t k = 1, id = 0;
  int fd = inner;
  out.push_back(op(BPF_MAP_UPDATE_ELEM, outer, &k, &fd, BPF_ANY));
  out.push_back(op(BPF_MAP_UPDATE_ELEM, houter, &k, &fd, BPF_NOEXIST));
  out.push_back(op(BPF_MAP_UPDATE_ELEM, houter, &k, &fd, BPF_NOEXIST));
  out.push_back(op(BPF_MAP_LOOKUP_ELEM, outer, &k, &id, 0));
  out.push_back(id != 0);
  fd = other;  // wrong template
  out.push_back(op(BPF_MAP_UPDATE_ELEM, outer, &k, &fd, BPF_ANY));
  fd = 9999;  // not a handle
  out.push_back(op(BPF_MAP_UPDATE_ELEM, outer, &k, &fd, BPF_ANY));
  out.push_back(op(BPF_MAP_DELETE_ELEM, outer, &k, nullptr, 0));
  out.push_back(op(BPF_MAP_DELETE_ELEM, houter, &k, nullptr, 0));
  // keyless maps: NULL keys
  const int q = create(BPF_MAP_TYPE_QUEUE, 0, 8, 4, 0, -1);
  std::uint64_t v = 42, got = 0;
  out.push_back(op(BPF_MAP_UPDATE_ELEM, q, nullptr, &v, BPF_ANY));
  out.push_back(op(BPF_MAP_UPDATE_ELEM, q, &k, &v, BPF_ANY));  // a key for a keyless map
  out.push_back(op(BPF_MAP_LOOKUP_ELEM, q, nullptr, &got, 0));
  out.push_back(static_cast<long>(got));
  out.push_back(op(BPF_MAP_LOOKUP_AND_DELETE_ELEM, q, nullptr, &got, 0));
  out.push_back(op(BPF_MAP_LOOKUP_AND_DELETE_ELEM, q, nullptr, &got, 0));
  out.push_back(op(BPF_MAP_DELETE_ELEM, q, nullptr, nullptr, 0));
  // LPM generic batch
  const int lpm = create(BPF_MAP_TYPE_LPM_TRIE, 8, 4, 16, BPF_F_NO_PREALLOC, -1);
  for (std::uint32_t i = 0; i < 5; ++i) {
    struct {
      std::uint32_t plen;
      std::uint8_t d[4];
    } key{8 + i * 4, {10, static_cast<std::uint8_t>(i * 16), 0, 0}};
    out.push_back(op(BPF_MAP_UPDATE_ELEM, lpm, &key, &i, BPF_ANY));
  }
  std::uint8_t keys[16 * 8], vals[16 * 4], token[8];
  bpf_attr b{};
  b.batch.map_fd = static_cast<std::uint32_t>(lpm);
  b.batch.keys = reinterpret_cast<std::uint64_t>(keys);
  b.batch.values = reinterpret_cast<std::uint64_t>(vals);
  b.batch.out_batch = reinterpret_cast<std::uint64_t>(token);
  b.batch.count = 16;
  out.push_back(s.bpf(BPF_MAP_LOOKUP_BATCH, b));
  out.push_back(b.batch.count);
  for (int fdx : {inner, other, outer, houter, q, lpm})
    if (fdx >= 0) s.close(fdx);
  return out;
}

}  // namespace

TEST(MapBpfCommands, SameAsKernel) {
  const int probe = maps::test::kcreate(maps::test::spec(BPF_MAP_TYPE_ARRAY, 4, 4, 1));
  if (probe < 0) GTEST_SKIP() << "kernel bpf() unavailable";
  ::close(probe);
  TempDir d;
  runtime::Options o = userbpf::testing::rt_options();
  o.pin_dir = d.path();
  runtime::Runtime rt(o);
  const Side kernel = maps::test::kernel_side();
  const Side ours = maps::test::user_side(rt);
  const auto k = script(kernel);
  EXPECT_EQ(script(ours), k);
  // the script did something: maps created, ids found, 5 LPM keys batched
  ASSERT_GE(k.size(), 10u);
  EXPECT_EQ(k[0], 1);
  EXPECT_EQ(k[2], 1);
  EXPECT_EQ(k.back(), 5);
}
