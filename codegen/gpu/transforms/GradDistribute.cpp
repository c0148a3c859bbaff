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
  SmallVector<Type> types;
  for (BlockArgument arg : f.getArguments())
    types.push_back(kernelArgType(arg.getType(), llvm::is_contained(tensors, arg)));
  int64_t dyn = ShapedType::kDynamic;
  types.push_back(MemRefType::get({dyn, dyn, dyn}, b.getF32Type()));  // the workspace D
  if (atomic)
    types.push_back(MemRefType::get({dyn, dyn, dyn, dyn}, b.getF32Type()));  // dQacc
  if (mapped)
    types.push_back(MemRefType::get({dyn, dyn, dyn, valueDim}, elt));  // dy
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
  size_t workspace = args.size() - (keyRange ? 1 : 0) - (atomic ? 1 : 0) - (mapped ? 1 : 0) - 1;
  delta = args[workspace];
  dqAcc = atomic ? args[workspace + 1] : Value();
  dyWork = mapped ? args[workspace + (atomic ? 2 : 1)] : Value();
  plan = keyRange ? args.back() : Value();
  qLen = memref::DimOp::create(b, loc, q, 2);
  kvLen = memref::DimOp::create(b, loc, k, 2);
  batch = gpu::BlockIdOp::create(b, loc, gpu::Dimension::z);
  SmallVector<Value> written = {op.getDq(), op.getDk(), op.getDv()};
  for (Region *region : {&op.getScore(), &op.getMask(), &op.getScoreGrad(), &op.getOutputGrad()})
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

void GradDistributor::cloneScore(ScoreOp score) {
  cloneRegionInto(b, op.getScore(), score.getScore(), map);
  cloneRegionInto(b, op.getMask(), score.getMask(), map);
}

/// dS -> the gradient of the dot products. The dQ kernel accumulates the param gradients (each
/// (i, j) once); the key-major kernel drops the accumulations, unless it computes dQ too.
SmallVector<Value> GradDistributor::scoreGrad(Value dot, Value ds, Value h, Value i0, Value j0,
                                              bool transposed) {
  auto grad = ScoreGradOp::create(b, loc, SmallVector<Type>(rowNorms ? 3 : 1, dot.getType()),
                                  dot, ds, batch, h, i0, j0, qLen, kvLen, qNorms, kNorms,
                                  transposed);
  fillGradRegion(op.getScoreGrad(), grad, transposed);
  return SmallVector<Value>(grad.getResults());
}

/// attn_gpu.score_grad of `region` ((b, h, i, j, x, g) -> g dF/dx, accumulations) on a tile
/// of columns j0 .. below `columns`: the output map's (j a value column).
Value GradDistributor::regionGrad(Region &region, Value x, Value g, Value h, Value i0, Value j0,
                                  Value columns, bool transposed) {
  auto grad = ScoreGradOp::create(b, loc, TypeRange{x.getType()}, x, g, batch, h, i0, j0, qLen,
                                  columns, Value(), Value(), transposed);
  fillGradRegion(region, grad, transposed);
  return grad.getResult(0);
}

/// The region of a score_grad: `region` cloned; the dQ kernel accumulates the param gradients
/// (each (i, j) once), the key-major kernel drops the accumulations unless it computes dQ too.
void GradDistributor::fillGradRegion(Region &region, ScoreGradOp grad, bool transposed) {
  cloneRegionInto(b, region, grad.getScoreGrad(), map);
  SmallVector<attn::AccumulateOp> accumulations;
  grad.getScoreGrad().walk([&](attn::AccumulateOp acc) { accumulations.push_back(acc); });
  for (attn::AccumulateOp acc : accumulations) {
    if (!transposed || atomic) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(acc);
      AccumulateOp::create(b, acc.getLoc(), acc.getValue(), acc.getGrad(), acc.getIndices());
    }
    acc.erase();
  }
}

