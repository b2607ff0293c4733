// BTF value formatter (btf_format.hpp has the rules). A recursive walk over
// the type graph with an explicit depth limit; every access is checked
// against the remaining bytes of the value, and bit-level reads go through
// one function (read_bits) that handles bitfields and odd-width ints alike.
#include "loader/btf_format.hpp"

#include "loader/internal.hpp"

#include <fmt/format.h>
#include <linux/btf.h>

#include <cctype>
#include <cstring>
#include <string>

extern "C" {
#include <bpf/btf.h>
}

namespace userbpf::loader {

namespace {

constexpr int kMaxDepth = 64;

struct Formatter {
  const struct btf* btf;

  Error fail(std::uint32_t id, const std::string& msg) const {
    const struct btf_type* t = btf__type_by_id(btf, id);
    const char* name = t != nullptr ? btf__name_by_offset(btf, t->name_off) : nullptr;
    return make_error(EINVAL, fmt::format("BTF type [{}]{}{}: {}", id, name != nullptr && *name ? " " : "",
                                          name != nullptr ? name : "", msg));
  }

  // Reads `bits` bits (<= 128) starting at bit `bit_off` of `data`
  // (little-endian bit numbering); false if out of range.
  static bool read_bits(std::span<const std::uint8_t> data, std::uint64_t bit_off, std::uint32_t bits,
                        unsigned __int128& out) {
    if (bits == 0 || bits > 128 || bit_off + bits > data.size() * 8ull) return false;
    out = 0;
    for (std::uint32_t i = 0; i < bits; ++i) {
      const std::uint64_t b = bit_off + i;
      if ((data[b / 8] >> (b % 8)) & 1u) out |= static_cast<unsigned __int128>(1) << i;
    }
    return true;
  }

  static nlohmann::json int_json(unsigned __int128 v, std::uint32_t bits, bool is_signed) {
    if (bits > 64) {
      const auto hi = static_cast<std::uint64_t>(v >> 64), lo = static_cast<std::uint64_t>(v);
      return hi == 0 ? fmt::format("{:#x}", lo) : fmt::format("{:#x}{:016x}", hi, lo);
    }
    const auto u = static_cast<std::uint64_t>(v);
    if (is_signed && bits > 0 && bits < 64 && ((u >> (bits - 1)) & 1u) != 0)
      return static_cast<std::int64_t>(u | (~std::uint64_t{0} << bits));
    if (is_signed) return static_cast<std::int64_t>(u);
    return u;
  }

  // An int type at bit offset `bit_off` of `data`, with an optional
  // bitfield size override (struct members with a bitfield size).
  Result<nlohmann::json> do_int(std::uint32_t id, const struct btf_type* t, std::span<const std::uint8_t> data,
                                std::uint64_t bit_off, std::uint32_t bitfield) const {
    const std::uint32_t info = *reinterpret_cast<const std::uint32_t*>(t + 1);
    const std::uint32_t enc = BTF_INT_ENCODING(info);
    const std::uint32_t bits = bitfield != 0 ? bitfield : BTF_INT_BITS(info);
    const std::uint64_t off = bit_off + (bitfield != 0 ? 0 : BTF_INT_OFFSET(info));
    unsigned __int128 v = 0;
    if (!read_bits(data, off, bits, v))
      return fail(id, fmt::format("value of {} bytes too short for {} bits at bit {}", data.size(), bits, off));
    if ((enc & BTF_INT_BOOL) != 0) return nlohmann::json(v != 0);
    if ((enc & BTF_INT_CHAR) != 0 && bits == 8) {
      const auto c = static_cast<unsigned char>(v);
      if (std::isprint(c) != 0) return nlohmann::json(std::string(1, static_cast<char>(c)));
      return nlohmann::json(static_cast<unsigned>(c));
    }
    return int_json(v, bits, (enc & BTF_INT_SIGNED) != 0);
  }

