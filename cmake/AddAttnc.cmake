# Thin wrappers over MLIR's CMake functions. Every attnc library registers itself in one global
# list so that the tools link with one line (as CIRCT's AddCIRCT.cmake does).
set_property(GLOBAL PROPERTY ATTNC_LIBS "")

function(add_attnc_library name)
  add_mlir_library(${name} ${ARGN} DISABLE_INSTALL)
  set_property(GLOBAL APPEND PROPERTY ATTNC_LIBS ${name})
endfunction()

function(add_attnc_dialect_library name)
  add_mlir_dialect_library(${name} ${ARGN} DISABLE_INSTALL)
  set_property(GLOBAL APPEND PROPERTY ATTNC_LIBS ${name})
endfunction()

function(add_attnc_tool name)
  add_llvm_executable(${name} ${ARGN})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
endfunction()
