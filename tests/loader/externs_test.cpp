// Extern resolution (src/loader/externs.cpp): .kconfig values from a config
// file / the kconfig option / the running kernel, as libbpf resolves them
// (checked against libbpf itself loading the same object into the kernel),
// and .ksyms against host symbols.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>

#include "loader/loader.hpp"
#include "test_util.hpp"

extern "C" {
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
}

using namespace userbpf;
using namespace userbpf::loader;

namespace {

// Values for every CONFIG_UB_* extern of kconfig_values.bpf.c.
const char* const kConfig =
    "# a comment\n"
    "CONFIG_UB_BOOL=y\n"
    "CONFIG_UB_TRI_Y=y\n"
    "CONFIG_UB_TRI_M=m\n"
    "CONFIG_UB_CHAR=m\n"
    "CONFIG_UB_INT=-1000\n"
    "CONFIG_UB_U16=0xbeef\n"
    "CONFIG_UB_NEG=-5\n"
    "CONFIG_UB_HEX=0x123456789a\n"
    "CONFIG_UB_STR=\"hello, world\"\n"
    "# CONFIG_UB_NOT_SET is not set\n";

std::string temp_file(const std::string& name, const std::string& text, bool gz) {
  const std::string path = ::testing::TempDir() + "/" + name;
  if (gz) {
    gzFile f = gzopen(path.c_str(), "wb");
    EXPECT_NE(f, nullptr);
    gzwrite(f, text.data(), static_cast<unsigned>(text.size()));
    gzclose(f);
  } else {
    std::ofstream(path) << text;
  }
  return path;
}

const Extern& ext(const Object& o, std::string_view name) {
  for (const Extern& e : o.externs())
    if (e.name == name) return e;
  ADD_FAILURE() << "no extern " << name;
  static Extern none;
  return none;
}

std::uint64_t kval(const Object& o, std::string_view name) {
  const Extern& e = ext(o, name);
  const Map* m = nullptr;
  for (const Map& mm : o.maps())
    if (mm.origin == MapOrigin::Kconfig) m = &mm;
  EXPECT_NE(m, nullptr);
  if (m == nullptr || e.kconfig_offset + e.size > m->initial_data.size()) return ~0ull;
  std::uint64_t v = 0;
  for (std::uint32_t i = 0; i < e.size && i < 8; ++i)
    v |= std::uint64_t{m->initial_data[e.kconfig_offset + i]} << (8 * i);
  return v;
}

std::vector<std::uint8_t> kconfig_bytes(const Object& o) {
  for (const Map& m : o.maps())
    if (m.origin == MapOrigin::Kconfig) return m.initial_data;
  return {};
}

std::uint32_t uname_version() {
  struct utsname u {};
  uname(&u);
  unsigned a = 0, b = 0, c = 0;
  std::sscanf(u.release, "%u.%u.%u", &a, &b, &c);
  return (a << 16) + (b << 8) + std::min(c, 255u);
}

OpenOptions with_config(const std::string& path) {
  OpenOptions o;
  o.externs.kconfig_path = path;
  return o;
}

void check_values(const Object& o) {
  EXPECT_EQ(kval(o, "LINUX_KERNEL_VERSION"), uname_version());
  EXPECT_EQ(kval(o, "LINUX_HAS_SYSCALL_WRAPPER"), 1u);
  EXPECT_EQ(kval(o, "LINUX_HAS_BPF_COOKIE"), 0u);
  EXPECT_EQ(kval(o, "CONFIG_UB_BOOL"), 1u);
  EXPECT_EQ(kval(o, "CONFIG_UB_TRI_Y"), 1u);
  EXPECT_EQ(kval(o, "CONFIG_UB_TRI_M"), 2u);
  EXPECT_EQ(kval(o, "CONFIG_UB_CHAR"), static_cast<std::uint64_t>('m'));
  EXPECT_EQ(static_cast<std::int32_t>(kval(o, "CONFIG_UB_INT")), -1000);
  EXPECT_EQ(kval(o, "CONFIG_UB_U16"), 0xbeefu);
  EXPECT_EQ(static_cast<std::int64_t>(kval(o, "CONFIG_UB_NEG")), -5);
  EXPECT_EQ(kval(o, "CONFIG_UB_HEX"), 0x123456789aull);
  EXPECT_EQ(kval(o, "CONFIG_UB_MISSING"), 0u);
  EXPECT_EQ(kval(o, "CONFIG_UB_NOT_SET"), 0u);
  EXPECT_FALSE(ext(o, "CONFIG_UB_MISSING").resolved);
  EXPECT_TRUE(ext(o, "CONFIG_UB_INT").resolved);
  // The string: truncated to the 8-byte array with a NUL, and a warning.
  const Extern& s = ext(o, "CONFIG_UB_STR");
  const auto bytes = kconfig_bytes(o);
  ASSERT_LE(s.kconfig_offset + 8u, bytes.size());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(bytes.data() + s.kconfig_offset)), "hello, ");
  bool warned = false;
  for (const std::string& w : o.warnings()) warned |= w.find("CONFIG_UB_STR") != std::string::npos;
  EXPECT_TRUE(warned);
}

}  // namespace

