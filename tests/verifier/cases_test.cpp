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
//   map: array key=4 value=8 entries=1   (repeatable; lddw map_fd(N) names map N;
//                                   lock=OFF: value BTF with a struct bpf_spin_lock at OFF;
//                                   timer=OFF: ... with a struct bpf_timer at OFF; btf=1: value BTF
//                                   without such fields)
//   unpriv: yes                     (optional)
//   expect: accept | reject EACCES|EINVAL|E2BIG|EBADF
//   error: substring of the error lines (ours and the kernel's)
//   kernel-error: substring expected in the kernel's log instead of `error`
//   btf: yes                        (optional) pass BTF func_info (one static
//                                   `int f(void)` per subprogram), as callbacks need
//   processed: kernel               (optional) the processed-instruction and
//                                   total_states counts must equal the kernel's
//   ---
//   assembly (kernel syntax), until the next "===" or the end of the file;
//   `call kfunc(NAME)` calls a host kfunc by name: userbpf's BTF id for our
//   verifier, the running kernel's vmlinux BTF id for the kernel's
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/btf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <bpf/btf.h>
#include <fmt/format.h>

#include "asm/asm.hpp"
#include "oracle/oracle.hpp"
#include "spec/kfuncs.hpp"
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
  bool same_counts = false;
  bool btf = false;
  std::string code;
};

// Subprogram starts: 0 and every target of a local call or callback lddw.
std::vector<std::size_t> subprog_starts(const std::vector<isa::Insn>& p) {
  std::vector<std::size_t> s{0};
  for (std::size_t pc = 0; pc < p.size(); ++pc)
    if (p[pc].op == isa::Op::CallLocal || p[pc].op == isa::Op::LddwFunc)
      s.push_back(static_cast<std::size_t>(static_cast<std::int64_t>(pc) + 1 + p[pc].imm));
  std::sort(s.begin(), s.end());
  s.erase(std::unique(s.begin(), s.end()), s.end());
  return s;
}

std::vector<std::uint8_t> btf_blob(const std::vector<std::uint32_t>& types, const std::string& strs);

// A minimal BTF: [1] int, [2] int (void), [3..] static FUNC "fN" of type 2.
std::vector<std::uint8_t> minimal_btf(std::size_t nfuncs) {
  std::vector<std::uint32_t> types;
  std::string strs(1, '\0');
  const auto int_name = static_cast<std::uint32_t>(strs.size());
  strs += "int";
  strs += '\0';
  types.insert(types.end(), {int_name, BTF_KIND_INT << 24, 4, 32});  // INT: encoding 0, offset 0, 32 bits
  types.insert(types.end(), {0, BTF_KIND_FUNC_PROTO << 24, 1});      // int (void)
  for (std::size_t i = 0; i < nfuncs; ++i) {
    const auto name = static_cast<std::uint32_t>(strs.size());
    strs += fmt::format("f{}", i);
    strs += '\0';
    types.insert(types.end(), {name, (BTF_KIND_FUNC << 24) | BTF_FUNC_STATIC, 2});
  }
  return btf_blob(types, strs);
}

// A map value with BTF: [1] int, [2] u64, [3] struct bpf_spin_lock { int val; },
// [4] struct bpf_timer { u64 a, b; }, [5] struct value of value_size with a
// `lock` member at lock_off and a `timer` member at timer_off (each only when
// >= 0), or just `int x` at 0 when there is neither.
std::vector<std::uint8_t> value_btf(std::uint32_t value_size, std::int32_t lock_off, std::int32_t timer_off) {
  std::string strs(1, '\0');
  auto name = [&](const char* n) {
    const auto off = static_cast<std::uint32_t>(strs.size());
    strs += n;
    strs += '\0';
    return off;
  };
  const auto int_name = name("int"), u64_name = name("u64"), lock_name = name("bpf_spin_lock"),
             val_name = name("val"), timer_name = name("bpf_timer"), a_name = name("a"), b_name = name("b"),
             value_name = name("value"), lock_member = name("lock"), timer_member = name("timer"), x_name = name("x");
  std::vector<std::uint32_t> members;
  if (lock_off >= 0) members.insert(members.end(), {lock_member, 3, static_cast<std::uint32_t>(lock_off) * 8});
  if (timer_off >= 0) members.insert(members.end(), {timer_member, 4, static_cast<std::uint32_t>(timer_off) * 8});
  if (members.empty()) members = {x_name, 1, 0};
  std::vector<std::uint32_t> types = {
      int_name,   BTF_KIND_INT << 24,          4,  32,                          // [1] int
      u64_name,   BTF_KIND_INT << 24,          8,  64,                          // [2] u64
      lock_name,  (BTF_KIND_STRUCT << 24) | 1, 4,  val_name, 1, 0,              // [3] struct bpf_spin_lock
      timer_name, (BTF_KIND_STRUCT << 24) | 2, 16, a_name, 2, 0, b_name, 2, 64,  // [4] struct bpf_timer
      value_name, (BTF_KIND_STRUCT << 24) | static_cast<std::uint32_t>(members.size() / 3), value_size,  // [5]
  };
  types.insert(types.end(), members.begin(), members.end());
  return btf_blob(types, strs);
}

