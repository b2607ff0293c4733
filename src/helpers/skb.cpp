// __sk_buff helpers that edit checksums or record a redirect, with the
// kernel's semantics (net/core/filter.c, include/net/checksum.h):
//
//   l3_csum_replace(skb, off, from, to, flags)   incremental update of the
//       16-bit checksum at data + off: flags & BPF_F_HDR_FIELD_MASK = 2 or 4
//       (from/to are the old and new 2- or 4-byte field values, as loaded
//       from the packet), or 0 (`to` is a csum_diff result, `from` must be 0).
//   l4_csum_replace(...)   the same for TCP/UDP checksums, plus
//       BPF_F_MARK_MANGLED_0 / BPF_F_MARK_ENFORCE (UDP's "no checksum" 0),
//       BPF_F_PSEUDO_HDR and BPF_F_IPV6 (they only matter for CHECKSUM_COMPLETE
//       / CHECKSUM_PARTIAL skbs; test-run skbs are CHECKSUM_NONE, as here).
//   csum_update(skb, csum)   -ENOTSUPP: userbpf skbs are never CHECKSUM_COMPLETE
//       (the kernel answers the same for test-run skbs).
//   redirect(ifindex, flags)   recorded in RunState::redirect; returns
//       TC_ACT_REDIRECT (tc) or XDP_REDIRECT (XDP), TC_ACT_SHOT / XDP_ABORTED
//       on bad flags, as the kernel.
//   redirect_map(map, key, flags)   (XDP) devmap / devmap_hash / cpumap /
//       xskmap targets (maps/devmap.cpp), recorded as map + key;
//       describe_redirect() renders a record for `prog run`.
//
// Checksum arithmetic is one's complement on the raw (network order) values
// as the kernel does it on little-endian x86-64: csum_fold, csum_unfold,
// csum_add/csum_sub and csum16_add/csum16_sub below; the x86-64 csum_partial
// is in memory.cpp. Offsets: odd or > 0xffff: -EFAULT; past the packet:
// -EFAULT (bpf_try_make_writable).
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

#include "helpers/helpers.hpp"
#include "helpers/internal.hpp"
#include "helpers/packet_ctx.hpp"
#include "maps/registry.hpp"

