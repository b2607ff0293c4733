// userbpf spec: descriptors of the kernel's BPF world, as data only.
//
//  - Helper prototypes (helpers.def): kernel id, name, return kind, argument
//    kinds. One table used by the verifier (argument checks) and by the
//    runtime's helpers (ids and names).
//  - Program types: the context layout (fields with offset, size, access
//    rules, read/write permission and the pointer type a load yields), the
//    helpers a type may call and the range its return value must have.
//  - Map types: key/value rules and which helpers a map type works with.
//
// No behaviour lives here beyond lookups over these tables. All numbers are
// those of <linux/bpf.h> (static_asserts in spec.cpp keep them honest).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace userbpf::spec {

// ---------------------------------------------------------------- helpers
// Argument kinds (the kernel's enum bpf_arg_type, with the flags that matter
// folded into distinct kinds).
enum class ArgKind : std::uint8_t {
  Unused,               // no argument
  Anything,             // ARG_ANYTHING: any initialised value
  ConstMapPtr,          // ARG_CONST_MAP_PTR
  MapKey,               // ARG_PTR_TO_MAP_KEY: key_size readable bytes
  MapValue,             // ARG_PTR_TO_MAP_VALUE: value_size readable bytes
  UninitMapValue,       // ARG_PTR_TO_MAP_VALUE | MEM_UNINIT: value_size writable bytes
  Mem,                  // ARG_PTR_TO_MEM: next arg is its size; read and written
  ReadonlyMem,          // ARG_PTR_TO_MEM | MEM_RDONLY: initialised memory read by the helper
  ReadonlyMemOrNull,    // ARG_PTR_TO_MEM | PTR_MAYBE_NULL | MEM_RDONLY
  MemOrNull,            // ARG_PTR_TO_MEM | PTR_MAYBE_NULL
  UninitMem,            // ARG_PTR_TO_UNINIT_MEM: written by the helper (may be uninitialised)
  ConstSize,            // ARG_CONST_SIZE: size (> 0) of the previous memory argument
  ConstSizeOrZero,      // ARG_CONST_SIZE_OR_ZERO
  ConstAllocSizeOrZero, // ARG_CONST_ALLOC_SIZE_OR_ZERO (ringbuf_reserve)
  Ctx,                  // ARG_PTR_TO_CTX
  StackOrNull,          // ARG_PTR_TO_STACK_OR_NULL (callback context)
  Func,                 // ARG_PTR_TO_FUNC (callbacks)
  ConstStr,             // ARG_PTR_TO_CONST_STR
  RingbufMemRelease,    // ARG_PTR_TO_RINGBUF_MEM | OBJ_RELEASE
  SpinLock,             // ARG_PTR_TO_SPIN_LOCK: the struct bpf_spin_lock of a map value
  PtrToLong,            // 8 writable, 8-aligned bytes (6.18: ARG_PTR_TO_FIXED_SIZE_MEM | MEM_UNINIT |
                        // MEM_WRITE | MEM_ALIGNED, arg size 8; formerly ARG_PTR_TO_LONG)
  Timer,                // ARG_PTR_TO_TIMER: the struct bpf_timer of a map value (verifier/timers.cpp)
  SockCommon,           // ARG_PTR_TO_SOCK_COMMON: sock_common, sock, tcp_sock (not null)
  SockCommonRelease,    // ARG_PTR_TO_BTF_ID_SOCK_COMMON | OBJ_RELEASE: an acquired socket reference (sk_release)
  DynptrLocalUninit,    // ARG_PTR_TO_DYNPTR | DYNPTR_TYPE_LOCAL | MEM_UNINIT: 16 stack bytes initialised as a dynptr
  DynptrRingbufUninit,  // ARG_PTR_TO_DYNPTR | DYNPTR_TYPE_RINGBUF | MEM_UNINIT (acquires a reference)
  DynptrRingbufRelease, // ARG_PTR_TO_DYNPTR | DYNPTR_TYPE_RINGBUF | OBJ_RELEASE
  DynptrRdonly,         // ARG_PTR_TO_DYNPTR | MEM_RDONLY: an initialised dynptr of any type, not mutated
};
enum class RetKind : std::uint8_t {
  Integer,           // RET_INTEGER
  Void,              // RET_VOID
  MapValueOrNull,    // RET_PTR_TO_MAP_VALUE_OR_NULL
  RingbufMemOrNull,  // RET_PTR_TO_RINGBUF_MEM_OR_NULL (acquires a reference)
  BtfIdTask,         // RET_PTR_TO_BTF_ID (task_struct)
  SocketOrNull,      // RET_PTR_TO_SOCKET_OR_NULL (lookups acquire a reference; casts keep the argument's)
  SockCommonOrNull,  // RET_PTR_TO_SOCK_COMMON_OR_NULL
  TcpSockOrNull,     // RET_PTR_TO_TCP_SOCK_OR_NULL
  DynptrMemOrNull,   // RET_PTR_TO_DYNPTR_MEM_OR_NULL: mem_or_null of the constant size argument
};
std::string_view arg_kind_name(ArgKind k);  // the kernel's spelling, e.g. "ARG_PTR_TO_MAP_KEY"
std::string_view ret_kind_name(RetKind k);

