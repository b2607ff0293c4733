# Strict warnings for the core components (STYLE.md): -Wall -Wextra -Wswitch-enum
# -Wconversion, as errors. Tools and tests get -Wall -Wextra.
function(userbpf_core_target tgt)
  target_compile_options(${tgt} PRIVATE -Wall -Wextra -Wswitch-enum -Wconversion -Wsign-conversion
                                        -Wshadow -Wnon-virtual-dtor -Werror)
endfunction()
function(userbpf_tool_target tgt)
  target_compile_options(${tgt} PRIVATE -Wall -Wextra -Werror)
endfunction()
