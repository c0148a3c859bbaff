// Register-fragment ops -> per-thread scalars: elementwise arith/math, splat constants, row
// reductions (in-thread and over a quad), row broadcasts, P as the next mma's A operand, warp
// votes, sums over a thread-block cluster. Also the fragment type converter and the thread context the other patterns use.
#include "codegen/cuda/GPUToNVVM.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attngpu;

FragmentTypeConverter::FragmentTypeConverter() {
  addConversion([](Type type) { return type; });
  addConversion([](RankedTensorType type,
                   SmallVectorImpl<Type> &results) -> std::optional<LogicalResult> {
    std::optional<FragmentKind> kind = fragmentKind(type);
    if (!kind)
      return std::nullopt;
    Type element = type.getElementType();
    Type scalar = *kind == FragmentKind::operand_a ? VectorType::get({2}, element) : element;
    results.append(valuesPerThread(type), scalar);
    return success();
  });
  // A swizzled tile is addressed by hand (the ops that read it know the swizzle): a flat
  // view of its bytes' elements.
  addConversion([](MemRefType type) -> std::optional<Type> {
    if (!isSwizzled(type))
      return std::nullopt;
    return MemRefType::get({swizzledElements(type)}, type.getElementType(),
                           MemRefLayoutAttrInterface(), type.getMemorySpace());
  });
}

ThreadContext::ThreadContext(OpBuilder &b, Location loc, Operation *op, Type element)
    : WarpKernelBase(b, loc) {
  elt = element;
  tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  lane = arith::RemUIOp::create(b, loc, tid, idx(32));
  warp = arith::DivUIOp::create(b, loc, tid, idx(32));
  g = arith::DivUIOp::create(b, loc, lane, idx(4));
  c = arith::RemUIOp::create(b, loc, lane, idx(4));
  if (auto kernel = op->getParentOfType<gpu::GPUFuncOp>())
    if (auto known = kernel.getKnownBlockSizeAttr())
      threads = known[0];
  if (auto roles = op->getParentOfType<attngpu::WarpSpecializeOp>()) {
    bool producer = roles.getProducer().isAncestor(op->getParentRegion());
    threads = producer ? 32 : roles.getConsumerThreads();
    first = producer ? roles.getConsumerThreads() : 0;
  }
}

std::pair<Value, Value> ThreadContext::packedRow(Value h, Value p, int64_t pack) {
  return buildPackedRow(b, loc, h, p, pack);
}

std::pair<Value, Value> ThreadContext::threadRow(Value h, Value i0, int64_t pack, int r) {
  return packedRow(h, add(i0, accRow(r)), pack);
}

ThreadContext::LdmatrixLanes ThreadContext::ldmatrixLanes() {
  Value m8 = arith::DivUIOp::create(b, loc, lane, idx(8));
  return {arith::RemUIOp::create(b, loc, lane, idx(8)),
          arith::RemUIOp::create(b, loc, m8, idx(2)), arith::DivUIOp::create(b, loc, m8, idx(2))};
}

Value ThreadContext::inlineBody(Region &region, ValueRange args) {
  return buildInlinedRegion(b, region, args);
}

void ThreadContext::fillPositions(Value vec, Value p0, Value end, double fill,
                                  function_ref<Value(Value)> value) {
  int64_t rows = cast<MemRefType>(vec.getType()).getDimSize(0);
  forEachChunk(rows, tid, threads, [&](Value r) {
    Value p = add(p0, r);
    auto ifOp = scf::IfOp::create(b, loc, TypeRange{b.getF32Type()}, lt(p, end),
                                  /*withElseRegion=*/true);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(ifOp.thenBlock());
      scf::YieldOp::create(b, loc, value(p));
      b.setInsertionPointToStart(ifOp.elseBlock());
      scf::YieldOp::create(b, loc, f32(fill));
    }
    memref::StoreOp::create(b, loc, ifOp.getResult(0), vec, ValueRange{r});
  });
}

namespace {

/// An arith/math op on fragments -> the same op on each of the thread's scalars; a splat
/// constant -> one scalar constant.
struct ElementwiseFragment : ConversionPattern {
  ElementwiseFragment(TypeConverter &converter, MLIRContext *ctx)
      : ConversionPattern(converter, MatchAnyOpTypeTag(), 1, ctx) {}

