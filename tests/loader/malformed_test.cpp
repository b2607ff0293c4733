// Malformed objects: truncated files, bad section and symbol indexes,
// relocations to missing symbols, random corruption. Each must give a clear
// error (naming the object and the bad item) or open fine, never crash.
#include <gtest/gtest.h>

#include <elf.h>
#include <bpf/libbpf.h>

#include <cstdlib>
#include <cstring>
#include <random>

#include "base/hex.hpp"
#include "loader/loader.hpp"
#include "test_util.hpp"

using namespace userbpf;
using namespace userbpf::loader;

namespace {

std::vector<std::uint8_t> load(const std::string& name) {
  auto r = read_file(loader_test::prog_path(name));
  EXPECT_TRUE(r.ok());
  return r.ok() ? *r : std::vector<std::uint8_t>{};
}

Result<Object> open_bytes(const std::vector<std::uint8_t>& b) {
  OpenOptions o;
  o.object_name = "bad.o";
  o.use_vmlinux_btf = false;
  return Object::open(b, o);
}

Elf64_Shdr shdr(const std::vector<std::uint8_t>& b, std::size_t i) {
  Elf64_Ehdr eh;
  std::memcpy(&eh, b.data(), sizeof eh);
  Elf64_Shdr sh;
  std::memcpy(&sh, b.data() + eh.e_shoff + i * eh.e_shentsize, sizeof sh);
  return sh;
}

std::size_t find_section_type(const std::vector<std::uint8_t>& b, std::uint32_t type, std::size_t nth = 0) {
  Elf64_Ehdr eh;
  std::memcpy(&eh, b.data(), sizeof eh);
  for (std::size_t i = 1; i < eh.e_shnum; ++i)
    if (shdr(b, i).sh_type == type && nth-- == 0) return i;
  return 0;
}

std::string error_of(const std::vector<std::uint8_t>& b) {
  auto r = open_bytes(b);
  return r.ok() ? std::string("<opened>") : r.error().to_string();
}

}  // namespace

