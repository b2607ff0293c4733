// The open pipeline's state, shared by object.cpp (phases, programs,
// relocations, linking) and maps.cpp (map definitions). Internal.
#pragma once

#include <map>
#include <optional>

#include "loader/internal.hpp"

namespace userbpf::loader {

// A relocation recorded against one function, resolved in the link phase.
struct RelocDesc {
  enum class Kind : std::uint8_t { Call, SubprogAddr, MapLd, MapValue, Kconfig, KsymVar, KsymFunc };
  Kind kind = Kind::MapLd;
  std::size_t insn = 0;        // slot index inside the function
  std::size_t relo_no = 0;     // index in the ELF relocation section (for messages)
  std::size_t map_idx = 0;
  std::uint64_t value_off = 0; // MapValue: offset into the map value
  std::size_t target_sec_insn = 0;  // Call/SubprogAddr: target slot index in .text
  std::size_t extern_idx = 0;
};

// A function of an executable section: a program (non-.text) or a subprogram (.text).
struct Func {
  std::string name;
  std::size_t shndx = 0;
  std::size_t off = 0;   // bytes from the section start
  std::size_t size = 0;  // bytes
  bool is_subprog = false;
  std::vector<isa::RawInsn> insns;
  std::vector<RelocDesc> relos;
  std::vector<CoreRelo> core;  // applied CO-RE relocations (insn relative to the function)
  std::optional<std::size_t> program;  // index in Object::programs_ (non-subprograms)
};

bool is_global_data_section(std::string_view name);

class Opener {
 public:
  Opener(Object& obj, const OpenOptions& opts, std::string where) : obj_(obj), opts_(opts), where_(std::move(where)) {}
  Status run(std::vector<std::uint8_t> bytes);

 private:
  // phases (object.cpp)
  Status elf_init(std::vector<std::uint8_t> bytes);
  Status collect_sections();
  Status license_version();
  Status load_btf();
  Status collect_externs();
  Status fixup_btf();
  Status init_programs();
  Status collect_relos();
  Status apply_core();
  Status link();
  // maps.cpp
  Status init_maps();
  Status init_legacy_maps();
  Status init_btf_maps();
  Status init_global_data_maps();
  Status init_kconfig_map();
  Status collect_map_slots();
  // externs.cpp
  Status resolve_externs();
  Status parse_btf_map_def(const std::string& map_name, std::uint32_t def_type_id, Map& m,
                           std::optional<Map>& inner, std::uint32_t& values_off_bits);

  // helpers
  Error err(std::string msg, int code = EINVAL) const;
  [[nodiscard]] std::string internal_map_name(std::string_view section) const;
  [[nodiscard]] const Section& sec(std::size_t i) const { return elf_->sections()[i]; }
  Status record_reloc(Func& f, const Reloc& r, std::size_t relo_no);
  std::optional<std::size_t> func_at(std::size_t shndx, std::size_t byte_off) const;

  Object& obj_;
  const OpenOptions& opts_;
  std::string where_;
  std::unique_ptr<ElfFile> elf_;
  std::optional<std::size_t> text_shndx_, legacy_maps_shndx_, btf_maps_shndx_, btf_shndx_, btf_ext_shndx_;
  std::vector<std::size_t> exec_shndx_;
  std::vector<std::size_t> data_shndx_;
  std::map<std::size_t, std::size_t> rel_of_;  // target section -> its SHT_REL section
  std::map<std::size_t, std::size_t> data_map_of_;  // data section -> map index
  std::optional<std::size_t> kconfig_map_;
  std::map<std::string, std::uint32_t> btf_map_values_off_;  // map name -> bit offset of `values`
  std::optional<BtfExt> ext_;
  std::vector<Func> funcs_;
  std::unique_ptr<Btf> target_btf_;
};

}  // namespace userbpf::loader
