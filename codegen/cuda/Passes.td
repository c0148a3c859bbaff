// Passes of the CUDA back end.
#ifndef ATTN_CUDA_PASSES_TD
#define ATTN_CUDA_PASSES_TD

include "mlir/Pass/PassBase.td"

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
