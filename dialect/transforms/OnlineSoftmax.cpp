// attn-online-softmax: fuses the row-max key loop and the exp/sum/accumulate key loop of a
// softmax query tile into one loop with a running max and sum (FlashAttention's rescaling).
#include "dialect/transforms/Passes.h"
#include "dialect/transforms/Patterns.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNONLINESOFTMAX
#include "dialect/transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

bool sameBounds(scf::ForOp a, scf::ForOp b) {
  return a.getLowerBound() == b.getLowerBound() && a.getUpperBound() == b.getUpperBound() &&
         a.getStep() == b.getStep() && a.getInitArgs().empty() && b.getInitArgs().empty();
}

/// The max pass is removable if it only recomputes scores and reduces them into the maxima
/// `ms` (one per score, with several scores), each of which the accumulation loop then reads.
bool isMaxPass(scf::ForOp loop, ArrayRef<Value> ms) {
  for (Operation &op : loop.getBody()->without_terminator()) {
    if (isa<TileScoresOp>(op))
      continue;
    auto rowMax = dyn_cast<TileRowMaxOp>(op);
    if (!rowMax || !llvm::is_contained(ms, rowMax.getM()))
      return false;
  }
  return true;
}

/// Matches `tile_exp_sum %s, %m -> %l` in the second key loop and rewrites:
///   erase the first key loop (scores + tile_row_max into %m),
///   tile_exp_sum -> tile_online_update %s, %m, %l, %acc, with %acc the accumulator that
///   the loop's tile_matmul_acc feeds from %s.
/// With several scores the loop holds one exp-sum per score: all become online updates.
struct FuseSoftmaxPasses : OpRewritePattern<TileExpSumOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(TileExpSumOp expSum, PatternRewriter &rw) const override {
    auto accLoop = dyn_cast<scf::ForOp>(expSum->getParentOp());
    if (!accLoop)
      return rw.notifyMatchFailure(expSum, "not inside a key loop");
    SmallVector<TileExpSumOp> expSums(accLoop.getBody()->getOps<TileExpSumOp>());
    if (expSum != expSums.back())  // visited before the others: they are rewritten with it
      return rw.notifyMatchFailure(expSum, "the key loop's last exp-sum rewrites them all");
    SmallVector<Value> ms;
    for (TileExpSumOp e : expSums)
      ms.push_back(e.getM());
    scf::ForOp maxLoop;
    for (Operation *prev = accLoop->getPrevNode(); prev && !maxLoop; prev = prev->getPrevNode())
      if (auto loop = dyn_cast<scf::ForOp>(prev))
        if (sameBounds(loop, accLoop) && isMaxPass(loop, ms))
          maxLoop = loop;
    if (!maxLoop)
      return rw.notifyMatchFailure(expSum, "no preceding row-max key loop over the same tiles");
    SmallVector<TileMatmulAccOp> matmuls;
    for (TileExpSumOp e : expSums) {
      TileMatmulAccOp matmul;
      for (Operation *op = e->getNextNode(); op && !matmul; op = op->getNextNode())
        if (auto mm = dyn_cast<TileMatmulAccOp>(op); mm && mm.getP() == e.getS())
          matmul = mm;
      if (!matmul)
        return rw.notifyMatchFailure(e, "no P.V accumulation of the exponentiated scores");
      matmuls.push_back(matmul);
    }
    for (auto [e, matmul] : llvm::zip(expSums, matmuls)) {
      rw.setInsertionPoint(e);
      TileOnlineUpdateOp::create(rw, e.getLoc(), e.getS(), e.getM(), e.getL(), matmul.getAcc(),
                                 e.getUnifiedMaxAttr());
      rw.eraseOp(e);
    }
    rw.eraseOp(maxLoop);
    return success();
  }
};

struct AttnOnlineSoftmaxPass : mlir::attn::impl::AttnOnlineSoftmaxBase<AttnOnlineSoftmaxPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateOnlineSoftmaxPatterns(patterns);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace

void mlir::attn::populateOnlineSoftmaxPatterns(RewritePatternSet &patterns) {
  patterns.add<FuseSoftmaxPasses>(patterns.getContext());
}
