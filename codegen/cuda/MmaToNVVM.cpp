// attn_gpu.load_operand and attn_gpu.mma -> ldmatrix.x4 and mma.sync m16n8k16 (the kind
// attn-gpu-select-mma chose). Each warp owns 16 rows of the tile.
#include "codegen/cuda/GPUToNVVM.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attngpu;

/// exp(G[row, d..d+1] - G[from, d..d+1]) (from null: G = 0), from one 8-byte load of each G
/// pair (d is even).
std::pair<Value, Value> mlir::attn::gatePair(WarpKernelBase &t, Value gate, Value row, Value from,
                                             Value d) {
  auto pair = VectorType::get({2}, t.b.getF32Type());
  Value g = vector::LoadOp::create(t.b, t.loc, pair, gate, ValueRange{row, d});
  if (from)
    g = arith::SubFOp::create(t.b, t.loc, g,
                              vector::LoadOp::create(t.b, t.loc, pair, gate, ValueRange{from, d}));
  return {math::ExpOp::create(t.b, t.loc, vector::ExtractOp::create(t.b, t.loc, g, 0)),
          math::ExpOp::create(t.b, t.loc, vector::ExtractOp::create(t.b, t.loc, g, 1))};
}

/// x (vector<2xT>, channels d, d + 1 of one row) times (f0, f1), re-packed.
Value mlir::attn::scalePair(WarpKernelBase &t, Value x, std::pair<Value, Value> f) {
  Value wide = arith::ExtFOp::create(t.b, t.loc, VectorType::get({2}, t.b.getF32Type()), x);
  Value lo = vector::ExtractOp::create(t.b, t.loc, wide, 0);
  Value hi = vector::ExtractOp::create(t.b, t.loc, wide, 1);
  return t.pack(t.fmul(lo, f.first), t.fmul(hi, f.second));
}

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

/// acc += a . B: one ldmatrix.x4 of B feeds two n8 blocks (16 columns) of one k16 step, an
/// ldmatrix.x2 a last odd n8 block. Gates scale each B register pair (channels k, k + 1).
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
    int64_t blocks = int64_t(acc.size());
    Value gate = op.getGate(), rowBase = gate ? t.mul(t.warp, 16) : Value();
    // Part p of a B load holds channels 16 kk + 2c + 8 (p % 2) (+1): their gate factors.
    auto gateFactors = [&](int64_t kk, Value from) {
      std::array<std::pair<Value, Value>, 2> f;
      for (int64_t high = 0; high < 2; ++high)
        f[high] = gatePair(t, gate, rowBase, from, t.add(t.mul(t.c, 2), kk * 16 + 8 * high));
      return f;
    };
    for (int64_t kk = 0; kk < kSteps; ++kk) {
      ValueRange aStep = a.slice(kk * 4, 4);
      SmallVector<Value> aVec(aStep.begin(), aStep.end());
      std::array<std::pair<Value, Value>, 2> stepFactors;
      if (gate && !op.getGateBlocks())
        stepFactors = gateFactors(kk, Value());
      for (int64_t n0 = 0; n0 < blocks; n0 += 2) {
        int64_t count = n0 + 1 < blocks ? 4 : 2;  // two n8 blocks, or the last one
        // [N, K] storage (K of Q K^T): matrices 0, 1 are the low n8 block's k halves. With .x2
        // only lanes 0-15 address (mHigh = 0 there).
        SmallVector<Value, 4> bf =
            op.getTransposeB()
                ? t.ldmatrix(op.getB(), t.add(t.add(t.mul(mHigh, 8), r8), n0 * 8),
                             t.add(t.mul(mLow, 8), kk * 16), false, count)
                : t.ldmatrix(op.getB(), t.add(t.add(t.mul(mLow, 8), r8), kk * 16),
                             t.add(t.mul(mHigh, 8), n0 * 8), true, count);
        if (gate) {  // gate_blocks: relative to the first row of this 16-column block
          auto f = op.getGateBlocks() ? gateFactors(kk, t.idx(n0 * 8 / 16 * 16)) : stepFactors;
          for (size_t part = 0; part < bf.size(); ++part)
            bf[part] = scalePair(t, bf[part], f[part % 2]);
        }
        acc[n0] = t.mma(aVec, {bf[0], bf[1]}, acc[n0]);
        if (count == 4)
          acc[n0 + 1] = t.mma(aVec, {bf[2], bf[3]}, acc[n0 + 1]);
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
