// Real programs through userbpf's verifier and the kernel's.
//
// Every program of every object built from progs/*.bpf.c must be listed in
// expected.txt with the kernel's verdict (and errno on rejection). For each:
//  - userbpf's verifier runs on the loader's output (maps table from the
//    object's maps); its verdict/errno must equal the expected kernel
//    verdict, unless the line is marked `known-diff: REASON`, in which case
//    it must differ (a known difference that went away fails too, so the data
//    gets updated rather than going stale);
//  - where the kernel's BPF is available, libbpf loads the program alone
//    (bpf_object__open_file + autoload of that program only +
//    bpf_object__load) and the kernel's verdict/errno must equal expected.txt.
// The test prints a table of both verdicts and messages and the agreement
// counts; `Bench` prints verification time and states next to the kernel's
// (its log's "processed N insns" line and "verification time N usec").
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "loader/loader.hpp"
#include "oracle/oracle.hpp"
#include "verifier/object_config.hpp"
#include "verifier/verifier.hpp"

namespace {

using namespace userbpf;

std::string errno_name(int e) {
  switch (e) {
    case 0: return "-";
    case EACCES: return "EACCES";
    case EINVAL: return "EINVAL";
    case E2BIG: return "E2BIG";
    case ENOSPC: return "ENOSPC";
    case EPERM: return "EPERM";
    case EFAULT: return "EFAULT";
    case ENOTSUP: return "ENOTSUP";
    default: return std::to_string(e);
  }
}

struct Expected {
  std::string object, program;
  bool accept = true;
  std::string err = "-";  // errno name on rejection
  std::string known_diff; // non-empty: userbpf is known to differ, and why
  int line = 0;
};

std::vector<Expected> read_expected() {
  std::vector<Expected> out;
  std::ifstream in(REALPROGS_EXPECTED);
  EXPECT_TRUE(in.good()) << "cannot read " << REALPROGS_EXPECTED;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    const auto hash = line.find('#');
    std::string body = hash == std::string::npos ? line : line.substr(0, hash);
    std::string known;
    if (const auto k = body.find("known-diff:"); k != std::string::npos) {
      known = body.substr(k + 11);
      known.erase(0, known.find_first_not_of(' '));
      body = body.substr(0, k);
    }
    std::istringstream ss(body);
    Expected e;
    std::string verdict;
    if (!(ss >> e.object >> e.program >> verdict)) continue;
    ss >> e.err;
    EXPECT_TRUE(verdict == "accept" || verdict == "reject")
        << "expected.txt:" << n << ": verdict must be accept or reject, not '" << verdict << "'";
    e.accept = verdict == "accept";
    if (e.accept) e.err = "-";
    e.known_diff = known;
    e.line = n;
    out.push_back(e);
  }
  return out;
}

std::string obj_path(const std::string& object) { return std::string(REALPROGS_DIR) + "/" + object + ".bpf.o"; }

// Opens an object with the host kfuncs as its .ksyms functions (as a
// runtime embedding userbpf would).
Result<loader::Object> open_object(const std::string& path) {
  loader::OpenOptions oo;
  oo.externs.kfuncs = verifier::kfunc_symbols();
  return loader::Object::open(path, oo);
}

struct Ours {
  bool opened = false;
  std::string open_error;
  verifier::Verdict v;
  std::size_t insns = 0;
  double time_us = 0;
};

Ours run_ours(const std::string& object, const std::string& program, unsigned log_level = 1, int repeat = 1) {
  Ours r;
  auto obj = open_object(obj_path(object));
  if (!obj.ok()) {
    r.open_error = obj.error().to_string();
    return r;
  }
  const loader::Program* p = obj->find_program(program);
  if (p == nullptr) {
    r.open_error = "no program " + program + " in " + object;
    return r;
  }
  r.opened = true;
  r.insns = p->insns.size();
  verifier::Config cfg = verifier::config_for(*obj, *p, p->prog_type);
  cfg.log_level = log_level;
  double best = 1e18, spent = 0;
  for (int i = 0; i < repeat && spent < 200'000; ++i) {  // at most ~0.2 s of repeats
    const auto t0 = std::chrono::steady_clock::now();
    r.v = verifier::verify(p->insns, cfg);
    const auto t1 = std::chrono::steady_clock::now();
    const double us = std::chrono::duration<double, std::micro>(t1 - t0).count();
    best = std::min(best, us);
    spent += us;
  }
  r.time_us = best;
  return r;
}

struct Kernel {
  bool ran = false;
  std::string why_not;
  bool accept = false;
  int err = 0;
  std::string log, message;
  std::uint64_t processed = 0, total_states = 0, peak_states = 0, max_states = 0, verif_us = 0;
  double load_us = 0;
};

int silent_print(libbpf_print_level, const char*, va_list) { return 0; }

