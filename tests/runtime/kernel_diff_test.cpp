// Differential tests: the same bpf() command sequences against the kernel
// (the real system call) and against userbpf's runtime; the recorded results
// (return code or errno, output bytes, map contents) must be equal. Skipped,
// with the reason, where the kernel's BPF is not available.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "oracle/oracle.hpp"
#include "runtime/runtime.hpp"
#include "test_util.hpp"

using namespace userbpf;
using isa::Op;
using userbpf::testing::Asm;
using userbpf::testing::TempDir;

using userbpf::testing::ptr;

namespace {

// One side of the comparison: bpf() and close() of the kernel or of a Runtime.
struct Side : userbpf::testing::BpfSide {
  std::vector<std::string> trace;
  Side& operator=(const userbpf::testing::BpfSide& s) {
    bpf = s.bpf;
    close = s.close;
    return *this;
  }

  // Records "cmd -> ok" / "cmd -> errno NAME" and returns the result.
  int rec(const std::string& what, int cmd, bpf_attr& a) {
    errno = 0;
    const int r = bpf(cmd, a);
    const int e = errno;
    trace.push_back(what + (r >= 0 ? " -> ok" : " -> errno " + std::to_string(e)));
    errno = e;
    return r;
  }
  void note(const std::string& s) { trace.push_back(s); }

  int map_create(const std::string& what, std::uint32_t type, std::uint32_t ks, std::uint32_t vs, std::uint32_t max,
                 std::uint32_t flags = 0) {
    bpf_attr a{};
    a.map_type = type;
    a.key_size = ks;
    a.value_size = vs;
    a.max_entries = max;
    a.map_flags = flags;
    return rec(what, BPF_MAP_CREATE, a);
  }
  int elem(const std::string& what, int cmd, int fd, const void* key, const void* value, std::uint64_t flags = 0) {
    bpf_attr a{};
    a.map_fd = static_cast<std::uint32_t>(fd);
    a.key = ptr(key);
    a.value = ptr(value);
    a.flags = flags;
    return rec(what, cmd, a);
  }
  int next_key(const std::string& what, int fd, const void* key, void* next) {
    bpf_attr a{};
    a.map_fd = static_cast<std::uint32_t>(fd);
    a.key = ptr(key);
    a.next_key = ptr(next);
    return rec(what, BPF_MAP_GET_NEXT_KEY, a);
  }
  // All keys of a map as a sorted set of hex strings, plus whether a key
  // not in the map leads to the first key (the kernel's restart rule).
  void dump(const std::string& what, int fd, std::size_t ks, std::size_t vs) {
    std::vector<std::uint8_t> cur(ks), next(ks), val(vs);
    std::set<std::string> rows;
    bool have = false;
    for (int guard = 0; guard < 10000; ++guard) {
      bpf_attr a{};
      a.map_fd = static_cast<std::uint32_t>(fd);
      a.key = have ? ptr(cur.data()) : 0;
      a.next_key = ptr(next.data());
      if (bpf(BPF_MAP_GET_NEXT_KEY, a) != 0) break;
      bpf_attr l{};
      l.map_fd = static_cast<std::uint32_t>(fd);
      l.key = ptr(next.data());
      l.value = ptr(val.data());
      const int r = bpf(BPF_MAP_LOOKUP_ELEM, l);
      std::string row = to_hex(next) + "=" + (r == 0 ? to_hex(val) : "errno " + std::to_string(errno));
      rows.insert(row);
      cur = next;
      have = true;
    }
    std::string s = what + ":";
    for (const auto& r : rows) s += " " + r;
    trace.push_back(s);
  }
  static std::string to_hex(const std::vector<std::uint8_t>& b) {
    std::string s;
    char buf[4];
    for (auto c : b) {
      std::snprintf(buf, sizeof buf, "%02x", c);
      s += buf;
    }
    return s;
  }
};

class KernelDiff : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& av = oracle::available();
    if (!av.ok) GTEST_SKIP() << "kernel BPF unavailable: " << av.reason;
    runtime::Options o = userbpf::testing::rt_options();
    o.pin_dir = dir_.path();
    rt_ = std::make_unique<runtime::Runtime>(o);
    kernel_ = userbpf::testing::kernel_side();
    user_ = userbpf::testing::runtime_side(*rt_);
  }
  void TearDown() override {
    for (int fd : kernel_fds_) ::close(fd);
  }
  // Runs the scenario on both sides and compares the traces line by line.
  void diff(const std::function<void(Side&, bool kernel)>& scenario) {
    scenario(kernel_, true);
    scenario(user_, false);
    std::string both;
    for (std::size_t i = 0; i < std::max(kernel_.trace.size(), user_.trace.size()); ++i)
      both += "  kernel: " + (i < kernel_.trace.size() ? kernel_.trace[i] : "-") + "\n  user:   " +
              (i < user_.trace.size() ? user_.trace[i] : "-") + "\n";
    ASSERT_EQ(kernel_.trace.size(), user_.trace.size()) << both;
    for (std::size_t i = 0; i < kernel_.trace.size(); ++i)
      EXPECT_EQ(user_.trace[i], kernel_.trace[i]) << "step " << i << " (left: userbpf, right: kernel)";
  }
  TempDir dir_;
  std::unique_ptr<runtime::Runtime> rt_;
  Side kernel_, user_;
  std::vector<int> kernel_fds_;
};

