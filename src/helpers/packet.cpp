// Helpers tied to packet contexts (packet_ctx.hpp): bpf_xdp_adjust_head,
// bpf_xdp_adjust_meta, bpf_xdp_adjust_tail, bpf_skb_load_bytes and
// bpf_skb_store_bytes, with the kernel's semantics and errno values
// (net/core/filter.c). They move the 64-bit pointers of the real context
// (and the 32-bit uapi copies in unverified runs, XdpBuff::sync32).
//
// Context argument: a verified program can only pass its own context
// (ARG_PTR_TO_CTX, helpers allowed per program type). A checked
// (unverified) run must pass the start of its Context region; in every run
// the structure's kind tag must match the helper's family, else the run
// ends with EINVAL naming the helper.
#include <linux/bpf.h>
#include <linux/if_ether.h>

#include <climits>
#include <cstring>

#include "helpers/internal.hpp"
#include "helpers/packet_ctx.hpp"

namespace userbpf::helpers {

namespace {

using detail::neg;
using detail::u64;

template <class T>
T* ctx_arg(abi::Env& env, std::string_view helper, u64 r1, CtxKind kind) {
  return detail::ctx_arg<T>(env, helper, r1, kind, kind == CtxKind::Xdp ? "xdp_md" : "__sk_buff");
}

std::uint8_t* ptr(u64 a) { return reinterpret_cast<std::uint8_t*>(a); }  // NOLINT(performance-no-int-to-ptr)

// The helpers take a signed int offset (r2's low 32 bits).
std::int64_t int_arg(u64 r) { return static_cast<std::int32_t>(static_cast<std::uint32_t>(r)); }

u64 xdp_adjust_head(abi::Env& env, u64 r1, u64 r2, u64, u64, u64) {
  auto* x = ctx_arg<XdpBuff>(env, "xdp_adjust_head", r1, CtxKind::Xdp);
  if (x == nullptr) return 0;
  const std::int64_t off = int_arg(r2);
  const u64 metalen = x->data - x->data_meta;
  const u64 data_start = x->hard_start + kXdpFrameSize + metalen;
  const u64 data = x->data + static_cast<u64>(off);
  if (static_cast<std::int64_t>(data - data_start) < 0 ||
      static_cast<std::int64_t>(data - (x->data_end - ETH_HLEN)) > 0)
    return neg(EINVAL);
  if (metalen != 0) std::memmove(ptr(x->data_meta + static_cast<u64>(off)), ptr(x->data_meta), metalen);
  x->data_meta += static_cast<u64>(off);
  x->data = data;
  x->sync32();
  return 0;
}

u64 xdp_adjust_meta(abi::Env& env, u64 r1, u64 r2, u64, u64, u64) {
  auto* x = ctx_arg<XdpBuff>(env, "xdp_adjust_meta", r1, CtxKind::Xdp);
  if (x == nullptr) return 0;
  const u64 meta = x->data_meta + static_cast<u64>(int_arg(r2));
  if (static_cast<std::int64_t>(meta - (x->hard_start + kXdpFrameSize)) < 0 ||
      static_cast<std::int64_t>(meta - x->data) > 0)
    return neg(EINVAL);
  const u64 metalen = x->data - meta;
  if (xdp_metalen_invalid(metalen)) return neg(EACCES);
  x->data_meta = meta;
  x->sync32();
  return 0;
}

// Multi-buffer frames (bpf_xdp_frags_shrink_tail / _increase_tail).
u64 xdp_frags_tail(XdpBuff& x, std::int64_t off) {
  if (off < 0) {
    std::int64_t left = -off;
    if (left > static_cast<std::int64_t>(x.data_end - x.data + x.frags_len()) - ETH_HLEN) return neg(EINVAL);
    while (x.nr_frags > 0 && left > 0) {
      std::uint32_t& len = x.frag_len[x.nr_frags - 1];
      const auto shrink = static_cast<std::uint32_t>(std::min<std::int64_t>(left, len));
      left -= shrink;
      len -= shrink;
      if (len != 0) break;
      --x.nr_frags;
    }
    if (x.nr_frags == 0) x.data_end -= static_cast<u64>(left);
  } else {
    std::uint32_t& len = x.frag_len[x.nr_frags - 1];
    if (off > static_cast<std::int64_t>(kPageSize - len)) return neg(EINVAL);
    std::memset(x.frags + (x.nr_frags - 1) * kPageSize + len, 0, static_cast<std::size_t>(off));
    len += static_cast<std::uint32_t>(off);
  }
  x.sync32();
  return 0;
}

u64 xdp_adjust_tail(abi::Env& env, u64 r1, u64 r2, u64, u64, u64) {
  auto* x = ctx_arg<XdpBuff>(env, "xdp_adjust_tail", r1, CtxKind::Xdp);
  if (x == nullptr) return 0;
  const std::int64_t off = int_arg(r2);
  if (x->nr_frags != 0) return xdp_frags_tail(*x, off);
  const u64 end = x->data_end + static_cast<u64>(off);
  if (static_cast<std::int64_t>(end - x->hard_end) > 0) return neg(EINVAL);
  if (static_cast<std::int64_t>(end - (x->data + ETH_HLEN)) < 0) return neg(EINVAL);
  if (off > 0) std::memset(ptr(x->data_end), 0, static_cast<std::size_t>(off));
  x->data_end = end;
  x->sync32();
  return 0;
}

u64 skb_load_bytes(abi::Env& env, u64 r1, u64 r2, u64 r3, u64 r4, u64) {
  auto* s = ctx_arg<SkBuff>(env, "skb_load_bytes", r1, CtxKind::Skb);
  if (s == nullptr) return 0;
  const auto off = static_cast<std::uint32_t>(r2);
  const auto len = static_cast<std::uint32_t>(r4);
  if (!detail::arg_mem(env, "skb_load_bytes", "to", r3, len, true)) return 0;
  if (off > INT_MAX || std::uint64_t{off} + len > s->pkt_len) {
    if (len != 0) std::memset(ptr(r3), 0, len);
    return neg(EFAULT);
  }
  if (len != 0) std::memcpy(ptr(r3), ptr(s->data + off), len);
  return 0;
}

u64 skb_store_bytes(abi::Env& env, u64 r1, u64 r2, u64 r3, u64 r4, u64 r5) {
  auto* s = ctx_arg<SkBuff>(env, "skb_store_bytes", r1, CtxKind::Skb);
  if (s == nullptr) return 0;
  const auto off = static_cast<std::uint32_t>(r2);
  const auto len = static_cast<std::uint32_t>(r4);
  if (!detail::arg_mem(env, "skb_store_bytes", "from", r3, len, false)) return 0;
  if ((r5 & ~u64{BPF_F_RECOMPUTE_CSUM | BPF_F_INVALIDATE_HASH}) != 0) return neg(EINVAL);
  if (off > INT_MAX) return neg(EFAULT);
  if (std::uint64_t{off} + len > s->pkt_len) return neg(EFAULT);  // bpf_try_make_writable
  if (len != 0) std::memmove(ptr(s->data + off), ptr(r3), len);
  // BPF_F_RECOMPUTE_CSUM updates skb->csum for CHECKSUM_COMPLETE packets,
  // which the context does not show.
  if ((r5 & BPF_F_INVALIDATE_HASH) != 0) s->skb.hash = 0;
  return 0;
}

constexpr detail::Entry kPacket[] = {
    UBPF_HELPER_ENTRY(skb_store_bytes), UBPF_HELPER_ENTRY(skb_load_bytes), UBPF_HELPER_ENTRY(xdp_adjust_head),
    UBPF_HELPER_ENTRY(xdp_adjust_meta), UBPF_HELPER_ENTRY(xdp_adjust_tail),
};

}  // namespace

void register_packet_helpers(abi::HelperTable& table) {
  for (const detail::Entry& e : kPacket) table.set(e.id, e.name, e.fn);
}

bool is_packet_helper(std::uint32_t id) {
  for (const detail::Entry& e : kPacket)
    if (e.id == id) return true;
  return false;
}

}  // namespace userbpf::helpers
