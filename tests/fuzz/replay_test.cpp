// Replays stored inputs through one fuzz target's LLVMFuzzerTestOneInput
// (FUZZ_TARGET), each in a forked child with a time limit, so that a crash,
// an abort (fuzz::fail) or a hang fails that input's test instead of the
// whole binary. Every input must also stay within a CPU-time bound
// (kCpuBoundSeconds of user+system time of its child, 5x that in
// sanitizer builds): a slow input is a finding too (the fuzz issue's
// "each run within a time bound"); regression inputs named slow* record
// inputs that once were slow.
//
// Inputs: fuzz/corpus/<target>/* (committed, small), FUZZ_SEEDS_DIR/<target>/*
// (built seeds, e.g. loader objects) and fuzz/regressions/<target>/*. A
// regression input NAME has a description NAME.txt: its first line says what
// was found; a line "status: open" marks a known, unfixed failure: if it
// still fails, the test is skipped with the description (it does not break
// CI), and if it passes the test passes and says that the status can be
// changed to "fixed". Without "status: open" a failing regression fails.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

namespace fs = std::filesystem;

constexpr unsigned kTimeoutSeconds = 60;
// USERBPF_SANITIZED: 1 in a -DUSERBPF_SANITIZE=... build (tests/fuzz/CMakeLists.txt)
#ifndef USERBPF_SANITIZED
#define USERBPF_SANITIZED 0
#endif
constexpr double kCpuBoundSeconds = USERBPF_SANITIZED ? 25.0 : 5.0;

struct Item {
  fs::path path;
  bool regression = false;
  std::string description;  // regression: the .txt file
  bool known_open = false;
};

std::vector<Item> items() {
  std::vector<Item> v;
  const fs::path src = USERBPF_SOURCE_DIR;
  auto add_dir = [&](const fs::path& dir, bool regression) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (!e.is_regular_file()) continue;
      const auto name = e.path().filename().string();
      if (e.path().extension() == ".txt" || name == "README.md" || name[0] == '.') continue;
      files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      Item it{f, regression, {}, false};
      if (regression) {
        std::ifstream d(f.string() + ".txt");
        std::stringstream ss;
        ss << d.rdbuf();
        it.description = ss.str();
        it.known_open = it.description.find("status: open") != std::string::npos;
      }
      v.push_back(std::move(it));
    }
  };
  add_dir(src / "fuzz" / "corpus" / FUZZ_TARGET, false);
  add_dir(fs::path(FUZZ_SEEDS_DIR) / FUZZ_TARGET, false);
  add_dir(src / "fuzz" / "regressions" / FUZZ_TARGET, true);
  return v;
}

const std::vector<Item>& all() {
  static const std::vector<Item> v = items();
  return v;
}

struct Outcome {
  bool ok = false;
  std::string what;    // how it ended
  std::string output;  // the child's stderr
  double cpu = 0;      // the child's user + system CPU seconds
};

Outcome run_child(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  int pipefd[2];
  if (pipe(pipefd) != 0) return {false, "pipe failed", {}, 0};
  const pid_t pid = fork();
  if (pid < 0) return {false, "fork failed", {}, 0};
  if (pid == 0) {
    close(pipefd[0]);
    dup2(pipefd[1], 2);
    alarm(kTimeoutSeconds);
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    _exit(0);
  }
  close(pipefd[1]);
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(pipefd[0], buf, sizeof(buf));
    if (n <= 0) break;
    if (out.size() < 65536) out.append(buf, static_cast<std::size_t>(n));
  }
  close(pipefd[0]);
  int status = 0;
  rusage ru{};
  wait4(pid, &status, 0, &ru);
  const double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                     static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {true, "ok", out, cpu};
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
    return {false, "timed out after " + std::to_string(kTimeoutSeconds) + " s", out, cpu};
  if (WIFSIGNALED(status)) return {false, std::string("killed by signal ") + strsignal(WTERMSIG(status)), out, cpu};
  return {false, "exit status " + std::to_string(WEXITSTATUS(status)), out, cpu};
}

class Replay : public ::testing::TestWithParam<std::size_t> {};

TEST_P(Replay, Input) {
  const Item& it = all()[GetParam()];
  SCOPED_TRACE(it.path.string());
  const Outcome o = run_child(it.path);
  if (!o.ok && it.regression && it.known_open)
    GTEST_SKIP() << "known failure (status: open): " << it.description << "\n" << o.what << "\n" << o.output;
  if (o.ok && it.regression && it.known_open)
    std::printf("%s passes now: change its status to fixed in %s.txt\n", it.path.c_str(), it.path.c_str());
  EXPECT_TRUE(o.ok) << o.what << "\n" << o.output << (it.regression ? "\nregression: " + it.description : "");
  EXPECT_LE(o.cpu, kCpuBoundSeconds) << "the input took " << o.cpu << " s CPU, more than the bound of "
                                     << kCpuBoundSeconds << " s" << (it.regression ? "\nregression: " + it.description : "");
  if (it.path.filename().string().rfind("slow", 0) == 0)
    std::printf("%s: %.3f s CPU (bound %.0f s)\n", it.path.filename().c_str(), o.cpu, kCpuBoundSeconds);
}

std::vector<std::size_t> indexes() {
  std::vector<std::size_t> v(all().size());
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = i;
  return v;
}

std::string param_name(const ::testing::TestParamInfo<std::size_t>& info) {
  const Item& it = all()[info.param];
  std::string n = (it.regression ? "regression_" : "corpus_") + it.path.filename().string();
  for (auto& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return n + "_" + std::to_string(info.param);
}

INSTANTIATE_TEST_SUITE_P(Fuzz, Replay, ::testing::ValuesIn(indexes()), param_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Replay);

TEST(FuzzReplay, HasInputs) {
  // The corpus or the built seeds must give every target something to replay.
  EXPECT_FALSE(all().empty()) << "no corpus, seeds or regressions for target " << FUZZ_TARGET;
}

}  // namespace
