// Shared tiles and global -> shared copies: attn_gpu.alloc_shared (a view of the dynamic shared
// memory), copy_query_tile / copy_key_tile (cp.async, 16 bytes a copy, zero-fill past the end;
// GQA-packed query rows, paged keys; with a tensor map, one thread's TMA boxes completing on
// an mbarrier), init_barrier / wait_barrier, dequantize (quantised K/V staging -> 16-bit tile)
// and map_tile (a feature map in place).
#include "codegen/cuda/GPUToNVVM.h"

#include "mlir/Dialect/LLVMIR/NVVMDialect.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attngpu;

namespace {

struct AllocSharedLowering : OpConversionPattern<AllocSharedOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(AllocSharedOp op, OpAdaptor,
                                ConversionPatternRewriter &rw) const override {
    if (!op.getOffset())
      return op.emitOpError("has no offset yet (run attn-gpu-allocate-shared)");
    WarpKernelBase w(rw, op.getLoc());
    Value base = w.dynamicSharedMemory();
    rw.replaceOpWithNewOp<memref::ViewOp>(
        op, cast<MemRefType>(getTypeConverter()->convertType(op.getType())), base,
        w.idx(*op.getOffset()), ValueRange{});
    return success();
  }
};

/// A select between double buffers of a swizzled tile: the same select of their flat views.
struct SelectTileLowering : OpConversionPattern<arith::SelectOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(arith::SelectOp op, OpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    auto tile = dyn_cast<MemRefType>(op.getType());
    if (!tile || !isSwizzled(tile))
      return failure();
    rw.replaceOpWithNewOp<arith::SelectOp>(op, adaptor.getCondition(), adaptor.getTrueValue(),
                                           adaptor.getFalseValue());
    return success();
  }
};

/// Columns a copy moves of a tile and the elements per 16-byte (or 8-byte) copy: 16-bit tiles
/// carry kSharedPad elements of padding per row (unless swizzled); staging tiles of bytes do
/// not.
std::pair<int64_t, int64_t> copyShape(MemRefType tile) {
  if (tile.getElementTypeBitWidth() == 16)
    return {sharedColumns(tile), 8};
  if (tile.getElementTypeBitWidth() == 32) {  // an f32 tile (the backward's f32 dout): 4 a copy
    int64_t cols = tile.getDimSize(1);
    return {cols, cols % 4 ? (cols % 2 ? 1 : 2) : 4};
  }
  int64_t bytes = tile.getDimSize(1);
  return {bytes, bytes % 16 ? 8 : 16};
}

struct CopyQueryTileLowering : OpConversionPattern<CopyQueryTileOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(CopyQueryTileOp op, OpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op);
    Value qLen = memref::DimOp::create(rw, t.loc, op.getQ(), 2);
    MemRefType tileType = op.getTile().getType();
    auto [cols, perCopy] = copyShape(tileType);
    auto rowOf = [&](Value r) -> WarpKernelBase::Row {
      auto [h, i] = t.packedRow(op.getH(), t.add(op.getI0(), r), op.getPack());
      return {op.getB(), h, i, t.lt(i, qLen)};
    };
    auto swizzle = [&](Value r, Value col) { return swizzledIndex(t, tileType, r, col); };
    t.loadTile(op.getQ(), rowOf, tileType.getDimSize(0), cols, adaptor.getTile(), t.tid,
               t.threads, perCopy, {},
               isSwizzled(tileType) ? WarpKernelBase::IndexFn(swizzle) : nullptr);
    rw.eraseOp(op);
    return success();
  }
};

/// Page of the pool holding key j (buildPageLookup: clamped into the table and the pool).
Value pageOf(ThreadContext &t, Value table, Value pool, Value batch, Value j, int64_t pageSize) {
  return buildPageLookup(t.b, t.loc, table, pool, batch, j, pageSize);
}

