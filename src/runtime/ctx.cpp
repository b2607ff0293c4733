// Context rewriting: the kernel's convert_ctx_access for the runtime's real
// context structures (helpers/packet_ctx.hpp).
//
// The verifier records every context access it proved (Fact CtxLoad /
// CtxStore: instruction, offset, size), after checking the access against
// the program type's context table (spec.cpp: which fields may be read or
// written, at which sizes). The real structures start with the uapi layout,
// so scalar fields need no change; the packet pointer fields (data,
// data_end, data_meta: 4-byte uapi fields the verifier only lets through as
// exact 4-byte loads) become 8-byte loads of the structure's 64-bit pointers.
// The socket pointer field __sk_buff.sk (an exact 8-byte load the verifier
// types sock_common_or_null) becomes `mov dst, 0`: user space has no kernel
// socket, so programs see NULL (the kernel's test run has a dummy socket).
// Instruction count and jump offsets never change. Other program types
// (tracing: raw bytes, pt_regs, bpf_perf_event_data) keep the uapi layout
// as their real layout: nothing to rewrite.
//
// Invariant: every rewritten instruction was an LdxW of a packet pointer
// field (an LdxDW of sk) on every path (the verifier pins one context access
// per instruction); anything else is refused with EINVAL naming it.
#include <fmt/format.h>

#include <algorithm>
#include <cstddef>

#include "helpers/packet_ctx.hpp"
#include "runtime/internal.hpp"
#include "spec/spec.hpp"

namespace userbpf::runtime {

namespace {

struct PtrFields {
  std::string_view ctx;  // spec::CtxLayout::name
  std::uint32_t data, data_end, data_meta;
};
constexpr PtrFields kPtrFields[] = {
    {"xdp_md", offsetof(helpers::XdpBuff, data), offsetof(helpers::XdpBuff, data_end),
     offsetof(helpers::XdpBuff, data_meta)},
    {"__sk_buff", offsetof(helpers::SkBuff, data), offsetof(helpers::SkBuff, data_end),
     offsetof(helpers::SkBuff, data_meta)},
};

}  // namespace

Status convert_ctx_access(std::uint32_t prog_type, std::span<const verifier::Fact> facts,
                          std::vector<isa::Insn>& exec, std::uint32_t& max_ctx_offset) {
  max_ctx_offset = 0;
  const spec::ProgType* pt = spec::prog_type(prog_type);
  if (pt == nullptr) return Ok{};
  const PtrFields* pf = nullptr;
  for (const auto& p : kPtrFields)
    if (p.ctx == pt->ctx.name) pf = &p;
  for (const verifier::Fact& f : facts) {
    if (f.kind != verifier::FactKind::CtxLoad && f.kind != verifier::FactKind::CtxStore) continue;
    max_ctx_offset = std::max(max_ctx_offset, static_cast<std::uint32_t>(f.off) + f.size);
    const spec::CtxField* field = spec::ctx_field_at(pt->ctx, f.off);
    if (field == nullptr) return insn_error(EINVAL, f.insn, fmt::format("ctx offset {} is not a field", f.off));
    auto cannot = [&]() -> Status {
      return insn_error(EINVAL, f.insn,
                        fmt::format("cannot convert the access to {}.{} (off {} size {})", pt->ctx.name, field->name,
                                    f.off, f.size));
    };
    std::uint32_t real = 0;
    switch (field->yields) {
      case spec::CtxYield::Packet: real = pf != nullptr ? pf->data : 0; break;
      case spec::CtxYield::PacketEnd: real = pf != nullptr ? pf->data_end : 0; break;
      case spec::CtxYield::PacketMeta: real = pf != nullptr ? pf->data_meta : 0; break;
      case spec::CtxYield::Scalar: case spec::CtxYield::Unsupported: continue;
      case spec::CtxYield::SockCommonOrNull: {
        // No kernel socket in user space: the load gives NULL.
        isa::Insn& in = exec[f.insn];
        if (f.kind != verifier::FactKind::CtxLoad || in.op != isa::Op::LdxDW || f.size != 8) return cannot();
        in = isa::make(isa::Op::MovImm, in.dst, 0, 0, 0);
        continue;
      }
    }
    isa::Insn& in = exec[f.insn];
    if (real == 0 || f.kind != verifier::FactKind::CtxLoad || in.op != isa::Op::LdxW || f.size != 4) return cannot();
    in = isa::make(isa::Op::LdxDW, in.dst, in.src, static_cast<std::int16_t>(real), 0);
  }
  return Ok{};
}

}  // namespace userbpf::runtime
