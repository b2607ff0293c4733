// The verifier-gated execution harness (see harness.hpp for what is
// compared and why).
//
// Invariants of ExecHarness::check: maps are created once per process (one
// per distinct descriptor) and cleared before every run, so that each
// engine starts from the same state; a program reaches the unchecked runs
// only after the checked interpreter ran it without a memory violation
// (runs are deterministic: the generator only emits engine-independent
// helpers and, for execution, zeroes the stack), so an unsound verdict can
// never make the harness itself write outside the memory the program was
// given.
#include "fuzz/common/harness.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "helpers/helpers.hpp"
#include "interp/interp.hpp"
#include "jit/jit.hpp"
#include "maps/map.hpp"
#include "spec/spec.hpp"
#include "verifier/verifier.hpp"

namespace userbpf::fuzz {

namespace {

using Snapshot = std::vector<std::pair<std::vector<std::uint8_t>, std::vector<std::uint8_t>>>;

std::string map_dir() {
  const char* t = std::getenv("TMPDIR");
  return t != nullptr && *t != '\0' ? t : "/tmp";
}

}  // namespace

struct ExecHarness::Impl {
  abi::HelperTable helpers;
  std::map<std::tuple<std::uint32_t, std::uint32_t, std::uint32_t, std::uint32_t>, std::unique_ptr<maps::Map>> maps;

  maps::Map* get(const verifier::MapDesc& d) {
    auto key = std::make_tuple(d.type, d.key_size, d.value_size, d.max_entries);
    auto it = maps.find(key);
    if (it != maps.end()) return it->second.get();
    maps::MapSpec s;
    s.type = d.type;
    s.key_size = d.key_size;
    s.value_size = d.value_size;
    s.max_entries = d.max_entries;
    s.name = "fuzz";
    auto m = maps::create_map(s, map_dir());
    if (!m) fail("harness", "cannot create a map", m.error().to_string());
    auto* p = m->get();
    maps.emplace(key, std::move(*m));
    return p;
  }

  static void clear(maps::Map& m) {
    std::vector<std::uint8_t> key(m.key_size()), zero(m.host_value_size());
    if (m.type() == 2 /* BPF_MAP_TYPE_ARRAY: elements cannot be deleted */) {
      for (std::uint32_t i = 0; i < m.max_entries(); ++i) {
        std::memcpy(key.data(), &i, std::min<std::size_t>(4, key.size()));
        (void)m.update(key.data(), zero.data(), 0);
      }
      return;
    }
    while (m.get_next_key(nullptr, key.data()) == 0)
      if (m.remove(key.data()) != 0) break;
  }

