// Execution differential with the kernel (see xdiff.hpp).
//
// How it works: observe() issues the same bpf() command sequence to any
// Backend; run_xdiff() observes each generated program on the kernel and on
// three userbpf runtimes (JIT, interpreter, unverified + checked
// interpreter) and compares. Each runtime keeps one Runtime for the whole
// run (objects are closed after every program); maps are created and seeded
// per program, so every program starts from the same state on every side.
//
// Invariants: every fd / handle observe() creates is closed before it
// returns; the kernel side holds no objects between programs; a program
// only counts as compared when both verifiers accepted it.
#include "fuzz/common/xdiff.hpp"

#include <fmt/format.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "oracle/oracle.hpp"
#include "runtime/runtime.hpp"

namespace userbpf::fuzz {

namespace {

std::uint64_t ptr(const void* p) { return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(p)); }

class KernelBackend final : public Backend {
 public:
  [[nodiscard]] const char* name() const override { return "kernel"; }
  long bpf(int cmd, union bpf_attr& attr) override { return syscall(__NR_bpf, cmd, &attr, sizeof(attr)); }
  void close(int fd) override { ::close(fd); }
};

class RuntimeBackend final : public Backend {
 public:
  RuntimeBackend(bool jit, bool verify) : name_(!verify ? "userbpf checked interpreter (unverified)"
                                                 : jit  ? "userbpf JIT"
                                                        : "userbpf interpreter") {
    const char* t = std::getenv("TMPDIR");
    std::string tmpl = std::string(t != nullptr && *t != '\0' ? t : "/tmp") + "/userbpf-xdiff-XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr) dir_ = tmpl;
    runtime::Options o;
    o.pin_dir = dir_.empty() ? std::string("/tmp/userbpf-xdiff") : dir_;
    o.engine = jit ? runtime::Engine::Jit : runtime::Engine::Interpreter;
    o.verify = verify;
    o.checked = true;
    o.budget = 1'000'000;
    rt_ = std::make_unique<runtime::Runtime>(o);
  }
  ~RuntimeBackend() override {
    rt_.reset();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  RuntimeBackend(const RuntimeBackend&) = delete;
  RuntimeBackend& operator=(const RuntimeBackend&) = delete;
  [[nodiscard]] const char* name() const override { return name_; }
  long bpf(int cmd, union bpf_attr& attr) override { return rt_->bpf(cmd, &attr, sizeof(attr)); }
  void close(int fd) override { (void)rt_->close(fd); }

 private:
  const char* name_;
  std::string dir_;
  std::unique_ptr<runtime::Runtime> rt_;
};

// Closes what observe() made, on every path.
struct Objects {
  Backend& b;
  std::vector<int> fds;
  ~Objects() {
    for (int fd : fds) b.close(fd);
  }
};

// Seeded element values: a pattern of the key and the byte's position.
std::vector<std::uint8_t> seed_value(std::uint32_t key, std::uint32_t size) {
  std::vector<std::uint8_t> v(size);
  for (std::uint32_t i = 0; i < size; ++i) v[i] = static_cast<std::uint8_t>(key * 29 + i * 7 + 1);
  return v;
}
// Keys seeded into hash maps (the generator uses keys 0..max_entries+1).
constexpr std::array<std::uint32_t, 3> kHashSeedKeys = {1, 3, 6};

long update(Backend& b, int fd, const void* key, const void* value) {
  union bpf_attr a;
  std::memset(&a, 0, sizeof(a));
  a.map_fd = static_cast<std::uint32_t>(fd);
  a.key = ptr(key);
  a.value = ptr(value);
  a.flags = BPF_ANY;
  return b.bpf(BPF_MAP_UPDATE_ELEM, a);
}

MapContents dump(Backend& b, int fd, const verifier::MapDesc& md) {
  MapContents out;
  std::vector<std::uint8_t> key(md.key_size), next(md.key_size), value(md.value_size);
  bool first = true;
  for (std::uint32_t guard = 0; guard < md.max_entries + 16; ++guard) {
    union bpf_attr a;
    std::memset(&a, 0, sizeof(a));
    a.map_fd = static_cast<std::uint32_t>(fd);
    a.key = first ? 0 : ptr(key.data());
    a.next_key = ptr(next.data());
    if (b.bpf(BPF_MAP_GET_NEXT_KEY, a) < 0) break;
    std::memset(&a, 0, sizeof(a));
    a.map_fd = static_cast<std::uint32_t>(fd);
    a.key = ptr(next.data());
    a.value = ptr(value.data());
    if (b.bpf(BPF_MAP_LOOKUP_ELEM, a) == 0) out.emplace_back(next, value);
    key = next;
    first = false;
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string hex(std::span<const std::uint8_t> v) {
  std::string s;
  for (std::uint8_t c : v) s += fmt::format("{:02x}", c);
  return s;
}

std::string describe(const MapContents& m) {
  std::string s;
  for (const auto& [k, v] : m) s += fmt::format(" {}:{}", hex(k), hex(v));
  return s.empty() ? " (empty)" : s;
}

}  // namespace

OnCpu0::OnCpu0() {
  cpu_set_t old, zero;
  if (sched_getaffinity(0, sizeof(old), &old) != 0) return;
  CPU_ZERO(&zero);
  CPU_SET(0, &zero);
  if (sched_setaffinity(0, sizeof(zero), &zero) != 0) return;
  saved_ = std::make_unique<cpu_set_t>(old);
}

OnCpu0::~OnCpu0() {
  if (saved_) (void)sched_setaffinity(0, sizeof(*saved_), saved_.get());
}

std::unique_ptr<Backend> kernel_backend() { return std::make_unique<KernelBackend>(); }
std::unique_ptr<Backend> runtime_backend(bool engine_jit, bool verify) {
  return std::make_unique<RuntimeBackend>(engine_jit, verify);
}

Observation observe(Backend& b, const GenProgram& prog, std::span<const std::uint8_t> packet) {
  Observation o;
  Objects objs{b, {}};
  std::vector<int> map_fds;
  for (const auto& md : prog.maps) {
    union bpf_attr a = oracle::map_create_attr({md.type, md.key_size, md.value_size, md.max_entries, 0});
    const long fd = b.bpf(BPF_MAP_CREATE, a);
    if (fd < 0) {
      o.setup_error = fmt::format("{}: BPF_MAP_CREATE of map '{}': {}", b.name(), md.name, std::strerror(errno));
      return o;
    }
    objs.fds.push_back(static_cast<int>(fd));
    map_fds.push_back(static_cast<int>(fd));
    const bool array = md.type == BPF_MAP_TYPE_ARRAY;
    for (std::uint32_t k = 0; k < (array ? md.max_entries : kHashSeedKeys.size()); ++k) {
      const std::uint32_t key = array ? k : kHashSeedKeys[k];
      if (key >= md.max_entries && !array) continue;
      const auto value = seed_value(key, md.value_size);
      if (md.key_size != sizeof(key) || update(b, static_cast<int>(fd), &key, value.data()) < 0) {
        o.setup_error = fmt::format("{}: seeding map '{}' key {}: {}", b.name(), md.name, key, std::strerror(errno));
        return o;
      }
    }
  }

  std::vector<isa::Insn> insns = prog.insns;
  oracle::bind_maps(insns, map_fds);
  const auto raw = isa::encode(insns);
  static constexpr char kLicense[] = "GPL";
  std::vector<char> log(1u << 20, '\0');
  union bpf_attr a;
  std::memset(&a, 0, sizeof(a));
  a.prog_type = prog.prog_type;
  a.insns = ptr(raw.data());
  a.insn_cnt = static_cast<std::uint32_t>(raw.size());
  a.license = ptr(kLicense);
  a.log_level = 1;
  a.log_buf = ptr(log.data());
  a.log_size = static_cast<std::uint32_t>(log.size());
  const long pfd = b.bpf(BPF_PROG_LOAD, a);
  if (pfd < 0) {
    o.load_err = errno;
    o.log.assign(log.data(), strnlen(log.data(), log.size()));
    return o;
  }
  o.loaded = true;
  objs.fds.push_back(static_cast<int>(pfd));

  std::vector<std::uint8_t> out(packet.size() + 512);
  std::memset(&a, 0, sizeof(a));
  a.test.prog_fd = static_cast<std::uint32_t>(pfd);
  a.test.data_in = ptr(packet.data());
  a.test.data_size_in = static_cast<std::uint32_t>(packet.size());
  a.test.data_out = ptr(out.data());
  a.test.data_size_out = static_cast<std::uint32_t>(out.size());
  a.test.repeat = 1;
  if (b.bpf(BPF_PROG_TEST_RUN, a) < 0) {
    o.run_err = errno;
  } else {
    o.retval = a.test.retval;
    out.resize(std::min<std::size_t>(a.test.data_size_out, out.size()));
    o.data_out = std::move(out);
  }
  for (std::size_t i = 0; i < prog.maps.size(); ++i) o.maps.push_back(dump(b, map_fds[i], prog.maps[i]));
  return o;
}

std::span<const std::uint8_t> xdiff_packet() {
  static const std::vector<std::uint8_t> pkt = [] {
    std::vector<std::uint8_t> p = {
        0, 0, 0, 0, 0, 0,              // destination MAC: loopback's (PACKET_HOST)
        0x02, 0x11, 0x22, 0x33, 0x44, 0x55,  // source MAC
        0x08, 0x00,                    // IPv4
        0x45, 0x00, 0x00, 0x32, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00,  // IPv4, 50 bytes, UDP
        10, 0, 0, 1, 10, 0, 0, 2,      // addresses
        0x30, 0x39, 0x00, 0x35, 0x00, 0x1e, 0x00, 0x00,  // UDP 12345 -> 53, 30 bytes
    };
    for (std::uint8_t i = 0; p.size() < 64; ++i) p.push_back(static_cast<std::uint8_t>(0x80 + i * 13));
    return p;
  }();
  return pkt;
}

GenProgram xdiff_program(std::uint64_t seed, std::size_t index) {
  Rng rng(seed * 0xd1b54a32d192ed03ULL + index);
  GenOptions o;
  o.prog_type = index % 2 == 0 ? BPF_PROG_TYPE_SOCKET_FILTER : BPF_PROG_TYPE_XDP;
  o.fault_percent = 0;
  o.deterministic_helpers = true;
  o.init_stack = true;
  o.max_statements = 6 + rng.below(26);
  return generate(rng, o);
}

std::string compare(const Observation& kernel, const Observation& ours) {
  std::string d;
  if (kernel.run_err != ours.run_err)
    d += fmt::format("PROG_TEST_RUN errno: kernel {}, userbpf {}\n", kernel.run_err, ours.run_err);
  if (kernel.retval != ours.retval)
    d += fmt::format("retval: kernel {:#x}, userbpf {:#x}\n", kernel.retval, ours.retval);
  if (kernel.data_out != ours.data_out)
    d += fmt::format("packet out:\n  kernel  {}\n  userbpf {}\n", hex(kernel.data_out), hex(ours.data_out));
  for (std::size_t i = 0; i < kernel.maps.size() && i < ours.maps.size(); ++i)
    if (kernel.maps[i] != ours.maps[i])
      d += fmt::format("map {}:\n  kernel {}\n  userbpf{}\n", i, describe(kernel.maps[i]), describe(ours.maps[i]));
  return d;
}

ExecDiffStats run_xdiff(std::uint64_t seed, std::size_t n, std::vector<ExecDisagreement>* out) {
  ExecDiffStats st;
  const auto& avail = oracle::available();
  st.available = avail.ok;
  st.reason = avail.reason;
  if (!avail.ok) return st;
  const OnCpu0 pin;
  auto kernel = kernel_backend();
  std::unique_ptr<Backend> sides[] = {runtime_backend(true, true), runtime_backend(false, true),
                                      runtime_backend(false, false)};
  const auto packet = xdiff_packet();
  for (std::size_t i = 0; i < n; ++i) {
    GenProgram prog = xdiff_program(seed, i);
    ++st.programs;
    const Observation k = observe(*kernel, prog, packet);
    if (!k.setup_error.empty()) {
      st.available = false;
      st.reason = k.setup_error;
      return st;
    }
    const Observation jit = observe(*sides[0], prog, packet);
    std::string what;
    if (!jit.setup_error.empty()) {
      what = jit.setup_error + "\n";
    } else if (k.loaded != jit.loaded) {
      ++st.verdict_differs;
      continue;
    } else if (!k.loaded) {
      ++st.neither_loaded;
      continue;
    }
    ++st.both_loaded;
    (prog.prog_type == BPF_PROG_TYPE_XDP ? st.xdp : st.socket_filter)++;
    if (what.empty()) {
      if (auto d = compare(k, jit); !d.empty()) what += fmt::format("{}:\n{}", sides[0]->name(), d);
      for (std::size_t s = 1; s < std::size(sides); ++s) {
        const Observation o = observe(*sides[s], prog, packet);
        if (!o.setup_error.empty()) what += o.setup_error + "\n";
        else if (!o.loaded) what += fmt::format("{}: PROG_LOAD failed: {}\n", sides[s]->name(), std::strerror(o.load_err));
        else if (auto d = compare(k, o); !d.empty()) what += fmt::format("{}:\n{}", sides[s]->name(), d);
      }
    }
    if (what.empty()) {
      ++st.agree;
      continue;
    }
    if (out != nullptr) out->push_back({seed, i, std::move(prog), std::move(what)});
  }
  return st;
}

std::string exec_disagreement_case(const ExecDisagreement& d) {
  std::string text = to_case_text(d.prog, fmt::format("xdiff_{}_{}", d.seed, d.index),
                                  fmt::format("xdiff seed {} program {}: execution differs from the kernel's "
                                              "(both verifiers accept)",
                                              d.seed, d.index));
  text.insert(text.find("---\n"), "expect: accept\n");
  std::string comments;
  std::size_t b = 0;
  while (b < d.what.size()) {
    const auto e = d.what.find('\n', b);
    comments += "# " + d.what.substr(b, e == std::string::npos ? std::string::npos : e - b) + "\n";
    if (e == std::string::npos) break;
    b = e + 1;
  }
  return comments + text;
}

}  // namespace userbpf::fuzz
