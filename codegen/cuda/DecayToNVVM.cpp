// attn_gpu.log_decay_prefix -> cumulative log decays of a tile of positions in shared memory:
// warp 0 sums the logs before the tile (strided lanes, then a shuffle reduction) and scans the
// tile's (a shuffle scan over the lanes). attn_gpu.key_factors -> a region per position.
// attn_gpu.decay_grad -> a forget gate's log-decay gradients, a shuffle scan by warp 0.
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
    Value base = op.getCarry() || op.getRelative() ? Value() : logDecaySum(t.idx(0), op.getP0());
    cumulative(base);
  }

private:
  ThreadContext &t;
  LogDecayPrefixOp op;

  /// log gamma(b, h, p), positions past the queries clamped.
  Value logDecay(Value p) {
    Value safe = t.minIdx(p, t.add(op.getQLen(), t.idx(-1)));
    return buildLogDecay(t.b, t.loc, t.inlineBody(op.getDecay(), {op.getB(), op.getH(), safe}));
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
  /// Each lane reads kSumUnroll positions 32 apart per step: independent loads in flight
  /// instead of one dependent chain (a query tile at position i0 sums i0 logs first).
  static constexpr int64_t kSumUnroll = 4;
  Value logDecaySum(Value from, Value to) {
    auto inWarp0 = scf::IfOp::create(
        t.b, t.loc, TypeRange{t.b.getF32Type()},
        arith::CmpIOp::create(t.b, t.loc, arith::CmpIPredicate::eq, t.warp, t.idx(0)),
        /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(t.b);
    t.b.setInsertionPointToStart(inWarp0.thenBlock());
    auto loop = scf::ForOp::create(t.b, t.loc, t.add(from, t.lane), to,
                                   t.idx(32 * kSumUnroll), ValueRange{t.f32(0)});
    {
      OpBuilder::InsertionGuard inner(t.b);
      t.b.setInsertionPointToStart(loop.getBody());
      Value part = t.f32(0);
      for (int64_t u = 0; u < kSumUnroll; ++u) {
        Value p = t.add(loop.getInductionVar(), 32 * u);  // clamped in logDecay, then dropped
        part = t.fadd(part, u ? t.select(t.lt(p, to), logDecay(p), t.f32(0)) : logDecay(p));
      }
      scf::YieldOp::create(t.b, t.loc, t.fadd(loop.getRegionIterArgs()[0], part));
    }
    Value sum = loop.getResult(0);
    for (int32_t offset : {16, 8, 4, 2, 1})
      sum = t.fadd(sum, t.shflXor(sum, offset));
    scf::YieldOp::create(t.b, t.loc, sum);
    t.b.setInsertionPointToStart(inWarp0.elseBlock());
    scf::YieldOp::create(t.b, t.loc, ValueRange{t.f32(0)});
    return inWarp0.getResult(0);
  }
  /// cum[c] = base + log gamma(p0) + ... + log gamma(p0 + c) by warp 0 in log steps: each lane
  /// sums n / 32 consecutive logs (or one), a shuffle scan over the lanes adds the sums of the
  /// lanes before it. With a carry, base = carry[0], which then becomes the tile's total. An
  /// `exclusive` vector gets each position's sum without its own log.
  /// Barriers before (earlier readers of cum are done) and after.
  void cumulative(Value base) {
    Value cum = op.getCum(), carry = op.getCarry();
    int64_t n = op.getCum().getType().getDimSize(0);
    int64_t per = std::max<int64_t>(1, n / 32), lanes = n / per;
    gpu::BarrierOp::create(t.b, t.loc);
    auto inWarp0 = scf::IfOp::create(
        t.b, t.loc, arith::CmpIOp::create(t.b, t.loc, arith::CmpIPredicate::eq, t.warp, t.idx(0)),
        /*withElseRegion=*/false);
    {
      OpBuilder::InsertionGuard guard(t.b);
      t.b.setInsertionPoint(inWarp0.thenBlock()->getTerminator());
      Value start = base;
      if (carry) {
        start = memref::LoadOp::create(t.b, t.loc, carry, ValueRange{t.idx(0)});
        NVVM::SyncWarpOp::create(t.b, t.loc, arith::ConstantIntOp::create(t.b, t.loc, -1, 32));
      }
      Value first = t.mul(t.lane, per);
      SmallVector<Value> prefix;  // within the lane
      Value sum = t.f32(0);
      for (int64_t e = 0; e < per; ++e) {
        sum = t.fadd(sum, logDecay(t.add(t.add(op.getP0(), first), e)));
        prefix.push_back(sum);
      }
      Value total = sum;
      for (int32_t offset = 1; offset < 32; offset *= 2) {
        auto up = gpu::ShuffleOp::create(t.b, t.loc, total, offset, 32, gpu::ShuffleMode::UP);
        total = t.fadd(total, t.select(up.getValid(), up.getShuffleResult(), t.f32(0)));
      }
      Value before = t.fsub(total, sum);  // the lanes below this one
      if (start)
        before = t.fadd(start, before);
      auto store = scf::IfOp::create(t.b, t.loc, t.lt(t.lane, t.idx(lanes)), false);
      t.b.setInsertionPoint(store.thenBlock()->getTerminator());
      for (int64_t e = 0; e < per; ++e)
        memref::StoreOp::create(t.b, t.loc, t.fadd(before, prefix[e]), cum,
                                ValueRange{t.add(first, e)});
      if (Value exclusive = op.getExclusive())  // the sums before each position's own log
        for (int64_t e = 0; e < per; ++e)
          memref::StoreOp::create(t.b, t.loc, e ? t.fadd(before, prefix[e - 1]) : before,
                                  exclusive, ValueRange{t.add(first, e)});
      if (carry) {  // the last lane's inclusive sum is the new base
        auto lastLane = scf::IfOp::create(
            t.b, t.loc,
            arith::CmpIOp::create(t.b, t.loc, arith::CmpIPredicate::eq, t.lane,
                                  t.idx(lanes - 1)),
            false);
        t.b.setInsertionPoint(lastLane.thenBlock()->getTerminator());
        memref::StoreOp::create(t.b, t.loc, t.fadd(before, prefix.back()), carry,
                                ValueRange{t.idx(0)});
      }
    }
    gpu::BarrierOp::create(t.b, t.loc);
  }
};

/// f[r] = key_scale(b, h, p0 + r) below `end`, else 0: one thread per row.
struct KeyFactorsLowering : OpConversionPattern<KeyFactorsOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(KeyFactorsOp op, OpAdaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op);
    t.fillPositions(op.getFactors(), op.getP0(), op.getEnd(), 0, [&](Value p) {
      return t.inlineBody(op.getKeyScale(), {op.getB(), op.getH(), p});
    });
    rw.eraseOp(op);
    return success();
  }
};

