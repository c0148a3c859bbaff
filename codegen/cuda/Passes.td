// Passes of the CUDA back end.
#ifndef ATTN_CUDA_PASSES_TD
#define ATTN_CUDA_PASSES_TD

include "mlir/Pass/PassBase.td"

def AttnCUDALowerTiles : Pass<"attn-cuda-lower-tiles", "::mlir::ModuleOp"> {
  let summary = "Build the recurrence kernels (chunk and scan strategies) of attn.chunk_step";
  let description = [{
    Each function holding attn-chunk's form (one `attn.chunk_step`; strategy `chunk` or `scan`
    from attn-gpu-select-strategy) becomes a `gpu.func` kernel in a `gpu.module` targeting
    NVVM. `chunk`: grid (value slices, heads, batch), each block walking the chunks in order on
    tensor cores (CUDAChunk.cpp); `scan`: lanes per (batch, head, value channel) stepping
    through the positions (CUDAScan.cpp). These two builders are the part of the CUDA back end
    not yet composed from GPU tile ops (docs/architecture.md); flash-strategy functions go
    through attn-gpu-distribute and attn-gpu-to-nvvm, and reaching this pass is an error.

    Before: `func.func @v(...) { scf.for ... { attn.chunk_step ... } }`
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

def AttnGPUToNVVM : Pass<"attn-gpu-to-nvvm", "::mlir::ModuleOp"> {
  let summary = "Lower the GPU tile level (attn_gpu) to gpu/nvgpu/nvvm, one pattern per op";
  let description = [{
    Converts every op of the attn_gpu dialect (and attn.combine) inside the module's kernels
    under a ConversionTarget on which attn and attn_gpu are illegal, so an op without a
    lowering is an error. Register fragments (tensors with a #attn_gpu.frag layout) become the
    scalars each thread holds; scf loops and branches carry them. Math becomes PTX
    approximations (ex2, lg2, tanh, rsqrt, sqrt).

    Before: `%s = attn_gpu.mma %qa, %k, %s0 {kind = #attn_gpu.mma<mma_sync_m16n8k16>, transpose_b} ...`
    After:  `nvgpu.ldmatrix ...` `nvvm.mma.sync ...` on f32 scalars
  }];
  let dependentDialects = ["::mlir::gpu::GPUDialect", "::mlir::nvgpu::NVGPUDialect",
                           "::mlir::NVVM::NVVMDialect", "::mlir::LLVM::LLVMDialect",
                           "::mlir::vector::VectorDialect", "::mlir::scf::SCFDialect",
                           "::mlir::memref::MemRefDialect", "::mlir::arith::ArithDialect"];
}

#endif // ATTN_CUDA_PASSES_TD