/// The shared-memory pointer (!llvm.ptr<3>) of a converted shared buffer, plus `bytes`.
Value sharedPointer(WarpKernelBase &t, Value flat, int64_t bytes = 0) {
  Value address = sharedAddress(t, flat);
  if (bytes)
    address = arith::AddIOp::create(
        t.b, t.loc, address, arith::ConstantIntOp::create(t.b, t.loc, bytes, 64));
  return LLVM::IntToPtrOp::create(t.b, t.loc, LLVM::LLVMPointerType::get(t.b.getContext(), 3),
                                  address);
}

Value i32Of(WarpKernelBase &t, Value index) {
  return arith::IndexCastOp::create(t.b, t.loc, t.b.getI32Type(), index);
}

/// `if (the first thread of the op's role)`: thread 0, or a warp-specialised kernel's producer
/// thread; the builder moved into its body (restored by the caller's guard).
void intoLeader(ThreadContext &t) {
  auto leader = scf::IfOp::create(
      t.b, t.loc,
      arith::CmpIOp::create(t.b, t.loc, arith::CmpIPredicate::eq, t.tid, t.idx(t.first)),
      /*withElseRegion=*/false);
  t.b.setInsertionPointToStart(leader.thenBlock());
}

/// A tile copied by TMA: thread 0 arrives on the barrier expecting the tile's bytes, then
/// issues one box of [rows, 64] elements (128 bytes a row, written in the 128-byte swizzle)
/// per column block of the tile, at coordinates (column, key, kv head, batch) of the tensor.
LogicalResult lowerTensorCopy(CopyKeyTileOp op, CopyKeyTileOp::Adaptor adaptor,
                              ConversionPatternRewriter &rw) {
  ThreadContext t(rw, op.getLoc(), op);
  MemRefType tile = op.getTile().getType();
  int64_t rows = tile.getDimSize(0), cols = tile.getDimSize(1);
  auto swizzle = cast<SwizzleAttr>(tile.getLayout());
  int64_t blockCols = swizzle.blockColumns(tile.getElementType()), rowBytes = swizzle.getBytes();
  OpBuilder::InsertionGuard guard(rw);
  intoLeader(t);
  Value barrier = sharedPointer(t, adaptor.getBarrier());
  // Every box lands whole (past the tensor's columns as zeros): a last column block partly
  // used still brings its full 128-byte rows.
  int64_t boxes = (cols + blockCols - 1) / blockCols;
  int64_t bytes = rows * rowBytes * boxes;
  NVVM::MBarrierArriveExpectTxOp::create(
      rw, t.loc, rw.getI64Type(), barrier,
      arith::ConstantIntOp::create(rw, t.loc, bytes, 32), NVVM::MemScopeKind::CTA, false,
      Value());
  Value col0 = op.getCol0() ? op.getCol0() : t.idx(0);
  auto cluster = LLVM::LLVMPointerType::get(rw.getContext(), 7);
  for (int64_t block = 0; block < boxes; ++block) {
    Value dst = LLVM::AddrSpaceCastOp::create(
        rw, t.loc, cluster, sharedPointer(t, adaptor.getTile(), block * rows * rowBytes));
    SmallVector<Value> at = {i32Of(t, t.add(col0, block * blockCols)), i32Of(t, op.getJ0()),
                             i32Of(t, op.getHk()), i32Of(t, op.getB())};
    NVVM::CpAsyncBulkTensorGlobalToSharedClusterOp::create(
        rw, t.loc, dst, adaptor.getMap(), at, barrier, ValueRange{}, Value(), Value(),
        NVVM::TMALoadMode::TILE, false, NVVM::CTAGroupKindAttr(), Value());
  }
  rw.eraseOp(op);
  return success();
}

/// Thread 0 initialises the barrier for its arrivals and fences the initialisation.
struct InitBarrierLowering : OpConversionPattern<InitBarrierOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(InitBarrierOp op, OpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op);
    OpBuilder::InsertionGuard guard(rw);
    intoLeader(t);
    NVVM::MBarrierInitOp::create(rw, t.loc, sharedPointer(t, adaptor.getBarrier()),
                                 arith::ConstantIntOp::create(rw, t.loc, op.getArrivals(), 32),
                                 Value());
    NVVM::FenceMbarrierInitOp::create(rw, t.loc);
    rw.eraseOp(op);
    return success();
  }
};

