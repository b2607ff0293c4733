// The kernel's maps through raw bpf() (differential tests, benchmark).
#pragma once

#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "maps/map.hpp"

namespace userbpf::maps::test {

inline long kbpf(int cmd, bpf_attr& a) { return ::syscall(__NR_bpf, cmd, &a, sizeof a); }
inline int kerr(long r) { return r < 0 ? errno : 0; }

// fd, or -errno
inline int kcreate(const MapSpec& s, int inner_fd = -1) {
  bpf_attr a{};
  a.map_type = s.type;
  a.key_size = s.key_size;
  a.value_size = s.value_size;
  a.max_entries = s.max_entries;
  a.map_flags = s.map_flags;
  a.map_extra = s.map_extra;
  a.inner_map_fd = static_cast<std::uint32_t>(inner_fd);
  std::strncpy(a.map_name, s.name.c_str(), sizeof a.map_name - 1);
  const long r = kbpf(BPF_MAP_CREATE, a);
  return r < 0 ? -errno : static_cast<int>(r);
}

inline int kop(int cmd, int fd, const void* key, void* value, std::uint64_t flags) {
  bpf_attr a{};
  a.map_fd = static_cast<std::uint32_t>(fd);
  a.key = reinterpret_cast<std::uint64_t>(key);
  a.value = reinterpret_cast<std::uint64_t>(value);
  a.flags = flags;
  return kerr(kbpf(cmd, a));
}
inline int knext(int fd, const void* key, void* next) {
  bpf_attr a{};
  a.map_fd = static_cast<std::uint32_t>(fd);
  a.key = reinterpret_cast<std::uint64_t>(key);
  a.next_key = reinterpret_cast<std::uint64_t>(next);
  return kerr(kbpf(BPF_MAP_GET_NEXT_KEY, a));
}

}  // namespace userbpf::maps::test
