// attn-gpu-distribute, backward strategy: attn.attention_grad -> FlashAttention-2's backward by
// recomputation, as two kernels at the GPU tile level (docs/backward.md):
//   <name>       one block per (query tile, head, batch) walks its key tiles: D = rowsum(dO O)
//                to the workspace, P recomputed from lse, dP = dO V^T, dS, the score's
//                derivative (param gradients accumulated), dQ += dDot K;
//   <name>_dkdv  one block per (key tile, kv head, batch) walks the query tiles of every head of
//                the GQA group, key-major: P^T = exp(K Q^T - lse), dV += P^T dO,
//                dP^T = V dO^T, dK += dDot^T Q -- dK and dV summed over the group in registers.
// Both kernels take the f32 workspace D [b, h, i] after the function's arguments; the runtime
// launches them in this order.
//
// With dQ by atomics (`dq_atomic`, FlashAttention-2's and -3's choice: 5 matmuls instead of 7)
// there are three kernels, all taking D and the f32 accumulator dQacc [b, h, i, d] after the
// arguments:
//   <name>       per (query tile, head, batch): D = rowsum(dO O) and zeros into dQacc;
//   <name>_dkdv  as above, and per query tile dS^T (shared, 16 bits) times K added into the
//                tile's rows of dQacc by f32 atomics (attn_gpu.atomic_add_product); the
//                param gradients are accumulated here;
//   <name>_dq    per (query tile, head, batch): dq = dQacc in dq's element type.
//
// Through an output expression (attn.attention_grad's `output_grad` region and/or rms_eps:
// o = F(rmsnorm(y)) of the attention's rows y), the first kernel walks its key tiles twice:
// once to recompute y = sum_j P v_j (P from lse), then dy = dout dF/dz (through the rmsnorm),
// D = rowsum(dy y) and the map's param gradients (attn_gpu.score_grad over the value columns);
// dy, rounded to the inputs' 16-bit type, takes dout's place in its dQ loop (as an operand in
// registers) and in the dK/dV kernel (from the workspace dy [b, h, i, dv] after D and dQacc).
// This file: the dQ side and the kernels' order; GradKeys.cpp: the dK/dV kernel and the block
// plan's key-major reading.
#include "codegen/gpu/transforms/ChunkSchedule.h"
#include "codegen/gpu/transforms/GradDistributor.h"
#include "codegen/gpu/transforms/PlanDistribute.h"
#include "dialect/transforms/Patterns.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attngpu;
using attn::AttentionGradOp;
using attn::NormKind;
using namespace mlir::attngpu::detail;

gpu::GPUFuncOp GradDistributor::makeKernel(gpu::GPUModuleOp module, StringRef name) {
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToEnd(module.getBody());
  SmallVector<Value> tensors = {op.getQ(), op.getK(),  op.getV(),  op.getOut(),
                                op.getDout(), op.getDq(), op.getDk(), op.getDv()};
  for (ValueRange more : {op.getMoreQ(), op.getMoreK(), op.getMoreDq(), op.getMoreDk()})
    tensors.append(more.begin(), more.end());
  SmallVector<Type> types;
  for (BlockArgument arg : f.getArguments())
    types.push_back(kernelArgType(arg.getType(), llvm::is_contained(tensors, arg)));
  int64_t dyn = ShapedType::kDynamic;
  types.push_back(MemRefType::get({dyn, dyn, dyn}, b.getF32Type()));  // the workspace D
  if (atomic)
    types.push_back(MemRefType::get({dyn, dyn, dyn, dyn}, b.getF32Type()));  // dQacc
  if (mapped)
    types.push_back(MemRefType::get({dyn, dyn, dyn, valueDim}, elt));  // dy
  if (forget)  // dS's sums and the cumulative log decays
    types.push_back(MemRefType::get({dyn, dyn, dyn}, b.getF32Type()));
  if (keyRange)
    types.push_back(planType(b.getContext()));  // the block plan, after D
  auto kernel = gpu::GPUFuncOp::create(b, loc, name, b.getFunctionType(types, {}));
  kernel->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  return kernel;
}

/// Maps the host function's arguments (and the region captures) to `kernel`'s, at its start.
LogicalResult GradDistributor::enter(gpu::GPUFuncOp kernel) {
  map.clear();
  b.setInsertionPointToStart(&kernel.getBody().front());
  for (auto [hostArg, kernelArg] : llvm::zip(f.getArguments(), kernel.getArguments()))
    map.map(hostArg, kernelArg);
  q = map.lookup(op.getQ()), k = map.lookup(op.getK()), v = map.lookup(op.getV());
  out = map.lookup(op.getOut()), dout = map.lookup(op.getDout());
  lse = op.getLse() ? map.lookup(op.getLse()) : Value();
  auto args = kernel.getArguments();
  size_t workspace = args.size() - (keyRange ? 1 : 0) - (forget ? 1 : 0) - (atomic ? 1 : 0) -
                     (mapped ? 1 : 0) - 1;
  delta = args[workspace];
  dqAcc = atomic ? args[workspace + 1] : Value();
  dyWork = mapped ? args[workspace + (atomic ? 2 : 1)] : Value();
  sums = forget ? args[workspace + 1 + (atomic ? 1 : 0) + (mapped ? 1 : 0)] : Value();
  cumQ = cumK = decayBase = Value();
  plan = keyRange ? args.back() : Value();
  qLen = memref::DimOp::create(b, loc, q, 2);
  kvLen = memref::DimOp::create(b, loc, k, 2);
  batch = gpu::BlockIdOp::create(b, loc, gpu::Dimension::z);
  SmallVector<Value> written = {op.getDq(), op.getDk(), op.getDv()};
  for (ValueRange more : {op.getMoreDq(), op.getMoreDk()})
    written.append(more.begin(), more.end());
  SmallVector<Region *> regions = {&op.getScore(),      &op.getMask(), &op.getScoreGrad(),
                                   &op.getOutputGrad(), &op.getMix(),  &op.getMixGrad(),
                                   &op.getDecay(),      &op.getDecayGrad()};
  for (Region &region : op.getMoreScores())
    regions.push_back(&region);
  for (Region *region : regions)
    if (failed(materializeCaptures(b, map, *region, written, op)))
      return failure();
  return success();
}

