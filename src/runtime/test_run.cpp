// PROG_TEST_RUN and the run loop.
//
// Contexts. XDP and __sk_buff programs get the runtime's real contexts
// (helpers/packet_ctx.hpp: XdpBuff, SkBuff), which start with the uapi
// struct and keep 64-bit packet pointers after it. Verified programs had
// their loads of data/data_end/data_meta rewritten to those pointers
// (ctx.cpp), so their context and packet live in ordinary memory. Unverified
// programs read the uapi fields themselves: for them the context and packet
// live in a per-thread arena mapped with MAP_32BIT (below 2 GiB) and the
// 32-bit fields hold real addresses (mirror32), so `(void *)(long)ctx->data`
// is the packet's address (the stand-in, kept only for unverified runs).
// Fields we fill: xdp_md: all six; __sk_buff: len, pkt_type, mark, protocol,
// priority, ingress_ifindex, ifindex (1, loopback), cb[], data, data_end,
// data_meta, wire_len, gso_segs, gso_size, tstamp, hwtstamp; the others read
// as 0. Socket filters and cgroup_skb see the packet from the network header
// (skb->data after eth_type_trans), tc programs from the Ethernet header, as
// in the kernel's bpf_prog_test_run_skb. ctx_in/ctx_out are converted
// between the uapi struct and the real one as the kernel's test_run does.
//
// The XDP frame is one page as in the kernel: data_hard_start, 256 bytes of
// headroom (less the metadata), the linear data, skb_shared_info tailroom;
// what does not fit goes to up to MAX_SKB_FRAGS fragment pages.
//
// Tracing types: raw_tracepoint as the kernel (ctx_in only: no data,
// ctx_out, duration or repeat; ctx_size_in at least the program's furthest
// context access). kprobe/uprobe (struct pt_regs), tracepoint (the raw
// record) and perf_event (struct bpf_perf_event_data) have no test run in
// the kernel (ENOTSUPP); userbpf runs them as an extension: the context is
// ctx_in (zero-extended to the struct, at least the furthest context
// access), data_in/data_out, flags and cpu are EINVAL, repeat and duration
// work, ctx_out returns the context. Argument rules follow the kernel's
// test_run.c: sizes (ETH_HLEN .. PAGE_SIZE - head - tailroom), which ctx
// fields may be set, ctx/data_out ENOSPC with the full size reported.
//
// The run loop: runs the program; when bpf_tail_call asked for a tail call
// (helpers::RunState::tail_target) it runs the target with the same r1, up
// to 33 tail calls per run. The run's CPU slot is acquired lazily by the
// first per-CPU access and released at the end of the run. Verified
// programs run unchecked, unverified ones checked (Options::checked).
#include <fmt/format.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <sys/mman.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "helpers/packet_ctx.hpp"
#include "runtime/runtime.hpp"
#include "spec/spec.hpp"

namespace userbpf::runtime {

namespace {

constexpr std::size_t kPageSize = helpers::kPageSize;
constexpr std::size_t kSkbSharedInfo = helpers::kSkbSharedInfo;
constexpr std::size_t kSkbHeadroom = 64;     // NET_SKB_PAD + NET_IP_ALIGN (x86-64)
constexpr std::size_t kSkbMaxData = kPageSize - kSkbHeadroom - kSkbSharedInfo;
constexpr int kENOTSUPP = 524;
constexpr std::size_t kMaxFrags = helpers::kXdpMaxFrags;
constexpr std::uint32_t kLoopbackIfindex = 1;  // the device of the kernel's XDP test runs (init_net's lo)

// Per-thread memory for contexts, packets and fragments: one arena below
// 2 GiB (unverified programs) and one anywhere (verified programs).
struct Arena {
  static constexpr std::size_t kCtxOff = 0;               // up to kPageSize of context
  static constexpr std::size_t kPktOff = kPageSize;       // the packet's page (frame)
  static constexpr std::size_t kFragOff = 2 * kPageSize;  // fragment pages
  static constexpr std::size_t kSize = kFragOff + kMaxFrags * kPageSize;
  std::uint8_t* base = nullptr;
  bool low = false;
  explicit Arena(bool below_2g) : low(below_2g) {
    const int flags = MAP_PRIVATE | MAP_ANONYMOUS | (below_2g ? MAP_32BIT : 0);
    void* p = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p != MAP_FAILED) base = static_cast<std::uint8_t*>(p);
  }
  ~Arena() {
    if (base != nullptr) ::munmap(base, kSize);
  }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
};

Arena& arena(bool below_2g) {
  thread_local Arena low(true);
  thread_local Arena any(false);
  return below_2g ? low : any;
}


std::uint64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

bool zero(const std::uint8_t* p, std::size_t from, std::size_t to) {
  for (std::size_t i = from; i < to; ++i)
    if (p[i] != 0) return false;
  return true;
}

// ctx_in of `size` bytes into a zeroed struct of `max` bytes (bpf_ctx_init):
// bytes beyond the struct must be zero (E2BIG).
Status ctx_init(std::span<const std::uint8_t> in, void* out, std::size_t max) {
  std::memset(out, 0, max);
  if (in.size() > max && !zero(in.data(), max, in.size()))
    return make_error(E2BIG, fmt::format("ctx_in: bytes beyond the {}-byte context are not zero", max));
  if (!in.empty()) std::memcpy(out, in.data(), std::min(in.size(), max));
  return Ok{};
}

}  // namespace

