// Execution of translated classic programs; see exec.hpp.
//
// How it works: Filter::create checks and translates, then loads the eBPF
// into ExecEngine (the interpreter today: the JIT plugs in by changing the
// alias and load_engine below). run() points the reused Env at the packet
// and runs with r1 = &ctx; the classic return value is r0's low 32 bits.
// A run that faults (it cannot, for a checked translation, unless a helper
// is missing) returns 0: drop, as the kernel does for a failed load.
//
// The helpers follow the kernel's semantics: nla / nlan search netlink
// attributes in the packet (__skb_get_nlattr / __skb_get_nlattr_nest facts:
// A = start offset, X = attribute type, result = offset of the attribute or
// 0), rand returns a pseudo-random u32.
#include "cbpf/exec.hpp"

#include <random>
#include <vector>

#include "interp/interp.hpp"

namespace userbpf::cbpf {
namespace {

// ---- the engine: the one line to change for the JIT. With the JIT:
//   using ExecEngine = jit::Program;  and load_engine calls
//   ExecEngine::compile(insns, jit::Options{.helpers = &helper_table()})
// (plus userbpf_jit in src/cbpf/CMakeLists.txt). Tried: every cbpf test
// passes on the JIT.
using ExecEngine = interp::Program;
Result<ExecEngine> load_engine(std::span<const isa::Insn> insns) { return ExecEngine::create(insns); }

constexpr std::uint32_t kNlaHdrLen = 4;
constexpr std::uint16_t kNlaTypeMask = 0x3fff;  // ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER)

std::uint16_t rd16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] | (p[1] << 8)); }  // host (LE)

// nla_find over [start, start + len) of the packet: offset of the attribute or 0.
std::uint64_t nla_find(const std::uint8_t* pkt, std::uint64_t start, std::uint64_t len, std::uint32_t type) {
  std::uint64_t off = start;
  std::uint64_t rem = len;
  while (rem >= kNlaHdrLen) {
    const std::uint16_t nla_len = rd16(pkt + off);
    if (nla_len < kNlaHdrLen || nla_len > rem) break;
    if ((rd16(pkt + off + 2) & kNlaTypeMask) == type) return off;
    const std::uint64_t total = (nla_len + 3U) & ~3ULL;
    if (total >= rem) break;
    rem -= total;
    off += total;
  }
  return 0;
}

std::uint64_t helper_nlattr(abi::Env& env, std::uint64_t, std::uint64_t a, std::uint64_t x, std::uint64_t,
                            std::uint64_t) {
  const std::uint64_t len = env.packet_len;
  a = static_cast<std::uint32_t>(a);
  if (env.packet == nullptr || len < kNlaHdrLen || a > len - kNlaHdrLen) return 0;
  return nla_find(env.packet, a, len - a, static_cast<std::uint32_t>(x));
}

std::uint64_t helper_nlattr_nest(abi::Env& env, std::uint64_t, std::uint64_t a, std::uint64_t x, std::uint64_t,
                                 std::uint64_t) {
  const std::uint64_t len = env.packet_len;
  a = static_cast<std::uint32_t>(a);
  if (env.packet == nullptr || len < kNlaHdrLen || a > len - kNlaHdrLen) return 0;
  const std::uint16_t nla_len = rd16(env.packet + a);
  if (nla_len > len - a || nla_len < kNlaHdrLen) return 0;
  return nla_find(env.packet, a + kNlaHdrLen, nla_len - kNlaHdrLen, static_cast<std::uint32_t>(x));
}

std::uint64_t helper_random(abi::Env&, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t) {
  thread_local std::mt19937 rng{std::random_device{}()};
  return static_cast<std::uint32_t>(rng());
}

}  // namespace

const abi::HelperTable& helper_table() {
  static const abi::HelperTable table = [] {
    abi::HelperTable t;
    t.set(static_cast<std::uint32_t>(HelperId::NlAttr), "skb_get_nlattr", helper_nlattr);
    t.set(static_cast<std::uint32_t>(HelperId::NlAttrNest), "skb_get_nlattr_nest", helper_nlattr_nest);
    t.set(static_cast<std::uint32_t>(HelperId::Random), "user_rnd_u32", helper_random);
    return t;
  }();
  return table;
}

struct Filter::Impl {
  std::vector<Insn> classic;
  Translation translation;
  ExecEngine engine;
  abi::Env env;
};

