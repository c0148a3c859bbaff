// attn-cuda-lower-tiles: a tiled attn host function -> a tensor-core kernel (FlashAttention-2
// schedule on mma.sync): one block per query tile, 16 query rows per warp, K/V tiles streamed
// through shared memory, online softmax in registers. See Passes.td for the full contract.
#include "codegen/cuda/Passes.h"
#include "codegen/cuda/WarpKernel.h"
#include "dialect/transforms/Patterns.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <cmath>

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNCUDALOWERTILES
#include "codegen/cuda/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {
constexpr int64_t kPad = kSmemPad;
} // namespace

int64_t mlir::attn::cudaSharedMemoryBytes(int64_t blockQ, int64_t blockK, int64_t headDim,
                                          int64_t valueDim, int64_t elementBytes,
                                          int64_t storedBitsK, int64_t storedBitsV,
                                          bool stepDecay) {
  // Quantised K/V land (cp.async, as stored) in staging tiles before dequantisation.
  int64_t staging = (blockK * headDim * storedBitsK + blockK * valueDim * storedBitsV) / 8;
  int64_t bytes =
      elementBytes * ((blockQ + blockK) * (headDim + kPad) + blockK * (valueDim + kPad)) + staging;
  // A per-step decay: f32 cumulative log decays of the rows and of a key tile, and a base.
  if (stepDecay)
    bytes = (bytes + 15) / 16 * 16 + 4 * (blockQ + blockK + 1);
  return bytes;
}

namespace {

constexpr double kLog2e = 1.4426950408889634;
constexpr double kLn2 = 0.6931471805599453;

/// The pieces of a tiled host function that the kernel is built from.
struct TiledForm {
  func::FuncOp func;
  TileScoresOp scores;
  TileMatmulAccOp matmul;
  TileStoreOp store;
  TileOnlineUpdateOp update;  // null unless softmax
  scf::ForOp splitLoop;       // attn-split-kv's loop over splits, if any
  CombineOp combine;          // its merge, if any
  int64_t group = 1, pack = 1, blockQ = 0, blockK = 0, headDim = 0, valueDim = 0;
  int64_t packedK = 1, packedV = 1;  // values per stored byte of K / V: 2 for i4
};

template <typename OpTy> OpTy theOnly(func::FuncOp f, bool required, bool &ok) {
  OpTy found;
  int count = 0;
  f.walk([&](OpTy op) {
    found = op;
    ++count;
  });
  if (count > 1 || (required && count == 0)) {
    f.emitError() << "attn-cuda-lower-tiles expects one '" << OpTy::getOperationName()
                  << "' per function (the form of attn-tile + attn-online-softmax), found "
                  << count;
    ok = false;
  }
  return found;
}

FailureOr<TiledForm> analyze(func::FuncOp f) {
  TiledForm t;
  t.func = f;
  bool ok = true;
  if (f->walk([](TileExpSumOp) {
        return WalkResult::interrupt();
      }).wasInterrupted())
    return f.emitError("the CUDA back end needs the online softmax (run attn-online-softmax)");
  t.scores = theOnly<TileScoresOp>(f, true, ok);
  t.matmul = theOnly<TileMatmulAccOp>(f, true, ok);
  t.store = theOnly<TileStoreOp>(f, true, ok);
  t.update = theOnly<TileOnlineUpdateOp>(f, false, ok);
  if (!ok)
    return failure();
  auto keyLoop = dyn_cast<scf::ForOp>(t.scores->getParentOp());
  if (!keyLoop || keyLoop.getInductionVar() != t.scores.getJ0())
    return f.emitError("attn.tile_scores must sit in the key loop over j0");
  bool softmax = t.store.getNorm() == NormKind::softmax;
  if (softmax != bool(t.update))
    return f.emitError("softmax tiles must be fused by attn-online-softmax");
  // kv head = h / group; canonicalisation folds h / 1 to h. Packed tiles hold a whole group.
  auto div = t.scores.getHk().getDefiningOp<arith::DivUIOp>();
  IntegerAttr groupAttr;
  t.pack = t.scores.getPack();
  if (int64_t(t.store.getPack()) != t.pack)
    return f.emitError("attn.tile_scores and attn.tile_store disagree on the GQA packing");
  if (t.pack > 1)
    t.group = t.pack;
  else if (t.scores.getHk() == t.scores.getH())
    t.group = 1;
  else if (div && div.getLhs() == t.scores.getH() &&
           matchPattern(div.getRhs(), m_Constant(&groupAttr)))
    t.group = groupAttr.getInt();
  else
    return f.emitError("cannot find the GQA group (kv head = h / group) of the tiled form");

  if (!t.scores.getDecay().empty() && t.pack > 1)
    return f.emitError("a per-step decay with GQA packing is not supported by the CUDA back "
                       "end yet; compile with --no-pack-gqa");
  if (t.store.getSplit()) {
    t.splitLoop = dyn_cast_or_null<scf::ForOp>(
        cast<BlockArgument>(t.store.getSplit()).getOwner()->getParentOp());
    t.combine = theOnly<CombineOp>(f, true, ok);
    if (!ok || !t.splitLoop || !t.splitLoop->hasAttr("attn.split_kv"))
      return f.emitError("the split index of attn.tile_store must be attn-split-kv's loop");
  }

  // Quantised K/V are dequantised 8 channels at a time: a channel group is 1 or a multiple of 8.
  for (auto [axes, group] : {std::pair{t.scores.getKScaleAxes(), t.scores.getKScaleGroup()},
                             std::pair{t.matmul.getVScaleAxes(), t.matmul.getVScaleGroup()}})
    if (llvm::is_contained(axes, 3) && group > 1 && group % 8)
      return f.emitError() << "the CUDA back end needs channel groups of scales that are a "
                              "multiple of 8, got "
                           << group;

  auto s = t.scores.getS().getType();
  auto q = t.scores.getQ().getType(), v = t.matmul.getV().getType();
  t.blockQ = s.getDimSize(0), t.blockK = s.getDimSize(1);
  t.headDim = q.getDimSize(3), t.valueDim = valuesAlong(v, 3);
  t.packedK = packingOf(t.scores.getK().getType());
  t.packedV = packingOf(v);
  Type elt = q.getElementType();
  if (!elt.isF16() && !elt.isBF16())
    return f.emitError() << "the CUDA back end takes f16 or bf16 q, k, v (got " << elt
                         << "); compile with --dtype=bf16";
  if (ShapedType::isDynamic(t.headDim) || ShapedType::isDynamic(t.valueDim))
    return f.emitError("the CUDA back end needs static head and value dims: declare them "
                       "(d = 128) or pass --set d=128");
  if (t.headDim % 16 || t.valueDim % 16 || t.headDim > 256 || t.valueDim > 256)
    return f.emitError() << "head and value dims must be multiples of 16 up to 256, got "
                         << t.headDim << " and " << t.valueDim;
  int64_t warps = t.blockQ / 16;
  if (t.blockQ % 16 || !llvm::is_contained({1, 2, 4, 8}, warps))
    return f.emitError() << "block-q must be 16, 32, 64 or 128 on CUDA, got " << t.blockQ;
  if (t.blockK % 16 || t.blockK > 128)
    return f.emitError() << "block-k must be a multiple of 16 up to 128 on CUDA, got "
                         << t.blockK;
  return t;
}

/// Builds the body of one kernel. Per thread: lane, its quad row g = lane / 4 and column pair
/// c = lane % 4 in the mma fragments; each warp owns 16 query rows.
class KernelBuilder : WarpKernelBase {
public:
  KernelBuilder(OpBuilder &b, Location loc, TiledForm t, gpu::GPUFuncOp kernel)
      : WarpKernelBase(b, loc, t.func), t(t), kernel(kernel) {}

