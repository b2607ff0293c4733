// The Linux kernel as an oracle: our own thin wrappers over bpf(2).
//
// How it works:
//  - Every command fills a zeroed `union bpf_attr` (<linux/bpf.h>) and calls
//    syscall(__NR_bpf, ...). No libbpf: the oracle must not share code paths
//    with what it checks.
//  - available() probes once (load `r0 = 0; exit` as a socket filter,
//    test-run it, create an array map) and caches the answer with the reason when it fails.
//  - load() asks for a verifier log; when the log buffer is too small
//    (ENOSPC) it grows the buffer and loads again, up to 64 MiB. Its
//    LoadExtras pass an fd_array (for `lddw map_idx`) and BTF func_info
//    (load_btf'd; the kernel wants it for callbacks) when given.
//  - run_r0() runs a conformance-style program (r1 = memory, r2 = length,
//    result = 64-bit r0) by appending it as a bpf-to-bpf subprogram to a
//    small wrapper:
//        r1 = map_value(in_map) + 0      ; lddw BPF_PSEUDO_MAP_VALUE: key 0 of the input map
//        r2 = len
//        call <test>                     ; BPF_PSEUDO_CALL to the appended program
//        r1 = map_value(out_map) + 0
//        *(u64 *)(r1 + 0) = r0
//        r0 = 0
//        exit
//        <test program, unchanged>
//    The wrapper uses no stack, so the test program keeps the whole 512-byte
//    stack budget (the kernel rounds a JIT-ed frame's depth up to 16, 0 stays
//    0). The input map's value is the test memory (value_size = max(len, 1));
//    the verifier therefore sees r1 as a map-value pointer of exactly `len`
//    bytes, and accesses outside it are refused at load time. Relative
//    offsets inside the test program (jumps, local calls, pseudo-func lddw)
//    stay valid because the program is appended contiguously.
//
// Invariants: every fd is owned by an Fd (closed on every path); run_r0 never
// modifies the caller's program; programs the wrapper cannot express (helper
// 5 "unwind", LD_ABS/LD_IND, callx, kfunc calls) are reported as not
// comparable (EOPNOTSUPP) without asking the kernel.
#include "oracle/oracle.hpp"

#include <fmt/format.h>
#include <linux/bpf.h>
#include <linux/btf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

