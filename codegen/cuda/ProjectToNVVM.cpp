// Performer's random-feature projection: attn_gpu.copy_matrix (the projection w into a 16-bit
// shared tile, once) and attn_gpu.project_tile (feature[r, m] = f(x_r . w_m, x_r . x_r) for
// each warp's 16 rows, x W^T on tensor cores as Q K^T is).
#include "codegen/cuda/GPUToNVVM.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attngpu;

namespace {

struct CopyMatrixLowering : OpConversionPattern<CopyMatrixOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(CopyMatrixOp op, OpAdaptor,
                                ConversionPatternRewriter &rw) const override {
    MemRefType source = op.getSource().getType();
    Type elt = op.getTile().getType().getElementType();
    ThreadContext t(rw, op.getLoc(), op, elt);
    int64_t rows = source.getDimSize(0), cols = source.getDimSize(1);
    t.forEachChunk(rows * cols, t.tid, t.threads, [&](Value id) {
      Value m = arith::DivUIOp::create(rw, t.loc, id, t.idx(cols));
      Value d = arith::RemUIOp::create(rw, t.loc, id, t.idx(cols));
      Value x = memref::LoadOp::create(rw, t.loc, op.getSource(), ValueRange{m, d});
      if (x.getType() != elt)
        x = x.getType().getIntOrFloatBitWidth() > elt.getIntOrFloatBitWidth()
                ? arith::TruncFOp::create(rw, t.loc, elt, x).getResult()
                : arith::ExtFOp::create(rw, t.loc, elt, x).getResult();
      memref::StoreOp::create(rw, t.loc, x, op.getTile(), ValueRange{m, d});
    });
    rw.eraseOp(op);
    return success();
  }
};

struct ProjectTileLowering : OpConversionPattern<ProjectTileOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(ProjectTileOp op, OpAdaptor,
                                ConversionPatternRewriter &rw) const override {
    MemRefType raw = op.getRaw().getType();
    ThreadContext t(rw, op.getLoc(), op, raw.getElementType());
    int64_t rawDim = raw.getDimSize(1) - kSharedPad, features = op.getW().getType().getDimSize(0);
    auto [r8, mLow, mHigh] = t.ldmatrixLanes();
    Value rowBase = t.mul(t.warp, 16);
    Value zero = t.f32(0);
    SmallVector<SmallVector<Value, 4>> a;
    Value sq[2] = {zero, zero};  // rows g and g + 8: A parts 0, 2 and 1, 3
    for (int64_t kk = 0; kk < rawDim / 16; ++kk) {
      a.push_back(t.ldmatrix(op.getRaw(), t.add(t.add(rowBase, t.mul(mLow, 8)), r8),
                             t.add(t.mul(mHigh, 8), kk * 16), false));
      for (int64_t part = 0; part < 4; ++part) {
        Value wide = arith::ExtFOp::create(rw, t.loc, VectorType::get({2}, rw.getF32Type()),
                                           a.back()[part]);
        Value x0 = vector::ExtractOp::create(rw, t.loc, wide, 0);
        Value x1 = vector::ExtractOp::create(rw, t.loc, wide, 1);
        sq[part % 2] = t.fadd(sq[part % 2], t.fadd(t.fmul(x0, x0), t.fmul(x1, x1)));
      }
    }
    for (Value &s : sq)
      s = t.quadReduce(s, /*isMax=*/false);
    // A loop over the 16-feature blocks (not unrolled: the map is inlined 8 times per block,
    // and an unrolled m / 16 copies of it cost compile time for nothing).
    auto loop = scf::ForOp::create(rw, t.loc, t.idx(0), t.idx(features), t.idx(16));
    {
      OpBuilder::InsertionGuard guard(rw);
      rw.setInsertionPointToStart(loop.getBody());
      Value f0 = loop.getInductionVar();  // the block's first feature
      SmallVector<Value, 4> acc[2] = {{zero, zero, zero, zero}, {zero, zero, zero, zero}};
      for (int64_t kk = 0; kk < rawDim / 16; ++kk) {
        auto wf = t.ldmatrix(op.getW(), t.add(t.add(t.mul(mHigh, 8), r8), f0),
                             t.add(t.mul(mLow, 8), kk * 16), false);
        acc[0] = t.mma(a[kk], {wf[0], wf[1]}, acc[0]);
        acc[1] = t.mma(a[kk], {wf[2], wf[3]}, acc[1]);
      }
      for (int64_t half = 0; half < 2; ++half)
        for (int64_t r = 0; r < 2; ++r) {  // parts 2r, 2r + 1: row g + 8r, columns 2c, 2c + 1
          Value x0 = t.inlineBody(op.getMap(), {acc[half][2 * r], sq[r]});
          Value x1 = t.inlineBody(op.getMap(), {acc[half][2 * r + 1], sq[r]});
          Value col = t.add(t.add(t.mul(t.c, 2), f0), half * 8);
          vector::StoreOp::create(rw, t.loc, t.pack(x0, x1), op.getFeature(),
                                  ValueRange{t.add(t.add(rowBase, t.g), 8 * r), col});
        }
    }
    rw.eraseOp(op);
    return success();
  }
};

} // namespace

void mlir::attn::populateProjectToNVVMPatterns(FragmentTypeConverter &converter,
                                               RewritePatternSet &patterns) {
  patterns.add<CopyMatrixLowering, ProjectTileLowering>(converter, patterns.getContext());
}
