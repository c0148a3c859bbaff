// attn-pack-gqa: the query heads that share a kv head go into one query tile, so each key and
// value tile is read once per group instead of once per head (GQA / MQA decoding).
#include "dialect/transforms/Passes.h"
#include "dialect/transforms/Patterns.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNPACKGQA
#include "dialect/transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

/// The loop whose induction variable is `iv`, if it runs from 0 in steps of `step`.
scf::ForOp loopOf(Value iv, int64_t step) {
  auto arg = dyn_cast<BlockArgument>(iv);
  auto loop = arg ? dyn_cast<scf::ForOp>(arg.getOwner()->getParentOp()) : scf::ForOp();
  APInt s;
  if (!loop || loop.getInductionVar() != iv || !matchPattern(loop.getLowerBound(), m_Zero()) ||
      !matchPattern(loop.getStep(), m_ConstantInt(&s)))
    return {};
  return s.getSExtValue() == step ? loop : scf::ForOp();
}

/// Before: scf.for %h = 0 to H { scf.for %i0 = 0 to I step BQ { ... tile ops on (h, h / G, i0) } }
/// After:  scf.for %hk = 0 to H / G { scf.for %p0 = 0 to I * G step BQ { ... tile ops on
///         (hk * G, hk, p0) with pack = G } }: row r of a tile is query (p0 + r) / G of head
///         hk * G + (p0 + r) % G.
struct PackGroup : OpRewritePattern<TileScoresOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(TileScoresOp scores, PatternRewriter &rw) const override {
    if (scores.getPack() != 1)
      return rw.notifyMatchFailure(scores, "already packed");
    auto div = scores.getHk().getDefiningOp<arith::DivUIOp>();
    APInt group;
    if (!div || div.getLhs() != scores.getH() ||
        !matchPattern(div.getRhs(), m_ConstantInt(&group)) || group.getSExtValue() < 2)
      return rw.notifyMatchFailure(scores, "not a GQA tile (kv head = h / G, G > 1)");
    if (!scores.getDecay().empty())
      return rw.notifyMatchFailure(
          scores, "a per-step decay keeps one head per tile (its cumulative log decays are "
                  "per head)");
    int64_t g = group.getSExtValue();
    int64_t blockQ = scores.getS().getType().getDimSize(0);
    scf::ForOp headLoop = loopOf(scores.getH(), 1), rowLoop = loopOf(scores.getI0(), blockQ);
    if (!headLoop || !rowLoop || !headLoop->isProperAncestor(rowLoop))
      return rw.notifyMatchFailure(scores, "heads and query tiles are not plain loops");
    // Every tile op of the query tile must be rewritten with it.
    SmallVector<TileStoreOp> stores;
    bool ok = true;
    rowLoop.walk([&](Operation *op) {
      if (auto store = dyn_cast<TileStoreOp>(op))
        stores.push_back(store);
      else if (auto other = dyn_cast<TileScoresOp>(op))
        ok &= other.getH() == scores.getH() && other.getI0() == scores.getI0();
    });
    for (TileStoreOp store : stores)
      ok &= store.getH() == scores.getH() && store.getI0() == scores.getI0() &&
            store.getPack() == 1;
    if (!ok)
      return rw.notifyMatchFailure(scores, "tile ops on other heads or rows");

    Location loc = scores.getLoc();
    auto cst = [&](int64_t v) { return arith::ConstantIndexOp::create(rw, loc, v).getResult(); };
    // Heads: the loop now counts kv heads; the group's first head is hk * G.
    rw.setInsertionPoint(headLoop);
    Value kvHeads = arith::DivUIOp::create(rw, loc, headLoop.getUpperBound(), cst(g));
    rw.modifyOpInPlace(headLoop, [&] { headLoop.getUpperBoundMutable().assign(kvHeads); });
    Value hk = headLoop.getInductionVar();
    rw.setInsertionPointToStart(headLoop.getBody());
    Value firstHead = arith::MulIOp::create(rw, loc, hk, cst(g));
    rw.replaceAllUsesExcept(hk, firstHead, firstHead.getDefiningOp());
    rw.replaceAllUsesWith(div.getResult(), hk);
    rw.eraseOp(div);
    // Rows: queries x heads of the group.
    rw.setInsertionPoint(rowLoop);
    Value rows = arith::MulIOp::create(rw, loc, rowLoop.getUpperBound(), cst(g));
    rw.modifyOpInPlace(rowLoop, [&] { rowLoop.getUpperBoundMutable().assign(rows); });
    rowLoop.walk([&](Operation *op) {
      if (isa<TileScoresOp, TileStoreOp>(op))
        rw.modifyOpInPlace(op, [&] { op->setAttr("pack", rw.getI64IntegerAttr(g)); });
    });
    return success();
  }
};

struct AttnPackGQAPass : mlir::attn::impl::AttnPackGQABase<AttnPackGQAPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populatePackGQAPatterns(patterns);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace

void mlir::attn::populatePackGQAPatterns(RewritePatternSet &patterns) {
  patterns.add<PackGroup>(patterns.getContext());
}
