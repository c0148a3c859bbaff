// attn-gpu-distribute, flash strategy: the attn_gpu ops of each tiled op of a flash tile (grid,
// shared tiles, copies, scores, the online softmax, the epilogue, the launch ABI).
#include "codegen/gpu/transforms/ChunkSchedule.h"
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

LogicalResult FlashDistributor::materialize(Value value) {
  Value out = t.store.getOut();
  return materializeCapture(b, map, value, out, t.scores);
}

LogicalResult FlashDistributor::mapCaptures(Region &region) {
  Value out = t.store.getOut();
  return materializeCaptures(b, map, region, out, t.scores);
}

void FlashDistributor::cloneRegion(Region &from, Region &to) {
  cloneRegionInto(b, from, to, map);
}

/// Grid: x = split * query tiles + query tile, y = head (kv head when packed), z = batch.
void FlashDistributor::emitGrid() {
  Value rowsLen = t.pack > 1 ? mulc(qLen, t.pack) : qLen;
  Value blockX = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  if (t.splitLoop) {
    Value tiles = arith::CeilDivUIOp::create(b, loc, rowsLen, idx(t.blockQ));
    split = arith::DivUIOp::create(b, loc, blockX, tiles);
    blockX = arith::RemUIOp::create(b, loc, blockX, tiles);
    map.map(t.splitLoop.getInductionVar(), split);
  }
  i0 = mulc(blockX, t.blockQ);
  batch = gpu::BlockIdOp::create(b, loc, gpu::Dimension::z);
  if (t.pack > 1) {
    kvHead = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
    head = mulc(kvHead, t.pack);  // the group's first head
  } else {
    head = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
    kvHead = arith::DivUIOp::create(b, loc, head, idx(t.group));
  }
  map.map(t.scores.getB(), batch);
  map.map(t.scores.getH(), head);
  map.map(t.scores.getHk(), kvHead);
  map.map(t.scores.getI0(), i0);
}

/// Q, K and V tiles (16-bit, padded rows), the staging tiles of quantised K/V (as stored) and
/// the cumulative log decays of a per-step decay (f32).
void FlashDistributor::emitSharedTiles() {
  qTile = sharedTile(t.blockQ, t.headDim, elt, true);
  kTile = sharedTile(t.blockK, t.headDim, elt, true);
  vTile = sharedTile(t.blockK, t.valueDim, elt, true);
  qTiles = {qTile}, kTiles = {kTile};
  // several scores: a tile per other input (an input read by an earlier score shares its tile)
  auto tileOf = [&](ArrayRef<Value> inputs, ArrayRef<Value> tiles, size_t n, int64_t rows) {
    size_t m = firstOf(inputs, n);
    return m < n ? tiles[m] : sharedTile(rows, t.headDim, elt, true);
  };
  for (size_t n = 1; n < t.chains(); ++n) {
    qTiles.push_back(tileOf(qs, qTiles, n, t.blockQ));
    kTiles.push_back(tileOf(ks, kTiles, n, t.blockK));
  }
  auto stage = [&](Value global, int64_t cols) {
    return sharedTile(t.blockK, cols, cast<MemRefType>(global.getType()).getElementType(), false);
  };
  if (t.scores.getKScale())
    kStage = stage(k, t.headDim / t.packedK);
  if (t.matmul.getVScale())
    vStage = stage(v, t.valueDim / t.packedV);
  if (t.scores.getScore().front().getNumArguments() == 7) {  // the row norms the score reads
    qNorms = sharedTile(t.blockQ, 0, b.getF32Type(), false);
    kNorms = sharedTile(t.blockK, 0, b.getF32Type(), false);
  }
  if (!t.scores.getDecay().empty()) {
    cumQ = sharedTile(t.blockQ, 0, b.getF32Type(), false);
    cumK = sharedTile(t.blockK, 0, b.getF32Type(), false);
    keyBase = sharedTile(1, 0, b.getF32Type(), false);
  }
}

