// Command group "capture": `userbpf capture -i IFACE [EXPR | --prog OBJ]`
// runs a packet filter on live traffic and prints a verdict per packet and
// the counts at the end; -w writes the packets the filter keeps to a pcap.
//
// How it works: packets come from an AF_PACKET socket bound to IFACE
// (hooks::open_live: both directions, offloaded VLAN tags put back, needs
// root). Two kinds of filter:
//   - EXPR: a tcpdump expression compiled by libpcap for the interface's
//     link type, translated to eBPF and run by the JIT (--interpret: the
//     interpreter) with the socket-filter context of the packet (interface,
//     direction, protocol, VLAN tag from the socket). Verdict: the return
//     value (KEEP n / DROP); kept packets are written cut to n bytes, as a
//     socket filter cuts them.
//   - --prog OBJ: an XDP, tc or socket-filter program of a clang-built
//     object, loaded with its maps into the runtime (obj::Session) and run
//     per packet through PROG_TEST_RUN, as `prog run --pcap` does. Verdict
//     named by the program type (hooks::verdict_name); kept packets
//     (hooks::verdict_keeps) are written as the program left them (socket
//     filters: the packet cut to the return value). As in the kernel's test
//     run, a socket filter's data starts at the network header.
// The capture ends after -c COUNT packets, after --timeout SECONDS, or on
// SIGINT/SIGTERM; the summary is printed in every case. --json prints one
// JSON object per packet and a last {"summary": ...} line (JSON Lines).
#include <fmt/format.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cbpf/exec.hpp"
#include "cli/objcommon.hpp"
#include "cli/registry.hpp"
#include "common/tool_io.hpp"
#include "hooks/classic.hpp"
#include "hooks/packet_io.hpp"
#include "hooks/verdict.hpp"
#include "loader/loader.hpp"

namespace userbpf::cli {
namespace {

struct CaptureOptions {
  std::string iface;
  std::string expr;
  std::string prog;
  std::string section, program;
  std::string out;
  std::uint64_t count = 0;  // 0: no limit
  double timeout = 0;       // seconds, 0: none
  std::uint32_t snaplen = 262144;
  bool promisc = false;
  bool inbound = false;
  bool json = false;
  bool quiet = false;
  bool interpret = false;
};

volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_signal(int) { g_stop = 1; }

// One filter behind one interface: run(packet) -> (return value, the bytes to keep).
class PacketFilter {
 public:
  virtual ~PacketFilter() = default;
  struct Verdict {
    std::uint32_t rc = 0;
    bool keep = false;
    std::string name;
    std::span<const std::uint8_t> out;  // the packet as the filter leaves it (valid until the next run)
    std::vector<std::string> trace;
    std::optional<std::string> error;
  };
  virtual Verdict run(const hooks::Packet& p) = 0;
  [[nodiscard]] virtual std::string describe() const = 0;
};

class ClassicFilter final : public PacketFilter {
 public:
  ClassicFilter(cbpf::Filter f, int linktype, std::string expr)
      : f_(std::move(f)), link_(hooks::link_layer(linktype)), expr_(std::move(expr)) {}
  Verdict run(const hooks::Packet& p) override {
    Verdict v;
    v.rc = hooks::run_classic(f_, p, link_);
    v.keep = v.rc != 0;
    v.name = hooks::classic_verdict(v.rc);
    v.out = p.data.first(std::min<std::size_t>(p.data.size(), v.rc));
    return v;
  }
  [[nodiscard]] std::string describe() const override {
    return fmt::format("filter '{}' ({} classic insns, {} eBPF, {})", expr_, f_.classic().size(), f_.ebpf().size(),
                       cbpf::engine_name(f_.engine()));
  }

