// Command group "btf": `userbpf btf dump OBJ [--json]` prints the BTF types
// of a BPF object (or a raw BTF file) one per line, as `bpftool btf dump
// file OBJ` does in its raw format: "[ID] KIND 'name' attributes", with
// members, parameters, enumerators and section entries on indented lines.
//
// The types come from libbpf's BTF parser (through loader::Object, after the
// loader's DATASEC fix-up, so section sizes and variable offsets are filled
// in as the runtime will load them). Raw BTF files (magic 0xeb9f) are parsed
// with btf__parse directly. Every kind of the uapi is printed; an unknown
// kind prints its number.
#include <bpf/btf.h>
#include <fmt/format.h>
#include <linux/btf.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/objcommon.hpp"
#include "cli/registry.hpp"
#include "common/tool_io.hpp"
#include "loader/loader.hpp"

namespace userbpf::cli {
namespace {

struct BtfOptions {
  std::string file;
  bool json = false;
};

const char* kind_str(unsigned kind) {
  switch (kind) {
    case BTF_KIND_INT: return "INT";
    case BTF_KIND_PTR: return "PTR";
    case BTF_KIND_ARRAY: return "ARRAY";
    case BTF_KIND_STRUCT: return "STRUCT";
    case BTF_KIND_UNION: return "UNION";
    case BTF_KIND_ENUM: return "ENUM";
    case BTF_KIND_FWD: return "FWD";
    case BTF_KIND_TYPEDEF: return "TYPEDEF";
    case BTF_KIND_VOLATILE: return "VOLATILE";
    case BTF_KIND_CONST: return "CONST";
    case BTF_KIND_RESTRICT: return "RESTRICT";
    case BTF_KIND_FUNC: return "FUNC";
    case BTF_KIND_FUNC_PROTO: return "FUNC_PROTO";
    case BTF_KIND_VAR: return "VAR";
    case BTF_KIND_DATASEC: return "DATASEC";
    case BTF_KIND_FLOAT: return "FLOAT";
    case BTF_KIND_DECL_TAG: return "DECL_TAG";
    case BTF_KIND_TYPE_TAG: return "TYPE_TAG";
    case BTF_KIND_ENUM64: return "ENUM64";
    default: return "UNKNOWN";
  }
}

const char* linkage_str(unsigned l) {
  switch (l) {
    case BTF_FUNC_STATIC: return "static";
    case BTF_FUNC_GLOBAL: return "global";
    case BTF_FUNC_EXTERN: return "extern";
    default: return "(unknown)";
  }
}

std::string name_of(const btf* b, std::uint32_t off) {
  const char* n = btf__name_by_offset(b, off);
  return (n == nullptr || *n == '\0') ? "(anon)" : n;
}

// One type: the text line(s) and the JSON object.
void dump_type(const btf* b, std::uint32_t id, std::string& text, nlohmann::json& j) {
  const btf_type* t = btf__type_by_id(b, id);
  const unsigned kind = btf_kind(t);
  const std::string name = name_of(b, t->name_off);
  const unsigned vlen = btf_vlen(t);
  j = {{"id", id}, {"kind", kind_str(kind)}, {"name", name}};
  text += fmt::format("[{}] {} '{}'", id, kind_str(kind), name);
  switch (kind) {
    case BTF_KIND_INT: {
      const std::uint32_t v = *reinterpret_cast<const std::uint32_t*>(t + 1);
      const unsigned enc = BTF_INT_ENCODING(v);
      const char* encs = enc == BTF_INT_SIGNED ? "SIGNED" : enc == BTF_INT_CHAR ? "CHAR" : enc == BTF_INT_BOOL ? "BOOL" : "(none)";
      text += fmt::format(" size={} bits_offset={} nr_bits={} encoding={}", t->size, BTF_INT_OFFSET(v), BTF_INT_BITS(v), encs);
      j.update({{"size", t->size}, {"bits_offset", BTF_INT_OFFSET(v)}, {"nr_bits", BTF_INT_BITS(v)}, {"encoding", encs}});
      break;
    }
    case BTF_KIND_PTR:
    case BTF_KIND_TYPEDEF:
    case BTF_KIND_VOLATILE:
    case BTF_KIND_CONST:
    case BTF_KIND_RESTRICT:
    case BTF_KIND_TYPE_TAG:
      text += fmt::format(" type_id={}", t->type);
      j["type_id"] = t->type;
      break;
    case BTF_KIND_ARRAY: {
      const struct btf_array* a = btf_array(t);
      text += fmt::format(" type_id={} index_type_id={} nr_elems={}", a->type, a->index_type, a->nelems);
      j.update({{"type_id", a->type}, {"index_type_id", a->index_type}, {"nr_elems", a->nelems}});
      break;
    }
    case BTF_KIND_STRUCT:
    case BTF_KIND_UNION: {
      text += fmt::format(" size={} vlen={}", t->size, vlen);
      nlohmann::json ms = nlohmann::json::array();
      const btf_member* m = btf_members(t);
      for (unsigned i = 0; i < vlen; ++i) {
        const std::uint32_t bits = btf_member_bit_offset(t, i), bsz = btf_member_bitfield_size(t, i);
        text += fmt::format("\n\t'{}' type_id={} bits_offset={}", name_of(b, m[i].name_off), m[i].type, bits);
        if (bsz != 0) text += fmt::format(" bitfield_size={}", bsz);
        nlohmann::json mj = {{"name", name_of(b, m[i].name_off)}, {"type_id", m[i].type}, {"bits_offset", bits}};
        if (bsz != 0) mj["bitfield_size"] = bsz;
        ms.push_back(mj);
      }
      j.update({{"size", t->size}, {"vlen", vlen}, {"members", ms}});
      break;
    }
    case BTF_KIND_ENUM:
    case BTF_KIND_ENUM64: {
      const bool is_signed = btf_kflag(t);
      text += fmt::format(" encoding={} size={} vlen={}", is_signed ? "SIGNED" : "UNSIGNED", t->size, vlen);
      nlohmann::json vs = nlohmann::json::array();
      for (unsigned i = 0; i < vlen; ++i) {
        std::string n;
        long long sv = 0;
        unsigned long long uv = 0;
        if (kind == BTF_KIND_ENUM) {
          const struct btf_enum* e = btf_enum(t) + i;
          n = name_of(b, e->name_off);
          sv = e->val;
          uv = static_cast<std::uint32_t>(e->val);
        } else {
          const struct btf_enum64* e = btf_enum64(t) + i;
          n = name_of(b, e->name_off);
          uv = (static_cast<unsigned long long>(e->val_hi32) << 32) | e->val_lo32;
          sv = static_cast<long long>(uv);
        }
        if (is_signed) {
          text += fmt::format("\n\t'{}' val={}", n, sv);
          vs.push_back({{"name", n}, {"val", sv}});
        } else {
          text += fmt::format("\n\t'{}' val={}", n, uv);
          vs.push_back({{"name", n}, {"val", uv}});
        }
      }
      j.update({{"encoding", is_signed ? "SIGNED" : "UNSIGNED"}, {"size", t->size}, {"vlen", vlen}, {"values", vs}});
      break;
    }
    case BTF_KIND_FWD: {
      const char* fk = btf_kflag(t) ? "union" : "struct";
      text += fmt::format(" fwd_kind={}", fk);
      j["fwd_kind"] = fk;
      break;
    }
    case BTF_KIND_FUNC:
      text += fmt::format(" type_id={} linkage={}", t->type, linkage_str(vlen));
      j.update({{"type_id", t->type}, {"linkage", linkage_str(vlen)}});
      break;
    case BTF_KIND_FUNC_PROTO: {
      text += fmt::format(" ret_type_id={} vlen={}", t->type, vlen);
      nlohmann::json ps = nlohmann::json::array();
      const btf_param* p = btf_params(t);
      for (unsigned i = 0; i < vlen; ++i) {
        text += fmt::format("\n\t'{}' type_id={}", name_of(b, p[i].name_off), p[i].type);
        ps.push_back({{"name", name_of(b, p[i].name_off)}, {"type_id", p[i].type}});
      }
      j.update({{"ret_type_id", t->type}, {"vlen", vlen}, {"params", ps}});
      break;
    }
    case BTF_KIND_VAR: {
      const unsigned l = btf_var(t)->linkage;
      const char* ls = l == BTF_VAR_STATIC ? "static" : l == BTF_VAR_GLOBAL_ALLOCATED ? "global" : "extern";
      text += fmt::format(" type_id={}, linkage={}", t->type, ls);
      j.update({{"type_id", t->type}, {"linkage", ls}});
      break;
    }
    case BTF_KIND_DATASEC: {
      text += fmt::format(" size={} vlen={}", t->size, vlen);
      nlohmann::json vs = nlohmann::json::array();
      const btf_var_secinfo* v = btf_var_secinfos(t);
      for (unsigned i = 0; i < vlen; ++i) {
        const btf_type* vt = btf__type_by_id(b, v[i].type);
        const std::string vn = vt != nullptr ? name_of(b, vt->name_off) : "?";
        text += fmt::format("\n\ttype_id={} offset={} size={} ({} '{}')", v[i].type, v[i].offset, v[i].size,
                            vt != nullptr ? kind_str(btf_kind(vt)) : "?", vn);
        vs.push_back({{"type_id", v[i].type}, {"offset", v[i].offset}, {"size", v[i].size}});
      }
      j.update({{"size", t->size}, {"vlen", vlen}, {"vars", vs}});
      break;
    }
    case BTF_KIND_FLOAT:
      text += fmt::format(" size={}", t->size);
      j["size"] = t->size;
      break;
    case BTF_KIND_DECL_TAG: {
      const int ci = btf_decl_tag(t)->component_idx;
      text += fmt::format(" type_id={} component_idx={}", t->type, ci);
      j.update({{"type_id", t->type}, {"component_idx", ci}});
      break;
    }
    default:
      text += fmt::format(" kind={}", kind);
      break;
  }
  text += '\n';
}

int btf_dump(const BtfOptions& o) {
  auto bytes = tools::read_input(o.file);
  if (!bytes.ok()) return obj::fail(o.json, fmt::format("{}: {}", o.file, bytes.error().message));
  std::unique_ptr<btf, void (*)(btf*)> raw(nullptr, btf__free);
  std::optional<loader::Object> ob;
  const btf* b = nullptr;
  if (tools::is_elf(*bytes)) {
    auto r = loader::Object::open(o.file);
    if (!r.ok()) return obj::fail(o.json, fmt::format("{}: {}", o.file, r.error().to_string()));
    ob.emplace(std::move(*r));
    b = ob->btf();
    if (b == nullptr) return obj::fail(o.json, fmt::format("{}: the object has no .BTF section", o.file));
  } else {
    raw.reset(btf__new(bytes->data(), static_cast<std::uint32_t>(bytes->size())));
    if (raw == nullptr) {
      return obj::fail(o.json, fmt::format("{}: neither an ELF object nor raw BTF (bad magic or header)", o.file));
    }
    b = raw.get();
  }
  std::string text;
  nlohmann::json types = nlohmann::json::array();
  const std::uint32_t n = btf__type_cnt(b);
  for (std::uint32_t id = 1; id < n; ++id) {
    nlohmann::json j;
    dump_type(b, id, text, j);
    types.push_back(std::move(j));
  }
  if (o.json)
    std::cout << nlohmann::json{{"types", types}}.dump() << '\n';
  else
    std::cout << text;
  return tools::kExitOk;
}

}  // namespace

void register_btf_commands(Registry& r) {
  auto o = std::make_shared<BtfOptions>();
  CLI::App& g = r.group("btf", "Inspect BTF type information");
  CLI::App& dump = r.add(g, "dump", "Print the BTF types of an object (like bpftool btf dump file, raw format)",
                         [o] { return btf_dump(*o); });
  dump.add_option("OBJ", o->file, "BPF object file with .BTF, or a raw BTF file")->required();
  dump.add_flag("--json,-j", o->json, "JSON output");
}

}  // namespace userbpf::cli