std::uint32_t ncpus() { return maps::default_cpu_count(); }

}  // namespace

namespace {
std::string fmt_row_impl(std::uint32_t t, std::uint32_t k, std::uint32_t v, std::uint32_t m, std::uint32_t f) {
  std::ostringstream o;
  o << "create type " << t << " ks " << k << " vs " << v << " max " << m << " flags 0x" << std::hex << f;
  return o.str();
}
}  // namespace

TEST_F(KernelDiff, MapCreateErrno) {
  struct Row {
    std::uint32_t type, ks, vs, max, flags;
  };
  const Row rows[] = {
      {BPF_MAP_TYPE_ARRAY, 4, 4, 1, 0},        {BPF_MAP_TYPE_ARRAY, 8, 4, 1, 0},
      {BPF_MAP_TYPE_ARRAY, 4, 0, 1, 0},        {BPF_MAP_TYPE_ARRAY, 4, 4, 0, 0},
      {BPF_MAP_TYPE_ARRAY, 4, 4, 1, BPF_F_NO_PREALLOC},
      {BPF_MAP_TYPE_ARRAY, 4, 4, 1, BPF_F_RDONLY | BPF_F_WRONLY},
      {BPF_MAP_TYPE_ARRAY, 4, 4, 1, BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG},
      {BPF_MAP_TYPE_HASH, 4, 4, 1, 0},         {BPF_MAP_TYPE_HASH, 0, 4, 1, 0},
      {BPF_MAP_TYPE_HASH, 4, 0, 1, 0},         {BPF_MAP_TYPE_HASH, 4, 4, 0, 0},
      {BPF_MAP_TYPE_HASH, 4, 4, 1, BPF_F_NO_PREALLOC}, {BPF_MAP_TYPE_HASH, 4, 4, 1, BPF_F_MMAPABLE},
      {BPF_MAP_TYPE_HASH, 4, 5u << 20, 1, 0},  {BPF_MAP_TYPE_HASH, 4, 4, 1, BPF_F_NO_COMMON_LRU},
      {BPF_MAP_TYPE_PERCPU_ARRAY, 4, 40000, 1, 0}, {BPF_MAP_TYPE_PERCPU_ARRAY, 4, 32768, 1, 0},
      {BPF_MAP_TYPE_PERCPU_ARRAY, 4, 4, 1, BPF_F_MMAPABLE},
      {BPF_MAP_TYPE_PERCPU_HASH, 4, 40000, 1, 0}, {BPF_MAP_TYPE_PERCPU_HASH, 8, 8, 4, 0},
      {BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 4, 0},   {BPF_MAP_TYPE_PROG_ARRAY, 4, 8, 4, 0},
      {BPF_MAP_TYPE_PROG_ARRAY, 8, 4, 4, 0},   {BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 4, BPF_F_RDONLY_PROG},
      {BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 4, BPF_F_MMAPABLE},
  };
  diff([&](Side& s, bool kernel) {
    for (const Row& r : rows) {
      const int fd = s.map_create(fmt_row_impl(r.type, r.ks, r.vs, r.max, r.flags), r.type, r.ks, r.vs, r.max, r.flags);
      if (fd >= 0) s.close(fd);
    }
    bpf_attr a{};
    a.map_type = BPF_MAP_TYPE_HASH;
    a.key_size = a.value_size = a.max_entries = 4;
    std::strcpy(a.map_name, "bad-name");
    s.rec("bad name", BPF_MAP_CREATE, a);
    std::strcpy(a.map_name, "good.name_1");
    const int fd = s.rec("good name", BPF_MAP_CREATE, a);
    if (fd >= 0) s.close(fd);
    a.map_extra = 1;
    s.rec("map_extra", BPF_MAP_CREATE, a);
    (void)kernel;
  });
}