 private:
  cbpf::Filter f_;
  cbpf::LinkLayer link_;
  std::string expr_;
};

class ObjectFilter final : public PacketFilter {
 public:
  ObjectFilter(std::unique_ptr<obj::Session> s, int handle, const loader::Program& p, std::string path)
      : s_(std::move(s)), handle_(handle), type_(p.prog_type), name_(p.name), section_(p.section), path_(std::move(path)) {}
  Verdict run(const hooks::Packet& p) override {
    Verdict v;
    runtime::TestRunArgs args;
    args.data_in = p.data;
    auto r = s_->rt->test_run(handle_, args);
    v.trace = s_->trace.take();
    if (!r.ok()) {
      v.name = "error";
      v.error = r.error().to_string();
      return v;
    }
    v.rc = r->retval;
    v.keep = hooks::verdict_keeps(type_, v.rc);
    v.name = hooks::verdict_name(type_, v.rc);
    out_ = std::move(r->data_out);
    v.out = out_;
    // a socket filter cannot change the packet; it keeps its first rc bytes
    if (type_ == BPF_PROG_TYPE_SOCKET_FILTER) v.out = p.data.first(std::min<std::size_t>(p.data.size(), v.rc));
    return v;
  }
  [[nodiscard]] std::string describe() const override {
    return fmt::format("{} program {} (SEC(\"{}\")) of {}", loader::prog_type_name(type_), name_, section_, path_);
  }

