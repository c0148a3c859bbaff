// The CUDA kernel of attn.chunk_step in the recurrent (scan) form, for the shapes the tensor-core
// chunk kernel (CUDAChunk.cpp) does not take: a head or value dim that is not a multiple of 16,
// as in Mamba-1's selective scan, where every channel is a head with one value channel and a
// state of N = 16 (Dao & Gu 2024, section 7: "SSMs with head dimension P = 1"). A group of
// `lanes` threads (a power of two dividing d, up to 32) owns one (batch, head, value channel e)
// and walks every position t in order; lane l keeps the state entries c = l, l + lanes, ... of
// the column S[:, e] in registers:
//   S[c, e] = gamma_t gate_t[c] S[c, e] + k_t fk(k_t[c]) v[t, e]       (keys below kv_len)
//   o[t, e] = c_t sum_c fq(q_t[c]) S[c, e]  (+ skip(t, e, v[t, e]))
// the sum over the group by shuffles; gamma is the decay, k_t the score's key factor and c_t its
// query factor. Threads past the heads or value channels compute on clamped indices (every lane
// of a warp takes part in the shuffles) and store nothing. Each loop iteration first reads the
// inputs of kScanSteps positions (their loads overlap), then takes the steps in order. The work
// is sequential in t: the simple form of these variants, not a chunked one.
#include "codegen/cuda/Passes.h"
#include "codegen/cuda/WarpKernel.h"
#include "codegen/gpu/transforms/Passes.h"

using namespace mlir;
using namespace mlir::attn;


