// CO-RE (compile once, run everywhere) relocation resolution.
//
// How it works (the algorithm libbpf documents in relo_core.c, rewritten):
//  1. The record's access string "0:1:2" is parsed against the local (object)
//     BTF into a spec: a list of accessors (named struct/union members and
//     array indexes; anonymous members are walked through but not recorded)
//     and the accumulated bit offset.
//  2. Candidates are target types of the same kind whose essential name
//     (name without a "___flavor" suffix) equals the local root's.
//  3. Each candidate is matched: named accessors are found by name (diving
//     into anonymous members), array accessors must be in bounds, and the
//     final field types must be compatible. All matching candidates must give
//     the same result, else the relocation is ambiguous (an error).
//  4. The value is computed (byte offset, size, existence, signedness,
//     bitfield shifts, type id/size/existence/match, enumerator value) for the
//     local spec (the value clang put into the instruction, checked) and the
//     target spec (the new value).
//  5. The instruction is patched: ALU imm, LDX/ST/STX off (and access size,
//     when a field's size changed and that is safe), or the 64-bit imm of an
//     lddw. When no candidate matches and the kind has no "not found" value,
//     the instruction is poisoned: replaced by a call to helper 0xbad2310,
//     which the verifier rejects only if it is reachable.
// Invariants: never reads a BTF type without checking its id; specs are at
// most kMaxSpecLen accessors deep; recursion in type compatibility is bounded.
#include <fmt/format.h>

#include <charconv>
#include <climits>

#include "loader/internal.hpp"
#include "loader/uapi_compat.hpp"

