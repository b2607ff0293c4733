// Object::open: the phase pipeline (see loader.hpp), programs, relocations,
// CO-RE application and bpf-to-bpf linking.
//
// How programs are built: every function symbol of an executable section is
// a Func holding a copy of its instruction slots and the relocations that
// fall inside it. Functions of ".text" are subprograms; the others are
// programs. Relocations are recorded per Func (RelocDesc) in the relocation
// phase, CO-RE edits the Func's slots in place, and the link phase builds
// each program: its own slots first, then every .text function it reaches
// through calls or function-pointer lddw (in the order first reached),
// patching call/lddw immediates to the new relative offsets and rewriting
// map references to lddw BPF_PSEUDO_MAP_IDX(_VALUE) with the map's index.
// Invariants: slot indexes follow the kernel's numbering (an lddw counts as
// two); a Func's relocations are sorted by slot; a subprogram is appended at
// most once per program.
#include <gelf.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <set>

#include "base/hex.hpp"
#include "loader/opener.hpp"
#include "loader/uapi_compat.hpp"

namespace userbpf::loader {

namespace {
constexpr std::size_t kInsnSize = sizeof(isa::RawInsn);
constexpr const char* kTextSec = ".text";

bool is_call(const isa::RawInsn& r) {
  const isa::OpInfo* row = isa::lookup(r);
  return row && (row->form == isa::Form::Call || row->form == isa::Form::CallLocal ||
                 row->form == isa::Form::CallKfunc);
}
bool is_lddw(const isa::RawInsn& r) {
  const isa::OpInfo* row = isa::lookup(r);
  return row && row->form == isa::Form::Lddw;
}
// Sets the lddw/call source field through the table row for that source.
void set_src(isa::RawInsn& r, std::uint8_t src) { r.regs = isa::RawInsn::make_regs(r.dst(), src); }

std::string base_name(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}
}  // namespace

bool is_global_data_section(std::string_view n) {
  return n == ".data" || n == ".rodata" || n == ".bss" || n.starts_with(".data.") || n.starts_with(".rodata.");
}

// ------------------------------------------------------------------ Object
Object::Object() = default;
Object::Object(Object&&) noexcept = default;
Object& Object::operator=(Object&&) noexcept = default;
Object::~Object() = default;

const struct btf* Object::btf() const { return btf_ ? btf_->get() : nullptr; }

const Program* Object::find_program(std::string_view n) const {
  for (const auto& p : programs_)
    if (p.name == n) return &p;
  return nullptr;
}
const Map* Object::find_map(std::string_view n) const {
  for (const auto& m : maps_)
    if (m.name == n) return &m;
  return nullptr;
}
std::optional<std::size_t> Object::map_index(std::string_view n) const {
  for (std::size_t i = 0; i < maps_.size(); ++i)
    if (maps_[i].name == n) return i;
  return std::nullopt;
}

Result<Object> Object::open(const std::string& path, const OpenOptions& opts) {
  auto bytes = read_file(path);
  if (!bytes) {
    Error e = bytes.error();
    if (e.where.empty()) e.where = path;
    return e;
  }
  OpenOptions o = opts;
  if (o.object_name.empty()) {
    o.object_name = base_name(path);
  }
  Object obj;
  const std::string where = base_name(path);
  std::string nm = o.object_name;
  if (opts.object_name.empty()) nm = nm.substr(0, nm.find('.'));
  obj.name_ = nm;
  Opener op(obj, o, where);
  if (auto s = op.run(std::move(*bytes)); !s) return s.error();
  return obj;
}

Result<Object> Object::open(std::span<const std::uint8_t> bytes, const OpenOptions& opts) {
  Object obj;
  obj.name_ = opts.object_name.empty() ? std::string("mem") : opts.object_name;
  Opener op(obj, opts, obj.name_);
  if (auto s = op.run(std::vector<std::uint8_t>(bytes.begin(), bytes.end())); !s) return s.error();
  return obj;
}

// ------------------------------------------------------------------ Opener
Error Opener::err(std::string msg, int code) const {
  Error e = make_error(code, std::move(msg));
  e.where = where_;
  return e;
}

Status Opener::run(std::vector<std::uint8_t> bytes) {
  if (auto s = elf_init(std::move(bytes)); !s) return s;
  if (auto s = collect_sections(); !s) return s;
  if (auto s = license_version(); !s) return s;
  if (auto s = load_btf(); !s) return s;
  if (auto s = collect_externs(); !s) return s;
  if (auto s = fixup_btf(); !s) return s;
  if (auto s = init_maps(); !s) return s;
  if (auto s = resolve_externs(); !s) return s;
  if (auto s = init_programs(); !s) return s;
  if (auto s = collect_relos(); !s) return s;
  if (auto s = apply_core(); !s) return s;
  return link();
}

Status Opener::elf_init(std::vector<std::uint8_t> bytes) {
  auto f = ElfFile::open(std::move(bytes), where_);
  if (!f) return f.error();
  elf_ = std::move(*f);
  return Ok{};
}

Status Opener::collect_sections() {
  for (const Section& s : elf_->sections()) {
    if (s.index == 0) continue;
    if (s.name == "license" || s.name == "version") continue;
    if (s.name == "maps") {
      legacy_maps_shndx_ = s.index;
    } else if (s.name == ".maps") {
      btf_maps_shndx_ = s.index;
    } else if (s.name == ".BTF") {
      btf_shndx_ = s.index;
    } else if (s.name == ".BTF.ext") {
      btf_ext_shndx_ = s.index;
    } else if (s.type == SHT_NOBITS && (s.name.starts_with(".rel") || (s.flags & SHF_INFO_LINK) != 0)) {
      // a relocation section without data would silently drop its relocations
      return err(fmt::format("section '{}' (#{}): relocation section of type SHT_NOBITS (expected SHT_REL)", s.name,
                             s.index));
    } else if (s.type == SHT_REL) {
      if (s.info == 0 || s.info >= elf_->sections().size())
        return err(fmt::format("section '{}': relocated section index {} out of range", s.name, s.info));
      if (s.link != 0 && (s.link >= elf_->sections().size() || elf_->sections()[s.link].type != SHT_SYMTAB))
        return err(fmt::format("section '{}': symbol table index {} is not the symbol table", s.name, s.link));
      rel_of_[s.info] = s.index;
    } else if (s.type == SHT_PROGBITS && (s.flags & SHF_EXECINSTR) != 0) {
      if (s.size == 0) continue;
      if (s.size % kInsnSize != 0)
        return err(fmt::format("section '{}': size {} is not a multiple of the instruction size", s.name, s.size));
      exec_shndx_.push_back(s.index);
      if (s.name == kTextSec) text_shndx_ = s.index;
    } else if ((s.type == SHT_PROGBITS || s.type == SHT_NOBITS) && is_global_data_section(s.name)) {
      data_shndx_.push_back(s.index);
    } else if (s.type == SHT_RELA) {
      return err(fmt::format("section '{}': RELA relocations are not used by BPF objects", s.name));
    }
  }
  return Ok{};
}

Status Opener::license_version() {
  if (const Section* s = elf_->find("license"); s && !s->data.empty()) {
    const auto* p = reinterpret_cast<const char*>(s->data.data());
    const std::size_t n = std::min<std::size_t>(s->data.size(), 63);
    obj_.license_.assign(p, strnlen(p, n));
  }
  if (const Section* s = elf_->find("version")) {
    if (s->data.size() != 4) return err(fmt::format("section 'version': invalid size {} (expected 4)", s->data.size()));
    std::memcpy(&obj_.kern_version_, s->data.data(), 4);
  }
  return Ok{};
}

Status Opener::load_btf() {
  if (!btf_shndx_) return Ok{};
  const Section& s = sec(*btf_shndx_);
  obj_.btf_bytes_.assign(s.data.begin(), s.data.end());
  auto b = Btf::parse(s.data, where_ + ": section '.BTF'");
  if (!b) return b.error();
  obj_.btf_ = std::move(*b);
  if (btf_ext_shndx_) {
    auto ext = parse_btf_ext(sec(*btf_ext_shndx_).data, *obj_.btf_, where_ + ": section '.BTF.ext'");
    if (!ext) return ext.error();
    ext_ = std::move(*ext);
  }
  return Ok{};
}

Status Opener::collect_externs() {
  struct Tmp {
    Extern e;
    std::uint32_t align = 1;
  };
  std::vector<Tmp> found;
  for (const Symbol& sym : elf_->symbols()) {
    if (sym.index == 0 || sym.shndx != SHN_UNDEF || sym.name.empty()) continue;
    if (sym.bind != STB_GLOBAL && sym.bind != STB_WEAK) continue;
    if (!obj_.btf_) return err(fmt::format("extern '{}': externs need BTF (.BTF section missing)", sym.name));
    const Btf& b = *obj_.btf_;
    std::uint32_t id = 0;
    for (std::uint32_t i = 1; i < b.count() && id == 0; ++i) {
      const struct btf_type* t = b.type(i);
      const auto k = btf_kind_of(t);
      if ((k == BTF_KIND_VAR || k == BTF_KIND_FUNC) && b.name(t->name_off) == sym.name) id = i;
    }
    if (id == 0) return err(fmt::format("extern '{}': failed to find BTF VAR or FUNC", sym.name));
    // The DATASEC that lists it decides the kind.
    std::string dsec;
    for (std::uint32_t i = 1; i < b.count() && dsec.empty(); ++i) {
      const struct btf_type* t = b.type(i);
      if (btf_kind_of(t) != BTF_KIND_DATASEC) continue;
      const struct btf_var_secinfo* vs = btf_secinfos_of(t);
      for (std::uint32_t j = 0; j < btf_vlen_of(t); ++j)
        if (vs[j].type == id) dsec = std::string(b.name(t->name_off));
    }
    Tmp x;
    x.e.name = sym.name;
    x.e.weak = sym.bind == STB_WEAK;
    x.e.btf_id = id;
    const struct btf_type* t = b.type(id);
    x.e.btf_type_id = b.skip_mods_and_typedefs(t->type);
    if (dsec == ".kconfig") {
      if (btf_kind_of(t) != BTF_KIND_VAR) return err(fmt::format("extern (kcfg) '{}': not a variable", sym.name));
      const std::int64_t sz = b.resolve_size(t->type);
      const int al = btf__align_of(b.get(), t->type);
      if (sz <= 0 || al <= 0) return err(fmt::format("extern (kcfg) '{}': type has unknown size", sym.name));
      x.e.kind = ExternKind::Kconfig;
      x.e.size = static_cast<std::uint32_t>(sz);
      x.align = static_cast<std::uint32_t>(al);
    } else if (dsec == ".ksyms") {
      x.e.kind = btf_kind_of(t) == BTF_KIND_FUNC ? ExternKind::KsymFunc : ExternKind::KsymVar;
    } else {
      return err(fmt::format("extern '{}': unsupported extern section '{}' (expected .kconfig or .ksyms)", sym.name,
                             dsec.empty() ? "<none>" : dsec));
    }
    found.push_back(std::move(x));
  }
  // libbpf's order: kconfig first (by alignment descending, size ascending), then by name.
  std::sort(found.begin(), found.end(), [](const Tmp& a, const Tmp& b) {
    const bool ak = a.e.kind == ExternKind::Kconfig, bk = b.e.kind == ExternKind::Kconfig;
    if (ak != bk) return ak;
    if (ak) {
      if (a.align != b.align) return a.align > b.align;
      if (a.e.size != b.e.size) return a.e.size < b.e.size;
    }
    return a.e.name < b.e.name;
  });
  std::uint32_t off = 0;
  for (Tmp& x : found) {
    if (x.e.kind == ExternKind::Kconfig) {
      off = (off + x.align - 1) / x.align * x.align;
      x.e.kconfig_offset = off;
      off += x.e.size;
    }
    obj_.externs_.push_back(std::move(x.e));
  }
  return Ok{};
}

// clang leaves DATASEC sizes and variable offsets at 0; the kernel rejects
// that. As libbpf does, each DATASEC gets its ELF section's size and each
// variable its symbol's offset (.kconfig: the extern layout), sorted by
// offset. Type ids do not change. The records are edited in place inside
// libbpf's copy of the BTF (as libbpf does itself), so btf__raw_data() then
// returns the fixed blob.
Status Opener::fixup_btf() {
  if (!obj_.btf_) return Ok{};
  Btf& b = *obj_.btf_;
  std::uint32_t kconfig_end = 0;
  for (const Extern& e : obj_.externs_)
    if (e.kind == ExternKind::Kconfig) kconfig_end = std::max(kconfig_end, e.kconfig_offset + e.size);
  for (std::uint32_t id = 1; id < b.count(); ++id) {
    auto* t = const_cast<struct btf_type*>(b.type(id));
    if (btf_kind_of(t) != BTF_KIND_DATASEC) continue;
    const std::string sname(b.name(t->name_off));
    auto* vs = const_cast<struct btf_var_secinfo*>(btf_secinfos_of(t));
    const std::uint32_t n = btf_vlen_of(t);
    if (sname == ".kconfig") {
      t->size = kconfig_end;
      for (std::uint32_t i = 0; i < n; ++i) {
        const std::string vname(b.type_name(vs[i].type));
        for (const Extern& e : obj_.externs_)
          if (e.kind == ExternKind::Kconfig && e.name == vname) vs[i].offset = e.kconfig_offset;
      }
    } else if (sname == ".ksyms") {
      continue;  // extern variables and functions: no storage
    } else {
      const Section* s = elf_->find(sname);
      if (!s) {
        obj_.warnings_.push_back(fmt::format("{}: BTF DATASEC '{}' has no ELF section", where_, sname));
        continue;
      }
      if (s->size > UINT32_MAX) return err(fmt::format("section '{}': too large for BTF", sname));
      t->size = static_cast<std::uint32_t>(s->size);
      for (std::uint32_t i = 0; i < n; ++i) {
        const struct btf_type* var = b.type(vs[i].type);
        if (!var || btf_kind_of(var) != BTF_KIND_VAR) continue;
        const std::string vname(b.name(var->name_off));
        const Symbol* sym = nullptr;
        for (const Symbol& y : elf_->symbols())
          if (y.shndx == s->index && y.name == vname && y.type != STT_SECTION) sym = &y;
        if (!sym) return err(fmt::format("BTF DATASEC '{}': variable '{}' has no ELF symbol", sname, vname));
        if (sym->value > UINT32_MAX || sym->value + vs[i].size > s->size)
          return err(fmt::format("BTF DATASEC '{}': variable '{}' at {} (+{}) is outside the section", sname, vname,
                                 sym->value, vs[i].size));
        vs[i].offset = static_cast<std::uint32_t>(sym->value);
      }
    }
    std::sort(vs, vs + n, [](const struct btf_var_secinfo& x, const struct btf_var_secinfo& y) {
      return x.offset < y.offset;
    });
  }
  __u32 size = 0;
  const void* raw = btf__raw_data(b.get(), &size);
  if (!raw) return err("BTF: failed to serialise after fix-up");
  const auto* p = static_cast<const std::uint8_t*>(raw);
  obj_.btf_bytes_.assign(p, p + size);
  return Ok{};
}

Status Opener::init_programs() {
  for (std::size_t idx : exec_shndx_) {
    const Section& s = sec(idx);
    const bool is_text = text_shndx_ && idx == *text_shndx_;
    std::vector<const Symbol*> fsyms;
    for (const Symbol& y : elf_->symbols())
      if (y.shndx == idx && y.type == STT_FUNC) fsyms.push_back(&y);
    std::sort(fsyms.begin(), fsyms.end(), [](const Symbol* a, const Symbol* b) { return a->value < b->value; });
    struct Range {
      std::string name;
      std::size_t off, size;
      bool local;
    };
    std::vector<Range> ranges;
    if (fsyms.empty()) {
      // Old clang: no STT_FUNC symbols; one program per section, named by a global symbol at 0.
      std::string name = s.name;
      for (const Symbol& y : elf_->symbols())
        if (y.shndx == idx && y.value == 0 && y.bind == STB_GLOBAL && !y.name.empty()) name = y.name;
      ranges.push_back({name, 0, s.size, false});
    } else {
      for (std::size_t i = 0; i < fsyms.size(); ++i) {
        const Symbol& y = *fsyms[i];
        std::size_t size = y.size;
        if (size == 0) size = (i + 1 < fsyms.size() ? fsyms[i + 1]->value : s.size) - y.value;
        ranges.push_back({y.name, y.value, size, y.bind == STB_LOCAL});
      }
    }
    for (const Range& r : ranges) {
      if (r.name.empty()) return err(fmt::format("sec '{}': function at offset {} has no name", s.name, r.off));
      if (r.off % kInsnSize != 0 || r.size % kInsnSize != 0 || r.size == 0)
        return err(fmt::format("sec '{}': program '{}' at offset {} size {} is not instruction-aligned", s.name,
                               r.name, r.off, r.size));
      if (r.off > s.size || r.size > s.size - r.off)
        return err(fmt::format("sec '{}': program '{}' at offset {} crosses section boundary", s.name, r.name, r.off));
      if (!is_text && r.local)
        return err(fmt::format("sec '{}': program '{}' is static and not supported", s.name, r.name), ENOTSUP);
      Func f;
      f.name = r.name;
      f.shndx = idx;
      f.off = r.off;
      f.size = r.size;
      f.is_subprog = is_text;
      f.insns.resize(r.size / kInsnSize);
      std::memcpy(f.insns.data(), s.data.data() + r.off, r.size);
      if (!is_text) {
        Program p;
        p.name = r.name;
        std::string_view secname = s.name;
        if (!secname.empty() && secname.front() == '?') {
          p.autoload = false;
          secname.remove_prefix(1);
        }
        p.section = std::string(secname);
        p.section_offset = r.off;
        p.own_insns = f.insns.size();
        p.sec_def = find_sec_def(secname);
        if (p.sec_def) {
          p.prog_type = p.sec_def->prog_type;
          p.expected_attach_type = p.sec_def->attach_type;
          if (p.sec_def->flags & kSecSleepable) p.prog_flags |= BPF_F_SLEEPABLE;
          if (p.sec_def->flags & kSecXdpFrags) p.prog_flags |= BPF_F_XDP_HAS_FRAGS;
          p.attach_target = std::string(sec_attach_target(*p.sec_def, secname));
        } else {
          obj_.warnings_.push_back(fmt::format("{}: prog '{}': unrecognized ELF section name '{}'", where_, r.name,
                                               s.name));
        }
        f.program = obj_.programs_.size();
        obj_.programs_.push_back(std::move(p));
      }
      funcs_.push_back(std::move(f));
    }
  }
  return Ok{};
}

std::optional<std::size_t> Opener::func_at(std::size_t shndx, std::size_t byte_off) const {
  for (std::size_t i = 0; i < funcs_.size(); ++i) {
    const Func& f = funcs_[i];
    if (f.shndx == shndx && byte_off >= f.off && byte_off < f.off + f.size) return i;
  }
  return std::nullopt;
}

Status Opener::record_reloc(Func& f, const Reloc& r, std::size_t relo_no) {
  const Symbol& sym = elf_->symbols()[r.sym];
  const std::size_t li = (r.offset - f.off) / kInsnSize;
  const std::string pfx = fmt::format("prog '{}': relo #{}", f.name, relo_no);
  auto rerr = [&](std::string msg) {
    Error e = err(fmt::format("{}: insn #{}: {}", pfx, li, msg));
    return e;
  };
  if (li >= f.insns.size()) return rerr("instruction outside the function");
  isa::RawInsn& raw = f.insns[li];
  RelocDesc d;
  d.insn = li;
  d.relo_no = relo_no;
  const bool call = is_call(raw);
  const bool ld = is_lddw(raw);
  if (!call && !ld)
    return rerr(fmt::format("invalid relo against '{}' for insn code 0x{:02x} (not lddw or call)", sym.name,
                            raw.opcode));
  if (ld && li + 1 >= f.insns.size()) return rerr("lddw at the end of the function");
  if (sym.shndx == SHN_UNDEF) {
    if (sym.index == 0 || sym.name.empty()) return rerr("relocation against the null symbol");
    auto it = std::find_if(obj_.externs_.begin(), obj_.externs_.end(),
                           [&](const Extern& e) { return e.name == sym.name; });
    if (it == obj_.externs_.end()) return rerr(fmt::format("extern relo against unknown extern '{}'", sym.name));
    d.extern_idx = static_cast<std::size_t>(it - obj_.externs_.begin());
    if (call) {
      if (it->kind != ExternKind::KsymFunc) return rerr(fmt::format("call to extern '{}' which is not a kfunc", sym.name));
      d.kind = RelocDesc::Kind::KsymFunc;
    } else {
      d.kind = it->kind == ExternKind::Kconfig ? RelocDesc::Kind::Kconfig : RelocDesc::Kind::KsymVar;
    }
    f.relos.push_back(d);
    return Ok{};
  }
  if (call) {
    if (raw.src() != isa::kPseudoCall) return rerr(fmt::format("incorrect bpf_call opcode (src {})", raw.src()));
    if (!text_shndx_ || sym.shndx != *text_shndx_) {
      const std::string sname = sym.shndx < elf_->sections().size() ? sec(sym.shndx).name : fmt::format("#{}", sym.shndx);
      return rerr(fmt::format("bad call relo against '{}' in section '{}'", sym.name, sname));
    }
    if (sym.value % kInsnSize != 0) return rerr(fmt::format("bad call relo offset: {}", sym.value));
    const std::int64_t t = static_cast<std::int64_t>(sym.value / kInsnSize) + raw.imm + 1;
    if (t < 0 || static_cast<std::uint64_t>(t) * kInsnSize >= sec(*text_shndx_).size)
      return rerr(fmt::format("call target {} outside '.text'", t));
    d.kind = RelocDesc::Kind::Call;
    d.target_sec_insn = static_cast<std::size_t>(t);
    f.relos.push_back(d);
    return Ok{};
  }
  if (sym.shndx >= SHN_LORESERVE || sym.shndx == 0)
    return rerr(fmt::format("invalid relo against '{}' in special section 0x{:x}; forgot to initialize global var?",
                            sym.name, sym.shndx));
  const Section& ts = sec(sym.shndx);
  if (text_shndx_ && sym.shndx == *text_shndx_) {
    if (sym.value % kInsnSize != 0 || raw.imm % static_cast<std::int32_t>(kInsnSize) != 0)
      return rerr(fmt::format("bad subprog addr relo against '{}' at offset {}+{}", sym.name, sym.value, raw.imm));
    const std::int64_t t = static_cast<std::int64_t>(sym.value + static_cast<std::uint64_t>(static_cast<std::int64_t>(raw.imm))) /
                           static_cast<std::int64_t>(kInsnSize);
    if (t < 0 || static_cast<std::uint64_t>(t) * kInsnSize >= ts.size)
      return rerr(fmt::format("function pointer target {} outside '.text'", t));
    d.kind = RelocDesc::Kind::SubprogAddr;
    d.target_sec_insn = static_cast<std::size_t>(t);
    f.relos.push_back(d);
    return Ok{};
  }
  if ((legacy_maps_shndx_ && sym.shndx == *legacy_maps_shndx_) || (btf_maps_shndx_ && sym.shndx == *btf_maps_shndx_)) {
    const bool legacy = legacy_maps_shndx_ && sym.shndx == *legacy_maps_shndx_;
    for (std::size_t i = 0; i < obj_.maps_.size(); ++i) {
      const Map& m = obj_.maps_[i];
      const bool kind_ok = legacy ? (m.origin == MapOrigin::Legacy || m.origin == MapOrigin::Iproute2)
                                  : m.origin == MapOrigin::BtfDefined;
      if (kind_ok && m.section_offset == sym.value) {
        d.kind = RelocDesc::Kind::MapLd;
        d.map_idx = i;
        f.relos.push_back(d);
        return Ok{};
      }
    }
    return rerr(fmt::format("map relo failed to find map for section '{}', off {}", ts.name, sym.value));
  }
  if (auto it = data_map_of_.find(sym.shndx); it != data_map_of_.end()) {
    const std::int64_t off = static_cast<std::int64_t>(sym.value) + raw.imm;
    const Map& m = obj_.maps_[it->second];
    if (off < 0 || static_cast<std::uint64_t>(off) >= m.value_size)
      return rerr(fmt::format("data relo against '{}' offset {} outside '{}' ({} bytes)", sym.name, off, ts.name,
                              m.value_size));
    d.kind = RelocDesc::Kind::MapValue;
    d.map_idx = it->second;
    d.value_off = static_cast<std::uint64_t>(off);
    f.relos.push_back(d);
    return Ok{};
  }
  return rerr(fmt::format("relocation against '{}' in section '{}' which is not a map, data or code section",
                          sym.name, ts.name));
}

Status Opener::collect_relos() {
  for (std::size_t idx : exec_shndx_) {
    auto it = rel_of_.find(idx);
    if (it == rel_of_.end()) continue;
    auto relocs = elf_->relocs(sec(it->second));
    if (!relocs) {
      relocs.error().where = where_;
      return relocs.error();
    }
    for (std::size_t i = 0; i < relocs->size(); ++i) {
      const Reloc& r = (*relocs)[i];
      if (r.offset % kInsnSize != 0)
        return err(fmt::format("sec '{}': relo #{}: offset {} is not instruction-aligned", sec(idx).name, i, r.offset));
      auto fi = func_at(idx, r.offset);
      if (!fi) {
        obj_.warnings_.push_back(fmt::format("{}: sec '{}': relo #{} for insn #{} not in any program, skipped", where_,
                                             sec(idx).name, i, r.offset / kInsnSize));
        continue;
      }
      if (auto s = record_reloc(funcs_[*fi], r, i); !s) return s;
    }
  }
  for (Func& f : funcs_)
    std::stable_sort(f.relos.begin(), f.relos.end(), [](const RelocDesc& a, const RelocDesc& b) { return a.insn < b.insn; });
  return Ok{};
}

Status Opener::apply_core() {
  if (!ext_ || !obj_.btf_) return Ok{};
  std::size_t total = 0;
  for (const auto& s : ext_->core_relos) total += s.records.size();
  if (total == 0) return Ok{};
  // Target BTF: in-memory, file, or vmlinux.
  if (!opts_.target_btf_data.empty()) {
    const auto& d = opts_.target_btf_data;
    if (d.size() >= 4 && std::memcmp(d.data(), "\x7f" "ELF", 4) == 0) {
      auto ef = ElfFile::open(std::vector<std::uint8_t>(d.begin(), d.end()), "target BTF");
      if (!ef) return ef.error();
      const Section* bs = (*ef)->find(".BTF");
      if (!bs) return err("CO-RE: target BTF object has no .BTF section");
      auto b = Btf::parse(bs->data, "target BTF");
      if (!b) return b.error();
      target_btf_ = std::move(*b);
    } else {
      auto b = Btf::parse(d, "target BTF");
      if (!b) return b.error();
      target_btf_ = std::move(*b);
    }
  } else if (!opts_.target_btf_path.empty()) {
    auto b = Btf::parse_file(opts_.target_btf_path);
    if (!b) return b.error();
    target_btf_ = std::move(*b);
  } else if (opts_.use_vmlinux_btf) {
    auto b = Btf::parse_file(opts_.vmlinux_btf_path);
    if (!b) {
      Error e = b.error();
      e.message = fmt::format("CO-RE relocations need a target BTF: {}", e.message);
      return e;
    }
    target_btf_ = std::move(*b);
  } else {
    return err("CO-RE relocations present but no target BTF given (OpenOptions::target_btf_*)");
  }
  const CoreTarget target(*target_btf_);
  const Btf& local = *obj_.btf_;
  for (const auto& es : ext_->core_relos) {
    const Section* s = elf_->find(es.section);
    if (!s) return err(fmt::format(".BTF.ext: CO-RE relocations for unknown section '{}'", es.section));
    for (std::size_t i = 0; i < es.records.size(); ++i) {
      const ExtCoreRelo& rec = es.records[i];
      if (rec.insn_off % kInsnSize != 0)
        return err(fmt::format("sec '{}': CO-RE relo #{}: insn offset {} not aligned", es.section, i, rec.insn_off));
      auto fi = func_at(s->index, rec.insn_off);
      if (!fi) continue;  // e.g. an overridden weak function
      Func& f = funcs_[*fi];
      if (f.program && !obj_.programs_[*f.program].autoload) continue;
      const std::size_t li = (rec.insn_off - f.off) / kInsnSize;
      const std::string access(local.name(rec.access_str_off));
      const std::string tname(local.type_name(rec.type_id));
      auto pfx = [&] {
        return fmt::format("prog '{}': CO-RE relo #{} ({} '{}' access '{}')", f.name, i, core_kind_name(rec.kind),
                           tname, access);
      };
      auto res = core_calc(local, target, rec.type_id, access, rec.kind);
      if (!res) {
        Error e = res.error();
        e.where = where_;
        e.message = fmt::format("{}: insn #{}: {}", pfx(), li, e.message);
        return e;
      }
      if (auto st = core_patch(f.insns, li, *res, rec.kind); !st) {
        Error e = st.error();
        e.where = where_;
        e.insn.reset();
        e.message = fmt::format("{}: insn #{}: {}", pfx(), li, e.message);
        return e;
      }
      CoreRelo cr;
      cr.insn = li;
      cr.kind = rec.kind;
      cr.type_id = rec.type_id;
      cr.access = access;
      cr.type_name = tname;
      cr.poisoned = res->poison;
      cr.orig_value = res->orig_value;
      cr.new_value = res->new_value;
      cr.message = res->note;
      if (res->poison) {
        const std::string msg = fmt::format("{}: {}: insn #{}: {}; instruction poisoned (call {:#x})", where_, pfx(),
                                            li, res->note, kPoisonHelperId);
        if (opts_.fail_on_core_poison) return err(fmt::format("{}: insn #{}: {}", pfx(), li, res->note));
        obj_.warnings_.push_back(msg);
      }
      f.core.push_back(std::move(cr));
    }
  }
  return Ok{};
}

Status Opener::link() {
  const Btf* b = obj_.btf_.get();
  auto ext_for = [&](const auto& secs, const Func& f) {
    using Rec = typename std::decay_t<decltype(secs)>::value_type;
    const Rec* found = nullptr;
    for (const auto& s : secs)
      if (s.section == sec(f.shndx).name) found = &s;
    return found;
  };
  for (std::size_t fi = 0; fi < funcs_.size(); ++fi) {
    if (funcs_[fi].is_subprog) continue;
    Program& p = obj_.programs_[*funcs_[fi].program];
    std::vector<isa::RawInsn> out = funcs_[fi].insns;
    std::vector<std::pair<std::size_t, std::size_t>> placed{{fi, 0}};  // (func, base)
    auto base_of = [&](std::size_t g) -> std::optional<std::size_t> {
      for (auto& [h, base] : placed)
        if (h == g) return base;
      return std::nullopt;
    };
    const std::string ppfx = fmt::format("prog '{}'", p.name);
    for (std::size_t k = 0; k < placed.size(); ++k) {
      const std::size_t gi = placed[k].first;
      const std::size_t base = placed[k].second;
      const Func g = funcs_[gi];  // copy: funcs_ is not modified, but keep references simple
      auto place = [&](std::size_t target_sec_insn, std::size_t relo_no, std::size_t li,
                       std::size_t shndx) -> Result<std::size_t> {
        auto ti = func_at(shndx, target_sec_insn * kInsnSize);
        if (!ti)
          return err(fmt::format("{}: relo #{}: insn #{}: no function at insn {} of '{}'", ppfx, relo_no, li,
                                 target_sec_insn, sec(shndx).name));
        const Func& t = funcs_[*ti];
        if (!t.is_subprog && *ti != gi)
          return err(fmt::format("{}: insn #{}: call into program '{}' (only .text subprograms can be called)", ppfx,
                                 li, t.name));
        auto tb = base_of(*ti);
        if (!tb) {
          tb = out.size();
          out.insert(out.end(), t.insns.begin(), t.insns.end());
          placed.emplace_back(*ti, *tb);
          p.subprograms.push_back(t.name);
        }
        return *tb + (target_sec_insn - t.off / kInsnSize);
      };
      std::set<std::size_t> reloc_slots;
      for (const RelocDesc& d : g.relos) {
        reloc_slots.insert(d.insn);
        const std::size_t pc = base + d.insn;
        switch (d.kind) {
          case RelocDesc::Kind::Call:
          case RelocDesc::Kind::SubprogAddr: {
            auto t = place(d.target_sec_insn, d.relo_no, d.insn, *text_shndx_);
            if (!t) return t.error();
            out[pc].imm = static_cast<std::int32_t>(static_cast<std::int64_t>(*t) - static_cast<std::int64_t>(pc + 1));
            if (d.kind == RelocDesc::Kind::SubprogAddr) {
              set_src(out[pc], isa::kPseudoFunc);
              out[pc + 1].imm = 0;
            }
            break;
          }
          case RelocDesc::Kind::MapLd:
            set_src(out[pc], isa::kPseudoMapIdx);
            out[pc].imm = static_cast<std::int32_t>(d.map_idx);
            out[pc + 1].imm = 0;
            break;
          case RelocDesc::Kind::MapValue:
            set_src(out[pc], isa::kPseudoMapIdxValue);
            out[pc].imm = static_cast<std::int32_t>(d.map_idx);
            out[pc + 1].imm = static_cast<std::int32_t>(d.value_off);
            break;
          case RelocDesc::Kind::Kconfig: {
            if (!kconfig_map_) return err(fmt::format("{}: insn #{}: .kconfig map missing", ppfx, pc));
            const Extern& e = obj_.externs_[d.extern_idx];
            set_src(out[pc], isa::kPseudoMapIdxValue);
            out[pc + 1].imm = static_cast<std::int32_t>(e.kconfig_offset) + out[pc].imm;
            out[pc].imm = static_cast<std::int32_t>(*kconfig_map_);
            break;
          }
          case RelocDesc::Kind::KsymVar: {
            // lddw of a ksym (variable, or a kfunc's address for bpf_ksym_exists)
            const Extern& e = obj_.externs_[d.extern_idx];
            if (opts_.externs.resolve) {  // resolved: the host's value; weak and missing: 0 (externs.cpp)
              set_src(out[pc], 0);
              out[pc].imm = static_cast<std::int32_t>(static_cast<std::uint32_t>(e.value));
              out[pc + 1].imm = static_cast<std::int32_t>(static_cast<std::uint32_t>(e.value >> 32));
            } else {
              set_src(out[pc], isa::kPseudoBtfId);
              out[pc].imm = 0;
              out[pc + 1].imm = 0;
            }
            p.extern_uses.push_back({pc, d.extern_idx});
            break;
          }
          case RelocDesc::Kind::KsymFunc: {
            const Extern& e = obj_.externs_[d.extern_idx];
            out[pc].off = 0;
            if (opts_.externs.resolve && !e.resolved) {  // weak kfunc not found: libbpf's poisoned call
              set_src(out[pc], 0);
              out[pc].imm = kPoisonKfuncBase + static_cast<std::int32_t>(d.extern_idx);
            } else {
              set_src(out[pc], isa::kPseudoKfuncCall);
              out[pc].imm = static_cast<std::int32_t>(static_cast<std::uint32_t>(e.value));
            }
            p.extern_uses.push_back({pc, d.extern_idx});
            break;
          }
        }
      }
      // Calls and function pointers clang resolved itself (no relocation): same-section targets.
      for (std::size_t li = 0; li < g.insns.size(); ++li) {
        if (reloc_slots.count(li)) continue;
        const isa::RawInsn& r = g.insns[li];
        const bool local_call = is_call(r) && r.src() == isa::kPseudoCall;
        const bool func_ptr = is_lddw(r) && r.src() == isa::kPseudoFunc;
        if (!local_call && !func_ptr) continue;
        const std::int64_t t = static_cast<std::int64_t>(g.off / kInsnSize + li) + 1 + r.imm;
        if (t < 0 || static_cast<std::uint64_t>(t) * kInsnSize >= sec(g.shndx).size)
          return err(fmt::format("{}: insn #{}: call target {} outside section '{}'", ppfx, base + li, t,
                                 sec(g.shndx).name));
        auto tgt = place(static_cast<std::size_t>(t), 0, li, g.shndx);
        if (!tgt) return tgt.error();
        out[base + li].imm =
            static_cast<std::int32_t>(static_cast<std::int64_t>(*tgt) - static_cast<std::int64_t>(base + li + 1));
        if (is_lddw(r)) ++li;
      }
      // func/line info and CO-RE records of g, rebased.
      if (ext_ && b) {
        if (const auto* fs = ext_for(ext_->func_info, g)) {
          for (const ExtFuncInfo& r : fs->records)
            if (r.insn_off >= g.off && r.insn_off < g.off + g.size)
              p.func_info.push_back({base + (r.insn_off - g.off) / kInsnSize, r.type_id, std::string(b->type_name(r.type_id))});
        }
        if (const auto* ls = ext_for(ext_->line_info, g)) {
          for (const ExtLineInfo& r : ls->records)
            if (r.insn_off >= g.off && r.insn_off < g.off + g.size) {
              LineInfo l;
              l.insn = base + (r.insn_off - g.off) / kInsnSize;
              l.file = std::string(b->name(r.file_name_off));
              l.line_text = std::string(b->name(r.line_off));
              l.line = r.line_col >> 10;
              l.column = r.line_col & 0x3ff;
              l.file_name_off = r.file_name_off;
              l.line_off = r.line_off;
              p.line_info.push_back(std::move(l));
            }
        }
      }
      for (const CoreRelo& c : g.core) {
        CoreRelo c2 = c;
        c2.insn = base + c.insn;
        p.core_relos.push_back(std::move(c2));
      }
    }
    auto dec = isa::decode(out);
    if (!dec) {
      Error e = dec.error();
      e.where = fmt::format("{}: {}", where_, ppfx);
      return e;
    }
    p.insns = std::move(*dec);
  }
  return Ok{};
}

}  // namespace userbpf::loader
