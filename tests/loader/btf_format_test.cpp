// The BTF value formatter (src/loader/btf_format.cpp) on the types of
// progs/btf_values.bpf.c: expected JSON written out by hand from values set
// through C++ mirrors of the C structs, and the same maps dumped by bpftool
// from the kernel (`bpftool map dump id N -j`, its "formatted" part).
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <memory>

#include "loader/btf_format.hpp"
#include "loader/loader.hpp"
#include "test_util.hpp"

extern "C" {
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
}

using namespace userbpf;
using namespace userbpf::loader;
using nlohmann::json;

namespace {

// Mirrors of btf_values.bpf.c's types (same layout on x86-64 and BPF).
enum color : int { RED = 0, GREEN = 1, BLUE = 7 };
struct inner {
  short s;
  unsigned char b;
};
struct key {
  unsigned int id;
  char tag[4];
};
struct value {
  unsigned long long u64;
  long long s64;
  int s32;
  unsigned short u16;
  signed char s8;
  bool flag;
  char name[12];
  char raw[4];
  int arr[3];
  inner in[2];
  union {
    unsigned int as_int;
    unsigned char as_bytes[4];
  } un;
  union {
    int anon_a;
    unsigned int anon_b;
  };
  color col;
  void* ptr;
};
struct bits {
  unsigned int a : 3;
  int b : 5;
  unsigned int c : 24;
  color col : 4;
  unsigned long long big : 40;
};

template <class T>
std::span<const std::uint8_t> bytes(const T& v) {
  return {reinterpret_cast<const std::uint8_t*>(&v), sizeof v};
}

void fill(key& k, value& v) {
  std::memset(&k, 0, sizeof k);
  std::memset(&v, 0, sizeof v);
  k.id = 42;
  std::memcpy(k.tag, "ab", 3);
  v.u64 = 0xfedcba9876543210ull;
  v.s64 = -1234567890123ll;
  v.s32 = -7;
  v.u16 = 65535;
  v.s8 = -128;
  v.flag = true;
  std::memcpy(v.name, "hello", 6);
  v.raw[0] = 'x';
  v.raw[1] = 1;  // not printable: not a string
  v.arr[0] = 1;
  v.arr[1] = -2;
  v.arr[2] = 3;
  v.in[0] = {-3, 200};
  v.in[1] = {4, 5};
  v.un.as_int = 0x04030201;
  v.anon_a = -9;
  v.col = BLUE;
  v.ptr = reinterpret_cast<void*>(0x1000);
}

const Map& map_of(const Object& o, std::string_view name) {
  const Map* m = o.find_map(name);
  EXPECT_NE(m, nullptr) << name;
  static Map none;
  return m ? *m : none;
}

}  // namespace

TEST(BtfFormat, StructsArraysUnionsEnums) {
  OPEN_OR_FAIL(obj, "btf_values.bpf.o");
  const Map& m = map_of(obj, "typed");
  ASSERT_EQ(m.key_size, sizeof(key));
  ASSERT_EQ(m.value_size, sizeof(value));
  key k;
  value v;
  fill(k, v);
  auto kj = format_btf_value(obj.btf(), m.btf_key_type_id, bytes(k));
  ASSERT_TRUE(kj.ok()) << kj.error().to_string();
  EXPECT_EQ(*kj, json::parse(R"({"id": 42, "tag": "ab"})"));
  auto vj = format_btf_value(obj.btf(), m.btf_value_type_id, bytes(v));
  ASSERT_TRUE(vj.ok()) << vj.error().to_string();
  const json want = json::parse(R"({
    "u64": 18364758544493064720, "s64": -1234567890123, "s32": -7, "u16": 65535, "s8": -128,
    "flag": true, "name": "hello", "raw": [120, 1, 0, 0], "arr": [1, -2, 3],
    "in": [{"s": -3, "b": 200}, {"s": 4, "b": 5}],
    "un": {"as_int": 67305985, "as_bytes": [1, 2, 3, 4]},
    "": {"anon_a": -9, "anon_b": 4294967287},
    "color": "BLUE", "ptr": 4096})");
  EXPECT_EQ(*vj, want) << vj->dump(2);
  // An enum value without an enumerator prints the number.
  v.col = static_cast<color>(3);
  auto vj2 = format_btf_value(obj.btf(), m.btf_value_type_id, bytes(v));
  ASSERT_TRUE(vj2.ok());
  EXPECT_EQ((*vj2)["color"], 3);
}