Filter::Filter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Filter::Filter(Filter&&) noexcept = default;
Filter& Filter::operator=(Filter&&) noexcept = default;
Filter::~Filter() = default;

Result<Filter> Filter::create(std::span<const Insn> prog, Target target, const CheckOptions& opts) {
  auto tr = translate(prog, target, opts);
  if (!tr.ok()) return tr.error();
  auto engine = load_engine(tr->insns);
  if (!engine.ok()) return engine.error();
  auto impl = std::unique_ptr<Impl>(
      new Impl{std::vector<Insn>(prog.begin(), prog.end()), std::move(*tr), std::move(*engine), abi::Env{}});
  impl->env.helpers = &helper_table();
  if (has_backward_ja(prog)) impl->env.options.budget = kLoopBudget;
  return Filter(std::move(impl));
}

std::uint32_t Filter::run(std::span<const std::uint8_t> packet, const SkbContext& ctx) {
  abi::Env& env = impl_->env;
  env.packet = packet.data();
  env.packet_len = packet.size();
  const std::uint64_t arg = reinterpret_cast<std::uint64_t>(&ctx);
  const abi::RunResult r = impl_->engine.run(env, std::span<const std::uint64_t>(&arg, 1));
  return r.ok() ? static_cast<std::uint32_t>(r.r0) : 0;
}

std::uint32_t Filter::run_seccomp(const SeccompData& data) {
  abi::Env& env = impl_->env;
  env.packet = nullptr;
  env.packet_len = 0;
  const std::uint64_t arg = reinterpret_cast<std::uint64_t>(&data);
  const abi::RunResult r = impl_->engine.run(env, std::span<const std::uint64_t>(&arg, 1));
  return r.ok() ? static_cast<std::uint32_t>(r.r0) : 0;
}

std::span<const Insn> Filter::classic() const { return impl_->classic; }
std::span<const isa::Insn> Filter::ebpf() const { return impl_->translation.insns; }
const Translation& Filter::translation() const { return impl_->translation; }

SkbContext make_context(std::span<const std::uint8_t> p, std::uint32_t wirelen, LinkLayer link) {
  SkbContext c;
  c.len = wirelen;
  auto be16 = [&](std::size_t o) -> std::uint32_t { return o + 2 <= p.size() ? (static_cast<std::uint32_t>(p[o]) << 8U) | p[o + 1] : 0U; };
  std::size_t l3 = 0;
  std::uint32_t ethertype = 0;
  if (link == LinkLayer::Ethernet) {
    c.net_off = 14;
    if (p.size() < 14) return c;
    c.protocol = ethertype = be16(12);
    l3 = 14;
    while ((ethertype == 0x8100 || ethertype == 0x88a8) && p.size() >= l3 + 4) {  // dissector skips tags
      ethertype = be16(l3 + 2);
      l3 += 4;
    }
  } else if (link == LinkLayer::RawIp) {
    if (p.empty()) return c;
    ethertype = (p[0] >> 4) == 6 ? 0x86dd : (p[0] >> 4) == 4 ? 0x0800 : 0;
    c.protocol = ethertype;
  } else {
    return c;
  }
  // payload offset (skb_get_poff facts): transport header + its length
  std::size_t l4 = 0;
  unsigned proto = 0;
  if (ethertype == 0x0800 && p.size() >= l3 + 20) {
    const unsigned ihl = (p[l3] & 0xfU) * 4U;
    const bool fragment = (be16(l3 + 6) & 0x1fffU) != 0;
    if (ihl < 20 || fragment) return c;
    proto = p[l3 + 9];
    l4 = l3 + ihl;
  } else if (ethertype == 0x86dd && p.size() >= l3 + 40) {
    proto = p[l3 + 6];
    l4 = l3 + 40;
  } else {
    return c;
  }
  switch (proto) {
    case 6:
      if (p.size() >= l4 + 13) c.pay_offset = static_cast<std::uint32_t>(l4 + std::max(20U, (p[l4 + 12] >> 4U) * 4U));
      break;
    case 17: case 136: case 1: case 58: case 2: c.pay_offset = static_cast<std::uint32_t>(l4 + 8); break;
    case 33: c.pay_offset = static_cast<std::uint32_t>(l4 + 16); break;
    case 132: c.pay_offset = static_cast<std::uint32_t>(l4 + 12); break;
    default: c.pay_offset = static_cast<std::uint32_t>(l4); break;
  }
  return c;
}

}  // namespace userbpf::cbpf
