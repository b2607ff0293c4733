// PROG_LOAD: decoding, map relocation, helper checks, the log buffer.
//
// Relocation of lddw pseudo sources (the kernel's resolve_pseudo_ldimm64):
//   BPF_PSEUDO_MAP_FD  imm = map handle      -> address of the maps::Map
//   BPF_PSEUDO_MAP_IDX imm = index in fd_array -> same
//   BPF_PSEUDO_MAP_VALUE / _IDX_VALUE, next imm = offset
//                                            -> address of value 0 + offset
//                                               (arrays only, offset < value_size)
// The program keeps two copies: `insns` with every map reference rewritten to
// a _IDX / _IDX_VALUE index into its used-maps list (what pins and info
// store), and the executable copy where those lddw are plain 64-bit loads of
// the addresses. Helpers resolve map addresses against the used-maps list
// (helpers.hpp), so nothing else can be passed off as a map.
//
// Verification (Options::verify, default on): verifier::verify with the
// program type, the used maps as MapDesc (in used-maps order, referenced by
// index) and the log level; a rejection returns the verifier's errno and its
// kernel-style log. Accepted programs get their context accesses rewritten
// (ctx.cpp) and run unchecked. Without verification, the log at
// log_level >= 1 says what was checked (decoding, structure, helper ids, map
// references) and ends with the kernel's "processed N insns" line. The
// command layer applies the kernel's buffer rules (EINVAL for bad
// sizes/levels, ENOSPC when the log did not fit).
//
// BTF func and line info (btf_info.cpp) are checked right after decoding,
// with the kernel's errno and log texts; the func_info's signatures go to the
// verifier (global functions, callbacks), the line info annotates the log
// ("; <source> @ <file>:<line>") and names the source line of a rejection.
//
// Limits and privilege (Options::limits, Options::privileged): instructions
// per program (E2BIG), processed instructions (the verifier's E2BIG),
// unprivileged loads only for socket filters and cgroup_skb (EPERM), the
// unprivileged verifier rules, and blinded JIT constants by Options::blinding
// (the kernel's bpf_jit_harden, 1 by default: unprivileged loads only).
#include <fmt/format.h>
#include <linux/bpf.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "maps/registry.hpp"
#include "runtime/internal.hpp"
#include "runtime/runtime.hpp"
#include "verifier/verifier.hpp"

namespace userbpf::runtime {

std::vector<jit::Options::MapLookup> jit_map_lookups(std::span<maps::Map* const> used) {
  std::vector<jit::Options::MapLookup> out;
  for (maps::Map* mp : used) {
    if (mp->percpu()) continue;
    jit::Options::MapLookup ml{reinterpret_cast<std::uint64_t>(mp), 0, 0, mp->max_entries(), 0};
    if (mp->type() == BPF_MAP_TYPE_ARRAY) {
      const auto* v0 = static_cast<const std::uint8_t*>(mp->direct_value(0));
      if (v0 != nullptr) {
        const auto* v1 = mp->max_entries() > 1 ? static_cast<const std::uint8_t*>(mp->direct_value(1)) : v0;
        ml.values = reinterpret_cast<std::uint64_t>(v0);
        ml.stride = static_cast<std::uint64_t>(v1 - v0);
        // a program's update is a plain copy unless the value has special fields (ArrayBase::prog_update)
        if (mp->spin_lock_off() < 0 && mp->timer_off() < 0) ml.update_size = mp->value_size();
      }
    }
    if (const maps::Map::ProgLookupFn fn = mp->direct_lookup(); fn != nullptr)
      ml.lookup = reinterpret_cast<std::uint64_t>(fn);
    if (ml.values != 0 || ml.lookup != 0) out.push_back(ml);
  }
  return out;
}

namespace {

std::uint64_t now_boot_ns() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

// A tag over the instructions with map references zeroed (the kernel uses
// SHA-1; ours is a 64-bit FNV-1a, so tags differ from the kernel's).
void compute_tag(const std::vector<isa::Insn>& insns, std::uint8_t tag[8]) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (isa::Insn in : insns) {
    if (in.op == isa::Op::LddwMapIdx || in.op == isa::Op::LddwMapIdxVal) in.imm = 0;
    const isa::RawInsn r = isa::encode_one(in);
    std::uint8_t b[8];
    std::memcpy(b, &r, 8);
    for (std::uint8_t c : b) h = (h ^ c) * 0x100000001b3ULL;
  }
  std::memcpy(tag, &h, 8);
}

// The verifier's closing statistics line, for loads it did not run on.
std::string stats_line(std::size_t processed, std::uint64_t limit) {
  return fmt::format("processed {} insns (limit {}) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n",
                     processed, limit);
}

bool valid_prog_name(const std::string& name) {
  if (name.size() >= BPF_OBJ_NAME_LEN) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
  });
}

}  // namespace

