// The flash strategy's view of a tiled function: its query tile's ops found by their roles and
// the facts the GPU tile level needs (GQA group and packing, tile and head sizes, split-KV),
// with an error in the user's terms for what the CUDA back end does not take.
#pragma once

#include "dialect/AttnDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

namespace mlir::attngpu {

/// The tiled ops of one flash query tile, found by their roles (attn-gpu-distribute then lowers
/// each op on its own).
struct FlashTile {
  attn::TileScoresOp scores;
  attn::TileMatmulAccOp matmul;
  attn::TileStoreOp store;
  attn::TileOnlineUpdateOp update;  // null unless softmax
  scf::ForOp keyLoop;
  scf::ForOp splitLoop;             // attn-split-kv's loop over splits, if any
  attn::CombineOp combine;          // its merge, if any
  attn::TileKeyRangeOp keyRange;    // attn-block-plan's key range, if any (the block plan)
  int64_t group = 1, pack = 1, blockQ = 0, blockK = 0, headDim = 0, valueDim = 0;
  int64_t packedK = 1, packedV = 1;
  /// Several scores: each other score's ops in the key loop, score n >= 1 at n - 1 (its
  /// accumulator is the store's n-th extra one). The first score's are the fields above.
  SmallVector<attn::TileScoresOp> moreScores;
  SmallVector<attn::TileOnlineUpdateOp> moreUpdates;
  SmallVector<attn::TileMatmulAccOp> moreMatmuls;
  size_t chains() const { return 1 + moreScores.size(); }
  attn::TileScoresOp scoresOf(size_t n) const { return n ? moreScores[n - 1] : scores; }
  attn::TileOnlineUpdateOp updateOf(size_t n) const { return n ? moreUpdates[n - 1] : update; }
  attn::TileMatmulAccOp matmulOf(size_t n) const { return n ? moreMatmuls[n - 1] : matmul; }
};

/// The flash tile of `f` (after attn-tile, attn-online-softmax and the optional passes), or an
/// error at `f` saying what does not fit the CUDA back end.
FailureOr<FlashTile> findFlashTile(func::FuncOp f);

} // namespace mlir::attngpu
