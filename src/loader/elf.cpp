// ELF reading through libelf, with every index and range checked up front.
//
// Invariants after ElfFile::open succeeds: 64-bit little-endian ELF of
// machine EM_BPF; every section has a name; section data spans lie inside the
// file; every symbol's st_shndx is SHN_UNDEF, a special index (>= SHN_LORESERVE)
// or a valid section index. Relocations are checked when read (relocs()).
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>

#include <fmt/format.h>

#include <cstddef>
#include <cstring>

#include "loader/internal.hpp"

#ifndef EM_BPF
#define EM_BPF 247
#endif

namespace userbpf::loader {
namespace {

Error elf_error(const std::string& where, std::string msg) {
  Error e = make_error(EINVAL, std::move(msg));
  e.where = where;
  return e;
}

std::string libelf_msg() {
  const char* m = elf_errmsg(-1);
  return m ? m : "unknown libelf error";
}

}  // namespace

ElfFile::~ElfFile() {
  if (elf_) elf_end(static_cast<Elf*>(elf_));
}

const Section* ElfFile::find(std::string_view name) const {
  for (const auto& s : sections_)
    if (s.name == name) return &s;
  return nullptr;
}

Result<std::unique_ptr<ElfFile>> ElfFile::open(std::vector<std::uint8_t> bytes, const std::string& where) {
  if (elf_version(EV_CURRENT) == EV_NONE) return elf_error(where, "failed to init libelf: " + libelf_msg());
  std::unique_ptr<ElfFile> f(new ElfFile());
  f->bytes_ = std::move(bytes);
  f->where_ = where;
  if (f->bytes_.size() < EI_NIDENT || std::memcmp(f->bytes_.data(), ELFMAG, SELFMAG) != 0)
    return elf_error(where, "not an ELF file (bad magic)");
  if (f->bytes_.size() < sizeof(Elf64_Ehdr))
    return elf_error(where, fmt::format("truncated ELF header ({} bytes, need {})", f->bytes_.size(),
                                        sizeof(Elf64_Ehdr)));
  Elf* elf = elf_memory(reinterpret_cast<char*>(f->bytes_.data()), f->bytes_.size());
  if (!elf) return elf_error(where, "failed to open ELF: " + libelf_msg());
  f->elf_ = elf;
  if (elf_kind(elf) != ELF_K_ELF) return elf_error(where, "not an ELF object");
  if (gelf_getclass(elf) != ELFCLASS64) return elf_error(where, "not a 64-bit ELF object");
  GElf_Ehdr eh;
  if (!gelf_getehdr(elf, &eh)) return elf_error(where, "failed to read ELF header: " + libelf_msg());
  if (eh.e_ident[EI_DATA] != ELFDATA2LSB)
    return elf_error(where, "big-endian BPF objects are not supported (host is little-endian)");
  if (eh.e_type != ET_REL) return elf_error(where, fmt::format("not a relocatable object (e_type {})", eh.e_type));
  if (eh.e_machine != EM_BPF && eh.e_machine != EM_NONE)
    return elf_error(where, fmt::format("not a BPF object (e_machine {})", eh.e_machine));
  // libelf reads section headers at sizeof(Elf64_Shdr) strides whatever
  // e_shentsize says: a different size is a damaged header, not a format.
  if (eh.e_shoff != 0 && eh.e_shentsize != sizeof(Elf64_Shdr)) {
    Error e = elf_error(where, fmt::format("ELF header: e_shentsize {} is not the size of a section header ({})",
                                           eh.e_shentsize, sizeof(Elf64_Shdr)));
    e.offset = offsetof(Elf64_Ehdr, e_shentsize);
    return e;
  }
  // Section headers must lie inside the file (libelf checks too, we give the byte offset).
  if (eh.e_shnum != 0 && (eh.e_shoff > f->bytes_.size() ||
                          static_cast<std::uint64_t>(eh.e_shnum) * eh.e_shentsize > f->bytes_.size() - eh.e_shoff)) {
    Error e = elf_error(where, fmt::format("section header table ({} entries) extends past the end of the file",
                                           eh.e_shnum));
    e.offset = eh.e_shoff;
    return e;
  }
  std::size_t shstrndx = 0;
  if (elf_getshdrstrndx(elf, &shstrndx) != 0) return elf_error(where, "failed to get section names: " + libelf_msg());
  std::size_t shnum = 0;
  if (elf_getshdrnum(elf, &shnum) != 0) return elf_error(where, "failed to count sections: " + libelf_msg());
  if (shstrndx >= shnum) return elf_error(where, fmt::format("section name table index {} out of range", shstrndx));

  f->sections_.resize(shnum);
  for (std::size_t i = 1; i < shnum; ++i) {
    Elf_Scn* scn = elf_getscn(elf, i);
    GElf_Shdr sh;
    if (!scn || !gelf_getshdr(scn, &sh))
      return elf_error(where, fmt::format("section #{}: failed to read header: {}", i, libelf_msg()));
    Section& s = f->sections_[i];
    s.index = i;
    const char* nm = elf_strptr(elf, shstrndx, sh.sh_name);
    if (!nm) return elf_error(where, fmt::format("section #{}: bad name offset {}", i, sh.sh_name));
    s.name = nm;
    s.type = sh.sh_type;
    s.flags = sh.sh_flags;
    s.link = sh.sh_link;
    s.info = sh.sh_info;
    s.size = sh.sh_size;
    if (sh.sh_type != SHT_NOBITS && sh.sh_type != SHT_NULL && sh.sh_size > 0) {
      if (sh.sh_offset > f->bytes_.size() || sh.sh_size > f->bytes_.size() - sh.sh_offset) {
        Error e = elf_error(where, fmt::format("section '{}' (#{}): data [{}, +{}) extends past the end of the file "
                                               "({} bytes)",
                                               s.name, i, sh.sh_offset, sh.sh_size, f->bytes_.size()));
        e.offset = sh.sh_offset;
        return e;
      }
      Elf_Data* d = elf_getdata(scn, nullptr);
      if (!d || !d->d_buf || d->d_size != sh.sh_size)
        return elf_error(where, fmt::format("section '{}' (#{}): failed to read data: {}", s.name, i, libelf_msg()));
      s.data = std::span<const std::uint8_t>(static_cast<const std::uint8_t*>(d->d_buf), d->d_size);
    }
    if (sh.sh_type == SHT_SYMTAB) {
      if (f->symtab_index_ != 0) return elf_error(where, "multiple symbol tables");
      f->symtab_index_ = i;
    }
  }
  if (f->symtab_index_ == 0) return elf_error(where, "no symbol table (.symtab)");
  // Symbols.
  Elf_Scn* symscn = elf_getscn(elf, f->symtab_index_);
  Elf_Data* symdata = elf_getdata(symscn, nullptr);
  const Section& symsec = f->sections_[f->symtab_index_];
  if (!symdata) return elf_error(where, "failed to read .symtab: " + libelf_msg());
  if (symsec.link >= shnum || f->sections_[symsec.link].type != SHT_STRTAB)
    return elf_error(where, fmt::format(".symtab: string table index {} is not a string table", symsec.link));
  const std::size_t nsyms = symdata->d_size / sizeof(Elf64_Sym);
  f->symbols_.resize(nsyms);
  for (std::size_t i = 0; i < nsyms; ++i) {
    GElf_Sym gs;
    if (!gelf_getsym(symdata, static_cast<int>(i), &gs))
      return elf_error(where, fmt::format("symbol #{}: failed to read: {}", i, libelf_msg()));
    Symbol& sym = f->symbols_[i];
    sym.index = i;
    const char* nm = elf_strptr(elf, symsec.link, gs.st_name);
    if (!nm) return elf_error(where, fmt::format("symbol #{}: bad name offset {}", i, gs.st_name));
    sym.name = nm;
    sym.type = static_cast<std::uint8_t>(GELF_ST_TYPE(gs.st_info));
    sym.bind = static_cast<std::uint8_t>(GELF_ST_BIND(gs.st_info));
    sym.visibility = static_cast<std::uint8_t>(GELF_ST_VISIBILITY(gs.st_other));
    sym.shndx = gs.st_shndx;
    sym.value = gs.st_value;
    sym.size = gs.st_size;
    if (sym.shndx != SHN_UNDEF && sym.shndx < SHN_LORESERVE && sym.shndx >= shnum)
      return elf_error(where, fmt::format("symbol '{}' (#{}): section index {} out of range ({} sections)", sym.name,
                                          i, sym.shndx, shnum));
    if (sym.type == STT_SECTION && sym.name.empty() && sym.shndx < shnum) sym.name = f->sections_[sym.shndx].name;
  }
  return f;
}

Result<std::vector<Reloc>> ElfFile::relocs(const Section& rel) const {
  std::vector<Reloc> out;
  if (rel.type != SHT_REL) return out;
  const std::size_t n = rel.data.size() / sizeof(Elf64_Rel);
  if (rel.data.size() % sizeof(Elf64_Rel) != 0)
    return elf_error(where_, fmt::format("section '{}': size {} is not a multiple of {}", rel.name, rel.data.size(),
                                         sizeof(Elf64_Rel)));
  if (rel.info == 0 || rel.info >= sections_.size())
    return elf_error(where_, fmt::format("section '{}': relocated section index {} out of range", rel.name, rel.info));
  const Section& target = sections_[rel.info];
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    Elf64_Rel r;
    std::memcpy(&r, rel.data.data() + i * sizeof(Elf64_Rel), sizeof r);
    Reloc x;
    x.offset = r.r_offset;
    x.sym = static_cast<std::uint32_t>(ELF64_R_SYM(r.r_info));
    x.type = static_cast<std::uint32_t>(ELF64_R_TYPE(r.r_info));
    if (x.sym >= symbols_.size())
      return elf_error(where_, fmt::format("section '{}': relo #{}: symbol index {} out of range ({} symbols)",
                                           target.name, i, x.sym, symbols_.size()));
    if (x.offset >= target.size)
      return elf_error(where_, fmt::format("section '{}': relo #{}: offset {} is past the section end ({} bytes)",
                                           target.name, i, x.offset, target.size));
    out.push_back(x);
  }
  return out;
}

}  // namespace userbpf::loader
