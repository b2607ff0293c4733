// Tests of the object-level CLI on the bundled main job: userbpf prog run /
// prog load --pin / map / btf, run as subprocesses (tests/cli/process.hpp).
//
// Expected values are computed independently: the pcap is parsed here by hand
// and each frame is classified by a C++ restatement of xdp_count.bpf.c's
// rules (not by the runtime), and the kernel differential test runs the same
// object through libbpf and BPF_PROG_TEST_RUN.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/process.hpp"

namespace {

using userbpf::test::run_process;
using userbpf::test::userbpf_bin;
using Bytes = std::vector<std::uint8_t>;

const std::string kObj = USERBPF_XDP_OBJ;
std::string pcap_path() { return userbpf::test::source_path("examples/xdp/x.pcap"); }

// A classic pcap (either byte order of the magic, microseconds) parsed by hand.
std::vector<Bytes> parse_pcap(const std::string& bytes) {
  std::vector<Bytes> out;
  if (bytes.size() < 24) return out;
  std::uint32_t magic = 0;
  std::memcpy(&magic, bytes.data(), 4);
  EXPECT_EQ(magic, 0xa1b2c3d4u) << "little-endian microsecond pcap expected";
  std::size_t off = 24;
  while (off + 16 <= bytes.size()) {
    std::uint32_t caplen = 0;
    std::memcpy(&caplen, bytes.data() + off + 8, 4);
    off += 16;
    if (off + caplen > bytes.size()) break;
    out.emplace_back(bytes.begin() + static_cast<long>(off), bytes.begin() + static_cast<long>(off + caplen));
    off += caplen;
  }
  return out;
}

// xdp_count.bpf.c's rules, restated: verdict and the proto_count key.
struct Expect {
  std::string verdict;
  std::optional<std::uint32_t> key;
  Bytes out;
};
Expect classify(const Bytes& f) {
  Expect e{"", std::nullopt, f};
  if (f.size() < 14) return {"XDP_ABORTED", std::nullopt, f};
  const unsigned proto = (f[12] << 8) | f[13];
  if (proto != 0x0800) return {"XDP_PASS", 256 + (proto & 0xff), f};
  if (f.size() < 34) return {"XDP_ABORTED", std::nullopt, f};
  const std::uint8_t ipproto = f[23];
  e.key = ipproto;
  if (ipproto == 1) { e.verdict = "XDP_DROP"; return e; }
  if (ipproto != 17 || (f[14] & 0x0f) != 5) { e.verdict = "XDP_PASS"; return e; }
  if (f.size() < 42) { e.verdict = "XDP_ABORTED"; return e; }
  const unsigned dport = (f[36] << 8) | f[37];
  if (dport == 9) { e.verdict = "XDP_DROP"; return e; }
  if (dport == 7) {
    e.verdict = "XDP_TX";
    for (int i = 0; i < 6; ++i) std::swap(e.out[static_cast<std::size_t>(i)], e.out[static_cast<std::size_t>(6 + i)]);
    return e;
  }
  e.verdict = "XDP_PASS";
  return e;
}

class ObjCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = userbpf::test::temp_dir();
    pins_ = dir_ + "/pins";
    ::setenv("USERBPF_PIN_DIR", pins_.c_str(), 1);
  }
  userbpf::test::ProcessResult cli(std::vector<std::string> args) {
    args.insert(args.begin(), userbpf_bin());
    return run_process(args);
  }
  std::string dir_, pins_;
};