Value GradDistributor::probability(Value s, Value lseAt) {
  Value zero = splatLike(s, 0), one = splatLike(s, 1);
  Value valid = cmp(arith::CmpFPredicate::ONE, s, splatLike(s, -INFINITY));
  switch (op.getNorm()) {
  case NormKind::softmax:
    // exp(s - lse) in base 2; 0 where s = -inf (also on rows without any key, lse = -inf).
    return sel(valid, exp2(fmul(fsub(s, lseAt), splatLike(s, kLog2e))), zero);
  case NormKind::sigmoid:
    return sel(valid,
               arith::DivFOp::create(b, loc, one,
                                     fadd(one, exp2(fmul(s, splatLike(s, -kLog2e))))),
               zero);
  case NormKind::relu2: {
    Value r = sel(valid, fmax(s, zero), zero);
    return fmul(r, r);
  }
  default:  // none
    return sel(valid, s, zero);
  }
}

std::pair<Value, Value> GradDistributor::probabilities(Value s, Value dP, Value lseAt,
                                                       Value dAt) {
  Value p = probability(s, lseAt), zero = splatLike(s, 0);
  switch (op.getNorm()) {
  case NormKind::softmax:
    return {p, fmul(p, fsub(dP, dAt))};
  case NormKind::sigmoid:
    return {p, fmul(dP, fmul(p, fsub(splatLike(s, 1), p)))};
  case NormKind::relu2: {  // 2 relu(s) dP, relu(s) = sqrt(P) where s is not masked
    Value valid = cmp(arith::CmpFPredicate::ONE, s, splatLike(s, -INFINITY));
    Value r = sel(valid, fmax(s, zero), zero);
    return {p, fmul(dP, fmul(splatLike(s, 2), r))};
  }
  default:  // none
    return {p, sel(cmp(arith::CmpFPredicate::ONE, s, splatLike(s, -INFINITY)), dP, zero)};
  }
}

void GradDistributor::cloneScore(ScoreOp score, size_t n) {
  cloneRegionInto(b, *scores[n].score, score.getScore(), map);
  cloneRegionInto(b, op.getMask(), score.getMask(), map);
}

Value GradDistributor::slot(size_t n, Value head) {
  if (n == 0)
    return head;
  return arith::AddIOp::create(b, loc, head,
                               mulc(memref::DimOp::create(b, loc, q, 1), int64_t(n)));
}

/// dS -> the gradient of score n's dot products. The dQ kernel accumulates the param gradients
/// (each (i, j) once); the key-major kernel drops the accumulations, unless it computes dQ too.
SmallVector<Value> GradDistributor::scoreGrad(size_t n, Value dot, Value ds, Value h, Value i0,
                                              Value j0, bool transposed) {
  auto grad = ScoreGradOp::create(b, loc, SmallVector<Type>(rowNorms ? 3 : 1, dot.getType()),
                                  dot, ds, ValueRange(), batch, h, i0, j0, qLen, kvLen, qNorms,
                                  kNorms, transposed);
  fillGradRegion(*scores[n].scoreGrad, grad, transposed);
  return SmallVector<Value>(grad.getResults());
}

/// attn_gpu.score_grad of `region` ((b, h, i, j, x, more..., g) -> g dF/dx, g dF/dmore...,
/// accumulations) on a tile of columns j0 .. below `columns`: the output map's and the mix's
/// (j a value column).
SmallVector<Value> GradDistributor::regionGrad(Region &region, Value x, ValueRange more, Value g,
                                               Value h, Value i0, Value j0, Value columns,
                                               bool transposed) {
  auto grad = ScoreGradOp::create(b, loc, SmallVector<Type>(1 + more.size(), x.getType()), x, g,
                                  more, batch, h, i0, j0, qLen, columns, Value(), Value(),
                                  transposed);
  fillGradRegion(region, grad, transposed);
  return SmallVector<Value>(grad.getResults());
}

/// The region of a score_grad: `region` cloned; the dQ kernel accumulates the param gradients
/// (each (i, j) once), the key-major kernel drops the accumulations unless it computes dQ too.
void GradDistributor::fillGradRegion(Region &region, ScoreGradOp grad, bool transposed) {
  cloneRegionInto(b, region, grad.getScoreGrad(), map);
  convertAccumulations(grad.getScoreGrad(), !transposed || atomic);
}