/// Every thread: mbarrier.arrive (release, CTA scope).
struct ArriveBarrierLowering : OpConversionPattern<ArriveBarrierOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(ArriveBarrierOp op, OpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op);
    NVVM::MBarrierArriveOp::create(rw, t.loc, Type(), sharedPointer(t, adaptor.getBarrier()),
                                   Value());
    rw.eraseOp(op);
    return success();
  }
};

/// Every thread: mbarrier.try_wait.parity until the phase of parity `phase` % 2 completes.
struct WaitBarrierLowering : OpConversionPattern<WaitBarrierOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(WaitBarrierOp op, OpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op);
    Value parity = i32Of(t, arith::AndIOp::create(rw, t.loc, op.getPhase(), t.idx(1)));
    // The suspend-time hint of CUTLASS's pipelines (nanoseconds) between retries.
    NVVM::MBarrierTryWaitParityOp::create(rw, t.loc, sharedPointer(t, adaptor.getBarrier()),
                                          parity,
                                          arith::ConstantIntOp::create(rw, t.loc, 0x989680, 32));
    rw.eraseOp(op);
    return success();
  }
};

/// Ping-pong turns among the consumer warpgroups (w = tid / 128 of C): named barrier 2 + w of
/// two warpgroups' threads; `wait` is bar.sync on one's own, `pass` bar.arrive on the next
/// one's, `start` the last warpgroup's bar.arrive on the first's.
struct TurnLowering : OpConversionPattern<TurnOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(TurnOp op, OpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op);
    int64_t consumers = op->getParentOfType<WarpSpecializeOp>().getConsumers();
    Value group = arith::DivUIOp::create(rw, t.loc, t.tid, t.idx(128));
    Value pair = arith::ConstantIntOp::create(rw, t.loc, 256, 32);
    auto barrierOf = [&](Value g) { return i32Of(t, t.add(g, 2)); };
    switch (op.getAction()) {
    case TurnAction::start: {
      OpBuilder::InsertionGuard guard(rw);
      auto last = scf::IfOp::create(
          rw, t.loc,
          arith::CmpIOp::create(rw, t.loc, arith::CmpIPredicate::eq, group, t.idx(consumers - 1)),
          /*withElseRegion=*/false);
      rw.setInsertionPointToStart(last.thenBlock());
      NVVM::BarrierArriveOp::create(rw, t.loc, barrierOf(t.idx(0)), pair);
      break;
    }
    case TurnAction::wait:
      NVVM::BarrierOp::create(rw, t.loc, Type(), barrierOf(group), pair, {}, Value());
      break;
    case TurnAction::pass: {
      Value next = arith::RemUIOp::create(rw, t.loc, t.add(group, 1), t.idx(consumers));
      NVVM::BarrierArriveOp::create(rw, t.loc, barrierOf(next), pair);
      break;
    }
    }
    rw.eraseOp(op);
    return success();
  }
};

