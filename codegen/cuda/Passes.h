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

/// Appends the passes that take a module after attn-cuda-lower-tiles to a gpu.binary whose
/// object is PTX.
void buildCUDAToPTXPipeline(OpPassManager &pm);

/// The PTX of every kernel module after buildCUDAToPTXPipeline, keyed by the variant's name.
LogicalResult extractPTX(ModuleOp module, std::map<std::string, std::string> &ptx);


/// The CUDA schedule of attn.chunk_step (CUDAChunk.cpp): `rows` positions per chunk (16 per
/// warp; chunk 1, the single-step form, runs as one 16-row tile), the value channels split into
/// slices of `valueSlice`, one block per (slice, q head, batch).
struct CUDAChunkConfig {
  int64_t rows = 0, warps = 0, threads = 0, valueSlice = 0;
  /// One Q tile instead of two (the single-step form): Q(n + 1) is loaded once every warp holds
  /// Q(n) in registers. Less shared memory, more blocks per SM (bench/METHOD.md).
  bool singleQ = false;
};
/// Fails with `why` for a chunk size or dims the kernel does not take.
/// `valueSlice` 0 picks the largest multiple of 16 dividing the value dim that keeps the state
/// at 32 f32 registers per thread (at least 16).
/// `wholeRows` (an output rmsnorm): one slice of the whole value dim, up to 128.
LogicalResult cudaChunkConfig(int64_t chunk, int64_t headDim, int64_t valueDim,
                              CUDAChunkConfig &config, std::string &why, int64_t valueSlice = 0,
                              bool wholeRows = false);
/// Fills `kernel` (its arguments those of `f`, q/k/v/out with a unit last stride) with the
/// chunked recurrence of `step`, the one attn.chunk_step of `f`.
LogicalResult buildChunkKernel(OpBuilder &b, func::FuncOp f, ChunkStepOp step,
                               gpu::GPUFuncOp kernel, int64_t valueSlice);

/// The recurrent (scan) form of attn.chunk_step (CUDAScan.cpp), for the shapes the chunk kernel
/// does not take: `lanes` threads per (batch, head, value channel) walk the positions with the
/// state column in registers (d / lanes entries each). A block holds `headsPerBlock` heads of
/// `valueBlock` channels; the grid is (ceil(heads / headsPerBlock), batch, ceil(dv / valueBlock)).
struct CUDAScanConfig {
  int64_t threads = 0, lanes = 0, valueBlock = 0, headsPerBlock = 0;
};
inline constexpr int64_t kCUDAScanMaxHeadDim = 128;
/// Positions whose inputs the scan kernel loads together before stepping through them.
inline constexpr int64_t kScanSteps = 8;
LogicalResult cudaScanConfig(int64_t headDim, int64_t valueDim, CUDAScanConfig &config,
                             std::string &why);
/// Fills `kernel` like buildChunkKernel, in the scan form (static head and value dims).
LogicalResult buildScanKernel(OpBuilder &b, func::FuncOp f, ChunkStepOp step,
                              gpu::GPUFuncOp kernel);

/// Math ops -> PTX approximations (no libdevice needed).
void populateApproxMathToNVVMPatterns(RewritePatternSet &patterns);

} // namespace mlir::attn