  LogicalResult build();

private:
  TiledForm t;
  gpu::GPUFuncOp kernel;
  Value q, k, v, out, lse, table;  // table: the block table of paged K/V, else null
  Value kvHead, i0, kvLen;
  Value rowsLen;               // query rows of a (packed) tile space: q_len * pack
  Value split, partOut, partLse;  // split-KV: this block's split and the partial buffers
  Value rowHead[2], rowQuery[2], rowQuerySafe[2];  // per thread row (g, g + 8) of the warp
  Value qSmem, kSmem, vSmem;
  // A per-step decay: cumQ[r] = log gamma(0..i0 + r), cumK[c] = log gamma(0..j0 + c) (f32, shared),
  // keyBase[0] = the sum over the keys before the current tile; tileJ0 = the current tile.
  Value cumQ, cumK, keyBase, tileJ0;
  Value kStage, vStage;  // staging tiles of quantised K / V (stored bytes), else null

  /// Page of the pool holding key j (clamped into the table and the pool, so a bad entry
  /// cannot read outside the buffers), for paged K/V.
  Value pageOf(Value j) {
    Value p = idx(t.scores.getPageSize());
    Value entry = arith::DivUIOp::create(b, loc, j, p);
    entry = minIdx(entry, add(memref::DimOp::create(b, loc, table, 1), idx(-1)));
    Value page = memref::LoadOp::create(b, loc, table, ValueRange{batch, entry});
    page = arith::IndexCastOp::create(b, loc, b.getIndexType(), page);
    page = arith::MaxSIOp::create(b, loc, page, idx(0));
    return minIdx(page, add(memref::DimOp::create(b, loc, k, 0), idx(-1)));
  }
  /// Rows of a K or V tile: key j0 + r of the kv head, in range below kv_len. In a page pool
  /// the tile lies within one page when the page size is a multiple of block-k, and the table
  /// is read once per tile (`tilePage`); otherwise once per row.
  Row keyRow(Value j0, Value tilePage, Value r) {
    Value row = add(j0, r);
    Value inRange = lt(row, kvLen);
    if (!table)
      return {batch, kvHead, row, inRange};
    Value p = idx(t.scores.getPageSize());
    Value slot = arith::RemUIOp::create(b, loc, row, p);
    Value page = tilePage ? tilePage : pageOf(select(inRange, row, idx(0)));
    return {page, kvHead, slot, inRange};
  }
  /// (head, query) of packed row p: (head + p % pack, p / pack); (head, p) unpacked.
  std::pair<Value, Value> packedRow(Value p) {
    if (t.pack == 1)
      return {head, p};
    return {add(head, arith::RemUIOp::create(b, loc, p, idx(t.pack))),
            arith::DivUIOp::create(b, loc, p, idx(t.pack))};
  }
  /// Rows of the Q tile: packed row p = i0 + r is query p / pack of head head + p % pack.
  Row queryRow(Value r) {
    auto [h, i] = packedRow(add(i0, r));
    return {batch, h, i, lt(i, qLen)};
  }
  /// The scale of quantised K (isKey) or V, its axes over the key coordinates and its group.
  struct Dequant {
    Value scale;
    ArrayRef<int64_t> axes;
    int64_t group = 1;
  };
  Dequant dequantOf(bool isKey) {
    if (isKey)
      return {t.scores.getKScale() ? outside.lookup(t.scores.getKScale()) : Value(),
              t.scores.getKScaleAxes(), int64_t(t.scores.getKScaleGroup())};
    return {t.matmul.getVScale() ? outside.lookup(t.matmul.getVScale()) : Value(),
            t.matmul.getVScaleAxes(), int64_t(t.matmul.getVScaleGroup())};
  }
  void loadKeys(Value global, bool isKey, Value j0, int64_t cols, Value smem, Value tid,
                int64_t threads) {
    Value tilePage;
    if (table && t.scores.getPageSize() % t.blockK == 0)
      tilePage = pageOf(select(lt(j0, kvLen), j0, idx(0)));
    auto rowOf = [&](Value r) { return keyRow(j0, tilePage, r); };
    if (dequantOf(isKey).scale)
      return loadStage(global, rowOf, cols / (isKey ? t.packedK : t.packedV),
                       isKey ? kStage : vStage, tid, threads);
    loadTile(global, rowOf, t.blockK, cols, smem, tid, threads);
  }
  /// Quantised K/V (i8, e4m3fn, packed i4): the stored bytes (`bytes` per row) stream into a
  /// staging tile with cp.async (16 bytes per copy, 8 for rows of 8-byte multiples; zero-filled
  /// past the end), overlapped like the f16/bf16 tiles; once they have landed, convertStage
  /// dequantises them into the f16/bf16 tile the fragments read.
  void loadStage(Value global, RowFn rowOf, int64_t bytes, Value stage, Value tid,
                 int64_t threads) {
    loadTile(global, rowOf, t.blockK, bytes, stage, tid, threads, bytes % 16 ? 8 : 16);
  }
  /// stage (stored values of keys [j0, j0 + BK)) -> tile: value x scale, rounded to f16/bf16,
  /// 8 values per step; then a barrier. Rows past the end were zero-filled: they stay 0.
  void convertStage(Value stage, Value tile, Value j0, const Dequant &dq, int64_t cols,
                    int64_t packing, Value tid, int64_t threads) {
    int64_t chunksPerRow = cols / 8, chunks = t.blockK * chunksPerRow;
    Type stored = cast<MemRefType>(stage.getType()).getElementType();
    bool perChannel = llvm::is_contained(dq.axes, 3) && dq.group < 8;
    forEachChunk(chunks, tid, threads, [&](Value id) {
      Value r = arith::DivUIOp::create(b, loc, id, idx(chunksPerRow));
      Value col = mul(arith::RemUIOp::create(b, loc, id, idx(chunksPerRow)), 8);
      Value byteCol = packing == 1 ? col : arith::DivUIOp::create(b, loc, col, idx(packing));
      Value raw = vector::LoadOp::create(b, loc, VectorType::get({8 / packing}, stored), stage,
                                         ValueRange{r, byteCol});
      Value key = add(j0, r);  // the logical key, for the scale
      Value safeKey = select(lt(key, kvLen), key, idx(0));
      auto scaleAt = [&](Value channel) {
        SmallVector<Value> at;
        for (int64_t a : dq.axes)
          at.push_back(a == 0   ? batch
                       : a == 1 ? kvHead
                       : a == 2 ? safeKey
                       : dq.group > 1 ? arith::DivUIOp::create(b, loc, channel, idx(dq.group))
                                            .getResult()
                                      : channel);
        Value sc = memref::LoadOp::create(b, loc, dq.scale, at);
        return sc.getType().isF32() ? sc
                                    : arith::ExtFOp::create(b, loc, b.getF32Type(), sc)
                                          .getResult();
      };
      Value chunkScale = perChannel ? Value() : scaleAt(col);
      SmallVector<Value> values;
      for (int64_t e = 0; e < 8; ++e) {
        Value x = packing == 1
                      ? buildDequantToF32(b, loc, vector::ExtractOp::create(b, loc, raw, e))
                      : nibbleToF32(vector::ExtractOp::create(b, loc, raw, e / 2), e % 2);
        values.push_back(fmul(x, perChannel ? scaleAt(add(col, e)) : chunkScale));
      }
      Value v8 = vector::FromElementsOp::create(b, loc, VectorType::get({8}, b.getF32Type()),
                                                values);
      Value packed = arith::TruncFOp::create(b, loc, VectorType::get({8}, elt), v8);
      vector::StoreOp::create(b, loc, packed, tile, ValueRange{r, col});
    });
    gpu::BarrierOp::create(b, loc);
  }
  /// Signed nibble `high` (0: bits 0-3, 1: bits 4-7) of a byte of packed i4, as f32: shifted
  /// to the top of the byte, then arithmetically back, which sign-extends it.
  Value nibbleToF32(Value byte, int64_t high) {
    auto i8c = [&](int64_t v) { return arith::ConstantIntOp::create(b, loc, v, 8).getResult(); };
    Value top = high ? byte : arith::ShLIOp::create(b, loc, byte, i8c(4)).getResult();
    Value x = arith::ShRSIOp::create(b, loc, top, i8c(4));
    return arith::SIToFPOp::create(b, loc, b.getF32Type(), x);
  }
  /// After K (V) of key tile j0 has landed: dequantise its staging tile, if it is quantised.
  void landed(bool isKey, Value j0, Value tid, int64_t threads) {
    Dequant dq = dequantOf(isKey);
    if (dq.scale)
      convertStage(isKey ? kStage : vStage, isKey ? kSmem : vSmem, j0, dq,
                   isKey ? t.headDim : t.valueDim, isKey ? t.packedK : t.packedV, tid, threads);
    if (isKey && !t.scores.getFeatureK().empty())
      mapTile(kSmem, t.scores.getFeatureK(), t.blockK, t.headDim, tid, threads);
  }
  /// sum_{from <= p < to} log gamma(p), by warp 0 (strided over its lanes, then a shuffle
  /// reduction); every lane of warp 0 gets it, other warps get 0 (use it through thread 0).
  Value logDecaySum(Value from, Value to) {
    auto inWarp0 = scf::IfOp::create(b, loc, TypeRange{b.getF32Type()},
                                     arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, warp,
                                                           idx(0)),
                                     /*withElseRegion=*/true);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(inWarp0.thenBlock());
      auto loop = scf::ForOp::create(b, loc, add(from, lane), to, idx(32), ValueRange{f32(0)});
      {
        OpBuilder::InsertionGuard inner(b);
        b.setInsertionPointToStart(loop.getBody());
        Value sum = fadd(loop.getRegionIterArgs()[0], logDecay(loop.getInductionVar()));
        scf::YieldOp::create(b, loc, sum);
      }
      Value sum = loop.getResult(0);
      for (int32_t offset : {16, 8, 4, 2, 1})
        sum = fadd(sum, shflXor(sum, offset));
      scf::YieldOp::create(b, loc, sum);
      b.setInsertionPointToStart(inWarp0.elseBlock());
      scf::YieldOp::create(b, loc, ValueRange{f32(0)});
    }
    return inWarp0.getResult(0);
  }
  void ifThread0(Value tid, function_ref<void()> body) {
    auto ifOp = scf::IfOp::create(b, loc,
                                  arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, tid,
                                                        idx(0)),
                                  /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
    body();
  }
  /// cum[c] = base + log gamma(p0) + ... + log gamma(p0 + c) for c < n: each thread < n writes
  /// one log, then thread 0 sums them in order (n is a tile: 16 to 128 adds). The base is
  /// `base` (valid in thread 0) or, with `carry`, carry[0], which then becomes the tile's total.
  void cumulative(Value cum, Value p0, int64_t n, Value base, Value tid, Value carry) {
    gpu::BarrierOp::create(b, loc);  // earlier readers of cum are done
    auto ifOp = scf::IfOp::create(b, loc, lt(tid, idx(n)), /*withElseRegion=*/false);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
      memref::StoreOp::create(b, loc, logDecay(add(p0, tid)), cum, ValueRange{tid});
    }
    gpu::BarrierOp::create(b, loc);
    ifThread0(tid, [&] {
      Value start = carry ? Value(memref::LoadOp::create(b, loc, carry, ValueRange{idx(0)}))
                          : base;
      auto loop = scf::ForOp::create(b, loc, idx(0), idx(n), idx(1), ValueRange{start});
      {
        OpBuilder::InsertionGuard inner(b);
        b.setInsertionPointToStart(loop.getBody());
        Value c = loop.getInductionVar();
        Value sum = fadd(loop.getRegionIterArgs()[0],
                         memref::LoadOp::create(b, loc, cum, ValueRange{c}));
        memref::StoreOp::create(b, loc, sum, cum, ValueRange{c});
        scf::YieldOp::create(b, loc, sum);
      }
      if (carry)
        memref::StoreOp::create(b, loc, loop.getResult(0), carry, ValueRange{idx(0)});
    });
    gpu::BarrierOp::create(b, loc);
  }

  /// Applies mask and score to one accumulator element (thread row r in {0, 1}: row g + 8 r of
  /// the warp's 16, key j); masked keys and keys past the end get the fill value. In an
  /// interior tile (every row and key in range) the range checks and clamps are left out.
  Value scoreElement(Value dot, int r, Value j, bool interior, bool maskHolds) {
    // Rows past the end are computed (as the last row: their param reads stay in bounds) and
    // never stored; the clamp is per thread row, outside the key loop.
    Value fill = f32(t.scores.getFill().convertToDouble());
    Value allowed, iSafe = rowQuerySafe[r], jSafe = j;
    if (!interior) {
      allowed = lt(j, kvLen);
      jSafe = select(allowed, j, idx(0));
    }
    if (!t.scores.getMask().empty() && !maskHolds) {
      Value mask = inlineRegion(t.scores.getMask(), {batch, rowHead[r], iSafe, jSafe});
      allowed = allowed ? arith::AndIOp::create(b, loc, allowed, mask).getResult() : mask;
    }
    Value s = inlineRegion(t.scores.getScore(), {batch, rowHead[r], iSafe, jSafe, dot});
    if (cumQ) {  // a per-step decay: exp(cum(i) - cum(j)) = gamma(j + 1) ... gamma(i)
      Value row = add(add(mul(warp, 16), g), 8 * r);
      Value col = arith::SubIOp::create(b, loc, j, tileJ0);
      Value gi = memref::LoadOp::create(b, loc, cumQ, ValueRange{row});
      Value gj = memref::LoadOp::create(b, loc, cumK, ValueRange{col});
      s = fmul(s, math::ExpOp::create(b, loc, fsub(gi, gj)));
    }
    return allowed ? select(allowed, s, fill) : s;
  }

  /// For a mask that is exactly a conjunction of key bounds (attn-mask-bounds' analysis), whether
  /// every row of this block's query tile allows every key in [j0, j0 + BK); null otherwise.
  Value tileFullyAllowed(Value j0) {
    bool exact = false;
    if (t.scores.getMask().empty())
      return {};
    SmallVector<KeyBound> bounds = analyzeMaskBounds(t.scores.getMask(), exact);
    if (!exact || bounds.empty())
      return {};
    Value all;
    Value iFirst = i0, iLast = add(i0, t.blockQ - 1), jLast = add(j0, t.blockK - 1);
    if (t.pack > 1) {
      iFirst = arith::DivUIOp::create(b, loc, iFirst, idx(t.pack));
      iLast = arith::DivUIOp::create(b, loc, iLast, idx(t.pack));
    }
    iLast = minIdx(iLast, add(qLen, idx(-1)));  // rows past the end are never stored
    for (const KeyBound &bd : bounds) {
      // Lower bounds must hold for the first key against the row that raises them most; upper
      // bounds for the last key against the row that lowers them most.
      Value row = (bd.a >= 0) == bd.lower ? iLast : iFirst;
      Value edge = keyBoundEdge(b, loc, bd, row, t.scores.getMask(), batch, outside);
      Value holds = bd.lower
                        ? arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, j0, edge)
                        : arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sle, jLast, edge);
      all = all ? arith::AndIOp::create(b, loc, all, holds).getResult() : holds;
    }
    return all;
  }

  /// Mask and score for every element of the S tile: element e of n tile nt is row g + 8 (e / 2),
  /// key 8 nt + 2c + e % 2. Interior tiles (and, for an affine mask, tiles it fully allows) take
  /// a branch without range checks (and without the mask).
  void scoreTile(SmallVectorImpl<SmallVector<Value, 4>> &s, Value j0) {
    // Interior: every key of the tile is in range (rows need no check, see scoreElement).
    Value interior =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ule, add(j0, t.blockK), kvLen);
    Value allowed = tileFullyAllowed(j0);
    if (allowed)
      interior = arith::AndIOp::create(b, loc, interior, allowed);
    SmallVector<Type> types(s.size() * 4, b.getF32Type());
    auto branch = scf::IfOp::create(b, loc, types, interior, /*withElseRegion=*/true);
    for (bool fast : {true, false}) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(fast ? branch.thenBlock() : branch.elseBlock());
      SmallVector<Value> scores;
      for (size_t n = 0; n < s.size(); ++n)
        for (int64_t e = 0; e < 4; ++e) {
          Value j = add(add(j0, mul(c, 2)), int64_t(n * 8 + e % 2));
          scores.push_back(scoreElement(s[n][e], e / 2, j, fast, fast && allowed));
        }
      scf::YieldOp::create(b, loc, scores);
    }
    for (size_t n = 0; n < s.size(); ++n)
      for (int64_t e = 0; e < 4; ++e)
        s[n][e] = branch.getResult(n * 4 + e);
  }

  /// Online softmax per thread row r (rows g, g + 8): new max over the quad, rescale of l and
  /// acc, exponentiation. With a unified max M, a row without mass (l = 0 over the quad) starts
  /// at max(M, its max), or at its max when that is more than kUnifiedMaxRange below M.
  void onlineSoftmax(SmallVectorImpl<SmallVector<Value, 4>> &s, SmallVectorImpl<Value> &m,
                     SmallVectorImpl<Value> &l, SmallVectorImpl<SmallVector<Value, 4>> &acc,
                     std::optional<float> unified) {
    Value log2e = f32(kLog2e), negInf = f32(-INFINITY), zero = f32(0);
    int64_t nTiles = int64_t(s.size()), dTiles = int64_t(acc.size());
    for (int r = 0; r < 2; ++r) {
      Value rowMax = negInf;
      for (int64_t n = 0; n < nTiles; ++n)
        rowMax = fmax(rowMax, fmax(s[n][2 * r], s[n][2 * r + 1]));
      rowMax = quadReduce(rowMax, true);
      Value mx = fmax(m[r], rowMax), fresh;
      if (unified) {
        fresh = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ,
                                      quadReduce(l[r], false), zero);
        Value low = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OLT, rowMax,
                                          f32(*unified - kUnifiedMaxRange));
        mx = select(fresh, select(low, rowMax, fmax(f32(*unified), rowMax)), mx);
      }
      Value noKey = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, mx, negInf);
      Value base = fmul(select(noKey, zero, mx), log2e);
      Value alpha = ex2(fsub(fmul(m[r], log2e), base));
      if (fresh)
        alpha = select(fresh, zero, alpha);
      Value rowSum = zero;
      for (int64_t n = 0; n < nTiles; ++n)
        for (int e = 2 * r; e < 2 * r + 2; ++e) {
          s[n][e] = ex2(fsub(fmul(s[n][e], log2e), base));
          rowSum = fadd(rowSum, s[n][e]);
        }
      l[r] = fadd(fmul(l[r], alpha), rowSum);
      m[r] = mx;
      for (int64_t n = 0; n < dTiles; ++n)
        for (int e = 2 * r; e < 2 * r + 2; ++e)
          acc[n][e] = fmul(acc[n][e], alpha);
    }
  }

  /// FlashDecoding++'s unified max: when every score of the warp's tile lies in [m - range, m]
  /// for its row's current max m (finite), as once rows start at M and scores stay below it,
  /// exp(s - m) needs no max reduction and acc no rescaling (alpha = 1): one warp vote decides.
  /// Otherwise the safe update (onlineSoftmax with M) runs. Both give softmax's result.
  void unifiedSoftmax(SmallVectorImpl<SmallVector<Value, 4>> &s, SmallVectorImpl<Value> &m,
                      SmallVectorImpl<Value> &l, SmallVectorImpl<SmallVector<Value, 4>> &acc) {
    float unified = t.update.getUnifiedMax()->convertToFloat();
    Value inRange = arith::ConstantIntOp::create(b, loc, 1, 1);
    for (int r = 0; r < 2; ++r) {
      Value hi = f32(-INFINITY), lo = f32(INFINITY);
      for (auto &tile : s)
        for (int e = 2 * r; e < 2 * r + 2; ++e) {
          hi = fmax(hi, tile[e]);
          lo = arith::MinimumFOp::create(b, loc, lo, tile[e]);
        }
      auto cmp = [&](arith::CmpFPredicate p, Value x, Value y) {
        return arith::CmpFOp::create(b, loc, p, x, y).getResult();
      };
      Value ok = arith::AndIOp::create(
          b, loc, cmp(arith::CmpFPredicate::OLE, hi, m[r]),
          arith::AndIOp::create(b, loc, cmp(arith::CmpFPredicate::OGE, lo,
                                            fsub(m[r], f32(kUnifiedMaxRange))),
                                cmp(arith::CmpFPredicate::ONE, m[r], f32(-INFINITY))));
      inRange = arith::AndIOp::create(b, loc, inRange, ok);
    }
    Value all = NVVM::VoteSyncOp::create(b, loc, b.getI1Type(),
                                         arith::ConstantIntOp::create(b, loc, -1, 32), inRange,
                                         NVVM::VoteSyncKind::all);
    SmallVector<Value> state;  // m[2], l[2], s, acc
    auto pack = [&]() {
      SmallVector<Value> v = {m[0], m[1], l[0], l[1]};
      for (auto &tile : s)
        v.append(tile.begin(), tile.end());
      for (auto &tile : acc)
        v.append(tile.begin(), tile.end());
      return v;
    };
    SmallVector<Type> types(pack().size(), b.getF32Type());
    auto branch = scf::IfOp::create(b, loc, types, all, /*withElseRegion=*/true);
    SmallVector<SmallVector<Value, 4>> s0(s.begin(), s.end()), acc0(acc.begin(), acc.end());
    SmallVector<Value> m0(m.begin(), m.end()), l0(l.begin(), l.end());
    for (bool fast : {true, false}) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(fast ? branch.thenBlock() : branch.elseBlock());
      s.assign(s0.begin(), s0.end());
      acc.assign(acc0.begin(), acc0.end());
      m.assign(m0.begin(), m0.end());
      l.assign(l0.begin(), l0.end());
      if (fast) {
        Value log2e = f32(kLog2e);
        for (int r = 0; r < 2; ++r) {
          Value base = fmul(m[r], log2e), rowSum = f32(0);
          for (auto &tile : s)
            for (int e = 2 * r; e < 2 * r + 2; ++e) {
              tile[e] = ex2(fsub(fmul(tile[e], log2e), base));
              rowSum = fadd(rowSum, tile[e]);
            }
          l[r] = fadd(l[r], rowSum);
        }
      } else {
        onlineSoftmax(s, m, l, acc, unified);
      }
      scf::YieldOp::create(b, loc, pack());
    }
    auto results = branch.getResults();
    size_t k = 0;
    for (int r = 0; r < 2; ++r)
      m[r] = results[k++];
    for (int r = 0; r < 2; ++r)
      l[r] = results[k++];
    for (auto &tile : s)
      for (Value &x : tile)
        x = results[k++];
    for (auto &tile : acc)
      for (Value &x : tile)
        x = results[k++];
  }

  void emitEpilogue(ArrayRef<Value> m, ArrayRef<Value> l, ArrayRef<SmallVector<Value, 4>> acc);
  void storeRow(int r, Value scale, Value lseValue, ArrayRef<SmallVector<Value, 4>> acc,
                bool toPartial);
};

