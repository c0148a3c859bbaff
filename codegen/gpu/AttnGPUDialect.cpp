// The attn_gpu dialect: registration, fragment types and the verifiers of the copy, fragment
// and cluster ops (the store, state and recurrence ops: AttnGPUVerifiers.cpp).
#include "codegen/gpu/AttnGPUDialect.h"
#include "codegen/gpu/AttnGPUVerify.h"

#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::attngpu;
using namespace mlir::attngpu::detail;

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
  case FragmentKind::warp_acc:
    return type.getDimSize(0) / 16 * (type.getDimSize(1) / 8) * 4;
  }
  return 0;
}

bool mlir::attngpu::isSwizzled(MemRefType tile) {
  return isa<SwizzleAttr>(tile.getLayout());
}

int64_t mlir::attngpu::sharedColumns(MemRefType tile) {
  int64_t cols = tile.getDimSize(1);
  return tile.getElementTypeBitWidth() == 16 && !isSwizzled(tile) ? cols - kSharedPad : cols;
}

int64_t mlir::attngpu::swizzledElements(MemRefType tile) {
  auto swizzle = cast<SwizzleAttr>(tile.getLayout());
  int64_t block = swizzle.blockColumns(tile.getElementType());
  return tile.getDimSize(0) * ((tile.getDimSize(1) + block - 1) / block) * block;
}

int64_t mlir::attngpu::sharedBytes(MemRefType buffer) {
  int64_t elements = isSwizzled(buffer) ? swizzledElements(buffer) : buffer.getNumElements();
  return elements * ((buffer.getElementTypeBitWidth() + 7) / 8);
}

int64_t SwizzleAttr::blockColumns(Type element) const {
  return getBytes() * 8 / element.getIntOrFloatBitWidth();
}

AffineMap SwizzleAttr::getAffineMap() const {
  // Not affine: the map stands for the logical [row, column] index space only.
  return AffineMap::getMultiDimIdentityMap(2, getContext());
}

bool SwizzleAttr::isIdentity() const { return false; }

LogicalResult SwizzleAttr::verifyLayout(ArrayRef<int64_t> shape,
                                        function_ref<InFlightDiagnostic()> emitError) const {
  if (getBytes() != 128)
    return emitError() << "#attn_gpu.swizzle supports the 128-byte swizzle only, got "
                       << getBytes();
  if (shape.size() != 2 || ShapedType::isDynamicShape(shape) || shape[0] % 8)
    return emitError() << "#attn_gpu.swizzle lays out static [rows, columns] tiles of whole "
                          "8-row atoms";
  return success();
}

LogicalResult SwizzleAttr::getStridesAndOffset(ArrayRef<int64_t>, SmallVectorImpl<int64_t> &,
                                               int64_t &) const {
  return failure();  // a swizzle has no strides
}

/// Checks that `value` is a fragment of layout `kind` (rank 2 for acc / operand_a, 1 for rows,
/// rows a multiple of 16, columns of 8 (acc) or 16 (operand_a)).
LogicalResult mlir::attngpu::detail::checkFragment(Operation *op, Type type, FragmentKind kind,
                                                  StringRef what) {
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
  int64_t colStep = kind == FragmentKind::operand_a ? 16 : 8;
  if (rank == 2 && t.getDimSize(1) % colStep)
    return op->emitOpError() << what << " must have a multiple of " << colStep
                             << " columns, got " << t.getDimSize(1);
  return success();
}

bool mlir::attngpu::detail::isWorkgroup(MemRefType type) {
  auto space = dyn_cast_or_null<gpu::AddressSpaceAttr>(type.getMemorySpace());
  return space && space.getValue() == gpu::AddressSpace::Workgroup;
}

LogicalResult mlir::attngpu::detail::checkShared(Operation *op, Value tile, StringRef what) {
  auto type = cast<MemRefType>(tile.getType());
  if (!isWorkgroup(type))
    return op->emitOpError() << what << " must be in shared memory (#gpu.address_space<"
                             << "workgroup>), got " << type;
  return success();
}



