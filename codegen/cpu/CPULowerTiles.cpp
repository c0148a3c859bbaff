// attn-cpu-lower-tiles: the tiled attn level -> scalar scf loops over memrefs, for the host.
// Plain loops keep the host code small and obviously faithful to each tile op's definition.
#include "codegen/cpu/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNCPULOWERTILES
#include "codegen/cpu/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

/// Emits scalar loop code at a builder's insertion point. Values are f32 unless said otherwise.
struct Emit {
  OpBuilder &b;
  Location loc;

  Value index(int64_t c) const { return arith::ConstantIndexOp::create(b, loc, c); }
  Value f32(float v) const { return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v)); }
  Value dim(Value mem, int64_t d) const { return memref::DimOp::create(b, loc, mem, d); }
  Value extent(Value mem, int64_t d) const {
    int64_t s = cast<MemRefType>(mem.getType()).getDimSize(d);
    return ShapedType::isDynamic(s) ? dim(mem, d) : index(s);
  }
  Value add(Value x, Value y) const { return arith::AddIOp::create(b, loc, x, y); }
  Value below(Value x, Value bound) const {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, x, bound);
  }
  Value fadd(Value x, Value y) const { return arith::AddFOp::create(b, loc, x, y); }
  Value fmul(Value x, Value y) const { return arith::MulFOp::create(b, loc, x, y); }
  Value fsub(Value x, Value y) const { return arith::SubFOp::create(b, loc, x, y); }
  Value fmax(Value x, Value y) const { return arith::MaximumFOp::create(b, loc, x, y); }
  Value exp(Value x) const { return math::ExpOp::create(b, loc, x); }
  Value feq(Value x, Value y) const {
    return arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, x, y);
  }
  Value fgt(Value x, Value y) const {
    return arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, x, y);
  }
  Value select(Value c, Value x, Value y) const { return arith::SelectOp::create(b, loc, c, x, y); }

  /// Loads an element as f32 (f16/bf16 are extended).
  Value load(Value mem, ValueRange ix) const {
    Value v = memref::LoadOp::create(b, loc, mem, ix);
    return v.getType().isF32() ? v : arith::ExtFOp::create(b, loc, b.getF32Type(), v).getResult();
  }
  /// Stores an f32, rounded to the buffer's element type.
  void store(Value v, Value mem, ValueRange ix) const {
    Type et = cast<MemRefType>(mem.getType()).getElementType();
    if (et != v.getType())
      v = arith::TruncFOp::create(b, loc, et, v);
    memref::StoreOp::create(b, loc, v, mem, ix);
  }

  void loop(Value ub, function_ref<void(Emit &, Value)> body) const {
    scf::ForOp::create(b, loc, index(0), ub, index(1), {},
                       [&](OpBuilder &nb, Location l, Value iv, ValueRange) {
                         Emit e{nb, l};
                         body(e, iv);
                         scf::YieldOp::create(nb, l);
                       });
  }
  Value reduce(Value ub, Value init, function_ref<Value(Emit &, Value, Value)> body) const {
    auto forOp = scf::ForOp::create(b, loc, index(0), ub, index(1), init,
                                    [&](OpBuilder &nb, Location l, Value iv, ValueRange acc) {
                                      Emit e{nb, l};
                                      scf::YieldOp::create(nb, l, body(e, iv, acc[0]));
                                    });
    return forOp.getResult(0);
  }
  void when(Value cond, function_ref<void(Emit &)> body) const {
    scf::IfOp::create(b, loc, cond, [&](OpBuilder &nb, Location l) {
      Emit e{nb, l};
      body(e);
      scf::YieldOp::create(nb, l);
    });
  }
  Value ifElse(Value cond, function_ref<Value(Emit &)> thenFn,
               function_ref<Value(Emit &)> elseFn) const {
    auto branch = [](function_ref<Value(Emit &)> fn) {
      return [fn](OpBuilder &nb, Location l) {
        Emit e{nb, l};
        scf::YieldOp::create(nb, l, fn(e));
      };
    };
    return scf::IfOp::create(b, loc, cond, branch(thenFn), branch(elseFn)).getResult(0);
  }
  /// Clones a score/mask region's body here with its block arguments bound to `args`.
  Value inlineRegion(Region &region, ValueRange args) const {
    IRMapping map;
    Block &block = region.front();
    map.map(block.getArguments(), args);
    for (Operation &op : block.without_terminator())
      b.clone(op, map);
    return map.lookupOrDefault(cast<YieldOp>(block.getTerminator()).getValues()[0]);
  }
  /// A row-statistic base: m, or 0 where m is -inf (a row with no allowed key yet).
  Value safeBase(Value m) const {
    return select(feq(m, f32(-std::numeric_limits<float>::infinity())), f32(0), m);
  }
};