std::vector<std::uint8_t> btf_blob(const std::vector<std::uint32_t>& types, const std::string& strs) {
  btf_header h{};
  h.magic = BTF_MAGIC;
  h.version = BTF_VERSION;
  h.hdr_len = sizeof(btf_header);
  h.type_off = 0;
  h.type_len = static_cast<std::uint32_t>(types.size() * 4);
  h.str_off = h.type_len;
  h.str_len = static_cast<std::uint32_t>(strs.size());
  std::vector<std::uint8_t> out(sizeof(h) + h.type_len + h.str_len);
  std::memcpy(out.data(), &h, sizeof(h));
  std::memcpy(out.data() + sizeof(h), types.data(), h.type_len);
  std::memcpy(out.data() + sizeof(h) + h.type_len, strs.data(), strs.size());
  return out;
}

// BPF_BTF_LOAD: an fd, or -1 with errno and the BTF log in `log`.
int load_btf(const std::vector<std::uint8_t>& btf, std::string& log) {
  std::vector<char> blog(1 << 16);
  union bpf_attr ba;
  std::memset(&ba, 0, sizeof(ba));
  ba.btf = reinterpret_cast<std::uint64_t>(btf.data());
  ba.btf_size = static_cast<std::uint32_t>(btf.size());
  ba.btf_log_buf = reinterpret_cast<std::uint64_t>(blog.data());
  ba.btf_log_size = static_cast<std::uint32_t>(blog.size());
  ba.btf_log_level = 1;
  const int fd = static_cast<int>(syscall(__NR_bpf, BPF_BTF_LOAD, &ba, sizeof(ba)));
  if (fd < 0) log = std::string("BTF_LOAD failed: ") + blog.data();
  return fd;
}

// A map whose value has BTF (value_btf: md.spin_lock_off, md.timer_off).
Result<oracle::Fd> create_lock_map(const verifier::MapDesc& md) {
  std::string log;
  const int btf_fd = load_btf(value_btf(md.value_size, md.spin_lock_off, md.timer_off), log);
  if (btf_fd < 0) return make_error(errno, log);
  union bpf_attr a = oracle::map_create_attr({md.type, md.key_size, md.value_size, md.max_entries, 0});
  a.btf_fd = static_cast<std::uint32_t>(btf_fd);
  a.btf_key_type_id = md.key_size == 4 ? 1 : 0;
  a.btf_value_type_id = 5;
  std::memcpy(a.map_name, md.name.data(), std::min<std::size_t>(md.name.size(), sizeof(a.map_name) - 1));
  const int fd = static_cast<int>(syscall(__NR_bpf, BPF_MAP_CREATE, &a, sizeof(a)));
  const int err = errno;
  close(btf_fd);
  if (fd < 0) return make_error(err, fmt::format("BPF_MAP_CREATE with a bpf_spin_lock: {}", std::strerror(err)));
  return oracle::Fd(fd);
}

// BPF_PROG_LOAD with BTF func_info (the oracle's load has no BTF).
oracle::LoadResult load_with_btf(std::span<const isa::RawInsn> raw, std::uint32_t type, std::uint32_t log_level,
                                 const std::vector<std::size_t>& starts) {
  oracle::LoadResult r;
  const int btf_fd = load_btf(minimal_btf(starts.size()), r.log);
  if (btf_fd < 0) {
    r.err = errno;
    return r;
  }
  std::vector<bpf_func_info> fi;
  for (std::size_t i = 0; i < starts.size(); ++i)
    fi.push_back(bpf_func_info{static_cast<std::uint32_t>(starts[i]), static_cast<std::uint32_t>(3 + i)});
  std::vector<char> log(1 << 22);
  static const char license[] = "GPL";
  union bpf_attr a;
  std::memset(&a, 0, sizeof(a));
  a.prog_type = type;
  a.insns = reinterpret_cast<std::uint64_t>(raw.data());
  a.insn_cnt = static_cast<std::uint32_t>(raw.size());
  a.license = reinterpret_cast<std::uint64_t>(license);
  a.log_buf = reinterpret_cast<std::uint64_t>(log.data());
  a.log_size = static_cast<std::uint32_t>(log.size());
  a.log_level = log_level;
  a.prog_btf_fd = static_cast<std::uint32_t>(btf_fd);
  a.func_info = reinterpret_cast<std::uint64_t>(fi.data());
  a.func_info_cnt = static_cast<std::uint32_t>(fi.size());
  a.func_info_rec_size = sizeof(bpf_func_info);
  const int fd = static_cast<int>(syscall(__NR_bpf, BPF_PROG_LOAD, &a, sizeof(a)));
  r.err = fd < 0 ? errno : 0;
  r.log = log.data();
  if (fd >= 0) r.prog = oracle::Fd(fd);
  close(btf_fd);
  return r;
}

