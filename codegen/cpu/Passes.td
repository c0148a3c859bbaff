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

def AttnCPULowerGrad : Pass<"attn-cpu-lower-grad", "::mlir::func::FuncOp"> {
  let summary = "Lower attn.attention_grad to scalar scf loops for the host";
  let description = [{
    The backward by recomputation, as attn.attention_grad defines it: for each (b, h, i) the
    row's D = dout . out (softmax), then for each allowed key j the dot, the score, P (from lse
    for softmax; a row with lse = -inf has P = 0), dP = dout . v, dS by the norm, the
    score_grad region (its attn.accumulate ops become load-add-store), and
    dq_i += dDot k_j, dk_j += dDot q_i, dv_j += P dout_i. dq rows, dk and dv accumulate in f32
    scratch and are rounded once into their buffers; every param gradient is zeroed first.
    Extra memory: O(b h_k s d) f32 for dk and dv, nothing of size s x s.
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect", "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect", "::mlir::math::MathDialect"];
}

def AttnCPUHeapBuffers : Pass<"attn-cpu-heap-buffers", "::mlir::func::FuncOp"> {
  let summary = "Move scratch buffers too large for the stack to the heap";
  let description = [{
    A `memref.alloca` of more than 64 KiB, or of a dynamic size, becomes a `memref.alloc`
    freed by a `memref.dealloc` before its block's terminator, so that wide heads (a
    [64 x dv] f32 accumulator at dv = 32768 is 8 MiB) do not overflow the thread's stack.
    Smaller static buffers stay allocas. A buffer its block's terminator uses is left alone.
  }];
  let dependentDialects = ["::mlir::memref::MemRefDialect"];
}

#endif // ATTN_CPU_PASSES_TD
