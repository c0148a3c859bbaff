// attn-gpu-distribute, scan strategy: attn.chunk_step in the recurrent (scan) form, for the
// shapes the tensor-core chunk kernel does not take: a head or value dim that is not a multiple
// of 16, as in Mamba-1's selective scan, where every channel is a head with one value channel
// and a state of N = 16 (Dao & Gu 2024, section 7: "SSMs with head dimension P = 1"). A group
// of `lanes` threads (a power of two dividing d, up to 32) owns one (batch, head, value channel
// e) and walks every position t in order; lane l keeps the state entries c = l, l + lanes, ...
// of the column S[:, e] in registers:
//   S[c, e] = gamma_t gate_t[c] S[c, e] + k_t fk(k_t[c]) v[t, e]       (keys below kv_len)
//   o[t, e] = c_t sum_c fq(q_t[c]) S[c, e]  (+ skip(t, e, v[t, e]))
// (strict-causal: o from the S before the step, plus the bonus term of the current token)
// the sum over the group by shuffles; gamma is the decay, k_t the score's key factor and c_t its
// query factor. Threads past the heads or value channels compute on clamped indices (every lane
// of a warp takes part in the shuffles) and store nothing. Each loop iteration first reads the
// inputs of kScanSteps positions (their loads overlap), then takes the steps in order. The
// kernel is per-thread scalar code (gpu, scf, arith, memref): no tiles, no fragments.
#include "codegen/gpu/transforms/ChunkSchedule.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Matchers.h"

using namespace mlir;
using namespace mlir::attngpu;
using attn::ChunkStepOp;

LogicalResult mlir::attngpu::scanSchedule(int64_t headDim, int64_t valueDim,
                                          ScanSchedule &config, std::string &why) {
  if (headDim < 1 || headDim > kScanMaxHeadDim || valueDim < 1) {
    why = "the recurrent (scan) kernel keeps a state column of up to " +
          std::to_string(kScanMaxHeadDim) + " values per thread: the head dim must be 1 to " +
          std::to_string(kScanMaxHeadDim) + ", got " + std::to_string(headDim);
    return failure();
  }
  config.threads = 128;
  config.lanes = 1;
  while (config.lanes < 32 && headDim % (2 * config.lanes) == 0)
    config.lanes *= 2;
  int64_t channels = config.threads / config.lanes;  // (head, value channel) pairs per block
  config.valueBlock = std::min<int64_t>(valueDim, channels);
  config.headsPerBlock = channels / config.valueBlock;
  return success();
}

namespace {

class ScanDistributor {
public:
  ScanDistributor(OpBuilder &b, ChunkStepOp step, gpu::GPUFuncOp kernel, ScanSchedule cfg)
      : b(b), loc(step.getLoc()), step(step), kernel(kernel), cfg(cfg) {}

  LogicalResult run();

private:
  OpBuilder &b;
  Location loc;
  ChunkStepOp step;
  gpu::GPUFuncOp kernel;
  ScanSchedule cfg;
  IRMapping map;
  Value batch, head;
  // The kernel's tensors, this thread's value channel e and state entries, the heads of q, k
  // and v, and whether this thread stores.
  Value q, k, v, out, state, e, vHead, qHead, kHead, qLen, keysEnd, store, active;
  SmallVector<Value> entries;  // this lane's state entries: lane, lane + lanes, ...

  /// The inputs of one step t: all loaded before the steps of an iteration run.
  struct Inputs {
    Value t, inRange, gamma, weighted, factor, skip;
    SmallVector<Value> gate, k, q, bonus;
  };

  LogicalResult mapThreads();
  void mapHeads();
  Inputs loadStep(Value position);
  /// S = gamma_t diag(gate_t) S + k_t fk(k_t) v[t, e] (a step past q_len keeps S), and
  /// o[t, e] = c_t (the group's sum of fq(q_t) . S) (+ skip); strict: o from the S before the
  /// step, plus c_t k_t sum_c fq(q_t[c]) fk(k_t[c]) bonus(c) v[t, e].
  void applyStep(const Inputs &x, SmallVector<Value> &S);

