// The resolve-externs phase: values for .kconfig externs and targets for
// .ksyms externs, as libbpf's bpf_object__resolve_externs does at load.
//
// .kconfig (libbpf's rules, kept exactly):
//   - Types: bool (1-byte BTF_INT_BOOL), char (1-byte int), 1/2/4/8-byte ints,
//     `enum libbpf_tristate`, char arrays. Anything else is an error.
//   - Values come from OpenOptions::externs.kconfig_extra first (first value
//     wins, as libbpf reads its `kconfig` option before the file), then the
//     config file: the one the user names, else /boot/config-$(uname -r),
//     else /proc/config.gz (plain or gzip, detected by the magic bytes).
//     Only "CONFIG_NAME=VALUE" lines count; "# CONFIG_X is not set" is a
//     comment, so X stays unset. y/n/m go to bool (m: error), tristate
//     (n=0, y=1, m=2) or char ('y'); "..." to char arrays (truncated to the
//     array with a NUL); numbers (strtoull base 0) to ints/char/bool with a
//     range check.
//   - LINUX_KERNEL_VERSION: KERNEL_VERSION(a, b, min(c, 255)) from uname's
//     release (or ExternOptions::kernel_version); LINUX_HAS_BPF_COOKIE and
//     LINUX_HAS_SYSCALL_WRAPPER from ExternOptions; any other LINUX_* extern
//     must be weak (then 0).
//   - An extern that got no value: weak -> 0, otherwise an error naming it.
//   The values are written into the .kconfig map's initial data.
// .ksyms (userbpf's policy; there is no kernel symbol table in user space):
//   - kfuncs are resolved by name against ExternOptions::kfuncs (the host's
//     registered kfuncs and their BTF ids). A call becomes `call` with
//     src = BPF_PSEUDO_KFUNC_CALL and imm = that BTF id; an `lddw` of it
//     (bpf_ksym_exists) loads the BTF id (non-zero). A weak kfunc not found:
//     the call is poisoned as libbpf does (`call 2002000000 + extern index`,
//     rejected only if reached) and the lddw loads 0.
//   - Variables (typed or untyped) are resolved by name against
//     ExternOptions::ksym_vars (an address the host gives): plain lddw of the
//     address. A weak variable not found loads 0 (libbpf does the same).
//   - A non-weak ksym that is not found is an error naming the symbol.
// With ExternOptions::resolve == false nothing happens here and the link
// phase leaves the instructions as libbpf's open does (imm 0, listed in
// Program::extern_uses).
#include <fmt/format.h>
#include <sys/utsname.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "loader/opener.hpp"

