// Programs with open-coded iterators (progs/iter_loop.bpf.c: bpf_for over the
// bpf_iter_num_* kfuncs) run in userbpf's interpreter and JIT, verified, and
// in the kernel (BPF_PROG_TEST_RUN): return values and the map the programs
// write must be equal for every packet. Skipped where the kernel's BPF is
// unavailable (the userbpf runs are still checked against each other).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "loader/loader.hpp"
#include "oracle/oracle.hpp"
#include "run_util.hpp"
#include "runtime/runtime.hpp"
#include "verifier/object_config.hpp"

namespace {

using namespace userbpf;

const std::string kObj = std::string(REALPROGS_DIR) + "/iter_loop.bpf.o";
const char* const kProgs[] = {"xdp_iter_sum", "xdp_iter_nested", "xdp_iter_empty"};

std::vector<std::vector<std::uint8_t>> packets() {
  std::vector<std::vector<std::uint8_t>> v;
  for (const std::size_t len : {14u, 20u, 63u, 64u, 100u}) {
    std::vector<std::uint8_t> p(len);
    for (std::size_t i = 0; i < len; ++i) p[i] = static_cast<std::uint8_t>(i * 37 + len);
    v.push_back(std::move(p));
  }
  return v;
}

// "retval=N map=[a,b,c,d]" for one run of each program over each packet.
using RunFn = std::function<std::string(const std::string& prog, const std::vector<std::uint8_t>& pkt)>;
std::vector<std::string> run_all(const RunFn& run) {
  std::vector<std::string> out;
  for (const char* prog : kProgs)
    for (const auto& pkt : packets()) out.push_back(fmt::format("{} len={}: {}", prog, pkt.size(), run(prog, pkt)));
  return out;
}

std::vector<std::string> run_userbpf(runtime::Engine engine) {
  loader::OpenOptions oo;
  oo.externs.kfuncs = verifier::kfunc_symbols();
  realprogs::UserbpfRun u(kObj, engine, oo);
  if (!u.error().empty()) return {u.error()};
  auto m = u.rt().get_map(u.map_handle("iter_out"));
  return run_all([&](const std::string& prog, const std::vector<std::uint8_t>& pkt) {
    for (std::uint32_t k = 0; k < 4; ++k) {
      const std::uint64_t zero = 0;
      (void)m->map->update(&k, &zero, 0);
    }
    std::string s = u.test_run(prog, pkt);
    if (s.rfind("error", 0) == 0) return s;
    s += " map=[";
    for (std::uint32_t k = 0; k < 4; ++k) {
      std::uint64_t v = 0;
      (void)m->map->lookup(&k, &v, 0);
      s += fmt::format("{}{}", k ? "," : "", v);
    }
    return s + "]";
  });
}

std::vector<std::string> run_kernel() {
  realprogs::KernelRun kr(kObj);
  if (!kr.error().empty()) return {kr.error()};
  const int map = kr.map_fd("iter_out");
  return run_all([&](const std::string& prog, const std::vector<std::uint8_t>& pkt) {
    for (std::uint32_t k = 0; k < 4; ++k) {
      const std::uint64_t zero = 0;
      (void)bpf_map_update_elem(map, &k, &zero, 0);
    }
    std::string s = kr.test_run(prog, pkt);
    if (s.rfind("error", 0) == 0) return s;
    s += " map=[";
    for (std::uint32_t k = 0; k < 4; ++k) {
      std::uint64_t v = 0;
      (void)bpf_map_lookup_elem(map, &k, &v);
      s += fmt::format("{}{}", k ? "," : "", v);
    }
    return s + "]";
  });
}

TEST(IterRun, InterpreterJitAndKernelAgree) {
  const auto interp = run_userbpf(runtime::Engine::Interpreter);
  const auto jit = run_userbpf(runtime::Engine::Jit);
  ASSERT_EQ(interp.size(), std::size(kProgs) * packets().size()) << interp.front();
  EXPECT_EQ(interp, jit);
  for (const auto& r : interp) EXPECT_EQ(r.find("error"), std::string::npos) << r;
  if (std::getenv("ITER_RUN_VERBOSE") != nullptr)
    for (const auto& r : interp) std::printf("%s\n", r.c_str());
  // the results depend on the packet (the loops really ran)
  EXPECT_NE(interp[0], interp[4]);
  const auto& av = oracle::available();
  if (!av.ok) GTEST_SKIP() << "kernel part skipped: " << av.reason;
  const auto kernel = run_kernel();
  EXPECT_EQ(interp, kernel);
  for (std::size_t i = 0; i < interp.size() && i < kernel.size(); ++i)
    EXPECT_EQ(interp[i], kernel[i]) << "(left: userbpf, right: kernel)";
}

}  // namespace
