// The CUDA kernel of attn.chunk_step in the recurrent (scan) form, for the shapes the tensor-core
// chunk kernel (CUDAChunk.cpp) does not take: a head or value dim that is not a multiple of 16,
// as in Mamba-1's selective scan, where every channel is a head with one value channel and a
// state of N = 16 (Dao & Gu 2024, section 7: "SSMs with head dimension P = 1"). One thread per
// (batch, head, value channel e) walks every position t in order with its state column S[:, e]
// (d f32 values) in registers:
//   S[:, e] = gamma_t diag(gate_t) S[:, e] + k_t fk(k_t) v[t, e]       (keys below kv_len)
//   o[t, e] = c_t fq(q_t) . S[:, e]  (+ skip(t, e, v[t, e]))
// with gamma the decay, k_t the score's key factor and c_t its query factor. The work is
// O(T d) per thread and sequential in t: it is the correct, simple form of these variants, not
// a tuned one (no chunking in time, scalar loads of q and k, which every thread of a head
// reads and L1 serves).
#include "codegen/cuda/Passes.h"
#include "codegen/cuda/WarpKernel.h"

#include "mlir/IR/Matchers.h"

using namespace mlir;
using namespace mlir::attn;

bool mlir::attn::cudaUsesScan(int64_t headDim, int64_t valueDim) {
  return headDim % 16 != 0 || valueDim % 16 != 0;
}

LogicalResult mlir::attn::cudaScanConfig(int64_t headDim, int64_t valueDim,
                                         CUDAScanConfig &config, std::string &why) {
  if (headDim < 1 || headDim > kCUDAScanMaxHeadDim || valueDim < 1) {
    why = "the recurrent (scan) kernel keeps a state column of up to " +
          std::to_string(kCUDAScanMaxHeadDim) + " values per thread: the head dim must be 1 to " +
          std::to_string(kCUDAScanMaxHeadDim) + ", got " + std::to_string(headDim);
    return failure();
  }
  config.threads = 128;
  config.valueBlock = std::min<int64_t>(valueDim, config.threads);
  config.headsPerBlock = config.threads / config.valueBlock;
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
  Value mapped(Region &feature, Value x) { return feature.empty() ? x : inlineRegion(feature, {x}); }
};

