// attn-gpu-distribute, chunk strategy: attn.chunk_step (attn-chunk's chunked form of a linear
// recurrence) -> a thread-block kernel at the GPU tile level. One block per (value-channel
// slice, head, batch) walks the chunks of its sequence in order. Per chunk of R positions:
//   P = (c_i Q K^T) exp(g_r - g_c) f_c, masked to c <= r     (mma, then attn_gpu.score)
//   O = c_i exp(g_r) Q S + P V                                (mma on the shared 16-bit S)
//   S = exp(g_last) S + (K exp(g_last - g_c) f_c)^T V          (attn_gpu.state_update)
// with g the chunk's cumulative log decays and f its key factors; a gate (GLA) adds the
// per-channel log gates G (attn_gpu.log_gate_prefix, gate_keys, gate_operand, mma's gate). A
// strict-causal step (RWKV) masks to c < r, its rows take the exclusive g_r - log gamma_r
// (log_decay_prefix's `exclusive`, gate_operand's `strict`), and its bonus adds
// score(bonus-weighted q_r . k_r) v_r (attn_gpu.row_dot). The
// state lives in registers across chunks (#attn_gpu.frag<warp_acc>: each warp a block of rows),
// its 16-bit copy in shared memory feeds Q S. Copies are emitted synchronously; attn-gpu-pipeline
// double-buffers them. An output rmsnorm on sm_90a keeps the slices: a row's slices are the
// blocks of one thread-block cluster (nvvm.cluster_dim), which sum its squares together
// (attn_gpu.cluster_publish / cluster_gather over distributed shared memory, a chunk late).
#include "codegen/gpu/transforms/ChunkSchedule.h"
#include "codegen/gpu/transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/Matchers.h"

using namespace mlir;
using namespace mlir::attngpu;
using attn::ChunkStepOp;

LogicalResult mlir::attngpu::chunkSchedule(int64_t chunk, int64_t headDim, int64_t valueDim,
                                           ChunkSchedule &config, std::string &why,
                                           int64_t valueSlice, bool wholeRows,
                                           bool clusters) {
  config.rows = chunk == 1 ? 16 : chunk;  // the single-step form: one 16-row tile
  if (!llvm::is_contained({16, 32, 64, 128}, config.rows)) {
    why = "on CUDA the chunk size must be 16, 32, 64 or 128 (or 1 for a single step), got " +
          std::to_string(chunk);
    return failure();
  }
  config.warps = config.rows / 16;
  if (headDim % 16 || valueDim % 16 || headDim > 256 || valueDim > 256) {
    why = "head and value dims must be multiples of 16 up to 256, got " +
          std::to_string(headDim) + " and " + std::to_string(valueDim);
    return failure();
  }
  if (headDim % (16 * config.warps) && headDim > 16 * config.warps) {
    why = "the state's " + std::to_string(headDim) + " rows do not split over " +
          std::to_string(config.warps) + " warps of 16: use a smaller --chunk-size";
    return failure();
  }
  config.threads = 32 * config.warps;
  config.blockRows = std::max<int64_t>(16, headDim / config.warps);
  if (wholeRows && !clusters) {  // an output rmsnorm reduces each row over the whole value dim
    if (valueDim > 128 || (valueSlice && valueSlice != valueDim)) {
      why = "an output rmsnorm needs the whole value row in one block on CUDA before sm_90a "
            "(thread-block clusters): a value dim up to 128 and no other --value-slice, got " +
            std::to_string(valueDim) +
            (valueSlice ? " and " + std::to_string(valueSlice) : std::string());
      return failure();
    }
    config.valueSlice = valueDim;
    return success();
  }
  if (valueSlice) {
    if (valueSlice % 16 || valueDim % valueSlice || valueSlice > 128) {
      why = "the value slice must be a multiple of 16 up to 128 dividing the value dim " +
            std::to_string(valueDim) + ", got " + std::to_string(valueSlice);
      return failure();
    }
    if (wholeRows && valueDim / valueSlice > kMaxClusterBlocks) {
      why = "an output rmsnorm sums a row over the blocks of one cluster, at most " +
            std::to_string(kMaxClusterBlocks) + " slices: a --value-slice of at least " +
            std::to_string(valueDim / kMaxClusterBlocks) + " for a value dim of " +
            std::to_string(valueDim);
      return failure();
    }
    config.valueSlice = valueSlice;
    config.cluster = wholeRows ? valueDim / valueSlice : 1;
    return success();
  }
  // More slices mean more blocks (the grid is slices x heads x batch) and fewer registers, at
  // the price of recomputing Q K^T per slice: 32 f32 state registers per thread (bench/METHOD.md).
  int64_t budget = std::min<int64_t>(128, 32 * 32 * config.warps / headDim);
  config.valueSlice = 16;
  for (int64_t bv = 16; bv <= budget; bv += 16)
    if (valueDim % bv == 0)
      config.valueSlice = bv;
  if (wholeRows) {  // the row's slices are one cluster: at most kMaxClusterBlocks of them
    while (valueDim % config.valueSlice || valueDim / config.valueSlice > kMaxClusterBlocks)
      config.valueSlice += 16;
    config.cluster = valueDim / config.valueSlice;
  }
  return success();
}

