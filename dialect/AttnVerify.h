// Checks shared by the verifiers of the attn ops (AttnDialect.cpp, AttnGrad.cpp).
#pragma once

#include "dialect/AttnDialect.h"

namespace mlir::attn::detail {
/// Extent `ai` of `a` equals extent `bi` of `b` (unless one is dynamic); `what` names the
/// extent for the user.
LogicalResult sameExtent(Operation *op, StringRef what, StringRef aName, MemRefType a, unsigned ai,
                         StringRef bName, MemRefType b, unsigned bi);
/// The block ends with attn.yield of exactly one value of type `expected`.
LogicalResult verifyYield(Operation *op, Block &block, StringRef region, Type expected);
/// An optional per-step region of one block taking `args` (comma-separated names) as
/// indices and yielding one f32: a decay (b, h, i) or a gate (b, h, i, c).
LogicalResult verifyStepRegion(Operation *op, Region &region, StringRef name, StringRef args);
/// score: ^bb0(b, h, i, j : index, dot : f32) -> f32; mask (optional):
/// ^bb0(b, h, i, j : index) -> i1.
LogicalResult verifyScoreAndMask(Operation *op, Region &score, Region &mask);
/// No buffer the op writes (`writes`, by name) is another of its operands (`all`): an output
/// aliased to an input would be read while it is written. Null values are skipped.
LogicalResult distinctBuffers(Operation *op, ArrayRef<std::pair<StringRef, Value>> writes,
                              ArrayRef<std::pair<StringRef, Value>> all);
} // namespace mlir::attn::detail
