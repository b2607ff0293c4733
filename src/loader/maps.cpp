// Map definitions of an object, in libbpf's order: legacy "maps" section
// (struct bpf_map_def, or iproute2's struct bpf_elf_map), BTF-defined ".maps",
// global data sections (.data, .rodata, .bss, .data.*, .rodata.*), .kconfig.
//
// BTF-defined maps: each variable of the ".maps" DATASEC is a struct whose
// members encode the definition (__uint(name, N) is `int (*name)[N]`,
// __type(key, T) is `T *key`, __array(values, T) is `T *values[]`); inner
// maps of maps-of-maps are parsed recursively as "<outer>.inner". The
// relocations of ".rel.maps" fill `init_slots` (__array initial contents).
// Invariant: a Map's section_offset + definition size lies in its section.
#include <gelf.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <thread>
#include <cctype>
#include <cstring>

#include "loader/opener.hpp"
#include "loader/uapi_compat.hpp"

namespace userbpf::loader {

namespace {

// Global data maps hold a copy of their section; .bss (SHT_NOBITS) sizes are
// not bounded by the file, so sizes are capped (the kernel's own limit for an
// array value, KMALLOC_MAX_SIZE, is far lower).
constexpr std::uint64_t kMaxGlobalData = 64u << 20;

// Legacy definitions, as laid out in the objects (all u32).
struct LegacyDef {
  std::uint32_t type, key_size, value_size, max_entries, map_flags;
};
struct ElfMapDef {  // iproute2's struct bpf_elf_map
  std::uint32_t type, size_key, size_value, max_elem, flags, id, pinning, inner_id, inner_idx;
};

}  // namespace

std::string Opener::internal_map_name(std::string_view section) const {
  // libbpf: "<object name prefix><section>", 15 characters at most; sections
  // with a second dot (".data.custom") get no prefix.
  constexpr std::size_t kObjNameLen = 16;
  const std::size_t sfx_len = std::max<std::size_t>(7, section.size());
  std::size_t pfx_len = 0;
  if (section.substr(1).find('.') == std::string_view::npos)
    pfx_len = sfx_len + 1 >= kObjNameLen ? obj_.name_.size() : std::min(kObjNameLen - sfx_len - 1, obj_.name_.size());
  std::string out = obj_.name_.substr(0, pfx_len);
  out += section.substr(0, std::min(section.size(), kObjNameLen - 1 - out.size()));
  for (char& c : out)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.') c = '_';
  return out;
}

namespace {
// Possible CPUs ("0-7" or "0,2-3" in /sys/devices/system/cpu/possible), as
// libbpf_num_possible_cpus(); the hardware concurrency when unreadable.
std::uint32_t possible_cpus() {
  std::ifstream f("/sys/devices/system/cpu/possible");
  std::string text;
  std::uint32_t n = 0;
  if (std::getline(f, text)) {
    std::size_t pos = 0;
    while (pos < text.size()) {
      const auto comma = text.find(',', pos);
      const std::string part = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
      pos = comma == std::string::npos ? text.size() : comma + 1;
      unsigned a = 0, b = 0;
      const int got = std::sscanf(part.c_str(), "%u-%u", &a, &b);
      if (got == 1) n += 1;
      if (got == 2 && b >= a) n += b - a + 1;
    }
  }
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  return n;
}
}  // namespace

Status Opener::init_maps() {
  if (auto s = init_legacy_maps(); !s) return s;
  if (auto s = init_btf_maps(); !s) return s;
  if (auto s = init_global_data_maps(); !s) return s;
  if (auto s = init_kconfig_map(); !s) return s;
  // libbpf (bpf_object__create_map): a perf event array without max_entries
  // gets one slot per possible CPU.
  for (Map& m : obj_.maps_)
    if (m.type == BPF_MAP_TYPE_PERF_EVENT_ARRAY && m.max_entries == 0) m.max_entries = possible_cpus();
  return collect_map_slots();
}

Status Opener::init_legacy_maps() {
  if (!legacy_maps_shndx_) return Ok{};
  const Section& s = sec(*legacy_maps_shndx_);
  std::vector<const Symbol*> syms;
  for (const Symbol& sym : elf_->symbols())
    if (sym.shndx == s.index && (sym.type == STT_OBJECT || sym.type == STT_NOTYPE) && !sym.name.empty() &&
        sym.type != STT_SECTION)
      syms.push_back(&sym);
  if (syms.empty()) return Ok{};
  if (s.type == SHT_NOBITS || s.data.size() != s.size) return err(fmt::format("section '{}': no data", s.name));
  std::sort(syms.begin(), syms.end(), [](const Symbol* a, const Symbol* b) { return a->value < b->value; });
  const std::size_t def_sz = s.data.size() / syms.size();
  if (def_sz == 0 || s.data.size() % syms.size() != 0)
    return err(fmt::format("section '{}': size {} is not a multiple of the {} map definitions", s.name,
                           s.data.size(), syms.size()));
  if (def_sz < sizeof(LegacyDef))
    return err(fmt::format("section '{}': map definition size {} is smaller than struct bpf_map_def ({})", s.name,
                           def_sz, sizeof(LegacyDef)));
  const bool iproute2 = def_sz == sizeof(ElfMapDef);
  for (const Symbol* sym : syms) {
    if (sym->value % def_sz != 0 || sym->value + def_sz > s.data.size())
      return err(fmt::format("map '{}': definition at offset {} is not a whole slot of {} bytes in '{}'", sym->name,
                             sym->value, def_sz, s.name));
    const std::uint8_t* p = s.data.data() + sym->value;
    Map m;
    m.name = m.real_name = sym->name;
    m.section = s.name;
    m.section_offset = sym->value;
    if (iproute2) {
      ElfMapDef d;
      std::memcpy(&d, p, sizeof d);
      m.origin = MapOrigin::Iproute2;
      m.type = d.type;
      m.key_size = d.size_key;
      m.value_size = d.size_value;
      m.max_entries = d.max_elem;
      m.map_flags = d.flags;
      m.iproute2_id = d.id;
      m.pinning = d.pinning;
      m.iproute2_inner_id = d.inner_id;
      m.iproute2_inner_idx = d.inner_idx;
    } else {
      LegacyDef d;
      std::memcpy(&d, p, sizeof d);
      for (std::size_t i = sizeof d; i < def_sz; ++i)
        if (p[i] != 0)
          return err(fmt::format("map '{}': unrecognized non-zero byte at offset {} of its {}-byte definition",
                                 sym->name, i, def_sz));
      m.origin = MapOrigin::Legacy;
      m.type = d.type;
      m.key_size = d.key_size;
      m.value_size = d.value_size;
      m.max_entries = d.max_entries;
      m.map_flags = d.map_flags;
    }
    obj_.maps_.push_back(std::move(m));
  }
  return Ok{};
}

Status Opener::parse_btf_map_def(const std::string& map_name, std::uint32_t def_type_id, Map& m,
                                 std::optional<Map>& inner, std::uint32_t& values_off_bits) {
  const Btf& b = *obj_.btf_;
  const std::string pfx = fmt::format("map '{}'", map_name);
  const std::uint32_t sid = b.skip_mods_and_typedefs(def_type_id);
  const struct btf_type* st = b.type(sid);
  if (!st || btf_kind_of(st) != BTF_KIND_STRUCT)
    return err(fmt::format("{}: definition is not a struct (BTF [{}])", pfx, def_type_id));
  // __uint(name, N): int (*name)[N]
  auto uint_field = [&](const struct btf_member& mem, std::string_view fname) -> Result<std::uint32_t> {
    const struct btf_type* pt = b.type(b.skip_mods_and_typedefs(mem.type));
    if (!pt || btf_kind_of(pt) != BTF_KIND_PTR)
      return err(fmt::format("{}: attr '{}': expected PTR, got {}", pfx, fname,
                             pt ? btf_kind_name(btf_kind_of(pt)) : "bad type"));
    const struct btf_type* at = b.type(pt->type);
    if (!at || btf_kind_of(at) != BTF_KIND_ARRAY)
      return err(fmt::format("{}: attr '{}': type is not a pointer to an array", pfx, fname));
    return btf_array_of(at)->nelems;
  };
  auto type_field = [&](const struct btf_member& mem, std::string_view fname, std::uint32_t& id,
                        std::uint32_t& size) -> Status {
    const struct btf_type* pt = b.type(b.skip_mods_and_typedefs(mem.type));
    if (!pt || btf_kind_of(pt) != BTF_KIND_PTR)
      return err(fmt::format("{}: {} spec is not PTR: {}", pfx, fname,
                             pt ? btf_kind_name(btf_kind_of(pt)) : "bad type"));
    const std::int64_t sz = b.resolve_size(pt->type);
    if (sz < 0) return err(fmt::format("{}: can't determine {} size for type [{}]", pfx, fname, pt->type));
    if (size != 0 && size != sz)
      return err(fmt::format("{}: conflicting {} size {} != {}", pfx, fname, size, sz));
    size = static_cast<std::uint32_t>(sz);
    id = pt->type;
    return Ok{};
  };
  const struct btf_member* mems = btf_members_of(st);
  for (std::uint32_t i = 0; i < btf_vlen_of(st); ++i) {
    const auto fname = b.name(mems[i].name_off);
    if (fname.empty()) return err(fmt::format("{}: invalid field #{}", pfx, i));
    if (fname == "type" || fname == "max_entries" || fname == "map_flags" || fname == "numa_node" ||
        fname == "map_extra" || fname == "pinning" || fname == "key_size" || fname == "value_size") {
      auto v = uint_field(mems[i], fname);
      if (!v) return v.error();
      if (fname == "type") m.type = *v;
      else if (fname == "max_entries") m.max_entries = *v;
      else if (fname == "map_flags") m.map_flags = *v;
      else if (fname == "numa_node") m.numa_node = *v;
      else if (fname == "map_extra") m.map_extra = *v;
      else if (fname == "pinning") {
        if (*v != uapi::kPinNone && *v != uapi::kPinByName)
          return err(fmt::format("{}: invalid pinning value {}", pfx, *v));
        m.pinning = *v;
      } else if (fname == "key_size") {
        if (m.key_size != 0 && m.key_size != *v)
          return err(fmt::format("{}: conflicting key size {} != {}", pfx, m.key_size, *v));
        m.key_size = *v;
      } else {
        if (m.value_size != 0 && m.value_size != *v)
          return err(fmt::format("{}: conflicting value size {} != {}", pfx, m.value_size, *v));
        m.value_size = *v;
      }
    } else if (fname == "key") {
      if (auto s = type_field(mems[i], "key", m.btf_key_type_id, m.key_size); !s) return s;
    } else if (fname == "value") {
      if (auto s = type_field(mems[i], "value", m.btf_value_type_id, m.value_size); !s) return s;
    } else if (fname == "values") {
      // __array(values, T): T *values[]
      const bool is_prog_array = m.type == BPF_MAP_TYPE_PROG_ARRAY;
      const bool is_map_in_map = m.type == BPF_MAP_TYPE_ARRAY_OF_MAPS || m.type == BPF_MAP_TYPE_HASH_OF_MAPS;
      if (!is_prog_array && !is_map_in_map)
        return err(fmt::format("{}: should be map-in-map or prog-array to have 'values' (declare 'type' first)", pfx));
      const struct btf_type* at = b.type(b.skip_mods_and_typedefs(mems[i].type));
      if (!at || btf_kind_of(at) != BTF_KIND_ARRAY)
        return err(fmt::format("{}: values spec is not an array", pfx));
      const struct btf_type* pt = b.type(b.skip_mods_and_typedefs(btf_array_of(at)->type));
      if (!pt || btf_kind_of(pt) != BTF_KIND_PTR)
        return err(fmt::format("{}: values spec is not an array of pointers", pfx));
      const std::uint32_t target = b.skip_mods_and_typedefs(pt->type);
      const struct btf_type* tt = b.type(target);
      values_off_bits = btf_member_bit_offset_of(st, i);
      m.init_slots.clear();  // grown by the .rel.maps relocations (bounded by the section size)
      if (m.value_size != 0 && m.value_size != 4)
        return err(fmt::format("{}: conflicting value size {} != 4", pfx, m.value_size));
      m.value_size = 4;
      if (is_prog_array) {
        if (!tt || btf_kind_of(tt) != BTF_KIND_FUNC_PROTO)
          return err(fmt::format("{}: prog-array value type must be a function prototype", pfx));
      } else {
        if (inner) return err(fmt::format("{}: multi-level inner maps are not supported", pfx));
        if (!tt || btf_kind_of(tt) != BTF_KIND_STRUCT)
          return err(fmt::format("{}: map-in-map inner type must be a struct", pfx));
        Map in;
        in.name = in.real_name = map_name + ".inner";
        in.origin = MapOrigin::Inner;
        std::optional<Map> none;
        std::uint32_t ignored = 0;
        // Inner definitions may not have inner maps themselves (checked via `none` staying empty).
        std::optional<Map> nested;
        if (auto s = parse_btf_map_def(in.name, target, in, nested, ignored); !s) return s;
        if (nested) return err(fmt::format("{}: multi-level inner maps are not supported", pfx));
        inner = std::move(in);
      }
    } else {
      return err(fmt::format("{}: unknown field '{}'", pfx, fname));
    }
  }
  if (m.type == BPF_MAP_TYPE_UNSPEC) return err(fmt::format("{}: map type is not specified", pfx));
  return Ok{};
}

Status Opener::init_btf_maps() {
  if (!btf_maps_shndx_) return Ok{};
  const Section& s = sec(*btf_maps_shndx_);
  if (!obj_.btf_) return err(fmt::format("section '{}': BTF-defined maps need .BTF", s.name));
  const Btf& b = *obj_.btf_;
  const std::int32_t dsid = b.find_by_name_kind(".maps", BTF_KIND_DATASEC);
  if (dsid < 0) return err(fmt::format("section '{}': DATASEC '.maps' not found in BTF", s.name));
  const struct btf_type* ds = b.type(static_cast<std::uint32_t>(dsid));
  const struct btf_var_secinfo* vs = btf_secinfos_of(ds);
  for (std::uint32_t i = 0; i < btf_vlen_of(ds); ++i) {
    const struct btf_type* var = b.type(vs[i].type);
    if (!var || btf_kind_of(var) != BTF_KIND_VAR)
      return err(fmt::format("section '{}': variable #{} is not a VAR", s.name, i));
    const std::string name(b.name(var->name_off));
    const Symbol* sym = nullptr;
    for (const Symbol& y : elf_->symbols())
      if (y.shndx == s.index && y.name == name && y.type != STT_SECTION) sym = &y;
    if (!sym) return err(fmt::format("map '{}': no ELF symbol in section '{}'", name, s.name));
    const std::int64_t def_sz = b.resolve_size(var->type);
    if (def_sz < 0 || sym->value + static_cast<std::uint64_t>(def_sz) > s.size)
      return err(fmt::format("map '{}': definition at offset {} (+{}) is outside section '{}'", name, sym->value,
                             def_sz, s.name));
    Map m;
    m.name = m.real_name = name;
    m.origin = MapOrigin::BtfDefined;
    m.section = s.name;
    m.section_offset = sym->value;
    std::optional<Map> inner;
    std::uint32_t values_off = UINT32_MAX;
    if (auto st = parse_btf_map_def(name, var->type, m, inner, values_off); !st) return st;
    if (values_off != UINT32_MAX) btf_map_values_off_[name] = values_off;
    obj_.maps_.push_back(std::move(m));
    const std::size_t outer = obj_.maps_.size() - 1;
    if (inner) {
      obj_.maps_.push_back(std::move(*inner));
      obj_.maps_[outer].inner_map = obj_.maps_.size() - 1;
    }
  }
  return Ok{};
}

Status Opener::init_global_data_maps() {
  for (std::size_t idx : data_shndx_) {
    const Section& s = sec(idx);
    if (s.size == 0) continue;
    if (s.size > kMaxGlobalData)
      return err(fmt::format("section '{}': {} bytes is too large for a global data map (limit {})", s.name, s.size,
                             kMaxGlobalData));
    Map m;
    m.name = internal_map_name(s.name);
    m.real_name = s.name;
    m.origin = MapOrigin::GlobalData;
    m.section = s.name;
    m.type = BPF_MAP_TYPE_ARRAY;
    m.key_size = 4;
    m.value_size = static_cast<std::uint32_t>(s.size);
    m.max_entries = 1;
    const bool ro = s.name == ".rodata" || s.name.starts_with(".rodata.");
    m.map_flags = static_cast<std::uint32_t>(BPF_F_MMAPABLE) | (ro ? static_cast<std::uint32_t>(BPF_F_RDONLY_PROG) : 0u);
    m.frozen = ro;
    if (s.type == SHT_NOBITS) m.initial_data.assign(s.size, 0);
    else m.initial_data.assign(s.data.begin(), s.data.end());
    if (obj_.btf_) {
      const std::int32_t id = obj_.btf_->find_by_name_kind(s.name, BTF_KIND_DATASEC);
      if (id > 0) m.btf_value_type_id = static_cast<std::uint32_t>(id);
    }
    data_map_of_[idx] = obj_.maps_.size();
    obj_.maps_.push_back(std::move(m));
  }
  return Ok{};
}

Status Opener::init_kconfig_map() {
  std::uint32_t end = 0;
  for (const Extern& e : obj_.externs_)
    if (e.kind == ExternKind::Kconfig) end = std::max(end, e.kconfig_offset + e.size);
  if (end == 0) return Ok{};
  if (end > kMaxGlobalData) return err(fmt::format(".kconfig: externs need {} bytes (limit {})", end, kMaxGlobalData));
  Map m;
  m.name = internal_map_name(".kconfig");
  m.real_name = ".kconfig";
  m.origin = MapOrigin::Kconfig;
  m.section = ".kconfig";
  m.type = BPF_MAP_TYPE_ARRAY;
  m.key_size = 4;
  m.value_size = end;  // libbpf: last extern's offset + size
  m.max_entries = 1;
  m.map_flags = BPF_F_MMAPABLE | BPF_F_RDONLY_PROG;
  m.frozen = true;
  m.initial_data.assign(m.value_size, 0);
  if (obj_.btf_) {
    const std::int32_t id = obj_.btf_->find_by_name_kind(".kconfig", BTF_KIND_DATASEC);
    if (id > 0) m.btf_value_type_id = static_cast<std::uint32_t>(id);
  }
  kconfig_map_ = obj_.maps_.size();
  obj_.maps_.push_back(std::move(m));
  return Ok{};
}

// .rel.maps: __array(values, ...) initialisers of prog arrays and maps of maps.
Status Opener::collect_map_slots() {
  if (!btf_maps_shndx_) return Ok{};
  auto rel = rel_of_.find(*btf_maps_shndx_);
  if (rel == rel_of_.end()) return Ok{};
  auto relocs = elf_->relocs(sec(rel->second));
  if (!relocs) {
    relocs.error().where = where_;
    return relocs.error();
  }
  const Section& s = sec(*btf_maps_shndx_);
  for (std::size_t i = 0; i < relocs->size(); ++i) {
    const Reloc& r = (*relocs)[i];
    const Symbol& sym = elf_->symbols()[r.sym];
    // The owner: the BTF-defined map with a 'values' array whose definition starts last before the offset.
    Map* owner = nullptr;
    for (Map& m : obj_.maps_) {
      if (m.origin != MapOrigin::BtfDefined || !btf_map_values_off_.count(m.name)) continue;
      if (m.section_offset <= r.offset && (!owner || m.section_offset > owner->section_offset)) owner = &m;
    }
    const std::uint64_t voff = owner ? btf_map_values_off_[owner->name] / 8 : 0;
    if (!owner || r.offset < owner->section_offset + voff || (r.offset - owner->section_offset - voff) % 8 != 0)
      return err(fmt::format("section '{}': relo #{} at offset {} (symbol '{}') is not inside a 'values' array",
                             s.name, i, r.offset, sym.name));
    const std::size_t slot = (r.offset - owner->section_offset - voff) / 8;
    if (slot >= owner->max_entries)
      return err(fmt::format("map '{}': slot [{}] is past max_entries {}", owner->name, slot, owner->max_entries));
    if (owner->init_slots.size() <= slot) owner->init_slots.resize(slot + 1);
    if (owner->type == BPF_MAP_TYPE_PROG_ARRAY) {
      if (sym.type != STT_FUNC || sym.shndx == SHN_UNDEF || sym.shndx >= elf_->sections().size() ||
          (sec(sym.shndx).flags & SHF_EXECINSTR) == 0)
        return err(fmt::format("map '{}': slot [{}]: '{}' is not a BPF program", owner->name, slot, sym.name));
      owner->init_slots[slot] = sym.name;
    } else {
      if (sym.shndx != s.index)
        return err(fmt::format("map '{}': slot [{}]: '{}' is not a map in '{}'", owner->name, slot, sym.name,
                               s.name));
      const Map* target = nullptr;
      for (const Map& m : obj_.maps_)
        if (m.origin == MapOrigin::BtfDefined && m.section_offset == sym.value) target = &m;
      if (!target) return err(fmt::format("map '{}': slot [{}]: map '{}' not found", owner->name, slot, sym.name));
      owner->init_slots[slot] = target->name;
    }
  }
  return Ok{};
}

}  // namespace userbpf::loader