  LogicalResult matchAndRewrite(Operation *op, ArrayRef<ValueRange> operands,
                                ConversionPatternRewriter &rw) const override {
    if (!isa<arith::ArithDialect, math::MathDialect>(op->getDialect()) ||
        op->getNumResults() != 1 || !fragmentKind(op->getResult(0).getType()))
      return failure();
    auto type = cast<RankedTensorType>(op->getResult(0).getType());
    int64_t n = valuesPerThread(type);
    if (auto constant = dyn_cast<arith::ConstantOp>(op)) {
      auto dense = dyn_cast<DenseElementsAttr>(constant.getValue());
      if (!dense || !dense.isSplat())
        return rw.notifyMatchFailure(op, "only splat fragment constants");
      Value scalar = arith::ConstantOp::create(rw, op->getLoc(), dense.getSplatValue<TypedAttr>());
      rw.replaceOpWithMultiple(op, {SmallVector<Value>(n, scalar)});
      return success();
    }
    if (!OpTrait::hasElementwiseMappableTraits(op))
      return rw.notifyMatchFailure(op, "not elementwise");
    SmallVector<Value> results;
    for (int64_t e = 0; e < n; ++e) {
      SmallVector<Value> scalars;
      for (ValueRange operand : operands) {
        if (int64_t(operand.size()) != n)
          return rw.notifyMatchFailure(op, "operands of different layouts");
        scalars.push_back(operand[e]);
      }
      OperationState state(op->getLoc(), op->getName(), scalars, {type.getElementType()},
                           op->getAttrs());
      results.push_back(rw.create(state)->getResult(0));
    }
    rw.replaceOpWithMultiple(op, {results});
    return success();
  }
};

/// Thread-local reduction of each of the thread's two rows (elements 2r, 2r + 1 of each
/// 8-column block).
struct RowReduceLowering : OpConversionPattern<RowReduceOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(RowReduceOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    Location loc = op.getLoc();
    ValueRange x = adaptor.getX();
    ReduceKind kind = op.getKind();
    double identity = kind == ReduceKind::max ? -INFINITY : kind == ReduceKind::min ? INFINITY : 0;
    auto combine = [&](Value a, Value b) -> Value {
      switch (kind) {
      case ReduceKind::max:
        return arith::MaximumFOp::create(rw, loc, a, b);
      case ReduceKind::min:
        return arith::MinimumFOp::create(rw, loc, a, b);
      case ReduceKind::sum:
        return arith::AddFOp::create(rw, loc, a, b);
      }
      return a;
    };
    SmallVector<Value> rows;
    for (int r = 0; r < 2; ++r) {
      Value acc = arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(float(identity)));
      for (size_t n = 0; n < x.size() / 4; ++n)
        acc = kind == ReduceKind::sum
                  ? combine(combine(acc, x[n * 4 + 2 * r]), x[n * 4 + 2 * r + 1])
                  : combine(acc, combine(x[n * 4 + 2 * r], x[n * 4 + 2 * r + 1]));
      rows.push_back(acc);
    }
    rw.replaceOpWithMultiple(op, {rows});
    return success();
  }
};

/// Max or sum over the four lanes of a quad (which share a row), by xor shuffles.
struct QuadReduceLowering : OpConversionPattern<QuadReduceOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(QuadReduceOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    WarpKernelBase w(rw, op.getLoc());
    SmallVector<Value> rows;
    for (Value x : adaptor.getX())
      rows.push_back(w.quadReduce(x, op.getKind() == ReduceKind::max));
    rw.replaceOpWithMultiple(op, {rows});
    return success();
  }
};

/// Element (n, e) of an accumulator takes row e / 2's value: no instructions.
struct BroadcastRowsLowering : OpConversionPattern<BroadcastRowsOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(BroadcastRowsOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    ValueRange rows = adaptor.getX();
    SmallVector<Value> values;
    for (int64_t e = 0; e < valuesPerThread(op.getType()); ++e)
      values.push_back(rows[(e % 4) / 2]);
    rw.replaceOpWithMultiple(op, {values});
    return success();
  }
};

/// The accumulators of 8-column blocks 2t and 2t + 1 are the A fragment of k step t, rounded
/// to 16 bits in pairs.
struct ToOperandLowering : OpConversionPattern<ToOperandOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(ToOperandOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    WarpKernelBase w(rw, op.getLoc());
    w.elt = op.getType().getElementType();
    ValueRange s = adaptor.getX();
    SmallVector<Value> a;
    for (size_t kt = 0; kt < s.size() / 8; ++kt) {
      size_t lo = 8 * kt, hi = 8 * kt + 4;
      a.append({w.pack(s[lo], s[lo + 1]), w.pack(s[lo + 2], s[lo + 3]),
                w.pack(s[hi], s[hi + 1]), w.pack(s[hi + 2], s[hi + 3])});
    }
    rw.replaceOpWithMultiple(op, {a});
    return success();
  }
};

