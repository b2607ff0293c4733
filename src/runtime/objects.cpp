// Handles, ids, object creation, pins (design in runtime.hpp).
#include <bpf/btf.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <random>

#include "maps/map_of_maps.hpp"
#include "maps/registry.hpp"
#include "maps/shm.hpp"
#include "runtime/internal.hpp"
#include "helpers/packet_ctx.hpp"
#include "runtime/runtime.hpp"

namespace userbpf::runtime {

namespace {

constexpr int kFirstHandle = 3;

std::size_t kind_index(ObjKind k) { return static_cast<std::size_t>(k); }

Status mkdirs(const std::string& dir) {
  std::string cur;
  std::size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    cur = dir.substr(0, pos);
    if (cur.empty()) continue;
    if (::mkdir(cur.c_str(), 0700) != 0 && errno != EEXIST)
      return make_error(errno, fmt::format("create directory '{}': {}", cur, std::strerror(errno)));
  }
  return Ok{};
}

std::string inode_key(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return fmt::format("{}:{}", st.st_dev, st.st_ino);
}

}  // namespace

namespace {

// The soft limit of an rlimit, kUnlimited for RLIM_INFINITY (or if unknown).
std::uint64_t soft_rlimit(int resource) {
  rlimit r{};
  if (::getrlimit(resource, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return Limits::kUnlimited;
  return static_cast<std::uint64_t>(r.rlim_cur);
}

Limits resolve_limits(const Options& o) {
  Limits l = o.limits;
  if (l.max_insns == 0) l.max_insns = o.privileged ? isa::kMaxInsns : BPF_MAXINSNS;
  if (l.verifier_insns == 0) l.verifier_insns = 1'000'000;  // BPF_COMPLEXITY_LIMIT_INSNS
  if (l.verifier_memory == 0) l.verifier_memory = o.privileged ? std::uint64_t{1} << 30 : std::uint64_t{256} << 20;
  // Kernels since 5.11 charge maps to the memory cgroup, not RLIMIT_MEMLOCK:
  // privileged runtimes are unlimited by default; unprivileged ones keep the
  // older memlock budget, the safer choice for untrusted callers.
  if (l.map_memory == 0) l.map_memory = o.privileged ? Limits::kUnlimited : soft_rlimit(RLIMIT_MEMLOCK);
  if (l.max_handles == 0) l.max_handles = soft_rlimit(RLIMIT_NOFILE);
  return l;
}

std::string limit_text(std::uint64_t v) { return v == Limits::kUnlimited ? "unlimited" : std::to_string(v); }

}  // namespace

void BtfDeleter::operator()(struct btf* b) const { btf__free(b); }

MapObject::~MapObject() {
  if (account) {
    std::lock_guard lock(account->mu);
    account->used -= charged;
  }
}

std::string default_pin_dir() {
  if (const char* e = std::getenv("USERBPF_PIN_DIR"); e != nullptr && *e != '\0') return e;
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x != nullptr && *x != '\0') return std::string(x) + "/userbpf";
  // /dev/shm (tmpfs, like bpffs: gone at reboot) keeps map pages off disk:
  // ring buffers on an ext4 /tmp measured 2-3x slower (dirty-page tracking).
  struct stat st {};
  if (::stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && ::access("/dev/shm", W_OK) == 0)
    return fmt::format("/dev/shm/userbpf-{}", ::getuid());
  return fmt::format("/tmp/userbpf-{}", ::getuid());
}

Runtime::Runtime(Options opts)
    : opts_(std::move(opts)), limits_(resolve_limits(opts_)), memory_(std::make_shared<MemoryAccount>()) {
  memory_->limit = limits_.map_memory;
  pin_dir_ = opts_.pin_dir.empty() ? default_pin_dir() : opts_.pin_dir;
  while (pin_dir_.size() > 1 && pin_dir_.back() == '/') pin_dir_.pop_back();
  if (mkdirs(pin_dir_)) {
    if (auto s = maps::CpuSlots::open(pin_dir_, opts_.ncpus)) slots_ = std::move(*s);
  }
  if (!slots_) slots_ = maps::CpuSlots::local(opts_.ncpus);
  helpers::register_helpers(helpers_);
  helpers::register_packet_helpers(helpers_);
  helpers::register_kfuncs(helpers_);  // loaders pass helpers::kfunc_symbols() as ExternOptions::kfuncs
}

Runtime::~Runtime() {
  stop_timers();  // no callback may run while the objects go away (timers.cpp)
  // Program arrays may close reference cycles (a program that tail-calls
  // through an array holding itself): drop the arrays' program references.
  std::vector<std::shared_ptr<Object>> live;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, w] : ids_[kind_index(ObjKind::Map)])
      if (auto o = w.lock()) live.push_back(std::move(o));
  }
  for (auto& o : live) {
    auto& m = static_cast<MapObject&>(*o);
    std::lock_guard plock(m.prog_mu);
    m.progs.clear();
  }
}

