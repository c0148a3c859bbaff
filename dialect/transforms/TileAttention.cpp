// attn-tile: attn.attention -> loops over query tiles whose bodies visit key tiles with the
// attn.tile_* ops. Softmax comes out as an exact two-pass algorithm; elementwise norms in one pass.
#include "dialect/transforms/Passes.h"
#include "dialect/transforms/Patterns.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNTILE
#include "dialect/transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

/// Appends the elementwise normalisation to a cloned score region: its yield returns N(score).
void foldNormIntoScore(RewriterBase &rw, Region &score, NormKind norm) {
  auto yield = cast<YieldOp>(score.front().getTerminator());
  Location loc = yield.getLoc();
  Value s = yield.getValues()[0];
  rw.setInsertionPoint(yield);
  Value result = s;
  switch (norm) {
  case NormKind::softmax:
  case NormKind::none:
  case NormKind::sum:  // attn-tile refuses it
    return;
  case NormKind::sigmoid: {
    Value one = arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(1.0f));
    Value e = math::ExpOp::create(rw, loc, arith::NegFOp::create(rw, loc, s));
    result = arith::DivFOp::create(rw, loc, one, arith::AddFOp::create(rw, loc, one, e));
    break;
  }
  case NormKind::relu2: {
    Value zero = arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(0.0f));
    Value r = arith::MaximumFOp::create(rw, loc, s, zero);
    result = arith::MulFOp::create(rw, loc, r, r);
    break;
  }
  }
  rw.modifyOpInPlace(yield, [&] { yield.getValuesMutable().assign(result); });
}

/// A decay fixed per (b, h) (its region ignores i) in the quadratic form: the cloned score
/// region's yield becomes score * exp((i - j) * log gamma(b, h)) = score * gamma^(i - j), or
/// with `additive` (softmax, whose weights exp(score) decay) score + (i - j) * log gamma(b, h).
void foldDecayIntoScore(RewriterBase &rw, Region &score, Region &decay, bool additive) {
  auto yield = cast<YieldOp>(score.front().getTerminator());
  Location loc = yield.getLoc();
  rw.setInsertionPoint(yield);
  IRMapping map;
  Block &args = score.front();
  map.map(decay.front().getArguments(),
          ValueRange{args.getArgument(0), args.getArgument(1), args.getArgument(2)});
  for (Operation &op : decay.front().without_terminator())
    rw.clone(op, map);
  Value gamma = map.lookupOrDefault(cast<YieldOp>(decay.front().getTerminator()).getValues()[0]);
  Value steps = arith::SubIOp::create(rw, loc, args.getArgument(2), args.getArgument(3));
  Value stepsF = arith::SIToFPOp::create(
      rw, loc, rw.getF32Type(), arith::IndexCastOp::create(rw, loc, rw.getI64Type(), steps));
  Value logWeight =
      arith::MulFOp::create(rw, loc, stepsF, buildLogDecay(rw, loc, gamma));
  Value result =
      additive ? arith::AddFOp::create(rw, loc, yield.getValues()[0], logWeight).getResult()
               : arith::MulFOp::create(rw, loc, yield.getValues()[0],
                                       math::ExpOp::create(rw, loc, logWeight))
                     .getResult();
  rw.modifyOpInPlace(yield, [&] { yield.getValuesMutable().assign(result); });
}

/// Whether a decay region reads the query position i (a per-step decay).
bool decayReadsI(Region &decay) {
  return !decay.empty() && !decay.front().getArgument(2).use_empty();
}

/// Whether a score region yields the dot itself.
bool rawDot(Region &score) {
  Block &body = score.front();
  auto yield = dyn_cast<YieldOp>(body.getTerminator());
  return yield && yield->getNumOperands() == 1 && body.getNumArguments() == 5 &&
         yield->getOperand(0) == body.getArgument(4);
}

