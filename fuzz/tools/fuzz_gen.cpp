// userbpf-fuzz-gen: companion of the fuzz targets.
//   userbpf-fuzz-gen seeds DIR            write seed inputs for every target into DIR/<target>/
//   userbpf-fuzz-gen kdiff N [SEED] [DIR] compare N generated programs with the kernel's
//                                         verifier; print the agreement rate; write each
//                                         disagreement as a verifier case into DIR
//   userbpf-fuzz-gen show SEED INDEX      print program INDEX of a kdiff run with SEED
//                                         and both verdicts
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
#include "fuzz/gen/progen.hpp"

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

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "seeds" && argc == 3) return seeds(argv[2]);
  if (cmd == "kdiff" && argc >= 3)
    return kdiff(std::strtoull(argv[2], nullptr, 0), argc > 3 ? std::strtoull(argv[3], nullptr, 0) : 1,
                 argc > 4 ? argv[4] : nullptr);
  if (cmd == "show" && argc == 4) return show(std::strtoull(argv[2], nullptr, 0), std::strtoull(argv[3], nullptr, 0));
  std::fprintf(stderr,
               "usage: userbpf-fuzz-gen seeds DIR | kdiff N [SEED] [OUT_DIR] | show SEED INDEX\n");
  return 64;
}
