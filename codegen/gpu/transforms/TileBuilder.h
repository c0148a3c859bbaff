// The small builders every distribution onto the GPU tile level uses: index and f32 fragment
// arithmetic, splat constants, row reductions, shared tiles and the cp.async group waits.
#pragma once

#include "codegen/gpu/transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

namespace mlir::attngpu {

inline constexpr double kLog2e = 1.4426950408889634;
inline constexpr double kLn2 = 0.6931471805599453;

struct TileBuilder {
  TileBuilder(OpBuilder &b, Location loc) : b(b), loc(loc) {}
  OpBuilder &b;
  Location loc;

  Value idx(int64_t x) { return arith::ConstantIndexOp::create(b, loc, x); }
  Value mulc(Value x, int64_t c) { return arith::MulIOp::create(b, loc, x, idx(c)); }
  void barrier() { gpu::BarrierOp::create(b, loc); }
  Value commit() {
    auto token = nvgpu::DeviceAsyncTokenType::get(b.getContext());
    return nvgpu::DeviceAsyncCreateGroupOp::create(b, loc, token, ValueRange{});
  }
  /// Closes the copy group, waits until at most `pending` groups are in flight, syncs the block.
  void waitGroups(int32_t pending) {
    nvgpu::DeviceAsyncWaitOp::create(b, loc, commit(), b.getI32IntegerAttr(pending));
    gpu::BarrierOp::create(b, loc);
  }
  RankedTensorType accOf(int64_t rows, int64_t cols) {
    return fragmentType({rows, cols}, b.getF32Type(), FragmentKind::acc);
  }
  RankedTensorType rowsOf(int64_t rows, Type element) {
    return fragmentType({rows}, element, FragmentKind::rows);
  }
  Value splat(RankedTensorType type, double value) {
    Attribute attr = type.getElementType().isInteger(1)
                         ? Attribute(b.getBoolAttr(value != 0))
                         : Attribute(b.getF32FloatAttr(float(value)));
    return arith::ConstantOp::create(b, loc, type, DenseElementsAttr::get(type, attr));
  }
  /// A splat of `value` shaped like `like`.
  Value splatLike(Value like, double value) {
    return splat(cast<RankedTensorType>(like.getType()), value);
  }
  Value cmp(arith::CmpFPredicate p, Value x, Value y) {
    return arith::CmpFOp::create(b, loc, p, x, y);
  }
  Value sel(Value c, Value x, Value y) { return arith::SelectOp::create(b, loc, c, x, y); }
  Value fmul(Value x, Value y) { return arith::MulFOp::create(b, loc, x, y); }
  Value fadd(Value x, Value y) { return arith::AddFOp::create(b, loc, x, y); }
  Value fsub(Value x, Value y) { return arith::SubFOp::create(b, loc, x, y); }
  Value fmax(Value x, Value y) { return arith::MaximumFOp::create(b, loc, x, y); }
  Value exp2(Value x) { return math::Exp2Op::create(b, loc, x); }
  Value rowReduce(ReduceKind kind, Value x) {
    auto xt = cast<RankedTensorType>(x.getType());
    return RowReduceOp::create(b, loc, rowsOf(xt.getDimSize(0), xt.getElementType()), x,
                               ReduceKindAttr::get(b.getContext(), kind));
  }
  Value quadReduce(ReduceKind kind, Value x) {
    return QuadReduceOp::create(b, loc, x.getType(), x, ReduceKindAttr::get(b.getContext(), kind));
  }
  /// The mean of each row of the accumulator tile x over its `width` columns (a row lives in one
  /// quad of one warp).
  Value rowMean(Value x, int64_t width) {
    Value sum = quadReduce(ReduceKind::sum, rowReduce(ReduceKind::sum, x));
    return fmul(sum, splatLike(sum, 1.0 / double(width)));
  }
  /// rmsnorm's factor of each row of x: 1 / sqrt(mean(x^2) + eps).
  Value rmsFactor(Value x, int64_t width, double eps) {
    Value mean = rowMean(fmul(x, x), width);
    return math::RsqrtOp::create(b, loc, fadd(mean, splatLike(mean, eps)));
  }
  Value broadcast(Value rows, int64_t cols) {
    auto rt = cast<RankedTensorType>(rows.getType());
    return BroadcastRowsOp::create(b, loc, accOf(rt.getDimSize(0), cols), rows);
  }
  /// A tile of dynamic shared memory: [rows, cols (+ the ldmatrix pad)] or, cols 0, [rows].
  Value sharedTile(int64_t rows, int64_t cols, Type element, bool padded) {
    auto space = gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
    SmallVector<int64_t> shape = {rows};
    if (cols)
      shape.push_back(cols + (padded ? kSharedPad : 0));
    auto type = MemRefType::get(shape, element, MemRefLayoutAttrInterface(), space);
    return AllocSharedOp::create(b, loc, type, IntegerAttr());
  }
  /// acc += a . B on tensor cores (B stored [N, K] when `transposeB`).
  Value mma(Value a, Value tile, Value acc, bool transposeB) {
    return MmaOp::create(b, loc, acc.getType(), a, tile, acc, /*gate=*/Value(), transposeB,
                         /*gate_blocks=*/false, MmaKindAttr());
  }
  Value toOperand(Value acc, Type element) {
    auto t = cast<RankedTensorType>(acc.getType());
    return ToOperandOp::create(b, loc,
                               fragmentType(t.getShape(), element, FragmentKind::operand_a), acc);
  }
  Value loadOperand(Value tile, int64_t rows, int64_t cols) {
    auto type = cast<MemRefType>(tile.getType());
    return LoadOperandOp::create(
        b, loc, fragmentType({rows, cols}, type.getElementType(), FragmentKind::operand_a), tile);
  }
};

} // namespace mlir::attngpu
