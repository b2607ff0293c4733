// Command group "map": bpftool-like map commands on the runtime's maps.
//
//   userbpf map list                         every pinned map (ids of this invocation)
//   userbpf map show ID|PINPATH
//   userbpf map dump ID|PINPATH
//   userbpf map lookup ID|PINPATH key BYTES...
//   userbpf map update ID|PINPATH key BYTES... value BYTES... [any|noexist|exist]
//   userbpf map delete ID|PINPATH key BYTES...
//   userbpf map watch ID|PINPATH [--type NAME] [--count N] [--timeout SEC]
//                                            ring buffer / perf buffer records as they arrive
//
// Maps live in the process; a map pinned by an earlier invocation (`prog
// load --pin`) is a hard link to its shared memory, so these commands read
// and change the same map as every other process using it. BYTES follow
// bpftool: "0x01 0x00 0x00 0x00", "hex 01 00 00 00", plain hex "01000000" or
// decimal bytes. Errors carry the kernel's errno name. Maps loaded from an
// object with BTF (`prog load --pin`) have their keys and values decoded by
// those types as well (bpftool's "formatted" JSON; obj::load_map_btf).
#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/objcommon.hpp"
#include "cli/objwatch.hpp"
#include "cli/registry.hpp"
#include "common/tool_io.hpp"

