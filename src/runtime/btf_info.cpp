// PROG_LOAD's BTF func and line info: the kernel's checks, the verifier's
// function signatures, source lines for messages and logs.
//
// How it works. check_btf_info() runs, in the kernel's order and with its
// errno and log texts, check_btf_info_early (prog_btf_fd must name a BTF
// object when there are records: EBADF / EINVAL), check_btf_func_early
// (record size 8..252 and a multiple of 4, bytes past struct bpf_func_info
// zero — else E2BIG and the expected size written back —, the first insn_off
// 0, strictly increasing, each type id a FUNC with a FUNC_PROTO), then, with
// the subprogram starts the instructions give (isa::subprogram_starts),
// check_btf_func (one record per subprogram, at its start; LD_ABS and tail
// calls only in functions returning a scalar) and check_btf_line (record
// size 16..252, strictly increasing offsets inside the program, not on an
// lddw tail, valid string offsets, every subprogram's first instruction
// covered). Records are copied into the kernel's struct layout whatever
// rec_size the caller used.
//
// The accepted func_info becomes the verifier's FuncSig list through
// verifier::func_sigs (verifier/object_config.hpp) — the one place where BTF
// FUNC/FUNC_PROTO records turn into signatures, for the runtime (bpf()
// PROG_LOAD and load_object, which passes its object's BTF and records
// through the same PROG_LOAD path) and for loaded objects verified directly.
//
// Invariants: the returned records are in the kernel's layout, sorted by
// insn_off, func_info[i].insn_off == the start of subprogram i; the BTF
// object returned is the one every record's type id and string offset was
// checked against.
#include <bpf/btf.h>
#include <fmt/format.h>
#include <linux/btf.h>

#include <algorithm>
#include <cstring>

#include "runtime/internal.hpp"
#include "runtime/runtime.hpp"
#include "verifier/object_config.hpp"

