// Command group "seccomp": `userbpf seccomp check FILTER --syscall NAME|NR
// [--arch ARCH] [--args a,b,...] [--ip N]` answers what a seccomp policy
// does to one system call: it builds struct seccomp_data (arch from
// libseccomp's names, syscall numbers resolved for that arch by
// libseccomp), runs the classic filter translated to eBPF (src/cbpf, the
// kernel's seccomp checks applied first) and prints the action:
// ALLOW, KILL_PROCESS, KILL_THREAD, TRAP, ERRNO(n), TRACE(n), LOG, USER_NOTIF.
//
// FILTER: binary struct sock_filter array (what seccomp_export_bpf writes,
// or what a program passes to prctl/seccomp), or any text form of src/cbpf.
// `userbpf seccomp dump FILTER` prints it (tcpdump -d style, or --bpf-asm).
#include <seccomp.h>

#include <fmt/format.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cbpf/cbpf.hpp"
#include "cbpf/exec.hpp"
#include "cli/registry.hpp"
#include "common/tool_io.hpp"

namespace userbpf::cli {
namespace {

struct SeccompOptions {
  std::string filter;
  std::string syscall;
  std::string arch;
  std::vector<std::string> args;
  std::string ip;
  bool raw = false;
  bool bpf_asm = false;
};

int fail(std::string_view what) {
  std::cerr << "userbpf seccomp: error: " << what << "\n";
  return tools::kExitError;
}

bool parse_u64(const std::string& s, std::uint64_t& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  if (s[0] == '-') {
    const long long v = std::strtoll(s.c_str(), &end, 0);
    out = static_cast<std::uint64_t>(v);
  } else {
    out = std::strtoull(s.c_str(), &end, 0);
  }
  return errno == 0 && end != nullptr && *end == '\0';
}

Result<std::vector<cbpf::Insn>> load_filter(const std::string& path) {
  auto data = tools::read_input(path);
  if (!data.ok()) return data.error();
  if (!data->empty() && tools::looks_like_text(*data))
    return cbpf::parse_text(std::string_view(reinterpret_cast<const char*>(data->data()), data->size()));
  return cbpf::from_bytes(*data);
}

int run_check(const SeccompOptions& o) {
  auto prog = load_filter(o.filter);
  if (!prog.ok()) return tools::report_error(prog.error(), tools::display_name(o.filter));

  std::uint32_t arch = seccomp_arch_native();
  if (!o.arch.empty()) {
    arch = seccomp_arch_resolve_name(o.arch.c_str());
    if (arch == 0) {
      std::uint64_t v = 0;
      if (!parse_u64(o.arch, v)) return fail(fmt::format("unknown architecture '{}' (libseccomp names: x86_64, x86, "
                                                         "x32, aarch64, arm, riscv64, ...; or an AUDIT_ARCH number)",
                                                         o.arch));
      arch = static_cast<std::uint32_t>(v);
    }
  }
  cbpf::SeccompData sd;
  sd.arch = arch;
  std::uint64_t nr = 0;
  if (parse_u64(o.syscall, nr)) {
    sd.nr = static_cast<std::int32_t>(nr);
  } else {
    const int n = seccomp_syscall_resolve_name_arch(arch, o.syscall.c_str());
    if (n == __NR_SCMP_ERROR) return fail(fmt::format("unknown system call '{}' for this architecture", o.syscall));
    sd.nr = n;
  }
  if (o.args.size() > 6) return fail("at most 6 arguments (--args a,b,c,d,e,f)");
  for (std::size_t i = 0; i < o.args.size(); ++i)
    if (!parse_u64(o.args[i], sd.args[i])) return fail(fmt::format("argument {} '{}' is not a number", i, o.args[i]));
  if (!o.ip.empty() && !parse_u64(o.ip, sd.instruction_pointer))
    return fail(fmt::format("--ip '{}' is not a number", o.ip));

  auto filter = cbpf::Filter::create(*prog, cbpf::Target::Seccomp);
  if (!filter.ok()) return tools::report_error(filter.error(), tools::display_name(o.filter));
  const std::uint32_t ret = filter->run_seccomp(sd);
  if (o.raw)
    std::cout << fmt::format("{} ({:#010x})\n", cbpf::seccomp_action_name(ret), ret);
  else
    std::cout << cbpf::seccomp_action_name(ret) << "\n";
  return tools::kExitOk;
}

int run_dump(const SeccompOptions& o) {
  auto prog = load_filter(o.filter);
  if (!prog.ok()) return tools::report_error(prog.error(), tools::display_name(o.filter));
  std::cout << (o.bpf_asm ? cbpf::print_bpf_asm(*prog) : cbpf::print_tcpdump(*prog));
  if (auto st = cbpf::check_seccomp(*prog); !st.ok()) return tools::report_error(st.error(), tools::display_name(o.filter));
  return tools::kExitOk;
}

}  // namespace

void register_seccomp_commands(Registry& r) {
  auto o = std::make_shared<SeccompOptions>();
  CLI::App& group = r.group("seccomp", "Seccomp filters: what a policy does to a system call");
  CLI::App& check = r.add(group, "check", "Run a seccomp filter for one system call and print the action",
                          [o] { return run_check(*o); });
  check.add_option("FILTER", o->filter, "Filter: binary struct sock_filter array (seccomp_export_bpf) or text")
      ->required();
  check.add_option("--syscall", o->syscall, "System call name (resolved for --arch) or number")
      ->required()
      ->option_text("NAME|NR");
  check.add_option("--arch", o->arch, "Architecture (libseccomp name, e.g. x86_64, aarch64; default: native)")
      ->option_text("ARCH");
  check.add_option("--args", o->args, "Up to six system call arguments")->delimiter(',')->option_text("a,b,...");
  check.add_option("--ip", o->ip, "Instruction pointer (seccomp_data.instruction_pointer)")->option_text("N");
  check.add_flag("--raw", o->raw, "Also print the filter's raw return value");
  check.footer(
      "Example:\n"
      "  userbpf seccomp check policy.bpf --syscall openat --args 0,0x1000,0\n"
      "Output: ALLOW, KILL_PROCESS, KILL_THREAD, TRAP, ERRNO(n), TRACE(n), LOG or USER_NOTIF.");
  CLI::App& dump = r.add(group, "dump", "Print a seccomp filter (tcpdump -d style) and check it",
                         [o] { return run_dump(*o); });
  dump.add_option("FILTER", o->filter, "Filter file")->required();
  dump.add_flag("--bpf-asm", o->bpf_asm, "Print in the kernel's bpf_asm syntax");
}

}  // namespace userbpf::cli
