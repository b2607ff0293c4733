#include "abi/abi.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace userbpf::abi {

std::string_view region_kind_name(RegionKind k) {
  switch (k) {
    case RegionKind::Context: return "context";
    case RegionKind::Packet: return "packet";
    case RegionKind::PacketMeta: return "packet meta";
    case RegionKind::Stack: return "stack";
    case RegionKind::MapValue: return "map value";
    case RegionKind::Memory: return "memory";
    case RegionKind::ReadOnly: return "read-only memory";
  }
  return "?";
}

std::string_view fault_name(Fault f) {
  switch (f) {
    case Fault::None: return "none";
    case Fault::MemoryViolation: return "memory violation";
    case Fault::Budget: return "instruction budget exhausted";
    case Fault::CallDepth: return "call depth exceeded";
    case Fault::UnknownHelper: return "unknown helper";
    case Fault::BadCallTarget: return "bad call target";
    case Fault::FellOffEnd: return "fell off the end";
    case Fault::HelperFailed: return "helper failed";
  }
  return "?";
}

void HelperTable::set(std::uint32_t id, std::string name, HelperFn fn, std::uint8_t flags) {
  if (id >= helpers_.size()) helpers_.resize(static_cast<std::size_t>(id) + 1);
  helpers_[id] = Helper{fn, std::move(name), flags};
}

void HelperTable::set_kfunc(std::uint32_t btf_id, std::string name, HelperFn fn) {
  for (auto& [id, h] : kfuncs_) {
    if (id == btf_id) {
      h = Helper{fn, std::move(name)};
      return;
    }
  }
  kfuncs_.emplace_back(btf_id, Helper{fn, std::move(name)});
}

const Helper* HelperTable::find_kfunc(std::uint32_t btf_id) const {
  for (const auto& [id, h] : kfuncs_)
    if (id == btf_id) return &h;
  return nullptr;
}

const Region* Env::find_region(std::uint64_t addr, std::uint64_t len, bool write) const {
  for (const Region& r : regions)
    if (r.contains(addr, len) && (!write || r.writable)) return &r;
  return nullptr;
}

Error memory_violation(std::size_t pc, std::uint64_t addr, std::uint64_t size, bool write) {
  return insn_error(EFAULT, pc,
                    fmt::format("invalid {} of {} byte{} at 0x{:x}: outside every memory region of this run",
                                write ? "write" : "read", size, size == 1 ? "" : "s", addr));
}
Error budget_exhausted(std::size_t pc, std::uint64_t budget) {
  return insn_error(E2BIG, pc, fmt::format("instruction budget of {} exhausted", budget));
}
Error call_depth_exceeded(std::size_t pc) {
  return insn_error(E2BIG, pc, fmt::format("call depth exceeds {} frames", 8));
}
Error unknown_helper(std::size_t pc, std::uint32_t id) {
  return insn_error(ENOENT, pc, fmt::format("call to unknown helper {}", id));
}
Error unknown_kfunc(std::size_t pc, std::uint32_t btf_id) {
  return insn_error(ENOENT, pc, fmt::format("call to unknown kfunc with BTF id {}", btf_id));
}
Error bad_call_target(std::size_t pc, std::uint64_t value) {
  return insn_error(EINVAL, pc, fmt::format("callx to 0x{:x}: neither a helper id nor a function address", value));
}
Error fell_off_end(std::size_t pc) {
  return insn_error(EINVAL, pc, "execution ran past the last instruction");
}
Error helper_failed(std::size_t pc, const Env& env) {
  return insn_error(env.fail_code(), pc, env.fail_message());
}

}  // namespace userbpf::abi
