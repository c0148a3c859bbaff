// The flash strategy's kernel builder (attn-gpu-distribute): FlashDistribute.cpp emits the
// attn_gpu ops of each tiled op, FlashLoops.cpp the key loops and the kernel in order.
#pragma once

#include "codegen/gpu/transforms/FlashTile.h"
#include "codegen/gpu/transforms/Passes.h"
#include "codegen/gpu/transforms/TileBuilder.h"

#include "mlir/IR/IRMapping.h"

namespace mlir::attngpu::detail {

/// The first position m <= n where `list` holds list[n]: several scores reading one input
/// share its tile, its copy and its operand.
inline size_t firstOf(ArrayRef<Value> list, size_t n) {
  return size_t(llvm::find(list.take_front(n + 1), list[n]) - list.begin());
}

/// Emits the kernel of one flash tile. Each `emit*` lowers one tiled op (or the grid, or the
/// epilogue) to attn_gpu ops; fragment values stand in for the tiled level's buffers.
class FlashDistributor : TileBuilder {
public:
  FlashDistributor(OpBuilder &b, FlashTile t, gpu::GPUFuncOp kernel, bool overlap,
                   bool occupancyHint)
      : TileBuilder(b, t.scores.getLoc()), t(t), kernel(kernel), overlap(overlap),
        occupancyHint(occupancyHint) {}

  LogicalResult run();

private:
  FlashTile t;
  gpu::GPUFuncOp kernel;
  bool overlap;   // the softmax of a key tile under the next tile's Q K^T (async mmas)
  bool occupancyHint;  // sm_90a: ask for 3 blocks per SM (min_blocks in the schedule)
  IRMapping map;  // host values -> kernel values
  Type elt;
  Value q, k, v, table, batch, head, kvHead, i0, split, qLen, kvLen;
  Value qTile, kTile, vTile, kStage, vStage, cumQ, cumK, keyBase;
  Value qNorms, kNorms;  // the row norms dot(q, q), dot(k, k) of the Q tile and a K tile
  Value fullFrom, fullTo;  // the block plan's keys that every row of the tile allows
  Value qOperand;
  // Per score n (several scores; 0: the fields above) its q and k, their tiles (shared with an
  // earlier score that reads the same input), Q's operand, and the score's scale: > 0 when
  // the score is dot * scale, folded into the softmax's exp2.
  SmallVector<Value> qs, ks, qTiles, kTiles, qOperands;
  SmallVector<double> scoreScales;

  RankedTensorType accType(int64_t cols) { return accOf(t.blockQ, cols); }
  RankedTensorType rowsType(Type element) { return rowsOf(t.blockQ, element); }

  LogicalResult materialize(Value v);
  LogicalResult mapCaptures(Region &region);
  void cloneRegion(Region &from, Region &to);
  void emitGrid();
  void emitSharedTiles();
  void copyKeys(bool isKey, Value j0);
  void landed(bool isKey, Value j0);
  Value emitScores(Value j0, size_t n = 0);
  Value scoreOf(Value s, Value j0, size_t n = 0);
  void keyTilePrefix(Value j0);
  Value emitWeights(Value &s, Value &m, Value &l, Value &acc, size_t n = 0);
  SmallVector<Value> initialState();
  SmallVector<Value> emitSerialLoop(Value keysFrom, Value keysTo);
  SmallVector<Value> emitOverlappedLoop(Value keysFrom, Value keysTo);
  void emitOnlineUpdate(Value &s, Value &m, Value &l, Value &acc, size_t n = 0);
  void emitUnifiedUpdate(Value &s, Value &m, Value &l, Value &acc, float unified);
  void emitEpilogue(ArrayRef<Value> results);
  void emitStores(Value o, ArrayRef<Value> lses, bool toPartial);
  void emitLaunch();
};

} // namespace mlir::attngpu::detail
