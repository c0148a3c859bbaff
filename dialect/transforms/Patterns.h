// Rewrite patterns behind the attn passes, exposed so other passes and pipelines can reuse them.
#pragma once

#include "mlir/IR/IRMapping.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::attn {

/// attn.attention -> tiled loops (see attn-tile).
/// narrowBlockK (0: blockK) for variants whose head or value dim is not a static multiple of 64;
/// plainTile (0: none) rows and keys per tile for plain softmax attention at head dims 96-128.
void populateTileAttentionPatterns(RewritePatternSet &patterns, int64_t blockQ, int64_t blockK,
                                   int64_t narrowBlockK = 0, int64_t plainTile = 0);

/// Two-pass softmax key loops -> one online-softmax loop (see attn-online-softmax).
void populateOnlineSoftmaxPatterns(RewritePatternSet &patterns);

/// A value of a mask region that depends on the batch index alone (a per-sequence length
/// `kv_len[b]` read from a param, a block's position offset), with its coefficient.
using OpaqueTerm = std::pair<Value, int64_t>;

/// A bound on the key index j that holds for a query row i of batch b: j >= a * i + c + sum of
/// the terms' coefficient * value (lower) or j <= ... (upper).
struct KeyBound {
  bool lower;
  int64_t a, c;
  SmallVector<OpaqueTerm, 2> terms = {};
};

/// Emits a * row + c + the terms at `b`'s insertion point, cloning the slice of the mask region
/// that computes each term with its batch argument bound to `batch` (and host values through
/// `outside`).
Value keyBoundEdge(OpBuilder &b, Location loc, const KeyBound &bound, Value row, Region &mask,
                   Value batch, IRMapping outside);

/// Reads a mask region (b, h, i, j) -> i1 as bounds on j (the analysis of attn-mask-bounds);
/// `exact` is set when the mask is exactly the conjunction of the returned bounds.
SmallVector<KeyBound> analyzeMaskBounds(Region &mask, bool &exact);

/// [lb, ub) narrowed to the keys `bounds` (of `mask`) allow for the query rows
/// [iFirst, iLast], lb floored to a multiple of `step` (attn-mask-bounds' key loops, the
/// backward's dQ kernel).
std::pair<Value, Value> narrowKeyRange(OpBuilder &b, Location loc, Region &mask,
                                       ArrayRef<KeyBound> bounds, Value iFirst, Value iLast,
                                       Value batch, const IRMapping &outside, int64_t step,
                                       Value lb, Value ub);

/// Key loops narrowed to the keys the mask may allow (see attn-mask-bounds).
void populateMaskBoundsPatterns(RewritePatternSet &patterns);

/// Query tiles of a GQA variant hold the heads of a group together (see attn-pack-gqa).
void populatePackGQAPatterns(RewritePatternSet &patterns);


} // namespace mlir::attn
