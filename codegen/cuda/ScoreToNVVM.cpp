// attn_gpu.score -> the mask and score regions applied to each accumulator element, with a
// branch without range checks for interior key tiles (and without the mask for tiles an exact
// affine mask fully allows); attn_gpu.map_elements -> a region of the positions per element.
#include "codegen/cuda/GPUToNVVM.h"
#include "dialect/transforms/Patterns.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attngpu;

namespace {

class ScoreEmitter {
public:
  ScoreEmitter(ThreadContext &t, ScoreOp op) : t(t), op(op) {
    for (int r = 0; r < 2; ++r) {
      std::tie(rowHead[r], rowQuery[r]) = t.threadRow(op.getH(), op.getI0(), op.getPack(), r);
      // Rows past the end are computed as the last row (their param reads stay in bounds) and
      // never stored.
      rowQuerySafe[r] = t.minIdx(rowQuery[r], t.add(op.getQLen(), t.idx(-1)));
    }
  }

  SmallVector<Value> emit(ValueRange s) {
    int64_t blockK = cast<RankedTensorType>(op.getS().getType()).getDimSize(1);
    Value j0 = op.getJ0();
    Value interior = arith::CmpIOp::create(t.b, t.loc, arith::CmpIPredicate::ule,
                                           t.add(j0, blockK), op.getKvLen());
    Value allowed = tileFullyAllowed(j0, blockK);
    if (allowed)
      interior = arith::AndIOp::create(t.b, t.loc, interior, allowed);
    SmallVector<Type> types(s.size(), t.b.getF32Type());
    auto branch = scf::IfOp::create(t.b, t.loc, types, interior, /*withElseRegion=*/true);
    for (bool fast : {true, false}) {
      OpBuilder::InsertionGuard guard(t.b);
      t.b.setInsertionPointToStart(fast ? branch.thenBlock() : branch.elseBlock());
      SmallVector<Value> scores;
      for (size_t n = 0; n < s.size() / 4; ++n)
        for (int64_t e = 0; e < 4; ++e) {
          Value j = t.add(t.add(j0, t.mul(t.c, 2)), int64_t(n * 8 + e % 2));
          scores.push_back(element(s[n * 4 + e], e / 2, j, fast, fast && allowed));
        }
      scf::YieldOp::create(t.b, t.loc, scores);
    }
    return SmallVector<Value>(branch.getResults());
  }

private:
  ThreadContext &t;
  ScoreOp op;
  Value rowHead[2], rowQuery[2], rowQuerySafe[2];

  /// Mask and score of one element (thread row r, key j); masked keys and keys past the end
  /// get the fill value. In an interior tile the range checks and clamps are left out.
  Value element(Value dot, int r, Value j, bool interior, bool maskHolds) {
    Value fill = t.f32(op.getFill().convertToDouble());
    Value allowed, jSafe = j;
    if (!interior) {
      allowed = t.lt(j, op.getKvLen());
      jSafe = t.select(allowed, j, t.idx(0));
    }
    if (!op.getMask().empty() && !maskHolds) {
      Value mask = t.inlineBody(op.getMask(), {op.getB(), rowHead[r], rowQuerySafe[r], jSafe});
      allowed = allowed ? arith::AndIOp::create(t.b, t.loc, allowed, mask).getResult() : mask;
    }
    Value s = t.inlineBody(op.getScore(), {op.getB(), rowHead[r], rowQuerySafe[r], jSafe, dot});
    if (op.getCumQ()) {  // a per-step decay: exp(cum(i) - cum(j)) = gamma(j + 1) ... gamma(i)
      Value row = t.add(t.add(t.mul(t.warp, 16), t.g), 8 * r);
      Value col = arith::SubIOp::create(t.b, t.loc, j, op.getJ0());
      Value gi = memref::LoadOp::create(t.b, t.loc, op.getCumQ(), ValueRange{row});
      Value gj = memref::LoadOp::create(t.b, t.loc, op.getCumK(), ValueRange{col});
      s = t.fmul(s, math::ExpOp::create(t.b, t.loc, t.fsub(gi, gj)));
    }
    if (Value factors = op.getKeyScale()) {
      Value col = arith::SubIOp::create(t.b, t.loc, j, op.getJ0());
      s = t.fmul(s, memref::LoadOp::create(t.b, t.loc, factors, ValueRange{col}));
    }
    return allowed ? t.select(allowed, s, fill) : s;
  }