void GradDistributor::convertAccumulations(Region &region, bool keep) {
  SmallVector<attn::AccumulateOp> accumulations;
  region.walk([&](attn::AccumulateOp acc) { accumulations.push_back(acc); });
  for (attn::AccumulateOp acc : accumulations) {
    if (keep) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(acc);
      AccumulateOp::create(b, acc.getLoc(), acc.getValue(), acc.getGrad(), acc.getIndices());
    }
    acc.erase();
  }
}

void GradDistributor::decayPrefix(Value cum, Value h, Value p0, Value carry, bool totalOnly) {
  auto prefix = LogDecayPrefixOp::create(b, loc, cum, batch, h, p0, qLen, carry, Value(),
                                         totalOnly, /*relative=*/false);
  cloneRegionInto(b, op.getDecay(), prefix.getDecay(), map);
}

Value GradDistributor::decaySlot(Value h, int64_t n) {
  Value heads = memref::DimOp::create(b, loc, q, 1);
  return arith::AddIOp::create(b, loc, h, n == 1 ? heads : mulc(heads, n));
}

void GradDistributor::storeSums(Value partial, Value h, Value p0, Value end) {
  StoreRowsOp::create(b, loc, quadReduce(ReduceKind::sum, partial), sums, batch, h, p0, end,
                      ValueRange{}, b.getI64IntegerAttr(1));
}

void GradDistributor::copyKeyTiles(ArrayRef<std::pair<Value, Value>> tiles, Value kvHead,
                                   Value j0) {
  for (auto [global, tile] : tiles)
    CopyKeyTileOp::create(b, loc, global, tile, batch, kvHead, j0, kvLen, Value(), Value(),
                          Value(), Value(), b.getI64IntegerAttr(0));
  waitGroups(0);
  if (rowNorms)
    squareRows(tiles.front().second, kNorms);
}

void GradDistributor::squareRows(Value tile, Value norms) {
  RowSquaresOp::create(b, loc, tile, norms);
  barrier();  // the norms are read by every warp
}

Value GradDistributor::addNormGrad(Value acc, Value sum, Value tile, int64_t rows, int64_t cols) {
  RankedTensorType type = accOf(rows, cols);
  Value twice = fmul(quadReduce(ReduceKind::sum, sum), splat(rowsOf(rows, b.getF32Type()), 2));
  Value x = LoadAccOp::create(b, loc, type, tile);
  return fadd(acc, fmul(broadcast(twice, cols), x));
}

GradDistributor::QueryTiles GradDistributor::loadQueryTiles(Value i0, Value head, bool withOut) {
  QueryTiles t;
  t.kvHead = arith::DivUIOp::create(b, loc, head, idx(op.getGroup()));
  DenseMap<Value, Value> tiles;  // a shared tile per distinct input tensor
  auto tileOf = [&](Value x, int64_t rows) {
    auto [it, fresh] = tiles.try_emplace(x, Value());
    if (fresh)
      it->second = sharedTile(rows, headDim, elt, true);
    return it->second;
  };
  for (const GradScore &sc : scores)
    t.qTile.push_back(tileOf(sc.q, s.blockQ));
  t.doTile = sharedTile(s.blockQ, valueDim, doutElt, doutElt.getIntOrFloatBitWidth() == 16);
  t.oTile = withOut ? sharedTile(s.blockQ, valueDim, elt, true) : Value();
  for (size_t n = 0; n < scores.size(); ++n)
    t.lseVec.push_back(softmax ? sharedTile(s.blockQ, 0, b.getF32Type(), false) : Value());
  for (const GradScore &sc : scores)
    t.kTile.push_back(tileOf(sc.k, s.blockK));
  t.vTile = sharedTile(s.blockK, valueDim, elt, true);
  qNorms = rowNorms ? sharedTile(s.blockQ, 0, b.getF32Type(), false) : Value();
  kNorms = rowNorms ? sharedTile(s.blockK, 0, b.getF32Type(), false) : Value();

  DenseSet<Value> copied;
  for (auto [n, sc] : llvm::enumerate(scores))
    if (copied.insert(sc.q).second)
      CopyQueryTileOp::create(b, loc, map.lookup(sc.q), t.qTile[n], batch, head, i0,
                              b.getI64IntegerAttr(1));
  CopyQueryTileOp::create(b, loc, dout, t.doTile, batch, head, i0, b.getI64IntegerAttr(1));
  if (t.oTile)
    CopyQueryTileOp::create(b, loc, out, t.oTile, batch, head, i0, b.getI64IntegerAttr(1));
  for (auto [n, sc] : llvm::enumerate(scores))
    if (softmax)
      CopyRowsOp::create(b, loc, map.lookup(sc.lse), t.lseVec[n], batch, head, i0, qLen,
                         b.getF32FloatAttr(INFINITY));
  waitGroups(0);
  if (rowNorms)
    squareRows(t.qTile.front(), qNorms);
  return t;
}

void GradDistributor::loadOperands(QueryTiles &t) {
  for (Value vec : t.lseVec)
    t.lseRows.push_back(
        vec ? LoadRowsOp::create(b, loc, rowsOf(s.blockQ, b.getF32Type()), vec) : Value());
  DenseMap<Value, Value> operands;  // shared tile -> its operand
  for (Value tile : t.qTile) {
    auto [it, fresh] = operands.try_emplace(tile, Value());
    if (fresh)
      it->second = loadOperand(tile, s.blockQ, headDim);
    t.qOperand.push_back(it->second);
  }
}

