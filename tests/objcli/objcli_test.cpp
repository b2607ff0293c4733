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

#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <regex>
#include <set>
#include <thread>
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
  EXPECT_NE(r.err.find("bad.pcap: cannot read capture"), std::string::npos) << r.err;
  r = cli({"prog", "run", kObj, "--pcap", pcap_path(), "--jit", "--interpret"});
  EXPECT_EQ(r.exit_code, 2) << r.err;  // usage error: the two engines exclude each other
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

// ---------------------------------------------------------------- engines, BTF, records, kconfig

namespace {
const std::string kEvents = std::string(OBJCLI_PROGS_DIR) + "/events.bpf.o";

std::uint32_t uname_version() {
  struct utsname u {};
  uname(&u);
  unsigned a = 0, b = 0, c = 0;
  std::sscanf(u.release, "%u.%u.%u", &a, &b, &c);
  return (a << 16) + (b << 8) + std::min(c, 255u);
}
}  // namespace

TEST_F(ObjCli, JitIsTheDefaultEngineAndAgreesWithTheInterpreter) {
  const auto jit = cli({"prog", "run", kObj, "--pcap", pcap_path(), "--json"});
  const auto interp = cli({"prog", "run", kObj, "--pcap", pcap_path(), "--json", "--interpret"});
  ASSERT_EQ(jit.exit_code, 0) << jit.err;
  ASSERT_EQ(interp.exit_code, 0) << interp.err;
  auto a = nlohmann::json::parse(jit.out), b = nlohmann::json::parse(interp.out);
  EXPECT_EQ(a["engine"], "jit");
  EXPECT_EQ(b["engine"], "interpreter");
  ASSERT_EQ(a["packets"].size(), b["packets"].size());
  for (std::size_t i = 0; i < a["packets"].size(); ++i) {
    EXPECT_EQ(a["packets"][i]["retval"], b["packets"][i]["retval"]) << i;
    EXPECT_EQ(a["packets"][i]["modified"], b["packets"][i]["modified"]) << i;
    EXPECT_EQ(a["packets"][i]["trace"], b["packets"][i]["trace"]) << i;
  }
  // Same maps and contents (hash maps may list entries in another order).
  auto contents = [](const nlohmann::json& maps) {
    std::map<std::string, std::map<std::string, std::string>> out;
    for (const auto& m : maps)
      for (const auto& e : m["entries"]) out[m["name"]][e["key"].dump()] = e["value"].dump();
    return out;
  };
  EXPECT_EQ(contents(a["maps"]), contents(b["maps"]));
  EXPECT_EQ(a["maps"].size(), b["maps"].size());
}

