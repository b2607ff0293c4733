#include "inputs.hpp"

#include <array>
#include <utility>

namespace userbpf::bench {

namespace {

// xorshift64*: a fixed, portable generator (no std::*_distribution, whose
// output differs between standard libraries).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : s_(seed * 0x9e3779b97f4a7c15ull + 1) {}
  std::uint64_t next() {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 0x2545f4914f6cdd1dull;
  }
  std::uint32_t below(std::uint32_t n) { return static_cast<std::uint32_t>(next() % n); }
  std::uint8_t byte() { return static_cast<std::uint8_t>(next() >> 56); }

 private:
  std::uint64_t s_;
};

std::uint64_t seed_of(std::string_view name) {
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a of the name
  for (char c : name) h = (h ^ static_cast<std::uint8_t>(c)) * 0x100000001b3ull;
  return h;
}

std::vector<std::uint8_t> random_memory(Rng& rng) {
  std::vector<std::uint8_t> m(kProgMemSize);
  for (auto& b : m) b = rng.byte();
  return m;
}

void put16be(std::vector<std::uint8_t>& m, std::size_t at, std::uint32_t v) {
  m[at] = static_cast<std::uint8_t>(v >> 8);
  m[at + 1] = static_cast<std::uint8_t>(v);
}

// 16 slots of 128 bytes: 2-byte little-endian length, then an Ethernet frame
// of one of eight kinds (see progs/parse_pkt.bpf.c).
std::vector<std::uint8_t> packets(Rng& rng) {
  std::vector<std::uint8_t> m = random_memory(rng);
  for (std::size_t i = 0; i < 16; ++i) {
    const std::size_t slot = i * 128;
    const std::size_t d = slot + 2;
    const unsigned kind = static_cast<unsigned>(i % 8);
    std::uint32_t plen = 60 + rng.below(60);
    std::size_t off = 14;
    std::uint32_t ethertype = 0x0800;
    if (kind == 2 || kind == 6) {
      put16be(m, d + 12, 0x8100);
      put16be(m, d + 14, rng.below(4096));
      off = 18;
    }
    if (kind == 3) ethertype = 0x86dd;
    put16be(m, d + off - 2, ethertype);
    const std::uint32_t ihl = kind == 1 ? 6 : kind == 6 ? 7 : 5;
    m[d + off] = static_cast<std::uint8_t>(0x40 | ihl);
    const std::uint8_t proto = kind == 4 ? 1 : (kind == 1 || kind == 6) ? 17 : 6;
    m[d + off + 9] = proto;
    if (kind == 5) plen = 30;  // truncated IPv4 header
    m[slot] = static_cast<std::uint8_t>(plen);
    m[slot + 1] = static_cast<std::uint8_t>(plen >> 8);
  }
  return m;
}

// 1024 bytes of "Name: value\r\n" lines, about one in eight malformed.
std::vector<std::uint8_t> header_text(Rng& rng) {
  static constexpr std::array<std::string_view, 8> kNames = {
      "Host", "User-Agent", "Accept", "Content-Length", "X-Request-Id", "Cache-Control", "Cookie", "Via"};
  std::vector<std::uint8_t> m = random_memory(rng);
  std::string text;
  while (text.size() < 1024) {
    const std::uint32_t r = rng.below(8);
    text += kNames[rng.below(8)];
    if (r == 0)
      text += " broken";  // no colon: malformed
    else
      text += ": ";
    const std::uint32_t n = 4 + rng.below(28);
    for (std::uint32_t k = 0; k < n; ++k) text += static_cast<char>('!' + rng.below(90));
    text += "\r\n";
  }
  for (std::size_t i = 0; i < 1024; ++i) m[i] = static_cast<std::uint8_t>(text[i]);
  return m;
}

// [1792, 2048) equals [768, 1024) except one byte near the end.
std::vector<std::uint8_t> copy_regions(Rng& rng) {
  std::vector<std::uint8_t> m = random_memory(rng);
  for (std::size_t i = 0; i < 256; ++i) m[1792 + i] = m[768 + i];
  m[1792 + 200] = static_cast<std::uint8_t>(m[768 + 200] ^ 0x5a);
  return m;
}

// 1024 little-endian u16 links next[0..1024) forming one chain through every
// node: 0 -> p[0] -> p[1] -> ... -> p[1022] -> 0, p a random permutation of
// 1..1023 (Fisher-Yates with the generator above). Bytes past 2048: none.
std::vector<std::uint8_t> chain(Rng& rng) {
  std::vector<std::uint8_t> m = random_memory(rng);
  std::vector<std::uint32_t> order(1023);
  for (std::uint32_t i = 0; i < order.size(); ++i) order[i] = i + 1;
  for (std::size_t i = order.size() - 1; i > 0; --i) std::swap(order[i], order[rng.below(static_cast<std::uint32_t>(i + 1))]);
  const auto link = [&m](std::uint32_t from, std::uint32_t to) {
    m[from * 2] = static_cast<std::uint8_t>(to);
    m[from * 2 + 1] = static_cast<std::uint8_t>(to >> 8);
  };
  std::uint32_t cur = 0;
  for (std::uint32_t n : order) {
    link(cur, n);
    cur = n;
  }
  link(cur, 0);
  return m;
}

}  // namespace

std::vector<std::uint8_t> prog_input(std::string_view name) {
  Rng rng(seed_of(name));
  if (name == "parse_pkt") return packets(rng);
  if (name == "state_machine") return header_text(rng);
  if (name == "memcpy_cmp") return copy_regions(rng);
  // the same chain for both loop forms (seeded by one name) so that they do the same work
  if (name == "loop_bounded" || name == "may_goto") {
    Rng shared(seed_of("chain"));
    return chain(shared);
  }
  return random_memory(rng);
}

std::string prog_description(std::string_view name) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 16> kWhat = {{
      {"parse_pkt", "16 Ethernet/VLAN/IPv4/L4 frames parsed with length checks, flow hash"},
      {"jhash", "lookup3 jhash of 16 x 60-byte keys"},
      {"fnv1a", "64-bit FNV-1a over 2048 bytes"},
      {"csum", "RFC 1071 checksum of 1500 bytes (+3 partial sums)"},
      {"crc32", "bitwise CRC-32 of 128 bytes (nested loops)"},
      {"bits", "popcount, clz loop, parity, bit reverse on 128 words"},
      {"state_machine", "header-line parser state machine over 1024 bytes"},
      {"muldiv", "64/32-bit div, mod, mul on 255 word pairs"},
      {"memcpy_cmp", "256-byte memcpy, 512-byte word copy, memcmp loops"},
      {"calls", "256 x three non-inlined bpf-to-bpf calls"},
      {"matmul", "12x12 u32 matrix product (triple nested loop)"},
      {"map_array", "1345 array-map lookups + in-place updates driven by input bytes"},
      {"map_hash", "hash map of 16-byte flow keys: 64 updates, 584 lookups (1/4 missing), 8 deletes"},
      {"helpers", "bpf_loop x512 (callback with a map lookup), map updates, ktime/prandom/cpu calls"},
      {"loop_bounded", "pointer chase of a 1024-node chain, loop bounded by a counter"},
      {"may_goto", "the same pointer chase, loop bounded only by may_goto (clang-19, v4)"},
  }};
  for (const auto& [n, w] : kWhat)
    if (n == name) return std::string(w);
  return {};
}

}  // namespace userbpf::bench
