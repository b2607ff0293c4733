// Command group "prog": load, inspect and run the programs of clang-built
// BPF objects (.bpf.o) in the runtime, like bpftool prog.
//
//   userbpf prog load OBJ [--pin DIR]      load every autoload program and its maps
//   userbpf prog list | show ID|PINPATH     pinned programs (ids of this invocation)
//   userbpf prog dump xlated ID|PINPATH|OBJ [--section S|--program NAME]   (bpftool syntax, map[id:N])
//   userbpf prog dump jited  ID|PINPATH|OBJ [--section S|--program NAME]   (x86-64 listing)
//   userbpf prog run OBJ [--section S|--program NAME] (--data FILE|--pcap IN)
//                    [--out OUT.pcap] [--repeat N] [--maps NAMES|--no-maps] [--follow [--type T]] [--json]
//
// How `prog run` works: the object is opened by the loader and loaded by
// Runtime::load_object (maps created with their initial data, programs
// relocated), then every packet goes through the runtime's PROG_TEST_RUN
// (Runtime::test_run: the uapi context — xdp_md / __sk_buff — built around
// the packet, the program run in the JIT or the interpreter, data_out read
// back). Per packet we print the return code named by the program type
// (XDP_*, TC_ACT_*, socket filter length), the trace sink's lines
// (bpf_trace_printk, collected per run), with --out the packet as the
// program left it; at the end the verdict counts and the maps' contents.
//
// Engine: the runtime's JIT by default (runtime::Options::engine = Jit: the
// program is compiled at load and PROG_TEST_RUN runs the machine code);
// --interpret runs the runtime's interpreter instead (same results).
//
// Invariants: packets are processed in pcap order, one PROG_TEST_RUN each
// (repeat N: the same packet N times, the output and verdict of the last
// repetition, average duration); a packet the runtime refuses (e.g. shorter
// than an Ethernet header) is reported as an error for that packet and
// counted under "error", never aborting the run.
#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <cctype>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "asm/asm.hpp"
#include "hooks/verdict.hpp"
#include "cli/objcommon.hpp"
#include "cli/objpcap.hpp"
#include "cli/objwatch.hpp"
#include "cli/registry.hpp"
#include "common/tool_io.hpp"
#include "loader/btf_format.hpp"
#include "loader/loader.hpp"
#include "verifier/object_config.hpp"