namespace userbpf::loader {

using namespace uapi;

namespace {

constexpr std::size_t kMaxSpecLen = 64;
constexpr int kMaxDepth = 32;

bool is_field_based(std::uint32_t k) { return k <= kFieldRshiftU64; }
bool is_type_based(std::uint32_t k) {
  return k == kTypeIdLocal || k == kTypeIdTarget || k == kTypeExists || k == kTypeSize || k == kTypeMatches;
}
bool is_enumval_based(std::uint32_t k) { return k == kEnumvalExists || k == kEnumvalValue; }

struct Accessor {
  std::uint32_t type_id = 0;
  std::uint32_t idx = 0;
  std::string_view name;  // empty: array index accessor
};

struct Spec {
  const Btf* btf = nullptr;
  std::uint32_t root_type_id = 0;
  std::vector<Accessor> acc;
  std::vector<std::uint32_t> raw;
  std::uint64_t bit_offset = 0;
};

Error core_err(std::string msg) { return make_error(EINVAL, std::move(msg)); }

std::uint32_t enum_vlen_name(const Btf& b, const struct btf_type* t, std::uint32_t i) {
  if (btf_kind_of(t) == BTF_KIND_ENUM) return reinterpret_cast<const struct btf_enum*>(t + 1)[i].name_off;
  return reinterpret_cast<const struct btf_enum64*>(t + 1)[i].name_off;
  (void)b;
}

std::uint64_t enum_value(const struct btf_type* t, std::uint32_t i) {
  if (btf_kind_of(t) == BTF_KIND_ENUM)
    return static_cast<std::uint64_t>(static_cast<std::int64_t>(reinterpret_cast<const struct btf_enum*>(t + 1)[i].val));
  const auto& e = reinterpret_cast<const struct btf_enum64*>(t + 1)[i];
  return (static_cast<std::uint64_t>(e.val_hi32) << 32) | e.val_lo32;
}

// A flexible array: the last member of a struct with zero elements.
bool is_flex_arr(const Btf& b, const Accessor* parent, const struct btf_array* a) {
  if (!parent || parent->name.empty() || a->nelems != 0) return false;
  const struct btf_type* t = b.type(parent->type_id);
  return t && btf_is_composite_t(t) && parent->idx == btf_vlen_of(t) - 1;
}

Result<Spec> parse_spec(const Btf& b, std::uint32_t type_id, std::string_view access, std::uint32_t kind) {
  Spec spec;
  spec.btf = &b;
  spec.root_type_id = type_id;
  // raw indexes
  std::size_t pos = 0;
  while (pos <= access.size()) {
    const std::size_t colon = std::min(access.find(':', pos), access.size());
    std::uint32_t v = 0;
    const auto tok = access.substr(pos, colon - pos);
    auto [p, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
    if (tok.empty() || ec != std::errc() || p != tok.data() + tok.size())
      return core_err(fmt::format("invalid access string '{}'", access));
    spec.raw.push_back(v);
    if (spec.raw.size() > kMaxSpecLen) return core_err(fmt::format("access string '{}' too long", access));
    pos = colon + 1;
  }
  if (spec.raw.empty()) return core_err("empty access string");
  if (is_type_based(kind)) {
    if (spec.raw.size() != 1 || spec.raw[0] != 0)
      return core_err(fmt::format("type relocation with access string '{}' (expected \"0\")", access));
    return spec;
  }
  std::uint32_t id = b.skip_mods_and_typedefs(type_id);
  const struct btf_type* t = b.type(id);
  if (!t) return core_err(fmt::format("bad type id {}", type_id));
  spec.acc.push_back({id, spec.raw[0], {}});
  if (is_enumval_based(kind)) {
    if (!btf_is_any_enum_t(t) || spec.raw.size() > 1 || spec.raw[0] >= btf_vlen_of(t))
      return core_err(fmt::format("enum value relocation [{}] with access '{}' is invalid", type_id, access));
    spec.acc[0].name = b.name(enum_vlen_name(b, t, spec.raw[0]));
    return spec;
  }
  if (!is_field_based(kind)) return core_err(fmt::format("unknown relocation kind {}", kind));
  const std::int64_t sz = b.resolve_size(id);
  if (sz < 0) return core_err(fmt::format("cannot size type [{}]", id));
  spec.bit_offset = static_cast<std::uint64_t>(spec.raw[0]) * static_cast<std::uint64_t>(sz) * 8;
  for (std::size_t i = 1; i < spec.raw.size(); ++i) {
    id = b.skip_mods_and_typedefs(id);
    t = b.type(id);
    if (!t) return core_err(fmt::format("bad type id in access '{}'", access));
    const std::uint32_t idx = spec.raw[i];
    if (btf_is_composite_t(t)) {
      if (idx >= btf_vlen_of(t)) return core_err(fmt::format("member index {} out of range in '{}'", idx, access));
      spec.bit_offset += btf_member_bit_offset_of(t, idx);
      const struct btf_member& m = btf_members_of(t)[idx];
      if (m.name_off) spec.acc.push_back({id, idx, b.name(m.name_off)});
      id = m.type;
    } else if (btf_kind_of(t) == BTF_KIND_ARRAY) {
      const struct btf_array* a = btf_array_of(t);
      const std::uint32_t elem = b.skip_mods_and_typedefs(a->type);
      if (!b.type(elem)) return core_err("bad array element type");
      const bool flex = is_flex_arr(b, spec.acc.empty() ? nullptr : &spec.acc.back(), a);
      if (!flex && idx >= a->nelems)
        return core_err(fmt::format("array index {} out of range ({} elements) in '{}'", idx, a->nelems, access));
      spec.acc.push_back({elem, idx, {}});
      id = elem;
      const std::int64_t esz = b.resolve_size(id);
      if (esz < 0) return core_err("cannot size array element");
      spec.bit_offset += static_cast<std::uint64_t>(idx) * static_cast<std::uint64_t>(esz) * 8;
    } else {
      return core_err(fmt::format("access '{}' captures type [{}] of unexpected kind {}", access, id,
                                  btf_kind_name(btf_kind_of(t))));
    }
  }
  return spec;
}

bool names_match(const Btf& lb, std::uint32_t lname, const Btf& tb, std::uint32_t tname) {
  const auto l = lb.name(lname), r = tb.name(tname);
  if (l.empty() || r.empty()) return true;  // anonymous types match by structure
  return essential_name(l) == essential_name(r);
}

int fields_compat(const Btf& lb, std::uint32_t lid, const Btf& tb, std::uint32_t tid) {
  for (int depth = 0; depth < kMaxDepth; ++depth) {
    lid = lb.skip_mods_and_typedefs(lid);
    tid = tb.skip_mods_and_typedefs(tid);
    const struct btf_type* lt = lb.type(lid);
    const struct btf_type* tt = tb.type(tid);
    if (!lt || !tt) return -1;
    if (btf_is_composite_t(lt) && btf_is_composite_t(tt)) return 1;
    if (btf_kind_of(lt) != btf_kind_of(tt) && !(btf_is_any_enum_t(lt) && btf_is_any_enum_t(tt))) return 0;
    switch (btf_kind_of(lt)) {
      case BTF_KIND_PTR: case BTF_KIND_FLOAT: return 1;
      case BTF_KIND_FWD: case BTF_KIND_ENUM: case BTF_KIND_ENUM64:
        return names_match(lb, lt->name_off, tb, tt->name_off) ? 1 : 0;
      case BTF_KIND_INT: return btf_int_offset_of(lt) == 0 && btf_int_offset_of(tt) == 0 ? 1 : 0;
      case BTF_KIND_ARRAY:
        lid = btf_array_of(lt)->type;
        tid = btf_array_of(tt)->type;
        continue;
      default: return 0;
    }
  }
  return -1;
}

int types_compat(const Btf& lb, std::uint32_t lid, const Btf& tb, std::uint32_t tid, int depth = 0) {
  for (; depth < kMaxDepth; ++depth) {
    lid = lb.skip_mods_and_typedefs(lid);
    tid = tb.skip_mods_and_typedefs(tid);
    const struct btf_type* lt = lb.type(lid);
    const struct btf_type* tt = tb.type(tid);
    if (!lt || !tt) return -1;
    if (btf_kind_of(lt) != btf_kind_of(tt) && !(btf_is_any_enum_t(lt) && btf_is_any_enum_t(tt))) return 0;
    switch (btf_kind_of(lt)) {
      case BTF_KIND_UNKN: case BTF_KIND_STRUCT: case BTF_KIND_UNION: case BTF_KIND_ENUM: case BTF_KIND_ENUM64:
      case BTF_KIND_FWD: case BTF_KIND_FLOAT:
        return 1;
      case BTF_KIND_INT: return btf_int_offset_of(lt) == 0 && btf_int_offset_of(tt) == 0 ? 1 : 0;
      case BTF_KIND_PTR: lid = lt->type; tid = tt->type; continue;
      case BTF_KIND_ARRAY: lid = btf_array_of(lt)->type; tid = btf_array_of(tt)->type; continue;
      case BTF_KIND_FUNC_PROTO: {
        if (btf_vlen_of(lt) != btf_vlen_of(tt)) return 0;
        for (std::uint32_t i = 0; i < btf_vlen_of(lt); ++i) {
          const int r = types_compat(lb, btf_params_of(lt)[i].type, tb, btf_params_of(tt)[i].type, depth + 1);
          if (r <= 0) return r;
        }
        lid = lt->type;
        tid = tt->type;
        continue;
      }
      default: return 0;
    }
  }
  return -1;
}

// bpf_core_type_matches(): stricter than compat (sizes, signedness, members by name).
int types_match(const Btf& lb, std::uint32_t lid, const Btf& tb, std::uint32_t tid, bool behind_ptr, int depth) {
  if (depth > kMaxDepth) return -1;
  lid = lb.skip_mods_and_typedefs(lid);
  tid = tb.skip_mods_and_typedefs(tid);
  const struct btf_type* lt = lb.type(lid);
  const struct btf_type* tt = tb.type(tid);
  if (!lt || !tt) return -1;
  if (!names_match(lb, lt->name_off, tb, tt->name_off)) return 0;
  const auto lk = btf_kind_of(lt), tk = btf_kind_of(tt);
  if (lk == BTF_KIND_FWD || tk == BTF_KIND_FWD) {
    if (!behind_ptr) return 0;
    const bool lu = lk == BTF_KIND_UNION || (lk == BTF_KIND_FWD && btf_kflag_of(lt));
    const bool tu = tk == BTF_KIND_UNION || (tk == BTF_KIND_FWD && btf_kflag_of(tt));
    return lu == tu ? 1 : 0;
  }
  if (lk != tk && !(btf_is_any_enum_t(lt) && btf_is_any_enum_t(tt))) return 0;
  switch (lk) {
    case BTF_KIND_UNKN: case BTF_KIND_FLOAT: return 1;
    case BTF_KIND_INT:
      return lt->size == tt->size &&
                     ((btf_int_encoding_of(lt) & BTF_INT_SIGNED) == (btf_int_encoding_of(tt) & BTF_INT_SIGNED))
                 ? 1
                 : 0;
    case BTF_KIND_ENUM: case BTF_KIND_ENUM64: {
      if (!behind_ptr && lt->size != tt->size) return 0;
      for (std::uint32_t i = 0; i < btf_vlen_of(lt); ++i) {
        const auto ln = essential_name(lb.name(enum_vlen_name(lb, lt, i)));
        bool found = false;
        for (std::uint32_t j = 0; j < btf_vlen_of(tt) && !found; ++j)
          found = essential_name(tb.name(enum_vlen_name(tb, tt, j))) == ln;
        if (!found) return 0;
      }
      return 1;
    }
    case BTF_KIND_STRUCT: case BTF_KIND_UNION: {
      if (behind_ptr) return 1;
      if (btf_vlen_of(lt) > btf_vlen_of(tt)) return 0;
      for (std::uint32_t i = 0; i < btf_vlen_of(lt); ++i) {
        const struct btf_member& lm = btf_members_of(lt)[i];
        const auto ln = lb.name(lm.name_off);
        bool found = false;
        for (std::uint32_t j = 0; j < btf_vlen_of(tt) && !found; ++j) {
          const struct btf_member& tm = btf_members_of(tt)[j];
          if (tb.name(tm.name_off) != ln) continue;
          const int r = types_match(lb, lm.type, tb, tm.type, false, depth + 1);
          if (r < 0) return r;
          found = r > 0;
          if (!found) return 0;
        }
        if (!found) return 0;
      }
      return 1;
    }
    case BTF_KIND_PTR: return types_match(lb, lt->type, tb, tt->type, true, depth + 1);
    case BTF_KIND_ARRAY: {
      if (btf_array_of(lt)->nelems != btf_array_of(tt)->nelems) return 0;
      return types_match(lb, btf_array_of(lt)->type, tb, btf_array_of(tt)->type, behind_ptr, depth + 1);
    }
    case BTF_KIND_FUNC_PROTO: {
      if (btf_vlen_of(lt) != btf_vlen_of(tt)) return 0;
      for (std::uint32_t i = 0; i < btf_vlen_of(lt); ++i) {
        const int r = types_match(lb, btf_params_of(lt)[i].type, tb, btf_params_of(tt)[i].type, behind_ptr, depth + 1);
        if (r <= 0) return r;
      }
      return types_match(lb, lt->type, tb, tt->type, behind_ptr, depth + 1);
    }
    default: return 0;
  }
}

int match_member(const Btf& lb, const Accessor& lacc, const Btf& tb, std::uint32_t tid, Spec& spec,
                 std::uint32_t& next_tid, int depth) {
  if (depth > kMaxDepth) return -1;
  const struct btf_type* lt = lb.type(lacc.type_id);
  if (!lt) return -1;
  const struct btf_member& lm = btf_members_of(lt)[lacc.idx];
  tid = tb.skip_mods_and_typedefs(tid);
  const struct btf_type* tt = tb.type(tid);
  if (!tt || !btf_is_composite_t(tt)) return 0;
  for (std::uint32_t i = 0; i < btf_vlen_of(tt); ++i) {
    if (spec.raw.size() >= kMaxSpecLen) return -1;
    const std::uint32_t bit_off = btf_member_bit_offset_of(tt, i);
    spec.bit_offset += bit_off;
    spec.raw.push_back(i);
    const struct btf_member& m = btf_members_of(tt)[i];
    const auto tname = tb.name(m.name_off);
    if (tname.empty()) {
      const int found = match_member(lb, lacc, tb, m.type, spec, next_tid, depth + 1);
      if (found != 0) return found;
    } else if (tname == lacc.name) {
      spec.acc.push_back({tid, i, tname});
      next_tid = m.type;
      const int found = fields_compat(lb, lm.type, tb, m.type);
      if (found <= 0) spec.acc.pop_back();
      return found;
    }
    spec.bit_offset -= bit_off;
    spec.raw.pop_back();
  }
  return 0;
}

int spec_match(const Spec& local, const Btf& tb, std::uint32_t tid, std::uint32_t kind, Spec& targ) {
  targ = Spec{};
  targ.btf = &tb;
  targ.root_type_id = tid;
  if (is_type_based(kind)) {
    if (kind == kTypeMatches) return types_match(*local.btf, local.root_type_id, tb, tid, false, 0);
    return types_compat(*local.btf, local.root_type_id, tb, tid);
  }
  if (is_enumval_based(kind)) {
    tid = tb.skip_mods_and_typedefs(tid);
    const struct btf_type* tt = tb.type(tid);
    if (!tt || !btf_is_any_enum_t(tt)) return 0;
    const auto lname = essential_name(local.acc[0].name);
    for (std::uint32_t i = 0; i < btf_vlen_of(tt); ++i) {
      const auto tname = tb.name(enum_vlen_name(tb, tt, i));
      if (essential_name(tname) != lname) continue;
      targ.acc.push_back({tid, i, tname});
      targ.raw.push_back(i);
      return 1;
    }
    return 0;
  }
  for (std::size_t i = 0; i < local.acc.size(); ++i) {
    const Accessor& la = local.acc[i];
    if (!la.name.empty()) {
      const int m = match_member(*local.btf, la, tb, tid, targ, tid, 0);
      if (m <= 0) return m;
    } else {
      if (i > 0) {
        tid = tb.skip_mods_and_typedefs(tid);
        const struct btf_type* tt = tb.type(tid);
        if (!tt || btf_kind_of(tt) != BTF_KIND_ARRAY) return 0;
        const struct btf_array* a = btf_array_of(tt);
        const bool flex = is_flex_arr(tb, targ.acc.empty() ? nullptr : &targ.acc.back(), a);
        if (!flex && la.idx >= a->nelems) return 0;
        tid = tb.skip_mods_and_typedefs(a->type);
        if (!tb.type(tid)) return -1;
      }
      if (targ.raw.size() >= kMaxSpecLen) return -1;
      targ.acc.push_back({tid, la.idx, {}});
      targ.raw.push_back(la.idx);
      const std::int64_t sz = tb.resolve_size(tid);
      if (sz < 0) return -1;
      targ.bit_offset += static_cast<std::uint64_t>(la.idx) * static_cast<std::uint64_t>(sz) * 8;
    }
  }
  return 1;
}

// Sentinel: request poisoning.
struct FieldVal {
  std::uint64_t val = 0;
  std::uint32_t size = 0;
  std::uint32_t type_id = 0;
  bool validate = true;
  bool poison = false;
};

Result<FieldVal> calc_field(const Spec* spec, std::uint32_t kind) {
  FieldVal out;
  if (kind == kFieldExists) {
    out.val = spec ? 1 : 0;
    return out;
  }
  if (!spec) {
    out.poison = true;
    return out;
  }
  const Btf& b = *spec->btf;
  const Accessor& acc = spec->acc.back();
  if (acc.name.empty()) {
    const std::int64_t sz = b.resolve_size(acc.type_id);
    if (sz < 0) return core_err("cannot size accessed type");
    if (kind == kFieldByteOffset) {
      out.val = spec->bit_offset / 8;
      out.size = static_cast<std::uint32_t>(sz);
      out.type_id = acc.type_id;
    } else if (kind == kFieldByteSize) {
      out.val = static_cast<std::uint64_t>(sz);
    } else {
      return core_err(fmt::format("relocation kind {} can't be applied to an array access", core_kind_name(kind)));
    }
    return out;
  }
  const struct btf_type* t = b.type(acc.type_id);
  const struct btf_member& m = btf_members_of(t)[acc.idx];
  const std::uint32_t field_type_id = b.skip_mods_and_typedefs(m.type);
  const struct btf_type* mt = b.type(field_type_id);
  if (!mt) return core_err("bad member type");
  const std::uint64_t bit_off = spec->bit_offset;
  std::uint64_t bit_sz = btf_member_bitfield_size_of(t, acc.idx);
  const bool bitfield = bit_sz > 0;
  std::uint64_t byte_sz, byte_off;
  if (bitfield) {
    byte_sz = mt->size;
    if (byte_sz == 0) return core_err("bitfield of a zero-sized type");
    byte_off = bit_off / 8 / byte_sz * byte_sz;
    while (bit_off + bit_sz - byte_off * 8 > byte_sz * 8) {
      if (byte_sz >= 8) return make_error(E2BIG, "bitfield can't be read with a 64-bit load");
      byte_sz *= 2;
      byte_off = bit_off / 8 / byte_sz * byte_sz;
    }
  } else {
    const std::int64_t sz = b.resolve_size(field_type_id);
    if (sz < 0) return core_err("cannot size field type");
    byte_sz = static_cast<std::uint64_t>(sz);
    byte_off = bit_off / 8;
    bit_sz = byte_sz * 8;
  }
  out.validate = !bitfield;
  switch (kind) {
    case kFieldByteOffset:
      out.val = byte_off;
      if (!bitfield) {
        out.size = static_cast<std::uint32_t>(byte_sz);
        out.type_id = field_type_id;
      }
      break;
    case kFieldByteSize: out.val = byte_sz; break;
    case kFieldSigned:
      out.val = (btf_is_any_enum_t(mt) && btf_kflag_of(mt)) ||
                (btf_kind_of(mt) == BTF_KIND_INT && (btf_int_encoding_of(mt) & BTF_INT_SIGNED) != 0);
      out.validate = true;
      break;
    case kFieldLshiftU64: out.val = 64 - (bit_off + bit_sz - byte_off * 8); break;
    case kFieldRshiftU64:
      out.val = 64 - bit_sz;
      out.validate = true;
      break;
    default: return core_err(fmt::format("unsupported field relocation kind {}", kind));
  }
  return out;
}

Result<FieldVal> calc_type(const Spec* spec, std::uint32_t kind) {
  FieldVal out;
  if (!spec) return out;  // type-based relocations give 0 when the type is not found
  switch (kind) {
    case kTypeIdTarget:
      out.val = spec->root_type_id;
      out.validate = false;
      break;
    case kTypeExists: case kTypeMatches: out.val = 1; break;
    case kTypeSize: {
      const std::int64_t sz = spec->btf->resolve_size(spec->root_type_id);
      if (sz < 0) return core_err("cannot size type");
      out.val = static_cast<std::uint64_t>(sz);
      break;
    }
    default: return core_err(fmt::format("unsupported type relocation kind {}", kind));
  }
  return out;
}

Result<FieldVal> calc_enumval(const Spec* spec, std::uint32_t kind) {
  FieldVal out;
  if (kind == kEnumvalExists) {
    out.val = spec ? 1 : 0;
    return out;
  }
  if (!spec) {
    out.poison = true;
    return out;
  }
  const struct btf_type* t = spec->btf->type(spec->acc[0].type_id);
  out.val = enum_value(t, spec->acc[0].idx);
  return out;
}

Result<FieldVal> calc(const Spec* spec, std::uint32_t kind) {
  if (is_field_based(kind)) return calc_field(spec, kind);
  if (is_type_based(kind)) return calc_type(spec, kind);
  return calc_enumval(spec, kind);
}

}  // namespace

std::string_view core_kind_name(std::uint32_t kind) {
  static constexpr std::string_view kNames[] = {
      "byte_off", "byte_sz", "field_exists", "signed", "lshift_u64", "rshift_u64", "local_type_id",
      "target_type_id", "type_exists", "type_size", "enumval_exists", "enumval_value", "type_matches"};
  return kind < std::size(kNames) ? kNames[kind] : std::string_view("unknown");
}

CoreTarget::CoreTarget(const Btf& btf) : btf_(btf) {
  const std::uint32_t n = btf.count();
  for (std::uint32_t id = 1; id < n; ++id) {
    const struct btf_type* t = btf.type(id);
    if (!t) continue;
    const auto nm = btf.name(t->name_off);
    if (nm.empty()) continue;
    by_name_[std::string(essential_name(nm))].push_back(id);
  }
}

const std::vector<std::uint32_t>* CoreTarget::candidates(std::string_view essential) const {
  auto it = by_name_.find(std::string(essential));
  return it == by_name_.end() ? nullptr : &it->second;
}

Result<CoreResult> core_calc(const Btf& local, const CoreTarget& target, std::uint32_t type_id,
                             std::string_view access, std::uint32_t kind) {
  if (kind > kTypeMatches) return core_err(fmt::format("unknown CO-RE relocation kind {}", kind));
  const struct btf_type* lt = local.type(type_id);
  if (!lt) return core_err(fmt::format("bad local type id {}", type_id));
  auto local_spec = parse_spec(local, type_id, access, kind);
  if (!local_spec) return local_spec.error();
  CoreResult res;
  if (kind == kTypeIdLocal) {
    res.validate = false;
    res.orig_value = res.new_value = type_id;
    return res;
  }
  const auto lname = local.name(lt->name_off);
  if (lname.empty()) return make_error(EOPNOTSUPP, "relocation against an anonymous type is not supported");
  auto lval = calc(&*local_spec, kind);
  if (!lval) return lval.error();
  res.orig_value = lval->val;
  res.orig_size = lval->size;
  res.validate = lval->validate;

  const Btf& tb = target.btf();
  bool found = false;
  FieldVal tval;
  std::uint32_t found_id = 0;
  if (const auto* cands = target.candidates(essential_name(lname))) {
    for (std::uint32_t cid : *cands) {
      const struct btf_type* ct = tb.type(cid);
      if (btf_kind_of(ct) != btf_kind_of(lt) && !(btf_is_any_enum_t(ct) && btf_is_any_enum_t(lt))) continue;
      Spec ts;
      const int m = spec_match(*local_spec, tb, cid, kind, ts);
      if (m < 0) return core_err(fmt::format("error matching candidate [{}] {}", cid, tb.type_name(cid)));
      if (m == 0) continue;
      auto v = calc(&ts, kind);
      if (!v) return v.error();
      if (!found) {
        tval = *v;
        found = true;
        found_id = cid;
        // field size adjustment safety (libbpf: only unsigned ints, pointers and unsigned enums)
        if (is_field_based(kind) && v->size != res.orig_size && kind == kFieldByteOffset) {
          const struct btf_type* ot = local.type(lval->type_id);
          const struct btf_type* nt = tb.type(v->type_id);
          bool ok = false;
          if (ot && nt) {
            if (btf_kind_of(ot) == BTF_KIND_PTR && btf_kind_of(nt) == BTF_KIND_PTR) ok = true;
            if (btf_kind_of(ot) == BTF_KIND_INT && btf_kind_of(nt) == BTF_KIND_INT &&
                (btf_int_encoding_of(ot) & BTF_INT_SIGNED) == 0 && (btf_int_encoding_of(nt) & BTF_INT_SIGNED) == 0)
              ok = true;
            if (btf_kind_of(ot) == BTF_KIND_ENUM && btf_kind_of(nt) == BTF_KIND_ENUM && !btf_kflag_of(ot) &&
                !btf_kflag_of(nt))
              ok = true;
          }
          res.fail_memsz_adjust = !ok;
        }
      } else if (v->poison != tval.poison || v->val != tval.val) {
        return core_err(fmt::format("relocation is ambiguous: candidates [{}] and [{}] give {} and {}", found_id, cid,
                                    tval.val, v->val));
      }
    }
  }
  if (!found) {
    auto v = calc(nullptr, kind);
    if (!v) return v.error();
    tval = *v;
    if (tval.poison) res.note = fmt::format("no matching target for {} '{}' access '{}'", core_kind_name(kind),
                                            lname, access);
  }
  res.poison = tval.poison;
  res.new_value = tval.val;
  res.new_size = found ? tval.size : res.orig_size;
  return res;
}

namespace {

// The load/store row with the same form, class and mode but another access size.
const isa::OpInfo* resize_op(const isa::OpInfo& row, unsigned new_size) {
  for (const isa::OpInfo& r : isa::kOps) {
    if (r.form != row.form || isa::op_class(r.op) != isa::op_class(row.op)) continue;
    if ((r.opcode & 0xe0) != (row.opcode & 0xe0)) continue;  // same mode bits (MEM / MEMSX)
    if (isa::access_size(r.op) == new_size) return &r;
  }
  return nullptr;
}

void poison(std::vector<isa::RawInsn>& insns, std::size_t pc) {
  insns[pc] = isa::encode_one(isa::make(isa::Op::Call, 0, 0, 0, kPoisonHelperId));
}

}  // namespace

Status core_patch(std::vector<isa::RawInsn>& insns, std::size_t pc, CoreResult& res, std::uint32_t kind) {
  if (pc >= insns.size()) return insn_error(EINVAL, pc, "relocated instruction is outside the program");
  isa::RawInsn& raw = insns[pc];
  const isa::OpInfo* row = isa::lookup(raw);
  if (!row) return insn_error(EINVAL, pc, fmt::format("trying to relocate unrecognized insn (code 0x{:02x})", raw.opcode));
  const bool is_lddw = row->form == isa::Form::Lddw;
  if (res.poison) {
    if (is_lddw && pc + 1 < insns.size()) poison(insns, pc + 1);
    poison(insns, pc);
    return Ok{};
  }
  const std::uint64_t orig = res.orig_value, nv = res.new_value;
  const isa::Form form = row->form;
  if (form == isa::Form::AluK) {
    {
      if (res.validate && static_cast<std::uint64_t>(static_cast<std::int64_t>(raw.imm)) != orig &&
          static_cast<std::uint32_t>(raw.imm) != orig)
        return insn_error(EINVAL, pc, fmt::format("unexpected insn (ALU/ALU64) value: got {}, exp {} -> {}", raw.imm,
                                                  orig, nv));
      raw.imm = static_cast<std::int32_t>(nv);
      return Ok{};
    }
  }
  if (form == isa::Form::Ldx || form == isa::Form::St || form == isa::Form::Stx) {
    {
      if (res.validate && static_cast<std::uint64_t>(static_cast<std::int64_t>(raw.off)) != orig)
        return insn_error(EINVAL, pc, fmt::format("unexpected insn (LDX/ST/STX) value: got {}, exp {} -> {}", raw.off,
                                                  orig, nv));
      if (nv > static_cast<std::uint64_t>(SHRT_MAX))
        return insn_error(ERANGE, pc, fmt::format("insn (LDX/ST/STX) value too big: {}", nv));
      if (res.fail_memsz_adjust && kind == uapi::kFieldByteOffset) {
        poison(insns, pc);
        res.poison = true;
        res.note = fmt::format("insn accesses the field with size {} but it is {} bytes in the target; access "
                               "pointers, unsigned integers, or fields of matching type and size",
                               res.orig_size, res.new_size);
        return Ok{};
      }
      raw.off = static_cast<std::int16_t>(nv);
      if (kind == uapi::kFieldByteOffset && res.new_size != res.orig_size && res.new_size != 0) {
        if (isa::access_size(row->op) != res.orig_size)
          return insn_error(EINVAL, pc, fmt::format("unexpected mem size: got {}, exp {}",
                                                    isa::access_size(row->op), res.orig_size));
        const isa::OpInfo* r2 = resize_op(*row, res.new_size);
        if (!r2) return insn_error(EINVAL, pc, fmt::format("invalid new mem size: {}", res.new_size));
        raw.opcode = r2->opcode;
      }
      return Ok{};
    }
  }
  if (form == isa::Form::Lddw) {
    {
      if (pc + 1 >= insns.size() || raw.src() != 0 || raw.off != 0 || insns[pc + 1].opcode != 0 ||
          insns[pc + 1].regs != 0 || insns[pc + 1].off != 0)
        return insn_error(EINVAL, pc, "insn (LDIMM64) has unexpected form");
      const std::uint64_t imm = static_cast<std::uint32_t>(raw.imm) |
                                (static_cast<std::uint64_t>(static_cast<std::uint32_t>(insns[pc + 1].imm)) << 32);
      if (res.validate && imm != orig)
        return insn_error(EINVAL, pc, fmt::format("unexpected insn (LDIMM64) value: got {}, exp {} -> {}", imm, orig,
                                                  nv));
      raw.imm = static_cast<std::int32_t>(static_cast<std::uint32_t>(nv));
      insns[pc + 1].imm = static_cast<std::int32_t>(static_cast<std::uint32_t>(nv >> 32));
      return Ok{};
    }
  }
  return insn_error(EINVAL, pc, fmt::format("trying to relocate unrecognized insn (code 0x{:02x}, {})", raw.opcode,
                                            row->name));
}

}  // namespace userbpf::loader
