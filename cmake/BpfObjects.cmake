# One rule for BPF objects compiled at build time by clang -target bpf (never
# committed). Every BPF C or assembly source of the project goes through it.
#
#   userbpf_bpf_objects(OUT <list-var> SOURCES <files...> OUT_DIR <dir>
#                       [CLANG <exe>] [FLAGS <flags...>] [DEPENDS <files...>]
#                       [SUFFIX <suffix>] [INCLUDE_SYSTEM])
#
# For each source NAME.<ext> it adds a custom command producing
# OUT_DIR/NAME<SUFFIX> (SUFFIX defaults to .bpf.o; NAME is the source's name
# up to its first dot) and appends the output to <list-var>. CLANG defaults
# to USERBPF_BPF_CLANG (clang, clang-14 or clang-19). INCLUDE_SYSTEM adds
# -I/usr/include/<multiarch> so that <linux/...> headers resolve as they do
# for libbpf programs.

find_program(USERBPF_BPF_CLANG NAMES clang clang-14 clang-19)
find_program(USERBPF_BPF_CLANG19 NAMES clang-19)
execute_process(COMMAND ${CMAKE_C_COMPILER} -print-multiarch OUTPUT_VARIABLE USERBPF_MULTIARCH
                OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT USERBPF_MULTIARCH)
  set(USERBPF_MULTIARCH x86_64-linux-gnu)
endif()

function(userbpf_bpf_objects)
  cmake_parse_arguments(A "INCLUDE_SYSTEM" "OUT;OUT_DIR;CLANG;SUFFIX" "SOURCES;FLAGS;DEPENDS" ${ARGN})
  if(NOT A_OUT OR NOT A_OUT_DIR)
    message(FATAL_ERROR "userbpf_bpf_objects: OUT and OUT_DIR are required")
  endif()
  if(NOT A_CLANG)
    set(A_CLANG ${USERBPF_BPF_CLANG})
  endif()
  if(NOT A_SUFFIX)
    set(A_SUFFIX .bpf.o)
  endif()
  set(_flags ${A_FLAGS})
  if(A_INCLUDE_SYSTEM)
    list(APPEND _flags -I/usr/include/${USERBPF_MULTIARCH})
  endif()
  file(MAKE_DIRECTORY ${A_OUT_DIR})
  set(_outs ${${A_OUT}})
  foreach(_src IN LISTS A_SOURCES)
    get_filename_component(_name ${_src} NAME_WE)
    get_filename_component(_fname ${_src} NAME)
    set(_obj ${A_OUT_DIR}/${_name}${A_SUFFIX})
    add_custom_command(OUTPUT ${_obj}
      COMMAND ${A_CLANG} -target bpf ${_flags} -c ${_src} -o ${_obj}
      DEPENDS ${_src} ${A_DEPENDS}
      COMMENT "BPF object ${_name}${A_SUFFIX} (${_fname})" VERBATIM)
    list(APPEND _outs ${_obj})
  endforeach()
  set(${A_OUT} ${_outs} PARENT_SCOPE)
endfunction()