 private:
  std::unique_ptr<obj::Session> s_;
  int handle_;
  std::uint32_t type_;
  std::string name_, section_, path_;
  std::vector<std::uint8_t> out_;
};

Result<std::unique_ptr<PacketFilter>> object_filter(const CaptureOptions& o) {
  std::error_code ec;
  if (!std::filesystem::exists(o.prog, ec)) return make_error(ENOENT, fmt::format("{}: no such file", o.prog));
  auto ob = loader::Object::open(o.prog);
  if (!ob.ok()) return make_error(ob.error().code, fmt::format("{}: {}", o.prog, ob.error().to_string()));
  auto hit = obj::pick_program(
      *ob, o.program, o.section, o.prog, [](const loader::Program& p) { return hooks::is_packet_program(p.prog_type); },
      "packet program");
  if (!hit.ok()) return hit.error();
  const loader::Program* picked = *hit;
  auto s = std::make_unique<obj::Session>();
  auto loaded = s->rt->load_object(*ob);
  if (!loaded.ok()) return make_error(loaded.error().code, fmt::format("{}: load: {}", o.prog, loaded.error().to_string()));
  for (const auto& [name, h] : loaded->progs)
    if (name == picked->name)
      return std::unique_ptr<PacketFilter>(std::make_unique<ObjectFilter>(std::move(s), h, *picked, o.prog));
  return make_error(ENOENT, fmt::format("{}: program {} was not loaded (autoload off?)", o.prog, picked->name));
}

Result<std::unique_ptr<PacketFilter>> make_filter(const CaptureOptions& o, int linktype) {
  if (!o.prog.empty()) return object_filter(o);
  const std::string expr = o.expr.empty() ? std::string("") : o.expr;  // "" = every packet (libpcap: ret #snaplen)
  auto prog = hooks::compile_expression(expr, {linktype, o.snaplen, true});
  if (!prog.ok()) return prog.error();
  cbpf::CheckOptions copts;
  copts.allow_backward_ja = true;  // libpcap's protochain code
  auto f = cbpf::Filter::create(*prog, cbpf::Target::Socket, copts,
                                o.interpret ? cbpf::Engine::Interpreter : cbpf::Engine::Jit);
  if (!f.ok()) return f.error();
  return std::unique_ptr<PacketFilter>(std::make_unique<ClassicFilter>(std::move(*f), linktype, expr));
}

constexpr const char* kDirections[] = {"host", "broadcast", "multicast", "otherhost", "out"};

// "IPv4 10.0.0.1 > 10.0.0.2 UDP 1234 > 53" and the like (Ethernet and raw IP).
std::string summarize(std::span<const std::uint8_t> p, int linktype) {
  auto be16 = [&](std::size_t o) { return o + 2 <= p.size() ? static_cast<unsigned>(p[o] << 8 | p[o + 1]) : 0U; };
  std::size_t l3 = 0;
  unsigned type = 0;
  if (linktype == hooks::kLinkEthernet) {
    if (p.size() < 14) return "runt";
    type = be16(12);
    l3 = 14;
    while ((type == 0x8100 || type == 0x88a8) && p.size() >= l3 + 4) {
      type = be16(l3 + 2);
      l3 += 4;
    }
  } else if (linktype == hooks::kLinkRaw && !p.empty()) {
    type = (p[0] >> 4) == 6 ? 0x86dd : 0x0800;
  } else {
    return "";
  }
  std::size_t l4 = 0;
  unsigned proto = 0;
  std::string s;
  if (type == 0x0800 && p.size() >= l3 + 20) {
    s = fmt::format("IPv4 {}.{}.{}.{} > {}.{}.{}.{}", p[l3 + 12], p[l3 + 13], p[l3 + 14], p[l3 + 15], p[l3 + 16],
                    p[l3 + 17], p[l3 + 18], p[l3 + 19]);
    proto = p[l3 + 9];
    l4 = l3 + (p[l3] & 0xfU) * 4U;
  } else if (type == 0x86dd && p.size() >= l3 + 40) {
    s = "IPv6";
    proto = p[l3 + 6];
    l4 = l3 + 40;
  } else {
    return type == 0x0806 ? "ARP" : fmt::format("ethertype 0x{:04x}", type);
  }
  if (proto == 6 || proto == 17)
    s += fmt::format(" {} {} > {}", proto == 6 ? "TCP" : "UDP", be16(l4), be16(l4 + 2));
  else if (proto == 1 || proto == 58)
    s += proto == 1 ? " ICMP" : " ICMPv6";
  else
    s += fmt::format(" proto {}", proto);
  return s;
}

int fail(bool json, const std::string& what) {
  std::cerr << "userbpf capture: error: " << what << "\n";
  if (json) std::cout << nlohmann::json{{"error", what}}.dump() << '\n';
  return tools::kExitError;
}

int run_capture(const CaptureOptions& o) {
  if (!o.expr.empty() && !o.prog.empty()) return fail(o.json, "give a filter EXPR or --prog OBJ, not both");
  if ((!o.section.empty() || !o.program.empty()) && o.prog.empty())
    return fail(o.json, "--section and --program choose a program of --prog OBJ");
  hooks::LiveOptions lo;
  lo.iface = o.iface;
  lo.snaplen = o.snaplen;
  lo.promisc = o.promisc;
  lo.inbound_only = o.inbound;
  auto src = hooks::open_live(lo);
  if (!src.ok()) return fail(o.json, src.error().message);
  hooks::PacketSource& in = **src;
  auto filter = make_filter(o, in.linktype());
  if (!filter.ok()) return fail(o.json, filter.error().message);
  std::optional<hooks::PcapWriter> out;
  if (!o.out.empty()) {
    auto w = hooks::PcapWriter::open(o.out, in.linktype(), o.snaplen);
    if (!w.ok()) return fail(o.json, w.error().message);
    out.emplace(std::move(*w));
  }
  // stderr, also with --json: scripts (and the tests) wait for this line
  std::cerr << fmt::format("userbpf capture: listening on {} ({}), {}", o.iface, hooks::linktype_name(in.linktype()),
                           (*filter)->describe())
            << std::endl;

  g_stop = 0;
  struct sigaction sa {};
  sa.sa_handler = on_signal;  // no SA_RESTART: poll returns at once
  struct sigaction old_int {}, old_term {};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);

  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.timeout));
  std::uint64_t total = 0, kept = 0;
  std::map<std::string, std::uint64_t> counts;
  std::vector<std::string> order;
  std::optional<std::string> error;
  hooks::Packet pkt;
  while (g_stop == 0 && (o.count == 0 || total < o.count)) {
    int wait_ms = 200;
    if (o.timeout > 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) break;
      wait_ms = static_cast<int>(std::min<long long>(left, wait_ms));
    }
    auto n = in.next(pkt, wait_ms);
    if (!n.ok()) {
      error = n.error().message;
      break;
    }
    if (*n != hooks::Next::Packet) continue;
    const PacketFilter::Verdict v = (*filter)->run(pkt);
    ++total;
    if (v.keep) ++kept;
    if (counts[v.name]++ == 0) order.push_back(v.name);
    if (v.keep && out) {
      out->write(v.out, pkt);
      out->flush();
    }
    const char* dir = pkt.meta.pkt_type < std::size(kDirections) ? kDirections[pkt.meta.pkt_type] : "?";
    if (o.json) {
      nlohmann::json j = {{"index", total - 1},
                          {"time", fmt::format("{}.{:06}", pkt.sec, pkt.usec)},
                          {"len", pkt.wirelen},
                          {"caplen", pkt.data.size()},
                          {"direction", dir},
                          {"summary", summarize(pkt.data, in.linktype())},
                          {"verdict", v.name},
                          {"retval", v.rc},
                          {"kept", v.keep}};
      if (v.error) j["error"] = *v.error;
      if (!v.trace.empty()) j["trace"] = v.trace;
      std::cout << j.dump() << std::endl;
    } else if (!o.quiet) {
      std::cout << fmt::format("{:>6} {}.{:06} {:<5} {:>5} bytes  {:<44} {}{}\n", total - 1, pkt.sec, pkt.usec, dir,
                               pkt.wirelen, summarize(pkt.data, in.linktype()), v.name,
                               v.error ? ": " + *v.error : std::string());
      for (const std::string& t : v.trace) std::cout << "    trace: " << t << '\n';
      std::cout << std::flush;
    }
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);

  if (o.json) {
    nlohmann::json verdicts = nlohmann::json::object();
    for (const std::string& v : order) verdicts[v] = counts[v];
    nlohmann::json sum = {{"interface", o.iface}, {"packets", total}, {"kept", kept}, {"verdicts", verdicts}};
    if (out) sum["written"] = out->written();
    if (error) sum["error"] = *error;
    std::cout << nlohmann::json{{"summary", sum}}.dump() << std::endl;
  } else {
    std::cout << fmt::format("{} packet{} captured, {} kept, {} dropped", total, total == 1 ? "" : "s", kept,
                             total - kept);
    if (!order.empty()) {
      std::cout << " (";
      for (std::size_t i = 0; i < order.size(); ++i) std::cout << fmt::format("{}{} {}", i ? ", " : "", order[i], counts[order[i]]);
      std::cout << ")";
    }
    std::cout << '\n';
    if (out) std::cout << fmt::format("wrote {} packets to {}\n", out->written(), o.out);
  }
  if (error) return fail(false, *error);
  return tools::kExitOk;
}

}  // namespace