namespace userbpf::cli {
namespace {

using obj::Session;
using runtime::ObjKind;

struct MapOptions {
  std::string map;
  std::vector<std::string> args;
  bool json = false;
  std::string type;           // watch: BTF type of the records
  std::uint64_t count = 0;    // watch: stop after N records (0: never)
  double timeout = -1;        // watch: stop after SEC seconds (< 0: never)
};

std::string errno_text(int err) { return fmt::format("{} ({})", std::strerror(err), err); }

int map_list(const MapOptions& o) {
  Session s;
  s.scan_pins();
  nlohmann::json all = nlohmann::json::array();
  std::vector<std::uint32_t> seen;
  for (const obj::Pinned& p : s.pins) {
    if (p.kind != ObjKind::Map) continue;
    auto m = s.rt->get_map(p.handle);
    if (std::find(seen.begin(), seen.end(), m->id) != seen.end()) continue;
    seen.push_back(m->id);
    if (o.json)
      all.push_back(obj::map_info_json(*m, s.pin_paths(*m)));
    else
      std::cout << obj::map_info_text(*m, s.pin_paths(*m));
  }
  if (o.json) std::cout << all.dump() << '\n';
  return tools::kExitOk;
}

int map_show(const MapOptions& o) {
  Session s;
  auto h = obj::resolve(s, o.map, ObjKind::Map);
  if (!h.ok()) return obj::fail(o.json, h.error().message);
  auto m = s.rt->get_map(*h);
  if (o.json)
    std::cout << obj::map_info_json(*m, s.pin_paths(*m)).dump() << '\n';
  else
    std::cout << obj::map_info_text(*m, s.pin_paths(*m));
  return tools::kExitOk;
}

int map_dump(const MapOptions& o) {
  Session s;
  auto h = obj::resolve(s, o.map, ObjKind::Map);
  if (!h.ok()) return obj::fail(o.json, h.error().message);
  auto mo = s.rt->get_map(*h);
  const maps::Map& m = *mo->map;
  const auto entries = obj::map_entries(m);
  const auto btf = obj::load_map_btf(*s.rt, *mo);  // stored by `prog load --pin`
  if (o.json)
    std::cout << obj::map_entries_json(m, entries, btf ? &*btf : nullptr).dump() << '\n';
  else
    std::cout << obj::map_entries_text(m, entries, btf ? &*btf : nullptr);
  return tools::kExitOk;
}

// Splits "key B... [value B...] [flag]" into its parts.
struct KeyValue {
  std::vector<std::uint8_t> key, value;
  bool has_value = false;
  std::uint64_t flags = BPF_ANY;
};

Result<KeyValue> parse_key_value(const std::vector<std::string>& args, bool want_value, const maps::Map& m) {
  KeyValue kv;
  if (args.empty() || args[0] != "key")
    return make_error(EINVAL, "expected 'key BYTES...' after the map (e.g. key 0x01 0x00 0x00 0x00)");
  std::size_t i = 1, vpos = args.size();
  for (std::size_t j = 1; j < args.size(); ++j)
    if (args[j] == "value") vpos = j;
  std::size_t end = vpos;
  if (want_value && vpos == args.size()) return make_error(EINVAL, "expected 'value BYTES...' after the key");
  if (!want_value && vpos != args.size()) return make_error(EINVAL, "this command takes no value");
  auto key = obj::parse_bytes(std::span<const std::string>(args).subspan(i, end - i), "key");
  if (!key.ok()) return key.error();
  kv.key = *key;
  if (want_value) {
    std::size_t vend = args.size();
    const std::string& last = args.back();
    if (last == "any" || last == "noexist" || last == "exist") {
      kv.flags = last == "any" ? BPF_ANY : last == "noexist" ? BPF_NOEXIST : BPF_EXIST;
      --vend;
    }
    auto value = obj::parse_bytes(std::span<const std::string>(args).subspan(vpos + 1, vend - vpos - 1), "value");
    if (!value.ok()) return value.error();
    kv.value = *value;
    kv.has_value = true;
    const std::size_t want = m.percpu() ? m.host_value_size() : m.value_size();
    if (kv.value.size() == m.value_size() && m.percpu()) {  // one slot given: the same for every CPU
      std::vector<std::uint8_t> all;
      for (std::uint32_t c = 0; c < m.ncpus(); ++c) all.insert(all.end(), kv.value.begin(), kv.value.end());
      kv.value = all;
    }
    if (kv.value.size() != want)
      return make_error(EINVAL, fmt::format("value has {} bytes, the map's value size is {}", kv.value.size(), want));
  }
  if (kv.key.size() != m.key_size())
    return make_error(EINVAL, fmt::format("key has {} bytes, the map's key size is {}", kv.key.size(), m.key_size()));
  return kv;
}

enum class Op { Lookup, Update, Delete };

int map_elem(const MapOptions& o, Op op) {
  Session s;
  auto h = obj::resolve(s, o.map, ObjKind::Map);
  if (!h.ok()) return obj::fail(o.json, h.error().message);
  auto mo = s.rt->get_map(*h);
  maps::Map& m = *mo->map;
  auto kv = parse_key_value(o.args, op == Op::Update, m);
  if (!kv.ok()) return obj::fail(o.json, fmt::format("map {}: {}", o.map, kv.error().message));
  int rc = 0;
  switch (op) {
    case Op::Lookup: {
      std::vector<std::uint8_t> value(m.host_value_size());
      if (m.type() == BPF_MAP_TYPE_PROG_ARRAY) {
        rc = EINVAL;  // as bpftool: program array values are not readable from user space
      } else {
        rc = m.lookup(kv->key.data(), value.data(), 0);
      }
      if (rc != 0) {
        const std::string what = rc == ENOENT ? "key not found" : errno_text(rc);
        return obj::fail(o.json, fmt::format("map {}: lookup: {}", o.map, what));
      }
      const std::vector<obj::MapEntry> one = {{kv->key, value}};
      const auto btf = obj::load_map_btf(*s.rt, *mo);
      if (o.json) {
        std::cout << obj::map_entries_json(m, one, btf ? &*btf : nullptr)[0].dump() << '\n';
      } else {
        std::string text = obj::map_entries_text(m, one, btf ? &*btf : nullptr);
        text.erase(text.rfind("Found"));
        std::cout << text;
      }
      return tools::kExitOk;
    }
    case Op::Update: rc = s.rt->map_update(*mo, kv->key.data(), kv->value.data(), kv->flags); break;
    case Op::Delete: rc = s.rt->map_delete(*mo, kv->key.data()); break;
  }
  if (rc != 0)
    return obj::fail(o.json, fmt::format("map {}: {}: {}", o.map, op == Op::Update ? "update" : "delete",
                                         rc == ENOENT ? "key not found (ENOENT)" : errno_text(rc)));
  if (o.json) std::cout << "null\n";
  return tools::kExitOk;
}

// `map watch`: records of a ring buffer / perf event array as they arrive,
// one line (or one JSON object per line) each, flushed at once.
int map_watch(const MapOptions& o) {
  Session s;
  auto h = obj::resolve(s, o.map, ObjKind::Map);
  if (!h.ok()) return obj::fail(o.json, h.error().message);
  auto mo = s.rt->get_map(*h);
  const auto btf = obj::load_map_btf(*s.rt, *mo);
  std::uint32_t type_id = 0;
  if (!o.type.empty()) {
    if (!btf) return obj::fail(o.json, fmt::format("map {}: --type {}: no BTF is known for this map (load its object "
                                                   "with `prog load --pin` to keep it)", o.map, o.type));
    auto id = obj::find_btf_type(*btf, o.type);
    if (!id.ok()) return obj::fail(o.json, fmt::format("map {}: --type: {}", o.map, id.error().message));
    type_id = *id;
  }
  obj::RecordWatcher w;
  if (auto st = w.add(mo->map->name(), *mo->map, btf, type_id); !st.ok())
    return obj::fail(o.json, st.error().message);
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  std::uint64_t seen = 0;
  for (;;) {
    int wait = -1;
    if (o.timeout >= 0) {
      const double left = o.timeout - std::chrono::duration<double>(clock::now() - start).count();
      if (left <= 0) break;
      wait = static_cast<int>(left * 1000) + 1;
    }
    w.poll(wait);
    for (const obj::Record& r : w.take()) {
      std::cout << (o.json ? obj::record_json(r).dump() : obj::record_text(r)) << std::endl;
      if (r.lost == 0) ++seen;
      if (o.count != 0 && seen >= o.count) return tools::kExitOk;
    }
  }
  if (!o.json) std::cerr << fmt::format("userbpf: map watch: {} record{} in {} s\n", seen, seen == 1 ? "" : "s", o.timeout);
  return tools::kExitOk;
}

}  // namespace

void register_map_commands(Registry& r) {
  auto o = std::make_shared<MapOptions>();
  CLI::App& g = r.group("map", "Inspect and change maps (pinned ones persist across invocations)");
  g.footer("Maps are found by pin path (/sys/fs/bpf/NAME or a path under the pin directory) or by the id\n"
           "that `map list` shows in this invocation. Pin directory: $USERBPF_PIN_DIR, else\n"
           "$XDG_RUNTIME_DIR/userbpf, else /tmp/userbpf-$UID.");
  auto json_flag = [o](CLI::App& c) { c.add_flag("--json,-j", o->json, "JSON output (as bpftool -j)"); };

  CLI::App& list = r.add(g, "list", "List the pinned maps", [o] { return map_list(*o); });
  json_flag(list);
  CLI::App& show = r.add(g, "show", "Show one map", [o] { return map_show(*o); });
  show.add_option("MAP", o->map, "map id or pin path")->required();
  json_flag(show);
  CLI::App& dump = r.add(g, "dump", "Print all entries of a map", [o] { return map_dump(*o); });
  dump.add_option("MAP", o->map, "map id or pin path")->required();
  json_flag(dump);
  CLI::App& lookup = r.add(g, "lookup", "Look up one key: map lookup MAP key BYTES...", [o] { return map_elem(*o, Op::Lookup); });
  lookup.add_option("MAP", o->map, "map id or pin path")->required();
  lookup.add_option("ARGS", o->args, "key BYTES... (0x01 0x00 ..., hex 01 00 ..., 01000000)")->required();
  json_flag(lookup);
  CLI::App& update = r.add(g, "update", "Set one entry: map update MAP key BYTES... value BYTES... [any|noexist|exist]",
                           [o] { return map_elem(*o, Op::Update); });
  update.add_option("MAP", o->map, "map id or pin path")->required();
  update.add_option("ARGS", o->args, "key BYTES... value BYTES... [any|noexist|exist]")->required();
  json_flag(update);
  CLI::App& del = r.add(g, "delete", "Delete one key: map delete MAP key BYTES...", [o] { return map_elem(*o, Op::Delete); });
  del.add_option("MAP", o->map, "map id or pin path")->required();
  del.add_option("ARGS", o->args, "key BYTES...")->required();
  json_flag(del);
  CLI::App& watch = r.add(g, "watch", "Print ring buffer / perf event array records as they arrive",
                          [o] { return map_watch(*o); });
  watch.add_option("MAP", o->map, "map id or pin path (a ringbuf or perf_event_array map)")->required();
  watch.add_option("--type", o->type, "decode records as this BTF type of the map's object (e.g. 'struct event')");
  watch.add_option("--count", o->count, "stop after N records");
  watch.add_option("--timeout", o->timeout, "stop after SEC seconds");
  json_flag(watch);
}

}  // namespace userbpf::cli