  /// For a mask that is exactly a conjunction of key bounds (attn-mask-bounds' analysis),
  /// whether every row of the block's query tile allows every key in [j0, j0 + BK).
  Value tileFullyAllowed(Value j0, int64_t blockK) {
    if (op.getMask().empty())
      return {};
    bool exact = false;
    SmallVector<KeyBound> bounds = analyzeMaskBounds(op.getMask(), exact);
    if (!exact || bounds.empty())
      return {};
    int64_t blockQ = cast<RankedTensorType>(op.getS().getType()).getDimSize(0);
    int64_t pack = op.getPack();
    Value iFirst = op.getI0(), iLast = t.add(op.getI0(), blockQ - 1);
    Value jLast = t.add(j0, blockK - 1);
    if (pack > 1) {
      iFirst = arith::DivUIOp::create(t.b, t.loc, iFirst, t.idx(pack));
      iLast = arith::DivUIOp::create(t.b, t.loc, iLast, t.idx(pack));
    }
    iLast = t.minIdx(iLast, t.add(op.getQLen(), t.idx(-1)));  // rows past the end: not stored
    Value all;
    for (const KeyBound &bd : bounds) {
      // Lower bounds must hold for the first key against the row that raises them most; upper
      // bounds for the last key against the row that lowers them most.
      Value row = (bd.a >= 0) == bd.lower ? iLast : iFirst;
      Value edge = keyBoundEdge(t.b, t.loc, bd, row, op.getMask(), op.getB(), IRMapping());
      Value holds =
          bd.lower ? arith::CmpIOp::create(t.b, t.loc, arith::CmpIPredicate::sge, j0, edge)
                   : arith::CmpIOp::create(t.b, t.loc, arith::CmpIPredicate::sle, jLast, edge);
      all = all ? arith::AndIOp::create(t.b, t.loc, all, holds).getResult() : holds;
    }
    return all;
  }
};

struct ScoreLowering : OpConversionPattern<ScoreOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(ScoreOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op);
    ScoreEmitter emitter(t, op);
    rw.replaceOpWithMultiple(op, {emitter.emit(adaptor.getS())});
    return success();
  }
};

/// f(b, h, i, j, x) for each element, the thread's rows' queries clamped below q_len.
struct MapElementsLowering : OpConversionPattern<MapElementsOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(MapElementsOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op);
    ValueRange x = adaptor.getX();
    Value last = t.add(op.getQLen(), t.idx(-1));
    Value query[2];
    for (int r = 0; r < 2; ++r)
      query[r] = t.minIdx(t.add(op.getI0(), t.add(t.add(t.mul(t.warp, 16), t.g), 8 * r)), last);
    SmallVector<Value> values;
    for (size_t n = 0; n < x.size() / 4; ++n)
      for (int64_t e = 0; e < 4; ++e) {
        Value j = t.add(t.add(op.getJ0(), t.mul(t.c, 2)), int64_t(n * 8 + e % 2));
        values.push_back(
            t.inlineBody(op.getBody(), {op.getB(), op.getH(), query[e / 2], j, x[n * 4 + e]}));
      }
    rw.replaceOpWithMultiple(op, {values});
    return success();
  }
};

} // namespace

void mlir::attn::populateScoreToNVVMPatterns(FragmentTypeConverter &converter,
                                             RewritePatternSet &patterns) {
  patterns.add<ScoreLowering, MapElementsLowering>(converter, patterns.getContext());
}
