// devmap, devmap_hash, cpumap and xskmap (src/maps/devmap.cpp) and
// bpf_redirect_map, side by side with the kernel: the same bpf() command
// script (MAP_CREATE rules, update / lookup / delete / get_next_key errno and
// values, the devmap_hash key order) run on the kernel and on the runtime's
// bpf(), and the same XDP programs calling bpf_redirect_map (keys present and
// missing, the fallback action in the flags' lower bits, BPF_F_BROADCAST,
// BPF_F_EXCLUDE_INGRESS, flags a map type refuses) test-run on both: the
// same verdicts. The record a test run keeps (helpers::describe_redirect)
// is checked through the helper. Kernel parts skip, with the reason, where
// the kernel's BPF is unavailable.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "helpers/helpers.hpp"
#include "interp/interp.hpp"
#include "isa/builder.hpp"
#include "isa/isa.hpp"
#include "maps/map.hpp"
#include "bpf_sides.hpp"
#include "runtime/runtime.hpp"

using namespace userbpf;

namespace {

bool kernel_bpf_ok() {
  bpf_attr a{};
  a.map_type = BPF_MAP_TYPE_ARRAY;
  a.key_size = 4;
  a.value_size = 4;
  a.max_entries = 1;
  const long fd = ::syscall(__NR_bpf, BPF_MAP_CREATE, &a, sizeof a);
  if (fd < 0) return false;
  ::close(static_cast<int>(fd));
  return true;
}

using maps::test::kernel_side;
using maps::test::Side;
using maps::test::user_side;

using Ops = maps::test::MapOps;

// The script: one line per command with its result.
std::vector<std::string> script(const Side& side, int xsk_fd, int udp_fd) {
  std::vector<std::string> log;
  Ops o{side};
  struct Create {
    std::uint32_t ks, vs, max, flags;
  };
  const Create creates[] = {{4, 4, 4, 0},  {4, 8, 4, 0},   {4, 12, 4, 0}, {8, 4, 4, 0},       {4, 4, 0, 0},
                            {4, 4, 4, 1},  {4, 4, 4, 4},   {4, 4, 4, 8},  {4, 4, 4, 16},      {4, 4, 4, 0x80},
                            {4, 4, 4, 0x1000}, {4, 4, 1000, 0}, {4, 4, 256, 0}, {4, 4, 257, 0}, {4, 4, 100000, 0}};
  const std::pair<std::uint32_t, const char*> types[] = {{BPF_MAP_TYPE_DEVMAP, "devmap"},
                                                         {BPF_MAP_TYPE_DEVMAP_HASH, "devmap_hash"},
                                                         {BPF_MAP_TYPE_CPUMAP, "cpumap"},
                                                         {BPF_MAP_TYPE_XSKMAP, "xskmap"}};
  for (const auto& [type, name] : types) {
    for (const Create& c : creates) {
      const int fd = o.create(type, c.ks, c.vs, c.max, c.flags);
      log.push_back(fmt::format("{} create k{} v{} n{} f{:#x}: {}", name, c.ks, c.vs, c.max, c.flags,
                                fd >= 0 ? 0 : fd));
      if (fd >= 0) side.close(fd);
    }
    const bool xsk = type == BPF_MAP_TYPE_XSKMAP;
    const std::uint32_t vs = xsk ? 4 : 8;
    const int fd = o.create(type, 4, vs, 4);
    if (fd < 0) {
      log.push_back(fmt::format("{}: create failed {}", name, fd));
      continue;
    }
    auto lookup = [&](std::uint32_t k) {
      std::uint32_t v[2] = {0xdead, 0xbeef};
      const int r = o.op(BPF_MAP_LOOKUP_ELEM, fd, &k, v);
      return r != 0 ? fmt::format("{}", r) : fmt::format("{:#x}/{:#x}", v[0], xsk ? 0 : v[1]);
    };
    auto next = [&](const std::uint32_t* k) {
      std::uint32_t n = 0xffff;
      const int r = o.next(fd, k, n);
      return r != 0 ? fmt::format("{}", r) : fmt::format("{}", n);
    };
    std::uint32_t k0 = 0, k3 = 3, k9 = 9, k77 = 77;
    log.push_back(fmt::format("{} empty: lookup {} {} delete {} {} next {} {} {}", name, lookup(0), lookup(9),
                              o.op(BPF_MAP_DELETE_ELEM, fd, &k0, nullptr), o.op(BPF_MAP_DELETE_ELEM, fd, &k9, nullptr),
                              next(nullptr), next(&k3), next(&k9)));
    struct Upd {
      std::uint32_t key, a;
      std::int32_t b;
      std::uint64_t flags;
    };
    const auto sock = static_cast<std::uint32_t>(xsk_fd);
    const auto udp = static_cast<std::uint32_t>(udp_fd);
    const std::vector<Upd> upds = {
        {0, 1, 0, BPF_ANY},   {0, 1, 0, BPF_NOEXIST}, {0, 1, 0, BPF_EXIST}, {0, 1, 0, 3},     {9, 1, 0, BPF_ANY},
        {1, 999, 0, BPF_ANY}, {2, 0, 0, BPF_ANY},     {3, 1, 5, BPF_ANY},   {3, 1, -1, BPF_ANY}, {1, 1, 0, BPF_ANY},
        {1, 16384, 0, BPF_ANY}, {1, 16385, 0, BPF_ANY}, {3, 1, 0, BPF_ANY}, {100, 1, 0, BPF_ANY}, {5, 1, 0, BPF_ANY},
        {2, sock, 0, BPF_ANY}, {2, sock, 0, BPF_EXIST}, {3, sock, 0, BPF_NOEXIST}, {3, sock, 0, BPF_NOEXIST},
        {1, udp, 0, BPF_ANY}, {1, 12345, 0, BPF_ANY},   {1, 0, 0, BPF_ANY}};
    for (const Upd& u : upds) {
      const std::uint32_t v[2] = {u.a, static_cast<std::uint32_t>(u.b)};
      log.push_back(fmt::format("{} update k{} a{} b{} f{}: {}", name, u.key, u.a == sock ? "sock" : u.a == udp ? "udp" : fmt::format("{}", u.a), u.b, u.flags,
                                o.op(BPF_MAP_UPDATE_ELEM, fd, &u.key, const_cast<std::uint32_t*>(v), u.flags)));
    }
    for (std::uint32_t k : {0u, 1u, 2u, 3u, 5u, 9u, 100u}) log.push_back(fmt::format("{} lookup {}: {}", name, k, lookup(k)));
    log.push_back(fmt::format("{} order:{} next 77 {}", name, o.order(fd), next(&k77)));
    log.push_back(fmt::format("{} delete 0: {} {} 77: {}", name, o.op(BPF_MAP_DELETE_ELEM, fd, &k0, nullptr),
                              o.op(BPF_MAP_DELETE_ELEM, fd, &k0, nullptr), o.op(BPF_MAP_DELETE_ELEM, fd, &k77, nullptr)));
    side.close(fd);
  }
  // devmap_hash order with colliding buckets and replacements
  const int h = o.create(BPF_MAP_TYPE_DEVMAP_HASH, 4, 4, 8);
  for (std::uint32_t k : {1u, 9u, 17u, 2u, 10u, 9u, 7u, 15u}) {
    const std::uint32_t v = 1;
    log.push_back(fmt::format("hash add {}: {}", k, o.op(BPF_MAP_UPDATE_ELEM, h, &k, const_cast<std::uint32_t*>(&v))));
  }
  std::uint32_t k9 = 9;
  log.push_back(fmt::format("hash del 9: {}", o.op(BPF_MAP_DELETE_ELEM, h, &k9, nullptr)));
  log.push_back("hash order:" + o.order(h));
  side.close(h);
  return log;
}

TEST(RedirectMapsKernelDiff, CommandScript) {
  if (!kernel_bpf_ok()) GTEST_SKIP() << "kernel BPF unavailable";
  const int xsk = ::socket(AF_XDP, SOCK_RAW, 0);
  if (xsk < 0) GTEST_SKIP() << "no AF_XDP sockets: " << std::strerror(errno);
  const int udp = ::socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(udp, 0);
  const auto k = script(kernel_side(), xsk, udp);
  char tmpl[] = "/tmp/userbpf-redirect-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  {
    runtime::Options opts;
    opts.pin_dir = tmpl;
    runtime::Runtime rt(opts);
    const auto u = script(user_side(rt), xsk, udp);
    ASSERT_EQ(u.size(), k.size());
    for (std::size_t i = 0; i < k.size(); ++i) EXPECT_EQ(u[i], k[i]) << "(left: userbpf, right: kernel)";
  }
  std::filesystem::remove_all(tmpl);
  ::close(xsk);
  ::close(udp);
}

