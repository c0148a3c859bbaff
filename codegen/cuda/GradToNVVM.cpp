// The backward's dQ by atomics (docs/backward.md): attn_gpu.share_tile (dS rounded into a
// padded shared tile), attn_gpu.atomic_add_product (dQ += dS^T K on mma.sync, both operands by
// ldmatrix.trans, each element one f32 reduction to global memory) and attn_gpu.load_tile (the
// f32 accumulator back into registers, for the conversion to dq's type).
#include "codegen/cuda/GPUToNVVM.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attngpu;

namespace {

struct LoadTileLowering : OpConversionPattern<LoadTileOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(LoadTileOp op, OneToNOpAdaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op);
    Value qLast = t.add(op.getQLen(), t.idx(-1));
    SmallVector<Value> values;
    for (int64_t n = 0; n < op.getType().getDimSize(1) / 8; ++n)
      for (int64_t e = 0; e < 4; ++e) {
        Value i = t.add(op.getI0(), t.accRow(e / 2));
        // Rows past q_len read the last row (in bounds) and are replaced by 0.
        Value x = memref::LoadOp::create(rw, t.loc, op.getSrc(),
                                         ValueRange{op.getB(), op.getH(), t.minIdx(i, qLast),
                                                    t.accCol(n, e)});
        values.push_back(t.select(t.lt(i, op.getQLen()), x, t.f32(0)));
      }
    rw.replaceOpWithMultiple(op, {values});
    return success();
  }
};

/// Pairs of columns (2c, 2c + 1) as one 16-bit vector<2> store each.
struct ShareTileLowering : OpConversionPattern<ShareTileOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(ShareTileOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    MemRefType tile = op.getTile().getType();
    ThreadContext t(rw, op.getLoc(), op, tile.getElementType());
    ValueRange x = adaptor.getX();
    for (size_t n = 0; n < x.size() / 4; ++n)
      for (int64_t e = 0; e < 4; e += 2)
        vector::StoreOp::create(rw, t.loc, t.pack(x[n * 4 + e], x[n * 4 + e + 1]), op.getTile(),
                                ValueRange{t.accRow(e / 2), t.accCol(n, e)});
    rw.eraseOp(op);
    return success();
  }
};

/// Warp w takes the 16 x 32 pieces w, w + warps, ...: per 16-row k step, A^T's fragment by
/// ldmatrix.trans of A [K, R] and two B fragments (16 columns each) by ldmatrix.trans of
/// B [K, C] (its flat view, addressed through the swizzle, when B is swizzled).
struct AtomicAddProductLowering : OpConversionPattern<AtomicAddProductOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(AtomicAddProductOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    MemRefType aType = op.getA().getType(), bType = op.getB().getType();
    ThreadContext t(rw, op.getLoc(), op, aType.getElementType());
    if (t.threads % 32 || t.threads == 0)
      return op.emitOpError("needs the kernel's known block size, a whole number of warps");
    Value a = adaptor.getA().front(), bTile = adaptor.getB().front();
    int64_t steps = aType.getDimSize(0) / 16, slices = sharedColumns(bType) / 32;
    int64_t pieces = sharedColumns(aType) / 16 * slices;
    auto [r8, mLow, mHigh] = t.ldmatrixLanes();
    auto loop = scf::ForOp::create(rw, t.loc, t.warp, t.idx(pieces), t.idx(t.threads / 32));
    OpBuilder::InsertionGuard guard(rw);
    rw.setInsertionPointToStart(loop.getBody());
    Value piece = loop.getInductionVar();
    Value m0 = t.mul(arith::DivUIOp::create(rw, t.loc, piece, t.idx(slices)), 16);
    Value c0 = t.mul(arith::RemUIOp::create(rw, t.loc, piece, t.idx(slices)), 32);
    SmallVector<Value> acc(16, t.f32(0));
    for (int64_t kt = 0; kt < steps; ++kt) {
      auto af = t.ldmatrix(a, t.add(t.add(t.mul(mHigh, 8), r8), kt * 16),
                           t.add(m0, t.mul(mLow, 8)), true);
      for (int64_t half = 0; half < 2; ++half) {
        Value row = t.add(t.add(t.mul(mLow, 8), r8), kt * 16);
        Value col = t.add(c0, t.add(t.mul(mHigh, 8), half * 16));
        SmallVector<Value, 4> bf = isSwizzled(bType)
                                       ? t.ldmatrixAt(bTile, swizzledIndex(t, bType, row, col), true)
                                       : t.ldmatrix(bTile, row, col, true);
        for (int64_t n = 0; n < 2; ++n) {
          int64_t at = (2 * half + n) * 4;
          auto res = t.mma(af, {bf[2 * n], bf[2 * n + 1]}, ArrayRef<Value>(acc).slice(at, 4));
          std::copy(res.begin(), res.end(), acc.begin() + at);
        }
      }
    }
    for (int64_t r = 0; r < 2; ++r) {
      Value i = t.add(t.add(op.getI0(), m0), t.add(t.g, 8 * r));
      auto inRange = scf::IfOp::create(rw, t.loc, t.lt(i, op.getQLen()), /*withElse=*/false);
      OpBuilder::InsertionGuard inner(rw);
      rw.setInsertionPoint(inRange.thenBlock()->getTerminator());
      for (int64_t n = 0; n < 4; ++n)
        for (int64_t e = 2 * r; e < 2 * r + 2; ++e)
          memref::AtomicRMWOp::create(
              rw, t.loc, arith::AtomicRMWKind::addf, acc[n * 4 + e], op.getOut(),
              ValueRange{op.getBatch(), op.getH(), i, t.add(c0, t.accCol(n, e))});
    }
    rw.eraseOp(op);
    return success();
  }
};

} // namespace

void mlir::attn::populateGradToNVVMPatterns(FragmentTypeConverter &converter,
                                            RewritePatternSet &patterns) {
  patterns.add<LoadTileLowering, ShareTileLowering, AtomicAddProductLowering>(
      converter, patterns.getContext());
}
