// attn-gpu-distribute, backward strategy: the dK/dV kernel (one block per key tile, kv head and
// batch walking the query tiles of its GQA group, key-major) and its reading of the block plan.
#include "codegen/gpu/transforms/GradDistributor.h"
#include "codegen/gpu/transforms/PlanDistribute.h"
#include "dialect/transforms/Patterns.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attngpu;
using namespace mlir::attngpu::detail;
using attn::AttentionGradOp;
using attn::NormKind;

/// The dK/dV kernel: grid (key tiles, kv heads, batch); key-major tiles.
LogicalResult GradDistributor::emitDKDV(gpu::GPUFuncOp kernel) {
  if (failed(enter(kernel)))
    return failure();
  if (mapped)
    dout = dyWork;  // the first kernel's dy takes dout's place
  KeyTiles t;
  t.j0 = mulc(gpu::BlockIdOp::create(b, loc, gpu::Dimension::x), s.keyRows);
  t.kvHead = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  t.kTile = sharedTile(s.keyRows, headDim, elt, true);
  t.vTile = sharedTile(s.keyRows, valueDim, elt, true);
  t.qTile = sharedTile(s.queryCols, headDim, elt, true);
  t.doTile = sharedTile(s.queryCols, valueDim, elt, true);
  t.lseVec = softmax ? sharedTile(s.queryCols, 0, b.getF32Type(), false) : Value();
  t.dVec = softmax ? sharedTile(s.queryCols, 0, b.getF32Type(), false) : Value();
  t.dsTile = atomic ? sharedTile(s.keyRows, s.queryCols, elt, true) : Value();  // dS, 16 bits
  qNorms = rowNorms ? sharedTile(s.queryCols, 0, b.getF32Type(), false) : Value();
  kNorms = rowNorms ? sharedTile(s.keyRows, 0, b.getF32Type(), false) : Value();
  if (forget) {  // per head: the key tile's cumulative log decays, the query tiles' in turn
    cumQ = sharedTile(s.queryCols, 0, b.getF32Type(), false);
    cumK = sharedTile(s.keyRows, 0, b.getF32Type(), false);
  }
  copyKeyTiles({{k, t.kTile}, {v, t.vTile}}, t.kvHead, t.j0);

  Value from, to;
  std::tie(from, to) = maskedQueries(t.j0);
  // A mask that reads no head: the query tiles whose planned key range meets this key tile.
  bool perHead = keyRange && attn::maskReadsHead(keyRange.getMask());
  if (keyRange && !perHead)
    std::tie(from, to) = plannedQueries(t.j0, from, to);
  // dK per gradient buffer (the scores that read its tensor, one K tile), dV over all scores.
  llvm::MapVector<Value, SmallVector<size_t>> buffers;
  for (auto [n, sc] : llvm::enumerate(scores))
    buffers[sc.dk].push_back(n);
  Value dv = splat(accOf(s.keyRows, valueDim), 0);
  for (auto [g, entry] : llvm::enumerate(buffers)) {
    auto &[buffer, reading] = entry;
    if (g > 0)  // every warp passed the last query tile's barrier: K's tile may be replaced
      copyKeyTiles({{map.lookup(scores[reading.front()].k), t.kTile}}, t.kvHead, t.j0);
    SmallVector<Value> carried = {splat(accOf(s.keyRows, headDim), 0), dv};
    if (rowNorms)  // each key's sum over the queries of d(k.k), per-thread partials
      carried.push_back(splat(rowsOf(s.keyRows, b.getF32Type()), 0));
    for (size_t n : reading)
      carried = emitKeyMajorScore(n, carried, t, from, to, perHead);
    Value dk = carried[0];
    if (rowNorms)  // + 2 (sum_i d(k.k)) k
      dk = addNormGrad(dk, carried[2], t.kTile, s.keyRows, headDim);
    StoreTileOp::create(b, loc, dk, map.lookup(buffer), batch, t.kvHead, t.j0, kvLen,
                        ValueRange{}, Value(), b.getI64IntegerAttr(1));
    dv = carried[1];
  }
  StoreTileOp::create(b, loc, dv, map.lookup(op.getDv()), batch, t.kvHead, t.j0, kvLen,
                      ValueRange{}, Value(), b.getI64IntegerAttr(1));
  gpu::ReturnOp::create(b, loc);
  int64_t kArg = cast<BlockArgument>(op.getK()).getArgNumber();
  setLaunch(kernel, s.keyRows / 16 * 32,
            {{kArg, 2, 1, s.keyRows}, {kArg, 1, 1, 1}, {kArg, 0, 1, 1}}, 0,
            {{"block_q", s.queryCols}, {"block_k", s.keyRows}, {"warps", s.keyRows / 16}});
  kernel.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({int32_t(s.keyRows / 16 * 32), 1, 1}));
  return success();
}