// XDP: r0 = bpf_redirect_map(map, key, flags)
std::vector<isa::RawInsn> redirect_prog(int map_fd, std::uint32_t key, std::uint64_t flags) {
  isa::Builder p;
  p.lddw(1, static_cast<std::uint32_t>(map_fd), isa::Op::LddwMapFd);
  p.lddw(2, key).lddw(3, flags);
  p(isa::Op::Call, 0, 0, 0, BPF_FUNC_redirect_map).exit();
  return isa::encode(p.v);
}

// One line per (map type, key, flags): the verdict (or the load errno).
std::vector<std::string> verdicts(const Side& side) {
  std::vector<std::string> out;
  Ops o{side};
  const std::uint8_t pkt[64] = {};
  const std::uint32_t types[] = {BPF_MAP_TYPE_DEVMAP, BPF_MAP_TYPE_DEVMAP_HASH, BPF_MAP_TYPE_CPUMAP,
                                 BPF_MAP_TYPE_XSKMAP};
  for (std::uint32_t type : types) {
    const bool xsk = type == BPF_MAP_TYPE_XSKMAP;
    const int fd = o.create(type, 4, 4, 8);
    // key 3 has a target (lo for devmaps, CPU 0, nothing for xskmap: no bound socket to store)
    const std::uint32_t k3 = type == BPF_MAP_TYPE_CPUMAP ? 0 : 3;
    const std::uint32_t v = type == BPF_MAP_TYPE_CPUMAP ? 64 : 1;
    if (!xsk) out.push_back(fmt::format("{} store: {}", type, o.op(BPF_MAP_UPDATE_ELEM, fd, &k3, const_cast<std::uint32_t*>(&v))));
    const std::uint64_t flag_sets[] = {0, 1, 2, 3, 4, BPF_F_BROADCAST, BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS,
                                       BPF_F_BROADCAST | 2, BPF_F_EXCLUDE_INGRESS, 1ULL << 5, 1ULL << 32};
    for (std::uint32_t key : {k3, 5u, 100u}) {
      for (std::uint64_t f : flag_sets) {
        const auto raw = redirect_prog(fd, key, f);
        const int pfd = maps::test::load_prog(side, BPF_PROG_TYPE_XDP, raw);
        if (pfd < 0) {
          out.push_back(fmt::format("{} key {} flags {:#x}: load {}", type, key, f, pfd));
          continue;
        }
        bpf_attr t{};
        t.test.prog_fd = static_cast<std::uint32_t>(pfd);
        t.test.data_in = reinterpret_cast<std::uint64_t>(pkt);
        t.test.data_size_in = sizeof pkt;
        t.test.repeat = 1;
        const int r = side.bpf(BPF_PROG_TEST_RUN, t);
        out.push_back(fmt::format("{} key {} flags {:#x}: {}", type, key, f,
                                  r < 0 ? fmt::format("errno {}", -r) : fmt::format("verdict {}", t.test.retval)));
        side.close(pfd);
      }
    }
    side.close(fd);
  }
  return out;
}