namespace userbpf::cli {
namespace {

namespace fs = std::filesystem;
using obj::Session;
using runtime::ObjKind;

struct ProgOptions {
  std::string target;  // OBJ, ID or PINPATH
  std::string pin;
  std::string section, program;
  std::string data, pcap_in, pcap_out;
  std::uint32_t repeat = 1;
  std::vector<std::string> maps;
  bool no_maps = false;
  bool jit = false, interpret = false;
  bool json = false;
  bool follow = false;       // run: ring buffer / perf buffer records after each packet
  std::string record_type;   // run --follow: BTF type of the records
};

// ------------------------------------------------------------ helpers

// --kconfig FILE (CONFIG_* values for .kconfig externs; default: the running
// kernel's config), set once per invocation by the commands that take it.
std::string g_kconfig;

Result<loader::Object> open_object(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return make_error(ENOENT, fmt::format("{}: no such file", path));
  loader::OpenOptions oo;
  oo.externs.kconfig_path = g_kconfig;
  oo.externs.kfuncs = verifier::kfunc_symbols();  // __ksym functions: the host kfuncs
  auto o = loader::Object::open(path, oo);
  if (!o.ok()) {
    Error e = o.error();
    e.message = fmt::format("{}: {}", path, e.to_string());
    e.where.clear();
    e.insn.reset();
    return e;
  }
  return o;
}

// The program chosen by --section / --program, or the only program.
Result<const loader::Program*> pick_program(const loader::Object& o, const ProgOptions& opt, const std::string& path) {
  return obj::pick_program(o, opt.program, opt.section, path);
}

bool file_is_elf(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  auto bytes = tools::read_input(path);
  return bytes.ok() && tools::is_elf(*bytes);
}

using hooks::verdict_name;

// ------------------------------------------------------------ load / list / show

int prog_load(const ProgOptions& o) {
  auto ob = open_object(o.target);
  if (!ob.ok()) return obj::fail(o.json, ob.error().message);
  Session s;
  auto loaded = s.rt->load_object(*ob);
  if (!loaded.ok()) return obj::fail(o.json, fmt::format("{}: load: {}", o.target, loaded.error().to_string()));
  std::string pin_dir;
  if (!o.pin.empty()) {
    auto dir = s.rt->resolve_path(o.pin);
    if (!dir.ok()) return obj::fail(o.json, fmt::format("--pin {}: {}", o.pin, dir.error().message));
    std::error_code ec;
    fs::create_directories(*dir, ec);
    if (ec) return obj::fail(o.json, fmt::format("--pin {}: cannot create {}: {}", o.pin, *dir, ec.message()));
    pin_dir = *dir;
  }
  nlohmann::json progs = nlohmann::json::array(), mapsj = nlohmann::json::array();
  auto pin_one = [&](const std::string& name, int handle) -> std::optional<std::string> {
    if (pin_dir.empty()) return std::string();
    const std::string path = pin_dir + "/" + name;
    auto st = s.rt->pin(handle, path);
    if (!st.ok()) return std::nullopt;
    return path;
  };
  for (const auto& [name, handle] : loaded->maps) {
    auto path = pin_one(name, handle);
    if (!path) return obj::fail(o.json, fmt::format("--pin: cannot pin map {} at {}/{} (exists already?)", name, pin_dir, name));
    auto m = s.rt->get_map(handle);
    const loader::Map* lm = ob->find_map(name);
    if (lm != nullptr && (!path->empty() || lm->pinning != 0)) obj::save_map_btf(*s.rt, *m, *ob, *lm);
    nlohmann::json j = obj::map_info_json(*m, {});
    if (!path->empty()) j["pinned"] = *path;
    mapsj.push_back(j);
    if (!o.json)
      std::cout << fmt::format("map {}: {} {}{}\n", m->id, loader::map_type_name(m->map->type()), name,
                               path->empty() ? "" : "  pinned " + *path);
  }
  for (const auto& [name, handle] : loaded->progs) {
    auto path = pin_one(name, handle);
    if (!path)
      return obj::fail(o.json, fmt::format("--pin: cannot pin program {} at {}/{} (exists already?)", name, pin_dir, name));
    auto p = s.rt->get_prog(handle);
    nlohmann::json j = obj::prog_info_json(*p, {});
    if (!path->empty()) j["pinned"] = *path;
    progs.push_back(j);
    if (!o.json)
      std::cout << fmt::format("prog {}: {} {}  {} insns{}\n", p->id, loader::prog_type_name(p->type), name,
                               p->insns.size(), path->empty() ? "" : "  pinned " + *path);
  }
  if (o.json) std::cout << nlohmann::json{{"programs", progs}, {"maps", mapsj}}.dump() << '\n';
  if (!o.json && pin_dir.empty())
    std::cout << "note: nothing was pinned, so these objects end with this process (use --pin DIR to keep them)\n";
  return tools::kExitOk;
}

int prog_list(const ProgOptions& o) {
  Session s;
  s.scan_pins();
  nlohmann::json all = nlohmann::json::array();
  std::vector<std::uint32_t> seen;
  for (const obj::Pinned& p : s.pins) {
    if (p.kind != ObjKind::Prog) continue;
    auto pr = s.rt->get_prog(p.handle);
    if (std::find(seen.begin(), seen.end(), pr->id) != seen.end()) continue;
    seen.push_back(pr->id);
    if (o.json)
      all.push_back(obj::prog_info_json(*pr, s.pin_paths(*pr)));
    else
      std::cout << obj::prog_info_text(*pr, s.pin_paths(*pr));
  }
  if (o.json) std::cout << all.dump() << '\n';
  return tools::kExitOk;
}

int prog_show(const ProgOptions& o) {
  Session s;
  auto h = obj::resolve(s, o.target, ObjKind::Prog);
  if (!h.ok()) return obj::fail(o.json, h.error().message);
  auto p = s.rt->get_prog(*h);
  if (o.json)
    std::cout << obj::prog_info_json(*p, s.pin_paths(*p)).dump() << '\n';
  else
    std::cout << obj::prog_info_text(*p, s.pin_paths(*p));
  return tools::kExitOk;
}

// A program as the runtime holds it: by id or pin path, or the chosen
// program of an object file loaded into this invocation's runtime.
struct LoadedProg {
  std::shared_ptr<runtime::ProgObject> prog;
  std::string name;
};

Result<LoadedProg> loaded_prog(Session& s, const ProgOptions& o) {
  if (file_is_elf(o.target)) {
    auto ob = open_object(o.target);
    if (!ob.ok()) return ob.error();
    auto p = pick_program(*ob, o, o.target);
    if (!p.ok()) return p.error();
    auto loaded = s.rt->load_object(*ob);
    if (!loaded.ok()) return make_error(loaded.error().code, fmt::format("{}: load: {}", o.target, loaded.error().to_string()));
    for (const auto& [name, h] : loaded->progs)
      if (name == (*p)->name) return LoadedProg{s.rt->get_prog(h), name};
    return make_error(ENOENT, fmt::format("{}: program {} was not loaded (autoload off?)", o.target, (*p)->name));
  }
  auto h = obj::resolve(s, o.target, ObjKind::Prog);
  if (!h.ok()) return h.error();
  auto p = s.rt->get_prog(*h);
  return LoadedProg{p, p->name};
}

// One instruction as bpftool's `prog dump xlated` prints it: kernel syntax
// with decimal immediates, map references as map[id:N] / map[id:N][0]+OFF.
// `map_id(index)` gives the id of the program's index-th used map (0: none).
std::string xlated_text(const isa::Insn& in, std::size_t pc, const std::function<std::uint32_t(std::int32_t)>& map_id,
                        const abi::HelperTable* helpers = nullptr) {
  if (in.op == isa::Op::Call && helpers != nullptr) {  // bpftool: "call bpf_map_lookup_elem#1"
    if (const abi::Helper* h = helpers->find(static_cast<std::uint32_t>(in.imm)); h != nullptr && !h->name.empty())
      return fmt::format("call {}{}#{}", h->name.starts_with("bpf_") ? "" : "bpf_", h->name, in.imm);
  }
  const bool map_ld = in.op == isa::Op::LddwMapIdx || in.op == isa::Op::LddwMapFd;
  const bool map_val = in.op == isa::Op::LddwMapIdxVal || in.op == isa::Op::LddwMapValue;
  if ((map_ld || map_val) && map_id) {
    const std::uint32_t id = map_id(in.imm);
    if (id != 0) {
      if (map_ld) return fmt::format("r{} = map[id:{}]", in.dst, id);
      return fmt::format("r{} = map[id:{}][0]+{}", in.dst, id, static_cast<std::uint32_t>(in.imm_hi));
    }
  }
  assembly::DisasmOptions d;
  d.dialect = assembly::Dialect::Kernel;
  d.show_index = false;
  d.hex_imm = false;  // bpftool prints decimal
  return assembly::disassemble_one(in, pc, d);
}

int prog_dump_xlated(const ProgOptions& o) {
  std::vector<isa::Insn> insns;
  std::string name;
  std::function<std::uint32_t(std::int32_t)> map_id;
  Session s;
  auto lp = loaded_prog(s, o);
  if (lp.ok()) {
    insns = lp->prog->insns;
    name = lp->name;
    auto prog = lp->prog;
    map_id = [prog](std::int32_t idx) -> std::uint32_t {
      return idx >= 0 && static_cast<std::size_t>(idx) < prog->used_maps.size() ? prog->used_maps[static_cast<std::size_t>(idx)]->id : 0;
    };
  } else if (file_is_elf(o.target)) {
    // The runtime refused the object (e.g. a map type it lacks): the loader's
    // linked instructions, map references as the loader's map indexes.
    auto ob = open_object(o.target);
    if (!ob.ok()) return obj::fail(o.json, ob.error().message);
    auto p = pick_program(*ob, o, o.target);
    if (!p.ok()) return obj::fail(o.json, p.error().message);
    std::cerr << fmt::format("userbpf: note: {}; showing the loader's instructions (maps by object index)\n",
                             lp.error().message);
    insns = (*p)->insns;
    name = (*p)->name;
  } else {
    return obj::fail(o.json, lp.error().message);
  }
  nlohmann::json a = nlohmann::json::array();
  std::string text = name + ":\n";
  for (std::size_t i = 0; i < insns.size(); ++i) {
    if (insns[i].op == isa::Op::LddwTail) continue;
    const std::string t = xlated_text(insns[i], i, map_id, &s.rt->helper_table());
    const std::uint8_t code = isa::info(insns[i].op).opcode;
    if (o.json)
      a.push_back({{"pc", i}, {"code", fmt::format("{:#04x}", code)}, {"disasm", t}});
    else
      text += fmt::format("{:>4}: ({:02x}) {}\n", i, code, t);
  }
  if (o.json)
    std::cout << nlohmann::json{{"name", name}, {"insns", a}}.dump() << '\n';
  else
    std::cout << text;
  return tools::kExitOk;
}

// `prog dump jited`: the JIT's listing (jit::Program::disassemble), each
// block headed by the BPF instruction in kernel syntax. JSON: the listing
// split into blocks {"pc", "bpf", "asm": [lines]}; stubs after the last block
// have "pc": null.
int prog_dump_jited(const ProgOptions& o) {
  Session s(runtime::Engine::Jit);
  auto lp = loaded_prog(s, o);
  if (!lp.ok()) return obj::fail(o.json, lp.error().message);
  const auto& prog = lp->prog;
  if (!prog->jitted) return obj::fail(o.json, fmt::format("program {} was not JIT-compiled", lp->name));
  auto map_id = [&prog](std::int32_t idx) -> std::uint32_t {
    return idx >= 0 && static_cast<std::size_t>(idx) < prog->used_maps.size() ? prog->used_maps[static_cast<std::size_t>(idx)]->id : 0;
  };
  const std::string listing = prog->jitted->disassemble([&](std::size_t pc) {
    return pc < prog->insns.size() ? xlated_text(prog->insns[pc], pc, map_id, &s.rt->helper_table()) : std::string("?");
  });
  if (!o.json) {
    std::cout << fmt::format("{}: {} bytes of x86-64 code, {} BPF instructions\n", lp->name, prog->jitted->code_size(),
                             prog->insns.size())
              << listing;
    if (!listing.empty() && listing.back() != '\n') std::cout << '\n';
    return tools::kExitOk;
  }
  nlohmann::json blocks = nlohmann::json::array();
  nlohmann::json cur;
  std::size_t pos = 0;
  while (pos < listing.size()) {
    std::size_t nl = listing.find('\n', pos);
    if (nl == std::string::npos) nl = listing.size();
    const std::string line = listing.substr(pos, nl - pos);
    pos = nl + 1;
    std::size_t digits = 2;
    while (digits < line.size() && std::isdigit(static_cast<unsigned char>(line[digits])) != 0) ++digits;
    const bool header = line.starts_with("; ") && digits > 2 && digits < line.size() && line[digits] == ':';
    if (header) {
      if (!cur.is_null()) blocks.push_back(cur);
      const std::size_t text_at = line.find_first_not_of(' ', digits + 1);
      cur = {{"pc", std::stoul(line.substr(2, digits - 2))},
             {"bpf", text_at == std::string::npos ? "" : line.substr(text_at)},
             {"asm", nlohmann::json::array()}};
      continue;
    }
    if (line.empty()) continue;
    if (cur.is_null() || (line.starts_with(";") && !header)) {
      if (!cur.is_null()) blocks.push_back(cur);
      cur = {{"pc", nullptr}, {"bpf", line.starts_with(";") ? line.substr(1) : ""}, {"asm", nlohmann::json::array()}};
      if (line.starts_with(";")) continue;
    }
    cur["asm"].push_back(line);
  }
  if (!cur.is_null()) blocks.push_back(cur);
  std::cout << nlohmann::json{{"name", lp->name}, {"code_size", prog->jitted->code_size()}, {"blocks", blocks}}.dump()
            << '\n';
  return tools::kExitOk;
}

// ------------------------------------------------------------ run

using obj::Packet;
using obj::PcapIn;
using obj::PcapOut;
using obj::read_pcap;

int prog_run(const ProgOptions& o) {
  if (o.data.empty() == o.pcap_in.empty()) return obj::fail(o.json, "give exactly one of --data FILE or --pcap IN.pcap");
  auto ob = open_object(o.target);
  if (!ob.ok()) return obj::fail(o.json, ob.error().message);
  auto pick = pick_program(*ob, o, o.target);
  if (!pick.ok()) return obj::fail(o.json, pick.error().message);
  const loader::Program& lp = **pick;

  PcapIn in;
  if (!o.pcap_in.empty()) {
    auto r = read_pcap(o.pcap_in);
    if (!r.ok()) return obj::fail(o.json, r.error().message);
    in = std::move(*r);
    if (in.linktype != obj::kLinkEthernet && (lp.prog_type == BPF_PROG_TYPE_XDP || lp.prog_type == BPF_PROG_TYPE_SCHED_CLS))
      std::cerr << fmt::format("userbpf: warning: {}: link type {} is not Ethernet; packets are passed as they are\n",
                               o.pcap_in, obj::linktype_name(in.linktype));
  } else {
    auto bytes = tools::read_input(o.data);
    if (!bytes.ok()) return obj::fail(o.json, fmt::format("--data {}: {}", o.data, bytes.error().message));
    if (tools::format_from_extension(o.data) == tools::ProgramFormat::Hex) {
      const std::string_view text(reinterpret_cast<const char*>(bytes->data()), bytes->size());
      auto parsed = tools::parse_hex_text(text);
      if (!parsed.ok()) return obj::fail(o.json, tools::format_error(parsed.error(), o.data));
      *bytes = std::move(*parsed);
    }
    in.packets.push_back({std::move(*bytes), 0, 0});
  }

  Session s(o.interpret ? runtime::Engine::Interpreter : runtime::Engine::Jit);
  auto loaded = s.rt->load_object(*ob);
  if (!loaded.ok()) return obj::fail(o.json, fmt::format("{}: load: {}", o.target, loaded.error().to_string()));
  for (const auto& [name, h] : loaded->maps)  // pinned by name: keep their BTF for `map dump` / `map watch`
    if (const loader::Map* m = ob->find_map(name); m != nullptr && m->pinning != 0)
      obj::save_map_btf(*s.rt, *s.rt->get_map(h), *ob, *m);
  int handle = -1;
  for (const auto& [name, h] : loaded->progs)
    if (name == lp.name) handle = h;
  if (handle < 0)
    return obj::fail(o.json, fmt::format("{}: program {} was not loaded (autoload off?)", o.target, lp.name));

  PcapOut out;
  if (!o.pcap_out.empty()) {
    auto st = out.open(o.pcap_out, in.linktype);
    if (!st.ok()) return obj::fail(o.json, st.error().message);
  }

  const std::string engine = s.rt->get_prog(handle)->jitted ? "jit" : "interpreter";
  // --follow: every ring buffer / perf event array of the object, drained after each packet.
  obj::RecordWatcher watcher;
  if (o.follow) {
    std::shared_ptr<const struct btf> parsed;
    for (const auto& [name, h] : loaded->maps) {
      auto mo = s.rt->get_map(h);
      if (!obj::is_record_map(*mo->map)) continue;
      std::optional<obj::MapBtf> btf;
      std::uint32_t type_id = 0;
      if (!ob->btf_data().empty()) {
        auto b = loader::parse_btf(ob->btf_data());
        if (b.ok()) btf = obj::MapBtf{*b, 0, 0};
      }
      if (!o.record_type.empty()) {
        if (!btf) return obj::fail(o.json, fmt::format("--type {}: the object has no BTF", o.record_type));
        auto id = obj::find_btf_type(*btf, o.record_type);
        if (!id.ok()) return obj::fail(o.json, fmt::format("--type: {}", id.error().message));
        type_id = *id;
      }
      if (auto st = watcher.add(name, *mo->map, btf, type_id); !st.ok()) return obj::fail(o.json, st.error().message);
    }
    if (watcher.empty())
      std::cerr << fmt::format("userbpf: warning: --follow: {} has no ring buffer or perf event array map\n", o.target);
  }
  std::map<std::string, std::size_t> counts;
  std::vector<std::string> order;  // verdicts in first-seen order
  nlohmann::json pj = nlohmann::json::array();
  std::uint64_t total_ns = 0;
  if (!o.json)
    std::cout << fmt::format("{}: {} program {} (SEC(\"{}\")), {} packet{}, engine {}\n", o.target,
                             loader::prog_type_name(lp.prog_type), lp.name, lp.section, in.packets.size(),
                             in.packets.size() == 1 ? "" : "s", engine);
  for (std::size_t i = 0; i < in.packets.size(); ++i) {
    const Packet& pk = in.packets[i];
    runtime::TestRunArgs args;
    args.data_in = pk.bytes;
    args.repeat = o.repeat;
    auto r = s.rt->test_run(handle, args);
    const std::vector<std::string> trace = s.trace.take();
    std::string verdict;
    nlohmann::json j = {{"index", i}, {"len", pk.bytes.size()}};
    if (!r.ok()) {
      verdict = "error";
      j["error"] = r.error().to_string();
      j["errno"] = r.error().code;
      if (!o.json)
        std::cout << fmt::format("packet {:>4}: {:>4} bytes  error: {} ({})\n", i, pk.bytes.size(), r.error().to_string(),
                                 std::strerror(r.error().code));
      if (!o.pcap_out.empty()) out.write(pk.bytes, pk);  // unchanged
    } else {
      verdict = verdict_name(lp.prog_type, r->retval);
      total_ns += r->duration_ns;
      const bool changed = r->data_out != pk.bytes;
      j["retval"] = r->retval;
      j["verdict"] = verdict;
      j["duration_ns"] = r->duration_ns;
      j["len_out"] = r->data_out.size();
      j["modified"] = changed;
      if (!r->redirect.empty()) j["redirect"] = r->redirect;
      if (!o.json)
        std::cout << fmt::format("packet {:>4}: {:>4} bytes  {}{}{}\n", i, pk.bytes.size(), verdict,
                                 r->redirect.empty() ? "" : " -> " + r->redirect,
                                 changed ? fmt::format("  (packet modified, {} bytes out)", r->data_out.size()) : "");
      if (!o.pcap_out.empty()) out.write(r->data_out, pk);
    }
    j["trace"] = trace;
    if (!o.json)
      for (const std::string& t : trace) std::cout << "    trace: " << t << '\n';
    if (o.follow) {
      watcher.drain();
      nlohmann::json rj = nlohmann::json::array();
      for (const obj::Record& rec : watcher.take()) {
        if (o.json)
          rj.push_back(obj::record_json(rec));
        else
          std::cout << "    record: " << obj::record_text(rec) << '\n';
      }
      j["records"] = rj;
    }
    if (counts[verdict]++ == 0) order.push_back(verdict);
    pj.push_back(j);
  }

  // The maps' contents after the run.
  nlohmann::json mj = nlohmann::json::array();
  std::string maps_text;
  std::shared_ptr<const struct btf> parsed_btf;
  if (!o.no_maps) {
    for (const auto& [name, h] : loaded->maps) {
      const bool named = std::find(o.maps.begin(), o.maps.end(), name) != o.maps.end();
      if (!o.maps.empty() && !named) continue;
      auto mo = s.rt->get_map(h);
      if (mo->map->frozen() && !named) continue;  // .rodata: constants, not results (name it to see it)
      const auto entries = obj::map_entries(*mo->map);
      const loader::Map* lm = ob->find_map(name);
      const auto btf = lm != nullptr ? obj::loader_map_btf(*ob, *lm, parsed_btf) : std::nullopt;
      const obj::MapBtf* bp = btf ? &*btf : nullptr;
      nlohmann::json j = obj::map_info_json(*mo, {});
      j["name"] = name;
      j["entries"] = obj::map_entries_json(*mo->map, entries, bp);
      mj.push_back(j);
      maps_text += fmt::format("map {} ({}, key {}B, value {}B):\n", name, loader::map_type_name(mo->map->type()),
                               mo->map->key_size(), mo->map->value_size());
      maps_text += obj::map_entries_text(*mo->map, entries, bp);
    }
    for (const std::string& want : o.maps)
      if (std::none_of(loaded->maps.begin(), loaded->maps.end(), [&](const auto& m) { return m.first == want; }))
        std::cerr << fmt::format("userbpf: warning: --maps: the object has no map '{}'\n", want);
  }

  if (o.json) {
    nlohmann::json summary = nlohmann::json::object();
    for (const std::string& v : order) summary[v] = counts[v];
    std::cout << nlohmann::json{{"object", o.target},
                                {"program", lp.name},
                                {"section", lp.section},
                                {"type", loader::prog_type_name(lp.prog_type)},
                                {"engine", engine},
                                {"repeat", o.repeat},
                                {"packets", pj},
                                {"summary", summary},
                                {"maps", mj}}
                     .dump(2)
              << '\n';
  } else {
    std::cout << "summary:";
    for (const std::string& v : order) std::cout << fmt::format(" {} {}", v, counts[v]);
    const std::size_t ok = in.packets.size() - (counts.count("error") != 0 ? counts["error"] : 0);
    if (ok != 0) std::cout << fmt::format("  (average {} ns per run)", total_ns / ok);
    std::cout << '\n';
    if (!o.pcap_out.empty()) std::cout << fmt::format("wrote {} packets to {}\n", in.packets.size(), o.pcap_out);
    std::cout << maps_text;
  }
  return tools::kExitOk;
}

}  // namespace

void register_prog_commands(Registry& r) {
  auto o = std::make_shared<ProgOptions>();
  CLI::App& g = r.group("prog", "Load, inspect and run the programs of BPF objects (.bpf.o)");
  g.footer("Programs are found by pin path (/sys/fs/bpf/NAME or a path under the pin directory) or by the id\n"
           "that `prog list` shows in this invocation. Pin directory: $USERBPF_PIN_DIR, else\n"
           "$XDG_RUNTIME_DIR/userbpf, else /tmp/userbpf-$UID.");
  auto json_flag = [o](CLI::App& c) { c.add_flag("--json,-j", o->json, "JSON output (as bpftool -j)"); };
  auto choose = [o](CLI::App& c) {
    c.add_option("--section", o->section, "the program in this ELF section (e.g. xdp)");
    c.add_option("--program", o->program, "the program with this function name");
  };

  CLI::App& load = r.add(g, "load", "Load every autoload program of OBJ and its maps", [o] { return prog_load(*o); });
  load.add_option("OBJ", o->target, "BPF object file (clang -target bpf)")->required();
  load.add_option("--pin", o->pin, "pin programs and maps as DIR/NAME (DIR in the pin directory or /sys/fs/bpf/...)");
  load.add_option("--kconfig", g_kconfig, "kernel config for .kconfig externs (default: /boot/config-$(uname -r), /proc/config.gz)");
  json_flag(load);

  CLI::App& list = r.add(g, "list", "List the pinned programs", [o] { return prog_list(*o); });
  json_flag(list);
  CLI::App& show = r.add(g, "show", "Show one program", [o] { return prog_show(*o); });
  show.add_option("PROG", o->target, "program id or pin path")->required();
  json_flag(show);

  CLI::App* dump_g = g.add_subcommand("dump", "Dump a program's instructions");
  dump_g->require_subcommand(1);
  CLI::App& xl = r.add(*dump_g, "xlated", "The instructions as loaded, in kernel (bpftool) syntax",
                       [o] { return prog_dump_xlated(*o); });
  xl.add_option("PROG", o->target, "program id, pin path, or BPF object file")->required();
  choose(xl);
  json_flag(xl);
  CLI::App& jd = r.add(*dump_g, "jited", "The x86-64 machine code, each block headed by its BPF instruction",
                       [o] { return prog_dump_jited(*o); });
  jd.add_option("PROG", o->target, "program id, pin path, or BPF object file")->required();
  choose(jd);
  json_flag(jd);

  CLI::App& run = r.add(g, "run",
                        "Run a program of OBJ over packets (PROG_TEST_RUN): verdicts, output packets, trace, maps",
                        [o] { return prog_run(*o); });
  run.add_option("OBJ", o->target, "BPF object file (clang -target bpf)")->required();
  choose(run);
  auto* data = run.add_option("--data", o->data, "one packet: a raw file, or hex text if FILE ends in .hex");
  auto* pcap = run.add_option("--pcap", o->pcap_in, "packets from a pcap file");
  data->excludes(pcap);
  run.add_option("--out", o->pcap_out, "write the packets as the program left them to this pcap");
  run.add_option("--repeat", o->repeat, "run each packet N times (average duration)")->check(CLI::Range(1u, 100000000u));
  run.add_option("--maps", o->maps, "print only these maps at the end (names; frozen .rodata maps only when named)")->delimiter(',');
  run.add_flag("--no-maps", o->no_maps, "do not print the maps at the end");
  run.add_option("--kconfig", g_kconfig, "kernel config for .kconfig externs (default: /boot/config-$(uname -r), /proc/config.gz)");
  run.add_flag("--follow", o->follow, "print ring buffer / perf event array records after each packet");
  run.add_option("--type", o->record_type, "with --follow: decode records as this BTF type (e.g. 'struct event')");
  auto* jit = run.add_flag("--jit", o->jit, "run in the JIT (the default)");
  auto* interp = run.add_flag("--interpret", o->interpret, "run in the runtime's interpreter instead of the JIT");
  jit->excludes(interp);
  json_flag(run);
  run.footer("Programs run in the x86-64 JIT by default (the same results as the interpreter); --interpret opts out.");
}

}  // namespace userbpf::cli
