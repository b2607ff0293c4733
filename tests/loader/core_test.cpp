// CO-RE relocation tests: core.bpf.c resolved against core_target.bpf.c's
// BTF (a file, or bytes in memory) and core_vmlinux.bpf.c against the
// running kernel's BTF. Expected values are computed here from the target
// BTF through libbpf's own accessors, independently of the loader.
#include <gtest/gtest.h>

#include <linux/bpf.h>
#include <bpf/btf.h>

#include <map>
#include <unistd.h>

#include "base/hex.hpp"
#include "loader/loader.hpp"
#include "test_util.hpp"

using namespace userbpf;
using namespace userbpf::loader;

namespace {

enum : std::uint32_t {
  kByteOff = 0, kByteSz = 1, kExists = 2, kSigned = 3, kLshift = 4, kRshift = 5,
  kTypeIdLocal = 6, kTypeIdTarget = 7, kTypeExists = 8, kTypeSize = 9, kEnumExists = 10, kEnumValue = 11,
  kTypeMatches = 12,
};

// Bit offset of member `name` of struct `type` in `b` (libbpf accessors).
std::uint32_t member_bits(const struct btf* b, const char* type, const char* name) {
  const int id = btf__find_by_name_kind(b, type, BTF_KIND_STRUCT);
  if (id < 0) return ~0u;
  const struct btf_type* t = btf__type_by_id(b, static_cast<__u32>(id));
  const struct btf_member* m = btf_members(t);
  for (int i = 0; i < btf_vlen(t); ++i, ++m)
    if (std::string(btf__name_by_offset(b, m->name_off)) == name) return btf_member_bit_offset(t, static_cast<__u32>(i));
  return ~0u;
}

// Finds the one relocation of `kind` whose access string is `access` and type is `type`.
const CoreRelo* find_relo(const Program& p, std::uint32_t kind, const std::string& type, const std::string& access) {
  const CoreRelo* found = nullptr;
  for (const CoreRelo& r : p.core_relos)
    if (r.kind == kind && r.type_name == type && r.access == access) found = &r;
  return found;
}

struct TargetBtf {
  struct btf* b = nullptr;
  explicit TargetBtf(const std::string& path) { b = btf__parse(path.c_str(), nullptr); }
  ~TargetBtf() { btf__free(b); }
};

void check_against_core_target(const Object& obj) {
  TargetBtf tb(loader_test::prog_path("core_target.bpf.o"));
  ASSERT_NE(tb.b, nullptr);
  const Program* f = obj.find_program("core_fields");
  ASSERT_NE(f, nullptr);
  // point.y (access 0:1): local offset 4, target offset from the target BTF.
  const CoreRelo* y = find_relo(*f, kByteOff, "point", "0:1");
  ASSERT_NE(y, nullptr);
  EXPECT_EQ(y->orig_value, 4u);
  EXPECT_EQ(y->new_value, member_bits(tb.b, "point", "y") / 8);
  EXPECT_FALSE(y->poisoned);
  // point.big (0:4): long long locally, int in the target.
  const CoreRelo* big_off = find_relo(*f, kByteOff, "point", "0:4");
  const CoreRelo* big_sz = find_relo(*f, kByteSz, "point", "0:4");
  ASSERT_TRUE(big_off && big_sz);
  EXPECT_EQ(big_off->new_value, member_bits(tb.b, "point", "big") / 8);
  EXPECT_EQ(big_sz->orig_value, 8u);
  EXPECT_EQ(big_sz->new_value, 4u);
  // point.mode bitfield (0:3): 5 bits at the target's bit offset, read with a 4-byte load.
  const std::uint32_t mode_bit = member_bits(tb.b, "point", "mode");
  const CoreRelo* mo = find_relo(*f, kByteOff, "point", "0:3");
  const CoreRelo* ml = find_relo(*f, kLshift, "point", "0:3");
  const CoreRelo* mr = find_relo(*f, kRshift, "point", "0:3");
  ASSERT_TRUE(mo && ml && mr);
  const std::uint32_t byte_off = mode_bit / 8 / 4 * 4;
  EXPECT_EQ(mo->new_value, byte_off);
  EXPECT_EQ(ml->new_value, 64u - (mode_bit + 5 - byte_off * 8));
  EXPECT_EQ(mr->new_value, 64u - 5);
  EXPECT_EQ(ml->orig_value, 64u - (67 - 64 + 5));  // local: flags:3 then mode:5 at bit 64
  // existence through a ___flavor: point___v2 matches target "point", which has no missing_field.
  const CoreRelo* ex = find_relo(*f, kExists, "point___v2", "0:1");
  ASSERT_NE(ex, nullptr);
  EXPECT_EQ(ex->orig_value, 1u);
  EXPECT_EQ(ex->new_value, 0u);
  const CoreRelo* exx = find_relo(*f, kExists, "point", "0:0");
  ASSERT_NE(exx, nullptr);
  EXPECT_EQ(exx->new_value, 1u);

  const Program* t = obj.find_program("core_types");
  ASSERT_NE(t, nullptr);
  const CoreRelo* te = find_relo(*t, kTypeExists, "point", "0");
  const CoreRelo* ts = find_relo(*t, kTypeSize, "point", "0");
  const CoreRelo* ev = find_relo(*t, kEnumValue, "color", "2");
  const CoreRelo* ee = find_relo(*t, kEnumExists, "color___old", "1");
  const CoreRelo* gone = find_relo(*t, kTypeExists, "gone", "0");
  ASSERT_TRUE(te && ts && ev && ee && gone);
  EXPECT_EQ(te->new_value, 1u);
  const int pid = btf__find_by_name_kind(tb.b, "point", BTF_KIND_STRUCT);
  EXPECT_EQ(ts->orig_value, 32u);
  EXPECT_EQ(ts->new_value, static_cast<std::uint64_t>(btf__resolve_size(tb.b, static_cast<__u32>(pid))));
  EXPECT_EQ(ev->orig_value, 4u);
  EXPECT_EQ(ev->new_value, 40u);
  EXPECT_EQ(ee->new_value, 0u);  // target enum color has no PURPLE
  EXPECT_EQ(gone->new_value, 0u);
  const CoreRelo* tid = find_relo(*t, kTypeIdTarget, "point", "0");
  const CoreRelo* lid = find_relo(*t, kTypeIdLocal, "point", "0");
  ASSERT_TRUE(tid && lid);
  EXPECT_EQ(tid->new_value, static_cast<std::uint64_t>(pid));
  EXPECT_EQ(lid->new_value, static_cast<std::uint64_t>(btf__find_by_name_kind(obj.btf(), "point", BTF_KIND_STRUCT)));
  // The patched instructions hold the new values (the constant lands in an ALU imm or lddw).
  for (const CoreRelo* r : {te, ts, ev, ee, gone}) {
    const isa::Insn& in = t->insns.at(r->insn);
    const std::int64_t v = in.info().form == isa::Form::Lddw ? static_cast<std::int64_t>(in.imm64()) : in.imm;
    EXPECT_EQ(static_cast<std::uint64_t>(v), r->new_value) << "insn " << r->insn;
  }

  // Direct loads: offset and access size follow the target (unsigned 8 -> 4 bytes).
  const Program* d = obj.find_program("core_direct");
  ASSERT_NE(d, nullptr);
  const CoreRelo* ub = find_relo(*d, kByteOff, "point", "0:5");
  const CoreRelo* dy = find_relo(*d, kByteOff, "point", "0:1");
  ASSERT_TRUE(ub && dy);
  EXPECT_FALSE(ub->poisoned);
  EXPECT_EQ(ub->orig_value, 24u);
  EXPECT_EQ(ub->new_value, member_bits(tb.b, "point", "ubig") / 8);
  EXPECT_EQ(d->insns.at(ub->insn).op, isa::Op::LdxW);
  EXPECT_EQ(d->insns.at(ub->insn).off, static_cast<std::int16_t>(ub->new_value));
  EXPECT_EQ(d->insns.at(dy->insn).op, isa::Op::LdxW);
  EXPECT_EQ(d->insns.at(dy->insn).off, static_cast<std::int16_t>(dy->new_value));
  // A signed field that changed size can't be re-sized safely: poisoned.
  const Program* ds = obj.find_program("core_direct_signed");
  ASSERT_NE(ds, nullptr);
  ASSERT_EQ(ds->core_relos.size(), 1u);
  EXPECT_TRUE(ds->core_relos[0].poisoned);
  EXPECT_EQ(ds->insns.at(ds->core_relos[0].insn).imm, 0xbad2310);

  // A field of a type missing from the target poisons the instruction.
  const Program* p = obj.find_program("core_poison");
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(p->core_relos.size(), 1u);
  const CoreRelo& pr = p->core_relos[0];
  EXPECT_TRUE(pr.poisoned);
  EXPECT_EQ(p->insns.at(pr.insn).op, isa::Op::Call);
  EXPECT_EQ(p->insns.at(pr.insn).imm, 0xbad2310);
  bool warned = false;
  for (const auto& w : obj.warnings()) warned |= w.find("core_poison") != std::string::npos;
  EXPECT_TRUE(warned);
}

}  // namespace

