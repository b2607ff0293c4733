// Assembler: matches each line against the syntax templates of syntax.cpp.
//
// How it works:
//  1. The templates of all rows are grouped once per dialect: rows whose
//     template text is identical form one Group (e.g. every AluK row shares
//     "$d $k $i"); $k is then matched against the group's operator texts,
//     longest first, and the row is picked by operator, access size ($z),
//     register widths (w = 32-bit class) and pseudo source ($P).
//  2. A line is: optional labels ("name:"), an optional objdump index
//     ("12:"), then one instruction or an assembler directive (".text",
//     ignored), then an optional comment ("#", "//", ";").
//  3. Dialect::Auto tries the kernel groups, then the uBPF groups, per line.
//  4. Jump/call targets naming labels are fixed up after the last line.
//
// Errors: every failed template attempt records how far it got; the failure
// that got furthest (a definite one such as "unknown register 'r11'" beats a
// mere mismatch at the same column) is reported as "line L:C: message".
// Values that do not fit their field are reported once the template matched.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <limits>
#include <map>

#include "asm/asm.hpp"
#include "asm/syntax.hpp"

namespace userbpf::assembly {

using namespace detail;
using isa::OpInfo;

namespace {

struct Group {
  std::string tmpl;
  std::vector<const OpInfo*> rows;
  std::vector<std::string> row_ops;  // op_text of each row (parallel to rows)
  std::vector<std::string> ops;      // distinct $k texts, longest first
  std::array<bool, 256> first{};     // characters a matching line can start with
  bool has_k = false;
};

std::vector<Group> build_groups(Dialect d) {
  std::vector<Group> groups;
  for (const OpInfo& row : isa::kOps) {
    for (const Variant& v : variants(row, d)) {
      if ((v.flags & kParse) == 0) continue;
      auto it = std::find_if(groups.begin(), groups.end(), [&](const Group& g) { return g.tmpl == v.tmpl; });
      if (it == groups.end()) {
        Group g;
        g.tmpl = std::string(v.tmpl);
        groups.push_back(std::move(g));
        it = groups.end() - 1;
      }
      std::string op = op_text(row, d);
      if (std::find(it->rows.begin(), it->rows.end(), &row) == it->rows.end()) {
        it->rows.push_back(&row);
        it->row_ops.push_back(op);
      }
      if (std::find(it->ops.begin(), it->ops.end(), op) == it->ops.end()) it->ops.push_back(op);
    }
  }
  for (Group& g : groups) {
    std::stable_sort(g.ops.begin(), g.ops.end(),
                     [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
    g.has_k = g.tmpl.find("$k") != std::string::npos;
    // First-character filter: the template's first element decides.
    const std::string& t = g.tmpl;
    if (t.size() >= 2 && t[0] == '$') {
      if (t[1] == 'k') {
        for (const std::string& op : g.ops) g.first[static_cast<unsigned char>(op[0])] = true;
      } else {  // a register
        for (char c : {'r', 'w', '%'}) g.first[static_cast<unsigned char>(c)] = true;
      }
    } else if (!t.empty()) {
      g.first[static_cast<unsigned char>(t[0])] = true;
    }
  }
  return groups;
}

const std::vector<Group>& groups_for(Dialect d) {
  static const std::vector<Group> kernel = build_groups(Dialect::Kernel);
  static const std::vector<Group> ubpf = build_groups(Dialect::Ubpf);
  return d == Dialect::Ubpf ? ubpf : kernel;
}

bool is_ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '.'; }
bool is_ident(char c) { return is_ident_start(c) || (c >= '0' && c <= '9'); }
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

// A number as written: sign and magnitude (so that both -1 and 0xffffffff fit 32 bits).
struct Num {
  bool neg = false;
  std::uint64_t mag = 0;
  [[nodiscard]] bool fits_s16() const { return neg ? mag <= 0x8000 : mag <= 0x7fff; }
  [[nodiscard]] bool fits_32() const { return neg ? mag <= 0x80000000ULL : mag <= 0xffffffffULL; }
  [[nodiscard]] bool fits_s32() const { return neg ? mag <= 0x80000000ULL : mag <= 0x7fffffffULL; }
  [[nodiscard]] bool fits_64() const { return !neg || mag <= 0x8000000000000000ULL; }
  [[nodiscard]] std::uint64_t bits() const { return neg ? ~mag + 1 : mag; }
  [[nodiscard]] std::int32_t as_i32() const { return static_cast<std::int32_t>(static_cast<std::uint32_t>(bits())); }
  [[nodiscard]] std::int16_t as_i16() const { return static_cast<std::int16_t>(static_cast<std::uint16_t>(bits())); }
  [[nodiscard]] std::string text() const { return fmt::format("{}{}", neg ? "-" : "", mag); }
};

struct RegCap {
  bool set = false;
  std::uint8_t num = 0;
  char width = 'r';
  std::size_t pos = 0;
};
struct NumCap {
  bool set = false;
  Num n;
  std::size_t pos = 0;
};
struct TargetCap {
  bool set = false;
  std::string_view label;  // empty: numeric (views the line being assembled)
  Num n;
  std::size_t pos = 0;
};

struct Capture {
  std::string_view op;    // views the group's operator text
  std::string_view size;  // "u8".."u64"
  RegCap d, s, zero;
  NumCap imm, imm64, hi, psrc, off_plain, mem_off, imm_off;
  TargetCap off_target, imm_target;
};

struct Failure {
  bool set = false;
  std::size_t pos = 0;
  int level = 0;  // 0: mismatch, 1: definite error in a partial match, 2: full match with a bad operand
  std::string msg;
  // `make` builds the message only when this failure becomes the best one.
  template <class F>
  void note(std::size_t p, bool is_strong, F&& make, int lvl = -1) {
    const int l = lvl >= 0 ? lvl : (is_strong ? 1 : 0);
    const bool better = !set || (l == 2 && level < 2) || (l < 2 && level < 2 && (p > pos || (p == pos && l > level))) ||
                        (l == 2 && level == 2 && p > pos);
    if (better) {
      set = true;
      pos = p;
      level = l;
      msg = make();
    }
  }
  [[nodiscard]] bool strong() const { return level > 0; }
  [[nodiscard]] bool wants(std::size_t p) const { return !set || p > pos; }
};

// The word at `pos`, quoted, for messages ("'foo'", or "the end of the line").
std::string word_at(std::string_view line, std::size_t pos) {
  std::size_t e = pos;
  while (e < line.size() && !is_space(line[e]) && e - pos < 24) ++e;
  if (e == pos) return "the end of the line";
  return fmt::format("'{}'", line.substr(pos, e - pos));
}

class Matcher {
 public:
  Matcher(std::string_view line, Dialect dialect, const AsmOptions& opts, Failure& fail)
      : line_(line), dialect_(dialect), opts_(opts), fail_(fail) {}

  // Matches the whole rest of the line from `pos` against the group's template.
  bool match(const Group& g, std::size_t pos, Capture& out) {
    group_ = &g;
    return run(0, pos, out);
  }

 private:
  [[nodiscard]] std::size_t skip_ws(std::size_t p) const {
    while (p < line_.size() && is_space(line_[p])) ++p;
    return p;
  }

  // Literal text; a space inside `lit` needs at least one blank in the line.
  [[nodiscard]] std::optional<std::size_t> literal(std::string_view lit, std::size_t p) const {
    for (const char ch : lit) {
      if (ch == ' ') {
        if (p >= line_.size() || !is_space(line_[p])) return std::nullopt;
        p = skip_ws(p);
        continue;
      }
      if (p >= line_.size() || line_[p] != ch) return std::nullopt;
      ++p;
    }
    return p;
  }

  bool run(std::size_t ti, std::size_t pos, Capture& cap) {
    const std::string& t = group_->tmpl;
    while (ti < t.size()) {
      if (t[ti] == ' ') {
        ++ti;
        continue;
      }
      pos = skip_ws(pos);
      if (t[ti] == '$' && ti + 1 < t.size()) {
        const char ph = t[ti + 1];
        ti += 2;
        if (ph == 'k') {
          const bool glued = ti < t.size() && t[ti] != ' ';
          for (const std::string& op : group_->ops) {
            auto np = literal(op, pos);
            if (!np) continue;
            if (!glued && is_ident(op.back()) && *np < line_.size() && is_ident(line_[*np])) continue;
            Capture c2 = cap;
            c2.op = op;
            if (run(ti, *np, c2)) {
              cap = c2;
              return true;
            }
          }
          fail_.note(pos, false, [&] {
            return fmt::format("unknown {} {}", dialect_ == Dialect::Ubpf ? "mnemonic" : "operator",
                               word_at(line_, pos));
          });
          return false;
        }
        auto np = placeholder(ph, pos, cap);
        if (!np) return false;
        pos = *np;
        continue;
      }
      // literal run
      std::size_t te = ti;
      while (te < t.size() && t[te] != '$' && t[te] != ' ') ++te;
      const std::string_view lit = std::string_view(t).substr(ti, te - ti);
      auto np = literal(lit, pos);
      if (!np) {
        fail_.note(pos, false, [&] { return fmt::format("expected '{}' but found {}", lit, word_at(line_, pos)); });
        return false;
      }
      const bool glued = te < t.size() && t[te] == '$';
      if (!glued && is_ident(lit.back()) && *np < line_.size() && is_ident(line_[*np])) {
        fail_.note(pos, false, [&] { return fmt::format("expected '{}' but found {}", lit, word_at(line_, pos)); });
        return false;
      }
      pos = *np;
      ti = te;
    }
    pos = skip_ws(pos);
    if (pos != line_.size()) {
      fail_.note(pos, false, [&] { return fmt::format("unexpected {} after the instruction", word_at(line_, pos)); });
      return false;
    }
    return true;
  }

  // Register: [%](r|w)N.
  std::optional<std::size_t> reg(std::size_t p, RegCap& out) {
    const std::size_t start = p;
    if (p < line_.size() && line_[p] == '%') ++p;
    if (p >= line_.size() || (line_[p] != 'r' && line_[p] != 'w')) {
      fail_.note(start, false, [&] { return fmt::format("expected a register but found {}", word_at(line_, start)); });
      return std::nullopt;
    }
    const char w = line_[p++];
    std::size_t q = p;
    unsigned n = 0;
    while (q < line_.size() && line_[q] >= '0' && line_[q] <= '9' && q - p < 4) n = n * 10 + unsigned(line_[q++] - '0');
    if (q == p || (q < line_.size() && is_ident(line_[q]))) {
      fail_.note(start, false, [&] { return fmt::format("expected a register but found {}", word_at(line_, start)); });
      return std::nullopt;
    }
    const std::string text(line_.substr(start, q - start));
    if (w == 'w' && dialect_ == Dialect::Ubpf) {
      fail_.note(start, false, [&] { return fmt::format("expected a register but found '{}'", text); });
      return std::nullopt;
    }
    const unsigned max = opts_.allow_invalid_registers ? 15 : isa::kNumRegs - 1;
    if (n > max) {
      fail_.note(start, true, [&] { return fmt::format("unknown register '{}'", text); });
      return std::nullopt;
    }
    out.set = true;
    out.num = static_cast<std::uint8_t>(n);
    out.width = w;
    out.pos = start;
    return q;
  }

  // Number: [sign] (0x hex | decimal); a name if a resolver knows it.
  std::optional<std::size_t> num(std::size_t p, bool allow_plus, bool allow_symbol, Num& out) {
    const std::size_t start = p;
    Num n;
    if (p < line_.size() && (line_[p] == '-' || (allow_plus && line_[p] == '+'))) {
      n.neg = line_[p] == '-';
      p = skip_ws(p + 1);
    }
    if (allow_symbol && p < line_.size() && is_ident_start(line_[p]) && opts_.resolve_symbol) {
      std::size_t q = p;
      while (q < line_.size() && is_ident(line_[q])) ++q;
      const auto v = opts_.resolve_symbol(line_.substr(p, q - p));
      if (v) {
        const std::int64_t value = n.neg ? -*v : *v;
        n.neg = value < 0;
        n.mag = n.neg ? ~static_cast<std::uint64_t>(value) + 1 : static_cast<std::uint64_t>(value);
        out = n;
        return q;
      }
      fail_.note(p, false, [&] { return fmt::format("unknown symbol '{}'", line_.substr(p, q - p)); });
      return std::nullopt;
    }
    unsigned base = 10;
    if (p + 1 < line_.size() && line_[p] == '0' && (line_[p + 1] == 'x' || line_[p + 1] == 'X')) {
      base = 16;
      p += 2;
    }
    const std::size_t digits = p;
    bool overflow = false;
    while (p < line_.size()) {
      const char c = line_[p];
      unsigned dv;
      if (c >= '0' && c <= '9')
        dv = unsigned(c - '0');
      else if (base == 16 && c >= 'a' && c <= 'f')
        dv = unsigned(c - 'a' + 10);
      else if (base == 16 && c >= 'A' && c <= 'F')
        dv = unsigned(c - 'A' + 10);
      else
        break;
      if (n.mag > (std::numeric_limits<std::uint64_t>::max() - dv) / base) overflow = true;
      n.mag = n.mag * base + dv;
      ++p;
    }
    if (p == digits) {
      fail_.note(start, false, [&] { return fmt::format("expected a number but found {}", word_at(line_, start)); });
      return std::nullopt;
    }
    if (p < line_.size() && is_ident(line_[p])) {
      fail_.note(start, true, [&] { return fmt::format("invalid number {}", word_at(line_, start)); });
      return std::nullopt;
    }
    if (overflow || !n.fits_64()) {
      fail_.note(start, true,
                 [&] { return fmt::format("number '{}' does not fit in 64 bits", line_.substr(start, p - start)); });
      return std::nullopt;
    }
    out = n;
    return p;
  }

  // Jump/call target: +N, -N, pc+N, or a label (unless numeric_only).
  std::optional<std::size_t> target(std::size_t p, bool numeric_only, TargetCap& out) {
    const std::size_t start = p;
    if (line_.substr(p).starts_with("pc") && p + 2 < line_.size() && (line_[p + 2] == '+' || line_[p + 2] == '-'))
      p += 2;
    out.pos = start;
    if (p < line_.size() && (line_[p] == '+' || line_[p] == '-' || (line_[p] >= '0' && line_[p] <= '9'))) {
      auto np = num(p, true, false, out.n);
      if (!np) return std::nullopt;
      out.set = true;
      return np;
    }
    if (!numeric_only && p < line_.size() && is_ident_start(line_[p])) {
      std::size_t q = p;
      while (q < line_.size() && is_ident(line_[q])) ++q;
      out.set = true;
      out.label = line_.substr(p, q - p);
      return q;
    }
    fail_.note(start, false, [&] {
      return fmt::format("expected a {} but found {}",
                         numeric_only ? "relative offset (+N/-N)" : "jump target (+N, -N or a label)",
                         word_at(line_, start));
    });
    return std::nullopt;
  }

  // Memory offset: optional "+ N" / "- N".
  std::optional<std::size_t> mem(std::size_t p, NumCap& out) {
    out.set = true;
    out.pos = p;
    if (p < line_.size() && (line_[p] == '+' || line_[p] == '-')) return num(p, true, false, out.n);
    return p;
  }

  std::optional<std::size_t> number_into(std::size_t p, NumCap& out, bool allow_symbol) {
    out.pos = p;
    auto np = num(p, false, allow_symbol, out.n);
    if (np) out.set = true;
    return np;
  }

  std::optional<std::size_t> same_or_set(std::size_t p, RegCap& slot) {
    RegCap r;
    auto np = reg(p, r);
    if (!np) return std::nullopt;
    if (slot.set && (slot.num != r.num || slot.width != r.width)) {
      fail_.note(p, true, [] { return std::string("both operands must be the same register"); });
      return std::nullopt;
    }
    slot = r;
    return np;
  }

  std::optional<std::size_t> placeholder(char ph, std::size_t p, Capture& cap) {
    switch (ph) {
      case 'd': return same_or_set(p, cap.d);
      case 's': return same_or_set(p, cap.s);
      case '0': {
        auto np = same_or_set(p, cap.zero);
        if (np && cap.zero.num != 0) {
          fail_.note(p, true, [] { return std::string("this operand must be register 0"); });
          return std::nullopt;
        }
        return np;
      }
      case 'z':
        for (std::string_view z : {"u64", "u32", "u16", "u8"}) {
          if (line_.substr(p).starts_with(z)) {
            cap.size = z;
            return p + z.size();
          }
        }
        fail_.note(p, false,
                   [&] { return fmt::format("expected u8, u16, u32 or u64 but found {}", word_at(line_, p)); });
        return std::nullopt;
      case 'i': return number_into(p, cap.imm, true);
      case 'L': return number_into(p, cap.imm64, true);
      case 'h': return number_into(p, cap.hi, false);
      case 'P': return number_into(p, cap.psrc, false);
      case 'O': {
        cap.off_plain.pos = p;
        auto np = num(p, true, false, cap.off_plain.n);
        if (np) cap.off_plain.set = true;
        return np;
      }
      case 'o': return target(p, false, cap.off_target);
      case 'I': return target(p, false, cap.imm_target);
      case 'J': return target(p, true, cap.imm_target);
      case 'm': return mem(p, cap.mem_off);
      case 'n': return mem(p, cap.imm_off);
      default: return std::nullopt;
    }
  }

  std::string_view line_;
  Dialect dialect_;
  const AsmOptions& opts_;
  Failure& fail_;
  const Group* group_ = nullptr;
};

bool width_ok(Width w, const RegCap& r) {
  if (!r.set) return true;
  switch (w) {
    case Width::R: return r.width == 'r';
    case Width::W: return r.width == 'w';
    case Width::Either: return true;
  }
  return true;
}

struct Fixup {
  std::size_t index;
  bool in_imm;
  std::string label;
  std::size_t line, col;
};

Error line_error(std::size_t line, std::size_t col, std::string msg) {
  Error e = make_error(EINVAL, std::move(msg));
  e.line = line;
  e.column = col;
  return e;
}

struct Matched {
  const OpInfo* row = nullptr;
  Capture cap;
};

// Tries every group of one dialect; returns the first full match whose row constraints hold.
std::optional<Matched> match_dialect(std::string_view line, std::size_t pos, Dialect d, const AsmOptions& opts,
                                     Failure& fail) {
  Matcher m(line, d, opts, fail);
  const auto lead = static_cast<unsigned char>(line[pos]);
  for (const Group& g : groups_for(d)) {
    if (!g.first[lead]) {
      if (fail.wants(pos))
        fail.note(pos, false, [&] { return fmt::format("unknown instruction {}", word_at(line, pos)); });
      continue;
    }
    Capture cap;
    if (!m.match(g, pos, cap)) continue;
    const RegCap* bad = nullptr;  // the wrong-width register of the closest rejected row
    for (std::size_t ri = 0; ri < g.rows.size(); ++ri) {
      const OpInfo* row = g.rows[ri];
      if (g.has_k && g.row_ops[ri] != cap.op) continue;
      if (!cap.size.empty() && size_name(*row) != cap.size) continue;
      if (cap.psrc.set && !(cap.psrc.n.mag == static_cast<std::uint64_t>(row->sel_value) && !cap.psrc.n.neg)) continue;
      if (d == Dialect::Kernel) {
        const RegCap* first_bad = nullptr;
        if (!width_ok(reg_width(*row, Slot::Dst), cap.d))
          first_bad = &cap.d;
        else if (!width_ok(reg_width(*row, Slot::Src), cap.s))
          first_bad = &cap.s;
        else if (!width_ok(reg_width(*row, Slot::Src), cap.zero))
          first_bad = &cap.zero;
        if (first_bad != nullptr) {
          if (bad == nullptr || first_bad->pos > bad->pos) bad = first_bad;
          continue;
        }
      }
      return Matched{row, cap};
    }
    if (cap.psrc.set) {
      fail.note(
          cap.psrc.pos, true, [&] { return fmt::format("unknown lddw pseudo source {}", cap.psrc.n.text()); }, 2);
    } else if (bad != nullptr) {
      fail.note(
          bad->pos, true,
          [&] {
            return fmt::format("register width mismatch: '{}{}' cannot be used here (use {}{})", bad->width, bad->num,
                               bad->width == 'w' ? 'r' : 'w', bad->num);
          },
          2);
    }
  }
  return std::nullopt;
}

}  // namespace

Result<std::vector<isa::Insn>> assemble(std::string_view text, Dialect dialect) {
  AsmOptions o;
  o.dialect = dialect;
  return assemble(text, o);
}

Result<std::vector<isa::Insn>> assemble(std::string_view text, const AsmOptions& opts) {
  std::vector<isa::Insn> out;
  std::map<std::string, std::pair<std::size_t, std::size_t>, std::less<>> labels;  // name -> (index, line)
  std::vector<Fixup> fixups;
  std::optional<std::size_t> first_exit;

  std::size_t line_no = 0;
  std::size_t begin = 0;
  while (begin <= text.size()) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(begin, end - begin);
    const bool last = end == text.size();
    begin = end + 1;
    ++line_no;
    // Comments.
    std::size_t cut = line.size();
    for (std::size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '#' || line[i] == ';' || (line[i] == '/' && i + 1 < line.size() && line[i + 1] == '/')) {
        cut = i;
        break;
      }
    }
    line = line.substr(0, cut);
    std::size_t pos = 0;
    auto skip = [&] {
      while (pos < line.size() && is_space(line[pos])) ++pos;
    };
    // Labels and objdump indexes.
    for (;;) {
      skip();
      std::size_t q = pos;
      if (q < line.size() && is_ident_start(line[q])) {
        while (q < line.size() && is_ident(line[q])) ++q;
      } else {
        while (q < line.size() && line[q] >= '0' && line[q] <= '9') ++q;
      }
      if (q == pos) break;
      std::size_t c = q;
      while (c < line.size() && is_space(line[c])) ++c;
      if (c >= line.size() || line[c] != ':') break;
      const std::string name(line.substr(pos, q - pos));
      if (is_ident_start(name[0])) {
        auto [it, inserted] = labels.emplace(name, std::make_pair(out.size(), line_no));
        if (!inserted)
          return line_error(line_no, pos + 1,
                            fmt::format("duplicate label '{}' (first defined on line {})", name, it->second.second));
      }
      pos = c + 1;
    }
    skip();
    if (pos >= line.size() || line[pos] == '.') {  // blank, or an assembler directive
      if (last) break;
      continue;
    }

