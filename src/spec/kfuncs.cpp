// The host kfunc table (kfuncs.def) and its lookups.
#include "spec/kfuncs.hpp"

#include <iterator>

namespace userbpf::spec {

namespace {

constexpr KfuncProto kKfuncs[] = {
#define UBPF_KFUNC(nm, row, r, rsz, a1, a2, a3, a4, a5, fl)                                                      \
  KfuncProto{kKfuncBtfIdBase + row, #nm, KfuncRet::r, rsz, {KfuncArg::a1, KfuncArg::a2, KfuncArg::a3, KfuncArg::a4, \
                                                             KfuncArg::a5},                                         \
             static_cast<std::uint32_t>(fl)},
#include "spec/kfuncs.def"
#undef UBPF_KFUNC
};

constexpr bool kfuncs_sorted() {
  for (std::size_t i = 1; i < std::size(kKfuncs); ++i)
    if (kKfuncs[i - 1].btf_id >= kKfuncs[i].btf_id) return false;
  return true;
}
static_assert(kfuncs_sorted(), "kfuncs.def: rows must be ordered by id");

}  // namespace

std::span<const KfuncProto> kfuncs() { return kKfuncs; }

const KfuncProto* kfunc(std::uint32_t btf_id) {
  for (const KfuncProto& k : kKfuncs)
    if (k.btf_id == btf_id) return &k;
  return nullptr;
}

const KfuncProto* kfunc_by_name(std::string_view name) {
  for (const KfuncProto& k : kKfuncs)
    if (k.name == name) return &k;
  return nullptr;
}

}  // namespace userbpf::spec