TEST_F(KernelDiff, ArrayOperations) {
  diff([&](Side& s, bool) {
    const int fd = s.map_create("create", BPF_MAP_TYPE_ARRAY, 4, 8, 4);
    std::uint32_t k = 0;
    std::uint64_t v = 0x1122334455667788ULL, out = 0;
    s.elem("update any", BPF_MAP_UPDATE_ELEM, fd, &k, &v, BPF_ANY);
    s.elem("update exist", BPF_MAP_UPDATE_ELEM, fd, &k, &v, BPF_EXIST);
    s.elem("update noexist", BPF_MAP_UPDATE_ELEM, fd, &k, &v, BPF_NOEXIST);
    s.elem("update flags 3", BPF_MAP_UPDATE_ELEM, fd, &k, &v, 3);
    s.elem("update flags 8", BPF_MAP_UPDATE_ELEM, fd, &k, &v, 8);
    s.elem("update lock", BPF_MAP_UPDATE_ELEM, fd, &k, &v, BPF_F_LOCK);
    k = 4;
    s.elem("update oob", BPF_MAP_UPDATE_ELEM, fd, &k, &v, BPF_ANY);
    s.elem("lookup oob", BPF_MAP_LOOKUP_ELEM, fd, &k, &out);
    k = 1;
    s.elem("lookup flags 2", BPF_MAP_LOOKUP_ELEM, fd, &k, &out, 2);
    s.elem("lookup lock", BPF_MAP_LOOKUP_ELEM, fd, &k, &out, BPF_F_LOCK);
    s.elem("delete", BPF_MAP_DELETE_ELEM, fd, &k, nullptr);
    s.elem("lookup_and_delete", BPF_MAP_LOOKUP_AND_DELETE_ELEM, fd, &k, &out);
    std::uint32_t next = 0;
    s.next_key("next null", fd, nullptr, &next);
    s.note("-> " + std::to_string(next));
    k = 2;
    s.next_key("next 2", fd, &k, &next);
    s.note("-> " + std::to_string(next));
    k = 3;
    s.next_key("next last", fd, &k, &next);
    k = 77;
    s.next_key("next oob", fd, &k, &next);
    s.note("-> " + std::to_string(next));
    s.dump("contents", fd, 4, 8);
    bpf_attr f{};
    f.map_fd = static_cast<std::uint32_t>(fd);
    s.rec("freeze", BPF_MAP_FREEZE, f);
    s.rec("freeze again", BPF_MAP_FREEZE, f);
    k = 0;
    s.elem("update frozen", BPF_MAP_UPDATE_ELEM, fd, &k, &v, BPF_ANY);
    s.elem("lookup frozen", BPF_MAP_LOOKUP_ELEM, fd, &k, &out);
    s.close(fd);
    const int ro = s.map_create("create rdonly", BPF_MAP_TYPE_ARRAY, 4, 8, 2, BPF_F_RDONLY);
    s.elem("update rdonly", BPF_MAP_UPDATE_ELEM, ro, &k, &v, BPF_ANY);
    s.elem("lookup rdonly", BPF_MAP_LOOKUP_ELEM, ro, &k, &out);
    const int wo = s.map_create("create wronly", BPF_MAP_TYPE_ARRAY, 4, 8, 2, BPF_F_WRONLY);
    s.elem("update wronly", BPF_MAP_UPDATE_ELEM, wo, &k, &v, BPF_ANY);
    s.elem("lookup wronly", BPF_MAP_LOOKUP_ELEM, wo, &k, &out);
    s.next_key("next wronly", wo, nullptr, &next);
    s.close(ro);
    s.close(wo);
    s.elem("lookup closed fd", BPF_MAP_LOOKUP_ELEM, 1000, &k, &out);
  });
}