LogicalResult mlir::attn::cudaScanConfig(int64_t headDim, int64_t valueDim,
                                         CUDAScanConfig &config, std::string &why) {
  if (headDim < 1 || headDim > kCUDAScanMaxHeadDim || valueDim < 1) {
    why = "the recurrent (scan) kernel keeps a state column of up to " +
          std::to_string(kCUDAScanMaxHeadDim) + " values per thread: the head dim must be 1 to " +
          std::to_string(kCUDAScanMaxHeadDim) + ", got " + std::to_string(headDim);
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

class ScanKernelBuilder : WarpKernelBase {
public:
  ScanKernelBuilder(OpBuilder &b, Location loc, func::FuncOp f, ChunkStepOp step,
                    CUDAScanConfig config)
      : WarpKernelBase(b, loc, f), step(step), cfg(config) {}

  LogicalResult build(gpu::GPUFuncOp kernel);

private:
  ChunkStepOp step;
  CUDAScanConfig cfg;

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
};

LogicalResult ScanKernelBuilder::build(gpu::GPUFuncOp kernel) {
  FailureOr<StepArgs> args = mapChunkStep(step, kernel);
  if (failed(args))
    return failure();
  Value q = args->q, k = args->k, v = args->v, out = args->out, state = args->state;
  int64_t group = args->group;
  const int64_t d = cast<MemRefType>(q.getType()).getDimSize(3);
  const int64_t dv = cast<MemRefType>(out.getType()).getDimSize(3);

  // This thread's (batch, head, value channel) and its lane in the channel's group.
  const int64_t lanes = cfg.lanes, perLane = d / lanes;
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value lane = arith::RemUIOp::create(b, loc, tid, idx(lanes));
  Value channel = arith::DivUIOp::create(b, loc, tid, idx(lanes));
  Value local = arith::DivUIOp::create(b, loc, channel, idx(cfg.valueBlock));
  Value h = add(mul(gpu::BlockIdOp::create(b, loc, gpu::Dimension::x), cfg.headsPerBlock), local);
  batch = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  Value ev = add(mul(gpu::BlockIdOp::create(b, loc, gpu::Dimension::z), cfg.valueBlock),
                 arith::RemUIOp::create(b, loc, channel, idx(cfg.valueBlock)));
  Value heads = memref::DimOp::create(b, loc, out, 1);
  Value active = arith::AndIOp::create(
      b, loc, arith::AndIOp::create(b, loc, lt(local, idx(cfg.headsPerBlock)), lt(h, heads)),
      lt(ev, idx(dv)));
  // Inactive threads work on the last head and channel: the shuffles need every lane.
  head = minIdx(h, add(heads, idx(-1)));
  Value e = minIdx(ev, idx(dv - 1));
  Value store = arith::AndIOp::create(
      b, loc, active, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, lane, idx(0)));

  // Heads of q, k and v: h, h / group (GQA), or h / G for q and k (q/k head groups).
  Value vHead = group == 1 ? head : arith::DivUIOp::create(b, loc, head, idx(group)).getResult();
  Value qHead = head, kHead = vHead;
  if (int64_t qkGroup = int64_t(step.getQkGroup()); qkGroup > 1)
    qHead = kHead = arith::DivUIOp::create(b, loc, head, idx(qkGroup));
  qLen = memref::DimOp::create(b, loc, q, 2);
  Value keysEnd = minIdx(memref::DimOp::create(b, loc, k, 2), qLen);
  // This lane's state entries: lane, lane + lanes, ...
  SmallVector<Value> entries;
  for (int64_t m = 0; m < perLane; ++m)
    entries.push_back(add(lane, m * lanes));

  SmallVector<Value> s0;
  for (Value c : entries)
    s0.push_back(state ? load(state, {batch, head, c, e}) : f32(0));
  // kScanSteps positions per iteration: first every input of those steps (their loads in
  // flight together; positions past q_len read at the last one), then the steps in order.
  const int64_t steps = kScanSteps;
  auto loop = scf::ForOp::create(b, loc, idx(0), qLen, idx(steps), s0);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value t0 = loop.getInductionVar();
    SmallVector<Value> S(loop.getRegionIterArgs().begin(), loop.getRegionIterArgs().end());
    struct Inputs {
      Value t, inRange, gamma, weighted, factor, skip;
      SmallVector<Value> gate, k, q;
    };
    SmallVector<Inputs> in(steps);
    for (int64_t u = 0; u < steps; ++u) {
      Inputs &x = in[u];
      Value position = add(t0, u);
      x.inRange = lt(position, qLen);
      Value t = x.t = minIdx(position, add(qLen, idx(-1)));
      if (!step.getDecay().empty())
        x.gamma = inlineRegion(step.getDecay(), {batch, head, t});
      Value key = lt(position, keysEnd);  // k_t v[t, e], 0 past the keys that count
      x.weighted = ifElseZero(key, [&] {
        Value value = load(v, {batch, vHead, t, e});
        return step.getKeyScale().empty()
                   ? value
                   : fmul(inlineRegion(step.getKeyScale(), {batch, head, t}), value);
      });
      for (int64_t m = 0; m < perLane; ++m) {
        if (!step.getGate().empty())
          x.gate.push_back(inlineRegion(step.getGate(), {batch, head, t, entries[m]}));
        x.k.push_back(ifElseZero(key, [&] {
          return mapped(step.getFeatureK(), load(k, {batch, kHead, t, entries[m]}));
        }));
        x.q.push_back(mapped(step.getFeatureQ(), load(q, {batch, qHead, t, entries[m]})));
      }
      x.factor = inlineRegion(step.getScore(), {batch, head, t, idx(0), f32(1)});
      if (!step.getSkip().empty())  // the key dim is the query dim: v has row t
        x.skip = inlineRegion(step.getSkip(), {batch, head, t, e, load(v, {batch, vHead, t, e})});
    }
    Type outElt = cast<MemRefType>(out.getType()).getElementType();
    for (const Inputs &x : in) {
      // S = gamma_t diag(gate_t) S + k_t fk(k_t) v[t, e]; a step past q_len keeps S.
      Value acc = f32(0);
      for (int64_t m = 0; m < perLane; ++m) {
        Value decayed = S[m];
        if (x.gamma)
          decayed = fmul(decayed, x.gamma);
        if (!x.gate.empty())
          decayed = fmul(decayed, x.gate[m]);
        S[m] = select(x.inRange, fadd(decayed, fmul(x.k[m], x.weighted)), S[m]);
        acc = fadd(acc, fmul(x.q[m], S[m]));
      }
      // o[t, e] = c_t (the group's sum of fq(q_t) . S) (+ skip).
      for (int32_t offset = int32_t(lanes / 2); offset >= 1; offset /= 2)
        acc = fadd(acc, shflXor(acc, offset));
      Value o = fmul(x.factor, acc);
      if (x.skip)
        o = fadd(o, x.skip);
      if (outElt != o.getType())
        o = arith::TruncFOp::create(b, loc, outElt, o);
      auto ifStore = scf::IfOp::create(b, loc, arith::AndIOp::create(b, loc, store, x.inRange),
                                       /*withElseRegion=*/false);
      OpBuilder::InsertionGuard storeGuard(b);
      b.setInsertionPoint(ifStore.thenBlock()->getTerminator());
      memref::StoreOp::create(b, loc, o, out, ValueRange{batch, head, x.t, e});
    }
    scf::YieldOp::create(b, loc, S);
  }
  if (state) {
    auto ifStore = scf::IfOp::create(b, loc, active, /*withElseRegion=*/false);
    b.setInsertionPoint(ifStore.thenBlock()->getTerminator());
    for (int64_t m = 0; m < perLane; ++m)
      memref::StoreOp::create(b, loc, loop.getResult(unsigned(m)), state,
                              ValueRange{batch, head, entries[m], e});
    b.setInsertionPointAfter(ifStore);
  }
  gpu::ReturnOp::create(b, loc);
  return success();
}

} // namespace

LogicalResult mlir::attn::buildScanKernel(OpBuilder &b, func::FuncOp f, ChunkStepOp step,
                                          gpu::GPUFuncOp kernel) {
  // Static dims: lowerChunked sends dynamic ones to buildChunkKernel, which reports them.
  int64_t d = step.getQ().getType().getDimSize(3), dv = step.getOut().getType().getDimSize(3);
  CUDAScanConfig config;
  std::string why;
  if (failed(cudaScanConfig(d, dv, config, why)))
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
  b.setInsertionPointToStart(&kernel.getBody().front());
  if (failed(ScanKernelBuilder(b, step.getLoc(), f, step, config).build(kernel)))
    return failure();
  // Grid: (head blocks, batch, value blocks), as extents of the output [b, h, i, dv].
  int64_t out = cast<BlockArgument>(step.getOut()).getArgNumber();
  attngpu::setLaunch(kernel, config.threads,
                     {{out, 1, 1, config.headsPerBlock}, {out, 0, 1, 1},
                      {out, 3, 1, config.valueBlock}},
                     /*sharedMemory=*/0,
                     {{"lanes", config.lanes}, {"heads_per_block", config.headsPerBlock},
                      {"value_block", config.valueBlock}, {"block_q", 1}, {"block_k", 1},
                      {"warps", config.threads / 32}});
  return success();
}