  static Snapshot snapshot(maps::Map& m) {
    Snapshot s;
    std::vector<std::uint8_t> key(m.key_size()), next(m.key_size()), value(m.host_value_size());
    const void* prev = nullptr;
    for (unsigned guard = 0; guard < 4096 && m.get_next_key(prev, next.data()) == 0; ++guard) {
      if (m.lookup(next.data(), value.data(), 0) == 0) s.emplace_back(next, value);
      key = next;
      prev = key.data();
    }
    std::sort(s.begin(), s.end());
    return s;
  }
};

ExecHarness::ExecHarness() : impl_(new Impl) { helpers::register_helpers(impl_->helpers); }

ExecHarness& ExecHarness::instance() {
  static ExecHarness h;
  return h;
}

ExecHarness::Outcome ExecHarness::check(std::string_view target, const GenProgram& prog,
                                        std::span<const std::uint8_t> ctx_bytes) {
  Outcome out;
  const verifier::Verdict v = verifier::verify(prog.insns, verifier_config(prog));
  if (!v.accepted) {
    out.verifier_message = v.message;
    return out;
  }
  out.accepted = true;

  // relocate map references to the live maps
  std::vector<maps::Map*> used;
  for (const auto& d : prog.maps) used.push_back(impl_->get(d));
  std::vector<isa::Insn> exec = prog.insns;
  for (auto& in : exec) {
    if (in.op != isa::Op::LddwMapFd && in.op != isa::Op::LddwMapValue) continue;
    if (in.imm < 0 || static_cast<std::size_t>(in.imm) >= used.size())
      fail(target, "verifier accepted a map reference outside the map table", listing(prog.insns));
    maps::Map* m = used[static_cast<std::size_t>(in.imm)];
    std::uint64_t addr = reinterpret_cast<std::uint64_t>(m);
    if (in.op == isa::Op::LddwMapValue)
      addr = reinterpret_cast<std::uint64_t>(m->direct_value(0)) + static_cast<std::uint32_t>(in.imm_hi);
    in = isa::make(isa::Op::Lddw, in.dst, 0, 0, static_cast<std::int32_t>(static_cast<std::uint32_t>(addr)),
                   static_cast<std::int32_t>(static_cast<std::uint32_t>(addr >> 32)));
  }

  // context: the program type's size, filled from the input
  const spec::ProgType* pt = spec::prog_type(prog.prog_type);
  std::vector<std::uint8_t> ctx(pt != nullptr ? pt->ctx.size : 64);
  for (std::size_t i = 0; i < ctx.size(); ++i)
    ctx[i] = ctx_bytes.empty() ? static_cast<std::uint8_t>(i) : ctx_bytes[i % ctx_bytes.size()];

  auto ip = interp::Program::create(exec);
  if (!ip) fail(target, "interpreter refused a verified program", ip.error().to_string() + "\n" + listing(exec));
  jit::Options jo;
  auto jp = jit::Program::compile(exec, jo);
  if (!jp) fail(target, "JIT refused a verified program", jp.error().to_string() + "\n" + listing(exec));

  const std::uint64_t ctx_addr = reinterpret_cast<std::uint64_t>(ctx.data());
  auto run = [&](bool use_jit, bool checked, std::vector<Snapshot>& snaps) {
    for (maps::Map* m : used) Impl::clear(*m);
    helpers::RunState st;
    st.maps = used;
    abi::Env env;
    env.helpers = &impl_->helpers;
    env.user = &st;
    env.options.checked = checked;
    env.options.budget = kBudget;
    env.regions.push_back({ctx_addr, ctx.size(), false, abi::RegionKind::Context});
    for (maps::Map* m : used) {
      auto area = m->program_area();
      env.regions.push_back({reinterpret_cast<std::uint64_t>(area.data()), area.size(), true,
                             abi::RegionKind::MapValue});
    }
    const std::uint64_t args[1] = {ctx_addr};
    abi::RunResult r = use_jit ? jp->run(env, args) : ip->run(env, args);
    snaps.clear();
    for (maps::Map* m : used) snaps.push_back(Impl::snapshot(*m));
    return r;
  };

  std::vector<Snapshot> s_ref, s_other;
  out.result = run(false, true, s_ref);
  if (out.result.fault == abi::Fault::MemoryViolation)
    fail(target, "verifier soundness: the checked interpreter reports a memory violation in an accepted program",
         describe(out.result) + "\n" + listing(prog.insns));
  const struct {
    bool jit, checked;
    const char* name;
  } variants[] = {{true, true, "checked JIT"}, {true, false, "JIT"}, {false, false, "interpreter"}};
  for (const auto& var : variants) {
    const abi::RunResult r = run(var.jit, var.checked, s_other);
    if (!(r == out.result) || r.insns != out.result.insns)
      fail(target, fmt::format("{} differs from the checked interpreter", var.name),
           fmt::format("checked interpreter: {}\n{}: {}\n{}", describe(out.result), var.name, describe(r),
                       listing(prog.insns)));
    if (s_other != s_ref)
      fail(target, fmt::format("map contents after the {} differ from the checked interpreter's", var.name),
           listing(prog.insns));
  }
  return out;
}

}  // namespace userbpf::fuzz