TEST(Core, AgainstTargetBtfFile) {
  OpenOptions o;
  o.target_btf_path = loader_test::prog_path("core_target.bpf.o");
  OPEN_OR_FAIL(obj, "core.bpf.o", o);
  check_against_core_target(obj);
}

TEST(Core, AgainstTargetBtfInMemory) {
  auto bytes = read_file(loader_test::prog_path("core_target.bpf.o"));
  ASSERT_TRUE(bytes.ok());
  OpenOptions o;
  o.target_btf_data = *bytes;
  OPEN_OR_FAIL(obj, "core.bpf.o", o);
  check_against_core_target(obj);
}

TEST(Core, AgainstRawBtfInMemory) {
  // The runtime will hand its own types over as a raw BTF blob.
  TargetBtf tb(loader_test::prog_path("core_target.bpf.o"));
  ASSERT_NE(tb.b, nullptr);
  __u32 size = 0;
  const auto* raw = static_cast<const std::uint8_t*>(btf__raw_data(tb.b, &size));
  ASSERT_NE(raw, nullptr);
  std::vector<std::uint8_t> blob(raw, raw + size);
  OpenOptions o;
  o.target_btf_data = blob;
  o.use_vmlinux_btf = false;
  OPEN_OR_FAIL(obj, "core.bpf.o", o);
  check_against_core_target(obj);
}