struct TileAttention : OpRewritePattern<AttentionOp> {
  TileAttention(MLIRContext *ctx, int64_t blockQ, int64_t wideBlockK, int64_t narrowBlockK,
                int64_t plainTile)
      : OpRewritePattern(ctx), blockQ(blockQ), wideBlockK(wideBlockK),
        narrowBlockK(narrowBlockK), plainTile(plainTile) {}

  /// Whether `op` is plain softmax attention at a head dim where plainTile x plainTile tiles
  /// were measured faster (sm_90a, warp-specialised with ping-pong, 2026-12-06: dense and GQA
  /// d96-d128 1.0-1.26x, while soft-capped, windowed, document-masked, decaying scores, d64
  /// and decoding lost): one score, the dot or dot * C, no mask or the causal one, K/V neither paged nor
  /// quantised, static head and value dims in [96, 128] that are multiples of 16, a query
  /// length that is not a static 1.
  bool plain(AttentionOp op) const {
    if (!plainTile || op.getNorm() != NormKind::softmax || !op.getMoreQ().empty() ||
        op.getBlockTable() || op.getKScale() || op.getVScale() || op.getProjection() ||
        !op.getFeatureQ().empty() || !op.getFeatureK().empty() || !op.getDecay().empty() ||
        op.getUnifiedMax() || !(positiveScoreScale(op.getScore()) > 0 || rawDot(op.getScore())) ||
        !(op.getMask().empty() || isCausalMask(op.getMask(), /*strict=*/false)))
      return false;
    auto inRange = [](int64_t d) {
      return !ShapedType::isDynamic(d) && d % 16 == 0 && d >= 96 && d <= 128;
    };
    int64_t queries = op.getQ().getType().getDimSize(2);
    return inRange(op.getQ().getType().getDimSize(3)) &&
           inRange(op.getOut().getType().getDimSize(3)) && queries != 1;
  }

  /// The keys per tile of `op`: narrowBlockK (when set) unless the head and value dims are
  /// static multiples of 16 of at least 64, which wgmma reads from the 128-byte swizzle (a
  /// last column block partly used). Several
  /// scores take narrowBlockK too: their accumulators and scores share the registers
  /// (differential attention d 64, dv 128 on sm_90a: 255 registers and 136 bytes of spills
  /// with 64 keys, 244 and none with 32).
  int64_t keysPerTile(AttentionOp op) const {
    auto wide = [](int64_t dim) {
      return !ShapedType::isDynamic(dim) && dim % 16 == 0 && dim >= 64;
    };
    if (!narrowBlockK || (wide(op.getQ().getType().getDimSize(3)) &&
                          wide(op.getOut().getType().getDimSize(3)) && op.getMoreQ().empty()))
      return wideBlockK;
    return narrowBlockK;
  }

