#include "common/engine.hpp"

#include "jit/jit.hpp"

namespace userbpf::tools {

std::string_view engine_name(Engine e) {
  switch (e) {
    case Engine::Interpreter: return "interpreter";
    case Engine::Jit: return "jit";
  }
  return "?";
}

bool engine_available(Engine) { return true; }

Result<abi::RunResult> load_and_run(Engine engine, std::span<const isa::Insn> insns, const interp::LoadOptions& load,
                                    abi::Env& env, std::span<const std::uint64_t> args) {
  switch (engine) {
    case Engine::Interpreter: {
      auto prog = interp::Program::create(insns, load);
      if (!prog.ok()) return prog.error();
      return prog->run(env, args);
    }
    case Engine::Jit: {
      jit::Options jo;
      jo.kernel_structure = load.kernel_structure;
      jo.checked = env.options.checked;
      jo.budget = env.options.budget;
      jo.count_insns = env.options.count_insns;
      jo.helpers = env.helpers;
      auto prog = jit::Program::compile(insns, jo);
      if (!prog.ok()) return prog.error();
      return prog->run(env, args);
    }
  }
  return make_error(EINVAL, "unknown engine");
}

}  // namespace userbpf::tools