namespace {

class ChunkDistributor {
public:
  ChunkDistributor(OpBuilder &b, ChunkStepOp step, gpu::GPUFuncOp kernel, ChunkSchedule cfg)
      : b(b), loc(step.getLoc()), step(step), kernel(kernel), cfg(cfg) {}

  LogicalResult run();

private:
  OpBuilder &b;
  Location loc;
  ChunkStepOp step;
  gpu::GPUFuncOp kernel;
  ChunkSchedule cfg;
  IRMapping map;  // host values -> kernel values
  SmallVector<Value> written;
  Type elt;
  Value q, k, v, out, state, proj;
  Value batch, head, qkHead, kvHead, colBase, qLen, kvLen, keysEnd;
  Value qTile, kTile, vTile, s16, qFeature, kFeature, wTile, cum, cumQ, gateCum, keyScales;
  Value clusterSquares;  // an rmsnorm over a cluster: two slots of the rows' sums of squares
  Value bonusDot;  // strict with a bonus: each row's bonus-weighted q_i . k_i (rows fragment)
  int64_t headDim = 0, rawDim = 0, columns = 0;

  Value idx(int64_t x) { return arith::ConstantIndexOp::create(b, loc, x); }
  void barrier() { gpu::BarrierOp::create(b, loc); }
  Value fmul(Value x, Value y) { return arith::MulFOp::create(b, loc, x, y); }
  Value fadd(Value x, Value y) { return arith::AddFOp::create(b, loc, x, y); }
  RankedTensorType accType(int64_t cols) {
    return fragmentType({cfg.rows, cols}, b.getF32Type(), FragmentKind::acc);
  }
  RankedTensorType rowsType() { return fragmentType({cfg.rows}, b.getF32Type(), FragmentKind::rows); }
  Value splat(RankedTensorType type, double value) {
    return arith::ConstantOp::create(
        b, loc, type, DenseElementsAttr::get(type, b.getF32FloatAttr(float(value))));
  }
  Value sumRows(Value x) {
    return RowReduceOp::create(b, loc, rowsType(), x,
                               ReduceKindAttr::get(b.getContext(), ReduceKind::sum));
  }
  Value quadSum(Value x) {
    return QuadReduceOp::create(b, loc, x.getType(), x,
                                ReduceKindAttr::get(b.getContext(), ReduceKind::sum));
  }
  Value broadcast(Value rows, int64_t cols) {
    return BroadcastRowsOp::create(b, loc, accType(cols), rows);
  }
  Value sharedTile(int64_t rows, int64_t cols, Type element, bool padded) {
    auto space = gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
    SmallVector<int64_t> shape = {rows};
    if (cols)
      shape.push_back(cols + (padded ? kSharedPad : 0));
    return AllocSharedOp::create(b, loc, MemRefType::get(shape, element, MemRefLayoutAttrInterface(),
                                                         space),
                                 IntegerAttr());
  }
  /// Copies a chunk_step region into an attn_gpu op (captures mapped, attn.yield replaced).
  void cloneRegion(Region &from, Region &to) { cloneRegionInto(b, from, to, map); }

