// `userbpf verify` on the realprogs objects: exit codes, the text output's
// verdict, source location and hint, and the --json fields.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct CmdResult {
  int status = -1;
  std::string out;
};

CmdResult invoke(const std::string& args) {
  CmdResult r;
  const std::string cmd = std::string(USERBPF_EXE) + " verify " + args + " 2>&1";
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return r;
  char buf[4096];
  std::size_t n = 0;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) r.out.append(buf, n);
  const int st = pclose(f);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string obj(const std::string& name) { return std::string(REALPROGS_DIR) + "/" + name + ".bpf.o"; }

std::vector<nlohmann::json> json_lines(const std::string& out) {
  std::vector<nlohmann::json> v;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    v.push_back(nlohmann::json::parse(line, nullptr, false));
    EXPECT_FALSE(v.back().is_discarded()) << "not JSON: " << line;
  }
  return v;
}

TEST(VerifyCli, AcceptedObjectExitsZero) {
  const CmdResult r = invoke(obj("xdp_parse"));
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("program xdp_parse (section xdp, type xdp): accepted"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("processed "), std::string::npos) << r.out;
}

TEST(VerifyCli, MissingBoundsCheckNamesSourceLineAndHint) {
  const CmdResult r = invoke(obj("broken") + " --program xdp_no_bounds");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("REJECTED (EACCES)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("invalid access to packet"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("broken.bpf.c:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ip->protocol == IPPROTO_ICMP"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("hint: the packet access is not proven in bounds"), std::string::npos) << r.out;
}

TEST(VerifyCli, JsonOneObjectPerProgram) {
  const CmdResult r = invoke(obj("broken") + " --json");
  EXPECT_EQ(r.status, 1) << r.out;
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 4u) << r.out;
  int rejected = 0;
  for (const auto& j : lines) {
    for (const char* key : {"section", "program", "type", "verdict", "errno", "error", "source", "processed_insns",
                            "total_states", "peak_states", "time_us"})
      EXPECT_TRUE(j.contains(key)) << key << " missing in " << j.dump();
    if (j.value("verdict", "") == "reject") {
      ++rejected;
      EXPECT_EQ(j.value("errno", 0), 13) << j.dump();
      EXPECT_TRUE(j["source"].is_string()) << j.dump();
      const std::string src = j["source"].is_string() ? j["source"].get<std::string>() : std::string();
      EXPECT_NE(src.find("broken.bpf.c:"), std::string::npos) << j.dump();
      EXPECT_TRUE(j.contains("hint")) << j.dump();
    } else {
      EXPECT_EQ(j.value("program", ""), "tc_map_ok");
      EXPECT_GT(j.value("processed_insns", 0), 0);
    }
  }
  EXPECT_EQ(rejected, 3);
  // The null-check hint for the missing null check.
  for (const auto& j : lines) {
    if (j.value("program", "") == "xdp_no_null") {
      EXPECT_NE(j.value("hint", "").find("may be NULL"), std::string::npos) << j.dump();
    }
  }
}

TEST(VerifyCli, SelectionAndTypeErrors) {
  CmdResult r = invoke(obj("broken") + " --section tc --program tc_map_ok --json");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(json_lines(r.out).size(), 1u) << r.out;
  r = invoke(obj("broken") + " --program nosuch");
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("no program matches --program nosuch"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("xdp_no_null"), std::string::npos) << r.out;  // lists what there is
  r = invoke(obj("broken") + " --type bogus");
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("unknown program type 'bogus'"), std::string::npos) << r.out;
  r = invoke("/nonexistent/x.bpf.o");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("x.bpf.o"), std::string::npos) << r.out;
}

TEST(VerifyCli, LogLevelTwoPrintsStates) {
  const CmdResult r = invoke(obj("broken") + " --program tc_map_oob --log-level 2");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("--- verifier log"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("R1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("invalid access to map value"), std::string::npos) << r.out;
}

}  // namespace
