# Runs llvm-objdump on one object and stores its disassembly (used at build time by CMakeLists.txt).
# --mattr=+alu32: sub-register names (w0) for 32-bit loads/stores/atomics, which is what our
# disassembler prints by default and what llvm-objdump needs to decode 32-bit atomics at all.
execute_process(
  COMMAND ${OBJDUMP} -d --no-show-raw-insn --mattr=+alu32 ${IN}
  OUTPUT_FILE ${OUT}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(REMOVE ${OUT})
  message(FATAL_ERROR "${OBJDUMP} failed on ${IN}")
endif()