  LogicalResult mapArguments();
  void emitGrid();
  void emitSharedTiles();
  void emitCopies(Value n0);
  void emitLanded(Value n0, Value &qT, Value &kT);
  Value emitScores(Value n0, Value qOp, Value kT);
  Value emitOutput(Value n0, Value qOp, Value p);
  Value rmsNormed(Value ov, Value squares);
  Value skipTerm(Value n0);
  Value clusterSlot(Value n0);
  void storeOutput(Value o, Value n0);
  scf::ForOp emitChunkLoop(Value s0);
  void emitLaunch();
};

/// Kernel values of the step's tensors; the state's buffer (a subview of an argument, or a
/// zero-started buffer of the host's); GQA and q/k head groups; region captures.
LogicalResult ChunkDistributor::mapArguments() {
  func::FuncOp f = step->getParentOfType<func::FuncOp>();
  for (auto [hostArg, kernelArg] : llvm::zip(f.getArguments(), kernel.getArguments()))
    map.map(hostArg, kernelArg);
  q = map.lookup(step.getQ());
  k = map.lookup(step.getK());
  v = map.lookup(step.getV());
  out = map.lookup(step.getOut());
  written = {step.getOut()};
  if (auto view = step.getState().getDefiningOp<memref::SubViewOp>()) {
    state = map.lookup(view.getSource());
    written.push_back(view.getSource());
  }
  if (Value w = step.getProjection())
    proj = map.lookup(w);
  for (Region *region : {&step.getScore(), &step.getFeatureQ(), &step.getFeatureK(),
                         &step.getDecay(), &step.getGate(), &step.getKeyScale(), &step.getSkip(),
                         &step.getBonus()})
    if (failed(materializeCaptures(b, map, *region, written, step)))
      return failure();
  return success();
}

/// Grid: x = value slice, y = head, z = batch.
void ChunkDistributor::emitGrid() {
  colBase = arith::MulIOp::create(b, loc, gpu::BlockIdOp::create(b, loc, gpu::Dimension::x),
                                  idx(cfg.valueSlice));
  head = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  batch = gpu::BlockIdOp::create(b, loc, gpu::Dimension::z);
  IntegerAttr group;
  auto div = step.getHk().getDefiningOp<arith::DivUIOp>();
  kvHead = head;
  if (div && div.getLhs() == step.getH() && matchPattern(div.getRhs(), m_Constant(&group)))
    kvHead = arith::DivUIOp::create(b, loc, head, idx(group.getInt()));
  if (int64_t qkGroup = int64_t(step.getQkGroup()); qkGroup > 1)  // q and k at h / G
    qkHead = arith::DivUIOp::create(b, loc, head, idx(qkGroup));
  qLen = b.createOrFold<memref::DimOp>(loc, q, 2);
  kvLen = b.createOrFold<memref::DimOp>(loc, k, 2);
  keysEnd = arith::MinUIOp::create(b, loc, kvLen, qLen);  // keys past the last query never count
}

/// Q, K, V tiles of a chunk, the 16-bit state, projection tiles, and the f32 per-position
/// factors: cumulative log decays, log gates per channel, key factors.
void ChunkDistributor::emitSharedTiles() {
  int64_t loaded = rawDim ? rawDim : headDim;
  qTile = sharedTile(cfg.rows, loaded, elt, true);
  kTile = sharedTile(cfg.rows, loaded, elt, true);
  vTile = sharedTile(cfg.rows, cfg.valueSlice, elt, true);
  s16 = sharedTile(headDim, columns, elt, true);
  if (proj) {
    qFeature = sharedTile(cfg.rows, headDim, elt, true);
    kFeature = sharedTile(cfg.rows, headDim, elt, true);
    wTile = sharedTile(headDim, rawDim, elt, true);
  }
  if (!step.getDecay().empty())
    cum = sharedTile(cfg.rows, 0, b.getF32Type(), false);
  if (cum && step.getStrict())  // the rows' exclusive prefix: the state before their step
    cumQ = sharedTile(cfg.rows, 0, b.getF32Type(), false);
  if (!step.getGate().empty())
    gateCum = sharedTile(cfg.rows, headDim, b.getF32Type(), false);
  if (!step.getKeyScale().empty())
    keyScales = sharedTile(cfg.rows, 0, b.getF32Type(), false);
  if (cfg.cluster > 1)
    clusterSquares = sharedTile(2 * cfg.rows, 0, b.getF32Type(), false);
}

/// Positions n0 .. n0 + R - 1 of Q, K and V (V's slice of channels), waited for.
void ChunkDistributor::emitCopies(Value n0) {
  CopyQueryTileOp::create(b, loc, q, qTile, batch, qkHead ? qkHead : head, n0,
                          b.getI64IntegerAttr(1));
  CopyKeyTileOp::create(b, loc, k, kTile, batch, qkHead ? qkHead : kvHead, n0, kvLen, Value(),
                        Value(), Value(), Value(), b.getI64IntegerAttr(0));
  CopyKeyTileOp::create(b, loc, v, vTile, batch, kvHead, n0, kvLen, Value(), colBase,
                        Value(), Value(), b.getI64IntegerAttr(0));
  auto token = nvgpu::DeviceAsyncTokenType::get(b.getContext());
  Value group = nvgpu::DeviceAsyncCreateGroupOp::create(b, loc, token, ValueRange{});
  nvgpu::DeviceAsyncWaitOp::create(b, loc, group, b.getI32IntegerAttr(0));
  barrier();
}

/// Feature maps (or the projection), key factors, decays and gates of the landed chunk; qT and
/// kT become the tiles Q and K are read from.
void ChunkDistributor::emitLanded(Value n0, Value &qT, Value &kT) {
  qT = qTile, kT = kTile;
  if (proj) {
    auto project = [&](Value raw, Value feature, Region &mapRegion) {
      auto op = ProjectTileOp::create(b, loc, raw, wTile, feature);
      cloneRegion(mapRegion, op.getMap());
    };
    project(qTile, qFeature, step.getFeatureQ());
    project(kTile, kFeature, step.getFeatureK());
    barrier();
    qT = qFeature, kT = kFeature;
  } else {
    for (auto [tile, feature] : {std::pair<Value, Region *>{qTile, &step.getFeatureQ()},
                                 std::pair<Value, Region *>{kTile, &step.getFeatureK()}}) {
      if (feature->empty())
        continue;
      auto op = MapTileOp::create(b, loc, tile);
      cloneRegion(*feature, op.getFeature());
      barrier();
    }
  }
  if (!step.getBonus().empty()) {  // before gate_keys rewrites K in place
    auto op = RowDotOp::create(b, loc, rowsType(), qT, kT, batch, head, n0, qLen,
                               b.getI64IntegerAttr(headDim));
    cloneRegion(step.getBonus(), op.getWeight());
    bonusDot = op;
  }
  if (keyScales) {
    auto op = KeyFactorsOp::create(b, loc, keyScales, batch, head, n0, keysEnd);
    cloneRegion(step.getKeyScale(), op.getKeyScale());
    if (!cum && !gateCum)  // otherwise their barriers publish the factors
      barrier();
  }
  if (cum) {
    auto op = LogDecayPrefixOp::create(b, loc, cum, batch, head, n0, qLen, Value(), cumQ, false,
                                       true);
    cloneRegion(step.getDecay(), op.getDecay());
  }
  if (gateCum) {
    auto op = LogGatePrefixOp::create(b, loc, gateCum, batch, head, n0, qLen);
    cloneRegion(step.getGate(), op.getGate());
    GateKeysOp::create(b, loc, kT, gateCum);
  }
}

/// P = Q K^T (gated: q~ K~^T with the block factors), then the score region, decays and key
/// factors under the mask c <= r (strict: c < r) and the keys below kv_len.
Value ChunkDistributor::emitScores(Value n0, Value qOp, Value kT) {
  Value p = MmaOp::create(b, loc, accType(cfg.rows), qOp, kT, splat(accType(cfg.rows), 0),
                          gateCum, /*transpose_b=*/true, /*gate_blocks=*/bool(gateCum),
                          MmaKindAttr());
  auto score = ScoreOp::create(b, loc, accType(cfg.rows), p, batch, head, n0, n0, qLen, kvLen,
                               cumQ ? cumQ : cum, cum, keyScales, /*q_norms=*/Value(),
                               /*k_norms=*/Value(), /*full=*/Value(),
                               b.getF32FloatAttr(0),
                               b.getI64IntegerAttr(1));
  cloneRegion(step.getScore(), score.getScore());
  // The recurrence's mask: key j <= query i (strict: j < i).
  Type index = b.getIndexType();
  Block *mask = b.createBlock(&score.getMask(), {}, {index, index, index, index},
                              {loc, loc, loc, loc});
  Value allowed = arith::CmpIOp::create(
      b, loc, step.getStrict() ? arith::CmpIPredicate::ult : arith::CmpIPredicate::ule,
      mask->getArgument(3), mask->getArgument(2));
  YieldOp::create(b, loc, allowed);
  b.setInsertionPointAfter(score);
  return score;
}

/// O = c_i exp(g_r) q S + P V (+ the bonus term), then norm sum, rmsnorm and the skip term.
Value ChunkDistributor::emitOutput(Value n0, Value qOp, Value p) {
  int64_t bv = cfg.valueSlice;
  Value o = MmaOp::create(b, loc, accType(columns), qOp, s16, splat(accType(columns), 0), gateCum,
                          /*transpose_b=*/false, /*gate_blocks=*/false, MmaKindAttr());
  auto factor = MapElementsOp::create(b, loc, accType(columns), o, ValueRange(), batch, head, n0,
                                      idx(0), qLen);
  cloneRegion(step.getScore(), factor.getBody());  // linear in its dot, free of j
  o = factor;
  if (cum)
    o = fmul(o, broadcast(math::ExpOp::create(
                              b, loc, LoadRowsOp::create(b, loc, rowsType(), cumQ ? cumQ : cum)),
                          columns));
  Value ov = columns == bv ? o : ColumnsOp::create(b, loc, accType(bv), o, 0).getResult();
  Value pOp = ToOperandOp::create(
      b, loc, fragmentType({cfg.rows, cfg.rows}, elt, FragmentKind::operand_a), p);
  ov = MmaOp::create(b, loc, accType(bv), pOp, vTile, ov, Value(), false, false, MmaKindAttr());
  if (bonusDot) {  // + score(b, h, i, i, the bonus dot) key_scale(i) v_i: V's row i is the chunk's
    auto weight = MapElementsOp::create(b, loc, accType(bv), broadcast(bonusDot, bv),
                                        ValueRange(), batch, head, n0, idx(0), qLen);
    cloneRegion(step.getScore(), weight.getBody());  // linear in its dot, free of j
    Value w = weight;
    if (keyScales)
      w = fmul(w, broadcast(LoadRowsOp::create(b, loc, rowsType(), keyScales), bv));
    ov = fadd(ov, fmul(w, LoadAccOp::create(b, loc, accType(bv), vTile)));
  }
  if (step.getNormalize()) {  // divide by the weights' sum: c_i exp(g_r) q z + sum_c P[r, c]
    Value z = ColumnsOp::create(b, loc, accType(8), o, bv);
    Value sum = quadSum(fadd(sumRows(z), sumRows(p)));
    Value none = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, sum, splat(rowsType(), 0));
    Value inverse = arith::DivFOp::create(b, loc, splat(rowsType(), 1),
                                          arith::SelectOp::create(b, loc, none,
                                                                  splat(rowsType(), 1), sum));
    Value scale = arith::SelectOp::create(b, loc, none, splat(rowsType(), 0), inverse);
    ov = fmul(ov, broadcast(scale, bv));
  }
  return ov;
}