struct CopyKeyTileLowering : OpConversionPattern<CopyKeyTileOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(CopyKeyTileOp op, OpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    if (op.getMap())
      return lowerTensorCopy(op, adaptor, rw);
    ThreadContext t(rw, op.getLoc(), op);
    int64_t rows = op.getTile().getType().getDimSize(0), pageSize = op.getPageSize();
    Value table = op.getBlockTable(), j0 = op.getJ0(), kvLen = op.getKvLen();
    // A tile within one page (page size a multiple of the rows) reads the table once.
    Value tilePage;
    if (table && pageSize % rows == 0)
      tilePage = pageOf(t, table, op.getKv(), op.getB(),
                        t.select(t.lt(j0, kvLen), j0, t.idx(0)), pageSize);
    auto rowOf = [&](Value r) -> WarpKernelBase::Row {
      Value row = t.add(j0, r);
      Value inRange = t.lt(row, kvLen);
      if (!table)
        return {op.getB(), op.getHk(), row, inRange};
      Value slot = arith::RemUIOp::create(rw, t.loc, row, t.idx(pageSize));
      Value page = tilePage ? tilePage
                            : pageOf(t, table, op.getKv(), op.getB(),
                                     t.select(inRange, row, t.idx(0)), pageSize);
      return {page, op.getHk(), slot, inRange};
    };
    MemRefType tileType = op.getTile().getType();
    int64_t cols, perCopy;
    std::tie(cols, perCopy) = copyShape(tileType);
    auto swizzle = [&](Value r, Value col) { return swizzledIndex(t, tileType, r, col); };
    auto load = [&](WarpKernelBase::RowFn rowFn) {
      t.loadTile(op.getKv(), rowFn, rows, cols, adaptor.getTile(), t.tid, t.threads, perCopy,
                 op.getCol0(), isSwizzled(tileType) ? WarpKernelBase::IndexFn(swizzle) : nullptr);
    };
    if (table || !op.getInterior()) {
      load(rowOf);
    } else {
      // A tile inside kv_len (every tile but the last) copies without per-row predicates:
      // no range compare, row clamp or zero-fill size per copy (4 instructions instead of 8
      // in the PTX of a 16-byte copy).
      Value inside = arith::CmpIOp::create(rw, t.loc, arith::CmpIPredicate::ule,
                                           t.add(j0, rows), kvLen);
      auto interior = scf::IfOp::create(rw, t.loc, inside,
                                        /*withElseRegion=*/true);
      OpBuilder::InsertionGuard guard(rw);
      rw.setInsertionPointToStart(interior.thenBlock());
      Value always = arith::ConstantIntOp::create(rw, t.loc, 1, 1);
      load([&](Value r) -> WarpKernelBase::Row {
        return {op.getB(), op.getHk(), t.add(j0, r), always};
      });
      rw.setInsertionPointToStart(interior.elseBlock());
      load(rowOf);
    }
    rw.eraseOp(op);
    return success();
  }
};

/// Signed nibble `high` (0: bits 0-3, 1: bits 4-7) of a byte of packed i4, as f32.
Value nibbleToF32(OpBuilder &b, Location loc, Value byte, int64_t high) {
  auto i8c = [&](int64_t v) { return arith::ConstantIntOp::create(b, loc, v, 8).getResult(); };
  Value top = high ? byte : arith::ShLIOp::create(b, loc, byte, i8c(4)).getResult();
  Value x = arith::ShRSIOp::create(b, loc, top, i8c(4));
  return arith::SIToFPOp::create(b, loc, b.getF32Type(), x);
}