TEST_F(KernelDiff, HashOperations) {
  diff([&](Side& s, bool) {
    const int fd = s.map_create("create", BPF_MAP_TYPE_HASH, 8, 4, 4);
    std::uint64_t k = 1;
    std::uint32_t v = 10, out = 0;
    s.elem("update exist (missing)", BPF_MAP_UPDATE_ELEM, fd, &k, &v, BPF_EXIST);
    s.elem("update noexist", BPF_MAP_UPDATE_ELEM, fd, &k, &v, BPF_NOEXIST);
    s.elem("update noexist again", BPF_MAP_UPDATE_ELEM, fd, &k, &v, BPF_NOEXIST);
    s.elem("update flags 3", BPF_MAP_UPDATE_ELEM, fd, &k, &v, 3);
    s.elem("update lock", BPF_MAP_UPDATE_ELEM, fd, &k, &v, BPF_F_LOCK);
    for (k = 2; k <= 5; ++k) {
      v = static_cast<std::uint32_t>(k * 100);
      s.elem("fill " + std::to_string(k), BPF_MAP_UPDATE_ELEM, fd, &k, &v, BPF_ANY);
    }
    k = 4;
    s.elem("replace in full map", BPF_MAP_UPDATE_ELEM, fd, &k, &v, BPF_ANY);
    k = 3;
    s.elem("delete", BPF_MAP_DELETE_ELEM, fd, &k, nullptr);
    s.elem("delete missing", BPF_MAP_DELETE_ELEM, fd, &k, nullptr);
    k = 2;
    s.elem("lookup_and_delete", BPF_MAP_LOOKUP_AND_DELETE_ELEM, fd, &k, &out);
    s.note("-> " + std::to_string(out));
    s.elem("lookup_and_delete missing", BPF_MAP_LOOKUP_AND_DELETE_ELEM, fd, &k, &out);
    s.elem("lookup_and_delete flags", BPF_MAP_LOOKUP_AND_DELETE_ELEM, fd, &k, &out, 2);
    s.elem("lookup missing", BPF_MAP_LOOKUP_ELEM, fd, &k, &out);
    std::uint64_t first = 0, next = 0, missing = 999;
    s.next_key("next null", fd, nullptr, &first);
    s.next_key("next missing", fd, &missing, &next);
    s.note(std::string("missing key restarts at the first: ") + (next == first ? "yes" : "no"));
    s.dump("contents", fd, 8, 4);
    s.close(fd);
  });
}

TEST_F(KernelDiff, PerCpuValues) {
  const std::uint32_t n = ncpus();
  diff([&](Side& s, bool) {
    for (std::uint32_t type : {BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_PERCPU_HASH}) {
      const int fd = s.map_create("create " + std::to_string(type), type, 4, 4, 2);
      std::vector<std::uint8_t> v(8 * n), out(8 * n, 0xaa);
      for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::uint8_t>(i + 1);
      std::uint32_t k = 1;
      s.elem("update", BPF_MAP_UPDATE_ELEM, fd, &k, v.data(), BPF_ANY);
      s.elem("lookup", BPF_MAP_LOOKUP_ELEM, fd, &k, out.data());
      s.note("value " + Side::to_hex(out));  // padding bytes of each slot read as zero
      s.close(fd);
    }
  });
}

TEST_F(KernelDiff, ProgArrayRules) {
  diff([&](Side& s, bool) {
    const int fd = s.map_create("create", BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 4);
    const int other = s.map_create("create array", BPF_MAP_TYPE_ARRAY, 4, 4, 1);
    std::uint32_t k = 0, v = 0;
    s.elem("lookup empty", BPF_MAP_LOOKUP_ELEM, fd, &k, &v);
    s.elem("delete empty", BPF_MAP_DELETE_ELEM, fd, &k, nullptr);
    v = static_cast<std::uint32_t>(other);
    s.elem("update with a map fd", BPF_MAP_UPDATE_ELEM, fd, &k, &v, BPF_ANY);
    v = 9999;
    s.elem("update with a bad fd", BPF_MAP_UPDATE_ELEM, fd, &k, &v, BPF_ANY);
    k = 9;
    s.elem("update oob", BPF_MAP_UPDATE_ELEM, fd, &k, &v, BPF_ANY);
    s.close(fd);
    s.close(other);
  });
}