/// Starts the copy of key tile j0 of K (isKey; with several scores every score's K, each
/// input once) or V into its tile, or its staging tile.
void FlashDistributor::copyKeys(bool isKey, Value j0) {
  for (size_t n = 0; n < (isKey ? t.chains() : 1); ++n) {
    if (firstOf(kTiles, n) < n)
      continue;
    Value global = isKey ? ks[n] : v;
    Value dest = isKey ? (kStage ? kStage : kTiles[n]) : (vStage ? vStage : vTile);
    // Softmax kernels copy interior 16-bit tiles without row checks (fewer registers and
    // instructions: 1.00-1.11x, measured 2026-12-04); the others keep one predicated copy
    // (other kernels lost registers to the second copy path, int8 decode 4-7% of its speed).
    auto copy = CopyKeyTileOp::create(b, loc, global, dest, batch, kvHead, j0, kvLen, table,
                                      Value(), Value(), Value(),
                                      b.getI64IntegerAttr(t.scores.getPageSize()));
    if (t.update && !table && dest != kStage && dest != vStage)
      copy.setInterior(true);
  }
}

/// After K (V) of key tile j0 has landed: dequantise it, and apply K's feature map.
void FlashDistributor::landed(bool isKey, Value j0) {
  Value stage = isKey ? kStage : vStage;
  if (stage) {
    Value scale = map.lookup(isKey ? t.scores.getKScale() : t.matmul.getVScale());
    auto axes = isKey ? t.scores.getKScaleAxes() : t.matmul.getVScaleAxes();
    int64_t group = isKey ? t.scores.getKScaleGroup() : t.matmul.getVScaleGroup();
    DequantizeOp::create(b, loc, stage, isKey ? kTile : vTile, scale, batch, kvHead, j0, kvLen,
                         b.getDenseI64ArrayAttr(axes), b.getI64IntegerAttr(group),
                         b.getI64IntegerAttr(isKey ? t.packedK : t.packedV));
    barrier();
  }
  if (isKey && !t.scores.getFeatureK().empty()) {
    auto mapOp = MapTileOp::create(b, loc, kTile);
    cloneRegion(t.scores.getFeatureK(), mapOp.getFeature());
    barrier();
  }
  if (isKey && kNorms) {  // dot(k, k) of the tile's keys, read by the score op
    RowSquaresOp::create(b, loc, kTile, kNorms);
    barrier();
  }
}

/// S = Q K^T on tensor cores, then the mask and score regions on the accumulators.
Value FlashDistributor::emitScores(Value j0, size_t n) {
  return scoreOf(mma(qOperands[n], kTiles[n], splat(accType(t.blockK), 0.0), /*transposeB=*/true),
                 j0, n);
}

/// The mask and score regions (score n's) on the dot products `s` of key tile j0.
Value FlashDistributor::scoreOf(Value s, Value j0, size_t n) {
  // A block plan's full range: keys every row of the tile allows, no mask evaluation there.
  Value full;
  if (fullFrom)
    full = arith::AndIOp::create(
        b, loc, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sle, fullFrom, j0),
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sle,
                              arith::AddIOp::create(b, loc, j0, idx(t.blockK)), fullTo));
  auto score = ScoreOp::create(b, loc, accType(t.blockK), s, batch, head, i0, j0, qLen, kvLen,
                               cumQ, cumK, /*key_scale=*/Value(), qNorms, kNorms, full,
                               t.scores.getFillAttr(),
                               b.getI64IntegerAttr(t.pack));
  score.setLogDecay(cumQ && t.scores.getLogDecay());
  cloneRegion(t.scoresOf(n).getScore(), score.getScore());
  cloneRegion(t.scores.getMask(), score.getMask());
  if (scoreScales[n] > 0) {  // the score op yields the dot itself; emitOnlineUpdate scales it
    Block &body = score.getScore().front();
    auto yield = cast<YieldOp>(body.getTerminator());
    yield->setOperand(0, body.getArgument(4));
    SmallVector<Operation *> ops;
    for (Operation &op : body.without_terminator())
      ops.push_back(&op);
    for (Operation *op : llvm::reverse(ops))
      if (op->use_empty() && isMemoryEffectFree(op))
        op->erase();  // the scale's computation
  }
  return score;
}