namespace userbpf::runtime {

namespace {

constexpr std::uint32_t kMinFuncInfoSize = 8;    // MIN_BPF_FUNCINFO_SIZE
constexpr std::uint32_t kMaxInfoRecSize = 252;   // MAX_FUNCINFO_REC_SIZE = MAX_LINEINFO_REC_SIZE
constexpr std::uint32_t kMinLineInfoSize = 16;   // offsetofend(struct bpf_line_info, line_col)
constexpr std::int32_t kTailCallHelper = 12;     // BPF_FUNC_tail_call

// Record i of `cnt` records of `rec_size` bytes at `base`, in the kernel's
// layout T (shorter records zero-extended). E2BIG when bytes past sizeof(T)
// are not zero (bpf_check_uarg_tail_zero).
template <class T>
bool copy_record(const void* base, std::uint32_t rec_size, std::uint32_t i, T& out) {
  const auto* rec = static_cast<const std::uint8_t*>(base) + std::size_t{rec_size} * i;
  std::memset(&out, 0, sizeof out);
  std::memcpy(&out, rec, std::min<std::size_t>(sizeof out, rec_size));
  for (std::size_t b = sizeof out; b < rec_size; ++b)
    if (rec[b] != 0) return false;
  return true;
}

// The kernel's btf_type_skip_modifiers + "small int or any enum" (a scalar return).
bool returns_scalar(const struct btf* btf, const struct btf_type* proto) {
  std::uint32_t id = proto->type;
  const struct btf_type* t = btf__type_by_id(btf, id);
  while (t != nullptr && (btf_is_mod(t) || btf_is_typedef(t))) t = btf__type_by_id(btf, t->type);
  if (t == nullptr || id == 0) return false;
  if (btf_is_enum(t) || btf_is_enum64(t)) return true;
  return btf_is_int(t) && t->size <= 8;
}

}  // namespace

Result<BtfInfo> check_btf_info(const Runtime& rt, const ProgSpec& spec, std::span<const isa::Insn> insns,
                               std::string& log) {
  BtfInfo out;
  if (spec.func_info_cnt == 0 && spec.line_info_cnt == 0) return out;
  // Kernel messages go to the log as they are and become the Error's text;
  // where the kernel logs nothing, only the Error says what is wrong.
  auto fail = [&](int code, std::string kernel_log, std::string msg = {}) -> Error {
    if (spec.log_level != 0) log += kernel_log;
    if (msg.empty()) msg = std::move(kernel_log);
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    return make_error(code, std::move(msg));
  };

  // check_btf_info_early: btf_get_by_fd. Handles 0-2 stand for the standard
  // streams of a process: open, but not BTF (EINVAL, as the kernel answers
  // for prog_btf_fd 0).
  if (spec.btf_fd < 3) return fail(EINVAL, "", fmt::format("prog_btf_fd {} is not BTF", spec.btf_fd));
  auto obj = rt.get(static_cast<int>(spec.btf_fd));
  if (!obj) return make_error(EBADF, fmt::format("prog_btf_fd {} is not open", spec.btf_fd));
  if (obj->kind != ObjKind::Btf) return make_error(EINVAL, fmt::format("prog_btf_fd {} is not BTF", spec.btf_fd));
  out.btf = std::static_pointer_cast<BtfObject>(obj);
  const struct btf* btf = out.btf->btf.get();

  // check_btf_func_early
  if (spec.func_info_cnt != 0) {
    const std::uint32_t rs = spec.func_info_rec_size;
    if (rs < kMinFuncInfoSize || rs > kMaxInfoRecSize || rs % 4 != 0)
      return fail(EINVAL, fmt::format("invalid func info rec size {}\n", rs));
    if (spec.func_info == nullptr) return fail(EFAULT, "", "func_info is NULL");
    out.func_info.resize(spec.func_info_cnt);
    std::uint32_t prev = 0;
    for (std::uint32_t i = 0; i < spec.func_info_cnt; ++i) {
      bpf_func_info& r = out.func_info[i];
      if (!copy_record(spec.func_info, rs, i, r)) {
        if (spec.func_info_rec_size_out != nullptr)
          *spec.func_info_rec_size_out = std::min<std::uint32_t>(sizeof(bpf_func_info), rs);
        return fail(E2BIG, "nonzero tailing record in func info");
      }
      if (i == 0 && r.insn_off != 0)
        return fail(EINVAL, fmt::format("nonzero insn_off {} for the first func info record", r.insn_off));
      if (i != 0 && r.insn_off <= prev)
        return fail(EINVAL, fmt::format("same or smaller insn offset ({}) than previous func info record ({})",
                                        r.insn_off, prev));
      const struct btf_type* t = btf__type_by_id(btf, r.type_id);
      if (t == nullptr || !btf_is_func(t))
        return fail(EINVAL, fmt::format("invalid type id {} in func info", static_cast<std::int32_t>(r.type_id)));
      const struct btf_type* proto = btf__type_by_id(btf, t->type);
      if (proto == nullptr || !btf_is_func_proto(proto))
        return fail(EINVAL, "", fmt::format("func info record {}: type {} has no FUNC_PROTO", i, r.type_id));
      prev = r.insn_off;
    }
  }

  // add_subprog_and_kfunc
  auto starts = isa::subprogram_starts(insns);
  if (!starts) {
    if (spec.log_level != 0) log += starts.error().message + "\n";
    return starts.error();
  }
  const std::vector<std::size_t>& sub = *starts;

  // check_btf_func
  if (spec.func_info_cnt != 0) {
    if (out.func_info.size() != sub.size())
      return fail(EINVAL, "number of funcs in func_info doesn't match number of subprogs\n");
    for (std::size_t i = 0; i < sub.size(); ++i) {
      if (out.func_info[i].insn_off != sub[i])
        return fail(EINVAL, "func_info BTF section doesn't match subprog layout in BPF program\n");
      if (i == 0) continue;
      const struct btf_type* proto = btf__type_by_id(btf, btf__type_by_id(btf, out.func_info[i].type_id)->type);
      if (returns_scalar(btf, proto)) continue;
      const std::size_t end = i + 1 < sub.size() ? sub[i + 1] : insns.size();
      bool ld_abs = false, tail_call = false;
      for (std::size_t pc = sub[i]; pc < end; ++pc) {
        const isa::Form form = insns[pc].info().form;
        ld_abs = ld_abs || form == isa::Form::LdAbs || form == isa::Form::LdInd;
        tail_call = tail_call || (insns[pc].op == isa::Op::Call && insns[pc].imm == kTailCallHelper);
      }
      if (ld_abs) return fail(EINVAL, "LD_ABS is only allowed in functions that return 'int'.\n");
      if (tail_call) return fail(EINVAL, "Tail call is only allowed in functions that return 'int'.\n");
    }
  }

  // check_btf_line
  if (spec.line_info_cnt != 0) {
    const std::uint32_t rs = spec.line_info_rec_size;
    if (spec.line_info_cnt > INT32_MAX / sizeof(bpf_line_info))
      return fail(EINVAL, "", fmt::format("line_info_cnt {} is too large", spec.line_info_cnt));
    if (rs < kMinLineInfoSize || rs > kMaxInfoRecSize || rs % 4 != 0)
      return fail(EINVAL, "", fmt::format("invalid line info rec size {}", rs));
    if (spec.line_info == nullptr) return fail(EFAULT, "", "line_info is NULL");
    out.line_info.resize(spec.line_info_cnt);
    const auto len = static_cast<std::uint32_t>(insns.size());
    std::uint32_t prev = 0;
    std::size_t s = 0;
    for (std::uint32_t i = 0; i < spec.line_info_cnt; ++i) {
      bpf_line_info& r = out.line_info[i];
      if (!copy_record(spec.line_info, rs, i, r)) {
        if (spec.line_info_rec_size_out != nullptr) *spec.line_info_rec_size_out = sizeof(bpf_line_info);
        return fail(E2BIG, "nonzero tailing record in line_info");
      }
      if ((i != 0 && r.insn_off <= prev) || r.insn_off >= len)
        return fail(EINVAL, fmt::format("Invalid line_info[{}].insn_off:{} (prev_offset:{} prog->len:{})\n", i,
                                        r.insn_off, prev, len));
      if (insns[r.insn_off].op == isa::Op::LddwTail)
        return fail(EINVAL, fmt::format("Invalid insn code at line_info[{}].insn_off\n", i));
      if (btf__name_by_offset(btf, r.line_off) == nullptr || btf__name_by_offset(btf, r.file_name_off) == nullptr)
        return fail(EINVAL, fmt::format("Invalid line_info[{}].line_off or .file_name_off\n", i));
      if (s != sub.size()) {
        if (r.insn_off == sub[s]) ++s;
        else if (sub[s] < r.insn_off) return fail(EINVAL, fmt::format("missing bpf_line_info for func#{}\n", s));
      }
      prev = r.insn_off;
    }
    if (s != sub.size())
      return fail(EINVAL, fmt::format("missing bpf_line_info for {} funcs starting from func#{}\n", sub.size() - s, s));
  }
  out.funcs = verifier::func_sigs(btf, out.func_info, spec.type,
                                 [](const bpf_func_info& r) { return std::size_t{r.insn_off}; });
  return out;
}

namespace {

// The line-info record covering `insn` (the last one at or before it).
const bpf_line_info* find_line(std::span<const bpf_line_info> lines, std::size_t insn) {
  const bpf_line_info* best = nullptr;
  for (const bpf_line_info& l : lines) {
    if (l.insn_off > insn) break;
    best = &l;
  }
  return best;
}

// "<source text> @ <file>:<line>" as the kernel's verbose_linfo prints it
// (leading blanks dropped, only the file's base name).
std::string line_text(const struct btf* btf, const bpf_line_info& l) {
  const char* src = btf__name_by_offset(btf, l.line_off);
  const char* file = btf__name_by_offset(btf, l.file_name_off);
  std::string_view s = src != nullptr ? src : "";
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  std::string_view f = file != nullptr ? file : "";
  if (auto slash = f.rfind('/'); slash != std::string_view::npos) f.remove_prefix(slash + 1);
  return fmt::format("{} @ {}:{}", s, f, BPF_LINE_INFO_LINE_NUM(l.line_col));
}

}  // namespace

std::string source_line(const BtfInfo& info, std::size_t insn) {
  if (!info.btf || info.line_info.empty()) return {};
  const bpf_line_info* l = find_line(info.line_info, insn);
  return l != nullptr ? line_text(info.btf->btf.get(), *l) : std::string{};
}

std::string annotate_log(const std::string& log, const BtfInfo& info) {
  if (!info.btf || info.line_info.empty()) return log;
  std::string out;
  out.reserve(log.size() + log.size() / 4);
  const bpf_line_info* prev = nullptr;
  std::size_t pos = 0;
  while (pos < log.size()) {
    std::size_t end = log.find('\n', pos);
    end = end == std::string::npos ? log.size() : end + 1;
    const std::string_view line(log.data() + pos, end - pos);
    if (line.rfind("from ", 0) == 0) prev = nullptr;  // a new path: the kernel prints the line again
    // "<insn>: (<opcode>) ...": an instruction about to be processed
    std::size_t d = 0;
    while (d < line.size() && line[d] >= '0' && line[d] <= '9') ++d;
    if (d > 0 && line.substr(d, 3) == ": (") {
      const auto insn = static_cast<std::size_t>(std::stoull(std::string(line.substr(0, d))));
      const bpf_line_info* l = find_line(info.line_info, insn);
      if (l != nullptr && l != prev) out += "; " + line_text(info.btf->btf.get(), *l) + "\n";
      prev = l;
    }
    out += line;
    pos = end;
  }
  return out;
}

}  // namespace userbpf::runtime