LogicalResult KernelBuilder::build() {
  auto args = kernel.getArguments();
  for (auto [hostArg, kernelArg] : llvm::zip(t.func.getArguments(), args))
    outside.map(hostArg, kernelArg);
  q = outside.lookup(t.scores.getQ());
  k = outside.lookup(t.scores.getK());
  v = outside.lookup(t.matmul.getV());
  out = outside.lookup(t.store.getOut());
  lse = t.store.getLse() ? outside.lookup(t.store.getLse()) : Value();
  elt = cast<MemRefType>(q.getType()).getElementType();
  written = {t.store.getOut()};
  if (t.store.getLse())
    written.push_back(t.store.getLse());
  decay = &t.scores.getDecay();
  if (failed(mapCapturedValues(t.scores.getScore())) ||
      failed(mapCapturedValues(t.scores.getMask())) ||
      failed(mapCapturedValues(t.scores.getDecay())) ||
      failed(mapCapturedValues(t.scores.getFeatureQ())) ||
      failed(mapCapturedValues(t.scores.getFeatureK())))
    return failure();

  const int64_t warps = t.blockQ / 16, threads = 32 * warps;
  const int64_t nTiles = t.blockK / 8, dTiles = t.valueDim / 8;
  const bool softmax = bool(t.update);
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  lane = arith::RemUIOp::create(b, loc, tid, idx(32));
  warp = arith::DivUIOp::create(b, loc, tid, idx(32));
  g = arith::DivUIOp::create(b, loc, lane, idx(4));
  c = arith::RemUIOp::create(b, loc, lane, idx(4));
  qLen = memref::DimOp::create(b, loc, q, 2);
  table = t.scores.getBlockTable() ? outside.lookup(t.scores.getBlockTable()) : Value();
  kvLen = buildKVLength(b, loc, k, table, t.scores.getPageSize());
  rowsLen = t.pack > 1 ? mul(qLen, t.pack) : qLen;
  // Grid: x = split * query tiles + query tile, y = head (kv head when packed), z = batch.
  Value blockX = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  if (t.splitLoop) {
    Value tiles = arith::CeilDivUIOp::create(b, loc, rowsLen, idx(t.blockQ));
    split = arith::DivUIOp::create(b, loc, blockX, tiles);
    blockX = arith::RemUIOp::create(b, loc, blockX, tiles);
    partOut = outside.lookup(t.store.getPartOut());
    partLse = outside.lookup(t.store.getPartLse());
    outside.map(t.splitLoop.getInductionVar(), split);
  }
  i0 = mul(blockX, t.blockQ);
  batch = gpu::BlockIdOp::create(b, loc, gpu::Dimension::z);
  if (t.pack > 1) {
    kvHead = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
    head = mul(kvHead, t.pack);  // the group's first head
  } else {
    head = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
    kvHead = arith::DivUIOp::create(b, loc, head, idx(t.group));
  }

  Value smem = dynamicSharedMemory();
  int64_t eb = elt.getIntOrFloatBitWidth() / 8;
  qSmem = sharedView(smem, 0, t.blockQ, t.headDim);
  kSmem = sharedView(smem, eb * t.blockQ * (t.headDim + kPad), t.blockK, t.headDim);
  vSmem = sharedView(smem, eb * (t.blockQ + t.blockK) * (t.headDim + kPad), t.blockK,
                     t.valueDim);
  int64_t stageAt = eb * ((t.blockQ + t.blockK) * (t.headDim + kPad) +
                          t.blockK * (t.valueDim + kPad));
  auto stageView = [&](Value global, int64_t cols) {
    auto type = MemRefType::get({t.blockK, cols},
                                cast<MemRefType>(global.getType()).getElementType(),
                                MemRefLayoutAttrInterface(),
                                gpu::AddressSpaceAttr::get(b.getContext(),
                                                           gpu::AddressSpace::Workgroup));
    Value view = memref::ViewOp::create(b, loc, type, smem, idx(stageAt), ValueRange{});
    stageAt += t.blockK * cols;
    return view;
  };
  if (dequantOf(true).scale)
    kStage = stageView(k, t.headDim / t.packedK);
  if (dequantOf(false).scale)
    vStage = stageView(v, t.valueDim / t.packedV);
  if (!t.scores.getDecay().empty()) {  // after the tiles, 16-byte aligned
    stageAt = (stageAt + 15) / 16 * 16;
    auto f32View = [&](int64_t n) {
      auto type = MemRefType::get({n}, b.getF32Type(), MemRefLayoutAttrInterface(),
                                  gpu::AddressSpaceAttr::get(b.getContext(),
                                                             gpu::AddressSpace::Workgroup));
      Value view = memref::ViewOp::create(b, loc, type, smem, idx(stageAt), ValueRange{});
      stageAt += 4 * n;
      return view;
    };
    cumQ = f32View(t.blockQ);
    cumK = f32View(t.blockK);
    keyBase = f32View(1);
  }

  // The key loop keeps the tiled level's bounds (attn-mask-bounds may have narrowed them): the
  // host's tile indices are this block's.
  auto hostLoop = cast<scf::ForOp>(t.scores->getParentOp());
  outside.map(t.scores.getB(), batch);
  outside.map(t.scores.getH(), head);
  outside.map(t.scores.getHk(), kvHead);
  outside.map(t.scores.getI0(), i0);
  if (failed(materialize(hostLoop.getLowerBound())) ||
      failed(materialize(hostLoop.getUpperBound())))
    return failure();
  Value keysFrom = outside.lookup(hostLoop.getLowerBound());
  Value keysTo = outside.lookup(hostLoop.getUpperBound());

  // Prologue: Q tile and the first K tile in flight; Q -> A fragments, kept in registers for the
  // whole key loop.
  loadTile(q, [&](Value r) { return queryRow(r); }, t.blockQ, t.headDim, qSmem, tid, threads);
  commit();
  loadKeys(k, true, keysFrom, t.headDim, kSmem, tid, threads);
  waitGroups(commit(), 1);
  Value m8 = arith::DivUIOp::create(b, loc, lane, idx(8));        // which 8x8 matrix
  Value r8 = arith::RemUIOp::create(b, loc, lane, idx(8));        // its row
  Value mLow = arith::RemUIOp::create(b, loc, m8, idx(2));       // m % 2
  Value mHigh = arith::DivUIOp::create(b, loc, m8, idx(2));      // m / 2
  Value rowBase = mul(warp, 16);
  for (int r = 0; r < 2; ++r) {
    std::tie(rowHead[r], rowQuery[r]) = packedRow(add(i0, add(add(rowBase, g), 8 * r)));
    rowQuerySafe[r] = minIdx(rowQuery[r], add(qLen, idx(-1)));
  }
  if (!t.scores.getFeatureQ().empty())
    mapTile(qSmem, t.scores.getFeatureQ(), t.blockQ, t.headDim, tid, threads);
  if (cumQ) {
    Value rowsBase = logDecaySum(idx(0), i0);
    cumulative(cumQ, i0, t.blockQ, rowsBase, tid, /*base=*/Value());
    Value keysBase = logDecaySum(idx(0), keysFrom);
    ifThread0(tid, [&] { memref::StoreOp::create(b, loc, keysBase, keyBase, ValueRange{idx(0)}); });
    gpu::BarrierOp::create(b, loc);
  }
  SmallVector<SmallVector<Value, 4>> qFrag;
  for (int64_t kk = 0; kk < t.headDim / 16; ++kk)
    qFrag.push_back(ldmatrix(qSmem, add(add(rowBase, mul(mLow, 8)), r8),
                             add(mul(mHigh, 8), kk * 16), false));

  // Loop state: m[2], l[2] per thread row (g, g + 8), acc[dTiles][4].
  SmallVector<Value> init;
  Value negInf = f32(-INFINITY), zero = f32(0);
  if (softmax)
    init.append({negInf, negInf, zero, zero});
  init.append(dTiles * 4, zero);
  auto loop = scf::ForOp::create(b, loc, keysFrom, keysTo, idx(t.blockK), init);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value j0 = loop.getInductionVar();
    auto state = loop.getRegionIterArgs();
    SmallVector<Value> m, l;
    if (softmax) {
      m = {state[0], state[1]};
      l = {state[2], state[3]};
    }
    SmallVector<SmallVector<Value, 4>> acc(dTiles);
    for (int64_t n = 0; n < dTiles; ++n)
      for (int64_t e = 0; e < 4; ++e)
        acc[n].push_back(state[(softmax ? 4 : 0) + n * 4 + e]);

    // V(j0) streams in during S = Q . K^T and the softmax; K(j0 + BK) during O += P . V.
    gpu::BarrierOp::create(b, loc);  // every warp is done reading the previous V tile
    loadKeys(v, false, j0, t.valueDim, vSmem, tid, threads);
    waitGroups(commit(), 1);  // K(j0) has landed
    landed(true, j0, tid, threads);

    if (cumK) {  // the key tile's cumulative log decays, continuing from keyBase
      tileJ0 = j0;
      cumulative(cumK, j0, t.blockK, Value(), tid, keyBase);
    }

    // S = Q . K^T: one ldmatrix.x4 feeds two n8 tiles (16 keys) for one k16 step.
    SmallVector<SmallVector<Value, 4>> s(nTiles, SmallVector<Value, 4>(4, zero));
    for (int64_t kk = 0; kk < t.headDim / 16; ++kk)
      for (int64_t np = 0; np < nTiles / 2; ++np) {
        auto kf = ldmatrix(kSmem, add(add(mul(mHigh, 8), r8), np * 16),
                           add(mul(mLow, 8), kk * 16), false);
        s[2 * np] = mma(qFrag[kk], {kf[0], kf[1]}, s[2 * np]);
        s[2 * np + 1] = mma(qFrag[kk], {kf[2], kf[3]}, s[2 * np + 1]);
      }
    scoreTile(s, j0);

    SmallVector<Value> yields;
    if (softmax) {
      if (t.update.getUnifiedMax())
        unifiedSoftmax(s, m, l, acc);
      else
        onlineSoftmax(s, m, l, acc, std::nullopt);
      yields.append({m[0], m[1], l[0], l[1]});
    }
    // P in the A-fragment layout first (the S accumulators of n tiles 2t, 2t + 1 are the A
    // fragment of k step t): packed to 16 bits, P takes half the registers across the next load.
    SmallVector<SmallVector<Value>> pA;
    for (int64_t kt = 0; kt < t.blockK / 16; ++kt)
      pA.push_back({pack(s[2 * kt][0], s[2 * kt][1]), pack(s[2 * kt][2], s[2 * kt][3]),
                    pack(s[2 * kt + 1][0], s[2 * kt + 1][1]),
                    pack(s[2 * kt + 1][2], s[2 * kt + 1][3])});
    gpu::BarrierOp::create(b, loc);  // every warp is done reading K(j0)
    loadKeys(k, true, add(j0, t.blockK), t.headDim, kSmem, tid, threads);
    waitGroups(commit(), 1);  // V(j0) has landed
    landed(false, j0, tid, threads);
    // O += P . V
    for (int64_t kt = 0; kt < t.blockK / 16; ++kt)
      for (int64_t ep = 0; ep < dTiles / 2; ++ep) {
        auto vf = ldmatrix(vSmem, add(add(mul(mLow, 8), r8), kt * 16),
                           add(mul(mHigh, 8), ep * 16), true);
        acc[2 * ep] = mma(pA[kt], {vf[0], vf[1]}, acc[2 * ep]);
        acc[2 * ep + 1] = mma(pA[kt], {vf[2], vf[3]}, acc[2 * ep + 1]);
      }
    for (auto &tile : acc)
      yields.append(tile.begin(), tile.end());
    scf::YieldOp::create(b, loc, yields);
  }

  // Drain the prefetch of the tile after the last one before the block exits.
  nvgpu::DeviceAsyncWaitOp::create(b, loc, commit(), b.getI32IntegerAttr(0));
  auto results = loop.getResults();
  SmallVector<Value> m, l;
  if (softmax) {
    m = {results[0], results[1]};
    l = {quadReduce(results[2], false), quadReduce(results[3], false)};
  }
  SmallVector<SmallVector<Value, 4>> acc(dTiles);
  for (int64_t n = 0; n < dTiles; ++n)
    for (int64_t e = 0; e < 4; ++e)
      acc[n].push_back(results[(softmax ? 4 : 0) + n * 4 + e]);
  emitEpilogue(m, l, acc);
  gpu::ReturnOp::create(b, loc);
  return success();
}

