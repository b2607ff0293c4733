// The verifier's Config for a program of a loaded object: the map table
// (map index N -> type, key/value size, entries; the loader rewrites map
// lddw's to map_idx N) and the functions' BTF signatures (func_info +
// FUNC_PROTO, as the kernel's btf_prepare_func_args reads them).
//
// Header-only glue between the loader (and libbpf's BTF parser, which the
// loader's users link) and the verifier, so that the verifier library keeps
// depending on isa and spec only. Used by `userbpf verify` and the
// real-program tests.
#pragma once

#include <bpf/btf.h>
#include <linux/btf.h>

#include <string>
#include <string_view>

#include "loader/loader.hpp"
#include "spec/kfuncs.hpp"
#include "spec/spec.hpp"
#include "verifier/verifier.hpp"

namespace userbpf::verifier {

// The host kfuncs (spec/kfuncs.def) as the loader's ExternOptions::kfuncs:
// `extern ... __ksym` functions of an object resolve to userbpf's BTF ids,
// which the verifier checks and the runtime's helper table implements.
inline std::vector<loader::HostSymbol> kfunc_symbols() {
  std::vector<loader::HostSymbol> v;
  for (const spec::KfuncProto& k : spec::kfuncs()) v.push_back({std::string(k.name), k.btf_id});
  return v;
}

// Offset of the first member of BTF struct `type_id` whose type is the
// struct named `member_struct` (-1: none).
inline std::int32_t struct_member_offset(const struct btf* btf, std::uint32_t type_id, std::string_view member_struct) {
  const std::int32_t id = btf != nullptr && type_id != 0 ? btf__resolve_type(btf, type_id) : -1;
  const struct btf_type* t = id > 0 ? btf__type_by_id(btf, static_cast<std::uint32_t>(id)) : nullptr;
  if (t == nullptr || !btf_is_struct(t)) return -1;
  const struct btf_member* m = btf_members(t);
  for (std::uint16_t i = 0; i < btf_vlen(t); ++i) {
    const std::int32_t mid = btf__resolve_type(btf, m[i].type);
    const struct btf_type* mt = mid > 0 ? btf__type_by_id(btf, static_cast<std::uint32_t>(mid)) : nullptr;
    const char* name = mt != nullptr ? btf__name_by_offset(btf, mt->name_off) : nullptr;
    if (mt != nullptr && btf_is_struct(mt) && name != nullptr && std::string_view(name) == member_struct)
      return static_cast<std::int32_t>(btf_member_bit_offset(t, i) / 8);
  }
  return -1;
}

// Offset of the struct bpf_spin_lock member of BTF struct `type_id` (-1: none).
inline std::int32_t spin_lock_offset(const struct btf* btf, std::uint32_t type_id) {
  return struct_member_offset(btf, type_id, "bpf_spin_lock");
}
// Offset of the struct bpf_timer member of BTF struct `type_id` (-1: none).
inline std::int32_t timer_offset(const struct btf* btf, std::uint32_t type_id) {
  return struct_member_offset(btf, type_id, "bpf_timer");
}

inline std::vector<MapDesc> map_table(const loader::Object& obj) {
  std::vector<MapDesc> maps;
  for (const auto& m : obj.maps()) {
    MapDesc d;
    d.btf = m.btf_value_type_id != 0;
    d.spin_lock_off = spin_lock_offset(obj.btf(), m.btf_value_type_id);
    d.timer_off = timer_offset(obj.btf(), m.btf_value_type_id);
    d.type = m.type;
    d.key_size = m.key_size;
    d.value_size = m.value_size;
    d.max_entries = m.max_entries;
    d.name = m.name;
    maps.push_back(std::move(d));
  }
  return maps;
}

// One argument of a FUNC_PROTO: scalars, pointers to the context of
// `prog_type`, pointers to sized memory; the rest is unsupported.
inline FuncArg func_arg(const struct btf* btf, std::uint32_t type_id, std::uint32_t prog_type) {
  FuncArg a;
  const std::int32_t resolved = btf__resolve_type(btf, type_id);
  const struct btf_type* t = resolved > 0 ? btf__type_by_id(btf, static_cast<std::uint32_t>(resolved)) : nullptr;
  if (t == nullptr) {
    a.kind = FuncArg::Kind::Unsupported;
    a.type = "void";
    return a;
  }
  if (btf_is_int(t) || btf_is_enum(t) || btf_is_enum64(t)) {
    a.kind = FuncArg::Kind::Scalar;
    a.type = "scalar";
    return a;
  }
  if (!btf_is_ptr(t)) {
    a.kind = FuncArg::Kind::Unsupported;
    a.type = "aggregate";
    return a;
  }
  const std::int32_t target = btf__resolve_type(btf, t->type);
  const struct btf_type* tt = target > 0 ? btf__type_by_id(btf, static_cast<std::uint32_t>(target)) : nullptr;
  if (tt == nullptr || btf_is_ptr(tt) || btf_is_func_proto(tt)) {
    a.kind = FuncArg::Kind::Unsupported;
    a.type = tt == nullptr ? "void *" : "pointer";
    return a;
  }
  const char* name = btf__name_by_offset(btf, tt->name_off);
  const spec::ProgType* pt = spec::prog_type(prog_type);
  if (btf_is_struct(tt) && name != nullptr && pt != nullptr && pt->ctx.name == name) {
    a.kind = FuncArg::Kind::Ctx;
    a.type = std::string("struct ") + name + " *";
    return a;
  }
  const std::int64_t size = btf__resolve_size(btf, static_cast<std::uint32_t>(target));
  if (size <= 0) {
    a.kind = FuncArg::Kind::Unsupported;
    a.type = "pointer";
    return a;
  }
  a.kind = FuncArg::Kind::Mem;
  a.size = static_cast<std::uint32_t>(size);
  a.type = (name != nullptr && *name != '\0') ? std::string(name) + " *" : "pointer";
  return a;
}

// The signature of the function at `insn` whose BTF FUNC is `type_id`
// (a func_info record): name, linkage, FUNC_PROTO arguments. False when
// `type_id` is not a FUNC (the record is skipped).
inline bool func_sig(const struct btf* btf, std::size_t insn, std::uint32_t type_id, std::uint32_t prog_type,
                     FuncSig& s) {
  const struct btf_type* f = btf != nullptr ? btf__type_by_id(btf, type_id) : nullptr;
  if (f == nullptr || !btf_is_func(f)) return false;
  s.insn = insn;
  const char* name = btf__name_by_offset(btf, f->name_off);
  s.name = name != nullptr ? name : "";
  s.global = btf_vlen(f) == BTF_FUNC_GLOBAL;  // a FUNC's vlen holds its linkage
  s.args.clear();
  const struct btf_type* proto = btf__type_by_id(btf, f->type);
  if (proto != nullptr && btf_is_func_proto(proto)) {
    const struct btf_param* params = btf_params(proto);
    for (std::uint16_t i = 0; i < btf_vlen(proto); ++i) s.args.push_back(func_arg(btf, params[i].type, prog_type));
  }
  return true;
}

// The verifier's FuncSig list from func_info records, one place for both
// sources: a loaded object's program (loader::FuncInfo) and PROG_LOAD's
// records in the kernel's layout (struct bpf_func_info, src/runtime).
template <class Records, class InsnOf>
std::vector<FuncSig> func_sigs(const struct btf* btf, const Records& records, std::uint32_t prog_type,
                               InsnOf insn_of) {
  std::vector<FuncSig> out;
  if (btf == nullptr) return out;
  for (const auto& r : records) {
    FuncSig s;
    if (func_sig(btf, insn_of(r), r.type_id, prog_type, s)) out.push_back(std::move(s));
  }
  return out;
}

inline std::vector<FuncSig> func_sigs(const loader::Object& obj, const loader::Program& p, std::uint32_t prog_type) {
  return func_sigs(obj.btf(), p.func_info, prog_type, [](const loader::FuncInfo& fi) { return fi.insn; });
}

inline Config config_for(const loader::Object& obj, const loader::Program& p, std::uint32_t prog_type) {
  Config cfg;
  cfg.prog_type = prog_type;
  cfg.maps = map_table(obj);
  cfg.funcs = func_sigs(obj, p, prog_type);
  return cfg;
}

}  // namespace userbpf::verifier