LogicalResult AllocSharedOp::verify() {
  MemRefType type = getTile().getType();
  if (!isWorkgroup(type))
    return emitOpError("allocates shared memory: the type needs #gpu.address_space<workgroup>");
  if (!type.hasStaticShape())
    return emitOpError("needs a static shape, got ") << type;
  if (auto swizzle = dyn_cast<SwizzleAttr>(type.getLayout()))
    if (type.getElementTypeBitWidth() != 16 || type.getDimSize(1) % 16)
      return emitOpError("lays out swizzled 16-bit tiles of whole 32-byte column steps only, "
                         "got ")
             << type;
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

/// An mbarrier: 8 bytes of shared memory.
static LogicalResult checkBarrier(Operation *op, Value barrier) {
  auto type = cast<MemRefType>(barrier.getType());
  if (!isWorkgroup(type) || type.getDimSize(0) != 1)
    return op->emitOpError("takes an mbarrier as memref<1xi64> in shared memory, got ") << type;
  return success();
}

LogicalResult CopyKeyTileOp::verify() {
  if (failed(checkShared(*this, getTile(), "the destination")))
    return failure();
  MemRefType tile = getTile().getType();
  if (tile.getRank() != 2)
    return emitOpError("copies into a rank-2 tile");
  if (bool(getBlockTable()) != (getPageSize() > 0))
    return emitOpError("takes a page size > 0 exactly when it reads through a block table");
  if (bool(getMap()) != bool(getBarrier()))
    return emitOpError("copies by a tensor map exactly when it signals a barrier");
  if (getMap()) {
    if (failed(checkBarrier(*this, getBarrier())))
      return failure();
    if (getBlockTable() || getInterior())
      return emitOpError("copies a paged or interior tile with cp.async only, not by a tensor map");
    if (!isSwizzled(tile) || getKv().getType().getElementType() != tile.getElementType())
      return emitOpError("copies by a tensor map into a swizzled tile of the source's element "
                         "type only, got ")
             << tile;
  }
  return success();
}

LogicalResult InitBarrierOp::verify() {
  if (getArrivals() < 1)
    return emitOpError("expects at least one arrival per phase, got ") << getArrivals();
  return checkBarrier(*this, getBarrier());
}
LogicalResult WaitBarrierOp::verify() { return checkBarrier(*this, getBarrier()); }
LogicalResult ArriveBarrierOp::verify() { return checkBarrier(*this, getBarrier()); }

LogicalResult TurnOp::verify() {
  auto roles = (*this)->getParentOfType<WarpSpecializeOp>();
  if (!roles || !roles.getConsumer().isAncestor((*this)->getParentRegion()))
    return emitOpError("takes turns among consumer warpgroups: it lies in the consumer region "
                       "of an attn_gpu.warp_specialize");
  if (roles.getConsumers() < 2)
    return emitOpError("needs two or more consumer warpgroups to take turns, got ")
           << roles.getConsumers();
  return success();
}

LogicalResult WarpSpecializeOp::verify() {
  if (!(*this)->getParentOfType<gpu::GPUFuncOp>())
    return emitOpError("lies outside a kernel (gpu.func)");
  if (auto registers = getRegisters()) {
    if (registers->size() != 2)
      return emitOpError("takes two register counts (consumers, producer), got ")
             << registers->size();
    for (int64_t r : *registers)
      if (r < 24 || r > 256 || r % 8)
        return emitOpError("register counts lie in [24, 256] and are multiples of 8 "
                           "(setmaxnreg), got ")
               << r;
  }
  return success();
}

LogicalResult LoadOperandOp::verify() {
  if (failed(checkShared(*this, getTile(), "the tile")) ||
      failed(checkFragment(*this, getType(), FragmentKind::operand_a, "the result")))
    return failure();
  MemRefType tile = getTile().getType();
  if (isSwizzled(tile))
    return emitOpError("reads a padded tile with ldmatrix, not a swizzled one: ") << tile;
  if (tile.getRank() != 2 || tile.getDimSize(0) != getType().getDimSize(0) ||
      sharedColumns(tile) != getType().getDimSize(1) ||
      tile.getElementType() != getType().getElementType())
    return emitOpError("reads a padded [rows, columns + ")
           << kSharedPad << "] tile of its element type, got " << tile << " for " << getType();
  return success();
}

LogicalResult MmaOp::verify() {
  bool wgmma = getKind() && *getKind() == MmaKind::wgmma_m64nNk16;
  auto aTile = dyn_cast<MemRefType>(getA().getType());
  if (aTile) {
    if (failed(checkShared(*this, getA(), "a")))
      return failure();
    if (!wgmma || !isSwizzled(aTile))
      return emitOpError("reads a from shared memory only as wgmma from a #attn_gpu.swizzle "
                         "tile, got ")
             << aTile;
  } else if (failed(checkFragment(*this, getA().getType(), FragmentKind::operand_a, "a"))) {
    return failure();
  }
  if (failed(checkFragment(*this, getAcc().getType(), FragmentKind::acc, "acc")) ||
      failed(checkShared(*this, getB(), "b")))
    return failure();
  if (getResult().getType() != getAcc().getType())
    return emitOpError("returns the accumulator's type");
  auto a = cast<ShapedType>(getA().getType());
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
  int64_t k = aTile ? sharedColumns(aTile) : a.getDimSize(1), n = acc.getDimSize(1);
  int64_t bk = getTransposeB() ? sharedColumns(b) : b.getDimSize(0);
  int64_t bn = getTransposeB() ? b.getDimSize(0) : sharedColumns(b);
  if (b.getRank() != 2 || bk != k || bn != n)
    return emitOpError("needs b of ") << (getTransposeB() ? "[N, K]" : "[K, N]") << " = ["
                                      << (getTransposeB() ? n : k) << ", "
                                      << (getTransposeB() ? k : n) << "] (+" << kSharedPad
                                      << " padding unless swizzled), got " << b;
  if (wgmma != isSwizzled(b))
    return emitOpError(wgmma ? "reads B through a wgmma descriptor: b must be a "
                               "#attn_gpu.swizzle tile, got "
                             : "reads B with ldmatrix (or needs a kind): a swizzled b takes "
                               "kind wgmma_m64nNk16, got ")
           << b;
  if (wgmma && (a.getDimSize(0) % 64 || n > 256 || getGate()))
    return emitOpError("as wgmma needs whole warpgroups (rows a multiple of 64), N <= 256 "
                       "and no gate, got ")
           << a << " and N = " << n;
  if (getGate()) {
    auto gate = getGate().getType();
    if (gate.getDimSize(1) != k || (ShapedType::isStatic(gate.getDimSize(0)) &&
                                    gate.getDimSize(0) < a.getDimSize(0)))
      return emitOpError("needs gates [rows, K] = [") << a.getDimSize(0) << ", " << k
                                                      << "], got " << gate;
    if (getGateBlocks() && !getTransposeB())
      return emitOpError("gates blocks of B's rows only when B is stored [N, K]");
  } else if (getGateBlocks()) {
    return emitOpError("has gate_blocks without gates");
  }
  if (getAsync() && (!getResult().hasOneUse() || !isa<MmaWaitOp>(*getResult().user_begin())))
    return emitOpError("is async: its result's one use must be an attn_gpu.mma_wait");
  return success();
}

void MmaWaitOp::build(OpBuilder &b, OperationState &state, ValueRange inflight,
                      int64_t pending) {
  build(b, state, inflight.getTypes(), inflight, b.getI64IntegerAttr(pending));
}

LogicalResult MmaWaitOp::verify() {
  if (getInflight().empty())
    return emitOpError("waits for at least one mma");
  if (getResults().getTypes() != getInflight().getTypes())
    return emitOpError("returns the accumulators it waits for, of the same types");
  for (Value v : getInflight()) {
    auto mma = v.getDefiningOp<MmaOp>();
    if (!mma || !mma.getAsync())
      return emitOpError("waits only for the results of async attn_gpu.mma ops");
  }
  return success();
}

LogicalResult LogDecayPrefixOp::verify() {
  int64_t n = getCum().getType().getDimSize(0);
  if (ShapedType::isDynamic(n) || (n > 32 && n % 32))
    return emitOpError("computes up to 32 positions, or a multiple of 32, got ") << n;
  if (getRelative() && (getCarry() || getTotalOnly()))
    return emitOpError("starts from 0 when relative: no carry");
  if (getExclusive() && (getTotalOnly() || getExclusive().getType().getDimSize(0) != n))
    return emitOpError("writes an exclusive prefix of each position of cum: a vector of its size");
  if (getTotalOnly() && !getCarry())
    return emitOpError("writes the total into a carry: total_only needs one");
  return success();
}

LogicalResult ScoreOp::verify() {
  if (failed(checkFragment(*this, getS().getType(), FragmentKind::acc, "the scores")))
    return failure();
  if (getResult().getType() != getS().getType())
    return emitOpError("returns the scores' type");
  if (bool(getCumQ()) != bool(getCumK()))
    return emitOpError("takes the cumulative log decays of both rows and keys, or neither");
  if (getLogDecay() && !getCumQ())
    return emitOpError("log_decay adds the cumulative log decays: it needs 'decay'");
  if (getTransposed() && (getPack() != 1 || getKeyScale()))
    return emitOpError("transposed (key-major) takes no GQA packing or key factors");
  if (bool(getQNorms()) != bool(getKNorms()))
    return emitOpError("takes the row norms of both rows and keys, or neither");
  unsigned args = getScore().front().getNumArguments();
  if (args != (getQNorms() ? 7u : 5u))
    return emitOpError() << "'score' region must take " << (getQNorms() ? 7 : 5)
                         << " arguments (b, h, i, j, dot" << (getQNorms() ? ", nq, nk" : "")
                         << "), got " << args;
  return success();
}

LogicalResult ScoreGradOp::verify() {
  if (failed(checkFragment(*this, getDot().getType(), FragmentKind::acc, "the dot products")) ||
      failed(checkFragment(*this, getDs().getType(), FragmentKind::acc, "dS")))
    return failure();
  if (bool(getQNorms()) != bool(getKNorms()))
    return emitOpError("takes the row norms of both queries and keys, or neither");
  if (getQNorms() && !getMore().empty())
    return emitOpError("takes the row norms or more tiles, not both");
  if (llvm::any_of(getMore(), [&](Value y) { return y.getType() != getDot().getType(); }))
    return emitOpError("takes more tiles of the dot products' type");
  size_t results = getQNorms() ? 3 : 1 + getMore().size();
  if (getResults().size() != results ||
      llvm::any_of(getResults(), [&](Value r) { return r.getType() != getDot().getType(); }))
    return emitOpError() << "returns " << results << " tile(s) of the dot products' type"
                         << (getQNorms() ? " (the gradients of dot, nq, nk)" : "");
  Block &body = getScoreGrad().front();
  if (body.getNumArguments() != (getQNorms() ? 8u : 6u + getMore().size()))
    return emitOpError() << "takes a region of (b, h, i, j, dot"
                         << (getQNorms() ? ", nq, nk" : getMore().empty() ? "" : ", more...")
                         << ", ds)";
  if (body.getTerminator()->getNumOperands() != results)
    return emitOpError() << "'score_grad' region must yield " << results << " value(s)";
  return success();
}

LogicalResult DecayGradOp::verify() {
  Block &body = getDecayGrad().front();
  auto index = [](BlockArgument a) { return a.getType().isIndex(); };
  if (body.getNumArguments() != 4 ||
      !llvm::all_of(body.getArguments().take_front(3), index) ||
      !body.getArgument(3).getType().isF32())
    return emitOpError("takes a region of (b, h, t, g): three indices and an f32");
  if (body.getTerminator()->getNumOperands())
    return emitOpError("'decay_grad' region yields nothing (it accumulates)");
  return success();
}

LogicalResult AccumulateOp::verify() {
  if (int64_t(getIndices().size()) != getGrad().getType().getRank())
    return emitOpError("takes one index per dimension of the gradient");
  return success();
}

LogicalResult LoadColumnsOp::verify() {
  if (failed(checkFragment(*this, getType(), FragmentKind::acc, "the result")))
    return failure();
  int64_t n = getValues().getType().getDimSize(0);
  if (!getType().getElementType().isF32() ||
      (ShapedType::isStatic(n) && n < getType().getDimSize(1)))
    return emitOpError("reads an f32 value for each of its columns");
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

/// The cluster ops run in a kernel launched in clusters, on f32 rows and a scratch vector of
/// at least one entry per row.
static LogicalResult checkCluster(Operation *op, Type rows, MemRefType scratch) {
  auto kernel = op->getParentOfType<gpu::GPUFuncOp>();
  if (kernel && !kernel->hasAttr(NVVM::NVVMDialect::getClusterDimAttrName()))
    return op->emitOpError("needs a kernel launched in clusters (nvvm.cluster_dim on its "
                           "gpu.func)");
  if (!rows)
    return success();
  if (failed(checkFragment(op, rows, FragmentKind::rows, "the rows")))
    return failure();
  auto x = cast<RankedTensorType>(rows);
  if (!x.getElementType().isF32() || scratch.getDimSize(0) < x.getDimSize(0))
    return op->emitOpError() << "sums f32 rows through a scratch vector of at least one entry "
                                "per row, got "
                             << x << " and " << scratch;
  return success();
}

LogicalResult ClusterPublishOp::verify() {
  return checkCluster(*this, getX().getType(), getScratch().getType());
}

LogicalResult ClusterGatherOp::verify() {
  return checkCluster(*this, getType(), getScratch().getType());
}

LogicalResult ClusterSyncOp::verify() { return checkCluster(*this, Type(), MemRefType()); }

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