/// Whole 8-column blocks: a subset of the thread's registers.
struct ColumnsLowering : OpConversionPattern<ColumnsOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(ColumnsOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    ValueRange x = adaptor.getX();
    rw.replaceOpWithMultiple(
        op, {SmallVector<Value>(x.slice(op.getFrom() / 8 * 4, valuesPerThread(op.getType())))});
    return success();
  }
};

/// The thread's rows 16 w + g and 16 w + g + 8.
struct LoadRowsLowering : OpConversionPattern<LoadRowsOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(LoadRowsOp op, OneToNOpAdaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op);
    SmallVector<Value> rows;
    for (int r = 0; r < 2; ++r)
      rows.push_back(memref::LoadOp::create(
          rw, t.loc, op.getValues(), ValueRange{t.accRow(r)}));
    rw.replaceOpWithMultiple(op, {rows});
    return success();
  }
};

/// Element (n, e) is values[8 n + 2 c + e % 2], its column's value.
struct LoadColumnsLowering : OpConversionPattern<LoadColumnsOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(LoadColumnsOp op, OneToNOpAdaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op);
    SmallVector<Value> values;
    for (int64_t n = 0; n < op.getType().getDimSize(1) / 8; ++n)
      for (int64_t e = 0; e < 4; ++e)
        values.push_back(memref::LoadOp::create(
            rw, t.loc, op.getValues(), ValueRange{t.accCol(n, e)}));
    rw.replaceOpWithMultiple(op, {values});
    return success();
  }
};

/// Element (n, e): row 16 w + g + 8 (e / 2), column 8 n + 2 c + e % 2, widened to f32.
struct LoadAccLowering : OpConversionPattern<LoadAccOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(LoadAccOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op);
    MemRefType tileType = op.getTile().getType();
    Value tile = adaptor.getTile().front();
    SmallVector<Value> values;
    for (int64_t n = 0; n < op.getType().getDimSize(1) / 8; ++n)
      for (int64_t e = 0; e < 4; ++e) {
        Value row = t.accRow(e / 2), col = t.accCol(n, e);
        SmallVector<Value> at = {row, col};
        if (isSwizzled(tileType))  // the 16-byte chunk at column 8 n, then its element
          at = {t.add(swizzledIndex(t, tileType, row, t.idx(8 * n))[0],
                      t.add(t.mul(t.c, 2), int64_t(e % 2)))};
        Value x = memref::LoadOp::create(rw, t.loc, tile, at);
        values.push_back(x.getType().isF32() ? x
                                             : arith::ExtFOp::create(rw, t.loc, rw.getF32Type(), x));
      }
    rw.replaceOpWithMultiple(op, {values});
    return success();
  }
};

/// Rows 16 w + g and 16 w + g + 8: lane c of the quad sums channels c, c + 4, ..., then the
/// quad's sum.
struct RowDotLowering : OpConversionPattern<RowDotOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(RowDotOp op, OneToNOpAdaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op);
    SmallVector<Value> rows;
    for (int r = 0; r < 2; ++r) {
      Value row = t.accRow(r);
      Value position = t.minIdx(t.add(op.getP0(), row), t.add(op.getQLen(), t.idx(-1)));
      auto loop = scf::ForOp::create(rw, t.loc, t.c, t.idx(int64_t(op.getColumns())), t.idx(4),
                                     ValueRange{t.f32(0)});
      {
        OpBuilder::InsertionGuard guard(rw);
        rw.setInsertionPointToStart(loop.getBody());
        Value e = loop.getInductionVar();
        auto load = [&](Value tile) {
          Value x = memref::LoadOp::create(rw, t.loc, tile, ValueRange{row, e});
          return arith::ExtFOp::create(rw, t.loc, rw.getF32Type(), x).getResult();
        };
        Value w = t.inlineBody(op.getWeight(), {op.getBatch(), op.getH(), position, e});
        Value term = t.fmul(t.fmul(load(op.getA()), load(op.getB())), w);
        scf::YieldOp::create(rw, t.loc, t.fadd(loop.getRegionIterArgs()[0], term));
      }
      rows.push_back(t.quadReduce(loop.getResult(0), /*isMax=*/false));
    }
    rw.replaceOpWithMultiple(op, {rows});
    return success();
  }
};

/// Blocks per cluster of the op's kernel (nvvm.cluster_dim), 0 outside one.
int64_t clusterBlocks(Operation *op) {
  auto kernel = op->getParentOfType<gpu::GPUFuncOp>();
  auto cluster = kernel ? kernel->getAttrOfType<DenseI32ArrayAttr>(
                              NVVM::NVVMDialect::getClusterDimAttrName())
                        : DenseI32ArrayAttr();
  if (!cluster)
    return 0;
  int64_t blocks = 1;
  for (int32_t extent : cluster.asArrayRef())
    blocks *= extent;
  return blocks;
}

