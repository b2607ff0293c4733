// Socket references (the kernel's PTR_TO_SOCKET / PTR_TO_SOCK_COMMON /
// PTR_TO_TCP_SOCK and their _or_null forms).
//
// How it works, as Linux 6.18's check_helper_call / check_sock_access:
//  - bpf_sk_lookup_tcp/udp and bpf_skc_lookup_tcp return sock_or_null /
//    sock_common_or_null holding an acquired reference (State::refs): the
//    register's id is the reference's id, so the null check's "== 0" branch
//    drops the reference (mark_ptr_or_null) and the other keeps it until
//    bpf_sk_release; an exit while it is held is "Unreleased reference".
//  - bpf_sk_fullsock and bpf_tcp_sock are pointer casts: the result has a new
//    id for its own null check and the argument's ref_obj_id, so releasing
//    either pointer releases the one reference and invalidates both.
//    bpf_get_listener_sock returns an unreferenced socket.
//  - Loads through checked socket pointers follow the kernel's
//    bpf_sock_is_valid_access / bpf_sock_common_is_valid_access /
//    bpf_tcp_sock_is_valid_access; stores and pointer arithmetic are refused.
// Invariant: a socket register never has an offset (arithmetic is refused),
// so an access offset is the instruction's.
#include <fmt/format.h>
#include <linux/bpf.h>

#include <cerrno>
#include <cstddef>

#include "verifier/engine.hpp"

