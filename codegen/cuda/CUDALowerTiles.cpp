// attn-cuda-lower-tiles: the chunk and scan strategies (attn-chunk's form of a recurrence) ->
// their kernels (CUDAChunk.cpp, CUDAScan.cpp). The flash strategy goes through the GPU tile
// level instead (attn-gpu-distribute, attn-gpu-to-nvvm).
#include "codegen/cuda/Passes.h"
#include "codegen/gpu/transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNCUDALOWERTILES
#include "codegen/cuda/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

struct AttnCUDALowerTilesPass
    : mlir::attn::impl::AttnCUDALowerTilesBase<AttnCUDALowerTilesPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<func::FuncOp> funcs(module.getOps<func::FuncOp>());
    for (func::FuncOp f : funcs)
      if (failed(lowerFunction(f)))
        return signalPassFailure();
    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(), UnitAttr::get(&getContext()));
  }

  /// A function holding attn-chunk's form: one kernel for its attn.chunk_step.
  LogicalResult lowerFunction(func::FuncOp f) {
    SmallVector<ChunkStepOp> steps;
    f.walk([&](ChunkStepOp step) { steps.push_back(step); });
    if (steps.size() != 1)
      return f.emitError("attn-cuda-lower-tiles lowers one attn.chunk_step per function; a "
                         "flash-strategy function goes through attn-gpu-distribute");
    ChunkStepOp step = steps.front();
    OpBuilder b(f);
    auto kernel = attngpu::createKernel(b, f, {step.getQ(), step.getK(), step.getV(),
                                               step.getOut()}, chip);
    bool scan = attngpu::strategyOf(f) == attngpu::StrategyKind::scan;
    if (failed(scan ? buildScanKernel(b, f, step, kernel)
                    : buildChunkKernel(b, f, step, kernel, valueSlice)) ||
        failed(attngpu::checkSelfContained(kernel)))
      return failure();
    f.erase();
    return success();
  }
};

} // namespace