    Failure fail;
    std::optional<Matched> m;
    if (opts.dialect != Dialect::Ubpf) m = match_dialect(line, pos, Dialect::Kernel, opts, fail);
    if (!m && opts.dialect != Dialect::Kernel) m = match_dialect(line, pos, Dialect::Ubpf, opts, fail);
    if (!m) {
      std::string msg = fail.msg;
      if (!fail.strong() && fail.pos <= pos) msg = fmt::format("unknown instruction {}", word_at(line, pos));
      return line_error(line_no, (fail.set ? std::max(fail.pos, pos) : pos) + 1, msg);
    }

    // Build the instruction and check every value against its field.
    const OpInfo& row = *m->row;
    const Capture& c = m->cap;
    auto err = [&](std::size_t p, std::string msg) { return line_error(line_no, p + 1, std::move(msg)); };
    std::int16_t off = 0;
    std::int32_t imm = 0, imm_hi = 0;
    if (c.imm.set) {
      if (!c.imm.n.fits_32() && !opts.truncate_imm32)
        return err(c.imm.pos, fmt::format("immediate {} does not fit in 32 bits", c.imm.n.text()));
      imm = c.imm.n.as_i32();
    }
    if (c.imm64.set) {
      imm = static_cast<std::int32_t>(static_cast<std::uint32_t>(c.imm64.n.bits()));
      imm_hi = static_cast<std::int32_t>(static_cast<std::uint32_t>(c.imm64.n.bits() >> 32));
    }
    if (c.hi.set) {
      if (!c.hi.n.fits_32()) return err(c.hi.pos, fmt::format("offset {} does not fit in 32 bits", c.hi.n.text()));
      imm_hi = c.hi.n.as_i32();
    }
    if (c.off_plain.set) {
      if (!c.off_plain.n.fits_s16())
        return err(c.off_plain.pos, fmt::format("offset {} does not fit in s16", c.off_plain.n.text()));
      off = c.off_plain.n.as_i16();
    }
    if (c.mem_off.set) {
      if (!c.mem_off.n.fits_s16())
        return err(c.mem_off.pos, fmt::format("memory offset {} does not fit in s16", c.mem_off.n.text()));
      off = c.mem_off.n.as_i16();
    }
    if (c.imm_off.set) {
      if (!c.imm_off.n.fits_s32())
        return err(c.imm_off.pos, fmt::format("offset {} does not fit in s32", c.imm_off.n.text()));
      imm = c.imm_off.n.as_i32();
    }
    if (c.off_target.set && c.off_target.label.empty()) {
      if (!c.off_target.n.fits_s16())
        return err(c.off_target.pos, fmt::format("jump offset {} does not fit in s16{}", c.off_target.n.text(),
                                                 row.form == isa::Form::Ja ? " (use gotol)" : ""));
      off = c.off_target.n.as_i16();
    }
    if (c.imm_target.set && c.imm_target.label.empty()) {
      if (!c.imm_target.n.fits_s32())
        return err(c.imm_target.pos, fmt::format("target offset {} does not fit in s32", c.imm_target.n.text()));
      imm = c.imm_target.n.as_i32();
    }
    const std::size_t index = out.size();
    if (c.off_target.set && !c.off_target.label.empty())
      fixups.push_back({index, false, std::string(c.off_target.label), line_no, c.off_target.pos + 1});
    if (c.imm_target.set && !c.imm_target.label.empty())
      fixups.push_back({index, true, std::string(c.imm_target.label), line_no, c.imm_target.pos + 1});
    out.push_back(isa::make(row.op, c.d.num, c.s.num, off, imm, imm_hi));
    if (row.op == isa::Op::Exit && !first_exit) first_exit = index;
    if (row.form == isa::Form::Lddw) {
      isa::Insn tail;
      tail.op = isa::Op::LddwTail;
      tail.imm = imm_hi;
      out.push_back(tail);
    }
    if (out.size() > isa::kMaxInsns)
      return err(pos, fmt::format("program has more than {} instructions", isa::kMaxInsns));
    if (last) break;
  }

