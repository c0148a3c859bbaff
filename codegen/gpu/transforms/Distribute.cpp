// attn-gpu-distribute: tiled functions -> thread-block kernels at the GPU tile level. The
// parallel loops become the grid, each tiled op becomes attn_gpu ops, and the tile buffers
// become register fragments carried by the key loop (see Passes.td). Here: the pass, and the
// combine kernel; the flash kernel in FlashDistribute.cpp and FlashLoops.cpp, the chunk, scan,
// backward and block-plan kernels in their files.
#include "codegen/gpu/transforms/ChunkSchedule.h"
#include "codegen/gpu/transforms/FlashDistributor.h"
#include "codegen/gpu/transforms/FlashTile.h"
#include "codegen/gpu/transforms/Passes.h"
#include "codegen/gpu/transforms/PlanDistribute.h"
#include "codegen/gpu/transforms/TileBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include <cmath>

namespace mlir::attngpu {
#define GEN_PASS_DEF_ATTNGPUDISTRIBUTE
#include "codegen/gpu/transforms/Passes.h.inc"
} // namespace mlir::attngpu

using namespace mlir;
using namespace mlir::attngpu;
using namespace mlir::attngpu::detail;
using attn::CombineOp;

/// Copies a tiled op's region into an attn_gpu op, captures mapped to the kernel's values and
/// attn.yield turned into attn_gpu.yield.
void mlir::attngpu::cloneRegionInto(OpBuilder &b, Region &from, Region &to,
                                    const IRMapping &map) {
  if (from.empty())
    return;
  IRMapping local = map;  // a region may be cloned more than once: its block arguments differ
  from.cloneInto(&to, local);
  to.walk([&](attn::YieldOp yield) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(yield);
    YieldOp::create(b, yield.getLoc(), yield.getValues());
    yield.erase();
  });
}

namespace {

/// attn.combine as its own kernel: blocks over (b, h) = (z, y) and groups of
/// kCombineRowsPerBlock rows i (x). Its arguments are the combine's four buffers, or, when it
/// applies an output expression (which may read params), all of `f`'s arguments (schedule
/// `all_arguments`: the runtime passes it the main kernel's).
LogicalResult emitCombineKernel(OpBuilder &b, func::FuncOp f, CombineOp combine) {
  Location loc = combine.getLoc();
  bool mapped = !combine.getOutput().empty() || combine.getRmsEps();
  SmallVector<Value> operands = llvm::to_vector(combine->getOperands());
  SmallVector<Value> args = mapped ? SmallVector<Value>(f.getArguments()) : operands;
  SmallVector<Type> types;
  for (Value arg : args)
    types.push_back(kernelArgType(arg.getType(), arg == combine.getOut()));
  auto merge = gpu::GPUFuncOp::create(b, loc, (f.getName() + "_combine").str(),
                                      b.getFunctionType(types, {}));
  merge->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  constexpr int32_t threads = 128;
  merge.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({threads, 1, 1}));
  int64_t part = llvm::find(args, combine.getPartOut()) - args.begin();
  MLIRContext *ctx = b.getContext();
  SmallVector<GridAxisAttr> grid = {GridAxisAttr::get(ctx, part, 3, 1, kCombineRowsPerBlock),
                                    GridAxisAttr::get(ctx, part, 2, 1, 1),
                                    GridAxisAttr::get(ctx, part, 1, 1, 1)};
  DictionaryAttr schedule;
  if (mapped)
    schedule = DictionaryAttr::get(
        ctx, {NamedAttribute(StringAttr::get(ctx, "all_arguments"), b.getI64IntegerAttr(1))});
  merge->setAttr(kLaunchAttrName, LaunchAttr::get(ctx, threads, grid, 0, false, schedule, {}));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(&merge.getBody().front());
  IRMapping map;
  map.map(args, merge.getArguments());
  if (failed(materializeCaptures(b, map, combine.getOutput(),
                                 {combine.getOut(), combine.getLse()}, combine)))
    return failure();
  auto inside = attn::CombineOp::create(b, loc, map.lookup(operands[0]), map.lookup(operands[1]),
                                        map.lookup(operands[2]), map.lookup(operands[3]),
                                        combine.getRmsEpsAttr());
  combine.getOutput().cloneInto(&inside.getOutput(), map);  // attn.yield: still attn.combine's
  gpu::ReturnOp::create(b, loc);
  return checkSelfContained(merge);
}