struct HelperProto {
  std::uint32_t id = 0;
  std::string_view name;  // without "bpf_"
  RetKind ret = RetKind::Integer;
  ArgKind args[5] = {ArgKind::Unused, ArgKind::Unused, ArgKind::Unused, ArgKind::Unused, ArgKind::Unused};
};

enum class HelperId : std::uint32_t {
#define UBPF_HELPER(name, id, ...) name = id,
#include "spec/helpers.def"
#undef UBPF_HELPER
};

// Every known helper, ordered by id.
std::span<const HelperProto> helpers();
// The prototype of helper `id`, or nullptr when userbpf does not know it.
const HelperProto* helper(std::uint32_t id);
// The kernel's name of any helper id below kHelperIdLimit ("map_lookup_elem"),
// also for helpers without a prototype here; empty when unknown.
std::string_view helper_name(std::uint32_t id);
// __BPF_FUNC_MAX_ID of the uapi header userbpf was built with.
std::uint32_t helper_id_limit();

// ---------------------------------------------------------------- context layouts
// What a context load yields. SockCommonOrNull: PTR_TO_SOCK_COMMON_OR_NULL
// without a reference (__sk_buff.sk; NULL in userbpf runs).
enum class CtxYield : std::uint8_t { Scalar, Packet, PacketEnd, PacketMeta, SockCommonOrNull, Unsupported };
// How accesses to a field may be sized.
enum class CtxSize : std::uint8_t {
  Narrow,  // reads of 1, 2, 4 .. elem bytes inside one element; writes exactly elem bytes
  Exact,   // reads and writes exactly elem bytes
  Any,     // any power-of-two size up to 8 inside the field (cb[], pt_regs)
};
struct CtxField {
  std::string_view name;
  std::uint32_t off = 0;
  std::uint32_t size = 0;  // total size of the field (arrays: all elements)
  std::uint32_t elem = 4;  // element size (= size for scalars)
  bool read = true;
  bool write = false;
  CtxYield yields = CtxYield::Scalar;
  CtxSize rule = CtxSize::Narrow;
};
struct CtxLayout {
  std::string_view name;   // "__sk_buff", "xdp_md", "pt_regs", ...
  std::uint32_t size = 0;  // sizeof the context structure as the program sees it
  std::span<const CtxField> fields;
};

// ---------------------------------------------------------------- program types
struct RetRange {
  bool checked = false;  // false: any scalar is fine
  std::int32_t min = 0, max = 0;
};
struct ProgType {
  std::uint32_t id = 0;         // enum bpf_prog_type
  std::string_view name;        // "socket_filter", "xdp", ...
  CtxLayout ctx;
  std::span<const std::uint32_t> helper_ids;  // helpers this type may call
  RetRange ret;
  bool ld_abs = false;          // LD_ABS / LD_IND allowed (skb programs)
};
std::span<const ProgType> prog_types();
const ProgType* prog_type(std::uint32_t id);
const ProgType* prog_type_by_name(std::string_view name);
bool prog_type_allows_helper(const ProgType& pt, std::uint32_t helper_id);
// The field whose bytes contain ctx offset `off`, or nullptr.
const CtxField* ctx_field_at(const CtxLayout& ctx, std::int64_t off);

// ---------------------------------------------------------------- map types
struct MapType {
  std::uint32_t id = 0;        // enum bpf_map_type
  std::string_view name;       // "array", "hash", ...
  std::uint32_t key_size = 0;  // required key size; 0 = any (> 0)
  bool lookup = true;          // map_lookup_elem/update/delete usable from programs
  bool value_null_key_const = false;  // lookup with a constant in-range key cannot fail (arrays)
  // Helpers that need this map type (the only ones that take it beyond the
  // generic map helpers when `lookup` is set).
  std::span<const std::uint32_t> special_helpers;
};
std::span<const MapType> map_types();
const MapType* map_type(std::uint32_t id);
const MapType* map_type_by_name(std::string_view name);
// Helpers that accept only specific map types (tail_call: prog_array, ...):
// the map types allowed, or empty when the helper takes any map.
std::span<const std::uint32_t> helper_map_types(std::uint32_t helper_id);

}  // namespace userbpf::spec

namespace userbpf::spec {
// Helpers that may move or resize packet data: every packet pointer a
// program holds becomes invalid after calling one (the kernel's
// bpf_helper_changes_pkt_data list).
bool helper_changes_pkt_data(std::uint32_t helper_id);
// True only for helpers whose kernel prototype sets `pkt_access` (the list
// kPktAccessHelpers in spec.cpp): packet pointers may not be passed to any
// other helper ("helper access to the packet is not allowed").
bool helper_pkt_access(std::uint32_t helper_id);
}  // namespace userbpf::spec
