// Loader tests on clang-built objects from progs/: programs, sections,
// maps, global data, subprogram linking, func/line info, externs.
#include <gtest/gtest.h>

#include <linux/bpf.h>

#include <algorithm>
#include <set>

#include "base/hex.hpp"
#include "loader/loader.hpp"
#include "test_util.hpp"

using namespace userbpf;
using namespace userbpf::loader;
using loader_test::count_insns;

namespace {

// The instruction at `pc` must be an lddw of map `map` (pseudo map idx).
void expect_map_ref(const Program& p, std::size_t pc, std::size_t map) {
  ASSERT_LT(pc, p.insns.size());
  EXPECT_EQ(p.insns[pc].op, isa::Op::LddwMapIdx) << "insn " << pc;
  EXPECT_EQ(p.insns[pc].imm, static_cast<std::int32_t>(map));
}

std::vector<std::size_t> lddw_with(const Program& p, isa::Op op) {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < p.insns.size(); ++i)
    if (p.insns[i].op == op) out.push_back(i);
  return out;
}

}  // namespace

TEST(Loader, XdpMapsAndGlobalData) {
  OPEN_OR_FAIL(obj, "xdp_maps.bpf.o");
  EXPECT_EQ(obj.name(), "xdp_maps");
  EXPECT_EQ(obj.license(), "Dual BSD/GPL");
  ASSERT_EQ(obj.programs().size(), 1u);
  const Program& p = obj.programs()[0];
  EXPECT_EQ(p.name, "xdp_count");
  EXPECT_EQ(p.section, "xdp");
  EXPECT_EQ(p.prog_type, static_cast<std::uint32_t>(BPF_PROG_TYPE_XDP));
  EXPECT_EQ(p.expected_attach_type, static_cast<std::uint32_t>(BPF_XDP));
  EXPECT_TRUE(p.autoload);
  ASSERT_TRUE(isa::check_structure(p.insns).ok());

  const Map* counts = obj.find_map("counts");
  ASSERT_NE(counts, nullptr);
  EXPECT_EQ(counts->type, static_cast<std::uint32_t>(BPF_MAP_TYPE_HASH));
  EXPECT_EQ(counts->key_size, 4u);
  EXPECT_EQ(counts->value_size, 8u);
  EXPECT_EQ(counts->max_entries, 1024u);
  EXPECT_EQ(counts->map_flags, static_cast<std::uint32_t>(BPF_F_NO_PREALLOC));
  EXPECT_NE(counts->btf_key_type_id, 0u);
  EXPECT_NE(counts->btf_value_type_id, 0u);
  EXPECT_EQ(counts->origin, MapOrigin::BtfDefined);

  const Map* arr = obj.find_map("pinned_arr");
  ASSERT_NE(arr, nullptr);
  EXPECT_EQ(arr->type, static_cast<std::uint32_t>(BPF_MAP_TYPE_ARRAY));
  EXPECT_EQ(arr->key_size, 4u);
  EXPECT_EQ(arr->value_size, 8u);  // struct pair {u32; u16} padded
  EXPECT_EQ(arr->max_entries, 4u);
  EXPECT_EQ(arr->pinning, 1u);
  EXPECT_EQ(arr->btf_key_type_id, 0u);  // key_size given, no key type

  const Map* data = obj.find_map("xdp_maps.data");
  const Map* rodata = obj.find_map("xdp_maps.rodata");
  const Map* bss = obj.find_map("xdp_maps.bss");
  const Map* custom = obj.find_map(".data.custom");
  ASSERT_TRUE(data && rodata && bss && custom);
  EXPECT_EQ(data->real_name, ".data");
  ASSERT_EQ(data->initial_data.size(), 8u);
  EXPECT_EQ(data->initial_data[0], 7);
  EXPECT_FALSE(data->frozen);
  EXPECT_TRUE(rodata->frozen);
  EXPECT_TRUE(rodata->map_flags & BPF_F_RDONLY_PROG);
  ASSERT_EQ(rodata->initial_data.size(), 4u);
  EXPECT_EQ(rodata->initial_data[0], 53);
  EXPECT_EQ(bss->initial_data, std::vector<std::uint8_t>(8, 0));
  ASSERT_EQ(custom->initial_data.size(), 4u);
  EXPECT_EQ(custom->initial_data[0], 0x34);
  EXPECT_EQ(custom->initial_data[1], 0x12);
  for (const Map* m : {data, rodata, bss, custom}) {
    EXPECT_EQ(m->type, static_cast<std::uint32_t>(BPF_MAP_TYPE_ARRAY));
    EXPECT_EQ(m->max_entries, 1u);
    EXPECT_EQ(m->key_size, 4u);
    EXPECT_EQ(m->value_size, m->initial_data.size());
    EXPECT_NE(m->btf_value_type_id, 0u) << m->name;  // DATASEC
  }

  // Every map reference is an lddw with the map's index; the data maps by value.
  const auto idx_counts = *obj.map_index("counts"), idx_arr = *obj.map_index("pinned_arr");
  std::set<std::int32_t> refs, value_refs;
  for (std::size_t pc : lddw_with(p, isa::Op::LddwMapIdx)) refs.insert(p.insns[pc].imm);
  for (std::size_t pc : lddw_with(p, isa::Op::LddwMapIdxVal)) value_refs.insert(p.insns[pc].imm);
  EXPECT_EQ(refs, (std::set<std::int32_t>{static_cast<std::int32_t>(idx_counts), static_cast<std::int32_t>(idx_arr)}));
  EXPECT_TRUE(value_refs.count(static_cast<std::int32_t>(*obj.map_index("xdp_maps.data"))));
  EXPECT_TRUE(value_refs.count(static_cast<std::int32_t>(*obj.map_index("xdp_maps.bss"))));
  EXPECT_TRUE(value_refs.count(static_cast<std::int32_t>(*obj.map_index(".data.custom"))));
  EXPECT_EQ(count_insns(p, [](const isa::Insn& in) { return in.op == isa::Op::Lddw; }), 0)
      << "no unrelocated plain lddw left";

  // BTF line info points into this file with source text.
  ASSERT_FALSE(p.line_info.empty());
  EXPECT_NE(p.line_info[0].file.find("xdp_maps.bpf.c"), std::string::npos);
  EXPECT_NE(p.line_info[0].line_text.find("ctx->ingress_ifindex"), std::string::npos) << p.line_info[0].line_text;
  bool lookup_line = false;
  for (const LineInfo& l : p.line_info) lookup_line |= l.line_text.find("bpf_map_lookup_elem(&counts") != std::string::npos;
  EXPECT_TRUE(lookup_line);
  EXPECT_GT(p.line_info[0].line, 30u);
  ASSERT_EQ(p.func_info.size(), 1u);
  EXPECT_EQ(p.func_info[0].insn, 0u);
  EXPECT_EQ(p.func_info[0].name, "xdp_count");
  EXPECT_NE(obj.btf(), nullptr);
}

