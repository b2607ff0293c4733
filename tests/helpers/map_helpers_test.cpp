// Map helpers beyond lookup/update/delete, from programs run by the
// interpreter over real maps (src/maps): queue/stack push, pop and peek,
// for_each_map_elem (callbacks, checked mode regions), map_lookup_percpu_elem,
// the ring buffer (output, reserve/submit/discard, query) and
// perf_event_output's argument checks.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "helpers_test_util.hpp"
#include "maps/map.hpp"
#include "maps/ringbuf.hpp"

namespace userbpf::helpers::test {
namespace {

class TempDir {
 public:
  TempDir() {
    char t[] = "/tmp/ubpf-helpers-XXXXXX";
    path_ = mkdtemp(t);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::unique_ptr<maps::Map> make(const TempDir& d, std::uint32_t type, std::uint32_t ks, std::uint32_t vs,
                                std::uint32_t max, std::uint32_t ncpus = 0) {
  maps::MapSpec s;
  s.type = type;
  s.key_size = ks;
  s.value_size = vs;
  s.max_entries = max;
  s.ncpus = ncpus;
  s.name = "t";
  auto m = maps::create_map(s, d.path());
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().to_string());
  return m.ok() ? std::move(*m) : nullptr;
}

u64 err(int e) { return static_cast<u64>(-static_cast<std::int64_t>(e)); }

// r0 = helper(map, fp-8, flags) with the u64 at fp-8 holding `v` (push) or
// receiving the value (pop/peek); returns (r0, the u64 at fp-8 afterwards).
std::pair<u64, u64> value_call(Runner& r, maps::Map& m, std::int32_t helper, u64 v, u64 flags, Mode mode) {
  u64 out = 0;
  const std::size_t mark = r.regions.size();
  r.allow(&out, sizeof out);
  Prog p;
  p.lddw(6, v)(Op::StxDW, 10, 6, -8);
  p.lddw(1, reinterpret_cast<u64>(&m));
  fp(p, 2, -8).lddw(3, flags);
  call(p, helper);
  p(Op::LdxDW, 7, 10, -8).lddw(8, reinterpret_cast<u64>(&out))(Op::StxDW, 8, 7, 0).exit();
  const auto res = r.run(p.v, mode);
  r.regions.resize(mark);
  EXPECT_TRUE(res.ok()) << (res.error ? res.error->to_string() : "");
  return {res.r0, out};
}

TEST(MapHelpers, QueueAndStack) {
  TempDir d;
  for (Mode mode : kModes) {
    auto q = make(d, BPF_MAP_TYPE_QUEUE, 0, 8, 2);
    auto s = make(d, BPF_MAP_TYPE_STACK, 0, 8, 2);
    ASSERT_TRUE(q && s);
    Runner r;
    r.maps = {q.get(), s.get()};
    EXPECT_EQ(value_call(r, *q, BPF_FUNC_map_peek_elem, 0, 0, mode).first, err(ENOENT));
    EXPECT_EQ(value_call(r, *q, BPF_FUNC_map_push_elem, 10, 0, mode).first, 0u);
    EXPECT_EQ(value_call(r, *q, BPF_FUNC_map_push_elem, 11, 0, mode).first, 0u);
    EXPECT_EQ(value_call(r, *q, BPF_FUNC_map_push_elem, 12, 0, mode).first, err(E2BIG));
    EXPECT_EQ(value_call(r, *q, BPF_FUNC_map_push_elem, 12, BPF_EXIST, mode).first, 0u);  // drops 10
    EXPECT_EQ(value_call(r, *q, BPF_FUNC_map_peek_elem, 0, 0, mode), std::make_pair(u64{0}, u64{11}));
    EXPECT_EQ(value_call(r, *q, BPF_FUNC_map_pop_elem, 0, 0, mode), std::make_pair(u64{0}, u64{11}));
    EXPECT_EQ(value_call(r, *q, BPF_FUNC_map_pop_elem, 0, 0, mode), std::make_pair(u64{0}, u64{12}));
    EXPECT_EQ(value_call(r, *q, BPF_FUNC_map_pop_elem, 0, 0, mode).first, err(ENOENT));
    EXPECT_EQ(value_call(r, *s, BPF_FUNC_map_push_elem, 1, 0, mode).first, 0u);
    EXPECT_EQ(value_call(r, *s, BPF_FUNC_map_push_elem, 2, 0, mode).first, 0u);
    EXPECT_EQ(value_call(r, *s, BPF_FUNC_map_pop_elem, 0, 0, mode), std::make_pair(u64{0}, u64{2}));
    // a map that is not one of the program's maps
    Runner other;
    EXPECT_EQ(value_call(other, *q, BPF_FUNC_map_push_elem, 1, 0, mode).first, err(EINVAL));
  }
}

// for_each_map_elem(map, cb, fp-8, 0); cb(map, key, value, ctx): *ctx += *key * 1000 + *value; return 0
std::vector<isa::Insn> for_each_prog(maps::Map& m, std::int32_t stop_after_key) {
  Prog p;
  p(Op::StDW, 10, 0, -8, 0);
  p.lddw(1, reinterpret_cast<u64>(&m));
  const std::size_t ld = p.size();
  p.lddw(2, 0, Op::LddwFunc);
  fp(p, 3, -8).mov(4, 0);
  call(p, BPF_FUNC_for_each_map_elem);
  p(Op::LshImm, 0, 0, 0, 32)(Op::LdxDW, 1, 10, -8)(Op::AddReg, 0, 1).exit();
  const std::size_t cb = p.size();
  p(Op::LdxW, 5, 2, 0)(Op::MulImm, 5, 0, 0, 1000)(Op::LdxDW, 6, 3, 0)(Op::AddReg, 5, 6);
  p(Op::LdxDW, 6, 4, 0)(Op::AddReg, 6, 5)(Op::StxDW, 4, 6, 0);
  p(Op::StDW, 3, 0, 0, 0);  // the callback may write the value
  p.mov(0, 0)(Op::LdxW, 5, 2, 0)(Op::JneImm, 5, 0, 1, stop_after_key).mov(0, 1).exit();
  p.v[ld].imm = static_cast<std::int32_t>(cb - ld - 1);
  return p.v;
}

TEST(MapHelpers, ForEachMapElemOverAHash) {
  TempDir d;
  for (Mode mode : kModes) {
    auto h = make(d, BPF_MAP_TYPE_HASH, 4, 8, 8);
    ASSERT_TRUE(h);
    for (std::uint32_t k = 1; k <= 3; ++k) {
      const u64 v = k * 7;
      ASSERT_EQ(h->update(&k, &v, BPF_ANY), 0);
    }
    Runner r;
    r.maps = {h.get()};
    const auto res = r.run(for_each_prog(*h, -1), mode);
    ASSERT_TRUE(res.ok()) << mode_name(mode) << ": " << res.error->to_string();
    EXPECT_EQ(res.r0 >> 32, 3u) << mode_name(mode);
    EXPECT_EQ(res.r0 & 0xffffffff, 6000u + 42) << mode_name(mode);
    for (std::uint32_t k = 1; k <= 3; ++k) {
      u64 v = 1;
      ASSERT_EQ(h->lookup(&k, &v, 0), 0);
      EXPECT_EQ(v, 0u) << "the callback's write reached the map";
    }
    // flags must be 0; a map not of the program: -EINVAL
    auto prog = for_each_prog(*h, -1);
    prog[7].imm = 1;  // mov r4, 1
    EXPECT_EQ(r.run(prog, mode).r0 >> 32, static_cast<std::uint32_t>(-EINVAL)) << mode_name(mode);
    // the checked-mode regions for key and value are gone after the call
    EXPECT_EQ(r.env.regions.size(), r.regions.size() + 1) << "the map's area only";
  }
}

TEST(MapHelpers, ForEachStopsWhenTheCallbackReturnsOne) {
  TempDir d;
  auto h = make(d, BPF_MAP_TYPE_HASH, 4, 8, 8);
  ASSERT_TRUE(h);
  for (std::uint32_t k = 1; k <= 5; ++k) {
    const u64 v = k;
    ASSERT_EQ(h->update(&k, &v, BPF_ANY), 0);
  }
  Runner r;
  r.maps = {h.get()};
  // whatever the order, stopping at key 3 visits between 1 and 5 elements and counts the stopping one
  const auto res = r.run(for_each_prog(*h, 3), Mode::Checked);
  ASSERT_TRUE(res.ok()) << res.error->to_string();
  const u64 visited = res.r0 >> 32;
  EXPECT_GE(visited, 1u);
  EXPECT_LE(visited, 5u);
  EXPECT_GE(res.r0 & 0xffffffff, 3003u);  // key 3 was visited
}

TEST(MapHelpers, LookupPercpuElem) {
  TempDir d;
  auto a = make(d, BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 2, 4);
  ASSERT_TRUE(a);
  const std::uint32_t key = 1;
  const u64 values[4] = {10, 11, 12, 13};
  ASSERT_EQ(a->update(&key, values, BPF_ANY), 0);
  Runner r;
  r.maps = {a.get()};
  for (std::int32_t cpu : {0, 2, 3, 4}) {
    Prog p;
    p(Op::StW, 10, 0, -4, 1).lddw(1, reinterpret_cast<u64>(a.get()));
    fp(p, 2, -4).mov(3, cpu);
    call(p, BPF_FUNC_map_lookup_percpu_elem);
    p(Op::JeqImm, 0, 0, 1, 0)(Op::LdxDW, 0, 0, 0).exit();
    const auto res = r.run(p.v, Mode::Checked);
    ASSERT_TRUE(res.ok()) << res.error->to_string();
    EXPECT_EQ(res.r0, cpu < 4 ? values[cpu] : 0u) << "cpu " << cpu;
  }
}

TEST(MapHelpers, RingbufOutputReserveSubmitDiscardQuery) {
  TempDir d;
  auto rb = make(d, BPF_MAP_TYPE_RINGBUF, 0, 0, 4096);
  ASSERT_TRUE(rb);
  Runner r;
  r.maps = {rb.get()};
  // output 8 bytes from the stack; reserve 16, write, submit; reserve 8, discard; query avail
  Prog p;
  p.lddw(6, 0x1122334455667788ULL)(Op::StxDW, 10, 6, -8);
  p.lddw(1, reinterpret_cast<u64>(rb.get()));
  fp(p, 2, -8).mov(3, 8).mov(4, 0);
  call(p, BPF_FUNC_ringbuf_output);
  p(Op::MovReg, 9, 0);  // r9 = output's result
  p.lddw(1, reinterpret_cast<u64>(rb.get())).mov(2, 16).mov(3, 0);
  call(p, BPF_FUNC_ringbuf_reserve);
  p(Op::JeqImm, 0, 0, 4, 0)(Op::StDW, 0, 0, 0, 42)(Op::StDW, 0, 0, 8, 43)(Op::MovReg, 1, 0).mov(2, 0);
  call(p, BPF_FUNC_ringbuf_submit);
  p.lddw(1, reinterpret_cast<u64>(rb.get())).mov(2, 8).mov(3, 0);
  call(p, BPF_FUNC_ringbuf_reserve);
  p(Op::JeqImm, 0, 0, 3, 0)(Op::MovReg, 1, 0).mov(2, 0);
  call(p, BPF_FUNC_ringbuf_discard);
  p.lddw(1, reinterpret_cast<u64>(rb.get())).mov(2, BPF_RB_AVAIL_DATA);
  call(p, BPF_FUNC_ringbuf_query);
  p(Op::LshImm, 9, 0, 0, 32)(Op::AddReg, 0, 9).exit();
  for (Mode mode : kModes) {
    const auto res = r.run(p.v, mode);
    ASSERT_TRUE(res.ok()) << mode_name(mode) << ": " << res.error->to_string();
    EXPECT_EQ(res.r0 >> 32, 0u) << "ringbuf_output";
    EXPECT_EQ(res.r0 & 0xffffffff, 3u * 8 + 8 + 16 + 8) << "three headers and their samples are not consumed";
    maps::RingBufConsumer c;
    std::vector<std::vector<std::uint8_t>> got;
    ASSERT_EQ(c.add(*rb, [&](const void* data, std::size_t n) {
      const auto* b = static_cast<const std::uint8_t*>(data);
      got.emplace_back(b, b + n);
      return 0;
    }),
              0);
    EXPECT_EQ(c.consume(), 2);
    ASSERT_EQ(got.size(), 2u);
    u64 first = 0, second[2] = {};
    std::memcpy(&first, got[0].data(), 8);
    std::memcpy(second, got[1].data(), 16);
    EXPECT_EQ(first, 0x1122334455667788ULL);
    EXPECT_EQ(second[0], 42u);
    EXPECT_EQ(second[1], 43u);
  }
  // reserve flags must be 0 (NULL), output flags beyond the wakeup bits: -EINVAL
  Prog q;
  q.lddw(1, reinterpret_cast<u64>(rb.get())).mov(2, 8).mov(3, 1);
  call(q, BPF_FUNC_ringbuf_reserve).exit();
  EXPECT_EQ(r.run(q.v, Mode::Fast).r0, 0u);
  // submitting something that is not a sample ends the run with a clear message
  Prog s;
  s.mov(1, 64).mov(2, 0);
  call(s, BPF_FUNC_ringbuf_submit).exit();
  const auto bad = r.run(s.v, Mode::Fast);
  ASSERT_EQ(bad.fault, abi::Fault::HelperFailed);
  EXPECT_NE(bad.error->message.find("bpf_ringbuf_submit"), std::string::npos) << bad.error->message;
}

TEST(MapHelpers, PerfEventOutputArguments) {
  TempDir d;
  auto pa = make(d, BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 2);
  ASSERT_TRUE(pa);
  Runner r;
  r.maps = {pa.get()};
  const auto out = [&](u64 flags) {
    Prog p;
    p(Op::StDW, 10, 0, -8, 5).mov(1, 0).lddw(2, reinterpret_cast<u64>(pa.get())).lddw(3, flags);
    fp(p, 4, -8).mov(5, 8);
    call(p, BPF_FUNC_perf_event_output).exit();
    return r.run(p.v, Mode::Checked).r0;
  };
  EXPECT_EQ(out(5), err(E2BIG));                  // index >= max_entries
  EXPECT_EQ(out(1ULL << 40), err(EINVAL));         // flags beyond the index (ctxlen): not supported
  EXPECT_EQ(out(1), err(ENOENT));                 // not opened by a consumer
  EXPECT_EQ(out(BPF_F_CURRENT_CPU), err(ENOENT));  // slot 0, not opened
}

}  // namespace
}  // namespace userbpf::helpers::test