/// ov rmsnorm'd by its rows' sums of squares over the whole value dim (all slices).
Value ChunkDistributor::rmsNormed(Value ov, Value squares) {
  Value mean = fmul(squares, splat(rowsType(), 1.0 / double(cfg.valueSlice * cfg.cluster)));
  Value scale = math::RsqrtOp::create(
      b, loc, fadd(mean, splat(rowsType(), step.getRmsEps()->convertToDouble())));
  return fmul(ov, broadcast(scale, cfg.valueSlice));
}

/// skip(b, h, i, e, v[i, e]) (V's row i is the chunk's), or null without a skip term.
Value ChunkDistributor::skipTerm(Value n0) {
  if (step.getSkip().empty())
    return Value();
  Value vAcc = LoadAccOp::create(b, loc, accType(cfg.valueSlice), vTile);
  auto skip = MapElementsOp::create(b, loc, accType(cfg.valueSlice), vAcc, ValueRange(), batch,
                                    head, n0, colBase, qLen);
  cloneRegion(step.getSkip(), skip.getBody());
  return skip;
}

/// The cluster's scratch entries of chunk n0: two slots of R rows, alternating.
Value ChunkDistributor::clusterSlot(Value n0) {
  Value chunkIndex = arith::DivUIOp::create(b, loc, n0, idx(cfg.rows));
  return arith::MulIOp::create(b, loc, arith::RemUIOp::create(b, loc, chunkIndex, idx(2)),
                               idx(cfg.rows));
}

