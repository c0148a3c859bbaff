// Passes of the GPU tile level (attn_gpu): strategy selection, distribution, MMA selection and
// shared-memory allocation.
#pragma once

#include "codegen/gpu/AttnGPUDialect.h"
#include "dialect/AttnDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Pass/Pass.h"

namespace mlir::attngpu {

#define GEN_PASS_DECL
#include "codegen/gpu/transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "codegen/gpu/transforms/Passes.h.inc"

/// Iterations of `loop` before the current one: (iv - lb) / step (inside its body).
Value buildIterationsBefore(OpBuilder &b, Location loc, scf::ForOp loop);
/// The trip count of `loop`: ceil((ub - lb) / step), 0 when ub <= lb.
Value buildTripCount(OpBuilder &b, Location loc, scf::ForOp loop);

/// The strategy attn-gpu-select-strategy recorded on `f`, if any.
std::optional<StrategyKind> strategyOf(Operation *f);

/// The kernel's memref type for a host argument: with `unitLastStride` (q, k, v, out) the last
/// stride is 1 (the runtime checks it); packed i4 K/V (vector<2xi4>) are seen as their bytes.
Type kernelArgType(Type hostType, bool unitLastStride);

/// `gpu.module @<f>_kernels` (NVVM target for `chip`) holding an empty `gpu.func @<f>` kernel
/// with f's arguments, `tensors` with a unit last stride; `b` is left inside the module.
gpu::GPUFuncOp createKernel(OpBuilder &b, func::FuncOp f, ArrayRef<Value> tensors,
                            StringRef chip);

/// Makes the host value `v` (used by a region or a loop bound) available in a kernel: function
/// arguments must be mapped in `map` already; pure ops and reads of params (function
/// arguments not in `written`) are cloned at `b`'s insertion point, once. Anything else is an
/// error reported at `anchor`.
LogicalResult materializeCapture(OpBuilder &b, IRMapping &map, Value v, ArrayRef<Value> written,
                                 Operation *anchor);
/// materializeCapture for every value `region` uses from outside it.
LogicalResult materializeCaptures(OpBuilder &b, IRMapping &map, Region &region,
                                  ArrayRef<Value> written, Operation *anchor);

/// Writes a kernel's launch ABI (#attn_gpu.launch): `threads`, grid axes as (argument, dim,
/// scale, divisor), dynamic shared memory, and the schedule's named choices.
void setLaunch(gpu::GPUFuncOp kernel, int64_t threads,
               ArrayRef<std::array<int64_t, 4>> grid, int64_t sharedMemory,
               ArrayRef<std::pair<StringRef, int64_t>> schedule);

/// Replaces nothing: emits, before `f` (a `backward` function holding one
/// attn.attention_grad), the module of its two backward kernels (GradDistribute.cpp).
LogicalResult distributeGrad(func::FuncOp f, StringRef chip, bool blockPlan = true,
                             bool dqAtomic = false);

/// A kernel must not use a value of the host function it replaces: an unmapped capture is an
/// error, never a dangling use.
LogicalResult checkSelfContained(gpu::GPUFuncOp kernel);

} // namespace mlir::attngpu