LogicalResult ScanKernelBuilder::build(gpu::GPUFuncOp kernel) {
  for (auto [hostArg, kernelArg] : llvm::zip(func.getArguments(), kernel.getArguments()))
    outside.map(hostArg, kernelArg);
  Value q = outside.lookup(step.getQ()), k = outside.lookup(step.getK()),
        v = outside.lookup(step.getV()), out = outside.lookup(step.getOut()), state;
  written = {step.getOut()};
  if (auto view = step.getState().getDefiningOp<memref::SubViewOp>()) {
    state = outside.lookup(view.getSource());
    written.push_back(view.getSource());
  }
  int64_t group = 1;
  IntegerAttr groupAttr;
  auto div = step.getHk().getDefiningOp<arith::DivUIOp>();
  if (div && div.getLhs() == step.getH() && matchPattern(div.getRhs(), m_Constant(&groupAttr)))
    group = groupAttr.getInt();
  else if (step.getHk() != step.getH())
    return step.emitError("cannot find the GQA group (kv head = h / group) of attn.chunk_step");
  for (Region *region : {&step.getScore(), &step.getFeatureQ(), &step.getFeatureK(),
                         &step.getDecay(), &step.getGate(), &step.getKeyScale(),
                         &step.getSkip()})
    if (failed(mapCapturedValues(*region)))
      return failure();
  const int64_t d = cast<MemRefType>(q.getType()).getDimSize(3);
  const int64_t dv = cast<MemRefType>(out.getType()).getDimSize(3);

  // This thread's (batch, head, value channel).
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value local = arith::DivUIOp::create(b, loc, tid, idx(cfg.valueBlock));
  head = add(mul(gpu::BlockIdOp::create(b, loc, gpu::Dimension::x), cfg.headsPerBlock), local);
  batch = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  Value e = add(mul(gpu::BlockIdOp::create(b, loc, gpu::Dimension::z), cfg.valueBlock),
                arith::RemUIOp::create(b, loc, tid, idx(cfg.valueBlock)));
  Value heads = memref::DimOp::create(b, loc, out, 1);
  Value active = arith::AndIOp::create(
      b, loc, arith::AndIOp::create(b, loc, lt(local, idx(cfg.headsPerBlock)), lt(head, heads)),
      lt(e, idx(dv)));
  auto ifActive = scf::IfOp::create(b, loc, active, /*withElseRegion=*/false);
  b.setInsertionPoint(ifActive.thenBlock()->getTerminator());

  // Heads of q, k and v: h, h / group (GQA), or h / G for q and k (q/k head groups).
  Value vHead = group == 1 ? head : arith::DivUIOp::create(b, loc, head, idx(group)).getResult();
  Value qHead = head, kHead = vHead;
  if (int64_t qkGroup = int64_t(step.getQkGroup()); qkGroup > 1)
    qHead = kHead = arith::DivUIOp::create(b, loc, head, idx(qkGroup));
  qLen = memref::DimOp::create(b, loc, q, 2);
  Value keysEnd = minIdx(memref::DimOp::create(b, loc, k, 2), qLen);

  SmallVector<Value> s0;
  for (int64_t c = 0; c < d; ++c)
    s0.push_back(state ? load(state, {batch, head, idx(c), e}) : f32(0));
  auto loop = scf::ForOp::create(b, loc, idx(0), qLen, idx(1), s0);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value t = loop.getInductionVar();
    SmallVector<Value> S(loop.getRegionIterArgs().begin(), loop.getRegionIterArgs().end());
    // S = gamma_t diag(gate_t) S + k_t fk(k_t) v[t, e] (no key past keysEnd).
    Value gamma = step.getDecay().empty() ? Value()
                                          : inlineRegion(step.getDecay(), {batch, head, t});
    Value key = lt(t, keysEnd);
    Value weighted = ifElseZero(key, [&] {  // k_t v[t, e]
      Value x = load(v, {batch, vHead, t, e});
      return step.getKeyScale().empty()
                 ? x
                 : fmul(inlineRegion(step.getKeyScale(), {batch, head, t}), x);
    });
    for (int64_t c = 0; c < d; ++c) {
      Value ch = idx(c), decayed = S[c];
      if (gamma)
        decayed = fmul(decayed, gamma);
      if (!step.getGate().empty())
        decayed = fmul(decayed, inlineRegion(step.getGate(), {batch, head, t, ch}));
      Value kc = ifElseZero(key, [&] {
        return mapped(step.getFeatureK(), load(k, {batch, kHead, t, ch}));
      });
      S[c] = fadd(decayed, fmul(kc, weighted));
    }
    // o[t, e] = c_t fq(q_t) . S (+ skip).
    Value acc = f32(0);
    for (int64_t c = 0; c < d; ++c)
      acc = fadd(acc, fmul(mapped(step.getFeatureQ(), load(q, {batch, qHead, t, idx(c)})), S[c]));
    Value o = fmul(inlineRegion(step.getScore(), {batch, head, t, idx(0), f32(1)}), acc);
    if (!step.getSkip().empty())
      o = fadd(o, inlineRegion(step.getSkip(), {batch, head, t, e, load(v, {batch, vHead, t, e})}));
    Type outElt = cast<MemRefType>(out.getType()).getElementType();
    if (outElt != o.getType())
      o = arith::TruncFOp::create(b, loc, outElt, o);
    memref::StoreOp::create(b, loc, o, out, ValueRange{batch, head, t, e});
    scf::YieldOp::create(b, loc, S);
  }
  if (state)
    for (int64_t c = 0; c < d; ++c)
      memref::StoreOp::create(b, loc, loop.getResult(unsigned(c)), state,
                              ValueRange{batch, head, idx(c), e});
  b.setInsertionPointAfter(ifActive);
  gpu::ReturnOp::create(b, loc);
  return success();
}

} // namespace

LogicalResult mlir::attn::buildScanKernel(OpBuilder &b, func::FuncOp f, ChunkStepOp step,
                                          gpu::GPUFuncOp kernel) {
  auto q = step.getQ().getType();
  int64_t d = q.getDimSize(3), dv = step.getOut().getType().getDimSize(3);
  if (ShapedType::isDynamic(d) || ShapedType::isDynamic(dv))
    return step.emitError("the CUDA back end needs static head and value dims: declare them "
                          "(d = 128) or pass --set d=128");
  CUDAScanConfig config;
  std::string why;
  if (failed(cudaScanConfig(d, dv, config, why)))
    return step.emitError(why);
  kernel.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({int32_t(config.threads), 1, 1}));
  b.setInsertionPointToStart(&kernel.getBody().front());
  return ScanKernelBuilder(b, step.getLoc(), f, step, config).build(kernel);
}
