// attn-gpu-to-nvvm: every attn_gpu op (and attn.combine) in the kernels -> gpu/nvgpu/nvvm, one
// pattern each, under a ConversionTarget on which attn and attn_gpu are illegal: an op left
// unlowered is an error. Fragments become per-thread scalars (1:N), loops and branches follow.
#include "codegen/cuda/GPUToNVVM.h"
#include "codegen/cuda/Passes.h"

#include "mlir/Dialect/SCF/Transforms/Patterns.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNGPUTONVVM
#include "codegen/cuda/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

struct AttnGPUToNVVMPass : mlir::attn::impl::AttnGPUToNVVMBase<AttnGPUToNVVMPass> {
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    FragmentTypeConverter converter;
    ConversionTarget target(*ctx);
    target.addIllegalDialect<AttnDialect, attngpu::AttnGPUDialect>();
    target.addLegalDialect<gpu::GPUDialect, nvgpu::NVGPUDialect, NVVM::NVVMDialect,
                           LLVM::LLVMDialect, memref::MemRefDialect, vector::VectorDialect>();
    target.addDynamicallyLegalDialect<arith::ArithDialect, math::MathDialect>(
        [&](Operation *op) { return converter.isLegal(op); });
    RewritePatternSet patterns(ctx);
    scf::populateSCFStructuralTypeConversionsAndLegality(converter, patterns, target);
    populateFragmentOpsToNVVMPatterns(converter, patterns);
    populateMmaToNVVMPatterns(converter, patterns);
    populateCopyToNVVMPatterns(converter, patterns);
    populateScoreToNVVMPatterns(converter, patterns);
    populateStoreToNVVMPatterns(converter, patterns);
    populateDecayToNVVMPatterns(converter, patterns);
    populateCombineToNVVMPatterns(converter, patterns);
    populateStateToNVVMPatterns(converter, patterns);
    populateGateToNVVMPatterns(converter, patterns);
    populateProjectToNVVMPatterns(converter, patterns);
    populateGradToNVVMPatterns(converter, patterns);
    FrozenRewritePatternSet frozen(std::move(patterns));
    for (auto module : getOperation().getOps<gpu::GPUModuleOp>())
      if (failed(applyPartialConversion(module, target, frozen)))
        return signalPassFailure();
    // A pattern that opens with a barrier may follow one the tile level placed (after a
    // wait): with only memory-effect-free ops (thread ids, index math) since the last
    // barrier, the second synchronises nothing.
    SmallVector<gpu::BarrierOp> redundant;
    getOperation().walk([&](gpu::BarrierOp barrier) {
      for (Operation *op = barrier->getPrevNode(); op; op = op->getPrevNode()) {
        if (isa<gpu::BarrierOp>(op)) {
          redundant.push_back(barrier);
          return;
        }
        if (!isMemoryEffectFree(op))
          return;
      }
    });
    for (gpu::BarrierOp barrier : redundant)
      barrier->erase();
    RewritePatternSet approx(ctx);
    populateApproxMathToNVVMPatterns(approx);
    if (failed(applyPatternsGreedily(getOperation(), std::move(approx))))
      return signalPassFailure();
    // The kernels' float arithmetic may contract (a * b + c as one fma, as nvcc's default
    // --fmad=true): the softmax's scale-and-subtract becomes one instruction per element
    // (1.00-1.08x on the H200, bench/METHOD.md 2026-12-04).
    getOperation().walk([](arith::ArithFastMathInterface op) {
      if (!isa<arith::MulFOp, arith::AddFOp, arith::SubFOp>(op))
        return;
      auto flags = op.getFastMathFlagsAttr().getValue() | arith::FastMathFlags::contract;
      if (isa<arith::MulFOp>(op))
        flags = flags | arith::FastMathFlags::reassoc;
      op->setAttr(op.getFastMathAttrName(), arith::FastMathFlagsAttr::get(op->getContext(), flags));
    });
  }
};

} // namespace