/// g(t) = sum_{p < t} (colsum(p) - rowsum(p)) by warp 0, kPositions consecutive positions per
/// lane and 32 kPositions per step (independent loads; the step's latency paid fewer times):
/// each lane sums its positions' differences, a shuffle scan gives the sums of the lanes before
/// it, the region runs at each position (accumulations as atomic adds) and the step's total
/// carries to the next.
class DecayGradEmitter {
public:
  static constexpr int64_t kPositions = 4;
  DecayGradEmitter(ThreadContext &t, DecayGradOp op) : t(t), op(op) {}

  void emit() {
    Value qLen = op.getQLen();
    auto inWarp0 = scf::IfOp::create(
        t.b, t.loc, arith::CmpIOp::create(t.b, t.loc, arith::CmpIPredicate::eq, t.warp, t.idx(0)),
        false);
    t.b.setInsertionPoint(inWarp0.thenBlock()->getTerminator());
    Value colHead = t.add(op.getHeads(), op.getH());
    Value keys = t.minIdx(op.getKvLen(), qLen);  // column sums exist below both lengths
    auto loop = scf::ForOp::create(t.b, t.loc, t.idx(0), qLen, t.idx(32 * kPositions),
                                   ValueRange{t.f32(0)});
    t.b.setInsertionPointToStart(loop.getBody());
    Value first = t.add(loop.getInductionVar(), t.mul(t.lane, kPositions));
    SmallVector<Value> p, prefix;  // the lane's positions; the sums of its differences up to each
    for (int64_t e = 0; e < kPositions; ++e) {
      p.push_back(t.add(first, e));
      Value x = t.fsub(load(colHead, p[e], keys), load(op.getH(), p[e], qLen));
      prefix.push_back(e ? t.fadd(prefix.back(), x) : x);
    }
    Value inclusive = prefix.back();  // the lanes up to this one
    for (int32_t offset = 1; offset < 32; offset *= 2) {
      auto up = gpu::ShuffleOp::create(t.b, t.loc, inclusive, offset, 32, gpu::ShuffleMode::UP);
      inclusive = t.fadd(inclusive, t.select(up.getValid(), up.getShuffleResult(), t.f32(0)));
    }
    Value carry = loop.getRegionIterArgs()[0];
    auto below = gpu::ShuffleOp::create(t.b, t.loc, inclusive, 1, 32, gpu::ShuffleMode::UP);
    Value lanesBefore =  // the lanes before this one, and the steps before this one
        t.fadd(carry, t.select(below.getValid(), below.getShuffleResult(), t.f32(0)));
    for (int64_t e = 0; e < kPositions; ++e)
      atPosition(p[e], e ? t.fadd(lanesBefore, prefix[e - 1]) : lanesBefore);
    auto total = gpu::ShuffleOp::create(t.b, t.loc, inclusive, 31, 32, gpu::ShuffleMode::IDX);
    scf::YieldOp::create(t.b, t.loc, t.fadd(carry, total.getShuffleResult()));
  }

private:
  ThreadContext &t;
  DecayGradOp op;