Kernel run_kernel(const std::string& object, const std::string& program) {
  Kernel k;
  const auto& avail = oracle::available();
  if (!avail.ok) {
    k.why_not = avail.reason;
    return k;
  }
  libbpf_set_print(silent_print);
  bpf_object* obj = bpf_object__open_file(obj_path(object).c_str(), nullptr);
  if (obj == nullptr) {
    k.why_not = fmt::format("libbpf cannot open {}: errno {}", object, errno);
    return k;
  }
  static std::vector<char> buf(16u << 20);
  buf[0] = 0;
  bpf_program* target = nullptr;
  bpf_program* p = nullptr;
  bpf_object__for_each_program(p, obj) {
    const bool me = program == bpf_program__name(p);
    bpf_program__set_autoload(p, me);
    if (me) target = p;
  }
  if (target == nullptr) {
    bpf_object__close(obj);
    k.why_not = "libbpf does not see program " + program;
    return k;
  }
  bpf_program__set_log_buf(target, buf.data(), buf.size());
  bpf_program__set_log_level(target, 1 | 4);  // BPF_LOG_LEVEL1 | BPF_LOG_STATS
  const auto t0 = std::chrono::steady_clock::now();
  const int rc = bpf_object__load(obj);
  const auto t1 = std::chrono::steady_clock::now();
  k.ran = true;
  k.load_us = std::chrono::duration<double, std::micro>(t1 - t0).count();
  k.accept = rc == 0;
  k.err = rc < 0 ? -rc : 0;
  k.log = buf.data();
  bpf_object__close(obj);

  std::smatch m;
  static const std::regex kProcessed(
      R"(processed (\d+) insns \(limit \d+\) max_states_per_insn (\d+) total_states (\d+) peak_states (\d+))");
  if (std::regex_search(k.log, m, kProcessed)) {
    k.processed = std::stoull(m[1]);
    k.max_states = std::stoull(m[2]);
    k.total_states = std::stoull(m[3]);
    k.peak_states = std::stoull(m[4]);
  }
  static const std::regex kTime(R"(verification time (\d+) usec)");
  if (std::regex_search(k.log, m, kTime)) k.verif_us = std::stoull(m[1]);
  // The error line: the last line before the statistics that is not a
  // register-state or instruction line.
  std::istringstream ls(k.log);
  std::string line, last;
  while (std::getline(ls, line)) {
    if (line.rfind("processed ", 0) == 0 || line.rfind("verification time", 0) == 0 ||
        line.rfind("stack depth", 0) == 0)
      break;
    if (!line.empty()) last = line;
  }
  k.message = k.accept ? "" : last;
  return k;
}

