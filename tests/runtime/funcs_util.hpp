// PROG_LOAD attributes with BTF func and line info, built from
// progs/funcs.bpf.o (opened by our loader: linked instructions, the records
// as libbpf would pass them, the fixed-up BTF blob), and the cases of bad
// records that btf_info_test.cpp and btf_info_kernel_test.cpp run through
// userbpf's bpf() and the kernel's.
#pragma once

#include <linux/bpf.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "isa/isa.hpp"
#include "loader/loader.hpp"

namespace userbpf::testing {

// One program of funcs.bpf.o as PROG_LOAD wants it.
struct FuncsLoad {
  std::vector<isa::RawInsn> insns;
  std::vector<std::uint8_t> btf;  // the object's BTF blob for BTF_LOAD
  std::vector<std::uint8_t> func_info;
  std::uint32_t func_rec = sizeof(bpf_func_info);
  std::uint32_t func_cnt = 0;
  std::vector<std::uint8_t> line_info;
  std::uint32_t line_rec = sizeof(bpf_line_info);
  std::uint32_t line_cnt = 0;
  // Which handle prog_btf_fd names (the runner maps these to real fds).
  enum class BtfFd : std::uint8_t { Btf, Zero, NotOpen, Map } btf_fd = BtfFd::Btf;
  std::size_t lddw_tail = 0;  // an lddw's second slot in the program

  template <class T>
  T* func(std::size_t i) {
    return reinterpret_cast<T*>(func_info.data() + i * func_rec);
  }
  bpf_func_info& fi(std::size_t i) { return *func<bpf_func_info>(i); }
  bpf_line_info& li(std::size_t i) { return *reinterpret_cast<bpf_line_info*>(line_info.data() + i * line_rec); }

  // Re-lays the records with another record size; bytes past the struct are `fill`.
  static void relayout(std::vector<std::uint8_t>& v, std::uint32_t& rec, std::uint32_t cnt, std::uint32_t new_rec,
                       std::uint8_t fill) {
    std::vector<std::uint8_t> out(std::size_t{new_rec} * cnt, fill);
    for (std::uint32_t i = 0; i < cnt; ++i)
      std::memcpy(out.data() + std::size_t{i} * new_rec, v.data() + std::size_t{i} * rec, std::min(rec, new_rec));
    v = std::move(out);
    rec = new_rec;
  }

