// Shared by the realprogs run tests: an object loaded into a userbpf
// runtime (temporary pin directory, removed at the end) or into the kernel
// (libbpf), with test runs that answer "retval=N" or "error: ...".
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "loader/loader.hpp"
#include "runtime/runtime.hpp"

namespace userbpf::realprogs {

class UserbpfRun {
 public:
  UserbpfRun(const std::string& path, runtime::Engine engine, loader::OpenOptions oo = {}) {
    oo.use_vmlinux_btf = false;
    auto obj = loader::Object::open(path, oo);
    if (!obj.ok()) {
      error_ = "open: " + obj.error().to_string();
      return;
    }
    char tmpl[] = "/tmp/userbpf-realprogs-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    runtime::Options o;
    o.pin_dir = dir_;
    o.engine = engine;
    rt_ = std::make_unique<runtime::Runtime>(o);
    auto loaded = rt_->load_object(*obj);
    if (!loaded.ok()) error_ = "load: " + loaded.error().to_string();
    else loaded_ = std::move(*loaded);
  }
  ~UserbpfRun() {
    rt_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  UserbpfRun(const UserbpfRun&) = delete;
  UserbpfRun& operator=(const UserbpfRun&) = delete;

  [[nodiscard]] const std::string& error() const { return error_; }
  runtime::Runtime& rt() { return *rt_; }
  [[nodiscard]] int prog(std::string_view name) const { return find(loaded_.progs, name); }
  [[nodiscard]] int map_handle(std::string_view name) const { return find(loaded_.maps, name); }
  std::string test_run(std::string_view name, const std::vector<std::uint8_t>& pkt) {
    runtime::TestRunArgs a;
    a.data_in = pkt;
    auto r = rt_->test_run(prog(name), a);
    return r.ok() ? fmt::format("retval={}", r->retval) : "error: " + r.error().to_string();
  }

 private:
  static int find(const std::vector<std::pair<std::string, int>>& v, std::string_view name) {
    for (const auto& [n, h] : v)
      if (n == name) return h;
    return -1;
  }
  std::string error_, dir_;
  std::unique_ptr<runtime::Runtime> rt_;
  runtime::LoadedObject loaded_;
};

class KernelRun {
 public:
  explicit KernelRun(const std::string& path) {
    libbpf_set_print(nullptr);
    obj_ = bpf_object__open_file(path.c_str(), nullptr);
    if (obj_ == nullptr) {
      error_ = "open failed";
    } else if (bpf_object__load(obj_) != 0) {
      error_ = "the kernel refused the object";
    }
  }
  ~KernelRun() { bpf_object__close(obj_); }
  KernelRun(const KernelRun&) = delete;
  KernelRun& operator=(const KernelRun&) = delete;

  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] int map_fd(const char* name) const { return bpf_object__find_map_fd_by_name(obj_, name); }
  std::string test_run(const std::string& name, const std::vector<std::uint8_t>& pkt) {
    bpf_program* p = bpf_object__find_program_by_name(obj_, name.c_str());
    LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = pkt.data(), .data_size_in = static_cast<__u32>(pkt.size()));
    if (bpf_prog_test_run_opts(bpf_program__fd(p), &t) != 0) return fmt::format("error: {}", std::strerror(errno));
    return fmt::format("retval={}", t.retval);
  }

 private:
  bpf_object* obj_ = nullptr;
  std::string error_;
};

}  // namespace userbpf::realprogs
