// Kernel-verifier differential (see kdiff.hpp). Each program's maps are
// created for its load and closed right after, so a run holds no kernel
// objects between programs.
#include "fuzz/common/kdiff.hpp"

#include <linux/bpf.h>

#include <fmt/format.h>

#include <cerrno>

#include "oracle/oracle.hpp"
#include "spec/spec.hpp"

namespace userbpf::fuzz {
KernelVerdict kernel_verify(const GenProgram& prog, unsigned log_level) {
  KernelVerdict kv;
  const auto& avail = oracle::available();
  if (!avail.ok) {
    kv.reason = avail.reason;
    return kv;
  }
  std::vector<oracle::Fd> fds;
  for (const auto& md : prog.maps) {
    auto fd = oracle::create_map({md.type, md.key_size, md.value_size, md.max_entries, 0});
    if (!fd) {
      kv.reason = fd.error().message;
      return kv;
    }
    fds.push_back(std::move(*fd));
  }
  std::vector<isa::Insn> k = prog.insns;
  oracle::bind_maps(k, fds);
  const auto raw = isa::encode(k);
  auto lr = oracle::load(raw, prog.prog_type, log_level);
  kv.available = true;
  kv.accepted = static_cast<bool>(lr.prog);
  kv.err = kv.accepted ? 0 : lr.err;
  kv.log = std::move(lr.log);
  return kv;
}

GenProgram kdiff_program(std::uint64_t seed, std::size_t index) {
  Rng rng(seed * 0x9e3779b97f4a7c15ULL + index);
  static constexpr std::uint32_t kTypes[] = {BPF_PROG_TYPE_SOCKET_FILTER, BPF_PROG_TYPE_KPROBE,
                                             BPF_PROG_TYPE_RAW_TRACEPOINT};
  GenOptions o;
  o.prog_type = kTypes[index % 3];
  o.fault_percent = 50;
  o.deterministic_helpers = false;
  o.max_statements = 6 + rng.below(26);
  return generate(rng, o);
}

DiffStats run_kdiff(std::uint64_t seed, std::size_t n, std::vector<Disagreement>* out) {
  DiffStats st;
  const auto& avail = oracle::available();
  st.available = avail.ok;
  st.reason = avail.reason;
  if (!avail.ok) return st;
  for (std::size_t i = 0; i < n; ++i) {
    GenProgram prog = kdiff_program(seed, i);
    verifier::Verdict ours = verifier::verify(prog.insns, verifier_config(prog, 1));
    KernelVerdict kv = kernel_verify(prog);
    if (!kv.available) {
      st.available = false;
      st.reason = kv.reason;
      return st;
    }
    ++st.programs;
    if (!prog.fault.empty()) ++st.with_fault;
    if (ours.accepted == kv.accepted) {
      ++st.agree;
      if (ours.accepted) {
        ++st.both_accept;
      } else {
        ++st.both_reject;
        if (ours.err == kv.err) ++st.errno_agree;
      }
      continue;
    }
    if (ours.accepted) ++st.only_userbpf_accepts;
    else ++st.only_kernel_accepts;
    if (out != nullptr) out->push_back({seed, i, std::move(prog), std::move(ours), std::move(kv)});
  }
  return st;
}

std::string disagreement_case(const Disagreement& d) {
  std::string comment = fmt::format(
      "kdiff seed {} program {}: kernel {} (errno {}), userbpf {} (errno {}: {})", d.seed, d.index,
      d.kernel.accepted ? "accepts" : "rejects", d.kernel.err, d.ours.accepted ? "accepts" : "rejects", d.ours.err,
      d.ours.message);
  std::string text = to_case_text(d.prog, fmt::format("kdiff_{}_{}", d.seed, d.index), comment);
  // the kernel's verdict is the expectation
  const std::string expect =
      d.kernel.accepted ? "expect: accept\n"
                        : fmt::format("expect: reject {}\n", d.kernel.err == EACCES ? "EACCES"
                                                             : d.kernel.err == E2BIG ? "E2BIG"
                                                                                     : "EINVAL");
  const auto pos = text.find("---\n");
  text.insert(pos, expect);
  // the kernel's error line, as a comment
  std::string last;
  std::size_t b = 0;
  while (b < d.kernel.log.size()) {
    const auto e = d.kernel.log.find('\n', b);
    const std::string line = d.kernel.log.substr(b, e == std::string::npos ? std::string::npos : e - b);
    if (!line.empty() && line.rfind("processed ", 0) != 0 && line.rfind("verification time", 0) != 0 &&
        line.rfind("stack depth", 0) != 0)
      last = line;
    if (e == std::string::npos) break;
    b = e + 1;
  }
  if (!d.kernel.accepted) text.insert(0, fmt::format("# kernel: {}\n", last));
  return text;
}

}  // namespace userbpf::fuzz
