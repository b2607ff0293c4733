// pcap input/output for `prog run` (src/hooks packet I/O), in its own translation unit:
// <pcap/pcap.h> brings libpcap's struct bpf_insn, which clashes with
// <linux/bpf.h> used by the runtime.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.hpp"

namespace userbpf::cli::obj {

inline constexpr int kLinkEthernet = 1;  // DLT_EN10MB

struct Packet {
  std::vector<std::uint8_t> bytes;
  std::int64_t sec = 0, usec = 0;
};

struct PcapIn {
  std::vector<Packet> packets;
  int linktype = kLinkEthernet;
};

// All packets of a pcap file; errors name the file and the packet index.
Result<PcapIn> read_pcap(const std::string& path);
std::string linktype_name(int linktype);

class PcapOut {
 public:
  PcapOut();
  ~PcapOut();
  PcapOut(const PcapOut&) = delete;
  PcapOut& operator=(const PcapOut&) = delete;
  Status open(const std::string& path, int linktype);
  void write(const std::vector<std::uint8_t>& bytes, const Packet& like);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace userbpf::cli::obj