TEST_F(KernelDiff, Batches) {
  diff([&](Side& s, bool) {
    const int h = s.map_create("create hash", BPF_MAP_TYPE_HASH, 4, 4, 64);
    std::vector<std::uint32_t> keys(20), vals(20), ok(64), ov(64);
    for (std::uint32_t i = 0; i < 20; ++i) keys[i] = i + 1, vals[i] = i * 7;
    bpf_attr a{};
    a.batch.map_fd = static_cast<std::uint32_t>(h);
    a.batch.keys = ptr(keys.data());
    a.batch.values = ptr(vals.data());
    a.batch.count = 20;
    s.rec("update batch", BPF_MAP_UPDATE_BATCH, a);
    s.note("count " + std::to_string(a.batch.count));
    a.batch.count = 20;
    a.batch.elem_flags = BPF_NOEXIST;
    s.rec("update batch noexist", BPF_MAP_UPDATE_BATCH, a);
    s.note("count " + std::to_string(a.batch.count));
    std::set<std::uint32_t> seen;
    std::uint32_t in = 0, out = 0;
    bool first = true;
    int e = 0;
    for (int round = 0; round < 50; ++round) {
      bpf_attr l{};
      l.batch.map_fd = static_cast<std::uint32_t>(h);
      l.batch.in_batch = first ? 0 : ptr(&in);
      l.batch.out_batch = ptr(&out);
      l.batch.keys = ptr(ok.data());
      l.batch.values = ptr(ov.data());
      l.batch.count = 64;  // every bucket fits: one batch
      errno = 0;
      const int r = s.bpf(BPF_MAP_LOOKUP_BATCH, l);
      e = r < 0 ? errno : 0;
      for (std::uint32_t i = 0; i < l.batch.count; ++i) seen.insert(ok[i] * 1000 + ov[i]);
      if (e != 0) break;
      in = out;
      first = false;
    }
    s.note("batch lookup ended with errno " + std::to_string(e) + ", elements " + std::to_string(seen.size()));
    bpf_attr d{};
    d.batch.map_fd = static_cast<std::uint32_t>(h);
    d.batch.keys = ptr(keys.data());
    d.batch.count = 5;
    s.rec("delete batch", BPF_MAP_DELETE_BATCH, d);
    s.note("count " + std::to_string(d.batch.count));
    d.batch.count = 5;
    s.rec("delete batch again", BPF_MAP_DELETE_BATCH, d);
    s.note("count " + std::to_string(d.batch.count));
    d.batch.flags = 1;
    s.rec("delete batch flags", BPF_MAP_DELETE_BATCH, d);
    s.dump("hash contents", h, 4, 4);
    const int ar = s.map_create("create array", BPF_MAP_TYPE_ARRAY, 4, 4, 10);
    bpf_attr l{};
    l.batch.map_fd = static_cast<std::uint32_t>(ar);
    l.batch.out_batch = ptr(&out);
    l.batch.keys = ptr(ok.data());
    l.batch.values = ptr(ov.data());
    l.batch.count = 4;
    s.rec("array lookup batch", BPF_MAP_LOOKUP_BATCH, l);
    s.note("count " + std::to_string(l.batch.count) + " out " + std::to_string(out));
    in = out;
    l.batch.in_batch = ptr(&in);
    l.batch.count = 10;
    s.rec("array lookup batch 2", BPF_MAP_LOOKUP_BATCH, l);
    s.note("count " + std::to_string(l.batch.count) + " first key " + std::to_string(ok[0]));
    l.batch.count = 4;
    s.rec("array lookup_and_delete batch", BPF_MAP_LOOKUP_AND_DELETE_BATCH, l);
    d.batch.map_fd = static_cast<std::uint32_t>(ar);
    d.batch.flags = 0;
    s.rec("array delete batch", BPF_MAP_DELETE_BATCH, d);
    s.close(h);
    s.close(ar);
  });
}

