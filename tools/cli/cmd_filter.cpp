// Command group "filter": `userbpf filter EXPR -r IN.pcap [-w OUT.pcap]`
// compiles a tcpdump expression with libpcap (pcap_compile, link type from
// the capture or --linktype), checks and translates the classic program to
// eBPF (src/cbpf) and runs it per packet; matching packets are written to
// OUT (pcap) and counted. The kept set is the one pcap_offline_filter keeps
// (tests/cbpf compares them over a corpus of expressions).
//
// -d prints the classic program as `tcpdump -d` does, --ebpf the translated
// eBPF (kernel syntax), --jit its native code. Packets are read in batches
// (hooks::PacketBatch) and run through hooks::run_classic_batch: batched
// branch-free native code or the JIT's direct entry where the filter allows it. --program FILE takes a classic program (any text
// form of src/cbpf, or binary struct sock_filter) instead of EXPR.
// Packets come from src/hooks (open_file: pcap and pcapng) and go out
// through hooks::PcapWriter; the filter runs in the JIT (--interpret: the
// interpreter).
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "asm/asm.hpp"
#include "cbpf/cbpf.hpp"
#include "cbpf/exec.hpp"
#include "cli/registry.hpp"
#include "common/tool_io.hpp"
#include "hooks/classic.hpp"
#include "hooks/packet_io.hpp"

namespace userbpf::cli {
namespace {

struct FilterOptions {
  std::string expr;
  std::string program;
  std::string in;
  std::string out;
  std::string linktype;
  std::uint32_t snaplen = 262144;
  bool count = false;
  bool dump = false;
  bool ebpf = false;
  bool jit = false;
  bool no_optimize = false;
  bool interpret = false;
};

int fail(std::string_view what) {
  std::cerr << "userbpf filter: error: " << what << "\n";
  return tools::kExitError;
}

// The classic program: --program FILE (any text form, or binary struct
// sock_filter) or EXPR compiled by libpcap for `linktype`.
Result<std::vector<cbpf::Insn>> load_classic(const std::string& program, const std::string& expr, int linktype,
                                             std::uint32_t snaplen, bool optimize) {
  if (program.empty()) return hooks::compile_expression(expr, {linktype, snaplen, optimize});
  auto data = tools::read_input(program);
  if (!data.ok()) return data.error();
  auto parsed = tools::looks_like_text(*data)
                    ? cbpf::parse_text(std::string_view(reinterpret_cast<const char*>(data->data()), data->size()))
                    : cbpf::from_bytes(*data);
  return parsed;
}

int run_filter(const FilterOptions& o) {
  std::unique_ptr<hooks::PacketSource> in;
  if (!o.in.empty()) {
    auto src = hooks::open_file(o.in);
    if (!src.ok()) return fail(src.error().message);
    in = std::move(*src);
  }
  int dlt = in ? in->linktype() : hooks::kLinkEthernet;
  if (!o.linktype.empty()) {
    auto v = hooks::linktype_from_name(o.linktype);
    if (!v.ok()) return fail(v.error().message);
    dlt = *v;
  }

  auto prog = load_classic(o.program, o.expr, dlt, o.snaplen, !o.no_optimize);
  if (!prog.ok())
    return o.program.empty() ? fail(prog.error().message)
                             : tools::report_error(prog.error(), tools::display_name(o.program));
  if (o.dump) std::cout << cbpf::print_tcpdump(*prog);

  // libpcap mode: protochain code jumps backwards (pcap_offline_filter runs it; the kernel would not)
  cbpf::CheckOptions copts;
  copts.allow_backward_ja = true;
  auto filter = cbpf::Filter::create(*prog, cbpf::Target::Socket, copts,
                                     o.interpret ? cbpf::Engine::Interpreter : cbpf::Engine::Jit);
  if (!filter.ok()) return tools::report_error(filter.error(), "classic program");
  if (o.ebpf) {
    assembly::DisasmOptions dopts;
    dopts.hex_imm = false;
    std::cout << assembly::disassemble(filter->ebpf(), dopts);
  }
  if (o.jit) {
    const auto insns = filter->ebpf();
    std::cout << (filter->engine() == cbpf::Engine::Jit ? "" : "(no native code: --interpret)\n")
              << filter->native_listing([&](std::size_t pc) { return assembly::disassemble_one(insns[pc], pc); });
    std::cout << fmt::format("; direct entry: {}\n", filter->direct() ? "yes" : "no (helper call or loop)");
    std::cout << fmt::format("; batched: {}\n", filter->batched()     ? "yes (branch-free, whole batches per call)"
                                                 : filter->batchable() ? "no (longer than the batch preference; per packet)"
                                                                       : "no (" + filter->batch_note() + ")");
  }
  if (!in) {
    if (!o.dump && !o.ebpf && !o.jit) return fail("nothing to do: give -r IN.pcap, -d, --ebpf or --jit");
    return tools::kExitOk;
  }

  std::optional<hooks::PcapWriter> out;
  if (!o.out.empty()) {
    auto w = hooks::PcapWriter::open(o.out, in->linktype(), in->snaplen());
    if (!w.ok()) return fail(w.error().message);
    out.emplace(std::move(*w));
  }
  const cbpf::LinkLayer link = hooks::link_layer(in->linktype());
  std::uint64_t total = 0, kept = 0;
  hooks::PacketBatch batch;
  std::vector<std::uint32_t> verdicts(cbpf::Filter::kBatch);
  for (;;) {
    auto n = batch.fill(*in);
    if (!n.ok()) return fail(n.error().message);
    if (*n == 0) break;
    total += *n;
    kept += hooks::run_classic_batch(*filter, batch, verdicts, link);
    if (out)
      for (std::size_t i = 0; i < *n; ++i)
        if (verdicts[i] != 0) out->write(batch.packet(i));
  }
  if (o.count)
    std::cout << kept << "\n";
  else if (!out)
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
  cmd.add_flag("--jit", o->jit, "Print the JIT's x86-64 code for the translated program");
  cmd.add_option("--linktype", o->linktype,
                 "Link type to compile for (name like EN10MB, RAW, LINUX_SLL, or DLT number; default: the "
                 "capture's, or EN10MB)")
      ->option_text("NAME");
  cmd.add_option("--snaplen", o->snaplen, "Snapshot length for compiling (default 262144)")->option_text("N");
  cmd.add_flag("-O,--no-optimize", o->no_optimize, "Do not run libpcap's optimizer");
  cmd.add_flag("--interpret", o->interpret, "Run in the interpreter instead of the JIT");
  cmd.footer(
      "Examples:\n"
      "  userbpf filter 'tcp port 80' -r in.pcap -w http.pcap\n"
      "  userbpf filter 'udp and not port 53' -r in.pcapng --count\n"
      "  userbpf filter 'ip6 and tcp[tcpflags] & tcp-syn != 0' -d --ebpf");
}

}  // namespace userbpf::cli
