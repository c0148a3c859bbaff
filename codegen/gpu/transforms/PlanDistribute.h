// The block plan kernel of a flash function whose key loop attn-block-plan narrowed
// (PlanDistribute.cpp).
#pragma once

#include "codegen/gpu/transforms/Passes.h"
#include "dialect/MaskInterval.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"

namespace mlir::attngpu {

/// Values per plan entry: an attn::KeyScan (raw key positions and a count).
inline constexpr int64_t kPlanValues = 5;

/// The plan's kernel argument: i32 [batch, head or 1, query tile, kPlanValues], contiguous,
/// holding per query tile the attn::KeyScan of all its keys.
MemRefType planType(MLIRContext *ctx);

/// The plan's head index of this block: blockIdx.y when the mask reads the head, else 0.
Value planHead(OpBuilder &b, Location loc, attn::TileKeyRangeOp op);

/// Value `c` of the plan's entry (batch, hp, qt), as an index.
Value planValue(OpBuilder &b, Location loc, Value plan, Value batch, Value hp, Value qt,
                int64_t c);

/// The results of `op` from the plan's entry (batch, hp, qt), finished (attn::finishKeyRange).
attn::KeyRange planEntry(OpBuilder &b, Location loc, attn::TileKeyRangeOp op, Value plan,
                         Value batch, Value hp, Value qt);

/// An i32 combined over the 32 lanes of a warp by xor shuffles (`kind`: mins, maxs or addi).
Value warpReduce(OpBuilder &b, Location loc, Value x, arith::AtomicRMWKind kind);

/// The results of `op` for the query tile at row i0 of `batch`, read from `plan` (the
/// attention kernel's side).
attn::KeyRange loadPlanRange(OpBuilder &b, Location loc, attn::TileKeyRangeOp op, Value plan,
                             Value batch, Value i0);

/// Emits `<f>_plan` at `b` (in the attention kernel's module, with its signature, whose last
/// argument is the plan) computing every entry of the plan from `op`; `written` are the host
/// arguments the kernels write (not readable as params); `attentionGrid` the attention
/// kernel's grid, whose query tiles and batches the plan kernel shares.
FailureOr<gpu::GPUFuncOp> emitPlanKernel(OpBuilder &b, func::FuncOp f, attn::TileKeyRangeOp op,
                                         gpu::GPUFuncOp attention, ArrayRef<Value> written,
                                         ArrayRef<GridAxisAttr> attentionGrid);

} // namespace mlir::attngpu