Runtime& Runtime::global() {
  static Runtime rt;
  return rt;
}

void Runtime::register_object(const std::shared_ptr<Object>& obj) {
  std::lock_guard lock(mu_);
  const std::size_t k = kind_index(obj->kind);
  obj->id = next_ids_[k]++;
  ids_[k][obj->id] = obj;
}

Result<int> Runtime::new_handle(std::shared_ptr<Object> obj) {
  std::lock_guard lock(mu_);
  std::size_t h = kFirstHandle;
  while (h < handles_.size() && handles_[h]) ++h;
  if (h >= limits_.max_handles || h > static_cast<std::size_t>(INT32_MAX))
    return make_error(EMFILE, fmt::format("too many open handles: {} is the limit (Limits::max_handles, default "
                                          "RLIMIT_NOFILE)",
                                          limits_.max_handles));
  if (h >= handles_.size()) handles_.resize(h + 1);
  handles_[h] = std::move(obj);
  return static_cast<int>(h);
}

std::uint64_t Runtime::map_memory_used() const {
  std::lock_guard lock(memory_->mu);
  return memory_->used;
}

std::size_t Runtime::handle_count() const {
  std::lock_guard lock(mu_);
  std::size_t n = 0;
  for (const auto& h : handles_) n += h ? 1u : 0u;
  return n;
}

std::shared_ptr<Object> Runtime::get(int handle) const {
  std::lock_guard lock(mu_);
  if (handle < 0 || static_cast<std::size_t>(handle) >= handles_.size()) return nullptr;
  return handles_[static_cast<std::size_t>(handle)];
}
std::shared_ptr<MapObject> Runtime::get_map(int handle) const {
  auto o = get(handle);
  return o && o->kind == ObjKind::Map ? std::static_pointer_cast<MapObject>(o) : nullptr;
}
std::shared_ptr<ProgObject> Runtime::get_prog(int handle) const {
  auto o = get(handle);
  return o && o->kind == ObjKind::Prog ? std::static_pointer_cast<ProgObject>(o) : nullptr;
}
std::shared_ptr<BtfObject> Runtime::get_btf(int handle) const {
  auto o = get(handle);
  return o && o->kind == ObjKind::Btf ? std::static_pointer_cast<BtfObject>(o) : nullptr;
}

std::shared_ptr<Object> Runtime::by_id(ObjKind kind, std::uint32_t id) const {
  std::lock_guard lock(mu_);
  const auto& t = ids_[kind_index(kind)];
  const auto it = t.find(id);
  return it == t.end() ? nullptr : it->second.lock();
}

std::uint32_t Runtime::next_id(ObjKind kind, std::uint32_t start) const {
  std::lock_guard lock(mu_);
  std::uint32_t best = 0;
  for (const auto& [id, w] : ids_[kind_index(kind)])
    if (id > start && (best == 0 || id < best) && !w.expired()) best = id;
  return best;
}

Status Runtime::close(int handle) {
  std::shared_ptr<Object> dropped;  // destroyed outside the lock
  std::lock_guard lock(mu_);
  if (handle < 0 || static_cast<std::size_t>(handle) >= handles_.size() || !handles_[static_cast<std::size_t>(handle)])
    return make_error(EBADF, fmt::format("handle {} is not open", handle));
  dropped = std::move(handles_[static_cast<std::size_t>(handle)]);
  // The kernel clears a program array when its last user reference (fd or
  // pin) goes, which breaks prog -> map -> prog reference cycles; so do we.
  if (dropped->kind == ObjKind::Map) {
    auto& m = static_cast<MapObject&>(*dropped);
    const bool still_open =
        std::any_of(handles_.begin(), handles_.end(), [&](const auto& h) { return h.get() == dropped.get(); });
    struct stat st {};
    if (m.map->desc().kind == maps::MapKind::ProgArray && !still_open && ::fstat(m.map->file().fd(), &st) == 0 &&
        st.st_nlink == 0) {
      std::lock_guard plock(m.prog_mu);
      for (std::uint32_t i = 0; i < m.map->max_entries(); ++i) (void)m.map->remove(&i);
      m.progs.clear();
    }
  }
  // forget ids of dead objects now and then
  for (auto& t : ids_)
    for (auto it = t.begin(); it != t.end();) it = it->second.expired() ? t.erase(it) : std::next(it);
  return Ok{};
}