  Value idx(int64_t x) { return arith::ConstantIndexOp::create(b, loc, x); }
  Value f32(double x) { return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(float(x))); }
  Value add(Value x, int64_t y) { return y ? arith::AddIOp::create(b, loc, x, idx(y)) : x; }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value mul(Value x, int64_t y) { return arith::MulIOp::create(b, loc, x, idx(y)); }
  Value div(Value x, int64_t y) { return arith::DivUIOp::create(b, loc, x, idx(y)); }
  Value rem(Value x, int64_t y) { return arith::RemUIOp::create(b, loc, x, idx(y)); }
  Value lt(Value x, Value y) {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, x, y);
  }
  Value both(Value x, Value y) { return arith::AndIOp::create(b, loc, x, y); }
  Value minIdx(Value x, Value y) { return arith::MinUIOp::create(b, loc, x, y); }
  Value fmul(Value x, Value y) { return arith::MulFOp::create(b, loc, x, y); }
  Value fadd(Value x, Value y) { return arith::AddFOp::create(b, loc, x, y); }
  Value inlineRegion(Region &region, ValueRange args) {
    return attn::buildInlinedRegion(b, region, args, map);
  }
  Value load(Value memref, ValueRange indices) {
    Value x = memref::LoadOp::create(b, loc, memref, indices);
    return x.getType().isF32() ? x : arith::ExtFOp::create(b, loc, b.getF32Type(), x).getResult();
  }
  /// `then` under `cond`, else 0 (an f32).
  Value ifElseZero(Value cond, function_ref<Value()> then) {
    auto ifOp = scf::IfOp::create(b, loc, TypeRange{b.getF32Type()}, cond, true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(ifOp.thenBlock());
    scf::YieldOp::create(b, loc, then());
    b.setInsertionPointToStart(ifOp.elseBlock());
    scf::YieldOp::create(b, loc, f32(0));
    return ifOp.getResult(0);
  }
  Value mapped(Region &feature, Value x) {
    return feature.empty() ? x : inlineRegion(feature, {x});
  }
  /// Runs `body` where `cond` holds.
  void ifThen(Value cond, function_ref<void()> body) {
    auto ifOp = scf::IfOp::create(b, loc, cond, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
    body();
  }
};

/// The kernel's arguments and captures, and this thread's (batch, head, value channel) and
/// its lane in the channel's group.
LogicalResult ScanDistributor::mapThreads() {
  func::FuncOp f = step->getParentOfType<func::FuncOp>();
  for (auto [hostArg, kernelArg] : llvm::zip(f.getArguments(), kernel.getArguments()))
    map.map(hostArg, kernelArg);
  q = map.lookup(step.getQ()), k = map.lookup(step.getK()), v = map.lookup(step.getV());
  out = map.lookup(step.getOut());
  SmallVector<Value> written = {step.getOut()};
  if (auto view = step.getState().getDefiningOp<memref::SubViewOp>()) {
    state = map.lookup(view.getSource());
    written.push_back(view.getSource());
  }
  const int64_t dv = cast<MemRefType>(out.getType()).getDimSize(3);
  const int64_t lanes = cfg.lanes;
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value lane = rem(tid, lanes), channel = div(tid, lanes);
  Value local = div(channel, cfg.valueBlock);
  Value h = add(mul(gpu::BlockIdOp::create(b, loc, gpu::Dimension::x), cfg.headsPerBlock), local);
  batch = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  Value ev = add(mul(gpu::BlockIdOp::create(b, loc, gpu::Dimension::z), cfg.valueBlock),
                 rem(channel, cfg.valueBlock));
  Value heads = memref::DimOp::create(b, loc, out, 1);
  active = both(both(lt(local, idx(cfg.headsPerBlock)), lt(h, heads)), lt(ev, idx(dv)));
  // Inactive threads work on the last head and channel: the shuffles need every lane.
  head = minIdx(h, add(heads, -1));
  e = minIdx(ev, idx(dv - 1));
  store = both(active, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, lane, idx(0)));
  for (Region *region : {&step.getScore(), &step.getFeatureQ(), &step.getFeatureK(),
                         &step.getDecay(), &step.getGate(), &step.getKeyScale(), &step.getSkip(),
                         &step.getBonus()})
    if (failed(materializeCaptures(b, map, *region, written, step)))
      return failure();
  const int64_t perLane = cast<MemRefType>(q.getType()).getDimSize(3) / lanes;
  mapHeads();
  for (int64_t m = 0; m < perLane; ++m)
    entries.push_back(add(lane, m * lanes));
  return success();
}