// Processed-instruction / state counts next to the kernel's, over every case
// the kernel ran (printed at the end; VERIFIER_CASES_STATS=1 lists the differences).
struct CountStats {
  std::size_t compared = 0, same_processed = 0, same_states = 0;
  std::vector<std::string> diffs;
};
CountStats& count_stats() {
  static CountStats s;
  return s;
}

std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_counts(const std::string& log) {
  const auto p = log.rfind("processed ");
  if (p == std::string::npos) return std::nullopt;
  unsigned long long insns = 0, states = 0;
  const auto t = log.find("total_states ", p);
  if (std::sscanf(log.c_str() + p, "processed %llu insns", &insns) != 1 || t == std::string::npos ||
      std::sscanf(log.c_str() + t, "total_states %llu", &states) != 1)
    return std::nullopt;
  return std::make_pair(static_cast<std::uint64_t>(insns), static_cast<std::uint64_t>(states));
}

int errno_of(const std::string& n) {
  if (n == "EACCES") return EACCES;
  if (n == "EINVAL") return EINVAL;
  if (n == "E2BIG") return E2BIG;
  if (n == "EBADF") return EBADF;
  if (n == "EFAULT") return EFAULT;
  if (n == "EPERM") return EPERM;
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
      else if (key == "processed") cur->same_counts = val == "kernel";
      else if (key == "btf") cur->btf = val == "yes";
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
          else if (k == "lock") {  // value BTF with a struct bpf_spin_lock at offset n
            md.btf = true;
            md.spin_lock_off = static_cast<std::int32_t>(n);
          }
          else if (k == "timer") {  // value BTF with a struct bpf_timer at offset n
            md.btf = true;
            md.timer_off = static_cast<std::int32_t>(n);
          } else if (k == "btf") {  // value BTF without special fields
            md.btf = true;
          }
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

// `kfunc(NAME)` -> `kfunc(ID)`: userbpf's id, or the running kernel's
// (vmlinux BTF); nullopt when a name is unknown there.
std::optional<std::string> bind_kfuncs(const std::string& code, bool kernel) {
  static btf* vmlinux = kernel ? btf__load_vmlinux_btf() : nullptr;
  if (kernel && vmlinux == nullptr) vmlinux = btf__load_vmlinux_btf();
  std::string out;
  std::size_t pos = 0;
  for (;;) {
    const auto k = code.find("kfunc(", pos);
    if (k == std::string::npos) break;
    const auto close = code.find(')', k);
    const std::string name = code.substr(k + 6, close - k - 6);
    out += code.substr(pos, k + 6 - pos);
    pos = close;
    if (!name.empty() && std::isdigit(static_cast<unsigned char>(name[0]))) {
      out += name;
      continue;
    }
    std::int64_t id = -1;
    if (!kernel) {
      if (const spec::KfuncProto* p = spec::kfunc_by_name(name)) id = p->btf_id;
      else id = 1;  // not ours: an id that is no kfunc
    } else if (vmlinux != nullptr) {
      id = btf__find_by_name_kind(vmlinux, name.c_str(), BTF_KIND_FUNC);
    }
    if (id < 0) return std::nullopt;
    out += std::to_string(id);
  }
  out += code.substr(pos);
  return out;
}

std::string case_label(const Case& c) { return fmt::format("{}:{} '{}'", c.file, c.line, c.name); }

class VerifierCase : public ::testing::TestWithParam<std::size_t> {};

TEST_P(VerifierCase, MatchesExpectationAndKernel) {
  const Case& c = all_cases()[GetParam()];
  SCOPED_TRACE(case_label(c));
  assembly::AsmOptions ao;
  ao.dialect = assembly::Dialect::Kernel;
  ao.resolve_symbol = resolve;
  const auto ours_code = bind_kfuncs(c.code, false);
  ASSERT_TRUE(ours_code.has_value());
  auto prog = assembly::assemble(*ours_code, ao);
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
  const auto starts = subprog_starts(*prog);
  if (c.btf)
    for (std::size_t i = 0; i < starts.size(); ++i)
      cfg.funcs.push_back(verifier::FuncSig{starts[i], fmt::format("f{}", i), false, {}});
  const verifier::Verdict v = verifier::verify(*prog, cfg);
  EXPECT_EQ(v.accepted, c.accept) << "userbpf log:\n" << v.log;
  EXPECT_EQ(v.err, want_err) << "userbpf log:\n" << v.log;
  if (!c.error.empty()) {
    EXPECT_NE(v.log.find(c.error), std::string::npos) << "userbpf log:\n" << v.log;
  }

  if (c.unpriv) GTEST_SKIP() << "kernel part skipped: unprivileged profile cannot be loaded by this root test";
  const auto& avail = oracle::available();
  if (!avail.ok) GTEST_SKIP() << "kernel part skipped: " << avail.reason;
  std::vector<oracle::Fd> fds;
  for (const auto& md : c.maps) {
    auto fd = md.btf ? create_lock_map(md) : oracle::create_map({md.type, md.key_size, md.value_size, md.max_entries, 0});
    ASSERT_TRUE(fd.ok()) << fd.error().message;
    fds.push_back(std::move(*fd));
  }
  const auto kernel_code = bind_kfuncs(c.code, true);
  if (!kernel_code) GTEST_SKIP() << "kernel part skipped: a kfunc of the case is not in the kernel's vmlinux BTF";
  auto kprog_asm = assembly::assemble(*kernel_code, ao);
  ASSERT_TRUE(kprog_asm.ok()) << kprog_asm.error().to_string();
  std::vector<isa::Insn> kprog = *kprog_asm;
  oracle::bind_maps(kprog, fds);
  const auto raw = isa::encode(kprog);
  const char* verbose = std::getenv("VERIFIER_CASES_VERBOSE");
  const bool level2 = verbose != nullptr && std::string(verbose) == "2";
  auto lr = c.btf ? load_with_btf(raw, pt->id, level2 ? 2 : 1, starts) : oracle::load(raw, pt->id, level2 ? 2 : 1);
  fds.clear();
  const bool k_accept = static_cast<bool>(lr.prog);
  if (level2) {
    verifier::Config cfg2 = cfg;
    cfg2.log_level = 2;
    std::printf("---- userbpf level 2:\n%s", verifier::verify(*prog, cfg2).log.c_str());
  }
  if (verbose != nullptr)
    std::printf("---- userbpf (%s, err %d):\n%s---- kernel (%s, err %d):\n%s", v.accepted ? "accept" : "reject", v.err,
                v.log.c_str(), k_accept ? "accept" : "reject", lr.err, lr.log.c_str());
  EXPECT_EQ(k_accept, c.accept) << "kernel disagrees with the expected verdict; kernel log:\n" << lr.log;
  EXPECT_EQ(k_accept ? 0 : lr.err, want_err) << "kernel errno differs; kernel log:\n" << lr.log;
  const auto ours = parse_counts(v.log);
  const auto theirs = parse_counts(lr.log);
  if (ours && theirs) {
    CountStats& cs = count_stats();
    ++cs.compared;
    if (ours->first == theirs->first) ++cs.same_processed;
    if (ours->second == theirs->second) ++cs.same_states;
    if (*ours != *theirs)
      cs.diffs.push_back(fmt::format("{}: userbpf {} insns {} states, kernel {} insns {} states", c.name, ours->first,
                                     ours->second, theirs->first, theirs->second));
  }
  if (c.same_counts) {
    ASSERT_TRUE(ours && theirs) << "no processed line; kernel log:\n" << lr.log;
    EXPECT_EQ(ours->first, theirs->first) << "processed insns differ from the kernel's";
    EXPECT_EQ(ours->second, theirs->second) << "total_states differ from the kernel's";
  }
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

class CountReport : public ::testing::Environment {
 public:
  void TearDown() override {
    const CountStats& cs = count_stats();
    if (cs.compared == 0) return;
    std::printf("verifier cases: processed insns equal to the kernel's on %zu/%zu cases, total_states on %zu/%zu\n",
                cs.same_processed, cs.compared, cs.same_states, cs.compared);
    if (std::getenv("VERIFIER_CASES_STATS") != nullptr)
      for (const auto& d : cs.diffs) std::printf("  %s\n", d.c_str());
  }
};
[[maybe_unused]] ::testing::Environment* const count_report = ::testing::AddGlobalTestEnvironment(new CountReport);

TEST(VerifierCases, EnoughCases) { EXPECT_GE(all_cases().size(), 150u); }

}  // namespace