Result<std::shared_ptr<ProgObject>> Runtime::build_prog(const ProgSpec& spec,
                                                        std::vector<std::shared_ptr<MapObject>> preset_maps,
                                                        std::string& log) {
  const bool from_pin = !preset_maps.empty();
  auto fail = [&](Error e) -> Error {
    if (spec.log_level != 0) log += e.to_string() + "\n";
    if (e.where.empty() && !spec.name.empty()) e.where = fmt::format("prog '{}'", spec.name);
    return e;
  };
  if (spec.type == BPF_PROG_TYPE_UNSPEC || spec.type > BPF_PROG_TYPE_SYSCALL + 1 /* NETFILTER, newer than this uapi header */)
    return fail(make_error(EINVAL, fmt::format("unknown program type {}", spec.type)));
  if (!valid_prog_name(spec.name)) return fail(make_error(EINVAL, "invalid program name"));
  if (spec.insns.empty() || spec.insns.size() > limits_.max_insns)
    return fail(make_error(E2BIG, fmt::format("program of {} instructions: the limit is {} ({})", spec.insns.size(),
                                              limits_.max_insns,
                                              opts_.limits.max_insns != 0 ? "Limits::max_insns"
                                              : opts_.privileged          ? "BPF_COMPLEXITY_LIMIT_INSNS"
                                                                          : "BPF_MAXINSNS, unprivileged")));
  // bpf_prog_load: without CAP_BPF only socket filters and cgroup_skb programs, aligned.
  if (!opts_.privileged && spec.type != BPF_PROG_TYPE_SOCKET_FILTER && spec.type != BPF_PROG_TYPE_CGROUP_SKB)
    return fail(make_error(EPERM, fmt::format("program type {} needs a privileged runtime "
                                              "(Options::privileged is false)",
                                              spec.type)));
  if (!opts_.privileged && (spec.prog_flags & BPF_F_ANY_ALIGNMENT) != 0)
    return fail(make_error(EPERM, "BPF_F_ANY_ALIGNMENT needs a privileged runtime (Options::privileged is false)"));
  isa::DecodeOptions dopts;
  dopts.kernel_only = true;
  auto decoded = isa::decode(spec.insns, dopts);
  if (!decoded) return fail(decoded.error());
  std::vector<isa::Insn> insns = std::move(*decoded);
  std::vector<isa::Insn> exec = insns;
  // BTF func and line info (kernel messages already in the log)
  auto btf_info = check_btf_info(*this, spec, insns, log);
  if (!btf_info) {
    if (spec.log_level != 0) log += stats_line(0, limits_.verifier_insns);  // bpf_check's skip_full_check
    Error e = btf_info.error();
    if (e.where.empty() && !spec.name.empty()) e.where = fmt::format("prog '{}'", spec.name);
    return e;
  }

  auto p = std::make_shared<ProgObject>();
  p->used_maps = std::move(preset_maps);
  auto use_map = [&](std::shared_ptr<MapObject> m) -> std::int32_t {
    for (std::size_t i = 0; i < p->used_maps.size(); ++i)
      if (p->used_maps[i] == m) return static_cast<std::int32_t>(i);
    p->used_maps.push_back(std::move(m));
    return static_cast<std::int32_t>(p->used_maps.size() - 1);
  };

  for (std::size_t pc = 0; pc < insns.size(); ++pc) {
    isa::Insn& in = insns[pc];
    const isa::Op op = in.op;
    if (op == isa::Op::Call) {
      if (helpers_.find(static_cast<std::uint32_t>(in.imm)) == nullptr)
        return fail(insn_error(EINVAL, pc, helpers::unsupported_helper_message(static_cast<std::uint32_t>(in.imm))));
      if (is_timer_helper(in.imm)) p->uses_timers = true;  // timers.cpp
      continue;
    }
    if (op == isa::Op::CallKfunc) {
      // host kfuncs (helpers::register_kfuncs) by BTF id; no module BTFs
      if (in.off != 0 || helpers_.find_kfunc(static_cast<std::uint32_t>(in.imm)) == nullptr)
        return fail(insn_error(EINVAL, pc, fmt::format("kernel btf_id {} is not a function", static_cast<std::uint32_t>(in.imm))));
      continue;
    }
    if (op == isa::Op::LddwBtfId)
      return fail(insn_error(EINVAL, pc, "ld_imm64 of a kernel BTF id (ksym) is not supported"));
    const bool by_fd = op == isa::Op::LddwMapFd || op == isa::Op::LddwMapValue;
    const bool by_idx = op == isa::Op::LddwMapIdx || op == isa::Op::LddwMapIdxVal;
    if (!by_fd && !by_idx) continue;
    const bool value = op == isa::Op::LddwMapValue || op == isa::Op::LddwMapIdxVal;
    if (!value && in.imm_hi != 0)
      return fail(insn_error(EINVAL, pc, "invalid bpf_ld_imm64 insn"));
    std::shared_ptr<MapObject> m;
    if (from_pin) {
      if (!by_idx || in.imm < 0 || static_cast<std::size_t>(in.imm) >= p->used_maps.size())
        return fail(insn_error(EINVAL, pc, fmt::format("map index {} out of range", in.imm)));
      m = p->used_maps[static_cast<std::size_t>(in.imm)];
    } else if (by_fd) {
      m = get_map(in.imm);
      if (!m) return fail(insn_error(EBADF, pc, fmt::format("fd {} is not pointing to valid bpf_map", in.imm)));
    } else {
      if (spec.fd_array.empty()) return fail(insn_error(EPROTO, pc, "fd_idx without fd_array is invalid"));
      if (in.imm < 0 || static_cast<std::size_t>(in.imm) >= spec.fd_array.size())
        return fail(insn_error(EINVAL, pc, fmt::format("fd_array index {} out of range", in.imm)));
      const int fd = spec.fd_array[static_cast<std::size_t>(in.imm)];
      m = get_map(fd);
      if (!m) return fail(insn_error(EBADF, pc, fmt::format("fd {} is not pointing to valid bpf_map", fd)));
    }
    std::uint64_t addr = reinterpret_cast<std::uint64_t>(m->map.get());
    if (value) {
      const auto off = static_cast<std::uint32_t>(in.imm_hi);
      void* base = m->map->direct_value(0);
      if (base == nullptr) return fail(insn_error(EINVAL, pc, "map does not support direct value access"));
      if (off >= m->map->value_size())
        return fail(insn_error(EACCES, pc, fmt::format("invalid access to map value pointer, value_size={} off={}",
                                                       m->map->value_size(), off)));
      addr = reinterpret_cast<std::uint64_t>(base) + off;
    }
    const std::int32_t idx = use_map(m);
    const std::int32_t hi = value ? in.imm_hi : 0;
    in = isa::make(value ? isa::Op::LddwMapIdxVal : isa::Op::LddwMapIdx, in.dst, 0, 0, idx, hi);
    exec[pc] = isa::make(isa::Op::Lddw, in.dst, 0, 0, static_cast<std::int32_t>(static_cast<std::uint32_t>(addr)),
                         static_cast<std::int32_t>(static_cast<std::uint32_t>(addr >> 32)));
  }
  if (opts_.verify) {
    // The kernel's verifier rules over the instructions with map references
    // as indexes into the used maps (Config::maps in that order).
    verifier::Config cfg;
    cfg.prog_type = spec.type;
    cfg.funcs = btf_info->funcs;
    cfg.privileged = opts_.privileged;
    cfg.insn_limit = limits_.verifier_insns;
    cfg.memory_limit = limits_.verifier_memory == Limits::kUnlimited ? 0 : limits_.verifier_memory;
    for (const auto& m : p->used_maps)
      cfg.maps.push_back(verifier::MapDesc{m->map->type(), m->map->key_size(), m->map->value_size(),
                                           m->map->max_entries(), -1, m->map->name(), m->btf_id != 0,
                                           m->map->spin_lock_off(), m->map->timer_off()});
    // BPF_LOG_LEVEL2 (2) logs every state, BPF_LOG_LEVEL1 (1) the failing
    // path; BPF_LOG_STATS (4) alone: level 1 gives just the closing
    // statistics for accepted programs.
    cfg.log_level = (spec.log_level & 2) != 0 ? 2 : (spec.log_level & (1 | 4)) != 0 ? 1 : 0;
    verifier::Verdict v = verifier::verify(insns, cfg);
    if (spec.log_level != 0) log += annotate_log(v.log, *btf_info);
    if (!v.accepted) {
      Error e = insn_error(v.err, v.error_insn, v.message);
      if (v.err == ENOMEM) e.message += " (runtime::Limits::verifier_memory)";
      if (const std::string src = source_line(*btf_info, v.error_insn); !src.empty())
        e.message += fmt::format(" (at {})", src);
      e.where = fmt::format("prog '{}'", spec.name);
      return e;
    }
    if (auto s = convert_ctx_access(spec.type, v.facts, exec, p->max_ctx_offset); !s) return fail(s.error());
    p->verified = true;
    p->stack_depth = std::move(v.stack_depth);
  }
  auto program = interp::Program::create(exec);
  if (!program) return fail(program.error());
  if (opts_.engine == Engine::Jit) {
    // Verified programs run unchecked, as the kernel runs them (the
    // verifier proved every access; jit::Options::proven_safe exists for a
    // future defence-in-depth mode that checks only what was not proven).
    jit::Options jo;
    jo.checked = opts_.checked && !p->verified;
    // bpf_jit_harden: 1 blinds unprivileged loads' constants, 2 every load's
    jo.blinding = opts_.blinding == Blinding::All || (opts_.blinding == Blinding::Unprivileged && !opts_.privileged);
    jo.budget = opts_.budget;
    jo.helpers = &helpers_;
    if (p->verified && !jo.checked) {
      std::vector<maps::Map*> used;
      for (const auto& m : p->used_maps) used.push_back(m->map.get());
      jo.map_lookups = jit_map_lookups(used);
      jo.verified = true;  // r1-r5 are never read after a helper call
    }
    auto compiled = jit::Program::compile(exec, jo);
    if (!compiled) return fail(compiled.error());
    p->jitted = std::make_unique<jit::Program>(std::move(*compiled));
  }

  p->type = spec.type;
  p->expected_attach_type = spec.expected_attach_type;
  p->prog_flags = spec.prog_flags;
  p->kern_version = spec.kern_version;
  p->name = spec.name;
  p->license = spec.license;
  p->insns = std::move(insns);
  p->btf = std::move(btf_info->btf);
  p->func_info = std::move(btf_info->func_info);
  p->line_info = std::move(btf_info->line_info);
  for (auto& m : p->used_maps) p->map_ptrs.push_back(m->map.get());
  p->exec = std::make_unique<interp::Program>(std::move(*program));
  compute_tag(p->insns, p->tag);
  p->load_time_ns = now_boot_ns();
  p->uid = static_cast<std::uint32_t>(::getuid());
  if (spec.log_level != 0 && !p->verified) {
    log += fmt::format("userbpf: not verified: decoding, structure, helper ids and map references checked; "
                       "runs are {}\n",
                       opts_.checked ? "bounds-checked" : "unchecked");
    log += stats_line(p->insns.size(), limits_.verifier_insns);
  }
  register_object(p);
  return p;
}

Result<int> Runtime::prog_load(const ProgSpec& spec, std::string* log) {
  std::string local;
  auto p = build_prog(spec, {}, log != nullptr ? *log : local);
  if (!p) return p.error();
  if ((*p)->btf) (*p)->btf_id = (*p)->btf->id;
  return new_handle(std::move(*p));
}

}  // namespace userbpf::runtime