namespace userbpf::oracle {

namespace {

using isa::Op;

long sys_bpf(int cmd, union bpf_attr* attr) {
  return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

std::uint64_t ptr_to_u64(const void* p) { return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(p)); }

constexpr std::uint32_t kProbeProgType = BPF_PROG_TYPE_SOCKET_FILTER;
// Size of data_in for test runs of the wrapper: an skb needs at least an
// Ethernet header; 64 bytes is a minimal frame.
constexpr std::size_t kDummyPacket = 64;

Availability probe() {
  Availability a;
  std::vector<isa::Insn> prog = {isa::make(Op::MovImm, 0, 0, 0, 0), isa::make(Op::Exit)};
  const auto raw = isa::encode(prog);
  LoadResult lr = load(raw, kProbeProgType, 0);
  if (!lr.prog) {
    a.reason = fmt::format("bpf(BPF_PROG_LOAD) of a trivial socket filter failed: {} ({})", std::strerror(lr.err),
                           lr.err);
    if (lr.err == ENOSYS) a.reason += "; the kernel has no bpf() system call";
    if (lr.err == EPERM) a.reason += "; needs root or CAP_BPF";
    return a;
  }
  std::vector<std::uint8_t> pkt(kDummyPacket, 0);
  auto tr = test_run(lr.prog, pkt, 1);
  if (!tr) {
    a.reason = "bpf(BPF_PROG_TEST_RUN) failed: " + tr.error().message;
    return a;
  }
  auto map = create_array_map(8, 1);
  if (!map) {
    a.reason = map.error().message;
    return a;
  }
  a.ok = true;
  return a;
}

}  // namespace

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

const Availability& available() {
  static std::once_flag once;
  static Availability result;
  std::call_once(once, [] { result = probe(); });
  return result;
}

LoadResult load(std::span<const isa::RawInsn> insns, std::uint32_t prog_type, std::uint32_t log_level,
                std::uint32_t expected_attach_type) {
  return load(insns, prog_type, log_level, expected_attach_type, LoadExtras{});
}

LoadResult load(std::span<const isa::RawInsn> insns, std::uint32_t prog_type, std::uint32_t log_level,
                std::uint32_t expected_attach_type, const LoadExtras& extras) {
  LoadResult out;
  static constexpr char kLicense[] = "GPL";
  std::size_t log_size = log_level != 0 ? 64 * 1024 : 0;
  constexpr std::size_t kMaxLog = 64u * 1024 * 1024;
  std::vector<char> log;
  for (;;) {
    log.assign(log_size, '\0');
    union bpf_attr attr;
    std::memset(&attr, 0, sizeof(attr));
    attr.prog_type = prog_type;
    attr.expected_attach_type = expected_attach_type;
    attr.insns = ptr_to_u64(insns.data());
    attr.insn_cnt = static_cast<std::uint32_t>(insns.size());
    attr.license = ptr_to_u64(kLicense);
    if (!extras.fd_array.empty()) attr.fd_array = ptr_to_u64(extras.fd_array.data());
    if (!extras.func_info.empty()) {
      attr.prog_btf_fd = static_cast<std::uint32_t>(extras.btf_fd);
      attr.func_info = ptr_to_u64(extras.func_info.data());
      attr.func_info_rec_size = sizeof(bpf_func_info);
      attr.func_info_cnt = static_cast<std::uint32_t>(extras.func_info.size());
    }
    if (log_size != 0) {
      attr.log_level = log_level;
      attr.log_buf = ptr_to_u64(log.data());
      attr.log_size = static_cast<std::uint32_t>(log_size);
    }
    const long fd = sys_bpf(BPF_PROG_LOAD, &attr);
    const int err = fd < 0 ? errno : 0;
    if (fd < 0 && err == ENOSPC && log_size != 0 && log_size < kMaxLog) {
      log_size *= 4;
      continue;
    }
    if (fd >= 0) out.prog = Fd(static_cast<int>(fd));
    out.err = err;
    if (log_size != 0) out.log.assign(log.data(), strnlen(log.data(), log.size()));
    return out;
  }
}

Result<Fd> load_btf(std::span<const std::uint8_t> blob) {
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.btf = ptr_to_u64(blob.data());
  attr.btf_size = static_cast<std::uint32_t>(blob.size());
  const long fd = sys_bpf(BPF_BTF_LOAD, &attr);
  if (fd < 0) {
    const int err = errno;
    return make_error(err, fmt::format("bpf(BPF_BTF_LOAD) of {} bytes: {} ({})", blob.size(), std::strerror(err), err));
  }
  return Fd(static_cast<int>(fd));
}

std::vector<std::uint8_t> func_btf(std::size_t n) {
  std::string strings(1, '\0');
  const auto add_string = [&strings](const std::string& str) {
    const auto off = static_cast<std::uint32_t>(strings.size());
    strings += str;
    strings += '\0';
    return off;
  };
  std::vector<std::uint32_t> types;
  // [1] INT "long": 8 bytes, signed, 64 bits; [2] FUNC_PROTO returning [1], no parameters
  types.insert(types.end(), {add_string("long"), std::uint32_t{BTF_KIND_INT} << 24, 8, (1u << 24) | 64u});
  types.insert(types.end(), {0, std::uint32_t{BTF_KIND_FUNC_PROTO} << 24, 1});
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t linkage = i == 0 ? 1 : 0;  // BTF_FUNC_GLOBAL : BTF_FUNC_STATIC
    types.insert(types.end(), {add_string(fmt::format("f{}", i)), (std::uint32_t{BTF_KIND_FUNC} << 24) | linkage, 2});
  }
  btf_header h{};
  h.magic = BTF_MAGIC;
  h.version = BTF_VERSION;
  h.hdr_len = sizeof h;
  h.type_off = 0;
  h.type_len = static_cast<std::uint32_t>(types.size() * 4);
  h.str_off = h.type_len;
  h.str_len = static_cast<std::uint32_t>(strings.size());
  std::vector<std::uint8_t> blob(sizeof h + h.type_len + h.str_len);
  std::memcpy(blob.data(), &h, sizeof h);
  std::memcpy(blob.data() + sizeof h, types.data(), h.type_len);
  std::memcpy(blob.data() + sizeof h + h.type_len, strings.data(), h.str_len);
  return blob;
}

