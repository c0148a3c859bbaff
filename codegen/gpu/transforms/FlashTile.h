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
};

/// The flash tile of `f` (after attn-tile, attn-online-softmax and the optional passes), or an
/// error at `f` saying what does not fit the CUDA back end.
FailureOr<FlashTile> findFlashTile(func::FuncOp f);

} // namespace mlir::attngpu