  for (const Fixup& f : fixups) {
    isa::Insn& in = out[f.index];
    std::optional<std::size_t> target;
    if (auto it = labels.find(f.label); it != labels.end())
      target = it->second.first;
    else if (f.label == "exit" && first_exit)
      target = *first_exit;  // bpf_conformance: "exit" names the first exit
    if (!target) {
      if (in.op == isa::Op::CallLocal && opts.resolve_symbol) {
        if (auto v = opts.resolve_symbol(f.label)) {
          in = isa::make(isa::Op::Call, 0, 0, 0, static_cast<std::int32_t>(*v));
          continue;
        }
      }
      return line_error(f.line, f.col, fmt::format("unknown label '{}'", f.label));
    }
    const std::int64_t delta = static_cast<std::int64_t>(*target) - static_cast<std::int64_t>(f.index) - 1;
    if (f.in_imm) {
      in.imm = static_cast<std::int32_t>(delta);
    } else {
      if (delta < std::numeric_limits<std::int16_t>::min() || delta > std::numeric_limits<std::int16_t>::max())
        return line_error(f.line, f.col,
                          fmt::format("jump to '{}' is {} instructions away: does not fit in s16{}", f.label, delta,
                                      in.op == isa::Op::Ja ? " (use gotol)" : ""));
      in.off = static_cast<std::int16_t>(delta);
    }
  }
  return out;
}

}  // namespace userbpf::assembly
