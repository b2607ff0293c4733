// Classic BPF text forms: printers and one parser for all of them.
//
// Printers:
//   - tcpdump -d   "(000) ldh      [12]" exactly as libpcap's bpf_image
//                  prints (tests compare with bpf_image for every code it
//                  knows; `ldx #pktlen`, which bpf_image calls "unimp", is
//                  printed in the same style).
//   - tcpdump -dd  "{ 0x28, 0, 0, 0x0000000c },"
//   - tcpdump -ddd count line, then "code jt jf k" in decimal.
//   - bpf_asm      the kernel's tools/bpf/bpf_asm syntax ("ldh [12]",
//                  "jeq #0x800, L3, L9", "ret #65535"), labels "L<pc>:".
// Parser: the input's first non-blank line selects the form ("(" listing,
// "{" C array, digits only: decimal, else bpf_asm). Mnemonic + operand shape
// give a cbpf::Kind; the row is found in the classic table by (mnemonic,
// kind), so no code value is spelled here. bpf_asm's pseudo jumps (jne/jneq,
// jlt, jle) become the real row with swapped targets. Labels are resolved
// after the whole text is read. Errors carry line and column.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>
#include <optional>
#include <set>

#include "cbpf/cbpf.hpp"

namespace userbpf::cbpf {
namespace {

const OpInfo& row_of(const Insn& in) { return *lookup(in.code); }

std::string signed_dec(std::uint32_t k) { return fmt::format("{}", static_cast<std::int32_t>(k)); }

// ---------------------------------------------------------------- tcpdump -d operand
std::string tcpdump_operand(const Insn& in, std::size_t pc) {
  const OpInfo& row = row_of(in);
  switch (row.kind) {
    case Kind::LdAbs:
      if (const AncInfo* a = ancillary(in.k)) return fmt::format("[{}]", a->tcpdump);
      return fmt::format("[{}]", signed_dec(in.k));
    case Kind::LdInd: return fmt::format("[x + {}]", signed_dec(in.k));
    case Kind::LdLen:
    case Kind::LdxLen: return "#pktlen";
    case Kind::LdImm:
    case Kind::LdxImm: return fmt::format("#{:#x}", in.k);
    case Kind::LdMem:
    case Kind::LdxMem:
    case Kind::St:
    case Kind::Stx: return fmt::format("M[{}]", signed_dec(in.k));
    case Kind::LdxMsh: return fmt::format("4*([{}]&0xf)", signed_dec(in.k));
    case Kind::AluK:
      if (row.op == Op::OrK || row.op == Op::AndK || row.op == Op::XorK) return fmt::format("#{:#x}", in.k);
      return fmt::format("#{}", signed_dec(in.k));
    case Kind::AluX:
    case Kind::JmpX: return "x";
    case Kind::JmpK: return fmt::format("#{:#x}", in.k);
    case Kind::Ja: return fmt::format("{}", static_cast<std::int64_t>(pc) + 1 + static_cast<std::int32_t>(in.k));
    case Kind::RetK: return fmt::format("#{}", signed_dec(in.k));
    case Kind::Neg:
    case Kind::RetA:
    case Kind::Tax:
    case Kind::Txa: return "";
  }
  return "";
}

std::string number(std::uint32_t k) { return k < 10 ? fmt::format("{}", k) : fmt::format("{:#x}", k); }
std::string offset_text(std::uint32_t k) {
  return static_cast<std::int32_t>(k) >= 0 ? fmt::format("{}", k) : fmt::format("{:#x}", k);
}

}  // namespace

std::string print_tcpdump_one(const Insn& in, std::size_t pc) {
  const OpInfo* row = lookup(in.code);
  if (row == nullptr) return fmt::format("({:03d}) {:<8} {:#x}", pc, "unimp", in.code);
  const std::string operand = tcpdump_operand(in, pc);
  if (row->kind == Kind::JmpK || row->kind == Kind::JmpX)
    return fmt::format("({:03d}) {:<8} {:<16} jt {}\tjf {}", pc, row->mnemonic, operand, pc + 1 + in.jt,
                       pc + 1 + in.jf);
  return fmt::format("({:03d}) {:<8} {}", pc, row->mnemonic, operand);
}

std::string print_tcpdump(std::span<const Insn> prog) {
  std::string out;
  for (std::size_t pc = 0; pc < prog.size(); ++pc) out += print_tcpdump_one(prog[pc], pc) + "\n";
  return out;
}

std::string print_c_array(std::span<const Insn> prog) {
  std::string out;
  for (const Insn& in : prog) out += fmt::format("{{ {:#x}, {}, {}, {:#010x} }},\n", in.code, in.jt, in.jf, in.k);
  return out;
}

std::string print_decimal(std::span<const Insn> prog) {
  std::string out = fmt::format("{}\n", prog.size());
  for (const Insn& in : prog) out += fmt::format("{} {} {} {}\n", in.code, in.jt, in.jf, in.k);
  return out;
}

std::string print_bpf_asm(std::span<const Insn> prog) {
  std::set<std::size_t> targets;
  for (std::size_t pc = 0; pc < prog.size(); ++pc) {
    const OpInfo* row = lookup(prog[pc].code);
    if (row == nullptr) continue;
    if (row->kind == Kind::Ja)
      targets.insert(static_cast<std::size_t>(static_cast<std::int64_t>(pc) + 1 + static_cast<std::int32_t>(prog[pc].k)));
    if (row->kind == Kind::JmpK || row->kind == Kind::JmpX) {
      targets.insert(pc + 1 + prog[pc].jt);
      targets.insert(pc + 1 + prog[pc].jf);
    }
  }
  std::string out;
  for (std::size_t pc = 0; pc < prog.size(); ++pc) {
    const Insn& in = prog[pc];
    if (targets.count(pc) != 0) out += fmt::format("L{}:\n", pc);
    const OpInfo* row = lookup(in.code);
    if (row == nullptr) {
      out += fmt::format("\t; unknown classic code {:#x} (jt {} jf {} k {:#x})\n", in.code, in.jt, in.jf, in.k);
      continue;
    }
    std::string operand;
    switch (row->kind) {
      case Kind::LdAbs:
        if (const AncInfo* a = ancillary(in.k))
          operand = fmt::format("#{}", a->bpf_asm);
        else
          operand = fmt::format("[{}]", offset_text(in.k));
        break;
      case Kind::LdInd: operand = fmt::format("[x + {}]", offset_text(in.k)); break;
      case Kind::LdLen:
      case Kind::LdxLen: operand = "#len"; break;
      case Kind::LdImm:
      case Kind::LdxImm:
      case Kind::AluK:
      case Kind::RetK: operand = "#" + number(in.k); break;
      case Kind::LdMem:
      case Kind::LdxMem:
      case Kind::St:
      case Kind::Stx: operand = fmt::format("M[{}]", in.k); break;
      case Kind::LdxMsh: operand = fmt::format("4*([{}]&0xf)", offset_text(in.k)); break;
      case Kind::AluX: operand = "x"; break;
      case Kind::Ja:
        operand = fmt::format("L{}", static_cast<std::int64_t>(pc) + 1 + static_cast<std::int32_t>(in.k));
        break;
      case Kind::JmpK:
      case Kind::JmpX: {
        const std::string src = row->kind == Kind::JmpX ? "x" : "#" + number(in.k);
        if (in.jf == 0)
          operand = fmt::format("{}, L{}", src, pc + 1 + in.jt);
        else
          operand = fmt::format("{}, L{}, L{}", src, pc + 1 + in.jt, pc + 1 + in.jf);
        break;
      }
      case Kind::RetA: operand = "a"; break;
      case Kind::Neg:
      case Kind::Tax:
      case Kind::Txa: break;
    }
    out += operand.empty() ? fmt::format("\t{}\n", row->mnemonic) : fmt::format("\t{} {}\n", row->mnemonic, operand);
  }
  return out;
}

// ================================================================ parsing
namespace {

struct Cursor {
  std::string_view s;
  std::size_t pos = 0;
  std::size_t line = 1;
  std::size_t col0 = 0;  // column offset of s within the line

