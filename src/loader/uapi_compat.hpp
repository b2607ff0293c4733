// Kernel UAPI enum values newer than the installed <linux/bpf.h> (Debian 12
// ships 6.1's). Values are the kernel's (include/uapi/linux/bpf.h, fixed ABI);
// the static_asserts pin the last values that the installed header does have,
// so a header that renumbered anything would fail to compile.
#pragma once

#include <linux/bpf.h>

#include <cstdint>

namespace userbpf::loader::uapi {

// enum bpf_prog_type
inline constexpr std::uint32_t kProgTypeNetfilter = 32;
// enum bpf_attach_type
inline constexpr std::uint32_t kStructOps = 44;
inline constexpr std::uint32_t kNetfilter = 45;
inline constexpr std::uint32_t kTcxIngress = 46;
inline constexpr std::uint32_t kTcxEgress = 47;
inline constexpr std::uint32_t kTraceUprobeMulti = 48;
inline constexpr std::uint32_t kCgroupUnixConnect = 49;
inline constexpr std::uint32_t kCgroupUnixSendmsg = 50;
inline constexpr std::uint32_t kCgroupUnixRecvmsg = 51;
inline constexpr std::uint32_t kCgroupUnixGetpeername = 52;
inline constexpr std::uint32_t kCgroupUnixGetsockname = 53;
inline constexpr std::uint32_t kNetkitPrimary = 54;
inline constexpr std::uint32_t kNetkitPeer = 55;
inline constexpr std::uint32_t kTraceKprobeSession = 56;
inline constexpr std::uint32_t kTraceUprobeSession = 57;
inline constexpr std::uint32_t kMaxAttachType = 58;
// enum bpf_map_type
inline constexpr std::uint32_t kMapTypeCgrpStorage = 32;
inline constexpr std::uint32_t kMapTypeArena = 33;
inline constexpr std::uint32_t kMaxMapType = 34;

static_assert(BPF_PROG_TYPE_SYSCALL == 31);
static_assert(BPF_LSM_CGROUP == 43);
static_assert(BPF_MAP_TYPE_USER_RINGBUF == 31);

// libbpf's pinning values for BTF-defined maps (bpf/libbpf.h LIBBPF_PIN_*).
inline constexpr std::uint32_t kPinNone = 0;
inline constexpr std::uint32_t kPinByName = 1;

// enum bpf_core_relo_kind (include/uapi/linux/bpf.h, also in btf.ext records)
enum CoreReloKind : std::uint32_t {
  kFieldByteOffset = 0,
  kFieldByteSize = 1,
  kFieldExists = 2,
  kFieldSigned = 3,
  kFieldLshiftU64 = 4,
  kFieldRshiftU64 = 5,
  kTypeIdLocal = 6,
  kTypeIdTarget = 7,
  kTypeExists = 8,
  kTypeSize = 9,
  kEnumvalExists = 10,
  kEnumvalValue = 11,
  kTypeMatches = 12,
};

}  // namespace userbpf::loader::uapi
