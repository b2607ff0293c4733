// The ELF/BTF object loader: opens a clang-built BPF object (.bpf.o) the way
// libbpf's bpf_object__open does, without creating anything in a kernel.
//
// Object::open() runs named phases, each of which can fail with an error that
// names the object, section, program, map, symbol or relocation it is about:
//   1. elf-init         ELF header: 64-bit, little-endian, EM_BPF, relocatable
//   2. collect-sections classify sections (programs, maps, data, BTF, relocs)
//   3. license/version  the "license" and "version" sections
//   4. btf              .BTF via libbpf's parser, .BTF.ext via our own parser
//   4b. btf-fixup       DATASEC sizes and variable offsets from the ELF symbols
//   5. maps             BTF-defined .maps, legacy "maps", global data, .kconfig
//   6. programs         functions in executable sections, SEC() table lookup
//   7. externs          undefined symbols in .kconfig / .ksyms
//   8. relocations      map/data/extern/subprogram relocations recorded
//   9. core             CO-RE relocations resolved against a target BTF
//  10. link             .text subprograms appended to each program that calls
//                       them, instruction offsets and func/line info fixed
// The result is a plain description (programs with decoded isa::Insn, maps
// with their definitions and initial data); creating maps, binding them to
// the lddw instructions (isa::kPseudoMapIdx / kPseudoMapIdxValue) and
// verifying programs is the runtime's work.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "isa/isa.hpp"

struct btf;  // libbpf's BTF object (bpf/btf.h)

