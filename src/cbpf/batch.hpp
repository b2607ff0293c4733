// Batched, branch-free native evaluation of classic socket filters (see the
// design comment in batch.cpp). One call filters a whole array of packets:
// the loop over the packets is native code around the filter body, and the
// body has no data-dependent branch (every classic instruction is evaluated
// under a 0/1 predicate), so a mixed packet stream does not mispredict.
//
// Used through cbpf::Filter::run_batch (exec.hpp), which also reruns the
// packets the native code could not decide (punts) on the per-packet path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "base/error.hpp"
#include "cbpf/cbpf.hpp"

namespace userbpf::cbpf {

// One packet of a batch: its captured bytes (the loads' bounds) and its
// length on the wire (BPF_LEN).
struct Frame {
  const std::uint8_t* data = nullptr;
  std::uint32_t caplen = 0;
  std::uint32_t wirelen = 0;
};
static_assert(sizeof(Frame) == 16);

class BatchCode {
 public:
  // Compiles a socket filter (checked here with cbpf::check). Errors say why
  // a program is not batched, naming the instruction: ancillary loads and
  // negative constant offsets (SKF_NET_OFF / SKF_LL_OFF: they read the
  // context), backward jumps (libpcap's loops), more than kMaxInsns
  // instructions (every instruction runs for every packet).
  static Result<BatchCode> compile(std::span<const Insn> prog);
  static constexpr std::size_t kMaxInsns = 512;

  BatchCode(BatchCode&&) noexcept;
  BatchCode& operator=(BatchCode&&) noexcept;
  ~BatchCode();

  // out[i] = the filter's return value for frames[i], for every i < n, except
  // for the packets listed in punts (their indexes, ascending; the count is
  // returned): an `ld [x + k]` whose X + k is negative as a signed 32-bit
  // offset (SKF_NET_OFF / SKF_LL_OFF areas, which need the context) leaves
  // out[i] undefined; the caller runs those on the per-packet path.
  // `punts` must have room for n entries. Thread-safe.
  std::size_t run(const Frame* frames, std::size_t n, std::uint32_t* out, std::uint32_t* punts) const {
    return fn_(frames, n, out, punts);
  }
  [[nodiscard]] std::size_t code_size() const;
  // The machine code (for listings).
  [[nodiscard]] std::span<const std::uint8_t> code() const;
  // Whether some `ld [x + k]` may punt (X not known small).
  [[nodiscard]] bool may_punt() const;

 private:
  using Fn = std::size_t (*)(const Frame*, std::size_t, std::uint32_t*, std::uint32_t*);
  struct Code;
  explicit BatchCode(std::unique_ptr<Code> code);
  std::unique_ptr<Code> code_;
  Fn fn_ = nullptr;
};

}  // namespace userbpf::cbpf