TEST(RedirectMapsKernelDiff, RedirectMapVerdicts) {
  if (!kernel_bpf_ok()) GTEST_SKIP() << "kernel BPF unavailable";
  const auto k = verdicts(kernel_side());
  char tmpl[] = "/tmp/userbpf-redirect-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  int compared = 0;
  for (const bool verify : {true, false}) {
    runtime::Options opts;
    opts.pin_dir = tmpl;
    opts.verify = verify;
    runtime::Runtime rt(opts);
    const auto u = verdicts(user_side(rt));
    ASSERT_EQ(u.size(), k.size());
    for (std::size_t i = 0; i < k.size(); ++i, ++compared)
      EXPECT_EQ(u[i], k[i]) << (verify ? "verified" : "unverified") << " (left: userbpf, right: kernel)";
  }
  std::filesystem::remove_all(tmpl);
  EXPECT_GT(compared, 200);
}

// The record describe_redirect renders, through the helper itself.
TEST(RedirectMaps, RecordedTarget) {
  char tmpl[] = "/tmp/userbpf-redirect-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  maps::MapSpec spec;
  spec.type = BPF_MAP_TYPE_DEVMAP;
  spec.key_size = 4;
  spec.value_size = 4;
  spec.max_entries = 8;
  auto m = maps::create_map(spec, tmpl);
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  const std::uint32_t key = 3, lo = 1;
  ASSERT_EQ((*m)->update(&key, &lo, BPF_ANY), 0);
  userbpf::abi::HelperTable table;
  helpers::register_helpers(table);
  maps::Map* mp = m->get();
  auto run = [&](std::uint32_t k, std::uint64_t flags, helpers::RunState& st) {
    isa::Builder p;
    p.lddw(1, reinterpret_cast<std::uint64_t>(mp)).lddw(2, k).lddw(3, flags);
    p(isa::Op::Call, 0, 0, 0, BPF_FUNC_redirect_map).exit();
    auto prog = interp::Program::create(p.v);
    EXPECT_TRUE(prog.ok());
    userbpf::abi::Env env;
    env.helpers = &table;
    st.maps = std::span<maps::Map* const>(&mp, 1);
    st.prog_type = BPF_PROG_TYPE_XDP;
    env.user = &st;
    return prog->run(env).r0;
  };
  helpers::RunState st;
  EXPECT_EQ(run(3, 0, st), XDP_REDIRECT);
  EXPECT_EQ(helpers::describe_redirect(st.redirect), "devmap[3]");
  EXPECT_EQ(run(4, XDP_PASS, st), XDP_PASS);  // miss: the fallback action, record cleared
  EXPECT_EQ(helpers::describe_redirect(st.redirect), "");
  EXPECT_EQ(run(4, BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS, st), XDP_REDIRECT);
  EXPECT_EQ(helpers::describe_redirect(st.redirect), "devmap (broadcast, exclude ingress)");
  helpers::RunState::Redirect r{true, 5, BPF_F_INGRESS, nullptr, 0};
  EXPECT_EQ(helpers::describe_redirect(r), "ifindex 5 (ingress)");
  m->reset();
  std::filesystem::remove_all(tmpl);
}

}  // namespace