void ChunkDistributor::storeOutput(Value o, Value n0) {
  StoreTileOp::create(b, loc, o, out, batch, head, n0, qLen, ValueRange{}, colBase,
                      b.getI64IntegerAttr(1));
}

void ChunkDistributor::emitLaunch() {
  int64_t outArg = cast<BlockArgument>(step.getOut()).getArgNumber();
  SmallVector<std::pair<StringRef, int64_t>> schedule = {
      {"chunk", int64_t(step.getChunk())}, {"rows", cfg.rows}, {"value_slice", cfg.valueSlice},
      {"block_q", cfg.rows}, {"block_k", cfg.rows}, {"warps", cfg.warps}};
  if (cfg.cluster > 1)
    schedule.push_back({"cluster", cfg.cluster});

  setLaunch(kernel, cfg.threads,
            {{outArg, 3, 1, cfg.valueSlice}, {outArg, 1, 1, 1}, {outArg, 0, 1, 1}},
            /*sharedMemory=*/0, schedule);
  if (cfg.cluster > 1)  // the slices of a row: grid x is exactly the cluster
    kernel->setAttr(NVVM::NVVMDialect::getClusterDimAttrName(),
                    b.getDenseI32ArrayAttr({int32_t(cfg.cluster), 1, 1}));
}