TEST_F(ObjCli, VerdictsOutputPacketsAndMapsMatchAnIndependentCount) {
  const auto frames = parse_pcap(userbpf::test::read_file_bytes(pcap_path()));
  ASSERT_GE(frames.size(), 10u);
  const std::string out = dir_ + "/out.pcap";
  const auto r = cli({"prog", "run", kObj, "--pcap", pcap_path(), "--out", out, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["packets"].size(), frames.size());
  std::map<std::string, std::size_t> want_counts;
  std::map<std::uint32_t, std::uint64_t> want_proto;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const Expect e = classify(frames[i]);
    EXPECT_EQ(j["packets"][i]["verdict"], e.verdict) << "packet " << i;
    ++want_counts[e.verdict];
    if (e.key) ++want_proto[*e.key];
  }
  for (const auto& [v, n] : want_counts) EXPECT_EQ(j["summary"][v], n) << v;
  EXPECT_EQ(j["summary"].size(), want_counts.size());
  // Trace lines: one per dropped packet.
  std::size_t traces = 0;
  for (const auto& p : j["packets"]) traces += p["trace"].size();
  EXPECT_EQ(traces, want_counts["XDP_DROP"]);

  // The output pcap: every packet as the program left it.
  const auto outs = parse_pcap(userbpf::test::read_file_bytes(out));
  ASSERT_EQ(outs.size(), frames.size());
  for (std::size_t i = 0; i < frames.size(); ++i) EXPECT_EQ(outs[i], classify(frames[i]).out) << "packet " << i;

  // Map contents after the run.
  std::map<std::uint32_t, std::uint64_t> got_proto;
  bool saw_verdicts = false;
  for (const auto& m : j["maps"]) {
    if (m["name"] == "proto_count")
      for (const auto& e : m["entries"]) got_proto[e["formatted"]["key"]] = e["formatted"]["value"];
    if (m["name"] == "verdicts") {
      saw_verdicts = true;
      static constexpr const char* kNames[] = {"XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"};
      for (const auto& e : m["entries"]) {
        const auto k = e["formatted"]["key"].get<std::size_t>();
        EXPECT_EQ(e["formatted"]["value"].get<std::size_t>(), want_counts[kNames[k]]) << kNames[k];
      }
    }
  }
  EXPECT_TRUE(saw_verdicts);
  EXPECT_EQ(got_proto, want_proto);
}

