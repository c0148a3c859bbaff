// The block plan of a flash kernel (attn-gpu-distribute): attn.tile_key_range, which the
// tiled level evaluates in front of its key loop, becomes a kernel of its own, `<f>_plan`,
// run once before the attention kernel: one block per (query tile, head if the mask reads it,
// batch), threads striding over the keys with the interval evaluation of the mask
// (dialect/MaskInterval.h), a warp reduction and one atomic per warp and value into the plan
// entry (attn::KeyScan: first and one-past-last key the mask may allow, the same for the keys
// it allows for every row, and their count). The attention kernel reads its entry and
// finishes it (finishKeyRange: whole key tiles, a full range only if contiguous), so the plan
// holds raw key positions.
#include "codegen/gpu/transforms/PlanDistribute.h"

#include "dialect/MaskInterval.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

#include <limits>

using namespace mlir;
using namespace mlir::attngpu;

namespace {

constexpr int64_t kPlanThreads = 256;

Value idx(OpBuilder &b, Location loc, int64_t c) {
  return arith::ConstantIndexOp::create(b, loc, c);
}

/// How each plan value combines: partial scans of keys by min, max, min, max and sum.
constexpr arith::AtomicRMWKind kCombine[kPlanValues] = {
    arith::AtomicRMWKind::mins, arith::AtomicRMWKind::maxs, arith::AtomicRMWKind::mins,
    arith::AtomicRMWKind::maxs, arith::AtomicRMWKind::addi};

} // namespace

Value mlir::attngpu::warpReduce(OpBuilder &b, Location loc, Value x, arith::AtomicRMWKind kind) {
  for (int32_t offset = 16; offset >= 1; offset /= 2) {
    Value other = gpu::ShuffleOp::create(b, loc, x, offset, 32, gpu::ShuffleMode::XOR)
                      .getShuffleResult();
    x = kind == arith::AtomicRMWKind::mins   ? arith::MinSIOp::create(b, loc, x, other).getResult()
        : kind == arith::AtomicRMWKind::maxs ? arith::MaxSIOp::create(b, loc, x, other).getResult()
                                             : arith::AddIOp::create(b, loc, x, other).getResult();
  }
  return x;
}


MemRefType mlir::attngpu::planType(MLIRContext *ctx) {
  int64_t dyn = ShapedType::kDynamic;
  return MemRefType::get({dyn, dyn, dyn, kPlanValues}, IntegerType::get(ctx, 32));
}

Value mlir::attngpu::planHead(OpBuilder &b, Location loc, attn::TileKeyRangeOp op) {
  return attn::maskReadsHead(op.getMask())
             ? gpu::BlockIdOp::create(b, loc, gpu::Dimension::y).getResult()
             : idx(b, loc, 0);
}

Value mlir::attngpu::planValue(OpBuilder &b, Location loc, Value plan, Value batch, Value hp,
                               Value qt, int64_t c) {
  Value v = memref::LoadOp::create(b, loc, plan, ValueRange{batch, hp, qt, idx(b, loc, c)});
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
}

attn::KeyRange mlir::attngpu::planEntry(OpBuilder &b, Location loc, attn::TileKeyRangeOp op,
                                        Value plan, Value batch, Value hp, Value qt) {
  auto read = [&](int64_t c) { return planValue(b, loc, plan, batch, hp, qt, c); };
  return attn::finishKeyRange(b, loc, op,
                              attn::KeyScan{read(0), read(1), read(2), read(3), read(4)});
}

attn::KeyRange mlir::attngpu::loadPlanRange(OpBuilder &b, Location loc, attn::TileKeyRangeOp op,
                                            Value plan, Value batch, Value i0) {
  Value qt = arith::DivUIOp::create(b, loc, i0, idx(b, loc, op.getRows()));
  return planEntry(b, loc, op, plan, batch, planHead(b, loc, op), qt);
}