/// The chunks in order. An rmsnorm over a cluster finishes each chunk's output one iteration
/// late: chunk n publishes its rows' partial sums of squares (arriving on the cluster barrier)
/// and carries its unnormalised rows; chunk n + 1 waits for every block's sums of chunk n
/// (attn_gpu.cluster_gather), scales and stores them, so the wait for the cluster's slowest
/// block overlaps a chunk of work. The last chunk's rows finish after the loop.
scf::ForOp ChunkDistributor::emitChunkLoop(Value s0) {
  bool clustered = cfg.cluster > 1, skips = !step.getSkip().empty();
  SmallVector<Value> inits = {s0};
  if (clustered) {  // chunk n - 1's unnormalised rows, and its skip term (added after the norm)
    inits.push_back(splat(accType(cfg.valueSlice), 0));
    if (skips)
      inits.push_back(splat(accType(cfg.valueSlice), 0));
  }
  auto loop = scf::ForOp::create(b, loc, idx(0), qLen, idx(cfg.rows), inits);
  // If `any`: waits for every block's sums of chunk n0, scales its rows and stores them.
  // (Storing after the next publish instead, so that its arrive-release need not wait for the
  // stores, measured 9% slower on the H100: bench/METHOD.md.)
  auto finish = [&](ValueRange pending, Value n0, Value any) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(scf::IfOp::create(b, loc, any, false).thenBlock());
    Value squares = ClusterGatherOp::create(b, loc, rowsType(), clusterSquares, clusterSlot(n0));
    Value o = rmsNormed(pending[0], squares);
    storeOutput(skips ? fadd(o, pending[1]) : o, n0);
  };
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value n0 = loop.getInductionVar();
    Value S = loop.getRegionIterArgs()[0];
    emitCopies(n0);
    Value qT, kT;
    emitLanded(n0, qT, kT);
    Value qOp = LoadOperandOp::create(
        b, loc, fragmentType({cfg.rows, headDim}, elt, FragmentKind::operand_a), qT);
    if (gateCum)  // q~ = q exp(G[r] - G[r0]) (strict: G[r - 1] - G[r0])
      qOp = GateOperandOp::create(b, loc, qOp.getType(), qOp, gateCum, step.getStrict());
    Value p = emitScores(n0, qOp, kT);
    Value o = emitOutput(n0, qOp, p);
    SmallVector<Value> carried;
    if (clustered) {
      carried.push_back(o);
      if (skips)
        carried.push_back(skipTerm(n0));
      Value squares = quadSum(sumRows(fmul(o, o)));
      finish(loop.getRegionIterArgs().drop_front(),  // chunk n - 1, if n > 0
             arith::SubIOp::create(b, loc, n0, idx(cfg.rows)),
             arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt, n0, idx(0)));
      ClusterPublishOp::create(b, loc, squares, clusterSquares, clusterSlot(n0));
    } else {
      if (step.getRmsEps())  // the block holds the rows' whole value dim
        o = rmsNormed(o, quadSum(sumRows(fmul(o, o))));
      if (Value skip = skipTerm(n0))
        o = fadd(o, skip);
      storeOutput(o, n0);
    }
    // The chunk's last row: min(R, q_len - n0) - 1.
    Value last = arith::AddIOp::create(
        b, loc,
        arith::MinUIOp::create(b, loc, idx(cfg.rows), arith::SubIOp::create(b, loc, qLen, n0)),
        idx(-1));
    S = StateUpdateOp::create(b, loc, S.getType(), S, kT, vTile, n0, last, keysEnd, cum,
                              keyScales, gateCum, step.getNormalize());
    barrier();  // every warp is done with this chunk's tiles and the 16-bit state
    ShareStateOp::create(b, loc, S, s16);
    carried.insert(carried.begin(), S);
    scf::YieldOp::create(b, loc, carried);
  }
  if (clustered) {  // the last chunk's rows (none if q_len is 0), then no block exits while a
                    // peer still reads its sums
    Value lastChunk = arith::MulIOp::create(
        b, loc,
        arith::DivUIOp::create(b, loc, arith::AddIOp::create(b, loc, qLen, idx(-1)),
                               idx(cfg.rows)),
        idx(cfg.rows));
    finish(loop.getResults().drop_front(), lastChunk,
           arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt, qLen, idx(0)));
    ClusterSyncOp::create(b, loc);
  }
  return loop;
}