TEST(BtfFormat, Bitfields) {
  OPEN_OR_FAIL(obj, "btf_values.bpf.o");
  const Map& m = map_of(obj, "bitmap");
  ASSERT_EQ(m.value_size, sizeof(bits));
  bits b{};
  b.a = 5;
  b.b = -3;
  b.c = 0xabcdef;
  b.col = GREEN;
  b.big = 0xfedcba9876ull;
  auto j = format_btf_value(obj.btf(), m.btf_value_type_id, bytes(b));
  ASSERT_TRUE(j.ok()) << j.error().to_string();
  EXPECT_EQ(*j, json::parse(R"({"a": 5, "b": -3, "c": 11259375, "col": "GREEN", "big": 1094624909430})")) << j->dump();
}

TEST(BtfFormat, GlobalDataSections) {
  OPEN_OR_FAIL(obj, "btf_values.bpf.o");
  const Map* data = nullptr;
  const Map* rodata = nullptr;
  for (const Map& m : obj.maps()) {
    if (m.real_name == ".data") data = &m;
    if (m.real_name == ".rodata") rodata = &m;
  }
  ASSERT_TRUE(data && rodata);
  auto dj = format_btf_value(obj.btf(), data->btf_value_type_id, data->initial_data);
  ASSERT_TRUE(dj.ok()) << dj.error().to_string();
  EXPECT_EQ(*dj, json::parse(R"({".data": [{"global_counter": 5}]})"));
  auto rj = format_btf_value(obj.btf(), rodata->btf_value_type_id, rodata->initial_data);
  ASSERT_TRUE(rj.ok()) << rj.error().to_string();
  EXPECT_EQ(*rj, json::parse(R"({".rodata": [{"greeting": "hi"}]})"));
}

TEST(BtfFormat, ErrorsNameTheType) {
  OPEN_OR_FAIL(obj, "btf_values.bpf.o");
  const Map& m = map_of(obj, "typed");
  const std::vector<std::uint8_t> short_value(10, 0);
  auto r = format_btf_value(obj.btf(), m.btf_value_type_id, short_value);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("value"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("needs"), std::string::npos) << r.error().message;
  auto r2 = format_btf_value(obj.btf(), 1u << 30, short_value);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().message.find("no such type"), std::string::npos);
  // Every prefix of a value is either formatted or refused, never read past.
  key k;
  value v;
  fill(k, v);
  const auto all = bytes(v);
  for (std::size_t n = 0; n < all.size(); ++n) {
    const std::vector<std::uint8_t> cut(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FALSE(format_btf_value(obj.btf(), m.btf_value_type_id, cut).ok()) << n;
  }
  // parse_btf validates raw BTF the way the loader does.
  EXPECT_TRUE(parse_btf(obj.btf_data()).ok());
  EXPECT_FALSE(parse_btf(std::vector<std::uint8_t>(16, 0xff)).ok());
}

