// Verifier cases as data: tests/verifier/cases/*.txt. Every case is run
// through userbpf's verifier and, where the kernel's BPF is available,
// through the kernel's verifier (BPF_PROG_LOAD with real maps). A case
// fails when our verdict, errno or message differs from the expectation,
// and when the kernel's verdict or errno differs from it (the expectation
// must describe the kernel's behaviour). Cases marked `unpriv: yes`
// describe the unprivileged profile, which this root test cannot load into
// the kernel: their kernel part is skipped with that reason.
//
// File format (one or more cases per file):
//   === name
//   type: xdp                       program type (spec name)
//   map: array key=4 value=8 entries=1   (repeatable; lddw map_fd(N) names map N)
//   unpriv: yes                     (optional)
//   expect: accept | reject EACCES|EINVAL|E2BIG|EBADF
//   error: substring of the error lines (ours and the kernel's)
//   kernel-error: substring expected in the kernel's log instead of `error`
//   ---
//   assembly (kernel syntax), until the next "===" or the end of the file
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "asm/asm.hpp"
#include "oracle/oracle.hpp"
#include "spec/spec.hpp"
#include "verifier/verifier.hpp"

using namespace userbpf;

namespace {

struct Case {
  std::string file;
  std::size_t line = 0;
  std::string name;
  std::string type = "socket_filter";
  std::vector<verifier::MapDesc> maps;
  bool unpriv = false;
  bool accept = true;
  std::string err_name;
  std::string error;
  std::string kernel_error;
  std::string code;
};

int errno_of(const std::string& n) {
  if (n == "EACCES") return EACCES;
  if (n == "EINVAL") return EINVAL;
  if (n == "E2BIG") return E2BIG;
  if (n == "EBADF") return EBADF;
  if (n == "EFAULT") return EFAULT;
  if (n == "ENOTSUPP" || n == "ENOTSUP") return 524;
  return -1;
}

std::string trim(std::string s) {
  const auto a = s.find_first_not_of(" \t\r");
  const auto b = s.find_last_not_of(" \t\r");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

std::vector<Case> load_cases() {
  std::vector<Case> out;
  const std::filesystem::path dir = std::filesystem::path(USERBPF_SOURCE_DIR) / "tests/verifier/cases";
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".txt") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::ifstream in(f);
    std::string line;
    Case* cur = nullptr;
    bool in_code = false;
    std::size_t ln = 0;
    while (std::getline(in, line)) {
      ++ln;
      if (line.rfind("===", 0) == 0) {
        out.emplace_back();
        cur = &out.back();
        cur->file = f.filename().string();
        cur->line = ln;
        cur->name = trim(line.substr(3));
        in_code = false;
        continue;
      }
      if (cur == nullptr) continue;
      if (in_code) {
        cur->code += line + "\n";
        continue;
      }
      const std::string t = trim(line);
      if (t.empty() || t[0] == '#') continue;
      if (t == "---") { in_code = true; continue; }
      const auto colon = t.find(':');
      if (colon == std::string::npos) {
        ADD_FAILURE() << f << ":" << ln << ": expected 'key: value'";
        continue;
      }
      const std::string key = trim(t.substr(0, colon)), val = trim(t.substr(colon + 1));
      if (key == "type") cur->type = val;
      else if (key == "unpriv") cur->unpriv = val == "yes";
      else if (key == "error") cur->error = val;
      else if (key == "kernel-error") cur->kernel_error = val;
      else if (key == "expect") {
        std::istringstream ss(val);
        std::string v, e;
        ss >> v >> e;
        cur->accept = v == "accept";
        cur->err_name = e;
      } else if (key == "map") {
        std::istringstream ss(val);
        std::string tname, kv;
        ss >> tname;
        verifier::MapDesc md;
        const spec::MapType* mt = spec::map_type_by_name(tname);
        if (mt == nullptr) ADD_FAILURE() << f << ":" << ln << ": unknown map type " << tname;
        else md.type = mt->id;
        md.name = fmt::format("m{}", cur->maps.size());
        while (ss >> kv) {
          const auto eq = kv.find('=');
          const std::string k = kv.substr(0, eq);
          const auto n = static_cast<std::uint32_t>(std::stoul(kv.substr(eq + 1)));
          if (k == "key") md.key_size = n;
          else if (k == "value") md.value_size = n;
          else if (k == "entries") md.max_entries = n;
        }
        cur->maps.push_back(md);
      } else {
        ADD_FAILURE() << f << ":" << ln << ": unknown key " << key;
      }
    }
  }
  return out;
}

const std::vector<Case>& all_cases() {
  static const std::vector<Case> cases = load_cases();
  return cases;
}