TEST(Externs, KconfigFromNamedFile) {
  const std::string path = temp_file("ub.config", kConfig, false);
  OPEN_OR_FAIL(obj, "kconfig_values.bpf.o", with_config(path));
  check_values(obj);
  EXPECT_EQ(ext(obj, "CONFIG_UB_INT").source, path);
}

TEST(Externs, KconfigFromGzipFile) {
  OPEN_OR_FAIL(obj, "kconfig_values.bpf.o", with_config(temp_file("ub.config.gz", kConfig, true)));
  check_values(obj);
}

TEST(Externs, KconfigOptionOverridesFile) {
  OpenOptions o = with_config(temp_file("ub2.config", kConfig, false));
  o.externs.kconfig_extra = "CONFIG_UB_INT=77\nCONFIG_UB_BOOL=n\n";
  o.externs.kernel_version = 0x050a11;
  o.externs.has_bpf_cookie = true;
  OPEN_OR_FAIL(obj, "kconfig_values.bpf.o", o);
  EXPECT_EQ(kval(obj, "CONFIG_UB_INT"), 77u);
  EXPECT_EQ(kval(obj, "CONFIG_UB_BOOL"), 0u);
  EXPECT_EQ(kval(obj, "CONFIG_UB_U16"), 0xbeefu);  // from the file
  EXPECT_EQ(kval(obj, "LINUX_KERNEL_VERSION"), 0x050a11u);
  EXPECT_EQ(kval(obj, "LINUX_HAS_BPF_COOKIE"), 1u);
  EXPECT_EQ(ext(obj, "CONFIG_UB_INT").source, "kconfig option");
}

TEST(Externs, KconfigErrorsNameTheExtern) {
  struct Case {
    std::string line;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"CONFIG_UB_BOOL=m", "'CONFIG_UB_BOOL': value 'm'"},
      {"CONFIG_UB_INT=y", "'CONFIG_UB_INT': value 'y'"},
      {"CONFIG_UB_INT=\"x\"", "'CONFIG_UB_INT': value \"x\""},
      {"CONFIG_UB_U16=70000", "'CONFIG_UB_U16': value '70000'"},
      {"CONFIG_UB_BOOL=2", "'CONFIG_UB_BOOL': value '2'"},
      {"CONFIG_UB_INT=12abc", "'CONFIG_UB_INT': value '12abc'"},
      {"CONFIG_UB_STR=\"open", "'CONFIG_UB_STR': invalid string"},
      {"CONFIG_UB_INT", "no separator"},
      {"CONFIG_UB_INT=", "no value"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.line);
    OpenOptions o = with_config(temp_file("ub3.config", kConfig, false));
    o.externs.kconfig_extra = c.line + "\n";
    auto r = Object::open(loader_test::prog_path("kconfig_values.bpf.o"), o);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().to_string().find(c.expect), std::string::npos) << r.error().to_string();
    EXPECT_NE(r.error().to_string().find("kconfig_values"), std::string::npos) << r.error().to_string();
  }
  // A non-weak extern without a value.
  std::string partial = kConfig;
  partial.erase(partial.find("CONFIG_UB_HEX"), std::strlen("CONFIG_UB_HEX=0x123456789a\n"));
  auto r = Object::open(loader_test::prog_path("kconfig_values.bpf.o"),
                        with_config(temp_file("ub4.config", partial, false)));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("extern (kcfg) 'CONFIG_UB_HEX': value not found"), std::string::npos)
      << r.error().to_string();
  // A config file that does not exist.
  auto r2 = Object::open(loader_test::prog_path("kconfig_values.bpf.o"), with_config("/nonexistent/config"));
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().message.find("/nonexistent/config"), std::string::npos) << r2.error().to_string();
}

