// The verifiers of the attn_gpu ops that store tiles, hold a recurrence's state, gate, project
// and copy matrices (the others: AttnGPUDialect.cpp).
#include "codegen/gpu/AttnGPUDialect.h"
#include "codegen/gpu/AttnGPUVerify.h"

using namespace mlir;
using namespace mlir::attngpu;
using namespace mlir::attngpu::detail;

namespace {

/// The [R, C] warp block of a state of `rows` rows: R a multiple of 16 dividing `rows`.
LogicalResult checkStateBlock(Operation *op, Type type, int64_t rows, int64_t columns) {
  if (failed(checkFragment(op, type, FragmentKind::warp_acc, "the state")))
    return failure();
  auto t = cast<RankedTensorType>(type);
  if (!t.getElementType().isF32())
    return op->emitOpError("keeps the state in f32");
  if (rows % t.getDimSize(0))
    return op->emitOpError() << "needs a warp block of rows dividing the state's " << rows
                             << ", got " << t;
  if (columns >= 0 && t.getDimSize(1) != columns)
    return op->emitOpError() << "needs a state of " << columns << " columns, got " << t;
  return success();
}

} // namespace

LogicalResult LoadStateOp::verify() {
  return checkStateBlock(*this, getType(), getRows(), -1);
}

LogicalResult StoreStateOp::verify() {
  return checkStateBlock(*this, getX().getType(), getRows(), -1);
}

LogicalResult ShareStateOp::verify() {
  if (failed(checkShared(*this, getTile(), "the tile")))
    return failure();
  MemRefType tile = getTile().getType();
  if (tile.getRank() != 2 || tile.getElementTypeBitWidth() != 16)
    return emitOpError("writes a 16-bit rank-2 tile, got ") << tile;
  return checkStateBlock(*this, getX().getType(), tile.getDimSize(0), sharedColumns(tile));
}

LogicalResult StateUpdateOp::verify() {
  if (failed(checkShared(*this, getK(), "k")) || failed(checkShared(*this, getV(), "v")))
    return failure();
  if (getResult().getType() != getS().getType())
    return emitOpError("returns the state's type");
  MemRefType k = getK().getType(), v = getV().getType();
  if (k.getRank() != 2 || v.getRank() != 2 || k.getDimSize(0) != v.getDimSize(0) ||
      k.getElementType() != v.getElementType() || k.getElementTypeBitWidth() != 16)
    return emitOpError("needs 16-bit K and V tiles of one chunk's rows, got ") << k << " and "
                                                                               << v;
  int64_t columns = sharedColumns(v) + (getNormalize() ? 8 : 0);
  return checkStateBlock(*this, getS().getType(), sharedColumns(k), columns);
}

LogicalResult MapElementsOp::verify() {
  if (failed(checkFragment(*this, getX().getType(), FragmentKind::acc, "the operand")))
    return failure();
  if (getType() != getX().getType())
    return emitOpError("returns the operand's type");
  for (Value y : getMore())
    if (y.getType() != getX().getType())
      return emitOpError("takes more operands of the first one's type, got ") << y.getType();
  if (getBody().getNumArguments() != 5 + getMore().size())
    return emitOpError("takes a region of (b, h, i, j, x) and one more value per extra operand");
  return success();
}

LogicalResult ColumnsOp::verify() {
  if (failed(checkFragment(*this, getX().getType(), FragmentKind::acc, "the operand")) ||
      failed(checkFragment(*this, getType(), FragmentKind::acc, "the result")))
    return failure();
  auto x = cast<RankedTensorType>(getX().getType());
  int64_t from = getFrom(), width = getType().getDimSize(1);
  if (x.getDimSize(0) != getType().getDimSize(0) || from % 8 || from < 0 ||
      from + width > x.getDimSize(1) || x.getElementType() != getType().getElementType())
    return emitOpError("takes whole 8-column blocks of the operand's rows, got [")
           << from << ", " << from + width << ") of " << x;
  return success();
}

LogicalResult LoadRowsOp::verify() {
  if (failed(checkFragment(*this, getType(), FragmentKind::rows, "the result")))
    return failure();
  int64_t n = getValues().getType().getDimSize(0);
  if (!getType().getElementType().isF32() ||
      (ShapedType::isStatic(n) && n < getType().getDimSize(0)))
    return emitOpError("reads an f32 value for each of its rows");
  return success();
}

LogicalResult LoadAccOp::verify() {
  if (failed(checkShared(*this, getTile(), "the tile")) ||
      failed(checkFragment(*this, getType(), FragmentKind::acc, "the result")))
    return failure();
  MemRefType tile = getTile().getType();
  bool widths = tile.getElementTypeBitWidth() == 16 || tile.getElementType().isF32();
  if (tile.getRank() != 2 || !widths || tile.getDimSize(0) != getType().getDimSize(0) ||
      sharedColumns(tile) < getType().getDimSize(1) || !getType().getElementType().isF32())
    return emitOpError("reads the first columns of a 16-bit or f32 tile of its rows into f32, "
                       "got ")
           << tile << " for " << getType();
  return success();
}

LogicalResult LoadTileOp::verify() {
  if (failed(checkFragment(*this, getType(), FragmentKind::acc, "the result")))
    return failure();
  if (!getType().getElementType().isF32())
    return emitOpError("reads f32 values, got ") << getType();
  int64_t width = getSrc().getType().getDimSize(3);
  if (!ShapedType::isDynamic(width) && width < getType().getDimSize(1))
    return emitOpError("reads ") << getType().getDimSize(1) << " columns of a tensor of "
                                 << width;
  return success();
}