namespace userbpf::loader {

// ------------------------------------------------------------------ SEC() table
// Flags of a section definition row (libbpf's SEC_* cookie bits).
enum SecFlag : unsigned {
  kSecNone = 0,
  kSecExpAttachOpt = 1u << 0,  // expected_attach_type optional on old kernels
  kSecAttachable = 1u << 1,    // expected_attach_type is passed at load
  kSecAttachBtf = 1u << 2,     // attach target is a BTF name (fentry/..., lsm/...)
  kSecSleepable = 1u << 3,     // BPF_F_SLEEPABLE
  kSecXdpFrags = 1u << 4,      // BPF_F_XDP_HAS_FRAGS
  kSecUsdt = 1u << 5,          // USDT program (uses the usdt.bpf.h helpers)
  kSecAttachableOpt = kSecAttachable | kSecExpAttachOpt,
};

struct SecDef {
  std::string_view prefix;        // "xdp", "kprobe+", "sk_skb/stream_parser", ...
  std::uint32_t prog_type;        // enum bpf_prog_type
  std::uint32_t attach_type;      // enum bpf_attach_type (0 when none)
  unsigned flags;                 // SecFlag bits
};

// The whole table, in libbpf's matching order (first match wins).
std::span<const SecDef> sec_defs();
// Looks a section name up ("?" prefix already removed). nullptr: unknown
// section, which libbpf keeps as a BPF_PROG_TYPE_UNSPEC program.
const SecDef* find_sec_def(std::string_view section);
// The part of a "+"-form section after "prefix/" ("func" for "kprobe/func").
std::string_view sec_attach_target(const SecDef& def, std::string_view section);

std::string_view prog_type_name(std::uint32_t prog_type);
std::string_view attach_type_name(std::uint32_t attach_type);
std::string_view map_type_name(std::uint32_t map_type);

// ------------------------------------------------------------------ results
struct FuncInfo {
  std::size_t insn = 0;       // instruction index in the linked program
  std::uint32_t type_id = 0;  // BTF_KIND_FUNC id
  std::string name;
};

struct LineInfo {
  std::size_t insn = 0;
  std::string file;
  std::string line_text;  // source text of the line
  std::uint32_t line = 0;
  std::uint32_t column = 0;
  std::uint32_t file_name_off = 0;  // BTF string offsets, as struct bpf_line_info wants them
  std::uint32_t line_off = 0;
};

// One CO-RE relocation as recorded in .BTF.ext and as resolved.
struct CoreRelo {
  std::size_t insn = 0;       // in the linked program
  std::uint32_t kind = 0;     // enum bpf_core_relo_kind
  std::uint32_t type_id = 0;  // local root type
  std::string access;         // "0:1:2"
  std::string type_name;      // local root type's name
  bool poisoned = false;      // instruction replaced by a call to helper 0xbad2310
  std::uint64_t orig_value = 0;
  std::uint64_t new_value = 0;
  std::string message;        // why it was poisoned
};

enum class ExternKind : std::uint8_t { Kconfig, KsymVar, KsymFunc };

struct Extern {
  std::string name;
  ExternKind kind = ExternKind::Kconfig;
  bool weak = false;
  std::uint32_t btf_id = 0;         // VAR or FUNC in the object's BTF
  std::uint32_t btf_type_id = 0;    // its type (resolved through modifiers)
  std::uint32_t size = 0;           // kconfig: value size in bytes
  std::uint32_t kconfig_offset = 0; // kconfig: offset in the .kconfig map
  // Resolution (OpenOptions::externs.resolve): kconfig value found / ksym
  // found among the host's symbols. A weak extern that was not found keeps
  // resolved == false and its default (0).
  bool resolved = false;
  std::uint64_t value = 0;          // ksyms: host kfunc BTF id or variable address
  std::string source;               // where the value came from ("/proc/config.gz", "host", ...)
};

// An instruction that refers to an unresolved .ksyms extern (lddw
// BPF_PSEUDO_BTF_ID or call BPF_PSEUDO_KFUNC_CALL with imm 0).
struct ExternUse {
  std::size_t insn = 0;
  std::size_t extern_index = 0;
};

struct Program {
  std::string name;
  std::string section;               // without the "?" prefix
  const SecDef* sec_def = nullptr;   // nullptr: unrecognized section
  std::uint32_t prog_type = 0;       // enum bpf_prog_type (0: UNSPEC)
  std::uint32_t expected_attach_type = 0;
  std::uint32_t prog_flags = 0;      // BPF_F_SLEEPABLE, BPF_F_XDP_HAS_FRAGS
  std::string attach_target;         // "func" of "kprobe/func", ...
  bool autoload = true;
  std::size_t section_offset = 0;    // byte offset of the function in its section
  std::size_t own_insns = 0;         // slots of the function itself (before subprograms)
  std::vector<isa::Insn> insns;      // linked and relocated; lddw tails kept (kernel numbering)
  std::vector<FuncInfo> func_info;
  std::vector<LineInfo> line_info;
  std::vector<CoreRelo> core_relos;
  std::vector<ExternUse> extern_uses;
  std::vector<std::string> subprograms;  // names of .text functions appended, in order
};

enum class MapOrigin : std::uint8_t { BtfDefined, Legacy, Iproute2, GlobalData, Kconfig, Inner };

struct Map {
  std::string name;
  std::string real_name;       // section name for global data, else == name
  MapOrigin origin = MapOrigin::BtfDefined;
  std::string section;
  std::size_t section_offset = 0;  // of the definition (maps / .maps)
  std::uint32_t type = 0;          // enum bpf_map_type
  std::uint32_t key_size = 0;
  std::uint32_t value_size = 0;
  std::uint32_t max_entries = 0;
  std::uint32_t map_flags = 0;
  std::uint32_t numa_node = 0;
  std::uint64_t map_extra = 0;
  std::uint32_t pinning = 0;       // LIBBPF_PIN_NONE / LIBBPF_PIN_BY_NAME; iproute2: PIN_*
  std::uint32_t btf_key_type_id = 0;
  std::uint32_t btf_value_type_id = 0;
  std::uint32_t iproute2_id = 0, iproute2_inner_id = 0, iproute2_inner_idx = 0;
  bool frozen = false;             // .rodata: read-only for programs, frozen after load
  std::vector<std::uint8_t> initial_data;  // global data: the section's bytes (zeros for .bss)
  std::optional<std::size_t> inner_map;    // index into Object::maps() of the inner map template
  // __array(values, ...) initial contents, one per slot: program name (prog
  // arrays) or map name (maps of maps); empty string = slot not initialised.
  std::vector<std::string> init_slots;
};

// ------------------------------------------------------------------ options
// A symbol the host provides for .ksyms externs: a kfunc registered in the
// runtime's helper table (value = its BTF id) or a variable (value = address).
struct HostSymbol {
  std::string name;
  std::uint64_t value = 0;
};

// How .kconfig and .ksyms externs are resolved (externs.cpp has the policy).
struct ExternOptions {
  // false: leave them as libbpf's bpf_object__open does (.kconfig zeroed,
  // .ksyms instructions with imm 0 listed in Program::extern_uses).
  bool resolve = true;
  // Kernel config to read CONFIG_* values from (plain or gzip). Empty: the
  // running kernel's, as libbpf: /boot/config-$(uname -r), then /proc/config.gz.
  std::string kconfig_path;
  // libbpf's `kconfig` open option: "CONFIG_X=y\nCONFIG_Y=42\n", read
  // before (and so overriding) the config file.
  std::string kconfig_extra;
  std::uint32_t kernel_version = 0;      // LINUX_KERNEL_VERSION; 0: the running kernel's (uname)
  bool has_bpf_cookie = false;           // LINUX_HAS_BPF_COOKIE
  bool has_syscall_wrapper = true;       // LINUX_HAS_SYSCALL_WRAPPER (x86-64 kernels >= 4.17)
  std::vector<HostSymbol> kfuncs;        // name -> BTF id under which the host registered it
  std::vector<HostSymbol> ksym_vars;     // name -> address
};

struct OpenOptions {
  std::string object_name;           // defaults to the file's base name up to the first '.'
  // CO-RE target: a BTF blob in memory (raw BTF or an ELF with .BTF), a file, or vmlinux.
  std::span<const std::uint8_t> target_btf_data;
  std::string target_btf_path;       // raw BTF file or ELF object with .BTF
  bool use_vmlinux_btf = true;       // /sys/kernel/btf/vmlinux when no other target given
  std::string vmlinux_btf_path = "/sys/kernel/btf/vmlinux";
  bool fail_on_core_poison = false;  // make a poisoned CO-RE relocation an error
  ExternOptions externs;
};

class Btf;  // owning wrapper of a libbpf struct btf

class Object {
 public:
  static Result<Object> open(const std::string& path, const OpenOptions& opts = {});
  static Result<Object> open(std::span<const std::uint8_t> bytes, const OpenOptions& opts = {});