TEST_F(KernelDiff, CommandAttrChecks) {
  diff([&](Side& s, bool) {
    const int fd = s.map_create("create", BPF_MAP_TYPE_HASH, 4, 4, 4);
    std::uint32_t k = 1;
    bpf_attr d{};
    d.map_fd = static_cast<std::uint32_t>(fd);
    d.key = ptr(&k);
    d.flags = 1;
    s.rec("delete with a field past key", BPF_MAP_DELETE_ELEM, d);
    bpf_attr f{};
    f.map_fd = static_cast<std::uint32_t>(fd);
    f.key = ptr(&k);
    s.rec("freeze with a field past map_fd", BPF_MAP_FREEZE, f);
    bpf_attr u{};
    s.rec("unknown command", 1000, u);
    s.close(fd);
  });
}

namespace {
Asm counting(int map_fd, std::int32_t ret) {
  Asm a;
  a.op(Op::StW, 10, 0, -4, 7)
      .lddw(Op::LddwMapFd, 1, map_fd)
      .op(Op::MovReg, 2, 10)
      .op(Op::AddImm, 2, 0, 0, -4)
      .call(BPF_FUNC_map_lookup_elem)
      .jmp(Op::JneImm, 0, 0, "found")
      .op(Op::StDW, 10, 0, -16, 1)
      .lddw(Op::LddwMapFd, 1, map_fd)
      .op(Op::MovReg, 2, 10)
      .op(Op::AddImm, 2, 0, 0, -4)
      .op(Op::MovReg, 3, 10)
      .op(Op::AddImm, 3, 0, 0, -16)
      .op(Op::MovImm, 4, 0, 0, BPF_NOEXIST)
      .call(BPF_FUNC_map_update_elem)
      .op(Op::Ja, 0, 0, 2)
      .label("found")
      .op(Op::MovImm, 1, 0, 0, 1)
      .op(Op::AtomicAddDW, 0, 1, 0)
      .op(Op::MovImm, 0, 0, 0, ret)
      .op(Op::Exit);
  return a;
}

int load(Side& s, const std::string& what, std::uint32_t type, const std::vector<isa::RawInsn>& insns,
         std::uint32_t log_level = 0, std::uint32_t log_size = 0, char* log = nullptr) {
  bpf_attr a{};
  a.prog_type = type;
  a.insn_cnt = static_cast<std::uint32_t>(insns.size());
  a.insns = ptr(insns.data());
  a.license = ptr("GPL");
  a.log_level = log_level;
  a.log_size = log_size;
  a.log_buf = ptr(log);
  return s.rec(what, BPF_PROG_LOAD, a);
}

void run(Side& s, const std::string& what, int prog, const std::vector<std::uint8_t>& data, std::uint32_t repeat,
         std::uint32_t out_size, const void* ctx_in = nullptr, std::uint32_t ctx_size_in = 0, void* ctx_out = nullptr,
         std::uint32_t ctx_size_out = 0) {
  std::vector<std::uint8_t> out(out_size);
  bpf_attr a{};
  a.test.prog_fd = static_cast<std::uint32_t>(prog);
  a.test.data_in = ptr(data.data());
  a.test.data_size_in = static_cast<std::uint32_t>(data.size());
  a.test.data_out = out_size != 0 ? ptr(out.data()) : 0;
  a.test.data_size_out = out_size;
  a.test.repeat = repeat;
  a.test.ctx_in = ptr(ctx_in);
  a.test.ctx_size_in = ctx_size_in;
  a.test.ctx_out = ptr(ctx_out);
  a.test.ctx_size_out = ctx_size_out;
  const int r = s.rec(what, BPF_PROG_TEST_RUN, a);
  if (r == 0 || errno == ENOSPC) {
    out.resize(std::min<std::size_t>(out.size(), a.test.data_size_out));
    s.note("retval " + std::to_string(a.test.retval) + " size_out " + std::to_string(a.test.data_size_out) +
           " out " + Side::to_hex(out));
  }
}

std::vector<std::uint8_t> pkt(std::size_t n) {
  std::vector<std::uint8_t> p(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>(i * 3);
  if (n > 14) {
    p[12] = 0x08;
    p[13] = 0x00;
    p[14] = 0x45;
  }
  return p;
}
}  // namespace

TEST_F(KernelDiff, LoadAndTestRun) {
  diff([&](Side& s, bool) {
    const int m = s.map_create("create counts", BPF_MAP_TYPE_HASH, 4, 8, 8);
    const int p = load(s, "load counting xdp", BPF_PROG_TYPE_XDP, counting(m, XDP_TX).raw());
    run(s, "xdp repeat 5", p, pkt(64), 5, 128);
    run(s, "xdp data_out too small", p, pkt(64), 1, 16);
    run(s, "xdp too short", p, pkt(10), 1, 128);
    run(s, "xdp too long", p, pkt(4000), 1, 4096);
    s.dump("counts", m, 4, 8);
    xdp_md md{};
    run(s, "xdp ctx_out without ctx_in", p, pkt(64), 1, 128, nullptr, 0, &md, sizeof md);
    md.data_end = 64;
    xdp_md mo{};
    run(s, "xdp ctx in/out", p, pkt(64), 1, 128, &md, sizeof md, &mo, sizeof mo);
    s.note("ctx_out data_end " + std::to_string(mo.data_end));
    md.data_meta = 4;
    run(s, "xdp ctx data_meta set", p, pkt(64), 1, 128, &md, sizeof md);
    // socket filter: ldabs is relative to the network header; len excludes Ethernet
    Asm sf;
    sf.op(Op::MovReg, 6, 1).op(Op::LdAbsB, 0, 0, 0, 0).op(Op::LdxW, 1, 6, 0).op(Op::LshImm, 1, 0, 0, 8).op(Op::OrReg, 0, 1).op(Op::Exit);
    const int q = load(s, "load socket filter", BPF_PROG_TYPE_SOCKET_FILTER, sf.raw());
    run(s, "socket filter", q, pkt(60), 1, 128);
    // tc: __sk_buff mark in, cb out; protocol and len
    Asm tc;
    tc.op(Op::LdxW, 0, 1, offsetof(__sk_buff, mark))
        .op(Op::LdxW, 2, 1, offsetof(__sk_buff, protocol))
        .op(Op::LshImm, 2, 0, 0, 16)
        .op(Op::OrReg, 0, 2)
        .op(Op::LdxW, 2, 1, offsetof(__sk_buff, len))
        .op(Op::LshImm, 2, 0, 0, 24)
        .op(Op::OrReg, 0, 2)
        .op(Op::StW, 1, 0, offsetof(__sk_buff, cb) + 4, 99)
        .op(Op::Exit);
    const int t = load(s, "load tc", BPF_PROG_TYPE_SCHED_CLS, tc.raw());
    __sk_buff in{}, out{};
    in.mark = 0x55;
    run(s, "tc with ctx", t, pkt(70), 1, 128, &in, sizeof in, &out, sizeof out);
    s.note("cb[1] " + std::to_string(out.cb[1]) + " mark " + std::to_string(out.mark));
    in.len = 3;
    run(s, "tc ctx with len set", t, pkt(70), 1, 128, &in, sizeof in, &out, sizeof out);
    in.len = 0;
    run(s, "tc ctx_out too small", t, pkt(70), 1, 128, &in, sizeof in, &out, 8);
    // PROG_LOAD log rules
    char log[256];
    Asm ret;
    ret.op(Op::MovImm, 0, 0, 0, 1).op(Op::Exit);
    load(s, "log_buf without level", BPF_PROG_TYPE_XDP, ret.raw(), 0, sizeof log, log);
    load(s, "log level 99", BPF_PROG_TYPE_XDP, ret.raw(), 99, sizeof log, log);
    load(s, "log size without buf", BPF_PROG_TYPE_XDP, ret.raw(), 1, sizeof log, nullptr);
    Asm bad;
    bad.call(100000).op(Op::Exit);
    load(s, "unknown helper", BPF_PROG_TYPE_XDP, bad.raw(), 1, sizeof log, log);
    load(s, "unknown helper, tiny log", BPF_PROG_TYPE_XDP, bad.raw(), 1, 8, log);
    load(s, "empty program", BPF_PROG_TYPE_XDP, {});
    load(s, "unknown type", BPF_PROG_TYPE_XDP + 1000, ret.raw());
  });
}
