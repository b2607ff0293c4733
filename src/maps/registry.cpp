// The registry: the list of map-type rows (each defined in its type's file).
#include "maps/registry.hpp"

#include <array>

namespace userbpf::maps {

namespace {
// Pointers, so that the table is constant-initialised whatever the order of
// static initialisation of the rows.
const std::array kTable = {
    &kHashDesc,       &kArrayDesc,         &kProgArrayDesc,  &kPerfEventArrayDesc, &kPerCpuHashDesc,
    &kPerCpuArrayDesc, &kStackTraceDesc,   &kLruHashDesc,    &kLruPerCpuHashDesc,  &kLpmTrieDesc,
    &kArrayOfMapsDesc, &kHashOfMapsDesc,   &kDevMapDesc,     &kCpuMapDesc,         &kXskMapDesc,
    &kQueueDesc,       &kStackDesc,        &kDevMapHashDesc, &kRingBufDesc,        &kBloomFilterDesc,
};
}  // namespace

std::span<const MapTypeDesc* const> map_types() { return kTable; }

const MapTypeDesc* find_map_type(std::uint32_t type) {
  for (const MapTypeDesc* d : kTable)
    if (d->type == type) return d;
  return nullptr;
}

}  // namespace userbpf::maps