int64_t rows(Value tile) { return cast<MemRefType>(tile.getType()).getDimSize(0); }

void lower(Emit &e, TileFillOp op) {
  Value value = e.f32(op.getValue().convertToFloat());
  auto type = cast<MemRefType>(op.getTile().getType());
  e.loop(e.index(rows(op.getTile())), [&](Emit &e, Value r) {
    if (type.getRank() == 1)
      return e.store(value, op.getTile(), r);
    e.loop(e.extent(op.getTile(), 1), [&](Emit &e, Value c) { e.store(value, op.getTile(), {r, c}); });
  });
}

void lower(Emit &e, TileScoresOp op) {
  Value q = op.getQ(), k = op.getK(), s = op.getS();
  Value b = op.getB(), h = op.getH(), hk = op.getHk();
  Value qLen = e.dim(q, 2), kvLen = e.dim(k, 2), headDim = e.extent(q, 3);
  Value fill = e.f32(op.getFill().convertToFloat());
  e.loop(e.index(rows(s)), [&](Emit &e, Value r) {
    Value i = e.add(op.getI0(), r);
    Value rowIn = e.below(i, qLen);
    e.loop(e.extent(s, 1), [&](Emit &e, Value c) {
      Value j = e.add(op.getJ0(), c);
      auto score = [&](Emit &e) {
        Value dot = e.reduce(headDim, e.f32(0), [&](Emit &e, Value d, Value acc) {
          return e.fadd(acc, e.fmul(e.load(q, {b, h, i, d}), e.load(k, {b, hk, j, d})));
        });
        return e.inlineRegion(op.getScore(), {b, h, i, j, dot});
      };
      auto masked = [&](Emit &) { return fill; };
      // The mask and score run only in range, so their param loads stay in bounds.
      Value inRange = arith::AndIOp::create(e.b, e.loc, rowIn, e.below(j, kvLen));
      Value value = e.ifElse(inRange, [&](Emit &e) {
        if (op.getMask().empty())
          return score(e);
        return e.ifElse(e.inlineRegion(op.getMask(), {b, h, i, j}), score, masked);
      }, masked);
      e.store(value, s, {r, c});
    });
  });
}

void lower(Emit &e, TileRowMaxOp op) {
  Value s = op.getS(), m = op.getM();
  e.loop(e.index(rows(s)), [&](Emit &e, Value r) {
    Value mx = e.reduce(e.extent(s, 1), e.load(m, r), [&](Emit &e, Value c, Value acc) {
      return e.fmax(acc, e.load(s, {r, c}));
    });
    e.store(mx, m, r);
  });
}

/// s[r, :] = exp(s[r, :] - base) in place; returns the row sum.
Value expRow(Emit &e, Value s, Value r, Value base) {
  return e.reduce(e.extent(s, 1), e.f32(0), [&](Emit &e, Value c, Value acc) {
    Value p = e.exp(e.fsub(e.load(s, {r, c}), base));
    e.store(p, s, {r, c});
    return e.fadd(acc, p);
  });
}

void lower(Emit &e, TileExpSumOp op) {
  Value s = op.getS(), m = op.getM(), l = op.getL();
  e.loop(e.index(rows(s)), [&](Emit &e, Value r) {
    Value sum = expRow(e, s, r, e.safeBase(e.load(m, r)));
    e.store(e.fadd(e.load(l, r), sum), l, r);
  });
}

