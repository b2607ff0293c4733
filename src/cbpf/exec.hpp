// Running classic BPF: check + translate (cbpf.hpp), then execute the eBPF
// on one of the engines of src/interp / src/jit through the shared abi.
//
// Library userbpf_cbpf_exec (cbpf + interp + jit + abi): kept apart from
// userbpf_cbpf so that the classic library stays on base <- isa <- cbpf.
// The engine is chosen per Filter (Engine; the JIT by default). Both engines
// give the same return value for every packet (the tests run both).
//
// A Filter owns its translated program and one abi::Env that it reuses for
// every run (no allocation per packet): a Filter is not thread-safe; use one
// per thread (the translated program itself is immutable).
//
// Direct runs: with the JIT, a program that calls no helper (nla, nlan,
// rand) and has no backward ja (libpcap's loops run with a budget) runs
// through jit::Program::leaf(): one native call per packet, no Env, no
// RunResult (direct()); the translation has no LD_ABS/LD_IND, which leaf()
// would refuse. run_frame() also builds the SkbContext only as far
// as the program reads it (context_need()). Both paths give the same value
// (the tests compare them: set_direct(false) forces the Env path).
//
// Batched runs: with the JIT, a socket filter without ancillary loads,
// negative offsets and backward jumps is also compiled by batch.cpp into
// branch-free native code that filters a whole array of packets in one call
// (run_batch, batched()); packets it cannot decide (an [x + k] reaching the
// context's areas) are rerun on the per-packet path. Same values as
// run_frame for every packet (tests/cbpf/cbpf_batch_test.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "abi/abi.hpp"
#include "base/error.hpp"
#include "cbpf/batch.hpp"
#include "cbpf/cbpf.hpp"
#include "isa/isa.hpp"
#include "jit/jit.hpp"

namespace userbpf::cbpf {

enum class Engine : std::uint8_t { Jit, Interpreter };
std::string_view engine_name(Engine e);

enum class LinkLayer : std::uint8_t { Ethernet, RawIp, Other };
// Fills SkbContext from the packet the way the kernel's skb would look for
// a frame received on a packet socket without VLAN offload: len = wirelen,
// protocol = ethertype (Ethernet) or 0x0800/0x86dd by IP version (raw IP),
// net_off after the Ethernet header (VLAN tags stay in the data),
// pay_offset from a small dissector (Ethernet, 802.1Q, IPv4, IPv6, TCP, UDP,
// ICMP), pkt_type PACKET_HOST, everything else 0.
// payload_offset = false skips the dissector (pay_offset stays 0): for
// filters that do not read it (Filter::reads_payload_offset).
SkbContext make_context(std::span<const std::uint8_t> packet, std::uint32_t wirelen, LinkLayer link,
                        bool payload_offset = true);

// How much of the SkbContext a socket filter reads (Filter::context_need).
enum class ContextNeed : std::uint8_t {
  None,     // nothing: r1 may be anything
  Len,      // only len (BPF_LEN)
  Fields,   // make_context without the payload-offset dissector
  Payload,  // make_context with it ([poff])
};

class Filter {
 public:
  // opts.allow_backward_ja (libpcap mode): programs with backward jumps run
  // with an instruction budget (kLoopBudget); a run that exhausts it returns 0.
  static Result<Filter> create(std::span<const Insn> prog, Target target = Target::Socket,
                               const CheckOptions& opts = {}, Engine engine = Engine::Jit);
  static constexpr std::uint64_t kLoopBudget = 1ULL << 24;
  Filter(Filter&&) noexcept;
  Filter& operator=(Filter&&) noexcept;
  ~Filter();

  // Socket filter / pcap: the return value (number of bytes to keep, 0 =
  // drop). `packet` holds the captured bytes (the loads' bounds), `ctx`
  // the metadata (ctx.len is BPF_LEN; see make_context).
  std::uint32_t run(std::span<const std::uint8_t> packet, const SkbContext& ctx);
  // The same for a captured frame (`wirelen` = its length on the wire):
  // the SkbContext is built (make_context) only as far as the program reads
  // it. The per-packet entry for pcap files and live captures.
  std::uint32_t run_frame(std::span<const std::uint8_t> packet, std::uint32_t wirelen, LinkLayer link) {
    if (leaf_ && need_ == ContextNeed::None) [[likely]]
      return static_cast<std::uint32_t>(leaf_(0, reinterpret_cast<std::uintptr_t>(packet.data()), packet.size()));
    return run_frame_slow(packet, wirelen, link);
  }
  // out[i] = run_frame(frames[i]...) for every frame (out.size() >=
  // frames.size()); returns how many are non-zero (kept). Batched native
  // code where batched(), else one run_frame per packet.
  std::size_t run_batch(std::span<const Frame> frames, std::span<std::uint32_t> out, LinkLayer link);
  // Packets per native batch call (run_batch splits larger arrays).
  static constexpr std::size_t kBatch = 256;
  // Seccomp: the filter's return value (action | data).
  std::uint32_t run_seccomp(const SeccompData& data);

  [[nodiscard]] std::span<const Insn> classic() const;
  [[nodiscard]] std::span<const isa::Insn> ebpf() const;
  [[nodiscard]] const Translation& translation() const;
  [[nodiscard]] Engine engine() const;
  // The JIT's listing of the translated program (jit::Program::disassemble;
  // insn_text names each eBPF instruction); empty with the interpreter.
  [[nodiscard]] std::string native_listing(const std::function<std::string(std::size_t pc)>& insn_text = {}) const;
  // Whether a run reads SkbContext::pay_offset ([poff]); make_context's
  // dissector can be skipped (payload_offset = false) when it does not.
  [[nodiscard]] bool reads_payload_offset() const { return need_ == ContextNeed::Payload; }
  [[nodiscard]] ContextNeed context_need() const { return need_; }
  // Whether runs use the JIT's direct entry (see the top of this file).
  [[nodiscard]] bool direct() const { return static_cast<bool>(leaf_); }
  // Whether run_batch uses batched native code (see the top of this file).
  // By default only programs of at most kBatchPreferred classic
  // instructions do: the batch evaluates every instruction for every
  // packet, and longer programs measured slower batched than per packet
  // (docs/cbpf.md). set_batched(true) uses it for every batchable program.
  [[nodiscard]] bool batched() const { return batch_ != nullptr; }
  [[nodiscard]] bool batchable() const;
  static constexpr std::size_t kBatchPreferred = 30;
  // Why the program is not batched ("" when it is or could be): the
  // compiler's message, e.g. "insn 3: ancillary load: not batched ...".
  [[nodiscard]] std::string batch_note() const;
  // false: every run goes through the Env path (tests, benchmarks); true:
  // the direct entry again where the program is eligible, and batched code
  // where it is preferred (as after create).
  void set_direct(bool on);
  // Batched code for every batchable program (true) or none (false; run_batch
  // then runs per packet).
  void set_batched(bool on);

 private:
  struct Impl;
  explicit Filter(std::unique_ptr<Impl> impl);
  std::uint32_t run_frame_slow(std::span<const std::uint8_t> packet, std::uint32_t wirelen, LinkLayer link);
  std::unique_ptr<Impl> impl_;
  jit::Program::Leaf leaf_;  // set iff direct()
  const BatchCode* batch_ = nullptr;  // set iff batched()
  ContextNeed need_ = ContextNeed::Payload;
};

// The helpers translated programs call (HelperId): nla, nlan, rand.
const abi::HelperTable& helper_table();

}  // namespace userbpf::cbpf