  LogicalResult matchAndRewrite(AttentionOp op, PatternRewriter &rw) const override {
    bool wide = plain(op);
    int64_t blockK = wide ? plainTile : keysPerTile(op);
    int64_t blockQ = wide ? plainTile : this->blockQ;
    Location loc = op.getLoc();
    auto index = [&](int64_t c) { return arith::ConstantIndexOp::create(rw, loc, c).getResult(); };
    auto dim = [&](Value t, int64_t d) { return memref::DimOp::create(rw, loc, t, d).getResult(); };
    Type f32 = rw.getF32Type();
    bool softmax = op.getNorm() == NormKind::softmax;

    // Per-query-tile buffers. They are allocated once, ahead of the loops: a back end gives each
    // worker (thread block, CPU thread) its own.
    int64_t dv = op.getOut().getType().getDimSize(3);  // v may be packed: out counts values
    Value dvSize = dim(op.getOut(), 3);
    auto tile = [&](ArrayRef<int64_t> shape, ValueRange dyn) {
      return memref::AllocaOp::create(rw, loc, MemRefType::get(shape, f32), dyn).getResult();
    };
    // One set per score (several scores: each its own scores, statistics and accumulator).
    size_t scoreCount = 1 + op.getMoreQ().size();
    SmallVector<Value> ss, accs, ms, ls;
    for (size_t n = 0; n < scoreCount; ++n) {
      ss.push_back(tile({blockQ, blockK}, {}));
      accs.push_back(ShapedType::isDynamic(dv) ? tile({blockQ, ShapedType::kDynamic}, dvSize)
                                               : tile({blockQ, dv}, {}));
      ms.push_back(softmax ? tile({blockQ}, {}) : Value());
      ls.push_back(softmax ? tile({blockQ}, {}) : Value());
    }

    Value c0 = index(0), c1 = index(1);
    Value group = index(op.getGroup());
    auto loop = [&](Value ub, Value step) {
      auto forOp = scf::ForOp::create(rw, loc, c0, ub, step);
      rw.setInsertionPoint(forOp.getBody()->getTerminator());
      return forOp.getInductionVar();
    };
    Value b = loop(dim(op.getQ(), 0), c1);
    Value h = loop(dim(op.getQ(), 1), c1);
    Value i0 = loop(dim(op.getQ(), 2), index(blockQ));
    Value hk = arith::DivUIOp::create(rw, loc, h, group);
    Value table = op.getBlockTable();
    int64_t pageSize = op.getPageSize();
    Value kvLen = buildKVLength(rw, loc, op.getK(), table, pageSize), stepK = index(blockK);

    auto fill = [&](Value buf, float value) {
      TileFillOp::create(rw, loc, buf, rw.getF32FloatAttr(value));
    };
    auto scores = [&](Value j0, size_t n) {
      float masked = softmax ? -std::numeric_limits<float>::infinity() : 0.0f;
      Value q = n ? op.getMoreQ()[n - 1] : op.getQ(), k = n ? op.getMoreK()[n - 1] : op.getK();
      Region &score = n ? op.getMoreScores()[n - 1] : op.getScore();
      auto t = TileScoresOp::create(rw, loc, q, k, ss[n], b, h, hk, i0, j0, table,
                                    op.getKScale(), rw.getF32FloatAttr(masked),
                                    rw.getI64IntegerAttr(1), rw.getI64IntegerAttr(pageSize),
                                    op.getKScaleAxesAttr(), op.getKScaleGroupAttr());
      rw.cloneRegionBefore(score, t.getScore(), t.getScore().end());
      rw.cloneRegionBefore(op.getMask(), t.getMask(), t.getMask().end());
      rw.cloneRegionBefore(op.getFeatureQ(), t.getFeatureQ(), t.getFeatureQ().end());
      rw.cloneRegionBefore(op.getFeatureK(), t.getFeatureK(), t.getFeatureK().end());
      OpBuilder::InsertionGuard guard(rw);
      foldNormIntoScore(rw, t.getScore(), op.getNorm());
      // A decay fixed per (b, h) folds into the score; a per-step one stays a region. With
      // softmax the decay scales the weights exp(s): the score gains its logs.
      if (decayReadsI(op.getDecay())) {
        rw.cloneRegionBefore(op.getDecay(), t.getDecay(), t.getDecay().end());
        t.setLogDecay(softmax);
      } else if (!op.getDecay().empty()) {
        foldDecayIntoScore(rw, t.getScore(), op.getDecay(), softmax);
      }
    };
    auto keyLoop = [&](auto body) {
      OpBuilder::InsertionGuard guard(rw);
      body(loop(kvLen, stepK));
    };

    for (size_t n = 0; n < scoreCount; ++n)
      fill(accs[n], 0.0f);
    if (softmax) {
      for (size_t n = 0; n < scoreCount; ++n) {
        fill(ms[n], -std::numeric_limits<float>::infinity());
        fill(ls[n], 0.0f);
      }
      keyLoop([&](Value j0) {
        for (size_t n = 0; n < scoreCount; ++n) {
          scores(j0, n);
          TileRowMaxOp::create(rw, loc, ss[n], ms[n]);
        }
      });
    }
    keyLoop([&](Value j0) {
      for (size_t n = 0; n < scoreCount; ++n) {
        scores(j0, n);
        if (softmax)
          TileExpSumOp::create(rw, loc, ss[n], ms[n], ls[n], op.getUnifiedMaxAttr());
        TileMatmulAccOp::create(rw, loc, ss[n], op.getV(), accs[n], b, hk, j0, table,
                                op.getVScale(), rw.getI64IntegerAttr(pageSize),
                                op.getVScaleAxesAttr(), op.getVScaleGroupAttr());
      }
    });
    auto more = [](ArrayRef<Value> all) { return ValueRange(all).drop_front(); };
    auto store = TileStoreOp::create(
        rw, loc, accs[0], ls[0], ms[0], softmax ? more(accs) : ValueRange(),
        softmax ? more(ls) : ValueRange(), softmax ? more(ms) : ValueRange(), op.getOut(),
        op.getLse(), op.getMoreLse(), b, h, i0, /*split=*/Value(), /*part_out=*/Value(),
        /*part_lse=*/Value(), op.getNormAttr(), rw.getI64IntegerAttr(1), op.getRmsEpsAttr());
    rw.cloneRegionBefore(op.getOutput(), store.getOutput(), store.getOutput().end());
    rw.cloneRegionBefore(op.getMix(), store.getMix(), store.getMix().end());
    rw.eraseOp(op);
    return success();
  }