  void skip_ws() {
    while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\t')) ++pos;
  }
  [[nodiscard]] bool done() {
    skip_ws();
    return pos >= s.size();
  }
  bool eat(std::string_view t) {
    skip_ws();
    if (s.substr(pos, t.size()) == t) {
      pos += t.size();
      return true;
    }
    return false;
  }
  bool eat_ci(std::string_view t) {
    skip_ws();
    if (s.size() - pos < t.size()) return false;
    for (std::size_t i = 0; i < t.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(s[pos + i])) != t[i]) return false;
    pos += t.size();
    return true;
  }
  std::string_view word() {
    skip_ws();
    const std::size_t b = pos;
    while (pos < s.size() && (std::isalnum(static_cast<unsigned char>(s[pos])) != 0 || s[pos] == '_' || s[pos] == '.'))
      ++pos;
    return s.substr(b, pos - b);
  }
  [[nodiscard]] Error error(std::string msg) const {
    Error e = make_error(EINVAL, std::move(msg));
    e.line = line;
    e.column = col0 + pos + 1;
    return e;
  }
  // An integer: decimal (optionally negative), 0x hex, 0b binary, 0 octal.
  // Returns the 32-bit pattern; values outside -2^31..2^32-1 are errors.
  Result<std::uint32_t> num(bool decimal_only = false) {
    skip_ws();
    const std::size_t b = pos;
    bool neg = false;
    if (pos < s.size() && (s[pos] == '-' || s[pos] == '+')) neg = s[pos++] == '-';
    int base = 10;
    if (s.substr(pos, 2) == "0x" || s.substr(pos, 2) == "0X") base = 16, pos += 2;
    else if (s.substr(pos, 2) == "0b" || s.substr(pos, 2) == "0B") base = 2, pos += 2;
    else if (!decimal_only && pos + 1 < s.size() && s[pos] == '0' &&
             std::isdigit(static_cast<unsigned char>(s[pos + 1])) != 0)
      base = 8;
    std::uint64_t v = 0;
    const char* first = s.data() + pos;
    const char* last = s.data() + s.size();
    const auto r = std::from_chars(first, last, v, base);
    if (r.ec != std::errc{} || r.ptr == first) {
      pos = b;
      return error("expected a number");
    }
    pos += static_cast<std::size_t>(r.ptr - first);
    if ((!neg && v > 0xffffffffULL) || (neg && v > 0x80000000ULL)) {
      pos = b;
      return error("number does not fit in 32 bits");
    }
    return neg ? static_cast<std::uint32_t>(0U - static_cast<std::uint32_t>(v)) : static_cast<std::uint32_t>(v);
  }
};

// A parsed instruction whose jump targets may still be labels.
struct Pending {
  Insn insn;
  std::size_t line = 0, column = 0;
  std::string jt_label, jf_label, ja_label;  // bpf_asm
  bool swap = false;                         // pseudo jumps (jne, jlt, jle)
};

std::optional<Op> find_row(std::string_view mnemonic, Kind kind) {
  for (const auto& r : kOps)
    if (r.mnemonic == mnemonic && r.kind == kind) return r.op;
  return std::nullopt;
}

const AncInfo* ancillary_by_name(std::string_view name) {
  for (const auto& a : kAncs)
    if (a.tcpdump == name || a.bpf_asm == name) return &a;
  if (name == "vlan_pr") return &kAncs[static_cast<std::size_t>(Anc::VlanTagPresent)];
  return nullptr;
}

// The operand of a load/store: sets kind and k. `m` is the mnemonic.
Status parse_mem_operand(Cursor& c, std::string_view m, Kind& kind, std::uint32_t& k) {
  const bool x_dst = m == "ldx" || m == "ldxb" || m == "stx";
  if (m == "st" || m == "stx") {
    if (!c.eat_ci("m[")) return c.error(fmt::format("'{}' expects M[n]", m));
    auto n = c.num();
    if (!n.ok()) return n.error();
    if (!c.eat("]")) return c.error("expected ']'");
    kind = m == "st" ? Kind::St : Kind::Stx;
    k = *n;
    return Ok{};
  }
  if (c.eat("4*(") || c.eat("4 * (")) {
    if (!c.eat("[")) return c.error("expected '[' in 4*([k]&0xf)");
    auto n = c.num();
    if (!n.ok()) return n.error();
    if (!c.eat("]") || !c.eat("&") || !c.eat_ci("0xf") || !c.eat(")")) return c.error("expected '4*([k]&0xf)'");
    kind = Kind::LdxMsh;
    k = *n;
    return Ok{};
  }
  if (c.eat("#")) {
    const std::size_t save = c.pos;
    const std::string_view w = c.word();
    if (w == "len" || w == "pktlen") {
      kind = x_dst ? Kind::LdxLen : Kind::LdLen;
      return Ok{};
    }
    if (!x_dst && !w.empty() && std::isalpha(static_cast<unsigned char>(w[0])) != 0) {
      const AncInfo* a = ancillary_by_name(w);
      if (a == nullptr) {
        c.pos = save;
        return c.error(fmt::format("unknown ancillary name '#{}'", w));
      }
      kind = Kind::LdAbs;
      k = static_cast<std::uint32_t>(kSkfAdOff + a->offset);
      return Ok{};
    }
    c.pos = save;
    auto n = c.num();
    if (!n.ok()) return n.error();
    kind = x_dst ? Kind::LdxImm : Kind::LdImm;
    k = *n;
    return Ok{};
  }
  if (c.eat_ci("m[")) {
    auto n = c.num();
    if (!n.ok()) return n.error();
    if (!c.eat("]")) return c.error("expected ']'");
    kind = x_dst ? Kind::LdxMem : Kind::LdMem;
    k = *n;
    return Ok{};
  }
  if (c.eat("[")) {
    const std::size_t save = c.pos;
    c.skip_ws();
    const bool is_x = c.s.substr(c.pos, 2) == "%x" ||
                      (c.s.substr(c.pos, 1) == "x" &&
                       (c.pos + 1 >= c.s.size() ||
                        (std::isalnum(static_cast<unsigned char>(c.s[c.pos + 1])) == 0 && c.s[c.pos + 1] != '_')));
    if (is_x) {
      c.pos += c.s[c.pos] == '%' ? 2U : 1U;
      c.skip_ws();
      if (c.eat("+")) {
        auto n = c.num();
        if (!n.ok()) return n.error();
        if (!c.eat("]")) return c.error("expected ']'");
        kind = Kind::LdInd;
        k = *n;
        return Ok{};
      }
      if (c.eat("]")) {
        kind = Kind::LdInd;
        k = 0;
        return Ok{};
      }
      return c.error("expected '+' or ']' after x");
    }
    c.pos = save;
    c.skip_ws();
    if (c.pos < c.s.size() && std::isalpha(static_cast<unsigned char>(c.s[c.pos])) != 0) {
      const std::string_view w = c.word();
      const AncInfo* a = ancillary_by_name(w);
      if (a == nullptr) {
        c.pos = save;
        return c.error(fmt::format("unknown ancillary name '[{}]'", w));
      }
      if (!c.eat("]")) return c.error("expected ']'");
      kind = Kind::LdAbs;
      k = static_cast<std::uint32_t>(kSkfAdOff + a->offset);
      return Ok{};
    }
    auto n = c.num();
    if (!n.ok()) return n.error();
    if (!c.eat("]")) return c.error("expected ']'");
    kind = Kind::LdAbs;
    k = *n;
    return Ok{};
  }
  return c.error(fmt::format("bad operand for '{}'", m));
}

bool is_alu(std::string_view m) {
  return std::any_of(kOps.begin(), kOps.end(),
                     [&](const OpInfo& r) { return r.mnemonic == m && (r.kind == Kind::AluK || r.kind == Kind::Neg); });
}
bool is_cond_jump(std::string_view m) { return m == "jeq" || m == "jgt" || m == "jge" || m == "jset"; }

// Parses one instruction (mnemonic + operands). listing: tcpdump -d form
// (absolute "jt N jf N" and "ja N" targets), else bpf_asm (labels).
Result<Pending> parse_insn(Cursor& c, bool listing, std::size_t pc) {
  Pending p;
  p.line = c.line;
  p.column = c.col0 + c.pos + 1;
  std::string m(c.word());
  std::transform(m.begin(), m.end(), m.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (m.empty()) return c.error("expected an instruction mnemonic");
  if (m == "ldi") m = "ld";
  if (m == "ldxi") m = "ldx";
  if (m == "jmp") m = "ja";
  Kind kind{};
  std::uint32_t k = 0;
  auto finish = [&](Kind kd, std::string_view mn) -> Result<Pending> {
    std::optional<Op> op = find_row(mn, kd);
    if (!op && kd == Kind::LdxMsh) op = Op::LdxBMsh;  // "ldx 4*([k]&0xf)"
    if (!op) return c.error(fmt::format("'{}' does not take this operand", mn));
    p.insn.code = info(*op).code;
    p.insn.k = k;
    return p;
  };
  auto jump_target = [&](std::string& label, std::uint8_t& field) -> Status {
    c.skip_ws();
    if (listing) {
      auto n = c.num();
      if (!n.ok()) return n.error();
      const std::int64_t rel = static_cast<std::int64_t>(*n) - static_cast<std::int64_t>(pc) - 1;
      if (rel < 0 || rel > 255) return c.error(fmt::format("jump target {} not reachable from insn {}", *n, pc));
      field = static_cast<std::uint8_t>(rel);
      return Ok{};
    }
    const std::string_view w = c.word();
    if (w.empty()) return c.error("expected a label");
    label = std::string(w);
    return Ok{};
  };
  if (m == "ld" || m == "ldh" || m == "ldb" || m == "ldx" || m == "ldxb" || m == "st" || m == "stx") {
    if (auto st = parse_mem_operand(c, m, kind, k); !st.ok()) return st.error();
    return finish(kind, kind == Kind::LdxMsh ? "ldxb" : std::string_view(m));
  }
  if (is_alu(m)) {
    if (m == "neg") return finish(Kind::Neg, m);
    if (c.eat("#")) {
      auto n = c.num();
      if (!n.ok()) return n.error();
      k = *n;
      return finish(Kind::AluK, m);
    }
    if (c.eat("%x") || c.eat_ci("x")) return finish(Kind::AluX, m);
    return c.error(fmt::format("'{}' expects #k or x", m));
  }
  if (m == "ret") {
    if (c.done() || c.eat("%a") || c.eat_ci("a")) return finish(Kind::RetA, m);
    if (c.eat("#")) {
      auto n = c.num();
      if (!n.ok()) return n.error();
      k = *n;
      return finish(Kind::RetK, m);
    }
    return c.error("'ret' expects #k or a");
  }
  if (m == "tax" || m == "txa") return finish(m == "tax" ? Kind::Tax : Kind::Txa, m);
  if (m == "ja") {
    if (listing) {
      auto n = c.num();
      if (!n.ok()) return n.error();
      const std::int64_t rel = static_cast<std::int64_t>(static_cast<std::int32_t>(*n)) - static_cast<std::int64_t>(pc) - 1;
      k = static_cast<std::uint32_t>(rel);
    } else {
      std::uint8_t unused = 0;
      if (auto st = jump_target(p.ja_label, unused); !st.ok()) return st.error();
    }
    return finish(Kind::Ja, m);
  }
  std::string base = m;
  if (m == "jne" || m == "jneq") base = "jeq", p.swap = true;
  if (m == "jlt") base = "jge", p.swap = true;
  if (m == "jle") base = "jgt", p.swap = true;
  if (is_cond_jump(base)) {
    if (c.eat("#")) {
      auto n = c.num();
      if (!n.ok()) return n.error();
      k = *n;
      kind = Kind::JmpK;
    } else if (c.eat("%x") || c.eat_ci("x")) {
      kind = Kind::JmpX;
    } else {
      return c.error(fmt::format("'{}' expects #k or x", m));
    }
    if (listing) {
      if (!c.eat("jt")) return c.error("expected 'jt N'");
      if (auto st = jump_target(p.jt_label, p.insn.jt); !st.ok()) return st.error();
      if (!c.eat("jf")) return c.error("expected 'jf N'");
      if (auto st = jump_target(p.jf_label, p.insn.jf); !st.ok()) return st.error();
    } else {
      if (!c.eat(",")) return c.error("expected ', label'");
      if (auto st = jump_target(p.jt_label, p.insn.jt); !st.ok()) return st.error();
      if (c.eat(",")) {
        if (auto st = jump_target(p.jf_label, p.insn.jf); !st.ok()) return st.error();
      }
    }
    const std::uint8_t jt = p.insn.jt, jf = p.insn.jf;
    auto r = finish(kind, base);
    if (!r.ok()) return r;
    r->insn.jt = jt;
    r->insn.jf = jf;
    return r;
  }
  c.pos = 0;
  return c.error(fmt::format("unknown mnemonic '{}'", m));
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t b = 0;
  while (b <= text.size()) {
    std::size_t e = text.find('\n', b);
    if (e == std::string_view::npos) e = text.size();
    std::string_view l = text.substr(b, e - b);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    lines.push_back(l);
    b = e + 1;
  }
  return lines;
}

std::string_view strip_comment(std::string_view l) {
  const std::size_t semi = l.find(';');
  if (semi != std::string_view::npos) l = l.substr(0, semi);
  const std::size_t sl = l.find("//");
  if (sl != std::string_view::npos) l = l.substr(0, sl);
  return l;
}

// bpf_asm's C comments (/* ... */, may span lines) become blanks, newlines
// kept, so that lines and columns stay those of the source.
Result<std::string> blank_c_comments(std::string_view text) {
  std::string out(text);
  std::size_t line = 1, col = 1;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '/' && i + 1 < out.size() && out[i + 1] == '*') {
      const std::size_t end = out.find("*/", i + 2);
      if (end == std::string::npos) {
        Error e = make_error(EINVAL, "unterminated comment '/*'");
        e.line = line;
        e.column = col;
        return e;
      }
      for (std::size_t j = i; j < end + 2; ++j) {
        if (out[j] == '\n') {
          ++line;
          col = 0;
        } else {
          out[j] = ' ';
        }
        ++col;
      }
      i = end + 1;
      continue;
    }
    if (out[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return out;
}

}  // namespace

Result<std::vector<Insn>> parse_tcpdump_listing(std::string_view text) {
  std::vector<Insn> out;
  const auto lines = split_lines(text);
  for (std::size_t li = 0; li < lines.size(); ++li) {
    Cursor c{strip_comment(lines[li]), 0, li + 1, 0};
    if (c.done()) continue;
    if (!c.eat("(")) return c.error("expected '(NNN)' at the start of a tcpdump -d line");
    const std::size_t idx_pos = c.pos;
    auto idx = c.num(true);
    if (!idx.ok()) return idx.error();
    if (*idx != out.size()) {
      c.pos = idx_pos;
      return c.error(fmt::format("instruction number {} where {} was expected", *idx, out.size()));
    }
    if (!c.eat(")")) return c.error("expected ')'");
    auto p = parse_insn(c, true, out.size());
    if (!p.ok()) return p.error();
    if (!c.done()) return c.error("unexpected text after the instruction");
    out.push_back(p->insn);
  }
  return out;
}

Result<std::vector<Insn>> parse_bpf_asm(std::string_view source) {
  auto blanked = blank_c_comments(source);
  if (!blanked.ok()) return blanked.error();
  const std::string_view text = *blanked;
  std::vector<Pending> prog;
  std::map<std::string, std::size_t, std::less<>> labels;
  const auto lines = split_lines(text);
  for (std::size_t li = 0; li < lines.size(); ++li) {
    Cursor c{strip_comment(lines[li]), 0, li + 1, 0};
    while (!c.done()) {
      // "label:" prefixes
      const std::size_t save = c.pos;
      const std::string_view w = c.word();
      if (!w.empty() && c.eat(":")) {
        if (!labels.emplace(std::string(w), prog.size()).second) {
          c.pos = save;
          return c.error(fmt::format("label '{}' defined twice", w));
        }
        continue;
      }
      c.pos = save;
      auto p = parse_insn(c, false, prog.size());
      if (!p.ok()) return p.error();
      if (!c.done()) return c.error("unexpected text after the instruction");
      prog.push_back(std::move(*p));
    }
  }
  std::vector<Insn> out;
  for (std::size_t pc = 0; pc < prog.size(); ++pc) {
    Pending& p = prog[pc];
    // wide: ja (32-bit k; a backward target is allowed, as libpcap emits them)
    auto resolve = [&](const std::string& label, bool wide, std::uint32_t& rel_out) -> Status {
      const auto it = labels.find(label);
      Error e = make_error(EINVAL, "");
      e.line = p.line;
      e.column = p.column;
      if (it == labels.end()) {
        e.message = fmt::format("undefined label '{}'", label);
        return e;
      }
      if (wide && it->second <= pc) {
        rel_out = static_cast<std::uint32_t>(static_cast<std::int64_t>(it->second) - static_cast<std::int64_t>(pc) - 1);
        return Ok{};
      }
      if (it->second <= pc) {
        e.message = fmt::format("label '{}' is not after the jump (classic jumps go forward)", label);
        return e;
      }
      const std::size_t rel = it->second - pc - 1;
      if (!wide && rel > 255) {
        e.message = fmt::format("label '{}' is {} instructions away (jt/jf reach 255)", label, rel);
        return e;
      }
      rel_out = static_cast<std::uint32_t>(rel);
      return Ok{};
    };
    std::uint32_t rel = 0;
    if (!p.ja_label.empty()) {
      if (auto st = resolve(p.ja_label, true, rel); !st.ok()) return st.error();
      p.insn.k = rel;
    }
    std::uint8_t jt = 0, jf = 0;
    if (!p.jt_label.empty()) {
      if (auto st = resolve(p.jt_label, false, rel); !st.ok()) return st.error();
      jt = static_cast<std::uint8_t>(rel);
    }
    if (!p.jf_label.empty()) {
      if (auto st = resolve(p.jf_label, false, rel); !st.ok()) return st.error();
      jf = static_cast<std::uint8_t>(rel);
    }
    if (!p.jt_label.empty()) {
      p.insn.jt = p.swap ? jf : jt;
      p.insn.jf = p.swap ? jt : jf;
    }
    out.push_back(p.insn);
  }
  return out;
}

Result<std::vector<Insn>> parse_decimal(std::string_view text) {
  // Either "N\nc jt jf k\n..." (tcpdump -ddd) or "N,c jt jf k,c jt jf k" (bpf_asm).
  std::string flat(text);
  std::replace(flat.begin(), flat.end(), ',', '\n');
  const auto lines = split_lines(flat);
  std::vector<Insn> out;
  std::optional<std::uint32_t> count;
  for (std::size_t li = 0; li < lines.size(); ++li) {
    Cursor c{lines[li], 0, li + 1, 0};
    if (c.done()) continue;
    if (!count) {
      auto n = c.num();
      if (!n.ok()) return n.error();
      count = *n;
      if (!c.done()) return c.error("the first number is the instruction count");
      continue;
    }
    std::uint32_t v[4];
    for (auto& x : v) {
      auto n = c.num();
      if (!n.ok()) return n.error();
      x = *n;
    }
    if (!c.done()) return c.error("expected 'code jt jf k'");
    if (v[0] > 0xffff || v[1] > 255 || v[2] > 255) return c.error("code/jt/jf out of range");
    out.push_back(Insn{static_cast<std::uint16_t>(v[0]), static_cast<std::uint8_t>(v[1]),
                       static_cast<std::uint8_t>(v[2]), v[3]});
  }
  if (!count) return make_error(EINVAL, "empty decimal program (expected the instruction count first)");
  if (*count != out.size())
    return make_error(EINVAL, fmt::format("instruction count {} does not match the {} instructions given", *count,
                                          out.size()));
  return out;
}

namespace {
Result<std::vector<Insn>> parse_c_array(std::string_view text) {
  std::vector<Insn> out;
  const auto lines = split_lines(text);
  for (std::size_t li = 0; li < lines.size(); ++li) {
    Cursor c{lines[li], 0, li + 1, 0};
    if (c.done()) continue;
    if (!c.eat("{")) return c.error("expected '{ code, jt, jf, k },'");
    std::uint32_t v[4];
    for (int i = 0; i < 4; ++i) {
      auto n = c.num();
      if (!n.ok()) return n.error();
      v[i] = *n;
      if (i < 3 && !c.eat(",")) return c.error("expected ','");
    }
    if (!c.eat("}")) return c.error("expected '}'");
    c.eat(",");
    if (!c.done()) return c.error("unexpected text after '}'");
    if (v[0] > 0xffff || v[1] > 255 || v[2] > 255) return c.error("code/jt/jf out of range");
    out.push_back(Insn{static_cast<std::uint16_t>(v[0]), static_cast<std::uint8_t>(v[1]),
                       static_cast<std::uint8_t>(v[2]), v[3]});
  }
  return out;
}
}  // namespace

Result<std::vector<Insn>> parse_text(std::string_view text) {
  std::string_view first;
  for (const auto l : split_lines(text)) {
    const auto b = l.find_first_not_of(" \t");
    if (b != std::string_view::npos) {
      first = l.substr(b);
      break;
    }
  }
  if (first.empty()) return make_error(EINVAL, "empty classic BPF program text");
  if (first[0] == '(') return parse_tcpdump_listing(text);
  if (first[0] == '{') return parse_c_array(text);
  if (text.find_first_not_of("0123456789 \t\r\n,") == std::string_view::npos) return parse_decimal(text);
  return parse_bpf_asm(text);
}

}  // namespace userbpf::cbpf
