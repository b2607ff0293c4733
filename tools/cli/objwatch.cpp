// Ring buffer / perf buffer records for the CLI; see objwatch.hpp.
#include "cli/objwatch.hpp"

#include <fmt/format.h>
#include <linux/bpf.h>
#include <linux/btf.h>

#include <chrono>
#include <thread>

#include "loader/btf_format.hpp"
#include "loader/loader.hpp"
#include "maps/perf_event_array.hpp"
#include "maps/ringbuf.hpp"

extern "C" {
#include <bpf/btf.h>
}

namespace userbpf::cli::obj {

bool is_record_map(const maps::Map& m) {
  return m.type() == BPF_MAP_TYPE_RINGBUF || m.type() == BPF_MAP_TYPE_PERF_EVENT_ARRAY;
}

RecordWatcher::RecordWatcher() : rings_(std::make_unique<maps::RingBufConsumer>()) {}
RecordWatcher::~RecordWatcher() = default;

void RecordWatcher::push(const Decoder& d, std::optional<std::uint32_t> cpu, const void* data, std::size_t size) {
  Record r;
  r.map = d.name;
  r.cpu = cpu;
  const auto* p = static_cast<const std::uint8_t*>(data);
  r.bytes.assign(p, p + size);
  if (d.btf && d.type_id != 0) {
    // A record shorter than the type is shown in hex only; longer ones are
    // decoded from their start (programs often send variable-size tails).
    auto j = loader::format_btf_value(d.btf->btf.get(), d.type_id, r.bytes);
    if (j.ok()) r.formatted = std::move(*j);
  }
  records_.push_back(std::move(r));
}

Status RecordWatcher::add(const std::string& name, maps::Map& m, std::optional<MapBtf> btf, std::uint32_t type_id) {
  decoders_.push_back(std::make_unique<Decoder>(Decoder{name, std::move(btf), type_id}));
  const Decoder* d = decoders_.back().get();
  if (m.type() == BPF_MAP_TYPE_RINGBUF) {
    const int rc = rings_->add(m, [this, d](const void* data, std::size_t size) {
      push(*d, std::nullopt, data, size);
      return 0;
    });
    if (rc != 0) return make_error(rc, fmt::format("map {}: cannot consume the ring buffer", name));
    ++ring_count_;
  } else if (m.type() == BPF_MAP_TYPE_PERF_EVENT_ARRAY) {
    auto pb = maps::PerfBuffer::open(
        m, [this, d](std::uint32_t cpu, const void* data, std::uint32_t size) { push(*d, cpu, data, size); },
        [this, d](std::uint32_t cpu, std::uint64_t lost) {
          Record r;
          r.map = d->name;
          r.cpu = cpu;
          r.lost = lost;
          records_.push_back(std::move(r));
        });
    if (!pb.ok()) return make_error(pb.error().code, fmt::format("map {}: {}", name, pb.error().message));
    perfs_.push_back(std::move(*pb));
  } else {
    return make_error(EINVAL, fmt::format("map {} is not a ring buffer or perf event array (it is a {} map)", name,
                                          loader::map_type_name(m.type())));
  }
  ++sources_;
  return Ok{};
}

void RecordWatcher::drain() {
  if (ring_count_ != 0) (void)rings_->consume();
  for (auto& p : perfs_) (void)p->consume();
}

void RecordWatcher::poll(int timeout_ms) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms);
  for (;;) {
    drain();
    if (!records_.empty()) return;
    const auto now = clock::now();
    if (timeout_ms >= 0 && now >= deadline) return;
    auto slice = std::chrono::milliseconds(50);
    if (timeout_ms >= 0)
      slice = std::min(slice, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now) +
                                  std::chrono::milliseconds(1));
    if (ring_count_ != 0 && perfs_.empty()) {
      (void)rings_->poll(static_cast<int>(slice.count()));
    } else if (perfs_.size() == 1 && ring_count_ == 0) {
      (void)perfs_[0]->poll(static_cast<int>(slice.count()));
    } else {
      std::this_thread::sleep_for(slice);
    }
  }
}

std::vector<Record> RecordWatcher::take() {
  std::vector<Record> out;
  out.swap(records_);
  return out;
}

std::string record_text(const Record& r) {
  const std::string where = r.cpu ? fmt::format("{} cpu {}", r.map, *r.cpu) : r.map;
  if (r.lost != 0) return fmt::format("{}: lost {} sample{}", where, r.lost, r.lost == 1 ? "" : "s");
  std::string s = fmt::format("{}: {} bytes: {}", where, r.bytes.size(), hex_bytes(r.bytes));
  if (!r.formatted.is_null()) s += "  " + r.formatted.dump();
  return s;
}

nlohmann::json record_json(const Record& r) {
  nlohmann::json j = {{"map", r.map}};
  if (r.cpu) j["cpu"] = *r.cpu;
  if (r.lost != 0) {
    j["lost"] = r.lost;
    return j;
  }
  j["size"] = r.bytes.size();
  j["data"] = hex_json(r.bytes);
  if (!r.formatted.is_null()) j["formatted"] = r.formatted;
  return j;
}

Result<std::uint32_t> find_btf_type(const MapBtf& b, const std::string& name) {
  if (!b.btf) return make_error(ENOENT, fmt::format("type '{}': no BTF", name));
  const std::uint32_t kinds[] = {BTF_KIND_STRUCT, BTF_KIND_UNION, BTF_KIND_TYPEDEF, BTF_KIND_INT, BTF_KIND_ENUM,
                                 BTF_KIND_ENUM64, BTF_KIND_ARRAY};
  std::string plain = name;
  for (const char* prefix : {"struct ", "union ", "enum "})
    if (plain.starts_with(prefix)) plain = plain.substr(std::string_view(prefix).size());
  for (std::uint32_t k : kinds) {
    const int id = btf__find_by_name_kind(b.btf.get(), plain.c_str(), k);
    if (id > 0) return static_cast<std::uint32_t>(id);
  }
  return make_error(ENOENT, fmt::format("type '{}' not found in the BTF (a struct, union, typedef, int or enum name)",
                                        name));
}

}  // namespace userbpf::cli::obj