struct AttnGPUDistributePass : mlir::attngpu::impl::AttnGPUDistributeBase<AttnGPUDistributePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<func::FuncOp> funcs;
    for (auto f : module.getOps<func::FuncOp>())
      if (strategyOf(f))
        funcs.push_back(f);
    for (func::FuncOp f : funcs) {
      StrategyKind kind = *strategyOf(f);
      LogicalResult done = kind == StrategyKind::flash      ? distribute(f)
                           : kind == StrategyKind::backward ? distributeBackward(f)
                                                            : distributeRecurrence(f);
      if (failed(done))
        return signalPassFailure();
    }
    if (!funcs.empty())
      module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(), UnitAttr::get(&getContext()));
  }

  LogicalResult distributeBackward(func::FuncOp f) {
    if (failed(distributeGrad(f, chip, blockPlan, dqAtomic)))
      return failure();
    f.erase();
    return success();
  }

  /// A function holding attn-chunk's form: one kernel for its attn.chunk_step, in the chunk
  /// (tensor cores) or scan form.
  LogicalResult distributeRecurrence(func::FuncOp f) {
    SmallVector<attn::ChunkStepOp> steps;
    f.walk([&](attn::ChunkStepOp step) { steps.push_back(step); });
    if (steps.size() != 1)
      return f.emitError("a recurrence strategy takes one attn.chunk_step per function, got ")
             << steps.size();
    attn::ChunkStepOp step = steps.front();
    OpBuilder b(f);
    auto kernel = createKernel(b, f, {step.getQ(), step.getK(), step.getV(), step.getOut()}, chip);
    bool scan = strategyOf(f) == StrategyKind::scan;
    if (failed(scan ? distributeScan(b, step, kernel)
                    : distributeChunk(b, step, kernel, valueSlice, chip == "sm_90a")) ||
        failed(checkSelfContained(kernel)))
      return failure();
    f.erase();
    return success();
  }

  LogicalResult distribute(func::FuncOp f) {
    FailureOr<FlashTile> tile = findFlashTile(f);
    if (failed(tile))
      return failure();
    OpBuilder b(f);
    SmallVector<Value> tensors = {tile->scores.getQ(), tile->scores.getK(), tile->matmul.getV(),
                                  tile->store.getOut()};
    for (attn::TileScoresOp more : tile->moreScores)  // several scores: their q and k too
      tensors.append({more.getQ(), more.getK()});
    auto kernel = createKernel(b, f, tensors, chip);
    if (tile->keyRange && failed(kernel.insertArgument(kernel.getNumArguments(),
                                                       planType(f.getContext()),
                                                       DictionaryAttr(), f.getLoc())))
      return failure();
    b.setInsertionPointToStart(&kernel.getBody().front());
    // The overlapped schedule needs asynchronous mmas: wgmma on sm_90a, whole warpgroups.
    // Several scores, and row norms (K(j0)'s norms would be overwritten by the next tile's
    // before its scores read them): the serial loop.
    bool overlapped = overlap && chip == "sm_90a" && tile->blockQ % 64 == 0 &&
                      tile->moreScores.empty() &&
                      tile->scores.getScore().front().getNumArguments() == 5;
    FlashDistributor distributor(b, *tile, kernel, overlapped, chip == "sm_90a");
    if (failed(distributor.run()) || failed(checkSelfContained(kernel)))
      return failure();
    if (tile->keyRange) {  // the block plan, a kernel of its own launched before this one
      b.setInsertionPoint(kernel);
      auto grid = cast<LaunchAttr>(kernel->getAttr(kLaunchAttrName)).getGrid();
      FailureOr<gpu::GPUFuncOp> plan =
          emitPlanKernel(b, f, tile->keyRange, kernel, {tile->store.getOut()}, grid);
      if (failed(plan) || failed(checkSelfContained(*plan)))
        return failure();
    }
    if (tile->combine) {
      b.setInsertionPointAfter(kernel);
      if (failed(emitCombineKernel(b, f, tile->combine)))
        return failure();
    }
    f.erase();
    return success();
  }
};

} // namespace
