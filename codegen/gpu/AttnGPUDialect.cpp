// The attn_gpu dialect: registration, fragment types and the ops' verifiers.
#include "codegen/gpu/AttnGPUDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::attngpu;

#include "codegen/gpu/AttnGPUDialect.cpp.inc"
#include "codegen/gpu/AttnGPUEnums.cpp.inc"
#define GET_ATTRDEF_CLASSES
#include "codegen/gpu/AttnGPUAttrs.cpp.inc"

void AttnGPUDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "codegen/gpu/AttnGPUOps.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "codegen/gpu/AttnGPUAttrs.cpp.inc"
      >();
}

std::optional<FragmentKind> mlir::attngpu::fragmentKind(Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor)
    return std::nullopt;
  if (auto frag = dyn_cast_or_null<FragmentKindAttr>(tensor.getEncoding()))
    return frag.getValue();
  return std::nullopt;
}

RankedTensorType mlir::attngpu::fragmentType(ArrayRef<int64_t> shape, Type element,
                                             FragmentKind kind) {
  return RankedTensorType::get(shape, element, FragmentKindAttr::get(element.getContext(), kind));
}

int64_t mlir::attngpu::valuesPerThread(RankedTensorType type) {
  switch (*fragmentKind(type)) {
  case FragmentKind::acc:
    return type.getDimSize(1) / 8 * 4;
  case FragmentKind::operand_a:
    return type.getDimSize(1) / 16 * 4;
  case FragmentKind::rows:
    return 2;
  }
  return 0;
}

namespace {

/// Checks that `value` is a fragment of layout `kind` (rank 2 for acc / operand_a, 1 for rows,
/// rows a multiple of 16, columns of 8 (acc) or 16 (operand_a)).
LogicalResult checkFragment(Operation *op, Type type, FragmentKind kind, StringRef what) {
  auto kindOf = fragmentKind(type);
  if (!kindOf || *kindOf != kind)
    return op->emitOpError() << what << " must be a fragment of layout #attn_gpu.frag<"
                             << stringifyFragmentKind(kind) << ">, got " << type;
  auto t = cast<RankedTensorType>(type);
  int64_t rank = kind == FragmentKind::rows ? 1 : 2;
  if (t.getRank() != rank || !t.hasStaticShape())
    return op->emitOpError() << what << " must be a static rank-" << rank << " tile, got " << t;
  if (t.getDimSize(0) % 16)
    return op->emitOpError() << what << " must have a multiple of 16 rows (16 per warp), got "
                             << t.getDimSize(0);
  int64_t colStep = kind == FragmentKind::acc ? 8 : 16;
  if (rank == 2 && t.getDimSize(1) % colStep)
    return op->emitOpError() << what << " must have a multiple of " << colStep
                             << " columns, got " << t.getDimSize(1);
  return success();
}

bool isWorkgroup(MemRefType type) {
  auto space = dyn_cast_or_null<gpu::AddressSpaceAttr>(type.getMemorySpace());
  return space && space.getValue() == gpu::AddressSpace::Workgroup;
}

LogicalResult checkShared(Operation *op, Value tile, StringRef what) {
  auto type = cast<MemRefType>(tile.getType());
  if (!isWorkgroup(type))
    return op->emitOpError() << what << " must be in shared memory (#gpu.address_space<"
                             << "workgroup>), got " << type;
  return success();
}

/// The logical columns of a 16-bit shared tile (its rows carry kSharedPad elements of padding).
int64_t logicalColumns(MemRefType tile) { return tile.getDimSize(1) - kSharedPad; }

} // namespace

LogicalResult AllocSharedOp::verify() {
  MemRefType type = getTile().getType();
  if (!isWorkgroup(type))
    return emitOpError("allocates shared memory: the type needs #gpu.address_space<workgroup>");
  if (!type.hasStaticShape())
    return emitOpError("needs a static shape, got ") << type;
  return success();
}

LogicalResult CopyQueryTileOp::verify() {
  if (failed(checkShared(*this, getTile(), "the destination")))
    return failure();
  if (getTile().getType().getRank() != 2)
    return emitOpError("copies into a rank-2 tile");
  if (getQ().getType().getElementType() != getTile().getType().getElementType())
    return emitOpError("copies without conversion: q and the tile need one element type");
  return success();
}

LogicalResult CopyKeyTileOp::verify() {
  if (failed(checkShared(*this, getTile(), "the destination")))
    return failure();
  if (getTile().getType().getRank() != 2)
    return emitOpError("copies into a rank-2 tile");
  if (bool(getBlockTable()) != (getPageSize() > 0))
    return emitOpError("takes a page size > 0 exactly when it reads through a block table");
  return success();
}

LogicalResult LoadOperandOp::verify() {
  if (failed(checkShared(*this, getTile(), "the tile")) ||
      failed(checkFragment(*this, getType(), FragmentKind::operand_a, "the result")))
    return failure();
  MemRefType tile = getTile().getType();
  if (tile.getRank() != 2 || tile.getDimSize(0) != getType().getDimSize(0) ||
      logicalColumns(tile) != getType().getDimSize(1) ||
      tile.getElementType() != getType().getElementType())
    return emitOpError("reads a padded [rows, columns + ")
           << kSharedPad << "] tile of its element type, got " << tile << " for " << getType();
  return success();
}

