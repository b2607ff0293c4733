// See sides.hpp for the design.
#include "sides.hpp"

#include <fmt/format.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "../tests/maps/bpf_sides.hpp"
#include "runtime/runtime.hpp"

namespace userbpf::bench {

namespace {

using isa::Op;
using maps::test::MapOps;
using maps::test::Side;

bool supported_type(std::uint32_t t) {
  return t == BPF_MAP_TYPE_ARRAY || t == BPF_MAP_TYPE_HASH || t == BPF_MAP_TYPE_LRU_HASH;
}

Status check_defs(std::span<const MapDef> defs) {
  for (const MapDef& d : defs)
    if (!supported_type(d.params.type))
      return make_error(EOPNOTSUPP, fmt::format("map '{}': type {} is not supported by the bench (array, hash, "
                                                "LRU hash only)",
                                                d.name, d.params.type));
  return Ok{};
}

// Every key/value pair of map `fd`, sorted by key.
Result<MapContents> dump(const Side& s, int fd, const MapDef& d) {
  MapContents out;
  std::vector<std::uint8_t> key(d.params.key_size), next(d.params.key_size), value(d.params.value_size);
  bool first = true;
  for (std::uint64_t n = 0; n <= d.params.max_entries; ++n) {
    bpf_attr a{};
    a.map_fd = static_cast<std::uint32_t>(fd);
    a.key = first ? 0 : reinterpret_cast<std::uint64_t>(key.data());
    a.next_key = reinterpret_cast<std::uint64_t>(next.data());
    const int r = s.bpf(BPF_MAP_GET_NEXT_KEY, a);
    if (r == -ENOENT) break;
    if (r < 0) return make_error(-r, fmt::format("map '{}': GET_NEXT_KEY: {}", d.name, std::strerror(-r)));
    if (const int l = MapOps{s}.op(BPF_MAP_LOOKUP_ELEM, fd, next.data(), value.data()); l < 0)
      return make_error(-l, fmt::format("map '{}': LOOKUP_ELEM: {}", d.name, std::strerror(-l)));
    out.emplace_back(next, value);
    key = next;
    first = false;
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<MapsContents> dump_all(const Side& s, std::span<const int> fds, std::span<const MapDef> defs) {
  MapsContents out;
  for (std::size_t i = 0; i < fds.size(); ++i) {
    auto c = dump(s, fds[i], defs[i]);
    if (!c) return c.error();
    out.push_back(std::move(*c));
  }
  return out;
}

}  // namespace

std::string describe_difference(const MapsContents& a, const MapsContents& b, std::span<const MapDef> defs) {
  for (std::size_t i = 0; i < std::min({a.size(), b.size(), defs.size()}); ++i) {
    if (a[i] == b[i]) continue;
    if (a[i].size() != b[i].size())
      return fmt::format("map '{}': {} entries vs {}", defs[i].name, a[i].size(), b[i].size());
    for (std::size_t k = 0; k < a[i].size(); ++k) {
      if (a[i][k] == b[i][k]) continue;
      const auto& key = a[i][k].first;
      std::string hex;
      for (std::size_t j = 0; j < std::min<std::size_t>(key.size(), 16); ++j) hex += fmt::format("{:02x}", key[j]);
      return fmt::format("map '{}': entry {} (key {}) {}", defs[i].name, k, hex,
                         a[i][k].first != b[i][k].first ? "key differs" : "value differs");
    }
  }
  return a.size() == b.size() ? "" : "different numbers of maps";
}

// ---------------------------------------------------------------- UserSide

Result<std::unique_ptr<UserSide>> UserSide::make(runtime::Runtime& rt, std::span<const isa::Insn> insns,
                                                 std::span<const MapDef> maps) {
  if (auto st = check_defs(maps); !st) return st.error();
  std::unique_ptr<UserSide> u(new UserSide(rt, {maps.begin(), maps.end()}));
  const Side side = maps::test::user_side(rt);
  for (const MapDef& d : maps) {
    const int fd = MapOps{side}.create(d.params.type, d.params.key_size, d.params.value_size, d.params.max_entries,
                                       d.params.flags);
    if (fd < 0) return make_error(-fd, fmt::format("userbpf: map '{}': MAP_CREATE: {}", d.name, std::strerror(-fd)));
    u->maps_.push_back(fd);
  }
  const auto raw = isa::encode(insns);
  runtime::ProgSpec spec;
  spec.type = BPF_PROG_TYPE_SOCKET_FILTER;
  spec.name = "bench";
  spec.insns = raw;
  spec.fd_array = u->maps_;
  auto h = rt.prog_load(spec);
  if (!h) return h.error();
  u->prog_ = *h;
  u->obj_ = rt.get_prog(*h);
  if (!u->obj_ || !u->obj_->exec) return make_error(EINVAL, "userbpf: the loaded program has no code");
  return u;
}

UserSide::~UserSide() {
  if (prog_ >= 0) (void)rt_.close(prog_);
  for (int m : maps_) (void)rt_.close(m);
}

std::span<const isa::Insn> UserSide::code() const { return obj_->exec->insns(); }

jit::Options UserSide::jit_options() const {
  // As the runtime compiles a verified program (runtime/prog.cpp): helper
  // calls resolved at compile time, map lookups without the helper.
  jit::Options jo;
  jo.helpers = &rt_.helper_table();
  jo.map_lookups = runtime::jit_map_lookups(obj_->map_ptrs);
  jo.verified = true;
  return jo;
}

void UserSide::prepare(abi::Env& env) {
  state_.maps = obj_->map_ptrs;
  env.helpers = &rt_.helper_table();
  env.user = &state_;
}

Status UserSide::reset_maps() const {
  const Side side = maps::test::user_side(rt_);
  for (std::size_t i = 0; i < maps_.size(); ++i) {
    const MapDef& d = defs_[i];
    if (d.params.type == BPF_MAP_TYPE_ARRAY) {
      const std::vector<std::uint8_t> zero(d.params.value_size, 0);
      for (std::uint32_t k = 0; k < d.params.max_entries; ++k)
        if (const int r = MapOps{side}.op(BPF_MAP_UPDATE_ELEM, maps_[i], &k, const_cast<std::uint8_t*>(zero.data()));
            r < 0)
          return make_error(-r, fmt::format("userbpf: map '{}': UPDATE_ELEM of key {}: {}", d.name, k,
                                            std::strerror(-r)));
      continue;
    }
    auto c = dump(side, maps_[i], d);
    if (!c) return c.error();
    for (auto& [key, value] : *c)
      if (const int r = MapOps{side}.op(BPF_MAP_DELETE_ELEM, maps_[i], key.data(), nullptr); r < 0)
        return make_error(-r, fmt::format("userbpf: map '{}': DELETE_ELEM: {}", d.name, std::strerror(-r)));
  }
  return Ok{};
}

Result<MapsContents> UserSide::contents() const {
  return dump_all(maps::test::user_side(rt_), maps_, defs_);
}

// ---------------------------------------------------------------- KernelRunner

Result<KernelRunner> KernelRunner::make(std::span<const isa::Insn> prog, std::span<const std::uint8_t> mem,
                                        std::span<const MapDef> maps, std::string* verifier_log) {
  if (auto st = check_defs(maps); !st) return st.error();
  KernelRunner k;
  k.mem_.assign(mem.begin(), mem.end());
  k.defs_.assign(maps.begin(), maps.end());
  auto in = oracle::create_array_map(static_cast<std::uint32_t>(mem.size()), 1);
  if (!in) return in.error();
  auto out = oracle::create_array_map(8, 1);
  if (!out) return out.error();
  k.in_ = std::move(*in);
  k.out_ = std::move(*out);
  std::vector<int> fds;
  for (const MapDef& d : maps) {
    auto m = oracle::create_map(d.params);
    if (!m) return m.error();
    fds.push_back(m->get());
    k.maps_.push_back(std::move(*m));
  }
  const auto wrapped = oracle::make_wrapper(k.in_.get(), k.out_.get(), mem.size(), prog);
  const bool callbacks =
      std::any_of(prog.begin(), prog.end(), [](const isa::Insn& in) { return in.op == Op::LddwFunc; });
  std::vector<bpf_func_info> func_info;
  oracle::LoadExtras extras;
  extras.fd_array = fds;
  if (callbacks) {
    auto starts = isa::subprogram_starts(wrapped);
    if (!starts) return starts.error();
    auto btf = oracle::load_btf(oracle::func_btf(starts->size()));
    if (!btf) return btf.error();
    k.btf_ = std::move(*btf);
    for (std::size_t i = 0; i < starts->size(); ++i)
      func_info.push_back({static_cast<std::uint32_t>((*starts)[i]), oracle::kFuncBtfFirstId + static_cast<std::uint32_t>(i)});
    extras.btf_fd = k.btf_.get();
    extras.func_info = func_info;
  }
  constexpr std::uint32_t kSocketFilter = BPF_PROG_TYPE_SOCKET_FILTER;  // as oracle::run_r0 uses
  oracle::LoadResult lr = oracle::load(isa::encode(wrapped), kSocketFilter, 1, 0, extras);
  if (!lr.prog) {
    if (verifier_log != nullptr) *verifier_log = lr.log.empty() ? "(no log)" : lr.log;
    return make_error(lr.err, fmt::format("BPF_PROG_LOAD failed: {} ({})", std::strerror(lr.err), lr.err));
  }
  k.prog_ = std::move(lr.prog);
  return k;
}

std::optional<std::pair<double, std::uint64_t>> KernelRunner::run(std::uint32_t repeat,
                                                                   std::vector<std::uint8_t>* mem_after) const {
  if (!oracle::map_update(in_, 0, mem_)) return std::nullopt;
  const std::vector<std::uint8_t> pkt(64, 0);
  auto tr = oracle::test_run(prog_, pkt, repeat);
  if (!tr || tr->retval != 0) return std::nullopt;
  auto r0 = oracle::map_lookup(out_, 0, 8);
  if (!r0) return std::nullopt;
  std::uint64_t v = 0;
  std::memcpy(&v, r0->data(), 8);
  if (mem_after != nullptr) {
    auto m = oracle::map_lookup(in_, 0, static_cast<std::uint32_t>(mem_.size()));
    if (!m) return std::nullopt;
    *mem_after = std::move(*m);
  }
  return std::make_pair(static_cast<double>(tr->duration_ns), v);
}

Result<MapsContents> KernelRunner::contents() const {
  std::vector<int> fds;
  for (const oracle::Fd& m : maps_) fds.push_back(m.get());
  return dump_all(maps::test::kernel_side(), fds, defs_);
}

}  // namespace userbpf::bench
