// Passes of the CUDA back end.
#ifndef ATTN_CUDA_PASSES_TD
#define ATTN_CUDA_PASSES_TD

include "mlir/Pass/PassBase.td"

def AttnCUDALowerTiles : Pass<"attn-cuda-lower-tiles", "::mlir::ModuleOp"> {
  let summary = "Map the tiled attn level to a tensor-core GPU kernel (gpu/nvgpu/nvvm)";
  let description = [{
    Each host function at the tiled level (loops over batch, heads and query tiles around
    `attn.tile_scores`, `attn.tile_online_update`, `attn.tile_matmul_acc`, `attn.tile_store`)
    becomes a `gpu.func` kernel in a `gpu.module` targeting NVVM:
      - the grid is (query tiles, query heads, batch); a block of block-q / 16 warps owns one
        query tile, each warp 16 rows;
      - Q, K and V tiles go global -> shared with `cp.async` (zero-filled past the sequence end)
        into rows padded by 16 bytes, and shared -> registers with `ldmatrix`;
      - S = Q.K^T and O += P.V are m16n8k16 `mma.sync` (f16 or bf16 in, f32 accumulate); P is
        re-packed from the S accumulators without going through memory;
      - the score and mask regions are applied to each accumulator element (indices clamped in
        range, keys past the end masked), and the online softmax keeps its running max and sum
        in registers, with quad shuffles for the row reductions and `ex2.approx`.
    Math in the score region is mapped to PTX approximations (ex2, lg2, tanh, rsqrt, sqrt).

    A function holding an `attn.chunk_step` (attn-chunk's form) becomes the chunked recurrence
    kernel instead: grid (value slices, heads, batch), the chunks walked in order by each block.

    Before: `func.func @v(...) { scf.for ... { attn.tile_scores ... attn.tile_store ... } }`
    After:  `gpu.module @v_kernels [#nvvm.target<chip = "sm_80">] { gpu.func @v(...) kernel {...} }`
  }];
  let options = [
    Option<"chip", "chip", "std::string", "\"sm_80\"", "Target SM (sm_80, sm_90a)">,
    Option<"valueSlice", "value-slice", "int64_t", "0",
           "Value channels per block of the chunked recurrence kernel (0: automatic)">,
  ];
  let dependentDialects = ["::mlir::gpu::GPUDialect", "::mlir::nvgpu::NVGPUDialect",
                           "::mlir::NVVM::NVVMDialect", "::mlir::LLVM::LLVMDialect",
                           "::mlir::vector::VectorDialect", "::mlir::scf::SCFDialect",
                           "::mlir::memref::MemRefDialect", "::mlir::arith::ArithDialect"];
}

#endif // ATTN_CUDA_PASSES_TD