LogicalResult ChunkDistributor::run() {
  kernel.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({int32_t(cfg.threads), 1, 1}));
  emitLaunch();
  if (failed(mapArguments()))
    return failure();
  elt = cast<MemRefType>(q.getType()).getElementType();
  headDim = cast<MemRefType>(q.getType()).getDimSize(3);
  if (proj) {  // Performer: tiles of d, features and state over m
    rawDim = headDim;
    headDim = cast<MemRefType>(proj.getType()).getDimSize(0);
  }
  columns = cfg.valueSlice + (step.getNormalize() ? 8 : 0);
  emitGrid();
  emitSharedTiles();

  auto stateType = fragmentType({cfg.blockRows, columns}, b.getF32Type(), FragmentKind::warp_acc);
  Value s0 = state ? LoadStateOp::create(b, loc, stateType, state, batch, head, colBase,
                                         b.getI64IntegerAttr(headDim))
                         .getResult()
                   : splat(stateType, 0);
  ShareStateOp::create(b, loc, s0, s16);
  if (proj) {  // w [m, d] in 16 bits, once (the first chunk's barrier publishes it)
    CopyMatrixOp::create(b, loc, proj, wTile);
  }
  scf::ForOp loop = emitChunkLoop(s0);
  if (state)
    StoreStateOp::create(b, loc, loop.getResult(0), state, batch, head, colBase,
                         b.getI64IntegerAttr(headDim));
  gpu::ReturnOp::create(b, loc);
  return success();
}

} // namespace

