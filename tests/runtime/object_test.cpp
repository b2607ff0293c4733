// A clang-built object through loader::Object and Runtime::load_object:
// BTF-defined maps, global data, a per-CPU map, a program array filled by an
// __array initialiser, a tail call, test runs and the map contents after.
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <cstring>

#include "loader/loader.hpp"
#include "runtime/runtime.hpp"
#include "test_util.hpp"

using namespace userbpf;
using userbpf::testing::TempDir;

namespace {

std::vector<std::uint8_t> frame(std::uint16_t ethertype, std::size_t n = 64) {
  std::vector<std::uint8_t> p(n, 0x11);
  p[12] = static_cast<std::uint8_t>(ethertype >> 8);
  p[13] = static_cast<std::uint8_t>(ethertype);
  return p;
}

int handle_of(const std::vector<std::pair<std::string, int>>& v, const std::string& name) {
  for (const auto& [n, h] : v)
    if (n == name) return h;
  return -1;
}

}  // namespace

TEST(RuntimeObject, CountsPerProtocolWithTailCall) {
  loader::OpenOptions oo;
  oo.use_vmlinux_btf = false;
  auto obj = loader::Object::open(std::string(USERBPF_RT_PROGS) + "/count.bpf.o", oo);
  ASSERT_TRUE(obj.ok()) << obj.error().to_string();
  TempDir d;
  runtime::Options o = userbpf::testing::rt_options();
  o.pin_dir = d.path();
  runtime::Runtime rt(o);
  auto loaded = rt.load_object(*obj);
  ASSERT_TRUE(loaded.ok()) << loaded.error().to_string();
  const int prog = handle_of(loaded->progs, "xdp_count");
  ASSERT_GE(prog, 0);
  struct Case {
    std::uint16_t proto;
    std::uint32_t verdict;
  };
  const Case cases[] = {{0x0800, XDP_PASS}, {0x0800, XDP_PASS}, {0x86dd, XDP_DROP}, {0x0806, XDP_TX}};
  for (const Case& c : cases) {
    const auto pkt = frame(c.proto);
    runtime::TestRunArgs a;
    a.data_in = pkt;
    auto r = rt.test_run(prog, a);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->retval, c.verdict) << std::hex << c.proto;
  }
  auto counts = rt.get_map(handle_of(loaded->maps, "counts"));
  ASSERT_TRUE(counts);
  auto count_of = [&](std::uint32_t proto) {
    std::uint64_t v = 0;
    return counts->map->lookup(&proto, &v, 0) == 0 ? v : 0;
  };
  EXPECT_EQ(count_of(0x0800), 2u);
  EXPECT_EQ(count_of(0x86dd), 1u);
  EXPECT_EQ(count_of(0x0806), 1u);

  int data_handle = -1;
  for (const auto& [n, h] : loaded->maps)
    if (n.find(".bss") != std::string::npos) data_handle = h;  // total = 0 lives in .bss
  ASSERT_GE(data_handle, 0);
  std::uint32_t zero = 0;
  std::uint64_t total = 0;
  auto data_map = rt.get_map(data_handle);
  std::vector<std::uint8_t> value(data_map->map->value_size());
  ASSERT_EQ(data_map->map->lookup(&zero, value.data(), 0), 0);
  std::memcpy(&total, value.data(), 8);
  EXPECT_EQ(total, 4u);
  // per-CPU array: the sum over slots is the number of runs
  auto pcpu = rt.get_map(handle_of(loaded->maps, "pcpu"));
  std::vector<std::uint64_t> slots(pcpu->map->ncpus());
  ASSERT_EQ(pcpu->map->lookup(&zero, slots.data(), 0), 0);
  std::uint64_t sum = 0;
  for (auto s : slots) sum += s;
  EXPECT_EQ(sum, 4u);
  // .rodata is frozen: the host cannot write it
  for (const auto& [n, h] : loaded->maps) {
    if (n.find(".rodata") == std::string::npos) continue;
    auto m = rt.get_map(h);
    std::vector<std::uint8_t> v(m->map->value_size());
    EXPECT_EQ(m->map->update(&zero, v.data(), 0), EPERM);
  }
}