/// The dQ kernel: grid (query tiles, heads, batch).
LogicalResult GradDistributor::emitDQ(gpu::GPUFuncOp kernel) {
  if (failed(enter(kernel)))
    return failure();
  auto [i0, head] = queryTile();
  QueryTiles t = loadQueryTiles(i0, head, softmax && !mapped);
  if (forget) {  // the query tile's cumulative log decays, once
    cumQ = sharedTile(s.blockQ, 0, b.getF32Type(), false);
    cumK = sharedTile(s.blockK, 0, b.getF32Type(), false);
    decayBase = sharedTile(1, 0, b.getF32Type(), false);
    decayPrefix(cumQ, head, i0, Value(), false);
    // into the workspace, where the dK/dV kernel reads its key and query tiles' decays
    StoreRowsOp::create(b, loc, LoadRowsOp::create(b, loc, rowsOf(s.blockQ, b.getF32Type()), cumQ),
                        sums, batch, decaySlot(head, 2), i0, qLen, ValueRange{},
                        b.getI64IntegerAttr(1));
  }
  Value dRows;
  if (softmax && !mapped)  // D = rowsum(dO * O), for this kernel and the workspace
    dRows = emitDelta(t.doTile, t.oTile, i0, head);
  loadOperands(t);
  Value dyOperand = mapped ? Value() : loadOperand(t.doTile, s.blockQ, valueDim);
  KeySpan keys = keyRangeOf(i0);
  if (mapped) {  // dy in dout's place, from registers
    auto [dys, deltas] = emitOutputGrad(t, i0, head, keys);
    if (scores.size() > 1) {  // one key loop for every score
      emitScoresDQ(t, deltas, i0, head, keys);
      gpu::ReturnOp::create(b, loc);
      setQueryTileLaunch(kernel);
      return success();
    }
    dyOperand = toOperand(dys.front(), elt);
    dRows = deltas.front();
  }
  SmallVector<Value> carried = {splat(accOf(s.blockQ, headDim), 0)};
  if (rowNorms)  // each row's sum over the keys of d(q.q), per-thread partials
    carried.push_back(splat(rowsOf(s.blockQ, b.getF32Type()), 0));
  if (decayParams)  // each row's sum of dS over the keys, per-thread partials
    carried.push_back(splat(rowsOf(s.blockQ, b.getF32Type()), 0));
  carried = emitDQLoop(carried, t, dyOperand, dRows, i0, head, keys);
  if (decayParams)
    storeSums(carried.back(), head, i0, qLen);
  Value dq = carried[0];
  if (rowNorms)  // + 2 (sum_j d(q.q)) q
    dq = addNormGrad(dq, carried[1], t.qTile.front(), s.blockQ, headDim);
  StoreTileOp::create(b, loc, dq, map.lookup(op.getDq()), batch, head, i0, qLen, ValueRange{},
                      Value(), b.getI64IntegerAttr(1));
  gpu::ReturnOp::create(b, loc);
  setQueryTileLaunch(kernel);
  return success();
}

SmallVector<Value> GradDistributor::emitDQLoop(ValueRange carried, const QueryTiles &t,
                                               Value dyOperand, Value dRows, Value i0,
                                               Value head, const KeySpan &keys) {
  const size_t n = 0;  // one score (several take emitScoresDQ)
  auto [from, to, planned] = keys;
  startDecay(head, from);
  auto loop = scf::ForOp::create(b, loc, from, to, idx(s.blockK), carried);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(loop.getBody());
  Value j0 = loop.getInductionVar(), dq = loop.getRegionIterArgs()[0];
  copyKeyTiles({{map.lookup(scores[n].k), t.kTile[n]}, {v, t.vTile}}, t.kvHead, j0);
  if (forget)  // the key tile's cumulative log decays, continuing the running sum
    decayPrefix(cumK, head, j0, decayBase, false);
  auto [dot, score] = queryTileScores(n, t.qOperand[n], t.kTile[n], head, i0, j0, planned);
  Value dP = mma(dyOperand, t.vTile, splat(accOf(s.blockQ, s.blockK), 0), true);
  Value lseAt = softmax ? broadcast(t.lseRows[n], s.blockK) : Value();
  Value dAt = softmax ? broadcast(dRows, s.blockK) : Value();
  Value ds = probabilities(score, dP, lseAt, dAt).second;
  SmallVector<Value> grads = scoreGrad(n, dot, ds, head, i0, j0, false);
  dq = mma(toOperand(grads[0], elt), t.kTile[n], dq, false);
  barrier();  // every warp is done with K(j0) and V(j0) before the next copies
  SmallVector<Value> next = {dq};
  if (rowNorms)
    next.push_back(fadd(loop.getRegionIterArgs()[1], rowReduce(ReduceKind::sum, grads[1])));
  if (decayParams)
    next.push_back(fadd(loop.getRegionIterArgs().back(), rowReduce(ReduceKind::sum, ds)));
  scf::YieldOp::create(b, loc, next);
  return SmallVector<Value>(loop.getResults());
}

