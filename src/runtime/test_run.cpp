// PROG_TEST_RUN and the run loop.
//
// Contexts. Until context rewriting (the kernel's convert_ctx_access) exists,
// r1 points at a real struct xdp_md / struct __sk_buff laid out exactly as
// <linux/bpf.h> declares it. The kernel's 32-bit "pointer" fields (data,
// data_end, data_meta) hold real addresses: the context and the packet live
// in a per-thread arena mapped with MAP_32BIT (below 2 GiB), so
// `(void *)(long)ctx->data` in a program is the packet's address. Fields we
// fill: xdp_md: all six; __sk_buff: len, pkt_type, mark, protocol, priority,
// ingress_ifindex, ifindex (1, loopback), cb[], data, data_end, data_meta,
// wire_len, gso_segs, gso_size, tstamp, hwtstamp; the others read as 0.
// Socket filters and cgroup_skb see the packet from the network header
// (skb->data after eth_type_trans), tc programs from the Ethernet header, as
// in the kernel's bpf_prog_test_run_skb. Argument rules follow the kernel's
// test_run.c: sizes (ETH_HLEN .. PAGE_SIZE - head - tailroom), which ctx
// fields may be set, ctx/data_out ENOSPC with the full size reported.
//
// The run loop (run_chain): runs the program; when bpf_tail_call asked for
// a tail call (helpers::RunState::tail_target) it runs the target with the
// same r1, up to 33 tail calls per run. The run's CPU slot is acquired
// lazily by the first per-CPU access and released at the end of the run.
#include <fmt/format.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <sys/mman.h>
#include <time.h>

#include <algorithm>
#include <cstring>

#include "runtime/runtime.hpp"

namespace userbpf::runtime {

namespace {

constexpr std::size_t kPageSize = 4096;
constexpr std::size_t kSkbSharedInfo = 320;  // SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
constexpr std::size_t kXdpMaxData = kPageSize - XDP_PACKET_HEADROOM - kSkbSharedInfo;
constexpr std::size_t kSkbHeadroom = 64;     // NET_SKB_PAD + NET_IP_ALIGN (x86-64)
constexpr std::size_t kSkbMaxData = kPageSize - kSkbHeadroom - kSkbSharedInfo;
constexpr int kENOTSUPP = 524;
constexpr std::size_t kMaxFrags = 17;  // MAX_SKB_FRAGS

// Per-thread memory below 2 GiB for contexts and packets.
struct Arena {
  static constexpr std::size_t kSize = 128 * 1024;
  static constexpr std::size_t kCtxOff = 0;
  static constexpr std::size_t kPktOff = 1024;  // start of the headroom
  std::uint8_t* base = nullptr;
  Arena() {
    void* p = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (p != MAP_FAILED) base = static_cast<std::uint8_t*>(p);
  }
  ~Arena() {
    if (base != nullptr) ::munmap(base, kSize);
  }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
};

Arena& arena() {
  thread_local Arena a;
  return a;
}

std::uint32_t addr32(const void* p) { return static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(p)); }

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
    abi::Env env;
    env.helpers = &rt.helper_table();
    env.options.checked = rt.options().checked;
    env.options.budget = rt.options().budget;
    env.packet = packet;
    env.packet_len = packet_len;
    env.user = &st;
    abi::RunResult res;
    const std::uint64_t t0 = mono_ns();
    for (std::uint32_t i = 0; i < repeat; ++i) {
      std::shared_ptr<const ProgObject> cur = prog;
      st.tail_calls = 0;
      for (;;) {
        st.maps = cur->map_ptrs;
        set_regions(env, *cur);
        env.reset_signals();
        st.tail_target = nullptr;
        const std::uint64_t args[1] = {ctx};
        res = cur->exec->run(env, args);
        if (!res.ok() || st.tail_target == nullptr) break;
        cur = std::static_pointer_cast<const ProgObject>(std::move(pending));
      }
      if (!res.ok()) break;
    }
    total_ns = mono_ns() - t0;
    if (!res.ok() && res.error) {
      Error e = *res.error;
      e.where = fmt::format("prog '{}'", prog->name);
      return e;
    }
    return res;
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

void finish_data(const std::uint8_t* from, std::size_t len, TestRunOutcome& out) { out.data_out.assign(from, from + len); }

}  // namespace

