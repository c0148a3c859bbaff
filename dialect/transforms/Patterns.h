// Rewrite patterns behind the attn passes, exposed so other passes and pipelines can reuse them.
#pragma once

#include "mlir/IR/PatternMatch.h"

namespace mlir::attn {

/// attn.attention -> tiled loops (see attn-tile).
void populateTileAttentionPatterns(RewritePatternSet &patterns, int64_t blockQ, int64_t blockK);

/// Two-pass softmax key loops -> one online-softmax loop (see attn-online-softmax).
void populateOnlineSoftmaxPatterns(RewritePatternSet &patterns);

/// Key loops narrowed to the keys the mask may allow (see attn-mask-bounds).
void populateMaskBoundsPatterns(RewritePatternSet &patterns);

} // namespace mlir::attn
