// Execution of translated classic programs; see exec.hpp.
//
// How it works: Filter::create checks and translates, then loads the eBPF
// into the chosen engine: the JIT (jit::Program, helpers bound at compile
// time so that the nla/nlan/rand calls are direct) or the interpreter.
// run() points the reused Env at the packet (LD_ABS/LD_IND, helpers) and
// runs with r1 = &ctx, r2 = packet, r3 = its length (translate.cpp's entry
// convention); the classic return value is r0's low 32 bits.
// A run that faults (it cannot, for a checked translation, unless a helper
// is missing) returns 0: drop, as the kernel does for a failed load.
//
// Direct runs (exec.hpp): when jit::Program::leaf() accepts the translated
// program (no helper call, no LD_IND fallback) and it has no backward ja
// (those run with a budget, which only the Env path counts), run() and
// run_frame() call the native code directly: r1 = &ctx (or 0 when the
// program reads no context), r2 = packet, r3 = its length, as above.
// Invariant: leaf_ is set only for such programs, and only while
// set_direct(false) has not been asked for; need_ says which context a run
// must build (from Translation::ctx_reads).
//
// The helpers follow the kernel's semantics: nla / nlan search netlink
// attributes in the packet (__skb_get_nlattr / __skb_get_nlattr_nest facts:
// A = start offset, X = attribute type, result = offset of the attribute or
// 0), rand returns a pseudo-random u32.
#include "cbpf/exec.hpp"

#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <random>
#include <vector>

#include "interp/interp.hpp"
#include "jit/jit.hpp"

namespace userbpf::cbpf {
namespace {

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

std::string_view engine_name(Engine e) { return e == Engine::Jit ? "jit" : "interpreter"; }

// Exactly one of jit / interp is set (the one `engine` names).
struct Filter::Impl {
  std::vector<Insn> classic;
  Translation translation;
  Engine engine = Engine::Jit;
  std::unique_ptr<jit::Program> jit;
  std::unique_ptr<interp::Program> interp;
  abi::Env env;
  bool loops = false;  // backward ja: runs need the Env's budget
  std::optional<BatchCode> batch;  // JIT socket filters the batch compiler accepts
  std::string batch_note;          // why batch is empty