TEST(Loader, SubprogramsAndCallbacks) {
  OPEN_OR_FAIL(obj, "subprogs.bpf.o");
  ASSERT_EQ(obj.programs().size(), 3u);  // .text functions are not programs
  const Program* a = obj.find_program("prog_a");
  const Program* b = obj.find_program("prog_b");
  const Program* c = obj.find_program("prog_c");
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(b->prog_type, static_cast<std::uint32_t>(BPF_PROG_TYPE_SCHED_CLS));
  EXPECT_EQ(c->prog_type, static_cast<std::uint32_t>(BPF_PROG_TYPE_SOCKET_FILTER));
  // prog_a reaches loop_cb (function pointer), global_helper and add_static (call chain).
  std::vector<std::string> subs = a->subprograms;
  std::sort(subs.begin(), subs.end());
  EXPECT_EQ(subs, (std::vector<std::string>{"add_static", "global_helper", "loop_cb"}));
  EXPECT_EQ(b->subprograms, (std::vector<std::string>{"add_static"}));
  EXPECT_TRUE(c->subprograms.empty());
  EXPECT_EQ(c->insns.size(), c->own_insns);
  for (const Program* p : {a, b, c}) {
    auto st = isa::check_structure(p->insns);
    EXPECT_TRUE(st.ok()) << p->name << ": " << st.error().to_string();
    // Every local call and function pointer lands on a function start listed in func_info.
    std::set<std::size_t> starts;
    for (const FuncInfo& fi : p->func_info) starts.insert(fi.insn);
    EXPECT_EQ(starts.size(), 1 + p->subprograms.size()) << p->name;
    for (std::size_t pc = 0; pc < p->insns.size(); ++pc) {
      const isa::Insn& in = p->insns[pc];
      if (in.op != isa::Op::CallLocal && in.op != isa::Op::LddwFunc) continue;
      const std::size_t t = static_cast<std::size_t>(static_cast<std::int64_t>(pc) + 1 + in.imm);
      EXPECT_TRUE(starts.count(t)) << p->name << ": insn " << pc << " targets " << t;
    }
  }
  EXPECT_EQ(count_insns(*a, [](const isa::Insn& in) { return in.op == isa::Op::LddwFunc; }), 1);
  EXPECT_EQ(count_insns(*a, [](const isa::Insn& in) { return in.op == isa::Op::CallLocal; }), 2);
  // func info names the subprograms at their new positions.
  std::set<std::string> names;
  for (const FuncInfo& fi : a->func_info) names.insert(fi.name);
  EXPECT_EQ(names, (std::set<std::string>{"prog_a", "add_static", "global_helper", "loop_cb"}));
  // Line info is sorted by instruction and covers appended subprograms.
  EXPECT_TRUE(std::is_sorted(a->line_info.begin(), a->line_info.end(),
                             [](const LineInfo& x, const LineInfo& y) { return x.insn < y.insn; }));
  EXPECT_GE(a->line_info.back().insn, a->own_insns);
}

