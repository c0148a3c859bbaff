// attn-block-plan: key loops of masks that read params run over the key range that
// attn.tile_key_range derives from the mask (interval evaluation, dialect/MaskInterval.h).
#include "dialect/transforms/Passes.h"
#include "dialect/transforms/Patterns.h"

#include "dialect/MaskInterval.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/IRMapping.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNBLOCKPLAN
#include "dialect/transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

constexpr const char *kPlannedAttr = "attn.block_planned";

/// Whether the key loop around `scores` takes a block plan: a masked key loop over j0 whose
/// mask reads params and is not exactly a set of affine bounds (those attn-mask-bounds
/// narrows exactly, with no plan).
bool wantsPlan(TileScoresOp scores, scf::ForOp loop) {
  if (!loop || loop.getInductionVar() != scores.getJ0() || scores.getMask().empty() ||
      loop->hasAttr(kPlannedAttr) || !maskReadsParams(scores.getMask()))
    return false;
  bool exact = false;
  analyzeMaskBounds(scores.getMask(), exact);
  return !exact;
}

void planKeyLoop(TileScoresOp scores, scf::ForOp loop) {
  OpBuilder b(loop);
  Location loc = scores.getLoc();
  Value qLen = memref::DimOp::create(b, loc, scores.getQ(), 2);
  Value kvLen = buildKVLength(b, loc, scores.getK(), scores.getBlockTable(),
                              scores.getPageSize());
  auto type = scores.getS().getType();
  int64_t rows = type.getDimSize(0), blockK = type.getDimSize(1);
  Type index = b.getIndexType();
  auto range = TileKeyRangeOp::create(b, loc, index, index, index, index, scores.getB(), scores.getH(), scores.getI0(), qLen,
                                      kvLen, uint64_t(rows), uint64_t(scores.getPack()),
                                      uint64_t(blockK));
  IRMapping none;
  scores.getMask().cloneInto(&range.getMask(), none);
  Value from = arith::MaxSIOp::create(b, loc, loop.getLowerBound(), range.getLower());
  Value to = arith::MinSIOp::create(b, loc, loop.getUpperBound(), range.getUpper());
  loop.getLowerBoundMutable().assign(from);
  loop.getUpperBoundMutable().assign(to);
  loop->setAttr(kPlannedAttr, b.getUnitAttr());
}

struct AttnBlockPlanPass : mlir::attn::impl::AttnBlockPlanBase<AttnBlockPlanPass> {
  void runOnOperation() override {
    SmallVector<std::pair<TileScoresOp, scf::ForOp>> loops;
    getOperation().walk([&](TileScoresOp scores) {
      auto loop = dyn_cast<scf::ForOp>(scores->getParentOp());
      // several scores share one key loop and its mask: plan it once
      if (wantsPlan(scores, loop) &&
          llvm::none_of(loops, [&](auto planned) { return planned.second == loop; }))
        loops.push_back({scores, loop});
    });
    for (auto [scores, loop] : loops)
      planKeyLoop(scores, loop);
  }
};

} // namespace
