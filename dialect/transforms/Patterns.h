// Rewrite patterns behind the attn passes, exposed so other passes and pipelines can reuse them.
#pragma once

#include "mlir/IR/PatternMatch.h"

namespace mlir::attn {

/// attn.attention -> tiled loops (see attn-tile).
void populateTileAttentionPatterns(RewritePatternSet &patterns, int64_t blockQ, int64_t blockK);

/// Two-pass softmax key loops -> one online-softmax loop (see attn-online-softmax).
void populateOnlineSoftmaxPatterns(RewritePatternSet &patterns);

/// A bound on the key index j that holds for a query row i: j >= a * i + c (lower) or
/// j <= a * i + c (upper).
struct KeyBound {
  bool lower;
  int64_t a, c;
};

/// Reads a mask region (b, h, i, j) -> i1 as bounds on j (the analysis of attn-mask-bounds);
/// `exact` is set when the mask is exactly the conjunction of the returned bounds.
SmallVector<KeyBound> analyzeMaskBounds(Region &mask, bool &exact);

/// Key loops narrowed to the keys the mask may allow (see attn-mask-bounds).
void populateMaskBoundsPatterns(RewritePatternSet &patterns);

} // namespace mlir::attn