// The kernel as oracle: libbpf loads the object, the maps are filled, and
// bpftool's JSON "formatted" output must equal ours.
TEST(BtfFormat, SameAsBpftool) {
  if (access("/usr/sbin/bpftool", X_OK) != 0) GTEST_SKIP() << "bpftool not installed";
  libbpf_set_print([](enum libbpf_print_level, const char*, va_list) { return 0; });
  const std::string path = loader_test::prog_path("btf_values.bpf.o");
  struct bpf_object* lb = bpf_object__open_file(path.c_str(), nullptr);
  ASSERT_NE(lb, nullptr);
  if (const int err = bpf_object__load(lb); err != 0) {
    bpf_object__close(lb);
    GTEST_SKIP() << "the kernel refused the object: " << std::strerror(-err);
  }
  std::unique_ptr<struct bpf_object, void (*)(struct bpf_object*)> guard(lb, bpf_object__close);
  OPEN_OR_FAIL(obj, "btf_values.bpf.o");
  key k;
  value v;
  fill(k, v);
  struct bpf_map* typed = bpf_object__find_map_by_name(lb, "typed");
  ASSERT_NE(typed, nullptr);
  ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(typed), &k, &v, BPF_ANY), 0);
  struct Case {
    std::string ours_name;
    struct bpf_map* theirs;
  };
  std::vector<Case> cases = {{"typed", typed}, {"pcpu", bpf_object__find_map_by_name(lb, "pcpu")}};
  for (const Map& m : obj.maps())
    if (m.real_name == ".data" || m.real_name == ".rodata") {
      struct bpf_map* bm = nullptr;
      bpf_object__for_each_map(bm, lb) if (std::string(bpf_map__name(bm)).ends_with(m.real_name)) cases.push_back({m.name, bm});
    }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.ours_name);
    ASSERT_NE(c.theirs, nullptr);
    struct bpf_map_info info {};
    __u32 len = sizeof info;
    ASSERT_EQ(bpf_obj_get_info_by_fd(bpf_map__fd(c.theirs), &info, &len), 0);
    const std::string cmd = "/usr/sbin/bpftool -j map dump id " + std::to_string(info.id) + " 2>&1";
    std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
    ASSERT_NE(p, nullptr);
    std::string out;
    std::array<char, 4096> buf{};
    while (std::fgets(buf.data(), buf.size(), p.get()) != nullptr) out += buf.data();
    const json theirs = json::parse(out, nullptr, false);
    ASSERT_FALSE(theirs.is_discarded()) << out;
    ASSERT_FALSE(theirs.empty()) << out;
    const Map& m = map_of(obj, c.ours_name);
    for (const json& e : theirs) {
      ASSERT_TRUE(e.contains("formatted")) << e.dump();
      const json& f = e["formatted"];
      std::vector<std::uint8_t> kb, vb;
      for (const json& x : e["key"]) kb.push_back(static_cast<std::uint8_t>(std::stoul(x.get<std::string>(), nullptr, 16)));
      auto kj = format_btf_value(obj.btf(), m.btf_key_type_id, kb);
      if (m.btf_key_type_id != 0) {
        ASSERT_TRUE(kj.ok()) << kj.error().to_string();
        EXPECT_EQ(*kj, f["key"]);
      }
      if (e.contains("values")) {  // per-CPU: one value per CPU
        ASSERT_EQ(e["values"].size(), f["values"].size());
        for (std::size_t i = 0; i < e["values"].size(); ++i) {
          vb.clear();
          for (const json& x : e["values"][i]["value"])
            vb.push_back(static_cast<std::uint8_t>(std::stoul(x.get<std::string>(), nullptr, 16)));
          auto vj = format_btf_value(obj.btf(), m.btf_value_type_id, vb);
          ASSERT_TRUE(vj.ok()) << vj.error().to_string();
          EXPECT_EQ(*vj, f["values"][i]["value"]);
        }
        continue;
      }
      for (const json& x : e["value"]) vb.push_back(static_cast<std::uint8_t>(std::stoul(x.get<std::string>(), nullptr, 16)));
      auto vj = format_btf_value(obj.btf(), m.btf_value_type_id, vb);
      ASSERT_TRUE(vj.ok()) << vj.error().to_string();
      EXPECT_EQ(*vj, f["value"]) << "ours: " << vj->dump() << "\nbpftool: " << f["value"].dump();
    }
  }
}
