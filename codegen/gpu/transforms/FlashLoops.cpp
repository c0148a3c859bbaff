// attn-gpu-distribute, flash strategy: the key loop (serial, or FlashAttention-3's overlap of
// the softmax with the next tile's Q K^T) and the kernel of a flash tile in order.
#include "codegen/gpu/transforms/FlashDistributor.h"
#include "codegen/gpu/transforms/PlanDistribute.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attngpu;
using namespace mlir::attngpu::detail;
using attn::CombineOp;

/// The key loop, one tile after the other: S = Q K^T, the softmax, acc += P V. The loop
/// carries the tile buffers as fragments: m, l (softmax) and acc, per score (several scores:
/// each S and softmax on its own K tile, then each P V on the one V tile). Copies are
/// synchronous here; attn-gpu-pipeline gives them FlashAttention-2's order.
SmallVector<Value> FlashDistributor::emitSerialLoop(Value keysFrom, Value keysTo) {
  bool softmax = bool(t.update);
  auto loop = scf::ForOp::create(b, loc, keysFrom, keysTo, idx(t.blockK), initialState());
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(loop.getBody());
  Value j0 = loop.getInductionVar();
  SmallVector<Value> state(loop.getRegionIterArgs());  // (m, l, acc) or (acc) per score
  size_t width = softmax ? 3 : 1;
  copyKeys(true, j0);
  waitGroups(0);
  landed(true, j0);
  keyTilePrefix(j0);
  SmallVector<Value> ps;
  for (size_t n = 0; n < t.chains(); ++n) {
    Value *at = &state[n * width];
    Value none;
    Value &m = softmax ? at[0] : none, &l = softmax ? at[1] : none;
    Value &acc = at[width - 1];
    Value s = emitScores(j0, n);
    ps.push_back(emitWeights(s, m, l, acc, n));
  }
  copyKeys(false, j0);
  waitGroups(0);
  landed(false, j0);
  for (size_t n = 0; n < t.chains(); ++n) {
    Value &acc = state[n * width + width - 1];
    acc = mma(ps[n], vTile, acc, /*transposeB=*/false);
  }
  barrier();  // every warp is done reading K(j0) and V(j0) before the next copies
  scf::YieldOp::create(b, loc, state);
  return SmallVector<Value>(loop.getResults());
}

/// FlashAttention-3's intra-warpgroup overlap, with S one tile ahead: the loop enters key
/// tile j0 with its dot products S(j0) finished, issues S(j0 + bk) = Q K(j0 + bk)^T
/// asynchronously, computes tile j0's scores and softmax while the tensor cores work, issues
/// acc += P V(j0), and waits for both. Each iteration's copies (K of the next tile, V of
/// this one) form one stage at the top of the body, which attn-gpu-pipeline double-buffers.
/// The last iteration's S runs past the key range over a zero-filled or unused tile: one
/// tile of Q K^T per query tile, never read.
SmallVector<Value> FlashDistributor::emitOverlappedLoop(Value keysFrom, Value keysTo) {
  bool softmax = bool(t.update);
  RankedTensorType sType = accType(t.blockK);
  copyKeys(true, keysFrom);
  waitGroups(0);
  landed(true, keysFrom);
  Value first = mma(qOperand, kTile, splat(sType, 0.0), /*transposeB=*/true);
  barrier();  // every warp is done reading K before the loop's copies refill the tile
  SmallVector<Value> init = initialState();
  init.push_back(first);
  auto loop = scf::ForOp::create(b, loc, keysFrom, keysTo, idx(t.blockK), init);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(loop.getBody());
  Value j0 = loop.getInductionVar();
  Value next = arith::AddIOp::create(b, loc, j0, idx(t.blockK));
  auto carried = loop.getRegionIterArgs();
  Value m = softmax ? carried[0] : Value(), l = softmax ? carried[1] : Value();
  Value acc = carried[softmax ? 2 : 0], dots = carried.back();
  copyKeys(true, next);
  copyKeys(false, j0);
  waitGroups(0);
  landed(true, next);
  landed(false, j0);
  auto ahead = MmaOp::create(b, loc, sType, qOperand, kTile, splat(sType, 0.0), Value(),
                             /*transpose_b=*/true, /*gate_blocks=*/false, MmaKindAttr(),
                             /*async=*/true);
  keyTilePrefix(j0);
  Value s = scoreOf(dots, j0);
  Value p = emitWeights(s, m, l, acc);
  auto pv = MmaOp::create(b, loc, acc.getType(), p, vTile, acc, Value(), /*transpose_b=*/false,
                          /*gate_blocks=*/false, MmaKindAttr(), /*async=*/true);
  auto done = MmaWaitOp::create(b, loc, ValueRange{ahead, pv}, /*pending=*/0);
  barrier();  // every warp is done reading K(next) and V(j0) before the next copies
  SmallVector<Value> yields;
  if (softmax)
    yields = {m, l};
  yields.push_back(done.getResult(1));
  yields.push_back(done.getResult(0));
  scf::YieldOp::create(b, loc, yields);
  return SmallVector<Value>(loop.getResults());
}