/// out = acc / l (0 for rows with no allowed key), lse = m + ln(l); rows past the end skipped.
/// With split-KV and S > 1 the same values go to the split's partial buffers (f32).
void KernelBuilder::emitEpilogue(ArrayRef<Value> m, ArrayRef<Value> l,
                                 ArrayRef<SmallVector<Value, 4>> acc) {
  Value partial;
  if (split)
    partial = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt,
                                    memref::DimOp::create(b, loc, partOut, 0), idx(1));
  for (int r = 0; r < 2; ++r) {
    auto ifOp = scf::IfOp::create(b, loc, lt(rowQuery[r], qLen), /*withElse=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
    Value scale = f32(1), lseValue;
    if (!l.empty()) {
      Value any = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, l[r], f32(0));
      scale = select(any, arith::DivFOp::create(b, loc, f32(1), l[r]), f32(0));
      Value lnL = fmul(ptx("lg2.approx.f32 $0, $1;", l[r]), f32(kLn2));
      lseValue = select(any, fadd(m[r], lnL), f32(-INFINITY));
    }
    if (!partial) {
      storeRow(r, scale, lseValue, acc, false);
      continue;
    }
    auto branch = scf::IfOp::create(b, loc, partial, /*withElse=*/true);
    for (bool toPartial : {true, false}) {
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPoint((toPartial ? branch.thenBlock() : branch.elseBlock())->getTerminator());
      storeRow(r, scale, lseValue, acc, toPartial);
    }
  }
}

void KernelBuilder::storeRow(int r, Value scale, Value lseValue,
                             ArrayRef<SmallVector<Value, 4>> acc, bool toPartial) {
  Value dest = toPartial ? partOut : out;
  Type outElt = cast<MemRefType>(dest.getType()).getElementType();
  Value h = rowHead[r], i = rowQuery[r];
  for (size_t n = 0; n < acc.size(); ++n)
    for (int e = 2 * r; e < 2 * r + 2; ++e) {
      Value col = add(mul(c, 2), int64_t(n * 8 + e % 2));
      Value x = fmul(acc[n][e], scale);
      if (outElt != x.getType())
        x = arith::TruncFOp::create(b, loc, outElt, x);
      if (toPartial)
        memref::StoreOp::create(b, loc, x, dest, ValueRange{split, batch, h, i, col});
      else
        memref::StoreOp::create(b, loc, x, dest, ValueRange{batch, h, i, col});
    }
  if (!lse || !lseValue)
    return;
  Value first = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, c, idx(0));
  auto lseIf = scf::IfOp::create(b, loc, first, /*withElse=*/false);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(lseIf.thenBlock()->getTerminator());
  if (toPartial)
    memref::StoreOp::create(b, loc, lseValue, partLse, ValueRange{split, batch, h, i});
  else
    memref::StoreOp::create(b, loc, lseValue, lse, ValueRange{batch, h, i});
}

/// attn.combine as a kernel: one block per row (b, h, i) = (block z, y, x), threads over the
/// value channels; nothing to do with one split.
void buildCombineKernel(OpBuilder &b, Location loc, gpu::GPUFuncOp kernel) {
  auto args = kernel.getArguments();
  Value part = args[0], partLse = args[1], out = args[2], lse = args[3];
  auto idx = [&](int64_t x) { return arith::ConstantIndexOp::create(b, loc, x).getResult(); };
  auto f32 = [&](double x) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(float(x))).getResult();
  };
  auto ptx = [&](StringRef code, Value x) {
    return NVVM::InlinePtxOp::create(b, loc, TypeRange{b.getF32Type()}, ValueRange{x},
                                     ValueRange{}, code, Value())
        .getResult(0);
  };
  Value splits = memref::DimOp::create(b, loc, part, 0);
  Value many = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt, splits, idx(1));
  auto ifMany = scf::IfOp::create(b, loc, many, /*withElse=*/false);
  b.setInsertionPoint(ifMany.thenBlock()->getTerminator());
  Value i = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value h = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  Value bt = gpu::BlockIdOp::create(b, loc, gpu::Dimension::z);
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value threads = gpu::BlockDimOp::create(b, loc, gpu::Dimension::x);
  Value negInf = f32(-INFINITY), log2e = f32(kLog2e);
  auto forSplits = [&](Value init, function_ref<Value(Value, Value)> body) {
    auto loop = scf::ForOp::create(b, loc, idx(0), splits, idx(1), init);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    scf::YieldOp::create(b, loc, body(loop.getInductionVar(), loop.getRegionIterArgs()[0]));
    return loop.getResult(0);
  };
  // In base 2: m2 = max lse_s log2e, total2 = m2 + log2(sum_s 2^(lse_s log2e - m2)).
  auto lse2 = [&](Value s) {
    Value x = memref::LoadOp::create(b, loc, partLse, ValueRange{s, bt, h, i});
    return arith::MulFOp::create(b, loc, x, log2e).getResult();
  };
  Value m2 = forSplits(negInf, [&](Value s, Value m) {
    return arith::MaximumFOp::create(b, loc, m, lse2(s)).getResult();
  });
  Value none = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, m2, negInf);
  Value base = arith::SelectOp::create(b, loc, none, f32(0), m2);
  Value sum = forSplits(f32(0), [&](Value s, Value acc) {
    Value w = ptx("ex2.approx.ftz.f32 $0, $1;", arith::SubFOp::create(b, loc, lse2(s), base));
    return arith::AddFOp::create(b, loc, acc, w).getResult();
  });
  Value total2 = arith::AddFOp::create(b, loc, base, ptx("lg2.approx.f32 $0, $1;", sum));
  Value first = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, tid, idx(0));
  auto ifFirst = scf::IfOp::create(b, loc, first, /*withElse=*/false);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(ifFirst.thenBlock()->getTerminator());
    Value value = arith::SelectOp::create(b, loc, none, negInf,
                                          arith::MulFOp::create(b, loc, total2, f32(kLn2)));
    memref::StoreOp::create(b, loc, value, lse, ValueRange{bt, h, i});
  }
  Value channels = memref::DimOp::create(b, loc, out, 3);
  auto loop = scf::ForOp::create(b, loc, tid, channels, threads);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value e = loop.getInductionVar();
    Value o = forSplits(f32(0), [&](Value s, Value acc) {
      Value w = ptx("ex2.approx.ftz.f32 $0, $1;", arith::SubFOp::create(b, loc, lse2(s), total2));
      Value x = memref::LoadOp::create(b, loc, part, ValueRange{s, bt, h, i, e});
      return arith::AddFOp::create(b, loc, acc, arith::MulFOp::create(b, loc, w, x)).getResult();
    });
    o = arith::SelectOp::create(b, loc, none, f32(0), o);
    Type outElt = cast<MemRefType>(out.getType()).getElementType();
    if (outElt != o.getType())
      o = arith::TruncFOp::create(b, loc, outElt, o);
    memref::StoreOp::create(b, loc, o, out, ValueRange{bt, h, i, e});
  }
  b.setInsertionPointAfter(ifMany);
  gpu::ReturnOp::create(b, loc);
}

