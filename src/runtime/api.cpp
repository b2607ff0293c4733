// The public API (include/userbpf/userbpf.hpp) over runtime::Runtime.
#include <fmt/format.h>

#include <cstring>

#include "runtime/runtime.hpp"
#include "userbpf/userbpf.hpp"

namespace userbpf {

namespace {
std::shared_ptr<runtime::MapObject> map_of(runtime::Runtime* rt, int h) { return rt->get_map(h); }
}  // namespace

HandleRef& HandleRef::operator=(HandleRef&& o) noexcept {
  if (this != &o) {
    if (handle_ >= 0) (void)rt_->close(handle_);
    rt_ = o.rt_;
    handle_ = o.handle_;
    o.handle_ = -1;
  }
  return *this;
}
HandleRef::~HandleRef() {
  if (handle_ >= 0) (void)rt_->close(handle_);
}

std::uint32_t MapRef::id() const { return map_of(rt_, handle_)->id; }
std::uint32_t MapRef::key_size() const { return map_of(rt_, handle_)->map->key_size(); }
std::uint32_t MapRef::value_size() const { return map_of(rt_, handle_)->map->value_size(); }
std::size_t MapRef::host_value_size() const { return map_of(rt_, handle_)->map->host_value_size(); }
std::uint32_t MapRef::max_entries() const { return map_of(rt_, handle_)->map->max_entries(); }
int MapRef::lookup(const void* key, void* value, std::uint64_t flags) const {
  return map_of(rt_, handle_)->map->lookup(key, value, flags);
}
int MapRef::update(const void* key, const void* value, std::uint64_t flags) {
  return rt_->map_update(*map_of(rt_, handle_), key, value, flags);
}
int MapRef::remove(const void* key) { return rt_->map_delete(*map_of(rt_, handle_), key); }
int MapRef::next_key(const void* key, void* next) const { return map_of(rt_, handle_)->map->get_next_key(key, next); }
int MapRef::freeze() { return map_of(rt_, handle_)->map->freeze(); }
Status MapRef::pin(const std::string& path) const { return rt_->pin(handle_, path); }

std::uint32_t ProgRef::id() const { return rt_->get_prog(handle_)->id; }
Result<TestRun> ProgRef::test_run(std::span<const std::uint8_t> data, std::uint32_t repeat,
                                  std::span<const std::uint8_t> ctx) const {
  runtime::TestRunArgs a;
  a.data_in = data;
  a.ctx_in = ctx;
  a.ctx_given = !ctx.empty();
  a.repeat = repeat;
  auto r = rt_->test_run(handle_, a);
  if (!r) return r.error();
  TestRun t;
  t.retval = r->retval;
  t.duration_ns = r->duration_ns;
  t.data_out = std::move(r->data_out);
  t.ctx_out = std::move(r->ctx_out);
  return t;
}
Status ProgRef::pin(const std::string& path) const { return rt_->pin(handle_, path); }

Runtime::Runtime(const RuntimeOptions& opts) {
  runtime::Options o;
  o.pin_dir = opts.pin_dir;
  o.ncpus = opts.ncpus;
  o.checked = opts.checked;
  o.engine = opts.jit ? runtime::Engine::Jit : runtime::Engine::Interpreter;
  o.verify = opts.verify;
  o.privileged = opts.privileged;
  o.limits.max_insns = opts.max_insns;
  o.limits.map_memory = opts.map_memory;
  o.limits.max_handles = opts.max_handles;
  o.limits.verifier_memory = opts.verifier_memory;
  rt_ = std::make_unique<runtime::Runtime>(o);
}
Runtime::~Runtime() = default;
const std::string& Runtime::pin_dir() const { return rt_->pin_dir(); }

Result<MapRef> Runtime::create_map(std::uint32_t type, std::uint32_t key_size, std::uint32_t value_size,
                                   std::uint32_t max_entries, const std::string& name, std::uint32_t flags) {
  maps::MapSpec s;
  s.type = type;
  s.key_size = key_size;
  s.value_size = value_size;
  s.max_entries = max_entries;
  s.map_flags = flags;
  s.name = name;
  auto h = rt_->map_create(s);
  if (!h) return h.error();
  return MapRef(rt_.get(), *h);
}

Result<ProgRef> Runtime::load_program(std::uint32_t type, std::span<const std::uint64_t> insns,
                                      const std::string& name, std::span<const int> maps, std::string* log) {
  std::vector<isa::RawInsn> raw(insns.size());
  std::memcpy(static_cast<void*>(raw.data()), insns.data(), insns.size() * 8);
  runtime::ProgSpec s;
  s.type = type;
  s.name = name;
  s.insns = raw;
  s.fd_array = maps;
  s.log_level = log != nullptr ? 1 : 0;
  auto h = rt_->prog_load(s, log);
  if (!h) return h.error();
  return ProgRef(rt_.get(), *h);
}

Result<MapRef> Runtime::open_map(const std::string& pin_path) {
  auto h = rt_->get_pinned(pin_path);
  if (!h) return h.error();
  if (!rt_->get_map(*h)) {
    (void)rt_->close(*h);
    return make_error(EINVAL, fmt::format("'{}' is not a map", pin_path));
  }
  return MapRef(rt_.get(), *h);
}

Result<ProgRef> Runtime::open_program(const std::string& pin_path) {
  auto h = rt_->get_pinned(pin_path);
  if (!h) return h.error();
  if (!rt_->get_prog(*h)) {
    (void)rt_->close(*h);
    return make_error(EINVAL, fmt::format("'{}' is not a program", pin_path));
  }
  return ProgRef(rt_.get(), *h);
}

Status Runtime::unpin(const std::string& pin_path) { return rt_->unpin(pin_path); }

int Runtime::bpf(int cmd, void* attr, unsigned size) {
  return rt_->bpf(cmd, static_cast<union bpf_attr*>(attr), size);
}

}  // namespace userbpf