/// attn.tile_online_update, step by step: m' = max(m, rowmax s); alpha = exp(m - m');
/// p = exp(s - m'); l = l alpha + rowsum p; acc *= alpha (rows with m' = -inf use base 0).
/// Exponentials are base 2 with log2(e) folded in; l stays a per-thread partial sum.
void FlashDistributor::emitOnlineUpdate(Value &s, Value &m, Value &l, Value &acc, size_t n) {
  RankedTensorType rows = rowsType(b.getF32Type());
  Value rowMax = quadReduce(ReduceKind::max, rowReduce(ReduceKind::max, s));
  double scoreScale = scoreScales[n];
  double scale = scoreScale > 0 ? scoreScale : 1;  // s is dot (the score is dot * scale)
  if (scoreScale > 0)
    rowMax = fmul(rowMax, splat(rows, scale));
  Value mx = fmax(m, rowMax);
  Value noKey = cmp(arith::CmpFPredicate::OEQ, mx, splat(rows, -INFINITY));
  Value base = fmul(sel(noKey, splat(rows, 0), mx), splat(rows, kLog2e));
  Value alpha = exp2(fsub(fmul(m, splat(rows, kLog2e)), base));
  s = exp2(fsub(fmul(s, splat(accType(t.blockK), scale * kLog2e)), broadcast(base, t.blockK)));
  l = fadd(fmul(l, alpha), rowReduce(ReduceKind::sum, s));
  m = mx;
  acc = fmul(acc, broadcast(alpha, t.valueDim));
}

/// FlashDecoding++'s unified max M: when every score of the warp's tile lies in [m - range, m]
/// for its row's current (finite) max m, exp(s - m) needs no max reduction and acc no
/// rescaling (one warp vote decides); otherwise the safe update, where a row without mass yet
/// (l = 0) starts at max(M, its max), or at its max when that is far below M.
void FlashDistributor::emitUnifiedUpdate(Value &s, Value &m, Value &l, Value &acc,
                                         float unified) {
  RankedTensorType rows = rowsType(b.getF32Type());
  Value hi = rowReduce(ReduceKind::max, s), lo = rowReduce(ReduceKind::min, s);
  Value inRange = arith::AndIOp::create(
      b, loc, cmp(arith::CmpFPredicate::OLE, hi, m),
      arith::AndIOp::create(
          b, loc, cmp(arith::CmpFPredicate::OGE, lo, fsub(m, splat(rows, attn::kUnifiedMaxRange))),
          cmp(arith::CmpFPredicate::ONE, m, splat(rows, -INFINITY))));
  Value all = VoteAllOp::create(b, loc, b.getI1Type(), inRange);
  SmallVector<Type> types = {m.getType(), l.getType(), s.getType(), acc.getType()};
  auto branch = scf::IfOp::create(b, loc, types, all, /*withElseRegion=*/true);
  for (bool fast : {true, false}) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(fast ? branch.thenBlock() : branch.elseBlock());
    Value bm = m, bl = l, bs = s, bacc = acc;
    if (fast) {
      Value base = fmul(bm, splat(rows, kLog2e));
      bs = exp2(fsub(fmul(bs, splat(accType(t.blockK), kLog2e)), broadcast(base, t.blockK)));
      bl = fadd(bl, rowReduce(ReduceKind::sum, bs));
    } else {
      Value rowMax = quadReduce(ReduceKind::max, rowReduce(ReduceKind::max, bs));
      Value mx = fmax(bm, rowMax);
      Value fresh = cmp(arith::CmpFPredicate::OEQ, quadReduce(ReduceKind::sum, bl),
                        splat(rows, 0));
      Value low = cmp(arith::CmpFPredicate::OLT, rowMax,
                      splat(rows, unified - attn::kUnifiedMaxRange));
      mx = sel(fresh, sel(low, rowMax, fmax(splat(rows, unified), rowMax)), mx);
      Value noKey = cmp(arith::CmpFPredicate::OEQ, mx, splat(rows, -INFINITY));
      Value base = fmul(sel(noKey, splat(rows, 0), mx), splat(rows, kLog2e));
      Value alpha = exp2(fsub(fmul(bm, splat(rows, kLog2e)), base));
      alpha = sel(fresh, splat(rows, 0), alpha);
      bs = exp2(fsub(fmul(bs, splat(accType(t.blockK), kLog2e)), broadcast(base, t.blockK)));
      bl = fadd(fmul(bl, alpha), rowReduce(ReduceKind::sum, bs));
      bm = mx;
      bacc = fmul(bacc, broadcast(alpha, t.valueDim));
    }
    scf::YieldOp::create(b, loc, ValueRange{bm, bl, bs, bacc});
  }
  m = branch.getResult(0), l = branch.getResult(1), s = branch.getResult(2);
  acc = branch.getResult(3);
}