FailureOr<gpu::GPUFuncOp> mlir::attngpu::emitPlanKernel(OpBuilder &b, func::FuncOp f,
                                                        attn::TileKeyRangeOp op,
                                                        gpu::GPUFuncOp attention,
                                                        ArrayRef<Value> written,
                                                        ArrayRef<GridAxisAttr> attentionGrid) {
  Location loc = op.getLoc();
  MLIRContext *ctx = b.getContext();
  auto kernel = gpu::GPUFuncOp::create(b, loc, (f.getName() + "_plan").str(),
                                       attention.getFunctionType());
  kernel->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  kernel.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({int32_t(kPlanThreads), 1, 1}));
  bool perHead = attn::maskReadsHead(op.getMask());
  // Grid: the attention kernel's query tiles (x, without splits) and batch (z); its heads (y)
  // only when the mask reads the head.
  SmallVector<GridAxisAttr> grid = {attentionGrid[0],
                                    perHead ? attentionGrid[1] : GridAxisAttr::get(ctx, -1, 0, 1, 1),
                                    attentionGrid[2]};
  kernel->setAttr(kLaunchAttrName, LaunchAttr::get(ctx, kPlanThreads, grid, 0, false,
                                                   DictionaryAttr::get(ctx, {}), {}));

  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(&kernel.getBody().front());
  IRMapping map;
  for (auto [hostArg, kernelArg] : llvm::zip(f.getArguments(), kernel.getArguments()))
    map.map(hostArg, kernelArg);
  Value plan = kernel.getArguments().back();
  Value batch = gpu::BlockIdOp::create(b, loc, gpu::Dimension::z);
  Value hp = planHead(b, loc, op);
  Value qt = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value i0 = arith::MulIOp::create(b, loc, qt, idx(b, loc, op.getRows()));
  // The tile's first head: the group's first with GQA packing.
  Value head = op.getPack() > 1 ? arith::MulIOp::create(b, loc, hp, idx(b, loc, op.getPack()))
                                      .getResult()
                                : hp;
  map.map(op.getB(), batch);
  map.map(op.getH(), head);
  map.map(op.getI0(), i0);
  if (failed(materializeCapture(b, map, op.getQLen(), written, op)) ||
      failed(materializeCapture(b, map, op.getKvLen(), written, op)) ||
      failed(materializeCaptures(b, map, op.getMask(), written, op)))
    return failure();

  // Thread 0 opens the entry (no key, no full key); after the barrier every warp folds its
  // keys in with one atomic per value.
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  auto at = [&](int64_t c) { return SmallVector<Value, 4>{batch, hp, qt, idx(b, loc, c)}; };
  auto i32 = [&](int64_t c) { return arith::ConstantIntOp::create(b, loc, b.getI32Type(), c); };
  Value first = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, tid, idx(b, loc, 0));
  auto init = scf::IfOp::create(b, loc, first, /*withElse=*/false);
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(init.thenBlock()->getTerminator());
    for (int64_t c = 0; c < kPlanValues; ++c)
      memref::StoreOp::create(
          b, loc, i32(kCombine[c] == arith::AtomicRMWKind::mins ? std::numeric_limits<int32_t>::max() : 0),
          plan, at(c));
  }
  gpu::BarrierOp::create(b, loc);
  attn::KeyScan scan = attn::scanKeyRange(b, loc, op, map, tid, idx(b, loc, kPlanThreads));
  SmallVector<Value> values = scan.values(), reduced;
  for (int64_t c = 0; c < kPlanValues; ++c)
    reduced.push_back(warpReduce(
        b, loc, arith::IndexCastOp::create(b, loc, b.getI32Type(), values[size_t(c)]), kCombine[c]));
  Value lane0 = arith::CmpIOp::create(
      b, loc, arith::CmpIPredicate::eq,
      arith::RemUIOp::create(b, loc, tid, idx(b, loc, 32)), idx(b, loc, 0));
  auto fold = scf::IfOp::create(b, loc, lane0, /*withElse=*/false);
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(fold.thenBlock()->getTerminator());
    for (int64_t c = 0; c < kPlanValues; ++c)
      memref::AtomicRMWOp::create(b, loc, kCombine[c], reduced[size_t(c)], plan, at(c));
  }
  gpu::ReturnOp::create(b, loc);
  return kernel;
}