std::pair<Value, Value> GradDistributor::queryTileScores(size_t n, Value qOperand, Value kTile,
                                                         Value head, Value i0, Value j0,
                                                         const attn::KeyRange &planned) {
  Value dot = mma(qOperand, kTile, splat(accOf(s.blockQ, s.blockK), 0), true);
  Value full = keyRange ? fullTile(planned.fullLower, planned.fullUpper, j0, s.blockK) : Value();
  auto score = ScoreOp::create(b, loc, dot.getType(), dot, batch, head, i0, j0, qLen, kvLen,
                               cumQ, cumK, Value(), qNorms, kNorms, full,
                               b.getF32FloatAttr(-INFINITY), b.getI64IntegerAttr(1), UnitAttr());
  score.setLogDecay(forget);
  cloneScore(score, n);
  return {dot, score};
}

GradDistributor::KeySpan GradDistributor::keyRangeOf(Value i0) {
  // The key range of the tile's queries, narrowed by the mask's bounds as in the forward.
  Value iLast = arith::AddIOp::create(b, loc, i0, idx(s.blockQ - 1));
  Value from = idx(0), to = kvLen;
  if (!op.getMask().empty()) {
    bool exact;
    std::tie(from, to) =
        attn::narrowKeyRange(b, loc, op.getMask(), attn::analyzeMaskBounds(op.getMask(), exact),
                             i0, iLast, batch, map, s.blockK, from, to);
  }
  attn::KeyRange planned;
  if (keyRange) {  // the block plan's entry of this query tile
    planned = loadPlanRange(b, loc, keyRange, plan, batch, i0);
    from = arith::MaxSIOp::create(b, loc, from, planned.lower);
    to = arith::MinSIOp::create(b, loc, to, planned.upper);
  }
  return {from, to, planned};
}

SmallVector<std::pair<Value, Value>> GradDistributor::keyCopies(const QueryTiles &t) {
  SmallVector<std::pair<Value, Value>> copies;  // each distinct K's tile, then V's
  for (auto [n, sc] : llvm::enumerate(scores))
    if (llvm::none_of(copies, [&](auto &c) { return c.second == t.kTile[n]; }))
      copies.push_back({map.lookup(sc.k), t.kTile[n]});
  copies.push_back({v, t.vTile});
  return copies;
}

void GradDistributor::emitScoresDQ(const QueryTiles &t, ArrayRef<Value> dRows, Value i0,
                                   Value head, const KeySpan &keys) {
  // dy_n from its workspace slot into a shared tile of its own (score 0's in dout's).
  barrier();  // every warp is done with dout's tile
  SmallVector<Value> dyOperands;
  for (size_t n = 0; n < scores.size(); ++n) {
    // score 0's in dout's tile when dout is 16-bit (it is f32 for an f32 output)
    Value tile = n || doutElt != elt ? sharedTile(s.blockQ, valueDim, elt, true) : t.doTile;
    CopyQueryTileOp::create(b, loc, dyWork, tile, batch, slot(n, head), i0,
                            b.getI64IntegerAttr(1));
    dyOperands.push_back(tile);
  }
  waitGroups(0);
  for (Value &tile : dyOperands)
    tile = loadOperand(tile, s.blockQ, valueDim);
  llvm::MapVector<Value, size_t> buffers;  // dq buffer -> its accumulator
  for (const GradScore &sc : scores)
    buffers.insert({sc.dq, buffers.size()});
  auto [from, to, planned] = keys;
  auto loop = scf::ForOp::create(
      b, loc, from, to, idx(s.blockK),
      SmallVector<Value>(buffers.size(), splat(accOf(s.blockQ, headDim), 0)));
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value j0 = loop.getInductionVar();
    copyKeyTiles(keyCopies(t), t.kvHead, j0);
    SmallVector<Value> acc(loop.getRegionIterArgs());
    for (size_t n = 0; n < scores.size(); ++n) {
      auto [dot, score] = queryTileScores(n, t.qOperand[n], t.kTile[n], head, i0, j0, planned);
      Value dP = mma(dyOperands[n], t.vTile, splat(accOf(s.blockQ, s.blockK), 0), true);
      Value ds = probabilities(score, dP, broadcast(t.lseRows[n], s.blockK),
                               broadcast(dRows[n], s.blockK))
                     .second;
      Value dDot = scoreGrad(n, dot, ds, head, i0, j0, false)[0];
      size_t a = buffers.lookup(scores[n].dq);
      acc[a] = mma(toOperand(dDot, elt), t.kTile[n], acc[a], false);
    }
    barrier();  // every warp is done with the key tiles before the next copies
    scf::YieldOp::create(b, loc, acc);
  }
  for (auto [buffer, a] : buffers)
    StoreTileOp::create(b, loc, loop.getResult(a), map.lookup(buffer), batch, head, i0, qLen,
                        ValueRange{}, Value(), b.getI64IntegerAttr(1));
}