void FlashDistributor::emitStores(Value o, ArrayRef<Value> lses, bool toPartial) {
  Value lse = lses.empty() ? Value() : lses.front();
  SmallVector<Value, 1> splitIndex;  // owned: a ValueRange of a braced list would dangle
  if (toPartial)
    splitIndex.push_back(split);
  Value out = map.lookup(toPartial ? t.store.getPartOut() : t.store.getOut());
  StoreTileOp::create(b, loc, o, out, batch, head, i0, qLen, splitIndex, /*col0=*/Value(),
                      b.getI64IntegerAttr(t.pack));
  Value lseOut = toPartial ? map.lookup(t.store.getPartLse())
                           : (t.store.getLse() ? map.lookup(t.store.getLse()) : Value());
  if (lse && lseOut)
    StoreRowsOp::create(b, loc, lse, lseOut, batch, head, i0, qLen, splitIndex,
                        b.getI64IntegerAttr(t.pack));
  for (auto [n, more] : llvm::enumerate(t.store.getMoreLse()))  // several scores' lses
    StoreRowsOp::create(b, loc, lses[n + 1], map.lookup(more), batch, head, i0, qLen,
                        splitIndex, b.getI64IntegerAttr(t.pack));
}

/// attn.tile_store: out = acc / l (0 for rows with no allowed key), lse = m + ln(l); with
/// split-KV and S > 1 the same values go to the split's partial buffers. `results` are the
/// key loop's: (m, l, acc) per score for softmax, else acc. Several scores: each score's row
/// and lse, then the rows mixed element by element (the store's mix region).
void FlashDistributor::emitEpilogue(ArrayRef<Value> results) {
  SmallVector<Value> os, lses;
  for (size_t n = 0; n < t.chains(); ++n) {
    Value m = t.update ? results[3 * n] : Value(), l = t.update ? results[3 * n + 1] : Value();
    Value acc = t.update ? results[3 * n + 2] : results[0];
    Value o = acc, lse;
    if (l) {
      RankedTensorType rows = rowsType(b.getF32Type());
      Value sum = quadReduce(ReduceKind::sum, l);
      Value any = cmp(arith::CmpFPredicate::OGT, sum, splat(rows, 0));
      Value scale = sel(any, arith::DivFOp::create(b, loc, splat(rows, 1), sum), splat(rows, 0));
      Value lnL = fmul(math::Log2Op::create(b, loc, sum), splat(rows, kLn2));
      lse = sel(any, fadd(m, lnL), splat(rows, -INFINITY));
      o = fmul(acc, broadcast(scale, t.valueDim));
    }
    os.push_back(o);
    if (lse)
      lses.push_back(lse);
  }
  Value o = os.front();
  if (t.chains() > 1) {
    auto mixed = MapElementsOp::create(b, loc, accType(t.valueDim), o, ArrayRef(os).drop_front(),
                                       batch, head, i0, idx(0), qLen, b.getI64IntegerAttr(t.pack));
    cloneRegion(t.store.getMix(), mixed.getBody());
    o = mixed;
  }
  // The rmsnorm and the output map of the finished rows (with splits, of the rows written
  // to the output by a lone split; the merge kernel applies them to merged rows).
  auto finish = [&](Value o) {
    if (auto eps = t.store.getRmsEpsAttr())  // rmsnorm of each finished row
      o = fmul(o, broadcast(rmsFactor(o, t.valueDim, eps.getValueAsDouble()), t.valueDim));
    if (!t.store.getOutput().empty()) {  // the output map
      auto mapped = MapElementsOp::create(b, loc, accType(t.valueDim), o, ValueRange(), batch,
                                          head, i0, idx(0), qLen, b.getI64IntegerAttr(t.pack));
      cloneRegion(t.store.getOutput(), mapped.getBody());
      o = mapped;
    }
    return o;
  };
  if (!split) {
    emitStores(finish(o), lses, false);
    return;
  }
  Value partOut = map.lookup(t.store.getPartOut());
  Value many = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt,
                                     memref::DimOp::create(b, loc, partOut, 0), idx(1));
  auto branch = scf::IfOp::create(b, loc, many, /*withElseRegion=*/true);
  for (bool toPartial : {true, false}) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint((toPartial ? branch.thenBlock() : branch.elseBlock())->getTerminator());
    emitStores(toPartial ? o : finish(o), lses, toPartial);
  }
}