/// Lane 0 of each quad writes its two rows at slot + row; every thread arrives (release).
struct ClusterPublishLowering : OpConversionPattern<ClusterPublishOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(ClusterPublishOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    ValueRange x = adaptor.getX();
    if (x.size() != 2 || !clusterBlocks(op))
      return rw.notifyMatchFailure(op, "a rows fragment of two rows per thread in a cluster");
    ThreadContext t(rw, op.getLoc(), op);
    Value scratch = adaptor.getScratch().front(), slot = adaptor.getSlot().front();
    {
      OpBuilder::InsertionGuard guard(rw);
      auto first = scf::IfOp::create(
          rw, t.loc, arith::CmpIOp::create(rw, t.loc, arith::CmpIPredicate::eq, t.c, t.idx(0)),
          false);
      rw.setInsertionPointToStart(first.thenBlock());
      for (int r = 0; r < 2; ++r)
        memref::StoreOp::create(rw, t.loc, x[r], scratch, ValueRange{t.add(slot, t.accRow(r))});
    }
    NVVM::ClusterArriveOp::create(rw, t.loc, UnitAttr());
    rw.eraseOp(op);
    return success();
  }
};

/// Wait (acquire), then each row's entries of every block through distributed shared memory
/// (mapa + ld.shared::cluster), summed in rank order.
struct ClusterGatherLowering : OpConversionPattern<ClusterGatherOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(ClusterGatherOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    int64_t blocks = clusterBlocks(op);
    if (valuesPerThread(op.getType()) != 2 || !blocks)
      return rw.notifyMatchFailure(op, "a rows fragment of two rows per thread in a cluster");
    ThreadContext t(rw, op.getLoc(), op);
    NVVM::ClusterWaitOp::create(rw, t.loc, UnitAttr());
    Value scratch = adaptor.getScratch().front(), slot = adaptor.getSlot().front();
    Value base = sharedAddress(t, scratch);
    auto shared = LLVM::LLVMPointerType::get(rw.getContext(), 3);
    auto remote = LLVM::LLVMPointerType::get(rw.getContext(), 7);
    SmallVector<Value> sums;
    for (int r = 0; r < 2; ++r) {
      Value offset = arith::IndexCastOp::create(rw, t.loc, rw.getI64Type(),
                                                t.mul(t.add(slot, t.accRow(r)), 4));
      Value local = LLVM::IntToPtrOp::create(
          rw, t.loc, shared, arith::AddIOp::create(rw, t.loc, base, offset).getResult());
      Value sum;
      for (int64_t c = 0; c < blocks; ++c) {
        Value peer = NVVM::MapaOp::create(rw, t.loc, remote, local,
                                          arith::ConstantIntOp::create(rw, t.loc, c, 32));
        Value v = LLVM::LoadOp::create(rw, t.loc, rw.getF32Type(), peer);
        sum = sum ? t.fadd(sum, v) : v;
      }
      sums.push_back(sum);
    }
    rw.replaceOpWithMultiple(op, {sums});
    return success();
  }
};

struct ClusterSyncLowering : OpConversionPattern<ClusterSyncOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(ClusterSyncOp op, OpAdaptor,
                                ConversionPatternRewriter &rw) const override {
    NVVM::ClusterArriveOp::create(rw, op.getLoc(), UnitAttr());
    NVVM::ClusterWaitOp::create(rw, op.getLoc(), UnitAttr());
    rw.eraseOp(op);
    return success();
  }
};

struct VoteAllLowering : OpConversionPattern<VoteAllOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(VoteAllOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    Location loc = op.getLoc();
    Value all = arith::ConstantIntOp::create(rw, loc, 1, 1);
    for (Value x : adaptor.getX())
      all = arith::AndIOp::create(rw, loc, all, x);
    rw.replaceOpWithNewOp<NVVM::VoteSyncOp>(op, rw.getI1Type(),
                                            arith::ConstantIntOp::create(rw, loc, -1, 32), all,
                                            NVVM::VoteSyncKind::all);
    return success();
  }
};

} // namespace

void mlir::attn::populateFragmentOpsToNVVMPatterns(FragmentTypeConverter &converter,
                                                   RewritePatternSet &patterns) {
  MLIRContext *ctx = patterns.getContext();
  patterns.add<ElementwiseFragment>(converter, ctx);
  patterns.add<RowReduceLowering, QuadReduceLowering, BroadcastRowsLowering, ToOperandLowering,
               ColumnsLowering, LoadRowsLowering, LoadAccLowering, VoteAllLowering,
               LoadColumnsLowering, RowDotLowering, ClusterPublishLowering,
               ClusterGatherLowering, ClusterSyncLowering>(converter, ctx);
}
