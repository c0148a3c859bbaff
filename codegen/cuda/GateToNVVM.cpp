// A per-channel decay (GLA's gate) in a recurrence chunk: attn_gpu.log_gate_prefix (the
// cumulative log gates G[r, e] in shared memory), gate_keys (K~ = K exp(G[c0] - G[c]) in place)
// and gate_operand (q~ = q exp(G[r] - G[r0]) in registers; strict: G[r - 1]). Every factor is
// relative to the first row of a 16-row block, so each stays finite while 16 steps of a
// channel's gates multiply to more than e^-88; attn_gpu.mma's gate supplies the block-to-block
// factors.
#include "codegen/cuda/GPUToNVVM.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attngpu;

namespace {

/// A thread per channel walks the rows (positions past q_len clamped). (Computing every log
/// gate first, in parallel, then summing in shared memory measured slower: 1.51 ms against
/// 1.23 for GLA, bench/METHOD.md.)
struct LogGatePrefixLowering : OpConversionPattern<LogGatePrefixOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(LogGatePrefixOp op, OpAdaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op);
    MemRefType cum = op.getCum().getType();
    gpu::BarrierOp::create(rw, t.loc);
    t.forEachChunk(cum.getDimSize(1), t.tid, t.threads, [&](Value d) {
      auto loop = scf::ForOp::create(rw, t.loc, t.idx(0), t.idx(cum.getDimSize(0)), t.idx(1),
                                     ValueRange{t.f32(0)});
      OpBuilder::InsertionGuard guard(rw);
      rw.setInsertionPointToStart(loop.getBody());
      Value r = loop.getInductionVar();
      Value p = t.minIdx(t.add(op.getP0(), r), t.add(op.getQLen(), t.idx(-1)));
      Value gate = t.inlineBody(op.getGate(), {op.getB(), op.getH(), p, d});
      Value sum = t.fadd(loop.getRegionIterArgs()[0], buildLogDecay(rw, t.loc, gate));
      memref::StoreOp::create(rw, t.loc, sum, op.getCum(), ValueRange{r, d});
      scf::YieldOp::create(rw, t.loc, sum);
    });
    gpu::BarrierOp::create(rw, t.loc);
    rw.eraseOp(op);
    return success();
  }
};

/// 8 channels per thread and step, in f32; then a barrier.
struct GateKeysLowering : OpConversionPattern<GateKeysOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(GateKeysOp op, OpAdaptor,
                                ConversionPatternRewriter &rw) const override {
    MemRefType tile = op.getTile().getType();
    Type elt = tile.getElementType();
    ThreadContext t(rw, op.getLoc(), op, elt);
    int64_t perRow = (tile.getDimSize(1) - kSharedPad) / 8;
    auto f8 = VectorType::get({8}, rw.getF32Type());
    t.forEachChunk(tile.getDimSize(0) * perRow, t.tid, t.threads, [&](Value id) {
      Value r = arith::DivUIOp::create(rw, t.loc, id, t.idx(perRow));
      Value col = t.mul(arith::RemUIOp::create(rw, t.loc, id, t.idx(perRow)), 8);
      Value r0 = t.mul(arith::DivUIOp::create(rw, t.loc, r, t.idx(16)), 16);
      Value k8 = vector::LoadOp::create(rw, t.loc, VectorType::get({8}, elt), op.getTile(),
                                        ValueRange{r, col});
      Value x = arith::ExtFOp::create(rw, t.loc, f8, k8);
      Value gc = vector::LoadOp::create(rw, t.loc, f8, op.getGate(), ValueRange{r, col});
      Value g0 = vector::LoadOp::create(rw, t.loc, f8, op.getGate(), ValueRange{r0, col});
      Value diff = arith::SubFOp::create(rw, t.loc, g0, gc);
      SmallVector<Value> scaled;
      for (int64_t e = 0; e < 8; ++e)
        scaled.push_back(t.fmul(vector::ExtractOp::create(rw, t.loc, x, e),
                                math::ExpOp::create(rw, t.loc,
                                                    vector::ExtractOp::create(rw, t.loc, diff, e))));
      Value y = vector::FromElementsOp::create(rw, t.loc, f8, scaled);
      vector::StoreOp::create(rw, t.loc,
                              arith::TruncFOp::create(rw, t.loc, VectorType::get({8}, elt), y),
                              op.getTile(), ValueRange{r, col});
    });
    gpu::BarrierOp::create(rw, t.loc);
    rw.eraseOp(op);
    return success();
  }
};

/// exp(G[row - 1, d..d+1] - G[from, d..d+1]) with G[-1] = 0: a strict-causal query's gates,
/// which stop before its own step.
std::pair<Value, Value> gatePairBefore(ThreadContext &t, Value gate, Value row, Value from,
                                       Value d) {
  auto pair = VectorType::get({2}, t.b.getF32Type());
  Value first = arith::CmpIOp::create(t.b, t.loc, arith::CmpIPredicate::eq, row, t.idx(0));
  Value previous = t.select(first, t.idx(0), t.add(row, t.idx(-1)));
  Value g = vector::LoadOp::create(t.b, t.loc, pair, gate, ValueRange{previous, d});
  Value zero = arith::ConstantOp::create(t.b, t.loc, pair,
                                         DenseElementsAttr::get(pair, t.b.getF32FloatAttr(0)));
  g = arith::SelectOp::create(t.b, t.loc, first, zero, g);
  g = arith::SubFOp::create(t.b, t.loc, g,
                            vector::LoadOp::create(t.b, t.loc, pair, gate, ValueRange{from, d}));
  return {math::ExpOp::create(t.b, t.loc, vector::ExtractOp::create(t.b, t.loc, g, 0)),
          math::ExpOp::create(t.b, t.loc, vector::ExtractOp::create(t.b, t.loc, g, 1))};
}

/// A parts 0, 2 are row g, parts 1, 3 row g + 8; parts 2, 3 are channels + 8.
struct GateOperandLowering : OpConversionPattern<GateOperandOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(GateOperandOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op, op.getType().getElementType());
    Value rowBase = t.mul(t.warp, 16);
    Value rows[2] = {t.add(rowBase, t.g), t.add(t.add(rowBase, t.g), 8)};
    SmallVector<Value> a(adaptor.getA().begin(), adaptor.getA().end());
    for (size_t kk = 0; kk < a.size() / 4; ++kk)
      for (int64_t part = 0; part < 4; ++part) {
        Value d = t.add(t.mul(t.c, 2), int64_t(kk * 16 + 8 * (part / 2)));
        Value &x = a[kk * 4 + part];
        Value row = rows[part % 2];
        x = scalePair(t, x, op.getStrict() ? gatePairBefore(t, op.getGate(), row, rowBase, d)
                                           : gatePair(t, op.getGate(), row, rowBase, d));
      }
    rw.replaceOpWithMultiple(op, {a});
    return success();
  }
};

} // namespace

void mlir::attn::populateGateToNVVMPatterns(FragmentTypeConverter &converter,
                                            RewritePatternSet &patterns) {
  patterns.add<LogGatePrefixLowering, GateKeysLowering, GateOperandLowering>(
      converter, patterns.getContext());
}