SmallVector<Value> GradDistributor::emitKeyMajorScore(size_t n, ValueRange carried,
                                                      const KeyTiles &t, Value from, Value to,
                                                      bool perHead) {
  RankedTensorType tileAcc = accOf(s.keyRows, s.queryCols);
  Value firstHead = mulc(t.kvHead, op.getGroup());
  Value qn = map.lookup(scores[n].q), lseN = softmax ? map.lookup(scores[n].lse) : Value();
  auto heads = scf::ForOp::create(b, loc, firstHead,
                                  arith::AddIOp::create(b, loc, firstHead, idx(op.getGroup())),
                                  idx(1), carried);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(heads.getBody());
  Value h = heads.getInductionVar(), at = slot(n, h);
  SmallVector<Value> queryCarried(heads.getRegionIterArgs());
  if (forget)  // the query head's cumulative log decays, as the dQ kernel wrote them (the
               // next barrier is the first query tile's, after its copies)
    CopyRowsOp::create(b, loc, sums, cumK, batch, decaySlot(h, 2), t.j0, qLen,
                       b.getF32FloatAttr(0));
  if (decayParams)  // each key's sum of dS over the queries, per-thread partials
    queryCarried.push_back(splat(rowsOf(s.keyRows, b.getF32Type()), 0));
  auto queries = scf::ForOp::create(b, loc, from, to, idx(s.queryCols), queryCarried);
  {
    OpBuilder::InsertionGuard inner(b);
    b.setInsertionPointToStart(queries.getBody());
    Value i0 = queries.getInductionVar();
    Value dk = queries.getRegionIterArgs()[0], dv = queries.getRegionIterArgs()[1];
    CopyQueryTileOp::create(b, loc, qn, t.qTile, batch, h, i0, b.getI64IntegerAttr(1));
    CopyQueryTileOp::create(b, loc, dout, t.doTile, batch, at, i0, b.getI64IntegerAttr(1));
    waitGroups(0);
    if (rowNorms)
      squareRows(t.qTile, qNorms);
    Value lseAt, dAt;
    if (softmax) {
      CopyRowsOp::create(b, loc, lseN, t.lseVec, batch, h, i0, qLen, b.getF32FloatAttr(INFINITY));
      CopyRowsOp::create(b, loc, delta, t.dVec, batch, at, i0, qLen, b.getF32FloatAttr(0));
      if (forget)  // the query tile's cumulative log decays
        CopyRowsOp::create(b, loc, sums, cumQ, batch, decaySlot(h, 2), i0, qLen,
                           b.getF32FloatAttr(0));
      barrier();
      lseAt = LoadColumnsOp::create(b, loc, tileAcc, t.lseVec);
      dAt = LoadColumnsOp::create(b, loc, tileAcc, t.dVec);
    }
    Value dot = mma(loadOperand(t.kTile, s.keyRows, headDim), t.qTile, splat(tileAcc, 0), true);
    Value full;
    if (keyRange && !perHead && s.blockQ % s.queryCols == 0) {  // the query tile's plan entry
      Value qt = arith::DivUIOp::create(b, loc, i0, idx(s.blockQ));
      attn::KeyRange r = planEntry(b, loc, keyRange, plan, batch, idx(0), qt);
      full = fullTile(r.fullLower, r.fullUpper, t.j0, s.keyRows);
    }
    auto score = ScoreOp::create(b, loc, tileAcc, dot, batch, h, i0, t.j0, qLen, kvLen, cumQ,
                                 cumK, Value(), qNorms, kNorms, full,
                                 b.getF32FloatAttr(-INFINITY), b.getI64IntegerAttr(1),
                                 b.getUnitAttr());
    score.setLogDecay(forget);
    cloneScore(score, n);
    Value dP = mma(loadOperand(t.vTile, s.keyRows, valueDim), t.doTile, splat(tileAcc, 0), true);
    auto [p, ds] = probabilities(score, dP, lseAt, dAt);
    dv = mma(toOperand(p, elt), t.doTile, dv, false);
    SmallVector<Value> grads = scoreGrad(n, dot, ds, h, i0, t.j0, true);
    Value dDot = grads[0];
    if (atomic)  // dQ of the query tile += dS^T K, the rows of all warps' keys summed
      ShareTileOp::create(b, loc, dDot, t.dsTile);
    dk = mma(toOperand(dDot, elt), t.qTile, dk, false);
    if (atomic) {
      barrier();
      AtomicAddProductOp::create(b, loc, t.dsTile, t.kTile, dqAcc, batch, h, i0, qLen);
    }
    barrier();  // every warp is done with this query tile before the next copies
    SmallVector<Value> next = {dk, dv};
    if (rowNorms)
      next.push_back(fadd(queries.getRegionIterArgs()[2], rowReduce(ReduceKind::sum, grads[2])));
    if (decayParams)
      next.push_back(fadd(queries.getRegionIterArgs().back(), rowReduce(ReduceKind::sum, ds)));
    scf::YieldOp::create(b, loc, next);
  }
  ValueRange results = queries.getResults();
  if (decayParams) {  // column sums at heads + h, for the keys below both lengths
    storeSums(results.back(), decaySlot(h, 1), t.j0, arith::MinUIOp::create(b, loc, kvLen, qLen));
    results = results.drop_back();
  }
  scf::YieldOp::create(b, loc, results);
  return SmallVector<Value>(heads.getResults());
}