namespace userbpf::loader {

namespace {

enum class KcfgType : std::uint8_t { Unknown, Char, Bool, Int, Tristate, CharArr };

KcfgType kcfg_type(const Btf& b, std::uint32_t id, bool* is_signed) {
  if (is_signed) *is_signed = false;
  const std::uint32_t rid = b.skip_mods_and_typedefs(id);
  const struct btf_type* t = b.type(rid);
  if (t == nullptr) return KcfgType::Unknown;
  switch (btf_kind_of(t)) {
    case BTF_KIND_INT: {
      const std::uint32_t enc = btf_int_encoding_of(t);
      if ((enc & BTF_INT_BOOL) != 0) return t->size == 1 ? KcfgType::Bool : KcfgType::Unknown;
      if (is_signed) *is_signed = (enc & BTF_INT_SIGNED) != 0;
      if (t->size == 1) return KcfgType::Char;
      if (t->size < 1 || t->size > 8 || (t->size & (t->size - 1)) != 0) return KcfgType::Unknown;
      return KcfgType::Int;
    }
    case BTF_KIND_ENUM:
      if (t->size != 4) return KcfgType::Unknown;
      [[fallthrough]];
    case BTF_KIND_ENUM64:
      return b.name(t->name_off) == "libbpf_tristate" ? KcfgType::Tristate : KcfgType::Unknown;
    case BTF_KIND_ARRAY: {
      const struct btf_array* a = btf_array_of(t);
      if (a->nelems == 0 || kcfg_type(b, a->type, nullptr) != KcfgType::Char) return KcfgType::Unknown;
      return KcfgType::CharArr;
    }
    default:
      return KcfgType::Unknown;
  }
}

// Reads a whole file, gunzipping it when it starts with the gzip magic.
Result<std::string> read_config_file(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files transparently
  if (f == nullptr) return make_error(errno != 0 ? errno : ENOENT, fmt::format("cannot open '{}'", path));
  std::string out;
  char buf[65536];
  for (;;) {
    const int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      int zerr = 0;
      const std::string msg = gzerror(f, &zerr);
      gzclose(f);
      return make_error(EIO, fmt::format("cannot read '{}': {}", path, msg));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > (64u << 20)) {
      gzclose(f);
      return make_error(EFBIG, fmt::format("'{}': kernel config larger than 64 MiB", path));
    }
  }
  gzclose(f);
  return out;
}

std::uint32_t running_kernel_version() {
  struct utsname u {};
  if (uname(&u) != 0) return 0;
  unsigned a = 0, b = 0, c = 0;
  if (std::sscanf(u.release, "%u.%u.%u", &a, &b, &c) < 2) return 0;
  return (a << 16) + (b << 8) + std::min(c, 255u);
}

bool value_fits(std::uint64_t v, std::uint32_t size, bool is_signed) {
  if (size >= 8) return true;
  const unsigned bits = size * 8;
  if (is_signed) {
    const auto sv = static_cast<std::int64_t>(v);
    const std::int64_t lim = std::int64_t{1} << (bits - 1);
    return sv >= -lim && sv < lim;
  }
  return (v >> bits) == 0;
}

void store_le(std::uint8_t* p, std::uint64_t v, std::uint32_t size) {
  for (std::uint32_t i = 0; i < size && i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

}  // namespace

Status Opener::resolve_externs() {
  const ExternOptions& xo = opts_.externs;
  if (!xo.resolve || obj_.externs_.empty()) return Ok{};
  const Btf* b = obj_.btf_.get();
  Map* kmap = kconfig_map_ ? &obj_.maps_[*kconfig_map_] : nullptr;

  // ---- .kconfig
  struct Kc {
    Extern* e;
    KcfgType type;
    bool is_signed;
  };
  std::vector<Kc> kcs;
  bool need_config = false;
  for (Extern& e : obj_.externs_) {
    if (e.kind != ExternKind::Kconfig) continue;
    if (b == nullptr || kmap == nullptr) return err(fmt::format("extern (kcfg) '{}': .kconfig map missing", e.name));
    bool sgn = false;
    const KcfgType t = kcfg_type(*b, b->type(e.btf_id)->type, &sgn);
    if (t == KcfgType::Unknown)
      return err(fmt::format("extern (kcfg) '{}': type '{}' is unsupported (bool, char, int, enum libbpf_tristate or "
                             "char array)",
                             e.name, b->type_name(e.btf_type_id)));
    kcs.push_back({&e, t, sgn});
    if (e.name.rfind("CONFIG_", 0) == 0) need_config = true;
  }
  auto slot = [&](const Extern& e) { return kmap->initial_data.data() + e.kconfig_offset; };
  auto set_num = [&](const Kc& k, std::uint64_t v, std::string_view src) -> Status {
    const Extern& e = *k.e;
    if (k.type != KcfgType::Int && k.type != KcfgType::Char && k.type != KcfgType::Bool)
      return err(fmt::format("extern (kcfg) '{}': value '{}' from {} implies integer, char or boolean type", e.name, v,
                             src));
    if (k.type != KcfgType::Bool && !value_fits(v, e.size, k.is_signed))
      return err(fmt::format("extern (kcfg) '{}': value '{}' from {} does not fit in {} bytes", e.name, v, src, e.size));
    if (k.type == KcfgType::Bool && v > 1)
      return err(fmt::format("extern (kcfg) '{}': value '{}' from {} is not boolean compatible", e.name, v, src));
    store_le(slot(e), v, e.size);
    return Ok{};
  };
  // One "CONFIG_X=value" line (libbpf's bpf_object__process_kconfig_line).
  auto process_line = [&](std::string_view line, std::string_view src, std::size_t lineno) -> Status {
    if (line.rfind("CONFIG_", 0) != 0) return Ok{};
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto eq = line.find('=');
    if (eq == std::string_view::npos)
      return err(fmt::format("{}:{}: failed to parse '{}': no separator", src, lineno, line));
    const std::string_view name = line.substr(0, eq), value = line.substr(eq + 1);
    if (value.empty()) return err(fmt::format("{}:{}: failed to parse '{}': no value", src, lineno, line));
    auto it = std::find_if(kcs.begin(), kcs.end(), [&](const Kc& k) { return k.e->name == name; });
    if (it == kcs.end() || it->e->resolved) return Ok{};
    Extern& e = *it->e;
    const std::string at = fmt::format("{}:{}", src, lineno);
    switch (value[0]) {
      case 'y':
      case 'n':
      case 'm': {
        const char c = value[0];
        if (it->type == KcfgType::Bool) {
          if (c == 'm')
            return err(fmt::format("extern (kcfg) '{}': value 'm' at {} implies tristate or char type", e.name, at));
          *slot(e) = c == 'y' ? 1 : 0;
        } else if (it->type == KcfgType::Tristate) {
          store_le(slot(e), c == 'y' ? 1u : c == 'm' ? 2u : 0u, e.size);
        } else if (it->type == KcfgType::Char) {
          *slot(e) = static_cast<std::uint8_t>(c);
        } else {
          return err(fmt::format("extern (kcfg) '{}': value '{}' at {} implies bool, tristate or char type", e.name, c,
                                 at));
        }
        break;
      }
      case '"': {
        if (it->type != KcfgType::CharArr)
          return err(fmt::format("extern (kcfg) '{}': value {} at {} implies a char array type", e.name, value, at));
        if (value.size() < 2 || value.back() != '"')
          return err(fmt::format("extern (kcfg) '{}': invalid string value {} at {}", e.name, value, at));
        const std::string_view str = value.substr(1, value.size() - 2);
        const std::size_t n = std::min<std::size_t>(str.size(), e.size - 1);
        if (n < str.size())
          obj_.warnings_.push_back(fmt::format("{}: extern (kcfg) '{}': string {} truncated to {} bytes", where_,
                                               e.name, value, n));
        std::memcpy(slot(e), str.data(), n);
        slot(e)[n] = 0;
        break;
      }
      default: {
        const std::string v(value);
        char* end = nullptr;
        errno = 0;
        const unsigned long long num = std::strtoull(v.c_str(), &end, 0);
        if (errno != 0 || end == v.c_str() || *end != '\0')
          return err(fmt::format("extern (kcfg) '{}': value '{}' at {} is not a valid integer", e.name, v, at));
        if (it->type != KcfgType::Int && it->type != KcfgType::Char)
          return err(fmt::format("extern (kcfg) '{}': value '{}' at {} implies integer type", e.name, v, at));
        if (auto s = set_num(*it, num, at); !s) return s;
      }
    }
    e.resolved = true;
    e.source = std::string(src);
    return Ok{};
  };
  auto process_text = [&](std::string_view text, std::string_view src) -> Status {
    std::size_t lineno = 0;
    while (!text.empty()) {
      const auto nl = text.find('\n');
      const std::string_view line = text.substr(0, nl);
      ++lineno;
      if (auto s = process_line(line, src, lineno); !s) return s;
      if (nl == std::string_view::npos) break;
      text.remove_prefix(nl + 1);
    }
    return Ok{};
  };
  std::string config_source;
  if (!kcs.empty()) {
    if (!xo.kconfig_extra.empty())
      if (auto s = process_text(xo.kconfig_extra, "kconfig option"); !s) return s;
    if (need_config) {
      std::vector<std::string> paths;
      if (!xo.kconfig_path.empty()) {
        paths.push_back(xo.kconfig_path);
      } else {
        struct utsname u {};
        if (uname(&u) == 0) paths.push_back(fmt::format("/boot/config-{}", u.release));
        paths.emplace_back("/proc/config.gz");
      }
      std::string tried;
      for (const std::string& p : paths) {
        auto text = read_config_file(p);
        if (!text) {
          if (!xo.kconfig_path.empty())
            return err(fmt::format("kernel config: {}", text.error().message), text.error().code);
          tried += (tried.empty() ? "" : ", ") + p;
          continue;
        }
        config_source = p;
        if (auto s = process_text(*text, p); !s) return s;
        break;
      }
      if (config_source.empty()) config_source = fmt::format("no kernel config found ({})", tried);
    }
    for (Kc& k : kcs) {
      Extern& e = *k.e;
      if (e.resolved || e.name.rfind("LINUX_", 0) != 0) continue;
      std::uint64_t v = 0;
      if (e.name == "LINUX_KERNEL_VERSION") {
        v = xo.kernel_version != 0 ? xo.kernel_version : running_kernel_version();
        if (v == 0) return err(fmt::format("extern (kcfg) '{}': cannot determine the kernel version", e.name));
      } else if (e.name == "LINUX_HAS_BPF_COOKIE") {
        v = xo.has_bpf_cookie ? 1 : 0;
      } else if (e.name == "LINUX_HAS_SYSCALL_WRAPPER") {
        v = xo.has_syscall_wrapper ? 1 : 0;
      } else if (!e.weak) {
        return err(fmt::format("extern (kcfg) '{}': unrecognized virtual extern", e.name));
      }
      if (auto s = set_num(k, v, "userbpf"); !s) return s;
      e.resolved = true;
      e.source = "userbpf";
    }
    for (const Kc& k : kcs) {
      const Extern& e = *k.e;
      if (e.resolved || e.weak) continue;
      return err(fmt::format("extern (kcfg) '{}': value not found ({}); declare it __weak to default to 0", e.name,
                             need_config ? config_source : "not a CONFIG_ or LINUX_ name"),
                 ENOENT);
    }
  }

  // ---- .ksyms
  for (Extern& e : obj_.externs_) {
    if (e.kind == ExternKind::Kconfig) continue;
    const bool func = e.kind == ExternKind::KsymFunc;
    const auto& table = func ? xo.kfuncs : xo.ksym_vars;
    auto it = std::find_if(table.begin(), table.end(), [&](const HostSymbol& h) { return h.name == e.name; });
    if (it != table.end()) {
      e.resolved = true;
      e.value = it->value;
      e.source = "host";
      continue;
    }
    if (e.weak) continue;
    return err(fmt::format("extern ({}) '{}': not found among the host's {} (userbpf has no kernel symbols; register "
                           "it with the runtime or declare it __weak)",
                           func ? "func ksym" : "var ksym", e.name, func ? "kfuncs" : "symbols"),
               ENOENT);
  }
  return Ok{};
}

}  // namespace userbpf::loader
