// attn_gpu.log_decay_prefix -> cumulative log decays of a tile of positions in shared memory:
// warp 0 sums the logs before the tile (strided lanes, then a shuffle reduction), each thread
// writes one log of the tile, thread 0 sums them in order.
#include "codegen/cuda/GPUToNVVM.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attngpu;

namespace {

class DecayEmitter {
public:
  DecayEmitter(ThreadContext &t, LogDecayPrefixOp op) : t(t), op(op) {}

  void emit() {
    if (op.getTotalOnly()) {  // carry[0] = sum over p < p0
      Value total = logDecaySum(t.idx(0), op.getP0());
      ifThread0([&] { memref::StoreOp::create(t.b, t.loc, total, op.getCarry(), t.idx(0)); });
      gpu::BarrierOp::create(t.b, t.loc);
      return;
    }
    Value base = op.getCarry() ? Value() : logDecaySum(t.idx(0), op.getP0());
    cumulative(base);
  }

private:
  ThreadContext &t;
  LogDecayPrefixOp op;

  /// log gamma(b, h, p), positions past the queries clamped.
  Value logDecay(Value p) {
    Value safe = t.minIdx(p, t.add(op.getQLen(), t.idx(-1)));
    return math::LogOp::create(t.b, t.loc, t.inlineBody(op.getDecay(), {op.getB(), op.getH(), safe}));
  }
  void ifThread0(function_ref<void()> body) {
    auto ifOp = scf::IfOp::create(
        t.b, t.loc, arith::CmpIOp::create(t.b, t.loc, arith::CmpIPredicate::eq, t.tid, t.idx(0)),
        /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(t.b);
    t.b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
    body();
  }
  /// sum_{from <= p < to} log gamma(p) by warp 0; other warps get 0 (use it in thread 0).
  Value logDecaySum(Value from, Value to) {
    auto inWarp0 = scf::IfOp::create(
        t.b, t.loc, TypeRange{t.b.getF32Type()},
        arith::CmpIOp::create(t.b, t.loc, arith::CmpIPredicate::eq, t.warp, t.idx(0)),
        /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(t.b);
    t.b.setInsertionPointToStart(inWarp0.thenBlock());
    auto loop = scf::ForOp::create(t.b, t.loc, t.add(from, t.lane), to, t.idx(32),
                                   ValueRange{t.f32(0)});
    {
      OpBuilder::InsertionGuard inner(t.b);
      t.b.setInsertionPointToStart(loop.getBody());
      Value sum = t.fadd(loop.getRegionIterArgs()[0], logDecay(loop.getInductionVar()));
      scf::YieldOp::create(t.b, t.loc, sum);
    }
    Value sum = loop.getResult(0);
    for (int32_t offset : {16, 8, 4, 2, 1})
      sum = t.fadd(sum, t.shflXor(sum, offset));
    scf::YieldOp::create(t.b, t.loc, sum);
    t.b.setInsertionPointToStart(inWarp0.elseBlock());
    scf::YieldOp::create(t.b, t.loc, ValueRange{t.f32(0)});
    return inWarp0.getResult(0);
  }
  /// cum[c] = base + log gamma(p0) + ... + log gamma(p0 + c); with a carry, base = carry[0],
  /// which then becomes the tile's total.
  void cumulative(Value base) {
    Value cum = op.getCum(), carry = op.getCarry();
    int64_t n = op.getCum().getType().getDimSize(0);
    gpu::BarrierOp::create(t.b, t.loc);  // earlier readers of cum are done
    auto ifOp = scf::IfOp::create(t.b, t.loc, t.lt(t.tid, t.idx(n)), /*withElseRegion=*/false);
    {
      OpBuilder::InsertionGuard guard(t.b);
      t.b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
      memref::StoreOp::create(t.b, t.loc, logDecay(t.add(op.getP0(), t.tid)), cum,
                              ValueRange{t.tid});
    }
    gpu::BarrierOp::create(t.b, t.loc);
    ifThread0([&] {
      Value start = carry ? Value(memref::LoadOp::create(t.b, t.loc, carry, ValueRange{t.idx(0)}))
                          : base;
      auto loop = scf::ForOp::create(t.b, t.loc, t.idx(0), t.idx(n), t.idx(1), ValueRange{start});
      {
        OpBuilder::InsertionGuard inner(t.b);
        t.b.setInsertionPointToStart(loop.getBody());
        Value c = loop.getInductionVar();
        Value sum = t.fadd(loop.getRegionIterArgs()[0],
                           memref::LoadOp::create(t.b, t.loc, cum, ValueRange{c}));
        memref::StoreOp::create(t.b, t.loc, sum, cum, ValueRange{c});
        scf::YieldOp::create(t.b, t.loc, sum);
      }
      if (carry)
        memref::StoreOp::create(t.b, t.loc, loop.getResult(0), carry, ValueRange{t.idx(0)});
    });
    gpu::BarrierOp::create(t.b, t.loc);
  }
};

struct LogDecayPrefixLowering : OpConversionPattern<LogDecayPrefixOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(LogDecayPrefixOp op, OpAdaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op);
    DecayEmitter(t, op).emit();
    rw.eraseOp(op);
    return success();
  }
};

} // namespace

void mlir::attn::populateDecayToNVVMPatterns(FragmentTypeConverter &converter,
                                             RewritePatternSet &patterns) {
  patterns.add<LogDecayPrefixLowering>(converter, patterns.getContext());
}