/// The queries that may see a key of the tile [j0, j0 + keyRows): the mask's bounds j >= i + c
/// or j <= i + c (coefficient 1 on i) give i <= j - c and i >= j - c.
std::pair<Value, Value> GradDistributor::maskedQueries(Value j0) {
  Value from = idx(0), to = qLen;
  Value jLast = arith::AddIOp::create(b, loc, j0, idx(s.keyRows - 1));
  if (!op.getMask().empty()) {
    bool exact;
    for (const attn::KeyBound &bd : attn::analyzeMaskBounds(op.getMask(), exact)) {
      if (bd.a != 1)
        continue;
      Value c = attn::keyBoundEdge(b, loc, bd, idx(0), op.getMask(), batch, map);
      if (bd.lower) {  // i <= jLast - c
        Value end = arith::AddIOp::create(b, loc, arith::SubIOp::create(b, loc, jLast, c), idx(1));
        to = arith::MinSIOp::create(b, loc, to, arith::MaxSIOp::create(b, loc, end, idx(0)));
      } else {  // i >= j0 - c, floored to a whole query tile
        Value first = arith::MaxSIOp::create(b, loc, arith::SubIOp::create(b, loc, j0, c), idx(0));
        from = arith::MaxSIOp::create(
            b, loc, from,
            mulc(arith::DivUIOp::create(b, loc, first, idx(s.queryCols)), s.queryCols));
      }
    }
  }
  return {from, to};
}