TEST(Loader, LegacyMapsSection) {
  OPEN_OR_FAIL(obj, "legacy_maps.bpf.o");
  EXPECT_EQ(obj.kernel_version(), 0x050a00u);
  ASSERT_EQ(obj.maps().size(), 2u);
  const Map* h = obj.find_map("legacy_hash");
  const Map* a = obj.find_map("legacy_array");
  ASSERT_TRUE(h && a);
  EXPECT_EQ(h->origin, MapOrigin::Legacy);
  EXPECT_EQ(h->type, static_cast<std::uint32_t>(BPF_MAP_TYPE_HASH));
  EXPECT_EQ(h->key_size, 4u);
  EXPECT_EQ(h->value_size, 8u);
  EXPECT_EQ(h->max_entries, 64u);
  EXPECT_EQ(a->type, static_cast<std::uint32_t>(BPF_MAP_TYPE_ARRAY));
  EXPECT_EQ(a->value_size, 16u);
  EXPECT_EQ(a->max_entries, 8u);
  const Program& p = obj.programs().at(0);
  std::set<std::int32_t> refs;
  for (std::size_t pc : lddw_with(p, isa::Op::LddwMapIdx)) refs.insert(p.insns[pc].imm);
  EXPECT_EQ(refs, (std::set<std::int32_t>{static_cast<std::int32_t>(*obj.map_index("legacy_hash")),
                                           static_cast<std::int32_t>(*obj.map_index("legacy_array"))}));
}

TEST(Loader, Iproute2ElfMaps) {
  OPEN_OR_FAIL(obj, "iproute2.bpf.o");
  ASSERT_EQ(obj.maps().size(), 1u);
  const Map& m = obj.maps()[0];
  EXPECT_EQ(m.name, "tc_stats");
  EXPECT_EQ(m.origin, MapOrigin::Iproute2);
  EXPECT_EQ(m.type, static_cast<std::uint32_t>(BPF_MAP_TYPE_ARRAY));
  EXPECT_EQ(m.key_size, 4u);
  EXPECT_EQ(m.value_size, 8u);
  EXPECT_EQ(m.max_entries, 2u);
  EXPECT_EQ(m.pinning, 2u);
  EXPECT_EQ(m.iproute2_id, 9u);
  const Program& p = obj.programs().at(0);
  EXPECT_EQ(p.section, "classifier");
  EXPECT_EQ(p.prog_type, static_cast<std::uint32_t>(BPF_PROG_TYPE_SCHED_CLS));
  expect_map_ref(p, lddw_with(p, isa::Op::LddwMapIdx).at(0), 0);
}