  // The attr for PROG_LOAD (btf_fd resolved by the caller).
  bpf_attr attr(std::uint32_t btf_fd, char* log, std::uint32_t log_size) const {
    bpf_attr a{};
    a.prog_type = BPF_PROG_TYPE_XDP;
    a.insn_cnt = static_cast<std::uint32_t>(insns.size());
    a.insns = reinterpret_cast<std::uint64_t>(insns.data());
    a.license = reinterpret_cast<std::uint64_t>("GPL");
    a.log_level = 1;
    a.log_buf = reinterpret_cast<std::uint64_t>(log);
    a.log_size = log_size;
    a.prog_btf_fd = btf_fd;
    a.func_info = reinterpret_cast<std::uint64_t>(func_info.data());
    a.func_info_rec_size = func_rec;
    a.func_info_cnt = func_cnt;
    a.line_info = reinterpret_cast<std::uint64_t>(line_info.data());
    a.line_info_rec_size = line_rec;
    a.line_info_cnt = line_cnt;
    return a;
  }
};

inline std::string funcs_object_path() { return std::string(USERBPF_RT_PROGS) + "/funcs.bpf.o"; }

// Program `name` of funcs.bpf.o; empty insns if it cannot be opened.
inline FuncsLoad funcs_load(const std::string& name) {
  FuncsLoad l;
  loader::OpenOptions oo;
  oo.use_vmlinux_btf = false;
  auto obj = loader::Object::open(funcs_object_path(), oo);
  if (!obj) return l;
  const loader::Program* p = obj->find_program(name);
  if (p == nullptr) return l;
  l.insns = isa::encode(p->insns);
  l.btf.assign(obj->btf_data().begin(), obj->btf_data().end());
  for (const auto& f : p->func_info) {
    bpf_func_info r{static_cast<std::uint32_t>(f.insn), f.type_id};
    const auto* b = reinterpret_cast<const std::uint8_t*>(&r);
    l.func_info.insert(l.func_info.end(), b, b + sizeof r);
  }
  l.func_cnt = static_cast<std::uint32_t>(p->func_info.size());
  for (const auto& x : p->line_info) {
    bpf_line_info r{static_cast<std::uint32_t>(x.insn), x.file_name_off, x.line_off, (x.line << 10) | (x.column & 0x3ff)};
    const auto* b = reinterpret_cast<const std::uint8_t*>(&r);
    l.line_info.insert(l.line_info.end(), b, b + sizeof r);
  }
  l.line_cnt = static_cast<std::uint32_t>(p->line_info.size());
  for (std::size_t i = 0; i < p->insns.size(); ++i)
    if (p->insns[i].op == isa::Op::LddwTail) {
      l.lddw_tail = i;
      break;
    }
  return l;
}

// A bad (or good) variation of xdp_funcs' PROG_LOAD: the errno the kernel
// gives (0: loads) and a text its log has.
struct InfoCase {
  const char* name;
  int err;
  const char* log;
  std::function<void(FuncsLoad&)> edit;
  std::uint32_t rec_size_out = 0;  // func/line rec size the kernel writes back (E2BIG)
};

inline std::vector<InfoCase> info_cases() {
  using L = FuncsLoad;
  return {
      {"accepted", 0, "", [](L&) {}},
      {"func_rec_size_12_zero_tail", 0, "", [](L& l) { L::relayout(l.func_info, l.func_rec, l.func_cnt, 12, 0); }},
      {"func_rec_size_4", EINVAL, "invalid func info rec size 4", [](L& l) { l.func_rec = 4; }},
      {"func_rec_size_256", EINVAL, "invalid func info rec size 256",
       [](L& l) { L::relayout(l.func_info, l.func_rec, l.func_cnt, 256, 0); }},
      {"func_rec_size_10", EINVAL, "invalid func info rec size 10", [](L& l) { l.func_rec = 10; }},
      {"func_nonzero_tail", E2BIG, "nonzero tailing record in func info",
       [](L& l) { L::relayout(l.func_info, l.func_rec, l.func_cnt, 12, 1); }, sizeof(bpf_func_info)},
      {"func_first_off_nonzero", EINVAL, "nonzero insn_off 1 for the first func info record",
       [](L& l) { l.fi(0).insn_off = 1; }},
      {"func_off_not_increasing", EINVAL, "same or smaller insn offset",
       [](L& l) { l.fi(2).insn_off = l.fi(1).insn_off; }},
      {"func_type_not_func", EINVAL, "in func info", [](L& l) { l.fi(1).type_id = 2; }},
      {"func_type_out_of_range", EINVAL, "invalid type id 100000 in func info",
       [](L& l) { l.fi(1).type_id = 100000; }},
      {"func_count_short", EINVAL, "number of funcs in func_info doesn't match number of subprogs",
       [](L& l) { --l.func_cnt; }},
      {"func_off_not_a_subprog", EINVAL, "func_info BTF section doesn't match subprog layout in BPF program",
       [](L& l) { l.fi(1).insn_off += 1; }},
      {"btf_fd_not_open", EBADF, "", [](L& l) { l.btf_fd = L::BtfFd::NotOpen; }},
      {"btf_fd_zero", EINVAL, "", [](L& l) { l.btf_fd = L::BtfFd::Zero; }},
      {"btf_fd_is_a_map", EINVAL, "", [](L& l) { l.btf_fd = L::BtfFd::Map; }},
      {"line_rec_size_8", EINVAL, "", [](L& l) { l.line_rec = 8; }},
      {"line_rec_size_20_zero_tail", 0, "", [](L& l) { L::relayout(l.line_info, l.line_rec, l.line_cnt, 20, 0); }},
      {"line_nonzero_tail", E2BIG, "nonzero tailing record in line_info",
       [](L& l) { L::relayout(l.line_info, l.line_rec, l.line_cnt, 20, 7); }, sizeof(bpf_line_info)},
      {"line_off_past_end", EINVAL, "Invalid line_info[",
       [](L& l) { l.li(l.line_cnt - 1).insn_off = static_cast<std::uint32_t>(l.insns.size()); }},
      {"line_off_not_increasing", EINVAL, "Invalid line_info[1].insn_off:0 (prev_offset:0",
       [](L& l) { l.li(1).insn_off = 0; }},
      {"line_on_lddw_tail", EINVAL, "Invalid insn code at line_info[0].insn_off",
       [](L& l) {
         l.li(0).insn_off = static_cast<std::uint32_t>(l.lddw_tail);
         l.line_cnt = 1;
       }},
      {"line_bad_string", EINVAL, "Invalid line_info[0].line_off or .file_name_off",
       [](L& l) { l.li(0).line_off = 0x7fffffff; }},
      {"line_misses_funcs", EINVAL, "missing bpf_line_info for 2 funcs starting from func#1",
       [](L& l) { l.line_cnt = 1; }},
      {"line_info_only", EINVAL, "missing btf func_info", [](L& l) { l.func_cnt = 0; }},
      {"no_btf_info", EINVAL, "missing btf func_info",
       [](L& l) {
         l.func_cnt = 0;
         l.line_cnt = 0;
       }},
  };
}

// bpf() of one side: the result, or -1 with errno.
using BpfFn = std::function<int(int cmd, bpf_attr& attr)>;

struct InfoOutcome {
  int fd = -1;   // the program's fd (>= 0: loaded; the caller closes it)
  int err = 0;   // errno when it failed
  std::string log;
  bpf_attr after{};  // the attr after the call (written-back rec sizes)
};

// Runs `c` on xdp_funcs' PROG_LOAD through `bpf`; btf_fd and map_fd are that
// side's BTF object and some map.
inline InfoOutcome run_info_case(const BpfFn& bpf, const InfoCase& c, const FuncsLoad& base, int btf_fd, int map_fd) {
  FuncsLoad l = base;
  c.edit(l);
  std::uint32_t fd = 0;
  switch (l.btf_fd) {
    case FuncsLoad::BtfFd::Btf: fd = static_cast<std::uint32_t>(btf_fd); break;
    case FuncsLoad::BtfFd::Zero: fd = 0; break;
    case FuncsLoad::BtfFd::NotOpen: fd = 999; break;
    case FuncsLoad::BtfFd::Map: fd = static_cast<std::uint32_t>(map_fd); break;
  }
  std::vector<char> log(1 << 16, 0);
  InfoOutcome o;
  o.after = l.attr(fd, log.data(), static_cast<std::uint32_t>(log.size()));
  errno = 0;
  o.fd = bpf(BPF_PROG_LOAD, o.after);
  o.err = o.fd < 0 ? errno : 0;
  o.log = log.data();
  return o;
}

}  // namespace userbpf::testing