std::vector<std::string> built_objects() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(REALPROGS_DIR)) {
    const std::string name = e.path().filename().string();
    if (name.size() > 6 && name.substr(name.size() - 6) == ".bpf.o") out.push_back(name.substr(0, name.size() - 6));
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Every program of every built object is in expected.txt (nothing skipped
// silently), and every line names a program that exists.
TEST(RealProgs, ExpectedCoversEveryProgram) {
  const auto expected = read_expected();
  ASSERT_FALSE(expected.empty());
  const auto objects = built_objects();
  ASSERT_GE(objects.size(), 4u) << "the realprogs objects were not built into " << REALPROGS_DIR;
  std::size_t programs = 0;
  for (const auto& o : objects) {
    auto obj = open_object(obj_path(o));
    ASSERT_TRUE(obj.ok()) << o << ": " << obj.error().to_string();
    for (const auto& p : obj->programs()) {
      ++programs;
      const bool listed = std::any_of(expected.begin(), expected.end(),
                                      [&](const Expected& e) { return e.object == o && e.program == p.name; });
      EXPECT_TRUE(listed) << o << ".bpf.o program " << p.name << " is not listed in expected.txt";
    }
  }
  for (const auto& e : expected) {
    auto obj = open_object(obj_path(e.object));
    ASSERT_TRUE(obj.ok()) << "expected.txt:" << e.line << ": " << obj.error().to_string();
    EXPECT_NE(obj->find_program(e.program), nullptr)
        << "expected.txt:" << e.line << ": no program " << e.program << " in " << e.object;
  }
  EXPECT_EQ(programs, expected.size());
}

TEST(RealProgs, AgreeWithKernel) {
  const auto expected = read_expected();
  ASSERT_FALSE(expected.empty());
  int same = 0, known = 0, disagree = 0, kernel_runs = 0, kernel_mismatch = 0, same_message = 0, rejects = 0;
  std::string skipped_reason;
  std::string table = fmt::format("{:<14} {:<18} {:<16} {:<16} {}\n", "object", "program", "kernel", "userbpf", "note");
  for (const auto& e : expected) {
    SCOPED_TRACE(fmt::format("expected.txt:{}: {} {}", e.line, e.object, e.program));
    const Ours ours = run_ours(e.object, e.program);
    ASSERT_TRUE(ours.opened) << ours.open_error;
    const Kernel k = run_kernel(e.object, e.program);
    const std::string want = e.accept ? "accept" : "reject " + e.err;
    const std::string got = ours.v.accepted ? "accept" : "reject " + errno_name(ours.v.err);
    std::string kern = "(not run)";
    if (k.ran) {
      ++kernel_runs;
      kern = k.accept ? "accept" : "reject " + errno_name(k.err);
      if (kern != want) {
        ++kernel_mismatch;
        ADD_FAILURE() << "the kernel says " << kern << ", expected.txt says " << want << "\nkernel log tail:\n"
                      << k.log.substr(k.log.size() > 2000 ? k.log.size() - 2000 : 0);
      }
    } else {
      skipped_reason = k.why_not;
    }
    std::string note;
    if (got == want) {
      if (!e.known_diff.empty()) {
        ADD_FAILURE() << "marked known-diff (" << e.known_diff << ") but userbpf now agrees: remove the mark";
        note = "known-diff resolved";
      } else {
        ++same;
      }
    } else if (!e.known_diff.empty()) {
      ++known;
      note = "KNOWN DIFFERENCE: " + e.known_diff;
    } else {
      ++disagree;
      note = "DISAGREE";
      ADD_FAILURE() << "userbpf says " << got << " (" << ours.v.message << "), the kernel " << want
                    << (k.ran ? " (" + k.message + ")" : std::string());
    }
    if (!e.accept) {
      ++rejects;
      // The kernel's last error line ends ours (ours may hold two lines, as its log).
      const std::string& om = ours.v.message;
      if (k.ran && !ours.v.accepted && !k.message.empty() && om.size() >= k.message.size() &&
          om.compare(om.size() - k.message.size(), k.message.size(), k.message) == 0)
        ++same_message;
    }
    table += fmt::format("{:<14} {:<18} {:<16} {:<16} {}\n", e.object, e.program, kern, got, note);
    if (!ours.v.accepted || (k.ran && !k.accept)) {
      table += fmt::format("    userbpf: {}\n", ours.v.accepted ? "(accepted)" : ours.v.message);
      if (k.ran) table += fmt::format("    kernel:  {}\n", k.accept ? "(accepted)" : k.message);
    }
  }
  std::cout << table;
  std::cout << fmt::format(
      "realprogs: {} programs; userbpf agrees with the kernel's verdict+errno on {}, known differences {}, "
      "unexplained disagreements {}; same rejection message on {}/{} rejected; kernel runs {}{}\n",
      expected.size(), same, known, disagree, same_message, rejects, kernel_runs,
      kernel_runs == 0 ? " (kernel unavailable: " + skipped_reason + ")" : "");
  EXPECT_EQ(disagree, 0);
  EXPECT_EQ(kernel_mismatch, 0);
}

// Verification time and states of every accepted program next to the
// kernel's; the largest program first.
TEST(RealProgs, Bench) {
  auto expected = read_expected();
  std::vector<std::pair<std::size_t, Expected>> sized;
  for (const auto& e : expected) {
    const Ours o = run_ours(e.object, e.program, 0);
    ASSERT_TRUE(o.opened) << o.open_error;
    sized.emplace_back(o.insns, e);
  }
  std::stable_sort(sized.begin(), sized.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::cout << fmt::format("{:<18} {:>6} | {:>9} {:>7} {:>6} {:>9} {:>9} | {:>9} {:>7} {:>6} {:>9} {:>9}\n",
                           "program", "insns", "u.proc", "u.st", "u.st/i", "u.us", "", "k.proc", "k.st", "k.st/i",
                           "k.verif", "k.load");
  bool any_kernel = false;
  for (const auto& [insns, e] : sized) {
    const Ours o = run_ours(e.object, e.program, 0, 20);
    EXPECT_GT(o.v.stats.processed, 0u) << e.program;
    const Kernel k = run_kernel(e.object, e.program);
    any_kernel = any_kernel || k.ran;
    const double ust = o.v.stats.processed ? double(o.v.stats.total_states) / double(o.v.stats.processed) : 0;
    const double kst = k.processed ? double(k.total_states) / double(k.processed) : 0;
    std::cout << fmt::format("{:<18} {:>6} | {:>9} {:>7} {:>6.3f} {:>7.1f}us {:>9} | {:>9} {:>7} {:>6.3f} {:>7}us {:>7.0f}us\n",
                             e.program, insns, o.v.stats.processed, o.v.stats.total_states, ust, o.time_us,
                             o.v.accepted ? "" : "(reject)", k.processed, k.total_states, kst, k.verif_us, k.load_us);
  }
  std::cout << "u.* = userbpf (best of up to 20 runs, in-process), k.* = kernel (k.verif: its log's verification time; "
               "k.load: bpf_object__load wall time incl. map creation); st/i = total_states per processed insn\n";
  if (!any_kernel) std::cout << "kernel columns empty: " << oracle::available().reason << "\n";
}

}  // namespace