TEST(Loader, ProgArrayAndMapInMapInitialisers) {
  OPEN_OR_FAIL(obj, "prog_array.bpf.o");
  const Map* jt = obj.find_map("jmp_table");
  ASSERT_NE(jt, nullptr);
  EXPECT_EQ(jt->type, static_cast<std::uint32_t>(BPF_MAP_TYPE_PROG_ARRAY));
  EXPECT_EQ(jt->value_size, 4u);
  EXPECT_EQ(jt->init_slots, (std::vector<std::string>{"tail_a", "", "tail_b"}));
  const Map* outer = obj.find_map("outer");
  ASSERT_NE(outer, nullptr);
  EXPECT_EQ(outer->type, static_cast<std::uint32_t>(BPF_MAP_TYPE_ARRAY_OF_MAPS));
  EXPECT_EQ(outer->value_size, 4u);
  EXPECT_EQ(outer->init_slots, (std::vector<std::string>{"inner2", "", "inner1"}));
  ASSERT_TRUE(outer->inner_map.has_value());
  const Map& inner = obj.maps()[*outer->inner_map];
  EXPECT_EQ(inner.name, "outer.inner");
  EXPECT_EQ(inner.origin, MapOrigin::Inner);
  EXPECT_EQ(inner.type, static_cast<std::uint32_t>(BPF_MAP_TYPE_ARRAY));
  EXPECT_EQ(inner.value_size, 4u);
  EXPECT_EQ(inner.max_entries, 1u);
  ASSERT_EQ(obj.programs().size(), 3u);
}

TEST(Loader, SectionTableForms) {
  OPEN_OR_FAIL(obj, "sections.bpf.o");
  struct Want {
    const char* prog;
    const char* section;
    std::uint32_t type;
    std::uint32_t attach;
    const char* target;
  };
  const Want wants[] = {
      {"opt_xdp", "xdp", BPF_PROG_TYPE_XDP, BPF_XDP, ""},
      {"kp", "kprobe/do_unlinkat", BPF_PROG_TYPE_KPROBE, 0, "do_unlinkat"},
      {"krp", "kretprobe/do_unlinkat", BPF_PROG_TYPE_KPROBE, 0, "do_unlinkat"},
      {"up", "uprobe//usr/lib/libc.so.6:malloc", BPF_PROG_TYPE_KPROBE, 0, "/usr/lib/libc.so.6:malloc"},
      {"tp", "tp/syscalls/sys_enter_openat", BPF_PROG_TYPE_TRACEPOINT, 0, "syscalls/sys_enter_openat"},
      {"tp2", "tracepoint/sched/sched_switch", BPF_PROG_TYPE_TRACEPOINT, 0, "sched/sched_switch"},
      {"rtp", "raw_tp/sched_switch", BPF_PROG_TYPE_RAW_TRACEPOINT, 0, "sched_switch"},
      {"frags", "xdp.frags", BPF_PROG_TYPE_XDP, BPF_XDP, ""},
      {"devmap", "xdp/devmap", BPF_PROG_TYPE_XDP, BPF_XDP_DEVMAP, ""},
      {"tc_in", "tc/ingress", BPF_PROG_TYPE_SCHED_CLS, 46, ""},
      {"tcx_eg", "tcx/egress", BPF_PROG_TYPE_SCHED_CLS, 47, ""},
      {"cg_in", "cgroup_skb/ingress", BPF_PROG_TYPE_CGROUP_SKB, BPF_CGROUP_INET_INGRESS, ""},
      {"cg_conn4", "cgroup/connect4", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_CONNECT, ""},
      {"fent", "fentry/do_unlinkat", BPF_PROG_TYPE_TRACING, BPF_TRACE_FENTRY, "do_unlinkat"},
      {"lsm_s", "lsm.s/file_open", BPF_PROG_TYPE_LSM, BPF_LSM_MAC, "file_open"},
      {"parser", "sk_skb/stream_parser", BPF_PROG_TYPE_SK_SKB, BPF_SK_SKB_STREAM_PARSER, ""},
      {"perf", "perf_event", BPF_PROG_TYPE_PERF_EVENT, 0, ""},
      {"custom", "my_custom_section", BPF_PROG_TYPE_UNSPEC, 0, ""},
  };
  ASSERT_EQ(obj.programs().size(), std::size(wants));
  for (const Want& w : wants) {
    const Program* p = obj.find_program(w.prog);
    ASSERT_NE(p, nullptr) << w.prog;
    EXPECT_EQ(p->section, w.section) << w.prog;
    EXPECT_EQ(p->prog_type, w.type) << w.prog;
    EXPECT_EQ(p->expected_attach_type, w.attach) << w.prog;
    EXPECT_EQ(p->attach_target, w.target) << w.prog;
    EXPECT_EQ(p->autoload, std::string(w.prog) != "opt_xdp") << w.prog;
  }
  EXPECT_EQ(obj.find_program("frags")->prog_flags, static_cast<std::uint32_t>(BPF_F_XDP_HAS_FRAGS));
  EXPECT_EQ(obj.find_program("lsm_s")->prog_flags, static_cast<std::uint32_t>(BPF_F_SLEEPABLE));
  EXPECT_EQ(obj.find_program("custom")->sec_def, nullptr);
  EXPECT_FALSE(obj.warnings().empty());  // the unrecognized section is reported
}