TEST_F(ObjCli, DumpJitedAndXlatedWithMapIds) {
  auto r = cli({"prog", "load", kObj, "--pin", "/sys/fs/bpf/xj"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = cli({"prog", "dump", "xlated", "/sys/fs/bpf/xj/xdp_count"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::regex map_ref(R"(\(18\) r\d+ = map\[id:(\d+)\])");
  std::set<std::uint32_t> ids;
  for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), map_ref); it != std::sregex_iterator(); ++it)
    ids.insert(static_cast<std::uint32_t>(std::stoul((*it)[1])));
  ASSERT_FALSE(ids.empty()) << r.out;
  auto ml = cli({"map", "list", "--json"});
  ASSERT_EQ(ml.exit_code, 0) << ml.err;
  std::set<std::uint32_t> listed;
  for (const auto& m : nlohmann::json::parse(ml.out)) listed.insert(m["id"].get<std::uint32_t>());
  for (std::uint32_t id : ids) EXPECT_TRUE(listed.count(id)) << "map[id:" << id << "] not in map list: " << ml.out;
  EXPECT_NE(r.out.find("   0: ("), std::string::npos) << r.out;  // bpftool's "pc: (code) insn"
  EXPECT_NE(r.out.find("(85) call bpf_map_lookup_elem#1"), std::string::npos) << r.out;

  const auto j = cli({"prog", "dump", "jited", "/sys/fs/bpf/xj/xdp_count", "--json"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  const auto jj = nlohmann::json::parse(j.out);
  EXPECT_EQ(jj["name"], "xdp_count");
  EXPECT_GT(jj["code_size"].get<std::size_t>(), 0u);
  ASSERT_FALSE(jj["blocks"].empty());
  EXPECT_EQ(jj["blocks"][0]["pc"], 0);
  EXPECT_FALSE(jj["blocks"][0]["asm"].empty());
  // Each block is headed by the same text as `dump xlated` prints for that pc.
  const auto xl = cli({"prog", "dump", "xlated", "/sys/fs/bpf/xj/xdp_count", "--json"});
  ASSERT_EQ(xl.exit_code, 0) << xl.err;
  std::map<std::size_t, std::string> text;
  const auto xj = nlohmann::json::parse(xl.out);
  for (const auto& in : xj["insns"])
    text[in["pc"].get<std::size_t>()] = in["disasm"].get<std::string>();
  std::size_t checked = 0;
  for (const auto& b : jj["blocks"]) {
    if (b["pc"].is_null()) continue;
    EXPECT_EQ(b["bpf"], text[b["pc"].get<std::size_t>()]) << b.dump();
    ++checked;
  }
  EXPECT_GT(checked, 10u);
  const auto t = cli({"prog", "dump", "jited", kObj});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find("bytes of x86-64 code"), std::string::npos) << t.out;
}

TEST_F(ObjCli, BtfFormattedMapsRecordsAndKconfig) {
  const auto frames = parse_pcap(userbpf::test::read_file_bytes(pcap_path()));
  const auto r = cli({"prog", "run", kEvents, "--pcap", pcap_path(), "--follow", "--type", "struct event", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["packets"].size(), frames.size());
  std::uint64_t bytes = 0;
  bool any_long = false;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const auto& p = j["packets"][i];
    ASSERT_EQ(p["records"].size(), 2u) << p.dump();  // one ring buffer record, one perf record
    std::set<std::string> from;
    for (const auto& rec : p["records"]) {
      from.insert(rec["map"]);
      const auto& f = rec["formatted"];
      EXPECT_EQ(f["seq"], i + 1) << rec.dump();
      EXPECT_EQ(f["len"], frames[i].size());
      EXPECT_EQ(f["kind"], frames[i].size() > 60 ? "K_LONG" : "K_SHORT");
      EXPECT_EQ(f["kver"], uname_version());
      EXPECT_EQ(f["tag"], "ev");
    }
    EXPECT_EQ(from, (std::set<std::string>{"events", "pevents"}));
    bytes += frames[i].size();
    any_long = any_long || frames[i].size() > 60;
  }
  bool saw = false;
  for (const auto& m : j["maps"]) {
    if (m["name"] != "stats") continue;
    saw = true;
    ASSERT_EQ(m["entries"].size(), 1u);
    const auto& f = m["entries"][0]["formatted"];
    EXPECT_EQ(f["key"], 0);
    EXPECT_EQ(f["value"]["name"], "pkts");
    EXPECT_EQ(f["value"]["packets"], frames.size());
    EXPECT_EQ(f["value"]["bytes"], bytes);
    EXPECT_EQ(f["value"]["seen_long"], any_long);
  }
  EXPECT_TRUE(saw) << r.out;
  // A kernel config the user names: LINUX_KERNEL_VERSION is not from it, the
  // object has no CONFIG_ externs, so any readable file will do; a missing one is an error.
  auto bad = cli({"prog", "run", kEvents, "--pcap", pcap_path(), "--kconfig", dir_ + "/no-such-config"});
  EXPECT_EQ(bad.exit_code, 0) << bad.err;  // no CONFIG_ externs: the file is not needed
}

TEST_F(ObjCli, PinnedMapKeepsItsBtfAndWatchSeesRecordsFromAnotherProcess) {
  auto r = cli({"prog", "load", kEvents, "--pin", "/sys/fs/bpf/ev"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The ring buffer is pinned by name (<pin dir>/events); watch it from one
  // process while another runs the program against the same pinned map.
  const std::string out_file = dir_ + "/watch.out";
  const std::string cmd = userbpf_bin() + " map watch /sys/fs/bpf/events --type 'struct event' --count 3 --timeout 30 --json > " +
                          out_file + " 2>&1";
  std::thread watcher([&] { (void)std::system(cmd.c_str()); });
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  const auto frames = parse_pcap(userbpf::test::read_file_bytes(pcap_path()));
  const std::string data = dir_ + "/pkt.bin";
  userbpf::test::write_file(data, std::string(frames[0].begin(), frames[0].end()));
  auto run = cli({"prog", "run", kEvents, "--data", data, "--repeat", "3", "--no-maps"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  watcher.join();
  const std::string got = userbpf::test::read_file_bytes(out_file);
  std::vector<nlohmann::json> recs;
  std::size_t pos = 0;
  while (pos < got.size()) {
    const auto nl = got.find('\n', pos);
    const std::string line = got.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? got.size() : nl + 1;
    if (!line.empty()) recs.push_back(nlohmann::json::parse(line));
  }
  ASSERT_EQ(recs.size(), 3u) << got;
  for (std::size_t i = 0; i < recs.size(); ++i) {
    EXPECT_EQ(recs[i]["map"], "events");
    EXPECT_EQ(recs[i]["formatted"]["len"], frames[0].size()) << recs[i].dump();
    EXPECT_EQ(recs[i]["formatted"]["seq"], i + 1) << recs[i].dump();
  }
  // map dump of the pinned struct-valued map decodes it by the stored BTF.
  r = cli({"map", "dump", "/sys/fs/bpf/ev/stats", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto d = nlohmann::json::parse(r.out);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0]["formatted"]["value"]["packets"], 0);
  EXPECT_EQ(d[0]["formatted"]["value"]["name"], "");  // all NULs: an empty string, as bpftool
  r = cli({"map", "dump", "/sys/fs/bpf/ev/stats"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"seen_long\":false"), std::string::npos) << r.out;
  // Watching a map that is not a ring buffer fails clearly.
  r = cli({"map", "watch", "/sys/fs/bpf/ev/stats", "--timeout", "1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not a ring buffer"), std::string::npos) << r.err;
}
