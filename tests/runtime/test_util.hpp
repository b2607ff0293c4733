// Small helpers for the maps and runtime tests: temporary pin directories,
// a label-resolving program builder over isa::make, raw bpf() of the kernel.
#pragma once

#include <linux/bpf.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "isa/isa.hpp"
#include "runtime/runtime.hpp"

namespace userbpf::testing {

// The engine the runtime tests run in: runtime_test uses the JIT (the
// default), runtime_interp_test (same sources, USERBPF_RT_INTERP) the
// interpreter, so every test runs through both.
inline runtime::Engine test_engine() {
#ifdef USERBPF_RT_INTERP
  return runtime::Engine::Interpreter;
#else
  return runtime::Engine::Jit;
#endif
}
inline runtime::Options rt_options() {
  runtime::Options o;
  o.engine = test_engine();
  return o;
}

// A pointer as the u64 a bpf_attr field holds.
template <class T>
std::uint64_t ptr(const T* p) {
  return reinterpret_cast<std::uint64_t>(p);
}

// A fresh directory under /tmp, removed with everything in it at the end.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/userbpf-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Builds instruction lists with symbolic jump targets.
class Asm {
 public:
  Asm& op(isa::Op o, std::uint8_t dst = 0, std::uint8_t src = 0, std::int16_t off = 0, std::int32_t imm = 0) {
    v_.push_back(isa::make(o, dst, src, off, imm));
    return *this;
  }
  // lddw of a 64-bit immediate with a pseudo source (LddwMapFd, LddwMapIdx, ...)
  Asm& lddw(isa::Op o, std::uint8_t dst, std::int32_t imm, std::int32_t imm_hi = 0) {
    v_.push_back(isa::make(o, dst, 0, 0, imm, imm_hi));
    isa::Insn tail{};
    tail.op = isa::Op::LddwTail;
    tail.imm = imm_hi;
    v_.push_back(tail);
    return *this;
  }
  Asm& jmp(isa::Op o, std::uint8_t dst, std::int32_t imm, const std::string& label, std::uint8_t src = 0) {
    fix_.emplace_back(v_.size(), label);
    v_.push_back(isa::make(o, dst, src, 0, imm));
    return *this;
  }
  Asm& call(std::int32_t helper) { return op(isa::Op::Call, 0, 0, 0, helper); }
  // r0 = bpf_map_lookup_elem(map, &key) with a u32 key 0 at fp-4 (r1-r5 clobbered).
  Asm& lookup_key0(std::int32_t map_fd) {
    op(isa::Op::StW, 10, 0, -4, 0).lddw(isa::Op::LddwMapFd, 1, map_fd);
    return op(isa::Op::MovReg, 2, 10).op(isa::Op::AddImm, 2, 0, 0, -4).call(BPF_FUNC_map_lookup_elem);
  }
  Asm& label(const std::string& name) {
    labels_[name] = v_.size();
    return *this;
  }
  std::vector<isa::Insn> insns() const {
    auto v = v_;
    for (const auto& [at, name] : fix_)
      v[at].off = static_cast<std::int16_t>(static_cast<std::int64_t>(labels_.at(name)) - static_cast<std::int64_t>(at) - 1);
    return v;
  }
  std::vector<isa::RawInsn> raw() const { return isa::encode(insns()); }
  std::vector<std::uint64_t> words() const {
    std::vector<std::uint64_t> w;
    for (const auto& r : raw()) {
      std::uint64_t x;
      std::memcpy(&x, &r, 8);
      w.push_back(x);
    }
    return w;
  }

 private:
  std::vector<isa::Insn> v_;
  std::vector<std::pair<std::size_t, std::string>> fix_;
  std::map<std::string, std::size_t> labels_;
};

// The kernel's bpf(2).
inline int sys_bpf(int cmd, union bpf_attr* attr, unsigned size) {
  return static_cast<int>(::syscall(__NR_bpf, cmd, attr, size));
}

// A Runtime of the test engine over a fresh pin directory; `edit` adjusts the options.
struct TestRuntime {
  TempDir dir;
  std::unique_ptr<runtime::Runtime> rt;
  explicit TestRuntime(const std::function<void(runtime::Options&)>& edit = {}) {
    runtime::Options o = rt_options();
    o.pin_dir = dir.path();
    if (edit) edit(o);
    rt = std::make_unique<runtime::Runtime>(o);
  }
  int call(int cmd, bpf_attr& a) { return rt->bpf(cmd, &a, sizeof a); }
};

// bpf() and close() of one side of a differential test: the kernel's or a
// Runtime's (result, or -1 with errno).
struct BpfSide {
  std::function<int(int cmd, bpf_attr& attr)> bpf;
  std::function<void(int fd)> close;
};
inline BpfSide kernel_side() {
  return {[](int cmd, bpf_attr& a) { return sys_bpf(cmd, &a, sizeof a); }, [](int fd) { ::close(fd); }};
}
inline BpfSide runtime_side(runtime::Runtime& rt) {
  return {[&rt](int cmd, bpf_attr& a) { return rt.bpf(cmd, &a, sizeof a); }, [&rt](int fd) { (void)rt.close(fd); }};
}

}  // namespace userbpf::testing
