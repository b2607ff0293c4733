// Internal pieces of the loader shared by its .cpp files (not installed).
//
// ElfFile: a checked view of a BPF ELF object read through libelf. Every
// section, symbol and relocation is bounds-checked once when the file is
// opened, so the later phases index vectors without re-checking.
// Btf: owning wrapper of libbpf's struct btf plus small type helpers.
// BtfExt: our parser of .BTF.ext (libbpf 1.1's public API offers only
// btf_ext__new/raw_data, no accessors for its records).
#pragma once

#include <linux/btf.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/error.hpp"
#include "loader/loader.hpp"

extern "C" {
#include <bpf/btf.h>
}

namespace userbpf::loader {

// ------------------------------------------------------------------ ELF
struct Section {
  std::size_t index = 0;
  std::string name;
  std::uint32_t type = 0;   // SHT_*
  std::uint64_t flags = 0;  // SHF_*
  std::uint32_t link = 0;
  std::uint32_t info = 0;
  std::uint64_t size = 0;
  std::span<const std::uint8_t> data;  // empty for SHT_NOBITS
};

struct Symbol {
  std::size_t index = 0;
  std::string name;
  std::uint8_t type = 0;  // STT_*
  std::uint8_t bind = 0;  // STB_*
  std::uint8_t visibility = 0;
  std::uint16_t shndx = 0;
  std::uint64_t value = 0;
  std::uint64_t size = 0;
};

struct Reloc {
  std::uint64_t offset = 0;
  std::uint32_t sym = 0;
  std::uint32_t type = 0;
};

class ElfFile {
 public:
  // `where` is the object name used in error messages.
  static Result<std::unique_ptr<ElfFile>> open(std::vector<std::uint8_t> bytes, const std::string& where);
  ~ElfFile();
  ElfFile(const ElfFile&) = delete;
  ElfFile& operator=(const ElfFile&) = delete;

  [[nodiscard]] const std::vector<Section>& sections() const { return sections_; }
  [[nodiscard]] const std::vector<Symbol>& symbols() const { return symbols_; }
  [[nodiscard]] const Section* find(std::string_view name) const;
  // Relocations of the SHT_REL section `rel_index`; checked: offsets inside
  // the target section, symbol indexes inside the symbol table.
  Result<std::vector<Reloc>> relocs(const Section& rel) const;

 private:
  ElfFile() = default;
  std::vector<std::uint8_t> bytes_;
  void* elf_ = nullptr;  // Elf*
  std::string where_;
  std::vector<Section> sections_;
  std::vector<Symbol> symbols_;
  std::size_t symtab_index_ = 0;
};

// ------------------------------------------------------------------ BTF
class Btf {
 public:
  // Parses raw BTF bytes (a copy is kept by libbpf).
  static Result<std::unique_ptr<Btf>> parse(std::span<const std::uint8_t> data, const std::string& where);
  // Raw BTF file (e.g. /sys/kernel/btf/vmlinux) or ELF with .BTF.
  static Result<std::unique_ptr<Btf>> parse_file(const std::string& path);
  ~Btf();
  Btf(const Btf&) = delete;
  Btf& operator=(const Btf&) = delete;

  [[nodiscard]] const struct btf* get() const { return btf_; }
  [[nodiscard]] struct btf* get() { return btf_; }
  [[nodiscard]] const struct btf_type* type(std::uint32_t id) const;  // nullptr if out of range
  [[nodiscard]] std::string_view name(std::uint32_t name_off) const;
  [[nodiscard]] std::string_view type_name(std::uint32_t id) const;
  [[nodiscard]] std::uint32_t count() const;  // btf__type_cnt: ids are 1..count-1
  // Skips const/volatile/restrict/typedef/type_tag; returns the final id (0 on a loop or bad id).
  [[nodiscard]] std::uint32_t skip_mods_and_typedefs(std::uint32_t id) const;
  [[nodiscard]] std::int64_t resolve_size(std::uint32_t id) const;
  [[nodiscard]] std::int32_t find_by_name_kind(std::string_view name, std::uint32_t kind) const;

