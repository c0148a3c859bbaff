// attn-split-kv: splits each query tile's key range into S ranges (S chosen at launch time)
// whose partial outputs and log-sum-exps attn.combine merges (FlashDecoding). Decoding has one or
// a few query rows per head, so without the split a GPU would run only batch x heads blocks.
#include "dialect/transforms/Passes.h"
#include "dialect/transforms/Patterns.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNSPLITKV
#include "dialect/transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

MemRefType stridedF32(MLIRContext *ctx, int64_t rank) {
  SmallVector<int64_t> shape(rank, ShapedType::kDynamic), strides(rank, ShapedType::kDynamic);
  return MemRefType::get(shape, Float32Type::get(ctx),
                         StridedLayoutAttr::get(ctx, ShapedType::kDynamic, strides));
}

/// Splits the one online-softmax query tile of `f`: true when split, false (leaving `f` alone)
/// when `f` is not in that form, failure (with an error) when it is but cannot be split.
FailureOr<bool> splitFunction(func::FuncOp f) {
  SmallVector<TileOnlineUpdateOp> updates;
  f.walk([&](TileOnlineUpdateOp op) { updates.push_back(op); });
  if (updates.size() != 1)
    return false;  // not softmax, not fused, or several tiles: nothing to split
  auto keyLoop = dyn_cast<scf::ForOp>(updates[0]->getParentOp());
  TileScoresOp scores;
  for (Operation &op : keyLoop.getBody()->without_terminator())
    if (auto s = dyn_cast<TileScoresOp>(op))
      scores = s;
  TileStoreOp store;
  for (Operation *op = keyLoop->getNextNode(); op; op = op->getNextNode())
    if (auto s = dyn_cast<TileStoreOp>(op))
      store = s;
  if (!scores || !store || !store.getLse() || store.getSplit())
    return false;
  if (!isa<BlockArgument>(store.getOut()) || !isa<BlockArgument>(store.getLse()))
    return f.emitError("attn-split-kv: the output and lse must be function arguments"),
           failure();

  // The split index runs over the partial buffers' first dim, appended as arguments.
  MLIRContext *ctx = f.getContext();
  Location loc = f.getLoc();
  unsigned n = f.getNumArguments();
  if (failed(f.insertArgument(n, stridedF32(ctx, 5), {}, loc)) ||
      failed(f.insertArgument(n + 1, stridedF32(ctx, 4), {}, loc)))
    return f.emitError("attn-split-kv: cannot add the partial-result arguments"), failure();
  Value partOut = f.getArgument(n), partLse = f.getArgument(n + 1);

  // Everything from the query tile's first fill to its store moves into the split loop.
  Block *block = keyLoop->getBlock();
  Operation *first = keyLoop;
  for (Operation *op = keyLoop->getPrevNode(); op; op = op->getPrevNode())
    if (isa<TileFillOp>(op))
      first = op;
  IRRewriter rw(ctx);
  rw.setInsertionPoint(first);
  auto cst = [&](int64_t v) { return arith::ConstantIndexOp::create(rw, loc, v).getResult(); };
  Value splits = memref::DimOp::create(rw, loc, partOut, 0);
  auto splitLoop = scf::ForOp::create(rw, loc, cst(0), splits, cst(1));
  splitLoop->setAttr("attn.split_kv", rw.getUnitAttr());
  Block *body = splitLoop.getBody();
  body->getOperations().splice(body->getTerminator()->getIterator(), block->getOperations(),
                               first->getIterator(), std::next(store->getIterator()));

  // Split s takes key tiles [s * per, (s + 1) * per), per = ceil(ceil(kv / BK) / S).
  rw.setInsertionPoint(keyLoop);
  int64_t blockK = scores.getS().getType().getDimSize(1);
  Value kvLen = buildKVLength(rw, loc, scores.getK(), scores.getBlockTable(),
                              scores.getPageSize());
  auto ceilDiv = [&](Value a, Value b) { return arith::CeilDivUIOp::create(rw, loc, a, b); };
  Value perSplit = arith::MulIOp::create(rw, loc, ceilDiv(ceilDiv(kvLen, cst(blockK)), splits),
                                         cst(blockK));
  Value from = arith::MulIOp::create(rw, loc, splitLoop.getInductionVar(), perSplit);
  Value to = arith::AddIOp::create(rw, loc, from, perSplit);
  Value lb = arith::MaxSIOp::create(rw, loc, keyLoop.getLowerBound(), from);
  Value ub = arith::MinSIOp::create(rw, loc, keyLoop.getUpperBound(), to);
  rw.modifyOpInPlace(keyLoop, [&] {
    keyLoop.getLowerBoundMutable().assign(lb);
    keyLoop.getUpperBoundMutable().assign(ub);
  });
  rw.modifyOpInPlace(store, [&] {
    store.getSplitMutable().assign(splitLoop.getInductionVar());
    store.getPartOutMutable().assign(partOut);
    store.getPartLseMutable().assign(partLse);
  });

  // The merge runs after every query tile, before the function returns. An output map or
  // rmsnorm applies to the merged row: the store applies it with one split only (its partial
  // results are the plain rows), the merge with several.
  rw.setInsertionPoint(f.getBody().front().getTerminator());
  auto combine = CombineOp::create(rw, loc, partOut, partLse, store.getOut(), store.getLse(),
                                   store.getRmsEpsAttr());
  IRMapping none;
  store.getOutput().cloneInto(&combine.getOutput(), none);
  return true;
}

struct AttnSplitKVPass : mlir::attn::impl::AttnSplitKVBase<AttnSplitKVPass> {
  void runOnOperation() override {
    if (failed(splitFunction(getOperation())))
      signalPassFailure();
  }
};

} // namespace