/// 8 values a step: stored value x scale, rounded to the tile's type.
struct DequantizeLowering : OpConversionPattern<DequantizeOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(DequantizeOp op, OpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    MemRefType tile = op.getTile().getType();
    ThreadContext t(rw, op.getLoc(), op, tile.getElementType());
    int64_t rows = tile.getDimSize(0), cols = sharedColumns(tile);
    int64_t packing = op.getPacking(), group = op.getGroup();
    ArrayRef<int64_t> axes = op.getAxes();
    int64_t chunksPerRow = cols / 8;
    Type stored = op.getStage().getType().getElementType();
    bool perChannel = llvm::is_contained(axes, 3) && group < 8;
    t.forEachChunk(rows * chunksPerRow, t.tid, t.threads, [&](Value id) {
      Value r = arith::DivUIOp::create(rw, t.loc, id, t.idx(chunksPerRow));
      Value col = t.mul(arith::RemUIOp::create(rw, t.loc, id, t.idx(chunksPerRow)), 8);
      Value byteCol = packing == 1 ? col : arith::DivUIOp::create(rw, t.loc, col, t.idx(packing));
      Value raw = vector::LoadOp::create(rw, t.loc, VectorType::get({8 / packing}, stored),
                                         op.getStage(), ValueRange{r, byteCol});
      Value key = t.add(op.getJ0(), r);
      Value safeKey = t.select(t.lt(key, op.getKvLen()), key, t.idx(0));
      auto scaleAt = [&](Value channel) {
        SmallVector<Value> at;
        for (int64_t a : axes)
          at.push_back(a == 0   ? op.getB()
                       : a == 1 ? op.getHk()
                       : a == 2 ? safeKey
                       : group > 1 ? arith::DivUIOp::create(rw, t.loc, channel, t.idx(group))
                                         .getResult()
                                   : channel);
        Value sc = memref::LoadOp::create(rw, t.loc, op.getScale(), at);
        return sc.getType().isF32()
                   ? sc
                   : arith::ExtFOp::create(rw, t.loc, rw.getF32Type(), sc).getResult();
      };
      Value chunkScale = perChannel ? Value() : scaleAt(col);
      SmallVector<Value> values;
      for (int64_t e = 0; e < 8; ++e) {
        Value x = packing == 1
                      ? buildDequantToF32(rw, t.loc, vector::ExtractOp::create(rw, t.loc, raw, e))
                      : nibbleToF32(rw, t.loc, vector::ExtractOp::create(rw, t.loc, raw, e / 2),
                                    e % 2);
        values.push_back(t.fmul(x, perChannel ? scaleAt(t.add(col, e)) : chunkScale));
      }
      Value v8 = vector::FromElementsOp::create(
          rw, t.loc, VectorType::get({8}, rw.getF32Type()), values);
      Value packed =
          arith::TruncFOp::create(rw, t.loc, VectorType::get({8}, tile.getElementType()), v8);
      SmallVector<Value> at = isSwizzled(tile) ? swizzledIndex(t, tile, r, col)
                                               : SmallVector<Value>{r, col};
      vector::StoreOp::create(rw, t.loc, packed, adaptor.getTile(), at);
    });
    rw.eraseOp(op);
    return success();
  }
};

/// 8 elements per thread and step, in f32. Zero-filled rows past the end map to phi(0): those
/// keys are masked and those queries are not stored.
struct MapTileLowering : OpConversionPattern<MapTileOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(MapTileOp op, OpAdaptor,
                                ConversionPatternRewriter &rw) const override {
    MemRefType tile = op.getTile().getType();
    ThreadContext t(rw, op.getLoc(), op, tile.getElementType());
    t.mapTile(op.getTile(), op.getFeature(), tile.getDimSize(0),
              tile.getDimSize(1) - kSharedPad, t.tid, t.threads);
    rw.eraseOp(op);
    return success();
  }
};

/// A group of lanes per row (the row's 16-byte chunks rounded up to a power of two, at most
/// 32): each lane sums the squares of its chunks (8 elements, in f32), xor shuffles the
/// group's, its first lane stores the row's.
struct RowSquaresLowering : OpConversionPattern<RowSquaresOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(RowSquaresOp op, OpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    MemRefType tile = op.getTile().getType();
    ThreadContext t(rw, op.getLoc(), op, tile.getElementType());
    int64_t chunks = sharedColumns(tile) / 8, rows = op.getNorms().getType().getDimSize(0);
    int64_t lanes = 1;
    while (lanes < chunks && lanes < 32)
      lanes *= 2;
    int64_t rowsPerPass = std::max<int64_t>(1, t.threads / lanes);
    Value sub = arith::RemUIOp::create(rw, t.loc, t.tid, t.idx(lanes));
    Value rowOf = arith::DivUIOp::create(rw, t.loc, t.tid, t.idx(lanes));
    auto f8 = VectorType::get({8}, rw.getF32Type());
    for (int64_t first = 0; first < rows; first += rowsPerPass) {
      Value r = t.add(rowOf, first);
      Value row = t.minIdx(r, t.idx(rows - 1));  // threads past the rows load a real one
      Value sum = t.f32(0);
      for (int64_t c0 = 0; c0 < chunks; c0 += lanes) {
        Value chunk = t.add(sub, c0);
        Value col = t.mul(t.minIdx(chunk, t.idx(chunks - 1)), 8);
        SmallVector<Value> at = isSwizzled(tile) ? swizzledIndex(t, tile, row, col)
                                                 : SmallVector<Value>{row, col};
        Value raw = vector::LoadOp::create(rw, t.loc, VectorType::get({8}, tile.getElementType()),
                                           adaptor.getTile(), at);
        Value x = arith::ExtFOp::create(rw, t.loc, f8, raw);
        Value part = t.f32(0);
        for (int64_t e = 0; e < 8; ++e) {
          Value xe = vector::ExtractOp::create(rw, t.loc, x, e);
          part = t.fadd(part, t.fmul(xe, xe));
        }
        if (c0 + lanes > chunks)  // the row's last lanes have no chunk here
          part = t.select(t.lt(chunk, t.idx(chunks)), part, t.f32(0));
        sum = t.fadd(sum, part);
      }
      for (int64_t offset = lanes / 2; offset >= 1; offset /= 2)
        sum = t.fadd(sum, t.shflXor(sum, int32_t(offset)));
      Value store = arith::AndIOp::create(
          rw, t.loc, arith::CmpIOp::create(rw, t.loc, arith::CmpIPredicate::eq, sub, t.idx(0)),
          t.lt(r, t.idx(rows)));
      auto ifOp = scf::IfOp::create(rw, t.loc, store, /*withElseRegion=*/false);
      OpBuilder::InsertionGuard guard(rw);
      rw.setInsertionPoint(ifOp.thenBlock()->getTerminator());
      memref::StoreOp::create(rw, t.loc, sum, op.getNorms(), ValueRange{r});
    }
    rw.eraseOp(op);
    return success();
  }
};

