// Fuzz target: classic BPF. Input: the first byte selects socket/seccomp and
// libpcap mode, then a packet length, the packet, and the rest is an array
// of struct sock_filter. Checks: check/translate never crash and errors name
// an instruction; a translated program passes isa::check_program; it runs in
// the checked interpreter without a memory violation (the translation only
// touches the context, the packet through LD_ABS/LD_IND and its stack) and
// the checked JIT gives the same result; Filter::run agrees with both; the
// text forms round-trip (tcpdump -d, bpf_asm, decimal).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "cbpf/cbpf.hpp"
#include "cbpf/exec.hpp"
#include "fuzz/common/fuzz.hpp"
#include "interp/interp.hpp"
#include "jit/jit.hpp"

using namespace userbpf;

namespace {

bool uses_random(std::span<const cbpf::Insn> prog) {
  for (const auto& in : prog) {
    const auto* row = cbpf::lookup(in.code);
    if (row == nullptr || row->kind != cbpf::Kind::LdAbs) continue;
    const auto* a = cbpf::ancillary(in.k);
    if (a != nullptr && a->anc == cbpf::Anc::Random) return true;
  }
  return false;
}

void round_trip(std::span<const cbpf::Insn> prog) {
  struct Form {
    const char* name;
    std::string text;
  };
  const Form forms[] = {{"tcpdump -d", cbpf::print_tcpdump(prog)},
                        {"bpf_asm", cbpf::print_bpf_asm(prog)},
                        {"tcpdump -ddd", cbpf::print_decimal(prog)},
                        {"tcpdump -dd", cbpf::print_c_array(prog)}};
  for (const auto& f : forms) {
    auto back = cbpf::parse_text(f.text);
    if (!back) fuzz::fail("cbpf", std::string(f.name) + " text does not parse back", back.error().to_string() + "\n" + f.text);
    // Text forms do not carry fields an instruction ignores (jt/jf of a
    // non-jump, k of `ret a`): compare the printed forms.
    if (cbpf::print_tcpdump(*back) != cbpf::print_tcpdump(prog) || cbpf::print_bpf_asm(*back) != cbpf::print_bpf_asm(prog))
      fuzz::fail("cbpf", std::string(f.name) + " text parses to a different program", f.text);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2 || size > 2 + 256 + 8 * 512) return 0;
  fuzz::Input in({data, size});
  const std::uint8_t sel = in.u8();
  const auto packet = in.bytes(in.u8());
  const auto body = in.rest();
  auto prog = cbpf::from_bytes(body);
  if (!prog) return 0;
  const bool seccomp = (sel & 1) != 0;
  cbpf::CheckOptions co;
  co.allow_backward_ja = !seccomp && (sel & 2) != 0;
  const auto target = seccomp ? cbpf::Target::Seccomp : cbpf::Target::Socket;
  auto tr = cbpf::translate(*prog, target, co);
  if (!tr) {
    if (tr.error().message.empty()) fuzz::fail("cbpf", "translate error without a message");
    return 0;
  }
  if (!co.allow_backward_ja) round_trip(*prog);
  if (!isa::check_program(tr->insns, true))
    fuzz::fail("cbpf", "translation fails isa::check_program", fuzz::listing(tr->insns));

  // Run the translation on both engines (checked) with the context and packet.
  cbpf::SkbContext skb = cbpf::make_context(packet, static_cast<std::uint32_t>(packet.size()), cbpf::LinkLayer::Ethernet);
  cbpf::SeccompData sd;
  std::memcpy(&sd, packet.data(), std::min(packet.size(), sizeof(sd)));
  abi::Env env;
  env.helpers = &cbpf::helper_table();
  env.options.checked = true;
  env.options.budget = cbpf::Filter::kLoopBudget;
  const std::uint64_t ctx = seccomp ? reinterpret_cast<std::uint64_t>(&sd) : reinterpret_cast<std::uint64_t>(&skb);
  env.regions.push_back({ctx, seccomp ? sizeof(sd) : sizeof(skb), false, abi::RegionKind::Context});
  if (!seccomp) {
    env.packet = packet.data();
    env.packet_len = packet.size();
    // Direct packet loads of the translation (r2 = packet, r3 = length).
    env.regions.push_back({reinterpret_cast<std::uint64_t>(packet.data()), packet.size(), false,
                           abi::RegionKind::Packet});
  }
  auto ip = interp::Program::create(tr->insns);
  if (!ip) fuzz::fail("cbpf", "interpreter refuses the translation", ip.error().to_string());
  const bool pkt = !seccomp && tr->packet_args;
  const std::uint64_t args[3] = {ctx, pkt ? reinterpret_cast<std::uint64_t>(packet.data()) : 0,
                                 pkt ? static_cast<std::uint64_t>(packet.size()) : 0};
  const abi::RunResult ri = ip->run(env, args);
  if (ri.fault == abi::Fault::MemoryViolation)
    fuzz::fail("cbpf", "translated program makes a memory violation", fuzz::describe(ri) + "\n" + fuzz::listing(tr->insns));
  if (ri.fault != abi::Fault::None && ri.fault != abi::Fault::Budget)
    fuzz::fail("cbpf", "translated program faults", fuzz::describe(ri) + "\n" + fuzz::listing(tr->insns));
  if (uses_random(*prog)) return 0;
  auto jp = jit::Program::compile(tr->insns);
  if (!jp) fuzz::fail("cbpf", "JIT refuses the translation", jp.error().to_string());
  const abi::RunResult rj = jp->run(env, args);
  if (!(rj == ri) || rj.insns != ri.insns)
    fuzz::fail("cbpf", "JIT and interpreter differ on a translation",
               "interp: " + fuzz::describe(ri) + "\njit: " + fuzz::describe(rj) + "\n" + fuzz::listing(tr->insns));
  auto filter = cbpf::Filter::create(*prog, target, co);
  if (!filter) fuzz::fail("cbpf", "Filter::create refuses a program translate() accepted", filter.error().to_string());
  const std::uint32_t fr = seccomp ? filter->run_seccomp(sd) : filter->run(packet, skb);
  const std::uint32_t want = ri.fault == abi::Fault::Budget ? 0u : static_cast<std::uint32_t>(ri.r0);
  if (fr != want)
    fuzz::fail("cbpf", "Filter::run differs from the checked interpreter",
               "filter " + std::to_string(fr) + " vs " + fuzz::describe(ri) + "\n" + cbpf::print_tcpdump(*prog));
  return 0;
}