void GradDistributor::copyKeyTiles(Value kTile, Value vTile, Value kvHead, Value j0) {
  for (auto [global, tile] : {std::pair(k, kTile), std::pair(v, vTile)})
    CopyKeyTileOp::create(b, loc, global, tile, batch, kvHead, j0, kvLen, Value(), Value(),
                          Value(), Value(), b.getI64IntegerAttr(0));
  waitGroups(0);
  if (rowNorms)
    squareRows(kTile, kNorms);
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

/// The dQ kernel: grid (query tiles, heads, batch).
LogicalResult GradDistributor::emitDQ(gpu::GPUFuncOp kernel) {
  if (failed(enter(kernel)))
    return failure();
  auto [i0, head] = queryTile();
  Value kvHead = arith::DivUIOp::create(b, loc, head, idx(op.getGroup()));
  Value qTile = sharedTile(s.blockQ, headDim, elt, true);
  Value doTile = sharedTile(s.blockQ, valueDim, elt, true);
  Value oTile = softmax && !mapped ? sharedTile(s.blockQ, valueDim, elt, true) : Value();
  Value lseVec = softmax ? sharedTile(s.blockQ, 0, b.getF32Type(), false) : Value();
  Value kTile = sharedTile(s.blockK, headDim, elt, true);
  Value vTile = sharedTile(s.blockK, valueDim, elt, true);
  qNorms = rowNorms ? sharedTile(s.blockQ, 0, b.getF32Type(), false) : Value();
  kNorms = rowNorms ? sharedTile(s.blockK, 0, b.getF32Type(), false) : Value();

  CopyQueryTileOp::create(b, loc, q, qTile, batch, head, i0, b.getI64IntegerAttr(1));
  CopyQueryTileOp::create(b, loc, dout, doTile, batch, head, i0, b.getI64IntegerAttr(1));
  if (oTile)
    CopyQueryTileOp::create(b, loc, out, oTile, batch, head, i0, b.getI64IntegerAttr(1));
  if (softmax)
    CopyRowsOp::create(b, loc, lse, lseVec, batch, head, i0, qLen, b.getF32FloatAttr(INFINITY));
  waitGroups(0);
  if (rowNorms)
    squareRows(qTile, qNorms);
  RankedTensorType rows = rowsOf(s.blockQ, b.getF32Type());
  Value lseRows, dRows;
  if (softmax) {  // D = rowsum(dO * O), for this kernel and the workspace
    if (!mapped)
      dRows = emitDelta(doTile, oTile, i0, head);
    lseRows = LoadRowsOp::create(b, loc, rows, lseVec);
  }
  Value qOperand = loadOperand(qTile, s.blockQ, headDim);
  Value doOperand = mapped ? Value() : loadOperand(doTile, s.blockQ, valueDim);
  auto [from, to, planned] = keyRangeOf(i0);
  if (mapped) {  // dy in dout's place, from registers
    auto [dy, deltaRows] = emitOutputGrad(qOperand, lseRows, doTile, kTile, vTile, i0, head,
                                          {from, to, planned});
    doOperand = toOperand(dy, elt);
    dRows = deltaRows;
  }
  SmallVector<Value> inits = {splat(accOf(s.blockQ, headDim), 0)};
  if (rowNorms)  // each row's sum over the keys of d(q.q), per-thread partials
    inits.push_back(splat(rows, 0));
  auto loop = scf::ForOp::create(b, loc, from, to, idx(s.blockK), inits);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value j0 = loop.getInductionVar(), dq = loop.getRegionIterArgs()[0];
    auto [dot, score] = queryTileScores(qOperand, kTile, vTile, kvHead, head, i0, j0, planned);
    Value dP = mma(doOperand, vTile, splat(accOf(s.blockQ, s.blockK), 0), true);
    Value lseAt = softmax ? broadcast(lseRows, s.blockK) : Value();
    Value dAt = softmax ? broadcast(dRows, s.blockK) : Value();
    Value ds = probabilities(score, dP, lseAt, dAt).second;
    SmallVector<Value> grads = scoreGrad(dot, ds, head, i0, j0, false);
    dq = mma(toOperand(grads[0], elt), kTile, dq, false);
    barrier();  // every warp is done with K(j0) and V(j0) before the next copies
    SmallVector<Value> carried = {dq};
    if (rowNorms)
      carried.push_back(fadd(loop.getRegionIterArgs()[1], rowReduce(ReduceKind::sum, grads[1])));
    scf::YieldOp::create(b, loc, carried);
  }
  Value dq = loop.getResult(0);
  if (rowNorms)  // + 2 (sum_j d(q.q)) q
    dq = addNormGrad(dq, loop.getResult(1), qTile, s.blockQ, headDim);
  StoreTileOp::create(b, loc, dq, map.lookup(op.getDq()), batch, head, i0, qLen, ValueRange{},
                      Value(), b.getI64IntegerAttr(1));
  gpu::ReturnOp::create(b, loc);
  setQueryTileLaunch(kernel);
  return success();
}

