// Differential test: the same objects opened by libbpf (bpf_object__open_file,
// no load) and by our loader must agree on programs and map definitions.
// libbpf 1.1 dropped legacy "maps" sections, so those objects are not compared.
#include <gtest/gtest.h>

#include <bpf/libbpf.h>

#include <cstring>
#include <set>

#include "loader/loader.hpp"
#include "test_util.hpp"

using namespace userbpf::loader;

namespace {

int quiet(enum libbpf_print_level, const char*, va_list) { return 0; }

// Sections that libbpf 1.1's table does not know yet (our table is newer).
const std::set<std::string> kNewerSections = {"tc/ingress", "tcx/egress"};

void compare(const char* name, const char* core_target = nullptr) {
  SCOPED_TRACE(name);
  libbpf_set_print(quiet);
  const std::string path = loader_test::prog_path(name);
  struct bpf_object* lb = bpf_object__open_file(path.c_str(), nullptr);
  ASSERT_NE(lb, nullptr) << "libbpf could not open " << path << ": " << std::strerror(errno);
  OpenOptions o;
  o.externs.resolve = false;  // libbpf's open resolves no externs either
  if (core_target) o.target_btf_path = loader_test::prog_path(core_target);  // libbpf does no CO-RE at open
  auto ours = Object::open(path, o);
  ASSERT_TRUE(ours.ok()) << ours.error().to_string();

  std::size_t nprogs = 0;
  struct bpf_program* lp;
  bpf_object__for_each_program(lp, lb) {
    ++nprogs;
    const Program* p = ours->find_program(bpf_program__name(lp));
    ASSERT_NE(p, nullptr) << bpf_program__name(lp);
    EXPECT_EQ(p->section, bpf_program__section_name(lp)) << p->name;
    EXPECT_EQ(p->autoload, bpf_program__autoload(lp)) << p->name;
    EXPECT_EQ(p->own_insns, bpf_program__insn_cnt(lp)) << p->name;
    if (kNewerSections.count(p->section) && bpf_program__type(lp) == BPF_PROG_TYPE_UNSPEC) continue;
    EXPECT_EQ(p->prog_type, static_cast<std::uint32_t>(bpf_program__type(lp))) << p->name;
    EXPECT_EQ(p->expected_attach_type, static_cast<std::uint32_t>(bpf_program__expected_attach_type(lp)))
        << p->name;
  }
  EXPECT_EQ(nprogs, ours->programs().size());

  std::size_t nmaps = 0;
  struct bpf_map* lm;
  bpf_object__for_each_map(lm, lb) {
    ++nmaps;
    const Map* m = ours->find_map(bpf_map__name(lm));
    ASSERT_NE(m, nullptr) << bpf_map__name(lm);
    EXPECT_EQ(m->type, static_cast<std::uint32_t>(bpf_map__type(lm))) << m->name;
    EXPECT_EQ(m->key_size, bpf_map__key_size(lm)) << m->name;
    EXPECT_EQ(m->value_size, bpf_map__value_size(lm)) << m->name;
    EXPECT_EQ(m->max_entries, bpf_map__max_entries(lm)) << m->name;
    EXPECT_EQ(m->map_flags & ~static_cast<std::uint32_t>(BPF_F_MMAPABLE),
              bpf_map__map_flags(lm) & ~static_cast<std::uint32_t>(BPF_F_MMAPABLE))
        << m->name;
    EXPECT_EQ(m->numa_node, bpf_map__numa_node(lm)) << m->name;
    EXPECT_EQ(m->map_extra, bpf_map__map_extra(lm)) << m->name;
    EXPECT_EQ(m->btf_key_type_id, bpf_map__btf_key_type_id(lm)) << m->name;
    EXPECT_EQ(m->btf_value_type_id, bpf_map__btf_value_type_id(lm)) << m->name;
    std::size_t sz = 0;
    const void* init = bpf_map__initial_value(lm, &sz);
    if (init && m->origin == MapOrigin::GlobalData) {
      ASSERT_EQ(sz, m->initial_data.size()) << m->name;
      EXPECT_EQ(std::memcmp(init, m->initial_data.data(), sz), 0) << m->name;
    }
    if (struct bpf_map* inner = bpf_map__inner_map(lm)) {
      ASSERT_TRUE(m->inner_map.has_value()) << m->name;
      const Map& im = ours->maps()[*m->inner_map];
      EXPECT_EQ(im.type, static_cast<std::uint32_t>(bpf_map__type(inner)));
      EXPECT_EQ(im.value_size, bpf_map__value_size(inner));
      EXPECT_EQ(im.max_entries, bpf_map__max_entries(inner));
    }
  }
  // libbpf keeps inner map templates off the object's map list.
  std::size_t ours_top = 0;
  for (const Map& m : ours->maps()) ours_top += m.origin != MapOrigin::Inner;
  EXPECT_EQ(nmaps, ours_top);
  bpf_object__close(lb);
}

}  // namespace

TEST(LibbpfDiff, XdpMaps) { compare("xdp_maps.bpf.o"); }
TEST(LibbpfDiff, Subprograms) { compare("subprogs.bpf.o"); }
TEST(LibbpfDiff, ProgArray) { compare("prog_array.bpf.o"); }
TEST(LibbpfDiff, Sections) { compare("sections.bpf.o"); }
TEST(LibbpfDiff, Kconfig) { compare("kconfig.bpf.o"); }
TEST(LibbpfDiff, Core) { compare("core.bpf.o", "core_target.bpf.o"); }
TEST(LibbpfDiff, CoreVmlinux) { compare("core_vmlinux.bpf.o"); }
