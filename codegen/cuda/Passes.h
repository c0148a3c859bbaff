// Passes and pipeline of the CUDA back end (tiled attn level -> PTX).
#pragma once

#include "dialect/AttnDialect.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Pass/Pass.h"

#include <map>
#include <string>

namespace mlir::attn {

#define GEN_PASS_DECL
#include "codegen/cuda/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "codegen/cuda/Passes.h.inc"

/// Appends the passes that take a module after attn-gpu-to-nvvm to a gpu.binary whose object
/// is PTX.
void buildCUDAToPTXPipeline(OpPassManager &pm);

/// The PTX of every kernel module after buildCUDAToPTXPipeline, keyed by the variant's name.
LogicalResult extractPTX(ModuleOp module, std::map<std::string, std::string> &ptx);


/// Math ops -> PTX approximations (no libdevice needed).
void populateApproxMathToNVVMPatterns(RewritePatternSet &patterns);

} // namespace mlir::attn
