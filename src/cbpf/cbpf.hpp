// Classic BPF (cBPF): the tcpdump / socket-filter / seccomp instruction set.
//
// Design: like the eBPF side (isa/opcodes.def), every classic instruction the
// kernel accepts is one row of src/cbpf/classic.def, keyed by its 16-bit
// code. decode/check/translate and the text forms (text.cpp) are derived
// from those rows:
//   - lookup(code) finds the row (a constexpr index over the 256 possible
//     code values of valid instructions; anything else is not a row).
//   - check() applies the kernel's bpf_check_classic rules, check_seccomp()
//     seccomp_check_filter's on top; errors name the instruction index.
//   - translate() produces eBPF (isa::Insn) with the kernel's semantics
//     (translate.cpp explains the register and context layout).
//   - text.cpp prints and parses `tcpdump -d` listings, the kernel's bpf_asm
//     syntax and `tcpdump -ddd` / bpf_asm -c decimal forms.
// Execution (running the translated program in the interpreter or the JIT)
// lives in exec.hpp (library userbpf_cbpf_exec), so that this library keeps
// to the dependency edge base <- isa <- cbpf.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "isa/isa.hpp"

namespace userbpf::cbpf {

// One classic instruction, laid out as struct sock_filter / struct bpf_insn.
struct Insn {
  std::uint16_t code = 0;
  std::uint8_t jt = 0;
  std::uint8_t jf = 0;
  std::uint32_t k = 0;
  friend constexpr bool operator==(const Insn&, const Insn&) = default;
};
static_assert(sizeof(Insn) == 8);

// ---------------------------------------------------------------- classic field values
// These are the classic encoding's bit fields (linux/filter.h), not opcodes;
// classic.def composes every code from them.
namespace field {
inline constexpr std::uint16_t kLd = 0x00, kLdx = 0x01, kSt = 0x02, kStx = 0x03, kAlu = 0x04, kJmp = 0x05,
                               kRet = 0x06, kMisc = 0x07;                                   // class (& 0x07)
inline constexpr std::uint16_t kW = 0x00, kH = 0x08, kB = 0x10;                             // size (& 0x18)
inline constexpr std::uint16_t kImm = 0x00, kAbs = 0x20, kInd = 0x40, kMem = 0x60, kLen = 0x80, kMsh = 0xa0;  // mode
inline constexpr std::uint16_t kAdd = 0x00, kSub = 0x10, kMul = 0x20, kDiv = 0x30, kOr = 0x40, kAnd = 0x50,
                               kLsh = 0x60, kRsh = 0x70, kNeg = 0x80, kMod = 0x90, kXor = 0xa0;  // ALU op
inline constexpr std::uint16_t kJa = 0x00, kJeq = 0x10, kJgt = 0x20, kJge = 0x30, kJset = 0x40;  // JMP op
inline constexpr std::uint16_t kK = 0x00, kX = 0x08, kA = 0x10;                             // source / rval
inline constexpr std::uint16_t kTax = 0x00, kTxa = 0x80;                                    // misc op
}  // namespace field

inline constexpr std::size_t kMaxInsns = 4096;  // BPF_MAXINSNS
inline constexpr unsigned kMemWords = 16;       // BPF_MEMWORDS: scratch memory M[0..15]

// Negative offsets of the kernel's socket filters (linux/filter.h).
inline constexpr std::int32_t kSkfAdOff = -0x1000;    // SKF_AD_OFF: ancillary data
inline constexpr std::int32_t kSkfNetOff = -0x100000;  // SKF_NET_OFF: relative to the network header
inline constexpr std::int32_t kSkfLlOff = -0x200000;   // SKF_LL_OFF: relative to the link-layer header

// What an instruction does; also fixes which fields are operands.
enum class Kind : std::uint8_t {
  LdAbs, LdInd, LdLen, LdImm, LdMem,  // A = ...
  LdxImm, LdxMem, LdxLen, LdxMsh,     // X = ...
  St, Stx,                            // M[k] = A / X
  AluK, AluX, Neg,                    // A op= K / X, A = -A
  Ja, JmpK, JmpX,                     // control flow (jumps are forward only)
  RetK, RetA,                         // return
  Tax, Txa,                           // X = A / A = X
};

enum class Op : std::uint8_t {
#define CBPF_OP(name, code, kind, ebpf, inv, mnem, secc) name,
#include "cbpf/classic.def"
#undef CBPF_OP
};

struct OpInfo {
  Op op;
  std::string_view name;      // enumerator name, e.g. "LdHAbs"
  std::uint16_t code;         // classic code
  Kind kind;
  isa::Op ebpf;               // eBPF row of the core operation (Exit: none)
  isa::Op ebpf_inverse;       // negated condition for jumps (Exit: none)
  std::string_view mnemonic;  // tcpdump -d / bpf_asm
  bool seccomp;               // allowed in seccomp filters
};

inline constexpr std::array kOps = {
#define CBPF_OP(name, code, kind, ebpf, inv, mnem, secc)                                                   \
  OpInfo{Op::name, #name, static_cast<std::uint16_t>([] { using namespace field; return code; }()), Kind::kind, \
         isa::Op::ebpf, isa::Op::inv, mnem, secc != 0},
#include "cbpf/classic.def"
#undef CBPF_OP
};
inline constexpr std::size_t kOpCount = kOps.size();

constexpr const OpInfo& info(Op op) { return kOps[static_cast<std::size_t>(op)]; }

// Index: classic code (0..255) -> row + 1 (0 = no row).
constexpr std::array<std::uint8_t, 256> make_code_index() {
  std::array<std::uint8_t, 256> idx{};
  for (std::size_t i = 0; i < kOps.size(); ++i) idx[kOps[i].code] = static_cast<std::uint8_t>(i + 1);
  return idx;
}
inline constexpr std::array<std::uint8_t, 256> kCodeIndex = make_code_index();

// The row of a classic code, or nullptr when the kernel does not know it.
constexpr const OpInfo* lookup(std::uint16_t code) {
  if (code > 0xff || kCodeIndex[code] == 0) return nullptr;
  return &kOps[kCodeIndex[code] - 1u];
}

constexpr bool table_is_consistent() {
  for (std::size_t i = 0; i < kOps.size(); ++i) {
    if (static_cast<std::size_t>(kOps[i].op) != i || kOps[i].code > 0xff) return false;
    for (std::size_t j = 0; j < i; ++j)
      if (kOps[j].code == kOps[i].code) return false;  // one row per code
    const bool jump = kOps[i].kind == Kind::JmpK || kOps[i].kind == Kind::JmpX;
    if (!jump && kOps[i].ebpf_inverse != isa::Op::Exit) return false;
  }
  return true;
}
static_assert(table_is_consistent(), "classic.def: rows inconsistent");
static_assert(kOps.size() == 49, "classic.def: the kernel knows 49 classic codes");

// Accessors on the code fields.
constexpr std::uint16_t size_bytes(const OpInfo& row) {
  switch (row.code & 0x18) {
    case field::kH: return 2;
    case field::kB: return 1;
    default: return 4;
  }
}

// ---------------------------------------------------------------- ancillary loads
// SKF_AD_* offsets (k = SKF_AD_OFF + offset) that the kernel gives socket
// filters; `tcpdump` is libpcap's operand name ("[proto]"), `bpf_asm` the
// kernel's bpf_asm keyword ("#proto").
enum class Anc : std::uint8_t {
  Protocol, PktType, IfIndex, NlAttr, NlAttrNest, Mark, Queue, HaType, RxHash, Cpu, AluXorX,
  VlanTag, VlanTagPresent, PayOffset, Random, VlanTpid,
};
struct AncInfo {
  Anc anc;
  std::int32_t offset;  // SKF_AD_*
  std::string_view tcpdump;
  std::string_view bpf_asm;
};
inline constexpr std::array kAncs = {
    AncInfo{Anc::Protocol, 0, "proto", "proto"},       AncInfo{Anc::PktType, 4, "type", "type"},
    AncInfo{Anc::IfIndex, 8, "ifidx", "ifidx"},        AncInfo{Anc::NlAttr, 12, "nla", "nla"},
    AncInfo{Anc::NlAttrNest, 16, "nlan", "nlan"},      AncInfo{Anc::Mark, 20, "mark", "mark"},
    AncInfo{Anc::Queue, 24, "queue", "queue"},         AncInfo{Anc::HaType, 28, "hatype", "hatype"},
    AncInfo{Anc::RxHash, 32, "rxhash", "rxhash"},      AncInfo{Anc::Cpu, 36, "cpu", "cpu"},
    AncInfo{Anc::AluXorX, 40, "xor_x", "xor_x"},       AncInfo{Anc::VlanTag, 44, "vlan_tci", "vlan_tci"},
    AncInfo{Anc::VlanTagPresent, 48, "vlanp", "vlan_avail"}, AncInfo{Anc::PayOffset, 52, "poff", "poff"},
    AncInfo{Anc::Random, 56, "random", "rand"},        AncInfo{Anc::VlanTpid, 60, "vlan_tpid", "vlan_tpid"},
};
// The ancillary load named by k (an LD ABS operand), or nullptr.
constexpr const AncInfo* ancillary(std::uint32_t k) {
  const auto sk = static_cast<std::int32_t>(k);
  for (const auto& a : kAncs)
    if (sk == kSkfAdOff + a.offset) return &a;
  return nullptr;
}

// ---------------------------------------------------------------- checks
// The kernel's bpf_check_classic: length 1..4096, known codes, jumps forward
// and in range, M[] index < 16, division/modulo by constant 0, shifts by a
// constant >= 32, unknown ancillary offsets, last instruction a return,
// and M[k] written before read on every path (check_load_and_stores).
struct CheckOptions {
  // libpcap mode: allow `ja` backwards (libpcap's protochain code loops;
  // pcap_offline_filter runs it, the kernel rejects it). Runs of such
  // programs get an instruction budget (exec.hpp) so that they end.
  bool allow_backward_ja = false;
  // translate(): hoist the bounds checks of constant-offset packet loads to
  // the head of each straight-line segment (translate.cpp). Exact either
  // way; off by default because it measured slower on the benchmark's mix
  // of short and long frames (docs/cbpf.md).
  bool hoist_checks = false;
};
Status check(std::span<const Insn> prog, const CheckOptions& opts = {});
// True if some `ja` jumps backwards (only valid with allow_backward_ja).
bool has_backward_ja(std::span<const Insn> prog);
// seccomp_check_filter on top of check(): only the allowed codes, LD|W|ABS at
// 4-aligned offsets inside struct seccomp_data (64 bytes), no packet loads.
Status check_seccomp(std::span<const Insn> prog);

// ---------------------------------------------------------------- translation to eBPF
enum class Target : std::uint8_t {
  Socket,   // socket filter / pcap: packet loads via LD_ABS/LD_IND, ancillary from SkbContext
  Seccomp,  // seccomp: LD|W|ABS k reads the u32 at ctx+k (struct seccomp_data), LEN = 64
};

// The context a translated socket filter reads (r1 at entry). Every field is
// a host-order u32; the embedder fills what it knows (exec.hpp's
// make_context does it from the packet). Offsets are part of the translation.
struct SkbContext {
  std::uint32_t len = 0;            // BPF_LEN: packet length on the wire (pcap: hdr.len)
  std::uint32_t protocol = 0;       // SKF_AD_PROTOCOL: ethertype, host order
  std::uint32_t pkt_type = 0;       // SKF_AD_PKTTYPE: PACKET_HOST=0, ...
  std::uint32_t ifindex = 0;        // SKF_AD_IFINDEX
  std::uint32_t mark = 0;           // SKF_AD_MARK
  std::uint32_t queue = 0;          // SKF_AD_QUEUE
  std::uint32_t hatype = 0;         // SKF_AD_HATYPE (ARPHRD_*)
  std::uint32_t rxhash = 0;         // SKF_AD_RXHASH
  std::uint32_t cpu = 0;            // SKF_AD_CPU
  std::uint32_t vlan_tci = 0;       // SKF_AD_VLAN_TAG
  std::uint32_t vlan_present = 0;   // SKF_AD_VLAN_TAG_PRESENT (0/1)
  std::uint32_t pay_offset = 0;     // SKF_AD_PAY_OFFSET: transport payload offset
  std::uint32_t vlan_tpid = 0;      // SKF_AD_VLAN_TPID, host order
  std::uint32_t ll_off = 0;         // packet offset of the link-layer header (SKF_LL_OFF base)
  std::uint32_t net_off = 0;        // packet offset of the network header (SKF_NET_OFF base)
};

// struct seccomp_data (linux/seccomp.h).
struct SeccompData {
  std::int32_t nr = 0;
  std::uint32_t arch = 0;
  std::uint64_t instruction_pointer = 0;
  std::uint64_t args[6] = {};
};
static_assert(sizeof(SeccompData) == 64);

// Helper ids the translation calls (private to translated classic programs;
// exec.cpp registers the functions).
enum class HelperId : std::uint32_t { NlAttr = 1, NlAttrNest = 2, Random = 3 };

// Socket-target programs are entered with r1 = &SkbContext, r2 = the
// packet's first byte and r3 = its captured length (the bytes LD_ABS would
// see); packet_args = false: the program does not read r2/r3.
struct Translation {
  std::vector<isa::Insn> insns;
  std::vector<std::size_t> start;  // start[pc] = index of the first eBPF insn of classic insn pc
  bool packet_args = false;
  // Socket target: the SkbContext fields the program reads, bit i = the u32
  // at offset 4 * i (e.g. bit 0 = len); 0: it never reads r1.
  std::uint32_t ctx_reads = 0;
};
// Bit of a SkbContext field in Translation::ctx_reads.
constexpr std::uint32_t ctx_bit(std::size_t offset) { return 1U << (offset / 4); }
// Checks (check / check_seccomp per target) and translates.
Result<Translation> translate(std::span<const Insn> prog, Target target = Target::Socket,
                              const CheckOptions& opts = {});

// ---------------------------------------------------------------- text forms
// `tcpdump -d`: "(000) ldh      [12]" lines (libpcap's bpf_image format).
std::string print_tcpdump_one(const Insn& insn, std::size_t pc);
std::string print_tcpdump(std::span<const Insn> prog);
// `tcpdump -dd`: "{ 0x28, 0, 0, 0x0000000c }," lines.
std::string print_c_array(std::span<const Insn> prog);
// `tcpdump -ddd`: count, then "code jt jf k" decimal lines.
std::string print_decimal(std::span<const Insn> prog);
// The kernel's bpf_asm syntax, with labels "L<pc>:" on jump targets.
std::string print_bpf_asm(std::span<const Insn> prog);

// Parses any text form, deciding per input: `tcpdump -d` listings (lines
// starting "(NNN)"), `tcpdump -dd` C arrays, `tcpdump -ddd` / bpf_asm -c
// decimal ("N,code jt jf k,..." too), or bpf_asm source. Errors carry line
// and column.
Result<std::vector<Insn>> parse_text(std::string_view text);
// bpf_asm source: ";" and "//" comments to the end of the line, C comments
// "/* ... */" anywhere (as the kernel's bpf_exp.l).
Result<std::vector<Insn>> parse_bpf_asm(std::string_view text);
Result<std::vector<Insn>> parse_tcpdump_listing(std::string_view text);
Result<std::vector<Insn>> parse_decimal(std::string_view text);

// Binary: an array of struct sock_filter (8 bytes each, host order).
Result<std::vector<Insn>> from_bytes(std::span<const std::uint8_t> bytes);
std::vector<std::uint8_t> to_bytes(std::span<const Insn> prog);

// ---------------------------------------------------------------- seccomp return values
inline constexpr std::uint32_t kSeccompRetActionFull = 0xffff0000U;
inline constexpr std::uint32_t kSeccompRetData = 0x0000ffffU;
// "ALLOW", "KILL_PROCESS", "KILL_THREAD", "TRAP", "ERRNO(13)", "TRACE(5)",
// "LOG", "USER_NOTIF"; unknown actions: "KILL_PROCESS (unknown action 0x...)"
// as the kernel treats them.
std::string seccomp_action_name(std::uint32_t ret);

}  // namespace userbpf::cbpf