TEST(Malformed, EmptyAndNotElf) {
  EXPECT_NE(error_of({}).find("not an ELF"), std::string::npos) << error_of({});
  EXPECT_NE(error_of({'h', 'e', 'l', 'l', 'o'}).find("not an ELF"), std::string::npos);
  auto r = Object::open(std::string("/nonexistent/x.o"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().to_string().find("/nonexistent/x.o"), std::string::npos) << r.error().to_string();
}

TEST(Malformed, TruncatedHeaderAndSections) {
  auto b = load("xdp_maps.bpf.o");
  ASSERT_GT(b.size(), 200u);
  std::vector<std::uint8_t> head(b.begin(), b.begin() + 40);
  const std::string e1 = error_of(head);
  EXPECT_NE(e1.find("bad.o"), std::string::npos) << e1;
  EXPECT_NE(e1.find("truncated ELF header"), std::string::npos) << e1;
  // Cut before the section header table.
  std::vector<std::uint8_t> cut(b.begin(), b.begin() + static_cast<long>(b.size() / 2));
  const std::string e2 = error_of(cut);
  EXPECT_NE(e2, "<opened>");
  EXPECT_NE(e2.find("bad.o"), std::string::npos) << e2;
}

TEST(Malformed, EveryTruncationIsAnErrorNotACrash) {
  for (const char* name : {"xdp_maps.bpf.o", "subprogs.bpf.o", "prog_array.bpf.o"}) {
    auto b = load(name);
    for (std::size_t n = 0; n < b.size(); n += 13) {
      std::vector<std::uint8_t> t(b.begin(), b.begin() + static_cast<long>(n));
      auto r = open_bytes(t);
      EXPECT_FALSE(r.ok()) << name << " truncated to " << n << " opened";
      if (!r.ok()) {
        EXPECT_FALSE(r.error().message.empty());
      }
    }
  }
}

TEST(Malformed, NotBpfMachine) {
  auto b = load("xdp_maps.bpf.o");
  Elf64_Ehdr eh;
  std::memcpy(&eh, b.data(), sizeof eh);
  eh.e_machine = EM_X86_64;
  std::memcpy(b.data(), &eh, sizeof eh);
  EXPECT_NE(error_of(b).find("not a BPF object"), std::string::npos) << error_of(b);
}

TEST(Malformed, SymbolWithBadSectionIndex) {
  auto b = load("xdp_maps.bpf.o");
  const std::size_t symtab = find_section_type(b, SHT_SYMTAB);
  ASSERT_NE(symtab, 0u);
  const Elf64_Shdr sh = shdr(b, symtab);
  // Symbol #1 gets section index 0x7ff.
  Elf64_Sym sym;
  std::memcpy(&sym, b.data() + sh.sh_offset + sizeof sym, sizeof sym);
  sym.st_shndx = 0x7ff;
  std::memcpy(b.data() + sh.sh_offset + sizeof sym, &sym, sizeof sym);
  const std::string e = error_of(b);
  EXPECT_NE(e.find("section index 2047 out of range"), std::string::npos) << e;
  EXPECT_NE(e.find("symbol"), std::string::npos) << e;
}

TEST(Malformed, SectionDataPastEndOfFile) {
  auto b = load("xdp_maps.bpf.o");
  Elf64_Ehdr eh;
  std::memcpy(&eh, b.data(), sizeof eh);
  const std::size_t idx = find_section_type(b, SHT_PROGBITS);
  ASSERT_NE(idx, 0u);
  Elf64_Shdr sh = shdr(b, idx);
  sh.sh_size = b.size() * 4;
  std::memcpy(b.data() + eh.e_shoff + idx * eh.e_shentsize, &sh, sizeof sh);
  const std::string e = error_of(b);
  EXPECT_NE(e.find("extends past the end of the file"), std::string::npos) << e;
}

TEST(Malformed, RelocationToMissingSymbol) {
  auto b = load("xdp_maps.bpf.o");
  // The first SHT_REL section of an executable section (".relxdp").
  std::size_t rel = 0;
  for (std::size_t n = 0;; ++n) {
    rel = find_section_type(b, SHT_REL, n);
    ASSERT_NE(rel, 0u);
    const Elf64_Shdr target = shdr(b, shdr(b, rel).sh_info);
    if (target.sh_flags & SHF_EXECINSTR) break;
  }
  const Elf64_Shdr sh = shdr(b, rel);
  Elf64_Rel r;
  std::memcpy(&r, b.data() + sh.sh_offset, sizeof r);
  r.r_info = ELF64_R_INFO(9999, ELF64_R_TYPE(r.r_info));
  std::memcpy(b.data() + sh.sh_offset, &r, sizeof r);
  const std::string e = error_of(b);
  EXPECT_NE(e.find("relo #0"), std::string::npos) << e;
  EXPECT_NE(e.find("symbol index 9999 out of range"), std::string::npos) << e;
  EXPECT_NE(e.find("'xdp'"), std::string::npos) << e;
}

TEST(Malformed, RelocationOnNonLddwInstruction) {
  auto b = load("xdp_maps.bpf.o");
  std::size_t rel = 0;
  for (std::size_t n = 0;; ++n) {
    rel = find_section_type(b, SHT_REL, n);
    ASSERT_NE(rel, 0u);
    if (shdr(b, shdr(b, rel).sh_info).sh_flags & SHF_EXECINSTR) break;
  }
  const Elf64_Shdr sh = shdr(b, rel);
  Elf64_Rel r;
  std::memcpy(&r, b.data() + sh.sh_offset, sizeof r);
  r.r_offset = 0;  // first instruction of xdp_count is not an lddw
  std::memcpy(b.data() + sh.sh_offset, &r, sizeof r);
  const std::string e = error_of(b);
  EXPECT_NE(e.find("prog 'xdp_count': relo #0"), std::string::npos) << e;
  EXPECT_NE(e.find("not lddw or call"), std::string::npos) << e;
}

int quiet(enum libbpf_print_level, const char*, va_list) { return 0; }

TEST(Malformed, RandomCorruptionNeverCrashes) {
  libbpf_set_print(quiet);  // libbpf's own parse warnings are expected here
  std::mt19937 rng(12345);
  for (const char* name : {"xdp_maps.bpf.o", "subprogs.bpf.o", "prog_array.bpf.o", "kconfig.bpf.o", "core.bpf.o"}) {
    const auto orig = load(name);
    std::uniform_int_distribution<std::size_t> pos(0, orig.size() - 1);
    int errors = 0;
    const char* env = std::getenv("LOADER_FUZZ_ITERS");  // longer campaigns: LOADER_FUZZ_ITERS=20000
    const int iters = env ? std::atoi(env) : 300;
    for (int iter = 0; iter < iters; ++iter) {
      auto b = orig;
      for (int k = 0; k < 4; ++k) b[pos(rng)] = static_cast<std::uint8_t>(rng());
      OpenOptions o;
      o.object_name = name;
      o.target_btf_data = orig;  // CO-RE target: the unmodified object itself
      auto r = Object::open(b, o);
      if (!r.ok()) {
        ++errors;
        EXPECT_FALSE(r.error().message.empty());
      }
    }
    EXPECT_GT(errors, 0) << name;
  }
}

// Corruption aimed at .BTF and .BTF.ext (libbpf's parser plus our checks must
// reject bad type references and cycles before anything walks them).
TEST(Malformed, CorruptedBtfNeverCrashes) {
  libbpf_set_print(quiet);
  std::mt19937 rng(777);
  for (const char* name : {"xdp_maps.bpf.o", "prog_array.bpf.o", "core.bpf.o", "subprogs.bpf.o"}) {
    const auto orig = load(name);
    Elf64_Ehdr eh;
    std::memcpy(&eh, orig.data(), sizeof eh);
    const Elf64_Shdr strsh = shdr(orig, eh.e_shstrndx);
    for (const char* secname : {".BTF", ".BTF.ext"}) {
      Elf64_Shdr target{};
      for (std::size_t i = 1; i < eh.e_shnum; ++i) {
        const Elf64_Shdr sh = shdr(orig, i);
        if (std::strcmp(reinterpret_cast<const char*>(orig.data() + strsh.sh_offset + sh.sh_name), secname) == 0)
          target = sh;
      }
      ASSERT_GT(target.sh_size, 0u) << name << " " << secname;
      std::uniform_int_distribution<std::size_t> pos(target.sh_offset, target.sh_offset + target.sh_size - 1);
      int errors = 0;
      for (int iter = 0; iter < 400; ++iter) {
        auto b = orig;
        const int flips = 1 + iter % 3;
        for (int k = 0; k < flips; ++k) b[pos(rng)] = static_cast<std::uint8_t>(rng());
        OpenOptions o;
        o.object_name = name;
        o.target_btf_data = orig;
        auto r = Object::open(b, o);
        if (!r.ok()) {
          ++errors;
          EXPECT_FALSE(r.error().message.empty());
        }
      }
      EXPECT_GT(errors, 0) << name << " " << secname;
    }
  }
}

TEST(Malformed, BtfTypeCycleIsRejected) {
  // A typedef that names itself: libbpf 1.1 accepts it, its size/alignment walkers would recurse forever.
  const std::uint32_t hdr[6] = {0x0001eB9F, 24, 0, 12, 12, 3};  // magic/version/flags, hdr_len, type off/len, str off/len
  std::vector<std::uint8_t> blob(reinterpret_cast<const std::uint8_t*>(hdr),
                                 reinterpret_cast<const std::uint8_t*>(hdr) + sizeof hdr);
  const std::uint32_t typedef_self[3] = {1, (8u << 24), 1};  // name "t", kind TYPEDEF, type 1 (itself)
  blob.insert(blob.end(), reinterpret_cast<const std::uint8_t*>(typedef_self),
              reinterpret_cast<const std::uint8_t*>(typedef_self) + sizeof typedef_self);
  blob.push_back(0);
  blob.push_back('t');
  blob.push_back(0);
  libbpf_set_print(quiet);
  OpenOptions o;
  o.target_btf_data = blob;
  auto r = Object::open(loader_test::prog_path("core.bpf.o"), o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().to_string().find("cycle"), std::string::npos) << r.error().to_string();
}