  std::uint32_t skip_mods(std::uint32_t id) const {
    for (int i = 0; i < kMaxDepth; ++i) {
      const struct btf_type* t = btf__type_by_id(btf, id);
      if (t == nullptr) return id;
      const auto k = BTF_INFO_KIND(t->info);
      if (k != BTF_KIND_CONST && k != BTF_KIND_VOLATILE && k != BTF_KIND_RESTRICT && k != BTF_KIND_TYPE_TAG) return id;
      id = t->type;
    }
    return id;
  }

  // bpftool's is_str_array: a char array holding a printable, NUL-terminated
  // string followed only by NULs.
  bool is_str_array(const struct btf_array* a, std::span<const std::uint8_t> data) const {
    const struct btf_type* e = btf__type_by_id(btf, skip_mods(a->type));  // typedefs to char don't count
    if (e == nullptr || BTF_INFO_KIND(e->info) != BTF_KIND_INT || e->size != 1) return false;
    const std::uint32_t enc = BTF_INT_ENCODING(*reinterpret_cast<const std::uint32_t*>(e + 1));
    const char* name = btf__name_by_offset(btf, e->name_off);
    if ((enc & BTF_INT_CHAR) == 0 && (name == nullptr || std::strcmp(name, "char") != 0)) return false;
    if (a->nelems == 0 || data.size() < a->nelems) return false;
    std::size_t i = 0;
    for (; i < a->nelems && data[i] != 0; ++i)
      if (std::isprint(data[i]) == 0) return false;
    if (i == a->nelems) return false;  // not NUL-terminated
    for (; i < a->nelems; ++i)
      if (data[i] != 0) return false;
    return true;
  }

  Status members(std::uint32_t id, const struct btf_type* t, std::span<const std::uint8_t> data, int depth,
                 nlohmann::json& obj) const {
    const bool kflag = BTF_INFO_KFLAG(t->info) != 0;
    const auto* m = reinterpret_cast<const struct btf_member*>(t + 1);
    for (std::uint32_t i = 0; i < BTF_INFO_VLEN(t->info); ++i) {
      const std::uint32_t bit_off = kflag ? BTF_MEMBER_BIT_OFFSET(m[i].offset) : m[i].offset;
      const std::uint32_t bf = kflag ? BTF_MEMBER_BITFIELD_SIZE(m[i].offset) : 0;
      const char* name = btf__name_by_offset(btf, m[i].name_off);
      Result<nlohmann::json> v = nlohmann::json();
      if (bf != 0 || bit_off % 8 != 0) {
        // Bitfield: an int (or enum) read at a bit position.
        const std::uint32_t mid = btf__resolve_type(btf, m[i].type) > 0
                                      ? static_cast<std::uint32_t>(btf__resolve_type(btf, m[i].type))
                                      : m[i].type;
        const struct btf_type* mt = btf__type_by_id(btf, mid);
        if (mt == nullptr) return fail(id, fmt::format("member '{}': bad type id {}", name ? name : "", m[i].type));
        const auto mk = BTF_INFO_KIND(mt->info);
        if (mk == BTF_KIND_INT) {
          v = do_int(mid, mt, data, bit_off, bf != 0 ? bf : BTF_INT_BITS(*reinterpret_cast<const std::uint32_t*>(mt + 1)));
        } else if (mk == BTF_KIND_ENUM || mk == BTF_KIND_ENUM64) {
          unsigned __int128 raw = 0;
          const std::uint32_t bits = bf != 0 ? bf : mt->size * 8;
          if (!read_bits(data, bit_off, bits, raw)) return fail(id, fmt::format("member '{}': value too short", name));
          v = enum_json(mt, static_cast<std::uint64_t>(raw), bits);
        } else {
          if (bit_off % 8 != 0) return fail(id, fmt::format("member '{}': non-int at bit offset {}", name, bit_off));
        }
        if (!v) return v.error();
        if (!v->is_null()) {
          obj[name != nullptr ? name : ""] = std::move(*v);
          continue;
        }
      }
      const std::size_t byte_off = bit_off / 8;
      if (byte_off > data.size()) return fail(id, fmt::format("member '{}' at byte {} outside the value", name, byte_off));
      auto sub = format(m[i].type, data.subspan(byte_off), depth + 1);
      if (!sub) return sub.error();
      const std::uint32_t rid = skip_mods(m[i].type);
      const struct btf_type* rt = btf__type_by_id(btf, rid);
      const bool anon_composite = (name == nullptr || *name == 0) && rt != nullptr &&
                                  (BTF_INFO_KIND(rt->info) == BTF_KIND_STRUCT || BTF_INFO_KIND(rt->info) == BTF_KIND_UNION);
      if (anon_composite && sub->is_object() && obj.contains("")) {
        // bpftool writes a second "" key; a JSON object can't: merge them.
        for (auto& [k, val] : sub->items()) obj[""][k] = val;
      } else {
        obj[name != nullptr ? name : ""] = std::move(*sub);
      }
    }
    return Ok{};
  }

