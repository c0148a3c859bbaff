// Passes and pipeline of the CPU back end (tiled attn level -> LLVM on the host).
#pragma once

#include "dialect/AttnDialect.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::attn {

#define GEN_PASS_DECL
#include "codegen/cpu/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "codegen/cpu/Passes.h.inc"

/// Tile ops -> scalar loops (the patterns of attn-cpu-lower-tiles).
void populateCPULowerTilesPatterns(RewritePatternSet &patterns);

/// Appends the passes that take tiled IR to the LLVM dialect on the host.
void buildCPUToLLVMPipeline(OpPassManager &pm);

} // namespace mlir::attn