std::optional<std::int64_t> resolve(std::string_view name) {
  std::string_view n = name;
  if (n.rfind("bpf_", 0) == 0) n.remove_prefix(4);
  for (std::uint32_t id = 1; id < spec::helper_id_limit(); ++id)
    if (spec::helper_name(id) == n) return id;
  return std::nullopt;
}

int create_map(const verifier::MapDesc& md) {
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.map_type = md.type;
  attr.key_size = md.key_size;
  attr.value_size = md.value_size;
  attr.max_entries = md.max_entries;
  return static_cast<int>(syscall(__NR_bpf, BPF_MAP_CREATE, &attr, sizeof(attr)));
}

std::string case_label(const Case& c) { return fmt::format("{}:{} '{}'", c.file, c.line, c.name); }

class VerifierCase : public ::testing::TestWithParam<std::size_t> {};

TEST_P(VerifierCase, MatchesExpectationAndKernel) {
  const Case& c = all_cases()[GetParam()];
  SCOPED_TRACE(case_label(c));
  assembly::AsmOptions ao;
  ao.dialect = assembly::Dialect::Kernel;
  ao.resolve_symbol = resolve;
  auto prog = assembly::assemble(c.code, ao);
  ASSERT_TRUE(prog.ok()) << prog.error().to_string();
  const spec::ProgType* pt = spec::prog_type_by_name(c.type);
  ASSERT_NE(pt, nullptr) << "unknown program type " << c.type;
  const int want_err = c.accept ? 0 : errno_of(c.err_name);
  ASSERT_TRUE(c.accept || want_err > 0) << "bad errno name '" << c.err_name << "'";

  verifier::Config cfg;
  cfg.prog_type = pt->id;
  cfg.maps = c.maps;
  cfg.log_level = 1;
  cfg.privileged = !c.unpriv;
  const verifier::Verdict v = verifier::verify(*prog, cfg);
  EXPECT_EQ(v.accepted, c.accept) << "userbpf log:\n" << v.log;
  EXPECT_EQ(v.err, want_err) << "userbpf log:\n" << v.log;
  if (!c.error.empty()) {
    EXPECT_NE(v.log.find(c.error), std::string::npos) << "userbpf log:\n" << v.log;
  }

  if (c.unpriv) GTEST_SKIP() << "kernel part skipped: unprivileged profile cannot be loaded by this root test";
  const auto& avail = oracle::available();
  if (!avail.ok) GTEST_SKIP() << "kernel part skipped: " << avail.reason;
  std::vector<int> fds;
  for (const auto& md : c.maps) {
    const int fd = create_map(md);
    ASSERT_GE(fd, 0) << "BPF_MAP_CREATE failed: " << std::strerror(errno);
    fds.push_back(fd);
  }
  std::vector<isa::Insn> kprog = *prog;
  for (auto& in : kprog)
    if ((in.op == isa::Op::LddwMapFd || in.op == isa::Op::LddwMapValue) && in.imm >= 0 &&
        static_cast<std::size_t>(in.imm) < fds.size())
      in.imm = fds[static_cast<std::size_t>(in.imm)];
  const auto raw = isa::encode(kprog);
  auto lr = oracle::load(raw, pt->id, 1);
  for (int fd : fds) close(fd);
  const bool k_accept = static_cast<bool>(lr.prog);
  if (std::getenv("VERIFIER_CASES_VERBOSE") != nullptr)
    std::printf("---- userbpf (%s, err %d):\n%s---- kernel (%s, err %d):\n%s", v.accepted ? "accept" : "reject", v.err,
                v.log.c_str(), k_accept ? "accept" : "reject", lr.err, lr.log.c_str());
  EXPECT_EQ(k_accept, c.accept) << "kernel disagrees with the expected verdict; kernel log:\n" << lr.log;
  EXPECT_EQ(k_accept ? 0 : lr.err, want_err) << "kernel errno differs; kernel log:\n" << lr.log;
  const std::string& kmsg = c.kernel_error.empty() ? c.error : c.kernel_error;
  if (!kmsg.empty()) {
    EXPECT_NE(lr.log.find(kmsg), std::string::npos) << "kernel log:\n" << lr.log;
  }
}

std::vector<std::size_t> indexes() {
  std::vector<std::size_t> v(all_cases().size());
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = i;
  return v;
}

std::string param_name(const ::testing::TestParamInfo<std::size_t>& info) {
  const Case& c = all_cases()[info.param];
  std::string n = c.file.substr(0, c.file.size() - 4) + "_" + c.name;
  for (auto& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
}

INSTANTIATE_TEST_SUITE_P(Cases, VerifierCase, ::testing::ValuesIn(indexes()), param_name);

TEST(VerifierCases, EnoughCases) { EXPECT_GE(all_cases().size(), 150u); }

}  // namespace