 private:
  [[nodiscard]] Status validate(const std::string& where) const;
  explicit Btf(struct btf* b) : btf_(b) {}
  struct btf* btf_ = nullptr;
};

// BTF type helpers (struct btf_type from <linux/btf.h>).
inline std::uint32_t btf_kind_of(const struct btf_type* t) { return BTF_INFO_KIND(t->info); }
inline std::uint32_t btf_vlen_of(const struct btf_type* t) { return BTF_INFO_VLEN(t->info); }
inline bool btf_kflag_of(const struct btf_type* t) { return BTF_INFO_KFLAG(t->info) != 0; }
inline bool btf_is_composite_t(const struct btf_type* t) {
  const auto k = btf_kind_of(t);
  return k == BTF_KIND_STRUCT || k == BTF_KIND_UNION;
}
inline bool btf_is_any_enum_t(const struct btf_type* t) {
  const auto k = btf_kind_of(t);
  return k == BTF_KIND_ENUM || k == BTF_KIND_ENUM64;
}
const struct btf_member* btf_members_of(const struct btf_type* t);
const struct btf_array* btf_array_of(const struct btf_type* t);
const struct btf_var_secinfo* btf_secinfos_of(const struct btf_type* t);
const struct btf_param* btf_params_of(const struct btf_type* t);
std::uint32_t btf_member_bit_offset_of(const struct btf_type* t, std::uint32_t i);
std::uint32_t btf_member_bitfield_size_of(const struct btf_type* t, std::uint32_t i);
std::uint32_t btf_int_encoding_of(const struct btf_type* t);
std::uint32_t btf_int_offset_of(const struct btf_type* t);
std::uint32_t btf_int_bits_of(const struct btf_type* t);
std::string_view btf_kind_name(std::uint32_t kind);

// ------------------------------------------------------------------ BTF.ext
struct ExtFuncInfo {
  std::uint32_t insn_off = 0;  // bytes from the start of the section
  std::uint32_t type_id = 0;
};
struct ExtLineInfo {
  std::uint32_t insn_off = 0;
  std::uint32_t file_name_off = 0;
  std::uint32_t line_off = 0;
  std::uint32_t line_col = 0;
};
struct ExtCoreRelo {
  std::uint32_t insn_off = 0;
  std::uint32_t type_id = 0;
  std::uint32_t access_str_off = 0;
  std::uint32_t kind = 0;
};
template <class T>
struct ExtSection {
  std::string section;  // ELF section name the records are about
  std::vector<T> records;
};
struct BtfExt {
  std::vector<ExtSection<ExtFuncInfo>> func_info;
  std::vector<ExtSection<ExtLineInfo>> line_info;
  std::vector<ExtSection<ExtCoreRelo>> core_relos;
};
// Parses .BTF.ext; names are looked up in `btf`'s string table.
Result<BtfExt> parse_btf_ext(std::span<const std::uint8_t> data, const Btf& btf, const std::string& where);

// ------------------------------------------------------------------ CO-RE
struct CoreResult {
  bool poison = false;
  bool validate = true;
  std::uint64_t orig_value = 0;
  std::uint64_t new_value = 0;
  std::uint32_t orig_size = 0, new_size = 0;  // field byte size (memory access size adjustment)
  bool fail_memsz_adjust = false;
  std::string note;
};
// A target BTF with its types indexed by essential name (built once; vmlinux
// has ~100k types and every relocation looks candidates up by name).
class CoreTarget {
 public:
  explicit CoreTarget(const Btf& btf);
  [[nodiscard]] const Btf& btf() const { return btf_; }
  [[nodiscard]] const std::vector<std::uint32_t>* candidates(std::string_view essential) const;

 private:
  const Btf& btf_;
  std::unordered_map<std::string, std::vector<std::uint32_t>> by_name_;
};
// Computes one relocation's local and target values. Errors are hard errors
// (malformed record, ambiguous candidates); a missing target is a poison.
Result<CoreResult> core_calc(const Btf& local, const CoreTarget& target, std::uint32_t type_id,
                             std::string_view access, std::uint32_t kind);
// Patches one instruction (slot `pc` of `insns`) with `res`. A load/store whose
// size can't be adjusted safely is poisoned here (res.poison/note updated).
Status core_patch(std::vector<isa::RawInsn>& insns, std::size_t pc, CoreResult& res, std::uint32_t kind);
inline constexpr std::int32_t kPoisonHelperId = 0xbad2310;  // libbpf's "bad relo" helper id
inline constexpr std::int32_t kPoisonKfuncBase = 2002000000;  // libbpf's POISON_CALL_KFUNC_BASE
std::string_view core_kind_name(std::uint32_t kind);

// Essential name: "task_struct___v1" -> "task_struct" (libbpf's ___flavor rule).
std::string_view essential_name(std::string_view name);

}  // namespace userbpf::loader