/// Heads of q, k and v: h, h / group (GQA), or h / G for q and k (q/k head groups).
void ScanDistributor::mapHeads() {
  vHead = head;
  IntegerAttr group;
  auto groupDiv = step.getHk().getDefiningOp<arith::DivUIOp>();
  if (groupDiv && groupDiv.getLhs() == step.getH() &&
      matchPattern(groupDiv.getRhs(), m_Constant(&group)))
    vHead = div(head, group.getInt());
  qHead = head, kHead = vHead;
  if (int64_t qkGroup = int64_t(step.getQkGroup()); qkGroup > 1)
    qHead = kHead = div(head, qkGroup);
  qLen = memref::DimOp::create(b, loc, q, 2);
  keysEnd = minIdx(memref::DimOp::create(b, loc, k, 2), qLen);
}

ScanDistributor::Inputs ScanDistributor::loadStep(Value position) {
  Inputs x;
  x.inRange = lt(position, qLen);
  Value t = x.t = minIdx(position, add(qLen, -1));
  if (!step.getDecay().empty())
    x.gamma = inlineRegion(step.getDecay(), {batch, head, t});
  Value key = lt(position, keysEnd);  // k_t v[t, e], 0 past the keys that count
  x.weighted = ifElseZero(key, [&] {
    Value value = load(v, {batch, vHead, t, e});
    return step.getKeyScale().empty()
               ? value
               : fmul(inlineRegion(step.getKeyScale(), {batch, head, t}), value);
  });
  for (Value entry : entries) {
    if (!step.getGate().empty())
      x.gate.push_back(inlineRegion(step.getGate(), {batch, head, t, entry}));
    x.k.push_back(ifElseZero(key, [&] {
      return mapped(step.getFeatureK(), load(k, {batch, kHead, t, entry}));
    }));
    x.q.push_back(mapped(step.getFeatureQ(), load(q, {batch, qHead, t, entry})));
    if (!step.getBonus().empty())
      x.bonus.push_back(inlineRegion(step.getBonus(), {batch, head, t, entry}));
  }
  x.factor = inlineRegion(step.getScore(), {batch, head, t, idx(0), f32(1)});
  if (!step.getSkip().empty())  // the key dim is the query dim: v has row t
    x.skip = inlineRegion(step.getSkip(), {batch, head, t, e, load(v, {batch, vHead, t, e})});
  return x;
}