LogicalResult FlashDistributor::run() {
  func::FuncOp f = t.scores->getParentOfType<func::FuncOp>();
  for (auto [hostArg, kernelArg] : llvm::zip(f.getArguments(), kernel.getArguments()))
    map.map(hostArg, kernelArg);
  q = map.lookup(t.scores.getQ());
  k = map.lookup(t.scores.getK());
  v = map.lookup(t.matmul.getV());
  for (size_t n = 0; n < t.chains(); ++n) {
    qs.push_back(map.lookup(t.scoresOf(n).getQ()));
    ks.push_back(map.lookup(t.scoresOf(n).getK()));
  }
  elt = cast<MemRefType>(q.getType()).getElementType();
  table = t.scores.getBlockTable() ? map.lookup(t.scores.getBlockTable()) : Value();
  kernel.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({int32_t(t.blockQ / 16 * 32), 1, 1}));
  emitLaunch();

  qLen = memref::DimOp::create(b, loc, q, 2);
  kvLen = attn::buildKVLength(b, loc, k, table, t.scores.getPageSize());
  emitGrid();
  if (t.keyRange) {  // the block plan's entry of this query tile: the kernel's last argument
    attn::KeyRange range =
        loadPlanRange(b, loc, t.keyRange, kernel.getArguments().back(), batch, i0);
    map.map(t.keyRange.getLower(), range.lower);
    map.map(t.keyRange.getUpper(), range.upper);
    map.map(t.keyRange.getFullLower(), range.fullLower);
    map.map(t.keyRange.getFullUpper(), range.fullUpper);
    fullFrom = range.fullLower, fullTo = range.fullUpper;
  }
  emitSharedTiles();
  SmallVector<Region *> regions = {&t.scores.getScore(),    &t.scores.getMask(),
                                   &t.scores.getDecay(),    &t.scores.getFeatureQ(),
                                   &t.scores.getFeatureK(), &t.store.getOutput()};
  for (attn::TileScoresOp more : t.moreScores)
    regions.push_back(&more.getScore());
  regions.push_back(&t.store.getMix());
  for (Region *region : regions)
    if (failed(mapCaptures(*region)))
      return failure();
  for (Value scale : {t.scores.getKScale(), t.matmul.getVScale()})
    if (scale && failed(materialize(scale)))
      return failure();
  // The key loop keeps the tiled level's bounds (attn-mask-bounds may have narrowed them).
  if (failed(materialize(t.keyLoop.getLowerBound())) ||
      failed(materialize(t.keyLoop.getUpperBound())))
    return failure();
  Value keysFrom = map.lookup(t.keyLoop.getLowerBound());
  Value keysTo = map.lookup(t.keyLoop.getUpperBound());

  // Prologue: the Q tile. Copies are synchronous here (each waited for before its tile is
  // read); attn-gpu-pipeline overlaps them with the computation.
  CopyQueryTileOp::create(b, loc, q, qTile, batch, head, i0, b.getI64IntegerAttr(t.pack));
  waitGroups(0);
  if (!t.scores.getFeatureQ().empty()) {
    auto mapOp = MapTileOp::create(b, loc, qTile);
    cloneRegion(t.scores.getFeatureQ(), mapOp.getFeature());
    barrier();
  }
  if (qNorms) {  // dot(q, q) of the tile's rows, once
    RowSquaresOp::create(b, loc, qTile, qNorms);
    barrier();
  }
  if (cumQ) {
    auto prefix = [&](Value cum, Value p0, Value carry, bool totalOnly) {
      auto op = LogDecayPrefixOp::create(b, loc, cum, batch, head, p0, qLen, carry, Value(),
                                         totalOnly, /*relative=*/false);
      cloneRegion(t.scores.getDecay(), op.getDecay());
    };
    prefix(cumQ, i0, Value(), false);
    prefix(keyBase, keysFrom, keyBase, true);
  }
  // several scores: the other queries' tiles (each input once)
  for (size_t n = 1; n < t.chains(); ++n)
    if (firstOf(qTiles, n) == n)
      CopyQueryTileOp::create(b, loc, qs[n], qTiles[n], batch, head, i0,
                              b.getI64IntegerAttr(t.pack));
  if (t.chains() > 1)
    waitGroups(0);
  qOperand = LoadOperandOp::create(
      b, loc, fragmentType({t.blockQ, t.headDim}, elt, FragmentKind::operand_a), qTile);
  qOperands = {qOperand};
  for (size_t n = 1; n < t.chains(); ++n) {
    size_t m = firstOf(qTiles, n);
    qOperands.push_back(m < n ? qOperands[m]
                              : LoadOperandOp::create(b, loc,
                                                      fragmentType({t.blockQ, t.headDim}, elt,
                                                                   FragmentKind::operand_a),
                                                      qTiles[n]));
  }
  for (size_t n = 0; n < t.chains(); ++n)
    scoreScales.push_back(t.update && !t.update.getUnifiedMax() && !cumQ
                              ? attn::positiveScoreScale(t.scoresOf(n).getScore())
                              : 0);

  SmallVector<Value> results = overlap ? emitOverlappedLoop(keysFrom, keysTo)
                                       : emitSerialLoop(keysFrom, keysTo);
  emitEpilogue(results);
  gpu::ReturnOp::create(b, loc);
  return success();
}