  nlohmann::json enum_json(const struct btf_type* t, std::uint64_t v, std::uint32_t bits) const {
    const bool sgn = BTF_INFO_KFLAG(t->info) != 0;
    const std::uint64_t mask = bits >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << bits) - 1;
    if (BTF_INFO_KIND(t->info) == BTF_KIND_ENUM) {
      const auto* e = reinterpret_cast<const struct btf_enum*>(t + 1);
      for (std::uint32_t i = 0; i < BTF_INFO_VLEN(t->info); ++i)
        if ((static_cast<std::uint64_t>(static_cast<std::int64_t>(e[i].val)) & mask) == (v & mask))
          return btf__name_by_offset(btf, e[i].name_off);
    } else {
      const auto* e = reinterpret_cast<const struct btf_enum64*>(t + 1);
      for (std::uint32_t i = 0; i < BTF_INFO_VLEN(t->info); ++i) {
        const std::uint64_t ev = (std::uint64_t{e[i].val_hi32} << 32) | e[i].val_lo32;
        if ((ev & mask) == (v & mask)) return btf__name_by_offset(btf, e[i].name_off);
      }
    }
    return int_json(v & mask, bits, sgn);
  }

  Result<nlohmann::json> format(std::uint32_t id, std::span<const std::uint8_t> data, int depth) const {
    if (depth > kMaxDepth) return fail(id, "types nested deeper than 64 levels");
    const struct btf_type* t = btf__type_by_id(btf, id);
    if (t == nullptr || id == 0) return fail(id, "no such type (or void)");
    auto need = [&](std::uint64_t n) -> Status {
      if (data.size() < n) return fail(id, fmt::format("value of {} bytes, the type needs {}", data.size(), n));
      return Ok{};
    };
    switch (BTF_INFO_KIND(t->info)) {
      case BTF_KIND_INT: return do_int(id, t, data, 0, 0);
      case BTF_KIND_PTR: {
        if (auto s = need(8); !s) return s.error();
        std::uint64_t v = 0;
        std::memcpy(&v, data.data(), 8);
        return nlohmann::json(v);
      }
      case BTF_KIND_ARRAY: {
        const auto* a = reinterpret_cast<const struct btf_array*>(t + 1);
        const long long esz = btf__resolve_size(btf, a->type);
        if (esz < 0) return fail(id, "array element of unknown size");
        if (auto s = need(static_cast<std::uint64_t>(esz) * a->nelems); !s) return s.error();
        if (is_str_array(a, data))
          return nlohmann::json(std::string(reinterpret_cast<const char*>(data.data())));
        nlohmann::json arr = nlohmann::json::array();
        for (std::uint32_t i = 0; i < a->nelems; ++i) {
          auto e = format(a->type, data.subspan(static_cast<std::size_t>(esz) * i), depth + 1);
          if (!e) return e.error();
          arr.push_back(std::move(*e));
        }
        return arr;
      }
      case BTF_KIND_STRUCT:
      case BTF_KIND_UNION: {
        if (auto s = need(t->size); !s) return s.error();
        nlohmann::json obj = nlohmann::json::object();
        if (auto s = members(id, t, data.first(t->size), depth, obj); !s) return s.error();
        return obj;
      }
      case BTF_KIND_ENUM:
      case BTF_KIND_ENUM64: {
        if (t->size == 0 || t->size > 8) return fail(id, fmt::format("enum of {} bytes", t->size));
        if (auto s = need(t->size); !s) return s.error();
        std::uint64_t v = 0;
        for (std::uint32_t i = 0; i < t->size; ++i) v |= std::uint64_t{data[i]} << (8 * i);
        return enum_json(t, v, t->size * 8);
      }
      case BTF_KIND_FLOAT: {
        if (auto s = need(t->size); !s) return s.error();
        if (t->size == 4) {
          float f = 0;
          std::memcpy(&f, data.data(), 4);
          return nlohmann::json(static_cast<double>(f));
        }
        if (t->size == 8) {
          double d = 0;
          std::memcpy(&d, data.data(), 8);
          return nlohmann::json(d);
        }
        unsigned __int128 raw = 0;
        if (!read_bits(data, 0, t->size * 8, raw)) return fail(id, "float wider than 16 bytes");
        return int_json(raw, t->size * 8, false);
      }
      case BTF_KIND_TYPEDEF:
      case BTF_KIND_CONST:
      case BTF_KIND_VOLATILE:
      case BTF_KIND_RESTRICT:
      case BTF_KIND_TYPE_TAG:
      case BTF_KIND_DECL_TAG:
        return format(t->type, data, depth + 1);
      case BTF_KIND_VAR: {
        auto v = format(t->type, data, depth + 1);
        if (!v) return v.error();
        return nlohmann::json{{btf__name_by_offset(btf, t->name_off), std::move(*v)}};
      }
      case BTF_KIND_DATASEC: {
        nlohmann::json vars = nlohmann::json::array();
        const auto* vs = reinterpret_cast<const struct btf_var_secinfo*>(t + 1);
        for (std::uint32_t i = 0; i < BTF_INFO_VLEN(t->info); ++i) {
          if (vs[i].offset > data.size() || vs[i].size > data.size() - vs[i].offset)
            return fail(id, fmt::format("variable #{} at {}+{} outside the value of {} bytes", i, vs[i].offset,
                                        vs[i].size, data.size()));
          auto v = format(vs[i].type, data.subspan(vs[i].offset, vs[i].size), depth + 1);
          if (!v) return v.error();
          vars.push_back(std::move(*v));
        }
        return nlohmann::json{{btf__name_by_offset(btf, t->name_off), std::move(vars)}};
      }
      default:
        return nlohmann::json(fmt::format("<{}>", BTF_INFO_KIND(t->info) == BTF_KIND_FWD    ? "fwd"
                                                  : BTF_INFO_KIND(t->info) == BTF_KIND_FUNC ? "func"
                                                                                            : "unsupported"));
    }
  }
};

}  // namespace

Result<std::shared_ptr<const struct btf>> parse_btf(std::span<const std::uint8_t> raw) {
  auto b = Btf::parse(raw, "BTF");
  if (!b) return b.error();
  std::shared_ptr<Btf> holder(std::move(*b));
  return std::shared_ptr<const struct btf>(holder, holder->get());
}

Result<nlohmann::json> format_btf_value(const struct btf* btf, std::uint32_t type_id,
                                        std::span<const std::uint8_t> data) {
  if (btf == nullptr) return make_error(EINVAL, "no BTF");
  return Formatter{btf}.format(type_id, data, 0);
}

}  // namespace userbpf::loader
