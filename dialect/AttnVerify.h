// Checks shared by the verifiers of the attn ops (AttnDialect.cpp, AttnGrad.cpp).
#pragma once

#include "dialect/AttnDialect.h"

namespace mlir::attn::detail {
/// Two extents agree unless both are static and differ.
bool compatible(int64_t a, int64_t b);
/// An extent for messages: its number, or '?'.
std::string extentStr(int64_t e);
/// A feature map: (x : f32) -> f32, or with a projection (`projected`, Performer) required
/// and taking (p, sq : f32), the row's projection on one feature and its sum of squares.
LogicalResult verifyFeature(Operation *op, Region &feature, StringRef name,
                            bool projected = false);
/// A projection [m, d] (Performer) of q's head dim; `rows` (the state's, when given) are m.
LogicalResult verifyProjection(Operation *op, Value projection, MemRefType q, MemRefType rows);
/// A tile of static shape, never empty, below 2^31 elements.
LogicalResult staticRows(Operation *op, StringRef name, MemRefType t);
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
/// A `mix` region of `scores` rows (required with two or more, absent with one):
/// (b, h, i, e : index, y_0 ... : f32) -> f32.
LogicalResult verifyMix(Operation *op, Region &mix, size_t scores);
} // namespace mlir::attn::detail