Result<TestRunOutcome> Runtime::test_run(int prog_handle, const TestRunArgs& args) {
  auto prog = get_prog(prog_handle);
  if (!prog) return make_error(get(prog_handle) ? EINVAL : EBADF, fmt::format("handle {} is not a program", prog_handle));
  Arena& a = arena();
  if (a.base == nullptr) return make_error(ENOMEM, "cannot map the test-run arena below 2 GiB");
  const std::uint32_t repeat = args.repeat == 0 ? 1 : args.repeat;
  TestRunOutcome out;
  RunLoop loop{*this, {}, nullptr, 0, nullptr};
  std::uint8_t* ctx_mem = a.base + Arena::kCtxOff;
  std::uint64_t ns = 0;

  if (prog->type == BPF_PROG_TYPE_XDP) {
    if (args.flags != 0) return make_error(EINVAL, "test_run flags not supported for XDP (live frames)");
    if (args.cpu != 0) return make_error(EINVAL, "cpu must be 0");
    const std::size_t size = args.data_in.size();
    if (size < ETH_HLEN) return make_error(EINVAL, fmt::format("data_size_in {} < ETH_HLEN", size));
    // beyond the linear part the kernel puts the data in fragments (up to
    // MAX_SKB_FRAGS pages); programs see the linear part, data_out has all
    if (size > kXdpMaxData + kMaxFrags * kPageSize)
      return make_error(ENOMEM, fmt::format("data_size_in {} needs more than {} fragments", size, kMaxFrags));
    const std::size_t linear = std::min(size, kXdpMaxData);
    xdp_md md{};
    if (auto s = ctx_init(args.ctx_in, &md, sizeof md); !s) return s.error();
    std::uint32_t meta = 0;
    if (!args.ctx_in.empty()) {
      if (md.data_meta != 0 || md.data_end != size || md.data > md.data_end || (md.data & 3) != 0 || md.data > 32)
        return make_error(EINVAL, "ctx_in: data_meta must be 0, data_end = data_size_in, data = metadata length "
                                  "(multiple of 4, at most 32)");
      if (md.egress_ifindex != 0) return make_error(EINVAL, "ctx_in: egress_ifindex must be 0");
      if (md.ingress_ifindex == 0 && md.rx_queue_index != 0)
        return make_error(EINVAL, "ctx_in: rx_queue_index without ingress_ifindex");
      if (md.ingress_ifindex != 0) return make_error(ENODEV, "ctx_in: no network devices in user space");
      meta = md.data;
    }
    std::uint8_t* head = a.base + Arena::kPktOff;
    std::uint8_t* data_meta = head + XDP_PACKET_HEADROOM - meta;
    std::memcpy(data_meta, args.data_in.data(), size);
    std::uint8_t* data = data_meta + meta;
    auto* x = reinterpret_cast<xdp_md*>(ctx_mem);
    *x = xdp_md{};
    x->data = addr32(data);
    x->data_end = addr32(data_meta + linear);
    x->data_meta = addr32(data_meta);
    x->ingress_ifindex = md.ingress_ifindex;
    x->rx_queue_index = md.rx_queue_index;
    loop.base = {abi::Region{reinterpret_cast<std::uint64_t>(ctx_mem), sizeof(xdp_md), false, abi::RegionKind::Context},
                 abi::Region{reinterpret_cast<std::uint64_t>(head), XDP_PACKET_HEADROOM + size + kSkbSharedInfo, true,
                             abi::RegionKind::Packet}};
    auto r = loop.run(prog, reinterpret_cast<std::uint64_t>(ctx_mem), repeat, ns);
    if (!r) return r.error();
    out.retval = static_cast<std::uint32_t>(r->r0);
    out.insns = r->insns;
    // the program may have moved data/data_end/data_meta only through helpers we do not have yet
    const auto* dm = reinterpret_cast<const std::uint8_t*>(static_cast<std::uintptr_t>(x->data_meta));
    const auto* de = reinterpret_cast<const std::uint8_t*>(static_cast<std::uintptr_t>(x->data_end));
    finish_data(dm, static_cast<std::size_t>(de - dm) + (size - linear), out);
    if (args.ctx_given) {
      xdp_md o = md;
      o.data = x->data - x->data_meta;
      o.data_meta = 0;
      o.data_end = x->data_end - x->data_meta + static_cast<std::uint32_t>(size - linear);
      out.ctx_out.assign(reinterpret_cast<const std::uint8_t*>(&o), reinterpret_cast<const std::uint8_t*>(&o) + sizeof o);
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
    std::uint8_t* mac = a.base + Arena::kPktOff + kSkbHeadroom;
    std::memcpy(mac, args.data_in.data(), size);
    std::uint8_t* data = l2 ? mac : mac + ETH_HLEN;
    auto* skb = reinterpret_cast<__sk_buff*>(ctx_mem);
    *skb = __sk_buff{};
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
    skb->data = addr32(data);
    skb->data_end = addr32(mac + size);
    skb->data_meta = addr32(data);
    skb->tstamp = in.tstamp;
    skb->wire_len = in.wire_len != 0 ? in.wire_len : static_cast<std::uint32_t>(len);
    skb->gso_segs = in.gso_segs;
    skb->gso_size = in.gso_size;
    skb->hwtstamp = in.hwtstamp;
    loop.packet = data;
    loop.packet_len = len;
    loop.base = {abi::Region{reinterpret_cast<std::uint64_t>(ctx_mem), sizeof(__sk_buff), true,
                             abi::RegionKind::Context},
                 abi::Region{reinterpret_cast<std::uint64_t>(mac), size, true, abi::RegionKind::Packet}};
    auto r = loop.run(prog, reinterpret_cast<std::uint64_t>(ctx_mem), repeat, ns);
    if (!r) return r.error();
    out.retval = static_cast<std::uint32_t>(r->r0);
    out.insns = r->insns;
    finish_data(mac, size, out);
    // the kernel pushes the Ethernet header back zeroed for types that start at L3
    if (!l2) std::fill(out.data_out.begin(), out.data_out.begin() + ETH_HLEN, std::uint8_t{0});
    if (args.ctx_given) {
      __sk_buff o = in;
      o.mark = skb->mark;
      o.priority = skb->priority;
      std::memcpy(o.cb, skb->cb, sizeof o.cb);
      o.tstamp = skb->tstamp;
      o.wire_len = skb->wire_len;
      o.gso_segs = skb->gso_segs;
      o.gso_size = skb->gso_size;
      o.hwtstamp = skb->hwtstamp;
      out.ctx_out.assign(reinterpret_cast<const std::uint8_t*>(&o), reinterpret_cast<const std::uint8_t*>(&o) + sizeof o);
    }
  } else if (prog->type == BPF_PROG_TYPE_RAW_TRACEPOINT) {
    if (!args.data_in.empty() || args.repeat > 1)
      return make_error(EINVAL, "raw_tracepoint test runs take ctx_in only (no data, no repeat)");
    if (args.ctx_in.size() > 12 * 8) return make_error(EINVAL, "ctx_size_in above MAX_BPF_FUNC_ARGS * 8");
    if ((args.flags & ~std::uint32_t{BPF_F_TEST_RUN_ON_CPU}) != 0) return make_error(EINVAL, "bad test_run flags");
    if ((args.flags & BPF_F_TEST_RUN_ON_CPU) == 0 && args.cpu != 0) return make_error(EINVAL, "cpu without BPF_F_TEST_RUN_ON_CPU");
    std::memset(ctx_mem, 0, 12 * 8);
    if (!args.ctx_in.empty()) std::memcpy(ctx_mem, args.ctx_in.data(), args.ctx_in.size());
    loop.base = {abi::Region{reinterpret_cast<std::uint64_t>(ctx_mem), args.ctx_in.size(), false,
                             abi::RegionKind::Context}};
    auto r = loop.run(prog, reinterpret_cast<std::uint64_t>(ctx_mem), 1, ns);
    if (!r) return r.error();
    out.retval = static_cast<std::uint32_t>(r->r0);
    out.insns = r->insns;
    return out;  // no duration for raw_tracepoint
  } else {
    return make_error(kENOTSUPP, fmt::format("test runs of program type {} are not supported", prog->type));
  }
  out.duration_ns = static_cast<std::uint32_t>(std::min<std::uint64_t>(ns / repeat, 0xffffffffu));
  return out;
}

}  // namespace userbpf::runtime