SmallVector<Value> GradDistributor::recomputeRows(const QueryTiles &t, Value i0, Value head,
                                                  const KeySpan &keys) {
  auto [from, to, planned] = keys;
  Value zero = splat(accOf(s.blockQ, valueDim), 0);
  startDecay(head, from);
  auto loop = scf::ForOp::create(b, loc, from, to, idx(s.blockK),
                                 SmallVector<Value>(scores.size(), zero));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(loop.getBody());
  Value j0 = loop.getInductionVar();
  copyKeyTiles(keyCopies(t), t.kvHead, j0);
  if (forget)
    decayPrefix(cumK, head, j0, decayBase, false);
  SmallVector<Value> ys;  // y_n = sum_j P_n v_j, P recomputed as in the dQ loop
  for (size_t n = 0; n < scores.size(); ++n) {
    auto [dot, score] = queryTileScores(n, t.qOperand[n], t.kTile[n], head, i0, j0, planned);
    Value p = probability(score, softmax ? broadcast(t.lseRows[n], s.blockK) : Value());
    ys.push_back(mma(toOperand(p, elt), t.vTile, loop.getRegionIterArgs()[n], false));
  }
  barrier();  // every warp is done with K(j0) and V(j0) before the next copies
  scf::YieldOp::create(b, loc, ys);
  return SmallVector<Value>(loop.getResults());
}

std::pair<SmallVector<Value>, SmallVector<Value>>
GradDistributor::emitOutputGrad(const QueryTiles &t, Value i0, Value head, const KeySpan &keys) {
  SmallVector<Value> ys = recomputeRows(t, i0, head, keys);
  RankedTensorType yType = accOf(s.blockQ, valueDim);
  Value y = ys.front();
  if (ys.size() > 1) {  // m = mix(y_0, ..., y_N), as the forward's epilogue mixes its rows
    auto mixed = MapElementsOp::create(b, loc, yType, y, ArrayRef(ys).drop_front(), batch, head,
                                       i0, idx(0), qLen, b.getI64IntegerAttr(1));
    cloneRegionInto(b, op.getMix(), mixed.getBody(), map);
    y = mixed;
  }
  Value z = y, r;
  if (auto eps = op.getRmsEpsAttr()) {  // z = y r, r = 1 / sqrt(mean(y^2) + eps)
    r = rmsFactor(y, valueDim, eps.getValueAsDouble());
    z = fmul(y, broadcast(r, valueDim));
  }
  // dz = dout dF/dz (0 on rows past q_len: their dout rows are zero-filled), the map's param
  // gradients accumulated once per element.
  Value g = LoadAccOp::create(b, loc, yType, t.doTile);
  Value dy = op.getOutputGrad().empty()
                 ? g
                 : regionGrad(op.getOutputGrad(), z, {}, g, head, i0, idx(0), idx(valueDim),
                              false)[0];
  if (r)  // through the rmsnorm: dy = r (dz - z mean(dz z))
    dy = fmul(broadcast(r, valueDim),
              fsub(dy, fmul(z, broadcast(rowMean(fmul(dy, z), valueDim), valueDim))));
  SmallVector<Value> dys = {dy};
  if (ys.size() > 1)  // dy_n = dm dmix/dy_n, the mix's param gradients accumulated
    dys = regionGrad(op.getMixGrad(), ys.front(), ArrayRef(ys).drop_front(), dy, head, i0,
                     idx(0), idx(valueDim), false);
  SmallVector<Value> dRows(ys.size());
  for (size_t n = 0; n < ys.size(); ++n) {
    Value at = slot(n, head);
    if (softmax) {
      // D from dy as both kernels' dP read it, rounded to the inputs' type: dP - D then
      // cancels where it must (a row whose only key has P = 1 gets dS = 0, not dy's rounding
      // error).
      auto rounded = RankedTensorType::get(yType.getShape(), elt, yType.getEncoding());
      Value dyRead = arith::ExtFOp::create(
          b, loc, yType, arith::TruncFOp::create(b, loc, rounded, dys[n]).getResult());
      dRows[n] = quadReduce(ReduceKind::sum, rowReduce(ReduceKind::sum, fmul(dyRead, ys[n])));
      StoreRowsOp::create(b, loc, dRows[n], delta, batch, at, i0, qLen, ValueRange{},
                          b.getI64IntegerAttr(1));
    }
    StoreTileOp::create(b, loc, dys[n], dyWork, batch, at, i0, qLen, ValueRange{}, Value(),
                        b.getI64IntegerAttr(1));
  }
  return {dys, dRows};
}

std::pair<Value, Value> GradDistributor::queryTile() {
  return {mulc(gpu::BlockIdOp::create(b, loc, gpu::Dimension::x), s.blockQ),
          gpu::BlockIdOp::create(b, loc, gpu::Dimension::y)};
}

void GradDistributor::setQueryTileLaunch(gpu::GPUFuncOp kernel, int64_t width) {
  int64_t qArg = cast<BlockArgument>(op.getQ()).getArgNumber();
  SmallVector<std::pair<StringRef, int64_t>> schedule = {
      {"block_q", s.blockQ}, {"block_k", s.blockK}, {"warps", s.blockQ / 16}};
  if (width)
    schedule.push_back({"dq_accum_width", width});
  else if (mapped)  // the first kernel writes dy [b, h, i, dv] for the dK/dV kernel
    schedule.push_back({"dy_width", valueDim});
  if (scores.size() > 1)  // D and dy hold a slot per score: [b, scores x h, i(, dv)]
    schedule.push_back({"scores", int64_t(scores.size())});
  if (forget)  // the forget gate's workspace [b, 3 h, i]
    schedule.push_back({"decay_slots", 3});
  setLaunch(kernel, s.blockQ / 16 * 32, {{qArg, 2, 1, s.blockQ}, {qArg, 1, 1, 1}, {qArg, 0, 1, 1}},
            0, schedule);
  kernel.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({int32_t(s.blockQ / 16 * 32), 1, 1}));
}

