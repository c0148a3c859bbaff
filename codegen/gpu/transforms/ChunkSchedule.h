// The recurrence strategies of attn-gpu-distribute: the chunk kernel's schedule (tensor cores)
// and the scan kernel's (one thread group per value channel), and the distributions that emit
// them from an attn.chunk_step.
#pragma once

#include "codegen/gpu/transforms/Passes.h"

#include "mlir/IR/IRMapping.h"

#include <string>

namespace mlir::attngpu {

/// The chunk kernel (ChunkDistribute.cpp): `rows` positions per chunk (16 per warp; chunk 1,
/// the single-step form, runs as one 16-row tile), the value channels split into slices of
/// `valueSlice`, one block per (slice, q head, batch); each warp owns `blockRows` state rows.
/// `cluster` > 1: the slices of a row are the blocks of one thread-block cluster (an output
/// rmsnorm on sm_90a sums its squares over them, attn_gpu.cluster_publish / cluster_gather).
struct ChunkSchedule {
  int64_t rows = 0, warps = 0, threads = 0, valueSlice = 0, blockRows = 0, cluster = 1;
};
/// The most blocks a portable thread-block cluster holds.
inline constexpr int64_t kMaxClusterBlocks = 8;
/// Fails with `why` for a chunk size or dims the kernel does not take. `valueSlice` 0 picks
/// the largest multiple of 16 dividing the value dim that keeps the state at 32 f32 registers
/// per thread (at least 16). `wholeRows` (an output rmsnorm): without `clusters`, one slice
/// of the whole value dim, up to 128; with `clusters` (sm_90a), slices as above (at most
/// kMaxClusterBlocks of them), the row's slices one cluster.
LogicalResult chunkSchedule(int64_t chunk, int64_t headDim, int64_t valueDim,
                            ChunkSchedule &config, std::string &why, int64_t valueSlice = 0,
                            bool wholeRows = false, bool clusters = false);
/// Fills `kernel` (f's arguments, q/k/v/out with a unit last stride) with the chunked
/// recurrence of `step`, at the GPU tile level. `clusters`: the target has thread-block
/// clusters (sm_90a).
LogicalResult distributeChunk(OpBuilder &b, attn::ChunkStepOp step, gpu::GPUFuncOp kernel,
                              int64_t valueSlice, bool clusters);

/// The scan kernel (ScanDistribute.cpp), for the shapes the chunk kernel does not take:
/// `lanes` threads per (batch, head, value channel) walk the positions with the state column
/// in registers (d / lanes entries each). A block holds `headsPerBlock` heads of `valueBlock`
/// channels; the grid is (ceil(heads / headsPerBlock), batch, ceil(dv / valueBlock)).
struct ScanSchedule {
  int64_t threads = 0, lanes = 0, valueBlock = 0, headsPerBlock = 0;
};
inline constexpr int64_t kScanMaxHeadDim = 128;
/// Positions whose inputs the scan kernel loads together before stepping through them.
inline constexpr int64_t kScanSteps = 8;
LogicalResult scanSchedule(int64_t headDim, int64_t valueDim, ScanSchedule &config,
                           std::string &why);
/// Fills `kernel` like distributeChunk, in the scan form (static head and value dims).
LogicalResult distributeScan(OpBuilder &b, attn::ChunkStepOp step, gpu::GPUFuncOp kernel);

/// Copies an attn region (a score, mask, feature map, decay... of the tiled level) into an
/// attn_gpu op's region: host values through `map` (a copy: each clone binds its own block
/// arguments), attn.yield replaced by attn_gpu.yield. Every distribution clones with it.
void cloneRegionInto(OpBuilder &b, Region &from, Region &to, const IRMapping &map);

} // namespace mlir::attngpu