Result<TestRun> test_run(const Fd& prog, std::span<const std::uint8_t> data_in, std::uint32_t repeat,
                         std::size_t data_out_size) {
  TestRun out;
  out.data_out.assign(data_out_size, 0);
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.test.prog_fd = static_cast<std::uint32_t>(prog.get());
  attr.test.data_in = ptr_to_u64(data_in.data());
  attr.test.data_size_in = static_cast<std::uint32_t>(data_in.size());
  if (data_out_size != 0) {
    attr.test.data_out = ptr_to_u64(out.data_out.data());
    attr.test.data_size_out = static_cast<std::uint32_t>(data_out_size);
  }
  attr.test.repeat = repeat;
  if (sys_bpf(BPF_PROG_TEST_RUN, &attr) < 0) {
    const int err = errno;
    return make_error(err, fmt::format("bpf(BPF_PROG_TEST_RUN): {} ({})", std::strerror(err), err));
  }
  out.retval = attr.test.retval;
  out.duration_ns = attr.test.duration;
  if (data_out_size != 0) out.data_out.resize(std::min<std::size_t>(attr.test.data_size_out, data_out_size));
  return out;
}

union bpf_attr map_create_attr(const MapParams& p) {
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.map_type = p.type;
  attr.key_size = p.key_size;
  attr.value_size = p.value_size;
  attr.max_entries = p.max_entries;
  attr.map_flags = p.flags;
  return attr;
}

Result<Fd> create_map(const MapParams& p) {
  union bpf_attr attr = map_create_attr(p);
  const long fd = sys_bpf(BPF_MAP_CREATE, &attr);
  if (fd < 0) {
    const int err = errno;
    return make_error(err, fmt::format("bpf(BPF_MAP_CREATE) of map type {} (key_size {}, value_size {}, max_entries "
                                       "{}, flags {:#x}): {} ({})",
                                       p.type, p.key_size, p.value_size, p.max_entries, p.flags, std::strerror(err),
                                       err));
  }
  return Fd(static_cast<int>(fd));
}

void bind_maps(std::span<isa::Insn> prog, std::span<const int> fds) {
  for (auto& in : prog)
    if ((in.op == Op::LddwMapFd || in.op == Op::LddwMapValue) && in.imm >= 0 &&
        static_cast<std::size_t>(in.imm) < fds.size())
      in.imm = fds[static_cast<std::size_t>(in.imm)];
}

void bind_maps(std::span<isa::Insn> prog, std::span<const Fd> maps) {
  std::vector<int> fds;
  for (const Fd& m : maps) fds.push_back(m.get());
  bind_maps(prog, fds);
}

Result<Fd> create_array_map(std::uint32_t value_size, std::uint32_t max_entries) {
  return create_map({BPF_MAP_TYPE_ARRAY, 4, value_size, max_entries, 0});
}

Status map_update(const Fd& map, std::uint32_t key, std::span<const std::uint8_t> value) {
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.map_fd = static_cast<std::uint32_t>(map.get());
  attr.key = ptr_to_u64(&key);
  attr.value = ptr_to_u64(value.data());
  attr.flags = BPF_ANY;
  if (sys_bpf(BPF_MAP_UPDATE_ELEM, &attr) < 0) {
    const int err = errno;
    return make_error(err, fmt::format("bpf(BPF_MAP_UPDATE_ELEM) key {}: {} ({})", key, std::strerror(err), err));
  }
  return Ok{};
}

Result<std::vector<std::uint8_t>> map_lookup(const Fd& map, std::uint32_t key, std::uint32_t value_size) {
  std::vector<std::uint8_t> value(value_size, 0);
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.map_fd = static_cast<std::uint32_t>(map.get());
  attr.key = ptr_to_u64(&key);
  attr.value = ptr_to_u64(value.data());
  if (sys_bpf(BPF_MAP_LOOKUP_ELEM, &attr) < 0) {
    const int err = errno;
    return make_error(err, fmt::format("bpf(BPF_MAP_LOOKUP_ELEM) key {}: {} ({})", key, std::strerror(err), err));
  }
  return value;
}

