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
    auto type = cast<RankedTensorType>(op.getS().getType());
    rows = type.getDimSize(0), cols = type.getDimSize(1);
    for (int r = 0; r < 2; ++r) {
      if (op.getTransposed()) {  // key-major: the thread's rows are keys
        rowKey[r] = t.add(op.getJ0(), t.accRow(r));
        continue;
      }
      std::tie(rowHead[r], rowQuery[r]) = t.threadRow(op.getH(), op.getI0(), op.getPack(), r);
      // Rows past the end are computed as the last row (their param reads stay in bounds) and
      // never stored.
      rowQuerySafe[r] = t.minIdx(rowQuery[r], t.add(op.getQLen(), t.idx(-1)));
    }
  }

  SmallVector<Value> emit(ValueRange s) {
    bool transposed = op.getTransposed();
    Value j0 = op.getJ0();
    int64_t keys = transposed ? rows : cols;
    Value interior = arith::CmpIOp::create(t.b, t.loc, arith::CmpIPredicate::ule,
                                           t.add(j0, keys), op.getKvLen());
    if (transposed)
      interior = arith::AndIOp::create(
          t.b, t.loc, interior,
          arith::CmpIOp::create(t.b, t.loc, arith::CmpIPredicate::ule, t.add(op.getI0(), cols),
                                op.getQLen()));
    Value allowed = tileFullyAllowed();
    if (Value full = op.getFull())  // a block plan's verdict
      allowed = allowed ? arith::OrIOp::create(t.b, t.loc, allowed, full).getResult() : full;
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
          // The column's position: a key, or in a key-major tile a query.
          Value base = transposed ? op.getI0() : j0;
          Value pos = t.add(t.add(base, t.mul(t.c, 2)), int64_t(n * 8 + e % 2));
          Value dot = s[n * 4 + e];
          scores.push_back(transposed ? element(dot, op.getH(), pos, rowKey[e / 2], e / 2, fast,
                                                fast && allowed)
                                      : element(dot, rowHead[e / 2], rowQuery[e / 2], pos, e / 2,
                                                fast, fast && allowed, rowQuerySafe[e / 2]));
        }
      scf::YieldOp::create(t.b, t.loc, scores);
    }
    return SmallVector<Value>(branch.getResults());
  }

