// load_object: a loader::Object (a clang-built .bpf.o, opened) into runtime
// objects, in libbpf's order: maps (create or reuse pins, initial data,
// freeze), programs (fd_array = the object's maps in order), program-array
// initialisers. Handles of everything made are closed again on failure.
// As libbpf, the object's BTF (after the loader's DATASEC fix-up) is loaded
// once (BTF_LOAD) and each program is loaded with prog_btf_fd and its
// func_info / line_info records: the same PROG_LOAD path as the bpf()
// command (btf_info.cpp checks them and makes the verifier's signatures).
#include <fmt/format.h>
#include <linux/bpf.h>

#include <algorithm>

#include "loader/loader.hpp"
#include "maps/registry.hpp"
#include "runtime/runtime.hpp"
#include "verifier/object_config.hpp"

namespace userbpf::runtime {

namespace {

// A kernel object name from a loader name: at most 15 of [A-Za-z0-9_.].
std::string kernel_name(std::string_view name) {
  std::string s(name.substr(0, BPF_OBJ_NAME_LEN - 1));
  for (char& c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.')) c = '_';
  return s;
}

constexpr std::uint32_t kPinByName = 1;  // LIBBPF_PIN_BY_NAME

}  // namespace

Result<LoadedObject> Runtime::load_object(const loader::Object& obj) {
  LoadedObject out;
  int btf_fd = -1;  // the object's BTF, closed at the end (programs and maps keep it by id)
  auto cleanup = [&](Error e) -> Error {
    for (auto& [n, h] : out.progs) (void)close(h);
    for (auto& [n, h] : out.maps) (void)close(h);
    if (btf_fd >= 0) (void)close(btf_fd);
    return e;
  };
  std::uint32_t btf_id = 0;
  if (!obj.btf_data().empty()) {
    auto b = btf_load(obj.btf_data());
    if (!b) {
      Error e = b.error();
      e.where = fmt::format("{}: BTF", obj.name());
      return e;
    }
    btf_fd = *b;
    btf_id = get_btf(btf_fd)->id;
  }
  std::vector<int> fds(obj.maps().size(), -1);
  for (std::size_t i = 0; i < obj.maps().size(); ++i) {
    const loader::Map& lm = obj.maps()[i];
    const std::string where = fmt::format("{}: map '{}'", obj.name(), lm.name);
    if (lm.origin == loader::MapOrigin::Inner) continue;  // template of a map-in-map
    if (maps::find_map_type(lm.type) == nullptr)
      return cleanup(make_error(EINVAL, fmt::format("{}: map type {} ({}) is not supported yet", where, lm.type,
                                                    loader::map_type_name(lm.type))));
    maps::MapSpec s;
    s.type = lm.type;
    s.key_size = lm.key_size;
    s.value_size = lm.value_size;
    s.max_entries = lm.max_entries;
    s.map_flags = lm.map_flags;
    s.map_extra = lm.map_extra;
    s.btf_key_type_id = lm.btf_key_type_id;
    s.btf_value_type_id = lm.btf_value_type_id;
    s.spin_lock_off = verifier::spin_lock_offset(obj.btf(), lm.btf_value_type_id);
    s.timer_off = verifier::timer_offset(obj.btf(), lm.btf_value_type_id);
    s.name = kernel_name(lm.name);
    const std::string pin_path = pin_dir_ + "/" + lm.name;
    int h = -1;
    if (lm.pinning == kPinByName) {
      if (auto existing = get_pinned(pin_path)) {
        auto m = get_map(*existing);
        if (!m || m->map->type() != s.type || m->map->key_size() != s.key_size ||
            m->map->value_size() != s.value_size || m->map->max_entries() != s.max_entries) {
          (void)close(*existing);
          return cleanup(make_error(EINVAL, fmt::format("{}: pinned map at '{}' does not match the definition",
                                                        where, pin_path)));
        }
        h = *existing;
      }
    }
    if (h < 0) {
      auto created = map_create(s);
      if (!created) {
        Error e = created.error();
        e.message = fmt::format("{}: {}", where, e.message);
        return cleanup(e);
      }
      h = *created;
      auto m = get_map(h);
      if (lm.btf_key_type_id != 0 || lm.btf_value_type_id != 0) m->btf_id = btf_id;
      if (!lm.initial_data.empty()) {
        const std::uint32_t zero = 0;
        std::vector<std::uint8_t> v(m->map->value_size(), 0);
        std::copy_n(lm.initial_data.begin(), std::min(v.size(), lm.initial_data.size()), v.begin());
        if (const int e = m->map->update(&zero, v.data(), BPF_ANY); e != 0)
          return cleanup(make_error(e, fmt::format("{}: initial data not stored", where)));
      }
      if (lm.frozen) (void)m->map->freeze();
      if (lm.pinning == kPinByName) {
        if (auto st = pin(h, pin_path); !st) {
          Error e = st.error();
          e.message = fmt::format("{}: {}", where, e.message);
          out.maps.emplace_back(lm.name, h);
          return cleanup(e);
        }
      }
    }
    fds[i] = h;
    out.maps.emplace_back(lm.name, h);
  }
  for (const loader::Program& lp : obj.programs()) {
    if (!lp.autoload) continue;
    const auto raw = isa::encode(lp.insns);
    ProgSpec s;
    s.type = lp.prog_type;
    s.expected_attach_type = lp.expected_attach_type;
    s.prog_flags = lp.prog_flags;
    s.kern_version = obj.kernel_version();
    s.name = kernel_name(lp.name);
    s.license = obj.license();
    s.insns = raw;
    s.fd_array = fds;
    s.log_level = 1;
    std::vector<bpf_func_info> func_info;
    for (const loader::FuncInfo& f : lp.func_info)
      func_info.push_back(bpf_func_info{static_cast<std::uint32_t>(f.insn), f.type_id});
    std::vector<bpf_line_info> line_info;
    for (const loader::LineInfo& l : lp.line_info)
      line_info.push_back(bpf_line_info{static_cast<std::uint32_t>(l.insn), l.file_name_off, l.line_off,
                                        (l.line << 10) | (l.column & 0x3ff)});
    if (btf_fd >= 0) {
      s.btf_fd = static_cast<std::uint32_t>(btf_fd);
      s.func_info = func_info.data();
      s.func_info_rec_size = sizeof(bpf_func_info);
      s.func_info_cnt = static_cast<std::uint32_t>(func_info.size());
      s.line_info = line_info.data();
      s.line_info_rec_size = sizeof(bpf_line_info);
      s.line_info_cnt = static_cast<std::uint32_t>(line_info.size());
    }
    std::string log;
    auto h = prog_load(s, &log);
    out.log += fmt::format("prog '{}':\n{}", lp.name, log);
    if (!h) {
      Error e = h.error();
      e.where = fmt::format("{}: prog '{}' (section '{}')", obj.name(), lp.name, lp.section);
      return cleanup(e);
    }
    out.progs.emplace_back(lp.name, *h);
  }
  // program arrays from __array(values, ...) initialisers
  for (std::size_t i = 0; i < obj.maps().size(); ++i) {
    const loader::Map& lm = obj.maps()[i];
    if (lm.type != BPF_MAP_TYPE_PROG_ARRAY || fds[i] < 0) continue;
    for (std::size_t slot = 0; slot < lm.init_slots.size(); ++slot) {
      if (lm.init_slots[slot].empty()) continue;
      auto it = std::find_if(out.progs.begin(), out.progs.end(),
                             [&](const auto& p) { return p.first == lm.init_slots[slot]; });
      if (it == out.progs.end())
        return cleanup(make_error(EINVAL, fmt::format("{}: map '{}' slot {}: program '{}' was not loaded", obj.name(),
                                                      lm.name, slot, lm.init_slots[slot])));
      const auto key = static_cast<std::uint32_t>(slot);
      const std::int32_t value = it->second;
      if (const int e = map_update(*get_map(fds[i]), &key, &value, BPF_ANY); e != 0)
        return cleanup(make_error(e, fmt::format("{}: map '{}' slot {}: cannot store program '{}'", obj.name(),
                                                 lm.name, slot, lm.init_slots[slot])));
    }
  }
  if (btf_fd >= 0) (void)close(btf_fd);
  return out;
}

}  // namespace userbpf::runtime
