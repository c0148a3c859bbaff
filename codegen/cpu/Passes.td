// Passes of the CPU back end.
#ifndef ATTN_CPU_PASSES_TD
#define ATTN_CPU_PASSES_TD

include "mlir/Pass/PassBase.td"

def AttnCPULowerTiles : Pass<"attn-cpu-lower-tiles", "::mlir::func::FuncOp"> {
  let summary = "Lower the tiled attn level to scalar scf loops for the host";
  let description = [{
    Each `attn.tile_*` op becomes a nest of `scf.for` loops over its tile with scalar
    `memref.load`/`memref.store` and f32 arithmetic; f16/bf16 operands are extended on load and
    the output rounded on store. The score and mask regions are inlined where the scores are
    computed, and only for indices in range, so param loads never leave their tensors.
    `attn.attention` must have been tiled first.

    Before: `attn.tile_row_max %s -> %m : memref<64x64xf32> -> memref<64xf32>`
    After:  `scf.for %r ... { %mx = scf.for %c ... iter_args(...) { arith.maximumf } ; memref.store }`
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect", "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
                           "::mlir::vector::VectorDialect"];
}

#endif // ATTN_CPU_PASSES_TD
