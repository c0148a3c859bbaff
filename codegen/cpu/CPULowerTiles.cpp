// attn-cpu-lower-tiles: the tiled attn level -> scalar scf loops over memrefs, for the host.
// Plain loops keep the host code small and obviously faithful to each tile op's definition.
#include "codegen/cpu/Emit.h"
#include "codegen/cpu/Passes.h"
#include "dialect/MaskInterval.h"

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
using mlir::attn::cpu::Emit;

namespace {

int64_t rows(Value tile) { return cast<MemRefType>(tile.getType()).getDimSize(0); }


/// (axis 0, axis 2) of key j of batch b in a k/v operand: (b, j), or in a page pool
/// (the page of table[b, j / P], clamped as buildPageLookup says, j % P).
std::pair<Value, Value> keyAt(Emit &e, Value kv, Value b, Value j, Value table,
                              int64_t pageSize) {
  if (!table)
    return {b, j};
  Value slot = arith::RemUIOp::create(e.b, e.loc, j, e.index(pageSize));
  return {buildPageLookup(e.b, e.loc, table, kv, b, j, pageSize), slot};
}

/// k or v at (axis 0, hk, axis 2, e) as f32, dequantised when `scale` is set: the stored value
/// times scale[key coordinates (b, hk, j, e) picked by `axes`, e / group on the channel axis].
Value loadKV(Emit &e, Value mem, ValueRange idx, Value scale, ArrayRef<int64_t> axes,
             int64_t group, std::array<Value, 4> key) {
  Value x = buildDequantToF32(e.b, e.loc, buildLoadStored(e.b, e.loc, mem, idx));
  if (!scale)
    return x;
  SmallVector<Value> at;
  for (int64_t a : axes)
    at.push_back(a == 3 && group > 1
                     ? arith::DivUIOp::create(e.b, e.loc, key[3], e.index(group)).getResult()
                     : key[size_t(a)]);
  return e.fmul(x, e.load(scale, at));
}

/// (head, query) of packed row p (buildPackedRow).
std::pair<Value, Value> packedRow(Emit &e, Value h, Value p, int64_t pack) {
  return buildPackedRow(e.b, e.loc, h, p, pack);
}

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
  Value b = op.getB(), hk = op.getHk();
  Value qLen = e.dim(q, 2), headDim = e.extent(q, 3);
  Value kvLen = buildKVLength(e.b, e.loc, k, op.getBlockTable(), op.getPageSize());
  Value fill = e.f32(op.getFill().convertToFloat());
  e.loop(e.index(rows(s)), [&](Emit &e, Value r) {
    auto [h, i] = packedRow(e, op.getH(), e.add(op.getI0(), r), op.getPack());
    Value rowIn = e.below(i, qLen);
    e.loop(e.extent(s, 1), [&](Emit &e, Value c) {
      Value j = e.add(op.getJ0(), c);
      auto score = [&](Emit &e) {
        auto [kb, kj] = keyAt(e, k, b, j, op.getBlockTable(), op.getPageSize());
        Value dot = e.reduce(headDim, e.f32(0), [&](Emit &e, Value d, Value acc) {
          Value kd = loadKV(e, k, {kb, hk, kj, d}, op.getKScale(), op.getKScaleAxes(),
                            op.getKScaleGroup(), {b, hk, j, d});
          Value qd = e.load(q, {b, h, i, d});
          // Feature maps (linear attention's phi) apply elementwise before the product.
          if (!op.getFeatureQ().empty())
            qd = e.inlineRegion(op.getFeatureQ(), {qd});
          if (!op.getFeatureK().empty())
            kd = e.inlineRegion(op.getFeatureK(), {kd});
          return e.fadd(acc, e.fmul(qd, kd));
        });
        SmallVector<Value> args = {b, h, i, j, dot};
        if (op.getScore().getNumArguments() == 7) {  // the row norms dot(q, q), dot(k, k)
          args.push_back(e.reduce(headDim, e.f32(0), [&](Emit &e, Value d, Value acc) {
            Value qd = e.load(q, {b, h, i, d});
            return e.fadd(acc, e.fmul(qd, qd));
          }));
          args.push_back(e.reduce(headDim, e.f32(0), [&](Emit &e, Value d, Value acc) {
            Value kd = e.load(k, {kb, hk, kj, d});
            return e.fadd(acc, e.fmul(kd, kd));
          }));
        }
        Value s = e.inlineRegion(op.getScore(), args);
        if (op.getDecay().empty())
          return s;
        // A per-step decay: s * exp(log gamma(j + 1) + ... + log gamma(i)), empty past i;
        // with log_decay (a forget-gate softmax) s + that sum.
        Value past = arith::CmpIOp::create(e.b, e.loc, arith::CmpIPredicate::ugt, j, i);
        Value steps = e.select(past, e.index(0), arith::SubIOp::create(e.b, e.loc, i, j));
        Value logSum = e.reduce(steps, e.f32(0), [&](Emit &e, Value n, Value acc) {
          Value t = e.add(e.add(j, e.index(1)), n);
          return e.fadd(acc, buildLogDecay(e.b, e.loc, e.inlineRegion(op.getDecay(), {b, h, t})));
        });
        return op.getLogDecay() ? e.fadd(s, logSum) : e.fmul(s, e.exp(logSum));
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
  std::optional<float> unified;
  if (op.getUnifiedMax())
    unified = op.getUnifiedMax()->convertToFloat();
  e.loop(e.index(rows(s)), [&](Emit &e, Value r) {
    Value mOld = e.load(m, r);
    Value mNew = e.reduce(e.extent(s, 1), mOld, [&](Emit &e, Value c, Value mx) {
      return e.fmax(mx, e.load(s, {r, c}));
    });
    Value fresh;
    if (unified) {  // a row without mass starts at max(M, its max), or its max far below M
      Value rowMax = e.reduce(e.extent(s, 1), e.f32(-std::numeric_limits<float>::infinity()),
                              [&](Emit &e, Value c, Value mx) {
                                return e.fmax(mx, e.load(s, {r, c}));
                              });
      fresh = e.feq(e.load(l, r), e.f32(0));
      Value low = arith::CmpFOp::create(e.b, e.loc, arith::CmpFPredicate::OLT, rowMax,
                                        e.f32(*unified - kUnifiedMaxRange));
      Value start = e.select(low, rowMax, e.fmax(e.f32(*unified), rowMax));
      mNew = e.select(fresh, start, mNew);
    }
    Value base = e.safeBase(mNew);
    Value alpha = e.exp(e.fsub(mOld, base));
    if (fresh)
      alpha = e.select(fresh, e.f32(0), alpha);
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
  Value kvLen = buildKVLength(e.b, e.loc, v, op.getBlockTable(), op.getPageSize());
  e.loop(e.index(rows(p)), [&](Emit &e, Value r) {
    e.loop(e.extent(p, 1), [&](Emit &e, Value c) {
      Value j = e.add(op.getJ0(), c);
      e.when(e.below(j, kvLen), [&](Emit &e) {
        Value pv = e.load(p, {r, c});
        auto [vb, vj] = keyAt(e, v, op.getB(), j, op.getBlockTable(), op.getPageSize());
        e.loop(e.extent(acc, 1), [&](Emit &e, Value ch) {
          Value vd = loadKV(e, v, {vb, op.getHk(), vj, ch}, op.getVScale(), op.getVScaleAxes(),
                            op.getVScaleGroup(), {op.getB(), op.getHk(), j, ch});
          Value term = e.fmul(pv, vd);
          e.store(e.fadd(e.load(acc, {r, ch}), term), acc, {r, ch});
        });
      });
    });
  });
}

void lower(Emit &e, TileStoreOp op) {
  Value acc = op.getAcc(), out = op.getOut(), b = op.getB();
  Value qLen = e.dim(out, 2);
  bool softmax = op.getNorm() == NormKind::softmax;
  Value partOut = op.getPartOut(), partLse = op.getPartLse();
  // Split-KV form: partial results go to the split's slice when there are several splits.
  Value partial;
  if (partOut)
    partial = arith::CmpIOp::create(e.b, e.loc, arith::CmpIPredicate::ugt, e.dim(partOut, 0),
                                    e.index(1));
  e.loop(e.index(rows(acc)), [&](Emit &e, Value r) {
    auto [h, i] = packedRow(e, op.getH(), e.add(op.getI0(), r), op.getPack());
    e.when(e.below(i, qLen), [&](Emit &e) {
      // Per score (several scores: the extra accumulators too): 1 / l and the lse.
      SmallVector<Value> accs = {acc}, scales, lses;
      llvm::append_range(accs, op.getMoreAcc());
      for (size_t n = 0; n < accs.size(); ++n) {
        Value scale = e.f32(1), lse;
        if (softmax) {
          Value l = e.load(n ? op.getMoreL()[n - 1] : op.getL(), r);
          Value any = e.fgt(l, e.f32(0));
          scale = e.select(any, arith::DivFOp::create(e.b, e.loc, e.f32(1), l), e.f32(0));
          Value m = e.load(n ? op.getMoreM()[n - 1] : op.getM(), r);
          Value logSum = e.fadd(m, math::LogOp::create(e.b, e.loc, l));
          lse = e.select(any, logSum, e.f32(-std::numeric_limits<float>::infinity()));
        }
        scales.push_back(scale);
        lses.push_back(lse);
      }
      Value scale = scales[0], lse = lses[0];
      // The row's element c before the rmsnorm: the normalised accumulator, or the mix of
      // every score's.
      auto element = [&](Emit &e, Value c, Value rowScale) -> Value {
        if (accs.size() == 1)
          return e.fmul(e.load(acc, {r, c}), rowScale);
        SmallVector<Value> args = {b, h, i, c};
        for (size_t n = 0; n < accs.size(); ++n)
          args.push_back(e.fmul(e.load(accs[n], {r, c}), scales[n]));
        return e.fmul(e.inlineRegion(op.getMix(), args), rowScale);
      };
      auto write = [&](Emit &e, bool toPartial) {
        if (op.getLse())
          toPartial ? e.store(lse, partLse, {op.getSplit(), b, h, i})
                    : e.store(lse, op.getLse(), {b, h, i});
        for (auto [n, moreLse] : llvm::enumerate(op.getMoreLse()))
          e.store(lses[n + 1], moreLse, {b, h, i});
        // one score: the accumulator times 1 / l; several: the mix (times 1 below)
        Value rowScale = accs.size() == 1 ? scale : e.f32(1);
        if (auto eps = op.getRmsEpsAttr(); eps && !toPartial) {
          // rmsnorm: the row over sqrt(mean of its squares + eps)
          Value width = e.extent(acc, 1);
          Value sq = e.reduce(width, e.f32(0), [&](Emit &e, Value c, Value sum) {
            Value x = element(e, c, rowScale);
            return e.fadd(sum, e.fmul(x, x));
          });
          rowScale = e.fmul(rowScale, e.rmsFactor(sq, width, eps.getValueAsDouble()));
        }
        e.loop(e.extent(acc, 1), [&](Emit &e, Value c) {
          Value x = element(e, c, rowScale);
          if (toPartial)
            return e.store(x, partOut, {op.getSplit(), b, h, i, c});
          if (!op.getOutput().empty())  // the output map of the finished row's element
            x = e.inlineRegion(op.getOutput(), {b, h, i, c, x});
          e.store(x, out, {b, h, i, c});
        });
      };
      if (!partial)
        return write(e, false);
      scf::IfOp::create(
          e.b, e.loc, partial,
          [&](OpBuilder &nb, Location l) {
            Emit inner{nb, l};
            write(inner, true);
            scf::YieldOp::create(nb, l);
          },
          [&](OpBuilder &nb, Location l) {
            Emit inner{nb, l};
            write(inner, false);
            scf::YieldOp::create(nb, l);
          });
    });
  });
}

/// lse = log sum_s exp(lse_s), out = sum_s exp(lse_s - lse) o_s (0 and -inf with no key at all),
/// then the rmsnorm and the output map of a split attention with an output expression.
void lower(Emit &e, CombineOp op) {
  Value part = op.getPartOut(), partLse = op.getPartLse(), out = op.getOut(), lse = op.getLse();
  Value splits = e.dim(part, 0);
  Value negInf = e.f32(-std::numeric_limits<float>::infinity());
  e.when(arith::CmpIOp::create(e.b, e.loc, arith::CmpIPredicate::ugt, splits, e.index(1)),
         [&](Emit &e) {
    e.loop(e.dim(out, 0), [&](Emit &e, Value b) {
      e.loop(e.dim(out, 1), [&](Emit &e, Value h) {
        e.loop(e.dim(out, 2), [&](Emit &e, Value i) {
          Value mx = e.reduce(splits, negInf, [&](Emit &e, Value s, Value m) {
            return e.fmax(m, e.load(partLse, {s, b, h, i}));
          });
          Value none = e.feq(mx, negInf);
          Value base = e.safeBase(mx);
          Value sum = e.reduce(splits, e.f32(0), [&](Emit &e, Value s, Value acc) {
            return e.fadd(acc, e.exp(e.fsub(e.load(partLse, {s, b, h, i}), base)));
          });
          Value total = e.fadd(base, math::LogOp::create(e.b, e.loc, sum));
          e.store(e.select(none, negInf, total), lse, {b, h, i});
          auto merged = [&](Emit &e, Value c) {
            Value o = e.reduce(splits, e.f32(0), [&](Emit &e, Value s, Value acc) {
              Value w = e.exp(e.fsub(e.load(partLse, {s, b, h, i}), total));
              return e.fadd(acc, e.fmul(w, e.load(part, {s, b, h, i, c})));
            });
            return e.select(none, e.f32(0), o);
          };
          Value width = e.extent(out, 3), rowScale;
          if (auto eps = op.getRmsEpsAttr()) {  // the merged row's rmsnorm (a second pass)
            Value sq = e.reduce(width, e.f32(0), [&](Emit &e, Value c, Value sum) {
              Value x = merged(e, c);
              return e.fadd(sum, e.fmul(x, x));
            });
            rowScale = e.rmsFactor(sq, width, eps.getValueAsDouble());
          }
          e.loop(width, [&](Emit &e, Value c) {
            Value x = merged(e, c);
            if (rowScale)
              x = e.fmul(x, rowScale);
            if (!op.getOutput().empty())  // the output map of the merged row's element
              x = e.inlineRegion(op.getOutput(), {b, h, i, c, x});
            e.store(x, out, {b, h, i, c});
          });
        });
      });
    });
  });
}

void lower(Emit &e, ChunkStepOp op) { cpu::lowerChunkStep(e, op); }

/// The block plan's key range, evaluated where it stands (the CPU needs no separate kernel).
struct LowerKeyRange : OpRewritePattern<TileKeyRangeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(TileKeyRangeOp op, PatternRewriter &rw) const override {
    rw.setInsertionPoint(op);
    Location loc = op.getLoc();
    auto zero = arith::ConstantIndexOp::create(rw, loc, 0);
    auto one = arith::ConstantIndexOp::create(rw, loc, 1);
    KeyRange range = finishKeyRange(rw, loc, op, scanKeyRange(rw, loc, op, IRMapping(), zero, one));
    rw.replaceOp(op, ValueRange{range.lower, range.upper, range.fullLower, range.fullUpper});
    return success();
  }
};

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
               LowerTileOp<TileMatmulAccOp>, LowerTileOp<TileStoreOp>, LowerTileOp<CombineOp>,
               LowerTileOp<ChunkStepOp>, LowerKeyRange>(
      patterns.getContext());
}