private:
  ThreadContext &t;
  ScoreOp op;
  int64_t rows = 0, cols = 0;
  Value rowHead[2], rowQuery[2], rowQuerySafe[2], rowKey[2];

  /// Mask and score of one element (query i of head h, key j; the thread's tile row r of
  /// two); masked keys and keys past the end (key-major tiles:
  /// queries past the end too) get the fill value. In an interior tile the range checks and
  /// clamps are left out. `iSafe`: i clamped below q_len, where the caller has it.
  Value element(Value dot, Value h, Value i, Value j, int r, bool interior, bool maskHolds,
                Value iSafe = {}) {
    Value fill = t.f32(op.getFill().convertToDouble());
    Value allowed, jSafe = j;
    if (!iSafe)
      iSafe = i;
    if (!interior) {
      allowed = t.lt(j, op.getKvLen());
      jSafe = t.select(allowed, j, t.idx(0));
      if (op.getTransposed()) {
        Value inQ = t.lt(i, op.getQLen());
        iSafe = t.select(inQ, i, t.idx(0));
        allowed = arith::AndIOp::create(t.b, t.loc, allowed, inQ);
      }
    }
    if (!op.getMask().empty() && !maskHolds) {
      Value mask = t.inlineBody(op.getMask(), {op.getB(), h, iSafe, jSafe});
      allowed = allowed ? arith::AndIOp::create(t.b, t.loc, allowed, mask).getResult() : mask;
    }
    SmallVector<Value> args = {op.getB(), h, iSafe, jSafe, dot};
    if (op.getQNorms()) {  // the row norms of the thread's row and of key j (key-major:
                           // of query i and the thread's row)
      bool keyMajor = op.getTransposed();
      Value col = arith::SubIOp::create(t.b, t.loc, keyMajor ? i : j,
                                        keyMajor ? op.getI0() : op.getJ0());
      args.push_back(memref::LoadOp::create(t.b, t.loc, op.getQNorms(),
                                            ValueRange{keyMajor ? col : t.accRow(r)}));
      args.push_back(memref::LoadOp::create(t.b, t.loc, op.getKNorms(),
                                            ValueRange{keyMajor ? t.accRow(r) : col}));
    }
    Value s = t.inlineBody(op.getScore(), args);
    if (op.getCumQ()) {  // a per-step decay: exp(cum(i) - cum(j)) = gamma(j + 1) ... gamma(i)
      // the thread's row and the column's position (key-major: key row r, query column)
      bool keyMajor = op.getTransposed();
      Value row = t.accRow(r);
      Value col = arith::SubIOp::create(t.b, t.loc, keyMajor ? i : j,
                                        keyMajor ? op.getI0() : op.getJ0());
      Value gi = memref::LoadOp::create(t.b, t.loc, op.getCumQ(), ValueRange{keyMajor ? col : row});
      Value gj = memref::LoadOp::create(t.b, t.loc, op.getCumK(), ValueRange{keyMajor ? row : col});
      Value logDecay = t.fsub(gi, gj);  // a forget-gate softmax adds it to the score
      s = op.getLogDecay() ? t.fadd(s, logDecay)
                           : t.fmul(s, math::ExpOp::create(t.b, t.loc, logDecay));
    }
    if (Value factors = op.getKeyScale()) {
      Value col = arith::SubIOp::create(t.b, t.loc, j, op.getJ0());
      s = t.fmul(s, memref::LoadOp::create(t.b, t.loc, factors, ValueRange{col}));
    }
    return allowed ? t.select(allowed, s, fill) : s;
  }

  /// For a mask that is exactly a conjunction of key bounds (attn-mask-bounds' analysis),
  /// whether every query of the tile allows every key of it.
  Value tileFullyAllowed() {
    if (op.getMask().empty())
      return {};
    bool exact = false;
    SmallVector<KeyBound> bounds = analyzeMaskBounds(op.getMask(), exact);
    if (!exact || bounds.empty())
      return {};
    bool transposed = op.getTransposed();
    int64_t queries = transposed ? cols : rows, keys = transposed ? rows : cols;
    int64_t pack = op.getPack();
    Value iFirst = op.getI0(), iLast = t.add(op.getI0(), queries - 1);
    Value j0 = op.getJ0(), jLast = t.add(j0, keys - 1);
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

/// f(b, h, i, j, x, y...) for each element, the thread's rows' queries clamped below q_len.
struct MapElementsLowering : OpConversionPattern<MapElementsOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(MapElementsOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op);
    ValueRange x = adaptor.getX();
    auto more = adaptor.getMore();  // several scores: their rows' elements after x's
    Value last = t.add(op.getQLen(), t.idx(-1));
    Value query[2], head[2];
    for (int r = 0; r < 2; ++r) {
      auto [h, i] = t.threadRow(op.getH(), op.getI0(), op.getPack(), r);
      head[r] = h;
      query[r] = t.minIdx(i, last);
    }
    SmallVector<Value> values;
    for (size_t n = 0; n < x.size() / 4; ++n)
      for (int64_t e = 0; e < 4; ++e) {
        Value j = t.add(t.add(op.getJ0(), t.mul(t.c, 2)), int64_t(n * 8 + e % 2));
        SmallVector<Value> args = {op.getB(), head[e / 2], query[e / 2], j, x[n * 4 + e]};
        for (ValueRange y : more)
          args.push_back(y[n * 4 + e]);
        values.push_back(t.inlineBody(op.getBody(), args));
      }
    rw.replaceOpWithMultiple(op, {values});
    return success();
  }
};

/// Whether each accumulation of a score_grad region has indices that read neither the
/// position i or j nor the element's values (dot, ds): then one sum per warp and tile.
SmallVector<bool> uniformAccumulations(Block &body) {
  DenseSet<Value> varying;
  for (unsigned a = 2; a < body.getNumArguments(); ++a)
    varying.insert(body.getArgument(a));
  auto reads = [&](Operation *op) {
    bool any = false;
    op->walk([&](Operation *inner) {
      for (Value operand : inner->getOperands())
        any |= varying.contains(operand);
    });
    return any;
  };
  SmallVector<bool> uniform;
  for (Operation &op : body.without_terminator()) {
    if (auto acc = dyn_cast<attngpu::AccumulateOp>(op)) {
      uniform.push_back(llvm::none_of(acc.getIndices(),
                                      [&](Value x) { return varying.contains(x); }));
      continue;
    }
    if (reads(&op))
      varying.insert(op.getResults().begin(), op.getResults().end());
  }
  return uniform;
}

