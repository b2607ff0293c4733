// Command group "filter": `userbpf filter EXPR -r IN.pcap [-w OUT.pcap]`
// compiles a tcpdump expression with libpcap (pcap_compile, link type from
// the capture or --linktype), checks and translates the classic program to
// eBPF (src/cbpf) and runs it per packet; matching packets are written to
// OUT (pcap) and counted. The kept set is the one pcap_offline_filter keeps
// (tests/cbpf compares them over a corpus of expressions).
//
// -d prints the classic program as `tcpdump -d` does, --ebpf the translated
// eBPF (kernel syntax). --program FILE takes a classic program (any text
// form of src/cbpf, or binary struct sock_filter) instead of EXPR.
#include <pcap/pcap.h>

#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "asm/asm.hpp"
#include "cbpf/cbpf.hpp"
#include "cbpf/exec.hpp"
#include "cli/registry.hpp"
#include "common/tool_io.hpp"

namespace userbpf::cli {
namespace {

struct FilterOptions {
  std::string expr;
  std::string program;
  std::string in;
  std::string out;
  std::string linktype;
  int snaplen = 262144;
  bool count = false;
  bool dump = false;
  bool ebpf = false;
  bool no_optimize = false;
};

int fail(std::string_view what) {
  std::cerr << "userbpf filter: error: " << what << "\n";
  return tools::kExitError;
}

cbpf::LinkLayer link_layer(int dlt) {
  if (dlt == DLT_EN10MB) return cbpf::LinkLayer::Ethernet;
  if (dlt == DLT_RAW) return cbpf::LinkLayer::RawIp;
#ifdef DLT_IPV4
  if (dlt == DLT_IPV4 || dlt == DLT_IPV6) return cbpf::LinkLayer::RawIp;
#endif
  return cbpf::LinkLayer::Other;
}

struct PcapCloser {
  void operator()(pcap_t* p) const { pcap_close(p); }
};
struct DumperCloser {
  void operator()(pcap_dumper_t* d) const { pcap_dump_close(d); }
};

int run_filter(const FilterOptions& o) {
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  std::unique_ptr<pcap_t, PcapCloser> in;
  if (!o.in.empty()) {
    in.reset(pcap_open_offline(o.in.c_str(), errbuf));
    if (!in) return fail(fmt::format("{}: {}", o.in, errbuf));
  }
  int dlt = in ? pcap_datalink(in.get()) : DLT_EN10MB;
  if (!o.linktype.empty()) {
    dlt = pcap_datalink_name_to_val(o.linktype.c_str());
    if (dlt < 0) {
      char* end = nullptr;
      const long v = std::strtol(o.linktype.c_str(), &end, 0);
      if (end == nullptr || *end != '\0' || v < 0) return fail(fmt::format("unknown link type '{}'", o.linktype));
      dlt = static_cast<int>(v);
    }
  }

  // ---- the classic program
  std::vector<cbpf::Insn> prog;
  if (!o.program.empty()) {
    auto data = tools::read_input(o.program);
    if (!data.ok()) return tools::report_error(data.error(), "userbpf filter");
    auto parsed = tools::looks_like_text(*data)
                      ? cbpf::parse_text(std::string_view(reinterpret_cast<const char*>(data->data()), data->size()))
                      : cbpf::from_bytes(*data);
    if (!parsed.ok()) return tools::report_error(parsed.error(), tools::display_name(o.program));
    prog = std::move(*parsed);
  } else {
    std::unique_ptr<pcap_t, PcapCloser> dead(pcap_open_dead(dlt, o.snaplen));
    if (!dead) return fail("pcap_open_dead failed");
    bpf_program bp{};
    if (pcap_compile(dead.get(), &bp, o.expr.c_str(), o.no_optimize ? 0 : 1, PCAP_NETMASK_UNKNOWN) != 0)
      return fail(fmt::format("cannot compile '{}' for link type {}: {}", o.expr,
                              pcap_datalink_val_to_name(dlt) ? pcap_datalink_val_to_name(dlt) : "?",
                              pcap_geterr(dead.get())));
    for (u_int i = 0; i < bp.bf_len; ++i)
      prog.push_back(cbpf::Insn{bp.bf_insns[i].code, bp.bf_insns[i].jt, bp.bf_insns[i].jf, bp.bf_insns[i].k});
    pcap_freecode(&bp);
  }
  if (o.dump) std::cout << cbpf::print_tcpdump(prog);

  // libpcap mode: protochain code jumps backwards (pcap_offline_filter runs it; the kernel would not)
  cbpf::CheckOptions copts;
  copts.allow_backward_ja = true;
  auto filter = cbpf::Filter::create(prog, cbpf::Target::Socket, copts);
  if (!filter.ok()) return tools::report_error(filter.error(), "classic program");
  if (o.ebpf) {
    assembly::DisasmOptions dopts;
    dopts.hex_imm = false;
    std::cout << assembly::disassemble(filter->ebpf(), dopts);
  }
  if (!in) {
    if (!o.dump && !o.ebpf) return fail("nothing to do: give -r IN.pcap, -d or --ebpf");
    return tools::kExitOk;
  }

  std::unique_ptr<pcap_dumper_t, DumperCloser> dumper;
  if (!o.out.empty()) {
    dumper.reset(pcap_dump_open(in.get(), o.out.c_str()));
    if (!dumper) return fail(fmt::format("{}: {}", o.out, pcap_geterr(in.get())));
  }
  const cbpf::LinkLayer link = link_layer(pcap_datalink(in.get()));
  std::uint64_t total = 0, kept = 0;
  pcap_pkthdr* hdr = nullptr;
  const u_char* data = nullptr;
  int rc = 0;
  while ((rc = pcap_next_ex(in.get(), &hdr, &data)) == 1) {
    ++total;
    const std::span<const std::uint8_t> pkt(data, hdr->caplen);
    const cbpf::SkbContext ctx = cbpf::make_context(pkt, hdr->len, link);
    if (filter->run(pkt, ctx) == 0) continue;
    ++kept;
    if (dumper) pcap_dump(reinterpret_cast<u_char*>(dumper.get()), hdr, data);
  }
  if (rc == -1) return fail(fmt::format("{}: {}", o.in, pcap_geterr(in.get())));
  if (o.count)
    std::cout << kept << "\n";
  else if (!dumper)
    std::cout << fmt::format("{} of {} packets matched\n", kept, total);
  return tools::kExitOk;
}

}  // namespace

void register_filter_commands(Registry& r) {
  auto o = std::make_shared<FilterOptions>();
  CLI::App& cmd = r.add("filter", "Filter a capture with a tcpdump expression (classic BPF translated to eBPF)",
                        [o] { return run_filter(*o); });
  auto* expr = cmd.add_option("EXPR", o->expr, "pcap-filter expression, e.g. 'tcp port 80' (quote it)");
  auto* prog = cmd.add_option("--program", o->program,
                              "Classic program file instead of EXPR: tcpdump -d/-dd/-ddd text, bpf_asm, or binary "
                              "struct sock_filter")
                   ->option_text("FILE");
  expr->excludes(prog);
  cmd.add_option("-r,--read", o->in, "Input capture (pcap or pcapng)")->option_text("IN.pcap");
  cmd.add_option("-w,--write", o->out, "Write matching packets to this pcap file")->option_text("OUT.pcap");
  cmd.add_flag("-c,--count", o->count, "Print only the number of matching packets");
  cmd.add_flag("-d", o->dump, "Print the classic program (tcpdump -d format)");
  cmd.add_flag("--ebpf", o->ebpf, "Print the translated eBPF program");
  cmd.add_option("--linktype", o->linktype,
                 "Link type to compile for (name like EN10MB, RAW, LINUX_SLL, or DLT number; default: the "
                 "capture's, or EN10MB)")
      ->option_text("NAME");
  cmd.add_option("--snaplen", o->snaplen, "Snapshot length for compiling (default 262144)")->option_text("N");
  cmd.add_flag("-O,--no-optimize", o->no_optimize, "Do not run libpcap's optimizer");
  cmd.footer(
      "Examples:\n"
      "  userbpf filter 'tcp port 80' -r in.pcap -w http.pcap\n"
      "  userbpf filter 'udp and not port 53' -r in.pcapng --count\n"
      "  userbpf filter 'ip6 and tcp[tcpflags] & tcp-syn != 0' -d --ebpf");
}

}  // namespace userbpf::cli