  abi::RunResult run(std::uint64_t ctx, std::uint64_t data = 0, std::uint64_t len = 0) {
    const std::array<std::uint64_t, 3> a = {ctx, data, len};
    return jit ? jit->run(env, a) : interp->run(env, a);
  }
};

Filter::Filter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Filter::Filter(Filter&&) noexcept = default;
Filter& Filter::operator=(Filter&&) noexcept = default;
Filter::~Filter() = default;

Result<Filter> Filter::create(std::span<const Insn> prog, Target target, const CheckOptions& opts, Engine engine) {
  auto tr = translate(prog, target, opts);
  if (!tr.ok()) return tr.error();
  auto impl = std::make_unique<Impl>();
  impl->engine = engine;
  if (engine == Engine::Jit) {
    jit::Options jo;
    jo.helpers = &helper_table();
    auto p = jit::Program::compile(tr->insns, jo);
    if (!p.ok()) return p.error();
    impl->jit = std::make_unique<jit::Program>(std::move(*p));
  } else {
    auto p = interp::Program::create(tr->insns);
    if (!p.ok()) return p.error();
    impl->interp = std::make_unique<interp::Program>(std::move(*p));
  }
  impl->classic.assign(prog.begin(), prog.end());
  impl->translation = std::move(*tr);
  impl->env.helpers = &helper_table();
  impl->loops = has_backward_ja(prog);
  if (impl->loops) impl->env.options.budget = kLoopBudget;
  const std::uint32_t reads = impl->translation.ctx_reads;
  Filter f(std::move(impl));
  f.need_ = reads == 0                                          ? ContextNeed::None
            : reads == ctx_bit(offsetof(SkbContext, len))       ? ContextNeed::Len
            : (reads & ctx_bit(offsetof(SkbContext, pay_offset))) != 0 ? ContextNeed::Payload
                                                                : ContextNeed::Fields;
  if (engine == Engine::Jit && target == Target::Socket && !f.impl_->loops) {
    auto b = BatchCode::compile(prog);
    if (b.ok())
      f.impl_->batch.emplace(std::move(*b));
    else
      f.impl_->batch_note = b.error().to_string();
  } else {
    f.impl_->batch_note = engine != Engine::Jit        ? "the interpreter runs per packet"
                          : target != Target::Socket ? "seccomp filters are not batched"
                                                     : "backward jumps: not batched";
  }
  f.set_direct(true);
  return f;
}

void Filter::set_direct(bool on) {
  leaf_ = on && impl_->jit && !impl_->loops ? impl_->jit->leaf() : jit::Program::Leaf{};
  set_batched(on && impl_->classic.size() <= kBatchPreferred);
}

bool Filter::batchable() const { return impl_->batch.has_value(); }

void Filter::set_batched(bool on) { batch_ = on && impl_->batch ? &*impl_->batch : nullptr; }

std::string Filter::batch_note() const { return impl_->batch_note; }

std::size_t Filter::run_batch(std::span<const Frame> frames, std::span<std::uint32_t> out, LinkLayer link) {
  const std::size_t n = std::min(frames.size(), out.size());
  if (batch_ != nullptr) {
    std::array<std::uint32_t, kBatch> punts;
    for (std::size_t i = 0; i < n; i += kBatch) {
      const std::size_t m = std::min(kBatch, n - i);
      const std::size_t np = batch_->run(frames.data() + i, m, out.data() + i, punts.data());
      for (std::size_t j = 0; j < np; ++j) {  // X + k in the context's areas: the per-packet path
        const Frame& fr = frames[i + punts[j]];
        out[i + punts[j]] = run_frame_slow({fr.data, fr.caplen}, fr.wirelen, link);
      }
    }
  } else {
    for (std::size_t i = 0; i < n; ++i)
      out[i] = run_frame({frames[i].data, frames[i].caplen}, frames[i].wirelen, link);
  }
  std::size_t kept = 0;
  for (std::size_t i = 0; i < n; ++i) kept += static_cast<std::size_t>(out[i] != 0);
  return kept;
}

std::uint32_t Filter::run(std::span<const std::uint8_t> packet, const SkbContext& ctx) {
  if (leaf_)
    return static_cast<std::uint32_t>(leaf_(reinterpret_cast<std::uint64_t>(&ctx),
                                            reinterpret_cast<std::uint64_t>(packet.data()), packet.size()));
  abi::Env& env = impl_->env;
  env.packet = packet.data();
  env.packet_len = packet.size();
  const abi::RunResult r = impl_->run(reinterpret_cast<std::uint64_t>(&ctx),
                                      reinterpret_cast<std::uint64_t>(packet.data()), packet.size());
  return r.ok() ? static_cast<std::uint32_t>(r.r0) : 0;
}

std::uint32_t Filter::run_frame_slow(std::span<const std::uint8_t> packet, std::uint32_t wirelen, LinkLayer link) {
  SkbContext ctx;
  if (need_ == ContextNeed::Len)
    ctx.len = wirelen;
  else if (need_ != ContextNeed::None)
    ctx = make_context(packet, wirelen, link, need_ == ContextNeed::Payload);
  return run(packet, ctx);
}

std::uint32_t Filter::run_seccomp(const SeccompData& data) {
  if (leaf_) return static_cast<std::uint32_t>(leaf_(reinterpret_cast<std::uint64_t>(&data)));
  abi::Env& env = impl_->env;
  env.packet = nullptr;
  env.packet_len = 0;
  const abi::RunResult r = impl_->run(reinterpret_cast<std::uint64_t>(&data));
  return r.ok() ? static_cast<std::uint32_t>(r.r0) : 0;
}

std::span<const Insn> Filter::classic() const { return impl_->classic; }
std::span<const isa::Insn> Filter::ebpf() const { return impl_->translation.insns; }
const Translation& Filter::translation() const { return impl_->translation; }
Engine Filter::engine() const { return impl_->engine; }
std::string Filter::native_listing(const std::function<std::string(std::size_t pc)>& insn_text) const {
  return impl_->jit ? impl_->jit->disassemble(insn_text) : std::string();
}

SkbContext make_context(std::span<const std::uint8_t> p, std::uint32_t wirelen, LinkLayer link, bool payload_offset) {
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
  if (!payload_offset) return c;
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