LogicalResult MmaOp::verify() {
  if (failed(checkFragment(*this, getA().getType(), FragmentKind::operand_a, "a")) ||
      failed(checkFragment(*this, getAcc().getType(), FragmentKind::acc, "acc")) ||
      failed(checkShared(*this, getB(), "b")))
    return failure();
  if (getResult().getType() != getAcc().getType())
    return emitOpError("returns the accumulator's type");
  auto a = cast<RankedTensorType>(getA().getType());
  auto acc = cast<RankedTensorType>(getAcc().getType());
  MemRefType b = getB().getType();
  if (!acc.getElementType().isF32())
    return emitOpError("accumulates in f32");
  if (a.getDimSize(0) != acc.getDimSize(0))
    return emitOpError("needs as many rows in a as in acc, got ")
           << a.getDimSize(0) << " and " << acc.getDimSize(0);
  if (b.getElementType() != a.getElementType())
    return emitOpError("multiplies operands of one element type, got ")
           << a.getElementType() << " and " << b.getElementType();
  int64_t k = a.getDimSize(1), n = acc.getDimSize(1);
  int64_t bk = getTransposeB() ? logicalColumns(b) : b.getDimSize(0);
  int64_t bn = getTransposeB() ? b.getDimSize(0) : logicalColumns(b);
  if (b.getRank() != 2 || bk != k || bn != n)
    return emitOpError("needs b of ") << (getTransposeB() ? "[N, K]" : "[K, N]") << " = ["
                                      << (getTransposeB() ? n : k) << ", "
                                      << (getTransposeB() ? k : n) << "] (+" << kSharedPad
                                      << " padding), got " << b;
  if (n % 16)
    return emitOpError("needs a multiple of 16 columns in acc (ldmatrix.x4 reads two 8-column "
                       "blocks), got ")
           << n;
  return success();
}

LogicalResult ScoreOp::verify() {
  if (failed(checkFragment(*this, getS().getType(), FragmentKind::acc, "the scores")))
    return failure();
  if (getResult().getType() != getS().getType())
    return emitOpError("returns the scores' type");
  if (bool(getCumQ()) != bool(getCumK()))
    return emitOpError("takes the cumulative log decays of both rows and keys, or neither");
  return success();
}

LogicalResult RowReduceOp::verify() {
  if (failed(checkFragment(*this, getX().getType(), FragmentKind::acc, "the operand")) ||
      failed(checkFragment(*this, getType(), FragmentKind::rows, "the result")))
    return failure();
  auto x = cast<RankedTensorType>(getX().getType());
  if (x.getDimSize(0) != getType().getDimSize(0) || x.getElementType() != getType().getElementType())
    return emitOpError("returns one value of the operand's type per row");
  return success();
}

LogicalResult QuadReduceOp::verify() {
  if (failed(checkFragment(*this, getX().getType(), FragmentKind::rows, "the operand")))
    return failure();
  if (getKind() == ReduceKind::min)
    return emitOpError("reduces by max or sum");
  return success();
}

LogicalResult BroadcastRowsOp::verify() {
  if (failed(checkFragment(*this, getX().getType(), FragmentKind::rows, "the operand")) ||
      failed(checkFragment(*this, getType(), FragmentKind::acc, "the result")))
    return failure();
  auto x = cast<RankedTensorType>(getX().getType());
  if (x.getDimSize(0) != getType().getDimSize(0) || x.getElementType() != getType().getElementType())
    return emitOpError("keeps the rows and the element type");
  return success();
}

LogicalResult ToOperandOp::verify() {
  if (failed(checkFragment(*this, getX().getType(), FragmentKind::acc, "the operand")) ||
      failed(checkFragment(*this, getType(), FragmentKind::operand_a, "the result")))
    return failure();
  auto x = cast<RankedTensorType>(getX().getType());
  if (x.getShape() != getType().getShape() || !x.getElementType().isF32() ||
      !(getType().getElementType().isF16() || getType().getElementType().isBF16()))
    return emitOpError("rounds an f32 tile to an f16/bf16 tile of the same shape");
  return success();
}

LogicalResult StoreTileOp::verify() {
  if (failed(checkFragment(*this, getX().getType(), FragmentKind::acc, "the tile")))
    return failure();
  int64_t rank = getOut().getType().getRank();
  if (rank != 4 + int64_t(getSplit().size()) || getSplit().size() > 1)
    return emitOpError("writes a rank-4 output, or a rank-5 partial buffer at one split index");
  return success();
}

LogicalResult StoreRowsOp::verify() {
  if (failed(checkFragment(*this, getX().getType(), FragmentKind::rows, "the values")))
    return failure();
  int64_t rank = getOut().getType().getRank();
  if (rank != 3 + int64_t(getSplit().size()) || getSplit().size() > 1)
    return emitOpError("writes a rank-3 row statistic, or a rank-4 partial one at one split "
                       "index");
  return success();
}

#define GET_OP_CLASSES
#include "codegen/gpu/AttnGPUOps.cpp.inc"