void register_capture_commands(Registry& r) {
  auto o = std::make_shared<CaptureOptions>();
  CLI::App& cmd = r.add("capture",
                        "Run a tcpdump expression or an XDP/tc/socket-filter program on live traffic (AF_PACKET, root)",
                        [o] { return run_capture(*o); });
  cmd.add_option("-i,--interface", o->iface, "Interface to capture on")->required()->option_text("IFACE");
  cmd.add_option("EXPR", o->expr, "pcap-filter expression, e.g. 'udp port 53' (quote it); none: every packet");
  cmd.add_option("--prog", o->prog, "Run this BPF object's packet program instead of EXPR")->option_text("OBJ");
  cmd.add_option("--section", o->section, "With --prog: the program in this ELF section (e.g. xdp)");
  cmd.add_option("--program", o->program, "With --prog: the program with this function name");
  cmd.add_option("-w,--write", o->out, "Write the kept packets to this pcap file")->option_text("OUT.pcap");
  cmd.add_option("-c,--count", o->count, "Stop after N packets")->option_text("N");
  cmd.add_option("--timeout", o->timeout, "Stop after this many seconds")->option_text("SECONDS")->check(CLI::NonNegativeNumber);
  cmd.add_option("--snaplen", o->snaplen, "Bytes to capture per packet (default 262144)")
      ->option_text("N")
      ->check(CLI::Range(1u, 262144u));
  cmd.add_flag("--promisc", o->promisc, "Put the interface in promiscuous mode");
  cmd.add_flag("--inbound", o->inbound, "Only packets received (not those sent) on the interface");
  cmd.add_flag("-q,--quiet", o->quiet, "Print only the summary");
  cmd.add_flag("--interpret", o->interpret, "Run EXPR in the interpreter instead of the JIT");
  cmd.add_flag("--json,-j", o->json, "One JSON object per packet, then {\"summary\": ...}");
  cmd.footer(
      "Examples (as root):\n"
      "  userbpf capture -i eth0 'tcp port 443' -c 100\n"
      "  userbpf capture -i veth0 --prog xdp_prog.bpf.o --section xdp -w passed.pcap --timeout 10\n"
      "Ends after -c packets, --timeout seconds, or Ctrl-C; prints the counts in every case.");
}

}  // namespace userbpf::cli