namespace userbpf::verifier::detail {

namespace {

constexpr std::int64_t kU32 = sizeof(std::uint32_t);

// bpf_ctx_narrow_access_ok: a power of two no wider than the field.
bool narrow_ok(std::int64_t size, std::int64_t field) { return size <= field && (size & (size - 1)) == 0; }

// The kernel's bpf_sock_is_valid_access.
bool sock_ok(std::int64_t off, std::int64_t size) {
  if (off < 0 || off >= static_cast<std::int64_t>(sizeof(bpf_sock)) || off % size != 0) return false;
  auto in = [&](std::size_t lo, std::size_t end) {
    return off >= static_cast<std::int64_t>(lo) && off < static_cast<std::int64_t>(end);
  };
  // fields read at their start with any narrow size
  for (const std::size_t f : {offsetof(bpf_sock, state), offsetof(bpf_sock, family), offsetof(bpf_sock, type),
                              offsetof(bpf_sock, protocol), offsetof(bpf_sock, src_port),
                              offsetof(bpf_sock, rx_queue_mapping)})
    if (off == static_cast<std::int64_t>(f)) return narrow_ok(size, kU32);
  // addresses: narrow reads anywhere inside
  if (in(offsetof(bpf_sock, src_ip4), offsetof(bpf_sock, src_ip4) + kU32) ||
      in(offsetof(bpf_sock, src_ip6), offsetof(bpf_sock, src_ip6) + sizeof(bpf_sock::src_ip6)) ||
      in(offsetof(bpf_sock, dst_ip4), offsetof(bpf_sock, dst_ip4) + kU32) ||
      in(offsetof(bpf_sock, dst_ip6), offsetof(bpf_sock, dst_ip6) + sizeof(bpf_sock::dst_ip6)))
    return narrow_ok(size, kU32);
  // dst_port: a 16-bit field that may also be read as a u32
  if (in(offsetof(bpf_sock, dst_port), offsetof(bpf_sock, dst_port) + sizeof(bpf_sock::dst_port)))
    return narrow_ok(size, size == kU32 ? kU32 : static_cast<std::int64_t>(sizeof(bpf_sock::dst_port)));
  if (in(offsetof(bpf_sock, dst_port) + sizeof(bpf_sock::dst_port), offsetof(bpf_sock, dst_ip4))) return false;
  return size == kU32;
}

// bpf_sock_common_is_valid_access: type .. priority are not common fields.
bool sock_common_ok(std::int64_t off, std::int64_t size) {
  if (off >= static_cast<std::int64_t>(offsetof(bpf_sock, type)) &&
      off < static_cast<std::int64_t>(offsetof(bpf_sock, priority) + kU32))
    return false;
  return sock_ok(off, size);
}

// bpf_tcp_sock_is_valid_access.
bool tcp_sock_ok(std::int64_t off, std::int64_t size) {
  if (off < 0 || off >= static_cast<std::int64_t>(offsetof(bpf_tcp_sock, icsk_retransmits) + kU32) || off % size != 0)
    return false;
  if (off == static_cast<std::int64_t>(offsetof(bpf_tcp_sock, bytes_received)) ||
      off == static_cast<std::int64_t>(offsetof(bpf_tcp_sock, bytes_acked)))
    return size == 8;
  return size == kU32;
}

bool is_acquire(std::uint32_t id) {
  using H = spec::HelperId;
  return id == static_cast<std::uint32_t>(H::sk_lookup_tcp) || id == static_cast<std::uint32_t>(H::sk_lookup_udp) ||
         id == static_cast<std::uint32_t>(H::skc_lookup_tcp);
}
bool is_ptr_cast(std::uint32_t id) {
  using H = spec::HelperId;
  return id == static_cast<std::uint32_t>(H::sk_fullsock) || id == static_cast<std::uint32_t>(H::tcp_sock);
}

}  // namespace

void Engine::check_sock_access(State& st, std::size_t idx, unsigned regno, std::int64_t off, unsigned size,
                               Access t, int value_regno) {
  const Reg& r = reg(st, regno);
  if (t == Access::Write) reject(EACCES, fmt::format("R{} cannot write into {}", regno, reg_type_str(r)));
  const auto sz = static_cast<std::int64_t>(size);
  const bool ok = r.type == RegType::Sock         ? sock_ok(off, sz)
                  : r.type == RegType::SockCommon ? sock_common_ok(off, sz)
                                                  : tcp_sock_ok(off, sz);
  if (!ok)
    reject(EACCES, fmt::format("R{} invalid {} access off={} size={}", regno, reg_type_str(r), off, size));
  access_[idx] = -1;  // user space has no kernel socket: the runtime checks such loads
  if (value_regno >= 0) {
    Reg& d = reg(st, static_cast<unsigned>(value_regno));
    mark_unknown(d);
    d.written = true;
  }
}

// ARG_PTR_TO_SOCK_COMMON and ARG_PTR_TO_BTF_ID_SOCK_COMMON | OBJ_RELEASE.
void Engine::sock_arg(State& st, const spec::HelperProto& p, unsigned argno, CallMeta& meta) {
  const unsigned regno = argno + 1;
  const Reg& r = reg(st, regno);
  const bool release = p.args[argno] == spec::ArgKind::SockCommonRelease;
  if (!r.is_sock() || r.maybe_null)
    reject(EACCES, fmt::format("R{} type={} expected=sock_common, sock, tcp_sock, xdp_sock{}", regno,
                               reg_type_str(r), release ? ", ptr_, trusted_ptr_" : ""));
  if (r.ref_obj_id != 0) meta.ref_obj_id = r.ref_obj_id;
  if (release) {
    if (r.ref_obj_id == 0)
      reject(EINVAL, fmt::format("R{} must be referenced when passed to release function", regno));
    meta.release_ref = r.ref_obj_id;
  }
}

// r0 of a socket helper: a new id for the null check; lookups acquire a
// reference, casts keep their argument's.
void Engine::sock_return(State& st, std::size_t idx, const spec::HelperProto& p, const CallMeta& meta) {
  Reg& r0 = reg(st, 0);
  r0 = Reg{};
  r0.type = p.ret == spec::RetKind::SocketOrNull       ? RegType::Sock
            : p.ret == spec::RetKind::SockCommonOrNull ? RegType::SockCommon
                                                       : RegType::TcpSock;
  r0.maybe_null = true;
  r0.id = new_id();
  if (is_acquire(p.id)) {
    r0.id = r0.ref_obj_id = new_id();
    st.refs.push_back(State::Ref{r0.id, static_cast<std::uint32_t>(idx)});
  } else if (is_ptr_cast(p.id)) {
    r0.ref_obj_id = meta.ref_obj_id;
  }
}

}  // namespace userbpf::verifier::detail