// Runs `prog` (and its tail calls) `repeat` times with r1 = ctx.
struct RunLoop {
  Runtime& rt;
  std::vector<abi::Region> base;  // context, packet
  const std::uint8_t* packet = nullptr;
  std::uint64_t packet_len = 0;
  std::shared_ptr<Object> pending;  // the tail-call target, held while it runs
  // The last repetition's redirect target (bpf_redirect / bpf_redirect_map),
  // as helpers::describe_redirect renders it ("devmap[3]", "ifindex 5"); empty: none.
  std::string redirect;

  // helpers::ProgResolver: keeps the target alive even if the program array
  // slot is cleared while it runs.
  static const void* resolve_prog(void* owner, std::uint32_t id) {
    auto* self = static_cast<RunLoop*>(owner);
    self->pending = self->rt.by_id(ObjKind::Prog, id);
    return self->pending.get();
  }

  Result<abi::RunResult> run(const std::shared_ptr<ProgObject>& prog, std::uint64_t ctx, std::uint32_t repeat,
                             std::uint64_t& total_ns) {
    maps::CpuSlots::Guard guard(&rt.cpu_slots());
    helpers::RunState st;
    st.cpu = &guard;
    st.trace = rt.options().trace;
    st.resolve_prog = &resolve_prog;
    st.owner = this;
    st.prog_type = prog->type;  // bpf_redirect: XDP or tc verdicts
    abi::Env env;
    env.helpers = &rt.helper_table();
    env.options.checked = rt.options().checked && !prog->verified;
    env.options.budget = rt.options().budget;
    env.packet = packet;
    env.packet_len = packet_len;
    env.user = &st;
    // Per repetition only what a run can change: the tail-call count and
    // target, and in checked mode the regions (helpers may append). The
    // program's own state (maps, timers, checked) is set once and again
    // after a repetition that tail-called. The main program runs through
    // one jit::Program::Runner (its variant, stack and State set up once, no
    // RunResult per run); the engines reset the Env's signals at every run.
    // `prog` is held by the caller for the whole loop: a plain pointer per
    // repetition (no reference count traffic); a tail call's target is held
    // by `target` while it runs.
    const ProgObject* const main = prog.get();
    enter(env, st, *main);
    std::optional<jit::Program::Runner> runner;
    if (main->jitted) runner.emplace(*main->jitted, env);
    const std::uint64_t args[1] = {ctx};
    abi::RunResult res;
    bool res_set = false;  // res holds the last run's result (else the runner has it)
    std::shared_ptr<const ProgObject> target;
    const std::uint64_t t0 = mono_ns();
    for (std::uint32_t i = 0; i < repeat; ++i) {
      st.tail_calls = 0;
      st.tail_target = nullptr;
      set_regions(env, *main);
      bool ok;
      if (runner) {
        ok = runner->run(args);
        res_set = false;
      } else {
        res = main->exec->run(env, args);
        ok = res.ok();
        res_set = true;
      }
      if (!ok) break;
      if (st.tail_target == nullptr) [[likely]]
        continue;
      // bpf_tail_call: the targets run with the same r1 until one does not tail-call
      for (;;) {
        target = std::static_pointer_cast<const ProgObject>(std::move(pending));
        const ProgObject* cur = target.get();
        enter(env, st, *cur);
        set_regions(env, *cur);
        st.tail_target = nullptr;
        res = cur->jitted ? cur->jitted->run(env, args) : cur->exec->run(env, args);
        res_set = true;
        if (!res.ok() || st.tail_target == nullptr) break;
      }
      enter(env, st, *main);
      if (!res.ok()) break;
    }
    total_ns = mono_ns() - t0;
    if (!res_set) res = runner->result();
    redirect = helpers::describe_redirect(st.redirect);
    if (!res.ok() && res.error) {
      Error e = *res.error;
      e.where = fmt::format("prog '{}'", prog->name);
      return e;
    }
    return res;
  }

