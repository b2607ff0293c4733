// userbpf-fuzz-gen: companion of the fuzz targets.
//   userbpf-fuzz-gen seeds DIR            write seed inputs for every target into DIR/<target>/
//   userbpf-fuzz-gen kdiff N [SEED] [DIR] compare N generated programs with the kernel's
//                                         verifier; print the agreement rate; write each
//                                         disagreement as a verifier case into DIR
//   userbpf-fuzz-gen show SEED INDEX      print program INDEX of a kdiff run with SEED
//                                         and both verdicts
//   userbpf-fuzz-gen xdiff N [SEED] [DIR] run N generated programs in the kernel
//                                         (BPF_PROG_TEST_RUN) and in userbpf's runtime;
//                                         print the agreement; write each difference
//                                         as a case into DIR
//   userbpf-fuzz-gen xshow SEED INDEX     print program INDEX of an xdiff run and what
//                                         every side observed
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "asm/asm.hpp"
#include "cbpf/cbpf.hpp"
#include "fuzz/common/fuzz.hpp"
#include "fuzz/common/kdiff.hpp"
#include "fuzz/common/xdiff.hpp"
#include "fuzz/gen/progen.hpp"
#include "oracle/oracle.hpp"

using namespace userbpf;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& p, const std::vector<std::uint8_t>& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                           static_cast<std::streamsize>(bytes.size()));
}
void write(const fs::path& p, const std::string& s) { write(p, std::vector<std::uint8_t>(s.begin(), s.end())); }

int seeds(const fs::path& dir) {
  for (std::size_t i = 0; i < 16; ++i) {
    const fuzz::GenProgram prog = fuzz::kdiff_program(7, i);
    const auto bytes = isa::encode_bytes(prog.insns);
    write(dir / "isa_asm" / fmt::format("gen{}", i), bytes);
    std::vector<std::uint8_t> v = {static_cast<std::uint8_t>(i % 3 == 0 ? 0 : i % 3 == 1 ? 1 : 8), 0};
    v.insert(v.end(), bytes.begin(), bytes.end());
    write(dir / "verifier" / fmt::format("gen{}", i), v);
    assembly::DisasmOptions d;
    d.dialect = i % 2 == 0 ? assembly::Dialect::Kernel : assembly::Dialect::Ubpf;
    write(dir / "asm_text" / fmt::format("gen{}", i), assembly::disassemble(prog.insns, d));
    std::vector<std::uint8_t> e = {static_cast<std::uint8_t>(i)};
    for (std::size_t k = 0; k < 16 + 8 * i; ++k) e.push_back(static_cast<std::uint8_t>(k * 37 + i));
    write(dir / "exec" / fmt::format("gen{}", i), e);
  }
  // classic programs from their text forms
  const char* classic[] = {
      "ldh [12]\njeq #0x800, L1, L2\nL1: ldb [23]\njeq #6, L3, L2\nL3: ret #65535\nL2: ret #0\n",
      "ld #len\nst M[0]\nldx M[0]\ntxa\nadd x\nret a\n",
      "ldxb 4*([14]&0xf)\nldh [x+16]\njeq #80, L1, L2\nL1: ret #-1\nL2: ret #0\n",
      "ld #proto\njset #1, L1, L2\nL1: ld #rxhash\nret a\nL2: ret #1\n",
      "ld [0]\njeq #59, L1, L2\nL1: ret #0x7fff0000\nL2: ret #0x50001\n",
  };
  for (std::size_t i = 0; i < std::size(classic); ++i) {
    auto prog = cbpf::parse_bpf_asm(classic[i]);
    if (!prog) {
      std::fprintf(stderr, "seed %zu: %s\n", i, prog.error().to_string().c_str());
      return 1;
    }
    std::vector<std::uint8_t> v = {static_cast<std::uint8_t>(i == 4 ? 1 : 0), 40};
    for (int k = 0; k < 40; ++k) v.push_back(static_cast<std::uint8_t>(k == 12 ? 8 : k == 23 ? 6 : k));
    const auto b = cbpf::to_bytes(*prog);
    v.insert(v.end(), b.begin(), b.end());
    write(dir / "cbpf" / fmt::format("seed{}", i), v);
  }
  const char* exprs[] = {"tcp port 80", "ip and udp and not port 53", "ether[0] & 1 = 0",
                         "vlan and host 10.0.0.1", "icmp or ip6", "tcp[tcpflags] & tcp-syn != 0",
                         "len > 64 and ip[2:2] < 1500", "portrange 1000-2000"};
  for (std::size_t i = 0; i < std::size(exprs); ++i)
    write(dir / "filter" / fmt::format("seed{}", i), std::string(1, static_cast<char>(i % 4)) + exprs[i]);
  std::printf("seeds written to %s\n", dir.c_str());
  return 0;
}

int kdiff(std::size_t n, std::uint64_t seed, const char* out_dir) {
  std::vector<fuzz::Disagreement> dis;
  const fuzz::DiffStats st = fuzz::run_kdiff(seed, n, &dis);
  if (!st.available) {
    std::printf("kernel verifier unavailable: %s\n", st.reason.c_str());
    return 2;
  }
  std::printf("programs %zu (with a deliberate fault: %zu)\n", st.programs, st.with_fault);
  std::printf("agree %zu (%.2f%%): both accept %zu, both reject %zu (same errno %zu)\n", st.agree,
              st.programs == 0 ? 0.0 : 100.0 * static_cast<double>(st.agree) / static_cast<double>(st.programs),
              st.both_accept, st.both_reject, st.errno_agree);
  std::printf("disagree %zu: only userbpf accepts %zu, only the kernel accepts %zu\n", dis.size(),
              st.only_userbpf_accepts, st.only_kernel_accepts);
  for (const auto& d : dis) {
    std::printf("  seed %llu program %zu: kernel %s (%d), userbpf %s (%d: %s)%s%s\n",
                static_cast<unsigned long long>(d.seed), d.index, d.kernel.accepted ? "accepts" : "rejects",
                d.kernel.err, d.ours.accepted ? "accepts" : "rejects", d.ours.err, d.ours.message.c_str(),
                d.prog.fault.empty() ? "" : ", fault: ", d.prog.fault.c_str());
    if (out_dir != nullptr) write(fs::path(out_dir) / fmt::format("kdiff_{}_{}.txt", d.seed, d.index), fuzz::disagreement_case(d));
  }
  return 0;
}

