// Runs a tool binary as a subprocess for the CLI tests.
#pragma once

#include <string>
#include <vector>

namespace userbpf::test {

struct ProcessResult {
  int exit_code = -1;  // -1: did not exit normally (signal)
  int signal = 0;
  std::string out;
  std::string err;
};

// Runs `argv` (argv[0] is the path) with `input` on stdin; captures stdout and stderr.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& input = {});

// Paths of the built tools and of the source tree.
std::string userbpf_bin();
std::string conformance_bin();
std::string source_path(const std::string& rel);

// A fresh private directory for one test's files, and file helpers.
std::string temp_dir();
void write_file(const std::string& path, const std::string& bytes);
std::string read_file_bytes(const std::string& path);

}  // namespace userbpf::test