  // The state of the program `p` that its runs read.
  void enter(abi::Env& env, helpers::RunState& st, const ProgObject& p) const {
    st.maps = p.map_ptrs;
    st.prog = &p;  // bpf_timer_set_callback holds the program that calls it
    st.timers = p.uses_timers ? rt.timer_service() : nullptr;
    env.options.checked = rt.options().checked && !p.verified;
  }

  void set_regions(abi::Env& env, const ProgObject& p) const {
    if (!env.options.checked) return;
    env.regions = base;
    for (maps::Map* m : p.map_ptrs) {
      const auto s = m->program_area();
      if (s.empty()) continue;
      const bool ro = (m->map_flags() & BPF_F_RDONLY_PROG) != 0;
      env.regions.push_back(abi::Region{reinterpret_cast<std::uint64_t>(s.data()), s.size(), !ro,
                                        abi::RegionKind::MapValue});
    }
  }
};

namespace {

bool is_skb_type(std::uint32_t t) {
  return t == BPF_PROG_TYPE_SOCKET_FILTER || t == BPF_PROG_TYPE_SCHED_CLS || t == BPF_PROG_TYPE_SCHED_ACT ||
         t == BPF_PROG_TYPE_CGROUP_SKB;
}

// Tracing types the kernel cannot test-run (ENOTSUPP) and userbpf runs.
bool is_tracing_ext_type(std::uint32_t t) {
  return t == BPF_PROG_TYPE_KPROBE || t == BPF_PROG_TYPE_TRACEPOINT || t == BPF_PROG_TYPE_PERF_EVENT;
}

template <class T>
std::vector<std::uint8_t> bytes_of(const T& v) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
  return {p, p + sizeof v};
}

std::uint8_t* at(std::uint64_t a) { return reinterpret_cast<std::uint8_t*>(static_cast<std::uintptr_t>(a)); }
std::uint64_t addr(const void* p) { return reinterpret_cast<std::uint64_t>(p); }

}  // namespace

