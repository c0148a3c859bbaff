// attn-position-offsets: the score and mask of a block of a longer sequence (ring attention)
// compare global positions, i + q_offset and j + k_offset, read from two rank-0 i32 arguments.
#include "dialect/AttnDialect.h"
#include "dialect/transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNPOSITIONOFFSETS
#include "dialect/transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

constexpr llvm::StringLiteral kOffsetAttr = "attn.position_offset";

/// Whether `use` is a plain index of a memref.load (a param read at the block's own row).
bool isLoadIndex(OpOperand &use) {
  return isa<memref::LoadOp>(use.getOwner()) && use.getOperandNumber() >= 1;
}

/// Replaces the value uses of the region's argument `index` by argument + offset[].
void offsetArgument(Region &region, unsigned index, Value offset) {
  Block &block = region.front();
  BlockArgument position = block.getArgument(index);
  SmallVector<OpOperand *> uses;
  for (OpOperand &use : position.getUses())
    if (!isLoadIndex(use))
      uses.push_back(&use);
  if (uses.empty())
    return;
  OpBuilder b = OpBuilder::atBlockBegin(&block);
  Location loc = offset.getLoc();
  Value raw = memref::LoadOp::create(b, loc, offset, ValueRange{});
  Value asIndex = arith::IndexCastOp::create(b, loc, b.getIndexType(), raw);
  Value global = arith::AddIOp::create(b, loc, position, asIndex);
  for (OpOperand *use : uses)
    use->set(global);
}

struct AttnPositionOffsetsPass
    : mlir::attn::impl::AttnPositionOffsetsBase<AttnPositionOffsetsPass> {
  void runOnOperation() override {
    func::FuncOp f = getOperation();
    Value offsets[2];  // q, k
    for (unsigned a = 0; a < f.getNumArguments(); ++a) {
      auto which = f.getArgAttrOfType<StringAttr>(a, kOffsetAttr);
      if (!which)
        continue;
      auto type = dyn_cast<MemRefType>(f.getArgument(a).getType());
      if (!type || type.getRank() != 0 || !type.getElementType().isInteger(32) ||
          (which.getValue() != "q" && which.getValue() != "k")) {
        f.emitError("attn-position-offsets: argument ")
            << a << " marked " << kOffsetAttr << " = " << which
            << " must be a rank-0 i32 memref marked \"q\" or \"k\"";
        return signalPassFailure();
      }
      offsets[which.getValue() == "k"] = f.getArgument(a);
      f.removeArgAttr(a, kOffsetAttr);
    }
    if (!offsets[0] && !offsets[1])
      return;
    WalkResult result = f.walk([&](AttentionOp op) {
      if (!op.getDecay().empty() || !op.getGate().empty() || !op.getSkip().empty() ||
          op.getState()) {
        op.emitError("attn-position-offsets: a recurrence (decay, gate, skip or state) has no "
                     "block form to offset");
        return WalkResult::interrupt();
      }
      SmallVector<Region *> regions = {&op.getScore(), &op.getMask()};
      for (Region &score : op.getMoreScores())
        regions.push_back(&score);
      for (Region *region : regions) {
        if (region->empty())
          continue;
        for (unsigned side : {1u, 0u})  // each goes first in the block: q's ops, then k's
          if (offsets[side])
            offsetArgument(*region, 2 + side, offsets[side]);
      }
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace
