// The backward strategy's kernel builder (attn-gpu-distribute, docs/backward.md):
// GradDistribute.cpp emits the dQ-side kernels, GradKeys.cpp the dK/dV kernel.
#pragma once

#include "codegen/gpu/transforms/Passes.h"
#include "codegen/gpu/transforms/TileBuilder.h"
#include "dialect/MaskInterval.h"

#include "mlir/IR/IRMapping.h"

namespace mlir::attngpu::detail {

/// Tile sizes: the dQ kernel's query tile (16 rows per warp) and key tile; the dK/dV kernel's
/// key tile (16 rows per warp) and query tile (fewer columns for wide heads: registers).
struct GradSchedule {
  int64_t blockQ = 64, blockK = 32, keyRows = 64, queryCols = 64;
};

/// One score of the backward (several with a mix of their rows): its host q, k and lse, the
/// gradient buffers of q and k (a tensor several scores read has one), its regions.
struct GradScore {
  Value q, k, lse, dq, dk;
  Region *score, *scoreGrad;
};

class GradDistributor : TileBuilder {
public:
  GradDistributor(OpBuilder &b, attn::AttentionGradOp op, func::FuncOp f)
      : TileBuilder(b, op.getLoc()), op(op), f(f) {}

  LogicalResult run(StringRef chip, bool blockPlan, bool dqAtomic);

private:
  attn::AttentionGradOp op;
  func::FuncOp f;
  GradSchedule s;
  SmallVector<GradScore> scores;  // score 0 is the op's q, k, lse; then its more_scores
  IRMapping map;  // host values -> the current kernel's values
  Type elt, doutElt;  // q's 16-bit element type; out's and dout's (elt or f32)
  int64_t headDim = 0, valueDim = 0;
  Value q, k, v, out, dout, lse, delta, dqAcc, dyWork, plan, batch, qLen, kvLen;
  bool softmax = false;
  bool atomic = false;  // dQ by atomics from the dK/dV kernel
  bool mapped = false;  // output expression, mix or f32 output: dy recomputed, in the workspace
  bool rowNorms = false;  // a score reading dot(q, q) and dot(k, k)
  Value qNorms, kNorms;  // their shared vectors in the current kernel (rowNorms)
  /// A forget gate (a decay with norm softmax): its workspace [b, 3 h, i] (dS's row sums at
  /// head h, column sums at h + heads, the cumulative log decays at h + 2 heads), and in the
  /// current kernel the shared vectors of the query and key tiles' cumulative log decays and
  /// the running sum carried over the loop's tiles.
  bool forget = false;
  bool decayParams = false;  // the decay reads params: dS's sums and the last kernel
  Value sums, cumQ, cumK, decayBase;
  /// Head h's slot `n` of the forget gate's workspace: h + n heads.
  Value decaySlot(Value h, int64_t n);
  /// A mask that reads params: the block plan's classification (a host-side op whose entries
  /// `<name>_plan` computes for the dQ kernel's query tiles; both kernels read them).
  attn::TileKeyRangeOp keyRange;

