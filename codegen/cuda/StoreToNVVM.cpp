// attn_gpu.store_tile / attn_gpu.store_rows -> guarded stores of each thread's rows (g, g + 8
// of its warp) to the output, or to a split's partial buffer.
#include "codegen/cuda/GPUToNVVM.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attngpu;

namespace {

/// Runs body(r, head, query) for the thread's rows r = 0, 1 whose query is below q_len.
template <typename OpTy>
void forRowsInRange(ThreadContext &t, OpTy op, function_ref<void(int, Value, Value)> body) {
  for (int r = 0; r < 2; ++r) {
    auto [h, i] = t.threadRow(op.getH(), op.getI0(), op.getPack(), r);
    auto ifOp = scf::IfOp::create(t.b, t.loc, t.lt(i, op.getQLen()), /*withElse=*/false);
    OpBuilder::InsertionGuard guard(t.b);
    t.b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
    body(r, h, i);
  }
}

SmallVector<Value> indices(ValueRange split, Value b, Value h, Value i) {
  SmallVector<Value> at(split.begin(), split.end());
  at.append({b, h, i});
  return at;
}

struct StoreTileLowering : OpConversionPattern<StoreTileOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(StoreTileOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op);
    ValueRange x = adaptor.getX();
    Type outElt = op.getOut().getType().getElementType();
    forRowsInRange<StoreTileOp>(t, op, [&](int r, Value h, Value i) {
      for (size_t n = 0; n < x.size() / 4; ++n)
        for (int e = 2 * r; e < 2 * r + 2; ++e) {
          Value value = x[n * 4 + e];
          if (outElt != value.getType())
            value = arith::TruncFOp::create(rw, t.loc, outElt, value);
          SmallVector<Value> at = indices(op.getSplit(), op.getB(), h, i);
          Value col = t.accCol(n, e);
          at.push_back(op.getCol0() ? t.add(op.getCol0(), col) : col);
          memref::StoreOp::create(rw, t.loc, value, op.getOut(), at);
        }
    });
    rw.eraseOp(op);
    return success();
  }
};

/// One lane of each quad (c = 0) writes its row's value.
struct StoreRowsLowering : OpConversionPattern<StoreRowsOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(StoreRowsOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op);
    ValueRange x = adaptor.getX();
    forRowsInRange<StoreRowsOp>(t, op, [&](int r, Value h, Value i) {
      Value first = arith::CmpIOp::create(rw, t.loc, arith::CmpIPredicate::eq, t.c, t.idx(0));
      auto ifOp = scf::IfOp::create(rw, t.loc, first, /*withElse=*/false);
      OpBuilder::InsertionGuard guard(rw);
      rw.setInsertionPoint(ifOp.thenBlock()->getTerminator());
      memref::StoreOp::create(rw, t.loc, x[r], op.getOut(), indices(op.getSplit(), op.getB(), h, i));
    });
    rw.eraseOp(op);
    return success();
  }
};

} // namespace

void mlir::attn::populateStoreToNVVMPatterns(FragmentTypeConverter &converter,
                                             RewritePatternSet &patterns) {
  patterns.add<StoreTileLowering, StoreRowsLowering>(converter, patterns.getContext());
}