TEST_F(ObjCli, TextOutputNamesVerdictsAndPrintsMaps) {
  const auto r = cli({"prog", "run", kObj, "--pcap", pcap_path()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("XDP_DROP"), std::string::npos);
  EXPECT_NE(r.out.find("trace: drop icmp"), std::string::npos);
  EXPECT_NE(r.out.find("summary:"), std::string::npos);
  EXPECT_NE(r.out.find("map proto_count"), std::string::npos);
}

TEST_F(ObjCli, DataFileRunsOnePacket) {
  const auto frames = parse_pcap(userbpf::test::read_file_bytes(pcap_path()));
  const std::string data = dir_ + "/pkt.bin";
  userbpf::test::write_file(data, std::string(frames[2].begin(), frames[2].end()));
  const auto r = cli({"prog", "run", kObj, "--program", "xdp_count", "--data", data, "--repeat", "3", "--json", "--no-maps"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["packets"].size(), 1u);
  EXPECT_EQ(j["packets"][0]["verdict"], classify(frames[2]).verdict);
  EXPECT_TRUE(j["maps"].empty());
}

TEST_F(ObjCli, PinsPersistAcrossInvocations) {
  auto r = cli({"prog", "load", kObj, "--pin", "/sys/fs/bpf/xc"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // A second invocation changes the pinned map, a third reads it back.
  r = cli({"map", "update", "/sys/fs/bpf/xc/proto_count", "key", "0x11", "0x00", "0x00", "0x00", "value", "2a00000000000000"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = cli({"map", "dump", "/sys/fs/bpf/xc/proto_count", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["formatted"]["key"], 17);
  EXPECT_EQ(j[0]["formatted"]["value"], 42);
  r = cli({"map", "lookup", pins_ + "/xc/proto_count", "key", "hex", "11", "00", "00", "00"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("2a 00 00 00 00 00 00 00"), std::string::npos) << r.out;
  r = cli({"map", "delete", "xc/proto_count", "key", "17", "0", "0", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = cli({"map", "lookup", "xc/proto_count", "key", "17", "0", "0", "0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not found"), std::string::npos) << r.err;
  // The pinned program is listed and shown, and uses the pinned maps.
  r = cli({"prog", "list", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["name"], "xdp_count");
  EXPECT_EQ(j[0]["type"], "xdp");
  r = cli({"prog", "show", "/sys/fs/bpf/xc/xdp_count"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("name xdp_count"), std::string::npos);
  r = cli({"prog", "dump", "xlated", "/sys/fs/bpf/xc/xdp_count"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("call"), std::string::npos);
  r = cli({"map", "list", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GE(nlohmann::json::parse(r.out).size(), 2u);
  // Pinning again at the same place fails clearly.
  r = cli({"prog", "load", kObj, "--pin", "/sys/fs/bpf/xc"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot pin"), std::string::npos) << r.err;
}

TEST_F(ObjCli, ErrorsAreClear) {
  auto r = cli({"prog", "run", dir_ + "/missing.o", "--pcap", pcap_path()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("missing.o: no such file"), std::string::npos) << r.err;
  r = cli({"prog", "run", kObj, "--section", "tc", "--pcap", pcap_path()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no section 'tc'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("xdp_count"), std::string::npos) << r.err;
  const std::string bad = dir_ + "/bad.pcap";
  userbpf::test::write_file(bad, "this is not a pcap file at all");
  r = cli({"prog", "run", kObj, "--pcap", bad});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("bad.pcap: cannot read pcap"), std::string::npos) << r.err;
  r = cli({"prog", "run", kObj, "--pcap", pcap_path(), "--jit"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("interpreter only"), std::string::npos) << r.err;
  r = cli({"map", "dump", "/sys/fs/bpf/nothing-here"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("nothing-here"), std::string::npos) << r.err;
  r = cli({"map", "dump", "4242"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no map with id 4242"), std::string::npos) << r.err;
}

TEST_F(ObjCli, BtfDumpListsTheMapTypes) {
  const auto r = cli({"btf", "dump", kObj});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("STRUCT 'xdp_md'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("DATASEC '.maps'"), std::string::npos);
  EXPECT_NE(r.out.find("VAR 'proto_count'"), std::string::npos);
  EXPECT_NE(r.out.find("FUNC 'xdp_count' type_id="), std::string::npos);
  const auto rj = cli({"btf", "dump", kObj, "--json"});
  ASSERT_EQ(rj.exit_code, 0);
  EXPECT_GT(nlohmann::json::parse(rj.out)["types"].size(), 10u);
}

// ---------------------------------------------------------------- kernel

TEST_F(ObjCli, KernelDifferential) {
  libbpf_set_print(nullptr);
  bpf_object* o = bpf_object__open_file(kObj.c_str(), nullptr);
  if (o == nullptr) GTEST_SKIP() << "libbpf cannot open the object: " << std::strerror(errno);
  if (bpf_object__load(o) != 0) {
    const int err = errno;
    bpf_object__close(o);
    GTEST_SKIP() << "the kernel refuses to load the object (no BPF here?): " << std::strerror(err);
  }
  bpf_program* prog = bpf_object__find_program_by_name(o, "xdp_count");
  ASSERT_NE(prog, nullptr);
  const int pfd = bpf_program__fd(prog);
  const auto frames = parse_pcap(userbpf::test::read_file_bytes(pcap_path()));
  static constexpr const char* kNames[] = {"XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"};
  std::vector<std::string> kverdicts;
  std::vector<Bytes> kouts;
  for (const Bytes& f : frames) {
    Bytes out(f.size() + 256);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = f.data(), .data_out = out.data(),
                .data_size_in = static_cast<__u32>(f.size()), .data_size_out = static_cast<__u32>(out.size()));
    if (bpf_prog_test_run_opts(pfd, &opts) != 0) {
      const int err = errno;
      bpf_object__close(o);
      GTEST_SKIP() << "BPF_PROG_TEST_RUN unavailable: " << std::strerror(err);
    }
    out.resize(opts.data_size_out);
    kverdicts.push_back(opts.retval < 5 ? kNames[opts.retval] : "?");
    kouts.push_back(out);
  }
  auto dump = [&](const char* name) {
    std::map<std::uint32_t, std::uint64_t> m;
    const int fd = bpf_object__find_map_fd_by_name(o, name);
    std::uint32_t key = 0, next = 0;
    const std::uint32_t* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
      std::uint64_t v = 0;
      if (bpf_map_lookup_elem(fd, &next, &v) == 0) m[next] = v;
      key = next;
      prev = &key;
    }
    return m;
  };
  const auto kproto = dump("proto_count"), kverd = dump("verdicts");
  bpf_object__close(o);

  const std::string out = dir_ + "/out.pcap";
  const auto r = cli({"prog", "run", kObj, "--pcap", pcap_path(), "--out", out, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const auto outs = parse_pcap(userbpf::test::read_file_bytes(out));
  ASSERT_EQ(outs.size(), frames.size());
  for (std::size_t i = 0; i < frames.size(); ++i) {
    EXPECT_EQ(j["packets"][i]["verdict"], kverdicts[i]) << "packet " << i;
    EXPECT_EQ(outs[i], kouts[i]) << "packet " << i;
  }
  std::map<std::uint32_t, std::uint64_t> uproto, uverd;
  for (const auto& m : j["maps"]) {
    auto& dst = m["name"] == "proto_count" ? uproto : uverd;
    if (m["name"] != "proto_count" && m["name"] != "verdicts") continue;
    for (const auto& e : m["entries"]) dst[e["formatted"]["key"]] = e["formatted"]["value"];
  }
  EXPECT_EQ(uproto, kproto);
  EXPECT_EQ(uverd, kverd);
}

}  // namespace
