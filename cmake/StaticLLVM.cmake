# ATTNC_STATIC_LLVM: link LLVM and MLIR statically into attnc and libattnc.so so the compiler is a
# self-contained file for GPU hosts without LLVM (and without ICU 72 or z3, which Debian's
# libLLVM.so needs): it needs only libc, libstdc++, libz and libzstd. Debian's MLIR archives name the LLVM *dylib* target in their link interface;
# that imported target is re-pointed here at the static component archives.
set(LLVM_LINK_LLVM_DYLIB OFF)
set(MLIR_LINK_MLIR_DYLIB OFF)

llvm_map_components_to_libnames(attnc_llvm_libs
  Core Support IRReader BitReader BitWriter TransformUtils Passes Analysis ScalarOpts IPO
  InstCombine AggressiveInstCombine Vectorize Linker Target TargetParser MC MCParser
  AsmPrinter CodeGen SelectionDAG Object Option FrontendOpenMP FrontendOffloading
  ExecutionEngine OrcJIT OrcShared OrcTargetProcess JITLink RuntimeDyld PerfJITEvents
  NVPTXCodeGen NVPTXDesc NVPTXInfo X86CodeGen X86AsmParser X86Desc X86Info)

# The first archive stands in as the "shared library" file; the rest follow in the interface.
list(GET attnc_llvm_libs 0 attnc_first)
foreach(config RELWITHDEBINFO RELEASE NONE DEBUG MINSIZEREL)
  get_target_property(attnc_first_location ${attnc_first} IMPORTED_LOCATION_${config})
  if(attnc_first_location)
    break()
  endif()
endforeach()
foreach(config "" _RELEASE _NONE _RELWITHDEBINFO _DEBUG _MINSIZEREL)
  set_property(TARGET LLVM PROPERTY IMPORTED_LOCATION${config} ${attnc_first_location})
  set_property(TARGET LLVM PROPERTY IMPORTED_SONAME${config} "")
endforeach()
set_property(TARGET LLVM PROPERTY IMPORTED_NO_SONAME TRUE)
set_property(TARGET LLVM PROPERTY INTERFACE_LINK_LIBRARIES ${attnc_llvm_libs})

# z3 only serves LLVM's SMT solver, which attnc never calls. zstd and zlib stay shared: every
# Ubuntu/Debian host has them, and Debian's libzstd.a is not position independent (libattnc.so).
get_target_property(support_deps LLVMSupport INTERFACE_LINK_LIBRARIES)
list(FILTER support_deps EXCLUDE REGEX "z3")
set_property(TARGET LLVMSupport PROPERTY INTERFACE_LINK_LIBRARIES ${support_deps})

# Drop unused shared libraries some component archives list (libxml2, libedit, ffi).
add_link_options(-Wl,--as-needed -Wl,--gc-sections)
message(STATUS "attnc: LLVM/MLIR linked statically (${attnc_first_location} and friends)")

# MLIRExecutionEngine's exported interface names the MLIR dylib: name its static dependencies.
set_property(TARGET MLIRExecutionEngine PROPERTY INTERFACE_LINK_LIBRARIES
  LLVM MLIRExecutionEngineUtils MLIRTargetLLVMIRExport MLIRLLVMToLLVMIRTranslation
  MLIRBuiltinToLLVMIRTranslation MLIRLLVMDialect MLIRIR MLIRSupport)
