// The bpf() command dispatcher: union bpf_attr in, kernel errno out.
//
// Like the kernel's __sys_bpf: an attr larger than ours must be zero beyond
// our size (E2BIG); a smaller one is zero-extended; the bytes after each
// command's last field must be zero (CHECK_ATTR, EINVAL). Handlers return
// the result (>= 0) or -errno; outputs are written back into the caller's
// attr (only within `size` bytes). Each command is a row of kCommands
// (command number, last field end, handler).
#include <fmt/format.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>

#include "maps/registry.hpp"
#include "runtime/runtime.hpp"
#include "verifier/object_config.hpp"

namespace userbpf::runtime {

namespace {

#define UBPF_ATTR_END(field) (offsetof(union bpf_attr, field) + sizeof(((union bpf_attr*)nullptr)->field))

template <class T>
T* uptr(std::uint64_t v) {
  return reinterpret_cast<T*>(static_cast<std::uintptr_t>(v));
}

struct Call {
  Runtime& rt;
  union bpf_attr& attr;  // our zero-extended copy
  union bpf_attr* uattr; // the caller's
  unsigned size;

  // Writes an output field back to the caller's attr if it is inside `size`.
  template <class F>
  void put(std::size_t offset, const F& value) const {
    if (offset + sizeof(F) <= size) std::memcpy(reinterpret_cast<std::uint8_t*>(uattr) + offset, &value, sizeof(F));
  }
};

int err(const Error& e) { return -e.code; }

// A map handle (EBADF: not open; EINVAL: not a map), as __bpf_map_get.
int get_map(const Call& c, std::uint32_t fd, std::shared_ptr<MapObject>& out) {
  auto o = c.rt.get(static_cast<int>(fd));
  if (!o) return -EBADF;
  if (o->kind != ObjKind::Map) return -EINVAL;
  out = std::static_pointer_cast<MapObject>(o);
  return 0;
}

int cmd_map_create(Call& c) {
  const auto& a = c.attr;
  maps::MapSpec s;
  s.type = a.map_type;
  s.key_size = a.key_size;
  s.value_size = a.value_size;
  s.max_entries = a.max_entries;
  s.map_flags = a.map_flags;
  s.numa_node = a.numa_node;
  s.map_extra = a.map_extra;
  s.btf_key_type_id = a.btf_key_type_id;
  s.btf_value_type_id = a.btf_value_type_id;
  if (strnlen(a.map_name, sizeof a.map_name) == sizeof a.map_name) return -EINVAL;
  s.name = a.map_name;
  if (a.map_ifindex != 0) return -EOPNOTSUPP;  // no offload devices
  std::uint32_t btf_id = 0;
  if (a.btf_fd != 0 || a.btf_key_type_id != 0 || a.btf_value_type_id != 0) {
    auto btf = c.rt.get_btf(static_cast<int>(a.btf_fd));
    if (!btf) return c.rt.get(static_cast<int>(a.btf_fd)) ? -EINVAL : -EBADF;
    btf_id = btf->id;
    s.spin_lock_off = verifier::spin_lock_offset(btf->btf.get(), a.btf_value_type_id);
    s.timer_off = verifier::timer_offset(btf->btf.get(), a.btf_value_type_id);
  }
  std::shared_ptr<MapObject> inner;  // maps of maps: the template (bpf_map_meta_alloc)
  if (a.map_type == BPF_MAP_TYPE_ARRAY_OF_MAPS || a.map_type == BPF_MAP_TYPE_HASH_OF_MAPS) {
    if (int e = get_map(c, a.inner_map_fd, inner)) return e;
    s.inner = inner->map.get();
  }
  auto h = c.rt.map_create(s);
  if (!h) return err(h.error());
  if (btf_id != 0) c.rt.get_map(*h)->btf_id = btf_id;
  return *h;
}

// __bpf_copy_key: maps without keys (queue, stack, bloom filter, ring
// buffer) want a NULL key (EINVAL otherwise); the others a key (EFAULT).
int check_key(const MapObject& m, std::uint64_t key) {
  if (m.map->key_size() == 0) return key != 0 ? -EINVAL : 0;
  return key == 0 ? -EFAULT : 0;
}

int cmd_map_lookup(Call& c) {
  std::shared_ptr<MapObject> m;
  if (int e = get_map(c, c.attr.map_fd, m)) return e;
  if (int e = check_key(*m, c.attr.key)) return e;
  if (c.attr.value == 0) return -EFAULT;
  const int e = m->map->lookup(uptr<const void>(c.attr.key), uptr<void>(c.attr.value), c.attr.flags);
  return -e;
}

int cmd_map_update(Call& c) {
  std::shared_ptr<MapObject> m;
  if (int e = get_map(c, c.attr.map_fd, m)) return e;
  if (int e = check_key(*m, c.attr.key)) return e;
  if (c.attr.value == 0) return -EFAULT;
  return -c.rt.map_update(*m, uptr<const void>(c.attr.key), uptr<const void>(c.attr.value), c.attr.flags);
}

int cmd_map_delete(Call& c) {
  std::shared_ptr<MapObject> m;
  if (int e = get_map(c, c.attr.map_fd, m)) return e;
  if (int e = check_key(*m, c.attr.key)) return e;
  return -c.rt.map_delete(*m, uptr<const void>(c.attr.key));
}

int cmd_map_next_key(Call& c) {
  std::shared_ptr<MapObject> m;
  if (int e = get_map(c, c.attr.map_fd, m)) return e;
  if (c.attr.next_key == 0) return -EFAULT;
  return -m->map->get_next_key(c.attr.key != 0 ? uptr<const void>(c.attr.key) : nullptr,
                               uptr<void>(c.attr.next_key));
}

int cmd_map_lookup_and_delete(Call& c) {
  std::shared_ptr<MapObject> m;
  if (int e = get_map(c, c.attr.map_fd, m)) return e;
  if (int e = check_key(*m, c.attr.key)) return e;
  if (c.attr.value == 0) return -EFAULT;
  return -m->map->lookup_and_delete(uptr<const void>(c.attr.key), uptr<void>(c.attr.value), c.attr.flags);
}

int cmd_map_freeze(Call& c) {
  std::shared_ptr<MapObject> m;
  if (int e = get_map(c, c.attr.map_fd, m)) return e;
  return -m->map->freeze();
}

int batch(Call& c, int cmd) {
  const auto& b = c.attr.batch;
  std::shared_ptr<MapObject> m;
  if (int e = get_map(c, b.map_fd, m)) return e;
  // lookups check flags; the generic update/delete batches do not look at it
  const bool lookup = cmd == BPF_MAP_LOOKUP_BATCH || cmd == BPF_MAP_LOOKUP_AND_DELETE_BATCH;
  if (b.elem_flags != 0) return -EINVAL;  // only BPF_F_LOCK is defined, and no value has a spin lock
  if (lookup && b.flags != 0) return -EINVAL;
  std::uint32_t count = b.count;
  int e = 0;
  if (lookup) {
    if (count != 0 && (b.keys == 0 || b.values == 0 || b.out_batch == 0)) return -EFAULT;
    if ((m->map->desc().ops & maps::kOpKeyedBatch) != 0 && cmd == BPF_MAP_LOOKUP_BATCH) {
      // generic_map_lookup_batch: in_batch / out_batch hold a key
      e = m->map->lookup_batch_keyed(b.in_batch != 0 ? uptr<const void>(b.in_batch) : nullptr,
                                     uptr<void>(b.out_batch), uptr<void>(b.keys), uptr<void>(b.values), count);
      if (e == maps::kENOTSUPP || e == EPERM) return -e;
      c.put(offsetof(union bpf_attr, batch.count), count);
      return -e;
    }
    std::uint32_t token = 0;
    const bool first = b.in_batch == 0;
    if (!first) std::memcpy(&token, uptr<const void>(b.in_batch), 4);
    e = m->map->lookup_batch(first, token, uptr<void>(b.keys), uptr<void>(b.values), count,
                             cmd == BPF_MAP_LOOKUP_AND_DELETE_BATCH);
    if (e == maps::kENOTSUPP || e == EPERM) return -e;
    if (e == 0 || e == ENOENT) {
      if (count != 0 || e == 0) std::memcpy(uptr<void>(b.out_batch), &token, 4);
    }
  } else if (cmd == BPF_MAP_UPDATE_BATCH) {
    if (count != 0 && (b.keys == 0 || b.values == 0)) return -EFAULT;
    if (m->map->desc().kind == maps::MapKind::ProgArray) return -maps::kENOTSUPP;
    e = m->map->update_batch(uptr<const void>(b.keys), uptr<const void>(b.values), count, b.elem_flags);
    if (e == maps::kENOTSUPP) return -e;
  } else {
    if (count != 0 && b.keys == 0) return -EFAULT;
    e = m->map->delete_batch(uptr<const void>(b.keys), count);
    if (e == maps::kENOTSUPP) return -e;
  }
  c.put(offsetof(union bpf_attr, batch.count), count);
  return -e;
}
int cmd_lookup_batch(Call& c) { return batch(c, BPF_MAP_LOOKUP_BATCH); }
int cmd_lookup_and_delete_batch(Call& c) { return batch(c, BPF_MAP_LOOKUP_AND_DELETE_BATCH); }
int cmd_update_batch(Call& c) { return batch(c, BPF_MAP_UPDATE_BATCH); }
int cmd_delete_batch(Call& c) { return batch(c, BPF_MAP_DELETE_BATCH); }

// The verifier log buffer (kernel 6.4+ rules: bpf_verifier_log_attr_valid,
// rotating by default, BPF_LOG_FIXED keeps the start; ENOSPC if truncated).
constexpr std::uint32_t kLogMask = 1 | 2 | 4 | 8;
constexpr std::uint32_t kLogFixed = 8;

int write_log(const std::string& log, std::uint32_t level, char* buf, std::uint32_t size) {
  if (buf == nullptr || size == 0 || level == 0) return 0;
  const std::size_t cap = size - 1;
  if (log.size() <= cap) {
    std::memcpy(buf, log.data(), log.size());
    buf[log.size()] = '\0';
    return 0;
  }
  if ((level & kLogFixed) != 0) std::memcpy(buf, log.data(), cap);
  else std::memcpy(buf, log.data() + (log.size() - cap), cap);
  buf[cap] = '\0';
  return -ENOSPC;
}

int cmd_prog_load(Call& c) {
  const auto& a = c.attr;
  if (a.insn_cnt == 0 || a.insn_cnt > c.rt.limits().max_insns) return -E2BIG;
  if (a.insns == 0) return -EFAULT;
  if ((a.log_buf != 0) != (a.log_size != 0) || (a.log_buf != 0 && a.log_level == 0) ||
      (a.log_level & ~kLogMask) != 0 || a.log_size > (0xffffffffu >> 2))
    return -EINVAL;
  if (a.prog_ifindex != 0) return -EOPNOTSUPP;
  ProgSpec s;
  s.type = a.prog_type;
  s.expected_attach_type = a.expected_attach_type;
  s.prog_flags = a.prog_flags;
  s.kern_version = a.kern_version;
  if (strnlen(a.prog_name, sizeof a.prog_name) == sizeof a.prog_name) return -EINVAL;
  s.name = a.prog_name;
  if (a.license != 0) s.license = std::string(uptr<const char>(a.license), strnlen(uptr<const char>(a.license), 128));
  else s.license.clear();
  s.insns = {uptr<const isa::RawInsn>(a.insns), a.insn_cnt};
  std::vector<int> fds;
  if (a.fd_array != 0) {
    // the kernel reads fd_array lazily, by index; we take as many as the
    // instructions could refer to (bounded by insn_cnt)
    std::uint32_t max_idx = 0;
    for (const isa::RawInsn& r : s.insns)
      if (r.src() == isa::kPseudoMapIdx || r.src() == isa::kPseudoMapIdxValue)
        max_idx = std::max(max_idx, static_cast<std::uint32_t>(r.imm) + 1);
    fds.assign(uptr<const int>(a.fd_array), uptr<const int>(a.fd_array) + std::min(max_idx, a.insn_cnt));
    s.fd_array = fds;
  }
  s.btf_fd = a.prog_btf_fd;
  s.func_info = uptr<const void>(a.func_info);
  s.func_info_rec_size = a.func_info_rec_size;
  s.func_info_cnt = a.func_info_cnt;
  s.line_info = uptr<const void>(a.line_info);
  s.line_info_rec_size = a.line_info_rec_size;
  s.line_info_cnt = a.line_info_cnt;
  std::uint32_t func_rec_out = 0, line_rec_out = 0;  // written back on E2BIG, as the kernel
  s.func_info_rec_size_out = &func_rec_out;
  s.line_info_rec_size_out = &line_rec_out;
  s.log_level = a.log_level;
  std::string log;
  auto h = c.rt.prog_load(s, &log);
  if (func_rec_out != 0) c.put(offsetof(union bpf_attr, func_info_rec_size), func_rec_out);
  if (line_rec_out != 0) c.put(offsetof(union bpf_attr, line_info_rec_size), line_rec_out);
  const int log_err = write_log(log, a.log_level, uptr<char>(a.log_buf), a.log_size);
  if (log_err != 0) {
    if (h) (void)c.rt.close(*h);
    return log_err;
  }
  if (!h) return err(h.error());
  return *h;
}

int cmd_prog_test_run(Call& c) {
  const auto& t = c.attr.test;
  auto p = c.rt.get(static_cast<int>(t.prog_fd));
  if (!p) return -EBADF;
  if (p->kind != ObjKind::Prog) return -EINVAL;
  if ((t.data_size_in != 0 && t.data_in == 0) || (t.ctx_size_in != 0 && t.ctx_in == 0)) return -EINVAL;
  if ((t.ctx_size_out != 0 && t.ctx_out == 0) || (t.ctx_in == 0 && t.ctx_size_in != 0)) return -EINVAL;
  if (t.batch_size != 0) return -EINVAL;
  TestRunArgs args;
  args.data_in = {uptr<const std::uint8_t>(t.data_in), t.data_size_in};
  args.ctx_in = {uptr<const std::uint8_t>(t.ctx_in), t.ctx_size_in};
  args.repeat = t.repeat;
  args.flags = t.flags;
  args.cpu = t.cpu;
  args.ctx_given = t.ctx_in != 0 || t.ctx_out != 0;
  args.data_out_given = t.data_out != 0;
  args.ctx_out_given = t.ctx_out != 0;
  args.duration_given = t.duration != 0;
  auto r = c.rt.test_run(static_cast<int>(t.prog_fd), args);
  if (!r) return err(r.error());
  int e = 0;
  const auto size = static_cast<std::uint32_t>(r->data_out.size());
  if (t.data_out != 0) {
    std::uint32_t copy = size;
    if (t.data_size_out != 0 && copy > t.data_size_out) {
      copy = t.data_size_out;
      e = -ENOSPC;
    }
    std::memcpy(uptr<void>(t.data_out), r->data_out.data(), copy);
  }
  if (t.ctx_out != 0 && !r->ctx_out.empty()) {
    auto csize = static_cast<std::uint32_t>(r->ctx_out.size());
    std::uint32_t copy = csize;
    if (copy > t.ctx_size_out) {
      copy = t.ctx_size_out;
      e = -ENOSPC;
    }
    std::memcpy(uptr<void>(t.ctx_out), r->ctx_out.data(), copy);
    c.put(offsetof(union bpf_attr, test.ctx_size_out), csize);
  }
  c.put(offsetof(union bpf_attr, test.data_size_out), size);
  c.put(offsetof(union bpf_attr, test.retval), r->retval);
  c.put(offsetof(union bpf_attr, test.duration), r->duration_ns);
  return e;
}

int cmd_obj_pin(Call& c) {
  if (c.attr.file_flags != 0) return -EINVAL;
  if (c.attr.pathname == 0) return -EFAULT;
  auto s = c.rt.pin(static_cast<int>(c.attr.bpf_fd), uptr<const char>(c.attr.pathname));
  return s ? 0 : err(s.error());
}

int cmd_obj_get(Call& c) {
  if (c.attr.bpf_fd != 0 || (c.attr.file_flags & ~std::uint32_t{BPF_F_RDONLY | BPF_F_WRONLY}) != 0) return -EINVAL;
  if ((c.attr.file_flags & BPF_F_RDONLY) != 0 && (c.attr.file_flags & BPF_F_WRONLY) != 0) return -EINVAL;
  if (c.attr.pathname == 0) return -EFAULT;
  auto h = c.rt.get_pinned(uptr<const char>(c.attr.pathname));
  return h ? *h : err(h.error());
}

int next_id(Call& c, ObjKind k) {
  const std::uint32_t id = c.rt.next_id(k, c.attr.start_id);
  if (id == 0) return -ENOENT;
  c.put(offsetof(union bpf_attr, next_id), id);
  return 0;
}
int cmd_prog_next_id(Call& c) { return next_id(c, ObjKind::Prog); }
int cmd_map_next_id(Call& c) { return next_id(c, ObjKind::Map); }
int cmd_btf_next_id(Call& c) { return next_id(c, ObjKind::Btf); }

int fd_by_id(Call& c, ObjKind k) {
  auto o = c.rt.by_id(k, c.attr.start_id);
  if (!o) return -ENOENT;
  auto h = c.rt.new_handle(std::move(o));
  return h ? *h : err(h.error());
}
int cmd_prog_fd_by_id(Call& c) { return fd_by_id(c, ObjKind::Prog); }
int cmd_map_fd_by_id(Call& c) {
  const std::uint32_t f = c.attr.open_flags;
  if ((f & ~std::uint32_t{BPF_F_RDONLY | BPF_F_WRONLY}) != 0 || f == (BPF_F_RDONLY | BPF_F_WRONLY)) return -EINVAL;
  return fd_by_id(c, ObjKind::Map);
}
int cmd_btf_fd_by_id(Call& c) { return fd_by_id(c, ObjKind::Btf); }

// Copies `info` (of type T) out as the kernel does: at most info_len bytes,
// info_len updated; bytes of a larger caller struct must be zero (E2BIG).
template <class T>
int finish_info(Call& c, const T& info, std::uint32_t len) {
  std::memcpy(uptr<void>(c.attr.info.info), &info, len);
  c.put(offsetof(union bpf_attr, info.info_len), len);
  return 0;
}

template <class T>
int read_info(Call& c, T& info, std::uint32_t& len) {
  len = c.attr.info.info_len;
  if (c.attr.info.info == 0) return -EFAULT;
  const auto* u = uptr<const std::uint8_t>(c.attr.info.info);
  if (len > sizeof(T))
    for (std::size_t i = sizeof(T); i < len; ++i)
      if (u[i] != 0) return -E2BIG;
  len = std::min<std::uint32_t>(len, sizeof(T));
  std::memset(&info, 0, sizeof info);
  std::memcpy(&info, u, len);
  return 0;
}

int prog_info(Call& c, ProgObject& p) {
  bpf_prog_info info;
  std::uint32_t len = 0;
  if (int e = read_info(c, info, len)) return e;
  const bpf_prog_info in = info;
  std::vector<std::shared_ptr<MapObject>> maps = p.used_maps;
  {
    std::lock_guard lock(p.bind_mu);
    maps.insert(maps.end(), p.bound_maps.begin(), p.bound_maps.end());
  }
  std::memset(&info, 0, sizeof info);
  info.type = p.type;
  info.id = p.id;
  std::memcpy(info.tag, p.tag, sizeof info.tag);
  info.load_time = p.load_time_ns;
  info.created_by_uid = p.uid;
  std::memcpy(info.name, p.name.data(), std::min(p.name.size(), sizeof info.name - 1));
  info.gpl_compatible = p.license == "GPL" || p.license == "GPL v2" || p.license == "Dual MIT/GPL" ||
                        p.license == "Dual BSD/GPL" || p.license == "Dual MPL/GPL" ||
                        p.license == "GPL and additional rights";
  info.btf_id = p.btf_id;
  info.verified_insns = static_cast<std::uint32_t>(p.insns.size());
  // set_info_rec_size: a record size given must be the kernel's
  if ((in.nr_func_info != 0 || in.func_info_rec_size != 0) && in.func_info_rec_size != sizeof(bpf_func_info))
    return -EINVAL;
  if ((in.nr_line_info != 0 || in.line_info_rec_size != 0) && in.line_info_rec_size != sizeof(bpf_line_info))
    return -EINVAL;
  if ((in.nr_jited_line_info != 0 || in.jited_line_info_rec_size != 0) && in.jited_line_info_rec_size != 8)
    return -EINVAL;
  info.func_info_rec_size = sizeof(bpf_func_info);
  info.line_info_rec_size = sizeof(bpf_line_info);
  info.jited_line_info_rec_size = 8;
  info.nr_func_info = static_cast<std::uint32_t>(p.func_info.size());
  if (info.nr_func_info != 0 && in.nr_func_info != 0) {
    if (in.func_info == 0) return -EFAULT;
    std::memcpy(uptr<void>(in.func_info), p.func_info.data(),
                std::min(info.nr_func_info, in.nr_func_info) * sizeof(bpf_func_info));
  }
  info.func_info = in.func_info;
  info.nr_line_info = static_cast<std::uint32_t>(p.line_info.size());
  if (info.nr_line_info != 0 && in.nr_line_info != 0) {
    if (in.line_info == 0) return -EFAULT;
    std::memcpy(uptr<void>(in.line_info), p.line_info.data(),
                std::min(info.nr_line_info, in.nr_line_info) * sizeof(bpf_line_info));
  }
  info.line_info = in.line_info;
  // xlated: map references as BPF_PSEUDO_MAP_FD / _VALUE with the map's id (bpf_insn_prepare_dump)
  std::vector<isa::Insn> x = p.insns;
  for (isa::Insn& in2 : x) {
    if (in2.op == isa::Op::LddwMapIdx)
      in2 = isa::make(isa::Op::LddwMapFd, in2.dst, 0, 0, static_cast<std::int32_t>(p.used_maps[static_cast<std::size_t>(in2.imm)]->id));
    else if (in2.op == isa::Op::LddwMapIdxVal)
      in2 = isa::make(isa::Op::LddwMapValue, in2.dst, 0, 0,
                      static_cast<std::int32_t>(p.used_maps[static_cast<std::size_t>(in2.imm)]->id), in2.imm_hi);
  }
  const auto raw = isa::encode(x);
  const auto xlen = static_cast<std::uint32_t>(raw.size() * sizeof(isa::RawInsn));
  info.xlated_prog_len = xlen;
  if (in.xlated_prog_insns != 0 && in.xlated_prog_len != 0) {
    std::memcpy(uptr<void>(in.xlated_prog_insns), raw.data(), std::min(xlen, in.xlated_prog_len));
    info.xlated_prog_insns = in.xlated_prog_insns;
  }
  info.nr_map_ids = static_cast<std::uint32_t>(maps.size());
  if (in.map_ids != 0) {
    auto* ids = uptr<std::uint32_t>(in.map_ids);
    for (std::size_t i = 0; i < maps.size() && i < in.nr_map_ids; ++i) ids[i] = maps[i]->id;
    info.map_ids = in.map_ids;
  }
  return finish_info(c, info, len);
}

int map_info(Call& c, MapObject& m) {
  bpf_map_info info;
  std::uint32_t len = 0;
  if (int e = read_info(c, info, len)) return e;
  std::memset(&info, 0, sizeof info);
  info.type = m.map->type();
  info.id = m.id;
  info.key_size = m.map->key_size();
  info.value_size = m.map->value_size();
  info.max_entries = m.map->max_entries();
  info.map_flags = m.map->map_flags();
  const std::string name = m.map->name();
  std::memcpy(info.name, name.data(), std::min(name.size(), sizeof info.name - 1));
  info.btf_id = m.btf_id;
  return finish_info(c, info, len);
}

int btf_info(Call& c, BtfObject& b) {
  bpf_btf_info info;
  std::uint32_t len = 0;
  if (int e = read_info(c, info, len)) return e;
  const bpf_btf_info in = info;
  std::memset(&info, 0, sizeof info);
  info.id = b.id;
  info.btf_size = static_cast<std::uint32_t>(b.data.size());
  if (in.btf != 0) {
    if (in.btf_size < b.data.size()) return -ENOSPC;
    std::memcpy(uptr<void>(in.btf), b.data.data(), b.data.size());
    info.btf = in.btf;
  }
  return finish_info(c, info, len);
}

int cmd_obj_info(Call& c) {
  auto o = c.rt.get(static_cast<int>(c.attr.info.bpf_fd));
  if (!o) return -EBADF;
  switch (o->kind) {
    case ObjKind::Prog: return prog_info(c, static_cast<ProgObject&>(*o));
    case ObjKind::Map: return map_info(c, static_cast<MapObject&>(*o));
    case ObjKind::Btf: return btf_info(c, static_cast<BtfObject&>(*o));
  }
  return -EINVAL;
}

int cmd_btf_load(Call& c) {
  const auto& a = c.attr;
  if (a.btf == 0) return -EFAULT;
  if ((a.btf_log_buf != 0) != (a.btf_log_size != 0) || (a.btf_log_buf != 0 && a.btf_log_level == 0) ||
      (a.btf_log_level & ~kLogMask) != 0)
    return -EINVAL;
  auto h = c.rt.btf_load({uptr<const std::uint8_t>(a.btf), a.btf_size});
  return h ? *h : err(h.error());
}

int cmd_prog_bind_map(Call& c) {
  const auto& b = c.attr.prog_bind_map;
  if (b.flags != 0) return -EINVAL;
  auto po = c.rt.get(static_cast<int>(b.prog_fd));
  if (!po) return -EBADF;
  if (po->kind != ObjKind::Prog) return -EINVAL;
  std::shared_ptr<MapObject> m;
  if (int e = get_map(c, b.map_fd, m)) return e;
  auto& p = static_cast<ProgObject&>(*po);
  if (std::find(p.used_maps.begin(), p.used_maps.end(), m) != p.used_maps.end()) return 0;
  std::lock_guard lock(p.bind_mu);
  if (std::find(p.bound_maps.begin(), p.bound_maps.end(), m) == p.bound_maps.end()) p.bound_maps.push_back(m);
  return 0;
}

struct Command {
  int cmd;
  std::size_t last_end;  // CHECK_ATTR: everything after must be zero
  int (*fn)(Call&);
};

const Command kCommands[] = {
    {BPF_MAP_CREATE, UBPF_ATTR_END(map_extra), &cmd_map_create},
    {BPF_MAP_LOOKUP_ELEM, UBPF_ATTR_END(flags), &cmd_map_lookup},
    {BPF_MAP_UPDATE_ELEM, UBPF_ATTR_END(flags), &cmd_map_update},
    {BPF_MAP_DELETE_ELEM, UBPF_ATTR_END(key), &cmd_map_delete},
    {BPF_MAP_GET_NEXT_KEY, UBPF_ATTR_END(next_key), &cmd_map_next_key},
    {BPF_PROG_LOAD, UBPF_ATTR_END(core_relo_rec_size), &cmd_prog_load},
    {BPF_OBJ_PIN, UBPF_ATTR_END(file_flags), &cmd_obj_pin},
    {BPF_OBJ_GET, UBPF_ATTR_END(file_flags), &cmd_obj_get},
    {BPF_PROG_TEST_RUN, UBPF_ATTR_END(test.batch_size), &cmd_prog_test_run},
    {BPF_PROG_GET_NEXT_ID, UBPF_ATTR_END(next_id), &cmd_prog_next_id},
    {BPF_MAP_GET_NEXT_ID, UBPF_ATTR_END(next_id), &cmd_map_next_id},
    {BPF_PROG_GET_FD_BY_ID, UBPF_ATTR_END(prog_id), &cmd_prog_fd_by_id},
    {BPF_MAP_GET_FD_BY_ID, UBPF_ATTR_END(open_flags), &cmd_map_fd_by_id},
    {BPF_OBJ_GET_INFO_BY_FD, UBPF_ATTR_END(info.info), &cmd_obj_info},
    {BPF_BTF_LOAD, UBPF_ATTR_END(btf_log_level), &cmd_btf_load},
    {BPF_BTF_GET_FD_BY_ID, UBPF_ATTR_END(btf_id), &cmd_btf_fd_by_id},
    {BPF_MAP_LOOKUP_AND_DELETE_ELEM, UBPF_ATTR_END(flags), &cmd_map_lookup_and_delete},
    {BPF_MAP_FREEZE, UBPF_ATTR_END(map_fd), &cmd_map_freeze},
    {BPF_BTF_GET_NEXT_ID, UBPF_ATTR_END(next_id), &cmd_btf_next_id},
    {BPF_MAP_LOOKUP_BATCH, UBPF_ATTR_END(batch.flags), &cmd_lookup_batch},
    {BPF_MAP_LOOKUP_AND_DELETE_BATCH, UBPF_ATTR_END(batch.flags), &cmd_lookup_and_delete_batch},
    {BPF_MAP_UPDATE_BATCH, UBPF_ATTR_END(batch.flags), &cmd_update_batch},
    {BPF_MAP_DELETE_BATCH, UBPF_ATTR_END(batch.flags), &cmd_delete_batch},
    {BPF_PROG_BIND_MAP, UBPF_ATTR_END(prog_bind_map.flags), &cmd_prog_bind_map},
};

}  // namespace

int Runtime::bpf(int cmd, union bpf_attr* uattr, unsigned size) {
  auto fail = [](int e) {
    errno = e;
    return -1;
  };
  if (uattr == nullptr) return fail(EFAULT);
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  if (size > sizeof attr) {
    const auto* u = reinterpret_cast<const std::uint8_t*>(uattr);
    for (std::size_t i = sizeof attr; i < size; ++i)
      if (u[i] != 0) return fail(E2BIG);
  }
  std::memcpy(&attr, uattr, std::min<std::size_t>(size, sizeof attr));
  for (const Command& c : kCommands) {
    if (c.cmd != cmd) continue;
    static const union bpf_attr kZero {};
    const auto* b = reinterpret_cast<const std::uint8_t*>(&attr);
    if (std::memcmp(b + c.last_end, reinterpret_cast<const std::uint8_t*>(&kZero) + c.last_end,
                    sizeof attr - c.last_end) != 0)
      return fail(EINVAL);
    Call call{*this, attr, uattr, size};
    const int r = c.fn(call);
    return r < 0 ? fail(-r) : r;
  }
  return fail(EINVAL);
}

int bpf(int cmd, union bpf_attr* attr, unsigned size) { return Runtime::global().bpf(cmd, attr, size); }

}  // namespace userbpf::runtime