std::optional<std::string> not_comparable(std::span<const isa::Insn> program) {
  for (std::size_t pc = 0; pc < program.size(); ++pc) {
    const isa::Insn& in = program[pc];
    if (in.op == Op::LddwTail) continue;  // not a row of the table
    const isa::Form f = in.info().form;
    if (f == isa::Form::Call && in.imm == kUnwindHelper)
      return fmt::format("insn {}: calls helper {} (\"unwind\", a conformance-test helper the kernel lacks)", pc,
                         kUnwindHelper);
    if (f == isa::Form::LdAbs || f == isa::Form::LdInd)
      return fmt::format("insn {}: LD_ABS/LD_IND cannot be used in a bpf-to-bpf subprogram", pc);
    if (f == isa::Form::Callx) return fmt::format("insn {}: callx is not known to the kernel", pc);
    if (f == isa::Form::CallKfunc) return fmt::format("insn {}: kfunc calls need the kernel's BTF ids", pc);
  }
  return std::nullopt;
}

std::vector<isa::Insn> make_wrapper(int in_map_fd, int out_map_fd, std::uint64_t len,
                                    std::span<const isa::Insn> program) {
  std::vector<isa::Insn> w;
  w.push_back(isa::make(Op::LddwMapValue, 1, 0, 0, in_map_fd, 0));
  w.push_back(isa::make(Op::LddwTail));
  w.push_back(isa::make(Op::MovImm, 2, 0, 0, static_cast<std::int32_t>(len)));
  const std::size_t call_pc = w.size();
  w.push_back(isa::make(Op::CallLocal));
  w.push_back(isa::make(Op::LddwMapValue, 1, 0, 0, out_map_fd, 0));
  w.push_back(isa::make(Op::LddwTail));
  w.push_back(isa::make(Op::StxDW, 1, 0, 0));  // *(u64 *)(r1 + 0) = r0
  w.push_back(isa::make(Op::MovImm, 0, 0, 0, 0));
  w.push_back(isa::make(Op::Exit));
  // call target = call_pc + 1 + imm = first instruction of the test program
  w[call_pc].imm = static_cast<std::int32_t>(w.size() - call_pc - 1);
  w.insert(w.end(), program.begin(), program.end());
  return w;
}

Result<R0Run> run_r0(std::span<const isa::Insn> program, std::span<const std::uint8_t> memory,
                     std::uint32_t repeat) {
  if (auto why = not_comparable(program)) return make_error(EOPNOTSUPP, "not comparable with the kernel: " + *why);
  if (memory.size() > kMaxMemory)
    return make_error(E2BIG, fmt::format("memory of {} bytes exceeds the oracle's {}", memory.size(), kMaxMemory));
  const auto& avail = available();
  if (!avail.ok) return make_error(ENOSYS, "kernel BPF unavailable: " + avail.reason);

  const auto value_size = static_cast<std::uint32_t>(std::max<std::size_t>(memory.size(), 1));
  auto in_map = create_array_map(value_size, 1);
  if (!in_map) return in_map.error();
  auto out_map = create_array_map(8, 1);
  if (!out_map) return out_map.error();
  std::vector<std::uint8_t> init(value_size, 0);
  std::copy(memory.begin(), memory.end(), init.begin());
  if (auto st = map_update(*in_map, 0, init); !st) return st.error();

  const auto wrapped = make_wrapper(in_map->get(), out_map->get(), memory.size(), program);
  const auto raw = isa::encode(wrapped);
  LoadResult lr = load(raw, kProbeProgType, 1);
  R0Run out;
  if (!lr.prog) {
    out.loaded = false;
    out.load_errno = lr.err;
    out.verifier_log = std::move(lr.log);
    return out;
  }
  out.loaded = true;
  std::vector<std::uint8_t> pkt(kDummyPacket, 0);
  auto tr = test_run(lr.prog, pkt, std::max<std::uint32_t>(repeat, 1));
  if (!tr) return tr.error();
  if (tr->retval != 0)
    return make_error(EINVAL, fmt::format("wrapper program returned {} instead of 0", tr->retval));
  out.duration_ns = tr->duration_ns;
  auto r0 = map_lookup(*out_map, 0, 8);
  if (!r0) return r0.error();
  std::memcpy(&out.r0, r0->data(), 8);
  auto mem = map_lookup(*in_map, 0, value_size);
  if (!mem) return mem.error();
  mem->resize(memory.size());
  out.memory_after = std::move(*mem);
  return out;
}

}  // namespace userbpf::oracle
