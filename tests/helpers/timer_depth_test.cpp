// A bpf_timer callback starts at frame depth 0, as the kernel's async
// callbacks do (the verifier's push_async_cb: a state whose only frame is the
// callback): it may nest 7 more bpf-to-bpf frames, 8 in all. The program arms
// a timer whose callback calls f1 -> f2 -> ... -> fN; each function keeps a
// number on its own stack frame and returns the sum 1 + ... + N, which the
// callback stores in the map value. N = 7 must give 28 in the interpreter and
// the JIT; N = 8 (a 9th frame) must fault with the call-depth error, the value
// left untouched and the fault written to the trace sink.
//
// Programs are built with isa::Builder and loaded unverified (checked runs;
// no BTF needed, the map is made with MapSpec::timer_off).
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

#include "isa/builder.hpp"
#include "isa/isa.hpp"
#include "runtime/runtime.hpp"

namespace {

using namespace userbpf;
using isa::Op;

// value: u64 result @0, struct bpf_timer @8, s64 timer_start's r0 @24
struct Value {
  std::uint64_t result;
  std::uint64_t timer[2];
  std::int64_t start_ret;
};

class Sink : public helpers::TraceSink {
 public:
  void write(std::string_view m) override {
    std::lock_guard lk(mu_);
    text_ += m;
  }
  std::string text() {
    std::lock_guard lk(mu_);
    return text_;
  }

 private:
  std::mutex mu_;
  std::string text_;
};

// Arms the timer of element 0 (fires at once); the callback stores the sum
// computed by `nested` nested functions.
std::vector<isa::RawInsn> program(int map, int nested) {
  isa::Builder p;
  p(Op::StW, 10, 0, -4, 0);
  p.lddw(1, static_cast<std::uint32_t>(map), Op::LddwMapFd)(Op::MovReg, 2, 10)(Op::AddImm, 2, 0, 0, -4);
  p(Op::Call, 0, 0, 0, BPF_FUNC_map_lookup_elem);
  const std::size_t null_check = p.v.size();
  p(Op::JeqImm, 0, 0, 0, 0);  // to `out`, patched below
  p(Op::MovReg, 6, 0);
  p(Op::MovReg, 1, 6)(Op::AddImm, 1, 0, 0, 8);
  p.lddw(2, static_cast<std::uint32_t>(map), Op::LddwMapFd).mov(3, 1);  // CLOCK_MONOTONIC
  p(Op::Call, 0, 0, 0, BPF_FUNC_timer_init);
  p(Op::MovReg, 1, 6)(Op::AddImm, 1, 0, 0, 8);
  const std::size_t set_cb = p.v.size();
  p.lddw(2, 0, Op::LddwFunc);  // func(cb), patched below
  p(Op::Call, 0, 0, 0, BPF_FUNC_timer_set_callback);
  p(Op::MovReg, 1, 6)(Op::AddImm, 1, 0, 0, 8).mov(2, 0).mov(3, 0);
  p(Op::Call, 0, 0, 0, BPF_FUNC_timer_start);
  p(Op::StxDW, 6, 0, 24);
  const std::size_t out = p.v.size();
  p.mov(0, XDP_PASS).exit();
  // cb(map, key, value): value->result = f1()
  const std::size_t cb = p.v.size();
  p(Op::MovReg, 6, 3)(Op::CallLocal, 0, 1, 0, 3)(Op::StxDW, 6, 0, 0).mov(0, 0).exit();
  // f_k: *(u64 *)(r10 - 8) = k; r0 = f_{k+1}() (f_N: 0); r0 += *(u64 *)(r10 - 8)
  for (int k = 1; k <= nested; ++k) {
    p(Op::StDW, 10, 0, -8, k);
    if (k < nested)
      p(Op::CallLocal, 0, 1, 0, 3);  // the next function, 5 instructions on
    else
      p.mov(0, 0);
    p(Op::LdxDW, 1, 10, -8)(Op::AddReg, 0, 1).exit();
  }
  p.v[null_check].off = static_cast<std::int16_t>(out - null_check - 1);
  p.v[set_cb].imm = static_cast<std::int32_t>(cb - set_cb - 1);
  return isa::encode(p.v);
}

class TimerDepth : public ::testing::TestWithParam<runtime::Engine> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/userbpf-timerdepth-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs the program once and waits for the callback; the value afterwards.
  Value run(int nested, Sink& sink) {
    runtime::Options o;
    o.pin_dir = dir_;
    o.verify = false;
    o.engine = GetParam();
    o.trace = &sink;
    runtime::Runtime rt(o);
    maps::MapSpec s;
    s.type = BPF_MAP_TYPE_ARRAY;
    s.key_size = 4;
    s.value_size = sizeof(Value);
    s.max_entries = 1;
    s.name = "depth";
    s.timer_off = 8;
    auto map = rt.map_create(s);
    EXPECT_TRUE(map.ok()) << map.error().to_string();
    if (!map.ok()) return {};
    const auto raw = program(*map, nested);
    runtime::ProgSpec ps;
    ps.type = BPF_PROG_TYPE_XDP;
    ps.name = "timer_depth";
    ps.insns = raw;
    auto prog = rt.prog_load(ps);
    EXPECT_TRUE(prog.ok()) << prog.error().to_string();
    if (!prog.ok()) return {};
    const std::vector<std::uint8_t> pkt(64, 0);
    runtime::TestRunArgs a;
    a.data_in = pkt;
    auto r = rt.test_run(*prog, a);
    EXPECT_TRUE(r.ok() && r->retval == XDP_PASS) << (r.ok() ? "retval" : r.error().to_string());
    for (int i = 0; i < 300 && rt.timer_service()->counts().fired == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(rt.timer_service()->counts().fired, 1u);
    Value v{};
    const std::uint32_t k = 0;
    EXPECT_EQ(rt.get_map(*map)->map->lookup(&k, &v, 0), 0);
    return v;
  }
  std::string dir_;
};

TEST_P(TimerDepth, CallbackUsesAllEightFrames) {
  Sink sink;
  const Value v = run(7, sink);
  EXPECT_EQ(v.start_ret, 0);
  EXPECT_EQ(v.result, 28u) << "callback frame + 7 nested frames; trace: " << sink.text();
  EXPECT_EQ(sink.text(), "");
}

TEST_P(TimerDepth, NinthFrameFaults) {
  Sink sink;
  const Value v = run(8, sink);
  EXPECT_EQ(v.start_ret, 0);
  EXPECT_EQ(v.result, 0u) << "the 9th frame must not run";
  EXPECT_NE(sink.text().find("call depth exceeds 8 frames"), std::string::npos) << sink.text();
}

INSTANTIATE_TEST_SUITE_P(Engines, TimerDepth,
                         ::testing::Values(runtime::Engine::Interpreter, runtime::Engine::Jit),
                         [](const auto& info) {
                           return std::string(info.param == runtime::Engine::Jit ? "Jit" : "Interpreter");
                         });

}  // namespace
