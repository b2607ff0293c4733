// Host kfuncs: the implementations of spec/kfuncs.def, registered in a
// HelperTable under userbpf's BTF ids (spec::KfuncId).
//
// bpf_iter_num_*: the kernel's numeric iterator (kernel/bpf/bpf_iter.c
// semantics): the 8-byte struct bpf_iter_num holds {int cur; int end;}; new()
// refuses start > end (-EINVAL) and ranges over BPF_MAX_LOOPS (-E2BIG),
// leaving an empty iterator; next() returns a pointer to cur while
// cur + 1 < end, else NULL (and empties the iterator); destroy() empties it.
// bpf_rcu_read_lock/unlock: no-ops (there is no RCU in user space; the
// verifier checks the pairing).
//
// The bpf_spin_lock / bpf_spin_unlock helpers (ids 93/94) live here too:
// they take the map value's struct bpf_spin_lock word with the maps'
// value_lock protocol (the same lock host BPF_F_LOCK operations take).
#include <cstring>

#include "helpers/internal.hpp"
#include "spec/kfuncs.hpp"
#include "spec/spec.hpp"

namespace userbpf::helpers {

namespace {

using detail::u64;

constexpr std::int64_t kMaxLoops = 8 * 1024 * 1024;  // BPF_MAX_LOOPS

struct IterNum {
  std::int32_t cur;
  std::int32_t end;
};
static_assert(sizeof(IterNum) == 8, "struct bpf_iter_num is 8 bytes");

bool iter_mem(abi::Env& env, std::string_view fn, u64 it) {
  return detail::arg_mem(env, fn, "it", it, sizeof(IterNum), true);
}

IterNum load(u64 it) {
  IterNum s;
  std::memcpy(&s, reinterpret_cast<const void*>(it), sizeof s);
  return s;
}
void store(u64 it, IterNum s) { std::memcpy(reinterpret_cast<void*>(it), &s, sizeof s); }

u64 iter_num_new(abi::Env& env, u64 it, u64 start_arg, u64 end_arg, u64, u64) {
  if (!iter_mem(env, "bpf_iter_num_new", it)) return 0;
  const auto start = static_cast<std::int32_t>(start_arg);
  const auto end = static_cast<std::int32_t>(end_arg);
  if (start > end) {
    store(it, IterNum{0, 0});
    return detail::neg(EINVAL);
  }
  if (static_cast<std::int64_t>(end) - static_cast<std::int64_t>(start) > kMaxLoops) {
    store(it, IterNum{0, 0});
    return detail::neg(E2BIG);
  }
  // next() increments first: start one below
  store(it, IterNum{static_cast<std::int32_t>(static_cast<std::uint32_t>(start) - 1u), end});
  return 0;
}

u64 iter_num_next(abi::Env& env, u64 it, u64, u64, u64, u64) {
  if (!iter_mem(env, "bpf_iter_num_next", it)) return 0;
  IterNum s = load(it);
  if (static_cast<std::int64_t>(s.cur) + 1 >= s.end) {
    store(it, IterNum{0, 0});
    return 0;
  }
  ++s.cur;
  store(it, s);
  return it + offsetof(IterNum, cur);
}

u64 iter_num_destroy(abi::Env& env, u64 it, u64, u64, u64, u64) {
  if (!iter_mem(env, "bpf_iter_num_destroy", it)) return 0;
  store(it, IterNum{0, 0});
  return 0;
}

u64 rcu_read_nop(abi::Env&, u64, u64, u64, u64, u64) { return 0; }

u64 spin_lock(abi::Env& env, u64 lock, u64, u64, u64, u64) {
  if (detail::arg_mem(env, "bpf_spin_lock", "lock", lock, 4, true)) maps::value_lock(reinterpret_cast<void*>(lock));
  return 0;
}
u64 spin_unlock(abi::Env& env, u64 lock, u64, u64, u64, u64) {
  if (detail::arg_mem(env, "bpf_spin_unlock", "lock", lock, 4, true)) maps::value_unlock(reinterpret_cast<void*>(lock));
  return 0;
}

abi::HelperFn impl(spec::KfuncId id) {
  switch (id) {
    case spec::KfuncId::bpf_iter_num_new: return &iter_num_new;
    case spec::KfuncId::bpf_iter_num_next: return &iter_num_next;
    case spec::KfuncId::bpf_iter_num_destroy: return &iter_num_destroy;
    case spec::KfuncId::bpf_rcu_read_lock: return &rcu_read_nop;
    case spec::KfuncId::bpf_rcu_read_unlock: return &rcu_read_nop;
  }
  return nullptr;
}

}  // namespace

void register_kfuncs(abi::HelperTable& table) {
  for (const spec::KfuncProto& k : spec::kfuncs())
    if (abi::HelperFn fn = impl(static_cast<spec::KfuncId>(k.btf_id))) table.set_kfunc(k.btf_id, std::string(k.name), fn);
  table.set(static_cast<std::uint32_t>(spec::HelperId::spin_lock), "spin_lock", &spin_lock);
  table.set(static_cast<std::uint32_t>(spec::HelperId::spin_unlock), "spin_unlock", &spin_unlock);
}

}  // namespace userbpf::helpers