/// Keys [j0, j0 + keys) lie inside the plan's full range [fullFrom, fullTo).
Value GradDistributor::fullTile(Value fullFrom, Value fullTo, Value j0, int64_t keys) {
  return arith::AndIOp::create(
      b, loc, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sle, fullFrom, j0),
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sle,
                            arith::AddIOp::create(b, loc, j0, idx(keys)), fullTo));
}

/// The dK/dV kernel's query loop narrowed to the plan's query tiles whose key range meets keys
/// [j0, j0 + keyRows): each warp's lanes scan the entries, a shuffle reduction gives every warp
/// the first and last such tile (no shared memory, no barrier).
std::pair<Value, Value> GradDistributor::plannedQueries(Value j0, Value from, Value to) {
  Value tiles = arith::CeilDivUIOp::create(b, loc, qLen, idx(s.blockQ));
  Value lane = arith::RemUIOp::create(b, loc, gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x),
                                      idx(32));
  Value jEnd = arith::AddIOp::create(b, loc, j0, idx(s.keyRows));
  auto loop = scf::ForOp::create(b, loc, lane, tiles, idx(32), ValueRange{tiles, idx(0)});
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value t = loop.getInductionVar();
    Value first = planValue(b, loc, plan, batch, idx(0), t, 0);
    Value end = planValue(b, loc, plan, batch, idx(0), t, 1);
    Value meets = arith::AndIOp::create(
        b, loc, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, first, jEnd),
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sgt, end, j0));
    auto acc = loop.getRegionIterArgs();
    scf::YieldOp::create(
        b, loc,
        ValueRange{sel(meets, arith::MinUIOp::create(b, loc, acc[0], t), acc[0]),
                   sel(meets, arith::AddIOp::create(b, loc, t, idx(1)), acc[1])});
  }
  Value lo = arith::IndexCastOp::create(b, loc, b.getI32Type(), loop.getResult(0));
  Value hi = arith::IndexCastOp::create(b, loc, b.getI32Type(), loop.getResult(1));
  lo = warpReduce(b, loc, lo, arith::AtomicRMWKind::mins);
  hi = warpReduce(b, loc, hi, arith::AtomicRMWKind::maxs);
  auto toIndex = [&](Value x) { return arith::IndexCastOp::create(b, loc, b.getIndexType(), x); };
  // Tiles [lo, hi) of blockQ rows, as whole query steps of the loop (no tile: an empty range).
  Value start = mulc(arith::DivUIOp::create(b, loc, mulc(toIndex(lo), s.blockQ), idx(s.queryCols)),
                     s.queryCols);
  from = arith::MaxSIOp::create(b, loc, from, start);
  to = arith::MinSIOp::create(b, loc, to, mulc(toIndex(hi), s.blockQ));
  return {from, to};
}

/// A mask that reads params and is not exactly affine: the classification of the dQ kernel's
/// query tiles (an attn.tile_key_range in the host function, where its operands live).
void GradDistributor::planKeyRanges() {
  if (op.getMask().empty() || !attn::maskReadsParams(op.getMask()))
    return;
  bool exact = false;
  attn::analyzeMaskBounds(op.getMask(), exact);
  if (exact)
    return;
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(op);
  // Batch, head and query tile: placeholders the plan kernel maps to its own (three values).
  Value batch0 = idx(0), head0 = idx(0), row0 = idx(0);
  Value hostQLen = memref::DimOp::create(b, loc, op.getQ(), 2);
  Value hostKvLen = memref::DimOp::create(b, loc, op.getK(), 2);
  Type index = b.getIndexType();
  keyRange = attn::TileKeyRangeOp::create(b, loc, index, index, index, index, batch0, head0, row0,
                                          hostQLen, hostKvLen, uint64_t(s.blockQ), uint64_t(1),
                                          uint64_t(s.blockK));
  IRMapping none;
  op.getMask().cloneInto(&keyRange.getMask(), none);
}