void lower(Emit &e, TileOnlineUpdateOp op) {
  Value s = op.getS(), m = op.getM(), l = op.getL(), acc = op.getAcc();
  e.loop(e.index(rows(s)), [&](Emit &e, Value r) {
    Value mOld = e.load(m, r);
    Value mNew = e.reduce(e.extent(s, 1), mOld, [&](Emit &e, Value c, Value mx) {
      return e.fmax(mx, e.load(s, {r, c}));
    });
    Value base = e.safeBase(mNew);
    Value alpha = e.exp(e.fsub(mOld, base));
    Value sum = expRow(e, s, r, base);
    e.store(e.fadd(e.fmul(e.load(l, r), alpha), sum), l, r);
    e.loop(e.extent(acc, 1), [&](Emit &e, Value c) {
      e.store(e.fmul(e.load(acc, {r, c}), alpha), acc, {r, c});
    });
    e.store(mNew, m, r);
  });
}

void lower(Emit &e, TileMatmulAccOp op) {
  Value p = op.getP(), v = op.getV(), acc = op.getAcc();
  Value kvLen = e.dim(v, 2);
  e.loop(e.index(rows(p)), [&](Emit &e, Value r) {
    e.loop(e.extent(p, 1), [&](Emit &e, Value c) {
      Value j = e.add(op.getJ0(), c);
      e.when(e.below(j, kvLen), [&](Emit &e) {
        Value pv = e.load(p, {r, c});
        e.loop(e.extent(acc, 1), [&](Emit &e, Value ch) {
          Value term = e.fmul(pv, e.load(v, {op.getB(), op.getHk(), j, ch}));
          e.store(e.fadd(e.load(acc, {r, ch}), term), acc, {r, ch});
        });
      });
    });
  });
}

void lower(Emit &e, TileStoreOp op) {
  Value acc = op.getAcc(), out = op.getOut();
  Value qLen = e.dim(out, 2);
  bool softmax = op.getNorm() == NormKind::softmax;
  e.loop(e.index(rows(acc)), [&](Emit &e, Value r) {
    Value i = e.add(op.getI0(), r);
    e.when(e.below(i, qLen), [&](Emit &e) {
      Value scale = e.f32(1);
      if (softmax) {
        Value l = e.load(op.getL(), r);
        Value any = e.fgt(l, e.f32(0));
        scale = e.select(any, arith::DivFOp::create(e.b, e.loc, e.f32(1), l), e.f32(0));
        if (op.getLse()) {
          Value lse = e.fadd(e.load(op.getM(), r), math::LogOp::create(e.b, e.loc, l));
          Value none = e.f32(-std::numeric_limits<float>::infinity());
          e.store(e.select(any, lse, none), op.getLse(), {op.getB(), op.getH(), i});
        }
      }
      e.loop(e.extent(acc, 1), [&](Emit &e, Value c) {
        e.store(e.fmul(e.load(acc, {r, c}), scale), out, {op.getB(), op.getH(), i, c});
      });
    });
  });
}

template <typename OpTy>
struct LowerTileOp : OpRewritePattern<OpTy> {
  using OpRewritePattern<OpTy>::OpRewritePattern;
  LogicalResult matchAndRewrite(OpTy op, PatternRewriter &rw) const override {
    rw.setInsertionPoint(op);
    Emit e{rw, op.getLoc()};
    lower(e, op);
    rw.eraseOp(op);
    return success();
  }
};

struct AttnCPULowerTilesPass : mlir::attn::impl::AttnCPULowerTilesBase<AttnCPULowerTilesPass> {
  void runOnOperation() override {
    WalkResult untiled = getOperation().walk([](AttentionOp op) {
      op.emitError("attn.attention must be tiled (attn-tile) before attn-cpu-lower-tiles");
      return WalkResult::interrupt();
    });
    if (untiled.wasInterrupted())
      return signalPassFailure();
    RewritePatternSet patterns(&getContext());
    populateCPULowerTilesPatterns(patterns);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace

void mlir::attn::populateCPULowerTilesPatterns(RewritePatternSet &patterns) {
  patterns.add<LowerTileOp<TileFillOp>, LowerTileOp<TileScoresOp>, LowerTileOp<TileRowMaxOp>,
               LowerTileOp<TileExpSumOp>, LowerTileOp<TileOnlineUpdateOp>,
               LowerTileOp<TileMatmulAccOp>, LowerTileOp<TileStoreOp>>(patterns.getContext());
}
