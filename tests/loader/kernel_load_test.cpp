// The kernel as an oracle for the loader's output: the maps of an object are
// created with bpf(BPF_MAP_CREATE) (with the fixed-up BTF and our key/value
// type ids), our BPF_PSEUDO_MAP_IDX(_VALUE) references are bound to their
// fds, and every program is loaded with BPF_PROG_LOAD including our func_info
// and line_info. The kernel's verifier then checks the relocations, the
// bpf-to-bpf linking, the BTF fix-up and the func/line info. Skipped (with
// the reason) where bpf() is not available.
#include <gtest/gtest.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "loader/loader.hpp"
#include "test_util.hpp"

using namespace userbpf;
using namespace userbpf::loader;

namespace {

struct Fds {
  int btf = -1;
  std::vector<int> maps;
  std::vector<int> progs;
  ~Fds() {
    for (int fd : progs) close(fd);
    for (int fd : maps)
      if (fd >= 0) close(fd);
    if (btf >= 0) close(btf);
  }
};

// Returns an empty string on success, else why it failed; `skip` set when bpf() itself is unavailable.
std::string create_maps(const Object& obj, Fds& fds, bool& skip) {
  skip = false;
  if (!obj.btf_data().empty()) {
    LIBBPF_OPTS(bpf_btf_load_opts, bo);
    static char log[1 << 16];
    bo.log_buf = log;
    bo.log_size = sizeof log;
    bo.log_level = 1;
    fds.btf = bpf_btf_load(obj.btf_data().data(), obj.btf_data().size(), &bo);
    if (fds.btf < 0) {
      const int e = errno;
      if (e == EPERM || e == ENOSYS) {
        skip = true;
        return std::string("bpf(BPF_BTF_LOAD) unavailable: ") + std::strerror(e);
      }
      return std::string("BTF_LOAD failed: ") + std::strerror(e) + "\n" + log;
    }
  }
  fds.maps.assign(obj.maps().size(), -1);
  // Inner map templates first (outer maps need their fd).
  for (int pass = 0; pass < 2; ++pass) {
    for (std::size_t i = 0; i < obj.maps().size(); ++i) {
      const Map& m = obj.maps()[i];
      if ((pass == 0) != (m.origin == MapOrigin::Inner)) continue;
      LIBBPF_OPTS(bpf_map_create_opts, mo);
      mo.map_flags = m.map_flags;
      mo.numa_node = m.numa_node;
      mo.map_extra = m.map_extra;
      // Keyless BTF is only accepted for global data (DATASEC values); libbpf retries without BTF otherwise.
      const bool keyless_ok = m.origin == MapOrigin::GlobalData || m.origin == MapOrigin::Kconfig;
      if (fds.btf >= 0 && m.btf_value_type_id != 0 && (m.btf_key_type_id != 0 || keyless_ok)) {
        mo.btf_fd = static_cast<__u32>(fds.btf);
        mo.btf_key_type_id = m.btf_key_type_id;
        mo.btf_value_type_id = m.btf_value_type_id;
      }
      if (m.inner_map) mo.inner_map_fd = static_cast<__u32>(fds.maps[*m.inner_map]);
      const std::string name = m.name.substr(0, 15);
      const int fd = bpf_map_create(static_cast<enum bpf_map_type>(m.type), name.c_str(), m.key_size, m.value_size,
                                    m.max_entries, &mo);
      if (fd < 0) {
        const int e = errno;
        if (i == 0 && (e == EPERM || e == ENOSYS)) {
          skip = true;
          return std::string("bpf(BPF_MAP_CREATE) unavailable: ") + std::strerror(e);
        }
        return "map '" + m.name + "': MAP_CREATE failed: " + std::strerror(e);
      }
      fds.maps[i] = fd;
      if (!m.initial_data.empty()) {
        const __u32 zero = 0;
        if (bpf_map_update_elem(fd, &zero, m.initial_data.data(), 0) != 0)
          return "map '" + m.name + "': initial value: " + std::strerror(errno);
      }
      if (m.frozen && bpf_map_freeze(fd) != 0) return "map '" + m.name + "': freeze: " + std::strerror(errno);
    }
  }
  return {};
}

std::string load_prog(const Object& obj, const Program& p, Fds& fds) {
  std::vector<isa::Insn> insns = p.insns;
  for (isa::Insn& in : insns) {
    if (in.op == isa::Op::LddwMapIdx) {
      in = isa::make(isa::Op::LddwMapFd, in.dst, 0, 0, fds.maps.at(static_cast<std::size_t>(in.imm)), 0);
    } else if (in.op == isa::Op::LddwMapIdxVal) {
      in = isa::make(isa::Op::LddwMapValue, in.dst, 0, 0, fds.maps.at(static_cast<std::size_t>(in.imm)), in.imm_hi);
    }
  }
  const auto raw = isa::encode(insns);
  std::vector<bpf_func_info> fi;
  for (const FuncInfo& f : p.func_info) fi.push_back({static_cast<__u32>(f.insn), f.type_id});
  std::vector<bpf_line_info> li;
  for (const LineInfo& l : p.line_info)
    li.push_back({static_cast<__u32>(l.insn), l.file_name_off, l.line_off, (l.line << 10) | l.column});
  LIBBPF_OPTS(bpf_prog_load_opts, po);
  static char log[1 << 20];
  log[0] = 0;
  po.log_buf = log;
  po.log_size = sizeof log;
  po.log_level = 1;
  po.expected_attach_type = static_cast<enum bpf_attach_type>(p.expected_attach_type);
  po.prog_flags = p.prog_flags;
  po.kern_version = obj.kernel_version();
  if (fds.btf >= 0 && !fi.empty()) {
    po.prog_btf_fd = static_cast<__u32>(fds.btf);
    po.func_info = fi.data();
    po.func_info_cnt = static_cast<__u32>(fi.size());
    po.func_info_rec_size = sizeof(bpf_func_info);
    po.line_info = li.data();
    po.line_info_cnt = static_cast<__u32>(li.size());
    po.line_info_rec_size = sizeof(bpf_line_info);
  }
  const std::string name = p.name.substr(0, 15);
  const int fd = bpf_prog_load(static_cast<enum bpf_prog_type>(p.prog_type), name.c_str(), obj.license().c_str(),
                               reinterpret_cast<const bpf_insn*>(raw.data()), raw.size(), &po);
  if (fd < 0) {
    const int e = errno;
    std::string lg(log);
    if (lg.size() > 3000) lg = "..." + lg.substr(lg.size() - 3000);
    return "prog '" + p.name + "': PROG_LOAD failed: " + std::strerror(e) + "\n" + lg;
  }
  fds.progs.push_back(fd);
  return {};
}

void load_all(const char* name, const OpenOptions& o = {}) {
  SCOPED_TRACE(name);
  libbpf_set_print([](enum libbpf_print_level, const char*, va_list) { return 0; });
  auto obj = Object::open(loader_test::prog_path(name), o);
  ASSERT_TRUE(obj.ok()) << obj.error().to_string();
  Fds fds;
  bool skip = false;
  const std::string why = create_maps(*obj, fds, skip);
  if (skip) GTEST_SKIP() << why;
  ASSERT_TRUE(why.empty()) << why;
  for (const Program& p : obj->programs()) {
    const std::string e = load_prog(*obj, p, fds);
    EXPECT_TRUE(e.empty()) << e;
  }
}

}  // namespace

TEST(KernelLoad, XdpMaps) { load_all("xdp_maps.bpf.o"); }
TEST(KernelLoad, Subprograms) { load_all("subprogs.bpf.o"); }
TEST(KernelLoad, ProgArray) { load_all("prog_array.bpf.o"); }
TEST(KernelLoad, LegacyMaps) { load_all("legacy_maps.bpf.o"); }
TEST(KernelLoad, Iproute2) { load_all("iproute2.bpf.o"); }
TEST(KernelLoad, CoreAgainstVmlinux) {
  if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) GTEST_SKIP() << "/sys/kernel/btf/vmlinux not readable";
  load_all("core_vmlinux.bpf.o");
}