  Object(Object&&) noexcept;
  Object& operator=(Object&&) noexcept;
  ~Object();

  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] const std::string& license() const { return license_; }
  [[nodiscard]] std::uint32_t kernel_version() const { return kern_version_; }
  [[nodiscard]] const std::vector<Program>& programs() const { return programs_; }
  [[nodiscard]] const std::vector<Map>& maps() const { return maps_; }
  [[nodiscard]] const std::vector<Extern>& externs() const { return externs_; }
  [[nodiscard]] const Program* find_program(std::string_view name) const;
  [[nodiscard]] const Map* find_map(std::string_view name) const;
  [[nodiscard]] std::optional<std::size_t> map_index(std::string_view name) const;
  // The object's BTF (nullptr when it has none). Owned by the Object.
  [[nodiscard]] const struct btf* btf() const;
  // The object's BTF as raw bytes after the DATASEC fix-up (sizes and
  // variable offsets filled in), ready for BPF_BTF_LOAD; empty when none.
  [[nodiscard]] std::span<const std::uint8_t> btf_data() const { return btf_bytes_; }
  // Non-fatal notes (e.g. poisoned CO-RE relocations, skipped relocations).
  [[nodiscard]] const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  Object();
  friend class Opener;
  std::string name_;
  std::string license_;
  std::uint32_t kern_version_ = 0;
  std::vector<Program> programs_;
  std::vector<Map> maps_;
  std::vector<Extern> externs_;
  std::vector<std::uint8_t> btf_bytes_;
  std::unique_ptr<Btf> btf_;
  std::vector<std::string> warnings_;
};

}  // namespace userbpf::loader