int close_handle(int handle) {
  auto s = Runtime::global().close(handle);
  if (!s) {
    errno = s.error().code;
    return -1;
  }
  return 0;
}

// ------------------------------------------------------------------ creation

namespace {
// Maps of maps: program lookups turn the stored map ids into maps of this
// runtime; the outer map keeps every inner map it handed out alive.
maps::Map* resolve_inner_map(void* owner, std::uint32_t id) {
  auto* outer = static_cast<MapObject*>(owner);
  auto o = outer->rt->by_id(ObjKind::Map, id);
  if (!o) return nullptr;
  auto inner = std::static_pointer_cast<MapObject>(o);
  std::lock_guard lock(outer->inner_mu);
  if (std::find(outer->inner_maps.begin(), outer->inner_maps.end(), inner) == outer->inner_maps.end())
    outer->inner_maps.push_back(inner);
  return inner->map.get();
}
void adopt_outer(Runtime& rt, MapObject& m) {
  if (maps::OuterMap* o = maps::as_outer(*m.map)) {
    m.rt = &rt;
    o->set_resolver(&resolve_inner_map, &m);
  }
}
}  // namespace

Result<int> Runtime::map_create(const maps::MapSpec& spec) {
  auto m = maps::create_map(spec, pin_dir_);
  if (!m) return m.error();
  auto obj = std::make_shared<MapObject>();
  obj->map = std::move(*m);
  {
    // The kernel's pre-5.11 memlock charge (bpf_map_charge_init): EPERM.
    const std::uint64_t size = obj->map->file().size();
    std::lock_guard lock(memory_->mu);
    if (memory_->limit != Limits::kUnlimited && size > memory_->limit - std::min(memory_->used, memory_->limit))
      return make_error(EPERM, fmt::format("map '{}': {} bytes of map memory needed, {} of {} in use "
                                           "(Limits::map_memory; unprivileged default RLIMIT_MEMLOCK)",
                                           spec.name, size, memory_->used, limit_text(memory_->limit)));
    memory_->used += size;
    obj->account = memory_;
    obj->charged = size;
  }
  adopt_outer(*this, *obj);
  register_object(obj);
  return new_handle(obj);  // on EMFILE the object dies here (its id with it)
}

Result<int> Runtime::btf_load(std::span<const std::uint8_t> blob) {
  if (blob.size() > (16u << 20)) return make_error(E2BIG, "BTF blob larger than 16 MiB");
  if (blob.size() < 24) return make_error(EINVAL, "BTF blob shorter than its header");
  const std::uint16_t magic = static_cast<std::uint16_t>(blob[0] | (blob[1] << 8));
  if (magic != 0xeb9f) return make_error(EINVAL, fmt::format("BTF magic 0x{:04x}, expected 0xeb9f", magic));
  auto obj = std::make_shared<BtfObject>();
  obj->data.assign(blob.begin(), blob.end());
  // libbpf's parser checks the header, the sections and every type record
  // (the kernel's btf_parse checks more; both refuse with EINVAL).
  obj->btf.reset(btf__new(obj->data.data(), static_cast<__u32>(obj->data.size())));
  if (!obj->btf) return make_error(EINVAL, fmt::format("invalid BTF blob ({} bytes): {}", blob.size(),
                                                       std::strerror(errno)));
  register_object(obj);
  return new_handle(obj);  // on EMFILE the object dies here (its id with it)
}

