// Ring-buffer records compared with the kernel's: the same program (socket
// filter: bpf_ringbuf_output of many sizes, reserve + submit, reserve +
// discard, until the ring is full) loaded with the same bpf_attr into the
// kernel and into the runtime, test-run once on each; the kernel's ring is
// read through its mmap (consumer page, producer page, data mapped twice)
// and userbpf's through RingBufConsumer. The records (bytes, lengths,
// order, discarded ones absent), the helpers' results and
// bpf_ringbuf_query(BPF_RB_PROD_POS / AVAIL_DATA) must be equal. Skipped,
// with the reason, where the kernel's BPF is unavailable.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "isa/builder.hpp"
#include "isa/isa.hpp"
#include "maps/ringbuf.hpp"
#include "bpf_sides.hpp"
#include "runtime/runtime.hpp"

using namespace userbpf;

namespace {

using Bytes = std::vector<std::uint8_t>;
constexpr std::uint32_t kRing = 4096;

// A side of the comparison and how it reads a ring's records.
struct Side {
  maps::test::Side bpf;
  std::function<std::vector<Bytes>(int map_fd)> records;
};

// r7 = sum of the results; sizes of ringbuf_output from a 64-byte pattern on
// the stack; then reserve 24 + submit, reserve 16 + discard, reserve 8 +
// submit; `fill` more outputs of 60 bytes; r0 = r7 + (query(PROD_POS) << 16)
// + (query(AVAIL_DATA) << 32).
std::vector<isa::RawInsn> program(int map_fd, const std::vector<std::int32_t>& sizes, int fill) {
  using isa::Op;
  isa::Builder p;
  const auto map = static_cast<std::uint32_t>(map_fd);
  for (int i = 0; i < 8; ++i)
    p.lddw(1, 0x0101010101010101ULL * static_cast<std::uint64_t>(i + 1) + 0x0706050403020100ULL)(Op::StxDW, 10, 1,
                                                                                                 static_cast<std::int16_t>(-64 + 8 * i));
  p.mov(7, 0);
  auto output = [&](std::int32_t size) {
    p.lddw(1, map, Op::LddwMapFd)(Op::MovReg, 2, 10)(Op::AddImm, 2, 0, 0, -64).mov(3, size).mov(4, 0);
    p(Op::Call, 0, 0, 0, BPF_FUNC_ringbuf_output)(Op::AddReg, 7, 0);
  };
  for (std::int32_t s : sizes) output(s);
  auto reserve = [&](std::int32_t size, bool submit) {
    p.lddw(1, map, Op::LddwMapFd).mov(2, size).mov(3, 0);
    p(Op::Call, 0, 0, 0, BPF_FUNC_ringbuf_reserve);
    const std::size_t jmp = p.size();
    p(Op::JeqImm, 0, 0, 0, 0);
    for (std::int32_t o = 0; o < size; o += 8) p(Op::StDW, 0, 0, static_cast<std::int16_t>(o), 0x5a000000 + size + o);
    p(Op::MovReg, 1, 0).mov(2, 0)(Op::Call, 0, 0, 0, submit ? BPF_FUNC_ringbuf_submit : BPF_FUNC_ringbuf_discard);
    p.v[jmp].off = static_cast<std::int16_t>(p.size() - jmp - 1);
  };
  reserve(24, true);
  reserve(16, false);
  reserve(8, true);
  for (int i = 0; i < fill; ++i) output(60);
  p.lddw(1, map, Op::LddwMapFd).mov(2, BPF_RB_PROD_POS)(Op::Call, 0, 0, 0, BPF_FUNC_ringbuf_query);
  p(Op::LshImm, 0, 0, 0, 16)(Op::AddReg, 7, 0);
  p.lddw(1, map, Op::LddwMapFd).mov(2, BPF_RB_AVAIL_DATA)(Op::Call, 0, 0, 0, BPF_FUNC_ringbuf_query);
  p(Op::LshImm, 0, 0, 0, 32)(Op::AddReg, 7, 0)(Op::MovReg, 0, 7).exit();
  return isa::encode(p.v);
}

// One run: the verdict line and the records.
std::string run(const Side& side, const std::vector<std::int32_t>& sizes, int fill, std::vector<Bytes>& records) {
  bpf_attr m{};
  m.map_type = BPF_MAP_TYPE_RINGBUF;
  m.max_entries = kRing;
  const int map = side.bpf.bpf(BPF_MAP_CREATE, m);
  if (map < 0) return fmt::format("map create {}", map);
  const auto raw = program(map, sizes, fill);
  std::string log;
  const int prog = maps::test::load_prog(side.bpf, BPF_PROG_TYPE_SOCKET_FILTER, raw, &log);
  if (prog < 0) {
    side.bpf.close(map);
    return fmt::format("load {}: {}", prog, log);
  }
  const std::uint8_t pkt[64] = {};
  bpf_attr t{};
  t.test.prog_fd = static_cast<std::uint32_t>(prog);
  t.test.data_in = reinterpret_cast<std::uint64_t>(pkt);
  t.test.data_size_in = sizeof pkt;
  const int r = side.bpf.bpf(BPF_PROG_TEST_RUN, t);
  records = side.records(map);
  side.bpf.close(prog);
  side.bpf.close(map);
  return r < 0 ? fmt::format("run {}", r) : fmt::format("retval {:#x}", t.test.retval);
}

// The kernel's ring through mmap (consumer page rw at 0, producer page and data at 4096).
std::vector<Bytes> kernel_records(int fd) {
  std::vector<Bytes> out;
  void* cons = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  void* prod = ::mmap(nullptr, 4096 + 2 * kRing, PROT_READ, MAP_SHARED, fd, 4096);
  if (cons == MAP_FAILED || prod == MAP_FAILED) {
    ADD_FAILURE() << "mmap of the kernel's ring buffer: " << std::strerror(errno);
    return out;
  }
  auto* cpos = static_cast<std::uint64_t*>(cons);
  const std::uint64_t ppos = *static_cast<std::uint64_t*>(prod);
  const auto* data = static_cast<const std::uint8_t*>(prod) + 4096;
  std::uint64_t c = *cpos;
  while (c < ppos) {
    std::uint32_t hdr;
    std::memcpy(&hdr, data + (c & (kRing - 1)), 4);
    if ((hdr & BPF_RINGBUF_BUSY_BIT) != 0) break;
    const std::uint32_t len = hdr & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
    if ((hdr & BPF_RINGBUF_DISCARD_BIT) == 0) {
      const std::uint8_t* rec = data + (c & (kRing - 1)) + BPF_RINGBUF_HDR_SZ;
      out.emplace_back(rec, rec + len);
    }
    c += (len + BPF_RINGBUF_HDR_SZ + 7) & ~7ULL;
  }
  *cpos = c;
  ::munmap(cons, 4096);
  ::munmap(prod, 4096 + 2 * kRing);
  return out;
}

TEST(RingBufKernelDiff, RecordsAsTheKernels) {
  bpf_attr probe{};
  probe.map_type = BPF_MAP_TYPE_RINGBUF;
  probe.max_entries = kRing;
  const long pfd = ::syscall(__NR_bpf, BPF_MAP_CREATE, &probe, sizeof probe);
  if (pfd < 0) GTEST_SKIP() << "kernel BPF unavailable: " << std::strerror(errno);
  ::close(static_cast<int>(pfd));

  const Side kernel{maps::test::kernel_side(), &kernel_records};
  char tmpl[] = "/tmp/userbpf-ringbuf-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  runtime::Options opts;
  opts.pin_dir = tmpl;
  runtime::Runtime rt(opts);
  const Side user{maps::test::user_side(rt),
            [&rt](int fd) {
              std::vector<Bytes> out;
              auto m = rt.get_map(fd);
              if (!m) return out;
              maps::RingBufConsumer c;
              EXPECT_EQ(c.add(*m->map, [&](const void* d, std::size_t n) {
                const auto* p = static_cast<const std::uint8_t*>(d);
                out.emplace_back(p, p + n);
                return 0;
              }), 0);
              c.consume();
              return out;
            }};
  struct Case {
    std::vector<std::int32_t> sizes;
    int fill;
  };
  const Case cases[] = {{{1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64}, 0},
                        {{0, 8, 64}, 0},
                        {{64, 1}, 80},  // fills the 4096-byte ring: -EAGAIN, records up to the end
                        {{}, 100}};
  int records = 0;
  for (const Case& c : cases) {
    std::vector<Bytes> kr, ur;
    const std::string k = run(kernel, c.sizes, c.fill, kr);
    const std::string u = run(user, c.sizes, c.fill, ur);
    EXPECT_EQ(u, k) << "(left: userbpf, right: kernel)";
    ASSERT_EQ(ur.size(), kr.size()) << k;
    for (std::size_t i = 0; i < kr.size(); ++i) EXPECT_EQ(ur[i], kr[i]) << "record " << i;
    records += static_cast<int>(kr.size());
  }
  EXPECT_GT(records, 60);
  std::filesystem::remove_all(tmpl);
}

}  // namespace