/// score_grad(b, h, i, j, dot, [nq, nk | y_1, ...,] ds) on each element, 0 where ds is 0. Accumulations add their
/// value where ds is not 0: by one atomic per element, or (indices fixed for the tile) summed
/// over the thread's elements and the warp, then one atomic by lane 0.
struct ScoreGradLowering : OpConversionPattern<ScoreGradOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(ScoreGradOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op);
    ValueRange dot = adaptor.getDot(), ds = adaptor.getDs();
    Block &body = op.getScoreGrad().front();
    SmallVector<bool> uniform = uniformAccumulations(body);
    bool transposed = op.getTransposed();
    Value qLast = t.add(op.getQLen(), t.idx(-1)), kvLast = t.add(op.getKvLen(), t.idx(-1));
    Value rowPos[2];
    for (int r = 0; r < 2; ++r)
      rowPos[r] = t.add(transposed ? op.getJ0() : op.getI0(), t.accRow(r));
    Value zero = t.f32(0);
    SmallVector<Value> partial(uniform.size(), zero);
    SmallVector<SmallVector<Value>> partialAt(uniform.size());
    SmallVector<bool> summed(uniform.size(), false);  // a rank-0 gradient has no indices
    // Per result (the dot's gradient; with row norms nq's and nk's too) the thread's values.
    SmallVector<SmallVector<Value>> results(op.getResults().size());
    for (size_t n = 0; n < dot.size() / 4; ++n)
      for (int64_t e = 0; e < 4; ++e) {
        Value base = transposed ? op.getI0() : op.getJ0();
        Value pos = t.add(t.add(base, t.mul(t.c, 2)), int64_t(n * 8 + e % 2));
        Value i = transposed ? pos : rowPos[e / 2], j = transposed ? rowPos[e / 2] : pos;
        Value x = dot[n * 4 + e], g = ds[n * 4 + e];
        Value live = arith::CmpFOp::create(rw, t.loc, arith::CmpFPredicate::UNE, g, zero);
        IRMapping map;
        SmallVector<Value> args = {op.getB(), op.getH(), t.minIdx(i, qLast), t.minIdx(j, kvLast),
                                   x};
        for (ValueRange y : adaptor.getMore())  // a function of several tiles: y_1, ...
          args.push_back(y[n * 4 + e]);
        if (op.getQNorms()) {  // as attn_gpu.score reads them: nq of query i, nk of key j
          Value qAt = transposed ? t.add(t.mul(t.c, 2), int64_t(n * 8 + e % 2)) : t.accRow(e / 2);
          Value kAt = transposed ? t.accRow(e / 2) : t.add(t.mul(t.c, 2), int64_t(n * 8 + e % 2));
          args.push_back(memref::LoadOp::create(rw, t.loc, op.getQNorms(), ValueRange{qAt}));
          args.push_back(memref::LoadOp::create(rw, t.loc, op.getKNorms(), ValueRange{kAt}));
        }
        args.push_back(g);
        map.map(body.getArguments(), args);
        size_t k = 0;
        for (Operation &inner : body.without_terminator()) {
          auto acc = dyn_cast<attngpu::AccumulateOp>(inner);
          if (!acc) {
            rw.clone(inner, map);
            continue;
          }
          Value value = t.select(live, map.lookupOrDefault(acc.getValue()), zero);
          SmallVector<Value> at;
          for (Value index : acc.getIndices())
            at.push_back(map.lookupOrDefault(index));
          if (uniform[k]) {
            partial[k] = t.fadd(partial[k], value);
            partialAt[k] = at;
            summed[k] = true;
          } else {
            auto guard = scf::IfOp::create(rw, t.loc, live, /*withElseRegion=*/false);
            OpBuilder::InsertionGuard ig(rw);
            rw.setInsertionPointToStart(guard.thenBlock());
            memref::AtomicRMWOp::create(rw, t.loc, arith::AtomicRMWKind::addf, value,
                                        acc.getGrad(), at);
          }
          ++k;
        }
        for (auto [m, y] : llvm::enumerate(body.getTerminator()->getOperands()))
          results[m].push_back(t.select(live, map.lookupOrDefault(y), zero));
      }
    Value lane0 = arith::CmpIOp::create(rw, t.loc, arith::CmpIPredicate::eq, t.lane, t.idx(0));
    size_t k = 0;
    for (Operation &inner : body.without_terminator()) {
      auto acc = dyn_cast<attngpu::AccumulateOp>(inner);
      if (!acc)
        continue;
      if (uniform[k] && summed[k]) {
        Value sum = partial[k];
        for (int32_t offset : {16, 8, 4, 2, 1})
          sum = t.fadd(sum, t.shflXor(sum, offset));
        auto guard = scf::IfOp::create(rw, t.loc, lane0, /*withElseRegion=*/false);
        OpBuilder::InsertionGuard ig(rw);
        rw.setInsertionPointToStart(guard.thenBlock());
        memref::AtomicRMWOp::create(rw, t.loc, arith::AtomicRMWKind::addf, sum, acc.getGrad(),
                                    partialAt[k]);
      }
      ++k;
    }
    rw.replaceOpWithMultiple(op, ArrayRef<SmallVector<Value>>(results));
    return success();
  }
};

} // namespace

void mlir::attn::populateScoreToNVVMPatterns(FragmentTypeConverter &converter,
                                             RewritePatternSet &patterns) {
  patterns.add<ScoreLowering, MapElementsLowering, ScoreGradLowering>(converter,
                                                                  patterns.getContext());
}
