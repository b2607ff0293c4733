#include "programs.hpp"

#include <map>
#include <stdexcept>

namespace userbpf::bench {

namespace {

using isa::Op;

// Appends instructions; jumps and local calls name a label, resolved by build().
class Builder {
 public:
  Builder& op(Op o, std::uint8_t dst = 0, std::uint8_t src = 0, std::int16_t off = 0, std::int32_t imm = 0) {
    insns_.push_back(isa::make(o, dst, src, off, imm));
    return *this;
  }
  Builder& k(Op o, std::uint8_t dst, std::int32_t imm) { return op(o, dst, 0, 0, imm); }
  Builder& x(Op o, std::uint8_t dst, std::uint8_t src) { return op(o, dst, src); }
  Builder& ld(Op o, std::uint8_t dst, std::uint8_t src, std::int16_t off) { return op(o, dst, src, off); }
  Builder& st(Op o, std::uint8_t dst, std::uint8_t src, std::int16_t off) { return op(o, dst, src, off); }
  // conditional jump with an immediate / a register, or ja (o = Op::Ja)
  Builder& jk(Op o, std::uint8_t dst, std::int32_t imm, const std::string& label) {
    fix_.push_back({insns_.size(), label});
    return op(o, dst, 0, 0, imm);
  }
  Builder& jx(Op o, std::uint8_t dst, std::uint8_t src, const std::string& label) {
    fix_.push_back({insns_.size(), label});
    return op(o, dst, src);
  }
  Builder& ja(const std::string& label) { return jk(Op::Ja, 0, 0, label); }
  Builder& call(const std::string& label) {
    fix_.push_back({insns_.size(), label});
    return op(Op::CallLocal);
  }
  Builder& exit() { return op(Op::Exit); }
  Builder& label(const std::string& name) {
    labels_[name] = insns_.size();
    return *this;
  }
  std::vector<isa::Insn> build() {
    for (const auto& [at, name] : fix_) {
      const auto it = labels_.find(name);
      if (it == labels_.end()) throw std::logic_error("bench program: unknown label " + name);
      const auto delta = static_cast<std::int64_t>(it->second) - static_cast<std::int64_t>(at) - 1;
      isa::Insn& in = insns_[at];
      if (in.op == Op::CallLocal)
        in.imm = static_cast<std::int32_t>(delta);
      else
        in.off = static_cast<std::int16_t>(delta);
    }
    return insns_;
  }

