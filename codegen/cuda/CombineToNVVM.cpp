// attn.combine inside a kernel (attn-gpu-distribute's `<name>_combine`) -> blocks over (b, h) =
// (block z, y) and kCombineRowsPerBlock rows i (block x); each warp takes one row at a time, its
// lanes over the value channels; nothing to do with one split.
#include "codegen/cuda/GPUToNVVM.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;

namespace {

constexpr double kLog2e = 1.4426950408889634;
constexpr double kLn2 = 0.6931471805599453;

struct CombineLowering : OpConversionPattern<CombineOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(CombineOp op, OpAdaptor,
                                ConversionPatternRewriter &rw) const override {
    if (!op->getParentOfType<gpu::GPUFuncOp>())
      return rw.notifyMatchFailure(op, "lowered inside a kernel only");
    WarpKernelBase w(rw, op.getLoc());
    Location loc = op.getLoc();
    Value part = op.getPartOut(), partLse = op.getPartLse(), out = op.getOut(), lse = op.getLse();
    Value splits = memref::DimOp::create(rw, loc, part, 0);
    Value many = arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::ugt, splits, w.idx(1));
    auto ifMany = scf::IfOp::create(rw, loc, many, /*withElse=*/false);
    rw.setInsertionPoint(ifMany.thenBlock()->getTerminator());
    Value h = gpu::BlockIdOp::create(rw, loc, gpu::Dimension::y);
    Value bt = gpu::BlockIdOp::create(rw, loc, gpu::Dimension::z);
    Value tid = gpu::ThreadIdOp::create(rw, loc, gpu::Dimension::x);
    Value threads = gpu::BlockDimOp::create(rw, loc, gpu::Dimension::x);
    Value warp = arith::DivUIOp::create(rw, loc, tid, w.idx(32));
    Value lane = arith::RemUIOp::create(rw, loc, tid, w.idx(32));
    Value warps = arith::DivUIOp::create(rw, loc, threads, w.idx(32));
    Value rowsPerBlock = w.idx(attngpu::kCombineRowsPerBlock);
    Value firstRow = arith::MulIOp::create(
        rw, loc, gpu::BlockIdOp::create(rw, loc, gpu::Dimension::x), rowsPerBlock);
    Value rows = memref::DimOp::create(rw, loc, out, 2);
    auto rowLoop = scf::ForOp::create(rw, loc, warp, rowsPerBlock, warps);
    rw.setInsertionPointToStart(rowLoop.getBody());
    Value i = arith::AddIOp::create(rw, loc, firstRow, rowLoop.getInductionVar());
    auto inside = scf::IfOp::create(
        rw, loc, arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::ult, i, rows), false);
    rw.setInsertionPoint(inside.thenBlock()->getTerminator());
    Value negInf = w.f32(-INFINITY), log2e = w.f32(kLog2e);
    auto forSplits = [&](Value init, function_ref<Value(Value, Value)> body) {
      auto loop = scf::ForOp::create(rw, loc, w.idx(0), splits, w.idx(1), init);
      OpBuilder::InsertionGuard guard(rw);
      rw.setInsertionPointToStart(loop.getBody());
      scf::YieldOp::create(rw, loc, body(loop.getInductionVar(), loop.getRegionIterArgs()[0]));
      return loop.getResult(0);
    };
    // In base 2: m2 = max lse_s log2e, total2 = m2 + log2(sum_s 2^(lse_s log2e - m2)); every
    // lane of the row's warp reads the same lse_s (one broadcast load each).
    auto lse2 = [&](Value s) {
      Value x = memref::LoadOp::create(rw, loc, partLse, ValueRange{s, bt, h, i});
      return w.fmul(x, log2e);
    };
    Value m2 = forSplits(negInf, [&](Value s, Value m) { return w.fmax(m, lse2(s)); });
    Value none = arith::CmpFOp::create(rw, loc, arith::CmpFPredicate::OEQ, m2, negInf);
    Value base = w.select(none, w.f32(0), m2);
    Value sum = forSplits(w.f32(0), [&](Value s, Value acc) {
      return w.fadd(acc, w.ex2(w.fsub(lse2(s), base)));
    });
    Value total2 = w.fadd(base, w.ptx("lg2.approx.f32 $0, $1;", sum));
    Value first = arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::eq, lane, w.idx(0));
    auto ifFirst = scf::IfOp::create(rw, loc, first, /*withElse=*/false);
    {
      OpBuilder::InsertionGuard guard(rw);
      rw.setInsertionPoint(ifFirst.thenBlock()->getTerminator());
      Value value = w.select(none, negInf, w.fmul(total2, w.f32(kLn2)));
      memref::StoreOp::create(rw, loc, value, lse, ValueRange{bt, h, i});
    }
    Value channels = memref::DimOp::create(rw, loc, out, 3);
    auto merged = [&](Value e) {
      Value o = forSplits(w.f32(0), [&](Value s, Value acc) {
        Value weight = w.ex2(w.fsub(lse2(s), total2));
        Value x = memref::LoadOp::create(rw, loc, part, ValueRange{s, bt, h, i, e});
        return w.fadd(acc, w.fmul(weight, x));
      });
      return w.select(none, w.f32(0), o);
    };
    auto forChannels = [&](Value init, function_ref<Value(Value, Value)> body) {
      auto loop = scf::ForOp::create(rw, loc, lane, channels, w.idx(32),
                                     init ? ValueRange{init} : ValueRange{});
      OpBuilder::InsertionGuard guard(rw);
      rw.setInsertionPointToStart(loop.getBody());
      Value next = body(loop.getInductionVar(), init ? loop.getRegionIterArgs()[0] : Value());
      if (init)
        scf::YieldOp::create(rw, loc, next);
      return init ? loop.getResult(0) : Value();
    };
    // An rmsnorm of the merged row: its sum of squares over the lanes' channels and the warp
    // (a first pass over the partial rows), then r = 1 / sqrt(mean + eps).
    Value r;
    if (auto eps = op.getRmsEpsAttr()) {
      Value sq = forChannels(w.f32(0), [&](Value e, Value sum) {
        Value x = merged(e);
        return w.fadd(sum, w.fmul(x, x));
      });
      for (int32_t offset : {16, 8, 4, 2, 1})
        sq = w.fadd(sq, w.shflXor(sq, offset));
      Value width = arith::UIToFPOp::create(
          rw, loc, rw.getF32Type(),
          arith::IndexCastUIOp::create(rw, loc, rw.getI32Type(), channels));
      Value mean = arith::DivFOp::create(rw, loc, sq, width);
      r = math::RsqrtOp::create(rw, loc, w.fadd(mean, w.f32(eps.getValueAsDouble())));
    }
    forChannels(Value(), [&](Value e, Value) {
      Value o = merged(e);
      if (r)
        o = w.fmul(o, r);
      if (!op.getOutput().empty())  // the output map of the merged row's element
        o = buildInlinedRegion(rw, op.getOutput(), {bt, h, i, e, o});
      Type outElt = cast<MemRefType>(out.getType()).getElementType();
      if (outElt != o.getType())
        o = arith::TruncFOp::create(rw, loc, outElt, o);
      memref::StoreOp::create(rw, loc, o, out, ValueRange{bt, h, i, e});
      return Value();
    });
    rw.eraseOp(op);
    return success();
  }
};

} // namespace

void mlir::attn::populateCombineToNVVMPatterns(FragmentTypeConverter &converter,
                                               RewritePatternSet &patterns) {
  patterns.add<CombineLowering>(converter, patterns.getContext());
}