/// The kernel's memref types: q, k, v, o with a unit last stride (the runtime checks it).
/// Packed i4 K/V (vector<2xi4>) are seen as their bytes (i8), which cp.async copies.
Type kernelArgType(Type hostType, bool unitLastStride) {
  auto type = cast<MemRefType>(hostType);
  Type elt = packingOf(type) > 1 ? IntegerType::get(type.getContext(), 8) : type.getElementType();
  if (!unitLastStride)
    return MemRefType::get(type.getShape(), elt, type.getLayout(), type.getMemorySpace());
  SmallVector<int64_t> strides(type.getRank(), ShapedType::kDynamic);
  strides.back() = 1;
  auto layout = StridedLayoutAttr::get(type.getContext(), ShapedType::kDynamic, strides);
  return MemRefType::get(type.getShape(), elt, layout);
}

/// A kernel must not use a value of the host function it replaces (which is erased next): a
/// region capture that was not mapped would dangle. Caught here as an error, never a crash.
LogicalResult checkSelfContained(gpu::GPUFuncOp kernel) {
  Operation *leak = nullptr;
  kernel.walk([&](Operation *op) {
    for (Value operand : op->getOperands())
      if (!kernel->isAncestor(operand.getParentRegion()->getParentOp())) {
        leak = op;
        return WalkResult::interrupt();
      }
    return WalkResult::advance();
  });
  if (leak)
    return leak->emitError("internal error: the CUDA kernel uses a value of the host function "
                           "(an unmapped region capture)");
  return success();
}

