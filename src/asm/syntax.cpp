// The syntax templates of both dialects, by Form (see syntax.hpp for the
// placeholder language). This is the only place that knows how an
// instruction is spelled; disasm.cpp expands these templates and assemble.cpp
// matches them, so printing and parsing cannot drift apart.
//
// Invariants:
//  - the first kPrint variant whose Cond holds is the canonical spelling, and
//    it is always also kParse (round trip), except objdump-only variants;
//  - kObjdump variants reproduce llvm-objdump's text where our canonical
//    spelling differs (local/kfunc calls, pseudo lddw);
//  - parse-only variants are aliases (bpftool, kernel log, bpf_conformance).
#include "asm/syntax.hpp"

#include <algorithm>

namespace userbpf::assembly::detail {

using isa::Form;
using isa::OpInfo;

namespace {

constexpr std::uint8_t kBoth = kPrint | kParse;

std::vector<Variant> kernel_variants(const OpInfo& row) {
  switch (row.form) {
    case Form::AluK: return {{"$d $k $i"}};
    case Form::AluX: return {{"$d $k $s"}};
    case Form::Neg: return {{"$d = -$d"}};
    case Form::End: return {{"$d = $k $d"}};
    case Form::MovSx: return {{"$d = ($k)$s"}};
    case Form::Ja: return {{"goto $o"}};
    case Form::Gotol: return {{"gotol $I"}};
    case Form::JmpK: return {{"if $d $k $i goto $o"}};
    case Form::JmpX: return {{"if $d $k $s goto $o"}};
    case Form::Call: return {{"call $i"}};
    case Form::CallLocal: return {{"call pc$J"}, {"call $i", kObjdump}, {"call $I", kParse}};
    case Form::CallKfunc:
      return {{"call kfunc($i)", kBoth, Cond::OffZero},
              {"call kfunc($i, $O)", kBoth, Cond::OffNonZero},
              {"call $i", kObjdump}};
    case Form::Callx: return {{"callx $d"}};
    case Form::Exit: return {{"exit"}};
    case Form::MayGoto: return {{"may_goto $o"}};
    case Form::Lddw:
      // Pseudo sources without an offset still print a non-zero tail imm ("+ $h").
      switch (row.sel_value) {
        case 0: return {{"$d = $L ll"}};
        case isa::kPseudoMapValue:
        case isa::kPseudoMapIdxValue:
          return {{"$d = $k($i) + $h ll"},
                  {"ld_pseudo $d, $P, $i", kObjdump | kParse},
                  {row.sel_value == isa::kPseudoMapValue ? "$d = map[id:$i][0]+$h" : "$d = map[idx:$i]+$h", kParse}};
        case isa::kPseudoFunc:
          return {{"$d = $k($J) ll", kBoth, Cond::HiZero},
                  {"$d = $k($J) + $h ll", kBoth, Cond::HiNonZero},
                  {"ld_pseudo $d, $P, $i", kObjdump | kParse},
                  {"$d = subprog[$J]", kParse}};
        default: {  // map_fd, btf_id, map_idx
          std::vector<Variant> v = {{"$d = $k($i) ll", kBoth, Cond::HiZero},
                                    {"$d = $k($i) + $h ll", kBoth, Cond::HiNonZero},
                                    {"ld_pseudo $d, $P, $i", kObjdump | kParse}};
          if (row.sel_value == isa::kPseudoMapFd) v.push_back({"$d = map[id:$i]", kParse});  // bpftool
          if (row.sel_value == isa::kPseudoMapIdx) v.push_back({"$d = map[idx:$i]", kParse});
          return v;
        }
      }
    case Form::LdAbs: return {{"r0 = *($k *)skb[$i]"}};
    case Form::LdInd: return {{"r0 = *($k *)skb[$s$n]"}};
    case Form::Ldx: return {{"$d = *($k *)($s$m)"}};
    case Form::St: return {{"*($k *)($d$m) = $i"}};
    case Form::Stx: return {{"*($k *)($d$m) = $s"}};
    case Form::Atomic: {
      const bool wide = isa::access_size(row.op) == 8;
      if (row.kop == "xchg") return {{wide ? "$s = xchg_64($d$m, $s)" : "$s = xchg32_32($d$m, $s)"}};
      if (row.kop == "cmpxchg") return {{wide ? "$0 = cmpxchg_64($d$m, $0, $s)" : "$0 = cmpxchg32_32($d$m, $0, $s)"}};
      if (row.kop.starts_with("fetch_")) return {{"$s = atomic_$k(($z *)($d$m), $s)"}};
      return {{"lock *($z *)($d$m) $k $s"}};
    }
    case Form::LoadAcq: return {{"$d = load_acquire(($k *)($s$m))"}};
    case Form::StoreRel: return {{"store_release(($k *)($d$m), $s)"}};
  }
  return {};
}

std::vector<Variant> ubpf_variants(const OpInfo& row) {
  switch (row.form) {
    case Form::AluK: return {{"$k $d, $i"}};
    case Form::AluX: return {{"$k $d, $s"}};
    case Form::Neg: return {{"$k $d"}};
    case Form::End:  // bpf_conformance's tests also spell swap16 "bswap16"
      if (row.kop.starts_with("bswap")) return {{"$k $d"}, {"b$k $d", kParse}};
      return {{"$k $d"}};
    case Form::MovSx: return {{"$k $d, $s"}};
    case Form::Ja: return {{"$k $o"}};
    case Form::Gotol: return {{"$k $I"}, {"ja32 $I", kParse}};
    case Form::JmpK: return {{"$k $d, $i, $o"}};
    case Form::JmpX: return {{"$k $d, $s, $o"}};
    case Form::Call: return {{"call $i"}, {"call helper $i", kParse}};
    case Form::CallLocal: return {{"call local $I"}, {"call $I", kParse}};
    case Form::CallKfunc:
      return {{"call runtime $i", kBoth, Cond::OffZero}, {"call runtime $i, $O", kBoth, Cond::OffNonZero}};
    case Form::Callx: return {{"callx $d"}, {"call $d", kParse}, {"call helper $d", kParse}};
    case Form::Exit: return {{"exit"}};
    case Form::MayGoto: return {{"$k $o"}};
    case Form::Lddw:
      switch (row.sel_value) {
        case 0: return {{"lddw $d, $L"}};
        case isa::kPseudoMapFd:
          return {{"lddw $d, map_by_fd($i)", kBoth, Cond::HiZero},
                  {"lddw $d, map_by_fd($i) + $h", kBoth, Cond::HiNonZero}};
        case isa::kPseudoMapValue: return {{"lddw $d, map_val(map_by_fd($i)) + $h"}};
        case isa::kPseudoBtfId:
          return {{"lddw $d, var_addr($i)", kBoth, Cond::HiZero},
                  {"lddw $d, var_addr($i) + $h", kBoth, Cond::HiNonZero}};
        case isa::kPseudoFunc:
          return {{"lddw $d, code_addr($J)", kBoth, Cond::HiZero},
                  {"lddw $d, code_addr($J) + $h", kBoth, Cond::HiNonZero}};
        case isa::kPseudoMapIdx:
          return {{"lddw $d, map_by_idx($i)", kBoth, Cond::HiZero},
                  {"lddw $d, map_by_idx($i) + $h", kBoth, Cond::HiNonZero}};
        case isa::kPseudoMapIdxValue: return {{"lddw $d, map_val(map_by_idx($i)) + $h"}};
        default: return {{"lddw $d, pseudo($P, $i)"}};
      }
    case Form::LdAbs: return {{"$k $i"}};
    case Form::LdInd: return {{"$k $s, $i"}};
    case Form::Ldx: return {{"$k $d, [$s$m]"}};
    case Form::St: return {{"$k [$d$m], $i"}};
    case Form::Stx: return {{"$k [$d$m], $s"}};
    case Form::Atomic: return {{"lock $k [$d$m], $s"}};
    case Form::LoadAcq: return {{"$k $d, [$s$m]"}};
    case Form::StoreRel: return {{"$k [$d$m], $s"}};
  }
  return {};
}

}  // namespace

std::vector<Variant> variants(const OpInfo& row, Dialect dialect) {
  return dialect == Dialect::Ubpf ? ubpf_variants(row) : kernel_variants(row);
}

std::string op_text(const OpInfo& row, Dialect dialect) {
  if (dialect != Dialect::Ubpf) return std::string(row.kop);
  std::string m(row.mnemonic);
  // bpf_conformance spells fetch atomics "lock fetch add32 [...]".
  if (row.form == Form::Atomic) std::replace(m.begin(), m.end(), '_', ' ');
  return m;
}

std::string_view size_name(const OpInfo& row) {
  switch (isa::access_size(row.op)) {
    case 1: return "u8";
    case 2: return "u16";
    case 4: return "u32";
    default: return "u64";
  }
}

Width reg_width(const OpInfo& row, Slot slot) {
  const isa::Class cls = isa::op_class(row.op);
  const bool narrow = isa::is_memory(row.form) && isa::access_size(row.op) < 8;
  switch (row.form) {
    case Form::AluK:
    case Form::AluX:
    case Form::Neg:
    case Form::MovSx: return cls == isa::Class::Alu ? Width::W : Width::R;
    case Form::JmpK:
    case Form::JmpX: return cls == isa::Class::Jmp32 ? Width::W : Width::R;
    case Form::Ldx:
    case Form::LoadAcq:  // sign-extending loads (s8..s32) fill all 64 bits
      return slot == Slot::Dst && narrow && !row.kop.starts_with("s") ? Width::Either : Width::R;
    case Form::Stx:
    case Form::Atomic:
    case Form::StoreRel: return slot == Slot::Src && narrow ? Width::Either : Width::R;
    case Form::End:
    case Form::Ja:
    case Form::Gotol:
    case Form::Call:
    case Form::CallLocal:
    case Form::CallKfunc:
    case Form::Callx:
    case Form::Exit:
    case Form::MayGoto:
    case Form::Lddw:
    case Form::LdAbs:
    case Form::LdInd:
    case Form::St: return Width::R;
  }
  return Width::R;
}

}  // namespace userbpf::assembly::detail