TEST(Loader, SecDefMatchingRules) {
  // "+" forms: exact or "/..."; plain rows: exact only; "?" is the caller's business.
  ASSERT_NE(find_sec_def("kprobe"), nullptr);
  EXPECT_EQ(find_sec_def("kprobe")->prefix, "kprobe+");
  EXPECT_EQ(find_sec_def("kprobex"), nullptr);
  EXPECT_EQ(find_sec_def("xdp/foo"), nullptr);
  EXPECT_EQ(find_sec_def("xdp")->prefix, "xdp");
  EXPECT_EQ(find_sec_def("uprobe.s/x:y")->flags & kSecSleepable, kSecSleepable);
  EXPECT_EQ(find_sec_def("kprobe.multi/foo*")->prefix, "kprobe.multi+");
  EXPECT_EQ(find_sec_def("tc/ingress")->attach_type, 46u);
  EXPECT_EQ(find_sec_def("tc")->attach_type, 0u);
  EXPECT_EQ(find_sec_def("tc/other"), nullptr);
  EXPECT_EQ(find_sec_def("cgroup/sock")->attach_type, static_cast<std::uint32_t>(BPF_CGROUP_INET_SOCK_CREATE));
  EXPECT_EQ(find_sec_def("netfilter")->prog_type, 32u);
  // Every row is reachable: looking up its own name (with "/x" for "+" rows) finds that row.
  for (const SecDef& d : sec_defs()) {
    std::string name(d.prefix);
    if (name.back() == '+') name.pop_back();
    const SecDef* got = find_sec_def(name);
    ASSERT_NE(got, nullptr) << name;
    EXPECT_EQ(got, &d) << name << " shadowed by " << got->prefix;
  }
  EXPECT_GE(sec_defs().size(), 100u);
  EXPECT_EQ(prog_type_name(BPF_PROG_TYPE_XDP), "xdp");
  EXPECT_EQ(attach_type_name(46), "tcx_ingress");
  EXPECT_EQ(map_type_name(BPF_MAP_TYPE_RINGBUF), "ringbuf");
}