int Runtime::map_update(MapObject& m, const void* key, const void* value, std::uint64_t flags) {
  if (maps::OuterMap* outer = maps::as_outer(*m.map)) {
    // Maps of maps: the value is a map handle; the map stores its id.
    int fd;
    std::memcpy(&fd, value, 4);
    auto inner = get_map(fd);
    if (!inner) return get(fd) ? EINVAL : EBADF;
    const int e = outer->update_inner(key, *inner->map, inner->id, flags);
    if (e == 0) {
      std::lock_guard lock(m.inner_mu);
      if (std::find(m.inner_maps.begin(), m.inner_maps.end(), inner) == m.inner_maps.end())
        m.inner_maps.push_back(std::move(inner));
    }
    return e;
  }
  if (m.map->desc().kind != maps::MapKind::ProgArray) return m.map->update(key, value, flags);
  // Program arrays: the value is a program handle; the map stores its id.
  std::uint32_t index;
  std::memcpy(&index, key, 4);
  int fd;
  std::memcpy(&fd, value, 4);
  if (flags != BPF_ANY) return EINVAL;
  if (index >= m.map->max_entries()) return E2BIG;
  auto prog = get_prog(fd);
  if (!prog) return get(fd) ? EINVAL : EBADF;
  std::lock_guard lock(m.prog_mu);
  if (m.owner_prog_type != 0 && m.owner_prog_type != prog->type) return EINVAL;
  const std::uint32_t id = prog->id;
  const int e = m.map->update(key, &id, flags);
  if (e != 0) return e;
  if (m.owner_prog_type == 0) m.owner_prog_type = prog->type;
  if (m.progs.size() < m.map->max_entries()) m.progs.resize(m.map->max_entries());
  m.progs[index] = std::move(prog);
  return 0;
}

int Runtime::map_delete(MapObject& m, const void* key) {
  const int e = m.map->remove(key);
  if (e == 0 && m.map->desc().kind == maps::MapKind::ProgArray) {
    std::uint32_t index;
    std::memcpy(&index, key, 4);
    std::lock_guard lock(m.prog_mu);
    if (index < m.progs.size()) m.progs[index].reset();
  }
  return e;
}

// ------------------------------------------------------------------ pins

Result<std::string> Runtime::resolve_path(const std::string& path) const {
  if (path.empty()) return make_error(EINVAL, "empty pin path");
  static constexpr std::string_view kBpffs = "/sys/fs/bpf/";
  std::string p;
  if (path.rfind(kBpffs, 0) == 0) p = pin_dir_ + "/" + path.substr(kBpffs.size());
  else if (path.front() != '/') p = pin_dir_ + "/" + path;
  else p = path;
  if (p.rfind(pin_dir_ + "/", 0) != 0 || p.find("/../") != std::string::npos)
    return make_error(EPERM, fmt::format("'{}' is not under the pin directory '{}'", path, pin_dir_));
  return p;
}

Status Runtime::pin(int handle, const std::string& path) {
  auto obj = get(handle);
  if (!obj) return make_error(EBADF, fmt::format("handle {} is not open", handle));
  auto file = resolve_path(path);
  if (!file) return file.error();
  Status st = Ok{};
  if (obj->kind == ObjKind::Map) {
    st = static_cast<MapObject&>(*obj).map->file().link(*file);
  } else if (obj->kind == ObjKind::Prog) {
    st = pin_prog(static_cast<ProgObject&>(*obj), *file);
  } else {
    return make_error(EINVAL, "pinning BTF objects is not supported");
  }
  if (!st) return st;
  std::lock_guard lock(mu_);
  by_inode_[inode_key(*file)] = obj;
  return Ok{};
}

Status Runtime::unpin(const std::string& path) {
  auto file = resolve_path(path);
  if (!file) return file.error();
  if (::unlink(file->c_str()) != 0)
    return make_error(errno, fmt::format("unpin '{}': {}", path, std::strerror(errno)));
  return Ok{};
}

Result<std::shared_ptr<MapObject>> Runtime::open_map_file(const std::string& file) {
  auto m = maps::open_map(file);
  if (!m) return m.error();
  auto obj = std::make_shared<MapObject>();
  obj->map = std::move(*m);
  adopt_outer(*this, *obj);
  register_object(obj);
  return obj;
}

