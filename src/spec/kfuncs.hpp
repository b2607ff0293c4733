// userbpf spec: prototypes of the host kfuncs (kfuncs.def), as data only.
//
// A kfunc is named by a BTF id in `call` (src = BPF_PSEUDO_KFUNC_CALL). The
// kernel takes ids and prototypes from vmlinux BTF; userbpf has no kernel, so
// its kfuncs have ids of their own (kBtfIdBase + row) and their prototypes
// reduced to what the verifier checks: argument kinds, return kind and the
// kernel's KF_* flags (include/linux/btf.h values).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace userbpf::spec {

// The kernel's KF_* flags (same bit values as include/linux/btf.h).
enum KfuncFlag : std::uint32_t {
  KF_ACQUIRE = 1u << 0,
  KF_RELEASE = 1u << 1,
  KF_RET_NULL = 1u << 2,
  KF_TRUSTED_ARGS = 1u << 4,
  KF_SLEEPABLE = 1u << 5,
  KF_DESTRUCTIVE = 1u << 6,
  KF_RCU = 1u << 7,
  KF_ITER_NEW = 1u << 8,
  KF_ITER_NEXT = 1u << 9,
  KF_ITER_DESTROY = 1u << 10,
  KF_RCU_PROTECTED = 1u << 11,
};

enum class KfuncArg : std::uint8_t {
  Unused,
  Scalar,   // an integer (any initialised scalar)
  IterNum,  // struct bpf_iter_num * on the stack (KF_ARG_PTR_TO_ITER, 8 bytes)
};
enum class KfuncRet : std::uint8_t {
  Void,
  Integer,    // int / long: an unknown scalar
  RdonlyMem,  // pointer to ret_size bytes of read-only memory (rdonly_mem)
};

struct KfuncProto {
  std::uint32_t btf_id = 0;
  std::string_view name;
  KfuncRet ret = KfuncRet::Void;
  std::uint32_t ret_size = 0;
  KfuncArg args[5] = {KfuncArg::Unused, KfuncArg::Unused, KfuncArg::Unused, KfuncArg::Unused, KfuncArg::Unused};
  std::uint32_t flags = 0;
  [[nodiscard]] bool has(KfuncFlag f) const { return (flags & f) != 0; }
  [[nodiscard]] unsigned nargs() const {
    unsigned n = 0;
    while (n < 5 && args[n] != KfuncArg::Unused) ++n;
    return n;
  }
};

// First BTF id of the host kfuncs (ids kBtfIdBase + 1 ...): far from the
// small ids of a program's own BTF and below libbpf's poison values.
inline constexpr std::uint32_t kKfuncBtfIdBase = 0x7e000000;

enum class KfuncId : std::uint32_t {
#define UBPF_KFUNC(name, row, ...) name = kKfuncBtfIdBase + row,
#include "spec/kfuncs.def"
#undef UBPF_KFUNC
};

// Every host kfunc, ordered by BTF id.
std::span<const KfuncProto> kfuncs();
// The prototype of kfunc `btf_id`, or nullptr.
const KfuncProto* kfunc(std::uint32_t btf_id);
const KfuncProto* kfunc_by_name(std::string_view name);

}  // namespace userbpf::spec