LogicalResult ShareTileOp::verify() {
  if (failed(checkShared(*this, getTile(), "the tile")) ||
      failed(checkFragment(*this, getX().getType(), FragmentKind::acc, "the tile")))
    return failure();
  MemRefType tile = getTile().getType();
  auto x = cast<RankedTensorType>(getX().getType());
  if (tile.getRank() != 2 || tile.getElementTypeBitWidth() != 16 || isSwizzled(tile) ||
      tile.getDimSize(0) != x.getDimSize(0) || sharedColumns(tile) != x.getDimSize(1))
    return emitOpError("writes a padded 16-bit tile of the fragment's shape, got ")
           << tile << " for " << x;
  return success();
}

LogicalResult AtomicAddProductOp::verify() {
  if (failed(checkShared(*this, getA(), "a")) || failed(checkShared(*this, getB(), "b")))
    return failure();
  MemRefType a = getA().getType(), b = getB().getType();
  if (a.getRank() != 2 || b.getRank() != 2 || a.getElementType() != b.getElementType() ||
      a.getElementTypeBitWidth() != 16 || a.getDimSize(0) != b.getDimSize(0) ||
      a.getDimSize(0) % 16 || isSwizzled(a))
    return emitOpError("needs 16-bit tiles A [K, R] (padded) and B [K, C] of one element type "
                       "and K a multiple of 16, got ")
           << a << " and " << b;
  if (sharedColumns(a) % 16 || sharedColumns(b) % 32)
    return emitOpError("needs R a multiple of 16 and C of 32, got ")
           << sharedColumns(a) << " and " << sharedColumns(b);
  int64_t width = getOut().getType().getDimSize(3);
  if (!ShapedType::isDynamic(width) && width < sharedColumns(b))
    return emitOpError("adds ") << sharedColumns(b) << " columns into a tensor of " << width;
  return success();
}

LogicalResult GateOperandOp::verify() {
  if (failed(checkFragment(*this, getA().getType(), FragmentKind::operand_a, "a")))
    return failure();
  if (getType() != getA().getType())
    return emitOpError("returns the operand's type");
  if (getGate().getType().getDimSize(1) != getType().getDimSize(1))
    return emitOpError("needs a gate per channel of a");
  return success();
}

LogicalResult RowSquaresOp::verify() {
  if (failed(checkShared(*this, getTile(), "the tile")))
    return failure();
  MemRefType tile = getTile().getType();
  if (tile.getElementTypeBitWidth() != 16 || sharedColumns(tile) % 8 ||
      getNorms().getType().getDimSize(0) > tile.getDimSize(0))
    return emitOpError() << "sums the 16-bit rows of whole 16-byte chunks of a tile into at "
                            "most its rows, got "
                         << tile << " and " << getNorms().getType();
  return success();
}

LogicalResult RowDotOp::verify() {
  if (failed(checkShared(*this, getA(), "a")) || failed(checkShared(*this, getB(), "b")) ||
      failed(checkFragment(*this, getType(), FragmentKind::rows, "the result")))
    return failure();
  if (!getType().getElementType().isF32())
    return emitOpError("returns f32 rows");
  for (Value tile : {getA(), getB()}) {
    auto type = cast<MemRefType>(tile.getType());
    if (type.getRank() != 2 || type.getDimSize(1) < int64_t(getColumns()) ||
        type.getDimSize(0) < getType().getDimSize(0))
      return emitOpError() << "reads " << getType().getDimSize(0) << " rows of "
                           << int64_t(getColumns()) << " columns of each tile, got " << type;
  }
  Region &w = getWeight();
  auto idx = IndexType::get(getContext());
  if (w.front().getNumArguments() != 4 ||
      llvm::any_of(w.front().getArgumentTypes(), [&](Type t) { return t != idx; }))
    return emitOpError("'weight' region must take (b, h, i, e : index)");
  return success();
}

LogicalResult ProjectTileOp::verify() {
  MemRefType raw = getRaw().getType(), w = getW().getType(), feature = getFeature().getType();
  if (raw.getRank() != 2 || w.getRank() != 2 || feature.getRank() != 2 ||
      sharedColumns(raw) != sharedColumns(w) || sharedColumns(feature) != w.getDimSize(0) ||
      raw.getDimSize(0) != feature.getDimSize(0) || sharedColumns(raw) % 16 ||
      w.getDimSize(0) % 16)
    return emitOpError("projects [R, D] rows by w [M, D] into [R, M] (D, M multiples of 16)");
  if (getMap().getNumArguments() != 2)
    return emitOpError("takes a map of (x . w[m], x . x)");
  return success();
}

LogicalResult CopyMatrixOp::verify() {
  MemRefType source = getSource().getType(), tile = getTile().getType();
  if (tile.getRank() != 2 || tile.getElementTypeBitWidth() != 16 ||
      !source.hasStaticShape() || source.getDimSize(0) != tile.getDimSize(0) ||
      source.getDimSize(1) != sharedColumns(tile))
    return emitOpError("copies a static matrix into a padded 16-bit tile of its shape, got ")
           << source << " and " << tile;
  return success();
}