TEST(Loader, KconfigAndKsymExterns) {
  OpenOptions deferred;  // as libbpf's open: no values, ksyms left for later (externs_test.cpp resolves them)
  deferred.externs.resolve = false;
  OPEN_OR_FAIL(obj, "kconfig.bpf.o", deferred);
  ASSERT_EQ(obj.externs().size(), 4u);
  const Extern* kv = nullptr;
  const Extern* hz = nullptr;
  const Extern* sys = nullptr;
  const Extern* ks = nullptr;
  for (const Extern& e : obj.externs()) {
    if (e.name == "LINUX_KERNEL_VERSION") kv = &e;
    if (e.name == "CONFIG_HZ") hz = &e;
    if (e.name == "CONFIG_BPF_SYSCALL") sys = &e;
    if (e.name == "bpf_prog_active") ks = &e;
  }
  ASSERT_TRUE(kv && hz && sys && ks);
  EXPECT_EQ(kv->kind, ExternKind::Kconfig);
  EXPECT_EQ(kv->size, 4u);
  EXPECT_FALSE(kv->weak);
  EXPECT_TRUE(hz->weak);
  EXPECT_EQ(sys->size, 1u);
  EXPECT_EQ(ks->kind, ExternKind::KsymVar);
  // kconfig layout: larger alignment first, no overlap.
  EXPECT_EQ(obj.externs()[0].kind, ExternKind::Kconfig);
  EXPECT_EQ(sys->kconfig_offset, 8u);
  EXPECT_LT(std::max(kv->kconfig_offset, hz->kconfig_offset), 8u);
  EXPECT_NE(kv->kconfig_offset, hz->kconfig_offset);
  const Map* kc = obj.find_map("kconfig.kconfig");
  ASSERT_NE(kc, nullptr) << "maps: " << obj.maps().size();
  EXPECT_EQ(kc->value_size, 9u);  // 4 + 4 + bool
  EXPECT_TRUE(kc->frozen);
  const Program& p = obj.programs().at(0);
  // Each kconfig read is an lddw map_idx_value into the .kconfig map at the extern's offset.
  std::set<std::int32_t> offs;
  for (std::size_t pc : lddw_with(p, isa::Op::LddwMapIdxVal)) {
    EXPECT_EQ(p.insns[pc].imm, static_cast<std::int32_t>(*obj.map_index(kc->name)));
    offs.insert(p.insns[pc].imm_hi);
  }
  EXPECT_EQ(offs, (std::set<std::int32_t>{static_cast<std::int32_t>(kv->kconfig_offset),
                                           static_cast<std::int32_t>(hz->kconfig_offset),
                                           static_cast<std::int32_t>(sys->kconfig_offset)}));
  ASSERT_EQ(p.extern_uses.size(), 1u);
  EXPECT_EQ(obj.externs()[p.extern_uses[0].extern_index].name, "bpf_prog_active");
  EXPECT_EQ(p.insns[p.extern_uses[0].insn].op, isa::Op::LddwBtfId);
}

TEST(Loader, OldObjectWithoutFuncSymbols) {
  OPEN_OR_FAIL(obj, "nofunc.o");
  ASSERT_EQ(obj.programs().size(), 1u);
  const Program& p = obj.programs()[0];
  EXPECT_EQ(p.name, "old_prog");
  EXPECT_EQ(p.section, "socket1");
  EXPECT_EQ(p.insns.size(), 2u);
  EXPECT_EQ(p.insns[1].op, isa::Op::Exit);
  EXPECT_EQ(obj.license(), "GPL");
  EXPECT_EQ(obj.btf(), nullptr);
}

TEST(Loader, OpenFromMemoryMatchesFile) {
  auto bytes = read_file(loader_test::prog_path("subprogs.bpf.o"));
  ASSERT_TRUE(bytes.ok());
  OpenOptions o;
  o.object_name = "subprogs";
  auto mem = Object::open(*bytes, o);
  ASSERT_TRUE(mem.ok()) << mem.error().to_string();
  OPEN_OR_FAIL(file, "subprogs.bpf.o");
  ASSERT_EQ(mem->programs().size(), file.programs().size());
  for (std::size_t i = 0; i < file.programs().size(); ++i) {
    EXPECT_EQ(mem->programs()[i].name, file.programs()[i].name);
    EXPECT_EQ(mem->programs()[i].insns, file.programs()[i].insns);
  }
}