void ScanDistributor::applyStep(const Inputs &x, SmallVector<Value> &S) {
  Value acc = f32(0);
  bool strict = step.getStrict();
  for (size_t m = 0; m < S.size(); ++m) {
    if (strict)  // the state before the step
      acc = fadd(acc, fmul(x.q[m], S[m]));
    if (!x.bonus.empty())  // the current token, its channel m weighed by the bonus
      acc = fadd(acc, fmul(fmul(x.q[m], x.k[m]), fmul(x.bonus[m], x.weighted)));
    Value decayed = S[m];
    if (x.gamma)
      decayed = fmul(decayed, x.gamma);
    if (!x.gate.empty())
      decayed = fmul(decayed, x.gate[m]);
    S[m] = arith::SelectOp::create(b, loc, x.inRange, fadd(decayed, fmul(x.k[m], x.weighted)),
                                   S[m]);
    if (!strict)
      acc = fadd(acc, fmul(x.q[m], S[m]));
  }
  for (int32_t offset = int32_t(cfg.lanes / 2); offset >= 1; offset /= 2)
    acc = fadd(acc, gpu::ShuffleOp::create(b, loc, acc, offset, 32, gpu::ShuffleMode::XOR)
                        .getShuffleResult());
  Value o = fmul(x.factor, acc);
  if (x.skip)
    o = fadd(o, x.skip);
  Type outElt = cast<MemRefType>(out.getType()).getElementType();
  if (outElt != o.getType())
    o = arith::TruncFOp::create(b, loc, outElt, o);
  ifThen(both(store, x.inRange),
         [&] { memref::StoreOp::create(b, loc, o, out, ValueRange{batch, head, x.t, e}); });
}

LogicalResult ScanDistributor::run() {
  if (failed(mapThreads()))
    return failure();
  SmallVector<Value> s0;
  for (Value c : entries)
    s0.push_back(state ? load(state, {batch, head, c, e}) : f32(0));
  // kScanSteps positions per iteration: first every input of those steps (their loads in
  // flight together; positions past q_len read at the last one), then the steps in order.
  auto loop = scf::ForOp::create(b, loc, idx(0), qLen, idx(kScanSteps), s0);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value t0 = loop.getInductionVar();
    SmallVector<Value> S(loop.getRegionIterArgs().begin(), loop.getRegionIterArgs().end());
    std::vector<Inputs> in;
    for (int64_t u = 0; u < kScanSteps; ++u)
      in.push_back(loadStep(add(t0, u)));
    for (const Inputs &x : in)
      applyStep(x, S);
    scf::YieldOp::create(b, loc, S);
  }
  if (state)
    ifThen(active, [&] {
      for (size_t m = 0; m < entries.size(); ++m)
        memref::StoreOp::create(b, loc, loop.getResult(unsigned(m)), state,
                                ValueRange{batch, head, entries[m], e});
    });
  gpu::ReturnOp::create(b, loc);
  return success();
}

} // namespace

LogicalResult mlir::attngpu::distributeScan(OpBuilder &b, ChunkStepOp step,
                                            gpu::GPUFuncOp kernel) {
  // Static dims: attn-gpu-select-strategy sends dynamic ones to the chunk kernel, which
  // reports them.
  int64_t d = step.getQ().getType().getDimSize(3), dv = step.getOut().getType().getDimSize(3);
  ScanSchedule config;
  std::string why;
  if (failed(scanSchedule(d, dv, config, why)))
    return step.emitError(why);
  if (step.getProjection())
    return step.emitError() << "not supported yet on CUDA: a projected feature map with a value "
                               "dim that is not a multiple of 16 (got "
                            << dv << ")";
  if (step.getNormalize() || step.getRmsEps())
    return step.emitError() << "not supported yet on CUDA: "
                            << (step.getNormalize() ? "norm sum" : "an output rmsnorm")
                            << " with a head or value dim that is not a multiple of 16 (got " << d
                            << " and " << dv << "); the CPU back end computes it";
  kernel.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({int32_t(config.threads), 1, 1}));
  // Grid: (head blocks, batch, value blocks), as extents of the output [b, h, i, dv].
  int64_t out = cast<BlockArgument>(step.getOut()).getArgNumber();
  setLaunch(kernel, config.threads,
            {{out, 1, 1, config.headsPerBlock}, {out, 0, 1, 1}, {out, 3, 1, config.valueBlock}},
            /*sharedMemory=*/0,
            {{"lanes", config.lanes}, {"heads_per_block", config.headsPerBlock},
             {"value_block", config.valueBlock}, {"block_q", 1}, {"block_k", 1},
             {"warps", config.threads / 32}});
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(&kernel.getBody().front());
  return ScanDistributor(b, step, kernel, config).run();
}