Result<int> Runtime::get_pinned(const std::string& path) {
  auto file = resolve_path(path);
  if (!file) return file.error();
  const std::string key = inode_key(*file);
  if (key.empty()) return make_error(ENOENT, fmt::format("no pin at '{}'", path));
  std::shared_ptr<Object> live;
  {
    std::lock_guard lock(mu_);
    if (auto it = by_inode_.find(key); it != by_inode_.end()) live = it->second.lock();
  }
  if (live) return new_handle(std::move(live));
  char magic[8] = {};
  {
    const int fd = ::open(file->c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return make_error(errno, fmt::format("open '{}': {}", path, std::strerror(errno)));
    const auto n = ::read(fd, magic, sizeof magic);
    ::close(fd);
    if (n != static_cast<ssize_t>(sizeof magic)) return make_error(EINVAL, fmt::format("'{}' is not a pin", path));
  }
  std::shared_ptr<Object> obj;
  if (std::memcmp(magic, maps::kMapMagic, sizeof magic) == 0) {
    auto m = open_map_file(*file);
    if (!m) return m.error();
    obj = *m;
  } else if (std::memcmp(magic, kProgMagic, sizeof magic) == 0) {
    auto p = open_prog_file(*file);
    if (!p) return p.error();
    obj = *p;
  } else {
    return make_error(EINVAL, fmt::format("'{}' is not a userbpf pin", path));
  }
  {
    std::lock_guard lock(mu_);
    by_inode_[key] = obj;
  }
  return new_handle(std::move(obj));
}

Status Runtime::pin_prog(ProgObject& p, const std::string& file) {
  // Every used map needs a path another process can open.
  std::vector<std::string> paths;
  for (auto& m : p.used_maps) {
    if (m->hidden_path.empty() || ::access(m->hidden_path.c_str(), F_OK) != 0) {
      const std::string dir = pin_dir_ + "/.objects";
      ::mkdir(dir.c_str(), 0700);
      std::random_device rd;
      const std::string hidden = fmt::format("{}/map-{:08x}{:08x}", dir, rd(), rd());
      if (auto st = m->map->file().link(hidden); !st) return st;
      m->hidden_path = hidden;
    }
    paths.push_back(m->hidden_path.substr(pin_dir_.size() + 1));
  }
  const std::size_t btf_size = p.btf ? p.btf->data.size() : 0;
  const std::size_t size = sizeof(ProgFileHeader) + p.insns.size() * sizeof(isa::RawInsn) + paths.size() * kPathLen +
                           sizeof(ProgFileBtf) + btf_size + p.func_info.size() * sizeof(bpf_func_info) +
                           p.line_info.size() * sizeof(bpf_line_info);
  auto f = maps::SharedFile::create(pin_dir_, size);
  if (!f) return f.error();
  auto* h = new ((*f)->data()) ProgFileHeader{};
  std::memcpy(h->magic, kProgMagic, sizeof h->magic);
  h->version = kProgFileVersion;
  h->type = p.type;
  h->expected_attach_type = p.expected_attach_type;
  h->prog_flags = p.prog_flags;
  h->kern_version = p.kern_version;
  const auto raw = isa::encode(p.insns);
  h->insn_cnt = static_cast<std::uint32_t>(raw.size());
  h->nmaps = static_cast<std::uint32_t>(paths.size());
  std::memcpy(h->name, p.name.data(), std::min(p.name.size(), sizeof h->name - 1));
  std::memcpy(h->license, p.license.data(), std::min(p.license.size(), sizeof h->license - 1));
  std::uint8_t* out = (*f)->data() + sizeof(ProgFileHeader);
  std::memcpy(out, raw.data(), raw.size() * sizeof(isa::RawInsn));
  out += raw.size() * sizeof(isa::RawInsn);
  for (const auto& s : paths) {
    std::memcpy(out, s.data(), std::min(s.size(), kPathLen - 1));
    out += kPathLen;
  }
  const ProgFileBtf tb{static_cast<std::uint32_t>(btf_size), static_cast<std::uint32_t>(p.func_info.size()),
                      static_cast<std::uint32_t>(p.line_info.size()), 0};
  std::memcpy(out, &tb, sizeof tb);
  out += sizeof tb;
  if (btf_size != 0) std::memcpy(out, p.btf->data.data(), btf_size);
  out += btf_size;
  if (!p.func_info.empty()) std::memcpy(out, p.func_info.data(), p.func_info.size() * sizeof(bpf_func_info));
  out += p.func_info.size() * sizeof(bpf_func_info);
  if (!p.line_info.empty()) std::memcpy(out, p.line_info.data(), p.line_info.size() * sizeof(bpf_line_info));
  return (*f)->link(file);
}

Result<std::shared_ptr<ProgObject>> Runtime::open_prog_file(const std::string& file) {
  auto f = maps::SharedFile::open(file);
  if (!f) return f.error();
  const std::size_t size = (*f)->size();
  if (size < sizeof(ProgFileHeader)) return make_error(EINVAL, fmt::format("'{}': truncated program pin", file));
  ProgFileHeader h;
  std::memcpy(&h, (*f)->data(), sizeof h);
  const std::size_t base = sizeof h + std::size_t{h.insn_cnt} * sizeof(isa::RawInsn) + std::size_t{h.nmaps} * kPathLen;
  ProgFileBtf tb{};
  if (h.version == kProgFileVersion && size >= base + sizeof tb) std::memcpy(&tb, (*f)->data() + base, sizeof tb);
  const std::size_t btf_end = base + sizeof tb + tb.btf_size;
  const bool v1 = h.version == 1 && size == base;
  const bool v2 = h.version == kProgFileVersion && size >= base + sizeof tb &&
                  size == btf_end + std::size_t{tb.nfunc} * sizeof(bpf_func_info) +
                              std::size_t{tb.nline} * sizeof(bpf_line_info);
  if (!v1 && !v2) return make_error(EINVAL, fmt::format("'{}': program pin of unknown layout", file));
  std::vector<isa::RawInsn> raw(h.insn_cnt);
  std::memcpy(raw.data(), (*f)->data() + sizeof h, raw.size() * sizeof(isa::RawInsn));
  const std::uint8_t* paths = (*f)->data() + sizeof h + raw.size() * sizeof(isa::RawInsn);
  std::vector<std::shared_ptr<MapObject>> used;
  for (std::uint32_t i = 0; i < h.nmaps; ++i) {
    const char* s = reinterpret_cast<const char*>(paths + std::size_t{i} * kPathLen);
    const std::string rel(s, strnlen(s, kPathLen));
    const std::string mp = pin_dir_ + "/" + rel;
    const std::string key = inode_key(mp);
    std::shared_ptr<MapObject> m;
    {
      std::lock_guard lock(mu_);
      if (auto it = by_inode_.find(key); it != by_inode_.end())
        if (auto live = it->second.lock(); live && live->kind == ObjKind::Map)
          m = std::static_pointer_cast<MapObject>(live);
    }
    if (!m) {
      auto opened = open_map_file(mp);
      if (!opened) {
        opened.error().where = fmt::format("program pin '{}', map {}", file, i);
        return opened.error();
      }
      m = *opened;
      std::lock_guard lock(mu_);
      by_inode_[key] = m;
    }
    m->hidden_path = mp;
    used.push_back(std::move(m));
  }
  ProgSpec spec;
  spec.type = h.type;
  spec.expected_attach_type = h.expected_attach_type;
  spec.prog_flags = h.prog_flags;
  spec.kern_version = h.kern_version;
  spec.name = std::string(h.name, strnlen(h.name, sizeof h.name));
  spec.license = std::string(h.license, strnlen(h.license, sizeof h.license));
  spec.insns = raw;
  int btf = -1;  // the pin's BTF, loaded for the program (which keeps it)
  if (v2 && tb.btf_size != 0) {
    auto b = btf_load({(*f)->data() + base + sizeof tb, tb.btf_size});
    if (!b) {
      b.error().where = fmt::format("program pin '{}', BTF", file);
      return b.error();
    }
    btf = *b;
    spec.btf_fd = static_cast<std::uint32_t>(btf);
    spec.func_info = (*f)->data() + btf_end;
    spec.func_info_rec_size = sizeof(bpf_func_info);
    spec.func_info_cnt = tb.nfunc;
    spec.line_info = (*f)->data() + btf_end + std::size_t{tb.nfunc} * sizeof(bpf_func_info);
    spec.line_info_rec_size = sizeof(bpf_line_info);
    spec.line_info_cnt = tb.nline;
  }
  std::string log;
  auto p = build_prog(spec, std::move(used), log);
  if (btf >= 0) {
    if (p) (*p)->btf_id = (*p)->btf ? (*p)->btf->id : 0;
    (void)close(btf);
  }
  if (!p) {
    p.error().where = fmt::format("program pin '{}'", file);
    return p.error();
  }
  return *p;
}

}  // namespace userbpf::runtime
