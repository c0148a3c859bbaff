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
  Value j0 = mulc(gpu::BlockIdOp::create(b, loc, gpu::Dimension::x), s.keyRows);
  Value kvHead = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  Value kTile = sharedTile(s.keyRows, headDim, elt, true);
  Value vTile = sharedTile(s.keyRows, valueDim, elt, true);
  Value qTile = sharedTile(s.queryCols, headDim, elt, true);
  Value doTile = sharedTile(s.queryCols, valueDim, elt, true);
  Value lseVec = softmax ? sharedTile(s.queryCols, 0, b.getF32Type(), false) : Value();
  Value dVec = softmax ? sharedTile(s.queryCols, 0, b.getF32Type(), false) : Value();
  Value dsTile = atomic ? sharedTile(s.keyRows, s.queryCols, elt, true) : Value();  // dS, 16 bits
  qNorms = rowNorms ? sharedTile(s.queryCols, 0, b.getF32Type(), false) : Value();
  kNorms = rowNorms ? sharedTile(s.keyRows, 0, b.getF32Type(), false) : Value();
  copyKeyTiles(kTile, vTile, kvHead, j0);

  Value from, to;
  std::tie(from, to) = maskedQueries(j0);
  // A mask that reads no head: the query tiles whose planned key range meets this key tile.
  bool perHead = keyRange && attn::maskReadsHead(keyRange.getMask());
  if (keyRange && !perHead)
    std::tie(from, to) = plannedQueries(j0, from, to);
  RankedTensorType kdAcc = accOf(s.keyRows, headDim), kvAcc = accOf(s.keyRows, valueDim);
  RankedTensorType tileAcc = accOf(s.keyRows, s.queryCols);
  Value firstHead = mulc(kvHead, op.getGroup());
  SmallVector<Value> inits = {splat(kdAcc, 0), splat(kvAcc, 0)};
  if (rowNorms)  // each key's sum over the queries of d(k.k), per-thread partials
    inits.push_back(splat(rowsOf(s.keyRows, b.getF32Type()), 0));
  auto heads = scf::ForOp::create(b, loc, firstHead,
                                  arith::AddIOp::create(b, loc, firstHead, idx(op.getGroup())),
                                  idx(1), inits);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(heads.getBody());
    Value h = heads.getInductionVar();
    auto queries = scf::ForOp::create(b, loc, from, to, idx(s.queryCols),
                                      heads.getRegionIterArgs());
    {
      OpBuilder::InsertionGuard inner(b);
      b.setInsertionPointToStart(queries.getBody());
      Value i0 = queries.getInductionVar();
      Value dk = queries.getRegionIterArgs()[0], dv = queries.getRegionIterArgs()[1];
      CopyQueryTileOp::create(b, loc, q, qTile, batch, h, i0, b.getI64IntegerAttr(1));
      CopyQueryTileOp::create(b, loc, dout, doTile, batch, h, i0, b.getI64IntegerAttr(1));
      waitGroups(0);
      if (rowNorms)
        squareRows(qTile, qNorms);
      Value lseAt, dAt;
      if (softmax) {
        CopyRowsOp::create(b, loc, lse, lseVec, batch, h, i0, qLen, b.getF32FloatAttr(INFINITY));
        CopyRowsOp::create(b, loc, delta, dVec, batch, h, i0, qLen, b.getF32FloatAttr(0));
        barrier();
        lseAt = LoadColumnsOp::create(b, loc, tileAcc, lseVec);
        dAt = LoadColumnsOp::create(b, loc, tileAcc, dVec);
      }
      Value dot = mma(loadOperand(kTile, s.keyRows, headDim), qTile, splat(tileAcc, 0), true);
      Value full;
      if (keyRange && !perHead && s.blockQ % s.queryCols == 0) {  // the query tile's plan entry
        Value qt = arith::DivUIOp::create(b, loc, i0, idx(s.blockQ));
        attn::KeyRange r = planEntry(b, loc, keyRange, plan, batch, idx(0), qt);
        full = fullTile(r.fullLower, r.fullUpper, j0, s.keyRows);
      }
      auto score = ScoreOp::create(b, loc, tileAcc, dot, batch, h, i0, j0, qLen, kvLen, Value(),
                                   Value(), Value(), qNorms, kNorms, full,
                                   b.getF32FloatAttr(-INFINITY),
                                   b.getI64IntegerAttr(1), b.getUnitAttr());
      cloneScore(score);
      Value dP = mma(loadOperand(vTile, s.keyRows, valueDim), doTile, splat(tileAcc, 0), true);
      auto [p, ds] = probabilities(score, dP, lseAt, dAt);
      dv = mma(toOperand(p, elt), doTile, dv, false);
      SmallVector<Value> grads = scoreGrad(dot, ds, h, i0, j0, true);
      Value dDot = grads[0];
      if (atomic)  // dQ of the query tile += dS^T K, the rows of all warps' keys summed
        ShareTileOp::create(b, loc, dDot, dsTile);
      dk = mma(toOperand(dDot, elt), qTile, dk, false);
      if (atomic) {
        barrier();
        AtomicAddProductOp::create(b, loc, dsTile, kTile, dqAcc, batch, h, i0, qLen);
      }
      barrier();  // every warp is done with this query tile before the next copies
      SmallVector<Value> carried = {dk, dv};
      if (rowNorms)
        carried.push_back(
            fadd(queries.getRegionIterArgs()[2], rowReduce(ReduceKind::sum, grads[2])));
      scf::YieldOp::create(b, loc, carried);
    }
    scf::YieldOp::create(b, loc, queries.getResults());
  }
  Value dkFinal = heads.getResult(0);
  if (rowNorms)  // + 2 (sum_i d(k.k)) k
    dkFinal = addNormGrad(dkFinal, heads.getResult(2), kTile, s.keyRows, headDim);
  for (auto [acc, grad] : {std::pair(dkFinal, op.getDk()),
                           std::pair(heads.getResult(1), op.getDv())})
    StoreTileOp::create(b, loc, acc, map.lookup(grad), batch, kvHead, j0, kvLen, ValueRange{},
                        Value(), b.getI64IntegerAttr(1));
  gpu::ReturnOp::create(b, loc);
  int64_t kArg = cast<BlockArgument>(op.getK()).getArgNumber();
  setLaunch(kernel, s.keyRows / 16 * 32,
            {{kArg, 2, 1, s.keyRows}, {kArg, 1, 1, 1}, {kArg, 0, 1, 1}}, 0,
            {{"block_q", s.queryCols}, {"block_k", s.keyRows}, {"warps", s.keyRows / 16}});
  kernel.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({int32_t(s.keyRows / 16 * 32), 1, 1}));
  return success();
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
