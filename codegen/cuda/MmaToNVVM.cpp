// attn_gpu.load_operand and attn_gpu.mma -> ldmatrix.x4 and mma.sync m16n8k16 (the kind
// attn-gpu-select-mma chose). Each warp owns 16 rows of the tile.
#include "codegen/cuda/GPUToNVVM.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attngpu;

namespace {

/// Lane l addresses row (l % 8) + 8 ((l / 8) % 2) of a 16-row block and column 8 ((l / 8) / 2)
/// of a 16-column step: ldmatrix.x4 then returns the A fragment of that step.
struct LoadOperandLowering : OpConversionPattern<LoadOperandOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(LoadOperandOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op, op.getType().getElementType());
    auto [r8, mLow, mHigh] = t.ldmatrixLanes();
    Value rowBase = t.mul(t.warp, 16);
    SmallVector<Value> fragments;
    for (int64_t kk = 0; kk < op.getType().getDimSize(1) / 16; ++kk)
      llvm::append_range(fragments,
                         t.ldmatrix(op.getTile(), t.add(t.add(rowBase, t.mul(mLow, 8)), r8),
                                    t.add(t.mul(mHigh, 8), kk * 16), false));
    rw.replaceOpWithMultiple(op, {fragments});
    return success();
  }
};

/// acc += a . B: one ldmatrix.x4 of B feeds two n8 blocks (16 columns) of one k16 step.
struct MmaLowering : OpConversionPattern<MmaOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(MmaOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    if (!op.getKind() || *op.getKind() != MmaKind::mma_sync_m16n8k16)
      return op.emitOpError("needs its instruction chosen (run attn-gpu-select-mma)");
    auto aType = cast<RankedTensorType>(op.getA().getType());
    ThreadContext t(rw, op.getLoc(), op, aType.getElementType());
    auto [r8, mLow, mHigh] = t.ldmatrixLanes();
    ValueRange a = adaptor.getA();
    SmallVector<SmallVector<Value, 4>> acc;
    for (size_t n = 0; n < adaptor.getAcc().size() / 4; ++n)
      acc.push_back(SmallVector<Value, 4>(adaptor.getAcc().slice(n * 4, 4)));
    int64_t kSteps = aType.getDimSize(1) / 16;
    int64_t nPairs = int64_t(acc.size()) / 2;
    for (int64_t kk = 0; kk < kSteps; ++kk) {
      ValueRange aStep = a.slice(kk * 4, 4);
      SmallVector<Value> aVec(aStep.begin(), aStep.end());
      for (int64_t np = 0; np < nPairs; ++np) {
        // [N, K] storage (K of Q K^T): matrices 0, 1 are the low n8 block's k halves.
        SmallVector<Value, 4> bf =
            op.getTransposeB()
                ? t.ldmatrix(op.getB(), t.add(t.add(t.mul(mHigh, 8), r8), np * 16),
                             t.add(t.mul(mLow, 8), kk * 16), false)
                : t.ldmatrix(op.getB(), t.add(t.add(t.mul(mLow, 8), r8), kk * 16),
                             t.add(t.mul(mHigh, 8), np * 16), true);
        acc[2 * np] = t.mma(aVec, {bf[0], bf[1]}, acc[2 * np]);
        acc[2 * np + 1] = t.mma(aVec, {bf[2], bf[3]}, acc[2 * np + 1]);
      }
    }
    SmallVector<Value> result;
    for (auto &tile : acc)
      result.append(tile.begin(), tile.end());
    rw.replaceOpWithMultiple(op, {result});
    return success();
  }
};

} // namespace

void mlir::attn::populateMmaToNVVMPatterns(FragmentTypeConverter &converter,
                                           RewritePatternSet &patterns) {
  patterns.add<LoadOperandLowering, MmaLowering>(converter, patterns.getContext());
}