TEST(Core, AgainstUnchangedLayoutValuesAreKept) {
  // core_vmlinux's own BTF has the same layout as clang assumed: every value is kept.
  OpenOptions o;
  o.target_btf_path = loader_test::prog_path("core_vmlinux.bpf.o");
  auto r = Object::open(loader_test::prog_path("core_vmlinux.bpf.o"), o);
  // task_struct___mine is its own candidate (essential name "task_struct").
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_FALSE(r->programs()[0].core_relos.empty());
  for (const CoreRelo& c : r->programs()[0].core_relos) {
    EXPECT_FALSE(c.poisoned);
    EXPECT_EQ(c.orig_value, c.new_value) << c.access;
  }
}

TEST(Core, PoisonCanBeAnError) {
  OpenOptions o;
  o.target_btf_path = loader_test::prog_path("core_target.bpf.o");
  o.fail_on_core_poison = true;
  auto r = Object::open(loader_test::prog_path("core.bpf.o"), o);
  ASSERT_FALSE(r.ok());
  const std::string msg = r.error().to_string();
  EXPECT_NE(msg.find("core.bpf.o"), std::string::npos) << msg;
  EXPECT_NE(msg.find("prog 'core_poison'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("gone"), std::string::npos) << msg;
}

TEST(Core, NoTargetIsAClearError) {
  OpenOptions o;
  o.use_vmlinux_btf = false;
  auto r = Object::open(loader_test::prog_path("core.bpf.o"), o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().to_string().find("target BTF"), std::string::npos) << r.error().to_string();
  o.use_vmlinux_btf = true;
  o.vmlinux_btf_path = "/nonexistent/vmlinux";
  r = Object::open(loader_test::prog_path("core.bpf.o"), o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().to_string().find("/nonexistent/vmlinux"), std::string::npos) << r.error().to_string();
}

TEST(Core, AgainstVmlinux) {
  const char* vmlinux = "/sys/kernel/btf/vmlinux";
  if (access(vmlinux, R_OK) != 0) GTEST_SKIP() << vmlinux << " is not readable on this machine";
  TargetBtf tb(vmlinux);
  ASSERT_NE(tb.b, nullptr);
  OPEN_OR_FAIL(obj, "core_vmlinux.bpf.o");
  const Program* p = obj.find_program("read_pid");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->prog_type, static_cast<std::uint32_t>(BPF_PROG_TYPE_KPROBE));
  const CoreRelo* tgid = find_relo(*p, kByteOff, "task_struct___mine", "0:1");
  const CoreRelo* pid_sz = find_relo(*p, kByteSz, "task_struct___mine", "0:0");
  ASSERT_TRUE(tgid && pid_sz);
  EXPECT_EQ(tgid->orig_value, 4u);
  EXPECT_EQ(tgid->new_value, member_bits(tb.b, "task_struct", "tgid") / 8);
  EXPECT_GT(tgid->new_value, 100u);  // far from the local layout
  EXPECT_EQ(pid_sz->new_value, 4u);
  EXPECT_FALSE(tgid->poisoned);
}

TEST(Core, TypeMatches) {
  if (access(loader_test::prog_path("core_matches.bpf.o").c_str(), R_OK) != 0)
    GTEST_SKIP() << "core_matches.bpf.o not built (needs clang-19 for bpf_core_type_matches)";
  OpenOptions o;
  o.target_btf_path = loader_test::prog_path("core_target.bpf.o");
  OPEN_OR_FAIL(obj, "core_matches.bpf.o", o);
  const Program& p = obj.programs().at(0);
  const CoreRelo* good = find_relo(p, kTypeMatches, "point", "0");
  const CoreRelo* bad = find_relo(p, kTypeMatches, "point___bad", "0");
  const CoreRelo* en = find_relo(p, kTypeMatches, "color", "0");
  ASSERT_TRUE(good && bad && en);
  EXPECT_EQ(good->new_value, 1u);
  EXPECT_EQ(bad->new_value, 0u);
  EXPECT_EQ(en->new_value, 1u);
}