TEST(Externs, DeferredLeavesThemAsLibbpfOpen) {
  OpenOptions o;
  o.externs.resolve = false;
  OPEN_OR_FAIL(obj, "kconfig_values.bpf.o", o);
  for (std::uint8_t b : kconfig_bytes(obj)) EXPECT_EQ(b, 0);
  OPEN_OR_FAIL(ks, "ksyms.bpf.o", o);
  const Program& p = ks.programs().at(0);
  ASSERT_EQ(p.extern_uses.size(), 4u);
  for (const ExternUse& u : p.extern_uses) EXPECT_EQ(p.insns[u.insn].imm, 0);
}

// The running kernel's config (/boot/config-$(uname -r) or /proc/config.gz),
// read independently here, against what the loader put in .kconfig.
TEST(Externs, RunningKernelConfig) {
  struct utsname u {};
  uname(&u);
  std::string text;
  for (const std::string& p : {std::string("/boot/config-") + u.release, std::string("/proc/config.gz")}) {
    gzFile f = gzopen(p.c_str(), "rb");
    if (f == nullptr) continue;
    char buf[4096];
    int n = 0;
    while ((n = gzread(f, buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
    gzclose(f);
    break;
  }
  if (text.empty()) GTEST_SKIP() << "no kernel config (/boot/config-" << u.release << ", /proc/config.gz)";
  OPEN_OR_FAIL(obj, "kconfig.bpf.o");
  const bool has_syscall = text.find("\nCONFIG_BPF_SYSCALL=y\n") != std::string::npos;
  EXPECT_EQ(kval(obj, "CONFIG_BPF_SYSCALL"), has_syscall ? 1u : 0u);
  const auto hz = text.find("\nCONFIG_HZ=");
  const std::uint64_t want_hz = hz == std::string::npos ? 0 : std::strtoull(text.c_str() + hz + 11, nullptr, 0);
  EXPECT_EQ(kval(obj, "CONFIG_HZ"), want_hz);
  EXPECT_EQ(kval(obj, "LINUX_KERNEL_VERSION"), uname_version());
}

// libbpf resolves the same object's externs at load (into the kernel): the
// .kconfig map's bytes must be the same.
TEST(Externs, SameKconfigBytesAsLibbpf) {
  libbpf_set_print([](enum libbpf_print_level, const char*, va_list) { return 0; });
  const std::string path = loader_test::prog_path("kconfig_values.bpf.o");
  const std::string cfg = kConfig;
  LIBBPF_OPTS(bpf_object_open_opts, oo, .kconfig = cfg.c_str());
  struct bpf_object* lb = bpf_object__open_file(path.c_str(), &oo);
  ASSERT_NE(lb, nullptr);
  const int err = bpf_object__load(lb);
  if (err != 0) {
    bpf_object__close(lb);
    GTEST_SKIP() << "the kernel refused the object through libbpf: " << std::strerror(-err);
  }
  std::vector<std::uint8_t> theirs;
  struct bpf_map* m = nullptr;
  bpf_object__for_each_map(m, lb) {
    if (std::string(bpf_map__name(m)).find(".kconfig") == std::string::npos) continue;
    theirs.resize(bpf_map__value_size(m));
    const std::uint32_t key = 0;
    EXPECT_EQ(bpf_map_lookup_elem(bpf_map__fd(m), &key, theirs.data()), 0);
  }
  bpf_object__close(lb);
  ASSERT_FALSE(theirs.empty());
  OpenOptions o;
  o.externs.kconfig_extra = cfg;
  o.externs.kconfig_path = "/dev/null";  // everything comes from the option, as for libbpf here
  OPEN_OR_FAIL(obj, "kconfig_values.bpf.o", o);
  const auto ours = kconfig_bytes(obj);
  ASSERT_EQ(ours.size(), theirs.size());
  for (const Extern& e : obj.externs()) {
    // LINUX_HAS_*: libbpf probes the kernel (kprobes for the syscall wrapper);
    // for userbpf they are host settings (ExternOptions), checked above.
    if (e.kind != ExternKind::Kconfig || e.name.rfind("LINUX_HAS_", 0) == 0) continue;
    EXPECT_TRUE(std::equal(ours.begin() + e.kconfig_offset, ours.begin() + e.kconfig_offset + e.size,
                           theirs.begin() + e.kconfig_offset))
        << e.name << " at offset " << e.kconfig_offset;
  }
}

TEST(Externs, KsymsResolvedFromHostSymbols) {
  OpenOptions o;
  o.externs.kfuncs = {{"host_add", 1001}, {"host_maybe", 1002}};
  o.externs.ksym_vars = {{"host_counter", 0x1122334455667788ull}};
  OPEN_OR_FAIL(obj, "ksyms.bpf.o", o);
  const Program& p = obj.programs().at(0);
  std::map<std::string, std::vector<std::size_t>> uses;
  for (const ExternUse& u : p.extern_uses) uses[obj.externs()[u.extern_index].name].push_back(u.insn);
  ASSERT_EQ(uses["host_add"].size(), 1u);
  const isa::Insn& call = p.insns[uses["host_add"][0]];
  EXPECT_EQ(call.op, isa::Op::CallKfunc);
  EXPECT_EQ(call.imm, 1001);
  ASSERT_EQ(uses["host_maybe"].size(), 2u);  // the address test and the call
  for (std::size_t pc : uses["host_maybe"]) {
    if (p.insns[pc].op == isa::Op::Lddw) EXPECT_EQ(p.insns[pc].imm64(), 1002u);
    else EXPECT_EQ(p.insns[pc].op, isa::Op::CallKfunc);
  }
  ASSERT_EQ(uses["host_counter"].size(), 1u);
  EXPECT_EQ(p.insns[uses["host_counter"][0]].op, isa::Op::Lddw);
  EXPECT_EQ(p.insns[uses["host_counter"][0]].imm64(), 0x1122334455667788ull);
}

TEST(Externs, WeakKsymsMissingDefaultToZero) {
  OpenOptions o;
  o.externs.kfuncs = {{"host_add", 7}};
  OPEN_OR_FAIL(obj, "ksyms.bpf.o", o);
  const Program& p = obj.programs().at(0);
  for (const ExternUse& u : p.extern_uses) {
    const Extern& e = obj.externs()[u.extern_index];
    const isa::Insn& in = p.insns[u.insn];
    if (e.name == "host_add") continue;
    EXPECT_FALSE(e.resolved) << e.name;
    if (in.op == isa::Op::Lddw) {
      EXPECT_EQ(in.imm64(), 0u) << e.name;
    } else {  // libbpf's poisoned kfunc call: helper id 2002000000 + extern index
      EXPECT_EQ(in.op, isa::Op::Call) << e.name;
      EXPECT_EQ(in.imm, 2002000000 + static_cast<std::int32_t>(u.extern_index));
    }
  }
}

TEST(Externs, StrongKsymMissingIsAnError) {
  auto r = Object::open(loader_test::prog_path("ksyms.bpf.o"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().to_string().find("ksyms"), std::string::npos);
  EXPECT_NE(r.error().message.find("extern (func ksym) 'host_add'"), std::string::npos) << r.error().to_string();
}