  gpu::GPUFuncOp makeKernel(gpu::GPUModuleOp module, StringRef name);
  LogicalResult enter(gpu::GPUFuncOp kernel);
  void cloneScore(ScoreOp score, size_t n);
  /// Score n's slot in the workspaces D [b, scores x h, i] and dy [b, scores x h, i, dv].
  Value slot(size_t n, Value head);
  /// P and dS of a tile from its scores s (filled with -inf where masked or out of range),
  /// dP and the rows' (or, key-major, columns') lse and D.
  std::pair<Value, Value> probabilities(Value s, Value dP, Value lseAt, Value dAt);
  /// P of a tile from its scores (the first half of probabilities()).
  Value probability(Value s, Value lseAt);
  /// The gradient of score n's dot products (with row norms also of nq and nk: three tiles).
  SmallVector<Value> scoreGrad(size_t n, Value dot, Value ds, Value h, Value i0, Value j0,
                               bool transposed);
  /// attn_gpu.score_grad of `region` over value columns: the gradients of x and `more`.
  SmallVector<Value> regionGrad(Region &region, Value x, ValueRange more, Value g, Value h,
                                Value i0, Value j0, Value columns, bool transposed);
  void fillGradRegion(Region &region, ScoreGradOp grad, bool transposed);
  /// A cloned gradient region's attn.accumulate ops as attn_gpu.accumulate (`keep`) or erased.
  void convertAccumulations(Region &region, bool keep);
  /// attn_gpu.log_decay_prefix of head h into `cum` from position p0: with `carry`, from the
  /// running sum (totalOnly: only the sum before p0 into it).
  void decayPrefix(Value cum, Value h, Value p0, Value carry, bool totalOnly);
  /// A forget gate, before a loop over tiles from position `from`: the running sum of the
  /// log decays before it (a no-op without a forget gate).
  void startDecay(Value h, Value from) {
    if (forget)
      decayPrefix(decayBase, h, from, decayBase, true);
  }
  /// The sums of dS over the tile's columns (decayParams; each thread's rows, quad-reduced)
  /// into `sums` at head `h` (the dQ kernel's rows; the dK/dV kernel's keys at heads + h),
  /// rows below `end`.
  void storeSums(Value partial, Value h, Value p0, Value end);
  /// The shared vectors of the row norms dot(q, q) and dot(k, k) (rowNorms) of the current
  /// query and key tiles, written by attn_gpu.row_squares.
  void squareRows(Value tile, Value norms);
  /// Key tile j0 of each (global, shared tile) pair (kv head `kvHead`) landed, and with row
  /// norms the first tile's (K's) squared rows.
  void copyKeyTiles(ArrayRef<std::pair<Value, Value>> tiles, Value kvHead, Value j0);
  /// acc + 2 sum * X for X the 16-bit shared tile of the rows (the gradient of a row's norm
  /// dot(x, x) whose derivative summed over the tile's partners is `sum`, per-thread partials).
  Value addNormGrad(Value acc, Value sum, Value tile, int64_t rows, int64_t cols);
  /// Score n on key tile j0 (landed in kTile) of the query tile: S = Q K^T and the score
  /// (-inf where masked; `planned`: the block plan's full range skips the mask).
  std::pair<Value, Value> queryTileScores(size_t n, Value qOperand, Value kTile, Value head,
                                          Value i0, Value j0, const attn::KeyRange &planned);
  /// The query tile's key range [from, to): the mask's bounds, then the block plan's entry.
  using KeySpan = std::tuple<Value, Value, attn::KeyRange>;
  KeySpan keyRangeOf(Value i0);
  /// The shared tiles and loaded operands of a query tile's kernel, per score.
  struct QueryTiles {
    // per score (equal inputs share a tile and an operand); operands by loadOperands
    SmallVector<Value> qTile, lseVec, kTile, qOperand, lseRows;
    Value doTile, oTile, vTile, kvHead;
  };
  /// A query tile's kernel: the shared tiles of every score's q and k, dout (and `withOut`
  /// the forward's out), V; q, dout, out and each lse copied, q's rows squared (row norms).
  QueryTiles loadQueryTiles(Value i0, Value head, bool withOut);
  /// The lse rows and q operands of every score.
  void loadOperands(QueryTiles &t);
  /// The dK/dV kernel's shared tiles (dsTile with dQ by atomics) and its key tile.
  struct KeyTiles {
    Value kTile, vTile, qTile, doTile, lseVec, dVec, dsTile, kvHead, j0;
  };
  /// Through an output expression (or a mix of several scores): each y_n of the query tile
  /// recomputed over its key range, dy from the dout tile, through the mix's derivative each
  /// dy_n; D_n and dy_n into the workspaces; returns (dy_n, D_n's rows) per score.
  std::pair<SmallVector<Value>, SmallVector<Value>>
  emitOutputGrad(const QueryTiles &t, Value i0, Value head, const KeySpan &keys);
  /// The copies of a key tile: each distinct K of the scores into its tile, then V.
  SmallVector<std::pair<Value, Value>> keyCopies(const QueryTiles &t);
  /// Several scores' dQ in one key loop: each key tile's K tiles and V copied once, every
  /// score's dS from its dy_n (reloaded from the workspace into a shared tile of its own) and
  /// D_n rows, summed into an accumulator per gradient buffer, stored at the end.
  void emitScoresDQ(const QueryTiles &t, ArrayRef<Value> dRows, Value i0, Value head,
                    const KeySpan &keys);
  /// The rows y_n = sum_j P_n v_j of every score over the query tile's key range.
  SmallVector<Value> recomputeRows(const QueryTiles &t, Value i0, Value head,
                                   const KeySpan &keys);
  /// One score's dQ loop over the key range: `carried` (dq and with row norms the rows' sums
  /// of d(q.q)) accumulated with dout (or dy) as `dyOperand` and its D rows.
  SmallVector<Value> emitDQLoop(ValueRange carried, const QueryTiles &t, Value dyOperand,
                                Value dRows, Value i0, Value head, const KeySpan &keys);
  /// The dK/dV kernel's loops of score n over the group's heads and their query tiles:
  /// `carried` (dk, dv and with row norms the keys' sums of d(k.k)) accumulated.
  SmallVector<Value> emitKeyMajorScore(size_t n, ValueRange carried, const KeyTiles &t,
                                       Value from, Value to, bool perHead);
  /// This block's query tile [i0, i0 + blockQ) of head `head`, grid (query tiles, heads, batch).
  std::pair<Value, Value> queryTile();
  /// The launch of a kernel of query tiles; `width`: the dQacc columns it converts.
  void setQueryTileLaunch(gpu::GPUFuncOp kernel, int64_t width = 0);
  /// D = rowsum(dO O) of the query tile into the workspace (dO and O landed in shared
  /// tiles); its rows.
  Value emitDelta(Value doTile, Value oTile, Value i0, Value head);
  LogicalResult emitDQ(gpu::GPUFuncOp kernel);
  LogicalResult emitPrepare(gpu::GPUFuncOp kernel);
  LogicalResult emitConvertDQ(gpu::GPUFuncOp kernel);
  LogicalResult emitDKDV(gpu::GPUFuncOp kernel);
  /// A forget gate's last kernel: grid (heads, batch), one warp scanning dS's sums into the
  /// log decays' gradients (attn_gpu.decay_grad).
  LogicalResult emitDecayGrad(gpu::GPUFuncOp kernel);
  void planKeyRanges();
  std::pair<Value, Value> maskedQueries(Value j0);
  Value fullTile(Value fullFrom, Value fullTo, Value j0, int64_t keys);
  std::pair<Value, Value> plannedQueries(Value j0, Value from, Value to);
};

} // namespace mlir::attngpu::detail
