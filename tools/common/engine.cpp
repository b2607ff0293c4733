#include "common/engine.hpp"

namespace userbpf::tools {

std::string_view engine_name(Engine e) {
  switch (e) {
    case Engine::Interpreter: return "interpreter";
    case Engine::Jit: return "jit";
  }
  return "?";
}

bool engine_available(Engine e) { return e == Engine::Interpreter; }

Result<abi::RunResult> load_and_run(Engine engine, std::span<const isa::Insn> insns, const interp::LoadOptions& load,
                                    abi::Env& env, std::span<const std::uint64_t> args) {
  switch (engine) {
    case Engine::Interpreter: {
      auto prog = interp::Program::create(insns, load);
      if (!prog.ok()) return prog.error();
      return prog->run(env, args);
    }
    case Engine::Jit:
      // Enabling the JIT: replace this line with its load-and-run call.
      return make_error(ENOTSUP, "JIT not implemented yet");
  }
  return make_error(EINVAL, "unknown engine");
}

}  // namespace userbpf::tools