  /// sums[b, head, p] below `end` (<= q_len), else 0: an unconditional load at p clamped below
  /// q_len (inside the workspace), so that a lane's loads are all in flight at once.
  Value load(Value head, Value p, Value end) {
    Value at = t.minIdx(p, t.add(op.getQLen(), t.idx(-1)));
    Value x = memref::LoadOp::create(t.b, t.loc, op.getSums(), ValueRange{op.getB(), head, at});
    return t.select(t.lt(p, end), x, t.f32(0));
  }
  /// The region at position p (below q_len) with g = `before`.
  void atPosition(Value p, Value before) {
    auto live = scf::IfOp::create(t.b, t.loc, t.lt(p, op.getQLen()), false);
    OpBuilder::InsertionGuard guard(t.b);
    t.b.setInsertionPoint(live.thenBlock()->getTerminator());
    Block &body = op.getDecayGrad().front();
    IRMapping map;
    map.map(body.getArguments(), ValueRange{op.getB(), op.getH(), p, before});
    for (Operation &inner : body.without_terminator()) {
      auto acc = dyn_cast<attngpu::AccumulateOp>(inner);
      if (!acc) {
        t.b.clone(inner, map);
        continue;
      }
      SmallVector<Value> at;
      for (Value index : acc.getIndices())
        at.push_back(map.lookupOrDefault(index));
      memref::AtomicRMWOp::create(t.b, t.loc, arith::AtomicRMWKind::addf,
                                  map.lookupOrDefault(acc.getValue()), acc.getGrad(), at);
    }
  }
};

/// An op whose whole lowering is an emitter's: emitted at the op, then erased.
template <typename Op, typename Emitter>
struct EmitterLowering : OpConversionPattern<Op> {
  using OpConversionPattern<Op>::OpConversionPattern;
  LogicalResult matchAndRewrite(Op op, typename Op::Adaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op);
    Emitter(t, op).emit();
    rw.eraseOp(op);
    return success();
  }
};

} // namespace

void mlir::attn::populateDecayToNVVMPatterns(FragmentTypeConverter &converter,
                                             RewritePatternSet &patterns) {
  patterns.add<EmitterLowering<LogDecayPrefixOp, DecayEmitter>, KeyFactorsLowering,
               EmitterLowering<DecayGradOp, DecayGradEmitter>>(converter, patterns.getContext());
}