std::pair<Value, Value> GradDistributor::queryTileScores(Value qOperand, Value kTile, Value vTile,
                                                         Value kvHead, Value head, Value i0,
                                                         Value j0, const attn::KeyRange &planned) {
  copyKeyTiles(kTile, vTile, kvHead, j0);
  Value dot = mma(qOperand, kTile, splat(accOf(s.blockQ, s.blockK), 0), true);
  Value full = keyRange ? fullTile(planned.fullLower, planned.fullUpper, j0, s.blockK) : Value();
  auto score = ScoreOp::create(b, loc, dot.getType(), dot, batch, head, i0, j0, qLen, kvLen,
                               Value(), Value(), Value(), qNorms, kNorms, full,
                               b.getF32FloatAttr(-INFINITY), b.getI64IntegerAttr(1), UnitAttr());
  cloneScore(score);
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

std::pair<Value, Value> GradDistributor::emitOutputGrad(Value qOperand, Value lseRows,
                                                        Value doTile, Value kTile, Value vTile,
                                                        Value i0, Value head,
                                                        const KeySpan &keys) {
  Value kvHead = arith::DivUIOp::create(b, loc, head, idx(op.getGroup()));
  auto [from, to, planned] = keys;
  RankedTensorType yType = accOf(s.blockQ, valueDim);
  auto loop = scf::ForOp::create(b, loc, from, to, idx(s.blockK), ValueRange{splat(yType, 0)});
  {  // y = sum_j P v_j, P recomputed as in the dQ loop
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value j0 = loop.getInductionVar();
    auto [dot, score] = queryTileScores(qOperand, kTile, vTile, kvHead, head, i0, j0, planned);
    Value p = probability(score, softmax ? broadcast(lseRows, s.blockK) : Value());
    Value y = mma(toOperand(p, elt), vTile, loop.getRegionIterArgs()[0], false);
    barrier();  // every warp is done with K(j0) and V(j0) before the next copies
    scf::YieldOp::create(b, loc, y);
  }
  Value y = loop.getResult(0), z = y, r;
  if (auto eps = op.getRmsEpsAttr()) {  // z = y r, r = 1 / sqrt(mean(y^2) + eps)
    r = rmsFactor(y, valueDim, eps.getValueAsDouble());
    z = fmul(y, broadcast(r, valueDim));
  }
  // dz = dout dF/dz (0 on rows past q_len: their dout rows are zero-filled), the map's param
  // gradients accumulated once per element.
  Value g = LoadAccOp::create(b, loc, yType, doTile);
  Value dy = op.getOutputGrad().empty()
                 ? g
                 : regionGrad(op.getOutputGrad(), z, g, head, i0, idx(0), idx(valueDim), false);
  if (r)  // through the rmsnorm: dy = r (dz - z mean(dz z))
    dy = fmul(broadcast(r, valueDim),
              fsub(dy, fmul(z, broadcast(rowMean(fmul(dy, z), valueDim), valueDim))));
  Value dRows;
  if (softmax) {
    // D from dy as both kernels' dP read it, rounded to the inputs' type: dP - D then cancels
    // where it must (a row whose only key has P = 1 gets dS = 0, not dy's rounding error).
    auto rounded = RankedTensorType::get(yType.getShape(), elt, yType.getEncoding());
    Value dyRead = arith::ExtFOp::create(
        b, loc, yType, arith::TruncFOp::create(b, loc, rounded, dy).getResult());
    dRows = quadReduce(ReduceKind::sum, rowReduce(ReduceKind::sum, fmul(dyRead, y)));
    StoreRowsOp::create(b, loc, dRows, delta, batch, head, i0, qLen, ValueRange{},
                        b.getI64IntegerAttr(1));
  }
  StoreTileOp::create(b, loc, dy, dyWork, batch, head, i0, qLen, ValueRange{}, Value(),
                      b.getI64IntegerAttr(1));
  return {dy, dRows};
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
    Value qTile = sharedTile(s.blockQ, headDim, elt, true);
    Value doTile = sharedTile(s.blockQ, valueDim, elt, true);
    Value lseVec = softmax ? sharedTile(s.blockQ, 0, b.getF32Type(), false) : Value();
    Value kTile = sharedTile(s.blockK, headDim, elt, true);
    Value vTile = sharedTile(s.blockK, valueDim, elt, true);
    CopyQueryTileOp::create(b, loc, q, qTile, batch, head, i0, b.getI64IntegerAttr(1));
    CopyQueryTileOp::create(b, loc, dout, doTile, batch, head, i0, b.getI64IntegerAttr(1));
    if (softmax)
      CopyRowsOp::create(b, loc, lse, lseVec, batch, head, i0, qLen, b.getF32FloatAttr(INFINITY));
    waitGroups(0);
    Value lseRows =
        softmax ? LoadRowsOp::create(b, loc, rowsOf(s.blockQ, b.getF32Type()), lseVec) : Value();
    emitOutputGrad(loadOperand(qTile, s.blockQ, headDim), lseRows, doTile, kTile, vTile, i0,
                   head, keyRangeOf(i0));
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

LogicalResult GradDistributor::run(StringRef chip, bool blockPlan, bool dqAtomic) {
  MemRefType qType = op.getQ().getType(), vType = op.getV().getType();
  elt = qType.getElementType();
  headDim = qType.getDimSize(3), valueDim = vType.getDimSize(3);
  softmax = op.getNorm() == NormKind::softmax;
  for (Value x : {op.getK(), op.getV(), op.getOut(), op.getDout()})
    if (cast<MemRefType>(x.getType()).getElementType() != elt)
      return op.emitError("the CUDA backward takes q, k, v, out and dout of one element type");
  mapped = !op.getOutputGrad().empty() || op.getRmsEps();
  if (!elt.isF16() && !elt.isBF16())
    return op.emitError("the CUDA backward runs on tensor cores: q, k, v need f16 or bf16, got ")
           << elt << " (hint: declare the tensors bf16, or run the backward on the CPU)";
  if (ShapedType::isDynamic(headDim) || ShapedType::isDynamic(valueDim) || headDim % 16 ||
      valueDim % 16 || headDim > 256 || valueDim > 256)
    return op.emitError("the CUDA backward needs static head and value dims, multiples of 16 up "
                        "to 256");
  rowNorms = op.getScore().front().getNumArguments() == 7;  // dot(q, q), dot(k, k)
  // dK and dV of 16 x d per warp stay in registers beside the tiles: 32 query columns per step
  // for wide heads. On sm_90a 64 up to d = 128 where measured (one head per kv head, no row
  // norms or output expression): there the transposed products (K Q^T, V dO^T) are wgmmas
  // with N = the query columns, and at N = 32 their operands' shared-memory reads, not the
  // tensor cores, set the pace (1.03-1.11x, bench/METHOD.md 2026-12-06). GQA, row norms and
  // output expressions spill 128-412 bytes there and keep 32 until timed.
  bool wide = chip == "sm_90a" && op.getGroup() == 1 && !rowNorms && !mapped;
  if (std::max(headDim, valueDim) > (wide ? 128 : 64))
    s.queryCols = 32;
  atomic = dqAtomic && headDim % 32 == 0;  // the product's pieces are 32 columns wide
  if (rowNorms && atomic)
    return op.emitError("the CUDA backward of row norms (dot(q, q), dot(k, k)) computes dQ in "
                        "its own kernel: compile without --dq-atomic");

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
  if (!ops.front().getDecay().empty())
    return ops.front().emitError(
        "the CUDA backward of a forget gate (a decay with norm softmax) is not implemented yet; "
        "the CPU back end computes it");
  if (!ops.front().getMoreQ().empty())
    return ops.front().emitError(
        "the CUDA backward of several scores (a mix of attends, differential attention) is not "
        "implemented yet; the CPU back end computes it");
  OpBuilder b(f);
  GradDistributor distributor(b, ops.front(), f);
  return distributor.run(chip, blockPlan, dqAtomic);
}