int show(std::uint64_t seed, std::size_t index) {
  const fuzz::GenProgram prog = fuzz::kdiff_program(seed, index);
  std::printf("%s", fuzz::to_case_text(prog, fmt::format("kdiff_{}_{}", seed, index), "generated").c_str());
  const auto ours = verifier::verify(prog.insns, fuzz::verifier_config(prog, 1));
  std::printf("---- userbpf: %s (errno %d)\n%s", ours.accepted ? "accept" : "reject", ours.err, ours.log.c_str());
  const auto kv = fuzz::kernel_verify(prog, 1);
  if (kv.available) std::printf("---- kernel: %s (errno %d)\n%s", kv.accepted ? "accept" : "reject", kv.err, kv.log.c_str());
  else std::printf("---- kernel unavailable: %s\n", kv.reason.c_str());
  return 0;
}

int xdiff(std::size_t n, std::uint64_t seed, const char* out_dir) {
  std::vector<fuzz::ExecDisagreement> dis;
  const fuzz::ExecDiffStats st = fuzz::run_xdiff(seed, n, &dis);
  if (!st.available) {
    std::printf("kernel unavailable: %s\n", st.reason.c_str());
    return 2;
  }
  std::printf("programs %zu: both verifiers accept %zu (socket_filter %zu, xdp %zu), both reject %zu, "
              "verdicts differ %zu\n",
              st.programs, st.both_loaded, st.socket_filter, st.xdp, st.neither_loaded, st.verdict_differs);
  std::printf("execution agrees %zu of %zu (%.2f%%); differs %zu\n", st.agree, st.both_loaded,
              st.both_loaded == 0 ? 0.0 : 100.0 * static_cast<double>(st.agree) / static_cast<double>(st.both_loaded),
              dis.size());
  for (const auto& d : dis) {
    std::printf("  seed %llu program %zu:\n%s", static_cast<unsigned long long>(d.seed), d.index, d.what.c_str());
    if (out_dir != nullptr)
      write(fs::path(out_dir) / fmt::format("xdiff_{}_{}.txt", d.seed, d.index), fuzz::exec_disagreement_case(d));
  }
  return dis.empty() ? 0 : 1;
}

int xshow(std::uint64_t seed, std::size_t index) {
  const fuzz::GenProgram prog = fuzz::xdiff_program(seed, index);
  std::printf("%s", fuzz::to_case_text(prog, fmt::format("xdiff_{}_{}", seed, index), "generated").c_str());
  const auto packet = fuzz::xdiff_packet();
  const fuzz::OnCpu0 pin;
  auto show_side = [&](fuzz::Backend& b) {
    const fuzz::Observation o = fuzz::observe(b, prog, packet);
    std::printf("---- %s: ", b.name());
    if (!o.setup_error.empty()) std::printf("%s\n", o.setup_error.c_str());
    else if (!o.loaded) std::printf("PROG_LOAD: errno %d\n%s", o.load_err, o.log.c_str());
    else if (o.run_err != 0) std::printf("PROG_TEST_RUN: errno %d\n", o.run_err);
    else {
      std::printf("retval %#x, %zu bytes out\n", o.retval, o.data_out.size());
      for (std::size_t m = 0; m < o.maps.size(); ++m) {
        std::printf("  map %zu:", m);
        for (const auto& [k, v] : o.maps[m]) {
          std::printf(" ");
          for (auto c : k) std::printf("%02x", c);
          std::printf(":");
          for (auto c : v) std::printf("%02x", c);
        }
        std::printf("\n");
      }
    }
  };
  if (oracle::available().ok) {
    auto k = fuzz::kernel_backend();
    show_side(*k);
  } else {
    std::printf("---- kernel unavailable: %s\n", oracle::available().reason.c_str());
  }
  for (auto [jit, verify] : {std::pair{true, true}, std::pair{false, true}, std::pair{false, false}}) {
    auto b = fuzz::runtime_backend(jit, verify);
    show_side(*b);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "seeds" && argc == 3) return seeds(argv[2]);
  if (cmd == "kdiff" && argc >= 3)
    return kdiff(std::strtoull(argv[2], nullptr, 0), argc > 3 ? std::strtoull(argv[3], nullptr, 0) : 1,
                 argc > 4 ? argv[4] : nullptr);
  if (cmd == "xdiff" && argc >= 3)
    return xdiff(std::strtoull(argv[2], nullptr, 0), argc > 3 ? std::strtoull(argv[3], nullptr, 0) : 1,
                 argc > 4 ? argv[4] : nullptr);
  if (cmd == "xshow" && argc == 4) return xshow(std::strtoull(argv[2], nullptr, 0), std::strtoull(argv[3], nullptr, 0));
  if (cmd == "show" && argc == 4) return show(std::strtoull(argv[2], nullptr, 0), std::strtoull(argv[3], nullptr, 0));
  std::fprintf(stderr,
               "usage: userbpf-fuzz-gen seeds DIR | kdiff N [SEED] [OUT_DIR] | show SEED INDEX | xdiff N [SEED] [OUT_DIR] | "
               "xshow SEED INDEX\n");
  return 64;
}
