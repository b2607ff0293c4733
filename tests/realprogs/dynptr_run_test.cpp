// progs/dynptr.bpf.c (ring-buffer and local dynptrs, a socket lookup) run in
// userbpf's interpreter and JIT, verified, and in the kernel
// (BPF_PROG_TEST_RUN): for every packet the return value, the output map and
// the ring buffer records (bytes) must be equal. Skipped where the kernel's
// BPF is unavailable (the userbpf engines are still compared).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "maps/ringbuf.hpp"
#include "oracle/oracle.hpp"
#include "run_util.hpp"

namespace {

using namespace userbpf;

const std::string kObj = std::string(REALPROGS_DIR) + "/dynptr.bpf.o";
const char* const kProgs[] = {"xdp_dynptr_ring", "xdp_dynptr_local", "tc_sk_lookup"};

std::vector<std::vector<std::uint8_t>> packets() {
  std::vector<std::vector<std::uint8_t>> v;
  for (const std::size_t len : {14u, 15u, 20u, 33u, 64u, 100u}) {
    std::vector<std::uint8_t> p(len);
    for (std::size_t i = 0; i < len; ++i) p[i] = static_cast<std::uint8_t>(i * 37 + len);
    v.push_back(std::move(p));
  }
  return v;
}

std::string hex(const void* d, std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += fmt::format("{:02x}", static_cast<const std::uint8_t*>(d)[i]);
  return s;
}

// One run: the program's return value (or an error), then the map and records.
struct Hooks {
  std::function<std::string(const std::string& prog, const std::vector<std::uint8_t>& pkt)> run;
  std::function<void()> reset;                      // zero the output and scratch maps
  std::function<std::uint64_t(std::uint32_t)> out;  // dyn_out[k]
  std::function<std::vector<std::string>()> records;  // ring records consumed since the last call
};

std::vector<std::string> run_all(const Hooks& h) {
  std::vector<std::string> res;
  for (const char* prog : kProgs)
    for (const auto& pkt : packets()) {
      h.reset();
      std::string s = fmt::format("{} len={}: {} out=[", prog, pkt.size(), h.run(prog, pkt));
      for (std::uint32_t k = 0; k < 4; ++k) s += fmt::format("{}{}", k ? "," : "", h.out(k));
      s += "] records=[";
      const auto recs = h.records();
      for (std::size_t i = 0; i < recs.size(); ++i) s += (i ? "," : "") + recs[i];
      res.push_back(s + "]");
    }
  return res;
}

std::vector<std::string> run_userbpf(runtime::Engine engine) {
  realprogs::UserbpfRun u(kObj, engine);
  if (!u.error().empty()) return {u.error()};
  auto out = u.rt().get_map(u.map_handle("dyn_out"));
  auto scratch = u.rt().get_map(u.map_handle("dyn_scratch"));
  auto ring = u.rt().get_map(u.map_handle("dyn_ring"));
  std::vector<std::string> pending;
  maps::RingBufConsumer consumer;
  EXPECT_EQ(consumer.add(*ring->map, [&](const void* d, std::size_t n) {
    pending.push_back(hex(d, n));
    return 0;
  }), 0);
  Hooks h;
  h.run = [&](const std::string& prog, const std::vector<std::uint8_t>& pkt) { return u.test_run(prog, pkt); };
  h.reset = [&] {
    for (std::uint32_t k = 0; k < 4; ++k) {
      const std::uint64_t zero = 0;
      (void)out->map->update(&k, &zero, 0);
    }
    const std::uint32_t k0 = 0;
    const std::vector<std::uint8_t> zeros(64);
    (void)scratch->map->update(&k0, zeros.data(), 0);
  };
  h.out = [&](std::uint32_t k) {
    std::uint64_t v = 0;
    (void)out->map->lookup(&k, &v, 0);
    return v;
  };
  h.records = [&] {
    consumer.consume();
    auto r = std::move(pending);
    pending.clear();
    return r;
  };
  return run_all(h);
}

std::vector<std::string> run_kernel() {
  realprogs::KernelRun k(kObj);
  if (!k.error().empty()) return {k.error()};
  const int out = k.map_fd("dyn_out"), scratch = k.map_fd("dyn_scratch");
  std::vector<std::string> pending;
  ring_buffer* rb = ring_buffer__new(
      k.map_fd("dyn_ring"),
      [](void* ctx, void* d, size_t n) {
        static_cast<std::vector<std::string>*>(ctx)->push_back(hex(d, n));
        return 0;
      },
      &pending, nullptr);
  Hooks h;
  h.run = [&](const std::string& prog, const std::vector<std::uint8_t>& pkt) { return k.test_run(prog, pkt); };
  h.reset = [&] {
    for (std::uint32_t key = 0; key < 4; ++key) {
      const std::uint64_t zero = 0;
      (void)bpf_map_update_elem(out, &key, &zero, 0);
    }
    const std::uint32_t k0 = 0;
    const std::vector<std::uint8_t> zeros(64);
    (void)bpf_map_update_elem(scratch, &k0, zeros.data(), 0);
  };
  h.out = [&](std::uint32_t key) {
    std::uint64_t v = 0;
    (void)bpf_map_lookup_elem(out, &key, &v);
    return v;
  };
  h.records = [&] {
    if (rb != nullptr) ring_buffer__consume(rb);
    auto r = std::move(pending);
    pending.clear();
    return r;
  };
  auto result = run_all(h);
  ring_buffer__free(rb);
  return result;
}

TEST(DynptrRun, InterpreterJitAndKernelAgree) {
  const auto interp = run_userbpf(runtime::Engine::Interpreter);
  const auto jit = run_userbpf(runtime::Engine::Jit);
  ASSERT_EQ(interp.size(), std::size(kProgs) * packets().size()) << interp.front();
  EXPECT_EQ(interp, jit);
  for (const auto& r : interp) EXPECT_EQ(r.find("error"), std::string::npos) << r;
  if (std::getenv("DYNPTR_RUN_VERBOSE") != nullptr)
    for (const auto& r : interp) std::printf("%s\n", r.c_str());
  // the programs really ran: even lengths submit a record, odd ones discard it
  EXPECT_NE(interp[0].find("records=[0e"), std::string::npos) << interp[0];
  EXPECT_NE(interp[1].find("records=[]"), std::string::npos) << interp[1];
  const auto& av = oracle::available();
  if (!av.ok) GTEST_SKIP() << "kernel part skipped: " << av.reason;
  const auto kernel = run_kernel();
  ASSERT_EQ(interp.size(), kernel.size()) << kernel.front();
  for (std::size_t i = 0; i < interp.size(); ++i)
    EXPECT_EQ(interp[i], kernel[i]) << "(left: userbpf, right: kernel)";
}

}  // namespace
