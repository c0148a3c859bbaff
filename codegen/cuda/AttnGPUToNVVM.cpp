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

/// An attn_gpu.warp_specialize whose regions hold lowered ops: one if/else on the thread's
/// warpgroup (each role one branch, as setmaxnreg needs), each branch re-balancing the
/// registers first; the producer's body runs on its first warp; the consumers' block barriers
/// become a named barrier (1) of the consumer threads alone.
void lowerWarpSpecialize(attngpu::WarpSpecializeOp roles) {
  OpBuilder b(roles);
  Location loc = roles.getLoc();
  int64_t consumers = roles.getConsumerThreads();
  auto index = [&](int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); };
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  auto split = scf::IfOp::create(
      b, loc, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, tid, index(consumers)),
      /*withElseRegion=*/true);
  std::optional<ArrayRef<int64_t>> registers = roles.getRegisters();
  auto rebalance = [&](NVVM::SetMaxRegisterAction action, int64_t count) {
    if (registers)
      NVVM::SetMaxRegisterOp::create(b, loc, count, action);
  };
  b.setInsertionPoint(split.thenBlock()->getTerminator());
  rebalance(NVVM::SetMaxRegisterAction::increase, registers ? (*registers)[0] : 0);
  Block &consumer = roles.getConsumer().front();
  split.thenBlock()->getOperations().splice(b.getInsertionPoint(), consumer.getOperations());
  b.setInsertionPoint(split.elseBlock()->getTerminator());
  rebalance(NVVM::SetMaxRegisterAction::decrease, registers ? (*registers)[1] : 0);
  auto firstWarp = scf::IfOp::create(
      b, loc, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, tid, index(consumers + 32)),
      /*withElseRegion=*/false);
  Block &producer = roles.getProducer().front();
  firstWarp.thenBlock()->getOperations().splice(firstWarp.thenBlock()->getTerminator()->getIterator(),
                                                producer.getOperations());
  SmallVector<gpu::BarrierOp> barriers;
  split.getThenRegion().walk([&](gpu::BarrierOp barrier) { barriers.push_back(barrier); });
  for (gpu::BarrierOp barrier : barriers) {
    OpBuilder at(barrier);
    auto i32 = [&](int64_t v) { return arith::ConstantIntOp::create(at, loc, v, 32); };
    NVVM::BarrierOp::create(at, loc, Type(), i32(1), i32(consumers), {}, Value());
    barrier.erase();
  }
  roles.erase();
}

struct AttnGPUToNVVMPass : mlir::attn::impl::AttnGPUToNVVMBase<AttnGPUToNVVMPass> {
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    FragmentTypeConverter converter;
    ConversionTarget target(*ctx);
    target.addIllegalDialect<AttnDialect, attngpu::AttnGPUDialect>();
    target.addLegalOp<attngpu::WarpSpecializeOp>();  // its regions' ops convert in place
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
    SmallVector<attngpu::WarpSpecializeOp> roles;
    getOperation().walk([&](attngpu::WarpSpecializeOp op) { roles.push_back(op); });
    for (attngpu::WarpSpecializeOp op : roles)
      lowerWarpSpecialize(op);
    RewritePatternSet approx(ctx);
    populateApproxMathToNVVMPatterns(approx);
    if (failed(applyPatternsGreedily(getOperation(), std::move(approx))))
      return signalPassFailure();
    // The kernels' float arithmetic may contract (a * b + c as one fma, as nvcc's default
    // --fmad=true): the softmax's scale-and-subtract becomes one instruction per element
    // (1.00-1.08x on the H200, bench/METHOD.md 2026-12-04).
    // A quotient may be the dividend times the divisor's reciprocal (arcp): a score's x / c
    // (soft-capping's x / cap, a temperature's x / tau[h]) becomes one reciprocal per divisor
    // and a multiply per element instead of an IEEE division per element (div.rn.f32, tens of
    // instructions); at most an ulp of f32 apart, far below the 16-bit outputs' resolution.
    getOperation().walk([](arith::ArithFastMathInterface op) {
      if (!isa<arith::MulFOp, arith::AddFOp, arith::SubFOp, arith::DivFOp>(op))
        return;
      auto flags = op.getFastMathFlagsAttr().getValue() |
                   (isa<arith::DivFOp>(op) ? arith::FastMathFlags::arcp
                                           : arith::FastMathFlags::contract);
      if (isa<arith::MulFOp>(op))
        flags = flags | arith::FastMathFlags::reassoc;
      op->setAttr(op.getFastMathAttrName(), arith::FastMathFlagsAttr::get(op->getContext(), flags));
    });
  }
};

} // namespace