LogicalResult mlir::attngpu::distributeChunk(OpBuilder &b, ChunkStepOp step,
                                             gpu::GPUFuncOp kernel, int64_t valueSlice,
                                             bool clusters) {
  auto q = step.getQ().getType();
  Type elt = q.getElementType();
  if (!elt.isF16() && !elt.isBF16())
    return step.emitError() << "the CUDA back end takes f16 or bf16 q, k, v (got " << elt
                            << "); compile with --dtype=bf16";
  // A gate scales each key row in the 16-bit K tile by exp(G[c0] - G[c]) over up to 15 steps:
  // finite in bf16 (to e^88) but not in f16 (to e^11), where GLA's gates overflow to inf/NaN.
  if (!step.getGate().empty() && elt.isF16())
    return step.emitError("on CUDA a gate (a per-channel decay) needs bf16 q, k, v: the gated "
                          "key tile would overflow f16's range; compile with --dtype=bf16");
  int64_t d = q.getDimSize(3), dv = step.getOut().getType().getDimSize(3);
  if (ShapedType::isDynamic(d) || ShapedType::isDynamic(dv))
    return step.emitError("the CUDA back end needs static head and value dims: declare them "
                          "(d = 128) or pass --set d=128");
  if (Value w = step.getProjection()) {  // Performer: q and k tiles of d, the rest over m
    int64_t m = cast<MemRefType>(w.getType()).getDimSize(0);
    if (m % 16 || m > 256 || d % 16 || d > 256)  // m is static (the verifier)
      return step.emitError() << "on CUDA a projected feature map needs static head and feature "
                                 "dims that are multiples of 16 up to 256, got "
                              << d << " and " << m;
    d = m;
  }
  ChunkSchedule config;
  std::string why;
  if (failed(chunkSchedule(int64_t(step.getChunk()), d, dv, config, why, valueSlice,
                           step.getRmsEps().has_value(), clusters)))
    return step.emitError(why);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(&kernel.getBody().front());
  return ChunkDistributor(b, step, kernel, config).run();
}