Value GradDistributor::emitDelta(Value doTile, Value oTile, Value i0, Value head) {
  Value dO = LoadAccOp::create(b, loc, accOf(s.blockQ, valueDim), doTile);
  Value o = LoadAccOp::create(b, loc, accOf(s.blockQ, valueDim), oTile);
  Value dRows = quadReduce(ReduceKind::sum, rowReduce(ReduceKind::sum, fmul(dO, o)));
  StoreRowsOp::create(b, loc, dRows, delta, batch, head, i0, qLen, ValueRange{},
                      b.getI64IntegerAttr(1));
  return dRows;
}

/// dQ by atomics, first kernel: D of the query tile (softmax) and zeros into its rows of dQacc.
LogicalResult GradDistributor::emitPrepare(gpu::GPUFuncOp kernel) {
  if (failed(enter(kernel)))
    return failure();
  auto [i0, head] = queryTile();
  if (mapped) {  // y recomputed: dy and D into the workspaces
    QueryTiles t = loadQueryTiles(i0, head, false);
    loadOperands(t);
    emitOutputGrad(t, i0, head, keyRangeOf(i0));
  } else if (softmax) {
    Value doTile = sharedTile(s.blockQ, valueDim, elt, true);
    Value oTile = sharedTile(s.blockQ, valueDim, elt, true);
    CopyQueryTileOp::create(b, loc, dout, doTile, batch, head, i0, b.getI64IntegerAttr(1));
    CopyQueryTileOp::create(b, loc, out, oTile, batch, head, i0, b.getI64IntegerAttr(1));
    waitGroups(0);
    emitDelta(doTile, oTile, i0, head);
  }
  StoreTileOp::create(b, loc, splat(accOf(s.blockQ, headDim), 0), dqAcc, batch, head, i0, qLen,
                      ValueRange{}, Value(), b.getI64IntegerAttr(1));
  gpu::ReturnOp::create(b, loc);
  setQueryTileLaunch(kernel);
  return success();
}

/// dQ by atomics, last kernel: the summed f32 rows of dQacc into dq.
LogicalResult GradDistributor::emitConvertDQ(gpu::GPUFuncOp kernel) {
  if (failed(enter(kernel)))
    return failure();
  auto [i0, head] = queryTile();
  Value dq = LoadTileOp::create(b, loc, accOf(s.blockQ, headDim), dqAcc, batch, head, i0, qLen);
  StoreTileOp::create(b, loc, dq, map.lookup(op.getDq()), batch, head, i0, qLen, ValueRange{},
                      Value(), b.getI64IntegerAttr(1));
  gpu::ReturnOp::create(b, loc);
  setQueryTileLaunch(kernel, headDim);
  return success();
}

/// A forget gate, last kernel: per (head, batch) one warp turns dS's row and column sums into
/// the gradients of the log decays (the decay_grad region's accumulations).
LogicalResult GradDistributor::emitDecayGrad(gpu::GPUFuncOp kernel) {
  if (failed(enter(kernel)))
    return failure();
  batch = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  Value head = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  auto grad = DecayGradOp::create(b, loc, sums, batch, head,
                                  memref::DimOp::create(b, loc, q, 1), qLen, kvLen);
  cloneRegionInto(b, op.getDecayGrad(), grad.getDecayGrad(), map);
  convertAccumulations(grad.getDecayGrad(), true);
  gpu::ReturnOp::create(b, loc);
  int64_t qArg = cast<BlockArgument>(op.getQ()).getArgNumber();
  setLaunch(kernel, 32, {{qArg, 1, 1, 1}, {qArg, 0, 1, 1}, {-1, 0, 1, 1}}, 0, {});
  kernel.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({32, 1, 1}));
  return success();
}