Result<TestRunOutcome> Runtime::test_run(int prog_handle, const TestRunArgs& args) {
  auto prog = get_prog(prog_handle);
  if (!prog) return make_error(get(prog_handle) ? EINVAL : EBADF, fmt::format("handle {} is not a program", prog_handle));
  Arena& a = arena(!prog->verified);
  if (a.base == nullptr) return make_error(ENOMEM, "cannot map the test-run arena");
  const std::uint32_t mirror = a.low ? 1 : 0;
  const std::uint32_t repeat = args.repeat == 0 ? 1 : args.repeat;
  TestRunOutcome out;
  RunLoop loop{*this, {}, nullptr, 0, nullptr, {}};
  std::uint8_t* ctx_mem = a.base + Arena::kCtxOff;
  std::uint64_t ns = 0;

  if (prog->type == BPF_PROG_TYPE_XDP) {
    if (args.flags != 0) return make_error(EINVAL, "test_run flags not supported for XDP (live frames)");
    if (args.cpu != 0) return make_error(EINVAL, "cpu must be 0");
    const std::size_t size = args.data_in.size();
    if (size < ETH_HLEN) return make_error(EINVAL, fmt::format("data_size_in {} < ETH_HLEN", size));
    xdp_md md{};
    if (auto s = ctx_init(args.ctx_in, &md, sizeof md); !s) return s.error();
    std::uint32_t meta = 0;
    if (!args.ctx_in.empty()) {
      if (md.data_meta != 0 || md.data_end != size || md.data > md.data_end || helpers::xdp_metalen_invalid(md.data))
        return make_error(EINVAL, "ctx_in: data_meta must be 0, data_end = data_size_in, data = metadata length "
                                  "(multiple of 4, at most 252)");
      if (md.egress_ifindex != 0) return make_error(EINVAL, "ctx_in: egress_ifindex must be 0");
      if (md.ingress_ifindex == 0 && md.rx_queue_index != 0)
        return make_error(EINVAL, "ctx_in: rx_queue_index without ingress_ifindex");
      // the only device is the loopback (ifindex 1, one rx queue), whose
      // queue 0 the kernel's test run uses when ctx_in names no device
      if (md.ingress_ifindex != 0 && md.ingress_ifindex != kLoopbackIfindex)
        return make_error(ENODEV, "ctx_in: no network devices in user space but the loopback (ifindex 1)");
      if (md.ingress_ifindex == kLoopbackIfindex && md.rx_queue_index != 0)
        return make_error(EINVAL, "ctx_in: the loopback has one rx queue (rx_queue_index must be 0)");
      meta = md.data;
    }
    // The metadata comes out of the headroom (bpf_prog_test_run_xdp).
    const std::size_t headroom = XDP_PACKET_HEADROOM - meta;
    const std::size_t max_data = kPageSize - headroom - kSkbSharedInfo;
    const std::size_t linear = std::min(size, max_data);
    // beyond the linear part the kernel puts the data in fragments (up to
    // MAX_SKB_FRAGS pages); programs see the linear part, data_out has all
    if (size - linear > kMaxFrags * kPageSize)
      return make_error(ENOMEM, fmt::format("data_size_in {} needs more than {} fragments", size, kMaxFrags));
    std::uint8_t* head = a.base + Arena::kPktOff;
    std::memset(head, 0, kPageSize);
    std::uint8_t* data_meta = head + headroom;
    std::memcpy(data_meta, args.data_in.data(), linear);
    auto* x = new (ctx_mem) helpers::XdpBuff{};
    x->md.ingress_ifindex = kLoopbackIfindex;  // the rx queue's device, as the kernel's test run
    x->md.rx_queue_index = md.rx_queue_index;
    x->mirror32 = mirror;
    x->data_meta = addr(data_meta);
    x->data = addr(data_meta + meta);
    x->data_end = addr(data_meta + linear);
    x->hard_start = addr(head);
    x->hard_end = addr(head + kPageSize - kSkbSharedInfo);
    x->frags = a.base + Arena::kFragOff;
    for (std::size_t off = linear; off < size; off += kPageSize) {
      const std::size_t n = std::min<std::size_t>(size - off, kPageSize);
      std::memcpy(x->frags + x->nr_frags * kPageSize, args.data_in.data() + off, n);
      x->frag_len[x->nr_frags++] = static_cast<std::uint32_t>(n);
    }
    x->sync32();
    loop.base = {abi::Region{addr(ctx_mem), sizeof(xdp_md), false, abi::RegionKind::Context},
                 abi::Region{addr(head), kPageSize, true, abi::RegionKind::Packet}};
    auto r = loop.run(prog, addr(ctx_mem), repeat, ns);
    if (!r) return r.error();
    out.retval = static_cast<std::uint32_t>(r->r0);
    out.insns = r->insns;
    out.data_out.assign(at(x->data_meta), at(x->data_end));
    for (std::uint32_t i = 0; i < x->nr_frags; ++i)
      out.data_out.insert(out.data_out.end(), x->frags + i * kPageSize, x->frags + i * kPageSize + x->frag_len[i]);
    if (args.ctx_given) {
      xdp_md o = md;  // xdp_convert_buff_to_md
      o.data = static_cast<std::uint32_t>(x->data - x->data_meta);
      o.data_meta = 0;
      o.data_end = static_cast<std::uint32_t>(x->data_end - x->data_meta + x->frags_len());
      out.ctx_out = bytes_of(o);
    }
  } else if (is_skb_type(prog->type)) {
    if (args.flags != 0 && args.flags != BPF_F_TEST_SKB_CHECKSUM_COMPLETE)
      return make_error(EINVAL, fmt::format("test_run flags 0x{:x} not supported", args.flags));
    if (args.cpu != 0) return make_error(EINVAL, "cpu must be 0");
    const std::size_t size = args.data_in.size();
    if (size < ETH_HLEN || size > kSkbMaxData)
      return make_error(EINVAL, fmt::format("data_size_in {} outside [{}, {}]", size, ETH_HLEN, kSkbMaxData));
    __sk_buff in{};
    if (auto s = ctx_init(args.ctx_in, &in, sizeof in); !s) return s.error();
    const auto* b = reinterpret_cast<const std::uint8_t*>(&in);
#define UBPF_END(f) (offsetof(__sk_buff, f) + sizeof(in.f))
    if (!zero(b, 0, offsetof(__sk_buff, mark)) || !zero(b, UBPF_END(mark), offsetof(__sk_buff, priority)) ||
        !zero(b, UBPF_END(ifindex), offsetof(__sk_buff, cb)) ||
        !zero(b, UBPF_END(cb), offsetof(__sk_buff, tstamp)) ||
        !zero(b, UBPF_END(gso_segs), offsetof(__sk_buff, gso_size)) ||
        !zero(b, UBPF_END(gso_size), offsetof(__sk_buff, hwtstamp)) ||
        !zero(b, UBPF_END(hwtstamp), sizeof in))
      return make_error(EINVAL, "ctx_in: only mark, priority, ingress_ifindex, ifindex, cb, tstamp, wire_len, "
                                "gso_segs, gso_size and hwtstamp may be set");
#undef UBPF_END
    if (in.ifindex > 1) return make_error(ENODEV, fmt::format("ctx_in: no device with ifindex {}", in.ifindex));
    const bool l2 = prog->type == BPF_PROG_TYPE_SCHED_CLS || prog->type == BPF_PROG_TYPE_SCHED_ACT;
    const std::size_t net_len = size - ETH_HLEN;
    const std::size_t len = l2 ? size : net_len;
    if (in.wire_len != 0 && (in.wire_len < len || in.wire_len > 65536))
      return make_error(EINVAL, "ctx_in: wire_len smaller than the packet or above GSO_LEGACY_MAX_SIZE");
    if (in.gso_segs > 65535) return make_error(EINVAL, "ctx_in: gso_segs above GSO_MAX_SEGS");
    std::uint8_t* head = a.base + Arena::kPktOff;
    std::memset(head, 0, kPageSize);
    std::uint8_t* mac = head + kSkbHeadroom;
    std::memcpy(mac, args.data_in.data(), size);
    std::uint8_t* data = l2 ? mac : mac + ETH_HLEN;
    auto* sb = new (ctx_mem) helpers::SkBuff{};
    __sk_buff* skb = &sb->skb;
    skb->len = static_cast<std::uint32_t>(len);
    const bool bcast = std::all_of(mac, mac + 6, [](std::uint8_t c) { return c == 0xff; });
    const bool null_dst = std::all_of(mac, mac + 6, [](std::uint8_t c) { return c == 0; });
    skb->pkt_type = bcast ? 1 : (mac[0] & 1) != 0 ? 2 : null_dst ? 0 : 3;  // loopback's address is all zero
    skb->mark = in.mark;
    skb->priority = in.priority;
    std::uint16_t proto_be;
    std::memcpy(&proto_be, mac + 12, 2);
    skb->protocol = proto_be;
    skb->ingress_ifindex = in.ingress_ifindex;
    skb->ifindex = 1;
    std::memcpy(skb->cb, in.cb, sizeof in.cb);
    skb->tstamp = in.tstamp;
    skb->wire_len = in.wire_len != 0 ? in.wire_len : static_cast<std::uint32_t>(len);
    skb->gso_segs = in.gso_segs;
    skb->gso_size = in.gso_size;
    skb->hwtstamp = in.hwtstamp;
    sb->mirror32 = mirror;
    sb->data = addr(data);
    sb->data_end = addr(mac + size);
    sb->data_meta = addr(data);
    sb->pkt_len = len;
    sb->head = addr(head);  // packet page and the pages after it: room for skb_change_head/tail, adjust_room
    sb->end = addr(a.base + Arena::kSize);
    sb->mac_off = l2 ? 0 : -ETH_HLEN;
    sb->net_off = l2 ? ETH_HLEN : 0;
    sb->sync32();
    loop.packet = data;
    loop.packet_len = len;
    loop.base = {abi::Region{addr(ctx_mem), sizeof(__sk_buff), true, abi::RegionKind::Context},
                 abi::Region{addr(mac), size, true, abi::RegionKind::Packet}};
    auto r = loop.run(prog, addr(ctx_mem), repeat, ns);
    if (!r) return r.error();
    out.retval = static_cast<std::uint32_t>(r->r0);
    out.insns = r->insns;
    // skb->data for skb->len bytes (helpers may have moved and resized the
    // packet); the kernel pushes the Ethernet header back zeroed for types
    // that start at L3
    out.data_out.assign(l2 ? 0 : ETH_HLEN, std::uint8_t{0});
    out.data_out.insert(out.data_out.end(), at(sb->data), at(sb->data_end));
    if (args.ctx_given) {
      __sk_buff o = in;  // convert_skb_to___skb
      o.mark = skb->mark;
      o.priority = skb->priority;
      o.ingress_ifindex = skb->ingress_ifindex;
      o.ifindex = skb->ifindex;
      std::memcpy(o.cb, skb->cb, sizeof o.cb);
      o.tstamp = skb->tstamp;
      o.wire_len = skb->wire_len;
      o.gso_segs = skb->gso_segs;
      o.gso_size = skb->gso_size;
      o.hwtstamp = skb->hwtstamp;
      out.ctx_out = bytes_of(o);
    }
  } else if (prog->type == BPF_PROG_TYPE_RAW_TRACEPOINT) {
    if (!args.data_in.empty() || args.data_out_given || args.ctx_out_given || args.duration_given || args.repeat != 0)
      return make_error(EINVAL, "raw_tracepoint test runs take ctx_in only (no data, ctx_out, duration or repeat)");
    if (args.ctx_in.size() > 12 * 8) return make_error(EINVAL, "ctx_size_in above MAX_BPF_FUNC_ARGS * 8");
    if (args.ctx_in.size() < prog->max_ctx_offset)
      return make_error(EINVAL, fmt::format("ctx_size_in {} below the program's furthest context access ({})",
                                            args.ctx_in.size(), prog->max_ctx_offset));
    // (the kernel ignores the other flag bits here)
    if ((args.flags & BPF_F_TEST_RUN_ON_CPU) == 0 && args.cpu != 0) return make_error(EINVAL, "cpu without BPF_F_TEST_RUN_ON_CPU");
    std::memset(ctx_mem, 0, 12 * 8);
    if (!args.ctx_in.empty()) std::memcpy(ctx_mem, args.ctx_in.data(), args.ctx_in.size());
    loop.base = {abi::Region{addr(ctx_mem), args.ctx_in.size(), false, abi::RegionKind::Context}};
    auto r = loop.run(prog, addr(ctx_mem), 1, ns);
    if (!r) return r.error();
    out.retval = static_cast<std::uint32_t>(r->r0);
    out.insns = r->insns;
    return out;  // no duration for raw_tracepoint
  } else if (is_tracing_ext_type(prog->type)) {
    // userbpf extension (the kernel: ENOTSUPP): pt_regs, a tracepoint
    // record or bpf_perf_event_data from ctx_in.
    if (!args.data_in.empty() || args.data_out_given)
      return make_error(EINVAL, "tracing test runs take ctx_in only (no data_in or data_out)");
    if (args.flags != 0 || args.cpu != 0) return make_error(EINVAL, "tracing test runs take no flags and no cpu");
    const spec::ProgType* pt = spec::prog_type(prog->type);
    const std::size_t ctx_size = pt != nullptr ? pt->ctx.size : 0;
    if (auto s = ctx_init(args.ctx_in, ctx_mem, ctx_size); !s) return s.error();
    if (args.ctx_in.size() < prog->max_ctx_offset)
      return make_error(EINVAL, fmt::format("ctx_size_in {} below the program's furthest context access ({})",
                                            args.ctx_in.size(), prog->max_ctx_offset));
    loop.base = {abi::Region{addr(ctx_mem), ctx_size, false, abi::RegionKind::Context}};
    auto r = loop.run(prog, addr(ctx_mem), repeat, ns);
    if (!r) return r.error();
    out.retval = static_cast<std::uint32_t>(r->r0);
    out.insns = r->insns;
    if (args.ctx_out_given) {
      const std::size_t n = prog->type == BPF_PROG_TYPE_TRACEPOINT ? std::min(args.ctx_in.size(), ctx_size) : ctx_size;
      out.ctx_out.assign(ctx_mem, ctx_mem + n);
    }
  } else {
    return make_error(kENOTSUPP, fmt::format("test runs of program type {} are not supported", prog->type));
  }
  out.duration_ns = static_cast<std::uint32_t>(std::min<std::uint64_t>(ns / repeat, 0xffffffffu));
  out.redirect = std::move(loop.redirect);
  return out;
}

}  // namespace userbpf::runtime
