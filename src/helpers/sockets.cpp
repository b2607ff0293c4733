// Socket helpers. A user-space runtime has no kernel sockets to hand out:
//
//   sk_lookup_tcp / sk_lookup_udp / skc_lookup_tcp   NULL (no socket found),
//                         as the kernel answers for a tuple nobody listens on
//   sk_release            0 (nothing is ever acquired)
//   sk_fullsock / tcp_sock / get_listener_sock       NULL
//
// The verifier (src/verifier/sockets.cpp) checks programs that use them with
// the kernel's rules (references, null checks, field accesses), so such
// programs load and run; their "socket found" paths are never taken here.
// A malformed tuple size or flags would make the kernel return NULL too.
#include <linux/bpf.h>

#include "helpers/helpers.hpp"
#include "helpers/internal.hpp"

namespace userbpf::helpers {

namespace {

using namespace detail;  // NOLINT(google-build-using-namespace)

// struct bpf_sock *bpf_sk_lookup_tcp(void *ctx, struct bpf_sock_tuple *tuple, u32 tuple_size, u64 netns, u64 flags)
u64 sk_lookup_tcp(abi::Env&, u64, u64, u64, u64, u64) { return 0; }
// struct bpf_sock *bpf_sk_lookup_udp(void *ctx, struct bpf_sock_tuple *tuple, u32 tuple_size, u64 netns, u64 flags)
u64 sk_lookup_udp(abi::Env&, u64, u64, u64, u64, u64) { return 0; }
// struct bpf_sock *bpf_skc_lookup_tcp(void *ctx, struct bpf_sock_tuple *tuple, u32 tuple_size, u64 netns, u64 flags)
u64 skc_lookup_tcp(abi::Env&, u64, u64, u64, u64, u64) { return 0; }
// long bpf_sk_release(void *sock)
u64 sk_release(abi::Env&, u64, u64, u64, u64, u64) { return 0; }
// struct bpf_sock *bpf_sk_fullsock(struct bpf_sock *sk)
u64 sk_fullsock(abi::Env&, u64, u64, u64, u64, u64) { return 0; }
// struct bpf_tcp_sock *bpf_tcp_sock(struct bpf_sock *sk)
u64 tcp_sock(abi::Env&, u64, u64, u64, u64, u64) { return 0; }
// struct bpf_sock *bpf_get_listener_sock(struct bpf_sock *sk)
u64 get_listener_sock(abi::Env&, u64, u64, u64, u64, u64) { return 0; }

constexpr Entry kSockets[] = {
    UBPF_HELPER_ENTRY(sk_lookup_tcp), UBPF_HELPER_ENTRY(sk_lookup_udp), UBPF_HELPER_ENTRY(skc_lookup_tcp),
    UBPF_HELPER_ENTRY(sk_release),    UBPF_HELPER_ENTRY(sk_fullsock),   UBPF_HELPER_ENTRY(tcp_sock),
    UBPF_HELPER_ENTRY(get_listener_sock),
};

}  // namespace

std::span<const detail::Entry> detail::socket_entries() { return kSockets; }

}  // namespace userbpf::helpers