  int64_t blockQ, wideBlockK, narrowBlockK, plainTile;
};

struct AttnTilePass : mlir::attn::impl::AttnTileBase<AttnTilePass> {
  using Base::Base;
  void runOnOperation() override {
    if (blockQ < 1 || blockK < 1 || blockQ > 1024 || blockK > 1024) {
      getOperation().emitError() << "attn-tile: block-q and block-k must be in [1, 1024], got "
                                 << int64_t(blockQ) << " and " << int64_t(blockK);
      return signalPassFailure();
    }
    // The quadratic form has no state to start from or to hand on (nor a gate, skip term, q/k
    // head groups, norm sum, a bonus or a strict-causal decay: its decays stop before i).
    WalkResult stateful = getOperation()->walk([](AttentionOp op) {
      bool sum = op.getNorm() == NormKind::sum;
      bool strictDecay = !op.getDecay().empty() && op.getNorm() == NormKind::none &&
                         isCausalMask(op.getMask(), /*strict=*/true);
      if (!op.getState() && op.getGate().empty() && op.getSkip().empty() &&
          op.getQkGroup() == 1 && !sum && !op.getProjection() && op.getBonus().empty() &&
          !strictDecay)
        return WalkResult::advance();
      op.emitError() << "a recurrence with "
                     << (op.getState()             ? "a state"
                         : !op.getGate().empty()  ? "a gate"
                         : !op.getSkip().empty()  ? "a skip term"
                         : sum                    ? "norm sum"
                         : op.getProjection()     ? "a projected feature map"
                         : !op.getBonus().empty() ? "a bonus"
                         : strictDecay            ? "a decay and the mask j < i"
                                                  : "a q/k head group")
                     << " needs the chunked form (attn-chunk), which did not apply: compile "
                        "without --no-chunk";
      return WalkResult::interrupt();
    });
    if (stateful.wasInterrupted())
      return signalPassFailure();
    RewritePatternSet patterns(&getContext());
    populateTileAttentionPatterns(patterns, blockQ, blockK, narrowBlockK, plainTile);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace

void mlir::attn::populateTileAttentionPatterns(RewritePatternSet &patterns, int64_t blockQ,
                                               int64_t blockK, int64_t narrowBlockK,
                                               int64_t plainTile) {
  patterns.add<TileAttention>(patterns.getContext(), blockQ, blockK, narrowBlockK, plainTile);
}
