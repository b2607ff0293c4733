// Engine selection for the tools: one call loads a program into the chosen
// execution engine and runs it once against an Env.
//
// Load errors (the program's structure) come back as an Error; run-time
// faults come back inside the RunResult, exactly as the engine reports them.
// Both engines give the same RunResult for the same program and Env.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "abi/abi.hpp"
#include "base/error.hpp"
#include "interp/interp.hpp"
#include "isa/isa.hpp"

namespace userbpf::tools {

enum class Engine { Interpreter, Jit };
std::string_view engine_name(Engine e);
// True when the engine is built in.
bool engine_available(Engine e);

Result<abi::RunResult> load_and_run(Engine engine, std::span<const isa::Insn> insns, const interp::LoadOptions& load,
                                    abi::Env& env, std::span<const std::uint64_t> args);

}  // namespace userbpf::tools