/// The launch ABI: threads, and the grid as extents of q (k when packed) -- read back by the
/// manifest. Shared memory is filled in by attn-gpu-allocate-shared.
void FlashDistributor::emitLaunch() {
  auto argIndex = [&](Value hostArg) {
    return int64_t(cast<BlockArgument>(hostArg).getArgNumber());
  };
  int64_t qArg = argIndex(t.scores.getQ()), kArg = argIndex(t.scores.getK());
  MLIRContext *ctx = b.getContext();
  SmallVector<GridAxisAttr> grid = {
      GridAxisAttr::get(ctx, qArg, 2, t.pack, t.blockQ),
      t.pack > 1 ? GridAxisAttr::get(ctx, kArg, 1, 1, 1) : GridAxisAttr::get(ctx, qArg, 1, 1, 1),
      GridAxisAttr::get(ctx, qArg, 0, 1, 1)};
  auto entry = [&](StringRef name, int64_t value) {
    return NamedAttribute(StringAttr::get(ctx, name), b.getI64IntegerAttr(value));
  };
  SmallVector<NamedAttribute> choices = {entry("block_q", t.blockQ), entry("block_k", t.blockK),
                                          entry("warps", t.blockQ / 16)};
  // sm_90a softmax kernels of head dim 128 ask for 3 blocks per SM (ptxas then keeps them
  // within 170 registers; attn-gpu-allocate-shared drops the request when shared memory
  // cannot hold 3): document masks +8-10%, block layouts +6%, int8 decode +3-6%, the rest
  // unchanged; paged decode lost 4-6% with it, so paged kernels do not ask (2026-12-04).
  // Wider heads (144-240) spill 40-712 bytes under that cap (ptxas): they do not ask either.
  // Row norms (their loads in the score, the serial loop) spilled 24-48 bytes under it.
  if (occupancyHint && t.update && t.headDim == 128 && t.blockQ == 64 &&
      !t.scores.getBlockTable() && t.scores.getScore().front().getNumArguments() == 5)
    choices.push_back(entry("min_blocks", 3));
  auto schedule = DictionaryAttr::get(ctx, choices);
  kernel->setAttr(kLaunchAttrName, LaunchAttr::get(ctx, t.blockQ / 16 * 32, grid, 0,
                                                   bool(t.splitLoop), schedule, {}));
}

/// Before key tile j0's scores: the cumulative log decays of its keys (a per-step decay).
void FlashDistributor::keyTilePrefix(Value j0) {
  if (!cumQ)
    return;
  auto op = LogDecayPrefixOp::create(b, loc, cumK, batch, head, j0, qLen, keyBase, Value(),
                                     false, false);
  cloneRegion(t.scores.getDecay(), op.getDecay());
}

/// The scores `s` of a key tile -> the weights P as the A operand of P V: the online softmax
/// (m, l and the rescaled acc updated) or, for other norms, the scores themselves.
Value FlashDistributor::emitWeights(Value &s, Value &m, Value &l, Value &acc, size_t n) {
  if (t.update) {
    if (auto unified = t.update.getUnifiedMax())
      emitUnifiedUpdate(s, m, l, acc, unified->convertToFloat());
    else
      emitOnlineUpdate(s, m, l, acc, n);
  }
  return ToOperandOp::create(
      b, loc, fragmentType({t.blockQ, t.blockK}, elt, FragmentKind::operand_a), s);
}

/// What the key loop carries in: m = -inf, l = 0 (softmax), acc = 0; per score.
SmallVector<Value> FlashDistributor::initialState() {
  SmallVector<Value> init;
  for (size_t n = 0; n < t.chains(); ++n) {
    if (t.update) {
      init.push_back(splat(rowsType(b.getF32Type()), -INFINITY));
      init.push_back(splat(rowsType(b.getF32Type()), 0));
    }
    init.push_back(splat(accType(t.valueDim), 0));
  }
  return init;
}
