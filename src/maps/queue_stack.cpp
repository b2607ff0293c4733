// BPF_MAP_TYPE_QUEUE and BPF_MAP_TYPE_STACK (the kernel's queue_stack_maps):
// a circular buffer of max_entries + 1 values (one slot stays empty to tell
// full from empty), head = next slot to write, tail = oldest value.
// Queue pops the oldest value (tail), stack the newest (head - 1). A push
// into a full map fails with E2BIG unless BPF_EXIST is given, which drops
// the oldest value (tail) to make room, for both kinds, as the kernel.
// Host commands: update = push, lookup = peek, lookup-and-delete = pop,
// delete / get_next_key = EINVAL. One SharedSpinLock per map guards
// head, tail and the values (threads and processes).
#include <linux/bpf.h>

#include <cstring>

#include "maps/array.hpp"
#include "maps/registry.hpp"
#include "maps/shm.hpp"

namespace userbpf::maps {

namespace {

struct QueueCtl {
  SharedSpinLock lock;
  std::uint32_t head;
  std::uint32_t tail;
  std::uint32_t size;  // max_entries + 1
};
constexpr std::size_t kCtlSize = 64;

class QueueStackMap final : public Map {
 public:
  QueueStackMap(std::unique_ptr<SharedFile> file, const MapTypeDesc& desc, bool stack)
      : Map(std::move(file), desc), ctl_(reinterpret_cast<QueueCtl*>(body())), elems_(body() + kCtlSize),
        stack_(stack) {}

  int push(const void* value, std::uint64_t flags) override {
    if ((flags & BPF_NOEXIST) != 0 || flags > BPF_EXIST) return EINVAL;
    Guard g(ctl_->lock);
    const std::uint32_t n = ctl_->size;
    if (next(ctl_->head, n) == ctl_->tail) {  // full
      if ((flags & BPF_EXIST) == 0) return E2BIG;
      ctl_->tail = next(ctl_->tail, n);  // overwrite the oldest value
    }
    std::memcpy(slot(ctl_->head), value, value_size());
    ctl_->head = next(ctl_->head, n);
    return 0;
  }
  int pop(void* value) override { return take(value, true); }
  int peek(void* value) override { return take(value, false); }

  void* prog_lookup(const void*, std::uint32_t) override { return nullptr; }
  int prog_update(const void*, const void*, std::uint64_t, std::uint32_t) override { return EINVAL; }
  int prog_delete(const void*) override { return EINVAL; }

 protected:
  int do_lookup(const void* /*key*/, void* value) const override {
    return const_cast<QueueStackMap*>(this)->take(value, false);
  }
  int do_update(const void* /*key*/, const void* value, std::uint64_t flags) override { return push(value, flags); }
  int do_delete(const void*) override { return EINVAL; }
  int do_get_next_key(const void*, void*) const override { return EINVAL; }
  int do_lookup_and_delete(const void* /*key*/, void* value) override { return take(value, true); }

 private:
  static std::uint32_t next(std::uint32_t i, std::uint32_t n) { return i + 1 >= n ? 0 : i + 1; }
  [[nodiscard]] std::uint8_t* slot(std::uint32_t i) const { return elems_ + std::size_t{i} * value_size(); }

  int take(void* value, bool remove) {
    Guard g(ctl_->lock);
    if (ctl_->head == ctl_->tail) return ENOENT;
    const std::uint32_t n = ctl_->size;
    if (!stack_) {
      std::memcpy(value, slot(ctl_->tail), value_size());
      if (remove) ctl_->tail = next(ctl_->tail, n);
    } else {
      const std::uint32_t i = ctl_->head == 0 ? n - 1 : ctl_->head - 1;
      std::memcpy(value, slot(i), value_size());
      if (remove) ctl_->head = i;
    }
    return 0;
  }

  QueueCtl* ctl_;
  std::uint8_t* elems_;
  bool stack_;
};

int check_queue(const MapSpec& s) {
  if (s.max_entries == 0 || s.key_size != 0 || s.value_size == 0) return EINVAL;
  if (s.value_size > kKmallocMaxSize) return E2BIG;
  return 0;
}
std::size_t queue_body(const MapSpec& s, std::uint32_t) {
  return kCtlSize + (std::size_t{s.max_entries} + 1) * s.value_size;
}
void queue_init(std::uint8_t* body, const MapSpec& s, std::uint32_t) {
  auto* c = new (body) QueueCtl{};
  c->lock.init();
  c->size = s.max_entries + 1;
}
constexpr std::uint32_t kQueueFlags =
    BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY | BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG;

}  // namespace

const MapTypeDesc kQueueDesc = {
    BPF_MAP_TYPE_QUEUE,
    "queue",
    MapKind::Queue,
    false,
    kQueueFlags,
    kOpLookupAndDelete,
    &check_queue,
    &queue_body,
    &queue_init,
    [](std::unique_ptr<SharedFile> f, const MapTypeDesc& d) -> std::unique_ptr<Map> {
      return std::make_unique<QueueStackMap>(std::move(f), d, false);
    },
    false,
};

const MapTypeDesc kStackDesc = {
    BPF_MAP_TYPE_STACK,
    "stack",
    MapKind::Queue,
    false,
    kQueueFlags,
    kOpLookupAndDelete,
    &check_queue,
    &queue_body,
    &queue_init,
    [](std::unique_ptr<SharedFile> f, const MapTypeDesc& d) -> std::unique_ptr<Map> {
      return std::make_unique<QueueStackMap>(std::move(f), d, true);
    },
    false,
};

}  // namespace userbpf::maps