/// One thread per row: src[b, h, i0 + r] where i0 + r < q_len, else the fill.
struct CopyRowsLowering : OpConversionPattern<CopyRowsOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(CopyRowsOp op, OpAdaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op);
    t.fillPositions(op.getValues(), op.getI0(), op.getQLen(), op.getFill().convertToDouble(),
                    [&](Value i) {
                      return memref::LoadOp::create(rw, t.loc, op.getSrc(),
                                                    ValueRange{op.getB(), op.getH(), i})
                          .getResult();
                    });
    rw.eraseOp(op);
    return success();
  }
};

} // namespace

void mlir::attn::populateCopyToNVVMPatterns(FragmentTypeConverter &converter,
                                            RewritePatternSet &patterns) {
  patterns.add<AllocSharedLowering, SelectTileLowering, CopyQueryTileLowering, CopyKeyTileLowering,
               InitBarrierLowering, WaitBarrierLowering, ArriveBarrierLowering, TurnLowering, DequantizeLowering, MapTileLowering,
               CopyRowsLowering, RowSquaresLowering>(
      converter, patterns.getContext());
}

/// Where element (r, col) of a swizzled [R, C] 16-bit tile lies in its flat view (col a
/// multiple of 8: the first element of a 16-byte chunk): column block col / 64, row r of the
/// block, chunk (col % 64) / 8 XOR r % 8.
Value mlir::attn::sharedAddress(WarpKernelBase &t, Value flat) {
  return arith::IndexCastOp::create(
      t.b, t.loc, t.b.getI64Type(),
      memref::ExtractAlignedPointerAsIndexOp::create(t.b, t.loc, flat));
}

SmallVector<Value> mlir::attn::swizzledIndex(WarpKernelBase &t, MemRefType tile, Value r,
                                             Value col) {
  int64_t rows = tile.getDimSize(0);
  auto block = arith::DivUIOp::create(t.b, t.loc, col, t.idx(64));
  auto chunk = arith::DivUIOp::create(t.b, t.loc,
                                      arith::RemUIOp::create(t.b, t.loc, col, t.idx(64)),
                                      t.idx(8));
  Value swizzled = arith::XOrIOp::create(t.b, t.loc, chunk,
                                         arith::RemUIOp::create(t.b, t.loc, r, t.idx(8)));
  Value rowStart = t.mul(t.add(t.mul(block, rows), r), 64);
  return {t.add(rowStart, t.mul(swizzled, 8))};
}