 private:
  std::vector<isa::Insn> insns_;
  std::map<std::string, std::size_t> labels_;
  std::vector<std::pair<std::size_t, std::string>> fix_;
};

std::vector<std::uint8_t> random_bytes(std::uint64_t seed) {
  std::vector<std::uint8_t> m(kMemorySize);
  std::uint64_t s = seed;
  for (auto& b : m) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    b = static_cast<std::uint8_t>(s >> 56);
  }
  return m;
}

// Text of words, numbers and spaces for the tokenizer.
std::vector<std::uint8_t> text_bytes() {
  std::vector<std::uint8_t> m = random_bytes(7);
  for (auto& b : m) {
    const unsigned v = b % 10;
    b = v < 3 ? ' ' : v < 7 ? static_cast<std::uint8_t>('a' + b % 26) : static_cast<std::uint8_t>('0' + b % 10);
  }
  return m;
}

// r0 mixes registers with ALU64 and ALU32 operations, 10000 iterations.
BenchProgram alu_loop() {
  Builder b;
  b.k(Op::MovImm, 0, 0).k(Op::MovImm, 3, 1).k(Op::MovImm, 4, 0x12345).k(Op::MovImm, 6, 0);
  b.label("loop");
  b.x(Op::AddReg, 0, 3).x(Op::XorReg, 0, 4).k(Op::MulImm, 3, 3).k(Op::AddImm, 3, 7);
  b.k(Op::LshImm, 4, 1).x(Op::OrReg, 4, 6).x(Op::MovReg, 5, 0).k(Op::RshImm, 5, 7);
  b.x(Op::XorReg, 0, 5).k(Op::Add32Imm, 4, 0x3141).x(Op::Sub32Reg, 5, 3).x(Op::AddReg, 0, 5);
  b.k(Op::AddImm, 6, 1).jk(Op::JltImm, 6, 10000, "loop");
  b.exit();
  return {"alu_loop", "10000 x 14 ALU64/ALU32 ops, register-only", b.build(), random_bytes(1)};
}

// Iterative Fibonacci modulo 2^64, n = 20000.
BenchProgram fibonacci() {
  Builder b;
  b.k(Op::MovImm, 0, 0).k(Op::MovImm, 3, 1).k(Op::MovImm, 6, 0);
  b.label("loop");
  b.x(Op::MovReg, 4, 0).x(Op::AddReg, 4, 3).x(Op::MovReg, 0, 3).x(Op::MovReg, 3, 4);
  b.k(Op::AddImm, 6, 1).jk(Op::JltImm, 6, 20000, "loop");
  b.exit();
  return {"fibonacci", "fib(20000) mod 2^64, iterative", b.build(), random_bytes(2)};
}

// Internet checksum (RFC 1071) over a 1500-byte packet, 16-bit loads.
BenchProgram checksum() {
  Builder b;
  b.k(Op::MovImm, 0, 0).k(Op::MovImm, 3, 0);
  b.label("loop");
  b.x(Op::MovReg, 4, 1).x(Op::AddReg, 4, 3).ld(Op::LdxH, 5, 4, 0).x(Op::AddReg, 0, 5);
  b.k(Op::AddImm, 3, 2).jk(Op::JltImm, 3, 1500, "loop");
  for (int i = 0; i < 2; ++i) b.x(Op::MovReg, 5, 0).k(Op::RshImm, 5, 16).k(Op::AndImm, 0, 0xffff).x(Op::AddReg, 0, 5);
  b.k(Op::XorImm, 0, 0xffff).exit();
  return {"checksum_1500", "one's-complement checksum over 1500 bytes (750 x ldxh)", b.build(), random_bytes(3)};
}

// Copies 1 KiB (8-byte words) from memory[0] to memory[2048], 4 times, then
// hashes the copy.
BenchProgram memcpy_loop() {
  Builder b;
  b.k(Op::MovImm, 0, 0).k(Op::MovImm, 7, 0);
  b.label("outer").k(Op::MovImm, 3, 0);
  b.label("copy");
  b.x(Op::MovReg, 4, 1).x(Op::AddReg, 4, 3).ld(Op::LdxDW, 5, 4, 0).st(Op::StxDW, 4, 5, 2048);
  b.k(Op::AddImm, 3, 8).jk(Op::JltImm, 3, 1024, "copy");
  b.k(Op::AddImm, 7, 1).jk(Op::JltImm, 7, 4, "outer");
  b.k(Op::MovImm, 3, 0);
  b.label("hash");
  b.x(Op::MovReg, 4, 1).x(Op::AddReg, 4, 3).ld(Op::LdxDW, 5, 4, 2048).x(Op::XorReg, 0, 5).k(Op::MulImm, 0, 31);
  b.k(Op::AddImm, 3, 8).jk(Op::JltImm, 3, 1024, "hash");
  b.exit();
  return {"memcpy_1k", "4 x 1 KiB copy by 8-byte words, then a hash of the copy", b.build(), random_bytes(4)};
}

// A tokenizer state machine over 1024 bytes of text: counts words and numbers
// and sums the digits; data-dependent branches on every byte.
BenchProgram state_machine() {
  // r3 index, r6 state (0 space, 1 word, 2 number), r7 words, r8 numbers, r9 digit sum
  Builder b;
  b.k(Op::MovImm, 3, 0).k(Op::MovImm, 6, 0).k(Op::MovImm, 7, 0).k(Op::MovImm, 8, 0).k(Op::MovImm, 9, 0);
  b.label("loop");
  b.x(Op::MovReg, 4, 1).x(Op::AddReg, 4, 3).ld(Op::LdxB, 5, 4, 0);
  b.jk(Op::JeqImm, 5, ' ', "space");
  b.jk(Op::JltImm, 5, '0', "other");
  b.jk(Op::JgtImm, 5, '9', "other");
  // digit
  b.x(Op::AddReg, 9, 5).k(Op::SubImm, 9, '0');
  b.jk(Op::JeqImm, 6, 2, "next");
  b.k(Op::AddImm, 8, 1).k(Op::MovImm, 6, 2).ja("next");
  b.label("other");
  b.jk(Op::JeqImm, 6, 1, "next");
  b.k(Op::AddImm, 7, 1).k(Op::MovImm, 6, 1).ja("next");
  b.label("space").k(Op::MovImm, 6, 0);
  b.label("next").k(Op::AddImm, 3, 1).jk(Op::JltImm, 3, 1024, "loop");
  b.x(Op::MovReg, 0, 7).k(Op::LshImm, 0, 20).x(Op::MovReg, 5, 8).k(Op::LshImm, 5, 40).x(Op::OrReg, 0, 5);
  b.x(Op::AddReg, 0, 9).exit();
  return {"state_machine", "tokenizer over 1024 bytes: 3 states, data-dependent branches", b.build(), text_bytes()};
}

// bpf-to-bpf calls: 2000 iterations of r0 = f(r0, i), f calls g (3 frames).
BenchProgram calls() {
  Builder b;
  b.k(Op::MovImm, 0, 1).k(Op::MovImm, 6, 0);
  b.label("loop");
  b.x(Op::MovReg, 1, 0).x(Op::MovReg, 2, 6).call("f");
  b.k(Op::AddImm, 6, 1).jk(Op::JltImm, 6, 2000, "loop");
  b.exit();
  b.label("f");  // f(a, b) = g(a ^ b) + b
  b.x(Op::MovReg, 6, 2).x(Op::XorReg, 1, 2).call("g").x(Op::AddReg, 0, 6).exit();
  b.label("g");  // g(x) = (x * 31 + 7) ^ (x >> 3)
  b.x(Op::MovReg, 0, 1).k(Op::MulImm, 0, 31).k(Op::AddImm, 0, 7).k(Op::RshImm, 1, 3).x(Op::XorReg, 0, 1).exit();
  return {"calls", "2000 x two nested bpf-to-bpf calls (3 frames)", b.build(), random_bytes(5)};
}

// Division-heavy: unsigned and signed 64/32-bit division and modulo by a
// register, 3000 iterations.
BenchProgram division() {
  Builder c;
  c.k(Op::MovImm, 0, 0).k(Op::MovImm, 6, 1).k(Op::MovImm, 7, 0x7654321);
  c.label("loop");
  c.x(Op::MovReg, 3, 7).x(Op::DivReg, 3, 6).x(Op::AddReg, 0, 3);
  c.x(Op::MovReg, 3, 7).x(Op::ModReg, 3, 6).x(Op::XorReg, 0, 3);
  c.x(Op::MovReg, 3, 0).x(Op::Div32Reg, 3, 6).x(Op::AddReg, 0, 3);
  c.x(Op::MovReg, 3, 0).x(Op::SModReg, 3, 6).x(Op::SubReg, 0, 3);
  c.k(Op::AddImm, 7, 12345);
  c.k(Op::AddImm, 6, 1).jk(Op::JltImm, 6, 3000, "loop");
  c.exit();
  return {"division", "3000 x (div, mod, div32, smod) by a register", c.build(), random_bytes(6)};
}

// Parses 1496 bytes as big-endian u32 and u16 fields (network byte order).
BenchProgram byteswap_parse() {
  Builder b;
  b.k(Op::MovImm, 0, 0).k(Op::MovImm, 3, 0);
  b.label("loop");
  b.x(Op::MovReg, 4, 1).x(Op::AddReg, 4, 3).ld(Op::LdxW, 5, 4, 0).k(Op::Be32, 5, 0);
  b.ld(Op::LdxH, 6, 4, 2).k(Op::Be16, 6, 0);
  b.x(Op::MovReg, 7, 0).k(Op::LshImm, 0, 5).k(Op::RshImm, 7, 59).x(Op::OrReg, 0, 7);
  b.x(Op::XorReg, 0, 5).x(Op::AddReg, 0, 6);
  b.k(Op::AddImm, 3, 4).jk(Op::JltImm, 3, 1496, "loop");
  b.k(Op::Be64, 0, 0).exit();
  return {"bswap_parse", "374 x (ldxw+be32, ldxh+be16, rotate, mix)", b.build(), random_bytes(8)};
}

// Stack traffic: a 64-byte array on the stack, 8 rounds of fill and reduce.
BenchProgram stack_array() {
  Builder b;
  b.k(Op::MovImm, 0, 0).k(Op::MovImm, 7, 0);
  b.label("round").k(Op::MovImm, 3, 0);
  b.label("fill");
  b.x(Op::MovReg, 4, 10).k(Op::AddImm, 4, -512).x(Op::AddReg, 4, 3);
  b.x(Op::MovReg, 5, 3).x(Op::MulReg, 5, 7).st(Op::StxDW, 4, 5, 0);
  b.k(Op::AddImm, 3, 8).jk(Op::JltImm, 3, 512, "fill");
  b.k(Op::MovImm, 3, 0);
  b.label("sum");
  b.x(Op::MovReg, 4, 10).k(Op::AddImm, 4, -512).x(Op::AddReg, 4, 3).ld(Op::LdxDW, 5, 4, 0).x(Op::AddReg, 0, 5);
  b.k(Op::AddImm, 3, 8).jk(Op::JltImm, 3, 512, "sum");
  b.k(Op::AddImm, 7, 1).jk(Op::JltImm, 7, 8, "round");
  b.exit();
  return {"stack_array", "8 x (fill + sum of a 512-byte stack array by 8-byte words)", b.build(), random_bytes(9)};
}

}  // namespace

std::vector<BenchProgram> programs() {
  return {alu_loop(), fibonacci(), checksum(),       memcpy_loop(), state_machine(),
          calls(),    division(),  byteswap_parse(), stack_array()};
}

}  // namespace userbpf::bench
