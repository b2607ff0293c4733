// BTF through libbpf's parser (btf__new / btf__parse), plus our own .BTF.ext
// parser: libbpf 1.1 exports btf_ext__new but no accessor for its func_info,
// line_info or CO-RE records, so we read the documented layout
// (Documentation/bpf/btf.rst, "BTF.ext section") ourselves, bounds-checking
// every record against the section and every string against the string table.
#include <fmt/format.h>

#include <cerrno>
#include <cstring>

#include "loader/internal.hpp"

namespace userbpf::loader {

namespace {
Error btf_error(const std::string& where, std::string msg, int code = EINVAL) {
  Error e = make_error(code, std::move(msg));
  e.where = where;
  return e;
}
}  // namespace

Btf::~Btf() {
  if (btf_) btf__free(btf_);
}

// libbpf 1.1's btf__new checks record sizes and string bounds but not that
// type references are in range or acyclic, and btf__align_of/resolve_size
// recurse through them; so every BTF we keep is checked here first:
// referenced ids < type count, names resolvable, and no cycle through
// by-value containment (typedef/modifiers/var/array element/struct member/
// datasec variable; pointers and function prototypes break cycles).
Status Btf::validate(const std::string& where) const {
  const std::uint32_t n = count();
  std::vector<std::vector<std::uint32_t>> by_value(n);
  auto bad = [&](std::uint32_t id, std::string what) {
    return btf_error(where, fmt::format("BTF type [{}] {}: {}", id, btf_kind_name(btf_kind_of(type(id))), what));
  };
  for (std::uint32_t id = 1; id < n; ++id) {
    const struct btf_type* t = btf__type_by_id(btf_, id);
    if (!t) return btf_error(where, fmt::format("BTF type [{}] missing", id));
    if (!btf__name_by_offset(btf_, t->name_off)) return bad(id, fmt::format("bad name offset {}", t->name_off));
    auto ref = [&](std::uint32_t r, bool value) -> Status {
      if (r >= n) return bad(id, fmt::format("references type [{}] (only {} types)", r, n));
      if (value && r != 0) by_value[id].push_back(r);
      return Ok{};
    };
    const std::uint32_t k = btf_kind_of(t);
    Status st = Ok{};
    switch (k) {
      case BTF_KIND_TYPEDEF: case BTF_KIND_CONST: case BTF_KIND_VOLATILE: case BTF_KIND_RESTRICT:
      case BTF_KIND_TYPE_TAG: case BTF_KIND_VAR:
        st = ref(t->type, true);
        break;
      case BTF_KIND_PTR: case BTF_KIND_FUNC: case BTF_KIND_DECL_TAG:
        st = ref(t->type, false);
        break;
      case BTF_KIND_ARRAY: {
        const struct btf_array* a = btf_array_of(t);
        st = ref(a->type, true);
        if (st) st = ref(a->index_type, false);
        break;
      }
      case BTF_KIND_STRUCT: case BTF_KIND_UNION: {
        const struct btf_member* m = btf_members_of(t);
        for (std::uint32_t i = 0; i < btf_vlen_of(t) && st; ++i) {
          if (!btf__name_by_offset(btf_, m[i].name_off)) return bad(id, fmt::format("member #{} has a bad name", i));
          st = ref(m[i].type, true);
        }
        break;
      }
      case BTF_KIND_FUNC_PROTO: {
        st = ref(t->type, false);
        const struct btf_param* p = btf_params_of(t);
        for (std::uint32_t i = 0; i < btf_vlen_of(t) && st; ++i) st = ref(p[i].type, false);
        break;
      }
      case BTF_KIND_DATASEC: {
        const struct btf_var_secinfo* v = btf_secinfos_of(t);
        for (std::uint32_t i = 0; i < btf_vlen_of(t) && st; ++i) st = ref(v[i].type, true);
        break;
      }
      case BTF_KIND_ENUM: case BTF_KIND_ENUM64: {
        for (std::uint32_t i = 0; i < btf_vlen_of(t); ++i) {
          const std::uint32_t no = k == BTF_KIND_ENUM ? reinterpret_cast<const struct btf_enum*>(t + 1)[i].name_off
                                                      : reinterpret_cast<const struct btf_enum64*>(t + 1)[i].name_off;
          if (!btf__name_by_offset(btf_, no)) return bad(id, fmt::format("enumerator #{} has a bad name", i));
        }
        break;
      }
      default:
        break;
    }
    if (!st) return st;
  }
  // Iterative DFS for cycles (0 = new, 1 = on stack, 2 = done).
  std::vector<std::uint8_t> color(n, 0);
  std::vector<std::pair<std::uint32_t, std::size_t>> stack;
  for (std::uint32_t root = 1; root < n; ++root) {
    if (color[root] != 0) continue;
    stack.push_back({root, 0});
    color[root] = 1;
    while (!stack.empty()) {
      auto& [id, next] = stack.back();
      if (next < by_value[id].size()) {
        const std::uint32_t r = by_value[id][next++];
        if (color[r] == 1) return bad(r, "contains itself (reference cycle)");
        if (color[r] == 0) {
          color[r] = 1;
          stack.push_back({r, 0});
        }
      } else {
        color[id] = 2;
        stack.pop_back();
      }
    }
  }
  return Ok{};
}

Result<std::unique_ptr<Btf>> Btf::parse(std::span<const std::uint8_t> data, const std::string& where) {
  errno = 0;
  struct btf* b = btf__new(data.data(), static_cast<__u32>(data.size()));
  if (!b) {
    const int err = errno ? errno : EINVAL;
    return btf_error(where, fmt::format("failed to parse BTF ({} bytes): {}", data.size(), std::strerror(err)), err);
  }
  std::unique_ptr<Btf> out(new Btf(b));
  if (auto s = out->validate(where); !s) return s.error();
  return out;
}

Result<std::unique_ptr<Btf>> Btf::parse_file(const std::string& path) {
  errno = 0;
  struct btf* b = btf__parse(path.c_str(), nullptr);
  if (!b) {
    const int err = errno ? errno : EINVAL;
    return btf_error(path, fmt::format("failed to load target BTF: {}", std::strerror(err)), err);
  }
  std::unique_ptr<Btf> out(new Btf(b));
  if (auto s = out->validate(path); !s) return s.error();
  return out;
}

const struct btf_type* Btf::type(std::uint32_t id) const {
  if (id >= btf__type_cnt(btf_)) return nullptr;
  return btf__type_by_id(btf_, id);
}

std::string_view Btf::name(std::uint32_t name_off) const {
  const char* s = btf__name_by_offset(btf_, name_off);
  return s ? std::string_view(s) : std::string_view();
}

std::string_view Btf::type_name(std::uint32_t id) const {
  const struct btf_type* t = type(id);
  return t ? name(t->name_off) : std::string_view();
}

std::uint32_t Btf::count() const { return btf__type_cnt(btf_); }

std::uint32_t Btf::skip_mods_and_typedefs(std::uint32_t id) const {
  for (int depth = 0; depth < 64; ++depth) {
    const struct btf_type* t = type(id);
    if (!t) return 0;
    switch (btf_kind_of(t)) {
      case BTF_KIND_CONST: case BTF_KIND_VOLATILE: case BTF_KIND_RESTRICT: case BTF_KIND_TYPEDEF:
      case BTF_KIND_TYPE_TAG:
        id = t->type;
        break;
      default:
        return id;
    }
  }
  return 0;
}

std::int64_t Btf::resolve_size(std::uint32_t id) const { return btf__resolve_size(btf_, id); }

std::int32_t Btf::find_by_name_kind(std::string_view n, std::uint32_t kind) const {
  return btf__find_by_name_kind(btf_, std::string(n).c_str(), kind);
}

const struct btf_member* btf_members_of(const struct btf_type* t) { return reinterpret_cast<const struct btf_member*>(t + 1); }
const struct btf_array* btf_array_of(const struct btf_type* t) { return reinterpret_cast<const struct btf_array*>(t + 1); }
const struct btf_var_secinfo* btf_secinfos_of(const struct btf_type* t) { return reinterpret_cast<const struct btf_var_secinfo*>(t + 1); }
const struct btf_param* btf_params_of(const struct btf_type* t) { return reinterpret_cast<const struct btf_param*>(t + 1); }
std::uint32_t btf_member_bit_offset_of(const struct btf_type* t, std::uint32_t i) {
  const std::uint32_t off = btf_members_of(t)[i].offset;
  return btf_kflag_of(t) ? BTF_MEMBER_BIT_OFFSET(off) : off;
}
std::uint32_t btf_member_bitfield_size_of(const struct btf_type* t, std::uint32_t i) {
  const std::uint32_t off = btf_members_of(t)[i].offset;
  return btf_kflag_of(t) ? BTF_MEMBER_BITFIELD_SIZE(off) : 0;
}
static std::uint32_t int_word(const struct btf_type* t) {
  std::uint32_t v;
  std::memcpy(&v, t + 1, sizeof v);
  return v;
}
std::uint32_t btf_int_encoding_of(const struct btf_type* t) { return BTF_INT_ENCODING(int_word(t)); }
std::uint32_t btf_int_offset_of(const struct btf_type* t) { return BTF_INT_OFFSET(int_word(t)); }
std::uint32_t btf_int_bits_of(const struct btf_type* t) { return BTF_INT_BITS(int_word(t)); }

std::string_view btf_kind_name(std::uint32_t kind) {
  static constexpr std::string_view kNames[] = {"UNKN",  "INT",     "PTR",        "ARRAY",   "STRUCT", "UNION",
                                                "ENUM",  "FWD",     "TYPEDEF",    "VOLATILE", "CONST",  "RESTRICT",
                                                "FUNC",  "FUNC_PROTO", "VAR",     "DATASEC", "FLOAT",  "DECL_TAG",
                                                "TYPE_TAG", "ENUM64"};
  return kind < std::size(kNames) ? kNames[kind] : std::string_view("?");
}

std::string_view essential_name(std::string_view name) {
  // "X___Y": X and Y not underscores; the last such separator wins (libbpf scans from the end).
  if (name.size() < 5) return name;
  for (std::size_t i = name.size() - 5 + 1; i-- > 0;) {
    if (name[i] != '_' && name[i + 1] == '_' && name[i + 2] == '_' && name[i + 3] == '_' && name[i + 4] != '_')
      return name.substr(0, i + 1);
  }
  return name;
}

// ------------------------------------------------------------------ .BTF.ext
namespace {

template <class T>
Status parse_info(std::span<const std::uint8_t> sub, const Btf& btf, const std::string& where, const char* what,
                  std::size_t base_off, std::vector<ExtSection<T>>& out) {
  if (sub.empty()) return Ok{};
  auto at = [&](std::size_t off) { return base_off + off; };
  if (sub.size() < 4) {
    Error e = btf_error(where, fmt::format(".BTF.ext: {} too short ({} bytes)", what, sub.size()));
    e.offset = at(0);
    return e;
  }
  std::uint32_t rec_size;
  std::memcpy(&rec_size, sub.data(), 4);
  if (rec_size < sizeof(T) || rec_size % 4 != 0) {
    Error e = btf_error(where, fmt::format(".BTF.ext: {} record size {} invalid (need >= {})", what, rec_size,
                                           sizeof(T)));
    e.offset = at(0);
    return e;
  }
  std::size_t off = 4;
  while (off < sub.size()) {
    if (sub.size() - off < 8) {
      Error e = btf_error(where, fmt::format(".BTF.ext: {} section header truncated", what));
      e.offset = at(off);
      return e;
    }
    std::uint32_t name_off, num;
    std::memcpy(&name_off, sub.data() + off, 4);
    std::memcpy(&num, sub.data() + off + 4, 4);
    off += 8;
    if (num == 0) {
      Error e = btf_error(where, fmt::format(".BTF.ext: {} section with no records", what));
      e.offset = at(off - 8);
      return e;
    }
    if (static_cast<std::uint64_t>(num) * rec_size > sub.size() - off) {
      Error e = btf_error(where, fmt::format(".BTF.ext: {} section: {} records of {} bytes past the end", what, num,
                                             rec_size));
      e.offset = at(off);
      return e;
    }
    const char* sname = btf__str_by_offset(btf.get(), name_off);
    if (!sname || !*sname) {
      Error e = btf_error(where, fmt::format(".BTF.ext: {} section name offset {} invalid", what, name_off));
      e.offset = at(off - 8);
      return e;
    }
    ExtSection<T> sec;
    sec.section = sname;
    sec.records.resize(num);
    for (std::uint32_t i = 0; i < num; ++i) std::memcpy(&sec.records[i], sub.data() + off + i * rec_size, sizeof(T));
    off += static_cast<std::size_t>(num) * rec_size;
    out.push_back(std::move(sec));
  }
  return Ok{};
}

}  // namespace

Result<BtfExt> parse_btf_ext(std::span<const std::uint8_t> data, const Btf& btf, const std::string& where) {
  BtfExt ext;
  struct Header {
    std::uint16_t magic;
    std::uint8_t version;
    std::uint8_t flags;
    std::uint32_t hdr_len;
    std::uint32_t func_info_off, func_info_len, line_info_off, line_info_len;
    std::uint32_t core_relo_off, core_relo_len;
  } h{};
  constexpr std::size_t kMinHdr = 24;
  if (data.size() < kMinHdr) return btf_error(where, fmt::format(".BTF.ext: header truncated ({} bytes)", data.size()));
  std::memcpy(&h, data.data(), std::min(sizeof h, data.size()));
  if (h.magic != 0xeB9F) return btf_error(where, fmt::format(".BTF.ext: bad magic 0x{:x}", h.magic));
  if (h.version != 1) return btf_error(where, fmt::format(".BTF.ext: unsupported version {}", h.version));
  if (h.hdr_len < kMinHdr || h.hdr_len > data.size())
    return btf_error(where, fmt::format(".BTF.ext: header length {} invalid", h.hdr_len));
  if (h.hdr_len < sizeof h) h.core_relo_off = h.core_relo_len = 0;
  const std::span<const std::uint8_t> body = data.subspan(h.hdr_len);
  auto sub = [&](std::uint32_t off, std::uint32_t len, const char* what) -> Result<std::span<const std::uint8_t>> {
    if (off > body.size() || len > body.size() - off) {
      Error e = btf_error(where, fmt::format(".BTF.ext: {} [{}, +{}) outside the section", what, off, len));
      e.offset = h.hdr_len + off;
      return e;
    }
    return body.subspan(off, len);
  };
  auto fi = sub(h.func_info_off, h.func_info_len, "func_info");
  if (!fi) return fi.error();
  auto li = sub(h.line_info_off, h.line_info_len, "line_info");
  if (!li) return li.error();
  auto cr = sub(h.core_relo_off, h.core_relo_len, "core_relo");
  if (!cr) return cr.error();
  if (auto s = parse_info(*fi, btf, where, "func_info", h.hdr_len + h.func_info_off, ext.func_info); !s)
    return s.error();
  if (auto s = parse_info(*li, btf, where, "line_info", h.hdr_len + h.line_info_off, ext.line_info); !s)
    return s.error();
  if (auto s = parse_info(*cr, btf, where, "core_relo", h.hdr_len + h.core_relo_off, ext.core_relos); !s)
    return s.error();
  return ext;
}

}  // namespace userbpf::loader