namespace userbpf::helpers {

namespace {

using namespace detail;  // NOLINT(google-build-using-namespace)

constexpr int kEnotsupp = 524;              // the kernel's ENOTSUPP
constexpr std::uint16_t kMangled0 = 0xffff;  // CSUM_MANGLED_0

std::uint16_t csum_fold(std::uint32_t sum) { return static_cast<std::uint16_t>(~csum_fold16(sum)); }
std::uint32_t csum_unfold(std::uint16_t sum) { return sum; }
std::uint32_t csum_sub(std::uint32_t a, std::uint32_t b) { return csum_add(a, ~b); }
std::uint16_t csum16_add(std::uint16_t csum, std::uint16_t addend) {
  const auto r = static_cast<std::uint16_t>(csum + addend);
  return static_cast<std::uint16_t>(r + (r < addend ? 1 : 0));
}
std::uint16_t csum16_sub(std::uint16_t csum, std::uint16_t addend) {
  return csum16_add(csum, static_cast<std::uint16_t>(~addend));
}

// csum_replace_by_diff / csum_replace4 / csum_replace2 (include/net/checksum.h)
std::uint16_t replace_by_diff(std::uint16_t sum, std::uint32_t diff) {
  return csum_fold(csum_add(diff, ~csum_unfold(sum)));
}
std::uint16_t replace4(std::uint16_t sum, std::uint32_t from, std::uint32_t to) {
  return csum_fold(csum_add(csum_sub(~csum_unfold(sum), from), to));
}
std::uint16_t replace2(std::uint16_t sum, std::uint16_t from, std::uint16_t to) {
  return static_cast<std::uint16_t>(~csum16_add(csum16_sub(static_cast<std::uint16_t>(~sum), from), to));
}
// inet_proto_csum_replace4 for a CHECKSUM_NONE skb
std::uint16_t proto_replace4(std::uint16_t sum, std::uint32_t from, std::uint32_t to) {
  const std::uint32_t diff[2] = {~from, to};
  return csum_fold(csum_partial(diff, sizeof diff, ~csum_unfold(sum)));
}

// The checksum field at data + off, or -EFAULT.
std::uint8_t* csum_field(const SkBuff& s, u64 off) {
  if (off > 0xffff || (off & 1) != 0 || off + 2 > s.pkt_len) return nullptr;
  return reinterpret_cast<std::uint8_t*>(s.data + off);  // NOLINT(performance-no-int-to-ptr)
}

std::uint16_t load16(const std::uint8_t* p) {
  std::uint16_t v = 0;
  std::memcpy(&v, p, 2);
  return v;
}
void store16(std::uint8_t* p, std::uint16_t v) { std::memcpy(p, &v, 2); }

// long bpf_l3_csum_replace(struct sk_buff *skb, u32 offset, u64 from, u64 to, u64 flags)
u64 l3_csum_replace(abi::Env& env, u64 r1, u64 offset, u64 from, u64 to, u64 flags) {
  auto* s = ctx_arg<SkBuff>(env, "l3_csum_replace", r1, CtxKind::Skb, "__sk_buff");
  if (s == nullptr) return 0;
  if ((flags & ~u64{BPF_F_HDR_FIELD_MASK}) != 0) return neg(EINVAL);
  std::uint8_t* p = csum_field(*s, static_cast<std::uint32_t>(offset));
  if (p == nullptr) return neg(EFAULT);
  const std::uint16_t sum = load16(p);
  switch (flags & BPF_F_HDR_FIELD_MASK) {
    case 0:
      if (from != 0) return neg(EINVAL);
      store16(p, replace_by_diff(sum, static_cast<std::uint32_t>(to)));
      break;
    case 2: store16(p, replace2(sum, static_cast<std::uint16_t>(from), static_cast<std::uint16_t>(to))); break;
    case 4: store16(p, replace4(sum, static_cast<std::uint32_t>(from), static_cast<std::uint32_t>(to))); break;
    default: return neg(EINVAL);
  }
  return 0;
}

// long bpf_l4_csum_replace(struct sk_buff *skb, u32 offset, u64 from, u64 to, u64 flags)
u64 l4_csum_replace(abi::Env& env, u64 r1, u64 offset, u64 from, u64 to, u64 flags) {
  auto* s = ctx_arg<SkBuff>(env, "l4_csum_replace", r1, CtxKind::Skb, "__sk_buff");
  if (s == nullptr) return 0;
#ifndef BPF_F_IPV6
  constexpr u64 kIpv6 = 1ULL << 7;
#else
  constexpr u64 kIpv6 = BPF_F_IPV6;
#endif
  const u64 allowed = u64{BPF_F_MARK_MANGLED_0} | u64{BPF_F_MARK_ENFORCE} | u64{BPF_F_PSEUDO_HDR} |
                      u64{BPF_F_HDR_FIELD_MASK} | kIpv6;
  if ((flags & ~allowed) != 0) return neg(EINVAL);
  const bool mmzero = (flags & BPF_F_MARK_MANGLED_0) != 0;
  const bool mforce = (flags & BPF_F_MARK_ENFORCE) != 0;
  std::uint8_t* p = csum_field(*s, static_cast<std::uint32_t>(offset));
  if (p == nullptr) return neg(EFAULT);
  const std::uint16_t sum = load16(p);
  if (mmzero && !mforce && sum == 0) return 0;
  std::uint16_t out = 0;
  switch (flags & BPF_F_HDR_FIELD_MASK) {
    case 0:
      if (from != 0) return neg(EINVAL);
      out = replace_by_diff(sum, static_cast<std::uint32_t>(to));
      break;
    case 2: out = proto_replace4(sum, static_cast<std::uint16_t>(from), static_cast<std::uint16_t>(to)); break;
    case 4: out = proto_replace4(sum, static_cast<std::uint32_t>(from), static_cast<std::uint32_t>(to)); break;
    default: return neg(EINVAL);
  }
  if (mmzero && out == 0) out = kMangled0;
  store16(p, out);
  return 0;
}

// s64 bpf_csum_update(struct sk_buff *skb, __wsum csum)
u64 csum_update(abi::Env& env, u64 r1, u64, u64, u64, u64) {
  if (ctx_arg<SkBuff>(env, "csum_update", r1, CtxKind::Skb, "__sk_buff") == nullptr) return 0;
  return neg(kEnotsupp);
}

// long bpf_redirect(u32 ifindex, u64 flags)
u64 redirect(abi::Env& env, u64 ifindex, u64 flags, u64, u64, u64) {
  RunState* s = state(env);
  const bool xdp = s != nullptr && s->prog_type == BPF_PROG_TYPE_XDP;
  if (xdp ? flags != 0 : (flags & ~u64{BPF_F_INGRESS}) != 0) return xdp ? XDP_ABORTED : TC_ACT_SHOT;
  if (s != nullptr) s->redirect = RunState::Redirect{true, static_cast<std::uint32_t>(ifindex), flags, nullptr, 0};
  return xdp ? XDP_REDIRECT : TC_ACT_REDIRECT;
}

// long bpf_redirect_map(struct bpf_map *map, u64 key, u64 flags) (XDP):
// __bpf_xdp_redirect_map. The lower bits of flags are the action returned
// when the key has no target; BPF_F_BROADCAST redirects to every entry
// (devmaps) even when the key has none.
u64 redirect_map(abi::Env& env, u64 r1, u64 key, u64 flags, u64, u64) {
  constexpr u64 kActionMask = XDP_ABORTED | XDP_DROP | XDP_PASS | XDP_TX;
  maps::Map* m = arg_map(env, r1);
  if (m == nullptr || m->desc().kind != maps::MapKind::Redirect) return XDP_ABORTED;
  if ((flags & ~(kActionMask | m->redirect_flags())) != 0) return XDP_ABORTED;
  RunState* s = state(env);
  const auto k = static_cast<std::uint32_t>(key);  // the map's lookup takes a u32 key
  if (!m->redirect_target(k) && (flags & BPF_F_BROADCAST) == 0) {
    if (s != nullptr) s->redirect = RunState::Redirect{};
    return flags & kActionMask;
  }
  if (s != nullptr) {
    const u64 kept = (flags & BPF_F_BROADCAST) != 0 ? flags & (BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS) : 0;
    s->redirect = RunState::Redirect{true, 0, kept, m, k};
  }
  return XDP_REDIRECT;
}

constexpr Entry kSkb[] = {
    UBPF_HELPER_ENTRY(l3_csum_replace),
    UBPF_HELPER_ENTRY(l4_csum_replace),
    UBPF_HELPER_ENTRY(csum_update),
    UBPF_HELPER_ENTRY(redirect),
    UBPF_HELPER_ENTRY(redirect_map),
};

}  // namespace

std::span<const detail::Entry> detail::skb_entries() { return kSkb; }

std::string describe_redirect(const RunState::Redirect& r) {
  if (!r.set) return {};
  if (r.map == nullptr)
    return fmt::format("ifindex {}{}", r.ifindex, (r.flags & BPF_F_INGRESS) != 0 ? " (ingress)" : "");
  const std::string_view type = r.map->desc().name;
  if ((r.flags & BPF_F_BROADCAST) != 0)
    return fmt::format("{} (broadcast{})", type, (r.flags & BPF_F_EXCLUDE_INGRESS) != 0 ? ", exclude ingress" : "");
  return fmt::format("{}[{}]", type, r.key);
}

}  // namespace userbpf::helpers