LogicalResult GradDistributor::run(StringRef chip, bool blockPlan, bool dqAtomic) {
  MemRefType qType = op.getQ().getType(), vType = op.getV().getType();
  elt = qType.getElementType();
  headDim = qType.getDimSize(3), valueDim = vType.getDimSize(3);
  softmax = op.getNorm() == NormKind::softmax;
  for (Value x : {op.getK(), op.getV()})
    if (cast<MemRefType>(x.getType()).getElementType() != elt)
      return op.emitError("the CUDA backward takes q, k and v of one element type");
  doutElt = op.getDout().getType().getElementType();
  if (op.getOut().getType().getElementType() != doutElt || !(doutElt == elt || doutElt.isF32()))
    return op.emitError("the CUDA backward takes out and dout of q's element type or f32, one "
                        "type for both; got ")
           << op.getOut().getType().getElementType() << " and " << doutElt;
  scores.push_back({op.getQ(), op.getK(), op.getLse(), op.getDq(), op.getDk(), &op.getScore(),
                    &op.getScoreGrad()});
  for (unsigned n = 0; n < op.getNumMoreScores(); ++n)
    scores.push_back({op.getMoreQ()[n], op.getMoreK()[n], op.getMoreLse()[n], op.getMoreDq()[n],
                      op.getMoreDk()[n], &op.getMoreScore(n), &op.getMoreScoreGrad(n)});
  for (const GradScore &sc : scores)
    if (sc.q.getType() != op.getQ().getType() || sc.k.getType() != op.getK().getType())
      return op.emitError("the CUDA backward of several scores takes their q and k of one type "
                          "and head dim");
  // Through an output expression, a mix of several scores or an f32 output (the tensor cores
  // take dy, rounded to q's type, in its place): dy recomputed, in the workspace.
  mapped = !op.getOutputGrad().empty() || op.getRmsEps() || scores.size() > 1 || doutElt != elt;
  if (!elt.isF16() && !elt.isBF16())
    return op.emitError("the CUDA backward runs on tensor cores: q, k, v need f16 or bf16, got ")
           << elt << " (hint: declare the tensors bf16, or run the backward on the CPU)";
  if (ShapedType::isDynamic(headDim) || ShapedType::isDynamic(valueDim) || headDim % 16 ||
      valueDim % 16 || headDim > 256 || valueDim > 256)
    return op.emitError("the CUDA backward needs static head and value dims, multiples of 16 up "
                        "to 256");
  rowNorms = llvm::any_of(scores, [](const GradScore &sc) {  // dot(q, q), dot(k, k)
    return sc.score->front().getNumArguments() == 7;
  });
  // dK and dV of 16 x d per warp stay in registers beside the tiles: 32 query columns per step
  // for wide heads. On sm_90a 64 up to d = 128 where measured: there the transposed products
  // (K Q^T, V dO^T) are wgmmas with N = the query columns, and at N = 32 their operands'
  // shared-memory reads, not the tensor cores, set the pace (1.03-1.11x with one head per kv
  // head; GQA d128 1.07x and differential attention 1.09x although they spill 184 and 64
  // bytes; bench/METHOD.md 2026-12-06). Row norms and a single score's output expression spill
  // up to 412 bytes there and keep 32 until timed.
  bool wide = chip == "sm_90a" && !rowNorms && (!mapped || scores.size() > 1);
  if (std::max(headDim, valueDim) > (wide ? 128 : 64))
    s.queryCols = 32;
  atomic = dqAtomic && headDim % 32 == 0;  // the product's pieces are 32 columns wide
  if (scores.size() > 1 && atomic)
    return op.emitError("the CUDA backward of several scores computes dQ in its own kernel: "
                        "compile without --dq-atomic");
  if (scores.size() > 1 && rowNorms)
    return op.emitError("the CUDA backward of several scores with row norms (dot(q, q), "
                        "dot(k, k)) is not implemented; the CPU back end computes it");
  if (rowNorms && atomic)
    return op.emitError("the CUDA backward of row norms (dot(q, q), dot(k, k)) computes dQ in "
                        "its own kernel: compile without --dq-atomic");
  forget = !op.getDecay().empty();
  decayParams = forget && op.getDecayGrad()
                              .walk([](attn::AccumulateOp) { return WalkResult::interrupt(); })
                              .wasInterrupted();
  if (forget && (atomic || scores.size() > 1 || !softmax))
    return op.emitError("the CUDA backward of a forget gate takes one score with norm softmax "
                        "and dQ in its own kernel")
           << (atomic ? ": compile without --dq-atomic" : "; the CPU back end computes the rest");

  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(f);
  auto target = NVVM::NVVMTargetAttr::get(b.getContext(), /*optLevel=*/3, "nvptx64-nvidia-cuda",
                                          chip, "+ptx80");
  auto module = gpu::GPUModuleOp::create(b, loc, (f.getName() + "_kernels").str(),
                                         b.getArrayAttr({target}));
  if (blockPlan)
    planKeyRanges();
  gpu::GPUFuncOp dq = makeKernel(module, f.getName());
  gpu::GPUFuncOp dkdv = makeKernel(module, (f.getName() + "_dkdv").str());
  if (failed(atomic ? emitPrepare(dq) : emitDQ(dq)) || failed(checkSelfContained(dq)) ||
      failed(emitDKDV(dkdv)) || failed(checkSelfContained(dkdv)))
    return failure();
  if (atomic) {
    gpu::GPUFuncOp convert = makeKernel(module, (f.getName() + "_dq").str());
    if (failed(emitConvertDQ(convert)) || failed(checkSelfContained(convert)))
      return failure();
  }
  if (decayParams) {
    gpu::GPUFuncOp decay = makeKernel(module, (f.getName() + "_decay").str());
    if (failed(emitDecayGrad(decay)) || failed(checkSelfContained(decay)))
      return failure();
  }
  if (keyRange) {  // the plan kernel over the dQ kernel's query tiles, launched first
    b.setInsertionPoint(dq);
    auto grid = cast<LaunchAttr>(dq->getAttr(kLaunchAttrName)).getGrid();
    FailureOr<gpu::GPUFuncOp> planKernel =
        emitPlanKernel(b, f, keyRange, dq, {op.getDq(), op.getDk(), op.getDv()}, grid);
    if (failed(planKernel) || failed(checkSelfContained(*planKernel)))
      return failure();
  }
  return success();
}

LogicalResult mlir::attngpu::distributeGrad(func::FuncOp f, StringRef chip, bool blockPlan,
                                            bool dqAtomic) {
  SmallVector<AttentionGradOp> ops;
  f.walk([&](AttentionGradOp op) { ops.push_back(op); });
  if (ops.size() != 1)
    return f.emitError("a backward function holds one attn.attention_grad, got ") << ops.size();
  OpBuilder b(f);
  GradDistributor distributor(b, ops.front(), f);
  return distributor.run(chip, blockPlan, dqAtomic);
}