struct AttnCUDALowerTilesPass
    : mlir::attn::impl::AttnCUDALowerTilesBase<AttnCUDALowerTilesPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<func::FuncOp> funcs(module.getOps<func::FuncOp>());
    for (func::FuncOp f : funcs)
      if (failed(lowerFunction(module, f)))
        return signalPassFailure();
    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(), UnitAttr::get(&getContext()));
    RewritePatternSet patterns(&getContext());
    populateApproxMathToNVVMPatterns(patterns);
    if (failed(applyPatternsGreedily(module, std::move(patterns))))
      return signalPassFailure();
  }

  /// `gpu.module @<f>_kernels` (NVVM target) holding an empty `gpu.func @<f>` kernel with f's
  /// arguments, q/k/v/out (`tensors`) with a unit last stride; `b` is left inside the module.
  gpu::GPUFuncOp createKernel(OpBuilder &b, func::FuncOp f, ArrayRef<Value> tensors) {
    Location loc = f.getLoc();
    auto target = NVVM::NVVMTargetAttr::get(&getContext(), /*optLevel=*/3, "nvptx64-nvidia-cuda",
                                            chip, "+ptx80");
    auto gpuModule = gpu::GPUModuleOp::create(b, loc, (f.getName() + "_kernels").str(),
                                              b.getArrayAttr({target}));
    b.setInsertionPointToStart(gpuModule.getBody());
    SmallVector<Type> argTypes;
    for (BlockArgument arg : f.getArguments())
      argTypes.push_back(kernelArgType(arg.getType(), llvm::is_contained(tensors, arg)));
    auto kernel = gpu::GPUFuncOp::create(b, loc, f.getName(), b.getFunctionType(argTypes, {}));
    kernel->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
    return kernel;
  }

  /// A function holding attn-chunk's form: one kernel for its attn.chunk_step.
  LogicalResult lowerChunked(func::FuncOp f, ChunkStepOp step) {
    OpBuilder b(f);
    auto kernel = createKernel(b, f, {step.getQ(), step.getK(), step.getV(), step.getOut()});
    int64_t d = step.getQ().getType().getDimSize(3), dv = step.getOut().getType().getDimSize(3);
    if (Value w = step.getProjection())  // Performer: the state's rows are the feature dim
      d = cast<MemRefType>(w.getType()).getDimSize(0);
    bool scan = !ShapedType::isDynamic(d) && !ShapedType::isDynamic(dv) && cudaUsesScan(d, dv);
    if (failed(scan ? buildScanKernel(b, f, step, kernel)
                    : buildChunkKernel(b, f, step, kernel, valueSlice)) ||
        failed(checkSelfContained(kernel)))
      return failure();
    f.erase();
    return success();
  }

  LogicalResult lowerFunction(ModuleOp module, func::FuncOp f) {
    SmallVector<ChunkStepOp> steps;
    f.walk([&](ChunkStepOp step) { steps.push_back(step); });
    if (steps.size() > 1)
      return f.emitError("attn-cuda-lower-tiles expects one attn.chunk_step per function");
    if (!steps.empty())
      return lowerChunked(f, steps.front());
    FailureOr<TiledForm> form = analyze(f);
    if (failed(form))
      return failure();
    OpBuilder b(f);
    Location loc = f.getLoc();
    auto kernel = createKernel(b, f, {form->scores.getQ(), form->scores.getK(),
                                      form->matmul.getV(), form->store.getOut()});
    int32_t threads = int32_t(form->blockQ / 16 * 32);
    kernel.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({threads, 1, 1}));
    b.setInsertionPointToStart(&kernel.getBody().front());
    KernelBuilder builder(b, loc, *form, kernel);
    if (failed(builder.build()) || failed(checkSelfContained(kernel)))
      return failure();
    if (form->combine) {
      CombineOp combine = form->combine;
      b.setInsertionPointAfter(kernel);
      SmallVector<Type> types;
      for (Value operand : combine->getOperands())
        types.push_back(kernelArgType(operand.getType(), operand == combine.getOut()));
      auto merge = gpu::GPUFuncOp::create(b, loc, (f.getName() + "_combine").str(),
                                          b.getFunctionType(types, {}));
      merge->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
      merge.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({kCUDACombineThreads, 1, 1}));
      b.setInsertionPointToStart(&merge.getBody().front());
      buildCombineKernel(b, loc, merge);
    }
    f.erase();
    return success();
  }
};

} // namespace
